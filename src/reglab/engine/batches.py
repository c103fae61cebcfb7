"""What every engine that trains several members at once needs of the data: each member's batch
order, device-friendly copies of the folds, and the batch plan — an epoch's batches as `fit` makes them,
grouped into segments of one shape, and the members split into shards that share one plan.
Backend-free (numpy only)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def default_order(member, epoch: int) -> np.ndarray:
    """The member's training indices in this epoch's shuffled order (a function of seed and epoch only)."""
    return np.random.default_rng([member.seed, epoch]).permutation(member.train)


def pad(index_lists, length=None):
    """(indices, mask): index lists padded to one length by repeating each list's own indices (so a
    padding row is as finite as a real one), mask 1 where an index is real.

    >>> idx, mask = pad([[4, 5, 6], [7]], 4)
    >>> idx.tolist(), mask.tolist()
    ([[4, 5, 6, 4], [7, 7, 7, 7]], [[1.0, 1.0, 1.0, 0.0], [1.0, 0.0, 0.0, 0.0]])
    """
    length = length or max(len(i) for i in index_lists)
    idx = np.stack([np.resize(np.asarray(i, dtype="int32"), length) for i in index_lists]).astype("int32")
    mask = (np.arange(length)[None, :] < np.array([len(i) for i in index_lists])[:, None]).astype("float32")
    return idx, mask


def standardized_views(data, members, standardize):
    """One copy of (x, y) per distinct split (fold, repeat), standardized with that split's training
    statistics (as the reference engine does) — or, without standardization, one copy for all; returns
    the copies (each array with a leading copy axis; dicts / lists of them for several inputs or
    outputs) and each member's copy index. Features on disk are not copied: x is then a
    `reglab.engine.streaming.HostRows`, which reads and standardizes the rows a step asks for."""
    from reglab.data import stack
    from reglab.engine import streaming
    from reglab.engine.training import fold_arrays, scaling_of

    keys = list(dict.fromkeys((m.fold, m.repeat) for m in members)) if standardize else [None]
    views_x, views_y, scalings = [], [], []
    everything = np.arange(len(data))
    on_disk = streaming.streamed(data.x)
    for key in keys:
        if key is None:
            x_all, y_all, scaling = data.x, data.y, None
        elif on_disk:
            m = next(m for m in members if (m.fold, m.repeat) == key)
            x_all, y_all, scaling = None, data.y, scaling_of(data, m.train, True)
            if "y_mean" in scaling:
                y_all = (y_all - scaling["y_mean"]) / scaling["y_std"]
        else:
            m = next(m for m in members if (m.fold, m.repeat) == key)
            _, _, x_all, y_all, scaling = fold_arrays(data, m.train, everything, standardize)
        views_x.append(x_all)
        views_y.append(y_all)
        scalings.append(scaling)
    view_of = np.array([keys.index((m.fold, m.repeat)) if standardize else 0 for m in members], dtype="int32")
    # features as float32; class labels as int32, regression targets as float32
    y = stack(views_y, lambda a: a.astype("int32" if np.issubdtype(a.dtype, np.integer) else "float32"))
    if on_disk:
        return streaming.HostRows(data.x, scalings), y, view_of
    return stack(views_x, lambda a: a.astype("float32")), y, view_of


@dataclass(frozen=True)
class Segment:
    """Steps that a set of members takes with one batch shape. In a padded segment every step is a full
    batch whose rows beyond a member's real ones carry weight 0 (its last batch is partial, or it has
    no batch left at that step: `ragged`, then its state does not move)."""

    members: tuple  # member indices (positions in the population)
    steps: int
    batch: int
    padded: bool = False
    ragged: bool = False


def segments(sizes: list[int], batch: int, padded: bool = False) -> list[Segment]:
    """The batches of one epoch as `fit` makes them (full batches, then a partial one), grouped so that
    each segment's steps have one shape: first the full batches every member has, then each size's
    extra full batches and its partial batch. `padded`: one segment of full-size batches instead, for
    a model whose step does not depend on the other rows of a batch (`Program.row_independent`).

    >>> [(s.members, s.steps, s.batch) for s in segments([70, 70, 65], 32)]
    [((0, 1, 2), 2, 32), ((0, 1), 1, 6), ((2,), 1, 1)]
    >>> segments([70, 70, 65], 32, padded=True)
    [Segment(members=(0, 1, 2), steps=3, batch=32, padded=True, ragged=False)]
    """
    everyone = tuple(range(len(sizes)))
    if padded:
        steps = [-(-size // batch) for size in sizes]
        return [Segment(everyone, max(steps), batch, padded=True, ragged=len(set(steps)) > 1)]
    common = min(sizes) // batch
    out = [Segment(everyone, common, batch)] if common else []
    for size in sorted(set(sizes), reverse=True):
        who = tuple(i for i, s in enumerate(sizes) if s == size)
        full, last = divmod(size, batch)
        if full > common:
            out.append(Segment(who, full - common, batch))
        if last:
            out.append(Segment(who, 1, last))
    return out


@dataclass(frozen=True)
class Plan:
    """How a shard of `size` members takes its batches and validation: its segments and its validation
    cohorts (member positions within the shard)."""

    size: int
    segments: tuple
    validation: tuple  # (member positions, rows, padded?) per cohort evaluated together


def plan_shard(train_sizes, val_sizes, batch, pad_train, pad_val, val_rows=None) -> Plan:
    """The plan of members with these training and validation sizes (see `segments`); padded validation
    takes `val_rows` rows (the population's largest fold, so that every shard has the same shapes).

    >>> plan_shard([70, 65], [20, 25], 32, pad_train=True, pad_val=True).validation
    (((0, 1), 25, True),)
    >>> plan_shard([70, 65], [20, 25], 32, pad_train=False, pad_val=False).validation
    (((0,), 20, False), ((1,), 25, False))
    """
    ragged = len({size % batch for size in train_sizes} - {0}) > 0
    steps = tuple(segments(list(train_sizes), batch, padded=pad_train and ragged))
    if pad_val and len(set(val_sizes)) > 1:
        cohorts = ((tuple(range(len(val_sizes))), val_rows or max(val_sizes), True),)
    else:  # members whose validation folds have one size are evaluated together
        cohorts = tuple(
            (tuple(i for i, v in enumerate(val_sizes) if v == size), size, False) for size in dict.fromkeys(val_sizes)
        )
    return Plan(len(train_sizes), steps, cohorts)


def shard_count() -> int:
    """How many shards of a population run side by side: one per core on a CPU, where one XLA program
    keeps about one core busy with a population's many small operations (measured on 2 cores, standard
    workload: 40 members 0.071–0.080 s an epoch, two shards of 20 in two threads 0.043 s; dispatched
    from one thread, JAX runs them one after the other: no gain); one on an accelerator.
    REGLAB_SHARDS overrides."""
    import os

    import jax

    if os.environ.get("REGLAB_SHARDS"):
        value = os.environ["REGLAB_SHARDS"]
        if not value.isdigit() or int(value) < 1:
            raise ValueError(f"REGLAB_SHARDS is a number of shards (1 or more). Received: REGLAB_SHARDS={value!r}")
        return int(value)
    if jax.default_backend() != "cpu":
        return 1
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def shard(train_sizes, val_sizes, batch, pad_train, pad_val, count: int, smallest: int = 4) -> list[list[int]]:
    """Member positions of each shard: as many equal shards as `count` allows with at least `smallest`
    members each and one plan for all (so that one compiled program serves every shard). Shards are
    filled up to equal size by repeating the last member (a copy: its results are dropped).

    >>> shard([70] * 8, [20] * 8, 32, True, True, count=2)
    [[0, 1, 2, 3], [4, 5, 6, 7]]
    >>> shard([70] * 9, [20] * 9, 32, True, True, count=2)
    [[0, 1, 2, 3, 4], [5, 6, 7, 8, 8]]
    >>> shard([70, 70, 65, 65], [20] * 4, 32, False, True, count=2)  # unpadded partial batches differ
    [[0, 1, 2, 3]]
    """
    M = len(train_sizes)
    for k in range(min(count, M // smallest), 1, -1):
        size = -(-M // k)
        positions = list(range(M)) + [M - 1] * (size * k - M)
        cuts = [positions[j * size : (j + 1) * size] for j in range(k)]
        plans = {
            plan_shard(
                [train_sizes[i] for i in c], [val_sizes[i] for i in c], batch, pad_train, pad_val, max(val_sizes)
            )
            for c in cuts
        }
        if len(plans) == 1:
            return cuts
    return [list(range(M))]
