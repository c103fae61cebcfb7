"""How every member trains, whatever engine trains it: the `Training` settings (the loss and metrics inferred
for the task, `infer_loss_and_metrics`; the data checked against the model's inputs, `validate_inputs`), what
comes back (`Trained`), a fold's arrays (standardized with its training part's statistics), the optimizer a
point asks for, and `compile`. Both engines use these; neither imports the other's private names."""

from __future__ import annotations

import re
import traceback
from dataclasses import dataclass

import keras
import numpy as np

from reglab.data import leaves, rows
from reglab.kit.optimizers import Proximal
from reglab.search import points


@dataclass
class Trained:
    """What an engine gives back for one member: its epoch rows (`reglab.kit.records.epoch_row`; one
    "failed" row if it could not train), its training time, its final weights ({path: array}) and its
    trained Keras model (None if it failed)."""

    rows: object  # a pandas DataFrame
    seconds: float
    weights: dict | None = None
    model: object = None


@dataclass(frozen=True)
class Training:
    """How every member trains."""

    epochs: int
    batch_size: int
    optimizer: str
    learning_rate: float
    loss: object  # a Keras loss (name or object), or one per output (dict / list)
    metrics: object  # metric names, or per output (dict / list)
    standardize: bool
    loss_weights: object = None  # per output, as `model.compile(loss_weights=...)`
    gradients: int = 0  # rows of each member's fixed batch for the two gradients (`reglab.kit.gradients`); 0: off


def fold_arrays(data, train, val, standardize: bool):
    """Training and validation arrays of one fold; standardized with the training part's statistics only."""
    x_train, y_train = rows(data.x, train), rows(data.y, train)
    x_val, y_val = rows(data.x, val), rows(data.y, val)
    scaling = scaling_of(data, train, standardize, x_train)
    if scaling:
        x_train, x_val = (
            (x_train - scaling["x_mean"]) / scaling["x_std"],
            (x_val - scaling["x_mean"]) / scaling["x_std"],
        )
        if "y_mean" in scaling:
            y_train, y_val = (
                (y_train - scaling["y_mean"]) / scaling["y_std"],
                (y_val - scaling["y_mean"]) / scaling["y_std"],
            )
    return x_train, y_train, x_val, y_val, scaling


def fold_targets(data, train, val, standardize: bool):
    """The targets of a fold's training and validation rows, standardized as `fold_arrays` standardizes
    them (a regression target, with its training rows' mean and std) — without reading any features."""
    y_train, y_val = rows(data.y, train), rows(data.y, val)
    if standardize and data.task == "regression":
        mean, std = float(y_train.mean()), float(y_train.std() or 1.0)
        y_train, y_val = (y_train - mean) / std, (y_val - mean) / std
    return y_train, y_val


def scaling_of(data, train, standardize: bool, x_train=None) -> dict | None:
    """The statistics a fold is standardized with, of its training rows `train` only: {"x_mean", "x_std"}
    (a constant feature's std is 1), and for a regression target "y_mean", "y_std"; None without
    standardization. Features on disk (`reglab.on_disk.DiskArray`) are summed up chunk by chunk."""
    from reglab.engine import streaming

    if not standardize:
        return None
    if data.structured:  # refused by the sweep before any work; a direct caller gets the same words
        raise ValueError(
            "Standardizing several inputs or outputs is not built in: add a Normalization layer "
            "to the model instead. Received: standardize=True"
        )
    if streaming.streamed(data.x):
        mean, std = streaming.statistics(data.x, train)
    else:
        x_train = rows(data.x, train) if x_train is None else x_train
        mean = x_train.mean(axis=0)
        std = x_train.std(axis=0)
        std = np.where(std > 0, std, 1.0).astype("float32")
    scaling = {"x_mean": mean, "x_std": std}
    if data.task == "regression":
        y_train = rows(data.y, train)
        scaling.update(y_mean=float(y_train.mean()), y_std=float(y_train.std() or 1.0))
    return scaling


def make_optimizer(training: Training, point: dict | None = None, model=None):
    """A fresh Keras optimizer with the sweep's learning rate (a number or a LearningRateSchedule; a
    point's `learning_rate` replaces it) and what the point asks of it (`reglab.search.points.optimizer_settings`): decoupled weight decay and a
    proximal L1 step, on `points.optimizer_targets(model)` only."""
    point = point or {}
    settings = points.optimizer_settings(point)
    cls = type(keras.optimizers.get(training.optimizer))
    extra = {"weight_decay": settings["weight_decay"]} if "weight_decay" in settings else {}
    learning_rate = float(point["learning_rate"]) if "learning_rate" in point else training.learning_rate
    optimizer = cls(learning_rate=learning_rate, **extra)
    targets = points.optimizer_targets(model) if settings else []
    if "weight_decay" in settings:
        optimizer.exclude_from_weight_decay(var_list=[v for v in model.trainable_weights if v.path not in set(targets)])
    # whenever the point has the key (a strength of 0 is the identity): every point of a prox sweep
    # then has the same optimizer, and trains in one population
    if "prox_l1" in settings or "prox_group" in settings:
        optimizer = Proximal(
            optimizer,
            l1=settings.get("prox_l1", 0.0),
            group_lasso=settings.get("prox_group", 0.0),
            weights="^(" + "|".join(map(re.escape, targets)) + ")$",
        )
    return optimizer


def compile_model(model, training: Training, point: dict | None = None):
    model.compile(
        optimizer=make_optimizer(training, point, model),
        loss=training.loss,
        metrics=compile_metrics(training.metrics),
        loss_weights=training.loss_weights,
    )


def compile_metrics(metrics):
    """Metrics for `compile`: a list, or as given per output. A metric given as its Keras config (what
    `infer_loss_and_metrics` gives a logits model) becomes a fresh object for each model compiled: a metric
    object holds state, and one shared by several models would mix their counts."""
    if isinstance(metrics, dict):
        return metrics
    return [keras.metrics.deserialize(m) if isinstance(m, dict) and "class_name" in m else m for m in metrics]


def error_line(error: BaseException) -> str:
    """How a member's failure is recorded: the exception's last line(s), at most 500 characters."""
    return "".join(traceback.format_exception_only(error)).strip()[:500]


def infer_loss_and_metrics(model, dataset, loss="auto", metrics="auto") -> tuple:
    """(loss, metrics) for `model` on `dataset` (`reglab.data.Dataset`): "auto" is sparse categorical (or
    binary, one sigmoid output) cross-entropy and accuracy for classification, mean squared error and mean
    absolute error for regression, nothing for several outputs (their losses are given); a model whose
    output width fits neither the classes nor a regression is refused. A subclassed model that has not seen
    data yet is called on one row to say its output width."""
    if dataset.task == "multi-output":
        return loss, () if metrics == "auto" else metrics
    try:
        shape = model.output_shape
    except AttributeError:
        shape = tuple(model(rows(dataset.x, slice(0, 1))).shape)
    width = shape[-1] if shape else None
    if dataset.task == "classification":
        if width not in (dataset.n_classes, 1) or (width == 1 and dataset.n_classes != 2):
            raise ValueError(
                f"The model's output width {width} fits neither {dataset.n_classes} classes (softmax) nor a "
                f"binary sigmoid. Received: model output shape {shape}"
            )
        auto_metrics = ("accuracy",)
        if loss == "auto" and emits_logits(model, dataset):  # Keras's `from_logits=True`, as a user compiles it
            if width == 1:  # a logit is positive where the probability is above 0.5
                auto_loss = keras.losses.BinaryCrossentropy(from_logits=True)
                accuracy = keras.metrics.BinaryAccuracy(name="accuracy", threshold=0.0)
                auto_metrics = (keras.metrics.serialize(accuracy),)
            else:
                auto_loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
        else:
            auto_loss = "sparse_categorical_crossentropy" if width == dataset.n_classes else "binary_crossentropy"
    else:
        if width != 1:
            raise ValueError(f"A regression model needs one output. Received: model output shape {shape}")
        auto_loss, auto_metrics = "mean_squared_error", ("mean_absolute_error",)
    return auto_loss if loss == "auto" else loss, auto_metrics if metrics == "auto" else metrics


def emits_logits(model, dataset) -> bool:
    """Whether a classifier outputs unnormalized scores (logits) rather than probabilities: the output layer of a
    Sequential or functional model says so by its activation (linear: logits; softmax, sigmoid or any other:
    probabilities, as Keras's cross-entropies take them). A subclassed model's outputs on a few rows say it:
    values outside [0, 1], or several classes' not summing to 1, are logits."""
    if type(model).__name__ in ("Sequential", "Functional") and model.layers:
        activation = getattr(model.layers[-1], "activation", None)
        if activation is not None:
            return keras.activations.serialize(activation) == "linear"
        if type(model.layers[-1]).__name__ == "Softmax":
            return False
    out = np.asarray(keras.ops.convert_to_numpy(model(rows(dataset.x, slice(0, 32)))), dtype=np.float64)
    if out.size == 0 or not np.isfinite(out).all():
        return False
    if out.min() < 0.0 or out.max() > 1.0:
        return True
    return out.shape[-1] > 1 and not np.allclose(out.sum(axis=-1), 1.0, atol=1e-3)


def validate_inputs(model, dataset) -> None:
    """The data's feature arrays against the model's inputs (rank and fixed sizes), before any work."""
    try:
        inputs = list(model.inputs or [])
    except (AttributeError, ValueError):  # a subclassed model knows its inputs only once it is called
        return
    arrays = leaves(dataset.x)
    if not inputs:
        return
    if len(inputs) != len(arrays):
        raise ValueError(
            f"The model has {len(inputs)} inputs and the data {len(arrays)} feature arrays (give several "
            f"inputs as a dict by input name or a list). Received: x with {len(arrays)} arrays"
        )
    if isinstance(dataset.x, dict):
        names = [getattr(t, "name", None) for t in inputs]
        if set(names) == set(dataset.x):
            arrays = [dataset.x[n] for n in names]
    for tensor, array in zip(inputs, arrays):
        expected = tuple(tensor.shape)
        if len(expected) != array.ndim or any(e is not None and e != a for e, a in zip(expected[1:], array.shape[1:])):
            shown = "(samples, " + ", ".join("any" if e is None else str(e) for e in expected[1:]) + ")"
            raise ValueError(
                f"The features do not fit the model's input {getattr(tensor, 'name', '')!r} of shape "
                f"{shown}. Received: x.shape={array.shape}"
            )
