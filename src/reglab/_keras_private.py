"""Every use reglab makes of Keras's private API, in one place.

Keras 3 has no public way to do these (each line says what it is for); a Keras release that changes one
breaks it here, and the test named beside it says so. Checked on Keras `CHECKED_ON` (pyproject allows
keras>=3.10,<4). `reglab._lazy_tensorflow` patches one more private function, at import time, for its own
reason (keeping TensorFlow out of a JAX process).
"""

from __future__ import annotations

CHECKED_ON = "3.15.1"


def layers(model, include_self: bool = False):
    """Every layer of `model`, nested ones included (`Model._flatten_layers`; tests/kit/test_regularize.py)."""
    return model._flatten_layers(include_self=include_self)


def compile_loss(model, y, y_pred, sample_weight=None):
    """The compiled loss alone — no regularization penalty — as `compile` built it (`Trainer._compile_loss`),
    or None for a model compiled without a loss (tests/kit/test_ledger.py, tests/test_sweep.py)."""
    loss = getattr(model, "_compile_loss", None)
    return None if loss is None else loss(y, y_pred, sample_weight)


def compute_loss_has_training_arg(model) -> bool:
    """Whether the model's `compute_loss` takes `training` (a user's override may not)."""
    return model._compute_loss_has_training_arg


def set_compute_loss_has_training_arg(model, value: bool) -> None:
    model._compute_loss_has_training_arg = value


def metrics_list(model) -> list:
    """The list of metrics the compiled steps carry as state (`Trainer._metrics`): the ledger's sums are
    added to it while `fit` runs (tests/kit/test_ledger.py)."""
    return model._metrics


def symbolic_build(model, x, y) -> None:
    """Build the compiled loss, metrics and optimizer of a compiled model from one batch's shapes, without
    running a step (`Trainer._symbolic_build`; tests/engine/test_population.py)."""
    model._symbolic_build(data_batch=(x, y))


def metrics_result(model, metric_values) -> dict:
    """The model's metric results for the given values of its metric variables, statelessly
    (`StatelessScope` + `get_metrics_result`)."""
    import keras

    with keras.src.backend.StatelessScope(state_mapping=list(zip(model.metrics_variables, metric_values))):
        return dict(model.get_metrics_result())


def update_metrics_variables(model, metric_values, loss, x, y, y_pred, sample_weight):
    """One step's update of the metric variables, statelessly, as JAX's `train_step` does it
    (`JAXTrainer._update_metrics_variables`)."""
    return model._update_metrics_variables(metric_values, loss, x, y, y_pred, sample_weight)


def decays(optimizer, variable) -> bool:
    """Whether `optimizer` applies weight decay to `variable` (`exclude_from_weight_decay` and Keras's own
    rules: `BaseOptimizer._use_weight_decay`)."""
    return optimizer._use_weight_decay(variable)


def learning_rate_variable(optimizer):
    """The variable holding an optimizer's learning rate, or None when it is a schedule
    (`BaseOptimizer._learning_rate`)."""
    import keras

    rate = getattr(optimizer, "_learning_rate", None)
    return rate if isinstance(rate, keras.Variable) else None


def set_global_seed(seed: int) -> None:
    """Keras's global seed (and a fresh global seed generator) without `keras.utils.set_random_seed`, which
    imports TensorFlow whenever it is installed (~460 MB in a JAX process)."""
    from keras.src.backend.common import global_state
    from keras.src.random import seed_generator
    from keras.src.utils import rng_utils

    global_state.set_global_attribute(rng_utils.GLOBAL_RANDOM_SEED, seed)
    global_state.set_global_attribute(seed_generator.GLOBAL_SEED_GENERATOR, None)


def functional_class():
    """Keras's `Functional` model class (`regularize` rebuilds a functional model as one)."""
    from keras.src.models.functional import Functional

    return Functional
