"""From epoch records to decisions: member table, per-point summary over folds, the best point.

Pure functions over pandas tables (the run directory's `epochs.parquet` is enough): nothing here
trains or reads a model. A point is compared only if every one of its members finished "ok"; a
point with a failed or diverged member ranks last (as scikit-learn scores failed fits NaN).

A point whose mean final validation loss is no better than the constant predictor's on the same
folds (`baseline_loss`, `reglab.decide.baseline`: class priors, training mean) is *not learning*
(`learning` is False). When the selection is by the loss (`by="val_loss"`) such a point gets no
rank either, so neither `best` nor `best_1se` can choose it. Selecting by another quantity
(accuracy, …) it keeps its rank: an over-confident model can have a useful accuracy and a loss
worse than the priors' — the verdict (`reglab.decide.diagnosis`) still says "not learning".
"""

from __future__ import annotations

import math
import warnings

import pandas as pd

from reglab.kit.records import IDENTITY
from reglab.kit.records import params as param_columns


def combine(frames: list[pd.DataFrame]) -> pd.DataFrame:
    """Concatenate members' tables keeping the layout: identity, then every point parameter, then the rest;
    `attrs["params"]` names the parameters (`reglab.kit.records.member_records`).

    Points of different search stages can have different keys; a key a point lacks is NaN there.
    """
    params: dict[str, None] = {}
    for frame in frames:
        params.update(dict.fromkeys(param_columns(frame)))
    epochs = pd.concat(frames, ignore_index=True)
    head = [*IDENTITY, *params]
    epochs = epochs[head + [c for c in epochs.columns if c not in head]]
    epochs.attrs = {"params": list(params)}
    return epochs


def metric_names(epochs: pd.DataFrame) -> list[str]:
    """Validation quantities worth summarizing: `val_loss` and every compiled metric."""
    skip = {"val_penalty", "val_total"}
    return [c for c in epochs.columns if c.startswith("val_") and c not in skip]


def member_table(epochs: pd.DataFrame) -> pd.DataFrame:
    """One row per member: identity, parameters, status, final and best-epoch values, `zeros` (the entries exactly
    0.0 in all its weights at the end: exact sparsity, as a count)."""
    params = param_columns(epochs)
    metrics = metric_names(epochs)
    rows = []
    for member_id, records in epochs.groupby("member", sort=False):
        records = records.sort_values("epoch")
        last = records.iloc[-1]
        row = {k: last[k] for k in (*IDENTITY, *params)}
        statuses = set(records["status"])
        row["status"] = next((s for s in ("failed", "diverged", "pruned") if s in statuses), "ok")
        row["epochs"] = int(records["epoch"].max())
        row["seconds"] = float(last["seconds"])
        for column in ("train_loss", "train_penalty", *metrics):
            row[column] = float(last[column]) if column in records and row["status"] == "ok" else math.nan
        for column in (c for c in records.columns if c.startswith("feature:")):  # `reglab.decide.features`
            row[column] = float(last[column]) if row["status"] == "ok" else math.nan
        zeros = [c for c in records.columns if c.startswith("zeros:")]  # exact zeros of every weight, at the end
        row["zeros"] = float(last[zeros].sum()) if zeros and row["status"] == "ok" else math.nan
        val = records["val_loss"] if "val_loss" in records else pd.Series(dtype=float)
        if row["status"] == "ok" and val.notna().any():
            best = records.loc[val.idxmin()]
            row["best_epoch"] = int(best["epoch"])
            for column in metrics:
                row[f"best_{column}"] = float(best[column])
        else:
            row["best_epoch"] = math.nan
            for column in metrics:
                row[f"best_{column}"] = math.nan
        row["baseline_loss"] = float(last["baseline_loss"]) if "baseline_loss" in records else math.nan
        row["baseline_predictor"] = last["baseline_predictor"] if "baseline_predictor" in records else ""
        if "error" in records and isinstance(last.get("error"), str):
            row["error"] = last["error"]
        rows.append(row)
    table = pd.DataFrame(rows)
    table.attrs = {"params": list(params)}
    return table


def summarize(members: pd.DataFrame, epochs: pd.DataFrame, by: str = "val_loss", mode: str = "min") -> pd.DataFrame:
    """Per point: mean, std and standard error over its members of the final and best-epoch values.

    `rank` orders complete points by the mean of `by` (1 is best); incomplete points get no rank,
    nor (when `by` is "val_loss") points that are not `learning`: their mean final validation loss
    is ≥ `baseline_loss_mean`, the constant predictor's on the same members' folds (a baseline of
    NaN, e.g. an unknown loss or a run stored before baselines existed, compares nothing).
    `curve_best_epoch` is the epoch where the fold-averaged validation loss is lowest.
    """
    params = param_columns(epochs)
    metrics = metric_names(epochs)
    quantities = ["train_loss", "train_penalty", *metrics, "zeros", "best_epoch", *[f"best_{m}" for m in metrics]]
    rows = []
    for pid, group in members.groupby("point", sort=False):
        ok = group[group["status"] == "ok"]
        row = {k: group.iloc[0][k] for k in params}
        row.update(
            point=pid,
            members=len(group),
            ok=len(ok),
            failed=int((group["status"] == "failed").sum()),
            diverged=int((group["status"] == "diverged").sum()),
            pruned=int((group["status"] == "pruned").sum()),  # stopped early by successive halving
        )
        for q in quantities:
            values = ok[q].astype(float) if q in ok else pd.Series(dtype=float)
            row[f"{q}_mean"] = float(values.mean()) if len(values) else math.nan
            row[f"{q}_std"] = float(values.std(ddof=1)) if len(values) > 1 else (0.0 if len(values) else math.nan)
            row[f"{q}_sem"] = row[f"{q}_std"] / math.sqrt(len(values)) if len(values) else math.nan
        curve = epochs[(epochs["point"] == pid) & (epochs["status"] == "ok")].groupby("epoch")["val_loss"].mean()
        row["curve_best_epoch"] = int(curve.idxmin()) if curve.notna().any() else math.nan
        baseline = ok["baseline_loss"].astype(float) if "baseline_loss" in ok else pd.Series(dtype=float)
        row["baseline_loss_mean"] = float(baseline.mean()) if baseline.notna().any() else math.nan
        row["baseline_predictor"] = next((p for p in ok.get("baseline_predictor", []) if isinstance(p, str) and p), "")
        row["learning"] = (
            not row["val_loss_mean"] >= row["baseline_loss_mean"]
        )  # NaN on either side: nothing to compare
        rows.append(row)
    summary = pd.DataFrame(rows)
    summary.attrs = {"params": list(params)}
    selectable = summary["ok"] == summary["members"]
    if by == "val_loss":
        selectable &= summary["learning"]
    score = summary[f"{by}_mean"].where(selectable)
    summary["rank"] = score.rank(method="min", ascending=(mode == "min"))
    return summary.sort_values(["rank"], na_position="last", kind="stable").reset_index(drop=True)


class NothingSelectable(RuntimeError):
    """No point can be chosen: every one failed, diverged or is not learning. A sweep raises it after
    writing its tables and report (`result` is then the SweepResult, with `best` None)."""

    result = None


def best(summary: pd.DataFrame, by: str = "val_loss", warn: bool = True) -> dict:
    """The best ranked point: its parameters and scores. Raises if no point has a rank (every one
    failed, diverged or, selecting by the loss, is not learning — see `summarize`).

    Warns when some points were excluded.
    """
    complete = summary[summary["rank"].notna()]
    if complete.empty:
        raise NothingSelectable(
            f"Every configuration failed, diverged or is not learning ({_excluded(summary)}); nothing to select."
        )
    excluded = summary[summary["rank"].isna()]
    if "pruned" in excluded:  # stopped by successive halving: left out by design, not a finding
        excluded = excluded[excluded["pruned"] == 0]
    if len(excluded) and warn:
        warnings.warn(
            f"{len(excluded)} of {len(summary)} configurations were excluded from selection: {_excluded(excluded)}.",
            RuntimeWarning,
            stacklevel=2,
        )
    row = complete.iloc[0]
    return {
        "point_id": row["point"],
        "params": point_params(summary, row),
        "score": {by: float(row[f"{by}_mean"]), f"{by}_std": float(row[f"{by}_std"])},
    }


STRENGTH_KEYS = ("l1", "l2", "elastic_net", "group_lasso", "smoothness", "lambda", "dropout", "weight_decay")


def strength_params(summary: pd.DataFrame) -> list[str]:
    """The sweep's λ-like parameters (larger = more regularized), in the sweep's column order: the
    point keys of `reglab.search.points` (`l2`, `l2.early`, `dropout`, …) that are numeric."""
    return [
        p
        for p in param_columns_of(summary)
        if p.partition(".")[0] in STRENGTH_KEYS and pd.api.types.is_numeric_dtype(summary[p])
    ]


def best_1se(summary: pd.DataFrame, by: str = "val_loss", mode: str = "min", simplicity=None) -> dict:
    """The one-standard-error rule: the most regularized point whose mean `by` is within one standard
    error of the best point's mean (glmnet's `lambda.1se`; Hastie, Tibshirani & Friedman, *Elements
    of Statistical Learning*, §7.10).

    The standard error is the best point's: the std of `by` over its members / √members (`{by}_sem`).
    "Most regularized" orders the complete points by `simplicity` — parameter names, the first
    deciding and the next breaking ties, larger = simpler; by default `strength_params(summary)`.
    A point without a parameter (another search stage) counts as 0 there: no penalty. With no
    λ-like parameter the rule has nothing to prefer and returns the best point.

    >>> table = pd.DataFrame({"l2": [0.0, 1e-3, 1e-2, 1e-1], "point": ["a", "b", "c", "d"], "members": 5,
    ...                       "ok": 5, "val_loss_mean": [0.30, 0.28, 0.295, 0.60],
    ...                       "val_loss_std": 0.05, "val_loss_sem": 0.05 / 5 ** 0.5, "rank": [2.0, 1.0, 3.0, 4.0]})
    >>> choice = best_1se(table)
    >>> choice["params"], round(choice["threshold"], 4)  # 0.28 + 0.05/√5: 1e-2 (0.295) is in, 0.1 is not
    ({'l2': 0.01}, 0.3024)
    """
    complete = summary[summary["rank"].notna()]
    if complete.empty:
        raise NothingSelectable(
            f"Every configuration failed, diverged or is not learning ({_excluded(summary)}); nothing to select."
        )
    top = complete.sort_values("rank", kind="stable").iloc[0]
    sem = float(top[f"{by}_sem"]) if not _missing(top[f"{by}_sem"]) else 0.0
    threshold = float(top[f"{by}_mean"]) + (sem if mode == "min" else -sem)
    means = complete[f"{by}_mean"]
    within = complete[means <= threshold] if mode == "min" else complete[means >= threshold]
    order = list(simplicity) if simplicity is not None else strength_params(summary)
    unknown = [p for p in order if p not in summary.columns]
    if unknown:
        raise ValueError(f"`simplicity` names parameters the sweep does not have. Received: simplicity={order!r}")
    if order:
        keys = within[order].astype(float).fillna(0.0)
        within = within.assign(**{f"_s{i}": keys[p] for i, p in enumerate(order)})
        within = within.sort_values(
            [f"_s{i}" for i in range(len(order))] + ["rank"], ascending=[False] * len(order) + [True], kind="stable"
        )
    row = within.iloc[0]
    params = point_params(summary, row)
    return {
        "point_id": row["point"],
        "params": params,
        "rule": "1se",
        "simplicity": order,
        "threshold": round(threshold, 12),
        "score": {by: float(row[f"{by}_mean"]), f"{by}_std": float(row[f"{by}_std"])},
    }


def mode_for(select: str) -> str:
    """ "max" for validation quantities where higher is better (accuracy, AUC, …), else "min"."""
    return "max" if any(s in select for s in ("acc", "auc", "precision", "recall")) else "min"


def document(
    summary: pd.DataFrame,
    best: dict | None,
    test: dict | None,
    members_complete: int,
    best_1se: dict | None = None,
    verdicts: pd.DataFrame | None = None,
    nothing_selected: str | None = None,
) -> dict:
    """The run directory's summary.json: the decisions (None, with `nothing_selected` saying why, when
    no point can be chosen), the test score, the per-point table and the per-point verdicts
    (`reglab.decide.diagnosis`), NaN as null."""

    def records(frame):
        return frame.astype(object).where(frame.notna(), None).to_dict(orient="records")

    return {
        "best": best,
        "best_1se": best_1se,
        "test": test,
        "members_complete": int(members_complete),
        "nothing_selected": nothing_selected,
        "summary": records(summary),
        "diagnosis": records(verdicts) if verdicts is not None else [],
    }


def decisions(
    summary: pd.DataFrame, by: str, mode: str, warn: bool = True
) -> tuple[dict | None, dict | None, str | None]:
    """(best, 1-SE choice, None), or (None, None, why) when no point can be chosen."""
    try:
        return best(summary, by, warn=warn), best_1se(summary, by, mode), None
    except NothingSelectable as nothing:
        return None, None, str(nothing)


def _excluded(points: pd.DataFrame) -> str:
    """Why unranked points have no rank, counted: "2 members failed, 0 diverged, 3 configurations not learning"."""
    complete = points["ok"] == points["members"]
    not_learning = int((complete & ~points["learning"].astype(bool)).sum()) if "learning" in points else 0
    return (
        f"{int(points['failed'].sum())} members failed, {int(points['diverged'].sum())} diverged, {not_learning} "
        f"configuration{'' if not_learning == 1 else 's'} not learning (validation loss no better than the constant "
        "predictor's)"
    )


def param_columns_of(summary: pd.DataFrame) -> list[str]:
    """The point's parameters in a per-point table: as `summarize` stored them (a table read back from
    summary.json: the columns before `point`, where `summarize` puts them)."""
    if "params" in summary.attrs:
        return [p for p in summary.attrs["params"] if p in summary.columns]
    return list(summary.columns[: list(summary.columns).index("point")])


def point_params(summary: pd.DataFrame, row) -> dict:
    """A summary row's point as plain values (a NaN column: a key not in this point)."""
    return {k: _plain(row[k]) for k in param_columns_of(summary) if not _missing(row[k])}


def _missing(value) -> bool:
    return isinstance(value, float) and math.isnan(value)


def _plain(value):
    return value.item() if hasattr(value, "item") else value
