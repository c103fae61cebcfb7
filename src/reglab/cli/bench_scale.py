"""`reglab bench --scale`: how the standard workload's cost grows with its members, and what each executor
costs beside this process — measured side by side in one run (ratios mean something on a shared machine;
absolute times little).

- members: the standard workload (`reglab.cli.bench`: digits, the 64-128-64-10 MLP, 8 λ × 5 folds) with
  its folds repeated, 40 → 160 → 640 members, on this process's population engine: seconds per member
  should stay flat or fall as the population grows.
- executors: the 40 members on `local`, `process` (1 and 2 JAX workers) and `ray` (a local 2-CPU cluster,
  when Ray is installed), each against `local`; what a worker adds is its start, its imports and the
  payload — the rows say it.
"""

from __future__ import annotations

import importlib.util
import time


def scale(repeats=(1, 4, 16), epochs: int = 50, executors=None, echo=print) -> dict:
    """The figures as a dict: `members` (per count: seconds, seconds per member, ratio of per-member cost
    to the smallest's) and `executors` (per executor: seconds and the ratio to local)."""
    from reglab.cli.bench import HIDDEN, LAMBDAS, _data
    from reglab.models import MLP
    from reglab.sweep import Sweep

    x, y = _data()
    if executors is None:
        executors = [("local", 1), ("process", 1), ("process", 2)]
        if importlib.util.find_spec("ray") is not None:
            executors.append(("ray", 2))

    def run(repeat, executor="local", workers=1):
        sweep = Sweep(
            MLP(hidden=list(HIDDEN)).bind(64, 10),
            grid={"l2": list(LAMBDAS)},
            cv=5,
            repeats=repeat,
            epochs=epochs,
            refit=False,
            engine="population",
            executor=executor,
            workers=workers,
            seed=0,
        )
        started = time.perf_counter()
        sweep.run(x, y)
        return time.perf_counter() - started

    members = {}
    for repeat in repeats:
        count = len(LAMBDAS) * 5 * repeat
        echo(f"scale: {count} members × {epochs} epochs (local) …")
        seconds = run(repeat)
        members[str(count)] = {"seconds": seconds, "seconds_per_member": seconds / count}
    first = members[str(len(LAMBDAS) * 5 * repeats[0])]["seconds_per_member"]
    for row in members.values():
        row["per_member_vs_smallest"] = row["seconds_per_member"] / first
    ways = {}
    for executor, workers in executors:
        name = executor if executor == "local" else f"{executor} ×{workers}"
        echo(f"scale: {len(LAMBDAS) * 5} members on {name} …")
        ways[name] = {"seconds": run(repeats[0], executor, workers)}
    local = ways.get("local", {}).get("seconds")
    for row in ways.values():
        row["vs_local"] = row["seconds"] / local if local else None
    return {"members": members, "executors": ways, "epochs": epochs}


def table(report: dict):
    """The figures as two rich tables."""
    from rich.table import Table

    grow = Table(title=f"Members (the standard workload, {report['epochs']} epochs, this process)")
    for name in ("members", "seconds", "seconds per member", "per member vs the fewest"):
        grow.add_column(name, justify="right")
    for count, row in report["members"].items():
        grow.add_row(
            count, f"{row['seconds']:.2f}", f"{row['seconds_per_member']:.4f}", f"{row['per_member_vs_smallest']:.2f}×"
        )
    ways = Table(title="Executors (the 40 members)")
    for name in ("executor", "seconds", "vs local"):
        ways.add_column(name, justify="right")
    for name, row in report["executors"].items():
        ways.add_row(name, f"{row['seconds']:.2f}", "–" if row["vs_local"] is None else f"{row['vs_local']:.2f}×")
    return grow, ways
