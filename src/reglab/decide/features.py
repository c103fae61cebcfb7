"""Which input features a sparse model keeps: seed 002's "L1 performs feature selection automatically", made
visible. Each member's table ends with its first layer's weight-row norm per input feature
(`reglab.kit.records.input_norms`: exactly 0.0 where a penalty dropped the feature); here they become, per point,
the path glmnet draws for a lasso — each feature's norm against λ, and how many are kept.

>>> import pandas as pd
>>> members = pd.DataFrame({"point": ["a", "a", "b", "b"], "l1": [0.1, 0.1, 1.0, 1.0], "status": ["ok"] * 4,
...                         "feature:x": [0.5, 0.7, 0.0, 0.0], "feature:z": [0.2, 0.0, 0.1, 0.0]})
>>> members.attrs["params"] = ["l1"]
>>> paths(members)[["point", "l1", "feature", "norm", "dropped_in", "kept"]].to_string(index=False)
'point  l1 feature  norm  dropped_in  kept\\n    a 0.1       x  0.60           0  True\\n    a 0.1       z  0.10           1  True\\n    b 1.0       x  0.00           2 False\\n    b 1.0       z  0.05           1  True'
"""

from __future__ import annotations

import pandas as pd

PREFIX = "feature:"


def columns(table: pd.DataFrame) -> list[str]:
    """The per-feature norm columns of a member table (none where the first layer does not read features)."""
    return [c for c in table.columns if c.startswith(PREFIX)]


def paths(members: pd.DataFrame) -> pd.DataFrame | None:
    """Per point and input feature: `norm`, the mean over the point's folds of the feature's weight-row norm at
    the end of training; `dropped_in`, the folds where it is exactly 0; `kept`, False where every fold dropped
    it. Members that failed or diverged are left out. None without feature columns."""
    names = columns(members)
    if not names:
        return None
    params = [p for p in members.attrs.get("params", []) if p in members.columns]
    rows = []
    for point, group in members[members["status"] == "ok"].groupby("point", sort=False):
        for column in names:
            values = group[column].astype(float)
            rows.append(
                {
                    "point": point,
                    **{p: group.iloc[0][p] for p in params},
                    "feature": column.removeprefix(PREFIX),
                    "norm": float(values.mean()),
                    "dropped_in": int((values == 0.0).sum()),
                    "folds": len(values),
                    "kept": not bool((values == 0.0).all()),
                }
            )
    table = pd.DataFrame(rows)
    table.attrs["params"] = params
    return table


def chosen(table: pd.DataFrame | None, point_id: str | None) -> tuple[list[str], list[str]]:
    """(kept, dropped) features of one point (the chosen one), by name."""
    if table is None or point_id is None:
        return [], []
    rows = table[table["point"] == point_id]
    return list(rows.loc[rows["kept"], "feature"]), list(rows.loc[~rows["kept"], "feature"])
