"""Members → populations: each member's model built under its seed, grouped by what must be the same
for one compiled program (`signature`: the architecture, penalties off reglab's basis, the optimizer's
settings). What members may differ in without another program is `reglab.engine.knobs`'."""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import partial
from typing import Callable

import keras

from reglab import _keras_private as private
from reglab.engine import basis
from reglab.engine.knobs import PER_MEMBER_LAYER_ATTRIBUTES, unwrap
from reglab.engine.training import error_line
from reglab.search import plan, points


class Unsupported(Exception):
    """The sweep cannot run on the population engine; the message says why."""


def unavailable() -> str | None:
    """Why populations cannot train in this process, or None if they can."""
    if keras.backend.backend() != "jax":
        return (
            f"the population engine runs on Keras's JAX backend and this process uses "
            f"{keras.backend.backend()!r} (set KERAS_BACKEND=jax, or import reglab before keras)"
        )
    return None


# --- members → populations ----------------------------------------------------------------------


@dataclass
class Population:
    """Members whose models share an architecture; `models[i]` is member i's own model, built under
    its seed with its point applied (its initial weights and seed state are the member's)."""

    members: list
    models: list
    build: Callable | None = None  # member -> its model, built as `plan_populations` builds them (`admit`)


def structure(config, rates=False):
    """A model config without what members may differ in: weight penalties, and the rates of Keras's
    own layers (`rates`: inside such a layer's config; see `per_member_knobs`)."""
    if isinstance(config, dict):
        keras_layer = "class_name" in config and str(config.get("module", "")).startswith("keras")
        return {
            k: "<per member>"
            if (k.endswith("_regularizer") and k != "activity_regularizer")
            or (rates and k in PER_MEMBER_LAYER_ATTRIBUTES and isinstance(v, float))
            else structure(v, rates=keras_layer and k == "config")
            for k, v in config.items()
        }
    if isinstance(config, list):
        return [structure(v) for v in config]
    return config


def signature(model, point: dict) -> str:
    """Members whose models have the same signature train in one population."""
    try:
        config = structure(model.get_config())
    except NotImplementedError:  # a subclassed model without get_config: its class and variables say it
        config = None
    penalties = []
    for v in model.trainable_variables:
        inner, _ = unwrap(v.regularizer)
        if basis.decompose(inner) is None:  # not on the basis: must be the same regularizer
            penalties.append([v.path, keras.saving.serialize_keras_object(inner)])
    variables = [[v.path, list(v.shape), str(v.dtype), bool(v.trainable)] for v in model.variables]
    return json.dumps(
        [
            f"{type(model).__module__}.{type(model).__qualname__}",
            config,
            variables,
            penalties,
            sorted(points.optimizer_settings(point)),
        ],
        sort_keys=True,
        default=repr,
    )


def plan_populations(members, make_model, probe=None) -> tuple[list[Population], dict]:
    """Build every member's model under its seed (as the reference engine does) and group the members
    by `signature`. A model that has not created its weights yet (a subclassed model) is called once on
    `probe`, a batch of inputs, as `fit` would build it. Returns (populations, {member id: error} for
    members whose model did not build)."""
    build = partial(build_model, make_model=make_model, probe=probe)
    groups, failed = {}, {}
    for member in members:
        try:
            model = build(member)
            key = signature(model, member.point)
        except Exception as error:  # recorded as that member's failure, like the reference engine does
            failed[member.id] = error_line(error)
            continue
        groups.setdefault(key, Population([], [], build)).members.append(member)
        groups[key].models.append(model)
    return list(groups.values()), failed


def build_model(member, make_model, probe=None):
    """`member`'s own model: built under its seed with its point applied (called on `probe` if it has not
    created its weights)."""
    keras.backend.clear_session(free_memory=False)  # names reset; a full gc pass costs ~0.2 s
    plan.set_global_seed(member.seed)
    model = make_model(member.point)
    if not isinstance(model, keras.Model):
        raise TypeError(f"the builder returned {type(model).__name__}, not a Keras model")
    if probe is not None and not built(model):
        model(probe)
    return model


def built(model) -> bool:
    return (
        model.built and all(layer.built for layer in private.layers(model, include_self=True)) and bool(model.variables)
    )
