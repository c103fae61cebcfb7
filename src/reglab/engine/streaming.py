"""A population on features larger than memory (`reglab.on_disk.DiskArray`): what the population engine
needs to train on data it never holds whole.

- `ChunkedOrder`: each epoch visits the data's chunks in one shuffled order shared by every member,
  and each member its own training rows of a chunk in its own shuffled order — so all members read
  the same chunk at about the same time, and each chunk is read once an epoch for all of them.
- `Batches`: which rows each member's step (or validation block) takes, made on the host when the step
  asks — an epoch's index arrays (members × rows) are never made.
- `HostRows`: those rows, asked for by the compiled step (a `jax.pure_callback`), assembled on the host
  from the few chunks held in memory and standardized with each member's fold statistics.
- `statistics`: a fold's mean and standard deviation, computed chunk by chunk.

What a streamed population holds in memory is a few chunks, the targets and the folds' row numbers;
the features are read from disk once an epoch (and once more for validation).
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


class ChunkedOrder:
    """The order function (`order(member, epoch)` -> training rows) of chunks of `rows` rows: the chunks in
    an order of the epoch's, shared by all members; within a chunk, the member's rows in its own order.
    `take(member, epoch, positions)` gives the rows at some positions of that order without making the
    rest of it (a chunk's order is made when a position in it is asked for, and kept a while).

    >>> order = ChunkedOrder(10, 4)
    >>> from types import SimpleNamespace
    >>> member = SimpleNamespace(id="m", seed=1, train=np.array([0, 1, 2, 3, 5, 6, 8, 9]))
    >>> got = order(member, 0)
    >>> sorted(got.tolist()) == member.train.tolist(), len({int(r) // 4 for r in got[:2]})
    (True, 1)
    >>> order.take(member, 0, np.array([7, 0])).tolist() == got[[7, 0]].tolist()
    True
    """

    def __init__(self, n: int, rows: int, keep_bytes: int = 32 << 20):
        self.rows, self.count = rows, -(-n // rows)
        self.keep_bytes = keep_bytes  # the chunk orders kept: about two chunks per member at a time
        self._made: OrderedDict = OrderedDict()  # (member, epoch, chunk) -> the member's rows of it, in order
        self._kept_bytes = 0
        self._layouts: dict = {}  # member id -> its training rows, sorted, and where each chunk begins
        self._sequences: dict = {}  # epoch -> the chunks' order
        self._lock = threading.Lock()

    def _kept(self, key, make):
        with self._lock:
            if key in self._made:
                self._made.move_to_end(key)
                return self._made[key]
        value = make()
        size = sum(getattr(v, "nbytes", 0) for v in (value if isinstance(value, tuple) else (value,)))
        with self._lock:
            if key not in self._made:
                self._made[key] = value
                self._kept_bytes += size
            while self._kept_bytes > self.keep_bytes and len(self._made) > 1:
                _, old = self._made.popitem(last=False)
                self._kept_bytes -= sum(getattr(v, "nbytes", 0) for v in (old if isinstance(old, tuple) else (old,)))
        return value

    def _layout(self, member, epoch):
        """(the member's sorted training rows, where each chunk begins in them, the epoch's chunk sequence,
        the end of each chunk of the sequence in the member's order) — made once a member and epoch."""
        key = (member.id, epoch)
        layout = self._layouts.get(key)  # a dict's get is atomic: no lock on the path every step takes
        if layout is not None:
            return layout
        with self._lock:
            earlier = next((v for (m, _), v in self._layouts.items() if m == member.id), None)
        if earlier is not None:
            train, bounds = earlier[:2]
        else:
            train = np.asarray(member.train)
            if np.any(train[1:] < train[:-1]):
                train = np.sort(train)
            bounds = np.searchsorted(train, np.arange(self.count + 1) * self.rows)
        sequence = np.random.default_rng([0x5EED, epoch]).permutation(self.count)
        layout = (train, bounds, sequence, np.cumsum(np.diff(bounds)[sequence]))
        with self._lock:  # this epoch's and the last one's (shards may stand an epoch apart)
            self._layouts = {k: v for k, v in self._layouts.items() if k[1] >= epoch - 1 and k[0] != member.id}
            self._layouts[key] = layout
        return layout

    def _own(self, member, epoch: int, c: int, train, bounds) -> np.ndarray:
        return self._kept(
            (member.id, epoch, c),
            lambda: np.random.default_rng([member.seed, epoch, c]).permutation(train[bounds[c] : bounds[c + 1]]),
        )

    def take(self, member, epoch: int, positions) -> np.ndarray:
        train, bounds, sequence, ends = self._layout(member, epoch)
        positions = np.asarray(positions, "int64")
        where = np.searchsorted(ends, positions, side="right")
        within = positions - np.where(where > 0, ends[np.maximum(where - 1, 0)], 0)
        if where[0] == where[-1] and (where == where[0]).all():  # a batch within one chunk: most are
            return self._own(member, epoch, int(sequence[where[0]]), train, bounds)[within]
        out = np.empty(len(positions), "int64")
        for k in np.unique(where):
            here = where == k
            out[here] = self._own(member, epoch, int(sequence[k]), train, bounds)[within[here]]
        return out

    def __call__(self, member, epoch: int) -> np.ndarray:
        return self.take(member, epoch, np.arange(len(member.train)))


class Batches:
    """A streamed population's batches, made on the host when a step asks for them — (flat row indices,
    weights) of a training segment's step or of a validation cohort's block —, never an epoch's index
    arrays (members × rows). The same rows as `reglab.engine.population`'s index arrays would hold."""

    def __init__(self, members, cuts, plan, order, offsets, validation_blocks: list[int]):
        self.members, self.cuts, self.plan, self.order, self.offsets = members, cuts, plan, order, offsets
        self.validation_blocks = validation_blocks  # rows per block, per validation cohort
        self.starts, used = [], [0] * plan.size  # where each member's rows of an unpadded segment begin
        for segment in plan.segments:
            self.starts.append(None if segment.padded else {i: used[i] for i in segment.members})
            for i in () if segment.padded else segment.members:
                used[i] += segment.steps * segment.batch

    def training(self, segment_index: int, key) -> tuple[np.ndarray, np.ndarray]:
        shard, epoch, step = (int(v) for v in np.asarray(key))
        segment, cut = self.plan.segments[segment_index], self.cuts[shard]
        B = segment.batch
        index = np.empty((len(segment.members), B), "int32")
        weight = np.ones((len(segment.members), B), "float32")
        for row, i in enumerate(segment.members):
            member = self.members[cut[i]]
            positions = step * B + np.arange(B)
            if segment.padded:  # as `batches.pad`: past its end, a member's own rows again, weight 0
                weight[row] = positions < len(member.train)
                positions = positions % len(member.train)
            else:
                positions = positions + self.starts[segment_index][i]
            index[row] = self.order.take(member, epoch, positions) + self.offsets[cut[i]]
        return index, weight

    def validation(self, cohort: int, key) -> tuple[np.ndarray, np.ndarray]:
        shard, block = (int(v) for v in np.asarray(key))
        who, cut, V = self.plan.validation[cohort][0], self.cuts[shard], self.validation_blocks[cohort]
        index = np.empty((len(who), V), "int32")
        weight = np.empty((len(who), V), "float32")
        positions = block * V + np.arange(V)
        for row, i in enumerate(who):
            val = self.members[cut[i]].val
            weight[row] = positions < len(val)
            index[row] = val[positions % len(val)] + self.offsets[cut[i]]
        return index, weight


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
    Callable from several threads (shards side by side); a compiled program asks it for a step's batch
    (`batch`, `validation_batch`: one host call each, through `jax.pure_callback`)."""

    def __init__(self, x, scalings: list):
        self.x, self.n, self.rows = x, len(x), x.chunk_rows
        self.row_shape = tuple(x.shape[1:])
        self.means = np.stack([s["x_mean"] if s else np.zeros(self.row_shape, "float32") for s in scalings])
        self.stds = np.stack([s["x_std"] if s else np.ones(self.row_shape, "float32") for s in scalings])
        self.scaled = [s is not None for s in scalings]
        self._chunks: OrderedDict[int, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()
        self.batches: Batches | None = None  # set for each schedule (`reglab.engine.population`)

    def _chunk(self, c: int) -> np.ndarray:
        if c in self._chunks:
            self._chunks.move_to_end(c)
            return self._chunks[c]
        block = self.x[c * self.rows : min((c + 1) * self.rows, self.n)]
        self._chunks[c] = block
        while len(self._chunks) > CACHED_CHUNKS:
            self._chunks.popitem(last=False)
        return block

    def __call__(self, index) -> np.ndarray:
        index = np.asarray(index).astype("int64")
        view, row = np.divmod(index.reshape(-1), self.n)
        chunk = row // self.rows
        with self._lock:
            if (chunk == chunk[0]).all():  # a step's rows within one chunk: most are
                out = self._chunk(int(chunk[0]))[row - chunk[0] * self.rows]
            else:
                out = np.empty((len(row), *self.row_shape), "float32")
                for c in np.unique(chunk):
                    here = chunk == c
                    out[here] = self._chunk(int(c))[row[here] - c * self.rows]
        if any(self.scaled):  # as `fold_arrays` standardizes: (x - mean) / std, in float32 (a view
            out -= self.means[view]  # that is not scaled has mean 0 and std 1: x exactly)
            out /= self.stds[view]
        return out.reshape(*index.shape, *self.row_shape)

    __getitem__ = __call__

    def batch(self, segment_index: int, key, shape):
        """A training step's (feature rows, row indices, weights) from `self.batches`, inside a compiled
        program: one call to the host a step."""
        return self._ask(lambda k: self.batches.training(segment_index, k), key, shape)

    def validation_batch(self, cohort: int, key, shape):
        """A validation block's (feature rows, row indices, weights) from `self.batches`, inside a compiled
        program."""
        return self._ask(lambda k: self.batches.validation(cohort, k), key, shape)

    def _ask(self, make, key, shape):
        """(rows, indices, weights) of the batch `make(key)` names, through one `jax.pure_callback`."""
        import jax

        def rows(key):
            index, weight = make(key)
            return self(index), index, weight

        out = (
            jax.ShapeDtypeStruct((*shape, *self.row_shape), np.dtype("float32")),
            jax.ShapeDtypeStruct(shape, np.dtype("int32")),
            jax.ShapeDtypeStruct(shape, np.dtype("float32")),
        )
        return jax.pure_callback(rows, out, key)

    def validation_block(self, members: int) -> int:
        """Rows per validation block for `members` members at once (about VALIDATION_BYTES of rows)."""
        row_bytes = int(np.prod(self.row_shape, dtype="int64")) * 4
        return max(1, VALIDATION_BYTES // max(members * row_bytes, 1))
