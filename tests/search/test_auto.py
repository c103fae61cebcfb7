"""λ from the data (`grid={"l2": "auto"}`, `reglab.search.auto`): λ₀ is where the penalty's gradient equals
the data's at initialization (checked against a gradient written out by hand), and on the digits, wine and
diabetes the path's largest value underfits, its smallest behaves like λ = 0 and the choice is inside."""

from __future__ import annotations

import math
import warnings

import keras
import numpy as np
import pytest
from sklearn.datasets import load_diabetes, load_digits, load_wine
from typer.testing import CliRunner

import reglab
from reglab.models import MLP
from reglab.search import auto


@pytest.mark.parametrize("kind", ["l2", "l1"])
def test_lambda_0_balances_the_penalty_and_data_gradients_at_initialization(kind, digits):
    """A softmax regression penalized on its kernel: the data loss's gradient is Xᵀ(P − Y)/n, by hand."""
    x, y = digits[0][:500], digits[1][:500]
    penalty = keras.regularizers.L2(1.0) if kind == "l2" else keras.regularizers.L1(1.0)
    layer = keras.layers.Dense(10, activation="softmax", kernel_regularizer=penalty)
    model = keras.Sequential([keras.Input((64,)), layer])
    w, b = (np.asarray(v, dtype=np.float64) for v in layer.get_weights())
    logits = x @ w + b
    p = np.exp(logits - logits.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    g = x.T @ (p - np.eye(10)[y]) / len(y)
    penalty_gradient = 2 * w if kind == "l2" else np.sign(w)
    expected = np.linalg.norm(g) / np.linalg.norm(penalty_gradient)
    assert auto.balance(model, x, y, "sparse_categorical_crossentropy") == pytest.approx(expected, rel=1e-4)
    if kind == "l1":  # ‖sign(w)‖ = √n: λ₀ is the root-mean-square data gradient
        assert expected == pytest.approx(np.sqrt(np.mean(g**2)), rel=1e-6)


CASES = [  # (data, key, epochs): each key on a dataset where its path is measured
    ("digits", "l2", 20),
    ("wine", "l2", 40),
    ("diabetes", "l1", 40),
]


@pytest.mark.slow
@pytest.mark.parametrize("name, key, epochs", CASES, ids=[c[0] for c in CASES])
def test_the_path_underfits_at_the_top_is_lambda_zero_at_the_bottom_and_chooses_inside(name, key, epochs):
    x, y = {"digits": load_digits, "wine": load_wine, "diabetes": load_diabetes}[name](return_X_y=True)
    model = MLP(hidden=[32]).bind(x.shape[1], 1 if name == "diabetes" else len(set(y)))

    def sweep(grid):
        settings = dict(cv=3, epochs=epochs, learning_rate=1e-2, standardize=True, refit=False)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the top of the path is not learning: excluded, as it should be
            return reglab.Sweep(model, grid=grid, **settings).run(x, y)

    result = sweep({key: {"auto": {"n": 7, "ratio": 1e-6}}})  # a value per decade, 100·λ₀ down to λ₀ / 10⁴
    computed = result.ranges[key]
    assert computed["lambda_max"] == pytest.approx(100 * computed["lambda_0"])
    assert computed["values"][0] == pytest.approx(computed["lambda_max"], rel=1e-2) and len(computed["values"]) == 7
    table = result.summary.set_index(key).sort_index(ascending=False)
    assert list(table.index) == computed["values"]
    top, bottom, best = table.iloc[0], table.iloc[-1], table["val_loss_mean"].min()
    assert not top["learning"] or top["val_loss_mean"] > 2 * best, table[["val_loss_mean", "learning"]]
    zero = sweep({key: [0.0]}).summary.iloc[0]
    spread = 3 * math.hypot(bottom["val_loss_sem"], zero["val_loss_sem"])
    assert abs(bottom["val_loss_mean"] - zero["val_loss_mean"]) < spread, (bottom["val_loss_mean"], zero)
    values = computed["values"]
    assert result.best["params"][key] != values[0]
    assert values[-1] < result.best_1se["params"][key] < values[0]  # inside the range


def test_the_cli_reads_auto_from_the_config_and_shows_the_range(tmp_path, monkeypatch):
    from reglab.cli.commands import app

    config = tmp_path / "auto.toml"
    config.write_text(
        'name = "auto"\n[data]\nsource = "wine"\n[model]\nhidden = [8]\n[search]\ngrid = { l2 = { auto = { n = 3 } } }\n'
        "[cv]\nfolds = 2\n[train]\nepochs = 3\nlearning_rate = 0.01\n"
    )
    monkeypatch.setenv("COLUMNS", "200")
    shown = CliRunner().invoke(app, ["sweep", str(config), "--run-dir", str(tmp_path / "run"), "-q"])
    assert "l2 = auto: λ_max" in shown.output and "3 values from" in shown.output, shown.output
    report = (tmp_path / "run" / "report.html").read_text()
    assert "l2 from the data" in report and "= 100 · λ₀" in report


def test_auto_is_refused_where_no_penalty_strength_goes_before_any_work():
    with pytest.raises(ValueError, match=r"Received: grid\['dropout'\]='auto'"):
        reglab.Sweep(MLP(hidden=[8]).bind(13, 3), grid={"dropout": "auto"})
    with pytest.raises(ValueError, match=r"Received: n=1"):
        reglab.Sweep(MLP(hidden=[8]).bind(13, 3), grid={"l2": {"auto": {"n": 1}}})
    with pytest.raises(ValueError, match=r"ratio"):
        reglab.Sweep(MLP(hidden=[8]).bind(13, 3), grid={"l2": {"auto": {"ratio": 2}}})

    def ignores_its_point(point):  # a builder that puts no penalty anywhere: nothing to scale λ by
        return keras.Sequential([keras.Input((13,)), keras.layers.Dense(3, activation="softmax")])

    x, y = load_wine(return_X_y=True)
    with pytest.raises(ValueError, match=r"no penalized weight.*Received: grid\['l2'\]='auto'"):
        reglab.Sweep(ignores_its_point, grid={"l2": "auto"}, cv=2, epochs=1).run(x, y)
