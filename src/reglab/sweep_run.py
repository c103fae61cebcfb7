"""How a `Sweep` runs once its data is split and its run directory open: ask the search for points, train
their members (the engine), keep their records (`Collected`, the store), then choose, refit, test once and
write the report — all from the same tables.

`reglab.sweep` holds what a sweep is (its arguments, config and spec); this module what one run does.
"""

from __future__ import annotations

import functools
import warnings
from contextlib import contextmanager
from pathlib import Path

from reglab import engine
from reglab.collect import Collected
from reglab.decide import outcome as outcome_module
from reglab.decide import pareto, refit, selection
from reglab.engine.grouping import Unsupported
from reglab.result import SweepResult
from reglab.search import plan, strategies


def run(
    sweep,
    dataset,
    rest,
    test,
    splits,
    training,
    store,
    spec,
    run_dir,
    progress,
    keep_weights,
    checkpoints,
    stop,
    executor,
    ranges=None,
) -> SweepResult:
    make_model = sweep._make_model()
    collected = Collected(dataset, training, store, keep_weights, progress)
    timing: dict = {}
    search = search_of(sweep)
    pruning = sweep.halving is not None or sweep.pruner
    late: list[dict] = []  # points a sampler gave freed slots during a round (`slots`)

    def train(members):
        todo = collected.todo(members)
        if not todo:
            return
        run = engine.train(
            todo,
            dataset,
            training,
            make_model,
            engine=sweep._engine_name(),
            executor=executor,
            checkpoints=checkpoints,
            stop=stop,
            done=collected.finish,
            slots=functools.partial(slots, sweep, search, splits, collected, late) if pruning else None,
        )
        engine.merge_timing(timing, run["timing"])

    evaluated: list[dict] = []
    table = curves = drawn = None
    while (points := search.ask(table, curves)) is not None:
        evaluated += [p for p in points if p not in evaluated]
        train(plan.members(points, splits, sweep.seed))
        # those a population could not take (another architecture) have no records: the strategy asks them again
        evaluated += [p for p in late if p not in evaluated and collected.has(plan.members([p], splits, sweep.seed))]
        late.clear()
        drawn = outcome_module.tables(collected.of(plan.members(evaluated, splits, sweep.seed))[0], sweep.select)
        table, curves = outcome_module.summary(drawn, sweep.select)

    planned = plan.members(evaluated, splits, sweep.seed)
    frames, histograms = collected.of(planned)
    found = outcome_module.outcome(  # from the last round's tables: they are every member's
        frames, sweep.select, histograms, objectives=sweep.search and sweep.search.objectives, drawn=drawn
    )
    result = SweepResult(
        epochs=found.epochs,
        members=found.members,
        summary=found.summary,
        best=found.best,
        best_1se=found.best_1se,
        diagnosis=found.diagnosis,
        histograms=found.histograms,
        pareto=found.pareto,
        features=found.features,
        weights=collected.weights if keep_weights else None,
        timing=timing,
        run_dir=Path(run_dir) if run_dir else None,
        ranges=ranges,
    )
    chosen = found.best_1se if sweep.refit == "1se" else found.best
    if sweep.refit and chosen is not None:
        result.model, result.test = refit.refit_and_test(  # on all non-test data; the test set used once
            chosen, dataset, rest, test, training, make_model, sweep.seed, sweep._engine_name(), store, executor
        )
    if store:  # the tables, summary.json, plots and report.html, from the same tables as the result
        from reglab.show.report import write

        store.clear_checkpoints()
        if ranges:  # read back by the report (and `reglab report`)
            store.write_json("ranges.json", ranges)
        store.keep_only([m.id for m in planned])
        write(store, found, result.test, spec)
    if found.nothing is not None and not found.trained:  # no member trained: an error, once everything is written
        error = selection.NothingSelectable(
            found.nothing
            + (f" The tables and report.html in {run_dir} show each configuration's records." if store else "")
        )
        error.result = result
        raise error
    if found.advice:  # members trained and none can be chosen yet: a finding, said once
        warnings.warn(f"reglab: {found.advice}", UserWarning, stacklevel=3)
    return result


def search_of(sweep):
    """The search as ask/tell (`reglab.search.strategies`): the rounds, then refinement if asked for."""
    mode = selection.mode_for(sweep.select)
    if sweep.search is not None:  # a stored study marks this sweep's trials, to count them when it runs again
        stored = sweep.search.storage is not None or sweep.search.study is not None
        modes = [pareto.direction(o) for o in sweep.search.objectives] if sweep.search.objectives else None
        return sweep.search.strategy(sweep.select, mode, sweep.seed, sweep.spec_hash() if stored else None, modes)

    def best(table):
        best, _, _ = selection.decisions(table, sweep.select, mode, warn=False)
        return best["params"] if best else None

    rounds = strategies.Rounds(sweep._rounds, best)
    if not sweep.refine:
        return rounds
    return strategies.Refine(
        rounds, sweep.refine_param, sweep.refine, sweep.refine_points, best, f"{sweep.select}_mean"
    )


def slots(sweep, search, splits, collected, late, members):
    """A population's successive halving (`reglab.search.halving`), or the study's pruner (`prune="optuna"`,
    `reglab.search.studies`), as the engine's slots. With a study, freed slots go to the sampler's next trials,
    asked as slots free (`late` keeps their points), and each trial is told as it stops."""
    from reglab.engine.slots import Slots
    from reglab.search.halving import fold_means

    more = over = None
    if hasattr(search, "stopped"):  # a study: its sampler refills the slots, knowing the trials that stopped

        def more(again=None):  # `again`: a point asked before the checkpoint a population resumes from
            point = search.more(again)
            if point is None:
                return None
            late.append(point)
            planned = plan.members([point], splits, sweep.seed)
            collected.expect(len(planned))
            return planned

        def over(board, point, positions, how):
            curve = fold_means(members, positions, board, sweep.select) if positions else {}
            search.stopped(curve, point, how, sweep.epochs)

    if sweep.pruner:
        scheduler = search.pruning(members, sweep.epochs, more, over)
    else:
        sign = 1.0 if selection.mode_for(sweep.select) == "min" else -1.0
        scheduler = sweep.halving.scheduler(members, sweep.epochs, sweep.select, sign, more, over)
    return Slots(scheduler.size, scheduler.decide, scheduler.state, scheduler.restore)  # checkpointed


@contextmanager
def engine_errors(engine_name: str):
    """A sweep the population engine cannot run (`Unsupported`) is the user's setting: a ValueError naming it."""
    try:
        yield
    except Unsupported as reason:
        raise ValueError(
            f"The population engine cannot run this sweep: {reason}. Received: engine={engine_name!r}"
        ) from None
