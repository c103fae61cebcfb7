"""The population engine: every member of one architecture trained at once, with Keras's own step.

Keras 3 exposes a training step on the JAX backend as pure functions — `model.stateless_call`,
`model.stateless_compute_loss`, `optimizer.stateless_apply`, the metrics' stateless updates.
`jax.vmap` over a leading member axis of every piece of state (weights, non-trainable state such as
BatchNormalization statistics and dropout seeds, optimizer slots and iteration, metric totals)
turns one member's step into a population's step, for any model `model.fit` can train, with no
layer, loss, optimizer or metric code of ours: each member is `model.fit` by construction.

What varies between members without recompiling is data, not code: the penalties. Every penalty
reglab and Keras ship is linear in its strengths over a few basis functions (`reglab.engine.basis`),
so the template model's weight regularizers are taken off and each member's penalty is computed as
its own coefficients (a traced array) times the basis values of its own weights; λ schedules scale
those coefficients each epoch. Anything else that differs between members — the architecture, a
dropout rate, a custom regularizer's configuration, what a point asks of the optimizer — makes a
separate population (`signature`).

Exactness also needs the batches `fit` sees: members whose training folds differ in size get their
last (partial) batches in steps of their own shape, so BatchNormalization sees exactly the rows
`fit` would give it; validation runs on each member's whole fold at once. Members are independent
(nothing reduces over the member axis), so a member whose loss or weights stop being finite cannot
touch the others; at the end of that epoch it goes back to its state at the epoch's start, is
frozen there and marked diverged.

Population state is a value: `{"trainable", "non_trainable", "optimizer": [arrays with a leading
member axis], "alive": (M,)}`; one jitted function advances it by one epoch (train steps, weight
statistics, validation, divergence check) and returns it with that epoch's numbers.
"""

from __future__ import annotations

import json
import math
import sys
import time
import traceback
from dataclasses import dataclass

import keras
import numpy as np
import pandas as pd

from reglab import plan, points, records
from reglab.engine import basis
from reglab.engine.batches import default_order, standardized_views
from reglab.engine.convolution import per_member_on_cpu
from reglab.schedules import Scheduled


class Unsupported(Exception):
    """The sweep cannot run on the population engine; the message says why."""


def unavailable() -> str | None:
    """Why populations cannot train in this process, or None if they can."""
    if keras.backend.backend() != "jax":
        return (f"the population engine runs on Keras's JAX backend and this process uses "
                f"{keras.backend.backend()!r} (set KERAS_BACKEND=jax, or import reglab before keras)")
    return None


def keep_tensorflow_out() -> None:
    """Tell Keras that TensorFlow is not there, in a JAX process that has not imported it: Keras imports
    it whenever it is installed, for `isinstance` checks while serializing (`tf.available`), and that
    costs ~460 MB (shared/experiments/NOTES.md). For processes reglab owns (the CLI, the benchmark):
    a user's process may want `tf.data`."""
    if keras.backend.backend() == "jax" and "tensorflow" not in sys.modules:
        from keras.src.utils import module_utils

        module_utils.tensorflow._available = False


# --- members → populations ----------------------------------------------------------------------


@dataclass
class Population:
    """Members whose models share an architecture; `models[i]` is member i's own model, built under
    its seed with its point applied (its initial weights and seed state are the member's)."""

    members: list
    models: list


def _structure(config):
    """A model config without its weight penalties (members may differ in those)."""
    if isinstance(config, dict):
        return {k: "<weight penalty>" if k.endswith("_regularizer") and k != "activity_regularizer" else _structure(v)
                for k, v in config.items()}
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
                       points.optimizer_settings(point)], sort_keys=True, default=repr)


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


class _Recorded:
    """An activity regularizer that also hands its value to the step tracing it, so the step can
    report it as a term of its own. Values are tracers of that trace, never kept beyond it."""

    def __init__(self, regularizer, name, sink):
        self.regularizer, self.name, self.sink = regularizer, name, sink

    def __call__(self, x):
        value = self.regularizer(x)
        # Keras divides an activity penalty by the batch size after calling the regularizer
        # (`Layer.__call__`); the term is reported as it enters the loss
        share = keras.ops.divide_no_nan(value, keras.ops.cast(keras.ops.shape(x)[0], value.dtype)) if x.ndim else value
        self.sink.append((self.name, share))
        return value


# --- the compiled epoch -------------------------------------------------------------------------


@dataclass(frozen=True)
class Segment:
    """Steps that a set of members takes with one batch shape."""

    members: tuple  # member indices (positions in the population)
    steps: int
    batch: int


def segments(sizes: list[int], batch: int) -> list[Segment]:
    """The batches of one epoch as `fit` makes them (full batches, then a partial one), grouped so that
    each segment's steps have one shape: first the full batches every member has, then each size's
    extra full batches and its partial batch.

    >>> [(s.members, s.steps, s.batch) for s in segments([70, 70, 65], 32)]
    [((0, 1, 2), 2, 32), ((0, 1), 1, 6), ((2,), 1, 1)]
    """
    everyone = tuple(range(len(sizes)))
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
        self.activity = []
        for layer in template._flatten_layers(include_self=False):
            if getattr(layer, "activity_regularizer", None) is not None:
                if isinstance(layer.activity_regularizer, Scheduled):
                    self.release()
                    raise Unsupported(f"a scheduled activity penalty on layer {layer.name!r}")
                name = f"{layer.name}/activity"
                self._undo.append((layer, "activity_regularizer", layer.activity_regularizer))
                layer.activity_regularizer = _Recorded(layer.activity_regularizer, name, self.sink)
                self.activity.append(name)
        from reglab.engine.reference import make_optimizer

        point = members[0].point
        try:
            template.compile(optimizer=make_optimizer(training, point, template), loss=training.loss,
                             metrics=list(training.metrics))
            x_probe, y_probe = data_shapes
            template._symbolic_build(data_batch=(x_probe, y_probe))  # builds the loss, metrics and optimizer
        except Exception:
            self.release()
            raise
        self.template = template
        optimizer = template.optimizer
        initial["optimizer"] = [np.stack([np.asarray(v.value)] * self.M) for v in optimizer.variables]
        self.metric_start = [np.asarray(v.value) for v in template.metrics_variables]
        self.metric_names = [name for name in self._metric_result(self.metric_start) if name != "loss"]
        initial["alive"] = np.ones(self.M, bool)
        self.initial = initial
        self.settings = points.optimizer_settings(point)
        self.decay_targets = set(points.optimizer_targets(template)) if "weight_decay" in self.settings else set()

    def release(self):
        """Give the template model its own penalties back (the compiled program no longer needs them)."""
        for owner, attribute, value in reversed(self._undo):
            setattr(owner, attribute, value)
        self._undo = []

    # one member, no member axis: vmapped below

    def _metric_result(self, metric_values):
        with keras.src.backend.StatelessScope(state_mapping=list(zip(self.template.metrics_variables, metric_values))):
            return {k: v for k, v in self.template.get_metrics_result().items()}

    def _penalties(self, trainable, coefficients):
        out = []
        for term, c in zip(self.terms, coefficients):
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

    def _forward(self, trainable, non_trainable, metrics, x, y, coefficients, training):
        del self.sink[:]
        template = self.template
        y_pred, non_trainable, losses = template.stateless_call(trainable, non_trainable, x, training=training,
                                                                return_losses=True)
        recorded = {}
        for name, value in self.sink:  # a layer with several outputs adds several
            recorded[name] = recorded[name] + value if name in recorded else value
        del self.sink[:]
        # no weight penalties are left on the template, so this is the prediction loss alone
        pred, (_, _, metrics) = template.stateless_compute_loss(trainable, non_trainable, metrics, x=x, y=y,
                                                                y_pred=y_pred, training=training)
        weight_terms = self._penalties(trainable, coefficients)
        extra = sum(losses) if losses else self.jnp.zeros((), pred.dtype)  # activity penalties and add_loss
        terms = [*weight_terms, *(recorded.get(name, self.jnp.zeros((), pred.dtype)) for name in self.activity)]
        total = pred + extra
        for value in weight_terms:
            total = total + value
        return total, (pred, total - pred, terms, y_pred, non_trainable, metrics)

    def _member_step(self, state, coefficients, x, y):
        jax = self.jax
        trainable, non_trainable, optimizer_values, metrics = state

        def objective(trainable):
            return self._forward(trainable, non_trainable, metrics, x, y, coefficients, True)

        (total, (pred, penalty, terms, y_pred, non_trainable_new, metrics_new)), grads = jax.value_and_grad(
            objective, has_aux=True)(trainable)
        trainable_new, optimizer_new = self.template.optimizer.stateless_apply(optimizer_values, grads, trainable)
        _, metrics_new = self.template._update_metrics_variables(metrics_new, total, x, y, y_pred, None)
        numbers = self.jnp.stack([pred, penalty, *terms]) if terms else self.jnp.stack([pred, penalty])
        return (trainable_new, non_trainable_new, optimizer_new, metrics_new), numbers

    def _member_validate(self, trainable, non_trainable, coefficients, x, y):
        metrics = [self.jnp.asarray(v) for v in self.metric_start]
        total, (pred, penalty, _, y_pred, _, metrics) = self._forward(trainable, non_trainable, metrics, x, y,
                                                                      coefficients, False)
        _, metrics = self.template._update_metrics_variables(metrics, total, x, y, y_pred, None)
        result = self._metric_result(metrics)
        return self.jnp.stack([pred, penalty, *(result[name] for name in self.metric_names)])

    def epoch_function(self, segment_plan, val_plan, X, Y):
        """The jitted epoch: (state, coefficients, per-segment batch indices, per-cohort validation
        indices) -> (state, training sums, training metrics, validation numbers, weight statistics)."""
        jax, jnp = self.jax, self.jnp
        M = self.M
        width = 2 + len(self.terms) + len(self.activity)
        step = jax.vmap(self._member_step)
        check = jax.vmap(self._member_validate)

        def take(tree, who):
            return tree if len(who) == M else jax.tree.map(lambda a: a[np.asarray(who)], tree)

        def put(tree, who, part):
            return part if len(who) == M else jax.tree.map(lambda a, b: a.at[np.asarray(who)].set(b), tree, part)

        def epoch(state, coefficients, batch_indices, val_indices):
            start = (state["trainable"], state["non_trainable"], state["optimizer"])
            metrics = [jnp.broadcast_to(jnp.asarray(v), (M, *np.shape(v))) for v in self.metric_start]
            carry = (*start, metrics)
            sums = jnp.zeros((M, width), "float32")
            for segment, idx in zip(segment_plan, batch_indices):
                part, coef = take(carry, segment.members), take(coefficients, segment.members)

                def body(inner, step_idx, coef=coef):
                    inner, numbers = step(inner, coef, X[step_idx], Y[step_idx])
                    return inner, numbers

                part, numbers = jax.lax.scan(body, part, jnp.swapaxes(idx, 0, 1))
                carry = put(carry, segment.members, part)
                sums = sums.at[np.asarray(segment.members)].add(segment.batch * numbers.sum(axis=0))
            trainable, non_trainable, optimizer_values, metrics = carry
            flat = jnp.concatenate([w.reshape(M, -1) for w in trainable], axis=1)
            ok = state["alive"] & jnp.isfinite(sums).all(axis=1) & jnp.isfinite(flat).all(axis=1)

            def keep(new, old):  # a member that stopped being finite goes back to its state at the epoch's start
                return jax.tree.map(lambda n, o: jnp.where(ok.reshape((M,) + (1,) * (n.ndim - 1)), n, o), new, old)

            trainable, non_trainable, optimizer_values = keep((trainable, non_trainable, optimizer_values), start)
            train_metrics = jax.vmap(self._metric_result)(metrics)
            stats = jnp.stack([_weight_stats(jnp, w.reshape(M, -1)) for w in trainable], axis=1)
            val = jnp.full((M, 2 + len(self.metric_names)), jnp.nan, "float32")
            for who, idx in zip(val_plan, val_indices):
                part = take((trainable, non_trainable, coefficients), who)
                val = val.at[np.asarray(who)].set(check(*part, X[idx], Y[idx]))
            new_state = {"trainable": trainable, "non_trainable": non_trainable, "optimizer": optimizer_values,
                         "alive": ok}
            return new_state, sums, {k: train_metrics[k] for k in self.metric_names}, val, stats

        return jax.jit(epoch, donate_argnums=(0,))


def _weight_stats(jnp, flat):
    """(M, records.WEIGHT_STATS) of one weight with a leading member axis."""
    return jnp.stack([jnp.abs(flat).sum(axis=1), jnp.sqrt(jnp.square(flat).sum(axis=1)),
                      (flat == 0).sum(axis=1).astype(flat.dtype),
                      (jnp.abs(flat) < records.NEAR_ZERO).mean(axis=1).astype(flat.dtype)], axis=1)


# --- training a population ----------------------------------------------------------------------


def train_population(population: Population, data, training, validate: bool = True, order=default_order):
    """Train every member of `population` at once; each member's own model gets its final state.

    Returns ({member id: epoch records}, {member id: {weight path: final array}}, timing), the records in
    the format of `reglab.records` (as the reference engine's ledger writes them).
    """
    import jax.numpy as jnp

    members = population.members
    x_views, y_views, view_of = standardized_views(data, members, training.standardize)
    N = data.x.shape[0]
    X = jnp.asarray(x_views.reshape(-1, *x_views.shape[2:]))
    Y = jnp.asarray(y_views.reshape(-1, *y_views.shape[2:]))
    offsets = view_of.astype("int64") * N
    B = training.batch_size
    steps = segments([len(m.train) for m in members], B)
    val_sizes = [len(m.val) for m in members] if validate else []
    val_plan = [tuple(i for i, s in enumerate(val_sizes) if s == size) for size in dict.fromkeys(val_sizes)]
    val_indices = [jnp.asarray(np.stack([members[i].val + offsets[i] for i in who]).astype("int32")) for who in val_plan]

    def batch_indices(epoch):
        """Per segment (members, steps, batch): each member's next batches in its order of this epoch."""
        orders = [order(m, epoch) + offsets[i] for i, m in enumerate(members)]
        out, used = [], [0] * len(members)
        for segment in steps:
            rows = []
            for i in segment.members:
                size = segment.steps * segment.batch
                rows.append(orders[i][used[i]: used[i] + size].reshape(segment.steps, segment.batch))
                used[i] += size
            out.append(jnp.asarray(np.stack(rows).astype("int32")))
        return out

    program = Program(population, training, (x_views[0][:B], y_views[0][:B]))
    try:
        run = program.epoch_function(steps, val_plan, X, Y)
        return _train(program, run, members, training, validate, batch_indices, val_indices)
    finally:
        program.release()


def _train(program, run, members, training, validate, batch_indices, val_indices):
    import jax
    import jax.numpy as jnp

    M = len(members)
    state = jax.tree.map(jnp.asarray, program.initial)
    timing = {"epoch_seconds": [], "compile_seconds": 0.0, "members": M}
    rows = {m.id: [] for m in members}
    status = ["ok"] * M
    n = np.array([len(m.train) for m in members], "float64")
    decay = [program.settings.get("weight_decay", 0.0) if path in program.decay_targets else 0.0
             for path in program.paths]
    names = [t.name for t in program.terms] + program.activity
    compiled = None
    started = time.perf_counter()
    for epoch in range(training.epochs):
        t0 = time.perf_counter()
        coefficients = [jnp.asarray(term.at(epoch)) for term in program.terms]
        args = (state, coefficients, batch_indices(epoch), val_indices)
        if compiled is None:  # once per population: the points' values are arguments, not constants
            with per_member_on_cpu():  # the one batching rule: see reglab.engine.convolution
                compiled = run.lower(*args).compile()
            timing["compile_seconds"] = time.perf_counter() - t0
        state, sums, train_metrics, val, stats = compiled(*args)
        sums, val, stats, alive = (np.asarray(a, dtype="float64") for a in (sums, val, stats, state["alive"]))
        train_metrics = {k: np.asarray(v, dtype="float64") for k, v in train_metrics.items()}
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
                if decay[wi]:
                    row[records.column("decay", path)] = decay[wi] / 2 * stats[m, wi, 1] ** 2
            status[m] = records.status(row["train_total"] if alive[m] else math.nan, status[m])
            row["status"] = status[m]
            rows[member.id].append(row)
    timing["seconds"] = time.perf_counter() - started
    final = [np.asarray(w) for w in state["trainable"]]
    _write_back(program.population, final, [np.asarray(w) for w in state["non_trainable"]])
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
    from reglab.engine.reference import fold_arrays, with_identity

    *_, scaling = fold_arrays(data, member.train, member.val, training.standardize)
    started = time.perf_counter()
    populations, failed = plan_populations([member], make_model, probe=data.x[:1])
    if failed:
        return with_identity(pd.DataFrame([{"epoch": 0, "status": "failed", "error": failed[member.id]}]), member,
                             time.perf_counter() - started), None, scaling
    (population,) = populations
    records, _, _ = train_population(population, data, training, validate=validate)
    return with_identity(records[member.id], member, time.perf_counter() - started), population.models[0], scaling
