"""Re-render a run directory from its stored records: tables, summary, plots. Nothing is retrained."""

from __future__ import annotations

from pathlib import Path

from reglab.decide import diagnosis, selection

from reglab.show import html_report
from reglab.show.plots import render_all
from reglab.store import RunDirectory, RunDirectoryInUse


def tables(run_dir, warn: bool = True):
    """(store, spec, epochs, members, summary, histograms, document) of a run directory, computed from
    its stored member files; nothing is written."""
    store = RunDirectory(run_dir)
    spec = store.spec()
    epochs = store.all_records()
    if epochs.empty:
        raise ValueError(f"The run directory has no completed member yet. Received: run_dir={str(run_dir)!r}")
    epochs = selection.combine([frame for _, frame in epochs.groupby("member", sort=False)])
    members = selection.member_table(epochs)
    select = spec["spec"].get("select", "val_loss")
    mode = selection.mode_for(select)
    summary = selection.summarize(members, epochs, by=select, mode=mode)
    best, one_se, nothing = selection.decisions(summary, select, mode, warn=warn)
    test = store.read_json("test.json")
    test = test["test"] if best and test and test.get("point_id") == best["point_id"] else None
    document = selection.document(summary, best, test, len(members), one_se, diagnosis.diagnose(epochs), nothing)
    histograms = store.all_histograms()
    return store, spec, epochs, members, summary, histograms if len(histograms) else None, document


def render(run_dir, warn: bool = True) -> dict:
    """Rebuild `epochs.parquet`, `members.parquet`, `histograms.parquet`, `summary.json`, `plots/` and
    `report.html` from `members/` and `histograms/`.

    Works on an interrupted run too (it reports the members that completed). Returns the summary
    document (`best`, `best_1se`, `test`, `summary`, `diagnosis`, `members_complete`) plus `table`
    (the summary as a DataFrame).
    """
    store, spec, epochs, members, summary, histograms, document = tables(run_dir, warn)
    store.write_table("epochs.parquet", epochs)
    store.write_table("members.parquet", members)
    if histograms is not None:
        store.write_table("histograms.parquet", histograms)
    store.write_json("summary.json", document)
    render_all(epochs, summary, Path(run_dir) / "plots", best_point=(document["best"] or {}).get("point_id"),
               best_1se=(document["best_1se"] or {}).get("point_id"), histograms=histograms)
    html_report.write(run_dir, epochs, summary, members, histograms, document, spec["spec"])
    document["table"] = summary
    return document


def refresh(run_dir) -> dict:
    """What `reglab report` does: `render` under the run directory's lock (taken without waiting).

    While another process holds the lock (a sweep still running) the directory's files are that
    process's to write — it renders them when it ends, and a report finishing after it would put back
    an older summary — so the document is computed from the members complete so far and nothing is
    written; `document["in_use"]` then says so in one line.
    """
    store = RunDirectory(run_dir)
    store.spec()  # not a run directory (or a damaged spec.json): ValueError, before a lock file is made
    try:
        store.lock()
    except RunDirectoryInUse as busy:
        *_, summary, _, document = tables(run_dir)
        document["table"] = summary
        who = busy.holder and f"process {busy.holder.get('pid')} on host {busy.holder.get('host')}"
        document["in_use"] = (f"{run_dir} is in use by {who or 'another process'}: shown from the "
                              f"{document['members_complete']} members complete so far, nothing was rewritten "
                              f"(that run renders its files when it ends)")
        return document
    try:
        return render(run_dir)
    finally:
        store.close()
