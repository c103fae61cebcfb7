"""The stacked engine: exactly the reference engine's mathematics, member isolation, best epochs."""

import keras
import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_digits

from conftest import NaNGradient
import reglab
from reglab import data as D
from reglab import plan
from reglab import regularizers as R
from reglab.engine import reference, stacked
from reglab.ledger import LossLedger
from reglab.schedules import LinearWarmup, Scheduled, Step, StrengthScheduler

X, Y = load_digits(return_X_y=True)
X = (X / 16).astype("float32")


def mlp(point):
    return keras.Sequential([
        keras.Input((64,)),
        keras.layers.Dense(32, activation="relu", kernel_regularizer=R.ElasticNet(point["l2"], 0.3), name="h1"),
        keras.layers.Dense(16, activation="tanh", kernel_regularizer=R.GroupLasso(point["l2"]),
                           bias_regularizer=R.L2(point["l2"]), activity_regularizer=R.L1(1e-4), name="h2"),
        keras.layers.Dense(10, activation="softmax", kernel_regularizer=R.Smoothness(point["l2"]), name="out"),
    ], name="net")


def conv2d(point):
    return keras.Sequential([
        keras.Input((8, 8, 1)),
        keras.layers.Conv2D(4, 3, activation="relu", padding="same", kernel_regularizer=R.L2(point["l2"])),
        keras.layers.MaxPooling2D(2),
        keras.layers.Conv2D(6, 2, activation="relu", kernel_regularizer=R.GroupLasso(point["l2"])),
        keras.layers.AveragePooling2D(1),
        keras.layers.Flatten(),
        keras.layers.Dense(10, activation="softmax"),
    ])


def conv1d(point):
    return keras.Sequential([
        keras.Input((8, 8)),
        keras.layers.Conv1D(5, 3, activation="relu", kernel_regularizer=R.Smoothness(point["l2"])),
        keras.layers.MaxPooling1D(2),
        keras.layers.Flatten(),
        keras.layers.Dense(10, activation="softmax"),
    ])


def setup(x, n=480, folds=2, lambdas=(0.0, 1e-2), seed=0, points=None):
    dataset = D.prepare(x[:n], Y[:n])
    rest, _ = D.split_test(dataset, None, seed, True)
    points = points or [{"l2": v} for v in lambdas]
    members = plan.members(points, D.folds(dataset, rest, folds, 1, seed, True), seed)
    return dataset, members


def training(optimizer="adam", lr=1e-3, epochs=5):
    return reference.Training(epochs=epochs, batch_size=32, optimizer=optimizer, learning_rate=lr,
                              loss="sparse_categorical_crossentropy", metrics=("accuracy",), standardize=False)


def reference_run(build, member, dataset, setting, initial):
    """The reference engine's way (one Keras model, model.fit, the ledger) with the stacked batch order."""
    keras.backend.clear_session()
    model = build(member.point)
    model.set_weights(initial)
    reference.compile_model(model, setting, member.point)
    ledger = LossLedger()
    callbacks = [StrengthScheduler(), ledger]
    for epoch in range(setting.epochs):
        order = stacked.default_order(member, epoch)
        model.fit(dataset.x[order], dataset.y[order], batch_size=setting.batch_size, shuffle=False, epochs=epoch + 1,
                  initial_epoch=epoch, verbose=0, validation_data=(dataset.x[member.val], dataset.y[member.val]),
                  validation_batch_size=len(member.val), callbacks=callbacks)
    return model.get_weights(), ledger.history


def assert_equivalent(build, x, setting, **kwargs):
    dataset, members = setup(x, **kwargs)
    (group,), failures = stacked.plan_groups(members, build)
    assert not failures
    initial = stacked._initial_weights(group, fresh=True)
    records, final, _ = stacked.train_group(group, dataset, setting, initial_weights=initial)
    for m in (0, len(members) - 1):  # both λ, both folds; the reference engine is the slow side
        member = members[m]
        weights, history = reference_run(build, member, dataset, setting, [w[m] for w in initial])
        assert max(np.abs(a - w[m]).max() for a, w in zip(weights, final)) <= 1e-5
        ours = records[member.id]
        assert sorted(ours.columns) == sorted(history.columns)  # the same epoch-record format
        numeric = [c for c in history.columns if c != "status"]
        np.testing.assert_allclose(ours[numeric].to_numpy(float), history[numeric].to_numpy(float), atol=1e-5, rtol=1e-5)


@pytest.mark.slow
@pytest.mark.parametrize("optimizer, lr", [("adam", 1e-3), ("adamw", 1e-3), ("sgd", 1e-2), ("rmsprop", 1e-3)])
def test_mlp_with_every_penalty_matches_the_reference_engine(optimizer, lr):
    assert_equivalent(mlp, X, training(optimizer, lr))


@pytest.mark.slow
@pytest.mark.parametrize("build, shape", [(conv2d, (-1, 8, 8, 1)), (conv1d, (-1, 8, 8))], ids=["conv2d", "conv1d"])
def test_conv_models_match_the_reference_engine(build, shape):
    assert_equivalent(build, X.reshape(shape), training("adam", 1e-2), n=320)


@pytest.mark.parametrize("bad_lambda", [1e4, -1.0], ids=["loss-explodes", "finite-loss-nan-gradient"])
def test_a_diverging_member_is_frozen_and_leaves_the_others_untouched(bad_lambda):
    dataset, members = setup(X, lambdas=(0.0, 1e-3))
    _, bad = setup(X, lambdas=(bad_lambda,))
    setting = training("sgd", 0.05, epochs=4)

    def build(point):
        penalty = NaNGradient() if point["l2"] < 0 else R.L2(point["l2"])
        return keras.Sequential([keras.Input((64,)), keras.layers.Dense(16, activation="relu", kernel_regularizer=penalty),
                                 keras.layers.Dense(10, activation="softmax")])

    (together,), _ = stacked.plan_groups(members + bad, build)
    (alone,), _ = stacked.plan_groups(members, build)
    init_together = stacked._initial_weights(together, fresh=True)
    with_bad, final_bad, _ = stacked.train_group(together, dataset, setting, initial_weights=init_together)
    without, final_good, _ = stacked.train_group(alone, dataset, setting, initial_weights=[w[:len(members)] for w in init_together])
    for member in bad:
        table = with_bad[member.id]
        assert table.status.iloc[-1] == "diverged" and len(table) < setting.epochs + 1
        assert np.isfinite(np.concatenate([w[members.__len__() + bad.index(member)].ravel() for w in final_bad])).all()
    for member in members:
        pd.testing.assert_frame_equal(with_bad[member.id], without[member.id])
        assert (with_bad[member.id].status == "ok").all()


def test_best_epoch_weights_can_be_restored():
    dataset, members = setup(X, lambdas=(0.0,))
    setting = training("adam", 3e-2, epochs=8)  # a high rate, so validation loss wanders
    (group,), _ = stacked.plan_groups(members, mlp)
    initial = stacked._initial_weights(group, fresh=True)
    records, best, _ = stacked.train_group(group, dataset, setting, initial_weights=initial, restore_best=True)
    for m, member in enumerate(members):
        model = mlp(member.point)
        model.set_weights([w[m] for w in best])
        probabilities = model.predict(dataset.x[member.val], verbose=0)
        loss = -np.mean(np.log(np.clip(probabilities[np.arange(len(member.val)), dataset.y[member.val]], 1e-7, 1)))
        assert loss == pytest.approx(records[member.id].val_loss.min(), rel=1e-4)


def test_dropout_masks_are_per_member_and_reproducible():
    import tensorflow as tf

    shape = tf.constant([3, 64, 50])
    a = stacked._uniform(shape, tf.constant([1, 2, 1], tf.uint32), 7).numpy()
    b = stacked._uniform(shape, tf.constant([1, 2, 1], tf.uint32), 7).numpy()
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(a[0], a[2])  # the same seed gives the same mask ...
    assert np.mean(a[0] == a[1]) < 0.01  # ... another seed another one
    assert abs(a.mean() - 0.5) < 0.01 and a.min() >= 0 and a.max() < 1
    assert abs(np.mean(a < 0.3) - 0.3) < 0.01


def test_sweep_falls_back_to_the_reference_engine_with_a_reason():
    def build(point):
        return keras.Sequential([keras.Input((64,)), keras.layers.Dense(16), keras.layers.BatchNormalization(),
                                 keras.layers.Dense(10, activation="softmax")])

    with pytest.warns(UserWarning, match="layer type BatchNormalization"):
        # one epoch of 4 steps does not beat the class priors: selecting by the loss would find nothing to select
        result = reglab.Sweep(build, grid={"l2": [0.0]}, cv=2, epochs=1, refit=False, select="val_accuracy").run(X[:200], Y[:200])
    assert (result.members.status == "ok").all()
    with pytest.raises(ValueError, match="Received: engine='stacked'"):
        reglab.Sweep(build, grid={"l2": [0.0]}, cv=2, epochs=1, engine="stacked", refit=False).run(X[:200], Y[:200])


def test_both_engines_reach_the_same_accuracy_per_lambda():
    def build(point):
        return keras.Sequential([keras.Input((64,)), keras.layers.Dense(32, activation="relu", kernel_regularizer=R.L2(point["l2"])),
                                 keras.layers.Dense(10, activation="softmax")])

    kwargs = dict(grid={"l2": [0.0, 0.1]}, cv=3, epochs=6, refit=False)
    fast = reglab.Sweep(build, engine="stacked", **kwargs).run(X, Y).summary.set_index("l2")
    slow = reglab.Sweep(build, engine="reference", **kwargs).run(X, Y).summary.set_index("l2")
    difference = (fast.val_accuracy_mean - slow.val_accuracy_mean).abs()
    assert difference.max() < 0.03, difference  # same maths, different shuffles
    assert fast.loc[0.1, "val_loss_mean"] > fast.loc[0.0, "val_loss_mean"]


def test_sharded_training_equals_one_program(monkeypatch):
    dataset, members = setup(X, lambdas=(0.0, 1e-2, 1e-1))
    (group,), _ = stacked.plan_groups(members, mlp)
    initial = stacked._initial_weights(group, fresh=True)
    setting = training("adam", 1e-3, epochs=2)
    monkeypatch.setenv("REGLAB_STACKED_SHARDS", "1")
    one, w1, t1 = stacked.train_group(group, dataset, setting, initial_weights=initial)
    monkeypatch.setenv("REGLAB_STACKED_SHARDS", "3")
    three, w3, t3 = stacked.train_group(group, dataset, setting, initial_weights=initial)
    assert (t1["shards"], t3["shards"]) == (1, 3)
    for member in members:
        pd.testing.assert_frame_equal(one[member.id], three[member.id], atol=1e-6)
    assert max(np.abs(a - b).max() for a, b in zip(w1, w3)) <= 1e-6


def test_learning_rate_schedule_matches_the_reference_engine():
    schedule = keras.optimizers.schedules.ExponentialDecay(1e-2, decay_steps=5, decay_rate=0.5)
    assert_equivalent(conv1d, X.reshape(-1, 8, 8), training("sgd", schedule, epochs=3), n=200)


def test_penalty_schedules_match_the_reference_engine():
    def build(point):  # members differ in λ and in whether the first penalty is scheduled at all
        first = R.ElasticNet(point["l2"], 0.5)
        return keras.Sequential([
            keras.Input((64,)),
            keras.layers.Dense(16, activation="relu", name="h1",
                               kernel_regularizer=Scheduled(first, LinearWarmup(2)) if point["l2"] > 0 else first),
            keras.layers.Dense(10, activation="softmax", activity_regularizer=Scheduled(R.L2(1e-2), Step([1], [0.0, 1.0]))),
        ])

    assert_equivalent(build, X, training("adam", 1e-2, epochs=3), n=240, lambdas=(0.0, 0.1))


@pytest.mark.parametrize("optimizer, key, value", [
    ("sgd", "weight_decay", 0.05), ("adam", "weight_decay", 0.05), ("adam", "prox_l1", 2e-3), ("sgd", "prox_l1", 2e-3),
    ("rmsprop", "prox_l1", 2e-3), ("adam", "prox_group", 5e-2), ("sgd", "prox_group", 10.0),
], ids=lambda v: str(v))
def test_decoupled_weight_decay_and_proximal_l1_match_the_reference_engine(optimizer, key, value):
    """Optimizer-side regularization (point keys `weight_decay`, `prox_l1`) is the same maths in both engines,
    member by member (one member without it in the same group), exact zeros included."""
    def build(point):
        return keras.Sequential([keras.Input((64,)), keras.layers.Dense(16, activation="relu", kernel_regularizer=R.L2(point["l2"])),
                                 keras.layers.Dense(10, activation="softmax")])

    points = [{"l2": 0.0, key: 0.0}, {"l2": 1e-3, key: value}]
    assert_equivalent(build, X, training(optimizer, 1e-2, epochs=3), n=240, points=points)
    if key == "prox_l1" and optimizer != "sgd":  # (SGD's threshold, lr·λ = 2e-5 a step, needs longer)
        dataset, members = setup(X, n=240, points=points)
        (group,), _ = stacked.plan_groups(members, build)
        _, final, _ = stacked.train_group(group, dataset, training(optimizer, 1e-2, epochs=3))
        assert (final[0][-1] == 0).mean() > 0.05 and (final[0][0] == 0).sum() == 0  # zeros only where asked
    if key == "prox_group":
        dataset, members = setup(X, n=240, points=points)
        (group,), _ = stacked.plan_groups(members, build)
        _, final, _ = stacked.train_group(group, dataset, training(optimizer, 1e-2, epochs=3))
        assert (final[0][-1] == 0).all(axis=0).sum() >= 1  # whole units removed
