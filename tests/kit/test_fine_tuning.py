"""Fine-tuning toward the pretrained weights: L2-SP (`reglab.regularizers.L2SP`, Li et al., ICML 2018) attached by
`regularize(..., toward="initial")` or swept as `l2_sp`; serializable; one w₀ shared by a population's members."""

import keras
import numpy as np
import pytest
from sklearn.datasets import load_digits

import reglab
from reglab.regularizers import L2, L2SP

X, Y = load_digits(return_X_y=True)
X = (X / 16).astype("float32")


@pytest.fixture(scope="module")
def pretrained():
    """An MLP trained on the digits 0–4: its `features` layer is what fine-tuning starts from."""
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input((64,)),
            keras.layers.Dense(32, activation="relu", name="features"),
            keras.layers.Dense(5, activation="softmax"),
        ]
    )
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    model.fit(X[Y < 5], Y[Y < 5], epochs=5, verbose=0)
    return model


@pytest.mark.both_backends
def test_l2_sp_is_l2_toward_w0_and_keeps_w0_through_saving(tmp_path):
    w0 = np.arange(6, dtype="float32").reshape(2, 3)
    w = w0 + 2.0
    assert float(L2SP(0.5, w0)(w)) == pytest.approx(0.5 * 6 * 4)  # λ·Σ(w − w₀)², six entries each 2 away
    assert float(L2SP(0.5, np.zeros((2, 3)))(w)) == pytest.approx(float(L2(0.5)(w)))  # w₀ = 0 is L2
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(3, kernel_regularizer=L2SP(1e-2, w0))])
    model.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras")
    regularizer = loaded.layers[0].kernel_regularizer
    assert isinstance(regularizer, L2SP) and regularizer.l2 == 1e-2 and np.array_equal(regularizer.reference, w0)
    for bad, message in ((None, r"Received: reference=None"), ("w0", r"Received: reference='w0'")):
        with pytest.raises(ValueError, match=message):
            L2SP(1e-2, bad)
    with pytest.raises(ValueError, match=r"Received: l2=-1"):
        L2SP(-1, w0)


@pytest.mark.both_backends
def test_regularize_toward_initial_pulls_each_weight_toward_its_values_now(pretrained):
    model = reglab.regularize(pretrained, kernel=L2(0.1), layers=["features"], toward="initial")
    regularizer = model.get_layer("features").kernel_regularizer
    assert isinstance(regularizer, L2SP) and regularizer.l2 == 0.1
    assert np.array_equal(regularizer.reference, pretrained.get_layer("features").kernel.numpy())
    assert float(sum(model.losses)) == 0.0  # at w₀ the pull is zero; L2 would not be
    for kwargs, message in (
        ({"kernel": reglab.regularizers.L1(0.1), "toward": "initial"}, r"give L2\(λ\).*Received: kernel="),
        ({"kernel": L2(0.1), "toward": "zero"}, r"Received: toward='zero'"),
    ):
        with pytest.raises(ValueError, match=message):
            reglab.regularize(pretrained, layers=["features"], **kwargs)


def test_a_sweep_of_l2_against_l2_sp_on_few_examples_keeps_the_features_near_the_pretrained_ones(pretrained):
    """Fine-tuning on 36 examples of the digits 5–9 with a new head: `penalty` ∈ {l2, l2_sp} × λ as one population
    (the L2 and L2-SP members differ only in their per-member coefficients), chosen by CV, tested once. At the
    same λ, L2-SP's features end nearer the pretrained ones than L2's (which pulls them toward zero); the
    distances are the trained weights' own."""
    features = pretrained.get_layer("features")
    w0 = features.kernel.numpy()
    model = keras.Sequential([keras.Input((64,)), features, keras.layers.Dense(5, activation="softmax")])
    few = Y >= 5
    result = reglab.Sweep(
        model,
        grid={"penalty": ["l2", "l2_sp"], "lambda": [0.0, 1e-2, 1e-1]},
        layers=["features"],
        cv=3,
        epochs=20,
        learning_rate=1e-2,
        test_size=0.9,
        seed=0,
    ).run(X[few][:360], Y[few][:360] - 5, keep_weights=True)
    assert result.timing["populations"] == 1 and result.test is not None
    members = result.members.set_index("member")
    kernel = next(p for p in next(iter(result.weights.values())) if p.endswith("features/kernel"))
    distance = {}
    for member_id, weights in result.weights.items():
        point = members.loc[member_id]
        distance.setdefault((point["penalty"], point["lambda"]), []).append(np.linalg.norm(weights[kernel] - w0))
    for strength in (1e-2, 1e-1):
        assert np.mean(distance[("l2_sp", strength)]) < np.mean(distance[("l2", strength)])
    assert np.mean(distance[("l2_sp", 1e-1)]) < np.mean(distance[("l2_sp", 0.0)])  # the pull grows with λ
