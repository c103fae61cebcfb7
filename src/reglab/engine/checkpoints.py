"""Stopping and resuming training at epoch boundaries: what an engine is told, what it raises, and the
payload a population saves (its state's leaves and a description). Backend-free at import, so that a
sweep on any backend can catch `Interrupted`."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Callable

import numpy as np


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
    folder: object = None  # the run directory they go to (a worker process saves there too)


def checkpoint_key(members) -> str:
    """A population's checkpoint name: a hash of its members' ids (the same members, the same key)."""
    return hashlib.sha256(",".join(sorted(m.id for m in members)).encode()).hexdigest()[:16]


def resume_state(program, members, payload, slots: int | None = None):
    """(state, rows, status, first epoch) from a checkpoint of exactly this population, or None; the
    state as host arrays, a row per member — or per slot, with `slots` (members taking turns)."""
    import jax

    try:
        meta = payload_meta(payload)
        leaves = jax.tree.leaves(program.initial)
        stored = [payload[f"state_{i}"] for i in range(len(leaves))]
    except (KeyError, ValueError, TypeError):
        return None
    rows = (lambda shape: shape) if slots is None else (lambda shape: (slots, *shape[1:]))
    if (
        meta.get("members") != [m.id for m in members]
        or (slots is not None) != ("slots" in meta)
        or any(a.shape != rows(b.shape) or a.dtype != np.asarray(b).dtype for a, b in zip(stored, leaves))
    ):
        return None
    state = jax.tree.unflatten(jax.tree.structure(program.initial), stored)
    return state, meta["rows"], meta["status"], int(meta["epoch"])


def payload_meta(payload) -> dict:
    """A checkpoint's description ({} if it has none that can be read: it is then not resumed)."""
    try:
        meta = json.loads(str(payload["meta"]))
    except (KeyError, ValueError, TypeError):
        return {}
    return meta if isinstance(meta, dict) else {}


def save_state(checkpoints, key, state, members, rows, status, epoch, convolutions, seating=None):
    """`seating`: members taking turns in slots — {"board", "scheduler": their states, "finals": {member
    position: {part: arrays}}, the states of the members that left their slots, "late": `describe_late`'s}."""
    import jax

    arrays = {f"state_{i}": np.asarray(leaf) for i, leaf in enumerate(jax.tree.leaves(state))}
    meta = {"members": [m.id for m in members], "rows": rows, "status": status, "epoch": epoch}
    if seating is not None:
        meta["slots"] = {
            "board": seating["board"],
            "scheduler": seating["scheduler"],
            "finals": [],
            "late": seating.get("late", []),
        }
        for m, parts in seating["finals"].items():
            meta["slots"]["finals"].append([m, {part: len(values) for part, values in parts.items()}])
            arrays.update({f"final_{m}_{part}_{i}": v for part, values in parts.items() for i, v in enumerate(values)})
    arrays["meta"] = np.array(json.dumps({**meta, "convolutions": convolutions}))
    checkpoints.save(key, arrays)


def describe_late(late, first) -> list[dict]:
    """The members admitted during training (`late`, a sampler's trials) as JSON: identity, point, seed, and
    which of the population's first members (`first`) has their rows — what `late_members` rebuilds them from."""
    from reglab.search.plan import same_rows

    like = [next(i for i, f in enumerate(first) if same_rows(f, m)) for m in late]
    keys = ("id", "point", "point_id", "fold", "repeat", "seed")
    return [{**{k: getattr(m, k) for k in keys}, "like": i} for m, i in zip(late, like)]


def late_members(payload, members) -> list | None:
    """The members a checkpoint's population had admitted during training, rebuilt (`plan.Member`s, their rows
    those of the first member they share them with), to admit again before its state is restored; [] when it
    had none, None when the checkpoint is of another population."""
    from reglab.search.plan import Member

    meta = payload_meta(payload)
    saved = (meta.get("slots") or {}).get("late", [])
    ids = meta.get("members") or []
    if ids[: len(members)] != [m.id for m in members] or len(ids) != len(members) + len(saved):
        return None
    try:
        return [
            Member(
                d["id"],
                d["point"],
                d["point_id"],
                d["fold"],
                d["repeat"],
                d["seed"],
                members[d["like"]].train,
                members[d["like"]].val,
            )
            for d in saved
        ]
    except (KeyError, IndexError, TypeError):
        return None


def resume_seating(payload) -> dict:
    """A checkpoint's `seating` (`save_state`) as it was saved."""
    saved = payload_meta(payload)["slots"]
    finals = {
        int(m): {part: [payload[f"final_{m}_{part}_{i}"] for i in range(count)] for part, count in parts.items()}
        for m, parts in saved["finals"]
    }
    return {"board": saved["board"], "scheduler": saved["scheduler"], "finals": finals}


def gather(states, M):
    """The population's state as host arrays: its shards' states joined along the member axis (without
    the copies that fill the last shard)."""
    import jax

    return jax.tree.map(lambda *parts: np.concatenate([np.asarray(p) for p in parts])[:M], *states)
