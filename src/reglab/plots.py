"""Figures drawn from the stored tables only (re-rendering never retrains).

- `learning_curves`: per point, train and validation prediction loss over epochs (mean ± std over folds);
- `validation_curve`: final validation loss vs a λ-like parameter (mean ± std over folds, log axis);
- `penalty_share`: the penalty's share of the training loss over epochs, per point.
"""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; never needs a display

import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from reglab.selection import param_columns, param_columns_of  # noqa: E402

MAX_PANELS = 12


def _label(row, params) -> str:
    return ", ".join(f"{p}={row[p]:g}" if isinstance(row[p], float) else f"{p}={row[p]}" for p in params) or "(default)"


def _ok(epochs: pd.DataFrame) -> pd.DataFrame:
    return epochs[epochs["status"] == "ok"]


def learning_curves(epochs: pd.DataFrame, path, title: str = "Learning curves") -> Path:
    params = param_columns(epochs)
    ok = _ok(epochs)
    points = list(dict.fromkeys(ok["point"]))[:MAX_PANELS]
    cols = min(3, max(1, len(points)))
    rows = math.ceil(len(points) / cols) or 1
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.2 * rows), squeeze=False, sharey=True)
    for ax, pid in zip(axes.flat, points):
        data = ok[ok["point"] == pid]
        for column, color, name in (("train_loss", "tab:blue", "train"), ("val_loss", "tab:orange", "validation")):
            stats = data.groupby("epoch")[column].agg(["mean", "std"]).fillna(0.0)
            ax.plot(stats.index, stats["mean"], color=color, label=name)
            ax.fill_between(stats.index, stats["mean"] - stats["std"], stats["mean"] + stats["std"], color=color, alpha=0.2)
        ax.set_title(_label(data.iloc[0], params), fontsize=9)
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
    for ax in axes[:, 0]:
        ax.set_ylabel("prediction loss (no penalty)")
    for ax in list(axes.flat)[len(points):]:
        ax.set_visible(False)
    axes.flat[0].legend(fontsize=8)
    fig.suptitle(title + ("" if len(points) == ok["point"].nunique() else f" (first {MAX_PANELS} points)"))
    fig.tight_layout()
    return _save(fig, path)


def numeric_params(summary: pd.DataFrame, params) -> list[str]:
    return [p for p in params if pd.api.types.is_numeric_dtype(summary[p]) and summary[p].nunique() > 1]


def validation_curve(summary: pd.DataFrame, param: str, path, metric: str = "val_loss", best_point: str | None = None) -> Path:
    """Mean ± std over folds of the final `metric` against `param`, one line per setting of the other parameters."""
    params = param_columns_of(summary)
    others = [p for p in params if p != param and summary[p].nunique() > 1]
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    groups = summary.groupby(others, sort=True) if others else [((), summary)]
    for key, group in groups:
        group = group.sort_values(param)
        label = ", ".join(f"{o}={k}" for o, k in zip(others, key if isinstance(key, tuple) else (key,))) or None
        ax.errorbar(group[param], group[f"{metric}_mean"], yerr=group[f"{metric}_std"], marker="o", capsize=3, label=label)
    if best_point is not None and (summary["point"] == best_point).any():
        row = summary[summary["point"] == best_point].iloc[0]
        ax.axvline(row[param], color="tab:green", linestyle="--", label=f"selected {param}={row[param]:g}")
    values = summary[param].astype(float)
    if (values > 0).any():
        positive = values[values > 0]
        if (values == 0).any():  # keep 0 on the axis: linear near 0, logarithmic beyond
            ax.set_xscale("symlog", linthresh=float(positive.min()))
            ax.set_xlim(left=-0.3 * float(positive.min()))
        else:
            ax.set_xscale("log")
    ax.set_xlabel(f"{param} ({'symmetric ' if (values == 0).any() else ''}log scale)")
    ax.set_ylabel(f"validation {metric.removeprefix('val_')} (mean ± std over folds)")
    ax.set_title(f"Validation curve: {metric} vs {param}")
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8)
    fig.tight_layout()
    return _save(fig, path)


def penalty_share(epochs: pd.DataFrame, path) -> Path:
    params = param_columns(epochs)
    ok = _ok(epochs)
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for pid in list(dict.fromkeys(ok["point"]))[:MAX_PANELS]:
        data = ok[ok["point"] == pid]
        share = (data["train_penalty"] / data["train_total"]).groupby(data["epoch"]).mean()
        ax.plot(share.index, share.values, label=_label(data.iloc[0], params))
    ax.set_xlabel("epoch")
    ax.set_ylabel("penalty / total training loss")
    ax.set_ylim(0, 1)
    ax.set_title("How much of the training loss is penalty")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    return _save(fig, path)


def _save(fig, path) -> Path:
    from reglab.store import atomic_path

    path = Path(path)
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=110)
    plt.close(fig)
    return path


def render_all(epochs: pd.DataFrame, summary: pd.DataFrame, folder, best_point: str | None = None) -> list[Path]:
    """Every figure of a run into `folder`; returns the written paths."""
    folder = Path(folder)
    written = [learning_curves(epochs, folder / "learning_curves.png"), penalty_share(epochs, folder / "penalty_share.png")]
    for param in numeric_params(summary, param_columns_of(summary)):
        written.append(validation_curve(summary, param, folder / f"validation_curve_{param}.png", best_point=best_point))
    return written
