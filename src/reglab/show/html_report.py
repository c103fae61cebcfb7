"""`report.html`: a finished sweep as one self-contained interactive page (plotly, works offline).

The decision first (best point, one-standard-error point, the once-only test score, the verdicts),
then the validation curve, learning curves, regularization paths, weight sizes and penalty share,
a table of every configuration and the spec. Everything is drawn from the stored tables.

Safety: every user-supplied string (run name, parameter values, spec, error messages) is HTML-escaped
in the page and `<`, `>`, `&` are \\u-escaped inside the figures' JSON, so no string can close a
script element; a Content-Security-Policy lets only this page's own scripts (carrying its nonce) run
and forbids loading anything from anywhere.
"""

from __future__ import annotations

import datetime as _dt
import html
import json
import math
import secrets
from pathlib import Path

import numpy as np
import pandas as pd

from reglab.decide import features
from reglab.decide.selection import param_columns_of
from reglab.show import html_figures, views


def write(run_dir, epochs, summary, members, histograms, document: dict, spec: dict, title: str | None = None) -> Path:
    """Render and atomically write `<run_dir>/report.html`; returns its path."""
    from reglab.files import atomic_path

    target = Path(run_dir) / "report.html"
    page = render(epochs, summary, members, histograms, document, spec, title or Path(run_dir).resolve().name)
    with atomic_path(target, suffix=".html") as tmp:
        tmp.write_text(page, encoding="utf-8")
    return target


def render(epochs, summary, members, histograms, document: dict, spec: dict, title: str) -> str:
    """The page as a string."""
    import plotly.graph_objects as go
    import plotly.offline

    params = param_columns_of(summary)
    param = views.sweep_param(summary)
    rows = summary.set_index("point")
    labels = {p: views.label(rows.loc[p], params) for p in views.point_order(summary, params)}  # legends in λ order
    colors = views.point_colors(summary, params)  # a point has this colour in every figure (and in the PNGs)
    best = (document.get("best") or {}).get("point_id")
    one_se = (document.get("best_1se") or {}).get("point_id")
    figures = []  # (heading, explanation, figure)
    if param is not None:
        figures.append(
            (
                "Validation curve",
                f"Final validation loss against {param}, mean ± std over folds. "
                "Star: the best point; diamond: the one-standard-error choice.",
                html_figures.validation(go, summary, param, best, one_se, labels, colors),
            )
        )
    figures.append(
        (
            "Learning curves",
            "Prediction loss (no penalty) per epoch, mean over folds: solid validation, "
            "dashed training. Click legend entries to hide points.",
            html_figures.learning(go, epochs, labels, colors),
        )
    )
    if param is not None:
        figures.append(
            (
                "Regularization paths",
                f"Each kernel's size and sparsity at the end of training against {param} "
                "(mean ± std over folds); a kernel is a line style, a point a marker colour.",
                html_figures.paths(go, epochs, summary, param, best, one_se, labels, colors),
            )
        )
        if histograms is not None and len(histograms):
            figures.append(
                (
                    "Weight sizes",
                    "log10 |w| of all kernels of every member of the point; exact zeros are counted apart (legend).",
                    html_figures.histogram(go, histograms, epochs, summary, param, best, colors),
                )
            )
    selection_of = features.paths(members)  # which input features the first layer keeps, per point
    if param is not None and selection_of is not None and len(selection_of):
        figures.append(
            (
                "Feature selection",
                f"Each input feature's weight-row norm in the first layer at the end of training against {param} "
                "(fold means; exactly 0 where every fold dropped it), the number of features kept above; dashed: "
                "the chosen point.",
                html_figures.features(go, selection_of, summary, param, best, colors),
            )
        )
    front = document.get("pareto_front")
    if front:
        figures.append(
            (
                "Pareto front",
                f"Every configuration that could be chosen, by {front['objectives'][0]} and {front['objectives'][1]} "
                "(fold means); the line joins the Pareto front, the points no other beats on every objective"
                + (f" (of {', '.join(front['objectives'])})" if len(front["objectives"]) > 2 else "")
                + ". reglab's choice (star) is by the first alone.",
                html_figures.pareto(go, summary, front, best, labels, colors),
            )
        )
    figures.append(
        (
            "Penalty share",
            "The penalty's share of the training objective per epoch, mean over folds.",
            html_figures.share(go, epochs, labels, colors),
        )
    )

    tug = views.gradient_share(epochs)  # seed 004's two gradients, where the sweep recorded them
    if len(tug):
        figures.append(
            (
                "The two gradients",
                "Per regularized weight, the penalty's share of its gradient, ‖∇R‖ / (‖∇L‖ + ‖∇R‖), at each epoch's "
                "end on a fixed batch of training rows (mean over folds): the prediction loss pulls the weight toward "
                "the data, the penalty toward zero. Dotted: 50 %, the balance at a minimum of the regularized "
                "objective — near it the penalty holds the weight (λ decides its size), near 0 the data do.",
                html_figures.gradients(go, tug, labels, colors),
            )
        )

    nonce = secrets.token_urlsafe(16)
    scripts, sections = [], []
    for i, (heading, note, figure) in enumerate(figures):
        sections.append(
            f'<section><h2>{_e(heading)}</h2><p class="note">{_e(note)}</p>'
            f'<div id="fig{i}" class="figure"></div></section>'
        )
        scripts.append(
            f"var f{i} = {_json(figure.to_plotly_json())}; "
            f'Plotly.newPlot("fig{i}", f{i}.data, f{i}.layout, {{"responsive": true, "displaylogo": false}});'
        )
    verdicts = pd.DataFrame(document.get("diagnosis") or [])
    head = (
        f"<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; script-src 'nonce-{nonce}'; "
        "style-src 'unsafe-inline'; img-src data:; font-src data:\">"
    )
    return "\n".join(
        [
            "<!doctype html>",
            '<html lang="en"><head><meta charset="utf-8">',
            head,
            f"<title>{_e(title)} — reglab report</title>",
            f"<style>{_CSS}</style>",
            "</head><body>",
            f"<h1>{_e(title)}</h1>",
            f'<p class="note">reglab report · {len(members)} members · {len(summary)} configurations · '
            f"generated {_dt.datetime.now().strftime('%Y-%m-%d %H:%M')}</p>",
            _decision(document, labels, verdicts, _study(spec) + _halving(epochs), spec.get("refit")),
            *sections,
            "<section><h2>Every configuration</h2>",
            _table(summary, labels, verdicts, document),
            "</section>",
            "<section><h2>Spec</h2><pre>",
            _e(json.dumps(spec, indent=2, default=str)),
            "</pre></section>",
            f'<script nonce="{nonce}">{plotly.offline.get_plotlyjs()}</script>',
            f'<script nonce="{nonce}">{"".join(scripts)}</script>',
            "</body></html>",
        ]
    )


# --- the decision and the table -----------------------------------------------------------------


def _study(spec: dict) -> str:
    """The decision's line on an Optuna study where the sweep's search was one (`reglab.search.studies`)."""
    search = (spec or {}).get("search")
    study = search.get("optuna") if isinstance(search, dict) else None
    if not study:
        return ""
    where = f"; kept in {_e(study['storage'])}" if study.get("storage") else ""
    if study.get("objectives"):
        where += f"; objectives {_e(', '.join(study['objectives']))} (the Pareto front below)"
    return (
        f"<li><b>Optuna study</b>: {study['n_trials']} trials ({_e(study['sampler'])}), asked {study['population']} at "
        f'a time, each round trained as one population on every fold{where}<br><span class="note">each trial was '
        "told its fold mean; the choice below is reglab's, among the trials that trained every epoch</span></li>"
    )


def _halving(epochs: pd.DataFrame) -> str:
    """The decision's line on successive halving where it stopped points: how many, at which epochs, and the
    member-epochs spent against the full grid's (every member every epoch)."""
    stopped = epochs[epochs["status"] == "pruned"]
    if stopped.empty:
        return ""
    at = stopped.groupby("point")["epoch"].max().value_counts().sort_index()
    full = epochs["member"].nunique() * int(epochs["epoch"].max())
    return (
        f"<li><b>Successive halving</b>: {int(at.sum())} of {epochs['point'].nunique()} configurations stopped early "
        f"({_e(', '.join(f'{n} after epoch {e}' for e, n in at.items()))}); {len(epochs)} of the full grid's {full} "
        f'member-epochs ({len(epochs) / full:.0%})<br><span class="note">only configurations that trained every '
        "epoch can be chosen</span></li>"
    )


def _decision(document: dict, labels: dict, verdicts: pd.DataFrame, halving: str = "", refit=True) -> str:
    best, one_se, test = document.get("best") or {}, document.get("best_1se") or {}, document.get("test")
    by_point = verdicts.set_index("point") if len(verdicts) else pd.DataFrame()
    lines = []
    if document.get("nothing_selected"):
        lines.append(
            f'<li class="bad"><b>Nothing selected</b>: {_e(document["nothing_selected"])}<br><span class="note">'
            "the table below and the verdicts say what happened to each configuration</span></li>"
        )
    for name, choice, rule in (
        ("Best", best, "lowest mean validation score over the folds"),
        (
            "One-standard-error",
            one_se,
            "the most regularized point within one standard error of the best (glmnet's lambda.1se)",
        ),
    ):
        if not choice:
            continue
        score = ", ".join(f"{k} = {_num(v)}" for k, v in choice.get("score", {}).items())
        verdict = ""
        if choice.get("point_id") in by_point.index:
            v = by_point.loc[choice["point_id"]]
            verdict = f" — <b>{_e(v['verdict'])}</b>: {_e(v['recommendation'])}"
        lines.append(
            f"<li><b>{_e(name)}</b>: {_e(labels.get(choice.get('point_id'), choice.get('point_id')))} "
            f'({_e(score)}){verdict}<br><span class="note">{_e(rule)}</span></li>'
        )
    stuck = verdicts[verdicts["verdict"] == "not learning"] if len(verdicts) else verdicts
    if len(stuck):
        names = "; ".join(str(labels.get(p, p)) for p in stuck["point"])
        lines.append(
            f'<li class="bad"><b>Not learning</b> ({len(stuck)} of {len(verdicts)} configurations): {_e(names)}'
            '<br><span class="note">validation loss no better than the constant predictor\'s (the training '
            "folds' class priors or mean target); never selected by the validation loss</span></li>"
        )
    lines.append(halving)
    chosen_features = document.get("features")
    if chosen_features:  # feature selection: what the chosen model's first layer keeps and drops
        kept, dropped = chosen_features["kept"], chosen_features["dropped"]
        lines.append(
            f"<li><b>Features</b>: the best point keeps {len(kept)} of {len(kept) + len(dropped)} input features; "
            f"dropped (exactly zero in every fold): {_e(', '.join(dropped)) or 'none'}</li>"
        )
    for key, computed in (document.get("auto_grid") or {}).items():
        values = computed["values"]
        lines.append(
            f"<li><b>{_e(key)} from the data</b>: λ_max = {_num(computed['lambda_max'])} = 100 · λ₀, λ₀ = "
            f"{_num(computed['lambda_0'])} where the penalty's gradient equals the prediction loss's at "
            f"initialization; {len(values)} values from {_num(values[0])} down to {_num(values[-1])} "
            "(<code>reglab.search.auto</code>)</li>"
        )
    if test:
        scores = ", ".join(f"{k} = {_num(v)}" for k, v in test.items())
        which = "the one-standard-error point" if refit == "1se" else "the best point"
        lines.append(f"<li><b>Test set</b> (used once, {which} refit on all non-test data): {_e(scores)}</li>")
    else:
        lines.append("<li><b>Test set</b>: none held out (<code>test_size</code>) or no refit.</li>")
    return f'<section class="decision"><h2>Decision</h2><ul>{"".join(lines)}</ul></section>'


def _table(summary: pd.DataFrame, labels: dict, verdicts: pd.DataFrame, document: dict) -> str:
    by_point = verdicts.set_index("point") if len(verdicts) else pd.DataFrame()
    metrics = [c[: -len("_mean")] for c in summary.columns if c.startswith("val_") and c.endswith("_mean")]
    baseline = "baseline_loss_mean" in summary and summary["baseline_loss_mean"].notna().any()
    pruning = "pruned" in summary and bool(summary["pruned"].any())  # successive halving stopped some points
    header = [
        "configuration",
        "rank",
        *[f"{m} (mean ± std)" for m in metrics],
        *(["constant predictor's loss"] if baseline else []),
        "best epoch",
        "members ok / failed / diverged" + (" / pruned" if pruning else ""),
        "verdict",
        "recommendation",
        "why",
    ]
    marks = [
        ((document.get("best") or {}).get("point_id"), "best"),
        ((document.get("best_1se") or {}).get("point_id"), "1-SE"),
    ]
    rows = []
    for _, row in summary.iterrows():
        v = by_point.loc[row["point"]] if row["point"] in by_point.index else {}
        mark = ", ".join(m for p, m in marks if p == row["point"])
        cells = [labels[row["point"]] + (f"  [{mark}]" if mark else ""), _num(row["rank"])]
        cells += [f"{_num(row[f'{m}_mean'])} ± {_num(row[f'{m}_std'])}" for m in metrics]
        cells += [_num(row["baseline_loss_mean"])] if baseline else []
        cells += [
            _num(row.get("curve_best_epoch")),
            f"{row['ok']} / {row['failed']} / {row['diverged']}" + (f" / {row['pruned']}" if pruning else ""),
            v.get("verdict", ""),
            v.get("recommendation", ""),
            v.get("reason", ""),
        ]
        bad = v.get("verdict", "") in ("not learning", "diverged", "failed")  # unusable: seen at a glance
        rows.append(('<tr class="bad">' if bad else "<tr>") + "".join(f"<td>{_e(c)}</td>" for c in cells) + "</tr>")
    return (
        "<table><thead><tr>"
        + "".join(f"<th>{_e(h)}</th>" for h in header)
        + "</tr></thead><tbody>"
        + "".join(rows)
        + "</tbody></table>"
    )


# --- figures ------------------------------------------------------------------------------------


def _json(obj) -> str:
    """JSON that is safe inside <script>: no `<`, `>` or `&` survive as such (\\u-escaped)."""
    import plotly.io

    text = plotly.io.json.to_json_plotly(obj)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _e(value) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def _num(value) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return f"{value:.4g}" if isinstance(value, (float, np.floating)) else str(value)


_CSS = """
body { font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 1200px; padding: 0 1rem; color: #222; }
h1 { margin-bottom: 0.2rem; } h2 { border-bottom: 1px solid #ddd; padding-bottom: 0.2rem; }
.note { color: #666; font-size: 0.9rem; } .decision { background: #f4f8ff; padding: 0.5rem 1rem; border-radius: 6px; }
.figure { width: 100%; min-height: 420px; }
table { border-collapse: collapse; font-size: 0.85rem; } td, th { border: 1px solid #ddd; padding: 4px 6px; vertical-align: top; }
th { background: #f6f6f6; } tr.bad td, li.bad { background: #fdecea; } pre { background: #f6f6f6; padding: 0.8rem; overflow-x: auto; font-size: 0.8rem; }
"""
