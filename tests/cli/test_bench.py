"""`reglab bench --quick`: the report's structure and that reglab and sequential Keras agree (never speed)."""

import json
import math
import subprocess
import sys

import pytest

from reglab.cli.bench import forward_flops, workload_flops


def test_flop_count_of_the_standard_workload():
    # BENCHMARK.md: ~318 GFLOP for 40 members × 50 epochs on digits (1,797 samples, 5 folds)
    total = workload_flops(1797 * 4 / 5, 1797 / 5, 50, 40)
    assert forward_flops() == 2 * (64 * 128 + 128 * 64 + 64 * 10)
    assert total / 1e9 == pytest.approx(318, rel=0.01)


@pytest.mark.slow
def test_quick_bench_reports_every_key_and_engines_agree(tmp_path):
    out = tmp_path / "bench.json"
    result = subprocess.run(
        [sys.executable, "-m", "reglab", "bench", "--quick", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(out.read_text())
    for key in (
        "speedup_vs_sequential_keras",
        "speedup_vs_sklearn",
        "ratio_to_flop_bound",
        "reglab_seconds",
        "compile_seconds",
        "peak_rss_mb",
        "accuracy_by_lambda",
    ):
        assert key in report and report[key] is not None, key
    assert all(
        report[k] > 0 for k in ("reglab_seconds", "sequential_keras_seconds", "sklearn_seconds", "flop_bound_seconds")
    )
    assert report["sequential_keras_backend"] == "tensorflow"  # installed here: the seeds' way is the peer
    assert report["device"] == "CPU"
    accuracy = report["accuracy_by_lambda"]
    assert set(accuracy["reglab"]) == set(accuracy["keras"]) == {"0", "0.0003", "0.01"}
    for strength, value in accuracy["keras"].items():  # same maths, different engines: close (4 epochs, one fold)
        assert abs(value - accuracy["reglab_fold0"][strength]) < 0.05, strength
    assert "reglab bench" in result.stdout and "sequential Keras" in result.stdout
    warm = report["warm_start"]  # fresh processes on one cache: the second reads its programs back
    assert set(warm) == {"cold", "warm", "warm_vs_cold"}
    for run in ("cold", "warm"):
        assert warm[run]["seconds"] > warm[run]["epoch_seconds"] > 0 and warm[run]["peak_rss_mb"] > 100
        assert warm[run]["fixed_seconds"] == pytest.approx(warm[run]["seconds"] - warm[run]["epoch_seconds"])
    assert report["warm_ratio_to_flop_bound"] == pytest.approx(warm["warm"]["seconds"] / report["flop_bound_seconds"])
    assert "Cold and warm" in result.stdout


@pytest.mark.slow
def test_the_zoo_reports_each_family_as_the_engine_and_as_a_user_runs_it():
    """`reglab bench --zoo` for one convolutional family, tiny: both ways measured, the user's way (its first
    run and the next, warm, each a fresh process) against the loop of fits (one per member, and the refit) —
    structure and consistency, never speed."""
    from reglab.cli.bench_zoo import zoo

    # the Conv1D + BatchNorm family: after one epoch its sweep chooses no point, and the loop still has a refit
    report = zoo(epochs=1, members=4, fits=1, sweep_epochs=1, names=["conv1d-batchnorm"], echo=lambda message: None)
    row = report["conv1d-batchnorm"]
    assert row["population_seconds"] > 0 and row["sequential_seconds_per_fit"] > 0
    assert set(row["convolutions"]) <= {"unrolled", "map", "vmap"} and row["convolutions"]
    user = row["sweep"]
    assert user["members"] == 9 and user["epochs"] == 1  # 3 λ × 3 folds
    assert user["loop_of_fit_seconds"] == pytest.approx(9 * user["fit_seconds"] + user["refit_seconds"])
    assert user["speedup"] == pytest.approx(user["loop_of_fit_seconds"] / user["seconds"])
    assert user["warm_speedup"] == pytest.approx(user["loop_of_fit_seconds"] / user["warm_seconds"])
    assert report["sweep_geometric_mean_speedup"] == pytest.approx(user["speedup"])
    assert report["warm_sweep_geometric_mean_speedup"] == pytest.approx(user["warm_speedup"])
    assert list(report) == [
        "conv1d-batchnorm",
        "geometric_mean_speedup",
        "min_speedup",
        "sweep_geometric_mean_speedup",
        "sweep_min_speedup",
        "warm_sweep_geometric_mean_speedup",
        "warm_sweep_min_speedup",
    ]


@pytest.mark.slow
def test_the_scale_bench_reports_members_and_executors_side_by_side():
    """`reglab bench --scale`, tiny: structure and consistency, never speed."""
    from reglab.cli.bench_scale import big_data, scale, table

    # the executors' loop with local alone: a worker's start costs ~10 s here (the executors' own tests run them)
    report = scale(repeats=(1, 2), epochs=1, executors=[("local", 1)], echo=lambda message: None)
    assert list(report["members"]) == ["40", "80"] and report["members"]["40"]["per_member_vs_smallest"] == 1.0
    for count, row in report["members"].items():
        assert row["seconds"] > 0 and row["seconds_per_member"] == pytest.approx(row["seconds"] / int(count))
    assert list(report["executors"]) == ["local"] and report["executors"]["local"]["vs_local"] == 1.0
    assert len(table(report)) == 2
    report["big_data"] = big_data(rows=3_000, small=1_000, epochs=1, echo=lambda message: None)
    big = report["big_data"]
    for way in ("small", "streamed", "in_memory"):
        assert big[way]["epoch_seconds"] > 0 and big[way]["peak_rss_mb"] > 100, way
    assert big["streamed"]["data_mb"] == big["in_memory"]["data_mb"] > big["small"]["data_mb"]
    assert big["streamed_vs_small"] == pytest.approx(
        big["streamed"]["member_samples_per_second"] / big["small"]["member_samples_per_second"]
    )
    assert len(table(report)) == 3


@pytest.mark.slow
def test_the_search_bench_reports_full_training_and_halving_side_by_side():
    """`reglab bench --search`, tiny: structure and consistency, never speed."""
    from reglab.cli.bench_search import search_bench, table

    report = search_bench(candidates=6, seeds=1, epochs=4, population=3, echo=lambda message: None, family=True)
    for found, keys in ((report, {"l2"}), (report["family"], {"l2", "dropout"})):  # λ; a zoo family's λ and dropout
        full, halving = found["full"], found["halving"]
        assert full["member_epochs_fraction"] == full["wall_fraction"] == 1.0 and full["distance_se"] == 0.0
        spent, all_of_it = halving["runs"][0]["member_epochs"], full["runs"][0]["member_epochs"]
        assert all_of_it == 6 * 5 * 4 and spent < all_of_it  # 6 candidates × 5 folds × 4 epochs
        assert halving["member_epochs_fraction"] == pytest.approx(spent / all_of_it)
        assert halving["distance_se"] > -1e-3  # the full run's best is the lowest (members agree to ~1e-6)
        tpe = found["tpe_halving"]["runs"][0]  # two rounds of 3 trials, each halved
        assert 0 < tpe["member_epochs"] < all_of_it and math.isfinite(tpe["distance_se"])
        assert set(tpe["chosen"]) == set(full["runs"][0]["chosen"]) == keys
        assert [row[0] for row in table(found)] == ["full", "halving", "tpe_halving"]
    assert report["family"]["name"] == "mlp-dropout"
