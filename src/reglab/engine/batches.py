"""What every engine that trains several members at once needs of the data: each member's batch
order and device-friendly copies of the folds. Backend-free (numpy only)."""

from __future__ import annotations

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
    outputs) and each member's copy index."""
    from reglab.data import stack
    from reglab.engine.training import fold_arrays

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
