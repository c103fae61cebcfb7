"""λ from the data: `grid={"l2": "auto"}` — glmnet's λ_max idea carried to networks.

glmnet computes the largest useful λ of a lasso from the data (λ_max = max_j |x_jᵀy| / n: at and above it
every coefficient is zero) and searches a log-spaced path below it. A network has no closed form, and at
w = 0 its hidden layers' gradients vanish, so reglab measures, **at initialization**, the strength at which
the penalty's gradient equals the data's:

    λ₀ = ‖∇_w L(w₀)‖ / ‖∇_w R₁(w₀)‖

over the weights the key regularizes (the model built with the key's λ = 1 and every other strength at 0),
where L is the sweep's prediction loss (its mean over the training rows, in inference mode: no dropout
noise) and R₁ the key's penalty at λ = 1 — for L2 ‖g‖ / (2‖w₀‖), for L1 ‖g‖ / √n (the root-mean-square
gradient: glmnet's max |g_j| is the same balance at w₀ = 0, where a network cannot start). As a model fits,
its data gradient falls by one to two orders of magnitude while the penalty's does not, so λ₀ is already a
strong penalty, not an underfitting one; the path starts two decades above it, λ_max = 100 · λ₀, and runs
down `n` log-spaced values to λ_max · `ratio` (default 10 values to λ₀ / 1000, where the penalty is a
rounding of the data's pull). Measured with a 32-unit MLP, 3 folds (tests/search/test_auto.py): at λ₀ the
validation loss is 1.5–3× the best on the digits and wine and about the best on diabetes; at λ_max, L2
gives 0.86 / 0.60 / 0.59 against best 0.08 / 0.04 / 0.50 and L1 the constant predictor on all three.

The gradient is measured on at most `ROWS` training rows (a seeded sample of the non-test rows, standardized
as training sees them): one forward and backward pass, ~0.1 s for the models of the tests.

>>> auto_values(0.5, n=3, ratio=1e-2)
[0.5, 0.05, 0.005]
"""

from __future__ import annotations

import math

import numpy as np

from reglab import validation

ROWS = 2048
HEADROOM = 100.0  # λ_max / λ₀: two decades above the balance at initialization (see above)
AUTO_KINDS = ("l1", "l2", "elastic_net", "group_lasso", "smoothness")


class Auto:
    """`grid={"l2": Auto(n=10, ratio=1e-5)}`: `n` values from the data's λ_max down to λ_max · `ratio`
    (the string "auto" is `Auto()`)."""

    def __init__(self, n=10, ratio=1e-5):
        self.n = validation.number(n, "n", low=2, integer=True)
        self.ratio = validation.number(ratio, "ratio", low=0, high=1, low_open=True)
        if self.ratio == 1:
            raise ValueError(f"`ratio` is below 1 (the smallest value is λ_max · ratio). Received: ratio={ratio!r}")

    def to_config(self):
        return {"auto": {"n": self.n, "ratio": self.ratio}}

    def __repr__(self):
        return f"Auto(n={self.n}, ratio={self.ratio})"

    @classmethod
    def of(cls, value):
        """The `Auto` a grid entry asks for (the string "auto", `{"auto": {...}}`, an `Auto`), else None."""
        if isinstance(value, cls):
            return value
        if isinstance(value, str) and value == "auto":
            return cls()
        if isinstance(value, dict) and set(value) == {"auto"}:
            settings = value["auto"] or {}
            if not isinstance(settings, dict) or not set(settings) <= {"n", "ratio"}:
                raise ValueError(f"`auto` takes `n` and `ratio`. Received: {value!r}")
            return cls(**settings)
        return None


def split(grid, builder: bool) -> tuple[dict | None, dict]:
    """(the grid with a placeholder value for each "auto" entry, {key: Auto}). A key that cannot take "auto"
    (not a penalty strength of a plain model) is refused; a builder's keys are its own and are checked when
    its model is built."""
    if not isinstance(grid, dict):
        return grid, {}
    autos = {key: Auto.of(values) for key, values in grid.items()}
    autos = {key: auto for key, auto in autos.items() if auto is not None}
    for key in autos:
        kind = key.partition(".")[0].removeprefix("recurrent_")
        if not builder and kind not in AUTO_KINDS:
            raise ValueError(
                f'"auto" computes a penalty strength\'s range ({", ".join(AUTO_KINDS)}, also recurrent_ and '
                f"per-group ones). Received: grid[{key!r}]={grid[key]!r}"
            )
    return {key: ([1.0] if key in autos else values) for key, values in grid.items()}, autos


def auto_values(lambda_max: float, n: int, ratio: float) -> list[float]:
    """`n` values log-spaced from `lambda_max` down to `lambda_max · ratio`, largest first, 3 significant
    digits (the point ids and tables read them back)."""
    values = np.geomspace(lambda_max, lambda_max * ratio, n)
    return [float(f"{v:.3g}") for v in values]


def balance(model, x, y, loss) -> float:
    """λ₀ = ‖∇L(w₀)‖ / ‖∇R₁(w₀)‖ of `model` (built with the key's λ = 1): the data loss's and the penalty's
    gradients over the weights that carry a penalty, at the model's initial weights.

    Raises:
        ValueError: no weight of `model` carries a penalty, or the penalty has no gradient there.
    """
    from reglab.kit.gradients import gradients

    penalized = [v for v in model.trainable_variables if v.regularizer is not None]
    if not penalized:
        raise ValueError("The model built for the key at λ = 1 has no penalized weight: nothing to scale λ by")
    data, penalty = gradients(model, penalized, x, y, loss)
    norm = math.sqrt(sum(float(np.sum(np.square(g))) for g in penalty))
    if norm == 0.0:
        raise ValueError("The penalty's gradient is zero at the model's initial weights: nothing to scale λ by")
    return math.sqrt(sum(float(np.sum(np.square(g))) for g in data)) / norm


def resolve(sweep, dataset, rest, training) -> tuple[list[list[dict]], dict]:
    """The sweep's grid with each "auto" entry's values computed from this data: (rounds, {key: {lambda_0,
    lambda_max, values, n, ratio}}). Each key's model is built (under the sweep's seed) for the grid's first point with the
    key at λ = 1 and every other penalty strength at 0, so that only that key's penalty is measured."""
    import keras

    from reglab.data import rows
    from reglab.decide.selection import STRENGTH_KEYS
    from reglab.engine.training import scaling_of
    from reglab.search import space

    if dataset.task == "multi-output" or dataset.structured:
        raise ValueError(
            f'"auto" grids measure one input and one output. Received: grid with "auto" for {sorted(sweep._auto)} '
            f"on a {dataset.task} model with several inputs or outputs"
        )
    chosen = np.sort(np.random.default_rng(sweep.seed).permutation(rest)[:ROWS])
    x, y = np.asarray(rows(dataset.x, chosen), dtype=np.float32), np.asarray(rows(dataset.y, chosen))
    scaling = scaling_of(dataset, chosen, training.standardize)  # as training sees its rows
    if scaling:
        x = (x - scaling["x_mean"]) / scaling["x_std"]
        if "y_mean" in scaling:
            y = (y - scaling["y_mean"]) / scaling["y_std"]
    others = {k: v[0] for k, v in sweep.grid.items() if k not in sweep._auto}  # the grid's first point
    grid, ranges = dict(sweep.grid), {}
    for key, wanted in sweep._auto.items():
        point = {
            k: 0.0 if k.partition(".")[0].removeprefix("recurrent_") in STRENGTH_KEYS else v for k, v in others.items()
        }
        point.update({other: 0.0 for other in sweep._auto}, **{key: 1.0})  # this key's penalty alone
        keras.backend.clear_session(free_memory=False)
        keras.utils.set_random_seed(sweep.seed)
        try:
            at_init = balance(sweep._make_model()(point), x, y, training.loss)
        except ValueError as error:
            raise ValueError(f"{error}. Received: grid[{key!r}]={sweep.grid[key]!r}") from None
        grid[key] = auto_values(HEADROOM * at_init, wanted.n, wanted.ratio)
        ranges[key] = {
            "lambda_0": at_init,
            "lambda_max": HEADROOM * at_init,
            "values": grid[key],
            "n": wanted.n,
            "ratio": wanted.ratio,
        }
    keras.backend.clear_session(free_memory=False)
    return [space.grid_points(grid)], ranges
