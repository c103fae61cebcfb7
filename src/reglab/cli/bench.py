"""`reglab bench`: the standard benchmark (the project's BENCHMARK.md), peers measured in the same run.

Workload: digits (x / 16), 5-fold StratifiedKFold(shuffle, random_state=0), 64 → Dense(128, relu) →
Dense(64, relu) → Dense(10, softmax), L2 on both hidden kernels, λ ∈ {0, 1e-5, 1e-4, 3e-4, 1e-3,
3e-3, 1e-2, 1e-1}, Adam(1e-3), batch 32, 50 epochs, validation loss and accuracy after every epoch:
8 × 5 = 40 members.

Peers, timed in this process: reglab's population engine (Keras's JAX backend);
sequential Keras the tutorials' way (a few fits timed, × 40) on this backend and, from JAX, on
TensorFlow in a subprocess (the seeds' way, which `speedup_vs_sequential_keras` compares with); scikit-learn's GridSearchCV over MLPClassifier (alpha converted from λ, see
`reglab.conventions.mlp_alpha`); and the FLOP bound at the float32 batched-matmul rate measured now (numpy's
on a CPU; on an accelerator, a jitted JAX matmul's on that device). Where TensorFlow is not installed (a
JAX-only GPU machine), the sequential peer on this backend stands in for the seeds' way
(`sequential_keras_backend` says which).
The same workload is also run cold and warm, each in a fresh process (`reglab.cli.bench_warm`): what a
user's first run and next run cost. Ratios measured side by side mean something on a shared, noisy machine; absolute times little.
"""

from __future__ import annotations

import json
import platform
import resource
import time
from pathlib import Path

import numpy as np

from reglab.conventions import mlp_alpha

LAMBDAS = (0.0, 1e-5, 1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 1e-1)
HIDDEN = (128, 64)


def forward_flops(sizes=(64, *HIDDEN, 10)) -> int:
    """Multiply-adds × 2 of one sample's forward pass through the dense stack."""
    return 2 * sum(a * b for a, b in zip(sizes, sizes[1:]))


def workload_flops(n_train: float, n_val: float, epochs: int, members: int) -> float:
    """Training costs ≈ 3 forward passes (forward + backward), validation one."""
    per_member = epochs * (3 * n_train * forward_flops() + n_val * forward_flops())
    return per_member * members


def matmul_rate(seconds: float = 1.0) -> float:
    """float32 FLOP/s of numpy's batched matmul on the workload's shapes, measured now."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((40, 32, 64), dtype=np.float32)
    b = rng.standard_normal((40, 64, 128), dtype=np.float32)
    np.matmul(a, b)
    count, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        np.matmul(a, b)
        count += 1
    return count * 2 * 40 * 32 * 64 * 128 / (time.perf_counter() - started)


def device_matmul_rate(seconds: float = 1.0) -> float:
    """float32 FLOP/s of a jitted batched matmul on JAX's default device (an accelerator: numpy's rate
    would be the host's), on the workload's shapes × 64 members so that the device is busy."""
    import jax
    import jax.numpy as jnp

    a = jax.random.normal(jax.random.key(0), (40 * 64, 32, 64), "float32")
    b = jax.random.normal(jax.random.key(1), (40 * 64, 64, 128), "float32")
    product = jax.jit(jnp.matmul)
    product(a, b).block_until_ready()
    count, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        out = product(a, b)
        count += 1
    out.block_until_ready()
    return count * 2 * a.shape[0] * 32 * 64 * 128 / (time.perf_counter() - started)


def standard_sweep(lambdas=LAMBDAS, epochs: int = 50, search: dict | None = None, **settings):
    """The standard workload's `Sweep` (BENCHMARK.md), the one every section of `reglab bench` measures;
    `settings` change what a section varies (`repeats`, `executor`, `workers`, `seed`, `prune`), `search`
    the points (`{"random": …, "n_trials": …}` instead of the grid over `lambdas`)."""
    from reglab.models import MLP
    from reglab.sweep import Sweep

    return Sweep(
        MLP(hidden=list(HIDDEN)).bind(64, 10),
        **(search or {"grid": {"l2": list(lambdas)}}),
        cv=5,
        epochs=epochs,
        batch_size=32,
        optimizer="adam",
        learning_rate=1e-3,
        refit=False,
        engine="population",
        **{"seed": 0, **settings},
    )


def peak_rss() -> float:
    """This process's peak resident memory in MB: Linux's VmHWM, which belongs to the address space (an exec
    starts it again), not `ru_maxrss`, which a child started by `subprocess` inherits from its parent (each
    cold/warm child of a 660 MB bench reported 661 MB)."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _tensorflow_installed() -> bool:
    import importlib.util

    return importlib.util.find_spec("tensorflow") is not None


def _data():
    from sklearn.datasets import load_digits

    x, y = load_digits(return_X_y=True)
    return (x / 16.0).astype("float32"), y


def _keras_model(strength):
    import keras

    l2 = keras.regularizers.L2(strength)
    return keras.Sequential(
        [
            keras.Input((64,)),
            keras.layers.Dense(HIDDEN[0], activation="relu", kernel_regularizer=l2),
            keras.layers.Dense(HIDDEN[1], activation="relu", kernel_regularizer=l2),
            keras.layers.Dense(10, activation="softmax"),
        ]
    )


def sequential_keras(lambdas, fits: int, epochs: int, batch: int) -> dict:
    """Time `fits` of the tutorials' sequential `model.fit`s (fold 0, λ in turn) on this process's backend."""
    import keras
    from sklearn.model_selection import StratifiedKFold

    from reglab.search import plan

    x, y = _data()
    train, val = next(iter(StratifiedKFold(5, shuffle=True, random_state=0).split(x, y)))
    seconds, accuracy = [], {}
    for i in range(fits):
        strength = lambdas[i % len(lambdas)]
        keras.backend.clear_session()
        plan.set_global_seed(i)  # keras.utils.set_random_seed, without importing TensorFlow on JAX
        started = time.perf_counter()
        model = _keras_model(strength)
        model.compile(
            optimizer=keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy", metrics=["accuracy"]
        )
        history = model.fit(
            x[train], y[train], validation_data=(x[val], y[val]), epochs=epochs, batch_size=batch, verbose=0
        )
        seconds.append(time.perf_counter() - started)
        accuracy.setdefault(f"{strength:g}", []).append(history.history["val_accuracy"][-1])
    return {
        "backend": keras.backend.backend(),
        "per_fit": float(np.mean(seconds)),
        "accuracy": {k: float(np.mean(v)) for k, v in accuracy.items()},
    }


def _sequential_keras_on(backend: str, *args) -> dict:
    """`sequential_keras` in a fresh process on another Keras backend (a process has one backend)."""
    import os
    import subprocess
    import sys

    code = f"import json, reglab.cli.bench as b; print(json.dumps(b.sequential_keras(*{list(args)!r})))"
    env = {**os.environ, "KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "3"}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def run(quick: bool = False, keras_fits: int | None = None, scaling: bool = False, out=None, echo=print) -> dict:
    """Run the benchmark; return (and optionally write) the report dict. It measures the population engine:
    a process on Keras's JAX backend."""
    import keras
    from sklearn.model_selection import StratifiedKFold

    from reglab.engine.population import unavailable

    if unavailable():
        raise ValueError(
            f"The benchmark measures the population engine: {unavailable()}. "
            f"Received: KERAS_BACKEND={keras.backend.backend()!r}"
        )

    x, y = _data()
    lambdas = LAMBDAS[::3] if quick else LAMBDAS
    epochs, batch, folds = (4, 32, 5) if quick else (50, 32, 5)
    keras_fits = keras_fits or len(lambdas)
    splits = list(StratifiedKFold(folds, shuffle=True, random_state=0).split(x, y))
    members = len(lambdas) * folds
    backend = keras.backend.backend()

    def sweep(repeats=1):
        return standard_sweep(lambdas, epochs, repeats=repeats)

    echo(f"reglab (population engine, {backend}): {members} members × {epochs} epochs …")
    engine = sweep()
    started = time.perf_counter()
    result = engine.run(x, y)
    reglab_seconds = time.perf_counter() - started
    compile_seconds = result.timing["compile_seconds"]
    peak_rss_mb = peak_rss()
    final = result.members
    reglab_accuracy = final.groupby("l2").val_accuracy.mean()
    reglab_fold0 = final[final.fold == 0].groupby("l2").val_accuracy.mean()

    scaling_ratio = None
    if scaling:
        echo(f"reglab scaling: {members * 8} members (8 repeats of the folds) …")
        started = time.perf_counter()
        sweep(repeats=8).run(x, y)
        scaling_ratio = (time.perf_counter() - started) / reglab_seconds

    echo(f"sequential Keras ({backend}): {keras_fits} of the {members} fits, the tutorials' way …")
    sequential = {backend: sequential_keras(lambdas, keras_fits, epochs, batch)}
    if _tensorflow_installed():
        echo(f"sequential Keras (tensorflow, the seeds' way, in a subprocess): {keras_fits} fits …")
        sequential["tensorflow"] = _sequential_keras_on("tensorflow", list(lambdas), keras_fits, epochs, batch)
        seeds_way = sequential["tensorflow"]
    else:  # e.g. a GPU machine with JAX alone: the peer on this backend stands in, and the JSON says so
        echo("sequential Keras on tensorflow: skipped (TensorFlow is not installed); compared with this backend's")
        seeds_way = sequential[backend]
    per_fit = seeds_way["per_fit"]
    keras_seconds = per_fit * members
    keras_accuracy = sequential[backend]["accuracy"]  # the same backend as reglab: same maths

    echo("scikit-learn: GridSearchCV(MLPClassifier) on the same folds …")
    from sklearn.model_selection import GridSearchCV
    from sklearn.neural_network import MLPClassifier

    search = GridSearchCV(
        MLPClassifier(
            hidden_layer_sizes=HIDDEN,
            solver="adam",
            batch_size=batch,
            max_iter=epochs,
            learning_rate_init=1e-3,
            tol=0,
            n_iter_no_change=10_000,
            early_stopping=False,
            random_state=0,
        ),
        {"alpha": [mlp_alpha(s, batch) for s in lambdas]},
        cv=splits,
        n_jobs=2,
        refit=False,
    )
    import warnings

    from sklearn.exceptions import ConvergenceWarning

    started = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        search.fit(x, y)
    sklearn_seconds = time.perf_counter() - started

    from reglab.cli.bench_warm import warm_start

    warm = warm_start(lambdas, epochs, other=not quick, echo=echo)

    device = _device()
    echo(f"FLOP bound: batched matmul rate ({'numpy' if device == 'CPU' else device}) …")
    rate = matmul_rate(0.5 if quick else 2.0) if device == "CPU" else device_matmul_rate(0.5 if quick else 2.0)
    n = len(y)
    flops = workload_flops(n * (folds - 1) / folds, n / folds, epochs, members)
    bound = flops / rate

    report = {
        "speedup_vs_sequential_keras": keras_seconds / reglab_seconds,
        "speedup_vs_sklearn": sklearn_seconds / reglab_seconds,
        "ratio_to_flop_bound": reglab_seconds / bound,
        "warm_ratio_to_flop_bound": warm["warm"]["seconds"] / bound,
        "warm_start": warm,
        "reglab_seconds": reglab_seconds,
        "compile_seconds": compile_seconds,
        "peak_rss_mb": peak_rss_mb,
        "accuracy_by_lambda": {
            "reglab": {f"{s:g}": float(reglab_accuracy[s]) for s in lambdas},
            "reglab_fold0": {f"{s:g}": float(reglab_fold0[s]) for s in lambdas},
            "keras": keras_accuracy,  # fold 0
        },
        "engine": "population",
        "backend": backend,
        "sequential_keras": {
            name: {
                "seconds_per_fit": v["per_fit"],
                "seconds": v["per_fit"] * members,
                "reglab_speedup": v["per_fit"] * members / reglab_seconds,
            }
            for name, v in sequential.items()
        },
        "sequential_keras_seconds": keras_seconds,
        "sequential_keras_backend": "tensorflow" if "tensorflow" in sequential else backend,
        "sequential_keras_seconds_per_fit": per_fit,
        "sequential_keras_fits_timed": keras_fits,
        "sklearn_seconds": sklearn_seconds,
        "flop_bound_seconds": bound,
        "gflop": flops / 1e9,
        "matmul_gflops": rate / 1e9,
        "scaling_8x_members_time_ratio": scaling_ratio,
        "members": members,
        "epochs": epochs,
        "quick": quick,
        "device": device,
        "machine": {"platform": platform.platform(), "processor": platform.processor(), "device": device},
    }
    if out:
        Path(out).write_text(json.dumps(report, indent=2) + "\n")
    return report


def _device() -> str:
    import keras

    if keras.backend.backend() == "jax":
        import jax

        device = jax.devices()[0]
        return "CPU" if device.platform == "cpu" else f"{device.platform.upper()}: {device.device_kind}"
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    return f"GPU: {gpus[0].name}" if gpus else "CPU"
