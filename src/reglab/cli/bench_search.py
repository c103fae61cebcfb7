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
"""

from __future__ import annotations

import math
import time

import numpy as np

SPACE = {"l2": {"log_uniform": [1e-6, 1e-1]}}


METHODS = ("full", "halving", "tpe_halving")


def search_bench(
    candidates: int = 64, seeds: int = 5, epochs: int = 50, eta: int = 3, population: int = 16, echo=print
) -> dict:
    """{"full": {...}, "halving": {...}, "tpe_halving": {...}, "candidates", "seeds", "epochs", "eta",
    "population"}: per method the medians above and `runs`, one row per seed (member-epochs, seconds, the chosen
    λ, distance in standard errors)."""
    from reglab.cli.bench import _data, standard_sweep
    from reglab.search import Optuna

    x, y = _data()
    rows: dict[str, list] = {method: [] for method in METHODS}
    for seed in range(seeds):
        runs = {}
        for method in rows:
            echo(f"search: {candidates} λ × 5 folds × {epochs} epochs, seed {seed}, {method} …")
            points = (
                {"search": Optuna(SPACE, n_trials=candidates, population=population)}
                if method == "tpe_halving"
                else {"random": SPACE, "n_trials": candidates}
            )
            sweep = standard_sweep(
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
                    "chosen_l2": result.best["params"]["l2"] if result.best else None,
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
