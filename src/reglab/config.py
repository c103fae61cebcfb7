"""Sweep specs in TOML or JSON (never pickle, never eval): load, validate, turn into a `Sweep`.

The format, section by section (`docs/examples/sweep.toml` is a commented, tested example):

- top level: `name` (the run directory's name: one plain folder name, no path separators, control
  characters or leading '.'; default: the data source's name), `seed` (0 to 2**32 - 1);
- `[data]`: `source` (a built-in name — digits, breast_cancer, wine, diabetes,
  noisy_classification — or a .csv/.parquet/.npz path, relative to the config file), `target`
  (the target column or NPZ array), `task` ("auto"), `test_size`, `standardize` (default true),
  `stream` (default false: true keeps a .parquet/.npz file's features on disk, `reglab.stream`);
- `[model]`: `hidden` (layer widths), `activation` — the built-in MLP — or `file`, your own model: a
  `.keras` file (relative to the config file) written by `model.save("model.keras")`, loaded with
  `safe_mode=True, compile=False`; every member starts from its weights and each point is applied
  with `reglab.regularize` (penalties on the hidden layers: every layer with a kernel that is not an
  output). Its input shape must match the data's features. The command line can load only built-in
  Keras and reglab objects (no `Lambda` layers, no custom classes: the Python API, `reglab.Sweep`,
  takes any model). `layer_groups` (`{group = [layers]}`, by layer name) works with either;
- `[search]`: one of `grid` (a penalty's values may be `"auto"`: computed from the data, `reglab.search.auto`),
  `random` (+ `n_trials`), `stages`, `optuna` (an Optuna study: `{ space = {…},
  n_trials, population, sampler, storage, study_name }`, `reglab.search.studies`); `refine`, `refine_param`,
  `refine_points`, `select` (what the sweep records: `val_loss`, and `val_accuracy` for classes or
  `val_mean_absolute_error` for a regression target); `prune` ("halving", "hyperband", or "optuna" with `optuna`: the study's pruner), `eta`, `min_epochs`;
- `[cv]`: `folds` (k) or `holdout` (a fraction), `repeats`, `stratify`;
- `[train]`: `epochs`, `batch_size`, `optimizer`, `learning_rate`, `engine` ("auto", "population",
  "reference"), `executor` ("auto", "local", "process": where populations train, see `reglab.Sweep`) and
  `workers` (worker processes for "process"), `checkpoint_seconds` (how often, at least, the population engine saves its training
  state in the run directory: default 2; a killed run continues from the last save), `gradients` (true, or a
  number of rows: record the two gradients of seed 004 for every member, see `reglab.Sweep`).

Unknown sections and keys are errors (a typo must not silently become a default).

Two steps: `validate` makes every check the file (and the data it names) decides, without Keras, so
that `reglab sweep` refuses a typo before spending ~5 s importing Keras and JAX; `build` then makes
the Keras objects (the model file's model or the MLP, the `Sweep`) and the checks that need them.
"""

from __future__ import annotations

import json
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from reglab import data as data_module
from reglab import model_file as model_file_module
from reglab import sources, validation
from reglab.models import MLP, widths
from reglab.search import auto, points
from reglab.validation import sweep as sweep_validation

if TYPE_CHECKING:  # Keras is imported by `build`, not with this module (see the docstring)
    from reglab.sweep import Sweep

ALLOWED = {
    None: {"name", "seed", "data", "model", "search", "cv", "train"},
    "data": {"source", "target", "task", "test_size", "standardize", "stream"},
    "model": {"file", "hidden", "activation", "layer_groups"},
    "search": {
        "grid",
        "random",
        "n_trials",
        "stages",
        "refine",
        "refine_param",
        "refine_points",
        "select",
        "optuna",
        "prune",
        "eta",
        "min_epochs",
    },
    "cv": {"folds", "holdout", "repeats", "stratify"},
    "train": {
        "epochs",
        "gradients",
        "batch_size",
        "optimizer",
        "learning_rate",
        "engine",
        "executor",
        "workers",
        "checkpoint_seconds",
    },
}


@dataclass
class Checked:
    """A config that passed every check `check` makes: what `build` needs to make the Keras objects."""

    name: str
    dataset: data_module.Dataset
    base_dir: Path
    model: dict  # the [model] table: `file`, or `hidden` and `activation`
    layer_groups: dict
    settings: dict  # `Sweep`'s keyword arguments but the model's
    checkpoint_seconds: float


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
    """The dict a .toml or .json sweep spec holds (a .json file is JSON, anything else TOML). Every
    failure is a one-line ValueError naming the file: missing, unreadable, not UTF-8 (where), not valid
    TOML / JSON (the line and column), or not a table of sections."""
    path = Path(path)
    received = f"Received: config={str(path)!r}"
    try:
        if path.is_dir():
            raise ValueError(f"Config file {path} is a directory: give the .toml or .json file itself. {received}")
        if not path.is_file():
            raise ValueError(f"Config file not found. {received}")
        raw = path.read_bytes()
    except OSError as error:
        raise ValueError(f"Config file {path} cannot be read ({error.strerror or error}). {received}") from None
    try:
        text = raw.decode("utf-8-sig")  # a byte-order mark is fine
    except UnicodeDecodeError as error:
        line = raw[: error.start].count(b"\n") + 1
        raise ValueError(
            f"Config file {path} is not UTF-8 text (byte 0x{raw[error.start]:02x} on line {line}): save it as "
            f"UTF-8. {received}"
        ) from None
    kind = "JSON" if path.suffix.lower() == ".json" else "TOML"
    try:
        config = json.loads(text) if kind == "JSON" else tomllib.loads(text)
    except json.JSONDecodeError as error:
        raise ValueError(
            f"Config file {path} is not valid JSON at line {error.lineno}, column {error.colno}: "
            f"{error.msg}. {received}"
        ) from None
    except tomllib.TOMLDecodeError as error:
        found = re.fullmatch(r"(.*) \(at (line \d+, column \d+|end of document)\)", str(error), flags=re.S)
        reason, where = (found.group(1), found.group(2)) if found else (str(error), "")
        raise ValueError(
            f"Config file {path} is not valid TOML{' at ' + where if where else ''}: {reason}. {received}"
        ) from None
    except RecursionError:
        raise ValueError(f"Config file {path} is nested too deeply to be a sweep spec. {received}") from None
    if not isinstance(config, dict):
        raise ValueError(
            f"Config file {path} must hold a table of sections (a JSON object), not a "
            f"{type(config).__name__}. {received}"
        )
    return config


def _shown(value, limit: int = 80) -> str:
    """`repr(value)`, shortened to `limit` characters."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _check_keys(section, table):
    if not isinstance(table, dict):
        if section is None:
            raise ValueError(f"A sweep spec is a table of sections. Received: config={_shown(table)}")
        raise ValueError(f"[{section}] must be a table. Received: {section}={_shown(table)}")
    unknown = sorted(set(table) - ALLOWED[section], key=str)
    if unknown:
        where = f"[{section}]" if section else "the top level"
        raise ValueError(
            f"Unknown key(s) {unknown} in {where} (allowed: {sorted(ALLOWED[section])}). "
            f"Received: {unknown[0]}={_shown(table[unknown[0]])}"
        )


def _check_name(name, source) -> str:
    """`name`: the run directory's name (runs/<name>), one plain folder name."""
    problem = None
    if not isinstance(name, str) or not name.strip():
        problem = "is not a non-empty string"
    elif validation.has_control(name):
        problem = "holds control characters"
    elif "/" in name or "\\" in name:
        problem = "holds a path separator ('/' or '\\')"
    elif name.startswith("."):
        problem = "starts with '.' (hidden, or the folder itself or its parent)"
    elif len(name.encode()) > 255:
        problem = "is longer than a folder name can be (255 bytes)"
    if problem:
        default = "" if source is None else ", by default the data source's file name"
        raise ValueError(
            f"`name` is the run directory's name (runs/<name>{default}) and this one {problem}: set "
            f'`name` to a plain folder name such as "wine-l2". Received: name={_shown(name)}'
        )
    return name


def _layer_groups(layer_groups) -> dict:
    if not isinstance(layer_groups, dict) or not all(isinstance(g, str) and g for g in layer_groups):
        raise ValueError(
            "[model] `layer_groups` is a table {group = [layer names]}. "
            f"Received: layer_groups={_shown(layer_groups)}"
        )
    return layer_groups


def _check_layer_groups(model, layer_groups) -> None:
    """Every group selects layers of `model` (checked on the model itself: its layer names)."""
    from reglab.kit.attach import select_layers

    for group, selector in layer_groups.items():
        try:
            select_layers(model, selector)
        except ValueError as error:
            reason = str(error).split(" Received: ")[0].rstrip(".")
            raise ValueError(
                f"[model] layer_groups: group {group!r} selects no layer of the model ({reason}); "
                f"name its layers as the model does. Received: layer_groups.{group}={_shown(selector)}"
            ) from None


def _recorded(task: str) -> list[str]:
    """The validation quantities a sweep from a config records for `task` (what `select` may name)."""
    return ["val_loss", "val_accuracy"] if task == "classification" else ["val_loss", "val_mean_absolute_error"]


def validate(config: dict, base_dir=".") -> Checked:
    """Validate a config dict and load its data: every check that needs no Keras, each a one-line
    ValueError (`build` makes the rest)."""
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
        raise ValueError(f"[data] needs `source`: a built-in name or a file path. Received: source={_shown(source)}")
    if "name" in config:  # a default name (the source's) is checked once the source is
        _check_name(config["name"], None)
    standardize = data_cfg.get("standardize", True)
    if not isinstance(standardize, bool):
        raise ValueError(f"[data] `standardize` is true or false. Received: standardize={_shown(standardize)}")
    if "folds" in cv_cfg and "holdout" in cv_cfg:
        raise ValueError(
            "[cv] takes `folds` or `holdout`, not both. "
            f"Received: folds={_shown(cv_cfg['folds'])}, holdout={_shown(cv_cfg['holdout'])}"
        )
    if "holdout" in cv_cfg:
        cv = float(validation.number(cv_cfg["holdout"], "holdout", low=0, high=0.95, low_open=True))
    else:
        cv = validation.number(cv_cfg.get("folds", 5), "folds", low=2, integer=True)
    layer_groups = _layer_groups(model_cfg.get("layer_groups", {}))
    task = data_cfg.get("task", "auto")
    stream = data_cfg.get("stream", False)
    if not isinstance(stream, bool):
        raise ValueError(f"[data] `stream` is true or false. Received: stream={_shown(stream)}")
    if stream and source in sources.BUILTIN:
        raise ValueError(
            f"[data] `stream` reads a .parquet or .npz file from disk as it trains; the built-in {source!r} is "
            "small and held in memory: drop `stream`. Received: stream=true"
        )
    if source in sources.BUILTIN:
        if "target" in data_cfg:
            raise ValueError(
                f"[data] `target` names a column or array of a data file; the built-in {source!r} has its "
                f"own target: drop `target`. Received: target={_shown(data_cfg['target'])}"
            )
        x, y, builtin_task = sources.load_builtin(source)
        task = builtin_task if task == "auto" else task
    else:
        path = validation.config_path(source, "source", base_dir)
        if not validation.is_file(path, "source", source):
            raise ValueError(
                f"Data not found: neither a built-in data set ({', '.join(sources.BUILTIN)}) nor an existing "
                f"file (looked for {path}). Received: source={source!r}"
            )
        x, y = (sources.stream if stream else sources.load_file)(path, data_cfg.get("target"))
    dataset = data_module.prepare(x, y, task)
    name = _check_name(config.get("name", Path(source).stem), None if "name" in config else source)
    select = search.get("select", "val_loss")
    if select not in _recorded(dataset.task):
        raise ValueError(
            f"[search] `select` names a validation quantity the sweep records; for this "
            f"{dataset.task} data those are {_recorded(dataset.task)}. Received: select={_shown(select)}"
        )

    if model_file is not None:
        model_file_module.checked_path(model_file, base_dir)  # its contents are `build`'s: loading them needs Keras
    else:
        widths(model_cfg.get("hidden", [64]))  # the activation is `build`'s: Keras knows the names
    arguments = dict(  # `Sweep`'s keyword arguments but the model's
        grid=search.get("grid"),
        random=search.get("random"),
        n_trials=search.get("n_trials", 10),
        stages=search.get("stages"),
        search={"optuna": search["optuna"]} if "optuna" in search else None,
        refine=search.get("refine", 0),
        refine_param=search.get("refine_param"),
        refine_points=search.get("refine_points", 5),
        prune=search.get("prune"),
        eta=search.get("eta", 3),
        min_epochs=search.get("min_epochs", 1),
        select=select,
        cv=cv,
        repeats=cv_cfg.get("repeats", 1),
        stratify=cv_cfg.get("stratify", "auto"),
        test_size=data_cfg.get("test_size"),
        standardize=standardize,
        epochs=train.get("epochs", 20),
        batch_size=train.get("batch_size", 32),
        optimizer=train.get("optimizer", "adam"),
        learning_rate=train.get("learning_rate", 1e-3),
        engine=train.get("engine", "auto"),
        executor=train.get("executor", "auto"),
        workers=train.get("workers", 1),
        gradients=train.get("gradients", False),
        seed=config.get("seed", 0),
    )
    # `Sweep`'s own checks of these settings, made now (they need no Keras); the MLP applies points like a
    # plain model, so their keys are checked here too
    auto.split(arguments["grid"], builder=False)  # "auto" only where a penalty's strength goes
    checked = sweep_validation.arguments(**{k: v for k, v in arguments.items() if k != "standardize"})
    for round_points in checked["rounds"]:
        points.validate(round_points, layer_groups)
    checkpoint_seconds = train.get("checkpoint_seconds", 2.0)
    validation.number(checkpoint_seconds, "checkpoint_seconds", low=0)
    return Checked(
        name=name,
        dataset=dataset,
        base_dir=Path(base_dir),
        model=model_cfg,
        layer_groups=layer_groups,
        settings=arguments,
        checkpoint_seconds=float(checkpoint_seconds),
    )


def build(checked: Checked) -> Experiment:
    """The `Experiment` of a checked config: the model (the file's, or the MLP) and the `Sweep`, with the
    checks that need them (nothing is trained)."""
    import keras

    from reglab.sweep import Sweep

    model_cfg, layer_groups, dataset = checked.model, checked.layer_groups, checked.dataset
    model_file = model_cfg.get("file")
    if model_file is not None:  # a plain model: Sweep applies each point with reglab.regularize
        model = model_file_module.load(model_file, checked.base_dir)
        model_file_module.check_input_shape(model, model_file, checked.base_dir, dataset.x.shape)
        _check_layer_groups(model, layer_groups)
        model_args = {"model": model, "layer_groups": layer_groups}
    else:
        builder = MLP(
            hidden=model_cfg.get("hidden", [64]),
            activation=model_cfg.get("activation", "relu"),
            layer_groups=layer_groups,
        )
        n_outputs = dataset.n_classes if dataset.task == "classification" else 1
        model_args = {"model": builder.bind(dataset.x.shape[1], n_outputs)}
        if layer_groups:
            _check_layer_groups(model_args["model"].plain(), layer_groups)
            keras.backend.clear_session(free_memory=False)
    sweep = Sweep(**model_args, **checked.settings)
    return Experiment(
        name=checked.name,
        sweep=sweep,
        x=dataset.x,
        y=dataset.y,
        task=dataset.task,
        checkpoint_seconds=checked.checkpoint_seconds,
    )


def experiment(config: dict, base_dir=".") -> Experiment:
    """Validate a config dict and build the `Experiment` (nothing is trained)."""
    return build(validate(config, base_dir))


def with_settings(checked: Checked, settings: dict) -> Checked:
    """`checked` with some of the Sweep's settings replaced (the command line's `--executor`), validated."""
    import dataclasses

    merged = {**checked.settings, **settings}
    sweep_validation.arguments(**{k: v for k, v in merged.items() if k != "standardize"})
    return dataclasses.replace(checked, settings=merged)


def validate_file(path) -> Checked:
    """`check` of the spec in the file at `path` (relative paths in it are relative to the file)."""
    path = Path(path)
    return validate(load(path), base_dir=path.parent)


def from_file(path) -> Experiment:
    return build(validate_file(path))
