"""Engines train members and give back their epoch rows (`reglab.kit.records.epoch_row`); the rest of
reglab never cares which ran. `train` is the one entry point (the sweep's members, the refit).

Owns: `training` (settings, a fold's arrays, optimizer, compile — both engines'), `reference` (one
`model.fit` per member, any backend), the population engine (`population` drives `grouping`, `knobs`,
`program`, `batches`, `checkpoints`, `convolution`, `basis`). May import `reglab.kit`, `reglab.search`
and `reglab.data`; never `decide`, `show`, the store or the sweep.
"""

from __future__ import annotations

import time

ENGINES = ("population", "reference")


def train(
    members,
    data,
    training,
    make_model,
    *,
    engine: str = "population",
    executor=None,
    validate: bool = True,
    checkpoints=None,
    stop=None,
    done=None,
    slots=None,
) -> dict:
    """Train `members` (`reglab.search.plan.Member`) on `data` with `training`
    (`reglab.engine.training.Training`), each model built by `make_model(point)`.

    `engine`: "population" (every member of an architecture in one compiled program; Keras's JAX
    backend) or "reference" (one `model.fit` per member). `executor`: where populations train
    (`reglab.engine.executors`: `Local()`, the default, or `Processes(workers)`, JAX worker processes —
    any backend's caller). `checkpoints`
    (`reglab.engine.checkpoints.Checkpoints`): the population engine saves and resumes its state at
    epoch boundaries. `stop()`: asked between members (reference) — the population engine asks its
    checkpoints' — and `reglab.engine.checkpoints.Interrupted` is raised when it says so. `done(member,
    trained)`: called as each member finishes (the sweep stores it at once). `slots(members)`: each
    population's `reglab.engine.slots.Slots` (its members take turns in its slots; successive halving), in
    this process only.

    Returns `{"members": {member id: Trained}, "timing": {...}}` (`reglab.engine.training.Trained`;
    the population engine's timing: members, shards, compile and epoch seconds, convolutions).
    """
    if engine not in ENGINES:
        raise ValueError(f"`engine` is one of {ENGINES}. Received: engine={engine!r}")
    done = done or (lambda member, trained: None)
    out = {}
    if engine == "reference":
        from reglab.engine import reference
        from reglab.engine.checkpoints import Interrupted

        started = time.perf_counter()
        for i, member in enumerate(members):
            if stop is not None and stop():  # between members: every finished member has been handed over
                raise Interrupted(i, len(members), "member")
            out[member.id] = reference.train_member(member, data, training, make_model, validate)
            done(member, out[member.id])
        return {"members": out, "timing": {"members": len(members), "seconds": time.perf_counter() - started}}
    return _train_populations(members, data, training, make_model, validate, checkpoints, done, executor, slots)


def _train_populations(
    members, data, training, make_model, validate, checkpoints, done, executor=None, slots=None
) -> dict:
    from reglab.data import rows
    from reglab.engine import executors, population
    from reglab.engine.training import Trained
    from reglab.kit import records

    started = time.perf_counter()
    populations, failures = population.plan_populations(members, make_model, probe=rows(data.x, slice(0, 1)))
    by_id = {m.id: m for m in members}
    out = {}
    for member_id, error in failures.items():
        out[member_id] = Trained(records.failed(error), 0.0)
        done(by_id[member_id], out[member_id])
    timing = {"populations": len(populations)}
    executor = executor or executors.Local()
    elsewhere = []  # (population, why) that a worker could not train: this process trains them, after
    for pop in populations:
        try:
            taking_turns = {"slots": slots(pop.members)} if slots is not None else {}  # `Local` alone takes them
            rows_by_id, weights, part = executor.train(pop, data, training, validate, checkpoints, **taking_turns)
        except executors.CannotRunThere as reason:
            elsewhere.append((pop, reason))
            continue
        _hand_over(pop, rows_by_id, weights, part, done, out, timing)
    if elsewhere:
        _train_here(elsewhere, data, training, make_model, validate, checkpoints, done, out, timing, executor)
    timing["seconds"] = time.perf_counter() - started
    return {"members": out, "timing": timing}


def _train_here(elsewhere, data, training, make_model, validate, checkpoints, done, out, timing, executor) -> None:
    """Train here what no worker could: with this process's population engine where the worker could not
    rebuild the model (a module it cannot import), else one `model.fit` per member — said in one line, once
    per executor (a sweep's refit is not told again)."""
    import warnings

    from reglab.engine import executors, population

    count = sum(len(pop.members) for pop, _ in elsewhere)
    local = population.unavailable() is None and all(why.kind == "rebuild" for _, why in elsewhere)
    if not executor.told:
        executor.told = True
        warnings.warn(
            f"reglab: a worker process cannot train {count} members: {elsewhere[0][1]}; training them "
            f"{'in this process' if local else 'with one model.fit each (the reference engine)'} — register custom "
            "objects with keras.saving.register_keras_serializable in an importable module and write them with "
            "keras.ops to get the population engine",
            UserWarning,
            stacklevel=4,
        )
    for pop, _ in elsewhere:
        if local:
            _hand_over(pop, *executors.Local().train(pop, data, training, validate, checkpoints), done, out, timing)
            continue
        fitted = train(pop.members, data, training, make_model, engine="reference", validate=validate, done=done)
        out.update(fitted["members"])
        merge_timing(timing, fitted["timing"], without=("seconds",))


def _hand_over(pop, rows_by_id, weights, part, done, out, timing) -> None:
    """A trained population's members as `Trained`, each handed to `done`; its timing added to `timing`."""
    from reglab.engine.training import Trained

    share = part["seconds"] / len(pop.members)  # a member's time: its share of its population's
    for member, model in zip(pop.members, pop.models):
        if member.id not in rows_by_id:  # never took a slot (`slots`): not trained
            continue
        out[member.id] = Trained(rows_by_id[member.id], share, weights[member.id], model)
        done(member, out[member.id])
    merge_timing(timing, part, without=("seconds",))


def merge_timing(total: dict, part: dict, without: tuple = ()) -> dict:
    """Add one training call's timing to a running total (several populations, several search rounds):
    numbers add up (shards: the most), lists extend, dicts merge; keys in `without` are left out."""
    for key, value in part.items():
        if key in without:
            continue
        if key == "shards":
            total[key] = max(total.get(key, 0), value)
        elif isinstance(value, (int, float)):
            total[key] = total.get(key, 0) + value
        elif isinstance(value, list):
            total[key] = total.get(key, []) + value
        elif isinstance(value, dict):
            total[key] = {**total.get(key, {}), **value}
    return total
