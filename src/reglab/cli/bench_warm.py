"""`reglab bench`: the standard workload cold and warm — each run in a fresh process, as a user's next run is.

- cold: an empty cache (`REGLAB_CACHE` a new folder): every program traced and compiled;
- warm: the same sweep again, the cache its cold run left (XLA's programs on disk, `reglab.engine.compile_cache`);
- other λ: a sweep of the same architecture with other values, on that cache (the points' values are
  arguments of the program, not constants, so it is the same program).

Each child reports its `Sweep.run` seconds (imports excluded: they are the same either way), the epochs'
seconds and the engine's `compile_seconds` (trace and compile, or read back); `fixed_seconds` is all that
is not epochs.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile

OTHER_LAMBDAS = (2e-5, 2e-4, 6e-4, 2e-3, 6e-3, 2e-2, 5e-2, 2e-1)


def warm_start(lambdas, epochs: int, other: bool = True, echo=print) -> dict:
    """{"cold", "warm"[, "other_lambdas"], "warm_vs_cold"}: each {"seconds", "epoch_seconds", "compile_seconds",
    "fixed_seconds", "peak_rss_mb"} (the peak RSS of the child's whole process)."""
    folder = tempfile.mkdtemp(prefix="reglab-bench-warm-")
    try:
        runs = [("cold", lambdas), ("warm", lambdas)]
        if other:
            runs.append(("other_lambdas", OTHER_LAMBDAS[: len(lambdas)]))
        out = {}
        for name, values in runs:
            echo(f"warm start: {name.replace('_', ' ')} (a fresh process) …")
            out[name] = _child(folder, list(values), epochs)
        out["warm_vs_cold"] = out["warm"]["seconds"] / out["cold"]["seconds"]
        return out
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _child(cache: str, lambdas: list, epochs: int) -> dict:
    setup = f"""
from reglab.cli.bench import _data, standard_sweep
x, y = _data()
sweep = standard_sweep({lambdas!r}, {epochs})
"""
    return run_child(cache, setup)


def run_child(cache: str, setup: str, run_options: str = "") -> dict:
    """Run a sweep in a fresh JAX process whose cache (`REGLAB_CACHE`) is `cache`: `setup` is code that makes
    `sweep`, `x` and `y`; `sweep.run(x, y, <run_options>)` is timed. Returns its {"seconds" (of `Sweep.run`),
    "epoch_seconds", "compile_seconds", "fixed_seconds", "peak_rss_mb" (the child's own), "best_params"}."""
    code = f"""
import json, time
from reglab.cli.bench import peak_rss
{setup}
started = time.perf_counter()
result = sweep.run(x, y, {run_options})
seconds = time.perf_counter() - started
epochs = sum(result.timing["epoch_seconds"])
print(json.dumps({{"seconds": seconds, "epoch_seconds": epochs, "compile_seconds": result.timing["compile_seconds"],
                  "fixed_seconds": seconds - epochs, "peak_rss_mb": peak_rss(),
                  "best_params": result.best["params"] if result.best else None}}))
"""
    env = {k: v for k, v in os.environ.items() if k not in ("REGLAB_COMPILE_CACHE", "JAX_COMPILATION_CACHE_DIR")}
    env.update({"KERAS_BACKEND": "jax", "TF_CPP_MIN_LOG_LEVEL": "2", "REGLAB_CACHE": cache})
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=1800)
    if done.returncode != 0:
        raise RuntimeError(f"the warm-start run failed: {done.stderr.strip().splitlines()[-1:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def table(report: dict, flop_bound: float):
    """The figures as a rich table, each run's seconds against the FLOP bound measured in the same bench."""
    from rich.table import Table

    out = Table(title="Cold and warm (the standard workload, each a fresh process)")
    for name in ("run", "seconds", "epochs", "compile", "all but epochs", "vs FLOP bound", "peak RSS MB"):
        out.add_column(name, justify="right")
    for name in ("cold", "warm", "other_lambdas"):
        if name in report:
            row = report[name]
            out.add_row(
                name.replace("_", " "),
                *(f"{row[k]:.2f}" for k in ("seconds", "epoch_seconds", "compile_seconds", "fixed_seconds")),
                f"{row['seconds'] / flop_bound:.2f}×",
                f"{row['peak_rss_mb']:.0f}",
            )
    return out
