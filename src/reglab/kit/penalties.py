"""Where a model's regularization loss comes from, term by term.

Keras sums every penalty into one anonymous list (`model.losses`). reglab names each term so that
the ledger, the engines and the reports can say which layer and which regularizer it came from:

- a regularized weight is named by its Keras path, e.g. `"dense/kernel"`, or `"mlp/dense/kernel"` for
  a layer of the Sequential model "mlp" (name your layers and models for stable names), and its
  value is `regularizer(weight)`; a recurrent layer keeps its weights in its cell, so its input and
  recurrent kernels are `"lstm/lstm_cell/kernel"` and `"lstm/lstm_cell/recurrent_kernel"`, and a
  `Bidirectional` layer's are `"bi/forward_lstm/lstm_cell/..."` and `"bi/backward_lstm/lstm_cell/..."`;
- an activity regularizer (or any `add_loss` call) is named `"<layer>/activity"` (`"<layer>/add_loss"`
  when the layer has no activity regularizer); these exist only after a forward pass, and Keras
  has already divided activity penalties by the batch size.

The terms are exactly `model.losses`, in the same order, so `regularization_loss(model)` equals
what `model.fit` adds to the prediction loss.
"""

from __future__ import annotations

import keras
from keras import ops

from reglab import _keras_private as private


def penalty_terms(model) -> list[tuple[str, object]]:
    """Return `[(name, scalar tensor), ...]`: every regularization term of `model`, named.

    Call it where the penalty is needed — inside a `GradientTape`, after the forward pass —
    because activity terms come from the latest call of the model.

    >>> import keras, numpy as np
    >>> model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2, name="d",
    ...     kernel_initializer="ones", kernel_regularizer=keras.regularizers.L2(0.5))], name="net")
    >>> [(name, float(value)) for name, value in penalty_terms(model)]
    [('net/d/kernel', 3.0)]
    """
    terms: list[tuple[str, object]] = []
    # Inside JAX's train/test step the forward pass ran in a stateless scope of its own, whose added
    # losses Keras hands on as `model._losses_override` (what `model.losses` returns there); each is
    # still known to the layer that added it (`layer._loss_ids`). Elsewhere a layer holds its own.
    forward = list(getattr(model, "_losses_override", None) or ())
    # Keras orders model.losses as: each layer's own losses (the model first), then weight
    # penalties in trainable_weights order. Follow that order so the two lists line up.
    for layer in private.layers(model, include_self=True):
        own = [v for v in forward if id(v) in layer._loss_ids] if forward else layer._get_own_losses()
        kind = "activity" if getattr(layer, "activity_regularizer", None) is not None else "add_loss"
        for i, value in enumerate(own):
            suffix = "" if i == 0 else f"#{i + 1}"
            terms.append((f"{layer.name}/{kind}{suffix}", ops.sum(value)))
    for variable in model.trainable_weights:
        if variable.regularizer is not None:
            terms.append((variable.path, variable.regularizer(variable)))
    return terms


def regularization_loss(model):
    """The total penalty of `model`: the term to add to the prediction loss in a custom loop.

    Equal to `ops.sum(model.losses)`, and 0.0 for a model without regularizers, so it can always
    be added.

    >>> import keras
    >>> model = keras.Sequential([keras.Input((3,)),
    ...     keras.layers.Dense(2, kernel_initializer="ones", kernel_regularizer=keras.regularizers.L1(0.1))])
    >>> round(float(regularization_loss(model)), 6)
    0.6
    """
    dtype = keras.backend.floatx()
    terms = [ops.cast(value, dtype) for _, value in penalty_terms(model)]
    if not terms:
        return ops.zeros((), dtype=dtype)
    return ops.sum(ops.stack(terms))
