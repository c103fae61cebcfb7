"""Successive halving inside a population: hopeless points stop early, their slots go to points not yet tried.

A population's slots (`reglab.engine.slots`) hold some of the sweep's points at a time, each with all its
folds. Rungs are at `min_epochs · eta^i` epochs (below `epochs`). When a point reaches a rung, its score is
its members' mean of the selection quantity (`val_loss` by default) at that epoch — all its folds live or go
together —, and it goes on only if that score is among the best `1/eta` of every score recorded at the
rung so far, its own and those of the points reaching it at the same boundary included (ASHA's rule,
Li et al. 2020, without pausing: a point that stops never comes back). The best point of each rung always
goes on. The slots a point leaves are given at once to the next points not yet tried, fold by fold, so the
population stays full until every point has started; a point whose member diverged stops at its next rung.
A scheduler given `more` (a sampler's next trial, `reglab.search.studies`) seats every point it starts with and,
once no point waits, asks `more` for a point to fill the freed slots — planned then, admitted by the engine
into the running program (`reglab.engine.admission`) —, and tells `over` of each point as it stops, so that
the sampler has seen it before it is asked again.

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
from reglab.search import plan

KINDS = ("halving", "hyperband")


@dataclass(frozen=True)
class Halving:
    """`eta`: a rung keeps the best 1/eta of its points; `min_epochs`: the first rung. `kind` "hyperband"
    hedges the first rung's guess (Li et al., JMLR 2018): the points are dealt to brackets whose first rungs
    are `epochs · eta^-s` (s = s_max … 0, none below `min_epochs`), `ceil((s_max + 1) / (s + 1) · eta^s)` shares
    to bracket s, so that some points start with fewer epochs before being judged, others with more, and the
    last bracket's train every epoch; each bracket halves its own points, at its own rungs."""

    eta: int = 3
    min_epochs: int = 1
    kind: str = "halving"

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
        return cls(eta, min_epochs, prune)

    def rungs(self, epochs: int, first: int | None = None) -> list[int]:
        out, rung = [], first or self.min_epochs
        while rung < epochs:
            out.append(rung)
            rung *= self.eta
        return out

    def brackets(self, epochs: int) -> list[tuple[int, int]]:
        """(first rung, shares) per bracket: one bracket (`min_epochs`) for halving; Hyperband's for "hyperband"
        (a first rung of `epochs`: that bracket's points train every epoch).

        >>> Halving(3, 1, "hyperband").brackets(27)
        [(1, 27), (3, 12), (9, 6), (27, 4)]
        """
        if self.kind == "halving":
            return [(self.min_epochs, 1)]
        top = int(math.floor(math.log(epochs / self.min_epochs, self.eta) + 1e-9))
        return [
            (max(self.min_epochs, int(round(epochs / self.eta**s))), math.ceil((top + 1) / (s + 1) * self.eta**s))
            for s in range(top, -1, -1)
        ]

    def keeps(self, recorded: dict, arriving: dict) -> set:
        """The arriving points (id → score, lower is better, NaN the worst) that go on: those whose score is
        at most the 1/eta quantile (the lower one) of every score recorded at the rung, theirs included."""
        scores = np.array([math.inf if math.isnan(v) else v for v in recorded.values()])
        cutoff = np.quantile(scores, 1 / self.eta, method="lower")
        return {p for p, v in arriving.items() if not math.isnan(v) and v <= cutoff}

    def scheduler(self, members, epochs: int, select: str, sign: float, more=None, over=None) -> "Scheduler":
        return Scheduler(self, members, epochs, select, sign, more, over)


def seated(board, members) -> dict[str, list[int]]:
    """Point id → the slots its members hold now (`reglab.engine.slots.Board`)."""
    slots_of: dict[str, list[int]] = {}
    for slot, member in enumerate(board.occupant):
        if member is not None:
            slots_of.setdefault(members[member].point_id, []).append(slot)
    return slots_of


def fold_mean(members, positions, epoch: int, board, select: str) -> float:
    """The mean of `select` over the members at `positions` (a point's folds) at their own `epoch`: NaN unless
    each of them recorded that epoch and trained it ("ok") — one that diverged or failed stopped its rows."""
    values = []
    for position in positions:
        rows = board.rows.get(members[position].id) or []
        if not rows or rows[-1]["epoch"] != epoch or rows[-1]["status"] != "ok":
            return math.nan
        values.append(float(rows[-1].get(select, math.nan)))
    return float(np.mean(values))


def fold_means(members, positions, board, select: str) -> dict[int, float]:
    """Epoch → the mean of `select` over the members at `positions` (a point's folds), for every epoch each of them
    recorded and trained ("ok"): a point's learning curve so far (a study's intermediate values)."""
    rows = [board.rows.get(members[p].id) or [] for p in positions]
    out = {}
    for epoch in range(1, min(len(r) for r in rows) + 1):
        if all(r[epoch - 1]["status"] == "ok" for r in rows):
            out[epoch] = float(np.mean([float(r[epoch - 1].get(select, math.nan)) for r in rows]))
    return out


class Turns:
    """Points taking turns in a population's slots (the base of halving's `Scheduler` and a study's `Pruning`):
    each point's members (its folds) by position, the points waiting for slots, and — with `more()`, the members
    (one per fold, the population's folds) of a point planned now or None when there are no more — points planned
    during training (a sampler's next trials), seated in freed slots once no point waits. `over(board, point,
    positions, how)` is told each point that stops: `how` "pruned" (before its last epoch), "done" (every epoch)
    or "refused" (planned late, not admitted: the engine's `Board.refused` says why; `positions` None)."""

    def __init__(self, members, epochs: int, more=None, over=None):
        self.members, self.epochs, self.more, self.over = members, epochs, more, over
        self.points: dict[str, list[int]] = {}  # point id → its members' positions
        for position, member in enumerate(members):
            self.points.setdefault(member.point_id, []).append(position)
        self.waiting: list[str] = []  # points not yet seated
        self.late: dict[str, list] = {}  # point id → its members planned by `more`, until the engine admits them
        self.ended: dict[str, str] = {}  # the points `over` was told of → how they stopped
        self.first = len(self.points)  # the points it starts with; those planned by `more` come after them
        self.resumed = False  # restored from a checkpoint: `more` and `over` are told again what it knew (`_again`)

    def planned(self, point: str) -> None:
        """A point `more` planned (a scheduler's bookkeeping)."""

    def state(self) -> dict:
        """What is remembered (the points not yet seated, the points and their members' positions — those planned
        late too —, those told stopped and how), JSON-ready: a checkpoint's, given back by `restore`."""
        self._admitted()
        return {"waiting": self.waiting, "points": self.points, "ended": self.ended}

    def restore(self, state: dict) -> None:
        """Back to a checkpoint's `state` (its population's late members admitted again by the engine, in order);
        the next `decide` first tells `more` and `over` what they were told before it (`_again`)."""
        ended = state.get("ended", {})  # (a list in checkpoints written before it said how)
        self.waiting, self.ended = list(state["waiting"]), dict(ended) if isinstance(ended, dict) else {}
        points = state.get("points") or self.points
        self.points = {p: [int(m) for m in positions] for p, positions in points.items()}
        self.resumed = True

    def _again(self, board) -> None:
        """After a restore: the points planned late are asked for again (`more(again=point)`: a sampler replays or
        re-creates their trials), then every stopped point is told again (`over`: already told ones are skipped
        by a study that kept them), so the search is where it was at the checkpoint."""
        self.resumed = False
        if self.more is not None:
            for point in list(self.points)[self.first :]:
                self.more(again=self.members[self.points[point][0]].point)
        for point, how in self.ended.items():
            if self.over is not None:
                self.over(board, point, self.points.get(point), how)

    def _over(self, board, point: str, how: str) -> None:
        self.ended[point] = how
        if self.over is not None:
            self.over(board, point, self.points.get(point), how)

    def _admitted(self, board=None) -> None:
        """The points planned late that the engine has admitted since (their positions now) — and, given the
        board, those it refused (`over` is told)."""
        if self.resumed and board is not None:
            self._again(board)
        for point, planned in list(self.late.items()):
            if point in self.waiting:
                continue  # not seated yet
            positions = [plan.position(self.members, m) for m in planned]
            if None not in positions:
                self.points[point] = positions
                del self.late[point]
            elif board is not None:
                del self.late[point]
                self._over(board, point, "refused")

    def _refill(self, board, changes: dict) -> None:
        """Tell `over` of the points whose members all trained every epoch, then seat waiting points — or, with
        `more`, points planned now — in the free slots (`changes` gains their seats)."""
        for p, positions in self.points.items():
            if p not in self.ended and all(board.ended.get(m) == self.epochs for m in positions):
                self._over(board, p, "done")
        free = [s for s, m in enumerate(board.occupant) if m is None or changes.get(s, m) is None]
        while free and (self.waiting or self.more is not None):
            if not self.waiting:  # a point planned now (a sampler's next trial, having seen those that stopped)
                planned = self.more()
                if not planned:
                    self.more = None
                    break
                self.late[planned[0].point_id] = list(planned)
                self.planned(planned[0].point_id)
                self.waiting.append(planned[0].point_id)
            seats = self._seats(self.waiting[0], free, board)
            if seats is None:
                break
            self.waiting.pop(0)
            changes.update(seats)
            free = [s for s in free if s not in seats]

    def _seats(self, point: str, free: list[int], board) -> dict | None:
        """{slot: member} for the point's members in free slots of their folds, or None if some fold has none
        (a member by position, or a point planned late by its `plan.Member`s)."""
        seats, left = {}, list(free)
        planned = self.late.get(point) or [self.members[m] for m in self.points[point]]
        for m, member in zip(self.late.get(point) or self.points[point], planned):
            slot = next((s for s in left if plan.same_rows(self.members[board.latest[s]], member)), None)
            if slot is None:
                return None
            seats[slot] = m
            left.remove(slot)
        return seats


class Scheduler(Turns):
    """One population's halving: `size` (its slots) and `decide(epoch, board)` (`reglab.engine.slots.Slots`).
    `sign`: 1 where a lower `select` is better, -1 where higher is. With `more` (`Turns`), every point the
    population starts with is seated at once; without, as many as the first rung keeps going."""

    def __init__(self, halving: Halving, members, epochs: int, select: str, sign: float, more=None, over=None):
        super().__init__(members, epochs, more, over)
        self.halving, self.select, self.sign = halving, select, sign
        order = list(self.points)
        self.brackets = halving.brackets(epochs)
        self.dealt = [0] * len(self.brackets)
        self.rungs_of: dict[str, tuple] = {}  # point id → (its bracket's first rung, its rungs)
        for point in order:
            self.planned(point)
        # as many points at once as the first rung keeps going, at least one, at most all (with `more`: all)
        at_once = len(order) if more else min(len(order), max(1, math.ceil(len(order) / halving.eta)))
        self.size = sum(len(self.points[p]) for p in order[:at_once])
        if [m for p in order[:at_once] for m in self.points[p]] != list(range(self.size)):
            raise ValueError("The population's members are not grouped by point (plan order).")
        self.waiting = order[at_once:]
        self.recorded: dict[tuple, dict] = {}  # (bracket, rung) → point id → score

    def planned(self, point: str) -> None:
        """The point's bracket: the one furthest below its share so far (Hyperband's shares; halving has one)."""
        total, n = sum(share for _, share in self.brackets), sum(self.dealt) + 1
        b = max(range(len(self.brackets)), key=lambda i: self.brackets[i][1] / total * n - self.dealt[i])
        self.dealt[b] += 1
        self.rungs_of[point] = (self.brackets[b][0], self.halving.rungs(self.epochs, self.brackets[b][0]))

    def state(self) -> dict:
        """`Turns.state`, the scores recorded at each rung and each point's bracket."""
        recorded = [[*key, scores] for key, scores in self.recorded.items()]
        return {**super().state(), "recorded": recorded, "rungs_of": self.rungs_of, "dealt": self.dealt}

    def restore(self, state: dict) -> None:
        super().restore(state)
        rungs_of = state.get("rungs_of") or self.rungs_of
        self.rungs_of = {p: (int(first), [int(r) for r in rungs]) for p, (first, rungs) in rungs_of.items()}
        self.dealt = [int(d) for d in state.get("dealt", self.dealt)]
        self.recorded = {(int(b), int(r)): dict(scores) for b, r, scores in state["recorded"]}

    def decide(self, epoch: int, board) -> dict:
        changes = {}
        self._admitted(board)
        slots_of = seated(board, self.members)
        arriving: dict[tuple, dict] = {}  # (bracket, rung) → the points reaching it now → their scores
        for p, slots in slots_of.items():
            bracket, rungs = self.rungs_of[p]
            own = board.local(slots[0], epoch)
            if own in rungs:
                arriving.setdefault((bracket, own), {})[p] = self.sign * fold_mean(
                    self.members, self.points[p], own, board, self.select
                )
        for key, scores in arriving.items():
            recorded = self.recorded.setdefault(key, {})
            recorded.update(scores)
            going_on = self.halving.keeps(recorded, scores)
            for p in scores:
                if p not in going_on:
                    changes.update({s: None for s in slots_of.pop(p)})
                    self._over(board, p, "pruned")
        self._refill(board, changes)
        return changes
