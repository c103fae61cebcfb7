"""The reference engine: each member is an independent Keras model trained with `model.fit`.

It works for any model a builder returns, on any Keras backend, and is the ground truth the population
engine is tested against. Per member: fresh Keras session (stable layer names), the member's seed, build,
compile, fit on its training fold with its validation fold, the `LossLedger` recording.
"""

from __future__ import annotations

import logging
import time

import keras
import numpy as np

from reglab.data import rows
from reglab.engine.training import Trained, Training, compile_model, error_line, fold_arrays
from reglab.kit import records
from reglab.kit.ledger import LossLedger
from reglab.kit.schedules import StrengthScheduler
from reglab.search import plan


class _NoRetracingNoise(logging.Filter):
    # Every member is a new model, so TensorFlow's "triggered tf.function retracing" advice is
    # expected here and says nothing useful.
    def filter(self, record):
        return "triggered tf.function retracing" not in record.getMessage()


logging.getLogger("tensorflow").addFilter(_NoRetracingNoise())


def train_member(member, data, training: Training, make_model, validate: bool = True) -> Trained:
    """Train one member with `model.fit`: its rows, seconds, final weights and model (None if it failed).

    A member that raises is recorded as one row with status "failed" and the error; a member
    whose loss stops being finite stops there with status "diverged". Neither disturbs others.
    """
    keras.backend.clear_session(free_memory=False)  # names reset; a full gc pass costs ~0.2 s
    plan.set_global_seed(member.seed)
    x_train, y_train, x_val, y_val, _ = fold_arrays(data, member.train, member.val, training.standardize)
    started = time.perf_counter()
    first = np.arange(min(training.gradients, len(member.train)))  # the two gradients' batch: the fold's first rows
    ledger = LossLedger(
        stop_on_divergence=True,
        gradients=(rows(x_train, first), rows(y_train, first)) if training.gradients else None,
    )
    try:
        model = make_model(member.point)
        compile_model(model, training, member.point)
        model.fit(
            x_train,
            y_train,
            validation_data=(x_val, y_val) if validate else None,
            epochs=training.epochs,
            batch_size=training.batch_size,
            shuffle=True,
            verbose=0,
            # one validation batch: one traced test step and fewer per-step overheads; same mean
            validation_batch_size=max(1, min(len(y_val), 4096)),
            callbacks=[StrengthScheduler(), ledger],  # λ schedules (`reglab.kit.schedules.Scheduled`) move per epoch
        )
        history = ledger.history
        if history.empty:
            raise RuntimeError("training produced no epoch")
    except Exception as error:  # a failed member is a result, not a crash of the sweep
        return Trained(records.failed(error_line(error)), time.perf_counter() - started)
    weights = {v.path: keras.ops.convert_to_numpy(v) for v in model.trainable_weights}
    return Trained(history, time.perf_counter() - started, weights, model)
