"""Bad input is refused before any work: a ValueError naming the argument, no model built, nothing written."""

import keras
import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_breast_cancer, load_diabetes

import reglab

X, Y = load_breast_cancer(return_X_y=True)
XR, YR = load_diabetes(return_X_y=True)


class CountingBuilder:
    """A builder that counts how often it was asked to build."""

    def __init__(self):
        self.calls = 0

    def __call__(self, point):
        self.calls += 1
        return keras.Sequential(
            [keras.Input((30,)), keras.layers.Dense(4), keras.layers.Dense(2, activation="softmax")]
        )


def plain():
    return keras.Sequential([keras.Input((30,)), keras.layers.Dense(4, name="h"), keras.layers.Dense(2, name="o")])


GOOD = dict(grid={"l2": [0.0, 1e-3]}, cv=3, epochs=1)

# (what, keyword overrides for Sweep(...), pattern the error must match)
INIT_CASES = [
    ("model not callable", dict(model="nope"), "Received: model='nope'"),
    ("grid and random", dict(random={"l2": {"log_uniform": [1e-4, 1]}}), "exactly one of"),
    ("no search", dict(grid=None), "Received: none of them"),
    ("empty grid", dict(grid={}), "Received: grid={}"),
    ("empty grid values", dict(grid={"l2": []}), r"Received: grid\['l2'\]=\[\]"),
    ("NaN in grid", dict(grid={"l2": [float("nan")]}), "Received: l2=nan"),
    ("list in grid", dict(grid={"l2": [[0.1]]}), r"Received: l2=\[0.1\]"),
    ("negative lambda", dict(model=plain(), grid={"l2": [-1.0]}), "Received: l2=-1.0"),
    ("dropout of 1", dict(model=plain(), grid={"dropout": [1.0]}), "Received: dropout=1.0"),
    ("l1_ratio > 1", dict(model=plain(), grid={"elastic_net": [0.1], "l1_ratio": [1.5]}), "Received: l1_ratio=1.5"),
    ("unknown key", dict(model=plain(), grid={"l3": [0.1]}), "Received: l3=0.1"),
    ("unknown group", dict(model=plain(), grid={"l2.late": [0.1]}), "Received: l2.late=0.1"),
    ("unknown penalty", dict(model=plain(), grid={"penalty": ["l9"], "lambda": [0.1]}), "Received: penalty='l9'"),
    ("string lambda", dict(model=plain(), grid={"l2": ["0.1"]}), "Received: l2='0.1'"),
    ("one fold", dict(cv=1), "Received: cv=1"),
    ("hold-out fraction too big", dict(cv=1.5), "Received: cv=1.5"),
    ("folds as text", dict(cv="5"), "Received: cv='5'"),
    ("zero repeats", dict(repeats=0), "Received: repeats=0"),
    ("test_size of 1", dict(test_size=1.0), "Received: test_size=1.0"),
    ("zero epochs", dict(epochs=0), "Received: epochs=0"),
    ("negative batch", dict(batch_size=-1), "Received: batch_size=-1"),
    ("zero learning rate", dict(learning_rate=0), "Received: learning_rate=0"),
    ("unknown optimizer", dict(optimizer="adamm"), "Received: optimizer='adamm'"),
    ("unknown loss", dict(loss="not_a_loss"), "Received: loss='not_a_loss'"),
    ("negative seed", dict(seed=-1), "Received: seed=-1"),
    ("log-uniform from 0", dict(grid=None, random={"l2": {"log_uniform": [0, 1]}}), "Received: low=0"),
    ("zero trials", dict(grid=None, random={"l2": [0.1]}, n_trials=0), "Received: n_trials=0"),
    ("select not validation", dict(select="loss"), "Received: select='loss'"),
    ("stratify word", dict(stratify="yes"), "Received: stratify='yes'"),
    ("reserved key", dict(grid={"epoch": [1.0]}), "Received: epoch="),
    ("unbuilt model", dict(model=keras.Sequential([keras.layers.Dense(2)])), "not built"),
    ("empty stages", dict(grid=None, stages=[]), "Received: stages=\\[\\]"),
    ("loss weights as text", dict(loss_weights="heavy"), "Received: loss_weights='heavy'"),
    ("negative loss weight", dict(loss_weights={"a": -1}), "Received: loss_weights=-1"),
    ("the stacked engine, now gone", dict(engine="stacked"), "population engine.*Received: engine='stacked'"),
    (
        "refining a dimension without positive values",
        dict(grid={"l2": [0.0]}, refine=1),
        r"has none. Received: l2=\[0.0\]",
    ),
]


@pytest.mark.parametrize("what, overrides, pattern", INIT_CASES, ids=[c[0] for c in INIT_CASES])
def test_bad_sweep_settings_are_refused_at_construction(what, overrides, pattern):
    builder = CountingBuilder()
    kwargs = {**GOOD, **overrides}
    model = kwargs.pop("model", builder)
    kwargs = {k: v for k, v in kwargs.items() if v is not None}
    with pytest.raises(ValueError, match=pattern):
        reglab.Sweep(model, **kwargs)
    assert builder.calls == 0


frame = pd.DataFrame(X[:, :29], columns=[f"f{i}" for i in range(29)]).assign(kind=["a"] * len(X))
RUN_CASES = [
    (
        "NaN feature",
        lambda: (np.where(np.arange(X.size).reshape(X.shape) == 7, np.nan, X), Y),
        {},
        "Received: x with 1 NaN",
    ),
    ("inf feature", lambda: (np.where(np.arange(X.size).reshape(X.shape) == 7, np.inf, X), Y), {}, "and 1 inf"),
    ("rank-1 features", lambda: (X[:, 0], Y), {}, r"Received: x.shape=\(569,\)"),
    ("no samples", lambda: (X[:0], Y[:0]), {}, r"Received: x.shape=\(0, 30\)"),
    ("text features", lambda: (X.astype(str), Y), {}, "Received: x of dtype <U"),
    ("non-numeric column", lambda: (frame, Y), {}, r"\['kind'\]"),
    ("length mismatch", lambda: (X, Y[:-1]), {}, "Received: len\\(x\\)=569, len\\(y\\)=568"),
    ("two-column target", lambda: (X, np.stack([Y, Y], 1)), {}, r"Received: y.shape=\(569, 2\)"),
    ("fractional labels", lambda: (X, Y * 0.5), {"task": "classification"}, "look like a regression target"),
    ("one class", lambda: (X, np.zeros_like(Y)), {}, "single class"),
    ("class smaller than k", lambda: (X[:40], np.r_[np.zeros(38, int), np.ones(2, int)]), {}, "Class 1 has 2 samples"),
    (
        "more folds than samples",
        lambda: (X[:6], np.r_[np.zeros(3, int), np.ones(3, int)]),
        {"cv": 10},
        "More folds than samples",
    ),
    (
        "NaN regression target",
        lambda: (X, np.where(np.arange(len(Y)) == 3, np.nan, Y.astype(float))),
        {},
        "Received: y with 1 NaN",
    ),
    ("stratified regression", lambda: (X, Y.astype(float) + 0.5), {"stratify": True}, "Received: stratify=True"),
    ("unknown task", lambda: (X, Y), {"task": "ranking"}, "Received: task='ranking'"),
    ("inputs of different lengths", lambda: ({"a": X, "b": X[:-1]}, Y), {}, r"Received: lengths \{"),
    ("input names not strings", lambda: ({0: X}, Y), {}, "dict with string keys"),
    (
        "NaN in one of two inputs",
        lambda: ({"a": X, "b": np.where(np.arange(X.size).reshape(X.shape) == 7, np.nan, X)}, Y),
        {},
        r"Received: x\['b'\] with 1 NaN",
    ),
    ("several targets without their losses", lambda: (X, {"a": Y, "b": X[:, 0]}), {}, "Received: loss='auto'"),
    ("one target of two too short", lambda: (X, {"a": Y, "b": Y[:-1]}), {}, r"len\(y\['b'\]\)=568"),
    ("several inputs standardized", lambda: ([X, X], Y), {"standardize": True}, "Received: standardize=True"),
]


@pytest.mark.parametrize("what, make, options, pattern", RUN_CASES, ids=[c[0] for c in RUN_CASES])
def test_bad_data_is_refused_before_any_model_or_file(what, make, options, pattern, tmp_path):
    builder = CountingBuilder()
    options = dict(options)
    sweep_kwargs = {**GOOD, **{k: options.pop(k) for k in ("cv", "stratify", "standardize") if k in options}}
    sweep = reglab.Sweep(builder, **sweep_kwargs)
    x, y = make()
    run_dir = tmp_path / "run"
    with pytest.raises(ValueError, match=pattern):
        sweep.run(x, y, run_dir=run_dir, **options)
    assert builder.calls == 0
    assert not run_dir.exists()


@pytest.mark.parametrize(
    "x, shape",
    [(X.reshape(-1, 30, 1), r"\(569, 30, 1\)"), (X[:, :29], r"\(569, 29\)")],
    ids=["another rank", "another width"],
)
def test_features_that_do_not_fit_the_model_input_are_refused_before_anything_is_written(x, shape, tmp_path):
    with pytest.raises(
        ValueError, match=rf"do not fit the model's input .* of shape \(samples, 30\). Received: x.shape={shape}"
    ):
        reglab.Sweep(CountingBuilder(), **GOOD).run(x, Y, run_dir=tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_model_output_that_cannot_fit_the_task_is_refused_before_training(tmp_path):
    def three_outputs(point):
        return keras.Sequential([keras.Input((30,)), keras.layers.Dense(3, activation="softmax")])

    with pytest.raises(ValueError, match=r"output width 3 fits neither 2 classes"):
        reglab.Sweep(three_outputs, **GOOD).run(X, Y, run_dir=tmp_path / "run")
    assert not (tmp_path / "run").exists()


def _logits(n_in, n_out):
    def build(point):
        return keras.Sequential(
            [
                keras.Input((n_in,)),
                keras.layers.Dense(8, activation="relu", kernel_regularizer=keras.regularizers.L2(point["l2"])),
                keras.layers.Dense(n_out),  # no activation: logits, as Keras's tutorials write with from_logits=True
            ]
        )

    return build


@pytest.mark.parametrize("task", ["classes", "binary"])
def test_a_logits_output_gets_from_logits_and_trains_as_the_user_would_compile_it(task, digits, cancer):
    x, y = digits if task == "classes" else (cancer[0], cancer[1].astype("int64"))  # class labels, not a target
    build = _logits(x.shape[1], 10 if task == "classes" else 1)
    settings = dict(grid={"l2": [0.0, 1e-3]}, cv=2, epochs=6, learning_rate=1e-2, test_size=0.2, seed=0)
    auto = reglab.Sweep(build, **settings).run(x, y)
    loss = keras.losses.SparseCategoricalCrossentropy if task == "classes" else keras.losses.BinaryCrossentropy
    compiled = reglab.Sweep(build, **settings, loss=loss(from_logits=True)).run(x, y)  # as a user compiles it
    # the same training; for one logit, accuracy counts a logit above 0 (a probability above 0.5) as the class
    columns = ["train_loss", "val_loss"] + (["val_accuracy"] if task == "classes" else [])
    pd.testing.assert_frame_equal(auto.epochs[columns], compiled.epochs[columns])
    assert auto.test["loss"] == compiled.test["loss"]
    assert auto.summary["rank"].notna().all()  # every point learns: below the constant predictor's loss
    _, rest, test, _ = reglab.Sweep(build, **settings).split(x, y)
    scores = auto.model.predict(x[test], verbose=0)
    predicted = scores.argmax(-1) if task == "classes" else (scores[:, 0] > 0.0)
    assert auto.test["accuracy"] == pytest.approx(float(np.mean(predicted == y[test])), abs=1e-6)


def test_logits_are_told_from_probabilities_by_the_output_layer_or_else_by_the_outputs(digits):
    from reglab import data as data_module
    from reglab.engine.training import emits_logits

    x, y = digits
    dataset = data_module.prepare(x, y)

    class Net(keras.Model):
        def __init__(self, activation):
            super().__init__()
            self.hidden, self.out = keras.layers.Dense(8, activation="relu"), keras.layers.Dense(10)
            self.activation = activation

        def call(self, inputs):
            return keras.activations.get(self.activation)(self.out(self.hidden(inputs)))

    assert emits_logits(_logits(64, 10)({"l2": 0.0}), dataset)
    assert not emits_logits(
        keras.Sequential([keras.Input((64,)), keras.layers.Dense(10, activation="softmax")]), dataset
    )
    assert not emits_logits(
        keras.Sequential([keras.Input((64,)), keras.layers.Dense(10), keras.layers.Softmax()]), dataset
    )
    assert emits_logits(Net("linear"), dataset) and not emits_logits(Net("softmax"), dataset)
