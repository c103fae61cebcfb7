"""What a configuration point means for a plain model: point keys → `regularize()` arguments.

When a sweep is given a model (not a builder function), each point is applied with
`reglab.regularize`. The keys:

=====================  ========================================================================
`l1`, `l2`,            λ of that kernel penalty on the sweep's layers (by default the hidden
`elastic_net`,         layers: every layer with a kernel except the output layers; for LSTM, GRU,
`group_lasso`,         SimpleRNN and their `Bidirectional` wrappers, the input kernel)
`smoothness`
`recurrent_<penalty>`  the same on the recurrent kernels of those of the sweep's layers that have
                       one (`recurrent_l2`, `recurrent_l1`, `recurrent_elastic_net`, ...)
`<penalty>.<group>`    λ of that penalty on a named layer group (`layer_groups={"early": [0]}`);
                       `recurrent_<penalty>.<group>` too
`penalty`, `lambda`    the penalty kind as a dimension of its own (`lambda.<group>` works too)
`l1_ratio`             elastic net's L1 share (default 0.5), recurrent kernels' too
`dropout`              Dropout rate inserted after each of the sweep's layers
`learning_rate`        the optimizer's learning rate for this point (instead of the sweep's)
`weight_decay`         decoupled weight decay `w ← w − lr·wd·w` (Keras's `weight_decay`) on the
                       kernels of the sweep's layers, outside the loss
`prox_l1`              λ of a proximal L1 step after each update (`reglab.kit.optimizers.Proximal`):
                       the objective of `L1(λ)`, with exact zeros
`prox_group`           λ of a proximal group-lasso step: whole units to exactly zero
`l2_sp`                λ of L2-SP on the sweep's layers: `λ·Σ(w − w₀)²` toward the model's own weights
                       (a pretrained model's: fine-tuning), `reglab.regularizers.L2SP`
=====================  ========================================================================

As `penalty` kinds, `"weight_decay"` and `"prox_l1"` make `lambda` comparable with `"l2"` and `"l1"`:
`{"penalty": "weight_decay", "lambda": λ}` decays with `wd = 2λ`, which is exactly `L2(λ)` under
plain SGD (and not under Adam: that difference is what such a sweep shows);
`{"penalty": "prox_l1", "lambda": λ}` is `prox_l1 = λ`. These two act in the optimizer, so they
work with builder functions too (on every kernel there).

`l1` and `l2` on the same layer combine into `L1L2` (`recurrent_l1` and `recurrent_l2` likewise).

>>> describe({"l2": 1e-3, "dropout": 0.2})
'L2(l2=0.001) on the hidden layers, dropout 0.2'
"""

from __future__ import annotations

from reglab import validation


def _regularizers():
    """`reglab.kit.regularizers`, imported when a penalty is made: the key checks (`check`,
    `validate_optimizer_keys`) need no Keras, so `reglab sweep` makes them before importing it."""
    from reglab.kit import regularizers

    return regularizers


KINDS = {
    "l1": lambda s, p: _regularizers().L1(s),
    "l2": lambda s, p: _regularizers().L2(s),
    "elastic_net": lambda s, p: _regularizers().ElasticNet(s, p.get("l1_ratio", 0.5)),
    "group_lasso": lambda s, p: _regularizers().GroupLasso(s),
    "smoothness": lambda s, p: _regularizers().Smoothness(s),
    "l2_sp": lambda s, p: _regularizers().L2(s),  # toward the model's weights: made per layer by `apply`
}
OPTIMIZER_KINDS = ("weight_decay", "prox_l1", "prox_group")
OTHER_KEYS = ("penalty", "l1_ratio", "dropout", "learning_rate", *OPTIMIZER_KINDS)
RECURRENT = "recurrent_"  # `recurrent_l2` is `l2` on the recurrent kernels


def validate_optimizer_keys(points: list[dict], optimizer: str) -> None:
    """Refuse optimizer-side keys a sweep cannot apply (builder sweeps too), before any work."""
    for point in points:
        for key in OPTIMIZER_KINDS:
            if key in point:
                validation.non_negative_float(point[key], key)
        if "learning_rate" in point:
            validation.number(point["learning_rate"], "learning_rate", low=0, low_open=True)
        kinds = set(point) | {point.get("penalty")}
        if kinds & {"prox_l1", "prox_group"} and optimizer not in ("sgd", "adam", "adamw", "rmsprop"):
            raise ValueError(
                "Proximal steps (prox_l1, prox_group) need the sweep's optimizer to be sgd, adam, adamw or "
                f"rmsprop. Received: optimizer={optimizer!r}"
            )


def optimizer_settings(point: dict) -> dict[str, float]:
    """{"weight_decay": wd, "prox_l1": λ} the point asks of the optimizer (only the ones it sets).

    >>> optimizer_settings({"penalty": "weight_decay", "lambda": 1e-3})
    {'weight_decay': 0.002}
    """
    settings = {k: float(point[k]) for k in OPTIMIZER_KINDS if k in point}
    kind = point.get("penalty")
    if kind in OPTIMIZER_KINDS and "lambda" in point:
        settings[kind] = float(point["lambda"]) * (2.0 if kind == "weight_decay" else 1.0)
    return settings


def _entries(point: dict) -> list[tuple[str, str, str | None, float]]:
    """[(slot, penalty kind, layer group or None, λ)] named by the point; slot is "kernel" or "recurrent"."""
    entries = []
    for key, value in point.items():
        base, _, group = key.partition(".")
        if base in KINDS:
            entries.append(("kernel", base, group or None, value))
        elif base.removeprefix(RECURRENT) in KINDS:
            entries.append(("recurrent", base.removeprefix(RECURRENT), group or None, value))
        elif base == "lambda" and point.get("penalty", "l2") not in OPTIMIZER_KINDS:
            entries.append(("kernel", point.get("penalty", "l2"), group or None, value))
    return entries


def _targets(model, entry, layers, groups) -> list:
    """The layers an entry of `_entries` acts on: its group's, else the sweep's; for a recurrent key,
    those of them that have a recurrent kernel (an error if none has: the key would do nothing)."""
    from reglab.kit.attach import has_slot, hidden_layers, select_layers

    slot, kind, group, value = entry
    if group is not None:
        chosen = select_layers(model, groups[group])
    else:
        chosen = hidden_layers(model) if layers == "hidden" else select_layers(model, layers)
    if slot == "recurrent":
        chosen = [layer for layer in chosen if has_slot(layer, "recurrent")]
        if not chosen:
            key = RECURRENT + kind + (f".{group}" if group else "")
            where = f"layer group {group!r}" if group else f"the sweep's layers ({layers!r})"
            raise ValueError(
                f"No layer with a recurrent kernel (LSTM, GRU, SimpleRNN, ...) in {where}. Received: {key}={value!r}"
            )
    return chosen


def validate_model(model, points: list[dict], layers="hidden", groups: dict | None = None) -> None:
    """Refuse keys that would act on no layer of `model` (recurrent keys on a model without one)."""
    for point in points:
        for entry in _entries(point):
            _targets(model, entry, layers, groups or {})


def validate(points: list[dict], groups: dict) -> None:
    """Refuse keys and values a plain-model sweep cannot apply (before any work)."""
    for point in points:
        for key, value in point.items():
            base, _, group = key.partition(".")
            kind = base.removeprefix(RECURRENT)
            if kind not in KINDS and base != "lambda" and key not in OTHER_KEYS:
                raise ValueError(
                    f"Unknown search key for a model sweep (use {sorted(KINDS)}, the same with a "
                    f"{RECURRENT!r} prefix, 'lambda', 'penalty', 'l1_ratio', 'dropout', 'learning_rate', or pass a builder "
                    f"function). Received: {key}={value!r}"
                )
            if group and group not in groups:
                raise ValueError(
                    f"Unknown layer group {group!r} (layer_groups: {sorted(groups)}). Received: {key}={value!r}"
                )
            if kind in KINDS or base == "lambda" or key in OPTIMIZER_KINDS:
                validation.non_negative_float(value, key)
            elif key == "penalty" and value not in KINDS and value not in OPTIMIZER_KINDS:
                raise ValueError(
                    f"Unknown penalty (use {sorted([*KINDS, *OPTIMIZER_KINDS])}). Received: penalty={value!r}"
                )
            elif key == "l1_ratio":
                validation.fraction(value, "l1_ratio")
            elif key == "dropout":
                validation.number(value, "dropout", low=0, high=0.999999)
            elif key == "learning_rate":
                validation.number(value, "learning_rate", low=0, low_open=True)


def apply(model, point: dict, layers="hidden", groups: dict | None = None, fresh: bool = False):
    """A copy of `model` regularized as `point` says (its weights kept). `fresh`: `model` was built for this
    point alone (a builder's), so where the point only puts penalties on weights the layers already have,
    they are attached to it in place — the model `regularize` would rebuild, without building it twice
    (a rebuild is ~60 % of an MLP member's build)."""
    from reglab.kit.attach import attach_in_place, hidden_layers, regularize, select_layers, toward_initial
    from reglab.kit.attach import leaf_layers as _leaves

    groups = groups or {}
    default = hidden_layers(model) if layers == "hidden" else select_layers(model, layers)
    per_layer: dict[tuple[str, str], list] = {}  # (slot, layer name) -> [(kind, λ)]
    for entry in _entries(point):
        slot, kind, _, strength = entry
        for layer in _targets(model, entry, layers, groups):
            per_layer.setdefault((slot, layer.name), []).append((kind, strength))
    chosen: dict[str, dict] = {"kernel": {}, "recurrent": {}}  # slot -> {layer name: regularizer}
    for (slot, name), penalties in per_layer.items():
        kinds = {k for k, _ in penalties}
        if len(penalties) == 1:
            kind, strength = penalties[0]
            chosen[slot][name] = KINDS[kind](strength, point)
            if kind == "l2_sp":  # L2-SP: toward this layer's weight as `model` holds it (the pretrained one)
                layer = next(layer for layer in _leaves(model) if layer.name == name)
                chosen[slot][name] = toward_initial(layer, slot, chosen[slot][name])
        elif kinds == {"l1", "l2"} and len(penalties) == 2:
            values = dict(penalties)
            chosen[slot][name] = _regularizers().L1L2(l1=values["l1"], l2=values["l2"])
        else:
            raise ValueError(
                f"Layer {name!r} would get several {slot} penalties {penalties}; one per layer (use "
                f"elastic_net for L1 + L2). Received: point={point!r}"
            )
    kernel, recurrent = chosen["kernel"], chosen["recurrent"]
    # A "dropout" key always inserts the layers (rate 0 included), so every point of a dropout sweep
    # has the same architecture and they train as one population.
    dropout = {layer.name: point["dropout"] for layer in default} if "dropout" in point else None
    if fresh and not dropout and attach_in_place(model, {"kernel": kernel, "recurrent": recurrent}):
        out = model
    elif not kernel and not recurrent and not dropout:
        import keras

        out = keras.models.clone_model(model)
        out.set_weights(model.get_weights())
    else:
        out = regularize(model, kernel=kernel or None, recurrent=recurrent or None, dropout=dropout)
    if optimizer_settings(point):  # the engines decay / threshold these kernels only
        names = {layer.name for layer in default}
        out.reglab_optimizer_targets = [
            v.path
            for layer in out.layers
            if layer.name in names
            for v in layer.trainable_weights
            if v.path.endswith("kernel")
        ]
    return out


def optimizer_targets(model) -> list[str]:
    """The variable paths a point's `weight_decay` / `prox_l1` act on: the sweep's layers' kernels for a
    plain-model sweep (set by `apply`), every kernel for a model from a builder function."""
    targets = getattr(model, "reglab_optimizer_targets", None)
    return (
        list(targets) if targets is not None else [v.path for v in model.trainable_weights if v.path.endswith("kernel")]
    )


def describe(point: dict) -> str:
    """A short human description of what a point does to a plain model."""
    parts = []
    for slot, kind, group, strength in _entries(point):
        reg = KINDS[kind](strength, point)
        where = "hidden layers" if group is None else group + " layers"
        where += "' recurrent kernels" if slot == "recurrent" else ""
        what = (
            f"L2-SP(l2={strength:g}) toward the model's weights" if kind == "l2_sp" else _regularizers().describe(reg)
        )
        parts.append(f"{what} on the {where}")
    if point.get("dropout"):
        parts.append(f"dropout {point['dropout']:g}")
    for kind, value in optimizer_settings(point).items():
        name = {
            "weight_decay": "decoupled weight decay",
            "prox_l1": "proximal L1",
            "prox_group": "proximal group lasso",
        }
        parts.append(f"{name[kind]} {value:g}")
    return ", ".join(parts) or "no regularization"
