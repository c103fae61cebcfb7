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
    # at the model's current weights, once (a custom loop's way): what the ledger recorded at the last epoch's end
    from reglab.kit.gradients import two_gradients

    once = two_gradients(model, *batch, "sparse_categorical_crossentropy")
    assert once == pytest.approx({k: row[k] for k in once}, rel=1e-6) and len(once) == 4


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


# --- a sweep's members (`Sweep(gradients=True)`): every engine, the report, the diagnosis ---------------------------


class Cubic(keras.regularizers.Regularizer):
    """A user's own penalty, λ·Σ|w|³: the population engine computes it as written (no known basis)."""

    def __init__(self, strength):
        self.strength = strength

    def __call__(self, w):
        return self.strength * keras.ops.sum(keras.ops.abs(w) ** 3)

    def get_config(self):
        return {"strength": self.strength}


def recurrent(point):
    """A GRU with penalties on its input kernel (L1) and its recurrent kernel (L2), and a custom one on the output."""
    return keras.Sequential(
        [
            keras.Input((8, 8)),
            keras.layers.GRU(
                8,
                kernel_regularizer=keras.regularizers.L1(point["l1"]),
                recurrent_regularizer=keras.regularizers.L2(point["l2"]),
                name="gru",
            ),
            keras.layers.Dense(10, activation="softmax", kernel_regularizer=Cubic(point["l2"]), name="out"),
        ],
        name="net",
    )


@pytest.mark.slow
def test_every_engine_records_the_same_two_gradients_recurrent_and_custom_penalties_too(digits, tmp_path):
    """The population engine (in memory and with the features on disk) and the reference engine (`fit` with the
    ledger) record the same values per member: one full batch an epoch, so that their batch orders differ only
    in the order rows are summed. L1's gradient is λ·sign(w): its norm λ·√(nonzero entries)."""
    x, y = digits
    x, y = x[:240].reshape(-1, 8, 8), y[:240]
    np.savez(tmp_path / "digits.npz", x=x, y=y)
    on_disk = reglab.stream(tmp_path / "digits.npz")
    grid = {"l1": [1e-2], "l2": [1e-3]}
    tables = {}
    for name, engine, data in (
        ("population", "population", (x, y)),
        ("streamed", "population", on_disk),
        ("reference", "reference", (x, y)),
    ):
        sweep = reglab.Sweep(
            recurrent,
            grid=grid,
            cv=2,
            epochs=2,
            batch_size=128,
            learning_rate=1e-2,
            refit=False,
            engine=engine,
            gradients=64,
        )
        tables[name] = sweep.run(*data).epochs
    population = tables["population"]
    columns = [c for c in population.columns if c.startswith("grad_")]
    weights = ["net/gru/gru_cell/kernel", "net/gru/gru_cell/recurrent_kernel", "net/out/kernel"]
    assert columns == [f"{q}:{w}" for w in weights for q in ("grad_loss", "grad_penalty", "grad_cosine", "grad_share")]
    for other in ("streamed", "reference"):
        np.testing.assert_allclose(tables[other][columns], population[columns], rtol=1e-4, atol=1e-7, err_msg=other)
    kernel = weights[0]
    nonzero = 8 * 24 - population[f"zeros:{kernel}"]
    np.testing.assert_allclose(population[f"grad_penalty:{kernel}"], population["l1"] * np.sqrt(nonzero), rtol=1e-5)
    recurrent_kernel = weights[1]  # L2(λ): 2λ‖w‖
    np.testing.assert_allclose(
        population[f"grad_penalty:{recurrent_kernel}"], 2e-3 * population[f"l2:{recurrent_kernel}"], rtol=1e-5
    )
    assert (
        population[f"grad_penalty:{weights[2]}"].gt(0).all()
        and population[f"grad_cosine:{kernel}"].between(-1, 1).all()
    )


def test_on_digits_the_share_rises_with_lambda_and_the_report_and_diagnosis_show_where_the_penalty_holds(
    digits, tmp_path
):
    """λ from nothing to collapse: the share of each kernel's gradient rises toward 50 % (at a regularized
    objective's minimum the two pulls are equal); where λ collapsed the model the penalty's share of the
    *objective* is small, its share of the gradient is not, and the diagnosis says to decrease λ."""
    x, y = digits

    def build(point):
        penalty = keras.regularizers.L2(point["l2"])
        return keras.Sequential(
            [
                keras.Input((64,)),
                keras.layers.Dense(32, activation="relu", kernel_regularizer=penalty, name="h"),
                keras.layers.Dense(10, activation="softmax", kernel_regularizer=penalty, name="out"),
            ],
            name="net",
        )

    result = reglab.Sweep(
        build, grid={"l2": [1e-4, 1e-2, 1e-1]}, cv=2, epochs=4, learning_rate=1e-2, gradients=True, seed=0
    ).run(x, y, run_dir=tmp_path / "run")
    last = result.epochs[result.epochs["epoch"] == 4].groupby("l2")
    for kernel in ("net/h/kernel", "net/out/kernel"):
        share = last[f"grad_share:{kernel}"].mean()
        assert share.is_monotonic_increasing and share[1e-4] < 0.05 and share[1e-1] > 0.4, share
    verdicts = result.diagnosis.set_index(result.summary.set_index("point")["l2"].reindex(result.diagnosis["point"]))
    collapsed = verdicts.loc[1e-1]
    assert collapsed["penalty_share"] < 0.3 < 0.4 < collapsed["gradient_share"]
    assert collapsed["recommendation"] == "decrease λ" and "the penalty holds back net/" in collapsed["reason"]
    assert "holds back" not in verdicts.loc[1e-4, "reason"]
    run = tmp_path / "run"
    assert "The two gradients" in (run / "report.html").read_text() and (run / "plots/gradient_share.png").exists()
    assert result._repr_html_().count("<img") == 2  # the notebook view draws it too


def test_a_sweeps_gradient_setting_is_checked_before_any_work(digits):
    x, y = digits
    for bad in (0, -3, "yes", 2.5):
        with pytest.raises(ValueError, match=rf"Received: gradients={bad!r}"):
            reglab.Sweep(model_with(None), grid={"l2": [1e-3]}, gradients=bad)
    inputs = keras.Input((64,))
    hidden = keras.layers.Dense(8, kernel_regularizer=keras.regularizers.L2(1e-3), name="h")(inputs)
    two = keras.Model(
        inputs, {"a": keras.layers.Dense(1, name="a")(hidden), "b": keras.layers.Dense(1, name="b")(hidden)}
    )
    targets = {"a": x[:, :1], "b": x[:, 1:2]}
    sweep = reglab.Sweep(two, grid={"l2": [1e-3]}, loss={"a": "mse", "b": "mse"}, gradients=True, epochs=1)
    with pytest.raises(ValueError, match=r"a loss per output. Received: gradients=True"):
        sweep.run(x, targets)


def test_a_config_asks_for_the_two_gradients_in_its_train_section(tmp_path):
    from reglab import config as config_module

    text = '[data]\nsource = "wine"\n[search]\ngrid = { l2 = [1e-3] }\n[train]\nepochs = 1\ngradients = '
    (tmp_path / "good.toml").write_text(text + "64\n")
    assert config_module.from_file(tmp_path / "good.toml").sweep.gradients == 64
    (tmp_path / "bad.toml").write_text(text + '"yes"\n')
    with pytest.raises(ValueError, match=r"Received: gradients='yes'"):
        config_module.from_file(tmp_path / "bad.toml")
