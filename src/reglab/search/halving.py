"""Successive halving inside a population: hopeless points stop early, their slots go to points not yet tried.

A population's slots (`reglab.engine.slots`) hold some of the sweep's points at a time, each with all its
folds. Rungs are at `min_epochs · eta^i` epochs (below `epochs`). When a point reaches a rung, its score is
its members' mean of the selection quantity (`val_loss` by default) at that epoch — all its folds live or go
together —, and it goes on only if that score is among the best `1/eta` of every score recorded at the
rung so far, its own and those of the points reaching it at the same boundary included (ASHA's rule,
Li et al. 2020, without pausing: a point that stops never comes back). The best point of each rung always
goes on. The slots a point leaves are given at once to the next points not yet tried, fold by fold, so the
population stays full until every point has started; a point whose member diverged stops at its next rung.

>>> h = Halving(eta=3, min_epochs=1)
>>> h.rungs(20)
[1, 3, 9]
>>> keep = h.keeps({"a": 0.5, "b": 0.7, "c": 0.9}, {"a": 0.5, "b": 0.7, "c": 0.9})
>>> sorted(keep)
['a']
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from reglab import validation

KINDS = ("halving",)


@dataclass(frozen=True)
class Halving:
    """`eta`: a rung keeps the best 1/eta of its points; `min_epochs`: the first rung."""

    eta: int = 3
    min_epochs: int = 1

    @classmethod
    def of(cls, prune, eta, min_epochs, epochs: int) -> "Halving | None":
        """`Sweep(prune=…, eta=…, min_epochs=…)`, checked against the sweep's `epochs`; None without pruning."""
        if prune is None:
            return None
        if prune not in KINDS:
            raise ValueError(f"`prune` is one of {KINDS} or None. Received: prune={prune!r}")
        eta = validation.number(eta, "eta", low=2, integer=True)
        min_epochs = validation.number(min_epochs, "min_epochs", low=1, integer=True)
        if min_epochs >= epochs:
            raise ValueError(
                f"`min_epochs` (the first rung) is below `epochs`, or nothing is ever stopped early. "
                f"Received: min_epochs={min_epochs}, epochs={epochs}"
            )
        return cls(eta, min_epochs)

    def rungs(self, epochs: int) -> list[int]:
        out, rung = [], self.min_epochs
        while rung < epochs:
            out.append(rung)
            rung *= self.eta
        return out

    def keeps(self, recorded: dict, arriving: dict) -> set:
        """The arriving points (id → score, lower is better, NaN the worst) that go on: those whose score is
        at most the 1/eta quantile (the lower one) of every score recorded at the rung, theirs included."""
        scores = np.array([math.inf if math.isnan(v) else v for v in recorded.values()])
        cutoff = np.quantile(scores, 1 / self.eta, method="lower")
        return {p for p, v in arriving.items() if not math.isnan(v) and v <= cutoff}

    def scheduler(self, members, epochs: int, select: str, sign: float) -> "Scheduler":
        return Scheduler(self, members, epochs, select, sign)


class Scheduler:
    """One population's halving: `size` (its slots) and `decide(epoch, board)` (`reglab.engine.slots.Slots`).
    `sign`: 1 where a lower `select` is better, -1 where higher is. `stopped`: point id → the rung it stopped at."""

    def __init__(self, halving: Halving, members, epochs: int, select: str, sign: float):
        self.halving, self.members, self.select, self.sign = halving, members, select, sign
        self.rungs = halving.rungs(epochs)
        self.points: dict[str, list[int]] = {}  # point id → its members' positions
        for position, member in enumerate(members):
            self.points.setdefault(member.point_id, []).append(position)
        order = list(self.points)
        # as many points at once as the first rung keeps going, at least one, at most all
        at_once = min(len(order), max(1, math.ceil(len(order) / halving.eta)))
        self.size = sum(len(self.points[p]) for p in order[:at_once])
        if [m for p in order[:at_once] for m in self.points[p]] != list(range(self.size)):
            raise ValueError("The population's members are not grouped by point (plan order).")
        self.waiting = order[at_once:]
        self.recorded: dict[int, dict] = {rung: {} for rung in self.rungs}
        self.stopped: dict[str, int] = {}

    def _score(self, positions, rung: int, board) -> float:
        values = []
        for m in positions:
            rows = board.rows.get(self.members[m].id) or []
            if not rows or rows[-1]["epoch"] != rung or rows[-1]["status"] != "ok":
                return math.nan  # diverged (its rows stopped) or failed
            values.append(float(rows[-1].get(self.select, math.nan)))
        return self.sign * float(np.mean(values))

    def decide(self, epoch: int, board) -> dict:
        changes = {}
        slots_of: dict[str, list[int]] = {}
        for s, m in enumerate(board.occupant):
            if m is not None:
                slots_of.setdefault(self.members[m].point_id, []).append(s)
        for rung in self.rungs:
            arriving = {
                p: self._score(self.points[p], rung, board)
                for p, slots in slots_of.items()
                if board.local(slots[0], epoch) == rung
            }
            if not arriving:
                continue
            self.recorded[rung].update(arriving)
            going_on = self.halving.keeps(self.recorded[rung], arriving)
            for p in arriving:
                if p not in going_on:
                    self.stopped[p] = rung
                    changes.update({s: None for s in slots_of.pop(p)})
        free = [s for s, m in enumerate(board.occupant) if m is None or changes.get(s, m) is None]
        while self.waiting and free:
            point = self.waiting[0]
            seats = self._seats(point, free, board)
            if seats is None:
                break
            self.waiting.pop(0)
            changes.update(seats)
            free = [s for s in free if s not in seats]
        return changes

    def _seats(self, point: str, free: list[int], board) -> dict | None:
        """{slot: member} for the point's members in free slots of their folds, or None if some fold has none."""
        seats, left = {}, list(free)
        for m in self.points[point]:
            member = self.members[m]
            slot = next(
                (
                    s
                    for s in left
                    if np.array_equal(self.members[board.latest[s]].train, member.train)
                    and np.array_equal(self.members[board.latest[s]].val, member.val)
                ),
                None,
            )
            if slot is None:
                return None
            seats[slot] = m
            left.remove(slot)
        return seats
