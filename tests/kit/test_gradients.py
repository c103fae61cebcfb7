"""The two gradients (seed 004): `LossLedger(gradients=(x, y))` records, per regularized weight and epoch, the
prediction loss's and the penalty's gradient norms, their cosine and the penalty's share — checked against the
maths (2λw, λ·sign(w)) and against the prediction gradient written out by hand, on both backends."""

from __future__ import annotations

import keras
import numpy as np
import pytest

import reglab


def model_with(output_penalty):
    """The penalty on the output layer: its prediction gradient is hᵀ(P − Y)/n, written out below."""
    return keras.Sequential(
        [
            keras.Input((64,)),
            keras.layers.Dense(16, activation="relu", name="hidden"),
            keras.layers.Dense(10, activation="softmax", name="out", kernel_regularizer=output_penalty),
        ]
    )


def by_hand(model, x, y):
    """∂(mean cross-entropy)/∂W_out at the model's weights, in float64."""
    w1, b1, w2, b2 = (np.asarray(w, dtype=np.float64) for w in model.get_weights())
    h = np.maximum(x @ w1 + b1, 0.0)
    logits = h @ w2 + b2
    p = np.exp(logits - logits.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    return h.T @ (p - np.eye(10)[y]) / len(y)


@pytest.mark.both_backends
@pytest.mark.parametrize("kind", ["l2", "l1"])
def test_the_recorded_gradients_are_the_penalty_maths_and_the_data_gradient_by_hand(kind, digits):
    x, y = digits
    strength = 1e-2 if kind == "l2" else 1e-3
    penalty = keras.regularizers.L2(strength) if kind == "l2" else keras.regularizers.L1(strength)
    model = model_with(penalty)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    batch = (x[:256], y[:256])
    ledger = reglab.LossLedger(gradients=batch)
    model.fit(x[:640], y[:640], epochs=2, batch_size=64, verbose=0, callbacks=[ledger])
    row, path = ledger.history.iloc[-1], model.get_layer("out").kernel.path
    w = np.asarray(model.get_layer("out").kernel.numpy(), dtype=np.float64)
    expected = 2 * strength * w if kind == "l2" else strength * np.sign(w)  # L1: away from zero, as at w ≠ 0 here
    assert (w != 0).all()
    assert row[f"grad_penalty:{path}"] == pytest.approx(np.linalg.norm(expected), rel=1e-5)
    g = by_hand(model, *batch)  # the prediction gradient: the unregularized model's, at the same weights
    assert row[f"grad_loss:{path}"] == pytest.approx(np.linalg.norm(g), rel=1e-4)
    cosine = (g.ravel() @ expected.ravel()) / (np.linalg.norm(g) * np.linalg.norm(expected))
    assert row[f"grad_cosine:{path}"] == pytest.approx(cosine, abs=1e-4)
    share = row[f"grad_penalty:{path}"] / (row[f"grad_penalty:{path}"] + row[f"grad_loss:{path}"])
    assert row[f"grad_share:{path}"] == pytest.approx(share)
    assert not any(c.endswith("hidden/kernel") for c in ledger.history.columns if c.startswith("grad_"))
    assert len(ledger.history) == 2 and ledger.history[f"grad_share:{path}"].notna().all()


def test_the_penalty_share_rises_with_lambda(digits):
    x, y = digits
    shares = {}
    for strength in (1e-4, 1e-2):
        keras.utils.set_random_seed(0)
        model = model_with(keras.regularizers.L2(strength))
        model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
        ledger = reglab.LossLedger(gradients=(x[:256], y[:256]))
        model.fit(x[:640], y[:640], epochs=3, batch_size=64, verbose=0, callbacks=[ledger])
        shares[strength] = ledger.history[f"grad_share:{model.get_layer('out').kernel.path}"].to_numpy()
    assert (shares[1e-2] > shares[1e-4]).all() and shares[1e-4].max() < 0.2 < shares[1e-2].min()
    page = ledger._repr_html_()  # in a notebook: the share drawn beside the losses
    assert "<img" in page and "max-width:1100px" in page


def test_bad_gradient_settings_are_refused_before_training(digits):
    x, y = digits
    with pytest.raises(ValueError, match="Received: gradients of type ndarray"):
        reglab.LossLedger(gradients=x)
    inputs = keras.Input((64,))
    hidden = keras.layers.Dense(8, kernel_regularizer=keras.regularizers.L2(1e-3))(inputs)
    model = keras.Model(
        inputs, {"a": keras.layers.Dense(1, name="a")(hidden), "b": keras.layers.Dense(1, name="b")(hidden)}
    )
    model.compile(optimizer="adam", loss={"a": "mse", "b": "mse"})
    weights = [w.copy() for w in model.get_weights()]
    targets = {"a": x[:64, :1], "b": x[:64, 1:2]}
    with pytest.raises(ValueError, match="measures one compiled loss"):
        model.fit(x[:64], targets, epochs=1, verbose=0, callbacks=[reglab.LossLedger(gradients=(x[:8], targets))])
    assert all(np.array_equal(a, b) for a, b in zip(weights, model.get_weights()))  # nothing trained
