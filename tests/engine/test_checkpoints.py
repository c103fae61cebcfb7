"""Populations survive a stop or a kill mid-training: the state at an epoch boundary is saved in the
run directory, and a re-run continues from it to tables bit-identical to an uninterrupted run's.

Real subprocesses get real SIGINT and SIGKILL (bounded in time). JAX pass (the population engine).
"""

import os
import signal
import subprocess
import sys
import textwrap
import time

import pandas as pd
import pytest

from reglab import Sweep, zoo
from reglab.engine.checkpoints import Interrupted
from reglab.models import MLP

X, _, Y = zoo.digits()


def sweep():
    return Sweep(
        MLP(hidden=[32]).bind(64, 10),
        grid={"l2": [0.0, 1e-3]},
        cv=2,
        epochs=12,
        refit=False,
        seed=0,
        engine="population",
    )


def tables(run_dir):
    epochs = pd.read_parquet(run_dir / "epochs.parquet").drop(columns=["seconds"])
    return epochs.sort_values(["member", "epoch"]).reset_index(drop=True)


@pytest.fixture(scope="module")
def whole(tmp_path_factory):
    """The uninterrupted run every resumed one must equal."""
    run_dir = tmp_path_factory.mktemp("whole") / "run"
    sweep().run(X[:400], Y[:400], run_dir=run_dir)
    return tables(run_dir)


def test_a_stopped_population_resumes_where_it_stopped_to_the_uninterrupted_result(whole, tmp_path):
    asked = []

    def stop():  # asked at every epoch boundary but the last: stop after the fifth epoch
        asked.append(1)
        return len(asked) >= 5

    with pytest.raises(Interrupted, match="epoch 5 of 12"):
        sweep().run(X[:400], Y[:400], run_dir=tmp_path / "cut", stop=stop)
    assert list((tmp_path / "cut" / "checkpoints").glob("*.npz")) and not list((tmp_path / "cut").glob("members/*"))
    asked.clear()
    sweep().run(X[:400], Y[:400], run_dir=tmp_path / "cut", stop=lambda: asked.append(1) and False)
    assert len(asked) == 12 - 5 - 1  # it trained epochs 6–12 only
    pd.testing.assert_frame_equal(tables(tmp_path / "cut"), whole)
    assert not list((tmp_path / "cut" / "checkpoints").glob("*.npz"))  # a finished sweep keeps none


def test_a_damaged_checkpoint_is_quarantined_and_the_population_starts_over(whole, tmp_path):
    with pytest.raises(Interrupted):
        sweep().run(X[:400], Y[:400], run_dir=tmp_path / "run", stop=lambda: True)
    (checkpoint,) = (tmp_path / "run" / "checkpoints").glob("*.npz")
    checkpoint.write_bytes(checkpoint.read_bytes()[:100])
    with pytest.warns(UserWarning, match="is damaged"):
        sweep().run(X[:400], Y[:400], run_dir=tmp_path / "run")
    pd.testing.assert_frame_equal(tables(tmp_path / "run"), whole)
    assert list((tmp_path / "run" / "quarantine" / "checkpoints").iterdir())


@pytest.mark.slow
def test_a_resumed_population_batches_its_convolutions_as_before_it_stopped(monkeypatch, tmp_path):
    """How convolutions batch their members is measured when the program is traced, and a re-run in a new
    process could measure otherwise (and round otherwise): the checkpoint keeps the choice."""
    from reglab.engine import convolution

    monkeypatch.setattr(convolution, "WORTH_MEASURING", 0)  # measure even these small convolutions
    monkeypatch.setenv("REGLAB_CACHE", str(tmp_path / "cache"))  # no trace kept by another test (`traces`)
    build, images = zoo.families()["convnet"]
    chosen, used = ["unrolled"], []
    measure, choose = convolution._measure, convolution.choose

    def measured(*args):  # the real measurement; the strategy it picks is the test's
        return {**measure(*args), "strategy": chosen[0]}

    monkeypatch.setattr(convolution, "_measure", measured)
    monkeypatch.setattr(convolution, "choose", lambda *args: used.append(choose(*args)) or used[-1])

    def run(run_dir, **kwargs):
        convolution._decided.clear()  # as in a new process
        Sweep(build, grid={"l2": [0.0, 1e-3]}, cv=2, epochs=4, refit=False, seed=0, engine="population").run(
            images[:200], Y[:200], run_dir=run_dir, **kwargs
        )

    run(tmp_path / "whole")
    asked = []
    with pytest.raises(Interrupted, match="epoch 2 of 4"):
        run(tmp_path / "cut", stop=lambda: asked.append(1) or len(asked) >= 2)
    chosen[0], used[:] = "vmap", []  # what a new process would measure now
    run(tmp_path / "cut")
    assert set(used) == {"unrolled"}  # the convolutions measured before the stop kept their strategy
    pd.testing.assert_frame_equal(tables(tmp_path / "cut"), tables(tmp_path / "whole"))


CONFIG = """
name = "kill"
seed = 0
[data]
source = "digits"
standardize = false
[model]
hidden = [64]
[search]
grid = {{ l2 = [0.0, 1e-3, 1e-2] }}
[cv]
folds = 2
[train]
epochs = {epochs}
checkpoint_seconds = 0.2
"""


def _cli(config, run_dir, **kwargs):
    env = {**os.environ, "KERAS_BACKEND": "jax", "TF_CPP_MIN_LOG_LEVEL": "3"}
    return subprocess.Popen(
        [sys.executable, "-m", "reglab", "sweep", str(config), "--run-dir", str(run_dir), "--quiet"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        **kwargs,
    )


def _wait_for_checkpoint(run_dir, process, after=0.0, timeout=240):
    """Until a checkpoint newer than `after` (a time stamp) is on disk."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(p.stat().st_mtime > after for p in (run_dir / "checkpoints").glob("*.npz")):
            return
        if process.poll() is not None:
            pytest.fail(f"the sweep ended before its next checkpoint: {process.communicate()}")
        time.sleep(0.05)
    process.kill()
    pytest.fail("no checkpoint appeared")


@pytest.mark.slow
def test_the_cli_stopped_by_ctrl_c_then_killed_mid_training_resumes_to_the_uninterrupted_result(tmp_path):
    """Ctrl-C (exit 130, one line saying how to go on), a re-run killed with SIGKILL mid-training, a third
    run: the tables equal those of a run never interrupted (the config's sweep run in this process, as the
    command runs it: a fourth process would add only its start)."""
    from reglab import config as config_module

    config = tmp_path / "sweep.toml"
    config.write_text(textwrap.dedent(CONFIG.format(epochs=200)))  # each run past its first save
    experiment = config_module.from_file(config)
    experiment.sweep.run(
        experiment.x,
        experiment.y,
        run_dir=tmp_path / "whole",
        task=experiment.task,
        checkpoint_seconds=experiment.checkpoint_seconds,
    )
    cut, last = tmp_path / "cut", 0.0
    for how in (signal.SIGINT, signal.SIGKILL):
        process = _cli(config, cut)
        _wait_for_checkpoint(cut, process, after=last)
        process.send_signal(how)
        code = process.wait(timeout=300)
        _, err = process.communicate()
        if how == signal.SIGINT:
            assert code == 130, err
            assert "run the same command again" in err and "Traceback" not in err
        else:
            assert code == -signal.SIGKILL
        assert not (cut / "epochs.parquet").exists()  # it stopped mid-training
        last = max(p.stat().st_mtime for p in (cut / "checkpoints").glob("*.npz"))
    again = _cli(config, cut)
    assert again.wait(timeout=600) == 0, again.communicate()
    pd.testing.assert_frame_equal(tables(cut), tables(tmp_path / "whole"))
