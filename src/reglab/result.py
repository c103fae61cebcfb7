"""`SweepResult`: what a sweep found, as the user holds it (the same tables as the run directory's)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import keras
import pandas as pd


class NothingToTrain(RuntimeError):
    """No configuration's model could be built (raised before anything is written)."""


@dataclass
class SweepResult:
    """What a sweep found. Tables are pandas DataFrames in the run directory's formats."""

    epochs: pd.DataFrame  # one row per member per epoch (reglab.kit.records + identity and point columns)
    members: pd.DataFrame  # one row per member: final and best-epoch values, status
    summary: pd.DataFrame  # one row per point: mean / std / sem over folds, rank
    best: dict | None  # the selected point: {"point_id", "params", "score"} (None: nothing selectable)
    best_1se: dict | None = None  # the one-standard-error choice (`reglab.decide.selection.best_1se`)
    diagnosis: pd.DataFrame | None = None  # per point: verdict, recommendation, reason (`reglab.decide.diagnosis`)
    histograms: pd.DataFrame | None = None  # per member and weight: final log10|w| histogram
    pareto: pd.DataFrame | None = None  # a multi-objective study's Pareto front: summary rows (`reglab.decide.pareto`)
    features: pd.DataFrame | None = (
        None  # per point and input feature: weight-row norm, kept (`reglab.decide.features`)
    )
    weights: dict | None = None  # {member id: {weight path: final array}} with `run(..., keep_weights=True)`
    timing: dict = field(default_factory=dict)  # the engine's figures for the members trained in this call, summed
    test: dict | None = None  # the selected point refit on all non-test data, scored once on the test set
    model: keras.Model | None = field(default=None, repr=False)  # that refit model (None if refit=False)
    run_dir: Path | None = None
    ranges: dict | None = None  # `grid={key: "auto"}`: {key: {lambda_max, values, n, ratio}} (`reglab.search.auto`)

    def _repr_html_(self) -> str:
        """In a notebook: the decision, the summary table with each point's verdict, the validation curve
        (`reglab.show.notebook`)."""
        from reglab.show.notebook import sweep_html

        return sweep_html(self)

    def report(self):
        """The run directory's report.html, shown inline where the result is displayed (a notebook cell).

        Raises:
            ValueError: the sweep ran without a run directory (it wrote no report)."""
        from reglab.show.notebook import Inline

        if self.run_dir is None or not (self.run_dir / "report.html").is_file():
            raise ValueError(
                "The report is written into a run directory: run the sweep with run_dir=... "
                f"Received: run_dir={None if self.run_dir is None else str(self.run_dir)!r}"
            )
        return Inline(self.run_dir / "report.html")

    def plot(self, folder) -> list[Path]:
        """Render learning curves, validation curves, penalty share, regularization paths and weight
        histograms as PNG files into `folder`."""
        from reglab.show.plots import render_all

        return render_all(
            self.epochs,
            self.summary,
            folder,
            best_point=(self.best or {}).get("point_id"),
            best_1se=(self.best_1se or {}).get("point_id"),
            histograms=self.histograms,
        )
