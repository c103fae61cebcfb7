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


def _load_npz(path: Path, target):
    advice = "write it with np.savez(path, x=features, y=target) from numeric arrays"
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
    with archive:
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
