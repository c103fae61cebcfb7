"""The plan: members = configuration point × fold (× repeat), each with a stable id and seed.

A member's seed derives from (global seed, point, fold, repeat) only — never from the order in
which members run — so an interrupted and resumed sweep trains exactly the same members as an
uninterrupted one, and the same point in a later search round is recognised as already done.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass, field

import numpy as np

from reglab.search.space import point_id


@dataclass(frozen=True, eq=False)
class Member:
    """One model to train: a point on one fold."""

    id: str
    point: dict
    point_id: str
    fold: int  # -1 for the final refit on all non-test data
    repeat: int
    seed: int
    train: np.ndarray = field(repr=False)
    val: np.ndarray = field(repr=False)  # the test indices for the refit (used once, after training)


def same_rows(a: Member, b: Member) -> bool:
    """Whether two members train and validate on the same rows (one fold: a slot's, `reglab.engine.slots`)."""
    return np.array_equal(a.train, b.train) and np.array_equal(a.val, b.val)


def position(members: list, member: Member) -> int | None:
    """Where `member` (the object itself) is in `members`, searched from the end — a member planned during training
    is appended when a population admits it —, or None."""
    return next((i for i in range(len(members) - 1, -1, -1) if members[i] is member), None)


def member_seed(seed: int, pid: str, fold: int, repeat: int) -> int:
    """A 31-bit seed from the member's identity.

    >>> member_seed(0, "abc", 1, 0) == member_seed(0, "abc", 1, 0) != member_seed(0, "abc", 2, 0)
    True
    """
    digest = hashlib.sha256(f"{seed}|{pid}|{fold}|{repeat}".encode()).digest()
    return int.from_bytes(digest[:4], "little") & 0x7FFFFFFF


def set_global_seed(seed: int) -> None:
    """`keras.utils.set_random_seed` (Python, NumPy and Keras's global seed), without importing TensorFlow
    on another backend: Keras does that whenever TensorFlow is installed, and it costs ~460 MB
    (shared/experiments/NOTES.md). On the TensorFlow backend it is Keras's function itself."""
    import keras

    if keras.backend.backend() == "tensorflow":
        keras.utils.set_random_seed(seed)
        return
    from reglab import _keras_private

    _keras_private.set_global_seed(seed)
    random.seed(seed)
    np.random.seed(seed)


def members(points: list[dict], splits, seed: int) -> list[Member]:
    """Every (point, split) pair, points first: all folds of a point run together."""
    out = []
    for point in points:
        pid = point_id(point)
        for fold, repeat, train, val in splits:
            out.append(
                Member(
                    f"{pid}-f{fold}-r{repeat}",
                    point,
                    pid,
                    fold,
                    repeat,
                    member_seed(seed, pid, fold, repeat),
                    train,
                    val,
                )
            )
    return out


def refit_member(point: dict, rest: np.ndarray, test: np.ndarray, seed: int) -> Member:
    pid = point_id(point)
    return Member(f"{pid}-refit", point, pid, -1, 0, member_seed(seed, pid, -1, 0), rest, test)
