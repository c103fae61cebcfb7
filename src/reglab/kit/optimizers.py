"""Exact sparsity: proximal steps after the optimizer's update.

An L1 penalty in the loss never makes a weight exactly 0 with SGD or Adam — its gradient λ·sign(w)
only pushes weights back and forth across 0 (keras-team/keras#18388). The proximal gradient method
instead takes the optimizer's step on the prediction loss, then applies the penalty's proximal
operator, which sets small weights to exactly 0:

- L1 (soft-thresholding): `w ← sign(w)·max(|w| − τ, 0)`;
- group lasso (whole units): `w_g ← w_g·max(0, 1 − τ/‖w_g‖)`, a group per output unit / filter
  (as `reglab.kit.regularizers.GroupLasso`); both together is the sparse group lasso, whose proximal
  operator is exactly L1 first, then group shrinkage.

`τ = λ·η` where η is the step the optimizer just took per unit of gradient: the learning rate for
SGD (so proximal SGD is ISTA, which converges to the exact L1 solution — tested against scikit-learn's
Lasso); `α_t/(√v + ε)` per coordinate for Adam/AdamW (`α_t = lr·√(1−β₂ᵗ)/(1−β₁ᵗ)`, Keras's own
update), `lr/√(v + ε)` for RMSprop: the proximal step in the optimizer's diagonal metric. For group
shrinkage under an adaptive optimizer the group's mean step is used (the exact operator in a
non-uniform metric has no closed form). With SGD momentum the threshold is lr·λ (an approximation).

λ means what Keras means: `Proximal(opt, l1=λ)` minimizes the same `mean loss + λ·Σ|w|` as a
`L1(λ)` regularizer would — so do not also put that penalty in the model.

>>> import keras
>>> optimizer = Proximal(keras.optimizers.Adam(1e-3), l1=1e-4)   # model.compile(optimizer=optimizer, …)
>>> optimizer.l1, optimizer.weight_pattern
(0.0001, 'kernel$')

The alternative for exact zeros is FTRL (`keras.optimizers.Ftrl(l1_regularization_strength=…)`),
whose own L1 has a different scale (per-coordinate accumulated gradients, not the mean loss).
"""

from __future__ import annotations

import re

import keras
from keras import ops

from reglab import validation


@keras.saving.register_keras_serializable(package="reglab")
class Proximal(keras.optimizers.Optimizer):
    """`inner` optimizer followed by the proximal step of `l1·Σ|w| + group_lasso·Σ_g‖w_g‖₂` on the
    variables whose path matches the regular expression `weights` (default: every kernel)."""

    def __init__(self, inner, l1=0.0, group_lasso=0.0, weights="kernel$", name=None, **kwargs):
        if kwargs:
            raise ValueError(
                f"Proximal takes no optimizer arguments of its own (set them on `inner`). Received: "
                f"{', '.join(f'{k}={v!r}' for k, v in kwargs.items())}"
            )
        inner = keras.optimizers.get(inner)
        kind = type(inner).__name__
        if kind not in ("SGD", "Adam", "AdamW", "RMSprop"):
            raise ValueError(f"Proximal steps are defined for SGD, Adam, AdamW and RMSprop. Received: inner={kind}")
        l1 = validation.non_negative_float(l1, "l1")
        group_lasso = validation.non_negative_float(group_lasso, "group_lasso")
        try:
            pattern = re.compile(weights)
        except (re.error, TypeError):
            raise ValueError(
                f"`weights` must be a regular expression over variable paths. Received: weights={weights!r}"
            ) from None
        super().__init__(learning_rate=0.0, name=name or f"proximal_{inner.name}")
        self.inner, self.l1, self.group_lasso = inner, l1, group_lasso
        self._pattern, self.weight_pattern = pattern, weights

    def build(self, var_list):
        self.inner.build(var_list)
        super().build(var_list)

    @property
    def variables(self):
        return self._variables + self.inner.variables

    @property
    def learning_rate(self):
        return self.inner.learning_rate

    @learning_rate.setter
    def learning_rate(self, value):
        if hasattr(self, "inner"):  # the base class sets it once, before `inner` exists
            self.inner.learning_rate = value

    @property
    def iterations(self):
        return self.inner.iterations

    def apply(self, grads, trainable_variables=None):
        if not self.built:
            with keras.name_scope(self.name, caller=self):
                self.build(trainable_variables)
            self.built = True
        variables = trainable_variables if trainable_variables is not None else self._trainable_variables
        variables = list(variables)
        learning_rate = ops.cast(self.inner._get_current_learning_rate(), "float32")  # the step being taken
        self.inner.apply(grads, variables)
        for variable in variables:
            if self._pattern.search(variable.path) and (self.l1 or self.group_lasso):
                # the value, not the variable: JAX's `ones_like` takes no Keras variable
                variable.assign(self.prox(variable.value, self._step(variable, learning_rate)))

    def _step(self, variable, learning_rate):
        """η: the step per unit of gradient the inner optimizer just took (a scalar or per coordinate)."""
        inner, kind = self.inner, type(self.inner).__name__
        if kind == "SGD":
            return learning_rate
        v = inner._velocities[inner._get_variable_index(variable)]
        if kind == "RMSprop":
            return learning_rate / ops.sqrt(v + inner.epsilon)
        t = ops.cast(inner.iterations, "float32")  # already counts this step
        alpha = learning_rate * ops.sqrt(1 - ops.power(inner.beta_2, t)) / (1 - ops.power(inner.beta_1, t))
        return alpha / (ops.sqrt(v) + inner.epsilon)

    def prox(self, w, step):
        """The proximal operator of the penalty at `w` for the step `step` (pure)."""
        if self.l1:
            w = ops.sign(w) * ops.maximum(ops.abs(w) - self.l1 * step, 0.0)
        if self.group_lasso:
            reduce = tuple(range(len(w.shape) - 1))
            norms = ops.sqrt(ops.sum(ops.square(w), axis=reduce, keepdims=True))
            tau = self.group_lasso * (ops.mean(step * ops.ones_like(w), axis=reduce, keepdims=True))
            scale = ops.maximum(1.0 - tau / ops.maximum(norms, 1e-30), 0.0)
            w = w * ops.where(norms > 0, scale, 0.0)
        return w

    def finalize_variable_values(self, var_list):
        self.inner.finalize_variable_values(var_list)

    def get_config(self):
        return {
            "name": self.name,
            "inner": keras.optimizers.serialize(self.inner),
            "l1": self.l1,
            "group_lasso": self.group_lasso,
            "weights": self.weight_pattern,
        }

    @classmethod
    def from_config(cls, config, custom_objects=None):
        config = dict(config)
        inner = keras.optimizers.deserialize(config.pop("inner"), custom_objects=custom_objects)
        return cls(inner, **config)
