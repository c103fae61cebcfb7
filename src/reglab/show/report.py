"""A run directory's derived files — tables, summary.json, plots, report.html — from one `Outcome`
(`reglab.decide.outcome`): a sweep writes them from the tables it has just computed, `reglab report`
from the tables it reads back (`tables`). Nothing is retrained."""

from __future__ import annotations

from reglab.decide import pareto
from reglab.decide.outcome import Outcome, outcome
from reglab.show import html_report
from reglab.show.plots import render_all
from reglab.store import RunDirectory, RunDirectoryInUse


def tables(run_dir, warn: bool = True) -> tuple[RunDirectory, dict, Outcome, dict | None]:
    """(store, spec, outcome, test score) of a run directory, from its stored member files; nothing is
    written. The test score is the stored one when it was taken for the point chosen now."""
    store = RunDirectory(run_dir)
    spec = store.spec()
    frames = store.member_tables()
    if not frames:
        raise ValueError(f"The run directory has no completed member yet. Received: run_dir={str(run_dir)!r}")
    select = spec["spec"].get("select", "val_loss")
    found = outcome(frames, select, store.all_histograms(), warn=warn, objectives=pareto.objectives_of(spec["spec"]))
    test = store.read_json("test.json")
    test = test["test"] if found.best and test and test.get("point_id") == found.best["point_id"] else None
    return store, spec["spec"], found, test


def write(store: RunDirectory, found: Outcome, test: dict | None, spec: dict) -> dict:
    """Write `epochs.parquet`, `members.parquet`, `histograms.parquet`, `summary.json`, `plots/` and
    `report.html` of `found`; returns the summary document."""
    document = found.document(test)
    ranges = store.read_json("ranges.json")
    if ranges:  # "auto" grid entries: the range computed from the data
        document["auto_grid"] = ranges
    store.write_table("epochs.parquet", found.epochs)
    store.write_table("members.parquet", found.members)
    if found.histograms is not None:
        store.write_table("histograms.parquet", found.histograms)
    store.write_json("summary.json", document)
    render_all(
        found.epochs,
        found.summary,
        store.path / "plots",
        best_point=(found.best or {}).get("point_id"),
        best_1se=(found.best_1se or {}).get("point_id"),
        histograms=found.histograms,
    )
    html_report.write(store.path, found.epochs, found.summary, found.members, found.histograms, document, spec)
    return document


def render(run_dir, warn: bool = True) -> dict:
    """Rebuild a run directory's derived files from `members/` and `histograms/` (an interrupted run's
    too: it reports the members that completed). Returns the summary document (`best`, `best_1se`,
    `test`, `summary`, `diagnosis`, `members_complete`, `nothing_selected`) plus `table` (the summary
    as a DataFrame) and `advice` (what to change when members trained and nothing could be chosen)."""
    store, spec, found, test = tables(run_dir, warn)
    return _shown(write(store, found, test, spec), found)


def _shown(document: dict, found: Outcome) -> dict:
    """The summary document as `reglab report` shows it: with the table and the advice."""
    return {**document, "table": found.summary, "advice": found.advice}


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
        _, _, found, test = tables(run_dir)
        document = _shown(found.document(test), found)
        who = busy.holder and f"process {busy.holder.get('pid')} on host {busy.holder.get('host')}"
        document["in_use"] = (
            f"{run_dir} is in use by {who or 'another process'}: shown from the "
            f"{document['members_complete']} members complete so far, nothing was rewritten "
            f"(that run renders its files when it ends)"
        )
        return document
    try:
        return render(run_dir)
    finally:
        store.close()
