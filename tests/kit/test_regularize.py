"""regularize(): penalties attach to built models, weights survive, gradients change."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import mlp, weights_equal

import reglab
from reglab.kit.regularizers import L1, L2, ElasticNet, GroupLasso

pytestmark = pytest.mark.both_backends  # the Keras-level kit works on either backend


def grads(model, x, y):
    """Gradient of (mean cross-entropy + every penalty), as in a training step."""
    with tf.GradientTape() as tape:
        pred = model(x, training=False)
        loss = keras.ops.mean(keras.losses.sparse_categorical_crossentropy(y, pred))
        loss = loss + reglab.regularization_loss(model)
    return [g.numpy() for g in tape.gradient(loss, model.trainable_weights)]


def conv1d_model():
    return keras.Sequential(
        [
            keras.Input((8, 8)),
            keras.layers.Conv1D(6, 3, activation="relu"),
            keras.layers.MaxPooling1D(2),
            keras.layers.Flatten(),
            keras.layers.Dense(10, activation="softmax"),
        ]
    )


def conv2d_functional():
    inputs = keras.Input((8, 8, 1))
    x = keras.layers.Conv2D(4, 3, activation="relu")(inputs)
    x = keras.layers.MaxPooling2D(2)(x)
    x = keras.layers.Flatten()(x)
    outputs = keras.layers.Dense(10, activation="softmax")(x)
    return keras.Model(inputs, outputs)


def dense_functional():
    inputs = keras.Input((64,))
    x = keras.layers.Dense(32, activation="relu")(inputs)
    outputs = keras.layers.Dense(10, activation="softmax")(x)
    return keras.Model(inputs, outputs)


CASES = {
    "dense-sequential": (lambda: mlp(), lambda x: x, keras.layers.Dense),
    "dense-functional": (dense_functional, lambda x: x, keras.layers.Dense),
    "conv1d-sequential": (conv1d_model, lambda x: x.reshape(-1, 8, 8), keras.layers.Conv1D),
    "conv2d-functional": (conv2d_functional, lambda x: x.reshape(-1, 8, 8, 1), keras.layers.Conv2D),
}


def test_the_keras_trap_setting_the_attribute_on_a_built_model_does_nothing():
    model = mlp()
    model.layers[0].kernel_regularizer = L2(0.1)
    assert model.losses == []  # silently ignored: the reason regularize() exists


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.tf_only  # gradients by tf.GradientTape
def test_penalty_is_live_and_changes_the_gradient_by_exactly_its_derivative(case, digits):
    build, shape, layer_type = CASES[case]
    x, y = digits
    x = shape(x[:64])
    y = y[:64]
    base = build()
    lam = 0.05
    model = reglab.regularize(base, kernel=L2(lam), layers=layer_type)

    assert weights_equal(model.get_weights(), base.get_weights())
    targets = [l for l in model.layers if isinstance(l, layer_type)]
    assert targets and len(model.losses) == len(targets)
    expected = sum(lam * np.square(l.kernel.numpy()).sum() for l in targets)
    assert float(reglab.regularization_loss(model)) == pytest.approx(expected, rel=1e-5)
    assert float(reglab.regularization_loss(base)) == 0.0

    with_penalty, without = grads(model, x, y), grads(base, x, y)
    for variable, g1, g0 in zip(model.trainable_weights, with_penalty, without):
        is_target = any(variable is l.kernel for l in targets)
        extra = 2 * lam * variable.numpy() if is_target else 0.0
        np.testing.assert_allclose(g1 - g0, extra, atol=1e-5, err_msg=variable.path)
        if is_target:
            assert np.abs(g1 - g0).max() > 1e-3  # the penalty really moved the gradient


def test_pretrained_weights_survive_and_predictions_are_unchanged(digits):
    x, y = digits
    pretrained = mlp(hidden=(32, 16))
    pretrained.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    pretrained.fit(x, y, epochs=8, verbose=0)
    before = pretrained.predict(x, verbose=0)
    acc_before = pretrained.evaluate(x, y, verbose=0)[1]
    assert acc_before > 0.85  # it really learned something worth keeping
    kept = [w.copy() for w in pretrained.get_weights()]

    model = reglab.regularize(pretrained, kernel=ElasticNet(1e-3, 0.5), bias=L1(1e-4), dropout=0.3)
    assert weights_equal(model.get_weights(), pretrained.get_weights())
    np.testing.assert_array_equal(model.predict(x, verbose=0), before)  # Dropout is inactive at inference
    assert [type(l).__name__ for l in model.layers] == ["Dense", "Dropout", "Dense", "Dropout", "Dense"]
    # 3 kernels + 3 biases penalized; Dropout only after the two hidden layers
    assert len(model.losses) == 6

    model.compile(optimizer=keras.optimizers.Adam(1e-4), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    ledger = reglab.LossLedger()
    model.fit(x, y, epochs=1, verbose=0, callbacks=[ledger])
    assert model.evaluate(x, y, verbose=0)[1] > acc_before - 0.05  # fine-tuning starts from the trained weights
    assert ledger.history.train_penalty.iloc[0] > 0
    assert weights_equal(pretrained.get_weights(), kept)  # the original is untouched by fine-tuning the copy
    assert pretrained.losses == []


def test_functional_dropout_insertion_and_per_layer_dict(digits):
    x, _ = digits
    base = dense_functional()
    names = [l.name for l in base.layers if isinstance(l, keras.layers.Dense)]
    model = reglab.regularize(base, kernel={names[0]: L2(0.1), names[1]: L1(0.01)}, dropout={names[0]: 0.5})
    kinds = {l.name: type(l.kernel.regularizer).__name__ for l in model.layers if isinstance(l, keras.layers.Dense)}
    assert kinds == {names[0]: "L2", names[1]: "L1"}
    assert sum(isinstance(l, keras.layers.Dropout) for l in model.layers) == 1
    np.testing.assert_array_equal(model.predict(x[:20], verbose=0), base.predict(x[:20], verbose=0))
    drop = keras.ops.convert_to_numpy(model(x[:256], training=True))
    assert not np.allclose(drop, keras.ops.convert_to_numpy(base(x[:256])))  # and active in training


def test_selection_by_name_pattern_index_type_and_predicate():
    base = keras.Sequential(
        [
            keras.Input((8,)),
            keras.layers.Dense(4, name="enc_1"),
            keras.layers.Dense(4, name="enc_2"),
            keras.layers.Dense(2, name="head"),
        ]
    )

    def regularized(**kwargs):
        model = reglab.regularize(base, kernel=L2(0.1), **kwargs)
        return sorted(l.name for l in model.layers if l.kernel.regularizer is not None)

    assert regularized(layers="enc_*") == ["enc_1", "enc_2"]
    assert regularized(layers=-1) == ["head"]
    assert regularized(layers=[0, "head"]) == ["enc_1", "head"]
    assert regularized(layers=lambda l: l.units == 4) == ["enc_1", "enc_2"]
    assert regularized(layers=keras.layers.Dense) == ["enc_1", "enc_2", "head"]
    assert regularized() == ["enc_1", "enc_2", "head"]


def test_nested_pretrained_base_inside_a_functional_model(digits):
    x, _ = digits
    base = keras.Sequential([keras.Input((64,)), keras.layers.Dense(16, activation="relu", name="feat")], name="base")
    inputs = keras.Input((64,))
    outputs = keras.layers.Dense(10, activation="softmax", name="head")(base(inputs))
    model = keras.Model(inputs, outputs)
    new = reglab.regularize(model, kernel=GroupLasso(0.01), layers="feat", activity=L1(1e-5))
    assert weights_equal(new.get_weights(), model.get_weights())
    names = [name for name, _ in reglab.penalty_terms(new)]
    assert "base/feat/kernel" in names
    new(x[:8])
    assert any(name.endswith("/activity") for name, _ in reglab.penalty_terms(new))
    np.testing.assert_allclose(new.predict(x[:32], verbose=0), model.predict(x[:32], verbose=0), rtol=1e-6)


class Subclassed(keras.Model):
    def __init__(self):
        super().__init__()
        self.dense = keras.layers.Dense(2)

    def call(self, x):
        return self.dense(x)


@pytest.mark.parametrize(
    "make, kwargs, pattern",
    [
        (lambda: "model", {"kernel": "l2"}, "Expected a Keras model"),
        (lambda: Subclassed(), {"kernel": "l2"}, "subclassed"),
        (lambda: keras.Sequential([keras.layers.Dense(2)]), {"kernel": "l2"}, "not built"),
        (mlp, {}, "Nothing to attach"),
        (mlp, {"kernel": "l2", "layers": "nope*"}, "No layer matches 'nope\\*'"),
        (mlp, {"kernel": "l2", "layers": 7}, "Received: layers=7"),
        (mlp, {"kernel": "l2", "layers": 2.5}, "Received: layers=2.5"),
        (mlp, {"kernel": {"ghost": "l2"}}, "No layer named 'ghost'"),
        (mlp, {"kernel": "l7"}, "Received: identifier='l7'"),
        (mlp, {"kernel": L2(0.1), "dropout": 1.0}, "Received: dropout=1.0"),
        (mlp, {"kernel": L2(0.1), "dropout": -0.1}, "Received: dropout=-0.1"),
        (mlp, {"dropout": 0.5, "layers": -1}, "No selected hidden layer"),
        (
            conv1d_model,
            {"kernel": "l2", "layers": keras.layers.Flatten},
            "None of the selected layers has a trainable kernel",
        ),
    ],
)
def test_bad_input_is_refused_with_the_argument_named(make, kwargs, pattern):
    with pytest.raises(ValueError, match=pattern):
        reglab.regularize(make(), **kwargs)


def test_flatten_in_a_per_layer_dict_is_refused():
    model = conv1d_model()
    flatten = next(l.name for l in model.layers if isinstance(l, keras.layers.Flatten))
    with pytest.raises(ValueError, match=f"Layer '{flatten}' \\(Flatten\\) has no trainable kernel"):
        reglab.regularize(model, kernel={flatten: "l2"})


def test_the_public_name_is_the_function_whatever_was_imported_first():
    import importlib

    for module in ("reglab.kit.attach", "reglab.search.points", "reglab.sweep"):
        importlib.import_module(module)
    assert reglab.regularize.__module__ == "reglab.kit.attach" and callable(reglab.regularize)


@pytest.mark.parametrize(
    "point", [{"l2": 1e-3}, {"l1": 1e-3, "l2": 1e-2}, {"elastic_net": 1e-3, "l1_ratio": 0.3}, {"group_lasso": 1e-2}]
)
def test_a_builders_fresh_model_gets_its_penalties_in_place_as_regularize_would_attach_them(point):
    """`points.apply(..., fresh=True)` (a builder's model, made for one point) attaches penalties to the model's
    own layers instead of rebuilding it: the same weights, penalty values, variable paths and config (but
    the Input's name, which a rebuild numbers anew). Where the point inserts layers (dropout) it rebuilds."""
    from reglab.models import MLP
    from reglab.search import plan, points

    build = MLP(hidden=[16, 8]).bind(64, 10)
    x = np.random.default_rng(0).standard_normal((5, 64)).astype("float32")
    made = []
    for fresh in (False, True):
        keras.backend.clear_session(free_memory=False)
        plan.set_global_seed(3)
        plain = build.plain()
        model = points.apply(plain, point, "hidden", {}, fresh=fresh)
        assert (model is plain) == fresh
        config = model.get_config()
        config["layers"][0]["config"]["name"] = "input"
        made.append((config, model.get_weights(), [float(v) for v in model.losses], [v.path for v in model.variables]))
    (config, weights, losses, paths), (config_in_place, weights_in_place, losses_in_place, paths_in_place) = made
    assert config_in_place == config and paths_in_place == paths and losses_in_place == losses and len(losses) == 2
    assert all(np.array_equal(a, b) for a, b in zip(weights, weights_in_place))
    assert build(point)(x).shape == (5, 10)
    plain = build.plain()
    assert points.apply(plain, {**point, "dropout": 0.2}, "hidden", {}, fresh=True) is not plain
