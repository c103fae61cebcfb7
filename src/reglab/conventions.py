"""λ conventions: Keras's strengths in other tools' terms, each stated with its assumptions.

reglab's λ is Keras's: `L2(λ)` adds `λ·Σw²` (`L1(λ)`: `λ·Σ|w|`) to the **mean** prediction loss of a
batch. Other tools sum instead of averaging, halve the squared norm, put the strength on the data
term (`C`), or decay the weights outside the loss. Every function here converts one such convention,
says under which assumptions the two objectives have the same minimizer, and is checked numerically
in `tests/test_conventions.py` (mostly through optimality conditions at the other tool's solution).

Notation: `n` training samples, `B` batch size, Keras loss `mse` = mean of squared errors and
`sparse_categorical_crossentropy` / `binary_crossentropy` = mean negative log-likelihood.

>>> ridge_alpha(0.01, n=400)          # sklearn Ridge sums squared errors: α = n·λ
4.0
>>> lasso_alpha(0.01)                 # sklearn Lasso: 1/(2n)·RSS + α‖w‖₁: α = λ/2
0.005
>>> logistic_C(0.01, n=400)           # LogisticRegression: C·Σ log-loss + ½‖w‖²: C = 1/(2nλ)
0.125
>>> mlp_alpha(1e-3, batch_size=32)    # MLPClassifier: α/(2B)·Σw² on each batch: α = 2Bλ
0.064
"""

from __future__ import annotations

from reglab import validation

__all__ = [
    "from_tf_nn_l2_loss",
    "to_tf_nn_l2_loss",
    "ridge_alpha",
    "l2_from_ridge_alpha",
    "lasso_alpha",
    "l1_from_lasso_alpha",
    "sklearn_elastic_net",
    "from_sklearn_elastic_net",
    "glmnet",
    "logistic_C",
    "l2_from_logistic_C",
    "logistic_C_l1",
    "mlp_alpha",
    "coupled_weight_decay",
    "decoupled_weight_decay",
    "gaussian_prior_l2",
    "laplace_prior_l1",
]


def _strength(value, name):
    return validation.non_negative_float(value, name)


def _count(value, name) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(
            f"Invalid value for argument `{name}`: expected a positive integer. Received: {name}={value!r}"
        )
    return value


def _positive(value, name) -> float:
    value = _strength(value, name)
    if value == 0:
        raise ValueError(f"Invalid value for argument `{name}`: expected a positive number. Received: {name}={value!r}")
    return value


# --- TensorFlow -----------------------------------------------------------------------------------


def from_tf_nn_l2_loss(coefficient: float) -> float:
    """`loss + c·tf.nn.l2_loss(w)` (which is `Σw²/2`) is `L2(c/2)`.

    >>> from_tf_nn_l2_loss(0.01)
    0.005
    """
    return _strength(coefficient, "coefficient") / 2


def to_tf_nn_l2_loss(l2: float) -> float:
    """The coefficient of `tf.nn.l2_loss(w)` that equals `L2(l2)`: `2·l2`."""
    return 2 * _strength(l2, "l2")


# --- scikit-learn linear models (loss "mse" in Keras, full-batch or mini-batch: the mean is the same) --


def ridge_alpha(l2: float, n: int) -> float:
    """scikit-learn `Ridge(alpha)` minimizes `‖y − Xw‖² + α‖w‖²` (a sum); Keras minimizes
    `1/n·‖y − Xw‖² + λ‖w‖²`. Multiply by n: `α = n·λ`. The intercept is unpenalized in both."""
    return _count(n, "n") * _strength(l2, "l2")


def l2_from_ridge_alpha(alpha: float, n: int) -> float:
    """The inverse of `ridge_alpha`: `λ = α/n`."""
    return _strength(alpha, "alpha") / _count(n, "n")


def lasso_alpha(l1: float) -> float:
    """scikit-learn `Lasso(alpha)` minimizes `1/(2n)·‖y − Xw‖² + α‖w‖₁`; Keras `1/n·‖y − Xw‖² + λ‖w‖₁`.
    Halve the Keras objective: `α = λ/2` (independent of n)."""
    return _strength(l1, "l1") / 2


def l1_from_lasso_alpha(alpha: float) -> float:
    """The inverse of `lasso_alpha`: `λ = 2α`."""
    return 2 * _strength(alpha, "alpha")


def sklearn_elastic_net(l1: float, l2: float) -> tuple[float, float]:
    """`(alpha, l1_ratio)` of scikit-learn's `ElasticNet` (and glmnet's gaussian `(lambda, alpha)`)
    equal to Keras `L1L2(l1, l2)` on `mse`: sklearn minimizes `1/(2n)·RSS + α·ρ‖w‖₁ + α(1−ρ)/2·‖w‖²`,
    so halving the Keras objective gives `α·ρ = l1/2`, `α(1−ρ) = l2`.

    >>> sklearn_elastic_net(0.03, 0.035)   # reglab ElasticNet(0.1, 0.3) = L1L2(0.03, 0.035)
    (0.05, 0.3)
    """
    l1, l2 = _strength(l1, "l1"), _strength(l2, "l2")
    alpha = l1 / 2 + l2
    if alpha == 0:
        return 0.0, 0.0
    return round(alpha, 15), round((l1 / 2) / alpha, 15)


def from_sklearn_elastic_net(alpha: float, l1_ratio: float) -> tuple[float, float]:
    """`(l1, l2)` of Keras `L1L2` equal to scikit-learn `ElasticNet(alpha, l1_ratio)` on `mse`:
    `l1 = 2·α·ρ`, `l2 = α(1−ρ)` — reglab's `ElasticNet(2·alpha, l1_ratio)`.

    >>> from_sklearn_elastic_net(0.05, 0.3)
    (0.03, 0.035)
    """
    alpha, ratio = _strength(alpha, "alpha"), validation.fraction(l1_ratio, "l1_ratio")
    return round(2 * alpha * ratio, 15), round(alpha * (1 - ratio), 15)


def glmnet(l1: float, l2: float, family: str = "gaussian") -> tuple[float, float]:
    """glmnet's `(lambda, alpha)` equal to Keras `L1L2(l1, l2)`. glmnet minimizes
    `−loglik/n + λ[(1−α)/2·‖w‖² + α‖w‖₁]` where for `family="gaussian"` `−loglik/n` is `RSS/(2n)`
    (half of Keras's `mse`: as `sklearn_elastic_net`) and for `"binomial"` it is the mean log-loss
    (exactly Keras's `binary_crossentropy`): `λα = l1`, `λ(1−α)/2 = l2`.

    >>> glmnet(0.03, 0.035, "binomial")
    (0.1, 0.3)
    """
    if family == "gaussian":
        return sklearn_elastic_net(l1, l2)
    if family != "binomial":
        raise ValueError(
            f"Invalid value for argument `family`: expected 'gaussian' or 'binomial'. Received: family={family!r}"
        )
    l1, l2 = _strength(l1, "l1"), _strength(l2, "l2")
    lam = l1 + 2 * l2
    return (round(lam, 15), round(l1 / lam, 15)) if lam else (0.0, 0.0)


def logistic_C(l2: float, n: int) -> float:
    """scikit-learn `LogisticRegression(C, penalty="l2")` minimizes `C·Σ log-loss + ½‖w‖²`; Keras
    `mean log-loss + λ‖w‖²`. Divide by n·C: `λ = 1/(2nC)`, so `C = 1/(2nλ)`. Intercept unpenalized."""
    return 1.0 / (2 * _count(n, "n") * _positive(l2, "l2"))


def l2_from_logistic_C(C: float, n: int) -> float:
    """The inverse of `logistic_C`: `λ = 1/(2nC)`."""
    return 1.0 / (2 * _count(n, "n") * _positive(C, "C"))


def logistic_C_l1(l1: float, n: int) -> float:
    """`LogisticRegression(C, penalty="l1")`: `C·Σ log-loss + ‖w‖₁` ⇒ `C = 1/(n·λ)`."""
    return 1.0 / (_count(n, "n") * _positive(l1, "l1"))


def mlp_alpha(l2: float, batch_size: int) -> float:
    """scikit-learn's `MLPClassifier/MLPRegressor(alpha)` adds `α/(2B)·Σw²` to each batch's mean
    loss (B: that batch's size; it also penalizes the output layer); Keras `L2(λ)` adds `λ·Σw²`:
    `α = 2·B·λ`."""
    return 2.0 * _count(batch_size, "batch_size") * _strength(l2, "l2")


# --- weight decay --------------------------------------------------------------------------------


def coupled_weight_decay(l2: float) -> float:
    """PyTorch `SGD/Adam(weight_decay=wd)` adds `wd·w` to the gradient, which is the gradient of
    `wd/2·Σw²`: `wd = 2λ` gives exactly `L2(λ)`, with any optimizer (the decay goes through momentum
    and Adam's scaling like any gradient)."""
    return 2 * _strength(l2, "l2")


def decoupled_weight_decay(l2: float, optimizer: str = "sgd") -> float:
    """Keras `AdamW/SGD(weight_decay=wd)` and PyTorch `AdamW` shrink `w ← w − lr·wd·w` outside the
    gradient (Loshchilov & Hutter). Only for plain SGD without momentum is that the L2 gradient step
    `w ← w − lr·2λ·w`: `wd = 2λ`. With Adam (or momentum) no `wd` reproduces `L2(λ)` — the decay is
    not rescaled by the adaptive denominator — so this raises for other optimizers.

    >>> decoupled_weight_decay(5e-4)
    0.001
    """
    if optimizer != "sgd":
        raise ValueError(
            "Decoupled weight decay equals an L2 penalty only for plain SGD (no momentum); with "
            f"adaptive optimizers it is a different regularizer. Received: optimizer={optimizer!r}"
        )
    return 2 * _strength(l2, "l2")


# --- Bayesian priors (MAP estimation) -----------------------------------------------------------------


def gaussian_prior_l2(sigma: float, n: int, noise_variance: float | None = None) -> float:
    """The `L2(λ)` whose minimizer is the MAP estimate under `w ~ N(0, σ²)`. With a log-loss
    (cross-entropy) the negative log-posterior is `Σ NLL + Σw²/(2σ²)`; dividing by n gives Keras's
    objective with `λ = 1/(2nσ²)`. With `mse` and Gaussian noise of variance τ² (`noise_variance`),
    `NLL = RSS/(2τ²)`, so `λ = τ²/(nσ²)`.

    >>> gaussian_prior_l2(sigma=1.0, n=500)
    0.001
    """
    sigma, n = _positive(sigma, "sigma"), _count(n, "n")
    if noise_variance is None:
        return 1.0 / (2 * n * sigma**2)
    return _positive(noise_variance, "noise_variance") / (n * sigma**2)


def laplace_prior_l1(scale: float, n: int, noise_variance: float | None = None) -> float:
    """The `L1(λ)` of the MAP estimate under a Laplace prior `p(w) ∝ exp(−|w|/b)`: `λ = 1/(n·b)` with a
    log-loss, `λ = 2τ²/(n·b)` with `mse` and noise variance τ².

    >>> laplace_prior_l1(scale=0.1, n=1000)
    0.01
    """
    scale, n = _positive(scale, "scale"), _count(n, "n")
    if noise_variance is None:
        return 1.0 / (n * scale)
    return 2 * _positive(noise_variance, "noise_variance") / (n * scale)
