"""Search spaces: the configuration points a sweep trains.

A point is a flat dict of scalars, e.g. `{"l2": 1e-3, "dropout": 0.2}`. Spaces:

- `grid_points({"l2": [0, 1e-4, 1e-3]})` — every combination;
- `random_points({"l2": LogUniform(1e-5, 1e-1)}, n=8, seed=0)` — sampled, reproducibly;
- `refine(values, scores, ...)` — coarse-to-fine: new values between the best one's neighbours;
- stages (`Sweep(stages=[...])`) — each stage's grid around the previous stage's best point.

>>> grid_points({"l2": [0, 1e-3], "dropout": [0.0, 0.5]})
[{'l2': 0.0, 'dropout': 0.0}, {'l2': 0.0, 'dropout': 0.5}, {'l2': 0.001, 'dropout': 0.0}, {'l2': 0.001, 'dropout': 0.5}]
>>> point_id({"l2": 0.001}) == point_id({"l2": 1e-3}) != point_id({"l2": 0})
True
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
from numbers import Real

import numpy as np

from reglab import validation


def _scalar(value, name):
    if isinstance(value, bool) or isinstance(value, str):
        return value
    if isinstance(value, Real):
        if not math.isfinite(value):
            raise ValueError(f"Search values must be finite. Received: {name}={value!r}")
        return float(value)
    raise ValueError(f"Search values must be numbers, strings or booleans. Received: {name}={value!r}")


def normalize_point(point: dict) -> dict:
    """Numbers as floats (so 0 and 0.0 are one point), keys as given."""
    return {str(k): _scalar(v, k) for k, v in point.items()}


def point_id(point: dict) -> str:
    """A stable 10-character id of a point: independent of key order and of 0 vs 0.0."""
    canonical = json.dumps(normalize_point(point), sort_keys=True)
    return hashlib.sha256(canonical.encode()).hexdigest()[:10]


def grid_points(grid: dict) -> list[dict]:
    """Every combination of the grid's values, in the order given."""
    if not isinstance(grid, dict) or not grid:
        raise ValueError(f"A grid is a non-empty dict of value lists. Received: grid={grid!r}")
    for key, values in grid.items():
        if not isinstance(values, (list, tuple)) or not values:
            raise ValueError(f"Each grid entry needs a non-empty list of values. Received: grid[{key!r}]={values!r}")
    keys = list(grid)
    points = [normalize_point(dict(zip(keys, combo))) for combo in itertools.product(*(grid[k] for k in keys))]
    unique = {point_id(p): p for p in points}
    return list(unique.values())


class LogUniform:
    """Sampled uniformly on a log scale between `low` > 0 and `high`."""

    def __init__(self, low, high):
        self.low = validation.number(low, "low", low=0, low_open=True)
        self.high = validation.number(high, "high", low=self.low)

    def sample(self, rng) -> float:
        return float(math.exp(rng.uniform(math.log(self.low), math.log(self.high))))

    def to_config(self):
        return {"log_uniform": [self.low, self.high]}


class Uniform:
    """Sampled uniformly between `low` and `high`."""

    def __init__(self, low, high):
        self.low = validation.number(low, "low")
        self.high = validation.number(high, "high", low=self.low)

    def sample(self, rng) -> float:
        return float(rng.uniform(self.low, self.high))

    def to_config(self):
        return {"uniform": [self.low, self.high]}


class Choice:
    """One of the given values, uniformly."""

    def __init__(self, values):
        if not isinstance(values, (list, tuple)) or not values:
            raise ValueError(f"Choice needs a non-empty list of values. Received: values={values!r}")
        self.values = [_scalar(v, "values") for v in values]

    def sample(self, rng):
        return self.values[int(rng.integers(len(self.values)))]

    def to_config(self):
        return {"choice": list(self.values)}


def distribution(spec, name: str):
    """A distribution from an object or its config: {"log_uniform": [lo, hi]}, {"uniform": ...}, {"choice": [...]}."""
    if isinstance(spec, (LogUniform, Uniform, Choice)):
        return spec
    if isinstance(spec, dict) and len(spec) == 1:
        ((kind, args),) = spec.items()
        makers = {"log_uniform": LogUniform, "uniform": Uniform}
        if kind in makers and isinstance(args, (list, tuple)) and len(args) == 2:
            return makers[kind](*args)
        if kind == "choice":
            return Choice(args)
    if isinstance(spec, (list, tuple)):
        return Choice(spec)
    raise ValueError(
        "A random-search entry is LogUniform/Uniform/Choice or {'log_uniform': [low, high]}, "
        f"{{'uniform': [low, high]}}, {{'choice': [...]}}. Received: random[{name!r}]={spec!r}"
    )


def random_points(space: dict, n: int, seed: int) -> list[dict]:
    """`n` points sampled from `space` with a generator seeded by `seed` (reproducible)."""
    if not isinstance(space, dict) or not space:
        raise ValueError(f"A random space is a non-empty dict of distributions. Received: random={space!r}")
    dists = {k: distribution(v, k) for k, v in space.items()}
    validation.number(n, "n_trials", low=1, integer=True)
    rng = np.random.default_rng(seed)
    return [normalize_point({k: d.sample(rng) for k, d in dists.items()}) for _ in range(n)]


def refine(values, scores, n: int = 5) -> list[float]:
    """Coarse-to-fine: `n` new values between the best value's neighbours, on a log scale.

    `values` are the evaluated settings of one λ-like dimension and `scores` their mean
    validation losses (lower is better; NaN is worst). The new values are log-spaced strictly
    between the best value's neighbours (a decade beyond the ends of the range; between 0 and the
    smallest positive value, with a floor 100× below it, when 0 is best).

    >>> refine([1e-4, 1e-3, 1e-2], [0.5, 0.3, 0.4], n=3)
    [0.0003162, 0.001, 0.003162]
    """
    values = [float(v) for v in values]
    order = np.argsort(values)
    values = [values[i] for i in order]
    scores = np.array([scores[i] for i in order], dtype=float)
    if np.all(np.isnan(scores)):
        raise ValueError("Cannot refine: every evaluated value failed. Received: scores all NaN")
    best = int(np.nanargmin(scores))
    positive = [v for v in values if v > 0]
    if not positive:
        raise ValueError(f"Cannot refine a dimension without positive values. Received: values={values!r}")
    b = values[best]
    if b == 0:
        low, high = positive[0] / 100, positive[0]
    else:
        low = values[best - 1] if best > 0 and values[best - 1] > 0 else b / 10
        high = values[best + 1] if best + 1 < len(values) else b * 10
    new = np.geomspace(low, high, n + 2)[1:-1]
    return [float(f"{v:.4g}") for v in new]
