"""The constant predictor: the validation loss a model that ignores its inputs would get.

A model that does no better than this has learned nothing usable from the features, however its
other numbers look (a blown-up network can reach 98% accuracy with a cross-entropy of 1e12). The
baseline is computed per fold from the data alone, in the units of the fold's `val_loss`:

- cross-entropy (sparse categorical or binary): predict the training fold's class frequencies
  (the priors) for every validation example; probabilities are clipped to [1e-7, 1 − 1e-7] as Keras
  clips them, so a class absent from the training fold costs −log(1e-7) ≈ 16.1, not infinity;
- mean squared error: predict the training fold's mean target; mean absolute error: its median
  (the best constant for each). With `standardize`, pass the standardized targets (the training
  fold's mean and std), so the baseline is in the standardized units the sweep reports.

Other losses have no baseline here (NaN): nothing is compared.

>>> import numpy as np
>>> loss, predictor = constant_loss(np.array([0, 0, 1, 2]), np.array([0, 1]), "sparse_categorical_crossentropy")
>>> round(loss, 4), predictor  # priors (1/2, 1/4, 1/4): −(log 1/2 + log 1/4) / 2
(1.0397, 'class priors')
"""

from __future__ import annotations

import math

import numpy as np

EPSILON = 1e-7  # keras.config.epsilon(): the clipping of probabilities in Keras's cross-entropies

CATEGORICAL = ("sparse_categorical_crossentropy",)
BINARY = ("binary_crossentropy", "bce")
SQUARED = ("mean_squared_error", "mse")
ABSOLUTE = ("mean_absolute_error", "mae")


def loss_name(loss) -> str | None:
    """A loss given as a name or a Keras loss object, as the name the table above uses (None if unknown)."""
    name = loss if isinstance(loss, str) else getattr(loss, "name", None)
    return name.lower() if isinstance(name, str) else None


def constant_loss(y_train, y_val, loss, n_classes: int | None = None) -> tuple[float, str]:
    """(validation loss of the best constant prediction fitted on `y_train`, what that prediction is).

    Returns `(nan, "")` for a loss without a known constant predictor.
    """
    name = loss_name(loss)
    y_train, y_val = np.asarray(y_train).ravel(), np.asarray(y_val).ravel()
    if name in CATEGORICAL:
        labels = y_train.astype(np.int64)
        k = max(int(n_classes or 0), int(labels.max()) + 1, int(y_val.max()) + 1)
        priors = np.bincount(labels, minlength=k) / len(labels)
        p = np.clip(priors[y_val.astype(np.int64)], EPSILON, 1 - EPSILON)
        return float(-np.mean(np.log(p))), "class priors"
    if name in BINARY:
        p = float(np.clip(np.mean(y_train), EPSILON, 1 - EPSILON))
        y = y_val.astype(np.float64)
        return float(-np.mean(y * math.log(p) + (1 - y) * math.log(1 - p))), "class priors"
    if name in SQUARED:
        return float(np.mean(np.square(y_val - np.mean(y_train)))), "training mean"
    if name in ABSOLUTE:
        return float(np.mean(np.abs(y_val - np.median(y_train)))), "training median"
    return math.nan, ""


def for_member(member, data, training) -> tuple[float, str]:
    """`constant_loss` on a member's fold (`reglab.search.plan.Member`): its targets are standardized as the
    engines' (`fold_targets`), so with `standardize` a regression baseline is in the units of `val_loss`.
    A model with several outputs has no constant predictor here: (NaN, "")."""
    from reglab.engine.training import fold_targets

    if data.task == "multi-output":
        return math.nan, ""
    y_train, y_val = fold_targets(data, member.train, member.val, training.standardize)
    return constant_loss(y_train, y_val, training.loss, data.n_classes if data.task == "classification" else None)
