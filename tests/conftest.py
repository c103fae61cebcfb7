import os
import shutil
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# The suite trains many small populations whose programs repeat (the same model on the same shapes, in
# this process, another xdist worker or a CLI subprocess): one compilation cache for the whole run,
# made by the first process and inherited by the others, compiles each once. A new folder each run.
_OWN_CACHE = "REGLAB_CACHE" not in os.environ
if _OWN_CACHE:
    os.environ["REGLAB_CACHE"] = tempfile.mkdtemp(prefix="reglab-test-cache-")
# Four XLA settings in every process the tests start, all about compiling: the suite's programs run a few
# epochs, so compiling them is most of its time. XLA's LLVM back end at optimization level 1 rather than its
# default 2 (20-40 % faster compiles), and its CPU fusions emitted the older way (`xla_cpu_use_fusion_emitters`
# off: every model family of test_population, population and `fit`, in 37 s instead of 49 s). The numbers
# stay: measured on every family of test_population, population and `fit`: level 1 against level 2 bitwise
# equal for 7 of 9 families, within 3e-8 for the other two; the older emitters against the newer (both at level
# 1) bitwise equal for 6 of 9, within 6e-8 for the other three; both engines moved alike (jax 0.10.2, 2 CPU cores). Not level
# 0: there Keras's own `fit` of the Conv1D + BatchNorm family gives NaN. The third is about who compiles: XLA splits a
# program's LLVM module into up to 32 parts compiled on threads, which saves a lone process wall time but costs
# CPU — and in the suite every core is already busy with another test: one part (the JAX pass, 2 cores, 1,029 →
# 954 CPU seconds, 9:21 → 8:42). The fourth: no SIMD vectors (a preferred width under SSE's 128 bits, so LLVM
# emits scalar loops): LLVM's vectorizers were a quarter of XLA's compile time (three families' populations and
# fits: 10.3 → 7.4 s of compiling), and the suite's epochs are too few to miss them (the JAX pass 936 → 791 CPU
# seconds, 8:11 → 6:57). Every family's population against `fit`, max |Δw| after 3 epochs: the same with and
# without (≤ 1.5e-7); the setting itself moves a family's weights by ≤ 6e-8 (bitwise the same for 6 of 9), both
# engines alike.
_FLAGS = (
    "--xla_backend_optimization_level=1",
    "--xla_cpu_use_fusion_emitters=false",
    "--xla_cpu_parallel_codegen_split_count=1",
    "--xla_cpu_prefer_vector_width=64",
)
for _flag in _FLAGS:
    if _flag.split("=")[0] not in os.environ.get("XLA_FLAGS", ""):
        os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} {_flag}".strip()

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from sklearn.datasets import load_breast_cancer, load_digits  # noqa: E402

if keras.backend.backend() == "jax":
    import jax

    jax.config.update("jax_compilation_cache_dir", os.path.join(os.environ["REGLAB_CACHE"], "xla"))
    # every program kept, also those that compile in under reglab's 0.05 s (Keras's initializers, small eager
    # ops): the other worker compiles the same ones (python3 tasks.py test: 863 → 845 CPU seconds)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    if jax.default_backend() != "cpu":
        # On a GPU, JAX's float32 matmuls and convolutions default to TF32, whose rounding differs between
        # a vmapped population and one model: the convnet's members then agree with `fit` to ~2e-3 after
        # 3 epochs; at full float32 precision every family agrees to 1e-5 (measured on an H200).
        jax.config.update("jax_default_matmul_precision", "highest")

# A test process is one of reglab's own: its libraries' objects out of the garbage collector's walks, as the
# `reglab` command does (`reglab.heap`).
from reglab import heap  # noqa: E402

heap.settle()


def pytest_unconfigure(config):
    if _OWN_CACHE and not hasattr(config, "workerinput"):  # the process that made it (not an xdist worker)
        shutil.rmtree(os.environ["REGLAB_CACHE"], ignore_errors=True)


def pytest_collection_modifyitems(config, items):
    """`python3 tasks.py test` runs the suite twice: on JAX, reglab's backend (everything not marked
    `tf_only`), and on TensorFlow (KERAS_BACKEND=tensorflow: only what is marked `both_backends` — the
    Keras-level kit, which works on either backend — or `tf_only`, never `jax_only`)."""
    backend = keras.backend.backend()
    keep, drop = [], []
    for item in items:
        marks = {m.name for m in item.iter_markers()}
        if backend == "jax":
            runs = "tf_only" not in marks
        else:
            runs = bool(marks & {"both_backends", "tf_only"}) and "jax_only" not in marks
        (keep if runs else drop).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
    # The modules with slow tests first (each kept whole, so that its module fixtures are made once): on
    # two xdist workers, a slow test left for the end keeps a core idle while it runs.
    slow = {item.path for item in keep if item.get_closest_marker("slow")}
    items[:] = sorted(keep, key=lambda item: item.path not in slow)


@pytest.fixture(scope="session")
def digits():
    """scikit-learn's digits: (1797, 64) float32 in [0, 1], labels 0-9."""
    x, y = load_digits(return_X_y=True)
    return (x / 16.0).astype("float32"), y.astype("int64")


@pytest.fixture(scope="session")
def digits_images(digits):
    x, y = digits
    return x.reshape(-1, 8, 8, 1), y


@pytest.fixture(scope="session")
def cancer():
    """Breast-cancer data, standardized: (569, 30) float32, binary labels."""
    x, y = load_breast_cancer(return_X_y=True)
    x = (x - x.mean(0)) / x.std(0)
    return x.astype("float32"), y.astype("float32")


@pytest.fixture(autouse=True)
def _fresh_keras():
    """Each test starts with fresh layer-name counters and a fixed seed."""
    # No forced garbage collection (Keras's default): in a process that has traced many programs it took
    # 0.6 s a test (median), a quarter of the suite; Python's own collector still runs as it always does.
    keras.backend.clear_session(free_memory=False)
    keras.utils.set_random_seed(0)
    yield


class NaNGradient(keras.regularizers.Regularizer):
    """Value 0 but gradient NaN (0 · ∞): a finite loss whose gradient is not."""

    def __call__(self, w):
        return 0.0 * keras.ops.sum(keras.ops.sqrt(keras.ops.square(w) - keras.ops.square(w)))

    def get_config(self):
        return {}


def mlp(n_in=64, n_out=10, hidden=(32,), **dense_kwargs):
    layers = [keras.Input((n_in,))]
    layers += [keras.layers.Dense(h, activation="relu", **dense_kwargs) for h in hidden]
    layers += [keras.layers.Dense(n_out, activation="softmax")]
    return keras.Sequential(layers)


def weights_equal(a, b):
    return len(a) == len(b) and all(np.array_equal(x, y) for x, y in zip(a, b))
