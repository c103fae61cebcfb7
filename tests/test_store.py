"""The run directory: atomic writes, resume without recomputation, refusal of other sweeps, SIGKILL safety."""

import shutil
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
        return keras.Sequential(
            [
                keras.Input((30,)),
                keras.layers.Dense(8, activation="relu", kernel_regularizer=keras.regularizers.L2(point["l2"])),
                keras.layers.Dense(2, activation="softmax"),
            ]
        )


# a learning rate at which 2 epochs beat the constant predictor (else nothing could be selected)
KWARGS = dict(grid={"l2": [0.0, 0.1]}, cv=2, epochs=2, learning_rate=1e-2, test_size=0.2, standardize=True)


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """One finished sweep (KWARGS) in a run directory, shared by the tests below that start from one: its
    path, its result and how many models its builder made. Each test works on its own copy (`copy_of`)."""
    run_dir = tmp_path_factory.mktemp("finished") / "run"
    keras.backend.clear_session(free_memory=False)  # as conftest's _fresh_keras does for a test
    keras.utils.set_random_seed(0)
    builder = Builder()
    result = reglab.Sweep(builder, **KWARGS).run(X, Y, run_dir=run_dir)
    return run_dir, result, builder.calls


def copy_of(finished, tmp_path) -> Path:
    return Path(shutil.copytree(finished[0], tmp_path / "run"))


def test_resume_recomputes_nothing_and_refuses_other_sweeps_or_data(tmp_path, finished):
    run_dir = copy_of(finished, tmp_path)
    _, a, calls = finished
    kwargs = KWARGS
    assert calls == 1 + 4 + 1  # the probe, one model per member (2 points × 2 folds), the refit
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
grid = { l2 = [0.0, 1e-2] }
[cv]
folds = 2
[train]
epochs = 2
learning_rate = 0.01   # 2 epochs beat the constant predictor, so a point is selected, refit and tested
engine = "reference"   # one member at a time, so the kill lands between members
"""
MEMBERS, EPOCHS = 2 * 2, 2  # points × folds, and epochs, of CONFIG


def _sweep(config: Path, run_dir: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "reglab", "sweep", str(config), "--run-dir", str(run_dir), "-q"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.mark.slow
def test_sigkill_mid_sweep_then_resume_equals_an_uninterrupted_run(tmp_path):
    config = tmp_path / "sweep.toml"
    config.write_text(CONFIG)
    killed, clean = tmp_path / "killed", tmp_path / "clean"

    uninterrupted = _sweep(config, clean)  # the run to compare with, alongside (its own run directory)
    try:
        process = _sweep(config, killed)
        deadline = time.time() + 300
        while len(list((killed / "members").glob("*.parquet"))) < 2:
            assert process.poll() is None and time.time() < deadline, process.communicate()
            time.sleep(0.05)
        process.send_signal(signal.SIGKILL)
        process.wait()
        survivors = {p.name: p.read_bytes() for p in (killed / "members").glob("*.parquet")}
        assert 2 <= len(survivors) < MEMBERS  # killed between members: some done, some not
        for name in survivors:  # every file that exists is whole
            pd.read_parquet(killed / "members" / name)

        resumed = subprocess.run(
            [sys.executable, "-m", "reglab", "sweep", str(config), "--run-dir", str(killed), "-q"],
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert resumed.returncode == 0, resumed.stderr
        for name, content in survivors.items():  # nothing complete was recomputed or rewritten
            assert (killed / "members" / name).read_bytes() == content
        assert not [p for p in (killed / "members").iterdir() if p.name.startswith(".")]  # no temporaries left

        _, err = uninterrupted.communicate(timeout=600)
    finally:
        if uninterrupted.poll() is None:
            uninterrupted.kill()
            uninterrupted.communicate()
    assert uninterrupted.returncode == 0, err
    columns = lambda f: [c for c in f.columns if c != "seconds"]  # noqa: E731
    a = pd.read_parquet(killed / "epochs.parquet").sort_values(["member", "epoch"]).reset_index(drop=True)
    b = pd.read_parquet(clean / "epochs.parquet").sort_values(["member", "epoch"]).reset_index(drop=True)
    assert len(a) == MEMBERS * EPOCHS
    pd.testing.assert_frame_equal(a[columns(a)], b[columns(b)])
    assert RunDirectory(killed).read_json("test.json") == RunDirectory(clean).read_json("test.json")


def test_written_files_get_the_usual_permissions(tmp_path):
    import os

    from reglab.store import write_json

    write_json(tmp_path / "x.json", {"a": 1})
    mask = os.umask(0)
    os.umask(mask)
    assert (tmp_path / "x.json").stat().st_mode & 0o777 == 0o666 & ~mask


# --- a run directory in use is locked ------------------------------------------------------------

HOLD = """
import sys, time
from reglab.store import RunDirectory
store = RunDirectory(sys.argv[1])
store.lock() if sys.argv[2] == "lock" else store.open({"a": 1}, "hash", "data")
print("locked", flush=True)
time.sleep(float(sys.argv[3]))
store.close()
print("released", flush=True)
time.sleep(120)
"""


@pytest.fixture
def holder():
    """`holder(run_dir, seconds, how)`: a real process that takes the run directory's lock ("open" or
    "lock"), holds it `seconds`, releases it and lives on; killed at the end of the test."""
    started = []

    def start(run_dir, seconds, how="open"):
        process = subprocess.Popen(
            [sys.executable, "-c", HOLD, str(run_dir), how, str(seconds)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        started.append(process)
        assert process.stdout.readline() == "locked\n", process.communicate(timeout=60)
        return process

    yield start
    for process in started:
        if process.poll() is None:
            process.kill()
        process.communicate(timeout=60)


def test_a_run_directory_in_use_names_its_holder_and_a_killed_holder_frees_it(tmp_path, holder):
    import json
    import os
    import re
    import socket

    run_dir = tmp_path / "run"
    held = holder(run_dir, 300)
    with pytest.raises(ValueError) as caught:
        RunDirectory(run_dir).open({"a": 1}, "hash", "data")
    message = str(caught.value)
    assert re.search(
        rf"run directory {re.escape(str(run_dir))} is in use by process {held.pid} on host "
        rf"{re.escape(socket.gethostname())} since \d{{4}}-\d\d-\d\d",
        message,
    ), message
    assert "--run-dir" in message and "Received: run_dir=" in message and "\n" not in message

    held.send_signal(signal.SIGKILL)  # its flock dies with it; the holder record it leaves behind is stale
    held.wait(timeout=60)
    store = RunDirectory(run_dir)
    assert store.open({"a": 1}, "hash", "data") == 0
    assert json.loads((run_dir / ".lock.json").read_text())["pid"] == os.getpid()
    store.close()
    assert not (run_dir / ".lock.json").exists()


def test_waiting_for_a_run_directory_proceeds_once_its_holder_releases_it(tmp_path, holder):
    run_dir = tmp_path / "run"
    held = holder(run_dir, 3)
    start = time.monotonic()
    with pytest.warns(UserWarning, match="waiting up to 0.5 s"), pytest.raises(ValueError, match=f"process {held.pid}"):
        RunDirectory(run_dir).open({"a": 1}, "hash", "data", wait=0.5)
    assert 0.4 < time.monotonic() - start < 3
    with pytest.warns(UserWarning, match=f"in use by process {held.pid}.*waiting up to 60 s"):
        with RunDirectory(run_dir) as store:
            store.open({"a": 1}, "hash", "data", wait=60)
            waited = time.monotonic() - start
            assert held.stdout.readline() == "released\n" and held.poll() is None  # released, not dead
    assert 1.5 < waited < 30


def test_a_sweep_releases_its_run_directory_even_when_it_fails(tmp_path):
    from filelock import FileLock

    run_dir = tmp_path / "run"
    kwargs = dict(
        grid={"l2": [0.0, 0.1]}, cv=2, epochs=2, learning_rate=0.01, refit=False, standardize=True, engine="reference"
    )  # one member at a time: the failure comes after the first
    with pytest.raises(ValueError, match="Received: wait_for_lock=-1"):
        reglab.Sweep(Builder(), **kwargs).run(X, Y, run_dir=run_dir, wait_for_lock=-1)
    assert not run_dir.exists()

    def stop(done, total, member):
        raise RuntimeError("stopped by the progress callback")

    with pytest.raises(RuntimeError, match="stopped"):
        reglab.Sweep(Builder(), **kwargs).run(X, Y, run_dir=run_dir, progress=stop, wait_for_lock=0)
    assert len(list((run_dir / "members").glob("*.parquet"))) == 1
    FileLock(run_dir / ".lock").acquire(timeout=0).lock.release()  # free again
    assert not (run_dir / ".lock.json").exists()


SMALL = """
name = "small"
seed = 0
[data]
source = "breast_cancer"
test_size = 0.2
[model]
hidden = [8]
[search]
grid = { l2 = [0.0, 1e-2] }
[cv]
holdout = 0.25
[train]
epochs = 2
"""


def _cli(*args, **kwargs):
    return subprocess.run(
        [sys.executable, "-m", "reglab", *map(str, args)], capture_output=True, text=True, timeout=300, **kwargs
    )


@pytest.mark.slow
def test_two_sweeps_on_one_run_directory_the_second_exits_2_or_waits(tmp_path):
    config = tmp_path / "small.toml"
    config.write_text(SMALL)
    run_dir = tmp_path / "run"
    first = _sweep(config, run_dir)
    deadline = time.time() + 300
    while not (run_dir / ".lock.json").exists():
        assert first.poll() is None and time.time() < deadline, first.communicate()
        time.sleep(0.02)
    first.send_signal(signal.SIGSTOP)  # the holder pauses with the lock held
    try:
        errors = tmp_path / "waiting.err"
        with open(errors, "w") as sink:  # a third one, started alongside the second, waits
            waiting = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "reglab",
                    "sweep",
                    str(config),
                    "--run-dir",
                    str(run_dir),
                    "-q",
                    "--wait",
                    "300",
                ],
                stdout=subprocess.PIPE,
                stderr=sink,
                text=True,
            )
        second = _cli("sweep", config, "--run-dir", run_dir, "-q")
        assert second.returncode == 2, (second.stdout, second.stderr)
        lines = second.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("reglab: error: run directory"), second.stderr
        assert f"is in use by process {first.pid} on host" in lines[0] and "Traceback" not in second.stderr

        while "waiting up to 300 s" not in errors.read_text():
            assert waiting.poll() is None and time.time() < deadline, (waiting.communicate(), errors.read_text())
            time.sleep(0.05)
    finally:
        first.send_signal(signal.SIGCONT)
    out, err = first.communicate(timeout=300)
    assert first.returncode == 0, err
    out, _ = waiting.communicate(timeout=300)
    assert waiting.returncode == 0, errors.read_text()
    assert "selected: l2=" in out  # it resumed the finished directory


@pytest.mark.slow
def test_report_of_a_run_directory_in_use_shows_it_and_writes_nothing(tmp_path, holder, finished):
    run_dir = copy_of(finished, tmp_path)
    (run_dir / "summary.json").unlink()
    held = holder(run_dir, 300, how="lock")
    shown = _cli("report", run_dir)
    assert shown.returncode == 0, shown.stderr
    assert "selected: l2=" in shown.stdout
    lines = shown.stderr.strip().splitlines()
    assert len(lines) == 1 and f"in use by process {held.pid}" in lines[0] and "nothing was rewritten" in lines[0]
    assert not (run_dir / "summary.json").exists()


# --- a damaged run directory heals ---------------------------------------------------------------


def test_a_damaged_member_or_histogram_file_is_quarantined_and_that_member_trained_again(tmp_path, finished):
    kwargs = KWARGS
    run_dir = copy_of(finished, tmp_path)
    clean = finished[1]
    clean_epochs = pd.read_parquet(run_dir / "epochs.parquet")
    files = sorted((run_dir / "members").glob("*.parquet"))
    truncated, other = files[0], files[-1]
    truncated.write_bytes(truncated.read_bytes()[: truncated.stat().st_size // 2])
    (run_dir / "histograms" / other.name).write_bytes(b"not a parquet file")

    trained = []
    with pytest.warns(UserWarning) as caught:
        healed = reglab.Sweep(Builder(), **kwargs).run(
            X, Y, run_dir=run_dir, progress=lambda done, total, member: trained.append(member)
        )
    damaged = [str(w.message) for w in caught if "is damaged" in str(w.message)]
    assert len(damaged) == 2, damaged
    assert any(f"members/{truncated.name} is damaged" in m and "trained again" in m for m in damaged), damaged
    assert any(f"histograms/{other.name} is damaged" in m and "trained again" in m for m in damaged), damaged
    assert sorted(trained) == sorted([truncated.stem, other.stem])  # just those two members
    quarantined = sorted(
        p.relative_to(run_dir / "quarantine").as_posix() for p in (run_dir / "quarantine").rglob("*") if p.is_file()
    )
    assert [q.rsplit(".", 1)[0] for q in quarantined] == sorted(
        [f"members/{truncated.name}", f"members/{other.name}", f"histograms/{other.name}"]
    )
    pd.read_parquet(truncated), pd.read_parquet(run_dir / "histograms" / other.name)  # whole again

    def same(a, b):
        keep = [c for c in a.columns if "seconds" not in c]
        pd.testing.assert_frame_equal(a[keep].reset_index(drop=True), b[keep].reset_index(drop=True))

    same(clean.epochs, healed.epochs)
    same(clean.summary, healed.summary)
    same(clean.histograms, healed.histograms)
    same(clean_epochs, pd.read_parquet(run_dir / "epochs.parquet"))
    assert clean.test == healed.test
    from filelock import FileLock

    FileLock(run_dir / ".lock").acquire(timeout=0).lock.release()  # a finished run leaves the directory free
    assert not (run_dir / ".lock.json").exists()


DAMAGED_SPECS = [
    (b'{"spec": {"a": 1}, "spec_ha', "not JSON"),
    (b"", "not JSON"),
    (b"\xff\xfe\x00garbage", "not JSON"),
    (b"[1, 2]", "not a JSON object"),
    (b'{"spec": {}}', "missing"),
]


@pytest.mark.parametrize("content, problem", DAMAGED_SPECS, ids=["truncated", "empty", "binary", "list", "keys"])
def test_a_damaged_spec_is_named_with_what_to_do(tmp_path, content, problem):
    from filelock import FileLock

    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "spec.json").write_bytes(content)
    for call in (lambda: RunDirectory(run_dir).open({"a": 1}, "hash", "data"), lambda: RunDirectory(run_dir).spec()):
        with pytest.raises(ValueError) as caught:
            call()
        message = str(caught.value)
        assert f"{run_dir / 'spec.json'} is damaged ({problem}" in message, message
        assert "delete the run directory or choose another --run-dir" in message and "\n" not in message
    assert (run_dir / "spec.json").read_bytes() == content
    FileLock(run_dir / ".lock").acquire(timeout=0).lock.release()  # the refusal released the lock


@pytest.mark.slow
def test_the_cli_on_a_damaged_spec_exits_2_with_one_line(tmp_path):
    config = tmp_path / "small.toml"
    config.write_text(SMALL)
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "spec.json").write_text('{"spec": {"name": "sm')
    result = _cli("sweep", config, "--run-dir", run_dir, "-q")  # (`reglab report` reads it with the same check)
    assert result.returncode == 2, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "spec.json is damaged" in lines[0] and "Traceback" not in result.stderr, lines
    assert sorted(p.name for p in run_dir.iterdir() if p.name != ".lock") == ["spec.json"]
