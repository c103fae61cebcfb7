"""What the figures show, computed from the stored tables only (pure pandas; no drawing here).

`plots` (PNG files) and `html_report` (one interactive page) draw the same views, and give every
point the same colour in every figure of both (`point_colors`).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from reglab.decide.selection import param_columns_of

# matplotlib's "tab10" = plotly's default colours: PNG and report.html look alike. Points beyond ten
# reuse them in order (neighbours in λ order never share a colour).
PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf")
NEUTRAL = "#444444"  # what is not a point (a line through points, a weight's path) is drawn in this


def point_order(table: pd.DataFrame, params: list[str]) -> list[str]:
    """Every point of `table` (epoch records or a summary) in λ order: by the numeric parameters
    ascending (a key a point lacks last), then the others as text, then the id — so the order, and
    the colours, do not depend on the table's row order or on which members finished."""
    first = table.drop_duplicates("point")
    numeric = [p for p in params if pd.api.types.is_numeric_dtype(first[p])]
    keys = first[[*params, "point"]].copy()
    for p in params:
        if p not in numeric:
            keys[p] = keys[p].astype(str)
    return list(
        keys.sort_values(
            [*numeric, *[p for p in params if p not in numeric], "point"], na_position="last", kind="stable"
        )["point"]
    )


def point_colors(table: pd.DataFrame, params: list[str]) -> dict[str, str]:
    """{point id: colour}, the one map every figure (PNG and HTML) uses: `PALETTE` in `point_order`.

    >>> point_colors(pd.DataFrame({"point": ["b", "a", "b"], "l2": [0.1, 0.0, 0.1]}), ["l2"])
    {'a': '#1f77b4', 'b': '#ff7f0e'}
    """
    return {pid: PALETTE[i % len(PALETTE)] for i, pid in enumerate(point_order(table, params))}


def sweep_param(summary: pd.DataFrame) -> str | None:
    """The numeric parameter the figures put on the x axis: the first λ-like one that varies, else
    the first numeric one that varies, else None."""
    from reglab.decide.selection import strength_params

    varying = [
        p for p in param_columns_of(summary) if pd.api.types.is_numeric_dtype(summary[p]) and summary[p].nunique() > 1
    ]
    strong = [p for p in strength_params(summary) if p in varying]
    return (strong or varying or [None])[0]


def through(summary: pd.DataFrame, param: str, point: str | None) -> pd.DataFrame:
    """The points that differ from `point` only in `param` (all points if `point` is None or the
    sweep has no other varying parameter), sorted by `param`."""
    others = [p for p in param_columns_of(summary) if p != param and summary[p].nunique(dropna=False) > 1]
    rows = summary
    if point is not None and others and (summary["point"] == point).any():
        anchor = summary[summary["point"] == point].iloc[0]
        keep = np.ones(len(summary), dtype=bool)
        for p in others:
            keep &= (summary[p] == anchor[p]).to_numpy() | (summary[p].isna() & pd.isna(anchor[p])).to_numpy()
        rows = summary[keep]
    return rows.sort_values(param, kind="stable")


def final_rows(epochs: pd.DataFrame) -> pd.DataFrame:
    """Each "ok" member's last epoch record."""
    ok = epochs[epochs["status"] == "ok"]
    return ok.sort_values("epoch").groupby("member", sort=False).tail(1)


def kernel_paths(epochs: pd.DataFrame) -> list[str]:
    """The weights the paths show: kernels if there are any (biases are rarely penalized), else all."""
    names = [c.split(":", 1)[1] for c in epochs.columns if c.startswith("l2:")]
    kernels = [n for n in names if n.endswith("kernel")]
    return kernels or names


def regularization_paths(epochs: pd.DataFrame, summary: pd.DataFrame, param: str, point: str | None) -> pd.DataFrame:
    """Long table (param value, weight, quantity, mean, std) of each kernel's ‖w‖₂, exact zeros and
    near-zero fraction at the end of training, over the members of each point (the points through
    `point` along `param`)."""
    rows = through(summary, param, point)
    last = final_rows(epochs)
    out = []
    for _, row in rows.iterrows():
        members = last[last["point"] == row["point"]]
        if members.empty:
            continue
        for weight in kernel_paths(epochs):
            for quantity in ("l2", "zeros", "near_zero"):
                values = members[f"{quantity}:{weight}"].astype(float)
                out.append(
                    {
                        param: row[param],
                        "point": row["point"],
                        "weight": weight,
                        "quantity": quantity,
                        "mean": float(values.mean()),
                        "std": float(values.std(ddof=1)) if len(values) > 1 else 0.0,
                    }
                )
    return pd.DataFrame(out, columns=[param, "point", "weight", "quantity", "mean", "std"])


def histogram_choices(summary: pd.DataFrame, param: str, best: str | None) -> dict[str, str]:
    """{"none" | "chosen" | "strong": point id}: the weakest and strongest `param` through the chosen point."""
    rows = through(summary, param, best)
    choices = {"none": rows.iloc[0]["point"]}
    if best is not None:
        choices["chosen"] = best
    choices["strong"] = rows.iloc[-1]["point"]
    return choices


ROLES = {"none": "weakest", "chosen": "chosen", "strong": "strongest"}


def histogram_traces(summary: pd.DataFrame, param: str, best: str | None) -> list[tuple[str, list[str]]]:
    """[(point id, its roles)]: the points of `histogram_choices`, each once — the chosen point that is
    also the weakest is one entry, ("…", ["weakest", "chosen"]), not two identical curves."""
    roles: dict[str, list[str]] = {}
    for key, point in histogram_choices(summary, param, best).items():
        roles.setdefault(point, []).append(ROLES[key])
    return list(roles.items())


def weight_distribution(histograms: pd.DataFrame, members: pd.DataFrame, point: str) -> pd.DataFrame:
    """Bins (low, high, count, fraction) of log10|w| over every kernel of every member of `point`."""
    ids = set(members.loc[members["point"] == point, "member"])
    chosen = histograms[histograms["member"].isin(ids)]
    kernels = [w for w in chosen["weight"].unique() if str(w).endswith("kernel")] or list(chosen["weight"].unique())
    chosen = chosen[chosen["weight"].isin(kernels)]
    table = chosen.groupby(["low", "high"], sort=True)["count"].sum().reset_index()
    total = table["count"].sum()
    table["fraction"] = table["count"] / total if total else math.nan
    return table


def penalty_share(epochs: pd.DataFrame) -> pd.DataFrame:
    """Long table (point, epoch, share) of the penalty's share of the training objective, mean over members."""
    ok = epochs[epochs["status"] == "ok"]
    share = (ok["train_penalty"] / ok["train_total"]).rename("share")
    table = pd.concat([ok[["point", "epoch"]], share], axis=1)
    return table.groupby(["point", "epoch"], sort=False)["share"].mean().reset_index()


def gradient_share(epochs: pd.DataFrame) -> pd.DataFrame:
    """Long table (point, epoch, weight, share) of the penalty's share of each regularized weight's gradient
    (`reglab.kit.gradients`), mean over the point's members; empty where the two gradients were not recorded."""
    columns = [c for c in epochs.columns if c.startswith("grad_share:")]
    ok = epochs[epochs["status"] == "ok"]
    if not columns or ok.empty:
        return pd.DataFrame(columns=["point", "epoch", "weight", "share"])
    means = ok.groupby(["point", "epoch"], sort=False)[columns].mean().reset_index()
    table = means.melt(["point", "epoch"], columns, var_name="weight", value_name="share").dropna(subset=["share"])
    table["weight"] = table["weight"].str.split(":", n=1).str[1]
    return table.reset_index(drop=True)


def learning_curves(epochs: pd.DataFrame) -> pd.DataFrame:
    """Long table (point, epoch, train_loss, val_loss, *_std) of fold-mean prediction losses."""
    ok = epochs[epochs["status"] == "ok"]
    grouped = ok.groupby(["point", "epoch"], sort=False)[["train_loss", "val_loss"]]
    means, stds = grouped.mean(), grouped.std(ddof=1).fillna(0.0).add_suffix("_std")
    return pd.concat([means, stds], axis=1).reset_index()


def label(row: pd.Series, params: list[str]) -> str:
    """ "l2=0.001, dropout=0.2" for a summary row (parameters a point lacks are left out)."""
    parts = []
    for p in params:
        value = row[p]
        if isinstance(value, float) and math.isnan(value):
            continue
        parts.append(f"{p}={value:g}" if isinstance(value, float) else f"{p}={value}")
    return ", ".join(parts) or "(default)"
