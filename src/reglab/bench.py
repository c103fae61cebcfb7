"""`reglab bench`: the standard benchmark (the project's BENCHMARK.md), peers measured in the same run.

Workload: digits (x / 16), 5-fold StratifiedKFold(shuffle, random_state=0), 64 → Dense(128, relu) →
Dense(64, relu) → Dense(10, softmax), L2 on both hidden kernels, λ ∈ {0, 1e-5, 1e-4, 3e-4, 1e-3,
3e-3, 1e-2, 1e-1}, Adam(1e-3), batch 32, 50 epochs, validation loss and accuracy after every epoch:
8 × 5 = 40 members.

Peers, timed in this process: reglab's stacked engine; sequential Keras the tutorials' way (a few
fits timed, × 40); scikit-learn's GridSearchCV over MLPClassifier (alpha converted from λ, see
`reglab.conventions.mlp_alpha`); and the FLOP bound at the float32 batched-matmul rate measured now with numpy.
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


def _data():
    from sklearn.datasets import load_digits

    x, y = load_digits(return_X_y=True)
    return (x / 16.0).astype("float32"), y


def _keras_model(strength):
    import keras

    l2 = keras.regularizers.L2(strength)
    return keras.Sequential([
        keras.Input((64,)),
        keras.layers.Dense(HIDDEN[0], activation="relu", kernel_regularizer=l2),
        keras.layers.Dense(HIDDEN[1], activation="relu", kernel_regularizer=l2),
        keras.layers.Dense(10, activation="softmax"),
    ])


def run(quick: bool = False, keras_fits: int | None = None, scaling: bool = False, out=None, echo=print) -> dict:
    """Run the benchmark; return (and optionally write) the report dict."""
    import keras
    from sklearn.model_selection import StratifiedKFold

    from reglab.models import MLP
    from reglab.sweep import Sweep

    x, y = _data()
    lambdas = LAMBDAS[::3] if quick else LAMBDAS
    epochs, batch, folds = (4, 32, 5) if quick else (50, 32, 5)
    keras_fits = keras_fits or len(lambdas)
    splits = list(StratifiedKFold(folds, shuffle=True, random_state=0).split(x, y))
    members = len(lambdas) * folds

    def sweep(repeats=1):
        return Sweep(MLP(hidden=list(HIDDEN)).bind(64, 10), grid={"l2": list(lambdas)}, cv=folds, repeats=repeats,
                     epochs=epochs, batch_size=batch, optimizer="adam", learning_rate=1e-3, refit=False,
                     engine="stacked", seed=0)

    echo(f"reglab (stacked engine): {members} members × {epochs} epochs …")
    engine = sweep()
    started = time.perf_counter()
    result = engine.run(x, y)
    reglab_seconds = time.perf_counter() - started
    epoch_times = engine.last_timing["epoch_seconds"]
    compile_seconds = max(0.0, epoch_times[0] - float(np.median(epoch_times[1:] or epoch_times)))
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

    echo(f"sequential Keras: {keras_fits} of the {members} fits, the tutorials' way …")
    fit_seconds, keras_accuracy = [], {}
    train, val = splits[0]
    for i in range(keras_fits):
        strength = lambdas[i % len(lambdas)]
        keras.backend.clear_session()
        keras.utils.set_random_seed(i)
        started = time.perf_counter()
        model = _keras_model(strength)
        model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
        history = model.fit(x[train], y[train], validation_data=(x[val], y[val]), epochs=epochs, batch_size=batch, verbose=0)
        fit_seconds.append(time.perf_counter() - started)
        keras_accuracy.setdefault(strength, []).append(history.history["val_accuracy"][-1])
    per_fit = float(np.mean(fit_seconds))
    keras_seconds = per_fit * members

    echo("scikit-learn: GridSearchCV(MLPClassifier) on the same folds …")
    from sklearn.model_selection import GridSearchCV
    from sklearn.neural_network import MLPClassifier

    search = GridSearchCV(
        MLPClassifier(hidden_layer_sizes=HIDDEN, solver="adam", batch_size=batch, max_iter=epochs, learning_rate_init=1e-3,
                      tol=0, n_iter_no_change=10_000, early_stopping=False, random_state=0),
        {"alpha": [mlp_alpha(s, batch) for s in lambdas]}, cv=splits, n_jobs=2, refit=False,
    )
    import warnings

    from sklearn.exceptions import ConvergenceWarning

    started = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        search.fit(x, y)
    sklearn_seconds = time.perf_counter() - started

    echo("FLOP bound: numpy batched matmul rate …")
    rate = matmul_rate(0.5 if quick else 2.0)
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
            "keras": {f"{s:g}": float(np.mean(v)) for s, v in keras_accuracy.items()},  # fold 0
        },
        "sequential_keras_seconds": keras_seconds,
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
        "machine": {"platform": platform.platform(), "processor": platform.processor(), "device": _device()},
    }
    if out:
        Path(out).write_text(json.dumps(report, indent=2) + "\n")
    return report


def _device() -> str:
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    return f"GPU: {gpus[0].name}" if gpus else "CPU"
