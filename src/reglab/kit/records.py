"""The epoch record: one row per member per epoch, the one format from engine to report.

Fixed columns (absent values are NaN):

=================  ==================================================================================
`epoch`            1-based: the row describes the model after this many epochs
`train_loss`       prediction loss on the training batches, mean over the epoch (no penalty)
`train_penalty`    regularization loss added to those batches, mean over the epoch
`train_total`      `train_loss + train_penalty`: what Keras reports as `loss`
`val_loss`         prediction loss on the validation data at the epoch's end (no penalty)
`val_penalty`      the penalty at the epoch's end weights (Keras adds it to `val_loss`)
`val_total`        `val_loss + val_penalty`: what Keras reports as `val_loss`
`train_<metric>`   each compiled metric on the training batches, e.g. `train_accuracy`
`val_<metric>`     the same on the validation data, e.g. `val_accuracy`
`status`           "ok", or "diverged" once a loss is not finite
=================  ==================================================================================

Per member (the same on each of its rows, added by the sweep from the data, `reglab.decide.baseline`):
`baseline_loss`, the validation loss of the constant predictor fitted on the member's training fold
(class priors, training mean), in the units of `val_loss`; `baseline_predictor`, which one it is.

Per-term and per-weight columns, named `<quantity>:<name>` (names as in `reglab.penalty_terms`):

=========================  =========================================================================
`penalty:<term>`           that term's share of `train_penalty` (mean over the epoch)
`scale:<term>`             the schedule's multiplier of that term this epoch (scheduled terms only)
`decay:<weight>`           decoupled weight decay wd outside the loss, as wd/2·Σw² at the epoch's end
                           (the L2 penalty it equals under plain SGD); decayed weights only
`l1:<weight>`              Σ|w| of the weight at the epoch's end
`l2:<weight>`              ‖w‖₂ = √Σw² at the epoch's end
`zeros:<weight>`           number of entries exactly 0.0
`near_zero:<weight>`       fraction of entries with |w| < the near-zero threshold (1e-3 by default)
=========================  =========================================================================

Engines that train several members add identity columns (`member`, the config point, `fold`,
`seed`) in front; nothing else changes.

Besides the epoch records, a sweep keeps each member's *final weight histogram*
(`weight_histogram`): per weight, how many entries have log10|w| in each bin of `HISTOGRAM_EDGES`
(exact zeros in a bin of their own), so weight distributions can be drawn from stored tables.
"""

from __future__ import annotations

import math

import numpy as np

FIXED = (
    "epoch",
    "train_loss",
    "train_penalty",
    "train_total",
    "val_loss",
    "val_penalty",
    "val_total",
)
BASELINE = ("baseline_loss", "baseline_predictor")
WEIGHT_STATS = ("l1", "l2", "zeros", "near_zero")
NEAR_ZERO = 1e-3


def column(quantity: str, name: str) -> str:
    """The column of a per-term or per-weight quantity, e.g. `column("l2", "dense/kernel")`."""
    return f"{quantity}:{name}"


def weight_stats(name: str, values, near_zero: float = NEAR_ZERO) -> dict[str, float]:
    """Size and sparsity of one weight tensor, as record columns.

    >>> weight_stats("dense/kernel", np.array([0.0, 3.0, -4.0, 1e-4]))
    {'l1:dense/kernel': 7.0001, 'l2:dense/kernel': 5.000000001, 'zeros:dense/kernel': 1, 'near_zero:dense/kernel': 0.5}
    """
    w = np.asarray(values, dtype=np.float64).ravel()
    return {
        column("l1", name): float(np.abs(w).sum()),
        column("l2", name): float(np.sqrt(np.square(w).sum())),
        column("zeros", name): int(np.count_nonzero(w == 0.0)),
        column("near_zero", name): float(np.mean(np.abs(w) < near_zero)) if w.size else math.nan,
    }


def frame(rows: list[dict]):
    """One member's epoch records as a table, zero counts as integers (what every engine returns)."""
    import pandas as pd

    table = pd.DataFrame(rows)
    zeros = [c for c in table.columns if c.startswith("zeros:")]
    table[zeros] = table[zeros].astype("int64")
    return table


def status(train_total: float, previously: str = "ok") -> str:
    """ "diverged" from the first epoch whose training loss is not finite on; "ok" before that."""
    if previously == "diverged" or not math.isfinite(train_total):
        return "diverged"
    return "ok"


HISTOGRAM_EDGES = np.arange(-8.0, 2.01, 0.25)  # log10|w|: 1e-8 … 100 in quarter decades


def weight_histogram(name: str, values) -> list[dict]:
    """Rows (weight, low, high, count) of one weight's log10|w| histogram; exact zeros get low = high
    = -inf, |w| below 1e-8 and above 100 go to the outermost bins (which extend to ±inf).

    >>> [(r["low"], r["count"]) for r in weight_histogram("d/kernel", np.array([0.0, 1e-3, 1.5e-3, -0.5])) if r["count"]]
    [(-inf, 1), (-3.0, 2), (-0.5, 1)]
    """
    w = np.abs(np.asarray(values, dtype=np.float64).ravel())
    zeros = int(np.count_nonzero(w == 0.0))
    logs = np.log10(w[w > 0])
    edges = HISTOGRAM_EDGES
    index = np.clip(np.searchsorted(edges, logs, side="right") - 1, 0, len(edges) - 2)
    counts = np.bincount(index, minlength=len(edges) - 1)
    rows = [{"weight": name, "low": -math.inf, "high": -math.inf, "count": zeros}]
    rows += [{"weight": name, "low": float(lo), "high": float(hi), "count": int(c)}
             for lo, hi, c in zip(edges[:-1], edges[1:], counts)]
    return rows
