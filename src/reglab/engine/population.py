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
Keras's Python numbers (`reglab.engine.knobs.PerMember`). Anything else that differs between members — the
architecture, a custom regularizer's configuration — makes a separate population (`reglab.engine.grouping.signature`).

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

The pieces: `grouping` (members → populations), `knobs` (per-member values), `program` (the compiled
epoch), `batches` (the batch plan and shards), `checkpoints` (the saved payload), `parts` (a population
trained in parts), `slots` (members taking turns in a population's slots); this module drives them.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import keras
import numpy as np

from reglab import _keras_private as private
from reglab.engine import admission, compile_cache, streaming, traces
from reglab.engine.batches import Plan, default_order, pad, plan_shard, shard, shard_count, standardized_views
from reglab.engine.checkpoints import (
    Checkpoints,
    Interrupted,
    checkpoint_key,
    describe_late,
    gather,
    late_members,
    payload_meta,
    resume_seating,
    resume_state,
    save_state,
)
from reglab.engine.convolution import remember
from reglab.engine.grouping import Population, Unsupported, plan_populations, unavailable
from reglab.engine.parts import Untraceable, in_parts
from reglab.engine.program import Program, take_rows
from reglab.engine.slots import Board, Slots, finish, hand_on, running, seated_values
from reglab.engine.training import error_line
from reglab.kit import records

__all__ = ["Population", "Program", "Unsupported", "plan_populations", "train_population", "unavailable"]


def train_population(
    population: Population,
    data,
    training,
    validate: bool = True,
    order=default_order,
    checkpoints: Checkpoints | None = None,
    slots: Slots | None = None,
):
    """Train every member of `population` at once; each member's own model gets its final state.

    Returns ({member id: epoch records}, {member id: {weight path: final array}}, timing), the records in
    the format of `reglab.kit.records` (as the reference engine's ledger writes them). A population whose
    layers need one of its per-member numbers as a Python number trains as one population per value.
    With `checkpoints`, the whole state (weights, optimizer slots, non-trainable and random state, the
    records so far) is saved at epoch boundaries and a population that finds its checkpoint continues
    from it: the result is bit-identical to an uninterrupted run (test). With `slots`
    (`reglab.engine.slots`), the members train `slots.size` at a time, a slot handed on at epoch boundaries;
    only the members that took a slot have records and weights; with `checkpoints` too (a scheduler with
    `state` and `restore`), the slots and the scheduler's memory are saved and resumed with the state.
    """
    compile_cache.use()
    if slots is not None:
        if checkpoints is not None and (slots.state is None or slots.restore is None):
            raise ValueError(
                f"Slots checkpoint with a scheduler's `state` and `restore`. Received: slots={slots!r}, "
                f"checkpoints={checkpoints!r}"
            )
        return _train_population(population, data, training, validate, order, checkpoints, slots)
    return in_parts(population, lambda part: _train_population(part, data, training, validate, order, checkpoints))


@dataclass
class _Schedule:
    """How a population runs: its shards' plan, (member positions, validation indices) per shard, and
    the epoch program, lowered (its tracing began at `started`)."""

    plan: Plan
    shards: list
    lowered: object
    started: float
    convolutions: dict  # how each convolution's members are batched, and the figures it was chosen on
    arrays: tuple  # the data on the device, the program's last argument: (features or None if on disk, targets)
    trace: str  # "read" (from the disk, `reglab.engine.traces`) or "traced"


def _train_population(population, data, training, validate, order, checkpoints=None, slots=None):
    import jax

    members = population.members
    board = Board(members, slots.size, training.epochs) if slots is not None else None
    seats = members[: slots.size] if slots is not None else members  # whose rows each slot's rows are
    M = len(seats)
    x_views, y_views, view_of = standardized_views(data, members, training.standardize)
    N = len(data)
    on_disk = streaming.streamed(data.x)  # the features stay on the host: `x_views` reads them as asked
    if on_disk and order is default_order:
        order = streaming.ChunkedOrder(N, data.x.chunk_rows)
    # host copies for the padding probe; `device_put`, not `jnp.asarray`, which compiles a copy per shape
    host = [
        views if views is x_views and on_disk else jax.tree.map(lambda a: a.reshape(-1, *a.shape[2:]), views)
        for views in (x_views, y_views)
    ]
    X, Y = (host[0], jax.device_put(host[1])) if on_disk else jax.device_put(host)
    arrays = (None if on_disk else X, Y)  # the epoch program's last argument (`Program.epoch_function`)
    offsets = view_of.astype("int64") * N
    B = training.batch_size
    train_sizes = [len(m.train) for m in seats]
    val_sizes = [len(m.val) for m in seats] if validate else [0] * M
    probe = (x_views(np.arange(B)) if on_disk else jax.tree.map(lambda a: a[0][:B], x_views), take_rows(y_views, 0))
    program = Program(population, training, (probe[0], jax.tree.map(lambda a: a[:B], probe[1])))
    # members taking turns (slots) run in more, smaller shards: those left with no member training do not run
    count = shard_count() * (4 if board is not None else 1)
    payload = checkpoints.load(checkpoint_key(members)) if checkpoints is not None else None
    if payload is not None:  # a resumed population batches its convolutions as it did before it stopped
        remember(payload_meta(payload).get("convolutions", {}))
    pool = ThreadPoolExecutor(max(count, 2))  # the shards; the padding probe's compilation
    try:

        def schedule(padded):
            """How the population runs with `padded` = (training, evaluation) batches padded: its shards,
            their plan and validation indices, and the epoch program, lowered."""
            cuts = shard(train_sizes, val_sizes, B, *padded, count=count, smallest=4)
            plan = plan_shard(
                [train_sizes[i] for i in cuts[0]], [val_sizes[i] for i in cuts[0]], B, *padded, max(val_sizes)
            )
            if on_disk:  # the batches are made on the host as the steps ask for them
                blocks = [min(length, X.validation_block(len(who))) for who, length, _ in plan.validation]
                X.batches = streaming.Batches(members, cuts, plan, order, offsets, blocks if validate else [])
            shards = [(cut, jax.device_put(validation(plan, cut))) for cut in cuts]
            run = program.epoch_function(plan, X if on_disk else None, training.epochs)
            started = time.perf_counter()
            rows = np.asarray(cuts[0])
            first = (
                take_rows(program.initial, rows),
                take_rows(program.values(0), rows),
                *batch_indices(plan, 0, cuts[0]),
            )
            args = (*first, *shards[0][1], arrays)
            # kept on disk, but for a resumed population: it batches its convolutions as it did before it stopped
            kept = None if on_disk or payload is not None else traces.key(program, training, plan, padded, args)
            try:  # once per population (the points' values are arguments, not constants), or read back
                asked = [knob.asked for knob in program.knobs]  # read back: the questions its trace asked
                lowered, convolutions, how = traces.lower(run, args, kept, not on_disk, training.epochs, asked)
            except Exception:
                if not program.knobs or board is not None:
                    raise
                values = [tuple(float(knob.values[m]) for knob in program.knobs) for m in range(M)]
                raise Untraceable([[m for m in range(M) if values[m] == v] for v in dict.fromkeys(values)]) from None
            return _Schedule(plan, shards, lowered, started, convolutions, arrays, how)

        def validation(plan, cut):
            """Per cohort of the shard `cut`: its members' validation indices and, if padded, weights; and the
            two gradients' fixed batches (`fixed`)."""
            if on_disk:  # per cohort, its blocks' keys (shard, block): `streaming.Batches.validation` makes them
                n = X.batches.cuts.index(cut)
                keys = [
                    np.array([[n, b] for b in range(-(-length // block))], "int32")
                    for (_, length, _), block in zip(plan.validation if validate else (), X.batches.validation_blocks)
                ]
                return keys, [None] * len(keys), fixed(cut)
            val_sets = [seats[i].val + offsets[i] for i in cut]
            out = []
            for who, length, padded in plan.validation if validate else ():
                if padded:
                    out.append(pad([val_sets[i] for i in who], length))
                else:
                    out.append((np.stack([val_sets[i] for i in who]).astype("int32"), None))
            return [idx for idx, _ in out], [weight for _, weight in out], fixed(cut)

        def fixed(cut):
            """The two gradients' fixed batch of each member of `cut`: the first rows of its training fold (its
            slot's fold, with slots) — (their indices, or with the features on disk the rows, and weights: None, or
            0 for the padding of a fold with fewer rows than the others; `Program.epoch_function`)."""
            if not program.measured:
                return None
            idx, weight = pad([seats[i].train[: training.gradients] + offsets[i] for i in cut])
            weight = None if weight.all() else weight
            if not on_disk:
                return idx, weight
            return (np.stack([x_views(r) for r in idx]), take_rows(host[1], idx)), weight

        def batch_indices(plan, epoch, cut):
            """Per segment of the shard `cut` (members, steps, batch): each member's next batches in its
            order of this epoch, and for a padded segment their weights (1 for a real row)."""
            if on_disk:  # per segment, its steps' keys (shard, epoch, step): `streaming.Batches.training` makes them
                n = X.batches.cuts.index(cut)
                keys = [np.array([[n, epoch, t] for t in range(s.steps)], "int32") for s in plan.segments]
                return keys, [None] * len(keys)
            who = [(board.latest[i], board.local(i, epoch)) if board else (i, epoch) for i in cut]
            # the slot's offset: its members share its rows (and one admitted later has none of its own)
            orders = [order(members[m], own) + offsets[i] for (m, own), i in zip(who, cut)]
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
                    rows.append(orders[i][used[i] : used[i] + size].reshape(segment.steps, segment.batch))
                    used[i] += size
                out.append(np.stack(rows).astype("int32"))
                weights.append(None)
            return out, weights

        # One step body for every batch where the model allows padding (compiles once, not once per
        # partial-batch shape), and one evaluation for validation folds of different sizes. Whether it
        # does is checked (`row_independent`, compiling in a thread) while the epoch is traced on a
        # guess — padded, which most models allow; BatchNormalization's batch statistics allow it for
        # evaluation only —; if the guess was wrong, that trace is thrown away.
        if len({s % B for s in train_sizes} - {0}) > 0 or len(set(val_sizes)) > 1 or (on_disk and validate):
            rows = seats[0].train[:B] + offsets[0]
            answer = program.row_independence(*(jax.tree.map(lambda a: a[rows], v) for v in host), pool=pool)
            if on_disk and validate and not answer.result()[1]:
                raise Unsupported(
                    "validation in blocks of rows: this model's evaluation of a row depends on the others"
                )
            mixes_rows = any(
                isinstance(layer, keras.layers.BatchNormalization) for layer in private.layers(program.template)
            )
            guess = (not mixes_rows, True)
            chosen = schedule(guess)
            if answer.result() != guess:
                chosen = schedule(answer.result())
        else:
            chosen = schedule((False, False))
        return _train(
            program,
            chosen,
            members,
            training,
            validate,
            lambda epoch, cut: batch_indices(chosen.plan, epoch, cut),
            pool,
            checkpoints,
            payload,
            (slots, board),
        )
    finally:
        pool.shutdown(wait=False, cancel_futures=True)
        program.release()


def _train(
    program, schedule, members, training, validate, batch_indices, pool, checkpoints=None, payload=None, seating=None
):
    import jax

    slots, board = seating or (None, None)
    M = len(members)
    S = slots.size if slots is not None else M  # the state's rows: one per slot (per member without slots)
    shards = schedule.shards
    state = program.initial
    timing = {
        "epoch_seconds": [],
        "compile_seconds": 0.0,
        "members": M,
        "shards": len(shards),
        "convolutions": schedule.convolutions,
        f"{schedule.trace}_epochs": 1,  # how many epoch programs were traced, how many read back (`traces`)
    }
    rows = {m.id: [] for m in members}
    status = ["ok"] * M
    M0 = M  # the members it starts with; those admitted during training come after them
    if board is not None:
        board.rows = rows  # what `decide` judges the members on
    first = 0
    key = checkpoint_key(members)
    finals = {}  # with slots: member position -> its state when it stopped

    def admit(new) -> str | None:
        """Members `decide` planned during training (`slots.hand_on`): built, then appended to the program."""
        if program.population.build is None:
            return "this population cannot build models (it was not planned by `plan_populations`)"
        try:
            models = [program.population.build(member) for member in new]
        except Exception as error:
            return error_line(error)
        refusal = admission.extend(program, new, models)
        if refusal is None:
            status.extend(["ok"] * len(new))
            rows.update({member.id: [] for member in new})
        return refusal

    # members admitted before the checkpoint (a sampler's trials) are admitted again, in order, before it is read
    late = late_members(payload, members) if payload and board is not None else []
    if late and admit(late) is not None:
        late = None  # not admitted this time: trained again from the start
    resumed = resume_state(program, members, payload, S if board is not None else None) if late is not None else None
    if resumed is not None:
        state, rows, status, first = resumed
        if board is not None:  # the slots as they were at that boundary, before it was decided
            seating = resume_seating(payload)
            board.restore(seating["board"])
            finals, board.rows = seating["finals"], rows
            slots.restore(seating["scheduler"])
    # each shard's state lives on the device from here on; joined only to be saved or written back
    states = [jax.device_put(take_rows(state, np.asarray(cut))) for cut, _ in shards]
    if resumed is not None and board is not None:  # the boundary it stopped at, decided now
        states = hand_on(slots, board, first, states, [cut for cut, _ in shards], program.initial, finals, admit)

    decays = [path in program.decay_targets for path in program.paths]
    names = [t.name for t in program.terms] + program.activity
    compiled = schedule.lowered.compile()
    timing["compile_seconds"] = time.perf_counter() - schedule.started
    started = last_save = time.perf_counter()
    save_cost = 0.0
    numbers = [None] * len(shards)  # each shard's last numbers (a shard that did not run keeps them: never recorded)
    epoch = first
    while board.busy(epoch) if board is not None else epoch < training.epochs:
        t0 = time.perf_counter()
        coefficients = program.values(epoch) if board is None else seated_values(program.values, board, epoch)
        # with slots, a shard whose slots are all empty does not run: it keeps its last numbers, never recorded
        active = range(len(shards)) if board is None else running(board, epoch, [cut for cut, _ in shards])
        calls = [
            jax.device_put((take_rows(coefficients, np.asarray(cut)), *batch_indices(epoch, cut))) + tuple(validation)
            for cut, validation in (shards[k] for k in active)
        ]
        if len(calls) == 1:
            ran = [compiled(states[active[0]], *calls[0], schedule.arrays)]
        else:  # in threads of their own: JAX runs programs dispatched from one thread one after another
            ran = list(
                pool.map(
                    lambda args: jax.block_until_ready(compiled(*args, schedule.arrays)),
                    [(states[k], *call) for k, call in zip(active, calls)],
                )
            )
        for k, out in zip(active, ran):  # each shard's numbers on the host, converted once
            states[k] = out[0]
            numbers[k] = [np.asarray(a, dtype="float64") for a in (out[1], out[3], out[4], out[0]["alive"], out[5])]
            numbers[k] += [np.asarray(out[2][name], dtype="float64") for name in program.metric_names]
        for k, (cut, _) in enumerate(shards):  # a shard that has not run since a resume: slots with no member training
            if numbers[k] is None:
                numbers[k] = [np.full((len(cut), *a.shape[1:]), np.nan) for a in numbers[active[0]]]
        joined = [np.concatenate(parts)[:S] for parts in zip(*numbers)]
        sums, val, stats, alive, grads = joined[:5]
        train_metrics = dict(zip(program.metric_names, joined[5:]))
        timing["epoch_seconds"].append(time.perf_counter() - t0)
        for s in range(S):  # slot s's numbers are its member m's, in the member's own epoch `own`
            m, own = (board.occupant[s], board.local(s, epoch)) if board is not None else (s, epoch)
            if m is None or own >= training.epochs or status[m] == "diverged":
                continue
            metrics = {f"train_{name}": train_metrics[name][s] for name in program.metric_names}
            if validate:
                metrics.update({f"val_{name}": val[s, 2 + k] for k, name in enumerate(program.metric_names)})
            weights = {path: stats[s, wi] for wi, path in enumerate(program.paths)}
            n = len(members[m].train)
            row = records.epoch_row(
                own + 1,
                (sums[s, 0] / n, sums[s, 1] / n, None),
                (val[s, 0], val[s, 1], None) if validate else None,
                metrics,
                {name: sums[s, 2 + t] / n for t, name in enumerate(names)},
                {
                    term.name: np.float32(term.schedules[m](own))
                    for term in program.terms
                    if term.schedules[m] is not None
                },
                weights,  # decay as the ledger's `decay_terms`
                {
                    path: program.decay[m] / 2 * stats[s, wi, 1] ** 2
                    for wi, path in enumerate(program.paths)
                    if decays[wi]
                },
                {  # the weights the member's own model regularizes, as `fit`'s ledger measures them
                    program.paths[wi]: grads[s, j]
                    for j, wi in enumerate(program.measured)
                    if wi in program.penalized[m]
                },
                previous=status[m],
                finite=bool(alive[s]),
            )
            status[m] = row["status"]
            rows[members[m].id].append(row)
        # members taking turns: saved at any boundary (before it is decided; a resumed population decides it)
        if checkpoints is not None and (epoch + 1 < training.epochs or board is not None):
            stop = checkpoints.stop()
            now = time.perf_counter()
            if stop or now - last_save >= max(checkpoints.seconds, 20 * save_cost):
                seating = None
                if board is not None:
                    seating = {"board": board.state(), "scheduler": slots.state(), "finals": finals}
                    seating["late"] = describe_late(members[M0:], members[:M0])
                save_state(
                    checkpoints,
                    key,
                    gather(states, S),
                    members,
                    rows,
                    status,
                    epoch + 1,
                    schedule.convolutions,
                    seating,
                )
                last_save = time.perf_counter()
                save_cost = last_save - now
            if stop:
                raise Interrupted(epoch + 1, training.epochs)
        epoch += 1
        if board is not None:
            states = hand_on(slots, board, epoch, states, [cut for cut, _ in shards], program.initial, finals, admit)
    timing["seconds"] = time.perf_counter() - started
    state = gather(states, S)
    if board is not None:  # each member that took a slot, in its state when it stopped (or now)
        who, state = finish(board, state, finals, rows, status)
        members = [members[m] for m in who]
    final = state["trainable"]
    _write_back(program.population, final, state["non_trainable"], list(range(M)) if board is None else who)
    weights = {
        member.id: {path: final[wi][m] for wi, path in enumerate(program.paths)} for m, member in enumerate(members)
    }
    out = {member.id: records.frame(rows[member.id]) for member in members}
    return out, weights, timing


def _write_back(population: Population, trainable, non_trainable, positions) -> None:
    """Give the members at `positions` their own Keras model's final state (weights, BatchNormalization
    statistics, seeds); row k of the arrays is position k's."""
    for k, m in enumerate(positions):
        model = population.models[m]
        for variable, values in zip(model.trainable_variables, trainable):
            variable.assign(values[k])
        for variable, values in zip(model.non_trainable_variables, non_trainable):
            variable.assign(values[k])
