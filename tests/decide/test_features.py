"""Which input features a sparse model keeps (seed 002: L1 "performs feature selection automatically"): each
member's first-layer row norms, per point the glmnet-style path, the chosen model's kept and dropped features —
and on diabetes with proximal L1 on a linear model, the features kept per λ are scikit-learn's Lasso path."""

from __future__ import annotations

import json

import keras
import numpy as np
import pytest
from sklearn.datasets import load_diabetes
from sklearn.linear_model import Lasso

import reglab
from reglab.conventions import lasso_alpha


def linear(point):
    return keras.Sequential([keras.Input((10,)), keras.layers.Dense(1, kernel_initializer="zeros")])


@pytest.mark.slow
def test_the_features_kept_per_lambda_are_scikit_learns_lasso_path_on_diabetes(tmp_path):
    """Proximal L1 with full-batch SGD is ISTA: it reaches the lasso's exact zeros. Each member is compared with
    `Lasso(alpha=lasso_alpha(λ))` on its own training fold, standardized as the sweep standardizes it."""
    x, y = load_diabetes(return_X_y=True, as_frame=True)
    strengths = [0.03, 0.1, 0.3, 1.0]
    settings = dict(cv=2, epochs=1500, batch_size=442, optimizer="sgd", learning_rate=0.2, standardize=True)
    sweep = reglab.Sweep(linear, grid={"prox_l1": strengths}, **settings)
    result = sweep.run(x, y, run_dir=tmp_path / "run")
    dataset, _, _, splits = sweep.split(x, y, "regression")
    names = list(x.columns)
    for fold, _, train, _ in splits:
        xs, ys = dataset.x[train].astype(float), dataset.y[train].astype(float)
        xs, ys = (xs - xs.mean(0)) / xs.std(0), (ys - ys.mean()) / ys.std()
        for strength in strengths:
            exact = Lasso(alpha=lasso_alpha(strength), tol=1e-12, max_iter=100_000).fit(xs, ys).coef_
            member = result.members[(result.members["prox_l1"] == strength) & (result.members["fold"] == fold)]
            norms = member[[f"feature:{n}" for n in names]].iloc[0].to_numpy(float)
            assert np.array_equal(norms == 0, exact == 0), (fold, strength, norms, exact)  # the same features dropped
            np.testing.assert_allclose(norms, np.abs(exact), atol=1e-5)
    paths = result.features
    assert set(paths["feature"]) == set(names)  # the DataFrame's column names
    kept = paths.groupby("prox_l1")["kept"].sum()
    assert list(kept.index) == strengths and kept.is_monotonic_decreasing and kept.iloc[0] > kept.iloc[-1] >= 1
    chosen = json.loads((tmp_path / "run" / "summary.json").read_text())["features"]
    expected = paths[(paths["point"] == result.best["point_id"]) & paths["kept"]]["feature"]
    assert chosen["kept"] == list(expected) and len(chosen["kept"]) + len(chosen["dropped"]) == 10
    report = (tmp_path / "run" / "report.html").read_text()
    assert "Feature selection" in report and "<b>Features</b>: the best point keeps" in report


@pytest.mark.filterwarnings("ignore:1 of 3 configurations were excluded")  # λ = 3e-2 drowns 4 epochs
def test_each_members_norms_are_its_first_layers_rows_and_never_seen_pixels_drop_out(digits):
    """An MLP on the digits with proximal L1: pixels that are 0 in every image get no data gradient, so the
    proximal step takes their rows to exactly 0 at every λ > 0; more fall out as λ grows."""
    x, y = digits

    def mlp(point):
        return keras.Sequential(
            [
                keras.Input((64,)),
                keras.layers.Dense(16, activation="relu"),
                keras.layers.Dense(10, activation="softmax"),
            ]
        )

    result = reglab.Sweep(
        mlp, grid={"prox_l1": [0.0, 3e-3, 3e-2]}, cv=2, epochs=4, learning_rate=1e-2, refit=False
    ).run(x, y, keep_weights=True)
    final = result.epochs.groupby("member").tail(1).set_index("member")
    for member, weights in result.weights.items():
        kernel = next(w for path, w in weights.items() if np.ndim(w) == 2 and len(w) == 64)
        rows = final.loc[member, [f"feature:{i}" for i in range(64)]].to_numpy(float)
        np.testing.assert_allclose(rows, np.linalg.norm(kernel.astype(float), axis=1), rtol=1e-6)
    never = set(map(str, np.flatnonzero((x == 0).all(axis=0))))
    paths = result.features
    for strength in (3e-3, 3e-2):
        dropped = set(paths[(paths["prox_l1"] == strength) & ~paths["kept"]]["feature"])
        assert never <= dropped
    kept = paths.groupby("prox_l1")["kept"].sum()
    assert kept[0.0] == 64 and kept[0.0] > kept[3e-3] >= kept[3e-2]
