"""Whether a model's step ignores the other rows of a batch: `probe` checks it numerically, once a process
for what decides it (`Program.row_independent` says why it matters: one padded step body, or exact
partial-batch shapes)."""

from __future__ import annotations

from concurrent.futures import Future

import numpy as np

from reglab.engine import traces

# `Program.row_independent`'s answers in this process, by what decides them (the architecture, the loss and
# metrics, a row's shapes): a refit, or the next sweep of the same model in a notebook, does not probe again;
# the next process reads them from the disk (`traces.answer_key`: also keyed by the model's code and versions)
_ANSWERS: dict = {}


def probe(program, x, y, pool=None) -> Future:
    """`program.row_independent(x, y)` as a future: traced here, compiled and run in `pool` (a thread; XLA
    compiles without the GIL, so the caller can trace the epoch meanwhile), or here without one."""
    jax, jnp = program.jax, program.jnp
    rows = jax.tree.leaves(x)[0].shape[0]
    real = rows // 2 + 1
    key = None
    if program.decided_by is not None:
        shapes = jax.tree.map(lambda a: (np.shape(a)[1:], str(a.dtype)), (x, y))
        key = (*program.decided_by, str(jax.tree.structure(shapes)), str(jax.tree.leaves(shapes)))
    kept = traces.answer_key(program, key) if key is not None else None  # the answer on disk, for the next process
    if key not in _ANSWERS and kept is not None:
        read = traces.read_answer(kept)
        if isinstance(read, list) and len(read) == 2 and all(isinstance(v, bool) for v in read):
            _ANSWERS[key] = tuple(read)
    if key in _ANSWERS:
        done = Future()
        done.set_result(_ANSWERS[key])
        return done
    trainable, non_trainable = (
        [jax.device_put(a[0]) for a in program.initial[k]] for k in ("trainable", "non_trainable")
    )
    coefficients = program.values(0, members=0)
    weight = jax.device_put((np.arange(rows) < real).astype("float32"))

    def train(member, x, y, weight):
        trainable, non_trainable, coefficients = member
        metrics = [jnp.asarray(v) for v in program.metric_start]
        grads, numbers, y_pred, nt, m = program._gradient(trainable, non_trainable, metrics, coefficients, x, y, weight)
        result = program._metric_result(m)
        return grads, numbers, jax.tree.map(lambda p: p[:real], y_pred), nt, [result[k] for k in program.metric_names]

    def evaluate(member, x, y, weight):
        return program._member_validate(*member, x, y, weight)

    @jax.jit  # one small compilation: eager Keras would cost seconds. Values as arguments: see epoch_function
    def probe(member, x_real, y_real, paddings, y, weight):
        return [
            [f(member, x_real, y_real, None), *(f(member, x_pad, y, weight) for x_pad in paddings)]
            for f in (train, evaluate)
        ]

    head = jax.tree.map(lambda a: a[:real], x)
    paddings = [
        jax.tree.map(lambda a: np.concatenate([a[:real], np.zeros_like(a[real:])]), x),
        jax.tree.map(lambda a: np.concatenate([a[:real], a[real:][::-1]]), x),
    ]
    args = (
        (trainable, non_trainable, coefficients),
        head,
        jax.tree.map(lambda a: a[:real], y),
        paddings,
        y,
        weight,
    )

    def answer(lowered):
        try:  # run once: XLA's backend optimizations would cost more than they save (half the compile time)
            outputs = lowered.compile(compiler_options={"xla_backend_optimization_level": 0})(*args)
        except Exception:  # e.g. a model that needs one fixed batch size: not row-independent for us
            return False, False
        result = tuple(all(close(runs[0], other) for other in runs[1:]) for runs in outputs)
        if key is not None:
            _ANSWERS[key] = result
        if kept is not None:
            traces.write_answer(kept, result)
        return result

    try:
        lowered = probe.lower(*args)
    except Exception:
        lowered = None
    if lowered is None or pool is None:
        done = Future()
        done.set_result(answer(lowered) if lowered is not None else (False, False))
        return done
    return pool.submit(answer, lowered)


def close(expected, got) -> bool:
    """Every leaf of two pytrees equal to float32 rounding (relative to the leaf's scale)."""
    import jax

    a_leaves, b_leaves = jax.tree.leaves(expected), jax.tree.leaves(got)
    if len(a_leaves) != len(b_leaves):
        return False
    for a, b in zip(a_leaves, b_leaves):
        a, b = np.asarray(a, "float64"), np.asarray(b, "float64")
        scale = float(np.max(np.abs(a[np.isfinite(a)]), initial=0.0))  # NaNs compare as equal_nan says, not here
        if a.shape != b.shape or not np.allclose(a, b, rtol=1e-5, atol=1e-6 * max(scale, 1e-3), equal_nan=True):
            return False
    return True
