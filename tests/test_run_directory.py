"""A run directory holds only what belongs to it: strangers are quarantined, killed writes' temporaries
removed, a first write killed before its spec landed resumes; a sweep in which nothing can be chosen
still writes its tables and report and says why."""

import json
import subprocess
import sys

import pytest
from sklearn.datasets import load_wine

import reglab
from reglab.models import MLP

X, Y = load_wine(return_X_y=True)


def sweep(grid=None, learning_rate=1e-2):
    return reglab.Sweep(
        MLP(hidden=[8]).bind(13, 3),
        grid=grid or {"l2": [0.0, 1e-2]},
        cv=2,
        epochs=2,
        refit=False,
        standardize=True,
        learning_rate=learning_rate,
        seed=0,
    )


@pytest.mark.slow
def test_a_member_file_from_another_sweep_is_quarantined_and_never_read(tmp_path):
    sweep().run(X, Y, run_dir=tmp_path / "ours")
    sweep({"l2": [0.1]}).run(X, Y, run_dir=tmp_path / "theirs")
    stranger = next((tmp_path / "theirs" / "members").glob("*.parquet"))
    (tmp_path / "ours" / "members" / stranger.name).write_bytes(stranger.read_bytes())
    with pytest.warns(UserWarning, match="is not a member of this sweep"):
        result = sweep().run(X, Y, run_dir=tmp_path / "ours")
    assert set(result.members.l2) == {0.0, 1e-2} and len(result.members) == 4
    summary = json.loads((tmp_path / "ours" / "summary.json").read_text())
    assert {row["l2"] for row in summary["summary"]} == {0.0, 1e-2}
    assert list((tmp_path / "ours" / "quarantine" / "members").glob(f"{stranger.name}.*"))


def test_temporaries_of_a_killed_write_are_removed_and_a_lone_temporary_spec_resumes(tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / ".spec.json.k1ll3d00.tmp").write_text('{"spec": {"mod')  # a first write killed midway
    sweep().run(X, Y, run_dir=run_dir)  # resumable: not "not a reglab run directory"
    leftovers = [
        run_dir / ".epochs.parquet.abcdefgh.tmp",
        run_dir / "members" / ".x.parquet.abcdefgh.tmp",
        run_dir / ".best_model.keras.abcdefgh.keras",
    ]
    for file in leftovers:
        file.write_bytes(b"half a file")
    (run_dir / "notes.txt").write_text("the user's own file stays")
    sweep().run(X, Y, run_dir=run_dir)
    assert not any(file.exists() for file in leftovers) and (run_dir / "notes.txt").exists()


WINE = (
    'name = "{name}"\n[data]\nsource = "wine"\n[model]\nhidden = [8]\n[search]\ngrid = {{ {grid} }}\n'
    "[cv]\nfolds = 2\n[train]\nepochs = 3\nlearning_rate = {learning_rate}\n"
)


def _sweep_cli(tmp_path, run_dir=None, name="wine", grid="l2 = [0.0, 1e-2]", learning_rate=0.03):
    """`reglab sweep` in a subprocess on a small wine config."""
    config = tmp_path / f"{name}.toml"
    config.write_text(WINE.format(name=name, grid=grid, learning_rate=learning_rate))
    return subprocess.run(
        [sys.executable, "-m", "reglab", "sweep", str(config), "--run-dir", str(run_dir or tmp_path / "run"), "-q"],
        capture_output=True,
        text=True,
        timeout=600,
    )


def _report_cli(run_dir):
    return subprocess.run(
        [sys.executable, "-m", "reglab", "report", str(run_dir)], capture_output=True, text=True, timeout=600
    )


@pytest.mark.slow
def test_when_nothing_can_be_chosen_the_tables_and_report_are_written_and_the_cli_says_why(tmp_path):
    """Members that trained and learned nothing are a finding: the sweep writes everything, says in one line why
    nothing was chosen and what to change, and exits 1; `reglab report` says the same of the directory, also
    of one a killed sweep left half-written (no summary, no report, a member missing)."""
    done = _sweep_cli(tmp_path, name="blown", learning_rate=1e6)  # every point blows up
    assert done.returncode == 1, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "nothing to select" in lines[0] and "Traceback" not in done.stderr
    assert lines[0].startswith("reglab: warning: ") and "decrease the learning rate" in lines[0]
    written = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert written["best"] is None and written["nothing_selected"]
    assert "Nothing selected" in (tmp_path / "run" / "report.html").read_text()
    assert "selected: nothing" in done.stdout
    for file in ("summary.json", "report.html", "plan.json"):  # as a sweep killed before its end leaves it
        (tmp_path / "run" / file).unlink()
    next((tmp_path / "run" / "members").glob("*.parquet")).unlink()
    shown = _report_cli(tmp_path / "run")
    lines = [line for line in shown.stderr.splitlines() if line.strip()]
    assert shown.returncode == 1 and "Traceback" not in shown.stderr, shown.stderr
    assert len(lines) == 1 and lines[0].startswith("reglab: warning: no configuration could be chosen"), lines
    assert "3 members" in shown.stdout and json.loads((tmp_path / "run" / "summary.json").read_text())["best"] is None


@pytest.mark.slow
def test_the_cli_turns_warnings_into_one_reglab_line_each_and_keeps_them_in_the_log(tmp_path):
    # a learning rate of 1e6 learns nothing: selection warns that it excluded that point
    done = _sweep_cli(tmp_path, name="stuck", grid="l2 = [0.0], learning_rate = [0.03, 1e6]")
    assert done.returncode == 0, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert lines and all(line.startswith("reglab: warning: ") for line in lines), lines  # one line each, ours
    assert sum("excluded from selection" in line for line in lines) == 1  # said once, not once per rendering
    assert "excluded from selection" in (tmp_path / "run" / "log.txt").read_text()
    shown = _report_cli(tmp_path / "run")  # `reglab report` routes warnings the same way
    lines = [line for line in shown.stderr.splitlines() if line.strip()]
    assert shown.returncode == 0 and lines and all(line.startswith("reglab: warning: ") for line in lines), lines
    assert sum("excluded from selection" in line for line in lines) == 1


@pytest.fixture
def small_disk(tmp_path):
    """A 1 MB tmpfs (root only; skipped elsewhere), unmounted afterwards."""
    import os

    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    mount = tmp_path / "disk"
    mount.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)], capture_output=True).returncode:
        pytest.skip("cannot mount a tmpfs here")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], capture_output=True)


@pytest.mark.slow
def test_a_full_disk_is_one_line_and_leaves_every_written_file_whole(small_disk, tmp_path):
    done = _sweep_cli(tmp_path, small_disk / "run", name="full")  # the report (~5 MB) cannot fit in 1 MB
    lines = [line for line in done.stderr.splitlines() if line.strip() and not line.startswith("reglab: warning:")]
    assert done.returncode == 1 and len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
    assert "No space left on device" in lines[0] and "Received: run_dir=" in lines[0]
    assert json.loads((small_disk / "run" / "spec.json").read_text())["spec_hash"]  # what was written is whole
    import pandas as pd

    for member in (small_disk / "run" / "members").glob("*.parquet"):
        assert len(pd.read_parquet(member))
    assert not [p for p in (small_disk / "run").rglob(".*") if p.name not in (".lock", ".lock.json")]  # no temporaries


def test_a_read_only_disk_is_refused_before_any_work(small_disk, tmp_path):
    if subprocess.run(["mount", "-o", "remount,ro", str(small_disk)], capture_output=True).returncode:
        pytest.skip("cannot remount read-only here")
    done = _sweep_cli(tmp_path, small_disk / "run", name="ro")
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert done.returncode == 2 and len(lines) == 1 and "not writable" in lines[0], done.stderr
    assert not (small_disk / "run").exists()
