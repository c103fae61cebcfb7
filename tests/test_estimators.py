"""scikit-learn estimators (`reglab.sklearn`): scikit-learn's own checks, and `fit` choosing λ by CV as
`LassoCV` chooses α — in a Pipeline, cross_val_score, clone, a nested GridSearchCV, a pickle."""

from __future__ import annotations

import pickle
import warnings

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.datasets import load_diabetes, load_wine
from sklearn.model_selection import GridSearchCV, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import check_estimator

from reglab.sklearn import RegularizedClassifier, RegularizedRegressor

# one point on two folds: the checks are of the estimator's API, each fit a CV and a refit (~100 fits an estimator;
# a fit's cost is its compilations, so a second point costs ~15 % more time and proves nothing more here)
SMALL = {"grid": {"l2": [1e-3]}, "cv": 2, "epochs": 10, "learning_rate": 3e-2}


@pytest.mark.slow
@pytest.mark.parametrize("estimator", [RegularizedClassifier, RegularizedRegressor], ids=lambda e: e.__name__)
def test_scikit_learns_check_estimator_passes_every_check(estimator):
    """scikit-learn's whole estimator suite (its fits share the compiled programs of the shapes they repeat).
    Every check passes; one, array-API input, skips itself unless SCIPY_ARRAY_API is set. On its random-label
    data no configuration beats the constant predictor, and the estimators then fit that predictor (with a
    warning), as LassoCV's largest α would."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        results = check_estimator(estimator(**SMALL), on_fail=None)
    assert len(results) > 45, len(results)
    failed = {r["check_name"]: repr(r["exception"]) for r in results if r["status"] == "failed"}
    skipped = {r["check_name"] for r in results if r["status"] == "skipped"}
    assert not failed, failed
    assert skipped <= {"check_array_api_input"}, skipped


@pytest.fixture(scope="module")
def wine():
    return load_wine(return_X_y=True)


def test_fit_chooses_the_strength_by_cv_and_reports_it_in_scikit_learns_layout(wine):
    x, y = wine
    clf = RegularizedClassifier(grid={"l2": [0.0, 1e-3, 1.0]}, cv=3, epochs=20, learning_rate=1e-2).fit(x, y)
    results = pd.DataFrame(clf.cv_results_)
    assert list(results["param_l2"]) == [p["l2"] for p in clf.cv_results_["params"]]
    splits = results[[f"split{k}_test_score" for k in range(3)]]
    np.testing.assert_allclose(splits.mean(axis=1), results["mean_test_score"], rtol=1e-6)
    np.testing.assert_allclose(splits.std(axis=1, ddof=1), results["std_test_score"], rtol=1e-6)
    summary = clf.sweep_result_.summary  # the scores are minus the folds' validation loss
    np.testing.assert_allclose(results["mean_test_score"], -summary["val_loss_mean"], rtol=1e-6)
    assert clf.best_index_ == int(results["mean_test_score"].idxmax()) == int(results["rank_test_score"].idxmin())
    assert clf.best_params_ == clf.cv_results_["params"][clf.best_index_] == clf.sweep_result_.best["params"]
    assert clf.lambda_ == clf.best_params_["l2"] < 1.0  # λ = 1 drowns the data term: never the choice
    assert clf.best_score_ == results["mean_test_score"].max()
    assert clf.n_features_in_ == 13 and clf.classes_.tolist() == [0, 1, 2]
    assert clf.score(x, y) > 0.95
    probabilities = clf.predict_proba(x)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-12)
    assert (clf.classes_[probabilities.argmax(axis=1)] == clf.predict(x)).all()


def test_string_labels_a_pipeline_cross_val_score_clone_and_a_nested_grid_search(wine):
    x, y = wine
    names = np.array(["barolo", "grignolino", "barbera"])[y]
    estimator = RegularizedClassifier(grid={"l2": [0.0, 1e-3]}, cv=2, epochs=15, learning_rate=1e-2, standardize=False)
    pipeline = make_pipeline(StandardScaler(), estimator)
    scores = cross_val_score(pipeline, x, names, cv=2)
    assert scores.shape == (2,) and scores.min() > 0.85
    copy = clone(estimator)
    assert copy.get_params() == estimator.get_params() and not hasattr(copy, "model_")
    # nested CV: the outer search tunes what the inner one does not (the learning rate), each fit choosing λ
    outer = GridSearchCV(pipeline, {"regularizedclassifier__learning_rate": [1e-3, 1e-2]}, cv=2).fit(x, names)
    inner = outer.best_estimator_[-1]
    assert outer.best_params_["regularizedclassifier__learning_rate"] == 1e-2  # 15 epochs at 1e-3 underfit
    assert inner.best_params_["l2"] in (0.0, 1e-3) and set(inner.classes_) == set(names)
    assert outer.score(x, names) > 0.9


def test_a_pickle_holds_the_model_as_a_keras_file_and_predicts_the_same(wine):
    x, y = wine
    import keras

    built = keras.Sequential([keras.Input((13,)), keras.layers.Dense(16, activation="relu"), keras.layers.Dense(3)])
    clf = RegularizedClassifier(built, grid={"l1": [1e-4, 1e-3]}, cv=2, epochs=15, learning_rate=1e-2).fit(x, y)
    state = clf.__getstate__()
    assert type(state["model_"]).__name__ == type(state["model"]).__name__ == "_KerasBytes"  # Keras's saving
    assert state["model_"].data[:2] == b"PK"  # a .keras file is a zip
    again = pickle.loads(pickle.dumps(clf))
    np.testing.assert_array_equal(again.predict_proba(x), clf.predict_proba(x))
    assert again.best_params_ == clf.best_params_ and again.sweep_result_.model is again.model_
    assert isinstance(again.model, keras.Model) and clf.model is built  # the parameter is kept as given
    # a logits output (the last Dense has no activation): the probabilities are its softmax
    logits = clf.model_.predict(x[:5], verbose=0)
    expected = np.exp(logits - logits.max(axis=1, keepdims=True))
    np.testing.assert_allclose(clf.predict_proba(x[:5]), expected / expected.sum(axis=1, keepdims=True), rtol=1e-5)


def test_the_one_standard_error_rule_and_a_regressor_in_raw_units():
    x, y = load_diabetes(return_X_y=True)
    grid = {"l2": [1e-4, 1e-2, 1e-1]}
    best = RegularizedRegressor(grid=grid, cv=3, epochs=15, learning_rate=1e-2).fit(x, y)
    one_se = RegularizedRegressor(grid=grid, cv=3, epochs=15, learning_rate=1e-2, rule="1se").fit(x, y)
    assert one_se.best_params_ == one_se.sweep_result_.best_1se["params"]
    assert one_se.lambda_ >= best.lambda_  # the most regularized point within one SE of the best
    assert best.score(x, y) > 0.4 and abs(best.predict(x).mean() - y.mean()) < 0.1 * y.std()  # raw units


def test_when_nothing_beats_the_constant_predictor_that_predictor_is_the_fit():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(60, 4)), rng.integers(0, 2, 60)  # labels with nothing to learn
    with pytest.warns(UserWarning, match="no configuration beat the constant predictor"):
        clf = RegularizedClassifier(grid={"l2": [0.0]}, cv=2, epochs=2, seed=1).fit(x, y)
    assert clf.best_params_ is None and clf.lambda_ is None and clf.best_index_ is None
    np.testing.assert_allclose(clf.predict_proba(x), np.tile(np.bincount(y) / 60, (60, 1)), rtol=1e-6)
    assert len(clf.cv_results_["params"]) == 1 and clf.best_score_ < 0


def test_bad_settings_are_one_clear_error_at_fit(wine):
    x, y = wine
    with pytest.raises(ValueError, match=r"Received: rule='median'"):
        RegularizedClassifier(rule="median").fit(x, y)
    with pytest.raises(ValueError, match=r"Received: cv=0"):
        RegularizedClassifier(cv=0).fit(x, y)
    with pytest.raises(ValueError, match="n_samples=1"):
        RegularizedRegressor().fit(x[:1], y[:1])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # refused before any training: nothing to warn about
        with pytest.raises(ValueError, match=r"l3"):
            RegularizedClassifier(grid={"l3": [0.1]}).fit(x, y)
