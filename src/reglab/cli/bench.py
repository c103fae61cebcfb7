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
Ratios measured side by side mean something on a shared, noisy machine; absolute times little.
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
    from reglab.models import MLP
    from reglab.sweep import Sweep

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
        return Sweep(
            MLP(hidden=list(HIDDEN)).bind(64, 10),
            grid={"l2": list(lambdas)},
            cv=folds,
            repeats=repeats,
            epochs=epochs,
            batch_size=batch,
            optimizer="adam",
            learning_rate=1e-3,
            refit=False,
            engine="population",
            seed=0,
        )

    echo(f"reglab (population engine, {backend}): {members} members × {epochs} epochs …")
    engine = sweep()
    started = time.perf_counter()
    result = engine.run(x, y)
    reglab_seconds = time.perf_counter() - started
    compile_seconds = result.timing["compile_seconds"]
    peak_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
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


def zoo(
    epochs: int = 5, members: int = 12, fits: int = 2, sweep_epochs: int | None = None, names=None, echo=print
) -> dict:
    """`reglab bench --zoo`: every family of `reglab.zoo` (keras-io's sizes too), two ways.

    - `engine`: the family as a population of `members` (λ × 2 folds of the digits) against sequential
      `model.fit` on the same backend (`fits` of them timed, × members).
    - `sweep`, as a user runs it: `Sweep(build, grid={"l2": 3 values}, cv=3).run(x, y, run_dir=…)` with
      its defaults otherwise (20 epochs, refit on all rows, the run directory and its report; `sweep_epochs`
      to change them) against the loop a user would write: one `model.fit` per member (fold 0's timed,
      × members) and one for the refit (timed).
    `names`: only these families."""
    from reglab import data as data_module
    from reglab import zoo as families_module
    from reglab.engine import population
    from reglab.search import plan

    _, _, y = families_module.digits()
    training = _zoo_training(epochs)
    points = [{"l2": float(v)} for v in np.logspace(-5, -1, members // 2)]
    everything = {**families_module.families(), **families_module.keras_io_families()}
    report = {}
    for name, (build, x) in everything.items():
        if names and name not in names:
            continue
        dataset = data_module.prepare(x, y)
        rest, _ = data_module.split_test(dataset, None, 0, True)
        group = plan.members(points, data_module.folds(dataset, rest, 2, 1, 0, True), 0)
        echo(f"zoo {name}: the engine, {len(group)} members × {epochs} epochs …")
        started = time.perf_counter()
        populations, failed = population.plan_populations(group, build, probe=data_module.rows(dataset.x, slice(0, 1)))
        if failed or len(populations) != 1:
            report[name] = {"error": next(iter(failed.values()), "more than one population")}
            continue
        records, _, timing = population.train_population(populations[0], dataset, training)
        seconds = time.perf_counter() - started
        sequential, agree = [], []
        for member in group[:fits]:
            took, history = _fit(build, dataset, member, training)
            sequential.append(took)
            agree.append(abs(history.history["val_accuracy"][-1] - records[member.id].val_accuracy.iloc[-1]))
        per_fit = float(np.mean(sequential))
        report[name] = {
            "population_seconds": seconds,
            "compile_seconds": timing["compile_seconds"],
            "sequential_seconds_per_fit": per_fit,
            "speedup": per_fit * len(group) / seconds,
            "val_accuracy_population": float(np.mean([r.val_accuracy.iloc[-1] for r in records.values()])),
            # same seeds and data, but fit shuffles its own way: agreement within noise, not exact
            "max_val_accuracy_gap_vs_fit": float(max(agree)),
            "convolutions": sorted({d["strategy"] for d in timing["convolutions"].values()}),
        }

        try:
            report[name]["sweep"] = _as_users_run_it(name, build, x, y, dataset, rest, sweep_epochs, echo)
        except Exception as error:  # one family's failure is reported, not the end of the benchmark
            report[name]["sweep"] = {"error": f"{type(error).__name__}: {error}"[:300]}
    measured = list(report.values())
    for key, pick in (("", lambda r: r.get("speedup")), ("sweep_", lambda r: r.get("sweep", {}).get("speedup"))):
        speedups = [pick(r) for r in measured if pick(r) is not None]
        report[f"{key}geometric_mean_speedup"] = float(np.exp(np.mean(np.log(speedups)))) if speedups else None
        report[f"{key}min_speedup"] = float(min(speedups)) if speedups else None
    return report


def _fit(build, dataset, member, setting, validate=True):
    """(seconds, history) of the tutorials' `model.fit` of `member`: built under its seed, compiled, fit."""
    import keras

    from reglab.data import rows
    from reglab.engine.training import compile_model
    from reglab.search import plan

    keras.backend.clear_session(free_memory=False)
    plan.set_global_seed(member.seed)
    started = time.perf_counter()
    model = build(member.point)
    compile_model(model, setting, member.point)
    validation = (rows(dataset.x, member.val), rows(dataset.y, member.val)) if validate else None
    history = model.fit(
        rows(dataset.x, member.train),
        rows(dataset.y, member.train),
        epochs=setting.epochs,
        batch_size=setting.batch_size,
        verbose=0,
        validation_data=validation,
    )
    return time.perf_counter() - started, history


def _as_users_run_it(name, build, x, y, dataset, rest, sweep_epochs, echo) -> dict:
    """`Sweep.run` with its defaults (3 λ × 3 folds) against the loop of `model.fit` a user would write."""
    import tempfile

    from reglab import data as data_module
    from reglab.search import plan
    from reglab.sweep import Sweep

    lambdas = [0.0, 1e-3, 1e-2]
    options = {} if sweep_epochs is None else {"epochs": sweep_epochs}
    sweep = Sweep(build, grid={"l2": lambdas}, cv=3, seed=0, **options)
    echo(
        f"zoo {name}: as a user runs it, Sweep.run with its defaults (3 λ × 3 folds, {sweep.epochs} epochs, "
        f"refit, run directory) …"
    )
    with tempfile.TemporaryDirectory() as folder:
        started = time.perf_counter()
        result = sweep.run(x, y, run_dir=Path(folder) / "run")
        sweep_seconds = time.perf_counter() - started
    user_training = _zoo_training(sweep.epochs)
    loop_members = plan.members([{"l2": v} for v in lambdas], data_module.folds(dataset, rest, 3, 1, 0, True), 0)
    echo(f"zoo {name}: the loop of model.fit a user would write (one fold fit and the refit timed) …")
    fold_fit, _ = _fit(build, dataset, loop_members[0], user_training)
    refit, _ = _fit(
        build, dataset, plan.refit_member(result.best["params"], rest, None, 0), user_training, validate=False
    )
    loop_seconds = fold_fit * len(loop_members) + refit
    return {
        "seconds": sweep_seconds,
        "members": len(loop_members),
        "epochs": sweep.epochs,
        "loop_of_fit_seconds": loop_seconds,
        "fit_seconds": fold_fit,
        "refit_seconds": refit,
        "speedup": loop_seconds / sweep_seconds,
    }


def _zoo_training(epochs: int):
    """How the zoo's members train, in the engine and in the loop of fits alike (Sweep.run's defaults)."""
    from reglab.engine.training import Training

    return Training(
        epochs=epochs,
        batch_size=32,
        optimizer="adam",
        learning_rate=1e-3,
        loss="sparse_categorical_crossentropy",
        metrics=("accuracy",),
        standardize=False,
    )
