"""One population's compiled epoch: the template model's stateless step (Keras's own), vmapped over a
leading member axis, its penalties computed from per-member coefficients, scanned over the batch plan's
segments, with weight statistics, validation and the divergence check in the same program."""

from __future__ import annotations

import contextlib
from concurrent.futures import Future

import numpy as np

from reglab import _keras_private as private
from reglab.engine import basis, row_independence
from reglab.engine.batches import Plan
from reglab.engine.convolution import expected_calls
from reglab.engine.grouping import Population, Unsupported, built, signature
from reglab.engine.knobs import PerMember, Recorded, learning_rate_variable, penalty_terms, per_member_knobs
from reglab.kit import records
from reglab.kit.schedules import Scheduled
from reglab.search import points


def model_rows(models) -> dict:
    """The members' own models' variables stacked, a row per member: {"trainable", "non_trainable": [arrays]}."""
    return {
        part: [
            np.stack([np.asarray(v.value) for v in same])
            for same in zip(*(getattr(m, f"{part}_variables") for m in models))
        ]
        for part in ("trainable", "non_trainable")
    }


def penalized(models) -> list[set]:
    """Per model, the positions in `trainable_variables` of the weights it regularizes."""
    return [{i for i, v in enumerate(m.trainable_variables) if v.regularizer is not None} for m in models]


def decays(members) -> list[float]:
    """Per member, the decoupled weight decay its point asks of the optimizer (0 for none)."""
    return [points.optimizer_settings(m.point).get("weight_decay", 0.0) for m in members]


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
        if not built(template):
            raise Unsupported(f"model {template.name!r} has not created its weights (build it, or call it once)")
        settings = (training.loss, training.metrics, training.loss_weights)
        self.signature = signature(template, members[0].point)  # the architecture, penalties masked
        self.layers = private.layers(template)
        # what the program runs besides the layers (for `traces.sources`): the loss, metrics, penalties
        self.objects = [*settings, *(v.regularizer for v in template.trainable_variables)]
        self.objects += [getattr(layer, "activity_regularizer", None) for layer in self.layers]
        # what decides the answer of `row_independent`, where it can be written down (a loss or metric given
        # as an object has no stable text: probed each time)
        self.decided_by = (
            (self.signature, repr(settings))
            if all(isinstance(v, (str, int, float, list, tuple, dict, type(None))) for v in settings)
            and " at 0x" not in repr(settings)
            else None
        )
        self.paths = [v.path for v in template.trainable_variables]
        initial = model_rows(models)
        # the weights each member's own model regularizes, and those whose two gradients the epoch measures
        self.penalized = penalized(models)
        self.measured = sorted(set().union(*self.penalized)) if training.gradients else []
        # The template is member 0's own model, changed while the program is traced and put back by
        # `release()`: the members' weight penalties are computed by `_penalties`, not by Keras.
        self._undo = []
        for variable in template.trainable_variables:
            self._undo.append((variable, "regularizer", variable.regularizer))
            variable.regularizer = None
        self.sink = []
        self.rows = [None]  # the weights of the batch being traced, if padded (see `Recorded`)
        self.activity = []
        for layer in private.layers(template):
            if getattr(layer, "activity_regularizer", None) is not None:
                if isinstance(layer.activity_regularizer, Scheduled):
                    self.release()
                    raise Unsupported(f"a scheduled activity penalty on layer {layer.name!r}")
                name = f"{layer.name}/activity"
                self._undo.append((layer, "activity_regularizer", layer.activity_regularizer))
                layer.activity_regularizer = Recorded(layer.activity_regularizer, name, self.sink, self.rows)
                self.activity.append(name)
        from reglab.engine.training import compile_metrics, make_optimizer

        point = members[0].point
        try:
            template.compile(
                optimizer=make_optimizer(training, point, template),
                loss=training.loss,
                loss_weights=training.loss_weights,  # metrics weighted: padding rows count 0
                weighted_metrics=compile_metrics(training.metrics),
            )
            x_probe, y_probe = data_shapes
            private.symbolic_build(template, x_probe, y_probe)  # builds the loss, metrics and optimizer
        except Exception:
            self.release()
            raise
        self.template = template
        optimizer = template.optimizer
        initial["optimizer"] = [np.stack([np.asarray(v.value)] * self.M) for v in optimizer.variables]
        optimizers = [make_optimizer(training, m.point, model) for m, model in zip(members, models)]
        self.knobs = per_member_knobs(template, models, optimizers)
        self.training, self.optimizers = training, optimizers  # for members admitted later (`extend`)
        rate = learning_rate_variable(optimizer)
        if rate is not None:  # a point's learning rate: the member's value of the optimizer's variable
            index = next(i for i, v in enumerate(optimizer.variables) if v is rate)
            initial["optimizer"][index] = np.array([np.asarray(learning_rate_variable(o).value) for o in optimizers])
        self.metric_start = [np.asarray(v.value) for v in template.metrics_variables]
        names = jax.eval_shape(self._metric_result, self.metric_start)  # traced, not run: eager ops compile one by one
        self.metric_names = [name for name in names if name != "loss"]
        initial["alive"] = np.ones(self.M, bool)
        self.initial = initial
        self.decay = decays(members)
        self.decay_targets = set(points.optimizer_targets(template)) if any(self.decay) else set()

    @contextlib.contextmanager
    def penalties_on(self):
        """The template's own weight penalties back on while inside (they are off while its program lives)."""
        taken = [(owner, value) for owner, attribute, value in self._undo if attribute == "regularizer"]
        for variable, regularizer in taken:
            variable.regularizer = regularizer
        try:
            yield
        finally:
            for variable, _ in taken:
                variable.regularizer = None

    def release(self):
        """Give the template model its own penalties back (the compiled program no longer needs them)."""
        for owner, attribute, value in reversed(self._undo):
            setattr(owner, attribute, value)
        self._undo = []

    # one member, no member axis: vmapped below

    def _metric_result(self, metric_values):
        return private.metrics_result(self.template, metric_values)

    def values(self, epoch: int, members=slice(None)) -> dict:
        """What the members' points set, as host arrays with a member axis (`members`: a slice, or one
        member's position for its values alone): the penalty coefficients in `epoch` and the per-member
        numbers (`knobs`)."""
        return {
            "terms": [term.at(epoch)[members] for term in self.terms],
            "knobs": [knob.values[members] for knob in self.knobs],
        }

    @contextlib.contextmanager
    def _per_member(self, coefficients):
        """While tracing: each knob's attribute is the member's traced value (`PerMember`)."""
        saved = [(knob.owner, knob.attribute, getattr(knob.owner, knob.attribute)) for knob in self.knobs]
        try:
            for knob, value in zip(self.knobs, coefficients["knobs"]):
                setattr(knob.owner, knob.attribute, PerMember(value, knob.values.tolist(), knob.asked))
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
                y_pred, non_trainable, losses = template.stateless_call(
                    trainable, non_trainable, x, training=training, return_losses=True
                )
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
        pred, (_, _, metrics) = template.stateless_compute_loss(
            trainable, non_trainable, metrics, x=x, y=y, y_pred=y_pred, sample_weight=sample_weight, training=training
        )
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
        _, metrics_new = private.update_metrics_variables(self.template, metrics_new, total, x, y, y_pred, weight)
        numbers = self.jnp.stack([pred, penalty, *terms]) if terms else self.jnp.stack([pred, penalty])
        return grads, numbers, y_pred, non_trainable_new, metrics_new

    def _member_step(self, state, coefficients, x, y, weight=None, ragged=False):
        trainable, non_trainable, optimizer_values, metrics = state
        grads, numbers, _, non_trainable_new, metrics_new = self._gradient(
            trainable, non_trainable, metrics, coefficients, x, y, weight
        )
        with self._per_member(coefficients):
            trainable_new, optimizer_new = self.template.optimizer.stateless_apply(optimizer_values, grads, trainable)
        new = (trainable_new, non_trainable_new, optimizer_new, metrics_new)
        if ragged:  # a member with no rows left this epoch takes no step (Adam's moments must not decay)
            moving = weight.sum() > 0
            new = self.jax.tree.map(lambda n, o: self.jnp.where(moving, n, o), new, state)
        return new, numbers

    def _member_validate(self, trainable, non_trainable, coefficients, x, y, weight=None):
        metrics = [self.jnp.asarray(v) for v in self.metric_start]
        total, (pred, penalty, _, y_pred, _, metrics) = self._forward(
            trainable, non_trainable, metrics, x, y, coefficients, False, weight
        )
        _, metrics = private.update_metrics_variables(self.template, metrics, total, x, y, y_pred, weight)
        result = self._metric_result(metrics)
        return self.jnp.stack([pred, penalty, *(result[name] for name in self.metric_names)])

    def _member_gradients(self, trainable, non_trainable, coefficients, x, y, weight=None):
        """Seed 004's two gradients of one member on its fixed batch, per measured weight (`measured`):
        (‖∇L‖, ‖∇R‖, ∇L·∇R) — L the prediction loss (mean over the real rows, `weight` 0 for padding; inference
        mode, as `reglab.kit.gradients` measures it in `fit`), R the member's penalty on that weight at this
        epoch's λ."""
        jax, jnp = self.jax, self.jnp
        metrics = [jnp.asarray(v) for v in self.metric_start]

        def data(trainable):
            return self._forward(trainable, non_trainable, metrics, x, y, coefficients, False, weight)[1][0]

        def penalty(trainable):
            terms = self._penalties(trainable, coefficients)
            return sum(terms[1:], terms[0]) if terms else jnp.zeros(())

        g, r = jax.grad(data)(trainable), jax.grad(penalty)(trainable)
        out = []
        for i in self.measured:
            gi, ri = g[i].ravel(), r[i].ravel()
            out.append(jnp.stack([jnp.sqrt(gi @ gi), jnp.sqrt(ri @ ri), gi @ ri]))
        return jnp.stack(out)

    def _validate_blocks(self, trainable, non_trainable, coefficients, X, Y, cohort, keys):
        """`_member_validate` of a cohort over its validation rows in blocks (`keys`: one per block, whose
        rows and weights `X.validation_batch` makes on the host), the metrics accumulated over the blocks
        as `evaluate` accumulates them over batches, the losses averaged over the real rows."""
        jax, jnp = self.jax, self.jnp

        def member(trainable, non_trainable, coefficients, metrics, x, y, weight):
            total, (pred, penalty, _, y_pred, _, metrics) = self._forward(
                trainable, non_trainable, metrics, x, y, coefficients, False, weight
            )
            _, metrics = private.update_metrics_variables(self.template, metrics, total, x, y, y_pred, weight)
            rows = weight.sum()
            return metrics, jnp.stack([pred * rows, penalty * rows, rows])

        block = jax.vmap(member)

        count = len(X.batches.plan.validation[cohort][0])
        shape = (count, X.batches.validation_blocks[cohort])

        def body(carry, key):
            metrics, sums = carry
            x, idx, w = X.validation_batch(cohort, key, shape)
            metrics, numbers = block(trainable, non_trainable, coefficients, metrics, x, take_rows(Y, idx), w)
            return (metrics, sums + numbers), None

        metrics = [jnp.broadcast_to(jnp.asarray(v), (count, *np.shape(v))) for v in self.metric_start]
        start = (metrics, jnp.zeros((count, 3), "float32"))
        (metrics, sums), _ = jax.lax.scan(body, start, keys)
        result = jax.vmap(self._metric_result)(metrics)
        losses = sums[:, :2] / jnp.maximum(sums[:, 2:], 1.0)
        named = [jnp.reshape(result[name], (count, 1)) for name in self.metric_names]
        return jnp.concatenate([losses, *named], axis=1)

    def row_independent(self, x, y) -> tuple[bool, bool]:
        """Whether this model's training step, and its evaluation, on a batch padded with weight-0 rows
        give its real rows what `fit` gives them on the real rows alone: (training, evaluation). Checked,
        not assumed — once, on member 0's initial state and the rows `x`, with two different paddings.
        A layer that mixes rows (BatchNormalization's batch statistics) makes it False; then partial
        batches get steps of their own shape. (Dropout passes: JAX's threefry draws each element from its
        position in the array; activity penalties count the real rows only, see `Recorded`.)"""
        return self.row_independence(x, y).result()

    def row_independence(self, x, y, pool=None) -> Future:
        """`row_independent` as a future (`reglab.engine.row_independence.probe`)."""
        return row_independence.probe(self, x, y, pool)

    def epoch_function(self, plan: Plan, host_rows=None, epochs: int = 1):
        """The jitted epoch of a shard of `plan.size` members: (state, coefficients, per-segment batch
        indices and weights, per-cohort validation indices and weights, the two gradients' fixed batches,
        data) -> (state, training sums, training metrics, validation numbers, weight statistics, gradients).
        Weights are None where batches are not padded. The fixed batches: (each member's row indices (M, rows),
        or with `host_rows` the rows themselves ((M, rows, …) features, (M, rows, …) targets); their weights or
        None), or None (not measured: gradients (M, 0, 3)). `epochs`: how many times it will run (what a convolution's batching is chosen for).
        `data`: (features, targets) on the device — arguments, not constants, so that the compiled program
        depends on the data's shapes only (closed over, JAX embeds them as constants: another dataset of the
        same shapes, or other folds when standardizing, compiled the epoch again, 0.9 s) —, or (None, targets) with
        `host_rows`, a `HostRows` (features on disk) that a step asks for its batch: the batch and
        validation "indices" are then keys (shard, epoch, step) and (shard, block), the weights None
        (`reglab.engine.streaming.Batches`)."""
        jax, jnp = self.jax, self.jnp
        M, segment_plan, val_plan = plan.size, plan.segments, plan.validation
        width = 2 + len(self.terms) + len(self.activity)
        streamed = host_rows is not None  # features on disk (`reglab.engine.streaming.HostRows`)
        check = jax.vmap(self._member_validate)

        def take(tree, who):
            return tree if len(who) == M else jax.tree.map(lambda a: a[np.asarray(who)], tree)

        def put(tree, who, part):
            return part if len(who) == M else jax.tree.map(lambda a, b: a.at[np.asarray(who)].set(b), tree, part)

        def epoch(state, coefficients, batch_indices, batch_weights, val_indices, val_weights, fixed, data):
            X, Y = (host_rows, data[1]) if streamed else data
            start = (state["trainable"], state["non_trainable"], state["optimizer"])
            metrics = [jnp.broadcast_to(jnp.asarray(v), (M, *np.shape(v))) for v in self.metric_start]
            carry = (*start, metrics)
            sums = jnp.zeros((M, width), "float32")
            for number, (segment, idx, weight) in enumerate(zip(segment_plan, batch_indices, batch_weights)):
                part, coef = take(carry, segment.members), take(coefficients, segment.members)
                step = jax.vmap(lambda s, c, x, y, w, ragged=segment.ragged: self._member_step(s, c, x, y, w, ragged))

                def body(inner, step_input, coef=coef, step=step, number=number, segment=segment):
                    if streamed:  # the step's rows and weights, made on the host (`streaming.Batches`)
                        x, step_idx, step_weight = X.batch(number, step_input, (len(segment.members), segment.batch))
                        step_weight = step_weight if segment.padded else None
                    else:
                        step_idx, step_weight = step_input
                        x = take_rows(X, step_idx)
                    inner, numbers = step(inner, coef, x, take_rows(Y, step_idx), step_weight)
                    rows = step_weight.sum(axis=1) if step_weight is not None else segment.batch
                    return inner, numbers * jnp.reshape(rows, (-1, 1))

                inputs = (
                    idx
                    if streamed
                    else (jnp.swapaxes(idx, 0, 1), None if weight is None else jnp.swapaxes(weight, 0, 1))
                )
                with expected_calls(segment.steps * epochs):
                    part, numbers = jax.lax.scan(body, part, inputs)
                carry = put(carry, segment.members, part)
                sums = sums.at[np.asarray(segment.members)].add(numbers.sum(axis=0))
            trainable, non_trainable, optimizer_values, metrics = carry
            stats = weight_stats(jnp, trainable)  # of the weights reached, as the ledger records a diverged epoch
            ok = state["alive"] & jnp.isfinite(sums).all(axis=1) & jnp.isfinite(stats[:, :, 0]).all(axis=1)

            def keep(new, old):  # a member that stopped being finite goes back to its state at the epoch's start
                return jax.tree.map(lambda n, o: jnp.where(ok.reshape((M,) + (1,) * (n.ndim - 1)), n, o), new, old)

            trainable, non_trainable, optimizer_values = keep((trainable, non_trainable, optimizer_values), start)
            train_metrics = jax.vmap(self._metric_result)(metrics)
            val = jnp.full((M, 2 + len(self.metric_names)), jnp.nan, "float32")
            for cohort, ((who, _, _), idx, weight) in enumerate(zip(val_plan, val_indices, val_weights)):
                part = take((trainable, non_trainable, coefficients), who)
                # validation: one forward pass an epoch over a whole fold, whose measurement would cost
                # seconds (a keras-io convnet: ~20 s): never measured, `map` (see reglab.engine.convolution)
                with expected_calls(0):
                    if streamed:  # in blocks of rows, each read from the host when its turn comes
                        numbers = self._validate_blocks(*part, X, Y, cohort, idx)
                    else:
                        numbers = check(*part, take_rows(X, idx), take_rows(Y, idx), weight)
                    val = val.at[np.asarray(who)].set(numbers)
            grads = jnp.zeros((M, 0, 3), "float32")
            if self.measured:  # at the epoch's end weights (those of a member that diverged: its last finite ones)
                rows, weight = fixed
                gx, gy = rows if streamed else (take_rows(X, rows), take_rows(Y, rows))
                with expected_calls(0):  # one pass an epoch, as validation
                    grads = jax.vmap(self._member_gradients)(trainable, non_trainable, coefficients, gx, gy, weight)
            new_state = {
                "trainable": trainable,
                "non_trainable": non_trainable,
                "optimizer": optimizer_values,
                "alive": ok,
            }
            return new_state, sums, {k: train_metrics[k] for k in self.metric_names}, val, stats, grads

        return jax.jit(epoch, donate_argnums=(0,))


def take_rows(tree, index):
    """The rows `index` of every array of a pytree (the data's inputs or outputs, a state, coefficients)."""
    import jax

    return jax.tree.map(lambda a: a[index], tree)


def weight_stats(jnp, weights):
    """(M, weights, records.WEIGHT_STATS) of weights with a leading member axis. One reduction per weight
    (of its four quantities stacked), not four: reductions are what XLA on CPU is slowest to compile.
    A weight's L1 norm is finite exactly when all its entries are (or their sum overflows float32)."""
    out = []
    for w in weights:
        flat = w.reshape(w.shape[0], -1)
        size = jnp.abs(flat)
        totals = jnp.stack(
            [size, flat * flat, (flat == 0).astype(flat.dtype), (size < records.NEAR_ZERO).astype(flat.dtype)], axis=-1
        ).sum(axis=1)
        out.append(
            jnp.stack([totals[:, 0], jnp.sqrt(totals[:, 1]), totals[:, 2], totals[:, 3] / flat.shape[1]], axis=1)
        )
    return jnp.stack(out, axis=1)
