"""The reference engine: each member is an independent Keras model trained with `model.fit`.

It works for any model a builder returns, on any Keras backend, and is the ground truth the population
engine is tested against. Per member: fresh Keras session (stable layer names), the member's seed, build,
compile, fit on its training fold with its validation fold, the `LossLedger` recording.
"""

from __future__ import annotations

import logging
import re
import time
import traceback
from dataclasses import dataclass

import keras
import numpy as np
import pandas as pd

from reglab.search import plan, points
from reglab.data import rows
from reglab.kit.ledger import LossLedger
from reglab.kit.optimizers import Proximal
from reglab.kit.schedules import StrengthScheduler


class _NoRetracingNoise(logging.Filter):
    # Every member is a new model, so TensorFlow's "triggered tf.function retracing" advice is
    # expected here and says nothing useful.
    def filter(self, record):
        return "triggered tf.function retracing" not in record.getMessage()


logging.getLogger("tensorflow").addFilter(_NoRetracingNoise())


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


def fold_arrays(data, train, val, standardize: bool):
    """Training and validation arrays of one fold; standardized with the training part's statistics only."""
    x_train, y_train = rows(data.x, train), rows(data.y, train)
    x_val, y_val = rows(data.x, val), rows(data.y, val)
    scaling = None
    if standardize:
        if data.structured:  # refused by the sweep before any work; a direct caller gets the same words
            raise ValueError("Standardizing several inputs or outputs is not built in: add a Normalization layer "
                             "to the model instead. Received: standardize=True")
        mean = x_train.mean(axis=0)
        std = x_train.std(axis=0)
        std = np.where(std > 0, std, 1.0).astype("float32")
        x_train, x_val = (x_train - mean) / std, (x_val - mean) / std
        scaling = {"x_mean": mean, "x_std": std}
        if data.task == "regression":
            y_mean, y_std = float(y_train.mean()), float(y_train.std() or 1.0)
            y_train, y_val = (y_train - y_mean) / y_std, (y_val - y_mean) / y_std
            scaling.update(y_mean=y_mean, y_std=y_std)
    return x_train, y_train, x_val, y_val, scaling


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
        optimizer = Proximal(optimizer, l1=settings.get("prox_l1", 0.0), group_lasso=settings.get("prox_group", 0.0),
                             weights="^(" + "|".join(map(re.escape, targets)) + ")$")
    return optimizer


def compile_model(model, training: Training, point: dict | None = None):
    model.compile(optimizer=make_optimizer(training, point, model), loss=training.loss, metrics=_metrics(training.metrics),
                  loss_weights=training.loss_weights)


def _metrics(metrics):
    """Metrics for `compile`: a list, or as given per output."""
    return metrics if isinstance(metrics, dict) else list(metrics)


def identity(member) -> dict:
    return {"member": member.id, "point": member.point_id, "fold": member.fold, "repeat": member.repeat,
            "seed": member.seed, **member.point}


def train_member(member, data, training: Training, make_model, validate: bool = True):
    """Train one member; return (records DataFrame, trained model or None, scaling).

    A member that raises is recorded as one row with status "failed" and the error; a member
    whose loss stops being finite stops there with status "diverged". Neither disturbs others.
    """
    keras.backend.clear_session(free_memory=False)  # names reset; a full gc pass costs ~0.2 s
    plan.set_global_seed(member.seed)
    x_train, y_train, x_val, y_val, scaling = fold_arrays(data, member.train, member.val, training.standardize)
    started = time.perf_counter()
    ledger = LossLedger(stop_on_divergence=True)
    try:
        model = make_model(member.point)
        compile_model(model, training, member.point)
        model.fit(
            x_train, y_train, validation_data=(x_val, y_val) if validate else None, epochs=training.epochs,
            batch_size=training.batch_size, shuffle=True, verbose=0,
            # one validation batch: one traced test step and fewer per-step overheads; same mean
            validation_batch_size=max(1, min(len(y_val), 4096)),
            callbacks=[StrengthScheduler(), ledger],  # λ schedules (`reglab.kit.schedules.Scheduled`) move per epoch
        )
        records = ledger.history
        if records.empty:
            raise RuntimeError("training produced no epoch")
    except Exception as error:  # a failed member is a result, not a crash of the sweep
        model = None
        records = pd.DataFrame([{"epoch": 0, "status": "failed",
                                 "error": "".join(traceback.format_exception_only(error)).strip()[:500]}])
    return with_identity(records, member, time.perf_counter() - started), model, scaling


def with_baseline(records, member, data, training: Training):
    """Add the constant predictor's validation loss on the member's fold (`reglab.decide.baseline`): columns
    `baseline_loss` and `baseline_predictor`, the same on every row. The targets go through
    `fold_arrays`, so with `standardize` a regression baseline is in the units of `val_loss`."""
    from reglab.decide.baseline import constant_loss

    if data.task == "multi-output":  # no constant predictor of several losses here: nothing is compared
        return records.assign(baseline_loss=float("nan"), baseline_predictor="")
    _, y_train, _, y_val, _ = fold_arrays(data, member.train, member.val, training.standardize)
    loss, predictor = constant_loss(y_train, y_val, training.loss, data.n_classes if data.task == "classification" else None)
    return records.assign(baseline_loss=loss, baseline_predictor=predictor)


def with_identity(records, member, seconds):
    """Prefix a member's epoch records with its identity, its point and its training time."""
    records = records.copy()
    records.insert(0, "seconds", seconds)
    for i, (key, value) in enumerate(identity(member).items()):
        records.insert(i, key, value)
    return records
