"""`executor="ray"`: a population's shards as tasks on a Ray cluster (`reglab.engine.executors` for what an
executor is). A task gets the shard's payload (`reglab.engine.shard`) as bytes and the data from Ray's
object store, trains it with the worker's code (`reglab.engine.worker.shard_main`) in a folder of its own,
and returns its result files as bytes: nothing travels as pickled user code, and a node needs no shared
filesystem — except to checkpoint into the run directory, which a local cluster shares."""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

from reglab.engine.executors import (
    Executor,
    check_code,
    checkpoint_target,
    collect,
    exec_right_after_fork,
    shard_positions,
)


class Ray(Executor):
    """A population's shards as tasks on a Ray cluster: the one `ray.init` connected to, else the cluster at
    `RAY_ADDRESS`, else a local one started here (and stopped at `close`). The data goes into Ray's object
    store once per population, each shard's payload with its task; a task whose worker died is retried by
    Ray (`retries`), resuming from the shard's last checkpoint where the cluster shares the run directory's
    filesystem (a local cluster does). Each task asks for one CPU, and a GPU when the cluster has them."""

    name = "ray"

    def __init__(self, workers: int = 1, retries: int = 2):
        self.workers, self.retries = workers, retries
        self._started = False

    def start(self) -> None:
        import ray

        if ray.is_initialized():
            return
        env = {"KERAS_BACKEND": "jax", "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
        address = os.environ.get("RAY_ADDRESS") or None
        _answers(address)  # Ray itself waits minutes for an address where nothing listens
        try:
            with exec_right_after_fork():
                ray.init(address=address, runtime_env={"env_vars": env}, include_dashboard=False, log_to_driver=False)
        except ConnectionError as error:
            raise ValueError(
                f"No Ray cluster answers at {address}: {error}. Received: RAY_ADDRESS={address!r}"
            ) from None
        self._started = True

    def close(self) -> None:
        if self._started:
            import ray

            ray.shutdown()
            self._started = False

    def train(self, population, data, training, validate, checkpoints):
        import ray

        from reglab.engine import shard

        self.start()
        members, models = population.members, population.models
        cuts = shard_positions(len(members), self.workers)
        folder = Path(tempfile.mkdtemp(prefix="reglab-ray-"))
        started = time.perf_counter()
        try:
            shard.write_data(data, folder)
            data_ref = ray.put(_files(folder, ["data.json", "data"]))
            where = checkpoint_target(checkpoints)
            task = ray.remote(_ray_shard).options(
                num_cpus=1,
                num_gpus=1 if ray.cluster_resources().get("GPU") else 0,
                max_retries=self.retries,
                retry_exceptions=False,
            )
            refs = []
            for n, cut in enumerate(cuts):
                shard.write_shard(
                    folder / f"shard{n}", [members[i] for i in cut], [models[i] for i in cut], training, validate, where
                )
                refs.append(task.remote(data_ref, _files(folder / f"shard{n}", ["shard.json", "shard.npz"])))
            pending, stop = list(refs), checkpoints.stop if checkpoints is not None else (lambda: False)
            while pending:
                _, pending = ray.wait(pending, num_returns=len(pending), timeout=0.1)
                if pending and stop():
                    for ref in pending:
                        ray.cancel(ref)
                    from reglab.engine.checkpoints import Interrupted

                    raise Interrupted(0, training.epochs)
            for n, answer in enumerate(ray.get(refs)):
                _unpack(answer["files"], folder / f"shard{n}")
                check_code(answer["code"], folder / f"shard{n}", answer.get("log", ""))
            return collect(population, cuts, [folder / f"shard{n}" for n in range(len(cuts))], self.name, started)
        finally:
            shutil.rmtree(folder, ignore_errors=True)


def _answers(address: str | None, seconds: float = 5.0) -> None:
    """A "host:port" (or "ray://host:port") cluster address must accept a connection; "auto" and None are
    Ray's to find."""
    import socket

    if address is None or address == "auto" or ":" not in address:
        return
    host, _, port = address.split("://")[-1].rpartition(":")
    try:
        socket.create_connection((host, int(port)), timeout=seconds).close()
    except (OSError, ValueError) as error:
        raise ValueError(
            f"No Ray cluster answers at {address} ({error}): start one with `ray start --head`, or unset "
            f"RAY_ADDRESS to run a local one. Received: RAY_ADDRESS={address!r}"
        ) from None


def _ray_shard(data_files: dict, shard_files: dict) -> dict:
    """A Ray task: one shard, in a folder of this worker's own; its exit code and result files come back."""
    import io
    from contextlib import redirect_stderr

    folder = Path(tempfile.mkdtemp(prefix="reglab-task-"))
    try:
        _unpack(data_files, folder)
        _unpack(shard_files, folder / "shard")
        from reglab.engine.worker import shard_main

        log = io.StringIO()
        with redirect_stderr(log):
            code = shard_main(folder / "shard", [])
        names = ["result.json", "result.npz", "records", "error.json", "stopped.json"]
        return {"code": code, "files": _files(folder / "shard", names), "log": log.getvalue()[-2000:]}
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _files(folder: Path, names: list[str]) -> dict:
    """{relative path: bytes} of the named files and folders under `folder` (those that exist)."""
    out = {}
    for name in names:
        path = folder / name
        for file in [path] if path.is_file() else sorted(path.rglob("*")) if path.is_dir() else []:
            if file.is_file():
                out[str(file.relative_to(folder))] = file.read_bytes()
    return out


def _unpack(files: dict, folder: Path) -> None:
    for name, content in files.items():
        target = folder / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content)
