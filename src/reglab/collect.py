"""A sweep's members as they finish: each member's table built once (`reglab.kit.records.member_records`),
written to the run directory the moment it exists, and read back instead of retrained when a run resumes.

Whatever trains the members (an engine in this process; later a worker process or a cluster) hands each
finished member to `Collected.finish`; the sweep asks `todo` which members still need training.
"""

from __future__ import annotations

import pandas as pd

from reglab.decide import baseline
from reglab.kit import records


class Collected:
    """The tables, histograms and (with `keep_weights`) final weights of the members finished so far."""

    def __init__(self, dataset, training, store=None, keep_weights: bool = False, progress=None):
        self.dataset, self.training, self.store = dataset, training, store
        self.keep_weights, self.progress = keep_weights, progress
        self.tables: dict[str, pd.DataFrame] = {}  # member id -> its table
        self.histograms: dict[str, pd.DataFrame] = {}
        self.weights: dict[str, dict] = {}
        self._resumed, self._total = 0, 0
        shape = None if dataset.structured else getattr(dataset.x, "shape", None)
        # the features by name (a DataFrame's columns) or index, where one input of rows of features feeds the model
        self.feature_names = (
            (dataset.feature_names or tuple(map(str, range(shape[1])))) if len(shape or ()) == 2 else ()
        )

    def todo(self, members) -> list:
        """The members not finished yet; those the run directory holds are read back (never retrained).
        Progress counts from here: `finish` reports (done, total, member id) over the members returned."""
        completed = self.store.completed() if self.store else set()
        for member in members:
            if member.id in completed and member.id not in self.tables:
                self.tables[member.id] = self.store.member_records(member.id)
                stored = self.store.member_histogram(member.id)
                if stored is not None:
                    self.histograms[member.id] = stored
        todo = [m for m in members if m.id not in self.tables]
        self._resumed, self._total = len(self.tables), len(todo)
        return todo

    def expect(self, count: int) -> None:
        """`count` more members to train than `todo` returned (a sampler's trials planned during training)."""
        self._total += count

    def has(self, members) -> bool:
        """Whether every one of `members` is finished (has its table)."""
        return all(m.id in self.tables for m in members)

    def finish(self, member, trained) -> None:
        """Record a member an engine has trained (`reglab.engine.training.Trained`): its table, histogram and
        weights, in the run directory first (atomic), then here."""
        baseline_row = baseline.for_member(member, self.dataset, self.training)
        final = records.input_norms(trained.weights, self.feature_names)
        table = records.member_records(trained.rows, member, trained.seconds, baseline_row, final)
        histogram = records.member_histogram(member.id, trained.weights)
        if self.store:
            self.store.record_member(member.id, table, histogram)
        self.tables[member.id] = table
        if histogram is not None:
            self.histograms[member.id] = histogram
        if self.keep_weights and trained.weights:
            self.weights[member.id] = trained.weights
        if self.progress:
            self.progress(len(self.tables) - self._resumed, self._total, member.id)

    def of(self, members) -> tuple[list[pd.DataFrame], pd.DataFrame | None]:
        """The tables of `members` (all finished), and their histograms in one table (None if none)."""
        frames = [self.histograms[m.id] for m in members if m.id in self.histograms]
        return [self.tables[m.id] for m in members], (pd.concat(frames, ignore_index=True) if frames else None)
