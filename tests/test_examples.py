"""Every documented example runs: the README's code blocks, the tutorials' snippets, docs/examples."""

import importlib.util
import json
import os
import re
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

import reglab

ROOT = Path(__file__).resolve().parents[1]


def python_blocks(markdown: Path) -> list[str]:
    return re.findall(r"```python\n(.*?)```", markdown.read_text(), flags=re.S)


# The sweep's block (`import keras, reglab` first: a TensorFlow process) runs as written in a fresh process below.
IN_PROCESS = [
    n for n, code in enumerate(python_blocks(ROOT / "README.md")) if not code.startswith("import keras, reglab")
]


@pytest.mark.parametrize("block", IN_PROCESS)
def test_readme_python_blocks_run(block, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # run directories land in a scratch folder
    code = python_blocks(ROOT / "README.md")[block]
    namespace = {}
    exec(compile(code, f"README.md block {block}", "exec"), namespace)
    out = capsys.readouterr().out
    if "ledger" in namespace:  # the quickstart: the ledger recorded real, consistent numbers
        table = namespace["ledger"].history
        assert len(table) == 10 and table.val_accuracy.iloc[-1] > 0.9
        assert (table.train_penalty > 0).all()
        np.testing.assert_allclose(table.train_loss + table.train_penalty, table.train_total, rtol=1e-5)
        assert "train_penalty" in out
    if "tuned" in namespace:  # an Optuna study: 12 trials, 6 at once, halved, the sampler refilling freed slots
        tuned = namespace["tuned"]
        assert len(tuned.summary) == 12 and (tuned.summary.pruned > 0).any() and tuned.best is not None
        assert tuned.timing["populations"] == 1 and "val_loss_mean" in out  # every trial joined the first population
    if "last" in namespace:  # seed 004's two gradients: the penalty's share rising with λ to the balance
        shares = namespace["last"].groupby("l2")[[c for c in namespace["last"] if c.startswith("grad_share:")]].mean()
        assert len(shares.columns) == 2 and (shares.diff().iloc[1:] > 0).all().all(), shares
        assert (shares.loc[1.0] > 0.4).all() and (shares.loc[1e-4] < 0.05).all()
        assert namespace["result"].diagnosis["recommendation"].iloc[-1] == "decrease λ"
    if "streamed" in namespace:  # data on disk: three points, the population engine, a test score
        streamed = namespace["streamed"]
        assert len(streamed.summary) == 3 and streamed.timing["populations"] >= 1
        assert streamed.test["accuracy"] > 0.8
    assert out


def _load(path: Path):
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
@pytest.mark.tf_only  # the example is a tf.GradientTape loop
def test_custom_loop_example_adds_the_penalty_and_follows_the_schedule():
    results = _load(ROOT / "docs/examples/custom_loop.py").main(epochs=5)
    plain, regularized = results[0.0], results[0.01]
    assert all(r["train_penalty"] == 0 for r in plain["log"])
    penalties = [r["train_penalty"] for r in regularized["log"]]
    assert penalties[0] == 0.0 and penalties[1] > 0  # LinearWarmup: off in epoch 1, on afterwards
    assert regularized["hidden_norm"] < 0.8 * plain["hidden_norm"]  # the penalty really shrank the weights
    assert regularized["val_accuracy"] > 0.85


# --- the tutorials' own snippets, run under reglab on real data --------------------------------
# Custom regularizers exactly as the custom-regularization tutorial writes them.


class L1CustomRegularizer(keras.regularizers.Regularizer):
    def __init__(self, l1=0.01):
        self.l1 = l1

    def __call__(self, x):
        return self.l1 * tf.reduce_sum(tf.abs(x))

    def get_config(self):
        return {"l1": self.l1}


class L1L2CombinedRegularizer(keras.regularizers.Regularizer):
    def __init__(self, l1=0.01, l2=0.01):
        self.l1 = l1
        self.l2 = l2

    def __call__(self, x):
        l1_penalty = self.l1 * tf.reduce_sum(tf.abs(x))
        l2_penalty = self.l2 * tf.reduce_sum(tf.square(x))
        return l1_penalty + l2_penalty

    def get_config(self):
        return {"l1": self.l1, "l2": self.l2}


class SmoothnessRegularizer(keras.regularizers.Regularizer):
    def __init__(self, strength=0.01):
        self.strength = strength

    def __call__(self, x):
        diffs = x[1:, :, :] - x[:-1, :, :]
        penalty = tf.reduce_sum(tf.square(diffs))
        return self.strength * penalty

    def get_config(self):
        return {"strength": self.strength}


@pytest.mark.tf_only  # the tutorials' regularizers call tf ops
def test_tutorial_custom_regularizers_agree_with_reglab_and_train(digits):
    x, y = digits
    w = np.random.default_rng(0).normal(size=(5, 8, 4)).astype("float32")
    assert float(L1CustomRegularizer(0.01)(w)) == pytest.approx(float(reglab.kit.regularizers.L1(0.01)(w)), rel=1e-5)
    assert float(L1L2CombinedRegularizer(0.01, 0.02)(w)) == pytest.approx(
        float(reglab.kit.regularizers.L1L2(0.01, 0.02)(w)), rel=1e-5
    )
    assert float(SmoothnessRegularizer(0.01)(w)) == pytest.approx(
        float(reglab.kit.regularizers.Smoothness(0.01)(w)), rel=1e-5
    )

    # The tutorial's model: Dense with L1L2Combined, then (our fix) the smoothness penalty on a Conv1D
    # kernel, where its (kernel_size, in, out) indexing makes sense.
    model = keras.Sequential(
        [
            keras.Input((8, 8)),
            keras.layers.Conv1D(8, 3, activation="relu", kernel_regularizer=SmoothnessRegularizer(strength=0.01)),
            keras.layers.Flatten(),
            keras.layers.Dense(32, activation="relu", kernel_regularizer=L1L2CombinedRegularizer(l1=0.001, l2=0.001)),
            keras.layers.Dense(10, activation="softmax", kernel_regularizer=L1CustomRegularizer(1e-4)),
        ]
    )
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    ledger = reglab.LossLedger()
    history = model.fit(x.reshape(-1, 8, 8), y, epochs=3, validation_split=0.2, verbose=0, callbacks=[ledger])
    table = ledger.history
    assert len([c for c in table.columns if c.startswith("penalty:")]) == 3
    np.testing.assert_allclose(table.train_loss + table.train_penalty, history.history["loss"], rtol=1e-5)
    assert table.val_accuracy.iloc[-1] > 0.7


def test_tutorial_dense_conv_and_bias_snippets_under_regularize(digits, digits_images):
    x, y = digits
    xi, _ = digits_images
    from tensorflow.keras import layers, regularizers

    # "L2 on the dense layer" and "bias regularization" snippets, built plain and regularized by reglab
    plain = keras.Sequential(
        [layers.Input(shape=(64,)), layers.Dense(128, activation="relu"), layers.Dense(10, activation="softmax")]
    )
    as_tutorial = keras.Sequential(
        [
            layers.Input(shape=(64,)),
            layers.Dense(
                128, activation="relu", kernel_regularizer=regularizers.l2(0.01), bias_regularizer=regularizers.l2(0.01)
            ),
            layers.Dense(10, activation="softmax", bias_regularizer=regularizers.l2(0.01)),
        ]
    )
    as_tutorial.set_weights(plain.get_weights())
    ours = reglab.regularize(plain, kernel={plain.layers[0].name: regularizers.l2(0.01)}, bias=regularizers.l2(0.01))
    assert float(reglab.regularization_loss(ours)) == pytest.approx(
        float(reglab.regularization_loss(as_tutorial)), rel=1e-6
    )

    # the CNN snippet (Conv2D + MaxPool2D + L2 on both convolutions), on 8x8 digit images
    cnn = keras.Sequential(
        [
            layers.Input(shape=(8, 8, 1)),
            layers.Conv2D(32, kernel_size=(3, 3), activation="relu", kernel_regularizer=regularizers.l2(0.01)),
            layers.MaxPool2D(pool_size=(2, 2)),
            layers.Conv2D(64, kernel_size=(2, 2), activation="relu", kernel_regularizer=regularizers.l2(0.01)),
            layers.Flatten(),
            layers.Dense(10, activation="softmax"),
        ]
    )
    cnn.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    ledger = reglab.LossLedger()
    cnn.fit(xi, y, epochs=3, validation_split=0.2, verbose=0, callbacks=[ledger])
    table = ledger.history
    assert (table[[c for c in table.columns if c.startswith("penalty:")]] > 0).all().all()
    assert table.val_accuracy.iloc[-1] > 0.7


def test_dropout_snippet_via_regularize_matches_the_hand_written_model(digits):
    x, _ = digits
    from tensorflow.keras.layers import Dense, Dropout
    from tensorflow.keras.models import Sequential
    from tensorflow.keras.regularizers import l2

    hand = Sequential(
        [
            keras.Input((64,)),
            Dense(64, activation="relu", kernel_regularizer=l2(0.01)),
            Dropout(0.5),
            Dense(32, activation="relu", kernel_regularizer=l2(0.01)),
            Dropout(0.5),
            Dense(10, activation="softmax"),
        ]
    )
    plain = Sequential(
        [
            keras.Input((64,)),
            Dense(64, activation="relu"),
            Dense(32, activation="relu"),
            Dense(10, activation="softmax"),
        ]
    )
    ours = reglab.regularize(plain, kernel=l2(0.01), layers=[0, 1], dropout=0.5)
    assert [type(l).__name__ for l in ours.layers] == [type(l).__name__ for l in hand.layers]
    assert [l.rate for l in ours.layers if isinstance(l, Dropout)] == [0.5, 0.5]
    hand.set_weights(ours.get_weights())
    assert float(reglab.regularization_loss(ours)) == pytest.approx(float(reglab.regularization_loss(hand)), rel=1e-6)


@pytest.mark.slow
def test_the_readme_sweep_as_written_in_a_fresh_tensorflow_process_trains_in_a_jax_worker(tmp_path):
    """`import keras, reglab` first: Keras's default backend, TensorFlow — the populations go to a worker."""
    import subprocess
    import sys

    code = python_blocks(ROOT / "README.md")[1]
    assert code.startswith("import keras, reglab")
    env = {k: v for k, v in os.environ.items() if k != "KERAS_BACKEND"}
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "'tensorflow' backend; the population engine trains in a JAX worker process" in done.stderr
    assert "chosen:" in done.stdout  # four points, a choice, a test score, a run directory
    summary = json.loads((tmp_path / "runs/cancer/summary.json").read_text())
    assert len(summary["summary"]) == 4 and summary["best"]["params"]["l2"] in (0, 1e-3, 1e-2, 1e-1)
    assert summary["test"]["accuracy"] > 0.9
