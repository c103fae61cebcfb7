"""What every engine that trains several members at once needs of the data: each member's batch
order and device-friendly copies of the folds. Backend-free (numpy only)."""

from __future__ import annotations

import numpy as np


def default_order(member, epoch: int) -> np.ndarray:
    """The member's training indices in this epoch's shuffled order (a function of seed and epoch only)."""
    return np.random.default_rng([member.seed, epoch]).permutation(member.train)


def pad(index_lists, length=None):
    """(indices, mask): index lists padded with 0 to one length, mask 1 where an index is real."""
    length = length or max(len(i) for i in index_lists)
    idx = np.zeros((len(index_lists), length), dtype="int32")
    mask = np.zeros((len(index_lists), length), dtype="float32")
    for m, indices in enumerate(index_lists):
        idx[m, : len(indices)] = indices
        mask[m, : len(indices)] = 1.0
    return idx, mask


def standardized_views(data, members, standardize):
    """One copy of (x, y) per distinct split (fold, repeat), standardized with that split's training
    statistics (as the reference engine does); returns the copies and each member's copy index."""
    from reglab.engine.reference import fold_arrays

    keys = list(dict.fromkeys((m.fold, m.repeat) for m in members))
    views_x, views_y = [], []
    everything = np.arange(len(data.y))
    for key in keys:
        m = next(m for m in members if (m.fold, m.repeat) == key)
        _, _, x_all, y_all, _ = fold_arrays(data, m.train, everything, standardize)
        views_x.append(x_all.astype("float32"))
        views_y.append(y_all.astype("float32" if data.task == "regression" else "int32"))
    view_of = np.array([keys.index((m.fold, m.repeat)) for m in members], dtype="int32")
    return np.stack(views_x), np.stack(views_y), view_of
