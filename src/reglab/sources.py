"""Where data comes from: scikit-learn's built-in sets (nothing downloaded) and CSV, Parquet and NPZ files.
What is loaded goes through `reglab.data.prepare` like any array a user passes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

BUILTIN = ("digits", "breast_cancer", "wine", "diabetes", "noisy_classification")


def load_builtin(name: str):
    """(x, y, task) of a data set that ships with scikit-learn (nothing is downloaded).

    - digits: 1,797 8×8 images as 64 features in [0, 1] (pixel / 16), 10 classes;
    - breast_cancer: 569 × 30, 2 classes; wine: 178 × 13, 3 classes;
    - diabetes: 442 × 10, a regression target;
    - noisy_classification: 300 × 40 generated (5 informative features, 20% flipped labels),
      small and noisy enough that an unregularized MLP overfits it.
    """
    from sklearn import datasets

    if name == "digits":
        x, y = datasets.load_digits(return_X_y=True)
        return (x / 16.0).astype("float32"), y, "classification"
    if name == "breast_cancer":
        x, y = datasets.load_breast_cancer(return_X_y=True)
        return x.astype("float32"), y, "classification"
    if name == "wine":
        x, y = datasets.load_wine(return_X_y=True)
        return x.astype("float32"), y, "classification"
    if name == "diabetes":
        x, y = datasets.load_diabetes(return_X_y=True)
        return x.astype("float32"), y.astype("float32"), "regression"
    if name == "noisy_classification":
        x, y = datasets.make_classification(
            n_samples=300, n_features=40, n_informative=5, n_redundant=5, flip_y=0.2, class_sep=0.8, random_state=0
        )
        return x.astype("float32"), y, "classification"
    raise ValueError(f"Unknown built-in data set (known: {', '.join(BUILTIN)}). Received: source={name!r}")


def _unreadable(path: Path, what: str, error: BaseException, advice: str) -> ValueError:
    reason = " ".join(str(error).split()) or type(error).__name__
    reason = reason if len(reason) <= 120 else reason[:117] + "..."
    return ValueError(f"Data file {path} is not {what} ({reason}): {advice}. Received: source={str(path)!r}")


def _first_bad_byte(path: Path) -> str:
    """Where a file stops being UTF-8: "byte 0xe9 on line 2"."""
    raw = path.read_bytes()
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as error:
        line = raw[: error.start].count(b"\n") + 1
        return f"byte 0x{raw[error.start]:02x} on line {line}"
    return "a byte that is not UTF-8"


NPZ_ADVICE = "write it with np.savez(path, x=features, y=target) from numeric arrays"


def _open_npz(path: Path):
    """The NPZ archive at `path`, opened without ever unpickling; anything else is a ValueError naming it."""
    advice = NPZ_ADVICE
    try:
        archive = np.load(path, allow_pickle=False)
    except ValueError as error:  # not a zip, not an .npy: numpy would unpickle it, and reglab never does
        if "pickle" in str(error):
            raise ValueError(
                f"Data file {path} is not an NPZ archive of plain arrays (NumPy would read it as a "
                f"pickle, and reglab never loads pickles): {advice}. Received: source={str(path)!r}"
            ) from None
        raise _unreadable(path, "an NPZ archive", error, advice) from None
    except Exception as error:  # a damaged zip, an unreadable file
        raise _unreadable(path, "a readable NPZ archive", error, advice) from None
    if not isinstance(archive, np.lib.npyio.NpzFile):  # a single .npy array under an .npz name
        raise ValueError(
            f"Data file {path} holds one .npy array, not an NPZ archive of named arrays: {advice}. "
            f"Received: source={str(path)!r}"
        )
    return archive


def _load_npz(path: Path, target):
    advice = NPZ_ADVICE
    with _open_npz(path) as archive:
        key = target if target is not None else "y"
        missing = [k for k in ("x", key) if k not in archive.files]
        if missing:
            raise ValueError(
                f"NPZ file needs arrays 'x' and {key!r} (has {archive.files}). Received: source={str(path)!r}"
            )
        arrays = []
        for name in ("x", key):
            try:
                arrays.append(archive[name])
            except ValueError as error:
                if "allow_pickle" in str(error) or "Object arrays" in str(error):
                    raise ValueError(
                        f"Data file {path}: array {name!r} holds pickled Python objects, and reglab never "
                        f"loads pickles: {advice}. Received: source={str(path)!r}"
                    ) from None
                raise _unreadable(path, "a readable NPZ archive", error, advice) from None
            except Exception as error:  # a damaged member of the archive
                raise _unreadable(path, "a readable NPZ archive", error, advice) from None
        return tuple(arrays)


def load_file(path, target: str | None = None):
    """(x, y) from a CSV or Parquet file (a `target` column) or an NPZ file (arrays `x` and `target` or `y`).

    A file that cannot be read as its kind — empty, not UTF-8, a malformed CSV, a damaged Parquet or
    NPZ file, pickled arrays (never loaded), a header without rows — is a ValueError naming it."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"Data file not found. Received: source={str(path)!r}")
    if target is not None and not isinstance(target, str):
        raise ValueError(
            f"`target` is the name of the target column (CSV, Parquet) or array (NPZ). Received: target={target!r}"
        )
    suffix = path.suffix.lower()
    if suffix == ".npz":
        return _load_npz(path, target)
    if suffix == ".csv":
        try:
            frame = pd.read_csv(path, encoding="utf-8")
        except pd.errors.EmptyDataError:
            raise ValueError(
                f"Data file {path} is empty (no header, no rows): write the feature and target columns "
                f"with a header line. Received: source={str(path)!r}"
            ) from None
        except UnicodeDecodeError:
            raise ValueError(
                f"Data file {path} is not UTF-8 text ({_first_bad_byte(path)}): save it as UTF-8. "
                f"Received: source={str(path)!r}"
            ) from None
        except Exception as error:  # a malformed CSV (pandas' ParserError), an unreadable file
            raise _unreadable(
                path, "a readable CSV file", error, "write one header line and rows of equal length"
            ) from None
    elif suffix in (".parquet", ".pq"):
        try:
            frame = pd.read_parquet(path)
        except Exception as error:  # pyarrow raises several kinds for a damaged or foreign file
            raise _unreadable(path, "a readable Parquet file", error, "write it with DataFrame.to_parquet") from None
    else:
        raise ValueError(f"Unsupported data file type (use .csv, .parquet or .npz). Received: source={str(path)!r}")
    if frame.empty:
        raise ValueError(
            f"Data file {path} has column names but no rows: nothing to train on. Received: source={str(path)!r}"
        )
    if target is None or target not in frame.columns:
        raise ValueError(
            f"Name the target column with `target` (columns: {list(frame.columns)}). Received: target={target!r}"
        )
    return frame.drop(columns=[target]), frame[target]


def stream(path, target: str | None = None, chunk_rows: int | None = None):
    """(x, y) of a data file whose features stay on disk: x a `reglab.on_disk.DiskArray` (rows read as a
    sweep asks for them, `chunk_rows` at a time), y the target in memory. Files as `load_file` reads them:

    - NPZ (`np.savez(path, x=features, y=target)`): an uncompressed archive is read where it is; a
      compressed one (`np.savez_compressed`) is written out once to reglab's cache;
    - Parquet (a `target` column, every other column a numeric feature): written once, row group by row
      group, to a float32 `.npy` file in reglab's cache (`REGLAB_CACHE`, else `~/.cache/reglab`);
    - a `.npy` file of features alone: give the target as an array, `target=y`.

    What the file holds is checked as it is read, chunk by chunk, with `load_file`'s rules, before any work.
    """
    from reglab import on_disk

    path = Path(path)
    if not path.is_file():
        raise ValueError(f"Data file not found. Received: source={str(path)!r}")
    if chunk_rows is not None and (not isinstance(chunk_rows, (int, np.integer)) or chunk_rows < 1):
        raise ValueError(f"chunk_rows is a number of rows (1 or more). Received: chunk_rows={chunk_rows!r}")
    suffix = path.suffix.lower()
    if suffix == ".npy":
        if target is None or isinstance(target, str):
            raise ValueError(
                f"A .npy file holds the features alone: give the target as an array (target=y). Received: target={target!r}"
            )
        x = on_disk.open_npy(path)
        y = np.asarray(target)
    elif suffix == ".npz":
        if target is not None and not isinstance(target, str):
            raise ValueError(f"`target` is the name of the NPZ archive's target array. Received: target={target!r}")
        key = target or "y"
        try:
            with _open_npz(path) as archive:
                names = list(archive.files)
                if "x" not in names or key not in names:
                    raise ValueError(
                        f"NPZ file needs arrays 'x' and {key!r} (has {names}). Received: source={str(path)!r}"
                    )
                y = archive[key]
                x = on_disk.open_npz_member(path, "x")
                if x is None:  # compressed: written out once, in chunks
                    with archive.zip.open("x.npy") as member:
                        shape, dtype, _ = on_disk.header_of(member, str(path))
                        x = on_disk.cached_npy(path, "npz", shape, on_disk.rows_of(member, shape, dtype))
        except ValueError:  # already in reglab's words
            raise
        except Exception as error:  # a damaged archive
            raise _unreadable(path, "a readable NPZ archive", error, NPZ_ADVICE) from None
    elif suffix in (".parquet", ".pq"):
        x, y = _stream_parquet(path, target)
    else:
        raise ValueError(
            f"Unsupported data file type to stream (use .npz, .parquet or .npy). Received: source={str(path)!r}"
        )
    if len(y) != len(x):
        raise ValueError(f"x and y have different numbers of samples. Received: len(x)={len(x)}, len(y)={len(y)}")
    if chunk_rows is not None:
        x.chunk_rows = int(chunk_rows)
    return x, y


def _stream_parquet(path: Path, target):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from reglab import on_disk

    try:
        file = pq.ParquetFile(path)
    except Exception as error:
        raise _unreadable(path, "a readable Parquet file", error, "write it with DataFrame.to_parquet") from None
    names = file.schema_arrow.names
    if target is None or target not in names:
        raise ValueError(f"Name the target column with `target` (columns: {names}). Received: target={target!r}")
    features = [n for n in names if n != target]
    kinds = {n: file.schema_arrow.field(n).type for n in features}
    bad = [
        n for n, t in kinds.items() if not (pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_boolean(t))
    ]
    if bad:
        raise ValueError(
            f"Feature columns must be numeric; encode these first: {bad}. Received: source={str(path)!r} with types "
            f"{ {n: str(kinds[n]) for n in bad} }"
        )
    rows = file.metadata.num_rows
    if rows == 0:
        raise ValueError(
            f"Data file {path} has column names but no rows: nothing to train on. Received: source={str(path)!r}"
        )
    y = file.read(columns=[target]).column(0).to_numpy(zero_copy_only=False)

    def chunks():
        for batch in file.iter_batches(batch_size=65536, columns=features):
            yield np.column_stack([batch.column(i).to_numpy(zero_copy_only=False) for i in range(len(features))])

    x = on_disk.cached_npy(path, f"parquet|{target}", (rows, len(features)), chunks())
    x.columns = tuple(features)  # what the features are called (the report's feature selection names them)
    return x, y
