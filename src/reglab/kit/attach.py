"""`regularize()`: attach regularizers (and Dropout) to an existing model, keeping its weights.

Setting `layer.kernel_regularizer = L2(...)` on a built Keras model does nothing: Keras attaches a
regularizer to the weight variable when the layer is built, and never looks at the attribute
again. `regularize` rebuilds the model from its layers' configs with the regularizers in place,
copies every weight across, and then checks that the result is what was asked for (the weights are
identical and every requested penalty is live in `model.losses`).
"""

from __future__ import annotations

import fnmatch
from numbers import Real

import keras
import numpy as np

from reglab import _keras_private as private
from reglab.kit import regularizers as _regularizers

_KINDS = ("kernel", "bias", "activity", "recurrent")
# The weight each kind's `<kind>_regularizer` applies to ("activity" is the layer's output).
_WEIGHTS = {"kernel": "kernel", "bias": "bias", "recurrent": "recurrent_kernel"}


def regularize(model, kernel=None, bias=None, activity=None, layers=None, dropout=None, recurrent=None, toward=None):
    """Return a copy of `model` with regularizers attached and its trained weights kept.

    Args:
        model: a built Sequential or functional Keras model (nested models are handled; a
            subclassed model must set its regularizers in its own constructor).
        kernel, bias, activity: what to attach to the selected layers' kernel, bias or output:
            anything `reglab.kit.regularizers.get` accepts (the same regularizer object is shared by
            every selected layer), or a dict `{layer name: regularizer}` for a different one per
            layer (the dict then selects the layers itself). None leaves that slot unchanged.
            A recurrent layer's `kernel` is its input kernel; in a `Bidirectional` wrapper both
            directions get the regularizer.
        recurrent: the same for the recurrent kernels (`recurrent_regularizer`) of LSTM, GRU,
            SimpleRNN and other `keras.layers.RNN` layers, `Bidirectional` ones included.
        layers: which layers get the regularizers and the dropout: None (every layer that has
            the slot), a layer name (shell patterns such as "dense*" work), an index into
            `model.layers`, a layer class, a predicate `layer -> bool`, or a list of these.
        dropout: a rate in [0, 1) to insert `Dropout(rate)` after every selected hidden layer
            that has a kernel (never after an output layer), or a dict `{layer name: rate}`.
        toward: None (penalties pull toward zero) or "initial": the L2 penalties given for `kernel`, `bias`
            and `recurrent` pull each weight toward its values in `model` now — L2-SP
            (`reglab.regularizers.L2SP`: `λ·Σ(w − w₀)²`), what fine-tuning a pretrained model wants. Only
            `L2` (or "l2") with it; not on a `Bidirectional` layer's two directions.

    Returns:
        A new, uncompiled model; the original is not modified. Compile it before training.

    Raises:
        ValueError: for anything that cannot be honoured — an unknown layer name, a selection
            with no layer that has the slot, an invalid regularizer or rate, a subclassed model.

    >>> import keras, numpy as np
    >>> base = keras.Sequential([keras.Input((4,)), keras.layers.Dense(8), keras.layers.Dense(2)])
    >>> model = regularize(base, kernel=keras.regularizers.L2(1e-3), layers=keras.layers.Dense)
    >>> len(model.losses), all(np.array_equal(a, b) for a, b in zip(model.get_weights(), base.get_weights()))
    (2, True)
    """
    _check_model(model)
    if toward not in (None, "initial"):
        raise ValueError(f"`toward` is None or 'initial' (the weights of `model` now). Received: toward={toward!r}")
    leaves = _leaf_layers(model)
    by_name = {layer.name: layer for layer in leaves}
    selected = _select(model, leaves, layers)

    plan: dict[int, dict[str, object]] = {}  # id(old layer) -> {kind: regularizer}
    for kind, spec in zip(_KINDS, (kernel, bias, activity, recurrent)):
        if spec is None:
            continue
        if isinstance(spec, dict):
            targets = {}
            for name, identifier in spec.items():
                layer = _by_name(by_name, name, kind)
                if not has_slot(layer, kind):
                    raise ValueError(
                        f"Layer {name!r} ({type(layer).__name__}) has no trainable {_slot_name(kind)} to regularize. "
                        f"Received: {kind}={spec!r}"
                    )
                targets[id(layer)] = _regularizers.get(identifier)
        else:
            regularizer = _regularizers.get(spec)
            targets = {id(layer): regularizer for layer in selected if has_slot(layer, kind)}
            if not targets:
                raise ValueError(
                    f"None of the selected layers has a trainable {_slot_name(kind)} to regularize. "
                    f"Received: layers={layers!r}"
                )
        if toward == "initial" and kind != "activity":
            by_id = {id(layer): layer for layer in leaves}
            targets = {k: toward_initial(by_id[k], kind, r) for k, r in targets.items()}
        for layer_id, regularizer in targets.items():
            plan.setdefault(layer_id, {})[kind] = regularizer

    rates = _dropout_plan(model, leaves, selected, by_name, dropout)
    if not plan and not rates:
        raise ValueError(
            "Nothing to attach: give at least one of `kernel`, `bias`, `activity`, `recurrent` or `dropout`. "
            "Received: kernel=None, bias=None, activity=None, recurrent=None, dropout=None"
        )

    pairs: list[tuple[keras.layers.Layer, keras.layers.Layer]] = []
    new_model = _Rebuilder(plan, rates, pairs).rebuild(model)
    for old, new in pairs:
        new.set_weights(old.get_weights())
    _verify(model, new_model, plan, pairs)
    return new_model


def toward_initial(layer, kind: str, regularizer):
    """`L2(λ)` on `layer`'s `kind` weight ("kernel", "bias", "recurrent") as `L2SP(λ, its values now)`."""
    if type(regularizer) is not keras.regularizers.L2:
        raise ValueError(
            f"toward='initial' pulls a weight toward its values with an L2 penalty: give L2(λ) (or 'l2'). "
            f"Received: {kind}={regularizer!r}"
        )
    parts = _parts(layer)
    if len(parts) != 1:
        raise ValueError(
            f"toward='initial' on a Bidirectional layer ({layer.name!r}) would give both directions one w₀: select its "
            f"other layers. Received: toward='initial'"
        )
    values = keras.ops.convert_to_numpy(_weight(parts[0], kind).value)
    return _regularizers.L2SP(regularizer.l2, values)


def attach_in_place(model, chosen: dict) -> bool:
    """Attach `chosen` = {"kernel" / "recurrent": {layer name: regularizer}} to `model`'s own layers, where
    each named layer holds the weight itself (`Dense`, `Conv*`: not a recurrent cell, not a wrapper): the
    layer's `<slot>_regularizer` (its config) and its variable's `regularizer` (what `model.losses` reads),
    as the layer's constructor would have set them. False, with `model` unchanged, where one cannot be."""
    by_name = {layer.name: layer for layer in _leaf_layers(model)}
    targets = []
    for kind, layers in chosen.items():
        for name, regularizer in layers.items():
            layer = by_name.get(name)
            weight = getattr(layer, _WEIGHTS[kind], None) if layer is not None else None
            if not isinstance(weight, keras.Variable) or f"{kind}_regularizer" not in vars(layer):
                return False
            targets.append((layer, kind, weight, _regularizers.get(regularizer)))
    for layer, kind, weight, regularizer in targets:
        setattr(layer, f"{kind}_regularizer", regularizer)
        weight.regularizer = regularizer
    return True


# --- selection ---------------------------------------------------------------------------------


def leaf_layers(model) -> list:
    """The layers of `model` that hold weights themselves (nested models opened)."""
    return _leaf_layers(model)


def select_layers(model, spec) -> list:
    """The leaf layers of `model` that `spec` selects (the `layers` argument of `regularize`)."""
    return _select(model, _leaf_layers(model), spec)


def hidden_layers(model) -> list:
    """Every leaf layer with a trainable kernel that does not produce a model output (recurrent layers
    and `Bidirectional` wrappers of them included: their kernel is the input kernel)."""
    outputs = _output_layers(model)
    return [l for l in _leaf_layers(model) if has_slot(l, "kernel") and id(l) not in outputs]


def _check_model(model):
    if not isinstance(model, keras.Model):
        raise ValueError(f"Expected a Keras model. Received: model={model!r}")
    if not isinstance(model, (keras.Sequential, private.functional_class())):
        raise ValueError(
            "regularize() rebuilds Sequential and functional models from their layers; a subclassed "
            "model should pass regularizers to its layers in its constructor. "
            f"Received: model={type(model).__name__}"
        )
    if not model.built or (isinstance(model, keras.Sequential) and not model.inputs):
        raise ValueError(
            "The model is not built: give it an Input (keras.Input(shape)) or call it on data first. "
            f"Received: model={model.name!r}"
        )


def _leaf_layers(model) -> list:
    leaves = []
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            leaves.extend(_leaf_layers(layer))
        elif not isinstance(layer, keras.layers.InputLayer):
            leaves.append(layer)
    return leaves


def _by_name(by_name, name, argument):
    if name not in by_name:
        raise ValueError(f"No layer named {name!r} (layers: {', '.join(by_name)}). Received: {argument} key {name!r}")
    return by_name[name]


def _select(model, leaves, spec) -> list:
    """The leaf layers chosen by `spec` (see `regularize`), in model order."""
    if spec is None:
        return list(leaves)
    items = spec if isinstance(spec, (list, tuple)) else [spec]
    chosen: set[int] = set()
    for item in items:
        if isinstance(item, str):
            hits = [layer for layer in leaves if fnmatch.fnmatchcase(layer.name, item)]
            if not hits:
                raise ValueError(
                    f"No layer matches {item!r} (layers: {', '.join(l.name for l in leaves)}). "
                    f"Received: layers={spec!r}"
                )
        elif isinstance(item, int) and not isinstance(item, bool):
            if not -len(model.layers) <= item < len(model.layers):
                raise ValueError(
                    f"Layer index out of range for a model with {len(model.layers)} layers. Received: layers={spec!r}"
                )
            top = model.layers[item]
            hits = _leaf_layers(top) if isinstance(top, keras.Model) else [top]
        elif isinstance(item, type) and issubclass(item, keras.layers.Layer):
            hits = [layer for layer in leaves if isinstance(layer, item)]
        elif callable(item):
            hits = [layer for layer in leaves if item(layer)]
        else:
            raise ValueError(
                "Invalid layer selection: expected names, indices, layer classes or predicates. "
                f"Received: layers={spec!r}"
            )
        chosen.update(id(layer) for layer in hits)
    selected = [layer for layer in leaves if id(layer) in chosen]
    if not selected:
        raise ValueError(f"The selection matches no layer. Received: layers={spec!r}")
    return selected


def has_slot(layer, kind) -> bool:
    """Whether `layer` takes a `<kind>_regularizer` ("kernel", "bias", "recurrent", "activity") on a
    trainable weight; for a `Bidirectional` layer, in both directions."""
    if kind == "activity":  # every Keras 3 layer takes `activity_regularizer`
        return True
    for part in _parts(layer):
        weight = _weight(part, kind)
        if f"{kind}_regularizer" not in part.get_config() or not (
            isinstance(weight, keras.Variable) and weight.trainable
        ):
            return False
    return True


def _parts(layer) -> list:
    """The layers holding `layer`'s weights: both directions of a `Bidirectional`, else `layer` itself."""
    if isinstance(layer, keras.layers.Bidirectional):
        return [layer.forward_layer, layer.backward_layer]
    return [layer]


def _weight(layer, kind):
    """The variable `layer`'s `<kind>_regularizer` applies to (a recurrent layer keeps it in its cell)."""
    owner = layer.cell if isinstance(layer, keras.layers.RNN) else layer
    return getattr(owner, _WEIGHTS[kind], None)


def _slot_name(kind) -> str:
    return _WEIGHTS.get(kind, kind).replace("_", " ")


def _output_layers(model) -> set[int]:
    """ids of the leaf layers that produce the model's outputs (no dropout after those)."""
    ids = set()
    for tensor in keras.tree.flatten(model.outputs):
        layer = tensor._keras_history.operation
        while isinstance(layer, keras.Model):  # the output comes out of a nested model
            layer = _leaf_layers(layer)[-1]
        ids.add(id(layer))
    return ids


def _dropout_plan(model, leaves, selected, by_name, dropout) -> dict[int, float]:
    if dropout is None:
        return {}
    if isinstance(dropout, dict):
        return {id(_by_name(by_name, name, "dropout")): _rate(rate, dropout) for name, rate in dropout.items()}
    rate = _rate(dropout, dropout)
    outputs = _output_layers(model)
    rates = {id(l): rate for l in selected if has_slot(l, "kernel") and id(l) not in outputs}
    if not rates:
        raise ValueError(f"No selected hidden layer with a kernel to put Dropout after. Received: dropout={dropout!r}")
    return rates


def _rate(rate, received) -> float:
    if isinstance(rate, bool) or not isinstance(rate, Real) or not 0.0 <= rate < 1.0:
        raise ValueError(
            f"Invalid value for argument `dropout`: expected a rate in [0, 1). Received: dropout={received!r}"
        )
    return float(rate)


# --- rebuilding --------------------------------------------------------------------------------


class _Rebuilder:
    """Clones a model layer by layer with the planned regularizers and Dropout layers."""

    def __init__(self, plan, rates, pairs):
        self.plan, self.rates, self.pairs = plan, rates, pairs
        self.new_rates: dict[int, float] = {}  # id(new layer) -> dropout rate after it
        self.names: set[str] = set()

    def rebuild(self, model):
        self.names |= {layer.name for layer in _leaf_layers(model)}
        if isinstance(model, keras.Sequential):
            return self._sequential(model)
        call = self._call if self.rates else None
        return keras.models.clone_model(model, clone_function=self._clone, call_function=call)

    def _clone(self, layer):
        if isinstance(layer, keras.Model):
            return self.rebuild(layer)
        config = layer.get_config()
        planned = self.plan.get(id(layer), {})
        if isinstance(layer, keras.layers.Bidirectional):
            # Its from_config deep-copies the config, regularizers and all, and builds the directions
            # at once if it can: recreate them unbuilt and hand the very objects to their cells, which
            # read them when they build.
            for direction in ("layer", "backward_layer"):
                config[direction].pop("build_config", None)
            new = type(layer).from_config(config)
            for kind, regularizer in planned.items():
                if kind == "activity":
                    new.activity_regularizer = regularizer
                    continue
                for part in _parts(new):
                    setattr(part.cell, f"{kind}_regularizer", regularizer)
        else:
            for kind, regularizer in planned.items():
                config[f"{kind}_regularizer"] = regularizer
            new = type(layer).from_config(config)
        self.pairs.append((layer, new))
        if id(layer) in self.rates:
            self.new_rates[id(new)] = self.rates[id(layer)]
        return new

    def _dropout_after(self, layer):
        name, k = f"{layer.name}_dropout", 1
        while name in self.names:
            k += 1
            name = f"{layer.name}_dropout_{k}"
        self.names.add(name)
        return keras.layers.Dropout(self.new_rates[id(layer)], name=name)

    def _call(self, layer, *args, **kwargs):
        out = layer(*args, **kwargs)
        if id(layer) in self.new_rates:
            out = self._dropout_after(layer)(out)
        return out

    def _sequential(self, model):
        stack = [keras.Input(batch_shape=model.inputs[0].shape, dtype=model.inputs[0].dtype)]
        for layer in model.layers:
            new = self._clone(layer)
            stack.append(new)
            if id(new) in self.new_rates:
                stack.append(self._dropout_after(new))
        return keras.Sequential(stack, name=model.name)


def _verify(old_model, new_model, plan, pairs):
    """Fail loudly if the rebuilt model is not the old one plus exactly the requested penalties."""
    for old, new in pairs:
        for a, b in zip(old.get_weights(), new.get_weights(), strict=True):
            if not np.array_equal(a, b):
                raise RuntimeError(f"regularize(): weights of layer {old.name!r} were not copied intact")
        for kind, regularizer in plan.get(id(old), {}).items():
            live = (
                [new.activity_regularizer]
                if kind == "activity"
                else [_weight(p, kind).regularizer for p in _parts(new)]
            )
            if any(r is not regularizer for r in live):
                raise RuntimeError(f"regularize(): the {kind} regularizer of {new.name!r} did not attach")
    weight_penalties = sum(1 for v in new_model.trainable_weights if v.regularizer is not None)
    expected = sum(len(_parts(old)) for old, _ in pairs for kind in plan.get(id(old), {}) if kind != "activity")
    if weight_penalties < expected:
        raise RuntimeError("regularize(): some requested weight penalties are missing from the model")
    if len(old_model.get_weights()) != len(new_model.get_weights()):
        raise RuntimeError("regularize(): the rebuilt model has a different set of weights")
