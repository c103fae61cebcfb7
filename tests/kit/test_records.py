"""The epoch-record contract: one table format, whatever engine trained the members."""

import keras
import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_breast_cancer

import reglab


def build(point):
    return keras.Sequential(
        [
            keras.Input((30,)),
            keras.layers.Dense(8, activation="relu", kernel_regularizer=keras.regularizers.L2(point["l2"]), name="h"),
            keras.layers.Dense(2, activation="softmax", name="out"),
        ],
        name="net",
    )


@pytest.mark.slow
def test_both_engines_write_the_same_table():
    """The same small sweep on both engines: the same columns in the same order with the same dtypes, the
    parameters named by the table, and the same values — seed 004's two gradients too, on folds of different sizes.
    One full batch an epoch, so that the engines' batch orders (fit's shuffle, the population's) differ only in the
    order rows are summed."""
    x, y = load_breast_cancer(return_X_y=True)
    x, y = x[:121].astype("float32"), y[:121]  # three folds of 80, 81, 81 rows: the gradients' batches differ too
    tables = {}
    for engine in ("population", "reference"):
        sweep = reglab.Sweep(
            build,
            grid={"l2": [0.0, 1e-2]},
            cv=3,
            epochs=3,
            batch_size=128,
            learning_rate=1e-2,
            standardize=True,
            refit=False,
            engine=engine,
            gradients=True,
            seed=0,
        )
        tables[engine] = sweep.run(x, y).epochs
    population, reference = tables["population"], tables["reference"]
    assert list(population.columns) == list(reference.columns)
    assert population.dtypes.to_dict() == reference.dtypes.to_dict()
    assert population.attrs["params"] == reference.attrs["params"] == ["l2"]
    pd.testing.assert_frame_equal(
        population.drop(columns="seconds"), reference.drop(columns="seconds"), check_exact=False, rtol=1e-4, atol=1e-6
    )
    assert np.isfinite(population["baseline_loss"]).all() and (population["baseline_predictor"] == "class priors").all()
    # the penalty's gradient of L2(λ) is 2λw: its norm 2λ‖w‖, ‖w‖ recorded beside it; λ = 0 pulls nothing
    kernel = "net/h/kernel"
    np.testing.assert_allclose(
        population[f"grad_penalty:{kernel}"], 2 * population["l2"] * population[f"l2:{kernel}"], rtol=1e-5
    )
    assert population[f"grad_loss:{kernel}"].gt(0).all()
    unpenalized = population["l2"] == 0
    assert (population.loc[unpenalized, f"grad_share:{kernel}"] == 0).all()
    assert population.loc[~unpenalized, f"grad_share:{kernel}"].between(0, 1, inclusive="neither").all()
