"""A run directory as a TensorBoard HParams experiment, for people who already live in TensorBoard.

`export(run_dir, logdir)` writes, from the stored tables only:

- `logdir/` the experiment: every swept parameter with the values it took, and the metrics;
- `logdir/<point id>/` one TensorBoard run per configuration point: its parameters (`hparams`),
  per epoch the fold means of `train_loss`, `val_loss`, `train_penalty` and every validation
  metric, and at the last epoch the same final values the summary reports (`<metric>_mean`).

Open with `tensorboard --logdir <logdir>` and the HPARAMS tab.
"""

from __future__ import annotations

import time
from pathlib import Path

import pandas as pd

from reglab.decide.selection import _missing, param_columns_of


def export(run_dir, logdir=None) -> Path:
    """Write the HParams experiment of `run_dir` into `logdir` (default `<run_dir>/tensorboard`).

    Written with the `tensorboard` package's own event writer and summary protos: TensorFlow is not needed
    (nor imported)."""
    import sys
    import types

    if "tensorflow" not in sys.modules:
        # TensorBoard's own switch to its TensorFlow stub (the `tensorboard.compat.notf` module its
        # `//tensorboard/compat:no_tensorflow` build adds): where TensorFlow is installed, its writer would import
        # it (~4 s, ~460 MB and TensorFlow's C++ start-up lines) for nothing the stub does not do
        sys.modules.setdefault("tensorboard.compat.notf", types.ModuleType("tensorboard.compat.notf"))
    from tensorboard.compat.proto.event_pb2 import Event
    from tensorboard.plugins.hparams import summary_v2 as hp
    from tensorboard.plugins.scalar.summary_v2 import scalar_pb
    from tensorboard.summary.writer.event_file_writer import EventFileWriter

    from reglab.show.report import tables

    _, _, found, _ = tables(run_dir)  # from the stored member files
    epochs, summary = found.epochs, found.summary
    run_dir = Path(run_dir)
    logdir = Path(logdir) if logdir is not None else run_dir / "tensorboard"
    params = param_columns_of(summary)
    hparams = {p: hp.HParam(p, _domain(hp, summary[p])) for p in params}
    metrics = ["val_loss"] + [
        c[: -len("_mean")]
        for c in summary.columns
        if c.startswith("val_") and c.endswith("_mean") and c != "val_loss_mean"
    ]

    def write(folder: Path, summaries) -> None:  # [(step, Summary proto)] as one run's event file
        folder.mkdir(parents=True, exist_ok=True)
        writer = EventFileWriter(str(folder))
        for step, proto in summaries:
            writer.add_event(Event(wall_time=time.time(), step=step, summary=proto))
        writer.close()

    config = hp.hparams_config_pb(
        hparams=list(hparams.values()),
        metrics=[hp.Metric(f"{m}_mean", display_name=f"{m} (mean over folds)") for m in metrics],
    )
    write(logdir, [(0, config)])
    ok = epochs[epochs["status"] == "ok"]
    scalars = ["train_loss", "train_penalty", *metrics]
    for _, row in summary.iterrows():
        values = {hparams[p]: _plain(row[p]) for p in params if not _missing(row[p])}
        curve = ok[ok["point"] == row["point"]].groupby("epoch")[scalars].mean().sort_index()
        events = [(0, hp.hparams_pb(values, trial_id=str(row["point"])))]
        for epoch, means in curve.iterrows():
            events += [(int(epoch), scalar_pb(n, float(means[n]))) for n in scalars if not _missing(means[n])]
        last = int(curve.index.max()) if len(curve) else 0
        events += [
            (last, scalar_pb(f"{m}_mean", float(row[f"{m}_mean"]))) for m in metrics if not _missing(row[f"{m}_mean"])
        ]
        write(logdir / str(row["point"]), events)
    return logdir


def _domain(hp, column: pd.Series):
    values = [_plain(v) for v in column.dropna().unique()]
    if all(isinstance(v, bool) for v in values) or all(isinstance(v, str) for v in values):
        return hp.Discrete(values)
    if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        return hp.Discrete([float(v) for v in values])
    return hp.Discrete([str(v) for v in values])


def _plain(value):
    value = value.item() if hasattr(value, "item") else value
    return float(value) if isinstance(value, int) and not isinstance(value, bool) else value
