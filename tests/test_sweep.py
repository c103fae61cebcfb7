"""Sweep end to end on real data: folds, summary statistics, selection, refit, test used once."""

import warnings

import keras
import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_breast_cancer, load_diabetes, load_digits

import reglab
from reglab.kit.regularizers import L2


@pytest.fixture(scope="module")
def cancer_raw():
    return load_breast_cancer(return_X_y=True)


def build_cancer(point):
    return keras.Sequential(
        [
            keras.Input((30,)),
            keras.layers.Dense(16, activation="relu", kernel_regularizer=L2(point["l2"]), name="hidden"),
            keras.layers.Dense(2, activation="softmax", name="output"),
        ]
    )


@pytest.fixture(scope="module")
def cancer_result(cancer_raw):
    x, y = cancer_raw
    sweep = reglab.Sweep(
        build_cancer,
        grid={"l2": [0.0, 1e-2, 3.0]},
        cv=3,
        epochs=3,
        test_size=0.2,
        standardize=True,
        learning_rate=3e-3,
        seed=0,
    )
    return sweep.run(x, y), x, y


def test_tables_have_one_row_per_member_epoch_and_per_member(cancer_result):
    result, _, _ = cancer_result
    assert len(result.epochs) == 3 * 3 * 3 and len(result.members) == 9 and len(result.summary) == 3
    assert set(result.epochs.columns[:6]) == {"member", "point", "fold", "repeat", "seed", "l2"}
    assert (result.members.status == "ok").all()
    assert result.members.member.is_unique and result.members.seed.nunique() == 9


def test_summary_is_mean_and_std_over_folds_and_best_is_the_lowest_mean(cancer_result):
    result, _, _ = cancer_result
    for _, row in result.summary.iterrows():
        folds = result.members[result.members.point == row.point]
        assert row.val_loss_mean == pytest.approx(folds.val_loss.mean())
        assert row.val_loss_std == pytest.approx(folds.val_loss.std(ddof=1))
        assert row.val_accuracy_mean == pytest.approx(folds.val_accuracy.mean())
        assert row.best_val_loss_mean == pytest.approx(folds.best_val_loss.mean())
        assert row.best_val_loss_mean <= row.val_loss_mean + 1e-12
    lowest = result.summary.loc[result.summary.val_loss_mean.idxmin()]
    assert result.best["point_id"] == lowest.point and result.best["params"] == {"l2": lowest.l2}
    assert list(result.summary["rank"]) == [1.0, 2.0, 3.0]
    strong = result.summary[result.summary.l2 == 3.0].iloc[0]
    assert strong["rank"] == 3  # λ=3 underfits badly on this data
    assert strong.train_penalty_mean > result.summary.train_penalty_mean.min()


def test_folds_are_stratified_disjoint_and_never_touch_the_test_set(cancer_result):
    result, x, y = cancer_result
    # recompute the plan's splits the way the sweep did and check their properties
    from reglab import data as D

    dataset = D.prepare(x, y)
    rest, test = D.split_test(dataset, 0.2, 0, True)
    splits = D.folds(dataset, rest, 3, 1, 0, True)
    assert len(test) == 114 and not set(test) & set(rest)
    overall = dataset.y[rest].mean()
    for _, _, train, val in splits:
        assert not set(train) & set(val) and not (set(train) | set(val)) & set(test)
        assert abs(dataset.y[val].mean() - overall) < 0.02  # stratified
    assert sorted(np.concatenate([val for *_, val in splits])) == sorted(rest)


def test_refit_model_takes_raw_inputs_and_reproduces_the_test_score(cancer_result):
    result, x, y = cancer_result
    from reglab import data as D

    dataset = D.prepare(x, y)
    _, test = D.split_test(dataset, 0.2, 0, True)
    predictions = result.model.predict(x[test], verbose=0)  # raw, unstandardized features
    assert np.mean(predictions.argmax(1) == y[test]) == pytest.approx(result.test["accuracy"])
    assert result.test["accuracy"] > 0.85 and result.test["loss"] < 0.6


@pytest.mark.slow
def test_plain_model_sweep_with_layer_groups_and_dropout():
    x, y = load_digits(return_X_y=True)
    x = (x / 16).astype("float32")
    base = keras.Sequential(
        [
            keras.Input((64,)),
            keras.layers.Dense(32, activation="relu", name="h1"),
            keras.layers.Dense(16, activation="relu", name="h2"),
            keras.layers.Dense(10, activation="softmax", name="out"),
        ],
        name="base",
    )
    sweep = reglab.Sweep(
        base,
        grid={"l2.early": [0.0, 1e-2], "dropout": [0.0, 0.3]},
        layer_groups={"early": ["h1"]},
        cv=0.25,
        epochs=2,
        seed=1,
    )
    result = sweep.run(x, y)
    penalties = [c for c in result.epochs.columns if c.startswith("penalty:")]
    assert penalties == ["penalty:base/h1/kernel"]  # only the early group is penalized
    by_point = result.epochs.groupby(["l2.early"])["penalty:base/h1/kernel"].max()
    assert by_point.loc[0.0] == 0.0 and by_point.loc[0.01] > 0
    assert len(result.summary) == 4 and result.test is None and result.model is not None


def test_staged_search_fixes_the_first_stage_best_for_the_second():
    x, y = load_diabetes(return_X_y=True)
    base = keras.Sequential([keras.Input((10,)), keras.layers.Dense(16, activation="relu"), keras.layers.Dense(1)])
    sweep = reglab.Sweep(
        base,
        stages=[{"l2": [0.0, 10.0]}, {"dropout": [0.0, 0.4]}],
        cv=0.25,
        epochs=3,
        standardize=True,
        learning_rate=1e-2,
    )
    result = sweep.run(x, y)
    stage2 = result.summary[result.summary["dropout"].notna()]
    assert len(stage2) == 2 and stage2["l2"].nunique() == 1
    stage1 = result.summary[result.summary["dropout"].isna()]
    assert stage2["l2"].iloc[0] == stage1.sort_values("val_loss_mean")["l2"].iloc[0]
    assert result.members.columns[5:7].tolist() == ["l2", "dropout"]


def test_random_search_and_refinement_add_points_reproducibly(cancer_raw):
    x, y = cancer_raw
    kwargs = dict(
        random={"l2": {"log_uniform": [1e-4, 1.0]}},
        n_trials=2,
        refine=1,
        refine_points=1,
        cv=0.3,
        epochs=2,
        standardize=True,
        refit=False,
        seed=5,
    )
    result = reglab.Sweep(build_cancer, **kwargs).run(x, y)
    sampled = reglab.search.space.random_points({"l2": {"log_uniform": [1e-4, 1.0]}}, 2, 5)
    assert {p["l2"] for p in sampled} <= set(result.summary.l2)  # the seeded samples were trained
    assert len(result.summary) == 3  # 2 sampled + 1 refined value
    assert result.timing["members"] == 3 and result.timing["populations"] == 2  # both rounds' training, summed
    refined = (set(result.summary.l2) - {p["l2"] for p in sampled}).pop()
    assert min(p["l2"] for p in sampled) / 10 < refined < max(p["l2"] for p in sampled) * 10


def test_failed_and_diverged_members_rank_last_with_a_warning(cancer_raw):
    x, y = cancer_raw

    def build(point):
        if point["kind"] == "broken":
            raise RuntimeError("this configuration cannot be built")
        model = build_cancer({"l2": 0.0})
        if point["kind"] == "nan":
            inputs = keras.Input((30,))
            model = keras.Model(inputs, model(keras.layers.Lambda(lambda t: t * float("nan"))(inputs)))
        return model

    sweep = reglab.Sweep(build, grid={"kind": ["fine", "broken", "nan"]}, cv=2, epochs=5, standardize=True, refit=False)
    with pytest.warns(
        RuntimeWarning, match="2 of 3 configurations were excluded from selection: 2 members failed, 2 diverged"
    ):
        result = sweep.run(x, y)
    status = result.members.groupby("kind").status.first()
    assert status.to_dict() == {"broken": "failed", "fine": "ok", "nan": "diverged"}
    assert result.best["params"] == {"kind": "fine"}
    assert result.summary["kind"].tolist()[0] == "fine" and result.summary["rank"].isna().sum() == 2
    assert "cannot be built" in result.members.set_index("kind").loc["broken"].iloc[0]["error"]


def test_all_members_failing_is_an_error(cancer_raw):
    x, y = cancer_raw

    def build(point):
        if point["l2"] > 0:
            raise RuntimeError("nope")
        return build_cancer(point)

    with pytest.raises(RuntimeError, match="Every configuration failed.*nope"):
        reglab.Sweep(build, grid={"l2": [1.0, 2.0]}, cv=2, epochs=1, refit=False).run(x, y)


def test_member_results_do_not_depend_on_execution_order(cancer_raw):
    x, y = cancer_raw
    a = reglab.Sweep(
        build_cancer, grid={"l2": [0.0, 0.1]}, cv=2, epochs=2, learning_rate=1e-2, standardize=True, refit=False
    ).run(x, y)
    b = reglab.Sweep(
        build_cancer, grid={"l2": [0.1, 0.0]}, cv=2, epochs=2, learning_rate=1e-2, standardize=True, refit=False
    ).run(x, y)
    columns = ["member", "epoch", "train_loss", "val_loss", "train_penalty"]
    left = a.epochs[columns].sort_values(["member", "epoch"]).reset_index(drop=True)
    right = b.epochs[columns].sort_values(["member", "epoch"]).reset_index(drop=True)
    pd.testing.assert_frame_equal(left, right)


def test_a_learning_rate_schedule_is_accepted_and_recorded_in_the_spec(cancer_raw):
    x, y = cancer_raw
    schedule = keras.optimizers.schedules.ExponentialDecay(1e-2, decay_steps=10, decay_rate=0.5)
    sweep = reglab.Sweep(
        build_cancer, grid={"l2": [0.0]}, cv=2, epochs=2, learning_rate=schedule, standardize=True, refit=False
    )
    assert sweep.spec()["learning_rate"]["class_name"] == "ExponentialDecay"
    assert (sweep.run(x, y).members.status == "ok").all()


@pytest.mark.tf_only
def test_on_tensorflow_the_reference_engine_fits_each_member_in_this_process(cancer_raw):
    """engine="reference": one `model.fit` per member, on this process's backend, no worker and no warning
    (the population engine's way from TensorFlow, a JAX worker, is tests/engine/test_executors.py's)."""
    x, y = cancer_raw
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        result = reglab.Sweep(
            build_cancer,
            grid={"l2": [0.0, 1e-2]},
            cv=2,
            epochs=1,
            standardize=True,
            refit=False,
            seed=0,
            engine="reference",
            gradients=32,
        ).run(x, y)
    assert (result.members.status == "ok").all() and len(result.members) == 4
    assert "executor" not in result.timing
    # seed 004's two gradients, through TensorFlow's tape: L2(λ)'s is 2λw, nothing where λ = 0
    kernel = next(c.split(":", 1)[1] for c in result.epochs.columns if c.startswith("grad_penalty:"))
    np.testing.assert_allclose(
        result.epochs[f"grad_penalty:{kernel}"], 2 * result.epochs["l2"] * result.epochs[f"l2:{kernel}"], rtol=1e-5
    )
    assert result.epochs[f"grad_loss:{kernel}"].gt(0).all()


def test_a_subclassed_model_that_has_not_seen_data_sweeps_with_the_loss_inferred(digits):
    """The output width that chooses the loss comes from one row when the model has no output shape yet."""
    from reglab import zoo

    x, y = digits
    result = reglab.Sweep(zoo.subclassed, grid={"l2": [0.0, 1e-3]}, cv=2, epochs=10, refit=False, seed=0).run(
        x[:400], y[:400]
    )
    assert len(result.summary) == 2 and result.members.val_accuracy.notna().all()


def _regression(point):
    return keras.Sequential([keras.Input((10,)), keras.layers.Dense(8, activation="relu"), keras.layers.Dense(1)])


def _logits(point):
    return keras.Sequential([keras.Input((30,)), keras.layers.Dense(8, activation="relu"), keras.layers.Dense(1)])


@pytest.mark.parametrize("task", ["regression, MAE loss, MSE metric", "binary logits", "a custom metric"])
def test_the_test_score_is_keras_compiled_loss_and_the_sweeps_metrics(task, cancer_raw):
    """The test set is scored by Keras's compiled loss (without the penalty) and the sweep's own metrics, in the
    units of the validation columns (standardized targets when the sweep standardizes them)."""
    if task.startswith("regression"):
        x, y = load_diabetes(return_X_y=True)
        build, settings = _regression, {"loss": "mean_absolute_error", "metrics": ["mean_squared_error"]}
    elif task == "binary logits":
        (x, y), build = cancer_raw, _logits
        settings = {"loss": keras.losses.BinaryCrossentropy(from_logits=True), "metrics": []}
    else:
        (x, y), build = cancer_raw, build_cancer
        settings = {"metrics": ["sparse_categorical_crossentropy", "accuracy"]}
    sweep = reglab.Sweep(
        build,
        grid={"l2": [0.0]},
        cv=2,
        epochs=2,
        test_size=0.25,
        standardize=True,
        learning_rate=1e-2,
        seed=0,
        **settings,
    )
    result = sweep.run(x, y)
    _, rest, test, _ = sweep.split(x, y)
    predicted = result.model.predict(x[test], verbose=0)  # the saved model: raw inputs, raw outputs
    if task.startswith("regression"):
        scale = y[rest].std()
        error = predicted[:, 0] - y[test]
        assert sorted(result.test) == ["loss", "mean_squared_error"]
        assert result.test["loss"] == pytest.approx(np.mean(np.abs(error)) / scale, rel=1e-4)  # MAE, not MSE
        assert result.test["mean_squared_error"] == pytest.approx(np.mean(error**2) / scale**2, rel=1e-4)
    elif task == "binary logits":
        expected = keras.losses.BinaryCrossentropy(from_logits=True)(y[test].astype("float32"), predicted)
        assert sorted(result.test) == ["loss"]
        assert result.test["loss"] == pytest.approx(float(expected), rel=1e-4)
    else:
        loss = float(keras.losses.SparseCategoricalCrossentropy()(y[test], predicted))
        assert sorted(result.test) == ["accuracy", "loss", "sparse_categorical_crossentropy"]
        assert result.test["loss"] == pytest.approx(loss, rel=1e-4)
        assert result.test["sparse_categorical_crossentropy"] == pytest.approx(loss, rel=1e-4)
        assert result.test["accuracy"] == pytest.approx(np.mean(predicted.argmax(axis=1) == y[test]))
