"""Data: validation before any work, the structure of several inputs or outputs, splits, fingerprints
(where the data comes from — built-in sets, files — is `reglab.sources`).

Everything a sweep trains on goes through `prepare(x, y, ...)`, which refuses bad input with a
ValueError naming the argument — before a model is built or a run directory written.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
import pandas as pd

MAX_MAGNITUDE = 1e15  # larger feature or regression-target values are refused (see `prepare`)


@dataclass(frozen=True)
class Dataset:
    """Validated data: float32 features, labels encoded 0..C-1 for classification.

    `x` is one array, or — for a model with several inputs — a dict (by input name) or list of
    arrays; `y` likewise for several outputs (then `task` is "multi-output" and each output's
    target is validated on its own: class labels encoded 0..C-1, or a float regression target)."""

    x: object
    y: object
    task: str  # "classification", "regression" or "multi-output"
    classes: tuple  # original labels of classes 0..C-1 (empty for regression and multi-output)
    feature_names: tuple = ()  # a DataFrame's column names (one input); empty: features are named by index

    @property
    def n_classes(self) -> int:
        return len(self.classes)

    @property
    def structured(self) -> bool:
        """Several inputs or several outputs."""
        return isinstance(self.x, (dict, list)) or isinstance(self.y, (dict, list))

    def __len__(self) -> int:
        return len(leaves(self.y)[0])

    def fingerprint(self) -> str:
        """A hash of the exact values, so a run directory can refuse different data."""
        digest = hashlib.sha256()
        for name, part in (("x", self.x), ("y", self.y)):
            for key, array in _named_leaves(part, name):
                if hasattr(array, "chunks"):  # features on disk: hashed as they are read, chunk by chunk
                    digest.update(str((array.shape, "<f4", "chunk_rows", array.chunk_rows)).encode())
                    for _, block in array.chunks(array.chunk_rows):
                        digest.update(block.tobytes())
                    continue
                digest.update(
                    str((key, array.shape, array.dtype.str)).encode()
                    if key != name
                    else str((array.shape, array.dtype.str)).encode()
                )
                digest.update(np.ascontiguousarray(array).tobytes())
        digest.update(self.task.encode())
        return digest.hexdigest()[:16]


def leaves(part) -> list:
    """The arrays of `x` or `y`: one array, or a dict's (in key order) or list's arrays."""
    if isinstance(part, dict):
        return [part[k] for k in part]
    if isinstance(part, list):
        return list(part)
    return [part]


def _named_leaves(part, name):
    if isinstance(part, dict):
        return [(f"{name}[{k!r}]", v) for k, v in part.items()]
    if isinstance(part, list):
        return [(f"{name}[{i}]", v) for i, v in enumerate(part)]
    return [(name, part)]


def rows(part, index):
    """`part[index]` for one array or each array of a dict / list.

    >>> rows({"a": np.arange(4), "b": np.arange(8).reshape(4, 2)}, [0, 3])["b"].tolist()
    [[0, 1], [6, 7]]
    """
    if isinstance(part, dict):
        return {k: v[index] for k, v in part.items()}
    if isinstance(part, list):
        return [v[index] for v in part]
    return part[index]


def stack(parts: list, convert=lambda a: a):
    """`np.stack` of equally structured parts (arrays, or dicts / lists of arrays), array by array."""
    first = parts[0]
    if isinstance(first, dict):
        return {k: np.stack([convert(p[k]) for p in parts]) for k in first}
    if isinstance(first, list):
        return [np.stack([convert(p[i]) for p in parts]) for i in range(len(first))]
    return np.stack([convert(p) for p in parts])


def _structure(value, name, convert):
    """`convert(array, label)` of one array, or of each array of a dict (string keys) or list / tuple;
    every array must have the same number of samples."""
    if isinstance(value, dict):
        if not value or not all(isinstance(k, str) for k in value):
            raise ValueError(
                f"Several {name} are a dict with string keys (the model's input / output names) or a list. "
                f"Received: {name} with keys {list(value)!r}"
            )
        out = {k: convert(v, f"{name}[{k!r}]") for k, v in value.items()}
    elif (
        isinstance(value, (list, tuple))
        and value
        and all(isinstance(v, (np.ndarray, pd.DataFrame, pd.Series)) for v in value)
    ):
        out = [convert(v, f"{name}[{i}]") for i, v in enumerate(value)]
    else:
        return convert(value, name)
    lengths = {label: len(array) for label, array in _named_leaves(out, name)}
    if len(set(lengths.values())) > 1:
        raise ValueError(f"Every array of {name} needs one row per sample. Received: lengths {lengths}")
    return out


def _as_features(x, name="x") -> np.ndarray:
    if x is None:
        raise ValueError(f"No features given. Received: {name}=None")
    if hasattr(x, "chunks"):  # features on disk (`reglab.on_disk.DiskArray`): checked chunk by chunk, kept there
        for _, block in x.chunks(x.chunk_rows):
            _check_values(block, name)
        if len(x) == 0:
            raise ValueError(f"No samples. Received: {name}.shape={x.shape}")
        return x
    if isinstance(x, pd.DataFrame):
        bad = [c for c in x.columns if not (pd.api.types.is_numeric_dtype(x[c]) or pd.api.types.is_bool_dtype(x[c]))]
        if bad:
            raise ValueError(
                f"Feature columns must be numeric; encode these first: {bad}. Received: {name} with dtypes "
                f"{ {c: str(x[c].dtype) for c in bad} }"
            )
        x = x.to_numpy()
    array = np.asarray(x)
    if array.dtype == object or not (np.issubdtype(array.dtype, np.number) or array.dtype == bool):
        raise ValueError(f"Features must be numeric. Received: {name} of dtype {array.dtype}")
    if array.ndim < 2:
        raise ValueError(
            f"Features need a sample axis and at least one feature axis (rank >= 2). Received: {name}.shape={array.shape}"
        )
    if array.shape[0] == 0 or array.size == 0:
        raise ValueError(f"No samples. Received: {name}.shape={array.shape}")
    if np.iscomplexobj(array):
        raise ValueError(f"Features must be real numbers. Received: {name} of dtype {array.dtype}")
    _check_values(array, name)
    return array.astype("float32")


def _check_values(array, name):
    """Refuse non-finite features and magnitudes float32 training cannot use."""
    if not np.all(np.isfinite(array)):  # checked before float32, which would turn 1e39 into inf
        n_nan, n_inf = int(np.isnan(array).sum()), int(np.isinf(array).sum())
        raise ValueError(f"Features must be finite. Received: {name} with {n_nan} NaN and {n_inf} inf values")
    largest = max(abs(float(array.max())), abs(float(array.min())))
    if largest > MAX_MAGNITUDE:
        raise ValueError(
            f"Features of magnitude {largest:.3g} are beyond what float32 training can use (reglab refuses "
            f"|value| > {MAX_MAGNITUDE:.0e}; standardizing cannot help there either: their squares overflow): rescale "
            f"them to units near 1 (or take their logarithm) first. Received: {name} with largest |value| {largest:.3g}"
        )


def _as_target(y, n: int, task: str, name="y"):
    if y is None:
        raise ValueError(f"No target given. Received: {name}=None")
    array = y.to_numpy() if isinstance(y, (pd.Series, pd.DataFrame)) else np.asarray(y)
    if array.ndim == 2 and array.shape[1] == 1:
        array = array[:, 0]
    if array.ndim != 1:
        raise ValueError(f"The target must be one value per sample (rank 1). Received: {name}.shape={array.shape}")
    if len(array) != n:
        raise ValueError(f"x and y have different numbers of samples. Received: len(x)={n}, len({name})={len(array)}")
    if task == "auto":
        task = "regression" if np.issubdtype(array.dtype, np.floating) else "classification"
    if task == "regression":
        if not np.issubdtype(array.dtype, np.number):
            raise ValueError(f"A regression target must be numeric. Received: {name} of dtype {array.dtype}")
        if np.iscomplexobj(array):
            raise ValueError(f"A regression target must be real numbers. Received: {name} of dtype {array.dtype}")
        if not np.all(np.isfinite(array)):  # before float32, as for the features
            raise ValueError(
                f"The target must be finite. Received: {name} with {int((~np.isfinite(array)).sum())} NaN/inf values"
            )
        largest = max(abs(float(array.max())), abs(float(array.min())))
        if largest > MAX_MAGNITUDE:
            raise ValueError(
                f"A regression target of magnitude {largest:.3g} is beyond what float32 training can use "
                f"(reglab refuses |value| > {MAX_MAGNITUDE:.0e}): rescale it first. "
                f"Received: {name} with largest |value| {largest:.3g}"
            )
        return array.astype("float32"), task, ()
    if task != "classification":
        raise ValueError(f"Unknown task (use 'classification', 'regression' or 'auto'). Received: task={task!r}")
    if array.dtype.kind == "f":
        if not np.all(np.isfinite(array)):
            raise ValueError(f"Class labels must be finite. Received: {name} with NaN/inf values")
        if not np.all(array == np.round(array)):
            raise ValueError(
                "Class labels must be whole numbers or strings; these look like a regression target "
                f"(set task='regression'). Received: {name} with values such as {array[array != np.round(array)][:3].tolist()}"
            )
    if array.dtype == object:
        missing = int(pd.isna(array).sum())
        if missing:
            raise ValueError(f"Class labels must not be missing. Received: {name} with {missing} missing values")
    try:
        classes, encoded = np.unique(array, return_inverse=True)
    except TypeError:  # labels of several kinds (numbers and strings) do not sort
        kinds = sorted({type(v).__name__ for v in array})
        raise ValueError(
            f"Class labels must be all numbers or all strings. Received: {name} with labels of types {kinds}"
        ) from None
    if len(classes) < 2:
        raise ValueError(
            f"Classification needs at least two classes. Received: {name} with the single class {classes.tolist()}"
        )
    return encoded.astype("int64"), task, tuple(c.item() if hasattr(c, "item") else c for c in classes)


def prepare(x, y, task: str = "auto") -> Dataset:
    """Validate and convert features and target; see `Dataset`.

    `task="auto"` treats a floating-point target as regression and anything else (ints, strings,
    bools) as class labels.

    Features (and a regression target) must be finite real numbers of magnitude at most
    `MAX_MAGNITUDE` (1e15): values around 1e30 fit in float32, but a network trained on them in
    float32 learns nothing meaningful (activations and losses overflow, and standardizing cannot
    rescue them: their squares overflow too), so they are refused with a ValueError naming `x` (or
    `y`) and the largest value, asking to rescale them, rather than trained into garbage.

    >>> prepare(np.array([[1.0], [1e30]]), np.array([0, 1]))
    Traceback (most recent call last):
    ...
    ValueError: Features of magnitude 1e+30 are beyond what float32 training can use (reglab refuses |value| > 1e+15; standardizing cannot help there either: their squares overflow): rescale them to units near 1 (or take their logarithm) first. Received: x with largest |value| 1e+30
    """
    features = _structure(x, "x", _as_features)
    n = len(leaves(features)[0])
    if isinstance(y, dict) or (
        isinstance(y, (list, tuple)) and y and all(isinstance(v, (np.ndarray, pd.Series)) for v in y)
    ):
        if task not in ("auto", "multi-output"):
            raise ValueError(f"Several targets have a task each (set task='auto'). Received: task={task!r}")
        targets = _structure(y, "y", lambda v, label: _as_target(v, n, "auto", label)[0])
        return Dataset(features, targets, "multi-output", ())
    if task == "multi-output":
        raise ValueError(
            "task='multi-output' needs several targets (a dict or list of arrays). Received: y of one array"
        )
    target, task, classes = _as_target(y, n, task)
    # a DataFrame's column names, or a streamed Parquet file's (`reglab.on_disk.DiskArray.columns`)
    names = tuple(str(c) for c in x.columns) if isinstance(x, pd.DataFrame) or hasattr(x, "chunks") else ()
    return Dataset(features, target, task, classes, names)


# --- splits ------------------------------------------------------------------------------------


def validate_cv(cv, data: Dataset, stratify: bool, test_size):
    """Refuse fold settings the data cannot honour (before any work)."""
    n = len(data)
    if test_size is not None:
        n = n - int(np.ceil(test_size * n))
    if isinstance(cv, float):
        return
    if cv > n:
        raise ValueError(f"More folds than samples ({n} after the test split). Received: cv={cv}")
    if stratify:
        labels = data.y
        counts = np.bincount(labels)
        smallest = int(counts.min())
        need = cv if test_size is None else int(np.ceil(cv / (1 - test_size)))
        if smallest < need:
            raise ValueError(
                f"Class {data.classes[int(counts.argmin())]!r} has {smallest} samples, too few for {cv}-fold "
                f"stratified cross-validation{' after the test split' if test_size else ''}. Received: cv={cv}"
            )


def split_test(data: Dataset, test_size, seed: int, stratify: bool):
    """Indices (rest, test) of a once-only test split, or (all, empty) without one."""
    from sklearn.model_selection import train_test_split

    everything = np.arange(len(data))
    if test_size is None:
        return everything, everything[:0]
    rest, test = train_test_split(
        everything, test_size=test_size, random_state=seed, stratify=data.y if stratify else None
    )
    return np.sort(rest), np.sort(test)


def folds(data: Dataset, rest: np.ndarray, cv, repeats: int, seed: int, stratify: bool):
    """[(fold, repeat, train indices, validation indices)] over `rest`, with scikit-learn's splitters."""
    from sklearn.model_selection import KFold, RepeatedKFold, RepeatedStratifiedKFold, StratifiedKFold, train_test_split

    y = data.y[rest] if stratify else np.zeros(len(rest))
    if isinstance(cv, float):  # a single hold-out split
        train, val = train_test_split(
            np.arange(len(rest)), test_size=cv, random_state=seed, stratify=y if stratify else None
        )
        return [(0, 0, rest[np.sort(train)], rest[np.sort(val)])]
    if repeats == 1:
        splitter = (StratifiedKFold if stratify else KFold)(n_splits=cv, shuffle=True, random_state=seed)
    else:
        splitter = (RepeatedStratifiedKFold if stratify else RepeatedKFold)(
            n_splits=cv, n_repeats=repeats, random_state=seed
        )
    out = []
    for i, (train, val) in enumerate(splitter.split(np.zeros(len(y)), y)):
        out.append((i % cv, i // cv, rest[train], rest[val]))
    return out
