"""Penalty values, argument checks, get(), and one serialization harness that every regularizer passes."""

import json
import math
import subprocess
import sys

import keras
import numpy as np
import pytest

from reglab.kit import regularizers as R
from reglab.kit.schedules import LinearWarmup, Scheduled, Step

pytestmark = pytest.mark.both_backends  # the Keras-level kit works on either backend

RNG = np.random.default_rng(0)
W2 = RNG.normal(size=(6, 4)).astype("float32")  # a Dense kernel
W3 = RNG.normal(size=(5, 3, 2)).astype("float32")  # a Conv1D kernel
W4 = RNG.normal(size=(3, 3, 2, 4)).astype("float32")  # a Conv2D kernel


def value(reg, w):
    return float(keras.ops.convert_to_numpy(reg(keras.ops.convert_to_tensor(w))))


# --- values against numpy ----------------------------------------------------------------------


@pytest.mark.parametrize("w", [W2, W3, W4], ids=["dense", "conv1d", "conv2d"])
def test_elastic_net_is_glmnet_and_equals_its_l1l2(w):
    strength, ratio = 0.3, 0.25
    expected = strength * (ratio * np.abs(w).sum() + (1 - ratio) / 2 * np.square(w).sum())
    reg = R.ElasticNet(strength, l1_ratio=ratio)
    assert value(reg, w) == pytest.approx(expected, rel=1e-5)
    assert value(reg.to_l1l2(), w) == pytest.approx(expected, rel=1e-5)


def test_elastic_net_endpoints_are_l1_and_half_l2():
    assert value(R.ElasticNet(0.2, 1.0), W2) == pytest.approx(value(R.L1(0.2), W2), rel=1e-6)
    assert value(R.ElasticNet(0.2, 0.0), W2) == pytest.approx(value(R.L2(0.1), W2), rel=1e-6)


def test_group_lasso_default_groups_are_output_units():
    for w in (W2, W3, W4):
        norms = np.sqrt(np.square(w.reshape(-1, w.shape[-1])).sum(axis=0))
        assert value(R.GroupLasso(0.7), w) == pytest.approx(0.7 * norms.sum(), rel=1e-5)


def test_group_lasso_axis_groups_by_input_feature():
    norms = np.sqrt(np.square(W2).sum(axis=1))  # one group per input row
    assert value(R.GroupLasso(1.0, axis=1), W2) == pytest.approx(norms.sum(), rel=1e-5)
    assert value(R.GroupLasso(1.0, axis=[0, 1]), W2) == pytest.approx(np.linalg.norm(W2), rel=1e-5)


@pytest.mark.tf_only  # a tf.GradientTape
def test_group_lasso_gradient_at_a_dead_unit_is_zero_not_nan():
    import tensorflow as tf

    w = tf.Variable(np.array([[0.0, 3.0], [0.0, 4.0]], dtype="float32"))
    with tf.GradientTape() as tape:
        penalty = R.GroupLasso(1.0)(w)
    grad = tape.gradient(penalty, w).numpy()
    assert np.all(np.isfinite(grad))
    np.testing.assert_allclose(grad[:, 0], 0.0)
    np.testing.assert_allclose(grad[:, 1], [0.6, 0.8], rtol=1e-6)


def test_smoothness_matches_the_tutorial_class_on_conv1d_kernels():
    diffs = W3[1:] - W3[:-1]  # the tutorial's SmoothnessRegularizer
    assert value(R.Smoothness(0.01), W3) == pytest.approx(0.01 * np.square(diffs).sum(), rel=1e-5)
    assert value(R.Smoothness(1.0, axis=-1), W3) == pytest.approx(np.square(np.diff(W3, axis=-1)).sum(), rel=1e-5)


def test_smoothness_of_a_length_one_axis_is_zero():
    assert value(R.Smoothness(1.0), np.ones((1, 3), "float32")) == 0.0


def test_zero_strength_gives_zero_penalty():
    for reg in (R.ElasticNet(0.0), R.GroupLasso(0.0), R.Smoothness(0.0), R.L2(0.0)):
        assert value(reg, W2) == 0.0


# --- argument checks ---------------------------------------------------------------------------

BAD = [
    (lambda: R.ElasticNet(-0.1), "strength=-0.1"),
    (lambda: R.ElasticNet(float("nan")), "strength=nan"),
    (lambda: R.ElasticNet(float("inf")), "strength=inf"),
    (lambda: R.ElasticNet("0.1"), "strength='0.1'"),
    (lambda: R.ElasticNet(True), "strength=True"),
    (lambda: R.ElasticNet(0.1, l1_ratio=1.5), "l1_ratio=1.5"),
    (lambda: R.ElasticNet(0.1, l1_ratio=-0.01), "l1_ratio=-0.01"),
    (lambda: R.GroupLasso(-1), "strength=-1"),
    (lambda: R.GroupLasso(0.1, axis="rows"), "axis='rows'"),
    (lambda: R.GroupLasso(0.1, axis=[0, 0]), "axis=[0, 0]"),
    (lambda: R.Smoothness(float("-inf")), "strength=-inf"),
    (lambda: R.Smoothness(0.1, axis=[0, 1]), "axis=(0, 1)"),
    (lambda: Scheduled("l2", LinearWarmup(0)), "epochs=0.0"),
    (lambda: Step([3, 1], [0, 1, 2]), "boundaries=[3, 1]"),
    (lambda: Step([1], [0.5]), "values=[0.5]"),
]


@pytest.mark.parametrize("make, received", BAD, ids=[r for _, r in BAD])
def test_invalid_arguments_are_rejected_naming_what_was_received(make, received):
    with pytest.raises(ValueError, match="Received: " + __import__("re").escape(received)):
        make()


def test_axis_out_of_range_for_the_weight_is_rejected_at_call():
    with pytest.raises(ValueError, match=r"rank 2. Received: axis=5"):
        R.GroupLasso(0.1, axis=5)(W2)


# --- get() -------------------------------------------------------------------------------------


def test_get_accepts_none_names_dicts_and_callables():
    assert R.get(None) is None
    assert isinstance(R.get("l1"), R.L1)
    assert isinstance(R.get("Elastic-Net"), R.ElasticNet)
    assert isinstance(R.get("group_lasso"), R.GroupLasso)
    assert isinstance(R.get("smoothness"), R.Smoothness)
    assert isinstance(R.get("orthogonal"), R.OrthogonalRegularizer)
    reg = R.get({"name": "group_lasso", "strength": 0.5, "axis": 1})
    assert (reg.strength, reg.axis) == (0.5, 1)
    keras_dict = keras.regularizers.serialize(R.Smoothness(0.2, axis=1))
    assert R.get(keras_dict).get_config() == {"strength": 0.2, "axis": 1}

    def fn(w):
        return keras.ops.sum(w)

    assert R.get(fn) is fn


@pytest.mark.parametrize(
    "identifier, pattern",
    [
        ("l3", "Received: identifier='l3'"),
        ({"name": "l2", "strength": 1}, r"Unknown argument\(s\) \['strength'\]"),
        ({"l2": 0.1}, "needs 'class_name'"),
        ({"name": "elastic_net", "l1_ratio": 2.0}, "Received: l1_ratio=2.0"),
        (R.L2, "not a class"),
        (0.01, "Received: identifier=0.01"),
    ],
)
def test_get_rejects_what_it_cannot_interpret(identifier, pattern):
    with pytest.raises(ValueError, match=pattern):
        R.get(identifier)


# --- serialization harness: every regularizer goes through the same checks --------------------

ALL = {
    "L1": R.L1(0.01),
    "L2": R.L2(0.02),
    "L1L2": R.L1L2(l1=0.01, l2=0.03),
    "Orthogonal": R.OrthogonalRegularizer(0.05),
    "ElasticNet": R.ElasticNet(0.04, l1_ratio=0.3),
    "GroupLasso": R.GroupLasso(0.05),
    "GroupLassoRows": R.GroupLasso(0.05, axis=[1]),
    "Smoothness": R.Smoothness(0.06, axis=0),
    "Scheduled": Scheduled(R.ElasticNet(0.02, 0.5), Step([2], [0.5, 1.0])),
}


@pytest.mark.parametrize("name", list(ALL))
def test_config_round_trip_preserves_the_penalty(name):
    reg = ALL[name]
    config = keras.regularizers.serialize(reg)
    json.dumps(config)  # plain values only
    restored = keras.regularizers.deserialize(config)
    assert type(restored) is type(reg)
    for w in (W2, W4.reshape(-1, 4)):  # rank 2: OrthogonalRegularizer takes nothing else
        assert value(restored, w) == pytest.approx(value(reg, w), rel=1e-6)


def _model_with_every_regularizer():
    inputs = keras.Input((6,))
    x = inputs
    for i, reg in enumerate(ALL.values()):
        x = keras.layers.Dense(4 if i < len(ALL) - 1 else 3, kernel_regularizer=reg, name=f"d{i}")(x)
    return keras.Model(inputs, x)


@pytest.mark.slow
def test_saved_model_loads_in_a_fresh_process_with_identical_penalties(tmp_path):
    model = _model_with_every_regularizer()
    path = tmp_path / "every_regularizer.keras"
    model.save(path)
    expected = {v.path: value(v.regularizer, v.numpy()) for v in model.trainable_weights if v.regularizer}
    script = f"""
import json, keras, reglab.kit.regularizers, reglab.kit.schedules
model = keras.models.load_model({str(path)!r}, safe_mode=True)
print(json.dumps({{v.path: float(v.regularizer(v)) for v in model.trainable_weights if v.regularizer}}))
"""
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    loaded = json.loads(out.stdout.strip().splitlines()[-1])
    assert set(loaded) == set(expected) and len(expected) == len(ALL)
    for key, penalty in expected.items():
        assert math.isclose(loaded[key], penalty, rel_tol=1e-6), key


def test_documented_sklearn_elastic_net_conversion_holds_at_sklearns_optimum():
    """docs/conventions.md: sklearn ElasticNet(alpha, l1_ratio) on MSE == reglab ElasticNet(2·alpha, l1_ratio).

    Checked through optimality: sklearn's solution must satisfy the (sub)gradient conditions of
    reglab's objective, mean squared error + ElasticNet(2·alpha, l1_ratio) penalty.
    """
    from sklearn.datasets import load_diabetes
    from sklearn.linear_model import ElasticNet as SkElasticNet

    x, y = load_diabetes(return_X_y=True)
    x = (x - x.mean(0)) / x.std(0)
    alpha, ratio = 3.0, 0.7  # strong enough that some coefficients are exactly zero
    sk = SkElasticNet(alpha=alpha, l1_ratio=ratio, tol=1e-12, max_iter=100_000).fit(x, y)
    w, b = sk.coef_, sk.intercept_
    penalty = R.ElasticNet(2 * alpha, ratio).to_l1l2()
    l1, l2 = penalty.l1, penalty.l2
    mse_grad = -2 / len(y) * x.T @ (y - x @ w - b)
    nonzero = w != 0
    assert 0 < nonzero.sum() < len(w)  # both kinds of coefficient are checked
    np.testing.assert_allclose(mse_grad[nonzero] + l1 * np.sign(w[nonzero]) + 2 * l2 * w[nonzero], 0, atol=1e-6)
    assert np.all(np.abs(mse_grad[~nonzero]) <= l1 + 1e-9)
    # and the wrong conversion (forgetting the ½ in sklearn's loss) fails the same check
    wrong = R.ElasticNet(alpha, ratio).to_l1l2()
    residual = mse_grad[nonzero] + wrong.l1 * np.sign(w[nonzero]) + 2 * wrong.l2 * w[nonzero]
    assert np.abs(residual).max() > 1e-2
