"""`reglab bench --search`: what successive halving saves on the standard workload's model.

The standard workload (`reglab.cli.bench`: digits, the 64-128-64-10 MLP, 5 folds, 50 epochs) searched over
`candidates` random λ values (log-uniform in [1e-6, 1e-1]) three ways per seed, in one process: every
candidate trained every epoch (`full`); successive halving (`Sweep(prune="halving")`: the population's slots
refilled as points stop); and an Optuna TPE study of as many trials (`reglab.search.Optuna`, asked `population`
at a time, each round halved the same way: `tpe_halving`). Per method, medians over the seeds of

- `member_epochs_fraction`: member-epochs trained / the full run's;
- `wall_fraction`: `Sweep.run` seconds / the full run's (each run traces and compiles its own program:
  the full run's population has a member per candidate and fold, halving's a slot per fold of a third);
- `distance_se`: how far the chosen λ's validation loss (its fold mean after every epoch, in the run that chose
  it: a member's numbers depend on its point, fold and seed alone) is from the full run's best, in the best
  point's standard errors (negative: TPE found a λ the random candidates did not).

With `family=True` the same three ways for one model of `reglab.zoo` (mlp-dropout: elastic net, group lasso and
smoothness penalties, dropout) with λ and the dropout rate searched together, on the same data and settings.
"""

from __future__ import annotations

import math
import time

import numpy as np

SPACE = {"l2": {"log_uniform": [1e-6, 1e-1]}}
FAMILY = "mlp-dropout"  # the zoo family searched over λ and its dropout rate together (`family=True`)
FAMILY_SPACE = {"l2": {"log_uniform": [1e-6, 1e-1]}, "dropout": {"uniform": [0.0, 0.5]}}


METHODS = ("full", "halving", "tpe_halving")


def search_bench(
    candidates: int = 64,
    seeds: int = 5,
    epochs: int = 50,
    eta: int = 3,
    population: int = 16,
    echo=print,
    family: bool = False,
) -> dict:
    """{"full": {...}, "halving": {...}, "tpe_halving": {...}, "candidates", "seeds", "epochs", "eta",
    "population"}: per method the medians above and `runs`, one row per seed (member-epochs, seconds, the chosen
    point, distance in standard errors). `family`: also the same for `reglab.zoo`'s mlp-dropout family with λ
    and its dropout rate searched together (`"family"`: the same keys, with `name` and `space`)."""
    from reglab.cli.bench import _data, standard_sweep

    x, y = _data()
    report = _compare(standard_sweep, SPACE, x, y, candidates, seeds, epochs, eta, population, echo, "λ")
    if family:
        from reglab import zoo
        from reglab.sweep import Sweep

        builder, features = zoo.families()[FAMILY]
        _, _, labels = zoo.digits()

        def family_sweep(epochs, search, **settings):  # the standard workload's settings, the family's model
            return Sweep(
                builder,
                **search,
                cv=5,
                epochs=epochs,
                batch_size=32,
                learning_rate=1e-3,
                refit=False,
                engine="population",
                **settings,
            )

        found = _compare(
            family_sweep,
            FAMILY_SPACE,
            features,
            labels,
            candidates,
            seeds,
            epochs,
            eta,
            population,
            echo,
            f"{FAMILY} (λ, dropout)",
        )
        report["family"] = {"name": FAMILY, "space": FAMILY_SPACE, **found}
    return report


def _compare(make_sweep, space, x, y, candidates, seeds, epochs, eta, population, echo, what) -> dict:
    from reglab.search import Optuna

    rows: dict[str, list] = {method: [] for method in METHODS}
    for seed in range(seeds):
        runs = {}
        for method in rows:
            echo(f"search: {candidates} {what} × 5 folds × {epochs} epochs, seed {seed}, {method} …")
            points = (
                {"search": Optuna(space, n_trials=candidates, population=population)}
                if method == "tpe_halving"
                else {"random": space, "n_trials": candidates}
            )
            sweep = make_sweep(
                epochs=epochs, search=points, seed=seed, prune=None if method == "full" else "halving", eta=eta
            )
            started = time.perf_counter()
            result = sweep.run(x, y)
            runs[method] = (result, time.perf_counter() - started)
        full, full_seconds = runs["full"]
        table = full.summary.set_index("point")
        best = table.loc[full.best["point_id"]]
        for method, (result, seconds) in runs.items():
            chosen = result.summary.set_index("point").loc[result.best["point_id"]] if result.best else None
            distance = (
                (chosen["val_loss_mean"] - best["val_loss_mean"]) / best["val_loss_sem"]
                if chosen is not None
                else math.inf
            )
            rows[method].append(
                {
                    "seed": seed,
                    "member_epochs": len(result.epochs),
                    "member_epochs_fraction": len(result.epochs) / len(full.epochs),
                    "seconds": seconds,
                    "wall_fraction": seconds / full_seconds,
                    "chosen": result.best["params"] if result.best else None,
                    "distance_se": float(distance),
                }
            )
    out = {}
    for method, runs_of in rows.items():
        out[method] = {
            key: float(np.median([r[key] for r in runs_of]))
            for key in ("member_epochs_fraction", "wall_fraction", "distance_se")
        }
        out[method]["runs"] = runs_of
    return {**out, "candidates": candidates, "seeds": seeds, "epochs": epochs, "eta": eta, "population": population}


def table(report: dict) -> list[tuple[str, str, str, str]]:
    """The rows `reglab bench --search` prints: method, member-epochs, wall time (fractions of the full
    run's), distance of the chosen λ from the best (standard errors), medians over the seeds."""
    return [
        (
            method,
            f"{report[method]['member_epochs_fraction']:.0%}",
            f"{report[method]['wall_fraction']:.0%}",
            f"{report[method]['distance_se']:.2f}",
        )
        for method in METHODS
    ]
