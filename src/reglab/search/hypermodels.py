"""KerasTuner hypermodels as they are: a `build(hp)` written for KerasTuner, swept by reglab.

`HyperModel(build)` reads the search space from the hypermodel with KerasTuner's own `HyperParameters`: it
builds the model once with every default, then once per value of each discrete hyperparameter (`hp.Int`,
`hp.Choice`, `hp.Boolean`), again and again until no build registers a new one — so hyperparameters a loop
(`for i in range(hp.Int("num_layers", 1, 3))`) or a conditional scope registers are found too. It is then a
builder `point -> model` for `Sweep`, and `space` its search space: `Sweep(hypermodel, random=hypermodel.space,
…)` or `search=reglab.search.Optuna(hypermodel.space, …)`.

Which hyperparameters change the architecture (units, layers, a Boolean that adds a Dropout) and which are
per-member values (a Dropout's rate, a penalty's λ, the learning rate) is reglab's grouping's to say, from the
models built: points that build the same architecture train in one population, the others in populations of
their own. The optimizer the hypermodel compiles with is read: a hyperparameter that sets its learning rate
becomes the point's `learning_rate` (a per-member value of the sweep's optimizer, which must be the same
class: `optimizer=hypermodel.optimizer`). The compiled loss and metrics are not used: the sweep's are
(`loss="auto"` infers them from the data, as for any builder).
"""

from __future__ import annotations

import math

from reglab.search import space as space_module

MAX_VALUES = 32  # an integer hyperparameter with more values is sampled, not explored (it rarely adds layers)


def _keras_tuner():
    try:
        import keras_tuner
    except ImportError:
        raise ValueError(
            "HyperModel reads a KerasTuner hypermodel: pip install keras-tuner. Received: HyperModel(...)"
        ) from None
    return keras_tuner


def _values(hp) -> list:
    """The values worth building with to discover what a hyperparameter registers (none for a float)."""
    kind = type(hp).__name__
    if kind == "Boolean":
        return [False, True]
    if kind == "Choice":
        return list(hp.values)
    if kind == "Int":
        step = hp.step or 1
        values = list(range(hp.min_value, hp.max_value + 1, step))
        return values if len(values) <= MAX_VALUES else [hp.min_value, hp.max_value]
    return []


def _distribution(hp):
    kind = type(hp).__name__
    if kind == "Float":
        if hp.step:
            count = int(round((hp.max_value - hp.min_value) / hp.step)) + 1
            return space_module.Choice([hp.min_value + i * hp.step for i in range(count)])
        if hp.sampling == "log":
            return space_module.LogUniform(hp.min_value, hp.max_value)
        return space_module.Uniform(hp.min_value, hp.max_value)
    if kind == "Int":
        return space_module.Choice(list(range(hp.min_value, hp.max_value + 1, hp.step or 1)))
    if kind in ("Boolean", "Choice"):
        return space_module.Choice(_values(hp))
    return None  # Fixed: not searched


def _learning_rate(model) -> float | None:
    optimizer = getattr(model, "optimizer", None)
    if optimizer is None:
        return None
    try:
        return float(optimizer.learning_rate)
    except (TypeError, ValueError):  # a schedule: not a per-member number
        return None


class HyperModel:
    """A KerasTuner hypermodel (a `build(hp)` function or a `keras_tuner.HyperModel`) as a reglab builder.

    Attributes:
        space: `{name: distribution}` of every hyperparameter found (`Fixed` ones excepted), the one that sets
            the compiled learning rate named `learning_rate`.
        optimizer: the name of the optimizer class the hypermodel compiles with ("adam"), or None.
    """

    def __init__(self, hypermodel, max_builds: int = 64):
        kt = _keras_tuner()
        build = getattr(hypermodel, "build", hypermodel)
        if not callable(build):
            raise ValueError(
                f"A hypermodel is a build(hp) function or a keras_tuner.HyperModel. Received: hypermodel={hypermodel!r}"
            )
        self.hypermodel, self._build = hypermodel, build
        found = kt.HyperParameters()
        model = build(found)
        builds, explored = 1, set()
        while True:  # a value may register more hyperparameters (a loop's, a scope's): build with each until none do
            todo = [(hp, v) for hp in found.space for v in _values(hp) if (hp.name, repr(v)) not in explored]
            if not todo:
                break
            for hp, value in todo:
                explored.add((hp.name, repr(value)))
                if builds >= max_builds:
                    raise ValueError(
                        f"The hypermodel registered hyperparameters for more than {max_builds} builds; raise "
                        f"`max_builds` or fix the space. Received: max_builds={max_builds}"
                    )
                trial = found.copy()
                trial.values[hp.name] = value
                build(trial)
                builds += 1
                found.merge([h for h in trial.space if h.name not in found.values])
        self.builds, self._found = builds, found
        self.optimizer = type(model.optimizer).__name__.lower() if getattr(model, "optimizer", None) else None
        self.rate_name = self._rate_hyperparameter(model)
        self.space = {}
        for hp in found.space:
            distribution = _distribution(hp)
            if distribution is not None:
                self.space["learning_rate" if hp.name == self.rate_name else hp.name] = distribution

    def _rate_hyperparameter(self, model) -> str | None:
        """The float hyperparameter the compiled learning rate follows (checked by building with another value)."""
        default = _learning_rate(model)
        if default is None:
            return None
        for hp in self._found.space:
            if type(hp).__name__ != "Float" or not math.isclose(self._found.values[hp.name], default, rel_tol=1e-6):
                continue
            other = hp.max_value if not math.isclose(hp.max_value, default) else hp.min_value
            trial = self._found.copy()
            trial.values[hp.name] = other
            if math.isclose(_learning_rate(self._build(trial)) or math.nan, other, rel_tol=1e-6):
                return hp.name
        return None

    def hyperparameters(self, point: dict):
        """KerasTuner's `HyperParameters` holding a point's values (each in its hyperparameter's own type)."""
        hp = self._found.copy()
        for hp_ in self._found.space:
            key = "learning_rate" if hp_.name == self.rate_name else hp_.name
            if key in point:
                value = point[key]
                kind = type(hp_).__name__
                if kind == "Int":
                    value = int(round(value))
                elif kind == "Choice":  # a point's numbers are floats: the hyperparameter's own value
                    value = next((v for v in hp_.values if v == value), value)
                hp.values[hp_.name] = value
        return hp

    def __call__(self, point: dict):
        return self._build(self.hyperparameters(point))
