"""After selection: the chosen point refit on all non-test data, scored once on the test set.

The test score is Keras's own: the refit model compiled with the sweep's loss and metrics, evaluated on
the test rows — standardized with the refit's training statistics when the sweep standardizes, so
that it is in the units of the validation columns it is compared with. `loss` is the prediction loss
alone (the compiled loss, without the penalty, as `val_loss`); every other entry is what Keras's
`evaluate` reports for the compiled metrics (per-output losses of a model with several outputs too).
"""

from __future__ import annotations

import numpy as np

from reglab import _keras_private as private
from reglab import engine
from reglab.data import rows
from reglab.engine.training import compile_metrics, scaling_of
from reglab.search import plan


def refit_and_test(
    best: dict, data, rest, test, training, make_model, seed: int, engine_name: str, store=None, executor=None
):
    """(refit model taking raw inputs, test scores) of the chosen point (`best`: `selection.best`'s), the test
    set used once: a run directory (`store`) that holds both for this point gives them back untouched."""
    import keras

    stored = store.read_json("test.json") if store else None
    if stored is not None and stored.get("point_id") == best["point_id"] and (store.path / "best_model.keras").exists():
        return keras.models.load_model(store.path / "best_model.keras", safe_mode=True), stored["test"]
    model, scaling = refit(best["params"], data, rest, test, training, make_model, seed, engine_name, executor)
    scores = test_scores(model, data, rest, test, training) if len(test) else None
    model = with_preprocessing(model, scaling, data)
    if store:
        store.save_model(model)
        record = {"point_id": best["point_id"], "params": best["params"], "test": scores, "n_test": int(len(test))}
        store.write_json("test.json", record)
    return model, scores


def refit(point: dict, data, rest, test, training, make_model, seed: int, engine_name: str, executor=None):
    """Train `point` on the rows `rest` (no validation): (the trained model, its standardization)."""
    member = plan.refit_member(point, rest, test, seed)
    trained = engine.train([member], data, training, make_model, engine=engine_name, executor=executor, validate=False)[
        "members"
    ][member.id]
    if trained.model is None:
        error = trained.rows["error"].iloc[0] if "error" in trained.rows else "?"
        raise RuntimeError(f"Refitting the selected point failed: {error}")
    return trained.model, scaling_of(data, rest, training.standardize)  # the statistics it was trained with


def test_scores(model, data, rest, test, training) -> dict:
    """Keras's compiled loss (no penalty) and metrics of the refit `model` on the test rows, in training units."""
    import keras

    scaling = scaling_of(data, rest, training.standardize)  # of the training rows: the test rows alone are read
    x, y = rows(data.x, test), rows(data.y, test)
    if scaling:
        x = (x - scaling["x_mean"]) / scaling["x_std"]
        if "y_mean" in scaling:
            y = (y - scaling["y_mean"]) / scaling["y_std"]
    try:  # the same layers and weights, compiled for scoring only
        scorer = keras.Model(model.inputs, model.outputs)
    except (AttributeError, ValueError, TypeError):  # a subclassed model has no symbolic inputs: itself
        scorer = model
    scorer.compile(loss=training.loss, metrics=compile_metrics(training.metrics), loss_weights=training.loss_weights)
    scores = scorer.evaluate(x, y, batch_size=max(1, min(len(test), 4096)), verbose=0, return_dict=True)
    prediction = scorer.predict(x, batch_size=max(1, min(len(test), 4096)), verbose=0)
    # `evaluate`'s loss adds the penalty; the compiled loss alone is the prediction loss
    scores["loss"] = prediction_loss(scorer, y, prediction)
    return {name: float(keras.ops.convert_to_numpy(value)) for name, value in scores.items()}


def prediction_loss(model, y, prediction):
    """`model`'s compiled loss alone (no penalty) of `prediction`. On JAX in one jitted program: run eagerly,
    each of its operations compiles on its own (0.4–0.6 s for a classifier's loss; jitted ~0.1 s, the
    same value); its per-output loss trackers update in a `StatelessScope` whose updates are dropped."""
    import keras

    if keras.backend.backend() != "jax":
        return private.compile_loss(model, y, prediction)
    import jax

    def loss(y, prediction):
        with keras.StatelessScope():
            return private.compile_loss(model, y, prediction)

    return jax.jit(loss)(y, prediction)


def with_preprocessing(model, scaling, data):
    """Fold the training statistics into the saved model so it takes raw inputs and gives raw outputs."""
    import keras

    if not scaling:
        return model
    inputs = keras.Input(model.input_shape[1:])
    x = keras.layers.Normalization(mean=scaling["x_mean"], variance=np.square(scaling["x_std"]), name="standardize")(
        inputs
    )
    outputs = model(x)
    if "y_mean" in scaling:
        outputs = keras.layers.Rescaling(scaling["y_std"], offset=scaling["y_mean"], name="unstandardize")(outputs)
    return keras.Model(inputs, outputs, name=f"{model.name}_raw_io")
