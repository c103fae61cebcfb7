"""Figures drawn from the stored tables only (re-rendering never retrains).

- `learning_curves`: per point, train and validation prediction loss over epochs (mean ± std over folds);
- `validation_curve`: final validation loss vs a λ-like parameter (mean ± std over folds, log axis);
- `penalty_share`: the penalty's share of the training loss over epochs, per point;
- `regularization_paths`: per kernel, ‖w‖₂, exact zeros and near-zero fraction vs λ (glmnet's path plot
  for a neural net);
- `weight_histograms`: log10|w| of the kernels for no / the chosen / the strongest regularization.

Every point has one colour in all of them (`views.point_colors`, the same as in report.html); what
is not a point (a validation curve's line, a kernel's path) is neutral grey, told apart by line style.
Each artist drawn for a point carries the point id as its `gid`.
"""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from reglab.decide.selection import param_columns, param_columns_of
from reglab.show import views

MAX_PANELS = 12


def _label(row, params, limit: int = 60) -> str:
    """A legend entry; long (user-supplied) values are cut so the legend never swallows the figure."""
    text = views.label(row, params)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _in_order(epochs: pd.DataFrame, params) -> list[str]:
    """The points with an "ok" member in λ order (`views.point_order`), so panels and legends read in order."""
    shown = set(_ok(epochs)["point"])
    return [p for p in views.point_order(epochs, params) if p in shown]


STYLES = ("-", "--", ":", "-.")  # lines that are not points (other settings, kernels), in NEUTRAL
MARKERS = ("o", "s", "^", "D", "v")


def _ok(epochs: pd.DataFrame) -> pd.DataFrame:
    return epochs[epochs["status"] == "ok"]


def learning_curves(epochs: pd.DataFrame, path, title: str = "Learning curves") -> Path:
    params = param_columns(epochs)
    ok = _ok(epochs)
    colors = views.point_colors(epochs, params)
    points = _in_order(epochs, params)[:MAX_PANELS]
    cols = min(3, max(1, len(points)))
    rows = math.ceil(len(points) / cols) or 1
    table = views.learning_curves(epochs)
    fig, axes = _figure(rows, cols, figsize=(4.2 * cols, 3.2 * rows), squeeze=False, sharey=True)
    for ax, pid in zip(axes.flat, points):
        curve = table[table["point"] == pid]
        for column, style, name in (("train_loss", "--", "train"), ("val_loss", "-", "validation")):
            mean, std = curve[column], curve[f"{column}_std"]
            ax.plot(curve["epoch"], mean, color=colors[pid], linestyle=style, label=name, gid=pid)
            ax.fill_between(curve["epoch"], mean - std, mean + std, color=colors[pid], alpha=0.15, gid=pid)
        ax.set_title(_label(ok[ok["point"] == pid].iloc[0], params), fontsize=9, color=colors[pid])
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
    for ax in axes[:, 0]:
        ax.set_ylabel("prediction loss (no penalty)")
    for ax in list(axes.flat)[len(points) :]:
        ax.set_visible(False)
    # the colour is the panel's point; the legend only tells the line styles apart
    axes.flat[0].legend(
        handles=[
            Line2D([], [], color=views.NEUTRAL, linestyle=s, label=n) for s, n in (("-", "validation"), ("--", "train"))
        ],
        fontsize=8,
    )
    fig.suptitle(title + ("" if len(points) == ok["point"].nunique() else f" (first {MAX_PANELS} points)"))
    fig.tight_layout()
    return _save(fig, path)


def numeric_params(summary: pd.DataFrame, params) -> list[str]:
    return [p for p in params if pd.api.types.is_numeric_dtype(summary[p]) and summary[p].nunique() > 1]


def validation_curve(
    summary: pd.DataFrame,
    param: str,
    path,
    metric: str = "val_loss",
    best_point: str | None = None,
    best_1se: str | None = None,
) -> Path:
    """Mean ± std over folds of the final `metric` against `param`, one line per setting of the other parameters."""
    params = param_columns_of(summary)
    colors = views.point_colors(summary, params)
    others = [p for p in params if p != param and summary[p].nunique() > 1]
    fig, ax = _figure(figsize=(6.4, 4.2))
    groups = summary.groupby(others, sort=True) if others else [((), summary)]
    for i, (key, group) in enumerate(groups):
        group = group.sort_values(param)
        label = ", ".join(f"{o}={k}" for o, k in zip(others, key if isinstance(key, tuple) else (key,))) or None
        ax.errorbar(
            group[param],
            group[f"{metric}_mean"],
            yerr=group[f"{metric}_std"],
            color=views.NEUTRAL,
            linestyle=STYLES[i % len(STYLES)],
            linewidth=1,
            capsize=3,
            label=label,
        )
        for _, row in group.iterrows():  # each point's marker in its colour
            ax.plot(
                [row[param]],
                [row[f"{metric}_mean"]],
                marker=MARKERS[i % len(MARKERS)],
                markersize=8,
                color=colors[row["point"]],
                markeredgecolor="black",
                markeredgewidth=0.6,
                linestyle="none",
                gid=row["point"],
                zorder=3,
            )
    _choice_lines(ax, summary, param, best_point, best_1se, colors, labelled=True)
    _log_axis(ax, summary[param].astype(float), param)
    ax.set_ylabel(f"validation {metric.removeprefix('val_')} (mean ± std over folds)")
    ax.set_title(f"Validation curve: {metric} vs {param}")
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8)
    fig.tight_layout()
    return _save(fig, path)


def _choice_lines(ax, summary, param, best_point, best_1se, colors, labelled=False) -> None:
    """Vertical lines at the best (dashed) and the 1-SE (dotted) point, each in its point's colour."""
    for point, style, name in ((best_point, "--", "best"), (best_1se, ":", "1-SE rule")):
        if point is not None and (summary["point"] == point).any():
            value = summary.loc[summary["point"] == point, param].iloc[0]
            ax.axvline(
                value,
                color=colors[point],
                linestyle=style,
                linewidth=1.6,
                gid=point,
                label=f"{name} {param}={value:g}" if labelled else None,
            )


def _log_axis(ax, values: pd.Series, param: str) -> None:
    """Logarithmic λ axis; with λ = 0 present, symmetric-log (linear near 0) so 0 stays on the axis."""
    if (values > 0).any():
        positive = values[values > 0]
        if (values == 0).any():
            ax.set_xscale("symlog", linthresh=float(positive.min()))
            ax.set_xlim(left=-0.3 * float(positive.min()))
        else:
            ax.set_xscale("log")
        ax.set_xlim(right=1.6 * float(positive.max()))  # the largest λ's marker is not cut in half by the frame
    ax.set_xlabel(f"{param} ({'symmetric ' if (values == 0).any() else ''}log scale)")


def regularization_paths(
    epochs: pd.DataFrame, summary: pd.DataFrame, param: str, path, best_point=None, best_1se=None
) -> Path:
    """Per kernel: ‖w‖₂, exact zeros and the near-zero fraction at the end of training vs `param`."""
    table = views.regularization_paths(epochs, summary, param, best_point)
    colors = views.point_colors(summary, param_columns_of(summary))
    fig, axes = _figure(1, 3, figsize=(13.5, 3.8))
    titles = {"l2": "‖w‖₂ (L2 norm)", "zeros": "exact zeros (count)", "near_zero": "near-zero fraction (|w| < 1e-3)"}
    for ax, (quantity, title) in zip(axes, titles.items()):
        for i, (weight, rows) in enumerate(table[table["quantity"] == quantity].groupby("weight", sort=False)):
            marker = MARKERS[i % len(MARKERS)]  # a kernel: a line style and a marker shape; a point: a colour
            ax.errorbar(
                rows[param],
                rows["mean"],
                yerr=rows["std"],
                color=views.NEUTRAL,
                linestyle=STYLES[i % len(STYLES)],
                linewidth=1,
                marker=marker,
                markerfacecolor="none",
                capsize=2,
                label=weight,
            )
            for _, row in rows.iterrows():
                ax.plot(
                    [row[param]],
                    [row["mean"]],
                    marker=marker,
                    markersize=6,
                    color=colors[row["point"]],
                    markeredgecolor="black",
                    markeredgewidth=0.5,
                    linestyle="none",
                    gid=row["point"],
                    zorder=3,
                )
        _choice_lines(ax, summary, param, best_point, best_1se, colors)
        _log_axis(ax, table[param].astype(float), param)
        if quantity == "l2" and (table.loc[table["quantity"] == "l2", "mean"] > 0).all():
            ax.set_yscale("log")
        ax.set_title(title, fontsize=10)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("mean over folds (± std)")
    axes[0].legend(fontsize=7)
    fig.suptitle(
        f"Regularization paths: the weights vs {param} (marker colour: the point; dashed: best, dotted: 1-SE rule)",
        fontsize=11,
    )
    fig.tight_layout()
    return _save(fig, path)


def weight_histograms(
    histograms: pd.DataFrame, epochs: pd.DataFrame, summary: pd.DataFrame, param: str, path, best_point=None
) -> Path:
    """log10|w| of all kernels for the weakest, the chosen and the strongest `param` (exact zeros at the left)."""
    fig, ax = _figure(figsize=(6.8, 4.2))
    colors = views.point_colors(summary, param_columns_of(summary))
    for point, roles in views.histogram_traces(summary, param, best_point):
        table = views.weight_distribution(histograms, epochs, point)
        value = summary.loc[summary["point"] == point, param].iloc[0]
        finite = table[table["low"] > -float("inf")]
        zeros = float(table.loc[table["low"] == -float("inf"), "fraction"].sum())
        ax.stairs(
            finite["fraction"],
            list(finite["low"]) + [finite["high"].iloc[-1]],
            color=colors[point],
            gid=point,
            label=f"{param}={value:g} ({', '.join(roles)}; exact zeros {zeros:.1%})",
            linewidth=1.6,
        )
    ax.set_xlabel("log10 |w| (kernels, all members of the point)")
    ax.set_ylabel("fraction of weights")
    ax.set_title("Weight sizes: weakest, chosen and strongest regularization")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return _save(fig, path)


def penalty_share(epochs: pd.DataFrame, path) -> Path:
    params = param_columns(epochs)
    ok = _ok(epochs)
    colors = views.point_colors(epochs, params)
    table = views.penalty_share(epochs)
    fig, ax = _figure(figsize=(6.4, 4.2))
    for pid in _in_order(epochs, params)[:MAX_PANELS]:
        share = table[table["point"] == pid]
        ax.plot(
            share["epoch"],
            share["share"],
            color=colors[pid],
            gid=pid,
            label=_label(ok[ok["point"] == pid].iloc[0], params),
        )
    ax.set_xlabel("epoch")
    ax.set_ylabel("penalty / total training loss")
    ax.set_ylim(0, 1)
    ax.set_title("How much of the training loss is penalty")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    return _save(fig, path)


def gradient_share(epochs: pd.DataFrame, path) -> Path:
    """Seed 004's tug of war (`Sweep(gradients=True)`): per regularized weight a panel, the penalty's share of its
    gradient over the epochs, one line per point; 50 % (the two pulls equal) dotted."""
    params = param_columns(epochs)
    ok = _ok(epochs)
    colors = views.point_colors(epochs, params)
    table = views.gradient_share(epochs)
    weights = list(dict.fromkeys(table["weight"]))[:MAX_PANELS]
    cols = min(3, len(weights))
    rows = -(-len(weights) // cols)
    fig, axes = _figure(rows, cols, figsize=(4.2 * cols, 3.4 * rows + 0.4), squeeze=False, sharey=True)
    for k, ax in enumerate(axes.ravel()):
        if k >= len(weights):
            ax.set_visible(False)
            continue
        for pid in _in_order(epochs, params)[:MAX_PANELS]:
            line = table[(table["point"] == pid) & (table["weight"] == weights[k])]
            if len(line):
                label = _label(ok[ok["point"] == pid].iloc[0], params)
                ax.plot(line["epoch"], line["share"], color=colors[pid], gid=pid, label=label)
        ax.axhline(0.5, color=views.NEUTRAL, linestyle=":", linewidth=1)
        ax.set_title(weights[k], fontsize=9)
        ax.set_xlabel("epoch")
        ax.set_ylim(0, 1)
        ax.grid(alpha=0.3)
    axes[0, 0].set_ylabel("‖∇R‖ / (‖∇L‖ + ‖∇R‖)")
    axes[0, 0].legend(fontsize=7)
    fig.suptitle("The penalty's share of each weight's gradient")
    fig.tight_layout()
    return _save(fig, path)


def _figure(*grid, figsize, **options):
    """(figure, axes) drawn without pyplot: no backend is chosen or changed (a notebook's stays as it was), and
    nothing is kept open once saved."""
    fig = Figure(figsize=figsize)
    return fig, fig.subplots(*grid, **options)


def _save(fig, path) -> Path:
    from reglab.files import atomic_path

    path = Path(path)
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=110)
    return path


def render_all(
    epochs: pd.DataFrame,
    summary: pd.DataFrame,
    folder,
    best_point: str | None = None,
    best_1se: str | None = None,
    histograms: pd.DataFrame | None = None,
) -> list[Path]:
    """Every figure of a run into `folder`; returns the written paths."""
    folder = Path(folder)
    written = [
        learning_curves(epochs, folder / "learning_curves.png"),
        penalty_share(epochs, folder / "penalty_share.png"),
    ]
    if len(views.gradient_share(epochs)):  # recorded with `Sweep(gradients=True)`
        written.append(gradient_share(epochs, folder / "gradient_share.png"))
    for param in numeric_params(summary, param_columns_of(summary)):
        written.append(
            validation_curve(
                summary, param, folder / f"validation_curve_{param}.png", best_point=best_point, best_1se=best_1se
            )
        )
    param = views.sweep_param(summary)
    if param is not None:
        written.append(
            regularization_paths(epochs, summary, param, folder / "regularization_paths.png", best_point, best_1se)
        )
        if histograms is not None and len(histograms):
            written.append(
                weight_histograms(histograms, epochs, summary, param, folder / "weight_histograms.png", best_point)
            )
    return written
