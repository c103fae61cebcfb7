"""XLA's programs kept on disk: a sweep in a fresh process fills reglab's cache (and a second run reads it),
a cache folder the user gave JAX is used as it is, and REGLAB_COMPILE_CACHE=0 (what `reglab bench` sets)
keeps nothing."""

import os
import subprocess
import sys

SWEEP = """
import json, os, reglab, keras, time
from sklearn.datasets import load_breast_cancer
x, y = load_breast_cancer(return_X_y=True)
x = x * float(os.environ.get("SCALE", 1))  # other data of the same shapes
def build(point):
    return keras.Sequential([keras.Input((30,)),
        keras.layers.Dense(8, activation="relu", kernel_regularizer=keras.regularizers.L2(point["l2"])),
        keras.layers.Dense(2, activation="softmax")])
result = reglab.Sweep(build, grid={"l2": [0, 1e-2]}, cv=2, epochs=2, refit=False, seed=0).run(x, y)
print(json.dumps(result.members.sort_values("member").val_loss.tolist()))
"""

CONFIG = """
from reglab.engine import compile_cache
compile_cache.use()
import jax
print(jax.config.jax_compilation_cache_dir)
"""


def run(code, **env):
    clean = {k: v for k, v in os.environ.items() if k not in ("REGLAB_CACHE", "JAX_COMPILATION_CACHE_DIR")}
    # XLA's own fusion emitters, not the suite's older, faster-compiling ones (tests/conftest.py): with those the
    # initializers' programs compile in about the 0.05 s below which JAX keeps nothing — kept in one run, not
    # the other
    clean["XLA_FLAGS"] = clean.get("XLA_FLAGS", "").replace("--xla_cpu_use_fusion_emitters=false", "").strip()
    done = subprocess.run(
        [sys.executable, "-c", code], env={**clean, "KERAS_BACKEND": "jax", **env}, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout.strip().splitlines()[-1]


def test_a_sweep_keeps_its_programs_in_reglabs_cache_and_a_second_run_reads_them(tmp_path):
    """Warm as cold: the second run reads every program back (none compiled and added again) and trains
    every member to the same numbers; other data of the same shapes is the same programs too (the data is
    an argument of each program, not a constant in it)."""
    cold = run(SWEEP, REGLAB_CACHE=str(tmp_path))
    kept = programs(tmp_path)
    assert "jit_call" in {name.split("-")[0] for name in kept}  # the epoch (lowered from its export)
    assert run(SWEEP, REGLAB_CACHE=str(tmp_path)) == cold
    assert not engines(programs(tmp_path) - kept)
    assert run(SWEEP, REGLAB_CACHE=str(tmp_path), SCALE="1.5") != cold
    assert not engines(programs(tmp_path) - kept)


def programs(cache) -> set:
    return {p.name for p in (cache / "xla").iterdir()}


def engines(names) -> set:
    """The engine's programs among `names` (not a tiny eager op such as `jit_broadcast_in_dim`, which JAX keeps
    only when its compilation took ≥ 0.05 s: on a loaded machine, in one run and not the other)."""
    return {name for name in names if name.split("-")[0] in ("jit_call", "jit_epoch", "jit_probe", "jit__uniform")}


def test_a_folder_given_to_jax_is_used_and_reglab_compile_cache_0_keeps_nothing(tmp_path):
    assert run(CONFIG, REGLAB_CACHE=str(tmp_path)) == str(tmp_path / "xla")
    assert run(CONFIG, REGLAB_CACHE=str(tmp_path), JAX_COMPILATION_CACHE_DIR=str(tmp_path / "mine")) == str(
        tmp_path / "mine"
    )
    assert run(CONFIG, REGLAB_CACHE=str(tmp_path), REGLAB_COMPILE_CACHE="0") == "None"
