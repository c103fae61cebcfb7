"""Optimizer-side regularization as sweep dimensions: decoupled weight decay and proximal L1."""

import keras
import numpy as np
import pytest
from sklearn.datasets import load_digits

import reglab
from reglab.search import points

X, Y = load_digits(return_X_y=True)
X, Y = (X / 16).astype("float32")[:600], Y[:600]
KERNEL = "sequential/dense/kernel"


def net():
    keras.backend.clear_session(free_memory=False)
    keras.utils.set_random_seed(0)
    return keras.Sequential(
        [keras.Input((64,)), keras.layers.Dense(32, activation="relu"), keras.layers.Dense(10, activation="softmax")]
    )


@pytest.mark.slow
@pytest.mark.parametrize("engine", ["population", "reference"])
def test_decoupled_decay_as_a_sweep_dimension_next_to_l2(engine):
    grid = {"penalty": ["l2", "weight_decay"], "lambda": [0.0, 0.5]}
    result = reglab.Sweep(
        net(), grid=grid, optimizer="adam", learning_rate=1e-2, cv=2, epochs=3, refit=False, engine=engine, seed=0
    ).run(X, Y)
    last = result.epochs[result.epochs.epoch == 3]
    strong = last[last["lambda"] == 0.5].set_index(["penalty", "fold"])
    assert (strong.loc["weight_decay", "train_penalty"] == 0).all() and (strong.loc["l2", "train_penalty"] > 0).all()
    none = last[last["lambda"] == 0.0].groupby("fold")[f"l2:{KERNEL}"].mean()
    assert (strong.loc["weight_decay", f"l2:{KERNEL}"] < none).all()  # never in the loss, yet it shrinks the kernel
    assert set(result.summary["penalty"]) == {"l2", "weight_decay"}
    # the ledger / engine report the decay's size although it is no loss term: wd/2·Σw² = 0.5·‖w‖²
    decayed = strong.loc["weight_decay"]
    np.testing.assert_allclose(decayed[f"decay:{KERNEL}"], 0.5 * decayed[f"l2:{KERNEL}"] ** 2, rtol=1e-5)
    assert strong.loc["l2", f"decay:{KERNEL}"].isna().all()


@pytest.mark.parametrize("optimizer, rate, same", [("sgd", 0.1, True), ("adam", 1e-2, False)])
def test_l2_and_decoupled_decay_are_the_same_only_under_plain_sgd(optimizer, rate, same):
    """Two members with the same seed (same start, same batches): L2(λ) in the loss vs decay wd = 2λ."""
    from dataclasses import replace

    from reglab import data
    from reglab.engine import population
    from reglab.engine.training import Training
    from reglab.search import plan

    dataset = data.prepare(X, Y)
    splits = data.folds(dataset, np.arange(len(Y)), 2, 1, 0, True)[:1]
    first, second = plan.members(
        [{"penalty": "l2", "lambda": 1e-2}, {"penalty": "weight_decay", "lambda": 1e-2}], splits, 0
    )
    members = [first, replace(second, seed=first.seed)]
    pops, _ = population.plan_populations(members, reglab.Sweep(net(), grid={"l2": [0.0]})._make_model())
    setting = Training(
        epochs=3,
        batch_size=32,
        optimizer=optimizer,
        learning_rate=rate,
        loss="sparse_categorical_crossentropy",
        metrics=("accuracy",),
        standardize=False,
    )
    final = {}
    for pop in pops:  # L2 and decay are other structures: two populations
        final.update(population.train_population(pop, dataset, setting)[1])
    first_w, second_w = final[first.id], final[second.id]
    gap = max(np.abs(first_w[p] - second_w[p]).max() for p in first_w)
    assert (gap < 1e-5) == same, gap


def test_proximal_l1_in_a_sweep_gives_exact_zeros_on_the_sweeps_layers():
    result = reglab.Sweep(
        net(), grid={"prox_l1": [0.0, 2e-3]}, cv=2, epochs=4, optimizer="adam", learning_rate=1e-2, refit=False, seed=0
    ).run(X, Y)
    last = result.epochs[result.epochs.epoch == 4].set_index("prox_l1")
    assert (last.loc[2e-3, f"zeros:{KERNEL}"] > 0.2 * 64 * 32).all() and (last.loc[0.0, f"zeros:{KERNEL}"] == 0).all()
    assert (last["zeros:sequential/dense_1/kernel"] == 0).all()  # the output layer is not one of the sweep's layers


def test_optimizer_side_point_keys():
    assert points.optimizer_settings({"penalty": "prox_l1", "lambda": 1e-3}) == {"prox_l1": 1e-3}
    assert points.optimizer_settings({"weight_decay": 0.01, "l2": 1e-3}) == {"weight_decay": 0.01}
    assert points.describe({"penalty": "weight_decay", "lambda": 1e-3}) == "decoupled weight decay 0.002"
    assert (
        points.describe({"prox_group": 0.1, "l2": 1e-3})
        == "L2(l2=0.001) on the hidden layers, proximal group lasso 0.1"
    )
    with pytest.raises(ValueError, match="Received: weight_decay=-1"):
        reglab.Sweep(net(), grid={"weight_decay": [-1]})
    with pytest.raises(ValueError, match="Received: prox_l1=-0.1"):
        reglab.Sweep(lambda point: net(), grid={"prox_l1": [-0.1]})  # a builder sweep is checked too
    with pytest.raises(ValueError, match="Received: optimizer='nadam'"):
        reglab.Sweep(lambda point: net(), grid={"penalty": ["prox_l1"], "lambda": [1e-3]}, optimizer="nadam")
