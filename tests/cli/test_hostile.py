"""Hostile input to the command line: one clear line, nothing written.

Every case writes its files into `tmp_path` and returns the argv of one `reglab` call. The contract
for each: exit code 2, exactly one line on stderr, `reglab: error: ... Received: <name>=<value>` in
our words (the line names our argument, config key or file), no traceback, and nothing written: the
files under `tmp_path` are the same before and after. The CLI runs in this process (typer's
CliRunner) on the backend the tests run on.
"""

import json
import os
import pickle
import zipfile

import keras
import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from reglab.cli.commands import app

GOOD = {  # a sweep that would run (wine, one point, two folds, one epoch): each case spoils one thing
    "data": '[data]\nsource = "wine"\n',
    "model": "",
    "search": "[search]\ngrid = { l2 = [0.0] }\n",
    "cv": "[cv]\nfolds = 2\n",
    "train": "[train]\nepochs = 1\n",
}


def spec(top="", **sections):
    """A TOML spec: GOOD with some sections replaced (text) — `top` goes before every section."""
    return top + "".join(sections.get(name, text) for name, text in GOOD.items())


def sweep(tmp, text, name="bad.toml", mode="w"):
    config = tmp / name
    if mode == "wb":
        config.write_bytes(text)
    else:
        config.write_text(text)
    return ["sweep", str(config), "--run-dir", str(tmp / "run"), "-q"]


def table(rows=30, seed=0):
    """A tiny classification table: three numeric features and a 0/1 target `y`."""
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {"a": rng.normal(size=rows), "b": rng.normal(size=rows), "c": rng.normal(size=rows), "y": np.arange(rows) % 2}
    )


def on_file(tmp, file, target='target = "y"\n'):
    return sweep(tmp, spec(data=f'[data]\nsource = "{file}"\n{target}'))


def with_model(tmp, write, extras="", file="model.keras"):
    if write is not None:
        write(tmp / file)
    return sweep(tmp, spec(model=f'[model]\nfile = "{file}"\n{extras}'))


def wine_model(n_in=13):
    inputs = keras.Input((n_in,), name="features")
    hidden = keras.layers.Dense(8, activation="relu", name="hidden")(inputs)
    return keras.Model(inputs, keras.layers.Dense(3, activation="softmax", name="kind")(hidden))


def edited_model(path, edit):
    """A .keras file whose config.json `edit(config)` changed (e.g. to name an unregistered object)."""
    wine_model().save(path)
    with zipfile.ZipFile(path) as archive:
        entries = {name: archive.read(name) for name in archive.namelist()}
    config = json.loads(entries["config.json"])
    edit(config["config"]["layers"][1])
    entries["config.json"] = json.dumps(config).encode()
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in entries.items():
            archive.writestr(name, data)


def unregistered_class(layer):
    layer.update(module="hostile_nowhere.layers", class_name="Doubling", registered_name="hostile_nowhere>Doubling")


def unregistered_function(layer):
    layer["config"]["activation"] = {
        "module": "builtins",
        "class_name": "function",
        "config": "hostile_nowhere>swish2",
        "registered_name": "function",
    }


# --- the cases: name -> (write the files and return the argv, fragment the one line must contain) ----------

CASES = {}


def case(fragment):
    def register(make):
        CASES[make.__name__] = (make, fragment)
        return make

    return register


# configs: the file itself


@case("Received: config=")
def config_missing(tmp):
    return ["sweep", str(tmp / "absent.toml"), "--run-dir", str(tmp / "run")]


@case("is a directory")
def config_is_a_directory(tmp):
    (tmp / "conf.toml").mkdir()
    return ["sweep", str(tmp / "conf.toml"), "--run-dir", str(tmp / "run")]


@case("bad.toml is not UTF-8 text (byte 0xff on line 3)")
def config_not_utf8(tmp):
    return sweep(tmp, spec().replace("[search]", "# caf\xff\n[search]", 1).encode("latin-1"), mode="wb")


@case("bad.toml is not valid TOML at line 2, column 1")
def config_not_toml(tmp):
    return sweep(tmp, '[data]\nsource = = "wine"\n')


@case("bad.json is not valid JSON at line 3, column 1")
def config_not_json(tmp):
    return sweep(tmp, '{"data": {"source": "wine"},\n "search": {"grid": {"l2": [0.0]}}\n', name="bad.json")


@case("must hold a table of sections (a JSON object), not a list")
def config_json_list(tmp):
    return sweep(tmp, "[1, 2]", name="bad.json")


@case("nested too deeply")
def config_nested_too_deeply(tmp):
    return sweep(tmp, "[" * 100_000 + "]" * 100_000, name="bad.json")


# configs: keys, values and types


@case("Received: epoch=3")
def unknown_key(tmp):
    return sweep(tmp, spec(train="[train]\nepoch = 3\n"))


@case("Received: modle={}")
def unknown_section(tmp):
    return sweep(tmp, spec() + "[modle]\n")


@case("[data] must be a table. Received: data=3")
def section_not_a_table(tmp):
    return sweep(tmp, "data = 3\n")


@case("Received: source=None")
def source_missing(tmp):
    return sweep(tmp, spec(data="[data]\ntask = 'auto'\n"))


@case("Received: source='mnist'")
def source_unknown(tmp):
    return sweep(tmp, spec(data='[data]\nsource = "mnist"\n'))


@case("Received: source='\\x1b[31mdata.csv'")
def source_with_escape_sequence(tmp):
    return sweep(tmp, spec(data='[data]\nsource = "\\u001b[31mdata.csv"\ntarget = "y"\n'))


@case("Received: target='y'")
def target_with_builtin(tmp):
    return sweep(tmp, spec(data='[data]\nsource = "wine"\ntarget = "y"\n'))


@case("Received: standardize='false'")
def standardize_not_boolean(tmp):
    return sweep(tmp, spec(data='[data]\nsource = "wine"\nstandardize = "false"\n'))


@case("Received: stream='yes'")
def stream_not_boolean(tmp):
    return sweep(tmp, spec(data='[data]\nsource = "wine"\nstream = "yes"\n'))


@case("the built-in 'wine' is small and held in memory: drop `stream`. Received: stream=true")
def stream_a_builtin(tmp):
    return sweep(tmp, spec(data='[data]\nsource = "wine"\nstream = true\n'))


@case("Unsupported data file type to stream (use .npz, .parquet or .npy)")
def stream_a_csv(tmp):
    (tmp / "d.csv").write_text("a,y\n1,0\n2,1\n")
    return sweep(tmp, spec(data='[data]\nsource = "d.csv"\ntarget = "y"\nstream = true\n'))


@case("Received: task='ranking'")
def task_unknown(tmp):
    return sweep(tmp, spec(data='[data]\nsource = "wine"\ntask = "ranking"\n'))


@case("Received: test_size=1.5")
def holdout_test_size_too_big(tmp):
    return sweep(tmp, spec(data='[data]\nsource = "wine"\ntest_size = 1.5\n'))


@case("Received: seed=4294967296")
def seed_beyond_32_bits(tmp):
    return sweep(tmp, spec("seed = 4294967296\n"))


@case("Received: seed='0'")
def seed_as_text(tmp):
    return sweep(tmp, spec('seed = "0"\n'))


@case("Received: name='..'")
def name_dot_dot(tmp):
    return sweep(tmp, spec('name = ".."\n'))


@case("Received: name='a\\\\b'")
def name_with_backslash(tmp):
    return sweep(tmp, spec('name = "a\\\\b"\n'))


@case("Received: name='x/y'")
def name_with_slash(tmp):
    return sweep(tmp, spec('name = "x/y"\n'))


@case("Received: name='red\\x1b[31m\\rline\\n'")
def name_with_control_characters(tmp):
    return sweep(tmp, spec('name = "red\\u001b[31m\\rline\\n"\n'))


@case("Received: name=5")
def name_not_a_string(tmp):
    return sweep(tmp, spec("name = 5\n"))


@case("Received: hidden=[]")
def hidden_empty(tmp):
    return sweep(tmp, spec(model="[model]\nhidden = []\n"))


@case("Received: activation='relux'")
def activation_unknown(tmp):
    return sweep(tmp, spec(model='[model]\nactivation = "relux"\n'))


@case("Received: layer_groups.early=['hiden_1']")
def layer_group_unknown_layer(tmp):
    return sweep(
        tmp,
        spec(
            model='[model]\nlayer_groups = { early = ["hiden_1"] }\n',
            search="[search]\ngrid = { 'l2.early' = [0.0, 0.1] }\n",
        ),
    )


@case("Received: layer_groups=3")
def layer_groups_not_a_table(tmp):
    return sweep(tmp, spec(model="[model]\nlayer_groups = 3\n"))


@case("Received: l3=0.1")
def search_key_unknown(tmp):
    return sweep(tmp, spec(search="[search]\ngrid = { l3 = [0.1] }\n"))


@case("Received: l2=-1.0")
def lambda_negative(tmp):
    return sweep(tmp, spec(search="[search]\ngrid = { l2 = [-1.0] }\n"))


@case("Received: grid=5")
def grid_not_a_table(tmp):
    return sweep(tmp, spec(search="[search]\ngrid = 5\n"))


@case("Received: low=0")
def random_from_zero(tmp):
    return sweep(tmp, spec(search="[search]\nrandom = { l2 = { log_uniform = [0, 1] } }\nn_trials = 2\n"))


@case("Received: select='val_acc'")
def select_unknown_metric(tmp):
    return sweep(tmp, spec(search="[search]\ngrid = { l2 = [0.0] }\nselect = 'val_acc'\n"))


@case("Received: select='val_mean_absolute_error'")
def select_metric_of_the_other_task(tmp):
    return sweep(tmp, spec(search="[search]\ngrid = { l2 = [0.0] }\nselect = 'val_mean_absolute_error'\n"))


@case("Received: folds='3'")
def folds_as_text(tmp):
    return sweep(tmp, spec(cv='[cv]\nfolds = "3"\n'))


@case("Received: folds=2, holdout=0.25")
def folds_and_holdout(tmp):
    return sweep(tmp, spec(cv="[cv]\nfolds = 2\nholdout = 0.25\n"))


@case("More folds than samples")
def folds_more_than_samples(tmp):
    return sweep(tmp, spec(cv="[cv]\nfolds = 500\n"))


@case("Received: epochs=0")
def epochs_zero(tmp):
    return sweep(tmp, spec(train="[train]\nepochs = 0\n"))


@case("Received: optimizer='adamm'")
def optimizer_unknown(tmp):
    return sweep(tmp, spec(train='[train]\nepochs = 1\noptimizer = "adamm"\n'))


@case("Received: engine='warp'")
def engine_unknown(tmp):
    return sweep(tmp, spec(train='[train]\nepochs = 1\nengine = "warp"\n'))


@case("Received: executor='spark'")
def executor_unknown(tmp):
    return sweep(tmp, spec(train='[train]\nepochs = 1\nexecutor = "spark"\n'))


@case("Received: workers=0")
def workers_zero(tmp):
    return sweep(tmp, spec(train='[train]\nepochs = 1\nexecutor = "process"\nworkers = 0\n'))


@case("Received: executor='cluster'")
def executor_unknown_on_the_command_line(tmp):
    return [*sweep(tmp, spec()), "--executor", "cluster"]


@case("Received: checkpoint_seconds=-1")
def checkpoint_seconds_negative(tmp):
    return sweep(tmp, spec(train="[train]\nepochs = 1\ncheckpoint_seconds = -1\n"))


# data files


@case("data.csv is empty")
def csv_empty(tmp):
    (tmp / "data.csv").write_text("")
    return on_file(tmp, "data.csv")


@case("data.csv has column names but no rows")
def csv_header_only(tmp):
    (tmp / "data.csv").write_text("a,b,c,y\n")
    return on_file(tmp, "data.csv")


@case("data.csv is not UTF-8 text (byte 0xe9 on line 2)")
def csv_not_utf8(tmp):
    (tmp / "data.csv").write_bytes("a,b,y\n".encode() + "caf\xe9,1,0\n".encode("latin-1") * 30)
    return on_file(tmp, "data.csv")


@case("data.csv is not a readable CSV file")
def csv_ragged(tmp):
    (tmp / "data.csv").write_text("a,b,y\n1,2,0\n3,4,1,9,9\n" * 15)
    return on_file(tmp, "data.csv")


@case("Received: target='label'")
def csv_target_missing(tmp):
    table().to_csv(tmp / "data.csv", index=False)
    return on_file(tmp, "data.csv", target='target = "label"\n')


@case("Received: target=None")
def csv_target_not_named(tmp):
    table().to_csv(tmp / "data.csv", index=False)
    return on_file(tmp, "data.csv", target="")


@case("Feature columns must be numeric")
def csv_text_feature(tmp):
    table().assign(a="x").to_csv(tmp / "data.csv", index=False)
    return on_file(tmp, "data.csv")


@case("Received: x with 1 NaN")
def csv_missing_feature(tmp):
    frame = table()
    frame.loc[3, "a"] = np.nan
    frame.to_csv(tmp / "data.csv", index=False)
    return on_file(tmp, "data.csv")


@case("(reglab refuses |value| > 1e+15")
def csv_huge_features(tmp):
    table().assign(a=lambda f: f.a * 1e30).to_csv(tmp / "data.csv", index=False)
    return on_file(tmp, "data.csv")


@case("Received: y with 1 missing values")
def csv_missing_label(tmp):
    frame = table().assign(y=lambda f: np.where(f.y == 1, "yes", "no")).astype({"y": object})
    frame.loc[4, "y"] = None
    frame.to_csv(tmp / "data.csv", index=False)
    return on_file(tmp, "data.csv")


@case("Received: y with largest |value| 3e+30")
def npz_huge_regression_target(tmp):
    np.savez(tmp / "data.npz", x=np.ones((30, 3)), y=np.linspace(-3e30, 3e30, 30))
    return on_file(tmp, "data.npz", target="")


@case("Received: y with the single class")
def csv_one_class(tmp):
    table().assign(y=1).to_csv(tmp / "data.csv", index=False)
    return on_file(tmp, "data.csv")


@case("data.parquet is not a readable Parquet file")
def parquet_damaged(tmp):
    (tmp / "data.parquet").write_text("PAR1 but not really\n")
    return on_file(tmp, "data.parquet")


@case("Received: target='label'")
def parquet_target_missing(tmp):
    table().to_parquet(tmp / "data.parquet")
    return on_file(tmp, "data.parquet", target='target = "label"\n')


@case("array 'x' holds pickled Python objects")
def npz_pickled(tmp):
    np.savez(tmp / "data.npz", x=np.array([{"a": 1}] * 30, dtype=object), y=np.arange(30) % 2)
    return on_file(tmp, "data.npz", target="")


@case("data.npz is not an NPZ archive of plain arrays")
def npz_fake(tmp):
    (tmp / "data.npz").write_bytes(pickle.dumps({"x": [[1.0]] * 30, "y": [0, 1] * 15}))
    return on_file(tmp, "data.npz", target="")


@case("data.npz holds one .npy array")
def npz_is_npy(tmp):
    with open(tmp / "data.npz", "wb") as handle:
        np.save(handle, np.zeros((30, 3)))
    return on_file(tmp, "data.npz", target="")


@case("data.npz is not a readable NPZ archive")
def npz_truncated(tmp):
    np.savez(tmp / "whole.npz", x=np.zeros((30, 3)), y=np.arange(30) % 2)
    (tmp / "data.npz").write_bytes((tmp / "whole.npz").read_bytes()[:200])
    (tmp / "whole.npz").unlink()
    return on_file(tmp, "data.npz", target="")


@case("NPZ file needs arrays 'x' and 'y'")
def npz_without_x(tmp):
    np.savez(tmp / "data.npz", features=np.zeros((30, 3)), y=np.arange(30) % 2)
    return on_file(tmp, "data.npz", target="")


@case("Received: x.shape=(30,)")
def npz_rank_one(tmp):
    np.savez(tmp / "data.npz", x=np.zeros(30), y=np.arange(30) % 2)
    return on_file(tmp, "data.npz", target="")


@case("Received: source=")
def data_unsupported_type(tmp):
    table().to_csv(tmp / "data.tsv", index=False)
    return on_file(tmp, "data.tsv")


@case("Received: source='" + "d" * 300 + ".csv'")
def data_name_too_long(tmp):
    return on_file(tmp, "d" * 300 + ".csv")


# model files


@case("uses class 'Doubling', which is not a built-in Keras or reglab object")
def model_unregistered_class(tmp):
    return with_model(tmp, lambda p: edited_model(p, unregistered_class))


@case("uses function 'hostile_nowhere>swish2', which is not a built-in Keras or reglab object")
def model_unregistered_function(tmp):
    return with_model(tmp, lambda p: edited_model(p, unregistered_function))


@case("[model] `file` and `hidden` cannot go together")
def model_file_with_hidden(tmp):
    return with_model(tmp, lambda p: wine_model().save(p), extras="hidden = [16]\n")


@case("contains a Lambda layer (arbitrary code)")
def model_with_lambda(tmp):
    def write(path):
        inputs = keras.Input((13,))
        doubled = keras.layers.Lambda(lambda t: t * 2)(inputs)
        keras.Model(inputs, keras.layers.Dense(3, activation="softmax")(keras.layers.Dense(4)(doubled))).save(path)

    return with_model(tmp, write)


@case("not a Keras model archive")
def model_not_a_zip(tmp):
    return with_model(tmp, lambda p: p.write_text("not a model"))


@case("reglab reads only the native Keras format (.keras)")
def model_h5(tmp):
    return with_model(tmp, lambda p: wine_model().save(p), file="model.h5")


@case("takes inputs of shape (None, 30) but the data has shape (178, 13)")
def model_input_shape(tmp):
    return with_model(tmp, lambda p: wine_model(n_in=30).save(p))


@case("Received: layer_groups.late=['output']")
def model_layer_group_unknown_layer(tmp):
    return with_model(tmp, lambda p: wine_model().save(p), extras="layer_groups = { late = ['output'] }\n")


@case("(layers: hid\\x1b[31mden\\x0d\\x0a, kind)")
def model_layer_names_with_escape_sequences(tmp):
    def write(path):  # the model file's own strings reach the message: they are shown escaped
        inputs = keras.Input((13,), name="features")
        hidden = keras.layers.Dense(8, activation="relu", name="hid\x1b[31mden\r\n")(inputs)
        keras.Model(inputs, keras.layers.Dense(3, activation="softmax", name="kind")(hidden)).save(path)

    return with_model(tmp, write, extras="layer_groups = { early = ['hidden'] }\n")


@case("evil\\x1b[2J\\x0d/bad.toml is not valid TOML")
def config_path_with_escape_sequences(tmp):
    (tmp / "evil\x1b[2J\r").mkdir()
    return sweep(tmp, "[data\n", name="evil\x1b[2J\r/bad.toml")


@case("Received: file='model.keras'")
def model_missing(tmp):
    return with_model(tmp, None)


# run directories


@case("is a file, not a directory")
def run_dir_is_a_file(tmp):
    (tmp / "run").write_text("my notes")
    return sweep(tmp, spec())


@case("which does not exist")
def run_dir_dangling_symlink(tmp):
    (tmp / "run").symlink_to(tmp / "gone")
    return sweep(tmp, spec())


@case("not a reglab run directory; refusing to write into it")
def run_dir_foreign(tmp):
    (tmp / "run").mkdir()
    (tmp / "run" / "thesis.tex").write_text("years of work")
    return sweep(tmp, spec())


@case("cannot be created: ")
def run_dir_under_a_file(tmp):
    (tmp / "notes").write_text("a file")
    argv = sweep(tmp, spec())
    argv[argv.index("--run-dir") + 1] = str(tmp / "notes" / "run")
    return argv


@case("is not writable")
def run_dir_parent_read_only(tmp):
    if os.geteuid() == 0:
        pytest.skip("running as root: permissions do not stop root")
    (tmp / "locked").mkdir()
    (tmp / "locked").chmod(0o500)
    argv = sweep(tmp, spec())
    argv[argv.index("--run-dir") + 1] = str(tmp / "locked" / "run")
    return argv


# reglab report


@case("Not a reglab run directory")
def report_not_a_run(tmp):
    (tmp / "run").mkdir()
    return ["report", str(tmp / "run")]


@case("spec.json is damaged")
def report_damaged_spec(tmp):
    (tmp / "run").mkdir()
    (tmp / "run" / "spec.json").write_bytes(b"\xff\xfe not json")
    return ["report", str(tmp / "run")]


@case("Received: tensorboard=")
def report_tensorboard_is_a_file(tmp):
    (tmp / "run").mkdir()
    (tmp / "run" / "spec.json").write_text(json.dumps({"spec": {}, "spec_hash": "0", "data_fingerprint": "0"}))
    (tmp / "tb").write_text("not a folder")
    return ["report", str(tmp / "run"), "--tensorboard", str(tmp / "tb")]


# command-line options


@case("Received: --epochs='0'")
def demo_zero_epochs(tmp):
    return ["demo", "--epochs", "0", "--run-dir", str(tmp / "run")]


@case("Received: --epochs='many'")
def demo_epochs_not_a_number(tmp):
    return ["demo", "--epochs", "many", "--run-dir", str(tmp / "run")]


@case("Received: --seed='4294967296'")
def demo_seed_beyond_32_bits(tmp):
    return ["demo", "--seed", "4294967296", "--run-dir", str(tmp / "run")]


@case("Received: --wait='-1'")
def sweep_negative_wait(tmp):
    return sweep(tmp, spec()) + ["--wait", "-1"]


@case("Received: option='--bogus'")
def sweep_unknown_option(tmp):
    return sweep(tmp, spec()) + ["--bogus"]


@case("Received: config=None")
def sweep_without_config(tmp):
    return ["sweep"]


@case("exists; `reglab init")
def init_over_an_existing_file(tmp):
    (tmp / "mine.toml").write_text("# my own config\n")
    return ["init", str(tmp / "mine.toml")]


@case("is not a file. Received: path=")
def init_onto_a_folder(tmp):
    (tmp / "folder").mkdir()
    return ["init", str(tmp / "folder"), "--force"]


@case("Received: command='frobnicate'")
def unknown_command(tmp):
    return ["frobnicate"]


def _files(root):
    """Every path under `root` with its size and modification time: what "nothing written" compares."""
    out = {}
    for path in sorted(root.rglob("*")):
        stat = path.lstat()
        out[str(path.relative_to(root))] = (stat.st_size, stat.st_mtime_ns) if not path.is_dir() else "dir"
    return out


@pytest.mark.parametrize("name", CASES)
def test_hostile_input_is_one_clear_line_and_nothing_written(name, tmp_path, monkeypatch):
    make, fragment = CASES[name]
    monkeypatch.setenv("KERAS_BACKEND", keras.backend.backend())  # the CLI's import path for this process
    monkeypatch.chdir(tmp_path)  # a default runs/<name> would land here
    argv = make(tmp_path)
    before = _files(tmp_path)
    result = CliRunner().invoke(app, argv)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.exit_code == 2, (result.exit_code, result.stderr, result.stdout, result.exc_info)
    assert isinstance(result.exception, SystemExit), result.exc_info  # no exception escaped the CLI
    assert "Traceback" not in result.output
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("reglab: error: ") and " Received: " in lines[0], lines[0]
    assert fragment in lines[0], lines[0]
    assert not any(ord(c) < 32 or ord(c) == 127 for c in lines[0]), repr(lines[0])  # a clean terminal line
    assert _files(tmp_path) == before
