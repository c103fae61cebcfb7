"""Sweep specs in TOML or JSON (never pickle, never eval): load, validate, turn into a `Sweep`.

The format, section by section (`docs/examples/sweep.toml` is a commented, tested example):

- top level: `name` (the run directory's name), `seed`;
- `[data]`: `source` (a built-in name — digits, breast_cancer, wine, diabetes,
  noisy_classification — or a .csv/.parquet/.npz path, relative to the config file), `target`
  (the target column or NPZ array), `task` ("auto"), `test_size`, `standardize` (default true);
- `[model]`: `hidden` (layer widths), `activation`, `layer_groups` (`{group = [layers]}`);
- `[search]`: one of `grid`, `random` (+ `n_trials`), `stages`; `refine`, `refine_param`,
  `refine_points`, `select`;
- `[cv]`: `folds` (k) or `holdout` (a fraction), `repeats`, `stratify`;
- `[train]`: `epochs`, `batch_size`, `optimizer`, `learning_rate`, `engine` ("auto", "stacked",
  "reference").

Unknown sections and keys are errors (a typo must not silently become a default).
"""

from __future__ import annotations

import json
import tomllib
from dataclasses import dataclass
from pathlib import Path

from reglab import data as data_module
from reglab import points
from reglab.models import MLP
from reglab.sweep import Sweep

ALLOWED = {
    None: {"name", "seed", "data", "model", "search", "cv", "train"},
    "data": {"source", "target", "task", "test_size", "standardize"},
    "model": {"hidden", "activation", "layer_groups"},
    "search": {"grid", "random", "n_trials", "stages", "refine", "refine_param", "refine_points", "select"},
    "cv": {"folds", "holdout", "repeats", "stratify"},
    "train": {"epochs", "batch_size", "optimizer", "learning_rate", "engine"},
}


@dataclass
class Experiment:
    """A loaded spec: the sweep and the data to run it on."""

    name: str
    sweep: Sweep
    x: object
    y: object
    task: str


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
    builder = MLP(hidden=model_cfg.get("hidden", [64]), activation=model_cfg.get("activation", "relu"),
                  layer_groups=layer_groups)
    builder = builder.bind(dataset.x.shape[1], dataset.n_classes if dataset.task == "classification" else 1)

    sweep = Sweep(
        builder,
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
    return Experiment(name=name, sweep=sweep, x=dataset.x, y=dataset.y, task=dataset.task)


def from_file(path) -> Experiment:
    path = Path(path)
    return experiment(load(path), base_dir=path.parent)
