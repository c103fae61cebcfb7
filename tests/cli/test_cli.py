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

ROOT = Path(__file__).resolve().parents[2]


def reglab(*args, cwd=None, timeout=600):
    return subprocess.run(
        [sys.executable, "-m", "reglab", *map(str, args)], capture_output=True, text=True, timeout=timeout, cwd=cwd
    )


@pytest.mark.slow
def test_demo_runs_the_tutorial_experiment_end_to_end(tmp_path):
    result = reglab("demo", "--quiet", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "L2 λ=0 " in out and "L2 λ=0.001" in out and "L2 λ=0.1" in out  # no / moderate / strong curves
    assert "5-fold" in out and "selected: l2=0.001" in out and "test set (used once" in out
    story = {line.split()[0]: line for line in out.splitlines() if line.startswith("  λ=")}  # one line per λ
    assert list(story) == ["λ=0", "λ=0.001", "λ=0.01", "λ=0.1"]
    assert story["λ=0"].split()[1] == "overfitting:" and story["λ=0.1"].split()[1] == "underfitting:"
    assert story["λ=0.001"].split()[1] == "selected,"
    run = tmp_path / "runs" / "demo-e50-s0"
    assert len(list((run / "members").glob("*.parquet"))) == 20
    summary = json.loads((run / "summary.json").read_text())
    assert summary["test"]["accuracy"] > 0.9
    assert summary["best"]["params"]["l2"] < 0.1  # strong L2 underfits digits: never the choice
    assert {p.name for p in (run / "plots").iterdir()} == {
        "learning_curves.png",
        "penalty_share.png",
        "validation_curve_l2.png",
        "regularization_paths.png",
        "weight_histograms.png",
    }
    assert "one-standard-error rule: l2=" in out and (run / "report.html").stat().st_size > 1_000_000


def test_sweep_reads_csv_npz_and_parquet_files(tmp_path, monkeypatch):
    from reglab.config import experiment
    from reglab.on_disk import DiskArray

    monkeypatch.setenv("REGLAB_CACHE", str(tmp_path / "cache"))

    x, y = load_breast_cancer(return_X_y=True)
    frame = pd.DataFrame(x, columns=[f"f{i}" for i in range(30)]).assign(label=np.where(y == 1, "benign", "malignant"))
    frame.to_csv(tmp_path / "cancer.csv", index=False)
    frame.to_parquet(tmp_path / "cancer.parquet")
    np.savez(tmp_path / "cancer.npz", x=x, y=y)
    for source, target in (("cancer.csv", "label"), ("cancer.parquet", "label"), ("cancer.npz", None)):
        config = {
            "data": {"source": source, **({"target": target} if target else {})},
            "search": {"grid": {"l2": [0.0]}},
        }
        loaded = experiment(config, base_dir=tmp_path)
        assert loaded.x.shape == (569, 30) and sorted(np.unique(loaded.y)) == [0, 1] and loaded.task == "classification"
        if source != "cancer.csv":  # `stream = true`: the features stay on disk (`reglab.stream`)
            config["data"]["stream"] = True
            streamed = experiment(config, base_dir=tmp_path)
            assert isinstance(streamed.x, DiskArray)
            np.testing.assert_array_equal(streamed.x[:], loaded.x)
            np.testing.assert_array_equal(streamed.y, loaded.y)


SETTINGS = dict(
    grid={"l2": [0.0, 0.1]},
    random=None,
    n_trials=10,
    stages=None,
    refine=0,
    refine_param=None,
    refine_points=5,
    select="val_loss",
    cv=2,
    repeats=1,
    stratify="auto",
    test_size=None,
    standardize=True,
    epochs=1,
    batch_size=32,
    optimizer="adam",
    learning_rate=1e-3,
    engine="auto",
    seed=0,
)
RANDOM = {"l2": {"log_uniform": [1e-4, 1e-1]}}
SPOILED_SETTINGS = [  # each spoils one of the settings a config gives a Sweep
    {"seed": -1},
    {"grid": None},
    {"random": RANDOM},
    {"grid": None, "random": RANDOM, "n_trials": 0},
    {"grid": None, "stages": []},
    {"grid": None, "stages": [5]},
    {"grid": {"l2": []}},
    {"refine": -1},
    {"refine": 1, "refine_points": 0},
    {"refine": 1, "grid": {"penalty": ["l1", "l2"]}},
    {"refine": 1, "refine_param": "l3"},
    {"refine": 1, "grid": {"l2": [0.0]}},
    {"repeats": 0},
    {"stratify": "yes"},
    {"test_size": 0},
    {"epochs": 0},
    {"batch_size": 0},
    {"learning_rate": 0},
    {"learning_rate": {"a": 1}},
    {"optimizer": "adamm"},
    {"optimizer": 3},
    {"engine": "stacked"},
    {"engine": "warp"},
    {"grid": {"fold": [1]}},
    {"grid": {"a:b": [1]}},
    {"grid": {"prox_l1": [0.1]}, "optimizer": "FTRL"},
    {"grid": {"weight_decay": [-0.1]}},
]


@pytest.mark.parametrize("spoiled", SPOILED_SETTINGS, ids=repr)
def test_a_config_is_refused_in_the_sweeps_words_before_keras(spoiled, tmp_path):
    """`reglab.config.validate` (no Keras) refuses every setting `Sweep` refuses, with the same line: both ask
    `reglab.validation.sweep.arguments`."""
    from reglab import config, sweep

    given = {**SETTINGS, **spoiled}
    with pytest.raises(ValueError) as sweeps:
        sweep.Sweep(lambda point: None, **given)
    search = {
        k: given[k]
        for k in ("grid", "random", "stages", "n_trials", "refine", "refine_param", "refine_points")
        if given[k] is not None
    }
    spec = {
        "seed": given["seed"],
        "data": {"source": "wine", "standardize": True},
        "search": {**search, "select": given["select"]},
        "cv": {"folds": given["cv"], "repeats": given["repeats"], "stratify": given["stratify"]},
        "train": {k: given[k] for k in ("epochs", "batch_size", "optimizer", "learning_rate", "engine")},
    }
    if given["test_size"] is not None:
        spec["data"]["test_size"] = given["test_size"]
    with pytest.raises(ValueError) as ours:
        config.validate(spec, tmp_path)
    assert str(ours.value) == str(sweeps.value)


@pytest.mark.parametrize("argv", [["demo", "--epochs", "many"], ["report", "no-such-dir"]])
def test_cli_bad_input_exits_2(argv, tmp_path):
    """Through the real entry point, in a process of its own (every refusal's words: test_hostile.py)."""
    result = reglab(*argv, cwd=tmp_path, timeout=120)
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr


# The CLI in a subprocess that says, as it exits, which of Keras, JAX and TensorFlow it imported.
_REPORTS_IMPORTS = """
import atexit, sys
atexit.register(lambda: print("imported:", [m for m in ("keras", "jax", "tensorflow") if m in sys.modules],
                              file=sys.stderr))
from reglab.cli.commands import main
sys.argv = ["reglab", "sweep", *sys.argv[1:]]
main()
"""

REFUSED_WITHOUT_KERAS = [  # errors the config file alone decides
    (
        '[data]\nsource = "wine"\n[search]\ngrid = { l2 = [0.0] }\n[train]\nepoch = 3\n',
        "Unknown key(s) ['epoch'] in [train]",
    ),
    ('seed = -1\n[data]\nsource = "wine"\n[search]\ngrid = { l2 = [0.0] }\n', "Received: seed=-1"),
    (
        '[data]\nsource = "missing.csv"\ntarget = "y"\n[search]\ngrid = { l2 = [0.1] }\n',
        "Received: source='missing.csv'",
    ),
    ('[data]\nsource = "wine"\n[search]\ngrid = { l3 = [0.1] }\n', "Received: l3=0.1"),
    ('[data]\nsource = "wine"\n[model]\nhidden = [0]\n[search]\ngrid = { l2 = [0.1] }\n', "Received: hidden=0"),
    (
        '[data]\nsource = "wine"\n[model]\nfile = "absent.keras"\n[search]\ngrid = { l2 = [0.1] }\n',
        "Received: file='absent.keras'",
    ),
]


@pytest.mark.parametrize("text, message", REFUSED_WITHOUT_KERAS, ids=[m for _, m in REFUSED_WITHOUT_KERAS])
def test_a_config_error_is_refused_before_keras_is_imported(text, message, tmp_path):
    config = tmp_path / "bad.toml"
    config.write_text(text)
    result = subprocess.run(
        [sys.executable, "-c", _REPORTS_IMPORTS, str(config), "--run-dir", str(tmp_path / "run")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert len(lines) == 2 and lines[0].startswith("reglab: error: ") and message in lines[0], result.stderr
    assert lines[1] == "imported: []"  # the ~5 s of importing Keras (and JAX) are not spent on a typo
    assert not (tmp_path / "run").exists()


@pytest.mark.slow
def test_weight_decay_example_compares_l2_with_decoupled_decay_under_adam(tmp_path):
    run = tmp_path / "wd"
    result = reglab("sweep", ROOT / "docs/examples/weight_decay.toml", "--run-dir", run, "--quiet")
    assert result.returncode == 0, result.stderr
    rows = {(r["penalty"], r["lambda"]): r for r in json.loads((run / "summary.json").read_text())["summary"]}
    assert len(rows) == 6 and rows[("weight_decay", 0.01)]["train_penalty_mean"] == 0.0
    # the finding the example documents: with Adam, L2(0.01) in the loss hurts, the same-λ decay does not
    assert rows[("weight_decay", 0.01)]["val_loss_mean"] < rows[("l2", 0.01)]["val_loss_mean"]


# --- [model] file: the user's own model (its refusals are in test_hostile.py, in this process) ----------


def _digits_model(extra=None, n_in=64):
    inputs = keras.Input((n_in,), name="pixels")
    x = inputs if extra is None else extra(inputs)
    hidden = keras.layers.Dense(32, activation="relu", name="hidden")(x)
    return keras.Model(inputs, keras.layers.Dense(10, activation="softmax", name="digit")(hidden))


def test_model_file_with_layer_groups_is_swept_as_a_plain_model(tmp_path):
    from reglab.config import experiment
    from reglab.search import points

    _digits_model().save(tmp_path / "model.keras")
    config = {
        "data": {"source": "digits"},
        "model": {"file": "model.keras", "layer_groups": {"first": ["hidden"]}},
        "search": {"grid": {"l2.first": [0.0, 0.01]}},
    }
    loaded = experiment(config, base_dir=tmp_path)
    model = loaded.sweep.model
    assert isinstance(model, keras.Model) and [l.name for l in model.layers] == ["pixels", "hidden", "digit"]
    np.testing.assert_array_equal(
        model.get_layer("hidden").kernel.numpy(),
        keras.models.load_model(tmp_path / "model.keras").get_layer("hidden").kernel.numpy(),
    )
    regularized = points.apply(model, {"l2.first": 0.01}, loaded.sweep.layers, loaded.sweep.layer_groups)
    assert regularized.get_layer("hidden").kernel_regularizer is not None
    assert regularized.get_layer("digit").kernel_regularizer is None
    config["model"]["layer_groups"] = {"first": ["hiden"]}
    with pytest.raises(ValueError, match="No layer matches 'hiden'"):
        experiment(config, base_dir=tmp_path)


@pytest.mark.slow
def test_model_file_example_sweeps_the_users_own_model(tmp_path, monkeypatch):
    import re
    import shutil

    example = ROOT / "docs/examples/model_file.toml"
    code = "\n".join(re.findall(r"^#   (.*)$", example.read_text(), flags=re.M))  # the comment's Python snippet
    shutil.copy(example, tmp_path / "model_file.toml")
    monkeypatch.chdir(tmp_path)
    exec(compile(code, "model_file.toml's snippet", "exec"), {})
    assert (tmp_path / "model.keras").exists()

    run = tmp_path / "run"
    result = reglab("sweep", tmp_path / "model_file.toml", "--run-dir", run, "--quiet", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "warning" not in result.stderr  # the file's functional model runs as a population
    summary = json.loads((run / "summary.json").read_text())
    assert len(summary["summary"]) == 2
    epochs = pd.read_parquet(run / "epochs.parquet")
    assert "penalty:hidden/kernel" in epochs.columns  # the file's layer names: its model, not an MLP
    assert (epochs.loc[epochs.l2 > 0, "train_penalty"] > 0).all()
    assert (epochs.loc[epochs.l2 == 0, "train_penalty"] == 0).all()
    model = keras.models.load_model(run / "best_model.keras", safe_mode=True)
    from sklearn.datasets import load_digits

    x, y = load_digits(return_X_y=True)
    assert np.mean(model.predict(x, verbose=0).argmax(1) == y) > 0.8  # raw pixels in, digits out


def test_init_writes_the_documented_example_config_a_user_without_the_repository_can_run(tmp_path, monkeypatch):
    """`reglab init` (in-process): the packaged example is docs/examples/sweep.toml, its run line naming the file
    written; it validates as a sweep spec (the documented file is swept by the Ray test); --force replaces."""
    from typer.testing import CliRunner

    from reglab.cli.commands import app
    from reglab.config import validate_file

    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, ["init"])
    assert result.exit_code == 0 and "reglab sweep sweep.toml" in result.stdout, result.output
    written = (tmp_path / "sweep.toml").read_text()
    documented = (ROOT / "docs" / "examples" / "sweep.toml").read_text()
    assert written == documented.replace("reglab sweep docs/examples/sweep.toml", "reglab sweep sweep.toml", 1)
    assert written.splitlines()[0].endswith("Run it with:   reglab sweep sweep.toml")
    assert validate_file(tmp_path / "sweep.toml").name == "wine-l2"
    (tmp_path / "sweep.toml").write_text("# changed\n")
    assert CliRunner().invoke(app, ["init", "--force"]).exit_code == 0
    assert (tmp_path / "sweep.toml").read_text() == written


def test_the_command_keeps_its_libraries_objects_out_of_the_collectors_walks():
    """`reglab.heap`: once Keras is imported, what is alive is frozen (the garbage collector's full collections
    no longer walk the libraries' ~275,000 objects) and the youngest generation collected every 10,000
    allocations: 13 % of `reglab demo`'s CPU time."""
    import gc

    from reglab.cli.app import import_keras_quietly

    gc.unfreeze()
    gc.set_threshold(700, 10, 10)  # Python's defaults
    import_keras_quietly()
    assert gc.get_freeze_count() > 100_000 and gc.get_threshold() == (10_000, 10, 10)
