"""The two gradients of seed 004: each regularized weight's gradient splits as its loss does — the prediction
loss's gradient pulls the weight toward fitting the data, the penalty's pushes it toward the penalty's target
(zero: 2λw for L2, λ·sign(w) for L1). `two_gradients` measures both on a batch, at the model's current weights:

- `grad_loss:<weight>`     ‖∇_w L‖, L the model's prediction loss (as compiled, without any penalty), mean over
                           the batch's rows, in inference mode (no dropout noise)
- `grad_penalty:<weight>`  ‖∇_w R‖, R that weight's own regularizer
- `grad_cosine:<weight>`   the cosine between them (−1: the penalty pulls straight against the data)
- `grad_share:<weight>`    ‖∇R‖ / (‖∇L‖ + ‖∇R‖): the penalty's share of the tug of war (0.5: a draw)

`LossLedger(gradients=(x, y))` records them at each epoch's end on that fixed batch (one forward and backward
pass: what one training step costs); `Sweep(gradients=True)` for every member, on the first `ROWS` rows of its
training fold (both engines: the population engine computes the same three numbers per weight inside its
compiled epoch, `reglab.engine.program`). `gradients` is the backend-specific piece (JAX's `grad` of Keras's
stateless call; TensorFlow's `GradientTape`), shared with `reglab.search.auto`.

>>> row = columns({"d/kernel": (3.0, 1.0, -3.0)})
>>> row["grad_share:d/kernel"], row["grad_cosine:d/kernel"]
(0.25, -1.0)
"""

from __future__ import annotations

import math

import numpy as np

QUANTITIES = ("grad_loss", "grad_penalty", "grad_cosine", "grad_share")
ROWS = 256  # a sweep's fixed batch: the first ROWS rows of each member's training fold


def columns(numbers: dict) -> dict:
    """The record's four columns per weight from `{path: (‖∇L‖, ‖∇R‖, ∇L·∇R)}` — what every engine measures."""
    out = {}
    for path, (g_norm, r_norm, dot) in numbers.items():
        g_norm, r_norm, dot = float(g_norm), float(r_norm), float(dot)
        both = g_norm * r_norm
        out[f"grad_loss:{path}"] = g_norm
        out[f"grad_penalty:{path}"] = r_norm
        out[f"grad_cosine:{path}"] = dot / both if both > 0 else math.nan
        out[f"grad_share:{path}"] = r_norm / (g_norm + r_norm) if g_norm + r_norm > 0 else math.nan
    return out


def two_gradients(model, x, y, loss) -> dict:
    """`{"grad_loss:<path>": …, "grad_penalty:<path>": …, "grad_cosine:<path>": …, "grad_share:<path>": …}` for
    every trainable weight of `model` with a regularizer, on the batch (x, y) with the prediction loss `loss`
    (a Keras loss name or object, as compiled)."""
    return columns(norms(model, x, y, loss))


def norms(model, x, y, loss) -> dict:
    """`{path: (‖∇L‖, ‖∇R‖, ∇L·∇R)}` per regularized trainable weight of `model` on (x, y) (see `two_gradients`)."""
    penalized = [v for v in model.trainable_variables if v.regularizer is not None]
    if not penalized:
        return {}
    data, penalty = gradients(model, penalized, x, y, loss)
    out = {}
    for variable, g, r in zip(penalized, data, penalty):
        g, r = np.asarray(g, dtype=np.float64).ravel(), np.asarray(r, dtype=np.float64).ravel()
        out[variable.path] = (float(np.linalg.norm(g)), float(np.linalg.norm(r)), float(g @ r))
    return out


def gradients(model, variables, x, y, loss):
    """(the prediction loss's gradients, each variable's own regularizer's gradients) for `variables` (trainable
    variables of `model` that carry a regularizer) on (x, y), as numpy arrays, on Keras's JAX or TensorFlow
    backend. The loss is the mean over the rows of `keras.losses.get(loss)`, the model called in inference mode."""
    import keras
    from keras import ops

    loss_fn = keras.losses.get(loss)

    def mean_loss(y_pred):
        return ops.mean(loss_fn(ops.convert_to_tensor(y), y_pred))

    x = keras.tree.map_structure(np.asarray, x)
    if keras.backend.backend() == "jax":
        import jax

        trainable = [v.value for v in model.trainable_variables]
        fixed = [v.value for v in model.non_trainable_variables]
        positions = [next(i for i, t in enumerate(model.trainable_variables) if t is v) for v in variables]

        def data_loss(values):
            y_pred, _ = model.stateless_call(values, fixed, x, training=False)
            return mean_loss(y_pred)

        grads = jax.grad(data_loss)(trainable)
        data = [np.asarray(grads[i]) for i in positions]
        penalty = [np.asarray(jax.grad(lambda w, r=v.regularizer: r(w))(v.value)) for v in variables]
        return data, penalty
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        with tf.GradientTape() as tape:
            value = mean_loss(model(x, training=False))
        data = [np.asarray(g) for g in tape.gradient(value, [v.value for v in variables])]
        penalty = []
        for v in variables:
            with tf.GradientTape() as tape:
                value = v.regularizer(v.value)
            penalty.append(np.asarray(tape.gradient(value, v.value)))
        return data, penalty
    raise ValueError(
        f"Gradients are measured on Keras's JAX or TensorFlow backend. Received: {keras.backend.backend()!r}"
    )
