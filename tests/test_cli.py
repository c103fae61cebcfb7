"""The command line, run as a user runs it: real subprocesses, real run directories."""

import json
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_breast_cancer

ROOT = Path(__file__).resolve().parents[1]


def reglab(*args, cwd=None, timeout=600):
    return subprocess.run([sys.executable, "-m", "reglab", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, cwd=cwd)


@pytest.mark.slow
def test_demo_runs_the_tutorial_experiment_end_to_end(tmp_path):
    result = reglab("demo", "--quiet", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "L2 λ=0.01" in out and "L2 λ=0.1" in out  # no / moderate / strong curves
    assert "5-fold" in out and "selected: l2=" in out and "test set (used once" in out
    run = tmp_path / "runs" / "demo-e10-s0"
    assert len(list((run / "members").glob("*.parquet"))) == 20
    summary = json.loads((run / "summary.json").read_text())
    assert summary["test"]["accuracy"] > 0.9
    assert summary["best"]["params"]["l2"] < 0.1  # strong L2 underfits digits: never the choice
    assert {p.name for p in (run / "plots").iterdir()} == {"learning_curves.png", "penalty_share.png",
                                                          "validation_curve_l2.png", "regularization_paths.png",
                                                          "weight_histograms.png"}
    assert "one-standard-error rule: l2=" in out and (run / "report.html").stat().st_size > 1_000_000


@pytest.mark.slow
def test_sweep_of_the_documented_example_then_report(tmp_path):
    run = tmp_path / "wine"
    result = reglab("sweep", ROOT / "docs/examples/sweep.toml", "--run-dir", run, "--quiet")
    assert result.returncode == 0, result.stderr
    assert "selected: l2=" in result.stdout and "test set (used once" in result.stdout
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
    report = reglab("report", run, "--tensorboard", tmp_path / "tb")
    assert report.returncode == 0, report.stderr
    assert len(list((run / "plots").glob("*.png"))) == 5 and (run / "epochs.parquet").exists()
    assert (run / "report.html").exists() and list((tmp_path / "tb").glob("*/events.out.tfevents.*"))
    assert json.loads((run / "summary.json").read_text())["best"] == summary["best"]


def test_sweep_reads_csv_npz_and_parquet_files(tmp_path):
    from reglab.config import experiment

    x, y = load_breast_cancer(return_X_y=True)
    frame = pd.DataFrame(x, columns=[f"f{i}" for i in range(30)]).assign(label=np.where(y == 1, "benign", "malignant"))
    frame.to_csv(tmp_path / "cancer.csv", index=False)
    frame.to_parquet(tmp_path / "cancer.parquet")
    np.savez(tmp_path / "cancer.npz", x=x, y=y)
    for source, target in (("cancer.csv", "label"), ("cancer.parquet", "label"), ("cancer.npz", None)):
        config = {"data": {"source": source, **({"target": target} if target else {})}, "search": {"grid": {"l2": [0.0]}}}
        loaded = experiment(config, base_dir=tmp_path)
        assert loaded.x.shape == (569, 30) and sorted(np.unique(loaded.y)) == [0, 1] and loaded.task == "classification"


BAD_CONFIGS = [
    ("[train]\nepoch = 3\n", "Unknown key(s) ['epoch'] in [train]"),
    ('[data]\nsource = "mnist"\n[search]\ngrid = { l2 = [0.0] }\n', "Received: source='mnist'"),
    ('[data]\nsource = "wine"\n[search]\ngrid = { l3 = [0.1] }\n', "Received: l3=0.1"),
    ('[data]\nsource = "wine"\n[search]\ngrid = { l2 = [-1.0] }\n', "Received: l2=-1.0"),
    ('[data]\nsource = "wine"\n[search]\ngrid = { l2 = [0.1] }\n[cv]\nfolds = 200\n', "More folds than samples"),
    ('[data]\nsource = "missing.csv"\ntarget = "y"\n[search]\ngrid = { l2 = [0.1] }\n', "Received: source='missing.csv'"),
    ('[data\nsource = "wine"\n', "not valid TOML"),
    ('[data]\nsource = "text.csv"\ntarget = "y"\n[search]\ngrid = { l2 = [0.1] }\n', "Feature columns must be numeric"),
]


@pytest.mark.parametrize("text, message", BAD_CONFIGS, ids=[m for _, m in BAD_CONFIGS])
def test_bad_config_exits_2_with_one_line_and_writes_nothing(text, message, tmp_path):
    (tmp_path / "text.csv").write_text("a,b,y\n1,x,0\n2,z,1\n")
    config = tmp_path / "bad.toml"
    config.write_text(text)
    result = reglab("sweep", config, "--run-dir", tmp_path / "run", "-q")
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert message in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("argv", [["demo", "--epochs", "0"], ["demo", "--epochs", "many"], ["frobnicate"],
                                  ["sweep", "no-such.toml"], ["report", "no-such-dir"]])
def test_cli_bad_input_exits_2(argv, tmp_path):
    result = reglab(*argv, cwd=tmp_path, timeout=120)
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr


@pytest.mark.slow
def test_weight_decay_example_compares_l2_with_decoupled_decay_under_adam(tmp_path):
    run = tmp_path / "wd"
    result = reglab("sweep", ROOT / "docs/examples/weight_decay.toml", "--run-dir", run, "--quiet")
    assert result.returncode == 0, result.stderr
    rows = {(r["penalty"], r["lambda"]): r for r in json.loads((run / "summary.json").read_text())["summary"]}
    assert len(rows) == 6 and rows[("weight_decay", 0.01)]["train_penalty_mean"] == 0.0
    # the finding the example documents: with Adam, L2(0.01) in the loss hurts, the same-λ decay does not
    assert rows[("weight_decay", 0.01)]["val_loss_mean"] < rows[("l2", 0.01)]["val_loss_mean"]
