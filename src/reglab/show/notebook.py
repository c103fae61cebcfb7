"""What a sweep looks like in a notebook: `SweepResult` draws itself (`_repr_html_`: `sweep_html`) and a run
directory's report shows inline (`SweepResult.report()`: `Inline`). HTML with the figures as embedded PNGs (drawn
by `reglab.show.plots` from the same tables as the run directory's files), every user-given text escaped; nothing
is fetched. (`LossLedger` draws itself too: `reglab.kit.ledger_view`.)"""

from __future__ import annotations

import base64
import html
import tempfile
from pathlib import Path

import pandas as pd

from reglab.show.html_report import _e, _num  # the report's escaping and number format


def _png(draw) -> str:
    """An `<img>` of what `draw(path)` writes (a `reglab.show.plots` figure), inline."""
    with tempfile.TemporaryDirectory(prefix="reglab-notebook-") as folder:
        path = Path(folder) / "figure.png"
        draw(path)
        data = base64.b64encode(path.read_bytes()).decode("ascii")
    return f'<img style="max-width:640px" src="data:image/png;base64,{data}">'


def _choice(choice: dict) -> str:
    return ", ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in choice["params"].items())


def sweep_html(result) -> str:
    """A `SweepResult` as HTML: the decision (best, one-standard-error, test score, or why nothing was chosen), the
    Pareto front if a study had several objectives, the summary table with each point's verdict, and the validation
    curve (or, with no numeric parameter varying, the learning curves); the two gradients' shares where recorded."""
    from reglab.decide.selection import param_columns_of
    from reglab.show import plots, views

    summary = result.summary
    params = param_columns_of(summary)
    lines = []
    if result.best is not None:
        score = ", ".join(f"{k} = {_num(v)}" for k, v in result.best["score"].items())
        lines.append(f"<li><b>Best</b>: {_e(_choice(result.best))} ({_e(score)})</li>")
    else:
        lines.append("<li><b>Nothing selected</b>: no configuration could be chosen; the verdicts say why</li>")
    if result.best_1se is not None:
        lines.append(f"<li><b>One-standard-error rule</b>: {_e(_choice(result.best_1se))}</li>")
    if result.pareto is not None:
        front = "; ".join(_e(views.label(row, params)) for _, row in result.pareto.iterrows())
        lines.append(f"<li><b>Pareto front</b> ({len(result.pareto)} points): {front}</li>")
    if result.test:
        scores = ", ".join(f"{k} = {_num(v)}" for k, v in result.test.items())
        lines.append(f"<li><b>Test set</b> (used once, after selection): {_e(scores)}</li>")
    verdicts = {} if result.diagnosis is None else result.diagnosis.set_index("point")["verdict"].to_dict()
    metrics = [c[: -len("_mean")] for c in summary.columns if c.startswith("val_") and c.endswith("_mean")]
    head = ["rank", *params, *[f"{m} (mean ± std)" for m in metrics], "members ok", "verdict"]
    body = []
    for _, row in summary.iterrows():
        cells = ["–" if pd.isna(row["rank"]) else str(int(row["rank"]))]
        cells += [_e(row[p]) for p in params]
        cells += [f"{_num(row[f'{m}_mean'])} ± {_num(row[f'{m}_std'])}" for m in metrics]
        cells += [f"{row['ok']}/{row['members']}", _e(verdicts.get(row["point"], ""))]
        chosen = result.best is not None and row["point"] == result.best["point_id"]
        style = ' style="font-weight:bold"' if chosen else ""
        body.append(f"<tr{style}>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    table = (
        "<table><thead><tr>"
        + "".join(f"<th>{_e(h)}</th>" for h in head)
        + "</tr></thead><tbody>"
        + "".join(body)
        + "</tbody></table>"
    )
    param = views.sweep_param(summary)
    best = (result.best or {}).get("point_id")
    one_se = (result.best_1se or {}).get("point_id")
    if param is not None:
        figure = _png(lambda path: plots.validation_curve(summary, param, path, best_point=best, best_1se=one_se))
    else:
        figure = _png(lambda path: plots.learning_curves(result.epochs, path))
    if len(views.gradient_share(result.epochs)):  # the two gradients, where the sweep recorded them
        figure += _png(lambda path: plots.gradient_share(result.epochs, path))
    members = len(result.members)
    return (
        f"<div><h3>reglab sweep: {len(summary)} configurations, {members} members</h3>"
        f"<ul>{''.join(lines)}</ul>{table}{figure}</div>"
    )


class Inline:
    """A run directory's report.html shown inline (an `<iframe>` holding the page itself: it works offline)."""

    def __init__(self, path):
        self.path = Path(path)

    def _repr_html_(self) -> str:
        page = self.path.read_text(encoding="utf-8")
        return (
            f'<iframe style="width:100%;height:720px;border:1px solid #ddd" srcdoc="{html.escape(page, quote=True)}">'
            "</iframe>"
        )
