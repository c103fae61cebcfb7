"""What a sweep is, as plain values: its config and its spec.

- The **config** (`config`, `Sweep.get_config`) is Keras's convention: the constructor's arguments as
  given, JSON-ready (a learning-rate schedule or a loss object as Keras serializes it, a distribution as
  its config), and the model as a reference — a builder by its import path, `reglab.models.MLP` by its
  settings, a built Keras model by its architecture (its weights are not in a config: pass the model to
  `Sweep.from_config`). `arguments(config)` turns it back into `Sweep`'s keyword arguments. A run
  directory's spec.json keeps it, so that it says how to rebuild its sweep.
- The **spec** (`spec`) is what a run directory hashes to know that a re-run is the same sweep: the
  settings, normalized, and the model's *fingerprint*. A builder's fingerprint is the architecture it builds
  (the Keras config of the first point's model with the per-point values masked, and every variable's
  path, shape and dtype) rather than its source text: editing the builder's whitespace or comments no
  longer restarts a sweep, and an edit in a helper the builder calls that changes the model is no longer
  missed (tests/test_sweep_spec.py measures both). A change that leaves the config and shapes alone (a custom
  layer's `call`) is not seen by either; a run directory written with the source-text fingerprint still
  resumes (`legacy_hash`).
"""

from __future__ import annotations

import hashlib
import importlib
import inspect
import json

import numpy as np


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def hash_of(spec: dict) -> str:
    return _sha(json.dumps(spec, sort_keys=True, default=str))


# --- the config: constructor arguments as given ---------------------------------------------------------


def _plain(value):
    """A constructor argument as JSON-ready values: Keras objects serialized, distributions as their config."""
    import keras

    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if hasattr(value, "to_config") and type(value).__module__ in (
        "reglab.search.space",
        "reglab.search.studies",
        "reglab.search.auto",
    ):
        return value.to_config()
    if isinstance(value, np.generic):
        return value.item()
    return keras.saving.serialize_keras_object(value)


def _restored(value):
    """The inverse of `_plain` for what Keras serialized (a dict with `class_name`)."""
    import keras

    if isinstance(value, dict):
        if "class_name" in value and "config" in value:
            return keras.saving.deserialize_keras_object(value)
        return {k: _restored(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_restored(v) for v in value]
    return value


def model_reference(model) -> dict:
    """How a config names the model: {"builder": "module:qualname"}, {"mlp": settings}, or {"keras_model":
    architecture} (a built model: its weights are not part of a config)."""
    import keras

    if hasattr(model, "spec") and type(model).__module__ == "reglab.models":
        return {"mlp": model.spec()}
    if isinstance(model, keras.Model):
        return {"keras_model": keras.saving.serialize_keras_object(model)}
    if type(model).__module__ == "reglab.search.hypermodels":  # a KerasTuner hypermodel: its build function
        described = _described(model.hypermodel)
        return {"keras_tuner": f"{described.__module__}:{described.__qualname__}"}
    described = _described(model)
    return {"builder": f"{described.__module__}:{described.__qualname__}"}


def _described(builder):
    """What names a builder: the function, or the class of a callable object."""
    return builder if inspect.isfunction(builder) or inspect.ismethod(builder) else type(builder)


def config(model, given: dict) -> dict:
    return {"model": model_reference(model), **{k: _plain(v) for k, v in given.items()}}


def arguments(config: dict, model=None) -> tuple[object, dict]:
    """(model, keyword arguments) of `Sweep` from a config; `model` given replaces the config's reference."""
    config = dict(config)
    reference = config.pop("model", None)
    if model is None:
        model = _model_from(reference)
    return model, {k: _restored(v) for k, v in config.items()}


def _model_from(reference):
    if not isinstance(reference, dict) or len(reference) != 1:
        raise ValueError(
            f"A sweep config names its model as builder, mlp or keras_model. Received: model={reference!r}"
        )
    ((kind, value),) = reference.items()
    if kind == "mlp":
        from reglab.models import MLP

        settings = {k: value[k] for k in ("hidden", "activation", "n_features", "n_outputs", "layer_groups")}
        return MLP(**settings)
    if kind in ("builder", "keras_tuner"):
        module, _, name = str(value).partition(":")
        if "<" in name:  # a lambda or a function defined inside another: nothing to import
            raise ValueError(
                f"The builder {value} cannot be imported (a lambda or a local function): pass it as "
                f"Sweep.from_config(config, model=...). Received: model={reference!r}"
            )
        found = importlib.import_module(module)
        for part in name.split("."):
            found = getattr(found, part)
        if kind == "keras_tuner":
            from reglab.search.hypermodels import HyperModel

            return HyperModel(found() if isinstance(found, type) else found)
        return found
    if kind == "keras_model":
        raise ValueError(
            "A config holds a built model's architecture, not its weights: pass the model as "
            "Sweep.from_config(config, model=...). Received: model={'keras_model': ...}"
        )
    raise ValueError(
        f"A sweep config names its model as builder, keras_tuner, mlp or keras_model. Received: model={reference!r}"
    )


# --- the spec: what a run directory hashes -------------------------------------------------------------


def settings(sweep, model: dict) -> dict:
    """The spec: a sweep's settings, normalized, with the model's `fingerprint`."""
    import keras

    from reglab.search import space

    search = (
        sweep.search.to_config()
        if sweep.search is not None
        else {"grid": sweep.grid}
        if sweep.grid is not None
        else {"stages": sweep.stages}
        if sweep.stages is not None
        else {
            "random": {k: space.distribution(v, k).to_config() for k, v in sweep.random.items()},
            "n_trials": sweep.n_trials,
        }
    )
    return {
        "model": model,
        "search": search,
        "refine": sweep.refine,
        "refine_param": sweep.refine_param,
        "refine_points": sweep.refine_points,
        "cv": sweep.cv,
        "repeats": sweep.repeats,
        "stratify": sweep.stratify,
        "test_size": sweep.test_size,
        "epochs": sweep.epochs,
        "batch_size": sweep.batch_size,
        "optimizer": sweep.optimizer,
        "learning_rate": keras.saving.serialize_keras_object(sweep.learning_rate),
        "loss": sweep.loss,
        "metrics": sweep.metrics if isinstance(sweep.metrics, (str, dict)) else list(sweep.metrics),
        "layers": repr(sweep.layers),
        "layer_groups": {k: repr(v) for k, v in sweep.layer_groups.items()},
        "standardize": sweep.standardize,
        "select": sweep.select,
        "refit": sweep.refit,
        "engine": sweep.engine,
        "seed": sweep.seed,
        # only when set, so that run directories written before the setting existed still resume
        **({"loss_weights": sweep.loss_weights} if sweep.loss_weights is not None else {}),
        **({"gradients": sweep.gradients} if sweep.gradients else {}),
        **({"prune": vars(sweep.halving)} if sweep.halving is not None else {}),
        **({"prune": "optuna"} if sweep.pruner else {}),
    }


def fingerprint(model, probe=None) -> dict:
    """The model's part of the spec: an MLP's settings; a built model's architecture and weights; a
    builder's architecture, from `probe` (the model it built for the first point)."""
    import keras

    if hasattr(model, "spec") and type(model).__module__ == "reglab.models":
        return model.spec()
    if isinstance(model, keras.Model):
        weights = hashlib.sha256(b"".join(np.ascontiguousarray(w).tobytes() for w in model.get_weights()))
        return {"kind": "model", "config_sha": _sha(model.to_json()), "weights_sha": weights.hexdigest()[:16]}
    return {
        "kind": "builder",
        "name": next(iter(model_reference(model).values())).replace(":", "."),
        "architecture_sha": _sha(architecture(probe)),
    }


def architecture(model) -> str:
    """A built model's architecture as text: its config with the per-point values masked (the penalties,
    the rates of Keras's layers: `reglab.engine.grouping`'s structure) and every variable's path, shape and
    dtype. A model without a config (a subclassed one) is its class and variables."""
    from reglab.engine.grouping import structure

    try:
        described = structure(model.get_config())
    except NotImplementedError:
        described = None
    variables = [[v.path, list(v.shape), str(v.dtype)] for v in model.variables]
    return json.dumps(
        [f"{type(model).__module__}.{type(model).__qualname__}", described, variables], sort_keys=True, default=repr
    )


def legacy_fingerprint(model) -> dict:
    """A builder's fingerprint before `architecture`: its source text (run directories written then)."""
    described = _described(model)
    try:
        source = inspect.getsource(described)
    except (OSError, TypeError):
        source = ""
    return {"kind": "builder", "name": f"{described.__module__}.{described.__qualname__}", "source_sha": _sha(source)}
