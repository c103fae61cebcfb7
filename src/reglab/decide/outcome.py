"""What a sweep found, computed once from its members' tables: the one function behind `SweepResult`,
`summary.json`, the plots and `report.html`, whether the tables come from memory (a sweep that just
ran) or from a run directory (`reglab report`).

Nothing selectable is of two kinds. When no member trained at all (every one failed or diverged) the
sweep has no result to give: `trained` is False and the sweep raises. When members trained but no
configuration can be chosen yet — typically none beats the constant predictor after a few epochs —
that is a finding: the outcome says why (`nothing`) and what to change (`advice`).
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from reglab.decide import diagnosis, features, pareto, selection


@dataclass
class Outcome:
    epochs: pd.DataFrame  # every member's epoch records (`reglab.kit.records`)
    members: pd.DataFrame  # one row per member (`selection.member_table`)
    summary: pd.DataFrame  # one row per point, ranked (`selection.summarize`)
    best: dict | None
    best_1se: dict | None
    nothing: str | None  # why no point was chosen (None when one was)
    diagnosis: pd.DataFrame
    histograms: pd.DataFrame | None
    pareto: pd.DataFrame | None = None  # a multi-objective study's front (`reglab.decide.pareto`), else None
    features: pd.DataFrame | None = None  # per point and input feature, its norm and whether kept (`features`)

    @property
    def trained(self) -> bool:
        """Whether any member trained to the end ("ok"): without one there is nothing to report but errors."""
        return bool((self.members["status"] == "ok").any())

    @property
    def advice(self) -> str | None:
        """When members trained and none could be chosen: what to change, in one sentence."""
        if self.nothing is None or not self.trained:
            return None
        stuck = self.diagnosis[self.diagnosis["verdict"] == "not learning"]["recommendation"]
        advice = (
            "; ".join(dict.fromkeys(stuck)) or "train longer (more epochs), with a higher learning rate, or a smaller λ"
        )
        return f"no configuration could be chosen: {self.nothing} What to change: {advice}."

    def document(self, test: dict | None = None) -> dict:
        """The run directory's summary.json (`selection.document`)."""
        document = selection.document(
            self.summary, self.best, test, len(self.members), self.best_1se, self.diagnosis, self.nothing
        )
        if self.pareto is not None:  # the points on the front with their parameters and objectives' fold means
            document["pareto_front"] = pareto.listed(self.pareto)
        if self.features is not None and self.best is not None:  # the chosen point's feature selection
            kept, dropped = features.chosen(self.features, self.best["point_id"])
            document["features"] = {"kept": kept, "dropped": dropped}
        return document


def tables(frames: list[pd.DataFrame], select: str) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """(epochs, members, per-point summary) of members' tables: what `summary` and `outcome` are drawn from
    (computed once for both where a search's last round gave the sweep's every member)."""
    epochs = selection.combine(frames)
    members = selection.member_table(epochs)
    return epochs, members, selection.summarize(members, epochs, by=select, mode=selection.mode_for(select))


def summary(drawn: tuple, select: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """What a search round is judged on, from some members' `tables`: the per-point table, and per point and
    epoch the mean of `select` over the point's members (all its folds step together; a member that failed
    or diverged adds nothing) — columns point, epoch, `select`: a study's intermediate values."""
    epochs, _, table = drawn
    kept = epochs[epochs["status"].isin(("ok", "pruned"))]
    return table, kept.groupby(["point", "epoch"], sort=False)[select].mean().reset_index()


def outcome(
    frames: list[pd.DataFrame],
    select: str,
    histograms: pd.DataFrame | None = None,
    warn: bool = True,
    objectives: list[str] | None = None,
    drawn: tuple | None = None,
) -> Outcome:
    """Every table and decision of a sweep from its members' tables (`reglab.kit.records.member_records`).
    `warn`: say once which configurations were excluded from selection. `objectives`: a multi-objective
    study's, for its Pareto front. `drawn`: `tables(frames, select)` where the caller has them already."""
    epochs, members, table = drawn if drawn is not None else tables(frames, select)
    best, best_1se, nothing = selection.decisions(table, select, selection.mode_for(select), warn=warn)
    return Outcome(
        epochs,
        members,
        table,
        best,
        best_1se,
        nothing,
        diagnosis.diagnose(epochs),
        histograms if histograms is not None and len(histograms) else None,
        pareto.front(table, objectives) if objectives else None,
        features.paths(members),
    )
