"""`LossLedger`: a Keras callback that splits every loss Keras reports into prediction and penalty.

Keras's `loss` and `val_loss` both include the regularization penalty, so a strongly regularized
model seems to fit worse than it does, and train and validation curves compare different things.
The ledger records, per epoch, the prediction loss and the penalty separately (total, and per
regularized weight or activity), the compiled metrics, and the size and sparsity of every weight,
in the epoch-record format of `reglab.kit.records`.

How: while `fit` runs, the ledger wraps the model's `compute_loss` so that the compiled training
and test steps also add, per batch, the prediction loss and each penalty term into a small
accumulator vector. The numbers are therefore measured in the very step Keras runs (same batch,
same dropout mask, same weights) and weighted by batch size as Keras weights its own `loss`; the
ledger re-traces the step once at the start of `fit` and restores the model at the end.
The accumulators are metrics of the model while it fits (they report nothing and Keras does not
reset them), because metric variables are state that every backend's compiled step carries: on
JAX the step is a pure function that takes them in and returns them. Supported on the TensorFlow
and JAX backends, with the same numbers.

>>> import keras, numpy as np
>>> from sklearn.datasets import load_diabetes
>>> x, y = load_diabetes(return_X_y=True)
>>> x, y = x.astype("float32"), (y / 100).astype("float32")
>>> keras.utils.set_random_seed(0)
>>> model = keras.Sequential([keras.Input((10,)),
...     keras.layers.Dense(16, activation="relu", kernel_regularizer=keras.regularizers.L2(1e-3)),
...     keras.layers.Dense(1)])
>>> model.compile(optimizer="adam", loss="mse")
>>> ledger = LossLedger()
>>> _ = model.fit(x, y, epochs=2, validation_split=0.2, verbose=0, callbacks=[ledger])
>>> list(ledger.history[["epoch", "train_loss", "train_penalty", "val_loss"]].columns)
['epoch', 'train_loss', 'train_penalty', 'val_loss']
>>> bool((ledger.history.train_loss + ledger.history.train_penalty
...       - ledger.history.train_total).abs().max() < 1e-5)
True
"""

from __future__ import annotations

import math

import keras
import numpy as np
import pandas as pd
from keras import ops

from reglab import _keras_private as private
from reglab import validation
from reglab.kit import records
from reglab.kit.gradients import norms
from reglab.kit.penalties import penalty_terms
from reglab.kit.regularizers import describe
from reglab.kit.schedules import scheduled_regularizers, track_scales

# Accumulator layout: [examples, prediction loss, total penalty, term 1, ..., term k, other].
_COUNT, _PRED, _PENALTY, _FIRST_TERM = 0, 1, 2, 3
_KERAS_KEYS = {"loss": "train_total", "val_loss": "val_total"}
_UNPREFIXED = {"learning_rate", "lr"}


class LossLedger(keras.callbacks.Callback):
    """Records prediction loss, penalty (total and per term), metrics and weight statistics per epoch.

    Args:
        near_zero: the threshold for the `near_zero:<weight>` fraction. Defaults to 1e-3.
        weight_stats: record L1/L2 norms and zero counts of every trainable weight.
            Defaults to True.
        stop_on_divergence: stop `fit` after the first epoch whose training loss is not finite
            (checked once per epoch, so no per-batch synchronisation). Defaults to False.
        gradients: a fixed batch `(x, y)` (e.g. the first 256 training rows) on which, at each epoch's end, every
            regularized weight's two gradients are measured — the prediction loss's and the penalty's norms, their
            cosine and the penalty's share (`reglab.kit.gradients`: seed 004's tug of war). Defaults to None (off).

    After (or during) `fit`, `ledger.history` is a pandas DataFrame with one row per epoch
    (columns documented in `reglab.kit.records`) and `ledger.terms` maps each penalty term to the
    regularizer that produces it. A ledger can be reused: each `fit` appends rows, numbering
    epochs as Keras does (`initial_epoch` included).
    """

    def __init__(self, near_zero=records.NEAR_ZERO, weight_stats=True, stop_on_divergence=False, gradients=None):
        super().__init__()
        if gradients is not None and not (isinstance(gradients, (tuple, list)) and len(gradients) == 2):
            raise ValueError(
                "`gradients` is a batch (x, y) to measure the two gradients on, or None. "
                f"Received: gradients of type {type(gradients).__name__}"
            )
        self.gradients = None if gradients is None else tuple(gradients)
        self.stop_on_divergence = bool(stop_on_divergence)
        self.near_zero = validation.non_negative_float(near_zero, "near_zero")
        self.weight_stats = bool(weight_stats)
        self.rows: list[dict] = []
        self.terms: dict[str, str] = {}
        self._installed = None

    # --- public results --------------------------------------------------------------------

    @property
    def history(self) -> pd.DataFrame:
        return pd.DataFrame(self.rows)

    def _repr_html_(self) -> str:
        """In a notebook: the prediction loss and the penalty per epoch, drawn and tabled (`reglab.kit.ledger_view`)."""
        from reglab.kit.ledger_view import ledger_html

        return ledger_html(self.history, self.terms)

    # --- installation: wrap compute_loss for the duration of fit ---------------------------

    def on_train_begin(self, logs=None):
        model = self.model
        if self.gradients is not None:  # refused before the first step: one compiled loss is what is measured
            try:
                keras.losses.get(model.loss)
            except (ValueError, TypeError):
                raise ValueError(
                    f"`gradients` measures one compiled loss (a name or a Keras loss). Received: loss={model.loss!r}"
                ) from None
        regularizers = {v.path: v.regularizer for v in model.trainable_weights if v.regularizer is not None}
        for layer in private.layers(model, include_self=True):
            if getattr(layer, "activity_regularizer", None) is not None:
                regularizers[f"{layer.name}/activity"] = layer.activity_regularizer
        self._names = list(regularizers)
        self.terms = {name: describe(reg) for name, reg in regularizers.items()}
        width = _FIRST_TERM + len(self._names) + 1
        self._train = _Sums(width, name="reglab_ledger_train")
        self._val = _Sums(width, name="reglab_ledger_val")
        track_scales(model)  # on JAX a λ scale outside the model's state would be frozen at trace time
        self._install(model)

    def on_train_end(self, logs=None):
        self._uninstall()

    def _install(self, model):
        original = model.compute_loss  # the bound method (or a user's override)
        has_training_arg = private.compute_loss_has_training_arg(model)
        index = {name: _FIRST_TERM + i for i, name in enumerate(self._names)}
        other = _FIRST_TERM + len(self._names)
        width = other + 1

        def compute_loss(x=None, y=None, y_pred=None, sample_weight=None, training=True):
            if has_training_arg:
                total = original(x, y, y_pred, sample_weight, training=training)
            else:
                total = original(x, y, y_pred, sample_weight)
            dtype = "float32"
            n = ops.cast(ops.shape(next(t for t in keras.tree.flatten(x) if t is not None))[0], dtype)
            pred = ops.zeros((), dtype)
            value = private.compile_loss(model, y, y_pred, sample_weight)
            if value is not None:
                pred = ops.cast(value, dtype)
            slots = [ops.zeros((), dtype) for _ in range(width)]
            slots[_COUNT] = ops.ones((), dtype)
            slots[_PRED] = pred
            for name, value in penalty_terms(model):
                value = ops.cast(value, dtype)
                slots[_PENALTY] = slots[_PENALTY] + value
                slot = index.get(name.split("#")[0], other)  # "#k": a layer's k-th added loss
                slots[slot] = slots[slot] + value
            (self._train if training else self._val).update_state(ops.stack(slots) * n)
            return total

        compute_loss.ledger = self
        compute_loss.has_training_arg = has_training_arg
        compute_loss.previous = vars(model).get("compute_loss")  # another ledger's wrapper, or None
        self._installed = model
        # The sums are metrics of the model while it fits: the compiled steps carry the model's metric
        # variables as state (JAX's pure steps pass them in and out), so the updates above persist.
        private.metrics_list(model).extend([self._train, self._val])
        model.compute_loss = compute_loss
        private.set_compute_loss_has_training_arg(model, True)
        # Retrace so the compiled steps call the wrapper (a cached step would bypass it).
        model.make_train_function(force=True)
        model.test_function = None

    def _uninstall(self):
        if self._installed is None:
            return
        model = self._installed
        self._installed = None
        metrics = private.metrics_list(model)
        metrics[:] = [m for m in metrics if m is not self._train and m is not self._val]
        # Unwind every wrapper whose ledger has finished, whatever order several ledgers end in.
        current, flag = vars(model).get("compute_loss"), None
        while getattr(current, "ledger", None) is not None and current.ledger._installed is None:
            current, flag = current.previous, current.has_training_arg
        if current is None:
            vars(model).pop("compute_loss", None)
            if flag is not None:
                private.set_compute_loss_has_training_arg(model, flag)
        else:
            model.compute_loss = current
        model.train_function = None
        model.test_function = None

    # --- per-epoch bookkeeping -------------------------------------------------------------

    def on_epoch_begin(self, epoch, logs=None):
        self._train.clear()
        self._val.clear()

    def on_test_begin(self, logs=None):
        if self._installed is not None:
            self._val.clear()

    def on_epoch_end(self, epoch, logs=None):
        logs = dict(logs or {})
        train = _means(self._train.read())
        val = _means(self._val.read())
        total, val_total = float(logs.pop("loss", math.nan)), float(logs.pop("val_loss", math.nan))
        metrics = {
            key if key.startswith("val_") else f"train_{key}": value
            for key, value in logs.items()
            if key not in _UNPREFIXED
        }
        penalties = {name: train[_FIRST_TERM + i] for i, name in enumerate(self._names)}
        if train[-1] != 0.0:
            penalties["add_loss"] = train[-1]
        # Read at the end: a scheduler callback may run after this one at the epoch's start.
        scales = {
            name: keras.ops.convert_to_numpy(reg.scale) for name, reg in scheduled_regularizers(self.model).items()
        }
        weights = (
            {
                v.path: records.weight_stats(keras.ops.convert_to_numpy(v), self.near_zero)
                for v in self.model.trainable_weights
            }
            if self.weight_stats
            else {}
        )
        row = records.epoch_row(
            epoch + 1,
            (train[_PRED], train[_PENALTY], total),
            (val[_PRED], val[_PENALTY], val_total),
            metrics,
            penalties,
            scales,
            weights,
            decay_terms(self.model),
            # at the epoch's end weights, on the fixed batch
            norms(self.model, *self.gradients, self.model.loss) if self.gradients is not None else None,
            previous=self.rows[-1]["status"] if self.rows else "ok",
            extra={key: value for key, value in logs.items() if key in _UNPREFIXED},
        )
        self.rows.append(row)
        if self.stop_on_divergence and row["status"] == "diverged":
            self.model.stop_training = True


class _Sums(keras.metrics.Metric):
    """The ledger's accumulator vector, as a Keras metric of the model for the duration of `fit`.

    Every backend's compiled step carries the model's metric variables as state (TensorFlow's captures
    them; JAX's pure step takes them in and returns them, `compute_loss` included), so a metric is the
    state a wrapped `compute_loss` can update on each. It reports nothing (`result()` is an empty dict,
    which Keras's logs skip) and Keras's `reset_metrics` leaves it alone (`evaluate` runs it between the
    training batches and the epoch's end): the ledger clears it itself.
    """

    def __init__(self, width, name):
        super().__init__(name=name, dtype="float32")
        self.sums = self.add_variable(shape=(width,), initializer="zeros", dtype="float32", name="sums")

    def update_state(self, values):
        self.sums.assign_add(values)

    def result(self):
        return {}

    def reset_state(self):
        pass

    def clear(self):
        self.sums.assign(np.zeros(self.sums.shape, "float32"))

    def read(self) -> np.ndarray:
        return keras.ops.convert_to_numpy(self.sums)


def _means(sums: np.ndarray) -> np.ndarray:
    count = sums[_COUNT]
    if count == 0:
        return np.full(sums.shape, math.nan)
    return sums.astype(np.float64) / count


def decay_terms(model) -> dict[str, float]:
    """{weight path: wd/2·Σw²} (the records' `decay:<weight>`) for each weight the optimizer decays outside the loss (decoupled
    weight decay, `w ← w − lr·wd·w`): the L2 penalty that decay would be under plain SGD, so the size
    of a decay that never enters `model.losses` can still be read next to the penalties."""
    optimizer = getattr(model, "optimizer", None)
    optimizer = getattr(optimizer, "inner", optimizer)  # reglab.kit.optimizers.Proximal wraps one
    rate = float(getattr(optimizer, "weight_decay", None) or 0.0)
    if not rate:
        return {}
    out = {}
    for variable in model.trainable_weights:
        if private.decays(optimizer, variable):  # Keras's own exclusion rules
            w = keras.ops.convert_to_numpy(variable).astype(np.float64)
            out[variable.path] = rate / 2 * float(np.square(w).sum())
    return out
