"""`reglab bench --scale`: how the standard workload's cost grows with its members, and what each executor
costs beside this process — measured side by side in one run (ratios mean something on a shared machine;
absolute times little).

- members: the standard workload (`reglab.cli.bench`: digits, the 64-128-64-10 MLP, 8 λ × 5 folds) with
  its folds repeated, 40 → 160 → 640 members, on this process's population engine: seconds per member
  should stay flat or fall as the population grows.
- executors: the 40 members on `local`, `process` (1 and 2 JAX workers) and `ray` (a local 2-CPU cluster,
  when Ray is installed), each against `local`; what a worker adds is its start, its imports and the
  payload — the rows say it.
- big data (`big_data`): a `make_classification` set of 200,000 × 100 in an NPZ file, swept with its
  features on disk (`reglab.stream`) and in memory, against the same sweep on 5,000 rows in memory:
  member-samples trained per second of epochs, and each run's peak RSS (a fresh process each) beside
  the data's size.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def scale(repeats=(1, 4, 16), epochs: int = 50, executors=None, echo=print) -> dict:
    """The figures as a dict: `members` (per count: seconds, seconds per member, ratio of per-member cost
    to the smallest's) and `executors` (per executor: seconds and the ratio to local)."""
    from reglab.cli.bench import LAMBDAS, _data, standard_sweep

    x, y = _data()
    if executors is None:
        executors = [("local", 1), ("process", 1), ("process", 2)]
        if importlib.util.find_spec("ray") is not None:
            executors.append(("ray", 2))

    def run(repeat, executor="local", workers=1):
        sweep = standard_sweep(LAMBDAS, epochs, repeats=repeat, executor=executor, workers=workers)
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


BIG_GRID = {"l2": [0.0, 1e-4, 1e-3, 1e-2]}  # × 5 folds: 20 members


def big_data(rows: int = 200_000, small: int = 5_000, epochs: int = 2, echo=print) -> dict:
    """The big-data figures: per way (`small`: `small` rows in memory; `streamed`: `rows` rows on disk;
    `in_memory`: the same rows loaded), epoch seconds, member-samples per second, peak RSS (MB) of its
    process, and the data's size; `streamed_vs_small`: the per-sample throughput's ratio."""
    from sklearn.datasets import make_classification

    folder = Path(tempfile.mkdtemp(prefix="reglab-big-"))
    try:
        x, y = make_classification(n_samples=rows, n_features=100, n_informative=20, random_state=0)
        np.savez(folder / "big.npz", x=x.astype("float32"), y=y)  # uncompressed: streamed where it is
        np.savez(folder / "small.npz", x=x[:small].astype("float32"), y=y[:small])
        del x, y
        out = {}
        for way, file in (("small", "small.npz"), ("streamed", "big.npz"), ("in_memory", "big.npz")):
            echo(f"big data: {way} …")
            out[way] = _child(folder / file, stream=way == "streamed", epochs=epochs)
            out[way]["data_mb"] = (folder / file).stat().st_size / 2**20
        out["streamed_vs_small"] = (
            out["streamed"]["member_samples_per_second"] / out["small"]["member_samples_per_second"]
        )
        out["rows"], out["features"], out["members"], out["epochs"] = rows, 100, 20, epochs
        return out
    finally:
        for file in folder.iterdir():
            file.unlink()
        folder.rmdir()


def _child(path: Path, stream: bool, epochs: int) -> dict:
    """One big-data sweep in a fresh process (its peak RSS is its own)."""
    code = f"""
import json, time, numpy as np, reglab, keras
from reglab.cli.bench import peak_rss
from reglab.cli.bench_scale import BIG_GRID
path = {str(path)!r}
if {stream!r}:
    x, y = reglab.stream(path)
else:
    with np.load(path) as archive:
        x, y = archive["x"], archive["y"]
def build(point):
    return keras.Sequential([keras.Input((100,)),
        keras.layers.Dense(64, activation="relu", kernel_regularizer=keras.regularizers.L2(point["l2"])),
        keras.layers.Dense(2, activation="softmax")])
result = reglab.Sweep(build, grid=BIG_GRID, cv=5, epochs={epochs}, batch_size=256, seed=0, refit=False).run(x, y)
seconds = sum(result.timing["epoch_seconds"])
trained = 5 * len(BIG_GRID["l2"]) * len(y) * 0.8 * {epochs}
print(json.dumps({{"epoch_seconds": seconds, "compile_seconds": result.timing["compile_seconds"],
    "member_samples_per_second": trained / seconds,
    "peak_rss_mb": peak_rss()}}))
"""
    env = {**os.environ, "KERAS_BACKEND": "jax", "TF_CPP_MIN_LOG_LEVEL": "2"}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=1800)
    if done.returncode != 0:
        raise RuntimeError(f"the big-data run failed: {done.stderr.strip().splitlines()[-1:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


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
    if "big_data" not in report:
        return grow, ways
    big = report["big_data"]
    data = Table(
        title=f"Big data ({big['rows']:,} × {big['features']}, {big['members']} members, {big['epochs']} epochs; "
        f"streamed at {big['streamed_vs_small']:.0%} of the small data's per-sample throughput)"
    )
    for name in ("way", "data MB", "epoch s", "member-samples/s", "peak RSS MB"):
        data.add_column(name, justify="right")
    for way in ("small", "streamed", "in_memory"):
        row = big[way]
        data.add_row(
            way.replace("_", " "),
            f"{row['data_mb']:.0f}",
            f"{row['epoch_seconds']:.2f}",
            f"{row['member_samples_per_second']:,.0f}",
            f"{row['peak_rss_mb']:.0f}",
        )
    return grow, ways, data
