"""λ schedules: a penalty whose strength changes during training, without recompiling.

Keras reads a regularizer's strength when it traces the training step, so a plain float is baked
into the compiled function. `Scheduled` wraps any regularizer and multiplies it by a scale kept in
a non-trainable variable; the compiled step reads the variable, so assigning it takes effect at
the next step with no retracing. The scale at epoch `e` (0-based, set at the start of the epoch)
is `schedule(e)`, so the effective strength is `schedule(e) · λ`.

With `model.fit`, add the `StrengthScheduler` callback. In a custom loop call
`set_epoch(model, epoch)` at the start of each epoch.

On JAX the compiled step is a pure function of the model's state: a variable outside that state is
read once, when the step is traced, and stays frozen. `track_scales(model)` therefore makes every
scale part of the model's non-trainable state (not of its weights: nothing is saved); `set_epoch`,
`StrengthScheduler` and `reglab.LossLedger` call it. In a custom JAX loop built on `stateless_call`,
call `set_epoch` (or `track_scales`) before collecting `model.non_trainable_variables`.

>>> import keras
>>> reg = Scheduled(keras.regularizers.L2(1e-3), LinearWarmup(epochs=4))
>>> [LinearWarmup(epochs=4)(e) for e in range(6)]
[0.0, 0.25, 0.5, 0.75, 1.0, 1.0]
"""

from __future__ import annotations

import math
from numbers import Real

import keras
from keras import ops

from reglab import _keras_private as private
from reglab import validation
from reglab.kit import regularizers as _regularizers

__all__ = [
    "Schedule",
    "Constant",
    "LinearWarmup",
    "CosineWarmup",
    "Step",
    "Scheduled",
    "StrengthScheduler",
    "get",
    "scheduled_regularizers",
    "set_epoch",
    "track_scales",
]

_register = keras.saving.register_keras_serializable(package="reglab")


class Schedule:
    """A multiplier of the penalty strength as a function of the epoch (a float ≥ 0)."""

    def __call__(self, epoch: float) -> float:
        raise NotImplementedError

    def get_config(self) -> dict:
        raise NotImplementedError

    @classmethod
    def from_config(cls, config):
        return cls(**config)


def _positive(value, name: str) -> float:
    value = validation.non_negative_float(value, name)
    if value == 0:
        raise ValueError(f"Invalid value for argument `{name}`: expected a number > 0. Received: {name}={value!r}")
    return value


@_register
class Constant(Schedule):
    """The same multiplier every epoch. Defaults to 1.0 (full strength)."""

    def __init__(self, value=1.0):
        self.value = validation.non_negative_float(value, "value")

    def __call__(self, epoch):
        return self.value

    def get_config(self):
        return {"value": self.value}


@_register
class LinearWarmup(Schedule):
    """Ramp linearly from `start` to 1 over `epochs` epochs, then stay at 1.

    Args:
        epochs: length of the ramp, > 0.
        start: the multiplier at epoch 0. Defaults to 0.0 (no penalty at first).
    """

    def __init__(self, epochs, start=0.0):
        self.epochs = _positive(epochs, "epochs")
        self.start = validation.non_negative_float(start, "start")

    def _progress(self, epoch):
        return min(1.0, max(0.0, epoch / self.epochs))

    def __call__(self, epoch):
        return self.start + (1.0 - self.start) * self._progress(epoch)

    def get_config(self):
        return {"epochs": self.epochs, "start": self.start}


@_register
class CosineWarmup(LinearWarmup):
    """Like `LinearWarmup` but along a half cosine: gentle at both ends of the ramp.

    >>> [round(CosineWarmup(epochs=2)(e), 3) for e in range(4)]
    [0.0, 0.5, 1.0, 1.0]
    """

    def __call__(self, epoch):
        return self.start + (1.0 - self.start) * 0.5 * (1.0 - math.cos(math.pi * self._progress(epoch)))


@_register
class Step(Schedule):
    """Piecewise constant: `values[i]` from epoch `boundaries[i-1]` up to `boundaries[i]`.

    >>> [Step(boundaries=[2, 4], values=[0.0, 0.5, 1.0])(e) for e in range(6)]
    [0.0, 0.0, 0.5, 0.5, 1.0, 1.0]
    """

    def __init__(self, boundaries, values):
        boundaries = list(boundaries) if isinstance(boundaries, (list, tuple)) else boundaries
        values = list(values) if isinstance(values, (list, tuple)) else values
        if (
            not isinstance(boundaries, list)
            or not all(
                isinstance(b, Real) and not isinstance(b, bool) and math.isfinite(b) and b >= 0 for b in boundaries
            )
            or any(b2 <= b1 for b1, b2 in zip(boundaries, boundaries[1:]))
        ):
            raise ValueError(
                "Invalid value for argument `boundaries`: expected a list of increasing epochs >= 0. "
                f"Received: boundaries={boundaries!r}"
            )
        if not isinstance(values, list) or len(values) != len(boundaries) + 1:
            raise ValueError(
                "Invalid value for argument `values`: expected a list one longer than `boundaries` "
                f"({len(boundaries) + 1}). Received: values={values!r}"
            )
        self.boundaries = [float(b) for b in boundaries]
        self.values = [validation.non_negative_float(v, "values") for v in values]

    def __call__(self, epoch):
        return self.values[sum(epoch >= b for b in self.boundaries)]

    def get_config(self):
        return {"boundaries": self.boundaries, "values": self.values}


_SCHEDULES = {"constant": Constant, "linear_warmup": LinearWarmup, "cosine_warmup": CosineWarmup, "step": Step}


def get(identifier) -> Schedule:
    """A schedule from a `Schedule`, a number (constant), a Keras config dict or `{"name": ..., **kwargs}`."""
    if isinstance(identifier, Schedule):
        return identifier
    if isinstance(identifier, Real) and not isinstance(identifier, bool):
        return Constant(identifier)
    if isinstance(identifier, dict):
        if "class_name" in identifier:
            return keras.saving.deserialize_keras_object(identifier)
        name = str(identifier.get("name", "")).lower()
        if name in _SCHEDULES:
            return _SCHEDULES[name](**{k: v for k, v in identifier.items() if k != "name"})
    raise ValueError(
        f"Could not interpret the schedule: expected a Schedule, a number, or a dict with a name in "
        f"{sorted(_SCHEDULES)}. Received: schedule={identifier!r}"
    )


# Keras's base class, not `_regularizers.Regularizer`: when reglab.kit.regularizers is what imports Keras,
# this module is imported while that one is still half-executed (see reglab._AfterKeras).
@_register
class Scheduled(keras.regularizers.Regularizer):
    """`regularizer` multiplied by `schedule(epoch)`, changeable while a compiled step runs.

    Args:
        regularizer: anything `reglab.kit.regularizers.get` accepts.
        schedule: anything `reglab.kit.schedules.get` accepts.

    The scale starts at `schedule(0)`; `set_epoch` (or the `StrengthScheduler` callback) moves it.
    """

    def __init__(self, regularizer, schedule):
        self.regularizer = _regularizers.get(regularizer)
        if self.regularizer is None:
            raise ValueError(
                "Invalid value for argument `regularizer`: expected a regularizer. Received: regularizer=None"
            )
        self.schedule = get(schedule)
        self.scale = keras.Variable(self.schedule(0), trainable=False, dtype="float32", name="reglab_penalty_scale")

    def __call__(self, x):
        penalty = self.regularizer(x)
        return ops.cast(self.scale, penalty.dtype) * penalty

    def set_epoch(self, epoch: float) -> float:
        value = float(self.schedule(epoch))
        self.scale.assign(value)
        return value

    def get_config(self):
        return {
            "regularizer": keras.regularizers.serialize(self.regularizer),
            "schedule": keras.saving.serialize_keras_object(self.schedule),
        }

    @classmethod
    def from_config(cls, config):
        return cls(
            regularizer=keras.regularizers.deserialize(config["regularizer"]),
            schedule=keras.saving.deserialize_keras_object(config["schedule"]),
        )


def scheduled_regularizers(model) -> dict[str, Scheduled]:
    """`{term name: Scheduled}` for every scheduled penalty of `model` (names as in `penalty_terms`)."""
    found = {}
    for layer in private.layers(model, include_self=True):
        reg = getattr(layer, "activity_regularizer", None)
        if isinstance(reg, Scheduled):
            found[f"{layer.name}/activity"] = reg
    for variable in model.trainable_weights:
        if isinstance(variable.regularizer, Scheduled):
            found[variable.path] = variable.regularizer
    return found


class _ScaleState:
    # Keras keeps state that is not a weight in a layer's seed-generator list: `layer.variables` and
    # so `non_trainable_variables` include each entry's `state` (JAX's pure steps take it as input),
    # `weights` and saving do not. A scale held here is read from the step's state on every backend.
    def __init__(self, variable):
        self.state = variable


def track_scales(model) -> None:
    """Make every `Scheduled` scale of `model` part of its non-trainable state (once; idempotent).

    Needed on JAX, where the compiled step reads only the state it is given: an untracked scale is
    frozen at its value when the step was traced. The scales join `model.non_trainable_variables`,
    not `model.weights`, so saving and `get_weights` are unchanged.
    """
    held = {id(v) for v in model.variables}  # already state (here, or in a nested model that holds it)
    for reg in scheduled_regularizers(model).values():
        if id(reg.scale) not in held:
            model._seed_generators.append(_ScaleState(reg.scale))
            held.add(id(reg.scale))


def set_epoch(model, epoch: float) -> dict[str, float]:
    """Set every scheduled penalty of `model` to its value at `epoch`; returns `{term: scale}`."""
    track_scales(model)
    return {name: reg.set_epoch(epoch) for name, reg in scheduled_regularizers(model).items()}


class StrengthScheduler(keras.callbacks.Callback):
    """Moves every `Scheduled` penalty of the model to `schedule(epoch)` at the start of each epoch.

    Args:
        verbose: print the scales when they change. Defaults to False.
    """

    def __init__(self, verbose=False):
        super().__init__()
        self.verbose = verbose
        self._last = None

    def on_epoch_begin(self, epoch, logs=None):
        scales = set_epoch(self.model, epoch)
        if self.verbose and scales != self._last:
            print(f"epoch {epoch + 1}: penalty scales {scales}")
        self._last = scales
