"""Reference checks that ship with reglab: does training with its λ reach the known answer?

`ridge()`: a linear Keras model with reglab's `L2(λ)` on its kernel, trained by full-batch gradient
descent through a `Sweep` (cross-validation members on the population engine, the refit on the
reference engine), against closed-form ridge regression on the same rows — scikit-learn's `Ridge`
(Cholesky) with `alpha = reglab.conventions.ridge_alpha(λ, n)`. Minimizing `mean squared error +
λ‖w‖²` and `‖y − Xw‖² + α‖w‖²` is the same problem exactly when `α = n·λ`, so the weights must agree
to the optimizer's precision.

`tests/test_checks.py` runs it and requires every relative error ≤ 1e-4 (measured: ≤ 1e-6).
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def diabetes():
    """scikit-learn's diabetes data, features and target standardized over all rows."""
    from sklearn.datasets import load_diabetes

    x, y = load_diabetes(return_X_y=True)
    return (x - x.mean(0)) / x.std(0), (y - y.mean()) / y.std()


def closed_form_ridge(x, y, l2: float) -> tuple[np.ndarray, float]:
    """(w, b) minimizing `mean((y − Xw − b)²) + l2·‖w‖²` (b unpenalized), via sklearn's exact solver."""
    from sklearn.linear_model import Ridge

    from reglab.conventions import ridge_alpha

    model = Ridge(alpha=ridge_alpha(l2, len(y)), solver="cholesky").fit(x, y)
    return model.coef_, float(model.intercept_)


def ridge(
    lambdas=(0.03, 0.1, 0.5), cv=3, epochs=1000, learning_rate=0.18, reference_lambda=0.5, reference_epochs=80, seed=0
) -> pd.DataFrame:
    """Train through sweeps and compare with closed-form ridge. One row per trained model: λ, engine,
    the rows it saw, `relative_error` = ‖(w, b) − (w*, b*)‖ / ‖(w*, b*)‖.

    The population engine trains `lambdas` × `cv` folds for `epochs` full-batch steps; the reference
    engine (one `model.fit` per member, ~40 ms of Keras overhead per epoch) trains `reference_lambda`,
    which converges fast, on 2 folds and then refits it on all non-test rows. The learning rate 0.18
    is stable for every λ ≤ 0.5 here (the eigenvalues of XᵀX/n run from 0.009 to 4.0, so the
    curvature is at most 2·(4.0 + λ)), and 1000 steps bring λ ≥ 0.03 below 1e-6.
    """
    import keras

    x, y = diabetes()
    rows = []
    population = _sweep(lambdas, cv, epochs, learning_rate, "population", False, seed)
    rows += _members(population, x, y, lambdas, seed, "population (cross-validation member)")
    reference = _sweep((reference_lambda,), 2, reference_epochs, learning_rate, "reference", True, seed)
    rows += _members(reference, x, y, (reference_lambda,), seed, "reference (cross-validation member)")
    result, sweep = reference
    _, rest, _, _ = sweep.split(x, y, "regression")
    refit = {v.path: keras.ops.convert_to_numpy(v) for v in result.model.trainable_weights}
    rows.append(
        _compare(
            reference_lambda,
            "reference (refit on all non-test rows)",
            x[rest],
            y[rest],
            *(refit[k] for k in sorted(refit)),
        )
    )
    return pd.DataFrame(rows)


def _sweep(lambdas, cv, epochs, learning_rate, engine, refit, seed):
    import keras

    from reglab.sweep import Sweep

    x, y = diabetes()

    def build(point):
        return keras.Sequential(
            [
                keras.Input((x.shape[1],)),
                keras.layers.Dense(
                    1, kernel_initializer="zeros", kernel_regularizer=keras.regularizers.L2(point["l2"])
                ),
            ]
        )

    sweep = Sweep(
        build,
        grid={"l2": list(lambdas)},
        cv=cv,
        test_size=0.2,
        epochs=epochs,
        batch_size=len(y),
        optimizer="sgd",
        learning_rate=learning_rate,
        loss="mean_squared_error",
        standardize=False,
        engine=engine,
        refit=refit,
        seed=seed,
    )
    return sweep.run(x, y, task="regression", keep_weights=True), sweep


def _members(trained, x, y, lambdas, seed, engine) -> list[dict]:
    from reglab.search import plan, space

    result, sweep = trained
    _, _, _, splits = sweep.split(x, y, "regression")
    rows = []
    for member in plan.members([space.normalize_point({"l2": v}) for v in lambdas], splits, seed):
        weights = result.weights[member.id]
        rows.append(
            _compare(
                member.point["l2"], engine, x[member.train], y[member.train], *(weights[k] for k in sorted(weights))
            )
        )
    return rows


def _compare(l2, engine, x, y, bias, kernel) -> dict:
    w, b = closed_form_ridge(x, y, l2)
    ours = np.concatenate([np.ravel(kernel), np.ravel(bias)]).astype(np.float64)
    exact = np.concatenate([w, [b]])
    return {
        "l2": l2,
        "engine": engine,
        "rows": len(y),
        "relative_error": float(np.linalg.norm(ours - exact) / np.linalg.norm(exact)),
    }
