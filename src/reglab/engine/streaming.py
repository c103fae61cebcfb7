"""A population on features larger than memory (`reglab.on_disk.DiskArray`): what the population engine
needs to train on data it never holds whole.

- `chunked_order`: each epoch visits the data's chunks in one shuffled order shared by every member,
  and each member its own training rows of a chunk in its own shuffled order — so all members read
  the same chunk at about the same time, and each chunk is read once an epoch for all of them.
- `HostRows`: the rows a compiled step asks for (a `jax.pure_callback`), assembled on the host from
  the few chunks held in memory and standardized with each member's fold statistics.
- `statistics`: a fold's mean and standard deviation, computed chunk by chunk.

What a streamed population holds in memory is a few chunks, the targets and the index arrays; the
features are read from disk once an epoch (and once more for validation).
"""

from __future__ import annotations

import threading
from collections import OrderedDict

import numpy as np

CACHED_CHUNKS = 4  # chunks held in memory: members a step apart may stand in two chunks, shards in two more
VALIDATION_BYTES = 8 << 20  # the rows of one validation block, over a cohort's members


def streamed(x) -> bool:
    """Whether `x` (a Dataset's features) stays on disk."""
    from reglab.on_disk import DiskArray

    return isinstance(x, DiskArray)


def chunked_order(n: int, rows: int):
    """The order function (`member, epoch -> training rows`) of chunks of `rows` rows: the chunks in an
    order of the epoch's, shared by all members; within a chunk, the member's rows in its own order.

    >>> order = chunked_order(10, 4)
    >>> from types import SimpleNamespace
    >>> member = SimpleNamespace(seed=1, train=np.array([0, 1, 2, 3, 5, 6, 8, 9]))
    >>> got = order(member, 0)
    >>> sorted(got.tolist()) == member.train.tolist(), len({int(r) // 4 for r in got[:2]})
    (True, 1)
    """
    count = -(-n // rows)

    def order(member, epoch: int) -> np.ndarray:
        train = np.sort(np.asarray(member.train))
        bounds = np.searchsorted(train, np.arange(count + 1) * rows)
        parts = []
        for c in np.random.default_rng([0x5EED, epoch]).permutation(count):
            own = train[bounds[c] : bounds[c + 1]]
            parts.append(np.random.default_rng([member.seed, epoch, int(c)]).permutation(own))
        return np.concatenate(parts) if parts else train

    return order


def statistics(x, rows: np.ndarray):
    """(mean, std) of the rows `rows` of `x` as float32, computed chunk by chunk in float64 (Chan et al.'s
    pairwise update, so a large mean costs no precision); a constant feature's std is 1, as in memory."""
    rows, chunk = np.sort(np.asarray(rows)), x.chunk_rows
    count, mean, m2 = 0, 0.0, 0.0
    for start in range(0, len(x), chunk):
        own = rows[np.searchsorted(rows, start) : np.searchsorted(rows, start + chunk)]
        if not len(own):
            continue
        block = x[own].astype("float64")
        n_b, mean_b = len(block), block.mean(axis=0)
        m2_b = ((block - mean_b) ** 2).sum(axis=0)
        delta, total = mean_b - mean, count + n_b
        mean = mean + delta * n_b / total
        m2 = m2 + m2_b + delta**2 * count * n_b / total
        count = total
    std = np.sqrt(m2 / count)
    return np.asarray(mean, "float32"), np.where(std > 0, std, 1.0).astype("float32")


class HostRows:
    """The rows of the population's views of `x` — view v's row r at flat index v * n + r, standardized
    with `scalings[v]` (a `scaling_of` dict, or None: as they are) — read from the chunks held in memory.
    Callable from several threads (shards side by side) and from a compiled program (`gather`)."""

    def __init__(self, x, scalings: list):
        self.x, self.n, self.rows = x, len(x), x.chunk_rows
        self.row_shape = tuple(x.shape[1:])
        self.means = np.stack([s["x_mean"] if s else np.zeros(self.row_shape, "float32") for s in scalings])
        self.stds = np.stack([s["x_std"] if s else np.ones(self.row_shape, "float32") for s in scalings])
        self.scaled = [s is not None for s in scalings]
        self._chunks: OrderedDict[int, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()
        self.reads = 0  # chunks read from disk (what the benchmark reports)

    def _chunk(self, c: int) -> np.ndarray:
        if c in self._chunks:
            self._chunks.move_to_end(c)
            return self._chunks[c]
        block = self.x[c * self.rows : min((c + 1) * self.rows, self.n)]
        self.reads += 1
        self._chunks[c] = block
        while len(self._chunks) > CACHED_CHUNKS:
            self._chunks.popitem(last=False)
        return block

    def __call__(self, index) -> np.ndarray:
        index = np.asarray(index).astype("int64")
        view, row = np.divmod(index.reshape(-1), self.n)
        out = np.empty((len(row), *self.row_shape), "float32")
        chunk = row // self.rows
        with self._lock:
            for c in np.unique(chunk):
                here = chunk == c
                out[here] = self._chunk(int(c))[row[here] - c * self.rows]
        for v in np.unique(view):  # as `fold_arrays` standardizes: (x - mean) / std, in float32
            if self.scaled[v]:
                here = view == v
                out[here] = (out[here] - self.means[v]) / self.stds[v]
        return out.reshape(*index.shape, *self.row_shape)

    __getitem__ = __call__

    def gather(self, index):
        """`self(index)` from inside a compiled program (a host callback: the data stays on the host)."""
        import jax

        shape = jax.ShapeDtypeStruct((*index.shape, *self.row_shape), np.dtype("float32"))
        return jax.pure_callback(self, shape, index)

    def validation_block(self, members: int) -> int:
        """Rows per validation block for `members` members at once (about VALIDATION_BYTES of rows)."""
        row_bytes = int(np.prod(self.row_shape, dtype="int64")) * 4
        return max(1, VALIDATION_BYTES // max(members * row_bytes, 1))
