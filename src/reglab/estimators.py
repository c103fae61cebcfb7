"""scikit-learn estimators that choose their regularization by cross-validation inside `fit`, as `LassoCV` does.

`RegularizedClassifier` and `RegularizedRegressor` wrap a Keras model (a builder, a built model, or
`reglab.models.MLP` sized from the data at `fit`): `fit` runs a `reglab.Sweep` — every point of the grid on
every fold, trained as one population — chooses a point by the sweep's rule and refits it on all the data.
The fitted estimator answers `predict` (and `predict_proba`), holds `best_params_`, `cv_results_` in
scikit-learn's layout, `lambda_` (the chosen strength) and the whole `sweep_result_`, and works in a
`Pipeline`, `cross_val_score`, `clone` and an outer `GridSearchCV` (nested CV). It pickles through Keras's
own saving: the fitted model travels as a `.keras` file's bytes, never as a pickled closure.

How it differs from SciKeras's `KerasClassifier`: that one wraps one model with fixed settings, and tuning it
means an outer `GridSearchCV` that trains every (point, fold) one `model.fit` after another. Here the
regularization search *is* `fit`: its points and folds train together in one compiled population, with
Keras's meaning of λ, and the choice (best or one standard error) is made inside, like `LassoCV`'s α.

>>> from sklearn.datasets import load_wine
>>> from reglab.estimators import RegularizedClassifier
>>> x, y = load_wine(return_X_y=True)
>>> clf = RegularizedClassifier(grid={"l2": [0.0, 1e-3]}, cv=3, epochs=20, learning_rate=1e-2).fit(x, y)
>>> sorted(clf.best_params_), clf.lambda_ in (0.0, 1e-3), clf.classes_.tolist()
(['l2'], True, [0, 1, 2])
>>> clf.predict_proba(x[:2]).shape, round(float(clf.predict_proba(x[:2]).sum()), 6)
((2, 3), 2.0)
"""

from __future__ import annotations

import os
import tempfile
import warnings
from types import SimpleNamespace

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data

DEFAULT_GRID = {"l2": [0.0, 1e-4, 1e-3, 1e-2]}
_BLOCK = 64  # rows per prediction call


class _Regularized(BaseEstimator):
    """What the classifier and the regressor share: the parameters (stored as given, checked by `fit`), the
    sweep, the fitted attributes and pickling."""

    _task = None  # "classification" or "regression"

    def __init__(
        self,
        model=None,
        *,
        grid=None,
        random=None,
        n_trials=10,
        cv=5,
        rule="best",
        epochs=20,
        batch_size=32,
        optimizer="adam",
        learning_rate=1e-3,
        loss="auto",
        metrics="auto",
        layers="hidden",
        standardize=True,
        select="val_loss",
        prune=None,
        engine="auto",
        run_dir=None,
        seed=0,
    ):
        self.model = model
        self.grid = grid
        self.random = random
        self.n_trials = n_trials
        self.cv = cv
        self.rule = rule
        self.epochs = epochs
        self.batch_size = batch_size
        self.optimizer = optimizer
        self.learning_rate = learning_rate
        self.loss = loss
        self.metrics = metrics
        self.layers = layers
        self.standardize = standardize
        self.select = select
        self.prune = prune
        self.engine = engine
        self.run_dir = run_dir
        self.seed = seed

    # --- fitting -------------------------------------------------------------------------------

    def _sweep(self, n_features: int, n_outputs: int):
        """The `reglab.Sweep` that `fit` runs (its constructor checks every argument, before any work)."""
        from reglab import models
        from reglab.sweep import Sweep

        if self.rule not in ("best", "1se"):
            raise ValueError(f"`rule` is 'best' or '1se' (the one-standard-error rule). Received: rule={self.rule!r}")
        model = models.MLP(hidden=(32,)) if self.model is None else self.model
        if isinstance(model, models.MLP) and model.n_features is None:
            model = model.bind(n_features, n_outputs)  # sized from the data, as scikit-learn's own models are
        grid = self.grid if self.grid is not None or self.random is not None else DEFAULT_GRID
        return Sweep(
            model,
            grid=grid,
            random=self.random,
            n_trials=self.n_trials,
            cv=self.cv,
            epochs=self.epochs,
            batch_size=self.batch_size,
            optimizer=self.optimizer,
            learning_rate=self.learning_rate,
            loss=self.loss,
            metrics=self.metrics,
            layers=self.layers,
            standardize=self.standardize,
            select=self.select,
            prune=self.prune,
            engine=self.engine,
            refit=self.rule,  # the chosen point refit on all the data
            seed=self.seed,
        )

    def _fit(self, x, y, n_outputs: int):
        n = len(x)
        folds = self.cv if isinstance(self.cv, int) and not isinstance(self.cv, bool) else 2
        if n < max(folds, 2):
            raise ValueError(
                f"{folds}-fold cross-validation needs at least {max(folds, 2)} samples. Received: n_samples={n}"
            )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # points left out of selection: cv_results_ shows them
            warnings.filterwarnings("ignore", "reglab: no configuration could be chosen")  # said below, once
            result = self._sweep(x.shape[1], n_outputs).run(x, y, run_dir=self.run_dir, task=self._task)
        chosen = result.best if self.rule == "best" else result.best_1se
        self.sweep_result_ = result
        self.cv_results_, self.best_index_ = _cv_results(result, chosen, self.select)
        if chosen is None:  # members trained and none beat the constant predictor: it is what the CV found best
            warnings.warn(
                "reglab: no configuration beat the constant predictor on the validation folds; the fitted model is "
                "that constant predictor (as LassoCV's largest alpha gives). Train longer (`epochs`), raise "
                f"`learning_rate` or weaken the penalties. Received: epochs={self.epochs}, grid={self.grid}",
                UserWarning,
                stacklevel=3,
            )
            self.model_ = _constant_model(x.shape[1], y, n_outputs if self._task == "classification" else None)
            self.best_params_ = self.lambda_ = None
            baseline = result.summary["baseline_loss_mean"].dropna()
            self.best_score_ = -float(baseline.iloc[0]) if self.select == "val_loss" and len(baseline) else np.nan
            return self
        self.model_ = result.model
        self.best_params_ = dict(chosen["params"])
        self.lambda_ = _strength(self.best_params_)
        self.best_score_ = float(self.cv_results_["mean_test_score"][self.best_index_])
        return self

    def _outputs(self, x) -> np.ndarray:
        check_is_fitted(self, "model_")
        x = validate_data(self, x, reset=False, dtype=np.float32)
        # Every row through the same program shape (blocks of _BLOCK rows, the last one padded): a float32 matmul
        # of another number of rows can round differently, and a row's prediction must not depend on its company.
        padded = np.zeros((-(-len(x) // _BLOCK) * _BLOCK, *x.shape[1:]), dtype=np.float32)
        padded[: len(x)] = x
        out = self.model_.predict(padded, batch_size=_BLOCK, verbose=0)[: len(x)]
        return np.asarray(out, dtype=np.float64)

    # --- pickling through Keras's saving --------------------------------------------------------

    def __getstate__(self):
        state = dict(super().__getstate__())  # a copy: object.__getstate__ gives the live __dict__
        for key in ("model", "model_"):
            if _is_keras_model(state.get(key)):
                state[key] = _KerasBytes.of(state[key])
        if "sweep_result_" in state:  # its model is model_, saved once
            from dataclasses import replace

            state["sweep_result_"] = replace(state["sweep_result_"], model=None)
        return state

    def __setstate__(self, state):
        for key in ("model", "model_"):
            if isinstance(state.get(key), _KerasBytes):
                state[key] = state[key].load()
        if "sweep_result_" in state:
            state["sweep_result_"].model = state.get("model_")
        super().__setstate__(state)


class RegularizedClassifier(ClassifierMixin, _Regularized):
    """A Keras classifier whose regularization is chosen by k-fold CV inside `fit` (`reglab.estimators`).

    Args:
        model: a builder `point -> keras.Model`, a built Keras model (started from its weights), or a
            `reglab.models.MLP` (sized from the data); None is `MLP(hidden=(32,))`. The output is a softmax
            over the classes (or one sigmoid for two), or logits — "auto" losses read which.
        grid, random, n_trials: the points searched, as `reglab.Sweep` takes them; neither given is
            `{"l2": [0.0, 1e-4, 1e-3, 1e-2]}`.
        cv: folds (stratified) of the cross-validation, or a fraction for one hold-out split.
        rule: "best" (the best mean of `select`) or "1se" (the most regularized point within one standard
            error of it).
        epochs, batch_size, optimizer, learning_rate, loss, metrics, layers, standardize, select, prune,
        engine, seed: as `reglab.Sweep` takes them (`standardize` defaults to True here: features scaled by
            each training fold's statistics, folded into the refit model).
        run_dir: a run directory to write (tables, report.html) and resume; None keeps it in memory.

    Fitted attributes: `classes_`, `n_features_in_` (`feature_names_in_`), `best_params_`, `lambda_`,
    `best_score_`, `best_index_`, `cv_results_` (its `*_test_score` columns are `select` on the validation
    folds, negated where smaller is better, as scikit-learn's `neg_log_loss`), `model_` (the refit Keras
    model, taking raw features) and `sweep_result_` (the `reglab.SweepResult`). Where no configuration beats
    the constant predictor on the validation folds, `model_` is that predictor (class priors) as a Keras model,
    `best_params_`, `lambda_` and `best_index_` are None and `best_score_` is the predictor's, with a warning.
    """

    _task = "classification"

    def fit(self, X, y):
        X, y = validate_data(self, X, y, dtype=np.float32)
        check_classification_targets(y)
        self.classes_, encoded = np.unique(y, return_inverse=True)
        if len(self.classes_) < 2:
            raise ValueError(
                f"A classifier needs samples of at least 2 classes. Received: y with 1 class ({self.classes_[0]!r})"
            )
        return self._fit(X, encoded.astype(np.int64), len(self.classes_))

    def predict_proba(self, X) -> np.ndarray:
        """Each class's probability (columns in `classes_` order), in float64, each row summing to 1."""
        out = self._outputs(X)
        if _emits_logits(self.model_, X):
            out = _sigmoid(out) if out.shape[-1] == 1 else _softmax(out)
        if out.shape[-1] == 1:  # one sigmoid: the second class's probability
            out = np.concatenate([1.0 - out, out], axis=-1)
        out = np.clip(out, 0.0, None)
        return out / out.sum(axis=-1, keepdims=True)

    def predict_log_proba(self, X) -> np.ndarray:
        with np.errstate(divide="ignore"):
            return np.log(self.predict_proba(X))

    def predict(self, X) -> np.ndarray:
        probabilities = self.predict_proba(X)  # first: it says NotFittedError before fit
        return self.classes_[np.argmax(probabilities, axis=-1)]


class RegularizedRegressor(RegressorMixin, _Regularized):
    """A Keras regressor whose regularization is chosen by k-fold CV inside `fit` (`reglab.estimators`).

    The arguments and fitted attributes are `RegularizedClassifier`'s (without `classes_` and `predict_proba`);
    `standardize` (default True) scales the target too, and the refit model gives raw units back.

    >>> from sklearn.datasets import load_diabetes
    >>> x, y = load_diabetes(return_X_y=True)
    >>> reg = RegularizedRegressor(grid={"l2": [1e-4, 1e-2]}, cv=3, epochs=10, learning_rate=1e-2).fit(x, y)
    >>> reg.predict(x[:3]).shape, reg.score(x, y) > 0.3
    ((3,), True)
    """

    _task = "regression"

    def fit(self, X, y):
        X, y = validate_data(self, X, y, dtype=np.float32, y_numeric=True)
        return self._fit(X, y.astype(np.float32), 1)

    def predict(self, X) -> np.ndarray:
        return self._outputs(X).reshape(len(X) if hasattr(X, "__len__") else -1)


def _cv_results(result, chosen: dict, select: str) -> tuple[dict, int]:
    """scikit-learn's `cv_results_` from the sweep's tables: one entry per point (the summary's order), its
    folds' scores as `split{k}_test_score`; scores are `select`'s, negated where smaller is better."""
    from reglab.decide import selection

    summary, members = result.summary, result.members
    sign = -1.0 if selection.mode_for(select) == "min" else 1.0
    params = [selection.point_params(summary, row) for _, row in summary.iterrows()]
    names = sorted({k for p in params for k in p})
    results: dict = {"params": params}
    for name in names:
        column = np.ma.masked_all(len(params), dtype=object)
        for i, p in enumerate(params):
            if name in p:
                column[i] = p[name]
        results[f"param_{name}"] = column
    by_fold = members.pivot_table(index="point", columns="fold", values=select, aggfunc="mean", dropna=False)
    for k, fold in enumerate(by_fold.columns):  # a point's folds (repeats averaged), in the summary's order
        results[f"split{k}_test_score"] = sign * by_fold[fold].reindex(summary["point"]).to_numpy(dtype=float)
    results["mean_test_score"] = sign * summary[f"{select}_mean"].to_numpy(dtype=float)
    results["std_test_score"] = summary[f"{select}_std"].to_numpy(dtype=float)
    rank = summary["rank"].to_numpy(dtype=float)
    results["rank_test_score"] = np.where(np.isnan(rank), len(rank), rank).astype(np.int32)
    seconds = members.groupby("point")["seconds"]
    results["mean_fit_time"] = summary["point"].map(seconds.mean()).to_numpy(dtype=float)
    results["std_fit_time"] = summary["point"].map(seconds.std(ddof=0)).to_numpy(dtype=float)
    if chosen is None:
        return results, None
    return results, int(np.flatnonzero(summary["point"].to_numpy() == chosen["point_id"])[0])


def _constant_model(n_features: int, y: np.ndarray, n_classes: int | None):
    """The constant predictor as a Keras model taking the features: the class priors (a softmax of their
    logarithms) or the mean target — what `reglab.decide.baseline` compares every configuration with."""
    import keras

    if n_classes is None:
        units, activation, bias = 1, None, np.array([float(np.mean(y))])
    else:
        units, activation = n_classes, "softmax"
        bias = np.log(np.bincount(y, minlength=n_classes) / len(y))
    layer = keras.layers.Dense(units, activation=activation, kernel_initializer="zeros", name="constant")
    model = keras.Sequential([keras.Input((n_features,)), layer], name="constant_predictor")
    layer.bias.assign(bias.astype("float32"))
    return model


def _strength(params: dict):
    """The chosen point's penalty strength: its first strength key's value (`l2`, `l1`, …), else None."""
    from reglab.decide.selection import STRENGTH_KEYS

    return next((value for key, value in params.items() if key.split(".")[0] in STRENGTH_KEYS), None)


def _emits_logits(model, x) -> bool:
    """Whether the refit model's classifier outputs logits: the inner model's last layer says so (the refit
    model wraps it in a standardizing input layer)."""
    import keras

    from reglab.engine.training import emits_logits

    while model.layers and isinstance(model.layers[-1], keras.Model):
        model = model.layers[-1]
    return emits_logits(model, SimpleNamespace(x=np.asarray(x, dtype=np.float32)))


def _softmax(z: np.ndarray) -> np.ndarray:
    z = np.exp(z - z.max(axis=-1, keepdims=True))
    return z / z.sum(axis=-1, keepdims=True)


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-z))


def _is_keras_model(value) -> bool:
    import sys

    keras = sys.modules.get("keras")  # a model exists only where Keras was imported
    return keras is not None and isinstance(value, keras.Model)


class _KerasBytes:
    """A Keras model as the bytes of its `.keras` file (`model.save`): what a pickled estimator holds."""

    def __init__(self, data: bytes):
        self.data = data

    @classmethod
    def of(cls, model) -> "_KerasBytes":
        with tempfile.TemporaryDirectory() as folder:
            path = os.path.join(folder, "model.keras")
            model.save(path)
            with open(path, "rb") as file:
                return cls(file.read())

    def load(self):
        import keras

        with tempfile.TemporaryDirectory() as folder:
            path = os.path.join(folder, "model.keras")
            with open(path, "wb") as file:
                file.write(self.data)
            return keras.models.load_model(path, safe_mode=True)


__all__ = ["RegularizedClassifier", "RegularizedRegressor"]
