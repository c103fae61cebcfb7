"""A population's traced epoch kept on disk (`reglab.engine.traces`): read back instead of traced — for a
re-run and for other λ — to the same numbers as `model.fit` (exactness warm as well as cold), and never
used where anything it depends on changed: the architecture, the loss or metrics, Keras's version, the
source of a custom layer."""

import importlib
import sys
import textwrap

import jax
import keras
import numpy as np
import pandas as pd
import pytest
from test_population import FAMILIES, X, fit, setup, training

from reglab import data as D
from reglab.engine import population, row_independence, traces
from reglab.engine.training import Training


@pytest.fixture
def cache(monkeypatch, tmp_path):
    """An empty cache folder, and no answer of the padding probe remembered in this process."""
    monkeypatch.setenv("REGLAB_CACHE", str(tmp_path))
    monkeypatch.setattr(row_independence, "_ANSWERS", {})
    return tmp_path / "traces"


def train(build, x, setting, **kwargs):
    dataset, members = setup(x, **kwargs)
    (pop,), failures = population.plan_populations(members, build, probe=D.rows(dataset.x, slice(0, 1)))
    assert not failures
    return members, dataset, population.train_population(pop, dataset, setting)


@pytest.mark.parametrize("family", ["mlp-dropout", "conv1d-batchnorm"])
def test_a_kept_epoch_is_read_back_for_other_lambdas_and_trains_exactly_as_model_fit(cache, monkeypatch, family):
    """Cold: traced and kept. Warm, as a new process would (nothing remembered in memory), with other λ: the
    epoch and the padding probe's answer read back, nothing traced, each member still `fit`'s; the same λ
    again gives the cold run's numbers bit for bit. (conv1d-batchnorm: exact partial-batch shapes.)"""
    build, x = FAMILIES[family]
    setting = training(epochs=2)
    members, dataset, cold = train(build, x, setting, n=150)
    assert cold[2]["traced_epochs"] == 1 and len(list(cache.glob("*.jax"))) == 1

    exported, probes = [], []
    real_export, real_close = jax.export.export, row_independence.close
    monkeypatch.setattr(jax.export, "export", lambda *a, **k: exported.append(1) or real_export(*a, **k))
    monkeypatch.setattr(row_independence, "close", lambda a, b: probes.append(1) or real_close(a, b))
    for lambdas in ((1e-3, 1e-1), (0.0, 1e-2)):
        row_independence._ANSWERS.clear()
        members, dataset, warm = train(build, x, setting, n=150, lambdas=lambdas)
        assert warm[2].get("read_epochs") == 1 and "traced_epochs" not in warm[2] and not exported and not probes
    for member in members:  # the last run's λ are the cold run's: the same numbers
        pd.testing.assert_frame_equal(warm[0][member.id], cold[0][member.id], check_exact=True)
        for path, w in cold[1][member.id].items():
            np.testing.assert_array_equal(warm[1][member.id][path], w)
    expected, _ = fit(build, members[-1], dataset, setting)
    assert max(np.abs(expected[p] - warm[1][members[-1].id][p]).max() for p in expected) <= 1e-5


def test_an_entry_keeps_the_questions_its_trace_asked_of_the_per_member_values(cache):
    """Read back, a program knows what its trace asked of each stand-in number (`Knob.asked`), so that it admits
    late members as the traced one would (`reglab.engine.admission`); a question about something JSON cannot keep
    exactly leaves the program untraced-kept (traced every time)."""
    run = jax.jit(lambda a, b: a * b, donate_argnums=(0,))
    args = (np.ones(3, "float32"), np.ones(3, "float32"))
    asked = [[("bool", None), ("eq", 1.0)], []]
    assert traces.lower(run, args, "k", True, 1, asked)[2] == "traced"
    again = [[], []]
    assert traces.lower(run, args, "k", True, 1, again)[2] == "read" and again == asked
    odd = [[("gt", np.float32(0.5))]]
    assert traces.lower(run, args, "j", True, 1, odd)[2] == "traced" and not (cache / "j.jax").exists()
    assert traces.lower(run, args, "j", True, 1, [[]])[2] == "traced"


class Stop(Exception):
    pass


def key_of(build, setting=None, **kwargs):
    """The key a population's epoch is kept under (nothing traced: `traces.lower` stops it)."""
    keys = []

    def stop(run, args, key, exportable=True, epochs=1, asked=None):
        keys.append(key)
        raise Stop

    dataset, members = setup(X, n=100, **kwargs)
    (pop,), _ = population.plan_populations(members, build)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(traces, "lower", stop)
        with pytest.raises(Stop):
            population.train_population(pop, dataset, setting or training(epochs=1))
    return keys[0]


def mlp(units=16, activation="relu"):
    def build(point):
        return keras.Sequential(
            [
                keras.Input((64,)),
                keras.layers.Dense(units, activation=activation, kernel_regularizer=keras.regularizers.L2(point["l2"])),
                keras.layers.Dense(10, activation="softmax"),
            ]
        )

    return build


def test_the_key_changes_with_what_the_trace_depends_on_and_not_with_lambda(cache, monkeypatch):
    base = key_of(mlp())
    assert key_of(mlp(), lambdas=(1e-4, 3e-1)) == base  # other values: the same program
    assert key_of(mlp(units=17)) != base
    assert key_of(mlp(activation="tanh")) != base
    other_metrics = Training(
        **{**training(epochs=1).__dict__, "metrics": ("accuracy", "sparse_top_k_categorical_accuracy")}
    )
    assert key_of(mlp(), other_metrics) != base
    assert key_of(mlp(), training(epochs=1, optimizer="sgd")) != base
    assert key_of(mlp(), training(epochs=2)) == base  # epochs matter where convolutions batch (see below)
    monkeypatch.setattr(keras, "__version__", "0.0.0")
    assert key_of(mlp()) != base


def test_a_custom_layer_is_keyed_by_its_source_and_one_without_a_file_is_never_kept(cache, monkeypatch, tmp_path):
    """An edit of the module that defines a custom layer (here: in a helper function beside it) is another
    program; a class defined where no source file exists (typed into a REPL) gets no key at all."""
    module = tmp_path / "custom_layers_for_traces.py"
    source = """
        import keras

        def scale(x):
            return x * {factor}

        class Scaled(keras.layers.Layer):
            def call(self, x):
                return scale(x)
        """
    module.write_text(textwrap.dedent(source.format(factor=2.0)))
    monkeypatch.syspath_prepend(str(tmp_path))
    custom = importlib.import_module("custom_layers_for_traces")

    def build(point):
        return keras.Sequential(
            [
                keras.Input((64,)),
                keras.layers.Dense(16, kernel_regularizer=keras.regularizers.L2(point["l2"])),
                custom.Scaled(),
                keras.layers.Dense(10, activation="softmax"),
            ]
        )

    first = key_of(build)
    assert key_of(build) == first
    module.write_text(textwrap.dedent(source.format(factor=3.0)))
    importlib.reload(custom)
    assert key_of(build) != first

    namespace = {"keras": keras, "__name__": "typed_in_a_repl"}
    exec("class Typed(keras.layers.Layer):\n    def call(self, x):\n        return 2 * x\n", namespace)
    sys.modules["typed_in_a_repl"] = type(sys)("typed_in_a_repl")  # a module without a file, as __main__ in a REPL
    try:

        def typed(point):
            return keras.Sequential(
                [
                    keras.Input((64,)),
                    namespace["Typed"](),
                    keras.layers.Dense(10, kernel_regularizer=keras.regularizers.L2(point["l2"])),
                ]
            )

        assert key_of(typed) is None
    finally:
        del sys.modules["typed_in_a_repl"]


def test_a_damaged_entry_is_traced_again_with_a_warning_and_one_of_another_key_is_never_used(cache):
    build, x = FAMILIES["mlp-dropout"]
    members, _, cold = train(build, x, training(epochs=1), n=100)
    (entry,) = cache.glob("*.jax")
    entry.write_bytes(entry.read_bytes()[:200])  # cut short, as by a full disk
    with pytest.warns(UserWarning, match=r"kept trace did not read back.*Received: entry="):
        members, _, again = train(build, x, training(epochs=1), n=100)
    assert again[2]["traced_epochs"] == 1 and entry.stat().st_size > 200  # traced, and kept whole again
    for member in members:
        pd.testing.assert_frame_equal(again[0][member.id], cold[0][member.id], check_exact=True)
    (entry,) = cache.glob("*.jax")
    entry.rename(cache / f"{'0' * 64}.jax")  # renamed to another key's name: its header says whose it is
    other = cache / f"{'0' * 64}.jax"
    assert traces._read("0" * 64, epochs=1) is None and other.exists()


def test_an_entry_without_convolutions_serves_any_epochs_one_with_them_its_own(cache):
    """The epochs decide only how convolutions batch their members (measured for the calls expected): an
    MLP's kept epoch serves a longer sweep; a convnet's is traced again for other epochs, then read back."""
    build, x = FAMILIES["mlp-dropout"]
    train(build, x, training(epochs=1), n=100)
    assert train(build, x, training(epochs=2), n=100)[2][2].get("read_epochs") == 1
    build, x = FAMILIES["convnet"]
    train(build, x, training(epochs=1), n=100)
    assert train(build, x, training(epochs=2), n=100)[2][2].get("traced_epochs") == 1
    assert train(build, x, training(epochs=2), n=100)[2][2].get("read_epochs") == 1
