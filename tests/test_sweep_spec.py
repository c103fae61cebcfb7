"""A sweep as plain values: its config (constructor arguments as given, `from_config` inverts it) and its spec's
model fingerprint, with both failure modes of a builder's fingerprint measured."""

import importlib
import json
import sys
import textwrap

import keras
import pytest
from sklearn.datasets import load_wine

import reglab
from reglab.search.space import LogUniform

X, Y = load_wine(return_X_y=True)


def build(point):  # module level: a config names it by its import path
    return keras.Sequential(
        [keras.Input((13,)), keras.layers.Dense(8, activation="relu"), keras.layers.Dense(3, activation="softmax")]
    )


def test_a_config_is_the_constructor_arguments_and_rebuilds_the_same_sweep():
    schedule = keras.optimizers.schedules.ExponentialDecay(1e-2, decay_steps=10, decay_rate=0.9)
    sweep = reglab.Sweep(
        build,
        random={"l2": LogUniform(1e-5, 1e-1)},
        n_trials=3,
        cv=3,
        learning_rate=schedule,
        loss=keras.losses.SparseCategoricalCrossentropy(),
        epochs=2,
        seed=4,
    )
    config = sweep.get_config()
    assert config["model"] == {"builder": f"{__name__}:build"} and config["cv"] == 3 and config["seed"] == 4
    assert config["random"] == {"l2": {"log_uniform": [1e-5, 1e-1]}} and config["grid"] is None
    assert config["learning_rate"]["class_name"] == "ExponentialDecay"
    assert json.loads(json.dumps(config)) == config  # JSON-ready, as spec.json keeps it
    again = reglab.Sweep.from_config(config)
    assert again.spec_hash() == sweep.spec_hash() and again.get_config() == config
    with pytest.raises(ValueError, match="cannot be imported .a lambda or a local function.*Received: model="):
        reglab.Sweep.from_config(reglab.Sweep(lambda point: build(point), grid={"l2": [0.0]}).get_config())
    model = build({})
    with pytest.raises(ValueError, match="not its weights: pass the model"):
        reglab.Sweep.from_config(reglab.Sweep(model, grid={"l2": [0.0]}).get_config())
    assert reglab.Sweep.from_config(reglab.Sweep(model, grid={"l2": [0.0]}).get_config(), model=model).model is model


BUILDER = """
import keras


def width():
    return {width}


def build(point):{comment}
    return keras.Sequential([keras.Input((13,)), keras.layers.Dense(width(), activation="relu"),
                             keras.layers.Dense(3, activation="softmax")])
"""


def test_a_builders_fingerprint_is_what_it_builds_not_its_source_text(tmp_path, monkeypatch):
    """Both failure modes, measured on the two fingerprints: a comment added to the builder (nothing changed)
    and a helper the builder calls building a wider layer (everything changed)."""
    monkeypatch.syspath_prepend(str(tmp_path))
    hashes = {}
    for edit, (width, comment) in {"original": (8, ""), "comment": (8, "  # same model"), "helper": (16, "")}.items():
        (tmp_path / "users_builder.py").write_text(textwrap.dedent(BUILDER.format(width=width, comment=comment)))
        sys.modules.pop("users_builder", None)
        module = importlib.import_module("users_builder")
        sweep = reglab.Sweep(module.build, grid={"l2": [0.0, 1e-3]}, cv=2)
        hashes[edit] = (sweep.spec_hash(), sweep._legacy_spec_hash())
    sys.modules.pop("users_builder", None)
    (new, old), (new_comment, old_comment), (new_helper, old_helper) = hashes.values()
    assert new_comment == new and old_comment != old  # the source text restarted a sweep for a comment
    assert new_helper != new and old_helper == old  # and missed a wider layer built by a helper


def test_a_run_directory_written_with_the_source_text_fingerprint_resumes(tmp_path):
    sweep = reglab.Sweep(build, grid={"l2": [0.0]}, cv=2, epochs=3, learning_rate=1e-2, standardize=True, refit=False)
    first = sweep.run(X, Y, run_dir=tmp_path / "run")
    spec = json.loads((tmp_path / "run" / "spec.json").read_text())
    assert spec["config"] == sweep.get_config() and spec["spec_hash"] == sweep.spec_hash()
    spec["spec_hash"] = sweep._legacy_spec_hash()  # as an earlier reglab wrote it
    (tmp_path / "run" / "spec.json").write_text(json.dumps(spec))
    again = sweep.run(X, Y, run_dir=tmp_path / "run")
    assert again.timing == {}  # nothing trained again: every member was read back
    assert again.members["member"].tolist() == first.members["member"].tolist()
