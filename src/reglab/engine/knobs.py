"""What the members of one population differ in, as traced per-member values: their penalty
coefficients on reglab's basis (`Term`), the numbers of Keras's layers and optimizers that a traced value
can stand for (`PerMember`, `Knob`), the learning rate's variable, and activity penalties recorded as
terms of their own (`Recorded`)."""

from __future__ import annotations

import operator
from dataclasses import dataclass, field

import keras
import numpy as np

from reglab import _keras_private as private
from reglab.engine import basis
from reglab.kit.schedules import Scheduled

PER_MEMBER_LAYER_ATTRIBUTES = ("rate",)  # a dropout-like rate: a traced per-member value (see `PerMember`)
PER_MEMBER_OPTIMIZER_ATTRIBUTES = ("weight_decay", "l1", "group_lasso")  # Keras's decay, Proximal's strengths


def unwrap(regularizer):
    """(inner regularizer, schedule or None)."""
    if isinstance(regularizer, Scheduled):
        return regularizer.regularizer, regularizer.schedule
    return regularizer, None


@dataclass
class Term:
    """A penalized weight: its record name, its index in `trainable_variables`, its basis keys and the
    members' coefficients on them (M, keys), their schedules, or a regularizer every member shares."""

    name: str
    index: int
    keys: list
    coefficients: np.ndarray
    schedules: list
    shared: object = None  # a regularizer off the basis (the same for every member): key ("shared",)

    def at(self, epoch: int) -> np.ndarray:
        """The coefficients in `epoch` (0-based): each member's scale as Keras's float32 variable holds it."""
        scales = np.array([np.float32(s(epoch)) if s is not None else 1.0 for s in self.schedules], "float32")
        return (self.coefficients * scales[:, None]).astype("float32")


def penalty_terms(models) -> list[Term]:
    terms = []
    for i, variable in enumerate(models[0].trainable_variables):
        pairs = [unwrap(model.trainable_variables[i].regularizer) for model in models]
        if all(inner is None for inner, _ in pairs):
            continue
        decomposed = [basis.decompose(inner) for inner, _ in pairs]
        if any(d is None for d in decomposed):  # a custom regularizer: the same for all (see `signature`)
            term = Term(
                variable.path,
                i,
                [("shared",)],
                np.ones((len(models), 1), "float32"),
                [s for _, s in pairs],
                shared=pairs[0][0],
            )
        else:
            keys = list(dict.fromkeys(key for d in decomposed for key, _ in d))
            rows = [{key: 0.0 for key in keys} for _ in models]
            for row, d in zip(rows, decomposed):
                for key, coefficient in d:
                    row[key] += coefficient
            coefficients = np.array([[row[key] for key in keys] for row in rows], "float32")
            used = [k for k in range(len(keys)) if coefficients[:, k].any()]  # L2 is L1L2 with l1 = 0
            term = Term(variable.path, i, [keys[k] for k in used], coefficients[:, used], [s for _, s in pairs])
        if all(s is None for s in term.schedules):
            term.schedules = [None] * len(models)
        terms.append(term)
    return terms


class PerMember:
    """A Python-number attribute (a dropout rate, a weight decay, a proximal strength) that differs
    between the members of a population, standing in for the number while the step is traced: its
    arithmetic is the member's traced value, and the questions code asks of the number itself (`rate
    > 0`, `if self.l1:`, `rate == 1.0`) get the answer that keeps the computation in the program for
    every member — which is exact for the members whose value makes it a no-op (a rate or strength
    of 0). Code that needs the concrete number (`math.sqrt(rate)`) fails to trace; the population is
    then split by value (`train_population`)."""

    def __init__(self, value, values, asked=None):
        self.value, self.values = value, tuple(values)
        self.asked = asked if asked is not None else []  # the questions the trace asked: (question, other)

    def __jax_array__(self):
        return self.value

    def _ask(self, question, other=None):
        self.asked.append((question, other))
        return answer(question, self.values, other)

    def __bool__(self):
        return self._ask("bool")

    def __gt__(self, other):
        return self._ask("gt", other)

    def __ge__(self, other):
        return self._ask("ge", other)

    def __lt__(self, other):
        return self._ask("lt", other)

    def __le__(self, other):
        return self._ask("le", other)

    def __eq__(self, other):
        return self._ask("eq", other)

    def __ne__(self, other):
        return not self == other

    __hash__ = None

    def __neg__(self):
        return -self.value

    def __float__(self):
        raise TypeError("a per-member value has no single Python number")


for _name in ("add", "sub", "mul", "truediv", "pow"):
    setattr(PerMember, f"__{_name}__", lambda self, other, op=f"__{_name}__": getattr(self.value, op)(other))
    setattr(PerMember, f"__r{_name}__", lambda self, other, op=f"__r{_name}__": getattr(self.value, op)(other))


def answer(question: str, values, other=None) -> bool:
    """`PerMember`'s answer to `question` for members with `values`: the one that keeps the computation in
    the program for every member."""
    if question == "bool":
        return any(v != 0 for v in values)
    if question == "eq":
        return all(v == other for v in values)
    return any(getattr(operator, question)(v, other) for v in values)


@dataclass
class Knob:
    """A per-member number: `attribute` of `owner` (a layer or optimizer of the template), one value a member;
    `asked`: what the traced program asked of it (`PerMember`), whose answers a member admitted later must keep."""

    owner: object
    attribute: str
    values: np.ndarray
    asked: list = field(default_factory=list)

    def keeps_answers(self, values) -> bool:
        """Whether members with `values` get every answer the traced program was given (a program read back from
        the disk knows its trace's questions: `reglab.engine.traces`)."""
        had, values = self.values.tolist(), np.asarray(values).tolist()
        return all(answer(q, had, o) == answer(q, values, o) for q, o in dict.fromkeys(self.asked))  # each once


def _ours_or_keras(obj) -> bool:
    """Code whose use of the number we know (Keras's own layers and optimizers, reglab's): a custom
    layer might branch on `rate` (`if self.rate > 0.5:`), which a stand-in would answer for everyone."""
    return type(obj).__module__.startswith(("keras.", "reglab."))


def per_member_knobs(template, models, optimizers) -> list[Knob]:
    """The numbers the members differ in that a traced value can stand for: the rates of Keras's layers
    and the optimizers' decay and proximal strengths (the members' optimizers as `make_optimizer`
    builds them). Anything else that differs makes another population (`signature`)."""
    knobs = []
    layer_lists = [list(private.layers(m)) for m in models]
    for position, layer in enumerate(layer_lists[0]):
        if not _ours_or_keras(layer):
            continue
        for attribute in PER_MEMBER_LAYER_ATTRIBUTES:
            values = [getattr(layers[position], attribute, None) for layers in layer_lists]
            if isinstance(values[0], float) and all(isinstance(v, float) for v in values) and len(set(values)) > 1:
                knobs.append(Knob(layer, attribute, np.array(values, "float32")))
    chains = [_optimizer_chain(o) for o in optimizers]
    for depth, owner in enumerate(_optimizer_chain(template.optimizer)):
        if not _ours_or_keras(owner):
            continue
        for attribute in PER_MEMBER_OPTIMIZER_ATTRIBUTES:
            values = [getattr(chain[depth], attribute, None) if depth < len(chain) else None for chain in chains]
            if isinstance(values[0], float) and all(isinstance(v, float) for v in values) and len(set(values)) > 1:
                knobs.append(Knob(owner, attribute, np.array(values, "float32")))
    return knobs


def _optimizer_chain(optimizer) -> list:
    """The optimizer and the ones it wraps (`Proximal(inner)`)."""
    chain = [optimizer]
    while getattr(chain[-1], "inner", None) is not None:
        chain.append(chain[-1].inner)
    return chain


def learning_rate_variable(optimizer):
    """The variable holding the learning rate (per member in the optimizer state), or None (a schedule).
    The innermost optimizer's: it takes the steps (`Proximal` reads its inner optimizer's rate)."""
    for owner in reversed(_optimizer_chain(optimizer)):
        rate = private.learning_rate_variable(owner)
        if rate is not None:
            return rate
    return None


class Recorded:
    """An activity regularizer that also hands its value to the step tracing it, so the step can
    report it as a term of its own. Values are tracers of that trace, never kept beyond it. In a padded
    batch (`rows[0]`: the rows' weights) it sees the padding rows as zeros and counts the real rows
    only, as `fit`'s partial batch (checked with the rest of the step by `Program.row_independent`)."""

    def __init__(self, regularizer, name, sink, rows):
        self.regularizer, self.name, self.sink, self.rows = regularizer, name, sink, rows

    def __call__(self, x):
        weight = self.rows[0]
        if weight is not None and x.ndim and x.shape[0] == weight.shape[0]:
            x = x * keras.ops.reshape(weight, (-1,) + (1,) * (x.ndim - 1)).astype(x.dtype)
            value = self.regularizer(x) * (weight.shape[0] / keras.ops.maximum(keras.ops.sum(weight), 1.0))
        else:
            value = self.regularizer(x)
        # Keras divides an activity penalty by the batch size after calling the regularizer
        # (`Layer.__call__`); the term is reported as it enters the loss
        share = keras.ops.divide_no_nan(value, keras.ops.cast(keras.ops.shape(x)[0], value.dtype)) if x.ndim else value
        self.sink.append((self.name, share))
        return value
