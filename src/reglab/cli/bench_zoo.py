"""`reglab bench --zoo`: every model family of `reglab.zoo` (keras-io's sizes too) as the population engine
alone and through `Sweep.run` as a user runs it, each against the loop of `model.fit` a user would write.
Ratios measured side by side; absolute times mean little on a shared machine."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np


def zoo(
    epochs: int = 5, members: int = 12, fits: int = 2, sweep_epochs: int | None = None, names=None, echo=print
) -> dict:
    """`reglab bench --zoo`: every family of `reglab.zoo` (keras-io's sizes too), two ways.

    - `engine`: the family as a population of `members` (λ × 2 folds of the digits) against sequential
      `model.fit` on the same backend (`fits` of them timed, × members).
    - `sweep`, as a user runs it: `Sweep(build, grid={"l2": 3 values}, cv=3).run(x, y, run_dir=…)` with
      its defaults otherwise (20 epochs, refit on all rows, the run directory and its report; `sweep_epochs`
      to change them) against the loop a user would write: one `model.fit` per member (fold 0's timed,
      × members) and one for the refit (timed).
    `names`: only these families."""
    from reglab import data as data_module
    from reglab import zoo as families_module
    from reglab.engine import population
    from reglab.search import plan

    _, _, y = families_module.digits()
    training = _zoo_training(epochs)
    points = [{"l2": float(v)} for v in np.logspace(-5, -1, members // 2)]
    everything = {**families_module.families(), **families_module.keras_io_families()}
    report = {}
    for name, (build, x) in everything.items():
        if names and name not in names:
            continue
        dataset = data_module.prepare(x, y)
        rest, _ = data_module.split_test(dataset, None, 0, True)
        group = plan.members(points, data_module.folds(dataset, rest, 2, 1, 0, True), 0)
        echo(f"zoo {name}: the engine, {len(group)} members × {epochs} epochs …")
        started = time.perf_counter()
        populations, failed = population.plan_populations(group, build, probe=data_module.rows(dataset.x, slice(0, 1)))
        if failed or len(populations) != 1:
            report[name] = {"error": next(iter(failed.values()), "more than one population")}
            continue
        records, _, timing = population.train_population(populations[0], dataset, training)
        seconds = time.perf_counter() - started
        sequential, agree = [], []
        for member in group[:fits]:
            took, history = _fit(build, dataset, member, training)
            sequential.append(took)
            agree.append(abs(history.history["val_accuracy"][-1] - records[member.id].val_accuracy.iloc[-1]))
        per_fit = float(np.mean(sequential))
        report[name] = {
            "population_seconds": seconds,
            "compile_seconds": timing["compile_seconds"],
            "sequential_seconds_per_fit": per_fit,
            "speedup": per_fit * len(group) / seconds,
            "val_accuracy_population": float(np.mean([r.val_accuracy.iloc[-1] for r in records.values()])),
            # same seeds and data, but fit shuffles its own way: agreement within noise, not exact
            "max_val_accuracy_gap_vs_fit": float(max(agree)),
            "convolutions": sorted({d["strategy"] for d in timing["convolutions"].values()}),
        }

        try:
            report[name]["sweep"] = _as_users_run_it(name, build, x, y, dataset, rest, sweep_epochs, echo)
        except Exception as error:  # one family's failure is reported, not the end of the benchmark
            report[name]["sweep"] = {"error": f"{type(error).__name__}: {error}"[:300]}
    measured = list(report.values())
    for key, pick in (
        ("", lambda r: r.get("speedup")),
        ("sweep_", lambda r: r.get("sweep", {}).get("speedup")),
        ("warm_sweep_", lambda r: r.get("sweep", {}).get("warm_speedup")),
    ):
        speedups = [pick(r) for r in measured if pick(r) is not None]
        report[f"{key}geometric_mean_speedup"] = float(np.exp(np.mean(np.log(speedups)))) if speedups else None
        report[f"{key}min_speedup"] = float(min(speedups)) if speedups else None
    return report


def _fit(build, dataset, member, setting, validate=True):
    """(seconds, history) of the tutorials' `model.fit` of `member`: built under its seed, compiled, fit."""
    import keras

    from reglab.data import rows
    from reglab.engine.training import compile_model
    from reglab.search import plan

    keras.backend.clear_session(free_memory=False)
    plan.set_global_seed(member.seed)
    started = time.perf_counter()
    model = build(member.point)
    compile_model(model, setting, member.point)
    validation = (rows(dataset.x, member.val), rows(dataset.y, member.val)) if validate else None
    history = model.fit(
        rows(dataset.x, member.train),
        rows(dataset.y, member.train),
        epochs=setting.epochs,
        batch_size=setting.batch_size,
        verbose=0,
        validation_data=validation,
    )
    return time.perf_counter() - started, history


def _as_users_run_it(name, build, x, y, dataset, rest, sweep_epochs, echo) -> dict:
    """`Sweep.run` with its defaults (3 λ × 3 folds) against the loop of `model.fit` a user would write: a first
    run (an empty cache) and the next one (the cache the first left: `reglab.engine.traces`, XLA's programs),
    each in a fresh process, as a user's runs are."""
    import shutil
    import tempfile

    from reglab import data as data_module
    from reglab.cli.bench_warm import run_child
    from reglab.search import plan
    from reglab.sweep import Sweep

    lambdas = [0.0, 1e-3, 1e-2]
    options = {} if sweep_epochs is None else {"epochs": sweep_epochs}
    sweep = Sweep(build, grid={"l2": lambdas}, cv=3, seed=0, **options)
    setup = f"""
from reglab import zoo
from reglab.sweep import Sweep
build, x = {{**zoo.families(), **zoo.keras_io_families()}}[{name!r}]
_, _, y = zoo.digits()
sweep = Sweep(build, grid={{"l2": {lambdas!r}}}, cv=3, seed=0, **{options!r})
"""
    runs = {}
    cache = tempfile.mkdtemp(prefix="reglab-bench-zoo-")
    try:
        for run in ("first", "next"):
            echo(
                f"zoo {name}: as a user runs it, Sweep.run with its defaults (3 λ × 3 folds, {sweep.epochs} epochs, "
                f"refit, run directory), the {run} run (a fresh process) …"
            )
            runs[run] = run_child(cache, setup, f"run_dir={str(Path(cache) / run)!r}")
    finally:
        shutil.rmtree(cache, ignore_errors=True)
    user_training = _zoo_training(sweep.epochs)
    loop_members = plan.members([{"l2": v} for v in lambdas], data_module.folds(dataset, rest, 3, 1, 0, True), 0)
    echo(f"zoo {name}: the loop of model.fit a user would write (one fold fit and the refit timed) …")
    fold_fit, _ = _fit(build, dataset, loop_members[0], user_training)
    # the refit of the point the sweep chose; where it chose none (a few epochs of a BatchNorm model may not beat
    # the constant predictor yet) a user's loop would still refit one: its time does not depend on λ
    chosen = runs["first"]["best_params"] or {"l2": lambdas[0]}
    refit, _ = _fit(build, dataset, plan.refit_member(chosen, rest, None, 0), user_training, validate=False)
    loop_seconds = fold_fit * len(loop_members) + refit
    return {
        "seconds": runs["first"]["seconds"],
        "warm_seconds": runs["next"]["seconds"],
        "members": len(loop_members),
        "epochs": sweep.epochs,
        "loop_of_fit_seconds": loop_seconds,
        "fit_seconds": fold_fit,
        "refit_seconds": refit,
        "speedup": loop_seconds / runs["first"]["seconds"],
        "warm_speedup": loop_seconds / runs["next"]["seconds"],
    }


def _zoo_training(epochs: int):
    """How the zoo's members train, in the engine and in the loop of fits alike (Sweep.run's defaults)."""
    from reglab.engine.training import Training

    return Training(
        epochs=epochs,
        batch_size=32,
        optimizer="adam",
        learning_rate=1e-3,
        loss="sparse_categorical_crossentropy",
        metrics=("accuracy",),
        standardize=False,
    )
