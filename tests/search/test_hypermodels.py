"""KerasTuner hypermodels as they are (`reglab.search.HyperModel`): the space read from `build(hp)` — a loop's and a
conditional scope's hyperparameters too —, the compiled learning rate a per-member value, architectures in
populations of their own; with the real keras-tuner package and the model of its own getting-started guide."""

import keras
import keras_tuner as kt
import pytest
from keras import layers

import reglab
from reglab.search import HyperModel


def build_model(hp):
    """KerasTuner's getting-started guide ("Tune the model architecture"), as written there."""
    model = keras.Sequential()
    model.add(layers.Flatten())
    # Tune the number of layers.
    for i in range(hp.Int("num_layers", 1, 3)):
        model.add(
            layers.Dense(
                # Tune number of units separately.
                units=hp.Int(f"units_{i}", min_value=32, max_value=512, step=32),
                activation=hp.Choice("activation", ["relu", "tanh"]),
            )
        )
    if hp.Boolean("dropout"):
        model.add(layers.Dropout(rate=0.25))
    model.add(layers.Dense(10, activation="softmax"))
    learning_rate = hp.Float("lr", min_value=1e-4, max_value=1e-2, sampling="log")
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=learning_rate),
        loss="categorical_crossentropy",
        metrics=["accuracy"],
    )
    return model


def test_the_guides_hypermodel_is_read_with_its_loop_and_its_learning_rate(digits):
    x, _ = digits
    hm = HyperModel(build_model)
    assert set(hm.space) == {"num_layers", "units_0", "units_1", "units_2", "activation", "dropout", "learning_rate"}
    assert hm.optimizer == "adam" and hm.rate_name == "lr"
    assert hm.space["learning_rate"].to_config() == {"log_uniform": [1e-4, 1e-2]}
    assert hm.space["units_2"].to_config() == {"choice": [float(u) for u in range(32, 513, 32)]}
    model = hm(
        {
            "num_layers": 2.0,
            "units_0": 64.0,
            "units_1": 96.0,
            "units_2": 32.0,
            "activation": "tanh",
            "dropout": True,
            "learning_rate": 3e-3,
        }
    )
    model.build((None, 64))
    dense = [layer for layer in model.layers if isinstance(layer, layers.Dense)]
    assert [d.units for d in dense] == [64, 96, 10] and dense[0].activation.__name__ == "tanh"
    assert any(isinstance(layer, layers.Dropout) for layer in model.layers)
    assert float(model.optimizer.learning_rate) == pytest.approx(3e-3)
    sweep = reglab.Sweep(hm, random=hm.space, n_trials=3, optimizer=hm.optimizer)  # its config names the build function
    assert sweep.get_config()["model"] == {"keras_tuner": f"{__name__}:build_model"}
    again = reglab.Sweep.from_config(sweep.get_config())
    assert isinstance(again.model, HyperModel) and again.model.hypermodel is build_model


def test_a_hypermodels_learning_rate_trains_as_the_sweeps_own_and_shares_a_population(digits):
    x, y = digits
    hm = HyperModel(build_model)
    fixed = {"num_layers": 1.0, "units_0": 32.0, "activation": "relu", "dropout": False}
    settings = dict(cv=2, epochs=2, seed=0, optimizer=hm.optimizer, refit=False)
    swept = reglab.Sweep(hm, grid={**{k: [v] for k, v in fixed.items()}, "learning_rate": [1e-3, 1e-2]}, **settings)
    result = swept.run(x, y)
    assert result.timing["populations"] == 1  # one architecture: the learning rate is a per-member value
    by_rate = result.summary.set_index("learning_rate").val_loss_mean
    assert by_rate[1e-3] != by_rate[1e-2]
    # the point's rate is the one trained: a point of 1e-2 alone, the sweep's own rate 1e-2 or 1e-3, the same numbers
    alone = {**{k: [v] for k, v in fixed.items()}, "learning_rate": [1e-2]}
    for rate in (1e-3, 1e-2):
        run = reglab.Sweep(hm, grid=alone, **{**settings, "learning_rate": rate}).run(x, y)
        assert run.summary.val_loss_mean.iloc[0] == pytest.approx(by_rate[1e-2], rel=1e-5)


def test_a_conditional_scopes_hyperparameters_are_found_and_architectures_make_their_own_populations(digits):
    x, y = digits

    def build(hp):
        model = keras.Sequential([keras.Input((64,))])
        kind = hp.Choice("kind", ["narrow", "wide"])
        with hp.conditional_scope("kind", ["wide"]):
            if kind == "wide":
                model.add(layers.Dense(hp.Int("width", 48, 64, step=16), activation="relu"))
        model.add(
            layers.Dense(
                16,
                activation="relu",
                kernel_regularizer=keras.regularizers.L2(hp.Float("l2", 1e-5, 1e-1, sampling="log")),
            )
        )
        model.add(layers.Dropout(hp.Float("rate", 0.0, 0.5)))
        model.add(layers.Dense(10, activation="softmax"))
        return model

    hm = HyperModel(build)
    assert set(hm.space) == {"kind", "width", "l2", "rate"} and hm.optimizer is None
    grid = {
        "kind": ["narrow"],
        "width": [48],
        "l2": [1e-4, 1e-2],
        "rate": [0.1, 0.3],
    }  # a rate of 0 is a program of its own
    result = reglab.Sweep(hm, grid=grid, cv=2, epochs=1, seed=0, refit=False).run(x, y)
    assert result.timing["populations"] == 1 and len(result.summary) == 4  # λ and rate: per-member values
    grid = {"kind": ["narrow", "wide"], "width": [48, 64], "l2": [1e-4], "rate": [0.1]}
    result = reglab.Sweep(hm, grid=grid, cv=2, epochs=1, seed=0, refit=False).run(x, y)
    assert result.timing["populations"] == 3  # narrow (width unused, twice), wide 48, wide 64
    study = reglab.search.Optuna(hm.space, n_trials=4, population=4, sampler="random")  # or as an Optuna study
    result = reglab.Sweep(hm, search=study, cv=2, epochs=1, seed=0, refit=False).run(x, y)
    assert len(result.summary) == 4 and set(hm.space) <= set(result.summary.columns)


def test_what_is_not_a_hypermodel_is_refused():
    with pytest.raises(ValueError, match=r"build\(hp\) function or a keras_tuner.HyperModel.*Received: hypermodel=3"):
        HyperModel(3)
    assert isinstance(
        HyperModel(
            kt.HyperModel.__new__(type("Mine", (kt.HyperModel,), {"build": lambda self, hp: build_model(hp)}))
        ).space,
        dict,
    )
