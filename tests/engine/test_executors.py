"""Executors: a population trained in a JAX worker process is the population this process would train —
bit for bit —, a worker killed mid-shard is started again and resumes, and bad settings are refused."""

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import keras
import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_breast_cancer

import reglab

X, Y = load_breast_cancer(return_X_y=True)


@keras.saving.register_keras_serializable(package="reglab_tests")
class Scale(keras.layers.Layer):
    """A custom layer registered in this module: it travels to the worker by name (the worker imports this module)."""

    def __init__(self, factor=1.0, **kwargs):
        super().__init__(**kwargs)
        self.factor = factor

    def call(self, x):
        return x * self.factor

    def get_config(self):
        return {**super().get_config(), "factor": self.factor}


def build(point):
    """Dropout (seed state), BatchNormalization (statistics), an L2 per member, a registered custom layer."""
    return keras.Sequential(
        [
            keras.Input((30,)),
            keras.layers.Dense(16, activation="relu", kernel_regularizer=keras.regularizers.L2(point["l2"])),
            keras.layers.BatchNormalization(),
            keras.layers.Dropout(0.2),
            Scale(0.5),
            keras.layers.Dense(2, activation="softmax"),
        ]
    )


def sweep(executor, epochs=3, grid=None, **kwargs):
    return reglab.Sweep(
        build,
        grid=grid or {"l2": [0.0, 1e-2]},
        cv=2,
        epochs=epochs,
        learning_rate=1e-2,
        standardize=True,
        test_size=0.2,
        seed=0,
        executor=executor,
        **kwargs,
    )


def same_tables(a, b):
    drop = lambda f: f.drop(columns=["seconds"])  # noqa: E731
    pd.testing.assert_frame_equal(drop(a.epochs), drop(b.epochs))


def _workers_of(pid: int) -> list[int]:
    """Child processes of `pid` running reglab's worker (from /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            parent = int(stat.rsplit(")", 1)[1].split()[1])
            command = (entry / "cmdline").read_bytes()
        except (OSError, ValueError, IndexError):
            continue
        if parent == pid and b"reglab.engine.worker" in command:
            found.append(int(entry.name))
    return found


def _kill_once(folder: Path, find, killed: list) -> threading.Thread:
    """A thread that SIGKILLs what `find()` names once the first checkpoint is in `folder`."""

    def watch():
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline and not killed:
            if list((folder / "checkpoints").glob("*.npz")):
                for pid in find():
                    os.kill(pid, signal.SIGKILL)
                    killed.append(pid)
            time.sleep(0.02)

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    return thread


@pytest.mark.slow
def test_a_worker_process_even_one_killed_mid_shard_trains_every_member_exactly_as_this_process_does(tmp_path):
    """The tables, every member's final weights, the choice, the refit and its test score: bit for bit; the
    worker SIGKILLed after its first checkpoint is started again and resumes from it."""
    killed = []
    watcher = _kill_once(tmp_path / "run", lambda: _workers_of(os.getpid()), killed)
    there = sweep("process", epochs=40).run(X, Y, keep_weights=True, run_dir=tmp_path / "run", checkpoint_seconds=0)
    watcher.join(timeout=5)
    assert killed, "no worker was killed"
    here = sweep("local", epochs=40).run(X, Y, keep_weights=True)
    assert there.timing["executor"] == {"name": "process", "workers": 1} and "executor" not in here.timing
    same_tables(here, there)
    assert here.weights.keys() == there.weights.keys()
    for member, weights in here.weights.items():
        for path, value in weights.items():  # the caller's variable names, the worker's values: the same
            np.testing.assert_array_equal(value, there.weights[member][path])
    assert here.best == there.best and here.test == there.test  # the refit too ran in a worker
    probe = X[:5].astype("float32")
    np.testing.assert_array_equal(here.model.predict(probe, verbose=0), there.model.predict(probe, verbose=0))
    assert not list((tmp_path / "run" / "checkpoints").glob("*"))  # a finished sweep keeps none


def test_bad_executor_settings_are_refused_before_any_work():
    with pytest.raises(ValueError, match=r"`executor` is one of .*Received: executor='spark'"):
        sweep("spark")
    with pytest.raises(ValueError, match=r"workers.*Received: workers=0"):
        sweep("process", workers=0)


@pytest.mark.tf_only
def test_on_tensorflow_a_sweep_trains_its_populations_in_a_jax_worker_and_says_so_in_one_line():
    with pytest.warns(
        UserWarning, match=r"'tensorflow' backend; the population engine trains in a JAX worker"
    ) as caught:
        result = sweep("auto").run(X, Y)
    assert len([w for w in caught if "JAX worker" in str(w.message)]) == 1 and "\n" not in str(caught[0].message)
    assert result.timing["executor"]["name"] == "process"
    assert (result.members.status == "ok").all() and len(result.members) == 4
    assert result.test["accuracy"] > 0.8 and isinstance(result.model, keras.Model)  # refit in the worker, kept here
    with pytest.raises(ValueError, match=r"JAX backend.*Received: executor='local'"):
        reglab.Sweep(build, grid={"l2": [0.0]}, engine="population", executor="local")


class L1Custom(keras.regularizers.Regularizer):
    """Seed 003's custom regularizer as its readers write it: TensorFlow ops, not registered."""

    def __init__(self, l1=0.01):
        self.l1 = l1

    def __call__(self, x):
        import tensorflow as tf

        return self.l1 * tf.reduce_sum(tf.abs(x))

    def get_config(self):
        return {"l1": self.l1}


def build_custom(point):
    return keras.Sequential(
        [
            keras.Input((30,)),
            keras.layers.Dense(16, activation="relu", kernel_regularizer=L1Custom(point["l1"])),
            keras.layers.Dense(2, activation="softmax"),
        ]
    )


@pytest.mark.tf_only
def test_on_tensorflow_a_penalty_written_with_tensorflow_ops_trains_with_model_fit_and_says_what_to_change():
    with pytest.warns(UserWarning, match=r"worker process cannot train 4 members: .*keras\.ops") as caught:
        result = reglab.Sweep(
            build_custom, grid={"l1": [0.0, 1e-3]}, cv=2, epochs=2, learning_rate=1e-2, standardize=True, seed=0
        ).run(X, Y)
    assert len([w for w in caught if "cannot train" in str(w.message)]) == 1
    assert (result.members.status == "ok").all() and len(result.members) == 4
    assert (result.epochs.groupby("l1").train_penalty.max()[1e-3] > 0).all()  # the penalty trained, in this process


def _ray_tasks() -> list[int]:
    """Processes running reglab's Ray task (Ray names a worker process after the task it runs)."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and (entry / "cmdline").read_bytes().startswith(b"ray::_ray_shard"):
                found.append(int(entry.name))
        except OSError:
            continue
    return found


@pytest.mark.slow
def test_the_readmes_cluster_commands_a_ray_worker_killed_mid_shard_then_the_report(tmp_path):
    """The README's "On a cluster" commands as written (`ray start`, RAY_ADDRESS, `reglab sweep
    docs/examples/sweep.toml --executor ray --workers 2`) on a copy of the documented example that saves a
    checkpoint every epoch: one shard's Ray worker is SIGKILLed after the first checkpoint, Ray retries the
    task, it resumes, and the tables equal those of the same shards trained in this process, bit for bit.
    Then the run directory as the documented example's: the choice, the refit model on raw features, and
    `reglab report` writing the plots, the report and TensorBoard's events again."""
    pytest.importorskip("ray")
    from reglab import config as config_module

    root = Path(__file__).resolve().parents[2]
    text = (root / "README.md").read_text().split("## On a cluster", 1)[1]
    commands = re.findall(r"```bash\n(.*?)```", text, flags=re.S)[0]
    assert commands.rstrip().endswith("ray stop") and "docs/examples/sweep.toml" in commands
    example = tmp_path / "docs/examples/sweep.toml"
    example.parent.mkdir(parents=True)
    toml = (root / "docs/examples/sweep.toml").read_text()
    assert toml.rstrip().splitlines()[-1].startswith("learning_rate") and "\n[train]\n" in toml  # [train] is last
    example.write_text(toml.replace("epochs = 8", "epochs = 30") + "checkpoint_seconds = 0\n")  # time to kill
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    run = tmp_path / "runs/wine-ray"
    killed = []
    watcher = _kill_once(run, lambda: _ray_tasks()[:1], killed)
    try:
        done = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", commands],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
    finally:
        subprocess.run(["ray", "stop", "--force"], env=env, capture_output=True, timeout=120)  # even after a failure
    watcher.join(timeout=5)
    assert done.returncode == 0, (done.stdout[-2000:], done.stderr[-2000:])
    assert killed, "no Ray worker was killed"
    assert "selected: l2=" in done.stdout and "test set (used once" in done.stdout

    # Ray's two shards are two populations of two points' three folds each: here the same two populations (a
    # member's last bits may depend on how many members its program holds: XLA rounds 6 and 12 apart)
    experiment = config_module.from_file(example)
    config = experiment.sweep.get_config()
    halves = []
    for values in ([0.0, 1e-3], [1e-2, 1e-1]):
        sweep = reglab.Sweep.from_config({**config, "grid": {"l2": values}, "executor": "local", "refit": False})
        halves.append(sweep.run(experiment.x, experiment.y).epochs)
    here = pd.concat(halves).drop(columns="seconds").sort_values(["member", "epoch"], ignore_index=True)
    there = pd.read_parquet(run / "epochs.parquet")[here.columns].sort_values(["member", "epoch"], ignore_index=True)
    pd.testing.assert_frame_equal(here, there, check_dtype=False)

    summary = json.loads((run / "summary.json").read_text())
    assert len(summary["summary"]) == 4 and summary["test"]["accuracy"] > 0.8
    model = keras.models.load_model(run / "best_model.keras", safe_mode=True)
    from sklearn.datasets import load_wine

    x, y = load_wine(return_X_y=True)
    assert np.mean(model.predict(x, verbose=0).argmax(1) == y) > 0.8  # raw features in, classes out
    for png in (run / "plots").iterdir():
        png.unlink()
    (run / "epochs.parquet").unlink()
    (run / "report.html").unlink()
    report = subprocess.run(
        [sys.executable, "-m", "reglab", "report", str(run), "--tensorboard", str(tmp_path / "tb")],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert report.returncode == 0, report.stderr
    assert len(list((run / "plots").glob("*.png"))) == 5 and (run / "epochs.parquet").exists()
    assert (run / "report.html").exists() and list((tmp_path / "tb").glob("*/events.out.tfevents.*"))
    assert json.loads((run / "summary.json").read_text())["best"] == summary["best"]


def test_a_ray_address_where_nothing_answers_is_one_clear_error_before_any_work(tmp_path, monkeypatch):
    pytest.importorskip("ray")
    monkeypatch.setenv("RAY_ADDRESS", "127.0.0.1:1")
    with pytest.raises(
        ValueError, match=r"No Ray cluster answers at 127\.0\.0\.1:1 .*Received: RAY_ADDRESS='127\.0\.0\.1:1'"
    ):
        sweep("ray").run(X, Y, run_dir=tmp_path / "run")
    assert not (tmp_path / "run").exists()
