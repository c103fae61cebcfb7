"""Successive halving inside a population: hopeless points stop at a rung and give their slots to points not yet
tried; the chosen point is the full grid's, trained exactly as it is there, for a fraction of the member-epochs."""

import keras
import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_digits

import reglab
from reglab.engine.checkpoints import Interrupted
from reglab.search.halving import Halving

X, Y = load_digits(return_X_y=True)
X = (X / 16).astype("float32")
GRID = {"l2": [0.0, 1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 1e-1, 3e-1]}


def build(point):
    return keras.Sequential(
        [
            keras.Input((64,)),
            keras.layers.Dense(32, activation="relu", kernel_regularizer=keras.regularizers.L2(point["l2"])),
            keras.layers.Dense(10, activation="softmax"),
        ]
    )


def sweep(**kwargs):
    return reglab.Sweep(build, grid=GRID, cv=3, epochs=9, seed=0, refit=False, **kwargs)


@pytest.mark.slow
def test_halving_chooses_the_full_grids_point_trained_as_there_for_a_third_of_the_member_epochs(tmp_path):
    full = sweep().run(X, Y)
    counted = []  # the stop callable is asked at every epoch boundary of the population's loop
    halved = sweep(prune="halving", eta=3).run(X, Y, run_dir=tmp_path / "run", stop=lambda: counted.append(1) and False)
    assert halved.best["params"] == full.best["params"]
    chosen = halved.best["point_id"]
    for table in ("epochs", "members"):  # the chosen point's members: as in the full grid (same seeds, folds)
        a, b = (t[t.point == chosen].reset_index(drop=True) for t in (getattr(halved, table), getattr(full, table)))
        pd.testing.assert_frame_equal(  # best_epoch is float where pruned members have none
            a.drop(columns="seconds"), b.drop(columns="seconds"), rtol=1e-5, atol=1e-6, check_dtype=False
        )
    assert len(halved.epochs) <= len(full.epochs) / 3  # member-epochs: 243 in the full grid
    stopped = halved.members[halved.members.status == "pruned"]
    assert set(stopped.epochs) <= {1, 3} and stopped.point.nunique() == len(GRID["l2"]) - 1
    finished = halved.members[halved.members.status == "ok"]
    assert set(finished.epochs) == {9} and set(finished.point) == {chosen}
    # a pruned member's last row says so, at a rung; its earlier rows are ordinary epochs
    last = halved.epochs.sort_values("epoch").groupby("member").tail(1).set_index("member").status
    assert (last[stopped.member] == "pruned").all()
    assert set(halved.summary.loc[halved.summary["rank"].isna(), "pruned"]) == {3}  # all its folds go together
    verdicts = halved.diagnosis.set_index("point").verdict
    assert (verdicts[stopped.point.unique()] == "pruned").all() and verdicts[chosen] != "pruned"
    report = (tmp_path / "run/report.html").read_text()
    assert "members ok / failed / diverged / pruned" in report and "stopped by successive halving after epoch" in report
    spent = f"{len(halved.epochs)} of the full grid's {len(full.epochs)} member-epochs"
    assert "8 of 9 configurations stopped early" in report and spent in report
    again = sweep(prune="halving", eta=3).run(X, Y, run_dir=tmp_path / "run")  # resumes: every member is stored
    assert "populations" not in again.timing and again.best == halved.best
    pd.testing.assert_frame_equal(again.summary, halved.summary)

    # stopped mid-training twice (at a rung's boundary, then between rungs), each run resumes from its checkpoint:
    # the slots, the scheduler's memory and the stopped members' states as they were — the uninterrupted tables
    for stop_at in (3, 2):
        asked = []
        with pytest.raises(Interrupted):
            sweep(prune="halving", eta=3).run(
                X, Y, run_dir=tmp_path / "cut", stop=lambda: asked.append(1) or len(asked) >= stop_at
            )
        assert list((tmp_path / "cut" / "checkpoints").glob("*.npz")) and not list((tmp_path / "cut").glob("members/*"))
    asked = []
    resumed = sweep(prune="halving", eta=3).run(X, Y, run_dir=tmp_path / "cut", stop=lambda: asked.append(1) and False)
    assert len(asked) == len(counted) - 5  # it went on from the loop's epoch 5, not from the start
    columns = [c for c in halved.epochs.columns if c != "seconds"]
    pd.testing.assert_frame_equal(resumed.epochs[columns], halved.epochs[columns], check_exact=True)  # bit for bit
    assert resumed.best == halved.best and not list((tmp_path / "cut" / "checkpoints").glob("*.npz"))


def test_bad_halving_settings_are_one_clear_error_before_any_work():
    for kwargs, message in (
        ({"prune": "hyperband!"}, r"`prune` is one of .*Received: prune='hyperband!'"),
        ({"prune": "halving", "eta": 1}, r"Received: eta=1"),
        ({"prune": "halving", "min_epochs": 9}, r"Received: min_epochs=9, epochs=9"),
        ({"prune": "halving", "executor": "process"}, r"population engine in this process.*executor='process'"),
        ({"prune": "halving", "engine": "reference"}, r"engine='reference'"),
    ):
        with pytest.raises(ValueError, match=message):
            sweep(**kwargs)


def test_rungs_and_the_rule_that_keeps_the_best_third():
    halving = Halving(eta=3, min_epochs=2)
    assert halving.rungs(30) == [2, 6, 18] and halving.rungs(2) == []
    recorded = {"a": 0.1, "b": 0.4, "c": 0.2, "d": np.nan, "e": 0.3, "f": 0.5}
    assert halving.keeps(recorded, {"b": 0.4, "c": 0.2, "d": np.nan}) == {"c"}  # 1/3 quantile (lower) is 0.2
    assert halving.keeps({"a": 0.1}, {"a": 0.1}) == {"a"}  # the first to arrive goes on


def test_a_halving_sweep_round_trips_through_its_config_and_the_toml_sections(tmp_path):
    from reglab.config import experiment

    config = sweep(prune="halving", eta=2, min_epochs=2).get_config()
    assert (config["prune"], config["eta"], config["min_epochs"]) == ("halving", 2, 2)
    again = reglab.Sweep.from_config(config, model=build)
    assert (
        again.halving == Halving(2, 2) and again.spec_hash() == sweep(prune="halving", eta=2, min_epochs=2).spec_hash()
    )
    assert sweep().spec_hash() != again.spec_hash()
    loaded = experiment({"data": {"source": "wine"}, "search": {"grid": {"l2": [0.0, 1e-2]}, "prune": "halving"}})
    assert loaded.sweep.halving == Halving(3, 1)
    with pytest.raises(ValueError, match=r"Received: eta=0"):
        experiment({"data": {"source": "wine"}, "search": {"grid": {"l2": [0.0]}, "prune": "halving", "eta": 0}})


@pytest.mark.slow
def test_hyperband_judges_its_brackets_points_first_at_different_epochs_and_trains_one_bracket_in_full():
    assert Halving(3, 1, "hyperband").brackets(9) == [(1, 9), (3, 5), (9, 3)]  # (first rung, shares)
    result = sweep(prune="hyperband").run(X, Y)
    finished = result.members[result.members.status == "ok"]
    stopped = result.members[result.members.status == "pruned"]
    assert set(finished.epochs) == {9} and set(stopped.epochs) <= {1, 3} and len(stopped)
    assert finished.point.nunique() >= 2  # at least the last bracket's points: never judged before epoch 9
    assert len(result.epochs) < 9 * 3 * 9 and result.best["point_id"] in set(finished.point)
    assert set(result.summary.dropna(subset=["rank"]).point) <= set(finished.point)
