"""The Pareto front of a search with several objectives: the points no other point beats on every one.

A study searched for two objectives at once (`reglab.search.Optuna(..., objectives=["val_loss", "zeros"])`:
validation loss, the lower the better, against exact sparsity — the entries exactly 0.0 in the trained model's
weights, the more the better) has no single best trade-off: the front is every point that no other point matches
or beats on all objectives while beating it on one. reglab still chooses by the sweep's `select` alone (the best
and one-standard-error points); the front shows what else was on offer. Only points that could be chosen (every
fold trained every epoch, learning) are on it, each objective as its fold mean.

>>> import pandas as pd
>>> summary = pd.DataFrame({"point": ["a", "b", "c", "d"], "rank": [1.0, 2.0, 3.0, None],
...                         "val_loss_mean": [0.10, 0.20, 0.30, 0.05], "zeros_mean": [0.0, 500.0, 400.0, 900.0]})
>>> front(summary, ["val_loss", "zeros"])["point"].tolist()  # c: b is better on both; d could not be chosen
['a', 'b']
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from reglab.decide.selection import mode_for

MORE_IS_BETTER = ("zeros",)  # quantities other than validation metrics that are maximized


def direction(objective: str) -> str:
    """ "min" or "max": a validation quantity as the selection reads it (`mode_for`), exact zeros maximized."""
    return "max" if objective in MORE_IS_BETTER else mode_for(objective)


def objectives_of(spec: dict) -> list[str] | None:
    """A multi-objective study's objectives, from a sweep's spec or config (`search = {"optuna": {...}}`)."""
    search = (spec or {}).get("search")
    return (search.get("optuna") or {}).get("objectives") if isinstance(search, dict) else None


def front(summary: pd.DataFrame, objectives: list[str]) -> pd.DataFrame:
    """The rows of `summary` on the Pareto front of `objectives` (their `<objective>_mean` columns), among the
    ranked (choosable) points with every objective finite, ordered by the first objective (best first); the
    objectives are kept in its `attrs` beside the summary's (`listed`)."""
    columns = [f"{o}_mean" for o in objectives]
    candidates = summary[summary["rank"].notna()]
    candidates = candidates[np.isfinite(candidates[columns].astype(float)).all(axis=1)]
    signs = [1.0 if direction(o) == "min" else -1.0 for o in objectives]  # every objective as a cost
    costs = [[sign * float(v) for sign, v in zip(signs, row)] for row in candidates[columns].itertuples(index=False)]

    def dominated(i: int) -> bool:
        return any(
            all(a <= b for a, b in zip(other, costs[i])) and any(a < b for a, b in zip(other, costs[i]))
            for j, other in enumerate(costs)
            if j != i
        )

    kept = candidates.iloc[[i for i in range(len(costs)) if not dominated(i)]]
    out = kept.sort_values(columns[0], ascending=signs[0] > 0, kind="stable").reset_index(drop=True)
    out.attrs = {**summary.attrs, "objectives": list(objectives)}
    return out


def listed(front_rows: pd.DataFrame) -> dict:
    """A front (`front`) as summary.json keeps it and the CLI prints it: {"objectives", "points": [{"point_id",
    "params", <objective>: its fold mean}]}."""
    from reglab.decide.selection import point_params

    objectives = front_rows.attrs["objectives"]
    return {
        "objectives": objectives,
        "points": [
            {
                "point_id": row["point"],
                "params": point_params(front_rows, row),
                **{o: float(row[f"{o}_mean"]) for o in objectives},
            }
            for _, row in front_rows.iterrows()
        ],
    }
