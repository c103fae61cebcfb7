"""A shard, one unit of work for another process: a plain, safe payload in a folder.

What travels is data, never code: each member's model as its Keras config (JSON, rebuilt with
`safe_mode=True`) and the values of all its variables (weights, BatchNormalization statistics, dropout
seed states: the member exactly as the caller built it under its seed), the members' points, seeds and
folds, the training settings (Keras objects as their Keras configs) and the data (`.npy` arrays). The
builder never leaves the caller. Custom objects registered with `keras.saving.register_keras_serializable`
travel by name: the payload lists the modules their configs name, and the worker imports them (from the
caller's `sys.path`) before it rebuilds anything.

The result comes back the same way: each member's epoch records (Parquet), its final variables and
weights (`.npz`, no pickles) and the engine's timing (JSON).

    folder/data.json, data/*.npy       the Dataset (written once, shared by every shard of a training call)
    folder/<shard>/shard.json, .npz    the members, their models, the training settings
    folder/<shard>/result.json, .npz, records/<i>.parquet
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

FORMAT = 1
_SAFE = (str, int, float, bool, type(None))


# --- the data ---------------------------------------------------------------------------------------


def _layout(part):
    if isinstance(part, dict):
        return {"dict": list(part)}
    if isinstance(part, list):
        return {"list": len(part)}
    return "array"


def write_data(data, folder) -> None:
    """`data` (`reglab.data.Dataset`) as `.npy` arrays and a JSON description."""
    from reglab.data import leaves

    folder = Path(folder)
    (folder / "data").mkdir(parents=True, exist_ok=True)
    on_disk = {}
    for name in ("x", "y"):
        for i, array in enumerate(leaves(getattr(data, name))):
            if hasattr(array, "chunks"):  # features on disk (`reglab.stream`): the worker reads the same file
                on_disk[f"{name}{i}"] = {
                    "path": str(array.path.resolve()),
                    "offset": array.offset,
                    "shape": list(array.shape),
                    "dtype": array.file_dtype.str,
                    "chunk_rows": array.chunk_rows,
                }
                continue
            np.save(folder / "data" / f"{name}{i}.npy", np.ascontiguousarray(array), allow_pickle=False)
    classes = [c.item() if hasattr(c, "item") else c for c in data.classes]
    description = {"task": data.task, "classes": classes, "x": _layout(data.x), "y": _layout(data.y)}
    description["on_disk"] = on_disk
    (folder / "data.json").write_text(json.dumps(description))


def read_data(folder):
    """The Dataset `write_data` wrote; the arrays are memory-mapped (read, never copied up front)."""
    from reglab.data import Dataset

    folder = Path(folder)
    description = json.loads((folder / "data.json").read_text())

    def load(name):
        if name in description.get("on_disk", {}):
            from reglab.on_disk import DiskArray

            where = description["on_disk"][name]
            return DiskArray(where["path"], where["offset"], tuple(where["shape"]), where["dtype"], where["chunk_rows"])
        return np.load(folder / "data" / f"{name}.npy", mmap_mode="r", allow_pickle=False)

    def part(name):
        layout = description[name]
        if layout == "array":
            return load(f"{name}0")
        if "dict" in layout:
            return {key: load(f"{name}{i}") for i, key in enumerate(layout["dict"])}
        return [load(f"{name}{i}") for i in range(layout["list"])]

    return Dataset(part("x"), part("y"), description["task"], tuple(description["classes"]))


# --- Keras objects as plain values --------------------------------------------------------------------


def plain(value):
    """A training setting as JSON: numbers, names, lists and dicts as they are, a Keras object (a loss, a
    metric, a learning-rate schedule) as its Keras config."""
    import keras

    if isinstance(value, _SAFE):
        return value
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    return {"__keras__": keras.saving.serialize_keras_object(value)}


def rebuilt(value):
    """The inverse of `plain` (Keras objects rebuilt with `safe_mode=True`)."""
    import keras

    if isinstance(value, list):
        return [rebuilt(v) for v in value]
    if isinstance(value, dict):
        if set(value) == {"__keras__"}:
            return keras.saving.deserialize_keras_object(value["__keras__"], safe_mode=True)
        return {k: rebuilt(v) for k, v in value.items()}
    return value


def modules(config) -> list[str]:
    """The modules a serialized config names outside Keras and reglab (registered custom objects)."""
    found = set()

    def walk(node):
        if isinstance(node, dict):
            module = node.get("module")
            if isinstance(module, str) and not module.startswith(("keras", "reglab", "builtins")):
                found.add(module)
            for child in node.values():
                walk(child)
        elif isinstance(node, list):
            for child in node:
                walk(child)

    walk(config)
    return sorted(found)


# --- a shard --------------------------------------------------------------------------------------


def write_shard(folder, members, models, training, validate: bool, checkpoints: dict | None) -> None:
    """The payload of `members` (`reglab.search.plan.Member`) whose models (built by the caller under each
    member's seed) are `models`; `checkpoints`: {"run_dir", "seconds"} or None."""
    from dataclasses import asdict

    import keras

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    arrays, configs, variables = {}, [], []
    for i, (member, model) in enumerate(zip(members, models)):
        configs.append(keras.saving.serialize_keras_object(model))
        variables.append([[v.path, list(v.shape)] for v in model.variables])
        arrays[f"train{i}"], arrays[f"val{i}"] = np.asarray(member.train), np.asarray(member.val)
        for k, v in enumerate(model.variables):
            arrays[f"m{i}v{k}"] = np.asarray(keras.ops.convert_to_numpy(v.value))
    description = {
        "format": FORMAT,
        "members": [
            {k: v for k, v in asdict(m).items() if k not in ("train", "val")} | {"point": plain(m.point)}
            for m in members
        ],
        "models": configs,
        "variables": variables,
        "modules": sorted({name for config in configs for name in modules(config)}),
        "training": {k: plain(v) for k, v in asdict(training).items()},
        "validate": bool(validate),
        "checkpoints": checkpoints,
    }
    (folder / "shard.json").write_text(json.dumps(description))
    np.savez(folder / "shard.npz", **arrays)


def read_shard(folder) -> dict:
    """`write_shard`'s description, with its arrays ({name: array}) under "arrays"."""
    folder = Path(folder)
    description = json.loads((folder / "shard.json").read_text())
    if description.get("format") != FORMAT:
        raise ValueError(
            f"A shard of another reglab (format {description.get('format')} ≠ {FORMAT}). Received: {folder}"
        )
    with np.load(folder / "shard.npz", allow_pickle=False) as archive:
        description["arrays"] = {name: archive[name] for name in archive.files}
    return description


def members_of(description) -> list:
    from reglab.search.plan import Member

    arrays = description["arrays"]
    return [
        Member(**{**m, "point": rebuilt(m["point"])}, train=arrays[f"train{i}"], val=arrays[f"val{i}"])
        for i, m in enumerate(description["members"])
    ]


def training_of(description):
    from reglab.engine.training import Training

    return Training(**{k: rebuilt(v) for k, v in description["training"].items()})


# --- its result --------------------------------------------------------------------------------------


def write_result(folder, members, records: dict, weights: dict, models, timing: dict) -> None:
    """What the worker gives back: per member its records, final weights ({path: array}) and the final
    values of all its model's variables (for the caller's copy of the model)."""
    import keras

    folder = Path(folder)
    (folder / "records").mkdir(exist_ok=True)
    arrays, paths = {}, []
    for i, (member, model) in enumerate(zip(members, models)):
        records[member.id].to_parquet(folder / "records" / f"{i}.parquet", index=False)
        paths.append(list(weights[member.id]))
        for k, value in enumerate(weights[member.id].values()):
            arrays[f"m{i}w{k}"] = np.asarray(value)
        for k, v in enumerate(model.variables):
            arrays[f"m{i}v{k}"] = np.asarray(keras.ops.convert_to_numpy(v.value))
    np.savez(folder / "result.npz", **arrays)
    variables = [[v.path for v in model.variables] for model in models]
    meta = {"weights": paths, "variables": variables, "timing": timing}
    (folder / "result.json").write_text(json.dumps(meta, default=float))


def read_result(folder, count: int) -> tuple[list, list, list, list, dict]:
    """(records per member, {path: array} per member, variable values per member, the worker's variable
    paths per member, timing)."""
    import pandas as pd

    folder = Path(folder)
    meta = json.loads((folder / "result.json").read_text())
    with np.load(folder / "result.npz", allow_pickle=False) as archive:
        arrays = {name: archive[name] for name in archive.files}
    records = [pd.read_parquet(folder / "records" / f"{i}.parquet") for i in range(count)]
    weights = [{p: arrays[f"m{i}w{k}"] for k, p in enumerate(meta["weights"][i])} for i in range(count)]
    values = []
    for i in range(count):
        k, mine = 0, []
        while f"m{i}v{k}" in arrays:
            mine.append(arrays[f"m{i}v{k}"])
            k += 1
        values.append(mine)
    return records, weights, values, meta["variables"], meta["timing"]
