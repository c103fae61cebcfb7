"""Stopping and resuming training at epoch boundaries: what an engine is told, what it raises.
Backend-free, so that a sweep on any backend can catch `Interrupted`."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Callable


class Interrupted(Exception):
    """Training stopped at an epoch boundary because a stop was asked for; the checkpoint holds the work."""

    def __init__(self, done: int, total: int, unit: str = "epoch"):
        super().__init__(f"stopped after {unit} {done} of {total}")
        self.done, self.total, self.unit = done, total, unit


@dataclass
class Checkpoints:
    """Where a population's training state goes at epoch boundaries, and when.

    `save(key, arrays)` stores a dict of numpy arrays atomically and `load(key)` gives it back (or
    None); `key` names the population (a hash of its members). A checkpoint is written when at least
    `seconds` have passed since the last one and at least 20× the last write's cost (so checkpoints
    never take more than ~5 % of the training time), and whenever `stop()` — asked at every epoch
    boundary — says True; then training raises `Interrupted`."""

    save: Callable
    load: Callable
    seconds: float = 2.0
    stop: Callable = lambda: False


def checkpoint_key(members) -> str:
    """A population's checkpoint name: a hash of its members' ids (the same members, the same key)."""
    return hashlib.sha256(",".join(sorted(m.id for m in members)).encode()).hexdigest()[:16]
