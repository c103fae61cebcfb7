"""A `LossLedger` in a notebook (`_repr_html_`): the prediction loss and the penalty per epoch, drawn and tabled, and
the penalty terms it recorded — HTML with the figure as an embedded PNG, user-given names escaped.

>>> import pandas as pd
>>> rows = [dict(epoch=e, train_loss=1 / e, train_penalty=0.1, val_loss=1 / e + 0.05) for e in (1, 2, 3)]
>>> page = ledger_html(pd.DataFrame(rows), {"dense/kernel": "L2(0.01)"})
>>> "<img" in page and "dense/kernel" in page and "L2(0.01)" in page
True
"""

from __future__ import annotations

import base64
import html
import io
import math

import pandas as pd


def _e(value) -> str:
    return html.escape(str(value))


def _num(value) -> str:
    return "–" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.4g}"


def ledger_html(history: pd.DataFrame, terms: dict) -> str:
    """A `LossLedger`'s epochs as HTML: the prediction loss and the penalty per epoch (training, and validation where
    `fit` validated), drawn and tabled, and the penalty terms it recorded."""
    if history.empty:
        return "<div><b>LossLedger</b>: no epoch recorded yet (pass it to <code>fit(callbacks=[...])</code>)</div>"
    columns = [c for c in ("train_loss", "train_penalty", "val_loss") if c in history]

    def draw() -> str:
        from matplotlib.figure import Figure  # without pyplot: a notebook's backend stays as it was
        from matplotlib.ticker import MaxNLocator

        shares = [c for c in history.columns if c.startswith("grad_share:")]  # `LossLedger(gradients=...)`
        fig = Figure(figsize=(11.0, 3.6) if shares else (6.4, 3.6))
        ax, *right = fig.subplots(1, 2 if shares else 1) if shares else [fig.subplots()]
        if shares:  # seed 004's tug of war: the penalty's share of each regularized weight's gradient
            for column in shares:
                right[0].plot(history["epoch"], history[column], "-o", markersize=3, label=column.split(":", 1)[1])
            right[0].axhline(0.5, color="grey", lw=0.8, ls=":")
            right[0].set_ylim(0, 1)
            right[0].set_xlabel("epoch")
            right[0].xaxis.set_major_locator(MaxNLocator(integer=True))
            right[0].set_title("Penalty's share of the gradient, ‖∇R‖ / (‖∇L‖ + ‖∇R‖)")
            right[0].grid(alpha=0.3)
            right[0].legend(fontsize=8)
        for column, style in zip(columns, ("-", ":", "--")):
            ax.plot(history["epoch"], history[column], style, label=column.replace("_", " "))
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_title("Prediction loss and penalty per epoch")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
        fig.tight_layout()
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", dpi=110)
        return f'<img style="max-width:{1100 if shares else 640}px" src="data:image/png;base64,{base64.b64encode(buffer.getvalue()).decode()}">'

    rows = "".join(
        "<tr>"
        + "".join(
            f"<td>{_e(row['epoch'])}</td>" if c == "epoch" else f"<td>{_num(row[c])}</td>" for c in ["epoch", *columns]
        )
        + "</tr>"
        for _, row in history.tail(10).iterrows()
    )
    named = "".join(f"<li><code>{_e(name)}</code>: {_e(what)}</li>" for name, what in terms.items())
    return (
        f"<div><h3>LossLedger: {len(history)} epochs</h3>{draw()}"
        f"<table><thead><tr>{''.join(f'<th>{_e(c)}</th>' for c in ['epoch', *columns])}</tr></thead>"
        f"<tbody>{rows}</tbody></table>"
        + (f"<p>penalty terms:</p><ul>{named}</ul>" if named else "<p>no penalty terms</p>")
        + "</div>"
    )
