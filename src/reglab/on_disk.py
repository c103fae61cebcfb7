"""Features larger than memory: an array on disk whose rows are read when they are asked for.

`DiskArray` is what `reglab.stream` gives as `x`: the rows of a numeric array in a `.npy` file (or an
uncompressed member of an `.npz` archive), read with `os.pread` — never memory-mapped, so what a
sweep holds in memory is what it has read (a few chunks), not the file. A Parquet file or a compressed
NPZ archive is written once, in chunks, to a `.npy` file in reglab's cache (`REGLAB_CACHE`, else
`~/.cache/reglab`), which every later sweep of that file reads.

>>> import tempfile, pathlib
>>> path = pathlib.Path(tempfile.mkdtemp()) / "x.npy"
>>> np.save(path, np.arange(12, dtype="float64").reshape(6, 2))
>>> x = open_npy(path)
>>> x.shape, len(x), x[[4, 1, 4]].tolist()
((6, 2), 6, [[8.0, 9.0], [2.0, 3.0], [8.0, 9.0]])
>>> [(start, block.shape) for start, block in x.chunks(4)]
[(0, (4, 2)), (4, (2, 2))]
"""

from __future__ import annotations

import hashlib
import os
import struct
import threading
import zipfile
from pathlib import Path

import numpy as np

READ_BYTES = 1 << 20  # rows are read in spans of about this many bytes (see `DiskArray.__getitem__`)
CHUNK_BYTES = 8 << 20  # a chunk: what a streamed population reads at once and shuffles within


class DiskArray:
    """Rows of a C-ordered numeric array at `offset` in the file `path`, read on demand as float32.

    `array[index]` (an int, a slice or an array of row numbers, in any order, repeats allowed) reads
    only the spans of the file that hold those rows; `chunks(rows)` reads it front to back.
    `chunk_rows`: the rows of a chunk, the unit a population reads and shuffles within
    (`reglab.engine.streaming`; about CHUNK_BYTES of rows unless given)."""

    def __init__(self, path, offset: int, shape: tuple, dtype, chunk_rows: int | None = None):
        self.path, self.offset = Path(path), int(offset)
        self.shape, self.file_dtype = tuple(int(s) for s in shape), np.dtype(dtype)
        self.dtype = np.dtype("float32")  # what reading gives
        self.row_shape = self.shape[1:]
        self.row_bytes = int(np.prod(self.row_shape, dtype="int64")) * self.file_dtype.itemsize
        self.chunk_rows = int(chunk_rows) if chunk_rows else max(1, CHUNK_BYTES // max(self.row_bytes, 1))
        self._fd, self._lock = None, threading.Lock()
        self.columns: tuple = ()  # the features' names where the file had them (a Parquet file's columns)

    def __len__(self) -> int:
        return self.shape[0]

    @property
    def ndim(self) -> int:
        return len(self.shape)

    def __repr__(self) -> str:
        return (
            f"DiskArray({str(self.path)!r}, shape={self.shape}, dtype={self.file_dtype}, chunk_rows={self.chunk_rows})"
        )

    def __getstate__(self):  # a file descriptor does not travel (another process opens its own)
        return {**self.__dict__, "_fd": None, "_lock": None}

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._lock = threading.Lock()

    def __array__(self, dtype=None, copy=None):
        """Every row, in memory (what `np.asarray` asks for: only for data that fits)."""
        out = self[:]
        return out if dtype is None else out.astype(dtype)

    def _read(self, start: int, stop: int) -> np.ndarray:
        """Rows start..stop-1 as float32, one `pread`."""
        if self._fd is None:
            with self._lock:
                if self._fd is None:
                    self._fd = os.open(self.path, os.O_RDONLY)
        size = (stop - start) * self.row_bytes
        raw = os.pread(self._fd, size, self.offset + start * self.row_bytes)
        if len(raw) != size:
            raise ValueError(f"{self.path} is shorter than its header says (was it changed while in use?)")
        array = np.frombuffer(raw, self.file_dtype).reshape((stop - start, *self.row_shape))
        return array.astype("float32")  # a copy: also for float32 (frombuffer's array is read-only)

    def __getitem__(self, index) -> np.ndarray:
        n = len(self)
        if isinstance(index, (int, np.integer)):
            return self[np.array([index])][0]
        if isinstance(index, slice):
            start, stop, step = index.indices(n)
            if step == 1:
                return self._read(start, max(start, stop))
            index = np.arange(start, stop, step)
        index = np.asarray(index)
        if index.dtype == bool:
            index = np.flatnonzero(index)
        index = np.where(index < 0, index + n, index).astype("int64")
        if index.size and (index.min() < 0 or index.max() >= n):
            raise IndexError(f"row {int(index.max())} of a DiskArray of {n} rows")
        wanted, where = np.unique(index, return_inverse=True)
        if not wanted.size:
            return np.zeros((0, *self.row_shape), "float32")
        # one read per span of about READ_BYTES that holds wanted rows: the rows between them are read too
        span = max(1, READ_BYTES // max(self.row_bytes, 1))
        blocks = wanted // span
        cuts = np.flatnonzero(np.diff(blocks)) + 1
        parts = []
        for rows in np.split(wanted, cuts):
            block = self._read(int(rows[0]), int(rows[-1]) + 1)
            parts.append(block[rows - rows[0]])
        return np.concatenate(parts)[where.reshape(index.shape)]

    def chunks(self, rows: int):
        """(first row, rows as float32) for consecutive chunks of `rows` rows, front to back."""
        for start in range(0, len(self), rows):
            yield start, self._read(start, min(start + rows, len(self)))

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def header_of(handle, where: str):
    """(shape, dtype, data offset) of the .npy header at the handle's position."""
    try:
        version = np.lib.format.read_magic(handle)
        reader = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape, fortran, dtype = reader(handle)
    except ValueError as error:
        raise ValueError(f"{where} is not a .npy array ({error}). Received: source={where!r}") from None
    if dtype.hasobject or dtype.kind not in "biuf":  # bool, integers, floats: real numbers
        raise ValueError(f"Features on disk must be real numbers. Received: {where} of dtype {dtype}")
    if fortran and len(shape) > 1:
        raise ValueError(
            f"Features on disk are read by rows: save them in C order (np.save(path, np.ascontiguousarray(x))). "
            f"Received: {where} in Fortran order"
        )
    if len(shape) < 2:
        raise ValueError(
            f"Features need a sample axis and a feature axis (rank >= 2). Received: {where} of shape {shape}"
        )
    return shape, dtype, handle.tell()


def open_npy(path) -> DiskArray:
    """The array of a `.npy` file, read where it is."""
    path = Path(path)
    with open(path, "rb") as handle:
        shape, dtype, offset = header_of(handle, str(path))
    return DiskArray(path, offset, shape, dtype)


def open_npz_member(path, name: str) -> DiskArray | None:
    """The array `name` of an `.npz` archive, read where it is if the archive stores it uncompressed
    (`np.savez`); None for a compressed member (`np.savez_compressed`), which has to be written out first."""
    path = Path(path)
    with zipfile.ZipFile(path) as archive:
        info = archive.getinfo(f"{name}.npy")
    if info.compress_type != zipfile.ZIP_STORED:
        return None
    with open(path, "rb") as handle:
        handle.seek(info.header_offset)
        local = handle.read(30)  # the member's local header: its name and extra field come next
        name_length, extra_length = struct.unpack("<HH", local[26:30])
        handle.seek(info.header_offset + 30 + name_length + extra_length)
        shape, dtype, offset = header_of(handle, f"{path}[{name!r}]")
    return DiskArray(path, offset, shape, dtype)


def rows_of(handle, shape: tuple, dtype, rows: int = 65536):
    """The rows of the .npy array whose data starts at the handle's position (after `header_of`), read in
    chunks of `rows` rows — from a file or a compressed archive member alike."""
    dtype = np.dtype(dtype)
    row_bytes = int(np.prod(shape[1:], dtype="int64")) * dtype.itemsize
    for start in range(0, shape[0], rows):
        count = min(rows, shape[0] - start)
        raw = handle.read(count * row_bytes)
        if len(raw) != count * row_bytes:
            raise ValueError("the array ends before its header says")
        yield np.frombuffer(raw, dtype).reshape((count, *shape[1:]))


def cache_folder() -> Path:
    return Path(os.environ.get("REGLAB_CACHE") or Path.home() / ".cache" / "reglab") / "data"


def cached_npy(source: Path, tag: str, shape: tuple, chunks) -> DiskArray:
    """A float32 `.npy` file in reglab's cache, written once from `chunks` (arrays of rows, front to back)
    for this version of `source` (its path, size and modification time, and `tag`); later calls read it."""
    stat = source.stat()
    key = hashlib.sha256(f"{source.resolve()}|{stat.st_size}|{stat.st_mtime_ns}|{tag}".encode()).hexdigest()[:24]
    target = cache_folder() / f"{source.stem}-{key}.npy"
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(f".{target.name}.{os.getpid()}.partial")
        try:
            with open(partial, "wb") as handle:
                header = {"descr": np.dtype("float32").str, "fortran_order": False, "shape": tuple(shape)}
                np.lib.format.write_array_header_2_0(handle, header)
                written = 0
                for block in chunks:
                    handle.write(np.ascontiguousarray(block, dtype="float32").tobytes())
                    written += len(block)
            if written != shape[0]:
                raise ValueError(f"{source} gave {written} rows, its metadata says {shape[0]}")
            os.replace(partial, target)  # whole or absent: a killed conversion leaves no half file behind
        finally:
            partial.unlink(missing_ok=True)
    return open_npy(target)
