"""The run directory: atomic writes, resume without recomputation, refusal of other sweeps, SIGKILL safety."""

import signal
import subprocess
import sys
import time
from pathlib import Path

import keras
import pandas as pd
import pytest
from sklearn.datasets import load_breast_cancer

import reglab
from reglab.store import RunDirectory, atomic_path, write_json

X, Y = load_breast_cancer(return_X_y=True)


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    target = tmp_path / "summary.json"
    write_json(target, {"version": 1})
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text('{"version": 2, "trunc')
            raise RuntimeError("crash in the middle of writing")
    assert target.read_text().strip().endswith("}") and '"version": 1' in target.read_text()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["summary.json"]


class Builder:
    def __init__(self):
        self.calls = 0

    def __call__(self, point):
        self.calls += 1
        return keras.Sequential([keras.Input((30,)), keras.layers.Dense(8, activation="relu",
                                 kernel_regularizer=keras.regularizers.L2(point["l2"])), keras.layers.Dense(2, activation="softmax")])


def test_resume_recomputes_nothing_and_refuses_other_sweeps_or_data(tmp_path):
    run_dir = tmp_path / "run"
    first = Builder()
    kwargs = dict(grid={"l2": [0.0, 0.1]}, cv=2, epochs=2, test_size=0.2, standardize=True)
    a = reglab.Sweep(first, **kwargs).run(X, Y, run_dir=run_dir)
    assert first.calls == 1 + 2 + 1  # the probe, one model per point (stacked engine), the refit
    files = {p: p.read_bytes() for p in (run_dir / "members").iterdir()}

    again = Builder()
    b = reglab.Sweep(again, **kwargs).run(X, Y, run_dir=run_dir)
    assert again.calls == 1  # only the probe: members, refit and test come from the directory
    assert {p: p.read_bytes() for p in (run_dir / "members").iterdir()} == files
    pd.testing.assert_frame_equal(a.summary, b.summary)
    assert a.test == b.test

    with pytest.raises(ValueError, match="holds a different sweep"):
        reglab.Sweep(Builder(), **{**kwargs, "epochs": 3}).run(X, Y, run_dir=run_dir)
    with pytest.raises(ValueError, match="was run on different data"):
        reglab.Sweep(Builder(), **kwargs).run(X[::-1].copy(), Y[::-1].copy(), run_dir=run_dir)
    assert {p: p.read_bytes() for p in (run_dir / "members").iterdir()} == files


def test_a_foreign_directory_is_not_written_into(tmp_path):
    (tmp_path / "precious.txt").write_text("keep me")
    with pytest.raises(ValueError, match="not a reglab run directory"):
        reglab.Sweep(Builder(), grid={"l2": [0.0]}, cv=2, epochs=1).run(X, Y, run_dir=tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["precious.txt"]


CONFIG = """
name = "killed"
seed = 3
[data]
source = "breast_cancer"
test_size = 0.2
[model]
hidden = [8]
[search]
grid = { l2 = [0.0, 1e-3, 1e-2, 1e-1] }
[cv]
folds = 3
[train]
epochs = 3
engine = "reference"   # one member at a time, so the kill lands between members
"""


def _sweep(config: Path, run_dir: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "reglab", "sweep", str(config), "--run-dir", str(run_dir), "-q"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.mark.slow
def test_sigkill_mid_sweep_then_resume_equals_an_uninterrupted_run(tmp_path):
    config = tmp_path / "sweep.toml"
    config.write_text(CONFIG)
    killed, clean = tmp_path / "killed", tmp_path / "clean"

    process = _sweep(config, killed)
    deadline = time.time() + 300
    while len(list((killed / "members").glob("*.parquet"))) < 3:
        assert process.poll() is None and time.time() < deadline, process.communicate()
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    survivors = {p.name: p.read_bytes() for p in (killed / "members").glob("*.parquet")}
    assert 3 <= len(survivors) < 12
    for name in survivors:  # every file that exists is whole
        pd.read_parquet(killed / "members" / name)

    resumed = subprocess.run([sys.executable, "-m", "reglab", "sweep", str(config), "--run-dir", str(killed), "-q"],
                             capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr
    for name, content in survivors.items():  # nothing complete was recomputed or rewritten
        assert (killed / "members" / name).read_bytes() == content
    assert not [p for p in (killed / "members").iterdir() if p.name.startswith(".")]  # no temporaries left

    uninterrupted = subprocess.run([sys.executable, "-m", "reglab", "sweep", str(config), "--run-dir", str(clean), "-q"],
                                   capture_output=True, text=True, timeout=600)
    assert uninterrupted.returncode == 0, uninterrupted.stderr
    columns = lambda f: [c for c in f.columns if c != "seconds"]  # noqa: E731
    a = pd.read_parquet(killed / "epochs.parquet").sort_values(["member", "epoch"]).reset_index(drop=True)
    b = pd.read_parquet(clean / "epochs.parquet").sort_values(["member", "epoch"]).reset_index(drop=True)
    assert len(a) == 12 * 3
    pd.testing.assert_frame_equal(a[columns(a)], b[columns(b)])
    assert RunDirectory(killed).read_json("test.json") == RunDirectory(clean).read_json("test.json")


def test_written_files_get_the_usual_permissions(tmp_path):
    import os

    from reglab.store import write_json

    write_json(tmp_path / "x.json", {"a": 1})
    mask = os.umask(0)
    os.umask(mask)
    assert (tmp_path / "x.json").stat().st_mode & 0o777 == 0o666 & ~mask
