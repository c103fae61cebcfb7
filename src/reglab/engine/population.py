"""The population engine: every member of one architecture trained at once, with Keras's own step.

Keras 3 exposes a training step on the JAX backend as pure functions — `model.stateless_call`,
`model.stateless_compute_loss`, `optimizer.stateless_apply`, the metrics' stateless updates.
`jax.vmap` over a leading member axis of every piece of state (weights, non-trainable state such as
BatchNormalization statistics and dropout seeds, optimizer slots and iteration, metric totals)
turns one member's step into a population's step, for any model `model.fit` can train, with no
layer, loss, optimizer or metric code of ours: each member is `model.fit` by construction.

What varies between members without recompiling is data, not code. Every penalty reglab and Keras
ship is linear in its strengths over a few basis functions (`reglab.engine.basis`), so the template
model's weight regularizers are taken off and each member's penalty is computed as its own
coefficients (a traced array) times the basis values of its own weights; λ schedules scale those
coefficients each epoch. A point's learning rate is the member's value of the optimizer's variable;
dropout rates, weight decay and proximal strengths are traced per-member values standing in for
Keras's Python numbers (`_PerMember`). Anything else that differs between members — the
architecture, a custom regularizer's configuration — makes a separate population (`signature`).

Exactness also needs the batches `fit` sees. Members whose training folds differ in size have
partial last batches: where the model's step ignores the other rows of a batch (checked numerically,
`Program.row_independent`) they are padded to full batches with weight-0 rows, one step body for
all; otherwise they get steps of their own shape, so BatchNormalization sees exactly the rows `fit`
would give it. Validation runs on each member's whole fold at once. Members are independent
(nothing reduces over the member axis), so a member whose loss or weights stop being finite cannot
touch the others; at the end of that epoch it goes back to its state at the epoch's start, is
frozen there and marked diverged.

Population state is a value: `{"trainable", "non_trainable", "optimizer": [arrays with a leading
member axis], "alive": (M,)}`; one jitted function advances it by one epoch (train steps, weight
statistics, validation, divergence check) and returns it with that epoch's numbers. On a CPU the
members are split into equal shards, one per core, that run the same compiled program side by side
in threads (`shard_count`): one XLA program keeps about one core busy with a population's many small
operations.
"""

from __future__ import annotations

import contextlib
import json
import math
import time
import traceback
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

import keras
import numpy as np
import pandas as pd

from reglab.search import plan, points

from reglab.kit import records
from reglab.data import rows as data_rows
from reglab.engine import basis
from reglab.engine.batches import default_order, pad, standardized_views
from reglab.engine.checkpoints import Checkpoints, Interrupted, checkpoint_key
from reglab.engine.convolution import expected_calls, per_member_on_cpu, remember
from reglab.kit.schedules import Scheduled


class Unsupported(Exception):
    """The sweep cannot run on the population engine; the message says why."""


def unavailable() -> str | None:
    """Why populations cannot train in this process, or None if they can."""
    if keras.backend.backend() != "jax":
        return (f"the population engine runs on Keras's JAX backend and this process uses "
                f"{keras.backend.backend()!r} (set KERAS_BACKEND=jax, or import reglab before keras)")
    return None


# --- members → populations ----------------------------------------------------------------------


@dataclass
class Population:
    """Members whose models share an architecture; `models[i]` is member i's own model, built under
    its seed with its point applied (its initial weights and seed state are the member's)."""

    members: list
    models: list


PER_MEMBER_LAYER_ATTRIBUTES = ("rate",)  # a dropout-like rate: a traced per-member value (see `_PerMember`)
PER_MEMBER_OPTIMIZER_ATTRIBUTES = ("weight_decay", "l1", "group_lasso")  # Keras's decay, Proximal's strengths


def _structure(config, rates=False):
    """A model config without what members may differ in: weight penalties, and the rates of Keras's
    own layers (`rates`: inside such a layer's config; see `per_member_knobs`)."""
    if isinstance(config, dict):
        keras_layer = "class_name" in config and str(config.get("module", "")).startswith("keras")
        return {k: "<per member>" if (k.endswith("_regularizer") and k != "activity_regularizer")
                or (rates and k in PER_MEMBER_LAYER_ATTRIBUTES and isinstance(v, float))
                else _structure(v, rates=keras_layer and k == "config") for k, v in config.items()}
    if isinstance(config, list):
        return [_structure(v) for v in config]
    return config


def _unwrap(regularizer):
    """(inner regularizer, schedule or None)."""
    if isinstance(regularizer, Scheduled):
        return regularizer.regularizer, regularizer.schedule
    return regularizer, None


def signature(model, point: dict) -> str:
    """Members whose models have the same signature train in one population."""
    try:
        config = _structure(model.get_config())
    except NotImplementedError:  # a subclassed model without get_config: its class and variables say it
        config = None
    penalties = []
    for v in model.trainable_variables:
        inner, _ = _unwrap(v.regularizer)
        if basis.decompose(inner) is None:  # not on the basis: must be the same regularizer
            penalties.append([v.path, keras.saving.serialize_keras_object(inner)])
    variables = [[v.path, list(v.shape), str(v.dtype), bool(v.trainable)] for v in model.variables]
    return json.dumps([f"{type(model).__module__}.{type(model).__qualname__}", config, variables, penalties,
                       sorted(points.optimizer_settings(point))], sort_keys=True, default=repr)


def plan_populations(members, make_model, probe=None) -> tuple[list[Population], dict]:
    """Build every member's model under its seed (as the reference engine does) and group the members
    by `signature`. A model that has not created its weights yet (a subclassed model) is called once on
    `probe`, a batch of inputs, as `fit` would build it. Returns (populations, {member id: error} for
    members whose model did not build)."""
    groups, failed = {}, {}
    for member in members:
        keras.backend.clear_session(free_memory=False)  # names reset; a full gc pass costs ~0.2 s
        plan.set_global_seed(member.seed)
        try:
            model = make_model(member.point)
            if not isinstance(model, keras.Model):
                raise TypeError(f"the builder returned {type(model).__name__}, not a Keras model")
            if probe is not None and not _built(model):
                model(probe)
            key = signature(model, member.point)
        except Exception as error:  # recorded as that member's failure, like the reference engine does
            failed[member.id] = "".join(traceback.format_exception_only(error)).strip()[:500]
            continue
        groups.setdefault(key, Population([], [])).members.append(member)
        groups[key].models.append(model)
    return list(groups.values()), failed


def _built(model) -> bool:
    return model.built and all(layer.built for layer in model._flatten_layers()) and bool(model.variables)


# --- penalties ----------------------------------------------------------------------------------


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
        pairs = [_unwrap(model.trainable_variables[i].regularizer) for model in models]
        if all(inner is None for inner, _ in pairs):
            continue
        decomposed = [basis.decompose(inner) for inner, _ in pairs]
        if any(d is None for d in decomposed):  # a custom regularizer: the same for all (see `signature`)
            term = Term(variable.path, i, [("shared",)], np.ones((len(models), 1), "float32"),
                        [s for _, s in pairs], shared=pairs[0][0])
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


class _PerMember:
    """A Python-number attribute (a dropout rate, a weight decay, a proximal strength) that differs
    between the members of a population, standing in for the number while the step is traced: its
    arithmetic is the member's traced value, and the questions code asks of the number itself (`rate
    > 0`, `if self.l1:`, `rate == 1.0`) get the answer that keeps the computation in the program for
    every member — which is exact for the members whose value makes it a no-op (a rate or strength
    of 0). Code that needs the concrete number (`math.sqrt(rate)`) fails to trace; the population is
    then split by value (`train_population`)."""

    def __init__(self, value, values):
        self.value, self.values = value, tuple(values)

    def __jax_array__(self):
        return self.value

    def __bool__(self):
        return any(v != 0 for v in self.values)

    def __gt__(self, other):
        return any(v > other for v in self.values)

    def __ge__(self, other):
        return any(v >= other for v in self.values)

    def __lt__(self, other):
        return any(v < other for v in self.values)

    def __le__(self, other):
        return any(v <= other for v in self.values)

    def __eq__(self, other):
        return all(v == other for v in self.values)

    def __ne__(self, other):
        return not self == other

    __hash__ = None

    def __neg__(self):
        return -self.value

    def __float__(self):
        raise TypeError("a per-member value has no single Python number")


for _name in ("add", "sub", "mul", "truediv", "pow"):
    setattr(_PerMember, f"__{_name}__", lambda self, other, op=f"__{_name}__": getattr(self.value, op)(other))
    setattr(_PerMember, f"__r{_name}__", lambda self, other, op=f"__r{_name}__": getattr(self.value, op)(other))


@dataclass
class Knob:
    """A per-member number: `attribute` of `owner` (a layer or optimizer of the template), one value a member."""

    owner: object
    attribute: str
    values: np.ndarray


def _ours_or_keras(obj) -> bool:
    """Code whose use of the number we know (Keras's own layers and optimizers, reglab's): a custom
    layer might branch on `rate` (`if self.rate > 0.5:`), which a stand-in would answer for everyone."""
    return type(obj).__module__.startswith(("keras.", "reglab."))


def per_member_knobs(template, models, optimizers) -> list[Knob]:
    """The numbers the members differ in that a traced value can stand for: the rates of Keras's layers
    and the optimizers' decay and proximal strengths (the members' optimizers as `make_optimizer`
    builds them). Anything else that differs makes another population (`signature`)."""
    knobs = []
    layer_lists = [list(m._flatten_layers(include_self=False)) for m in models]
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


def _learning_rate_variable(optimizer):
    """The variable holding the learning rate (per member in the optimizer state), or None (a schedule).
    The innermost optimizer's: it takes the steps (`Proximal` reads its inner optimizer's rate)."""
    for owner in reversed(_optimizer_chain(optimizer)):
        rate = getattr(owner, "_learning_rate", None)
        if isinstance(rate, keras.Variable):
            return rate
    return None


class _Recorded:
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


# --- the compiled epoch -------------------------------------------------------------------------


@dataclass(frozen=True)
class Segment:
    """Steps that a set of members takes with one batch shape. In a padded segment every step is a full
    batch whose rows beyond a member's real ones carry weight 0 (its last batch is partial, or it has
    no batch left at that step: `ragged`, then its state does not move)."""

    members: tuple  # member indices (positions in the population)
    steps: int
    batch: int
    padded: bool = False
    ragged: bool = False


def segments(sizes: list[int], batch: int, padded: bool = False) -> list[Segment]:
    """The batches of one epoch as `fit` makes them (full batches, then a partial one), grouped so that
    each segment's steps have one shape: first the full batches every member has, then each size's
    extra full batches and its partial batch. `padded`: one segment of full-size batches instead, for
    a model whose step does not depend on the other rows of a batch (`Program.row_independent`).

    >>> [(s.members, s.steps, s.batch) for s in segments([70, 70, 65], 32)]
    [((0, 1, 2), 2, 32), ((0, 1), 1, 6), ((2,), 1, 1)]
    >>> segments([70, 70, 65], 32, padded=True)
    [Segment(members=(0, 1, 2), steps=3, batch=32, padded=True, ragged=False)]
    """
    everyone = tuple(range(len(sizes)))
    if padded:
        steps = [-(-size // batch) for size in sizes]
        return [Segment(everyone, max(steps), batch, padded=True, ragged=len(set(steps)) > 1)]
    common = min(sizes) // batch
    out = [Segment(everyone, common, batch)] if common else []
    for size in sorted(set(sizes), reverse=True):
        who = tuple(i for i, s in enumerate(sizes) if s == size)
        full, last = divmod(size, batch)
        if full > common:
            out.append(Segment(who, full - common, batch))
        if last:
            out.append(Segment(who, 1, last))
    return out


class Program:
    """One population's compiled epoch: the template model's stateless step, vmapped."""

    def __init__(self, population: Population, training, data_shapes):
        import jax
        import jax.numpy as jnp

        self.jax, self.jnp = jax, jnp
        self.population = population
        models, members = population.models, population.members
        self.M = len(members)
        self.terms = penalty_terms(models)
        template = models[0]
        if not _built(template):
            raise Unsupported(f"model {template.name!r} has not created its weights (build it, or call it once)")
        self.paths = [v.path for v in template.trainable_variables]
        initial = {
            "trainable": [np.stack([np.asarray(m.trainable_variables[i].value) for m in models])
                          for i in range(len(self.paths))],
            "non_trainable": [np.stack([np.asarray(m.non_trainable_variables[i].value) for m in models])
                              for i in range(len(template.non_trainable_variables))],
        }
        # The template is member 0's own model, changed while the program is traced and put back by
        # `release()`: the members' weight penalties are computed by `_penalties`, not by Keras.
        self._undo = []
        for variable in template.trainable_variables:
            self._undo.append((variable, "regularizer", variable.regularizer))
            variable.regularizer = None
        self.sink = []
        self.rows = [None]  # the weights of the batch being traced, if padded (see `_Recorded`)
        self.activity = []
        for layer in template._flatten_layers(include_self=False):
            if getattr(layer, "activity_regularizer", None) is not None:
                if isinstance(layer.activity_regularizer, Scheduled):
                    self.release()
                    raise Unsupported(f"a scheduled activity penalty on layer {layer.name!r}")
                name = f"{layer.name}/activity"
                self._undo.append((layer, "activity_regularizer", layer.activity_regularizer))
                layer.activity_regularizer = _Recorded(layer.activity_regularizer, name, self.sink, self.rows)
                self.activity.append(name)
        from reglab.engine.training import compile_metrics, make_optimizer

        point = members[0].point
        try:
            template.compile(optimizer=make_optimizer(training, point, template), loss=training.loss,
                             loss_weights=training.loss_weights,  # metrics weighted: padding rows count 0
                             weighted_metrics=compile_metrics(training.metrics))
            x_probe, y_probe = data_shapes
            template._symbolic_build(data_batch=(x_probe, y_probe))  # builds the loss, metrics and optimizer
        except Exception:
            self.release()
            raise
        self.template = template
        optimizer = template.optimizer
        initial["optimizer"] = [np.stack([np.asarray(v.value)] * self.M) for v in optimizer.variables]
        optimizers = [make_optimizer(training, m.point, model) for m, model in zip(members, models)]
        self.knobs = per_member_knobs(template, models, optimizers)
        rate = _learning_rate_variable(optimizer)
        if rate is not None:  # a point's learning rate: the member's value of the optimizer's variable
            index = next(i for i, v in enumerate(optimizer.variables) if v is rate)
            initial["optimizer"][index] = np.array([np.asarray(_learning_rate_variable(o).value) for o in optimizers])
        self.metric_start = [np.asarray(v.value) for v in template.metrics_variables]
        names = jax.eval_shape(self._metric_result, self.metric_start)  # traced, not run: eager ops compile one by one
        self.metric_names = [name for name in names if name != "loss"]
        initial["alive"] = np.ones(self.M, bool)
        self.initial = initial
        self.decay = [points.optimizer_settings(m.point).get("weight_decay", 0.0) for m in members]
        self.decay_targets = set(points.optimizer_targets(template)) if any(self.decay) else set()

    def release(self):
        """Give the template model its own penalties back (the compiled program no longer needs them)."""
        for owner, attribute, value in reversed(self._undo):
            setattr(owner, attribute, value)
        self._undo = []

    # one member, no member axis: vmapped below

    def _metric_result(self, metric_values):
        with keras.src.backend.StatelessScope(state_mapping=list(zip(self.template.metrics_variables, metric_values))):
            return {k: v for k, v in self.template.get_metrics_result().items()}

    def values(self, epoch: int, members=slice(None)) -> dict:
        """What the members' points set, as host arrays with a member axis (`members`: a slice, or one
        member's position for its values alone): the penalty coefficients in `epoch` and the per-member
        numbers (`knobs`)."""
        return {"terms": [term.at(epoch)[members] for term in self.terms],
                "knobs": [knob.values[members] for knob in self.knobs]}

    @contextlib.contextmanager
    def _per_member(self, coefficients):
        """While tracing: each knob's attribute is the member's traced value (`_PerMember`)."""
        saved = [(knob.owner, knob.attribute, getattr(knob.owner, knob.attribute)) for knob in self.knobs]
        try:
            for knob, value in zip(self.knobs, coefficients["knobs"]):
                setattr(knob.owner, knob.attribute, _PerMember(value, knob.values.tolist()))
            yield
        finally:
            for owner, attribute, value in reversed(saved):
                setattr(owner, attribute, value)

    def _penalties(self, trainable, coefficients):
        out = []
        for term, c in zip(self.terms, coefficients["terms"]):
            w = trainable[term.index]
            if term.shared is not None:
                out.append(c[0] * term.shared(w))
            elif not term.keys:  # every member's strength is 0 (L2(0)): the term is reported, as 0
                out.append(self.jnp.zeros((), w.dtype))
            else:
                value = c[0] * basis.value(term.keys[0], w)
                for k in range(1, len(term.keys)):
                    value = value + c[k] * basis.value(term.keys[k], w)
                out.append(value)
        return out

    def _forward(self, trainable, non_trainable, metrics, x, y, coefficients, training, weight=None):
        """The member's objective on one batch. `weight`: 1 for a real row, 0 for padding (a padded
        batch); the prediction loss is then the mean over the real rows, as `fit`'s partial batch."""
        del self.sink[:]
        template = self.template
        self.rows[0] = weight
        try:
            with self._per_member(coefficients):
                y_pred, non_trainable, losses = template.stateless_call(trainable, non_trainable, x, training=training,
                                                                        return_losses=True)
        finally:
            self.rows[0] = None
        recorded = {}
        for name, value in self.sink:  # a layer with several outputs adds several
            recorded[name] = recorded[name] + value if name in recorded else value
        del self.sink[:]
        # no weight penalties are left on the template, so this is the prediction loss alone
        sample_weight = None
        if weight is not None:  # Keras divides by the batch's rows: scale the real ones up to their mean
            sample_weight = weight * (weight.shape[0] / self.jnp.maximum(weight.sum(), 1.0))
        pred, (_, _, metrics) = template.stateless_compute_loss(trainable, non_trainable, metrics, x=x, y=y,
                                                                y_pred=y_pred, sample_weight=sample_weight,
                                                                training=training)
        weight_terms = self._penalties(trainable, coefficients)
        extra = sum(losses) if losses else self.jnp.zeros((), pred.dtype)  # activity penalties and add_loss
        terms = [*weight_terms, *(recorded.get(name, self.jnp.zeros((), pred.dtype)) for name in self.activity)]
        total = pred + extra
        for value in weight_terms:
            total = total + value
        return total, (pred, total - pred, terms, y_pred, non_trainable, metrics)

    def _gradient(self, trainable, non_trainable, metrics, coefficients, x, y, weight):
        def objective(trainable):
            return self._forward(trainable, non_trainable, metrics, x, y, coefficients, True, weight)

        (total, aux), grads = self.jax.value_and_grad(objective, has_aux=True)(trainable)
        pred, penalty, terms, y_pred, non_trainable_new, metrics_new = aux
        _, metrics_new = self.template._update_metrics_variables(metrics_new, total, x, y, y_pred, weight)
        numbers = self.jnp.stack([pred, penalty, *terms]) if terms else self.jnp.stack([pred, penalty])
        return grads, numbers, y_pred, non_trainable_new, metrics_new

    def _member_step(self, state, coefficients, x, y, weight=None, ragged=False):
        trainable, non_trainable, optimizer_values, metrics = state
        grads, numbers, _, non_trainable_new, metrics_new = self._gradient(trainable, non_trainable, metrics,
                                                                           coefficients, x, y, weight)
        with self._per_member(coefficients):
            trainable_new, optimizer_new = self.template.optimizer.stateless_apply(optimizer_values, grads, trainable)
        new = (trainable_new, non_trainable_new, optimizer_new, metrics_new)
        if ragged:  # a member with no rows left this epoch takes no step (Adam's moments must not decay)
            moving = weight.sum() > 0
            new = self.jax.tree.map(lambda n, o: self.jnp.where(moving, n, o), new, state)
        return new, numbers

    def _member_validate(self, trainable, non_trainable, coefficients, x, y, weight=None):
        metrics = [self.jnp.asarray(v) for v in self.metric_start]
        total, (pred, penalty, _, y_pred, _, metrics) = self._forward(trainable, non_trainable, metrics, x, y,
                                                                      coefficients, False, weight)
        _, metrics = self.template._update_metrics_variables(metrics, total, x, y, y_pred, weight)
        result = self._metric_result(metrics)
        return self.jnp.stack([pred, penalty, *(result[name] for name in self.metric_names)])

    def row_independent(self, x, y) -> tuple[bool, bool]:
        """Whether this model's training step, and its evaluation, on a batch padded with weight-0 rows
        give its real rows what `fit` gives them on the real rows alone: (training, evaluation). Checked,
        not assumed — once, on member 0's initial state and the rows `x`, with two different paddings.
        A layer that mixes rows (BatchNormalization's batch statistics) makes it False; then partial
        batches get steps of their own shape. (Dropout passes: JAX's threefry draws each element from its
        position in the array; activity penalties count the real rows only, see `_Recorded`.)"""
        return self.row_independence(x, y).result()

    def row_independence(self, x, y, pool=None) -> Future:
        """`row_independent` as a future: traced here, compiled and run in `pool` (a thread; XLA compiles
        without the GIL, so the caller can trace the epoch meanwhile), or here without one."""
        jax, jnp = self.jax, self.jnp
        rows = jax.tree.leaves(x)[0].shape[0]
        real = rows // 2 + 1
        trainable, non_trainable = ([jax.device_put(a[0]) for a in self.initial[k]] for k in ("trainable", "non_trainable"))
        coefficients = self.values(0, members=0)
        weight = jax.device_put((np.arange(rows) < real).astype("float32"))

        def train(x, y, weight):
            metrics = [jnp.asarray(v) for v in self.metric_start]
            grads, numbers, y_pred, nt, m = self._gradient(trainable, non_trainable, metrics, coefficients, x, y, weight)
            result = self._metric_result(m)
            return grads, numbers, jax.tree.map(lambda p: p[:real], y_pred), nt, [result[k] for k in self.metric_names]

        def evaluate(x, y, weight):
            return self._member_validate(trainable, non_trainable, coefficients, x, y, weight)

        @jax.jit  # one small compilation: eager Keras would cost seconds
        def probe(x_real, y_real, paddings, y):
            return [[f(x_real, y_real, None), *(f(x_pad, y, weight) for x_pad in paddings)] for f in (train, evaluate)]

        head = jax.tree.map(lambda a: a[:real], x)
        paddings = [jax.tree.map(lambda a: np.concatenate([a[:real], np.zeros_like(a[real:])]), x),
                    jax.tree.map(lambda a: np.concatenate([a[:real], a[real:][::-1]]), x)]
        args = (head, jax.tree.map(lambda a: a[:real], y), paddings, y)

        def answer(lowered):
            try:  # run once: XLA's backend optimizations would cost more than they save (half the compile time)
                outputs = lowered.compile(compiler_options={"xla_backend_optimization_level": 0})(*args)
            except Exception:  # e.g. a model that needs one fixed batch size: not row-independent for us
                return False, False
            return tuple(all(_close(runs[0], other) for other in runs[1:]) for runs in outputs)

        try:
            lowered = probe.lower(*args)
        except Exception:
            lowered = None
        if lowered is None or pool is None:
            done = Future()
            done.set_result(answer(lowered) if lowered is not None else (False, False))
            return done
        return pool.submit(answer, lowered)

    def epoch_function(self, plan: "Plan", X, Y, epochs: int = 1):
        """The jitted epoch of a shard of `plan.size` members: (state, coefficients, per-segment batch
        indices and weights, per-cohort validation indices and weights) -> (state, training sums,
        training metrics, validation numbers, weight statistics). Weights are None where batches are
        not padded. `epochs`: how many times it will run (what a convolution's batching is chosen for)."""
        jax, jnp = self.jax, self.jnp
        M, segment_plan, val_plan = plan.size, plan.segments, plan.validation
        width = 2 + len(self.terms) + len(self.activity)
        check = jax.vmap(self._member_validate)

        def take(tree, who):
            return tree if len(who) == M else jax.tree.map(lambda a: a[np.asarray(who)], tree)

        def put(tree, who, part):
            return part if len(who) == M else jax.tree.map(lambda a, b: a.at[np.asarray(who)].set(b), tree, part)

        def epoch(state, coefficients, batch_indices, batch_weights, val_indices, val_weights):
            start = (state["trainable"], state["non_trainable"], state["optimizer"])
            metrics = [jnp.broadcast_to(jnp.asarray(v), (M, *np.shape(v))) for v in self.metric_start]
            carry = (*start, metrics)
            sums = jnp.zeros((M, width), "float32")
            for segment, idx, weight in zip(segment_plan, batch_indices, batch_weights):
                part, coef = take(carry, segment.members), take(coefficients, segment.members)
                step = jax.vmap(lambda s, c, x, y, w, ragged=segment.ragged: self._member_step(s, c, x, y, w, ragged))

                def body(inner, step_input, coef=coef, step=step):
                    step_idx, step_weight = step_input
                    inner, numbers = step(inner, coef, _take(X, step_idx), _take(Y, step_idx), step_weight)
                    rows = step_weight.sum(axis=1) if step_weight is not None else segment.batch
                    return inner, numbers * jnp.reshape(rows, (-1, 1))

                inputs = (jnp.swapaxes(idx, 0, 1), None if weight is None else jnp.swapaxes(weight, 0, 1))
                with expected_calls(segment.steps * epochs):
                    part, numbers = jax.lax.scan(body, part, inputs)
                carry = put(carry, segment.members, part)
                sums = sums.at[np.asarray(segment.members)].add(numbers.sum(axis=0))
            trainable, non_trainable, optimizer_values, metrics = carry
            stats = _weight_stats(jnp, trainable)  # of the weights reached, as the ledger records a diverged epoch
            ok = state["alive"] & jnp.isfinite(sums).all(axis=1) & jnp.isfinite(stats[:, :, 0]).all(axis=1)

            def keep(new, old):  # a member that stopped being finite goes back to its state at the epoch's start
                return jax.tree.map(lambda n, o: jnp.where(ok.reshape((M,) + (1,) * (n.ndim - 1)), n, o), new, old)

            trainable, non_trainable, optimizer_values = keep((trainable, non_trainable, optimizer_values), start)
            train_metrics = jax.vmap(self._metric_result)(metrics)
            val = jnp.full((M, 2 + len(self.metric_names)), jnp.nan, "float32")
            for (who, _, _), idx, weight in zip(val_plan, val_indices, val_weights):
                part = take((trainable, non_trainable, coefficients), who)
                # validation: one forward pass an epoch over a whole fold, whose measurement would cost
                # seconds (a keras-io convnet: ~20 s): never measured, `map` (see reglab.engine.convolution)
                with expected_calls(0):
                    val = val.at[np.asarray(who)].set(check(*part, _take(X, idx), _take(Y, idx), weight))
            new_state = {"trainable": trainable, "non_trainable": non_trainable, "optimizer": optimizer_values,
                         "alive": ok}
            return new_state, sums, {k: train_metrics[k] for k in self.metric_names}, val, stats

        return jax.jit(epoch, donate_argnums=(0,))


def _take(tree, index):
    """The rows `index` of every array of a pytree (the data's inputs or outputs, a state, coefficients)."""
    import jax

    return jax.tree.map(lambda a: a[index], tree)


def _close(expected, got) -> bool:
    """Every leaf of two pytrees equal to float32 rounding (relative to the leaf's scale)."""
    import jax

    a_leaves, b_leaves = jax.tree.leaves(expected), jax.tree.leaves(got)
    if len(a_leaves) != len(b_leaves):
        return False
    for a, b in zip(a_leaves, b_leaves):
        a, b = np.asarray(a, "float64"), np.asarray(b, "float64")
        scale = float(np.max(np.abs(a), initial=0.0))
        if a.shape != b.shape or not np.allclose(a, b, rtol=1e-5, atol=1e-6 * max(scale, 1e-3), equal_nan=True):
            return False
    return True


def _weight_stats(jnp, weights):
    """(M, weights, records.WEIGHT_STATS) of weights with a leading member axis. One reduction per weight
    (of its four quantities stacked), not four: reductions are what XLA on CPU is slowest to compile.
    A weight's L1 norm is finite exactly when all its entries are (or their sum overflows float32)."""
    out = []
    for w in weights:
        flat = w.reshape(w.shape[0], -1)
        size = jnp.abs(flat)
        totals = jnp.stack([size, flat * flat, (flat == 0).astype(flat.dtype),
                            (size < records.NEAR_ZERO).astype(flat.dtype)], axis=-1).sum(axis=1)
        out.append(jnp.stack([totals[:, 0], jnp.sqrt(totals[:, 1]), totals[:, 2], totals[:, 3] / flat.shape[1]], axis=1))
    return jnp.stack(out, axis=1)


# --- training a population ----------------------------------------------------------------------


class _Untraceable(Exception):
    """The step did not trace with per-member values standing in for numbers (`_PerMember`)."""

    def __init__(self, groups):
        super().__init__("per-member values did not trace")
        self.groups = groups


def train_population(population: Population, data, training, validate: bool = True, order=default_order,
                     checkpoints: Checkpoints | None = None):
    """Train every member of `population` at once; each member's own model gets its final state.

    Returns ({member id: epoch records}, {member id: {weight path: final array}}, timing), the records in
    the format of `reglab.kit.records` (as the reference engine's ledger writes them). A population whose
    layers need one of its per-member numbers as a Python number trains as one population per value.
    With `checkpoints`, the whole state (weights, optimizer slots, non-trainable and random state, the
    records so far) is saved at epoch boundaries and a population that finds its checkpoint continues
    from it: the result is bit-identical to an uninterrupted run (test).
    """
    try:
        return _train_population(population, data, training, validate, order, checkpoints)
    except _Untraceable as split:
        out, weights, timing = {}, {}, {"epoch_seconds": [], "compile_seconds": 0.0, "seconds": 0.0, "members": 0,
                                        "convolutions": {}}
        for who in split.groups:
            part = Population([population.members[i] for i in who], [population.models[i] for i in who])
            records, final, seconds = _train_population(part, data, training, validate, order, checkpoints)
            out.update(records)
            weights.update(final)
            for key in ("compile_seconds", "seconds", "members"):
                timing[key] += seconds[key]
            timing["epoch_seconds"] += seconds["epoch_seconds"]
            timing["convolutions"].update(seconds["convolutions"])
        return out, weights, timing


@dataclass(frozen=True)
class Plan:
    """How a shard of `size` members takes its batches and validation: its segments and its validation
    cohorts (member positions within the shard)."""

    size: int
    segments: tuple
    validation: tuple  # (member positions, rows, padded?) per cohort evaluated together


def plan_shard(train_sizes, val_sizes, batch, pad_train, pad_val, val_rows=None) -> Plan:
    """The plan of members with these training and validation sizes (see `segments`); padded validation
    takes `val_rows` rows (the population's largest fold, so that every shard has the same shapes).

    >>> plan_shard([70, 65], [20, 25], 32, pad_train=True, pad_val=True).validation
    (((0, 1), 25, True),)
    >>> plan_shard([70, 65], [20, 25], 32, pad_train=False, pad_val=False).validation
    (((0,), 20, False), ((1,), 25, False))
    """
    ragged = len({size % batch for size in train_sizes} - {0}) > 0
    steps = tuple(segments(list(train_sizes), batch, padded=pad_train and ragged))
    if pad_val and len(set(val_sizes)) > 1:
        cohorts = ((tuple(range(len(val_sizes))), val_rows or max(val_sizes), True),)
    else:  # members whose validation folds have one size are evaluated together
        cohorts = tuple((tuple(i for i, v in enumerate(val_sizes) if v == size), size, False)
                        for size in dict.fromkeys(val_sizes))
    return Plan(len(train_sizes), steps, cohorts)


def shard_count() -> int:
    """How many shards of a population run side by side: one per core on a CPU, where one XLA program
    keeps about one core busy with a population's many small operations (measured on 2 cores, standard
    workload: 40 members 0.071–0.080 s an epoch, two shards of 20 in two threads 0.043 s; dispatched
    from one thread, JAX runs them one after the other: no gain); one on an accelerator.
    REGLAB_SHARDS overrides."""
    import os

    import jax

    if os.environ.get("REGLAB_SHARDS"):
        value = os.environ["REGLAB_SHARDS"]
        if not value.isdigit() or int(value) < 1:
            raise ValueError(f"REGLAB_SHARDS is a number of shards (1 or more). Received: REGLAB_SHARDS={value!r}")
        return int(value)
    if jax.default_backend() != "cpu":
        return 1
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def shard(train_sizes, val_sizes, batch, pad_train, pad_val, count: int, smallest: int = 4) -> list[list[int]]:
    """Member positions of each shard: as many equal shards as `count` allows with at least `smallest`
    members each and one plan for all (so that one compiled program serves every shard). Shards are
    filled up to equal size by repeating the last member (a copy: its results are dropped).

    >>> shard([70] * 8, [20] * 8, 32, True, True, count=2)
    [[0, 1, 2, 3], [4, 5, 6, 7]]
    >>> shard([70] * 9, [20] * 9, 32, True, True, count=2)
    [[0, 1, 2, 3, 4], [5, 6, 7, 8, 8]]
    >>> shard([70, 70, 65, 65], [20] * 4, 32, False, True, count=2)  # unpadded partial batches differ
    [[0, 1, 2, 3]]
    """
    M = len(train_sizes)
    for k in range(min(count, M // smallest), 1, -1):
        size = -(-M // k)
        positions = list(range(M)) + [M - 1] * (size * k - M)
        cuts = [positions[j * size:(j + 1) * size] for j in range(k)]
        plans = {plan_shard([train_sizes[i] for i in c], [val_sizes[i] for i in c], batch, pad_train, pad_val,
                            max(val_sizes)) for c in cuts}
        if len(plans) == 1:
            return cuts
    return [list(range(M))]


@dataclass
class _Schedule:
    """How a population runs: its shards' plan, (member positions, validation indices) per shard, and
    the epoch program, lowered (its tracing began at `started`)."""

    plan: Plan
    shards: list
    lowered: object
    started: float
    convolutions: dict  # how each convolution's members are batched, and the figures it was chosen on


def _train_population(population, data, training, validate, order, checkpoints=None):
    import jax

    members = population.members
    M = len(members)
    x_views, y_views, view_of = standardized_views(data, members, training.standardize)
    N = len(data)
    # host copies for the padding probe; `device_put`, not `jnp.asarray`, which compiles a copy per shape
    host = [jax.tree.map(lambda a: a.reshape(-1, *a.shape[2:]), views) for views in (x_views, y_views)]
    X, Y = jax.device_put(host)
    offsets = view_of.astype("int64") * N
    B = training.batch_size
    train_sizes = [len(m.train) for m in members]
    val_sizes = [len(m.val) for m in members] if validate else [0] * M
    program = Program(population, training, tuple(jax.tree.map(lambda a: a[0][:B], v) for v in (x_views, y_views)))
    count = shard_count()
    payload = checkpoints.load(checkpoint_key(members)) if checkpoints is not None else None
    if payload is not None:  # a resumed population batches its convolutions as it did before it stopped
        remember(_meta(payload).get("convolutions", {}))
    pool = ThreadPoolExecutor(max(count, 2))  # the shards; the padding probe's compilation
    try:
        def schedule(padded):
            """How the population runs with `padded` = (training, evaluation) batches padded: its shards,
            their plan and validation indices, and the epoch program, lowered."""
            cuts = shard(train_sizes, val_sizes, B, *padded, count=count, smallest=4)
            plan = plan_shard([train_sizes[i] for i in cuts[0]], [val_sizes[i] for i in cuts[0]], B, *padded,
                              max(val_sizes))
            shards = [(cut, jax.device_put(validation(plan, cut))) for cut in cuts]
            run = program.epoch_function(plan, X, Y, training.epochs)
            started = time.perf_counter()
            rows = np.asarray(cuts[0])
            first = (_take(program.initial, rows), _take(program.values(0), rows), *batch_indices(plan, 0, cuts[0]))
            try:  # once per population: the points' values are arguments, not constants
                with per_member_on_cpu() as convolutions:  # see reglab.engine.convolution
                    lowered = run.lower(*first, *shards[0][1])
            except Exception:
                if not program.knobs:
                    raise
                values = [tuple(float(knob.values[m]) for knob in program.knobs) for m in range(M)]
                raise _Untraceable([[m for m in range(M) if values[m] == v] for v in dict.fromkeys(values)]) from None
            return _Schedule(plan, shards, lowered, started, convolutions)

        def validation(plan, cut):
            """Per cohort of the shard `cut`: its members' validation indices and, if padded, weights."""
            val_sets = [members[i].val + offsets[i] for i in cut]
            out = []
            for who, length, padded in plan.validation if validate else ():
                if padded:
                    out.append(pad([val_sets[i] for i in who], length))
                else:
                    out.append((np.stack([val_sets[i] for i in who]).astype("int32"), None))
            return [idx for idx, _ in out], [weight for _, weight in out]

        def batch_indices(plan, epoch, cut):
            """Per segment of the shard `cut` (members, steps, batch): each member's next batches in its
            order of this epoch, and for a padded segment their weights (1 for a real row)."""
            orders = [order(members[i], epoch) + offsets[i] for i in cut]
            out, weights, used = [], [], [0] * len(orders)
            for segment in plan.segments:
                if segment.padded:
                    idx, mask = pad(orders, segment.steps * segment.batch)
                    out.append(idx.reshape(len(orders), segment.steps, segment.batch))
                    weights.append(mask.reshape(len(orders), segment.steps, segment.batch))
                    continue
                rows = []
                for i in segment.members:
                    size = segment.steps * segment.batch
                    rows.append(orders[i][used[i]: used[i] + size].reshape(segment.steps, segment.batch))
                    used[i] += size
                out.append(np.stack(rows).astype("int32"))
                weights.append(None)
            return out, weights

        # One step body for every batch where the model allows padding (compiles once, not once per
        # partial-batch shape), and one evaluation for validation folds of different sizes. Whether it
        # does is checked (`row_independent`, compiling in a thread) while the epoch is traced on a
        # guess — padded, which most models allow; BatchNormalization's batch statistics allow it for
        # evaluation only —; if the guess was wrong, that trace is thrown away.
        if len({s % B for s in train_sizes} - {0}) > 0 or len(set(val_sizes)) > 1:
            rows = members[0].train[:B] + offsets[0]
            answer = program.row_independence(*(jax.tree.map(lambda a: a[rows], v) for v in host), pool=pool)
            mixes_rows = any(isinstance(layer, keras.layers.BatchNormalization)
                             for layer in program.template._flatten_layers(include_self=False))
            guess = (not mixes_rows, True)
            chosen = schedule(guess)
            if answer.result() != guess:
                chosen = schedule(answer.result())
        else:
            chosen = schedule((False, False))
        return _train(program, chosen, members, training, validate,
                      lambda epoch, cut: batch_indices(chosen.plan, epoch, cut), pool, checkpoints, payload)
    finally:
        pool.shutdown(wait=False, cancel_futures=True)
        program.release()


def _resume(program, members, payload):
    """(state, rows, status, first epoch) from a checkpoint of exactly this population, or None; the
    state as host arrays."""
    import jax

    try:
        meta = _meta(payload)
        leaves = jax.tree.leaves(program.initial)
        stored = [payload[f"state_{i}"] for i in range(len(leaves))]
    except (KeyError, ValueError, TypeError):
        return None
    if meta.get("members") != [m.id for m in members] or any(
            a.shape != b.shape or a.dtype != np.asarray(b).dtype for a, b in zip(stored, leaves)):
        return None
    state = jax.tree.unflatten(jax.tree.structure(program.initial), stored)
    return state, meta["rows"], meta["status"], int(meta["epoch"])


def _meta(payload) -> dict:
    """A checkpoint's description ({} if it has none that can be read: it is then not resumed)."""
    try:
        meta = json.loads(str(payload["meta"]))
    except (KeyError, ValueError, TypeError):
        return {}
    return meta if isinstance(meta, dict) else {}


def _save(checkpoints, key, state, members, rows, status, epoch, convolutions):
    import jax

    arrays = {f"state_{i}": np.asarray(leaf) for i, leaf in enumerate(jax.tree.leaves(state))}
    arrays["meta"] = np.array(json.dumps({"members": [m.id for m in members], "rows": rows, "status": status,
                                          "epoch": epoch, "convolutions": convolutions}))
    checkpoints.save(key, arrays)


def _gather(states, M):
    """The population's state as host arrays: its shards' states joined along the member axis (without
    the copies that fill the last shard)."""
    import jax

    return jax.tree.map(lambda *parts: np.concatenate([np.asarray(p) for p in parts])[:M], *states)


def _train(program, schedule, members, training, validate, batch_indices, pool, checkpoints=None, payload=None):
    import jax

    M = len(members)
    shards = schedule.shards
    state = program.initial
    timing = {"epoch_seconds": [], "compile_seconds": 0.0, "members": M, "shards": len(shards),
              "convolutions": schedule.convolutions}
    rows = {m.id: [] for m in members}
    status = ["ok"] * M
    first = 0
    key = checkpoint_key(members)
    if payload is not None:
        resumed = _resume(program, members, payload)
        if resumed is not None:
            state, rows, status, first = resumed
    # each shard's state lives on the device from here on; joined only to be saved or written back
    states = [jax.device_put(_take(state, np.asarray(cut))) for cut, _ in shards]
    n = np.array([len(m.train) for m in members], "float64")
    decays = [path in program.decay_targets for path in program.paths]
    names = [t.name for t in program.terms] + program.activity
    compiled = schedule.lowered.compile()
    timing["compile_seconds"] = time.perf_counter() - schedule.started
    started = last_save = time.perf_counter()
    save_cost = 0.0
    for epoch in range(first, training.epochs):
        t0 = time.perf_counter()
        coefficients = program.values(epoch)
        calls = [jax.device_put((_take(coefficients, np.asarray(cut)), *batch_indices(epoch, cut)))
                 + tuple(validation) for cut, validation in shards]
        if len(shards) == 1:
            outputs = [compiled(states[0], *calls[0])]
        else:  # in threads of their own: JAX runs programs dispatched from one thread one after another
            outputs = list(pool.map(lambda args: jax.block_until_ready(compiled(*args)),
                                    [(shard_state, *call) for shard_state, call in zip(states, calls)]))
        states = [out[0] for out in outputs]
        sums, val, stats, alive = (np.concatenate([np.asarray(a, dtype="float64") for a in parts])[:M] for parts in zip(
            *((out[1], out[3], out[4], out[0]["alive"]) for out in outputs)))
        train_metrics = {k: np.concatenate([np.asarray(out[2][k], dtype="float64") for out in outputs])[:M]
                         for k in program.metric_names}
        timing["epoch_seconds"].append(time.perf_counter() - t0)
        for m, member in enumerate(members):
            if status[m] == "diverged":
                continue
            train_loss, train_penalty = sums[m, 0] / n[m], sums[m, 1] / n[m]
            row = {"epoch": epoch + 1, "train_loss": train_loss, "train_penalty": train_penalty,
                   "train_total": train_loss + train_penalty}
            if validate:
                row.update(val_loss=val[m, 0], val_penalty=val[m, 1], val_total=val[m, 0] + val[m, 1])
            for name in program.metric_names:
                row[f"train_{name}"] = train_metrics[name][m]
            if validate:
                for k, name in enumerate(program.metric_names):
                    row[f"val_{name}"] = val[m, 2 + k]
            for t, name in enumerate(names):
                row[records.column("penalty", name)] = sums[m, 2 + t] / n[m]
            for term in program.terms:
                if term.schedules[m] is not None:
                    row[records.column("scale", term.name)] = float(np.float32(term.schedules[m](epoch)))
            for wi, path in enumerate(program.paths):
                for q, quantity in enumerate(records.WEIGHT_STATS):
                    row[records.column(quantity, path)] = stats[m, wi, q]
            for wi, path in enumerate(program.paths):  # as the ledger's `decay_terms`
                if decays[wi]:
                    row[records.column("decay", path)] = program.decay[m] / 2 * stats[m, wi, 1] ** 2
            status[m] = records.status(row["train_total"] if alive[m] else math.nan, status[m])
            row["status"] = status[m]
            rows[member.id].append(row)
        if checkpoints is not None and epoch + 1 < training.epochs:
            stop = checkpoints.stop()
            now = time.perf_counter()
            if stop or now - last_save >= max(checkpoints.seconds, 20 * save_cost):
                _save(checkpoints, key, _gather(states, M), members, rows, status, epoch + 1, schedule.convolutions)
                last_save = time.perf_counter()
                save_cost = last_save - now
            if stop:
                raise Interrupted(epoch + 1, training.epochs)
    timing["seconds"] = time.perf_counter() - started
    state = _gather(states, M)
    final = state["trainable"]
    _write_back(program.population, final, state["non_trainable"])
    weights = {member.id: {path: final[wi][m] for wi, path in enumerate(program.paths)}
               for m, member in enumerate(members)}
    out = {member.id: records.frame(rows[member.id]) for member in members}
    return out, weights, timing


def _write_back(population: Population, trainable, non_trainable) -> None:
    """Give every member's own Keras model its final state (weights, BatchNormalization statistics, seeds)."""
    for m, model in enumerate(population.models):
        for variable, values in zip(model.trainable_variables, trainable):
            variable.assign(values[m])
        for variable, values in zip(model.non_trainable_variables, non_trainable):
            variable.assign(values[m])


def train_member(member, data, training, make_model, validate: bool = True):
    """One member as a population of one (e.g. the refit of the chosen point): (records, trained model or
    None, scaling), as `reglab.engine.reference.train_member` returns them."""
    from reglab.engine.reference import with_identity
    from reglab.engine.training import fold_arrays

    *_, scaling = fold_arrays(data, member.train, member.val, training.standardize)
    started = time.perf_counter()
    populations, failed = plan_populations([member], make_model, probe=data_rows(data.x, slice(0, 1)))
    if failed:
        return with_identity(pd.DataFrame([{"epoch": 0, "status": "failed", "error": failed[member.id]}]), member,
                             time.perf_counter() - started), None, scaling
    (population,) = populations
    records, _, _ = train_population(population, data, training, validate=validate)
    return with_identity(records[member.id], member, time.perf_counter() - started), population.models[0], scaling
