"""Where a population trains: in this process (`Local`) or in JAX worker subprocesses (`Processes`).

An executor takes a population whose members' models the caller built (under each member's seed) and
gives back what `population.train_population` does — epoch records, final weights, timing — with each
member's model holding its final state. `Processes` ships each shard as a plain payload
(`reglab.engine.shard`) to `python -m reglab.engine.worker`, so a process on Keras's TensorFlow (or
PyTorch) backend gets the population engine too: the models are rebuilt in the worker from their Keras
configs and the caller's variable values, so a worker trains exactly the members this process built.
A worker killed mid-shard is started again (it resumes from the shard's last checkpoint when the sweep
has a run directory); Ctrl-C reaches it as a stop at the next epoch boundary.
"""

from __future__ import annotations

import json
import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import warnings
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import numpy as np

EXECUTORS = ("auto", "local", "process", "ray")


class CannotRunThere(Exception):
    """A worker cannot rebuild ("rebuild") or train ("train") this population — the message says why; the
    caller trains it: a model the worker cannot rebuild in this process's population engine if it has one,
    one that does not train on JAX with `model.fit` (the reference engine)."""

    def __init__(self, message: str, kind: str):
        super().__init__(message)
        self.kind = kind


class Executor:
    """What every executor is: `train(population, data, training, validate, checkpoints)`, and a context
    (`with executor:`) that starts and stops what it runs on."""

    name = ""
    told = False  # whether the user was told that some members train elsewhere (`reglab.engine.train`)

    def start(self) -> None:
        pass

    def close(self) -> None:
        pass

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class Local(Executor):
    """This process (Keras's JAX backend)."""

    name = "local"

    def train(self, population, data, training, validate, checkpoints, slots=None):
        from reglab.engine.population import train_population

        if slots is not None and slots.state is None:  # a scheduler that cannot be saved (a study's pruner)
            checkpoints = None
        return train_population(population, data, training, validate, checkpoints=checkpoints, slots=slots)


class Processes(Executor):
    """JAX worker subprocesses: a population's members in `workers` shards side by side (one by default).

    The workers start with `start()` (their imports overlap with the caller's own work) and serve every
    population of the run (`--serve`: one shard folder per line on stdin) until `close()`. `retries`: how
    often a shard whose worker died (killed, out of memory) is given to a fresh worker."""

    name = "process"

    def __init__(self, workers: int = 1, retries: int = 2):
        self.workers, self.retries = workers, retries
        self._folder = None
        self._pool: list[_Worker] = []
        self._data = None  # (the Dataset, the folder it is written in): once per run, shared by every population

    def start(self) -> None:
        if self._pool:
            return
        self._folder = Path(tempfile.mkdtemp(prefix="reglab-workers-"))
        self._pool = [_Worker(self._folder / f"worker{n}.log") for n in range(self.workers)]
        for worker in self._pool:
            worker.ensure()

    def close(self) -> None:
        for worker in self._pool:
            worker.close()
        self._pool, self._data = [], None
        if self._folder is not None:
            shutil.rmtree(self._folder, ignore_errors=True)
            self._folder = None

    def train(self, population, data, training, validate, checkpoints):
        from reglab.engine import shard

        self.start()
        members, models = population.members, population.models
        cuts = shard_positions(len(members), self.workers)
        if self._data is None or self._data[0] is not data:
            self._data = (data, Path(tempfile.mkdtemp(prefix="data-", dir=self._folder)))
            shard.write_data(data, self._data[1])
        # each shard in a folder of its own beside the data (the worker reads the data one level up)
        folders = [Path(tempfile.mkdtemp(prefix=f"shard{n}-", dir=self._data[1])) for n in range(len(cuts))]
        started = time.perf_counter()
        try:
            for folder, cut in zip(folders, cuts):
                shard.write_shard(
                    folder,
                    [members[i] for i in cut],
                    [models[i] for i in cut],
                    training,
                    validate,
                    checkpoint_target(checkpoints),
                )
            stop = checkpoints.stop if checkpoints is not None else (lambda: False)
            with ThreadPoolExecutor(len(cuts)) as pool:
                list(pool.map(lambda n: self._run(self._pool[n], folders[n], stop), range(len(cuts))))
            return collect(population, cuts, folders, self.name, started)
        finally:
            for folder in folders:
                shutil.rmtree(folder, ignore_errors=True)

    def _run(self, worker: "_Worker", folder: Path, stop) -> None:
        """One shard on `worker` until it is done; on a fresh worker again if this one died."""
        for attempt in range(self.retries + 1):
            code = worker.run(folder, stop)
            if code is not None or attempt == self.retries:  # None: the worker died (killed, out of memory)
                return check_code(code, folder, worker.log_text())


class _Worker:
    """One `python -m reglab.engine.worker --serve` process (started again after it died)."""

    def __init__(self, log: Path):
        self.log, self.process = log, None

    def ensure(self) -> None:
        if self.process is not None and self.process.poll() is None:
            return
        env = {
            **os.environ,
            "KERAS_BACKEND": "jax",
            "TF_CPP_MIN_LOG_LEVEL": os.environ.get("TF_CPP_MIN_LOG_LEVEL", "2"),
            # the caller's modules (a registered custom layer's) are the worker's to import
            "PYTHONPATH": os.pathsep.join(p for p in sys.path if p),
        }
        with open(self.log, "a") as errors, exec_right_after_fork():
            self.process = subprocess.Popen(
                [sys.executable, "-m", "reglab.engine.worker", "--serve"],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=errors,
                env=env,
                text=True,
            )

    def run(self, folder: Path, stop) -> int | None:
        """The shard's exit code (`reglab.engine.worker`), or None if the worker died on it."""
        self.ensure()
        try:
            self.process.stdin.write(f"{folder}\n")
            self.process.stdin.flush()
        except BrokenPipeError:
            return None
        asked = False
        while True:
            ready, _, _ = select.select([self.process.stdout], [], [], 0.1)
            if ready:
                line = self.process.stdout.readline()
                if not line:  # the worker is gone (killed, out of memory)
                    self.process.wait()
                    return None
                return json.loads(line)["code"]
            if not asked and stop():
                self.process.send_signal(signal.SIGINT)  # it saves at the next epoch boundary, then answers
                asked = True

    def close(self) -> None:
        if self.process is None:
            return
        try:
            self.process.stdin.close()
            self.process.wait(timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            self.process.kill()
            self.process.wait()
        self.process = None

    def log_text(self) -> str:
        try:
            return self.log.read_text()
        except OSError:
            return ""


def choose(executor: str, workers: int = 1, engine: str = "population") -> Executor:
    """The executor `Sweep(executor=…, workers=…)` names; "auto" is this process where it runs the population
    engine (Keras's JAX backend) and a JAX worker process elsewhere — said in one line."""
    import keras

    from reglab.engine.population import unavailable

    if executor == "process":
        return Processes(workers)
    if executor == "ray":
        from reglab.engine.on_ray import Ray

        return Ray(workers)
    if executor == "local" or engine == "reference" or unavailable() is None:
        return Local()
    warnings.warn(
        f"reglab: this process uses Keras's {keras.backend.backend()!r} backend; the population engine trains in "
        "a JAX worker process (executor='process')",
        UserWarning,
        stacklevel=3,
    )
    return Processes(workers)


def shard_positions(count: int, workers: int) -> list[list[int]]:
    """A population's member positions in `workers` shards (contiguous, as equal as can be)."""
    return [list(c) for c in np.array_split(np.arange(count), min(workers, count)) if len(c)]


def checkpoint_target(checkpoints) -> dict | None:
    """Where a shard's worker checkpoints: the run directory and how often, or None (no run directory)."""
    if checkpoints is None or getattr(checkpoints, "folder", None) is None:
        return None
    return {"run_dir": str(checkpoints.folder), "seconds": checkpoints.seconds}


def check_code(code: int | None, folder: Path, log: str) -> None:
    """A shard's exit code (`reglab.engine.worker`) as what the caller does next: nothing (done), Interrupted
    (stopped), CannotRunThere, or an error naming the worker's last words."""
    from reglab.engine.checkpoints import Interrupted
    from reglab.engine.worker import CANNOT, STOPPED

    if code == 0:
        return
    if code == STOPPED:
        stopped = json.loads((folder / "stopped.json").read_text())
        raise Interrupted(stopped["done"], stopped["total"])
    if code == CANNOT:
        error = json.loads((folder / "error.json").read_text())
        raise CannotRunThere(error["error"], error["kind"])
    lines = [line for line in log.splitlines() if line.strip()]
    raise RuntimeError(f"a reglab worker process failed: {lines[-1] if lines else 'no message'}")


def collect(population, cuts, folders: list[Path], name: str, started: float):
    """The shards' results as `train_population` returns them; each member's own model gets its final
    state, and records and weights the caller's variable names (a rebuilt model may name them otherwise)."""
    from reglab.engine import merge_timing, shard

    members, models = population.members, population.models
    records, weights, timing = {}, {}, {"executor": {"name": name, "workers": len(cuts)}}
    for folder, cut in zip(folders, cuts):
        got, final, values, paths, part = shard.read_result(folder, len(cut))
        for i, table, mine, value, theirs in zip(cut, got, final, values, paths):
            rename = dict(zip(theirs, [v.path for v in models[i].variables]))
            for variable, array in zip(models[i].variables, value):
                variable.assign(array)
            records[members[i].id] = table.rename(columns=lambda c: _renamed(c, rename))
            weights[members[i].id] = {rename.get(p, p): a for p, a in mine.items()}
        merge_timing(timing, part, without=("seconds",))
    timing["seconds"] = time.perf_counter() - started
    return records, weights, timing


@contextmanager
def exec_right_after_fork():
    """JAX warns at every fork of a process it runs threads in; a child that execs at once (a worker, Ray's
    processes) shares nothing with them, so that warning is not the user's to read."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"os\.fork\(\) was called", category=RuntimeWarning)
        yield


def _renamed(column: str, rename: dict) -> str:
    quantity, sep, path = column.partition(":")
    return f"{quantity}:{rename.get(path, path)}" if sep else column
