"""Sweep specs in TOML or JSON (never pickle, never eval): load, validate, turn into a `Sweep`.

The format, section by section (`docs/examples/sweep.toml` is a commented, tested example):

- top level: `name` (the run directory's name), `seed`;
- `[data]`: `source` (a built-in name — digits, breast_cancer, wine, diabetes,
  noisy_classification — or a .csv/.parquet/.npz path, relative to the config file), `target`
  (the target column or NPZ array), `task` ("auto"), `test_size`, `standardize` (default true);
- `[model]`: `hidden` (layer widths), `activation` — the built-in MLP — or `file`, your own model: a
  `.keras` file (relative to the config file) written by `model.save("model.keras")`, loaded with
  `safe_mode=True, compile=False`; every member starts from its weights and each point is applied
  with `reglab.regularize` (penalties on the hidden layers: every layer with a kernel that is not an
  output). Its input shape must match the data's features. The command line can load only built-in
  Keras and reglab objects (no `Lambda` layers, no custom classes: the Python API, `reglab.Sweep`,
  takes any model). `layer_groups` (`{group = [layers]}`, by layer name) works with either;
- `[search]`: one of `grid`, `random` (+ `n_trials`), `stages`; `refine`, `refine_param`,
  `refine_points`, `select`;
- `[cv]`: `folds` (k) or `holdout` (a fraction), `repeats`, `stratify`;
- `[train]`: `epochs`, `batch_size`, `optimizer`, `learning_rate`, `engine` ("auto", "stacked",
  "reference"), `checkpoint_seconds` (how often, at least, the population engine saves its training
  state in the run directory: default 2; a killed run continues from the last save).

Unknown sections and keys are errors (a typo must not silently become a default).
"""

from __future__ import annotations

import json
import re
import tomllib
import zipfile
from dataclasses import dataclass
from pathlib import Path

import keras

from reglab import _checks
from reglab import data as data_module
from reglab import points
from reglab.models import MLP
from reglab.sweep import Sweep

ALLOWED = {
    None: {"name", "seed", "data", "model", "search", "cv", "train"},
    "data": {"source", "target", "task", "test_size", "standardize"},
    "model": {"file", "hidden", "activation", "layer_groups"},
    "search": {"grid", "random", "n_trials", "stages", "refine", "refine_param", "refine_points", "select"},
    "cv": {"folds", "holdout", "repeats", "stratify"},
    "train": {"epochs", "batch_size", "optimizer", "learning_rate", "engine", "checkpoint_seconds"},
}


@dataclass
class Experiment:
    """A loaded spec: the sweep and the data to run it on."""

    name: str
    sweep: Sweep
    x: object
    y: object
    task: str
    checkpoint_seconds: float = 2.0


def load(path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"Config file not found. Received: config={str(path)!r}")
    text = path.read_text()
    try:
        if path.suffix.lower() == ".json":
            return json.loads(text)
        return tomllib.loads(text)
    except (tomllib.TOMLDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"Config file is not valid {path.suffix[1:].upper() or 'TOML'}: {error}. Received: config={str(path)!r}") from None


def _check_keys(section, table):
    if not isinstance(table, dict):
        raise ValueError(f"[{section}] must be a table. Received: {section}={table!r}")
    unknown = sorted(set(table) - ALLOWED[section])
    if unknown:
        where = f"[{section}]" if section else "the top level"
        raise ValueError(f"Unknown key(s) {unknown} in {where} (allowed: {sorted(ALLOWED[section])}). Received: {unknown[0]}")


def experiment(config: dict, base_dir=".") -> Experiment:
    """Validate a config dict and build the `Experiment` (nothing is trained)."""
    _check_keys(None, config)
    for section in ("data", "model", "search", "cv", "train"):
        _check_keys(section, config.get(section, {}))
    data_cfg, model_cfg = config.get("data", {}), config.get("model", {})
    search, cv_cfg, train = config.get("search", {}), config.get("cv", {}), config.get("train", {})
    model_file = model_cfg.get("file")
    mlp_keys = [key for key in ("hidden", "activation") if key in model_cfg]
    if model_file is not None and mlp_keys:
        raise ValueError(
            f"[model] `file` and `{mlp_keys[0]}` cannot go together: `file` is your own model, `hidden` and "
            f"`activation` describe the built-in MLP; drop one. "
            f"Received: file={model_file!r}, {mlp_keys[0]}={model_cfg[mlp_keys[0]]!r}"
        )

    source = data_cfg.get("source")
    if not isinstance(source, str) or not source:
        raise ValueError(f"[data] needs `source`: a built-in name or a file path. Received: source={source!r}")
    task = data_cfg.get("task", "auto")
    if source in data_module.BUILTIN:
        x, y, builtin_task = data_module.load_builtin(source)
        task = builtin_task if task == "auto" else task
    else:
        path = Path(source) if Path(source).is_absolute() else Path(base_dir) / source
        if not path.is_file():
            raise ValueError(
                f"Data not found: neither a built-in data set ({', '.join(data_module.BUILTIN)}) nor an existing "
                f"file (looked for {path}). Received: source={source!r}"
            )
        x, y = data_module.load_file(path, data_cfg.get("target"))
    dataset = data_module.prepare(x, y, task)

    if "folds" in cv_cfg and "holdout" in cv_cfg:
        raise ValueError("[cv] takes `folds` or `holdout`, not both. Received: both")
    cv = cv_cfg.get("holdout", cv_cfg.get("folds", 5))
    layer_groups = model_cfg.get("layer_groups", {})
    if model_file is not None:  # a plain model: Sweep applies each point with reglab.regularize
        model = load_model_file(model_file, base_dir)
        _check_input_shape(model, model_file, base_dir, dataset.x.shape)
        model_args = {"model": model, "layer_groups": layer_groups}
    else:
        builder = MLP(hidden=model_cfg.get("hidden", [64]), activation=model_cfg.get("activation", "relu"),
                      layer_groups=layer_groups)
        n_outputs = dataset.n_classes if dataset.task == "classification" else 1
        model_args = {"model": builder.bind(dataset.x.shape[1], n_outputs)}

    sweep = Sweep(
        **model_args,
        grid=search.get("grid"), random=search.get("random"), n_trials=search.get("n_trials", 10),
        stages=search.get("stages"), refine=search.get("refine", 0), refine_param=search.get("refine_param"),
        refine_points=search.get("refine_points", 5), select=search.get("select", "val_loss"),
        cv=cv, repeats=cv_cfg.get("repeats", 1), stratify=cv_cfg.get("stratify", "auto"),
        test_size=data_cfg.get("test_size"), standardize=data_cfg.get("standardize", True),
        epochs=train.get("epochs", 20), batch_size=train.get("batch_size", 32),
        optimizer=train.get("optimizer", "adam"), learning_rate=train.get("learning_rate", 1e-3),
        engine=train.get("engine", "auto"),
        seed=config.get("seed", 0),
    )
    for round_points in sweep._rounds:  # the MLP applies points like a plain model: check the keys now
        points.check(round_points, layer_groups)
    name = config.get("name", Path(source).stem)
    if not isinstance(name, str) or not name or "/" in name or name.startswith("."):
        raise ValueError(f"`name` must be a plain directory name. Received: name={name!r}")
    checkpoint_seconds = train.get("checkpoint_seconds", 2.0)
    _checks.number(checkpoint_seconds, "checkpoint_seconds", low=0)
    return Experiment(name=name, sweep=sweep, x=dataset.x, y=dataset.y, task=dataset.task,
                      checkpoint_seconds=float(checkpoint_seconds))


def load_model_file(file, base_dir=".") -> keras.Model:
    """`[model] file`: a `.keras` model, loaded with `safe_mode=True, compile=False` (no code from the
    file runs; reglab's own regularizers and schedules are registered). Every failure is a one-line
    ValueError that names the file and says what to change."""
    received = f"Received: file={file!r}"
    if not isinstance(file, str) or not file:
        raise ValueError(f"[model] `file` is the path of a .keras model file. {received}")
    path = Path(file) if Path(file).is_absolute() else Path(base_dir) / file
    if path.suffix != ".keras":
        raise ValueError(
            f"[model] file {path} is not a .keras file: reglab reads only the native Keras format (.keras); "
            f"load the model in Python and save it with model.save('model.keras'). {received}"
        )
    if not path.is_file():
        raise ValueError(f"[model] file not found: {path} (a relative path is relative to the config file). {received}")
    try:
        with zipfile.ZipFile(path) as archive:
            is_model_archive = "config.json" in archive.namelist()
    except (zipfile.BadZipFile, OSError):
        is_model_archive = False
    if not is_model_archive:
        raise ValueError(
            f"[model] file {path} is not a Keras model archive (a .keras file is a zip holding config.json and "
            f"the weights): write it with model.save('model.keras'). {received}"
        )
    from reglab import regularizers, schedules  # noqa: F401  (register reglab>L2, … before loading)

    try:
        model = keras.models.load_model(path, safe_mode=True, compile=False)
    except (ValueError, TypeError, KeyError, IndexError, OSError) as error:
        raise ValueError(_load_error(path, error) + f" {received}") from None
    if not isinstance(model, keras.Model):
        raise ValueError(f"[model] file {path} holds a {type(model).__name__}, not a Keras model. {received}")
    if not model.built or not model.inputs:
        raise ValueError(
            f"[model] file {path} holds a model without an input shape: start it with keras.Input(shape) and "
            f"save it again. {received}"
        )
    return model


def _load_error(path, error) -> str:
    """One line saying why Keras could not load `path` and what to change."""
    text = " ".join(str(error).split())
    unsafe = re.search(r"Requested the deserialization of (an? (?:`[^`]+`|Python lambda)(?: layer| object)?)", text)
    if unsafe and "safe_mode=False" in text:
        what = unsafe.group(1).replace("`", "")
        if "Lambda" in what or "lambda" in what:
            what = "a Lambda layer" if "Lambda" in what else "a Python lambda"
            return (f"[model] file {path} contains {what} (arbitrary code); reglab loads models with safe_mode=True: "
                    "replace the Lambda with built-in Keras layers and save the model again.")
        return (f"[model] file {path} contains {what}, which runs code from outside the file; reglab loads models "
                "with safe_mode=True: rebuild the model from built-in Keras layers.")
    missing = re.search(r"Could not locate (class|function) '([^']+)'", text)
    if isinstance(error, TypeError) and missing:
        kind, name = missing.groups()
        return (f"[model] file {path} uses {kind} {name!r}, which is not a built-in Keras or reglab object; the "
                f"command line loads only those (it imports no code of yours): run the sweep from Python with "
                f"reglab.Sweep(model, ...), after importing the module that registers {name!r} with "
                "@keras.saving.register_keras_serializable, or rebuild the model from built-in layers.")
    reason = text.split("Exception encountered: ")[-1]
    reason = reason if len(reason) <= 160 else reason[:157] + "..."
    return (f"[model] file {path} could not be loaded as a Keras model ({type(error).__name__}: {reason}); "
            "save it again with model.save('model.keras') under Keras 3.")


def _check_input_shape(model, file, base_dir, data_shape) -> None:
    """The model takes one input whose shape fits the data's features (checked before any work)."""
    path = Path(file) if Path(file).is_absolute() else Path(base_dir) / file
    if len(model.inputs) != 1:
        raise ValueError(f"[model] file {path} has {len(model.inputs)} inputs; a sweep feeds it one array of "
                         f"features: save a model with one keras.Input. Received: file={file!r}")
    shape = tuple(model.inputs[0].shape)
    fits = len(shape) == len(data_shape) and all(m is None or m == d for m, d in zip(shape[1:], data_shape[1:]))
    if not fits:
        raise ValueError(
            f"[model] file {path} takes inputs of shape {shape} but the data has shape {tuple(data_shape)}: "
            f"save a model whose keras.Input has shape {tuple(data_shape[1:])}. Received: file={file!r}"
        )


def from_file(path) -> Experiment:
    path = Path(path)
    return experiment(load(path), base_dir=path.parent)
