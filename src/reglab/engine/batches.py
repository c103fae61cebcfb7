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
    statistics (as the reference engine does) — or, without standardization, one copy for all; returns
    the copies (each array with a leading copy axis; dicts / lists of them for several inputs or
    outputs) and each member's copy index."""
    from reglab.data import stack
    from reglab.engine.reference import fold_arrays

    keys = list(dict.fromkeys((m.fold, m.repeat) for m in members)) if standardize else [None]
    views_x, views_y = [], []
    everything = np.arange(len(data))
    for key in keys:
        if key is None:
            x_all, y_all = data.x, data.y
        else:
            m = next(m for m in members if (m.fold, m.repeat) == key)
            _, _, x_all, y_all, _ = fold_arrays(data, m.train, everything, standardize)
        views_x.append(x_all)
        views_y.append(y_all)
    view_of = np.array([keys.index((m.fold, m.repeat)) if standardize else 0 for m in members], dtype="int32")
    # features as float32; class labels as int32, regression targets as float32
    return (stack(views_x, lambda a: a.astype("float32")),
            stack(views_y, lambda a: a.astype("int32" if np.issubdtype(a.dtype, np.integer) else "float32")), view_of)
