"""The reference engine: each member is an independent Keras model trained with `model.fit`.

It works for any model a builder returns, on any Keras backend, and is the ground truth the population
engine is tested against. Per member: fresh Keras session (stable layer names), the member's seed, build,
compile, fit on its training fold with its validation fold, the `LossLedger` recording.
"""

from __future__ import annotations

import logging
import time
import traceback

import keras
import pandas as pd

from reglab.search import plan
from reglab.engine.training import Training, compile_model, fold_arrays
from reglab.kit.ledger import LossLedger
from reglab.kit.schedules import StrengthScheduler


class _NoRetracingNoise(logging.Filter):
    # Every member is a new model, so TensorFlow's "triggered tf.function retracing" advice is
    # expected here and says nothing useful.
    def filter(self, record):
        return "triggered tf.function retracing" not in record.getMessage()


logging.getLogger("tensorflow").addFilter(_NoRetracingNoise())


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
