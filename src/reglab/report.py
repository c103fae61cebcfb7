"""Re-render a run directory from its stored records: tables, summary, plots. Nothing is retrained."""

from __future__ import annotations

from pathlib import Path

from reglab import selection
from reglab.plots import render_all
from reglab.store import RunDirectory


def render(run_dir) -> dict:
    """Rebuild `epochs.parquet`, `members.parquet`, `summary.json` and `plots/` from `members/`.

    Works on an interrupted run too (it reports the members that completed). Returns the summary
    document (`best`, `test`, `summary`, plus `members_complete`).
    """
    store = RunDirectory(run_dir)
    spec = store.spec()
    epochs = store.all_records()
    if epochs.empty:
        raise ValueError(f"The run directory has no completed member yet. Received: run_dir={str(run_dir)!r}")
    epochs = selection.combine([frame for _, frame in epochs.groupby("member", sort=False)])
    members = selection.member_table(epochs)
    select = spec["spec"].get("select", "val_loss")
    summary = selection.summarize(members, epochs, by=select, mode=selection.mode_for(select))
    best = selection.best(summary, select)
    test = store.read_json("test.json")
    test = test["test"] if test and test.get("point_id") == best["point_id"] else None
    document = selection.document(summary, best, test, len(members))
    store.write_table("epochs.parquet", epochs)
    store.write_table("members.parquet", members)
    store.write_json("summary.json", document)
    render_all(epochs, summary, Path(run_dir) / "plots", best_point=best["point_id"])
    document["table"] = summary
    return document
