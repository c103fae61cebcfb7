"""Optuna studies as populations (`reglab.search.studies`): trials asked a round at a time, trained together with
k-fold CV, told their fold mean with every epoch's as intermediate values; halved inside the population; a stored
study resumed without zombie trials; bad settings refused before any work."""

import json
import math

import keras
import optuna
import pandas as pd
import pytest

import reglab
from reglab.engine.checkpoints import Interrupted
from reglab.search import Optuna
from reglab.search.studies import Trials

optuna.logging.set_verbosity(optuna.logging.WARNING)
SPACE = {"l2": {"log_uniform": [1e-5, 1e-1]}, "dropout": {"uniform": [0.0, 0.5]}}


def build(point):
    return keras.Sequential(
        [
            keras.Input((64,)),
            keras.layers.Dense(16, activation="relu", kernel_regularizer=keras.regularizers.L2(point["l2"])),
            keras.layers.Dropout(point["dropout"]),
            keras.layers.Dense(10, activation="softmax"),
        ]
    )


def plain():
    return keras.Sequential([keras.Input((64,)), keras.layers.Dense(16, activation="relu"), keras.layers.Dense(10)])


def softmax():
    return keras.Sequential(
        [keras.Input((64,)), keras.layers.Dense(16, activation="relu"), keras.layers.Dense(10, activation="softmax")]
    )


def sweep(search, **kwargs):
    settings = dict(cv=3, epochs=4, learning_rate=3e-3, seed=0)
    return reglab.Sweep(build, search=search, **{**settings, **kwargs})


def test_a_study_is_asked_a_round_at_a_time_each_round_one_population_each_trial_told_its_fold_mean(digits):
    x, y = digits
    study = optuna.create_study(sampler=optuna.samplers.TPESampler(seed=0, n_startup_trials=4))
    result = sweep(Optuna(SPACE, n_trials=8, population=4, study=study)).run(x, y)
    trials = study.trials
    assert [t.state for t in trials] == [optuna.trial.TrialState.COMPLETE] * 8
    assert result.timing["populations"] == 2  # one a round: every trial of a round, on every fold, together
    first, second = trials[:4], trials[4:]
    assert min(t.datetime_start for t in second) > max(t.datetime_complete for t in first)  # told, then asked
    summary = result.summary.set_index("point")
    curves = result.epochs.groupby(["point", "epoch"]).val_loss.mean()
    for trial in trials:
        pid = reglab.space.point_id(trial.params)
        assert trial.user_attrs["reglab_point"] == pid
        assert trial.value == pytest.approx(summary.loc[pid, "val_loss_mean"], rel=1e-9)  # the mean over 3 folds
        assert summary.loc[pid, "members"] == 3
        assert sorted(trial.intermediate_values) == [1, 2, 3, 4]
        for epoch, value in trial.intermediate_values.items():
            assert value == pytest.approx(curves[(pid, epoch)], rel=1e-9)
    assert len(result.summary) == 8 and result.best["params"] in [dict(t.params) for t in trials]
    assert result.best["score"]["val_loss"] == pytest.approx(study.best_value)  # all learning: the same choice


def test_halving_inside_each_rounds_population_tells_the_stopped_trials_pruned(digits):
    x, y = digits
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=1))
    result = sweep(Optuna(SPACE, n_trials=6, population=6, study=study), epochs=6, prune="halving").run(x, y)
    states = [t.state for t in study.trials]
    pruned = [t for t in study.trials if t.state == optuna.trial.TrialState.PRUNED]
    assert states.count(optuna.trial.TrialState.COMPLETE) >= 1 and pruned
    summary = result.summary.set_index("point")
    for trial in pruned:  # reported up to the rung where it stopped, never chosen
        pid = reglab.space.point_id(trial.params)
        assert summary.loc[pid, "pruned"] == 3 and math.isnan(summary.loc[pid, "rank"])
        assert max(trial.intermediate_values) < 6
    assert result.best is not None and summary.loc[result.best["point_id"], "pruned"] == 0
    member_epochs = result.members.epochs.sum()
    assert member_epochs < 6 * 3 * 6  # fewer than every trial on every fold for every epoch


def test_with_halving_the_sampler_refills_freed_slots_one_trial_at_a_time_knowing_the_trials_that_stopped(digits):
    """`prune="halving"` with a study: the round's `population` trials start together; when halving stops one, it
    is told PRUNED at once (its fold means so far reported), and its slots go to a trial asked then — the sampler
    has seen it —, admitted into the running population without compiling again. One population trains every
    trial; each is told exactly what the sweep's tables say."""
    x, y = digits
    study = optuna.create_study(sampler=optuna.samplers.TPESampler(seed=0, n_startup_trials=3))
    result = sweep(Optuna(SPACE, n_trials=9, population=3, study=study), epochs=6, prune="halving").run(x, y)
    trials = study.trials
    assert len(trials) == 9 and len(result.summary) == 9
    timing = result.timing  # one population, one program: the late trials admitted into it
    assert timing["populations"] == 1 and timing.get("traced_epochs", 0) + timing.get("read_epochs", 0) == 1
    told = sorted(t.datetime_complete for t in trials)
    for trial in trials[3:]:  # asked during training, after a trial had stopped and been told
        assert trial.datetime_start > told[0]
        assert trial.datetime_start > min(t.datetime_complete for t in trials if t.number < trial.number)
    summary = result.summary.set_index("point")
    curves = result.epochs.groupby(["point", "epoch"]).val_loss.mean()
    states = [t.state.name for t in trials]
    assert "PRUNED" in states and "COMPLETE" in states
    for trial in trials:
        pid = trial.user_attrs["reglab_point"]
        assert summary.loc[pid, "members"] == 3
        steps = sorted(trial.intermediate_values)
        assert steps == list(range(1, len(steps) + 1))
        for epoch, value in trial.intermediate_values.items():
            assert value == pytest.approx(curves[(pid, epoch)], rel=1e-9)
        if trial.state.name == "PRUNED":
            assert summary.loc[pid, "pruned"] == 3 and len(steps) < 6 and math.isnan(summary.loc[pid, "rank"])
        else:
            assert len(steps) == 6 and trial.value == pytest.approx(summary.loc[pid, "val_loss_mean"], rel=1e-9)
    assert result.best["point_id"] in {t.user_attrs["reglab_point"] for t in trials if t.state.name == "COMPLETE"}
    assert result.members.epochs.sum() < 9 * 3 * 6


def test_a_stored_study_stopped_mid_round_replays_its_asks_and_reaches_the_uninterrupted_decisions(digits, tmp_path):
    """Stopped after trials were asked and told during a round: run again, the round is replayed — the points it
    asked, in order (those told before the stop not told again, those left running told FAIL and asked again) —, so
    that the same trials stop at the same rungs and the sampler is asked what it was asked uninterrupted."""
    x, y = digits
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    stored = Optuna(SPACE, n_trials=7, population=3, sampler="random", storage=storage, study_name="refill")

    def trials():
        return optuna.load_study(study_name="refill", storage=storage).trials

    with pytest.raises(Interrupted):  # a trial asked into a freed slot, then stopped
        sweep(stored, epochs=6, prune="halving").run(x, y, run_dir=tmp_path / "run", stop=lambda: len(trials()) >= 5)
    before = trials()
    assert {t.state.name for t in before} >= {"RUNNING", "PRUNED"} and len(before) >= 5
    resumed = sweep(stored, epochs=6, prune="halving").run(x, y, run_dir=tmp_path / "run")
    after = trials()
    assert not [t for t in after if t.state.name == "RUNNING"]
    mine = {}  # each ask's last trial: the resumed run's
    for t in after:
        mine[t.user_attrs["reglab_ask"]] = t
    assert sorted(mine) == list(range(7))
    for t in before:  # the same point at each ask; told before the stop: kept, not told again
        assert mine[t.user_attrs["reglab_ask"]].params == t.params
        if t.state.name in ("PRUNED", "COMPLETE"):
            assert mine[t.user_attrs["reglab_ask"]].number == t.number
    whole = sweep(Optuna(SPACE, n_trials=7, population=3, sampler="random"), epochs=6, prune="halving").run(x, y)
    # each run's epoch read back from the disk (the first one's) knows what its trace asked of the dropout rates:
    # every trial asked late is admitted (a refused one would train in a second population)
    assert resumed.timing["populations"] == whole.timing["populations"] == 1 and whole.timing["read_epochs"] == 1
    assert resumed.best == whole.best and resumed.best_1se == whole.best_1se
    pd.testing.assert_frame_equal(
        resumed.summary.drop(columns="seconds_mean", errors="ignore"),
        whole.summary.drop(columns="seconds_mean", errors="ignore"),
    )


def test_a_study_stopped_after_trials_joined_the_population_resumes_from_its_checkpoint_bit_for_bit(digits, tmp_path):
    """The checkpoint of a population whose freed slots took trials asked during training keeps those members
    (identity, point, seed, rows): run again, they are admitted again before the state is restored, the study is
    told again what it knew at the checkpoint (its replayed trials, the stopped ones), and training goes on from
    the epoch it stopped at — to the uninterrupted run's tables, bit for bit."""
    x, y = digits
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    stored = Optuna(SPACE, n_trials=7, population=3, sampler="random", storage=storage, study_name="resume")

    def trials():
        return optuna.load_study(study_name="resume", storage=storage).trials

    counted = []  # the stop callable is asked at every epoch boundary of the population's loop
    whole = sweep(Optuna(SPACE, n_trials=7, population=3, sampler="random"), epochs=6, prune="halving").run(
        x, y, run_dir=tmp_path / "whole", stop=lambda: counted.append(1) and False
    )
    asked = []
    with pytest.raises(Interrupted):  # stopped two boundaries after trials were asked into freed slots
        sweep(stored, epochs=6, prune="halving").run(
            x, y, run_dir=tmp_path / "run", stop=lambda: asked.append(len(trials())) or asked[-3:][0] > 3
        )
    assert len(trials()) > 3 and list((tmp_path / "run" / "checkpoints").glob("*.npz"))
    again = []
    resumed = sweep(stored, epochs=6, prune="halving").run(
        x, y, run_dir=tmp_path / "run", stop=lambda: again.append(1) and False
    )
    assert len(again) == len(counted) - len(asked)  # it went on from the boundary it stopped at
    assert not [t for t in trials() if t.state.name == "RUNNING"]
    columns = [c for c in whole.epochs.columns if c != "seconds"]
    pd.testing.assert_frame_equal(resumed.epochs[columns], whole.epochs[columns], check_exact=True)
    assert resumed.best == whole.best and resumed.best_1se == whole.best_1se


def test_a_stored_study_stopped_resumes_to_the_uninterrupted_decisions_and_leaves_no_trial_of_its_own_running(
    digits, tmp_path
):
    x, y = digits
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    optuna.create_study(storage=storage, study_name="l2").ask()  # another process's trial, running: left alone
    space = {"l2": {"log_uniform": [1e-5, 1e-1]}, "dropout": [0.0]}
    stored = Optuna(space, n_trials=4, population=2, storage=storage, study_name="l2")

    def trials():
        return optuna.load_study(study_name="l2", storage=storage).trials

    with pytest.raises(Interrupted):  # stopped in the second round: two trials told, two asked
        sweep(stored).run(x, y, run_dir=tmp_path / "run", stop=lambda: len(trials()) == 5)
    assert [t.state.name for t in trials()] == ["RUNNING", "COMPLETE", "COMPLETE", "RUNNING", "RUNNING"]
    resumed = sweep(stored).run(x, y, run_dir=tmp_path / "run")
    states = [t.state.name for t in trials()]  # the stopped round's trials told FAIL and asked again
    assert states == ["RUNNING", "COMPLETE", "COMPLETE", "FAIL", "FAIL", "COMPLETE", "COMPLETE"]
    assert [t.params for t in trials()[5:]] == [t.params for t in trials()[3:5]]  # the round asked again as before
    report = (tmp_path / "run" / "report.html").read_text()
    assert "Optuna study</b>: 4 trials (tpe), asked 2 at a time" in report and "kept in sqlite:///" in report
    whole = sweep(Optuna(space, n_trials=4, population=2)).run(x, y)  # in memory, never stopped
    assert resumed.best == whole.best and resumed.best_1se == whole.best_1se
    pd.testing.assert_frame_equal(
        resumed.summary.drop(columns="seconds_mean", errors="ignore"),
        whole.summary.drop(columns="seconds_mean", errors="ignore"),
    )


def test_bad_study_settings_are_refused_before_any_work():
    cases = [
        (lambda: Optuna({}), r"`space` is a non-empty dict.*Received: space=\{\}"),
        (lambda: Optuna(SPACE, sampler="bayes"), r"`sampler` is one of .*Received: sampler='bayes'"),
        (lambda: Optuna(SPACE, population=0), r"population.*Received: population=0"),
        (lambda: Optuna(SPACE, n_trials=0), r"n_trials.*Received: n_trials=0"),
        (lambda: Optuna({"l2": {"normal": [0, 1]}}), r"Received: random\['l2'\]=\{'normal': \[0, 1\]\}"),
        (lambda: Optuna(SPACE, study=optuna.create_study(), storage="sqlite://"), r"Received: sampler='tpe', storage"),
        (lambda: sweep(Optuna(SPACE), refine=1), r"`refine` refines a grid .*Received: refine=1"),
        (
            lambda: reglab.Sweep(build, grid={"l2": [0.0]}, search=Optuna(SPACE)),
            r"exactly one of .*\['grid', 'search'\]",
        ),
        (
            lambda: sweep({"optuna": {"space": SPACE, "trials": 3}}),
            r"optuna takes `space`.*Received: unknown \['trials'\]",
        ),
        (lambda: reglab.Sweep(plain(), search=Optuna({"l3": [0.1]})), r"l3"),  # a key reglab cannot apply
        (lambda: Optuna(SPACE, objectives=["val_loss"]), r"two or more .*Received: objectives=\['val_loss'\]"),
        (lambda: Optuna(SPACE, objectives=["val_loss", "size"]), r"Received: objectives=\['val_loss', 'size'\]"),
        (
            lambda: sweep(Optuna(SPACE, objectives=["zeros", "val_loss"])),
            r"`select`.*'val_loss' first. Received: objectives=\['zeros', 'val_loss'\]",
        ),
        (
            lambda: sweep(Optuna(SPACE, objectives=["val_loss", "zeros"]), prune="optuna"),
            r"one objective.*Received: prune='optuna' with objectives",
        ),
        (
            lambda: Trials(
                Optuna(SPACE, objectives=["val_loss", "zeros"], study=optuna.create_study()),
                "val_loss",
                "min",
                0,
                modes=["min", "max"],
            ),
            r"directions must be the objectives'.*Received: directions=\['minimize'\]",
        ),
    ]
    for make, message in cases:
        with pytest.raises(ValueError, match=message):
            make()


def test_a_study_from_the_config_file_and_from_get_config_is_the_same_sweep(digits, tmp_path):
    from reglab import config

    toml = """
name = "digits-study"
[data]
source = "digits"
[model]
hidden = [16]
[search]
optuna = { space = { l2 = { log_uniform = [1e-5, 1e-1] } }, n_trials = 4, population = 2, sampler = "random" }
[cv]
folds = 3
[train]
epochs = 2
"""
    checked = config.validate(__import__("tomllib").loads(toml))
    made = config.build(checked).sweep
    assert made.search.to_config() == {
        "optuna": {"space": {"l2": {"log_uniform": [1e-5, 0.1]}}, "n_trials": 4, "population": 2, "sampler": "random"}
    }
    again = reglab.Sweep.from_config(made.get_config())
    assert again.spec_hash() == made.spec_hash() and again.search.to_config() == made.search.to_config()
    other = reglab.Sweep.from_config(
        {**made.get_config(), "search": {"optuna": {**made.search.to_config()["optuna"], "n_trials": 5}}}
    )
    assert other.spec_hash() != made.spec_hash()  # another study is another sweep


def test_the_studys_own_pruner_decides_inside_the_population_and_prunes_nothing_before_a_trial_completes(digits):
    """prune="optuna": after every epoch each trial reports its fold mean and `should_prune()` stops its folds. A
    median pruner compares a trial with the *completed* trials at that step: the first trials train alongside each
    other and none has completed, so it prunes none of them; the trials asked into the slots they free (one
    population, told as they stop) are judged against them, and some are pruned."""
    x, y = digits
    study = optuna.create_study(
        sampler=optuna.samplers.RandomSampler(seed=0), pruner=optuna.pruners.MedianPruner(n_startup_trials=2)
    )
    search = Optuna(SPACE, n_trials=12, population=4, study=study)
    result = sweep(search, epochs=6, prune="optuna").run(x, y)
    states = [t.state.name for t in study.trials]
    assert states[:4] == ["COMPLETE"] * 4  # the first trials: nothing completed to compare with
    pruned = [t for t in study.trials[4:] if t.state.name == "PRUNED"]
    assert pruned and len(result.summary) == 12 and result.timing["populations"] == 1
    first_done = min(t.datetime_complete for t in study.trials[:4])
    assert all(t.datetime_start > first_done for t in study.trials[4:])  # asked into freed slots
    summary = result.summary.set_index("point")
    for trial in pruned:  # reported at every epoch it trained (once each), stopped there, never chosen
        steps = sorted(trial.intermediate_values)
        assert steps == list(range(1, len(steps) + 1)) and len(steps) < 6
        pid = reglab.space.point_id(trial.params)
        assert summary.loc[pid, "pruned"] == 3 and math.isnan(summary.loc[pid, "rank"])
    assert result.members.epochs.sum() < 12 * 3 * 6
    with pytest.raises(ValueError, match=r"prune='optuna' is a study's pruner.*Received: prune='optuna'"):
        reglab.Sweep(build, grid={"l2": [0.0]}, prune="optuna")


def test_an_in_memory_study_is_made_quietly_a_stored_one_is_announced(tmp_path):
    import logging

    said = []
    handler = logging.Handler()
    handler.emit = lambda record: said.append(record.getMessage())
    logging.getLogger("optuna").addHandler(handler)
    optuna.logging.set_verbosity(optuna.logging.INFO)  # Optuna's default
    try:
        Optuna(SPACE).strategy("val_loss", "min", seed=0)
        assert not [line for line in said if "A new study created" in line]
        assert optuna.logging.get_verbosity() == optuna.logging.INFO  # the user's setting, given back
        Optuna(SPACE, storage=f"sqlite:///{tmp_path / 'study.db'}", study_name="mine").strategy("val_loss", "min", 0)
        assert [line for line in said if "A new study created in RDB with name: mine" in line]
    finally:
        logging.getLogger("optuna").removeHandler(handler)
        optuna.logging.set_verbosity(optuna.logging.WARNING)


def test_two_objectives_validation_loss_and_exact_sparsity_give_the_pareto_front_in_the_result_and_report(
    digits, tmp_path, capsys
):
    """NSGA-II on validation loss against exact zeros (proximal L1 makes them): every trial told both fold means,
    the front is the non-dominated choosable points (checked by brute force), the same in summary.json, in
    `reglab report`'s recomputation and drawn in report.html; the choice is still the lowest validation loss."""
    from reglab.show import report

    x, y = digits
    search = Optuna(
        {"prox_l1": {"log_uniform": [1e-5, 3e-2]}},
        n_trials=8,
        population=4,
        sampler="nsga2",
        objectives=["val_loss", "zeros"],
    )
    result = reglab.Sweep(softmax(), search=search, cv=3, epochs=4, learning_rate=3e-3, seed=0).run(
        x, y, run_dir=tmp_path / "run", keep_weights=True
    )
    summary = result.summary.set_index("point")
    for member in result.members.itertuples():  # zeros: every entry exactly 0.0 in the member's final weights
        assert member.zeros == sum(int((w == 0).sum()) for w in result.weights[member.member].values())
    assert summary["zeros_mean"].max() > 100 and summary["zeros_mean"].min() < summary["zeros_mean"].max()
    ranked = result.summary[result.summary["rank"].notna()]
    costs = {r.point: (r.val_loss_mean, -r.zeros_mean) for r in ranked.itertuples()}
    expected = {
        p
        for p, c in costs.items()
        if not any(o[0] <= c[0] and o[1] <= c[1] and o != c for q, o in costs.items() if q != p)
    }
    front = result.pareto
    assert set(front["point"]) == expected and len(expected) >= 2  # a trade-off: sparser costs validation loss
    assert list(front["val_loss_mean"]) == sorted(front["val_loss_mean"])
    assert front["zeros_mean"].is_monotonic_increasing  # along the front: more zeros for more loss
    assert result.best["point_id"] == front["point"].iloc[0]  # reglab's choice: by val_loss alone
    written = json.loads((tmp_path / "run" / "summary.json").read_text())["pareto_front"]
    assert written["objectives"] == ["val_loss", "zeros"]
    assert [p["point_id"] for p in written["points"]] == list(front["point"])
    for p in written["points"]:
        assert p["zeros"] == summary.loc[p["point_id"], "zeros_mean"] and set(p["params"]) == {"prox_l1"}
    again = report.render(tmp_path / "run")  # `reglab report`: the same front from the stored tables
    assert again["pareto_front"] == written
    page = (tmp_path / "run" / "report.html").read_text()
    assert "Pareto front" in page and "objectives val_loss, zeros" in page
    from reglab.cli.terminal import print_result  # what `reglab sweep` and `reglab report` print

    print_result(again["table"], again["best"], None, 24, None, "study", pareto=again["pareto_front"])
    shown = capsys.readouterr().out
    assert "Pareto front of val_loss, zeros: " in shown
    assert shown.count("prox_l1=") == len(front) + 1  # each point on the front, and the selected line


def test_a_multi_objective_study_is_told_every_objectives_fold_mean(digits):
    x, y = digits
    study = optuna.create_study(directions=["minimize", "maximize"], sampler=optuna.samplers.NSGAIISampler(seed=0))
    search = Optuna(
        {"prox_l1": {"log_uniform": [1e-5, 3e-2]}},
        n_trials=4,
        population=4,
        study=study,
        objectives=["val_loss", "zeros"],
    )
    result = reglab.Sweep(softmax(), search=search, cv=2, epochs=2, learning_rate=3e-3, seed=0).run(x, y)
    summary = result.summary.set_index("point")
    assert len(study.trials) == 4
    for trial in study.trials:
        row = summary.loc[trial.user_attrs["reglab_point"]]
        assert trial.values == pytest.approx([row["val_loss_mean"], row["zeros_mean"]], rel=1e-12)
        assert trial.intermediate_values == {}  # Optuna keeps none for several objectives
