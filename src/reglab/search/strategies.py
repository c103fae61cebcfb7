"""Search as ask/tell: a strategy proposes the next points from the summary so far.

`strategy.ask(summary, curves)` returns the next points to evaluate, or None when the search is over;
`summary` is the per-point table of every point evaluated so far (`reglab.decide.selection.summarize`;
None before the first round) and `curves` each point's fold mean per epoch (both from `reglab.decide.outcome.summary`;
what an Optuna study is told as intermediate values, `reglab.search.studies`). A strategy never touches the run directory or an engine: the sweep
trains what it is asked, summarizes, and asks again — so a strategy that retires or refills points
(adaptive search) plugs in here and nowhere else.

`best(summary)` — the selected point's parameters of a table, or None when none can be chosen — and
`score` (the summary's column to refine on) are given by the caller, so that search needs nothing of
how points are decided.

>>> def best(summary):
...     return {"l2": float(summary.sort_values("val_loss_mean")["l2"].iloc[0])}
>>> search = Rounds([[{"l2": 0.0}, {"l2": 0.1}]], best)
>>> search.ask(None)
[{'l2': 0.0}, {'l2': 0.1}]
>>> import pandas as pd
>>> search.ask(pd.DataFrame({"point": [point_id({"l2": 0.1}), point_id({"l2": 0.0})], "l2": [0.1, 0.0],
...                          "val_loss_mean": [0.2, 0.3]})) is None
True
>>> search.best_point
{'l2': 0.1}
"""

from __future__ import annotations

from reglab.search import space
from reglab.search.space import point_id


def _within(summary, points):
    """The rows of `summary` for `points`, in the summary's order (its ranking)."""
    ids = {point_id(p) for p in points}
    return summary[summary["point"].isin(ids)]


class Rounds:
    """A fixed list of rounds (a grid or random points: one round; `stages`: several). From the second
    round on, each point is the best point of the round before with the round's keys set on it.
    Stops early when a round has no point that can be chosen (nothing to build the next one on)."""

    def __init__(self, rounds: list[list[dict]], best):
        self.rounds, self.best = rounds, best
        self.asked = 0
        self.last: list[dict] = []
        self.best_point: dict | None = None
        self.stuck = False  # a round had no selectable point

    def ask(self, summary, curves=None):
        if self.asked:
            self.best_point = self.best(_within(summary, self.last))
            if self.best_point is None:
                self.stuck = True
                return None
        if self.asked == len(self.rounds):
            return None
        self.last = [space.normalize_point({**(self.best_point or {}), **p}) for p in self.rounds[self.asked]]
        self.asked += 1
        return self.last


class Refine:
    """Coarse-to-fine after another strategy: `rounds` times, `points` new values of `param` around the
    best one (`reglab.search.space.refine`), the other keys as in the best point; each round is judged
    with the points sharing those keys (the earlier ones included)."""

    def __init__(self, first: Rounds, param: str, rounds: int, points: int, best, score: str):
        self.first, self.param, self.rounds, self.points = first, param, rounds, points
        self.best, self.score = best, score
        self.evaluated: list[dict] = []
        self.asked = 0
        self.family: list[dict] = []  # the points of the last refined round's comparison

    @property
    def best_point(self):
        return self.first.best_point

    def ask(self, summary, curves=None):
        if self.asked == 0:
            proposed = self.first.ask(summary)
            if proposed is not None:
                self.evaluated += [p for p in proposed if p not in self.evaluated]
                return proposed
            if self.first.stuck:
                return None
        else:
            self.first.best_point = self.best(_within(summary, self.family))
            if self.first.best_point is None:
                return None
        if self.asked == self.rounds:
            return None
        best = self.first.best_point
        same = [p for p in self.evaluated if all(p.get(k) == v for k, v in best.items() if k != self.param)]
        table = _within(summary, same)
        by_id = {point_id(p): p for p in same}
        values = [by_id[pid][self.param] for pid in table["point"]]
        scores = table[self.score].where(table["rank"].notna()).tolist()
        new = [space.normalize_point({**best, self.param: v}) for v in space.refine(values, scores, self.points)]
        new = [p for p in new if p not in same]  # the best value itself is usually among them
        self.evaluated += new
        self.family = same + new
        self.asked += 1
        return new
