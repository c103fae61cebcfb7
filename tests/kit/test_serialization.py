"""`import reglab` is enough to load a saved model: every class reglab registers with Keras is found.

The registry is discovered, not listed: every reglab module is imported and every `reglab>` name in
Keras's custom objects becomes a case, so a class registered tomorrow is tested (or fails for lack
of an example) without anyone remembering to add it.
"""

import importlib
import json
import os
import pkgutil
import subprocess
import sys

import keras
import numpy as np
import pytest

import reglab
from reglab.kit import regularizers as R
from reglab.kit import schedules as S
from reglab.kit.optimizers import Proximal

pytestmark = pytest.mark.both_backends  # the Keras-level kit works on either backend


def _registered() -> list[str]:
    for module in pkgutil.walk_packages(reglab.__path__, "reglab."):
        if module.name != "reglab.__main__":  # importing that one runs the CLI
            importlib.import_module(module.name)
    return sorted(name for name in keras.saving.get_custom_objects() if name.startswith("reglab>"))


REGISTERED = _registered()

# One instance per registered class; where it goes in the model follows from its type.
EXAMPLES = {
    "reglab>ElasticNet": lambda: R.ElasticNet(0.01, l1_ratio=0.3),
    "reglab>GroupLasso": lambda: R.GroupLasso(0.02, axis=[1]),
    "reglab>Smoothness": lambda: R.Smoothness(0.03, axis=1),
    "reglab>L2SP": lambda: R.L2SP(0.04, np.arange(12, dtype="float32").reshape(4, 3) / 10),  # the kernel's shape
    "reglab>Scheduled": lambda: S.Scheduled(R.ElasticNet(0.02, 0.4), S.Constant(0.5)),
    "reglab>Constant": lambda: S.Constant(0.25),
    "reglab>LinearWarmup": lambda: S.LinearWarmup(epochs=3, start=0.1),
    "reglab>CosineWarmup": lambda: S.CosineWarmup(epochs=4),
    "reglab>Step": lambda: S.Step([2, 5], [0.0, 0.5, 1.0]),
    "reglab>Proximal": lambda: Proximal(keras.optimizers.Adam(2e-3), l1=1e-4, group_lasso=1e-3, weights="d/kernel$"),
}

# Runs in a fresh interpreter: nothing but keras and reglab imported, as a user's script would.
_LOADER = """
import json, sys
import keras, reglab

def found(model, where):
    if where == "optimizer":
        return model.optimizer
    regularizer = model.get_layer("d").kernel_regularizer
    return regularizer.schedule if where == "schedule" else regularizer

out = {}
for name, (path, where) in json.loads(sys.argv[1]).items():
    try:
        out[name] = keras.saving.serialize_keras_object(found(keras.models.load_model(path, safe_mode=True), where))
    except Exception as error:
        out[name] = {"error": f"{type(error).__name__}: {str(error)[:400]}"}
print(json.dumps(out))
"""


def _save(obj, path):
    """A small model holding `obj`, saved to `path`; returns where the loader finds `obj` again."""
    if isinstance(obj, keras.optimizers.Optimizer):
        where, regularizer = "optimizer", None
    elif isinstance(obj, S.Schedule):
        where, regularizer = "schedule", S.Scheduled(R.L2(1e-3), obj)
    else:
        where, regularizer = "regularizer", obj
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, name="d", kernel_regularizer=regularizer)])
    if where == "optimizer":
        model.compile(optimizer=obj, loss="mse")
    model.save(path)
    return where


@pytest.fixture(scope="module")
def loaded(tmp_path_factory):
    """{registered name: (the original's serialization, the reloaded one's)}, from one subprocess."""
    folder = tmp_path_factory.mktemp("registry")
    originals, jobs = {}, {}
    for name in REGISTERED:
        if name in EXAMPLES:
            originals[name] = EXAMPLES[name]()
            path = folder / f"{name.replace('>', '_')}.keras"
            jobs[name] = (str(path), _save(originals[name], path))
    run = subprocess.run([sys.executable, "-c", _LOADER, json.dumps(jobs)], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    reloaded = json.loads(run.stdout.strip().splitlines()[-1])
    # Through JSON as the child's answer went: tuples become lists, nothing else changes.
    return {
        name: (json.loads(json.dumps(keras.saving.serialize_keras_object(obj))), reloaded[name])
        for name, obj in originals.items()
    }


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(set(REGISTERED) | set(EXAMPLES)))
def test_every_registered_class_loads_after_import_reglab_alone(name, loaded):
    assert name in REGISTERED, f"{name} has an example here but is no longer registered"
    assert name in EXAMPLES, f"{name} is registered with Keras: add an example of it to EXAMPLES"
    original, reloaded = loaded[name]
    assert "error" not in reloaded, reloaded.get("error")
    assert reloaded["registered_name"] == name
    assert reloaded == original


@pytest.mark.slow
@pytest.mark.parametrize(
    "then", ["import keras", "import reglab.kit.regularizers", "from reglab.regularizers import GroupLasso"]
)
def test_import_reglab_stays_light_and_registers_when_keras_arrives(then):
    """`reglab --help` imports the package: it must not pull in Keras, yet every reglab class must be
    registered once Keras arrives later in the process — imported by the user, or by a reglab module
    (which is then itself half-imported while Keras loads)."""
    script = f"""
import json, sys
import reglab
heavy = sorted(m for m in sys.modules if m.split(".")[0] in ("keras", "tensorflow") or m.startswith("reglab."))
{then}
import keras
import numpy as np
print(json.dumps([heavy, sorted(n for n in keras.saving.get_custom_objects() if n.startswith("reglab>"))]))
"""
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    heavy, registered = json.loads(run.stdout.strip().splitlines()[-1])
    assert heavy == []
    assert registered == REGISTERED


@pytest.mark.slow
@pytest.mark.jax_only  # its process is a JAX one whichever pass runs it: once is enough
def test_a_users_jax_process_sweeps_saves_and_loads_without_importing_tensorflow(tmp_path):
    """Keras asks `tf.available` (importing TensorFlow, ~460 MB) before every isinstance check of
    `serialize_keras_object`; reglab answers it from `sys.modules` (`reglab._lazy_tensorflow`), so a
    notebook's sweep — signatures, `regularize`, the report, `best_model.keras` saved and loaded — never
    imports it. Without that, this process imports TensorFlow (checked: the control below)."""
    script = f"""
import sys
import reglab, keras
from sklearn.datasets import load_digits
x, y = load_digits(return_X_y=True)
model = keras.Sequential([keras.Input((64,)), keras.layers.Dense(16, activation="relu"),
                          keras.layers.Dense(10, activation="softmax")])
result = reglab.Sweep(model, grid={{"l2": [0.0, 1e-3]}}, cv=2, epochs=3, test_size=0.2, seed=0,
                      standardize=True).run(x, y, run_dir={str(tmp_path / "run")!r})
keras.models.load_model({str(tmp_path / "run" / "best_model.keras")!r}, safe_mode=True)
print(keras.backend.backend(), "tensorflow" in sys.modules)
if sys.argv[1:] == ["control"]:
    from keras.src.saving import serialization_lib
    serialization_lib.tf = serialization_lib.tf._lazy
    keras.saving.serialize_keras_object(model)
    print("tensorflow" in sys.modules)
"""
    run = subprocess.run(
        [sys.executable, "-c", script, "control"],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "KERAS_BACKEND": "jax"},
    )
    assert run.returncode == 0, run.stderr[-3000:]
    assert run.stdout.split()[-3:] == ["jax", "False", "True"]


@pytest.mark.parametrize("short", sorted(reglab._PUBLIC_MODULES))
def test_a_public_module_keeps_its_short_path_as_the_very_module_that_moved(short):
    """Users' code imports `reglab.regularizers`, which lives in `reglab/kit/` since the stage layout."""
    old = importlib.import_module(f"reglab.{short}")
    assert old is importlib.import_module(reglab._PUBLIC_MODULES[short]) is getattr(reglab, short)
    assert old.__spec__.name == old.__name__ == reglab._PUBLIC_MODULES[short]
