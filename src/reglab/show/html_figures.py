"""The report's interactive figures, as plotly figures in the same point colours as the PNGs
(`views.point_colors`); each trace carries its point id in `meta` / `customdata`. `go` is
`plotly.graph_objects`, imported by the caller."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from reglab.show import views

DASHES = ("solid", "dash", "dot", "dashdot")  # lines that are not points (kernels), in views.NEUTRAL
SYMBOLS = ("circle", "square", "triangle-up", "diamond", "triangle-down")
LAYOUT = {
    "template": "plotly_white",
    "height": 420,
    "margin": {"t": 40, "r": 20, "b": 50, "l": 60},
    "legend": {"font": {"size": 11}},
}


def log_x(values: pd.Series):
    """x positions on a log axis with λ = 0 drawn one decade below the smallest positive value."""
    values = values.astype(float)
    positive = values[values > 0]
    if positive.empty:
        return values, {}
    zero_at = 10 ** (math.floor(math.log10(positive.min())) - 1)
    x = values.where(values > 0, zero_at)
    decades = range(int(math.log10(zero_at)) + 1, int(math.ceil(math.log10(positive.max()))) + 1)
    ticks = ([zero_at] if (values == 0).any() else []) + [10.0**d for d in decades]
    text = (["0"] if (values == 0).any() else []) + [f"1e{d}" for d in decades]
    return x, {"type": "log", "tickvals": ticks, "ticktext": text}


def validation(go, summary, param, best, one_se, labels, colors):
    rows = views.through(summary, param, best)
    x, axis = log_x(rows[param])
    fig = go.Figure()
    points = list(rows["point"])  # `customdata`: the point of each marker, whose colour it has
    fig.add_trace(
        go.Scatter(
            x=x,
            y=rows["val_loss_mean"],
            error_y={"array": rows["val_loss_std"], "visible": True},
            mode="lines+markers",
            name="validation loss",
            text=[labels[p] for p in points],
            customdata=points,
            line={"color": views.NEUTRAL, "width": 1},
            marker={"color": [colors[p] for p in points], "size": 10, "line": {"color": "black", "width": 0.6}},
            hovertemplate="%{text}<br>val loss %{y:.4g}<extra></extra>",
        )
    )
    for point, name in ((best, "best"), (one_se, "1-SE rule")):
        if point is not None and (rows["point"] == point).any():
            at = float(x[rows["point"] == point].iloc[0])
            fig.add_trace(
                go.Scatter(
                    x=[at],
                    y=[float(rows.loc[rows["point"] == point, "val_loss_mean"].iloc[0])],
                    mode="markers",
                    meta=point,
                    name=f"{name}: {labels[point]}",
                    marker={
                        "size": 16,
                        "symbol": "star" if name == "best" else "diamond",
                        "color": colors[point],
                        "line": {"color": "black", "width": 1},
                    },
                )
            )
    fig.update_layout(
        xaxis={"title": f"{param} (log scale)", **axis},
        yaxis_title="validation loss (mean ± std over folds)",
        **LAYOUT,
    )
    return fig


def learning(go, epochs, labels, colors):
    table = views.learning_curves(epochs)
    fig = go.Figure()
    for point in (p for p in labels if (table["point"] == p).any()):
        rows = table[table["point"] == point]
        color = colors[point]
        for column, dash in (("val_loss", "solid"), ("train_loss", "dash")):
            fig.add_trace(
                go.Scatter(
                    x=rows["epoch"],
                    y=rows[column],
                    mode="lines",
                    legendgroup=point,
                    meta=point,
                    name=labels.get(point, point) if column == "val_loss" else None,
                    showlegend=column == "val_loss",
                    line={"color": color, "dash": dash},
                    hovertemplate=f"{column} %{{y:.4g}} (epoch %{{x}})<extra></extra>",
                )
            )
    fig.update_layout(xaxis_title="epoch", yaxis_title="prediction loss (no penalty)", **LAYOUT)
    return fig


def paths(go, epochs, summary, param, best, one_se, labels, colors):
    from plotly.subplots import make_subplots

    table = views.regularization_paths(epochs, summary, param, best)
    titles = {"l2": "‖w‖₂", "zeros": "exact zeros (count)", "near_zero": "near-zero fraction (|w| < 1e-3)"}
    fig = make_subplots(rows=1, cols=3, subplot_titles=list(titles.values()))
    x_all, axis = log_x(table[param]) if len(table) else (table[param], {})
    for c, quantity in enumerate(titles, start=1):
        for i, (weight, rows) in enumerate(table[table["quantity"] == quantity].groupby("weight", sort=False)):
            points = list(rows["point"])  # a kernel: a dash and a marker shape; a point: the marker's colour
            fig.add_trace(
                go.Scatter(
                    x=x_all[rows.index],
                    y=rows["mean"],
                    error_y={"array": rows["std"], "visible": True},
                    mode="lines+markers",
                    name=weight,
                    legendgroup=weight,
                    showlegend=c == 1,
                    customdata=points,
                    text=[labels.get(p, p) for p in points],
                    hovertemplate=f"{weight}<br>%{{text}}: %{{y:.4g}}<extra></extra>",
                    line={"color": views.NEUTRAL, "width": 1, "dash": DASHES[i % len(DASHES)]},
                    marker={
                        "color": [colors[p] for p in points],
                        "size": 9,
                        "symbol": SYMBOLS[i % len(SYMBOLS)],
                        "line": {"color": "black", "width": 0.5},
                    },
                ),
                row=1,
                col=c,
            )
        for point, dash in ((best, "dash"), (one_se, "dot")):  # the choices, in their points' colours
            at = table.index[table["point"] == point]
            if point is not None and len(at):
                fig.add_vline(
                    x=float(x_all[at[0]]),
                    row=1,
                    col=c,
                    name=point,
                    line={"color": colors[point], "dash": dash, "width": 1.5},
                )
        fig.update_xaxes(title_text=f"{param}", row=1, col=c, **axis)
    fig.update_layout(**LAYOUT)
    return fig


def histogram(go, histograms, epochs, summary, param, best, colors):
    fig = go.Figure()
    for point, roles in views.histogram_traces(summary, param, best):
        table = views.weight_distribution(histograms, epochs, point)
        value = summary.loc[summary["point"] == point, param].iloc[0]
        finite = table[np.isfinite(table["low"])]
        zeros = float(table.loc[~np.isfinite(table["low"]), "fraction"].sum())
        fig.add_trace(
            go.Scatter(
                x=(finite["low"] + finite["high"]) / 2,
                y=finite["fraction"],
                mode="lines",
                meta=point,
                line={"shape": "hvh", "color": colors[point]},
                name=f"{param}={value:g} ({', '.join(roles)}; exact zeros {zeros:.1%})",
            )
        )
    fig.update_layout(xaxis_title="log10 |w| (kernels)", yaxis_title="fraction of weights", **LAYOUT)
    return fig


def share(go, epochs, labels, colors):
    table = views.penalty_share(epochs)
    fig = go.Figure()
    for point in (p for p in labels if (table["point"] == p).any()):
        rows = table[table["point"] == point]
        fig.add_trace(
            go.Scatter(
                x=rows["epoch"],
                y=rows["share"],
                mode="lines",
                name=labels.get(point, point),
                meta=point,
                line={"color": colors[point]},
            )
        )
    fig.update_layout(xaxis_title="epoch", yaxis={"title": "penalty / training objective", "range": [0, 1]}, **LAYOUT)
    return fig


def gradients(go, table: pd.DataFrame, labels, colors):
    """Seed 004's tug of war: per regularized weight (a panel each), the penalty's share of its gradient over the
    epochs, one line per point, with 50 % (the two pulls equal: a minimum of the regularized objective) dotted."""
    from plotly.subplots import make_subplots

    weights = list(dict.fromkeys(table["weight"]))
    cols = min(3, len(weights))
    panel_rows = -(-len(weights) // cols)
    fig = make_subplots(rows=panel_rows, cols=cols, subplot_titles=weights, shared_yaxes=True)
    for k, (weight, lines) in enumerate(table.groupby("weight", sort=False)):
        row, col = k // cols + 1, k % cols + 1
        by_point = dict(tuple(lines.groupby("point", sort=False)))
        for point in (p for p in labels if p in by_point):  # legends in λ order
            rows = by_point[point]
            fig.add_trace(
                go.Scatter(
                    x=rows["epoch"],
                    y=rows["share"],
                    mode="lines",
                    name=labels.get(point, point),
                    legendgroup=point,
                    showlegend=k == 0,
                    meta=point,
                    line={"color": colors[point]},
                    hovertemplate=f"{weight}<br>{labels.get(point, point)}<br>epoch %{{x}}: %{{y:.1%}}<extra></extra>",
                ),
                row=row,
                col=col,
            )
        fig.add_hline(y=0.5, row=row, col=col, line={"color": views.NEUTRAL, "dash": "dot", "width": 1})
        fig.update_xaxes(title_text="epoch", row=row, col=col)
    fig.update_yaxes(range=[0, 1], tickformat=".0%")
    fig.update_yaxes(title_text="‖∇R‖ / (‖∇L‖ + ‖∇R‖)", col=1)
    fig.update_layout(**{**LAYOUT, "height": 320 * panel_rows + 100})
    return fig


# --- escaping -----------------------------------------------------------------------------------


def pareto(go, summary, front: dict, best, labels, colors):
    """A multi-objective study's points on its first two objectives (fold means): every choosable point, the
    Pareto front joined by a line, the best point starred."""
    x_name, y_name = front["objectives"][:2]
    on = [p["point_id"] for p in front["points"]]
    rows = summary[summary["rank"].notna()]
    fig = go.Figure()
    others, front_rows = rows[~rows["point"].isin(on)], rows.set_index("point").loc[on].reset_index()
    for name, chosen, size in (("other points", others, 8), ("Pareto front", front_rows, 11)):
        points = list(chosen["point"])
        fig.add_trace(
            go.Scatter(
                x=chosen[f"{x_name}_mean"],
                y=chosen[f"{y_name}_mean"],
                mode="lines+markers" if name == "Pareto front" else "markers",
                name=name,
                text=[labels.get(p, p) for p in points],
                customdata=points,
                line={"color": views.NEUTRAL, "width": 1, "shape": "hv"},
                marker={
                    "color": [colors.get(p, views.NEUTRAL) for p in points],
                    "size": size,
                    "opacity": 1.0 if name == "Pareto front" else 0.45,
                    "line": {"color": "black", "width": 0.6},
                },
                hovertemplate=f"%{{text}}<br>{x_name} %{{x:.4g}}<br>{y_name} %{{y:.4g}}<extra></extra>",
            )
        )
    if best is not None and (rows["point"] == best).any():
        row = rows[rows["point"] == best].iloc[0]
        fig.add_trace(
            go.Scatter(
                x=[row[f"{x_name}_mean"]],
                y=[row[f"{y_name}_mean"]],
                mode="markers",
                meta=best,
                name=f"best: {labels.get(best, best)}",
                marker={"size": 16, "symbol": "star", "color": colors.get(best, views.NEUTRAL)},
            )
        )
    fig.update_layout(**LAYOUT, xaxis_title=f"{x_name} (fold mean)", yaxis_title=f"{y_name} (fold mean)")
    return fig


def features(go, table: pd.DataFrame, summary, param, best, colors):
    """glmnet's path for a network's inputs: each input feature's weight-row norm in the first layer against
    `param` (fold means; one line per feature), the number of features kept above, the chosen point marked."""
    from plotly.subplots import make_subplots

    along = views.through(summary, param, best)["point"]
    rows = table[table["point"].isin(along)].sort_values(param, kind="stable")
    x, axis = log_x(rows[param])
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, row_heights=[0.25, 0.75], vertical_spacing=0.05)
    kept = rows.groupby("point", sort=False).agg(at=(param, "first"), kept=("kept", "sum"))
    fig.add_trace(
        go.Scatter(
            x=log_x(kept["at"])[0],
            y=kept["kept"],
            mode="lines+markers",
            name="features kept",
            line={"color": views.NEUTRAL, "shape": "hv"},
            hovertemplate=f"{param} %{{x:.3g}}: %{{y}} kept<extra></extra>",
        ),
        row=1,
        col=1,
    )
    for feature, path in rows.groupby("feature", sort=False):
        fig.add_trace(
            go.Scatter(
                x=x[path.index],
                y=path["norm"],
                mode="lines+markers",
                name=str(feature),
                customdata=list(path["point"]),
                hovertemplate=f"{feature}<br>{param} %{{x:.3g}}: ‖row‖ %{{y:.4g}}<extra></extra>",
                marker={"size": 6, "color": [colors[p] for p in path["point"]]},  # a point: its colour
                line={"width": 1},  # a feature: a line of its own
            ),
            row=2,
            col=1,
        )
    at = rows.index[rows["point"] == best]
    if best is not None and len(at):
        fig.add_vline(x=float(x[at[0]]), line={"color": colors.get(best, views.NEUTRAL), "dash": "dash"}, name=best)
    fig.update_xaxes(title_text=param, row=2, col=1, **axis)
    fig.update_xaxes(row=1, col=1, **axis)
    fig.update_yaxes(title_text="kept", row=1, col=1)
    fig.update_yaxes(title_text="‖weight row‖ (fold mean)", row=2, col=1)
    fig.update_layout(**{**LAYOUT, "height": 520})
    return fig
