"""LossLedger: prediction loss and penalty apart, checked against Keras and against numpy."""

import keras
import numpy as np
import pytest
from conftest import mlp

import reglab
from reglab.kit.regularizers import L1, L2, GroupLasso

pytestmark = pytest.mark.both_backends  # the ledger measures inside the compiled step of either backend


def fit_with_ledger(model, x, y, epochs=3, optimizer=None, **fit_kwargs):
    model.compile(
        optimizer=optimizer or keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy", metrics=["accuracy"]
    )
    ledger = reglab.LossLedger()
    history = model.fit(x, y, epochs=epochs, batch_size=64, verbose=0, callbacks=[ledger], **fit_kwargs)
    return ledger.history, history.history


@pytest.fixture
def split(digits):
    x, y = digits
    return x[:1200], y[:1200], x[1200:], y[1200:]


def test_prediction_plus_penalty_is_keras_total_train_and_validation(split):
    x, y, xv, yv = split
    model = reglab.regularize(
        mlp(hidden=(64, 32)), kernel=L2(3e-3), bias=L1(1e-3), activity=L1(1e-4), layers=[0, 1], dropout=0.2
    )
    table, keras_history = fit_with_ledger(model, x, y, validation_data=(xv, yv))
    np.testing.assert_allclose(table.train_total, keras_history["loss"], rtol=1e-6)
    np.testing.assert_allclose(table.val_total, keras_history["val_loss"], rtol=1e-6)
    np.testing.assert_allclose(table.train_loss + table.train_penalty, table.train_total, rtol=1e-5)
    np.testing.assert_allclose(table.val_loss + table.val_penalty, table.val_total, rtol=1e-5)
    np.testing.assert_allclose(table.train_accuracy, keras_history["accuracy"], rtol=1e-6)
    np.testing.assert_allclose(table.val_accuracy, keras_history["val_accuracy"], rtol=1e-6)
    terms = table[[c for c in table.columns if c.startswith("penalty:")]]
    assert terms.shape[1] == 6  # 2 kernels, 2 biases, 2 activities
    np.testing.assert_allclose(terms.sum(axis=1), table.train_penalty, rtol=1e-5)
    assert (terms > 0).all().all()
    assert (table.status == "ok").all() and list(table.epoch) == [1, 2, 3]


def test_zero_lambda_gives_zero_penalty(split):
    x, y, xv, yv = split
    table, _ = fit_with_ledger(reglab.regularize(mlp(), kernel=L2(0.0)), x, y, epochs=2, validation_data=(xv, yv))
    assert (table.train_penalty == 0).all() and (table.val_penalty == 0).all()
    np.testing.assert_allclose(table.train_loss, table.train_total, rtol=1e-6)


def test_val_loss_has_no_penalty_and_the_penalty_is_lambda_sum_w2_of_the_recorded_weights(split):
    x, y, xv, yv = split
    lam = 0.01
    model = reglab.regularize(mlp(hidden=(32,)), kernel=L2(lam))
    table, _ = fit_with_ledger(model, x, y, validation_data=(xv, yv))
    last = table.iloc[-1]
    kernels = [v for v in model.trainable_weights if v.regularizer is not None]
    # the recorded L2 norms are those of the final weights ...
    for v in kernels:
        assert last[f"l2:{v.path}"] == pytest.approx(np.linalg.norm(v.numpy()), rel=1e-6)
    # ... and the penalty at those weights is λ·Σw² computed from the record alone
    from_record = sum(lam * last[f"l2:{v.path}"] ** 2 for v in kernels)
    assert last.val_penalty == pytest.approx(from_record, rel=1e-5)
    # the validation prediction loss is the plain cross-entropy of the final model
    probabilities = model.predict(xv, verbose=0)
    cross_entropy = -np.mean(np.log(probabilities[np.arange(len(yv)), yv]))
    assert last.val_loss == pytest.approx(cross_entropy, rel=1e-4)
    assert last.val_total == pytest.approx(cross_entropy + from_record, rel=1e-4)


def test_train_loss_is_the_mean_batch_prediction_loss(split):
    x, y, _, _ = split
    lam = 0.02
    # lr = 0: the weights never move, so each batch sees the same model and the means are exact
    model = reglab.regularize(mlp(), kernel=GroupLasso(lam))
    table, _ = fit_with_ledger(model, x, y, epochs=2, optimizer=keras.optimizers.SGD(0.0))
    probabilities = model.predict(x, verbose=0)
    cross_entropy = -np.mean(np.log(probabilities[np.arange(len(y)), y]))
    np.testing.assert_allclose(table.train_loss, cross_entropy, rtol=1e-4)
    kernels = [v.numpy() for v in model.trainable_weights if v.regularizer is not None]
    group_lasso = lam * sum(np.linalg.norm(k, axis=0).sum() for k in kernels)
    np.testing.assert_allclose(table.train_penalty, group_lasso, rtol=1e-5)


def test_weight_statistics_match_numpy(split):
    x, y, _, _ = split
    model = mlp()
    table, _ = fit_with_ledger(model, x, y, epochs=1)
    row = table.iloc[-1]
    for v in model.trainable_weights:
        w = v.numpy()
        assert row[f"l1:{v.path}"] == pytest.approx(np.abs(w).sum(), rel=1e-6)
        assert row[f"zeros:{v.path}"] == np.count_nonzero(w == 0)
        assert row[f"near_zero:{v.path}"] == pytest.approx(np.mean(np.abs(w) < 1e-3))


def test_add_loss_from_a_custom_layer_is_accounted_for(split):
    x, y, _, _ = split

    class Penalized(keras.layers.Layer):
        def call(self, inputs):
            self.add_loss(
                1e-3 * keras.ops.sum(keras.ops.square(inputs)) / keras.ops.cast(keras.ops.shape(inputs)[0], "float32")
            )
            return inputs

    model = keras.Sequential(
        [
            keras.Input((64,)),
            keras.layers.Dense(16, activation="relu"),
            Penalized(),
            keras.layers.Dense(10, activation="softmax"),
        ]
    )
    table, keras_history = fit_with_ledger(model, x, y, epochs=2)
    assert (table["penalty:add_loss"] > 0).all()
    np.testing.assert_allclose(table.train_loss + table.train_penalty, keras_history["loss"], rtol=1e-5)


def test_the_model_is_restored_and_a_ledger_can_be_reused(split):
    x, y, xv, yv = split
    model = reglab.regularize(mlp(), kernel=L2(1e-3))
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    ledger = reglab.LossLedger()
    model.fit(x, y, epochs=2, verbose=0, callbacks=[ledger], validation_data=(xv, yv))
    assert "compute_loss" not in vars(model)  # the wrapper is gone
    model.fit(x, y, epochs=1, verbose=0)  # a fit without the ledger adds nothing to it
    assert len(ledger.rows) == 2
    model.fit(x, y, epochs=5, initial_epoch=3, verbose=0, callbacks=[ledger])
    assert list(ledger.history.epoch) == [1, 2, 4, 5]
    assert np.isnan(ledger.history.val_loss.iloc[-1])  # no validation data in that fit: NaN, not a stale value


def test_divergence_is_flagged_and_stays_flagged(cancer):
    x, y = cancer
    model = keras.Sequential([keras.Input((30,)), keras.layers.Dense(16, activation="relu"), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.SGD(1e3), loss="mse")
    ledger = reglab.LossLedger()
    model.fit(x, y, epochs=4, verbose=0, callbacks=[ledger])
    status = list(ledger.history.status)
    assert "diverged" in status
    first = status.index("diverged")
    assert all(s == "diverged" for s in status[first:])


def test_two_ledgers_in_one_fit_agree_and_leave_the_model_clean(split):
    x, y, xv, yv = split
    model = reglab.regularize(mlp(), kernel=L2(1e-3))
    first, second = reglab.LossLedger(), reglab.LossLedger(weight_stats=False)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    model.fit(x, y, epochs=2, verbose=0, validation_data=(xv, yv), callbacks=[first, second])
    columns = ["train_loss", "train_penalty", "val_loss", "val_penalty"]
    np.testing.assert_allclose(first.history[columns], second.history[columns], rtol=1e-6)
    assert "compute_loss" not in vars(model)
    assert not any(c.startswith("l2:") for c in second.history.columns)


def test_stop_on_divergence_ends_fit_at_the_first_diverged_epoch(cancer):
    x, y = cancer
    model = keras.Sequential([keras.Input((30,)), keras.layers.Dense(16, activation="relu"), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.SGD(1e3), loss="mse")
    ledger = reglab.LossLedger(stop_on_divergence=True)
    model.fit(x, y, epochs=6, verbose=0, callbacks=[ledger])
    assert list(ledger.history.status) == ["ok"] * (len(ledger.rows) - 1) + ["diverged"]
    assert len(ledger.rows) < 6


def test_the_ledger_leaves_no_metric_behind_and_reports_none(split):
    x, y, xv, yv = split
    model = reglab.regularize(mlp(), kernel=L2(1e-3))
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    before = [m.name for m in model.metrics]
    ledger = reglab.LossLedger()
    history = model.fit(x, y, epochs=1, verbose=0, callbacks=[ledger], validation_data=(xv, yv))
    assert set(history.history) == {"loss", "accuracy", "val_loss", "val_accuracy"}  # the sums are not logged
    assert [m.name for m in model.metrics] == before
    assert set(model.evaluate(xv, yv, verbose=0, return_dict=True)) == {"loss", "accuracy"}


def test_the_reference_engine_trains_a_member_on_this_backend(digits):
    """`reference.train_member` on whichever backend this process has (the JAX pass runs it on JAX):
    the ledger's columns, the split of Keras's loss, a λ schedule that moves and an activity term."""
    from reglab import data as D
    from reglab.engine import reference
    from reglab.engine.training import Training
    from reglab.kit.schedules import Scheduled, Step
    from reglab.search import plan

    x, y = digits
    dataset = D.prepare(x[:300], y[:300])
    rest, _ = D.split_test(dataset, None, 0, True)
    member = plan.members([{"l2": 1e-2}], D.folds(dataset, rest, 2, 1, 0, True), 0)[0]

    def build(point):
        warmup = Scheduled(L2(point["l2"]), Step([1], [0.0, 1.0]))  # no penalty in epoch 1, full after
        return keras.Sequential(
            [
                keras.Input((64,)),
                keras.layers.Dense(
                    16, activation="relu", kernel_regularizer=warmup, activity_regularizer=L1(1e-4), name="h"
                ),
                keras.layers.Dropout(0.1),
                keras.layers.Dense(10, activation="softmax", name="out"),
            ],
            name="net",
        )

    setting = Training(
        epochs=3,
        batch_size=32,
        optimizer="adam",
        learning_rate=1e-2,
        loss="sparse_categorical_crossentropy",
        metrics=("accuracy",),
        standardize=True,
    )
    trained = reference.train_member(member, dataset, setting, build)
    assert trained.model is not None, trained.rows.error.iloc[0]
    records = trained.rows
    assert list(records.columns[:2]) == ["epoch", "train_loss"]
    for column in [
        "train_loss",
        "train_penalty",
        "train_total",
        "val_loss",
        "val_penalty",
        "val_total",
        "train_accuracy",
        "val_accuracy",
        "penalty:net/h/kernel",
        "penalty:h/activity",
        "scale:net/h/kernel",
        "l2:net/h/kernel",
        "zeros:net/out/bias",
        "status",
    ]:
        assert column in records.columns, column
    assert list(records.epoch) == [1, 2, 3] and (records.status == "ok").all()
    np.testing.assert_allclose(records.train_loss + records.train_penalty, records.train_total, rtol=1e-6)
    np.testing.assert_allclose(records.val_loss + records.val_penalty, records.val_total, rtol=1e-6)
    np.testing.assert_array_equal(records["scale:net/h/kernel"], [0.0, 1.0, 1.0])
    kernel = records["penalty:net/h/kernel"]
    assert kernel.iloc[0] == 0 and (kernel.iloc[1:] > 0.1).all()  # the schedule moved inside the compiled step
    assert (records["penalty:h/activity"] > 0).all()
    terms = records[["penalty:net/h/kernel", "penalty:h/activity"]].sum(axis=1)
    np.testing.assert_allclose(terms, records.train_penalty, rtol=1e-6)
