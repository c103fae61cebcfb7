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
`grad_loss:<weight>`       ‖∇L‖, the prediction loss's gradient, at the epoch's end on a fixed batch, and
`grad_penalty:<weight>`    ‖∇R‖, the weight's penalty's; `grad_cosine:<weight>` between them and
`grad_share:<weight>`      ‖∇R‖ / (‖∇L‖ + ‖∇R‖) (`reglab.kit.gradients`; `LossLedger(gradients=…)`,
                           `Sweep(gradients=True)`)
=========================  =========================================================================

Every row is built by `epoch_row` (the ledger's and the population engine's alike), a member's rows
become its table with `member_records`: identity columns in front (`member`, `point`, `fold`,
`repeat`, `seed`), then the point's parameters, `seconds` (its training time), the epoch rows, the
baseline. Which columns are the point's parameters is stored with the table (`params`), never
inferred from where they stand.

Besides the epoch records, a sweep keeps each member's *final weight histogram*
(`weight_histogram`): per weight, how many entries have log10|w| in each bin of `HISTOGRAM_EDGES`
(exact zeros in a bin of their own), so weight distributions can be drawn from stored tables.
"""

from __future__ import annotations

import math

import numpy as np

from reglab.kit.gradients import columns as gradient_columns

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
IDENTITY = ("member", "point", "fold", "repeat", "seed")
WEIGHT_STATS = ("l1", "l2", "zeros", "near_zero")
NEAR_ZERO = 1e-3


def column(quantity: str, name: str) -> str:
    """The column of a per-term or per-weight quantity, e.g. `column("l2", "dense/kernel")`."""
    return f"{quantity}:{name}"


def weight_stats(values, near_zero: float = NEAR_ZERO) -> tuple[float, float, int, float]:
    """Size and sparsity of one weight tensor: (L1, L2, exact zeros, fraction near zero), `WEIGHT_STATS`.

    >>> weight_stats(np.array([0.0, 3.0, -4.0, 1e-4]))
    (7.0001, 5.000000001, 1, 0.5)
    """
    w = np.asarray(values, dtype=np.float64).ravel()
    return (
        float(np.abs(w).sum()),
        float(np.sqrt(np.square(w).sum())),
        int(np.count_nonzero(w == 0.0)),
        float(np.mean(np.abs(w) < near_zero)) if w.size else math.nan,
    )


def epoch_row(
    epoch: int,
    train: tuple,
    val: tuple | None = None,
    metrics: dict | None = None,
    penalties: dict | None = None,
    scales: dict | None = None,
    weights: dict | None = None,
    decay: dict | None = None,
    gradients: dict | None = None,
    previous: str = "ok",
    finite: bool = True,
    extra: dict | None = None,
) -> dict:
    """One member's record of one epoch, in the documented column order; every engine builds its rows here.

    `train` and `val`: (prediction loss, penalty, total) — `total` None is their sum; `val` None:
    no validation (NaN). `metrics`: {"train_accuracy": …, "val_accuracy": …} (names as Keras logs them,
    prefixed). `penalties` and `scales`: by term; `weights`: {path: (l1, l2, zeros, near_zero)} (see
    `weight_stats`); `decay`: by weight path; `gradients`: {path: (‖∇L‖, ‖∇R‖, ∇L·∇R)} (`reglab.kit.gradients`);
    `previous`: the status of the epoch before; `finite`: False when the engine found something else not finite
    (the weights); `extra`: other logged numbers (a learning rate).

    >>> row = epoch_row(1, (0.5, 0.1, None), weights={"d/kernel": (7.0, 5.0, 1, 0.5)})
    >>> row["train_total"], row["val_loss"], row["zeros:d/kernel"], row["status"]
    (0.6, nan, 1, 'ok')
    """
    loss, penalty, total = train
    row = {
        "epoch": int(epoch),
        "train_loss": float(loss),
        "train_penalty": float(penalty),
        "train_total": float(loss + penalty if total is None else total),
    }
    v_loss, v_penalty, v_total = val if val is not None else (math.nan, math.nan, math.nan)
    row.update(
        val_loss=float(v_loss),
        val_penalty=float(v_penalty),
        val_total=float(v_loss + v_penalty if v_total is None else v_total),
    )
    metrics = metrics or {}
    for prefix in ("train_", "val_"):
        row.update({k: float(v) for k, v in metrics.items() if k.startswith(prefix)})
    row.update({k: float(v) for k, v in (extra or {}).items()})
    row.update({column("penalty", k): float(v) for k, v in (penalties or {}).items()})
    row.update({column("scale", k): float(v) for k, v in (scales or {}).items()})
    for path, numbers in (weights or {}).items():
        for quantity, value in zip(WEIGHT_STATS, numbers):
            row[column(quantity, path)] = int(value) if quantity == "zeros" else float(value)
    row.update({column("decay", k): float(v) for k, v in (decay or {}).items()})
    row.update(gradient_columns(gradients or {}))
    row["status"] = status(row["train_total"] if finite else math.nan, previous)
    return row


def frame(rows: list[dict]):
    """One member's epoch rows as a table, zero counts as integers."""
    import pandas as pd

    table = pd.DataFrame(rows)
    zeros = [c for c in table.columns if c.startswith("zeros:")]
    table[zeros] = table[zeros].astype("int64")
    return table


def failed(error: str):
    """The one row of a member that could not train (it failed to build, compile or fit)."""
    import pandas as pd

    return pd.DataFrame([{"epoch": 0, "status": "failed", "error": error}])


def input_norms(weights: dict | None, names) -> dict:
    """Each input feature's weight-row norm in the first layer that reads the features, `{"feature:<name>": norm}`
    (exactly 0.0 where a penalty dropped the feature): the rows of the first 2-D kernel (in the model's weight
    order) with one row per feature — a Dense layer on the inputs. Empty where there is none (convolutions,
    several inputs) or no weights (a member that failed).

    >>> input_norms({"net/dense/kernel": np.array([[3.0, 4.0], [0.0, 0.0]]), "net/dense/bias": np.zeros(2)}, ["a", "b"])
    {'feature:a': 5.0, 'feature:b': 0.0}
    """
    kernel = next((np.asarray(w) for w in (weights or {}).values() if np.ndim(w) == 2 and len(w) == len(names)), None)
    if kernel is None or not len(names):
        return {}
    norms = np.sqrt(np.square(kernel.astype(np.float64)).sum(axis=1))
    return {f"feature:{name}": float(norm) for name, norm in zip(names, norms)}


def member_records(rows, member, seconds: float, baseline: tuple = (math.nan, ""), final: dict | None = None):
    """A member's table: identity, the point's parameters, `seconds`, its epoch rows (a table, or a list of
    `epoch_row`s), the baseline (`reglab.decide.baseline.for_member`), and `final` (`input_norms`: values of
    the trained weights, on the last row); `attrs["params"]` names the parameters. The one place a member's
    table is put together, whatever trained it."""
    import pandas as pd

    table = frame(rows) if isinstance(rows, list) else rows
    n = len(table)
    head = {
        "member": member.id,
        "point": member.point_id,
        "fold": member.fold,
        "repeat": member.repeat,
        "seed": member.seed,
        **member.point,
        "seconds": float(seconds),
    }
    # the end of training (NaN on the epochs before), then the baseline: every column added in one concat — one
    # assignment per column cost ~17 ms a member (64 feature columns), more than training a member-epoch
    final = {column: [math.nan] * (n - 1) + [float(value)] if n else [] for column, value in (final or {}).items()}
    after = {**final, "baseline_loss": [float(baseline[0])] * n, "baseline_predictor": [baseline[1]] * n}
    table = pd.concat(
        [
            pd.DataFrame({k: [v] * n for k, v in head.items()}, index=table.index),
            table.drop(columns=[c for c in after if c in table.columns]),
            pd.DataFrame(after, index=table.index),
        ],
        axis=1,
    )
    table.attrs["params"] = list(member.point)
    return table


def params(table) -> list[str]:
    """The point's parameters among a table's columns, as `member_records` stored them (tables written
    before they were stored: the columns between `seed` and `seconds`, where they were put)."""
    stored = table.attrs.get("params")
    if stored is not None:
        return [p for p in stored if p in table.columns]
    columns = list(table.columns)
    if "seed" in columns and "seconds" in columns:
        return columns[columns.index("seed") + 1 : columns.index("seconds")]
    return []


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
    rows += [
        {"weight": name, "low": float(lo), "high": float(hi), "count": int(c)}
        for lo, hi, c in zip(edges[:-1], edges[1:], counts)
    ]
    return rows


def member_histogram(member_id: str, weights: dict | None):
    """A member's final weight histograms (`weight_histogram` of each weight, {path: array}) as a table with
    a `member` column; None without weights (a member that failed)."""
    import pandas as pd

    if not weights:
        return None
    frame = pd.DataFrame([row for path, values in weights.items() for row in weight_histogram(path, values)])
    frame.insert(0, "member", member_id)
    return frame
