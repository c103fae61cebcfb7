"""Every λ conversion in reglab.conventions, checked numerically against the other tool.

Linear models: the other tool's solution must satisfy the optimality conditions of the Keras
objective with the converted λ — and must fail them with the naive conversion (so the check can fail).
"""

import keras
import numpy as np
import pytest
import tensorflow as tf
from sklearn.datasets import load_breast_cancer, load_diabetes
from sklearn.linear_model import ElasticNet, Lasso, LogisticRegression, Ridge
from sklearn.preprocessing import StandardScaler

from reglab import conventions as C


def diabetes():
    x, y = load_diabetes(return_X_y=True)
    x = StandardScaler().fit_transform(x)
    return x - x.mean(0), (y - y.mean()) / y.std()


def cancer():
    x, y = load_breast_cancer(return_X_y=True)
    return StandardScaler().fit_transform(x), y.astype(float)


def mse_gradient(x, y, w):
    """∇ of Keras's `mse` (mean over n) at w (no intercept: the data are centred)."""
    return 2 / len(y) * x.T @ (x @ w - y)


def kkt_violation(grad_smooth, w, l1):
    """How far w is from 0 ∈ ∇smooth + l1·∂‖w‖₁ (relative to the gradient's scale)."""
    nonzero = w != 0
    v = np.where(nonzero, grad_smooth + l1 * np.sign(w), np.maximum(np.abs(grad_smooth) - l1, 0))
    return np.abs(v).max() / max(np.abs(grad_smooth).max(), 1e-12)


@pytest.mark.tf_only  # tf.nn's own convention, on TensorFlow tensors
def test_tf_nn_l2_loss():
    w = tf.constant([[3.0, -4.0], [1.0, 0.5]])
    assert float(0.02 * tf.nn.l2_loss(w)) == pytest.approx(float(keras.regularizers.L2(C.from_tf_nn_l2_loss(0.02))(w)))
    assert C.to_tf_nn_l2_loss(C.from_tf_nn_l2_loss(0.02)) == pytest.approx(0.02)


@pytest.mark.parametrize("l2", [1e-3, 1e-1])
def test_ridge_alpha(l2):
    x, y = diabetes()
    for alpha, should_hold in ((C.ridge_alpha(l2, len(y)), True), (l2, False)):
        w = Ridge(alpha=alpha, fit_intercept=False, solver="cholesky").fit(x, y).coef_
        residual = np.abs(mse_gradient(x, y, w) + 2 * l2 * w).max() / np.abs(mse_gradient(x, y, 0 * w)).max()
        assert (residual < 1e-8) == should_hold, residual
    assert C.l2_from_ridge_alpha(C.ridge_alpha(l2, 300), 300) == pytest.approx(l2)


@pytest.mark.parametrize("l1", [1e-2, 1e-1])
def test_lasso_alpha(l1):
    x, y = diabetes()
    for alpha, should_hold in ((C.lasso_alpha(l1), True), (l1, False)):
        w = Lasso(alpha=alpha, fit_intercept=False, tol=1e-12, max_iter=100_000).fit(x, y).coef_
        assert (w == 0).any() and (w != 0).any()  # both branches of the subgradient are exercised
        assert (kkt_violation(mse_gradient(x, y, w), w, l1) < 1e-6) == should_hold
    assert C.l1_from_lasso_alpha(C.lasso_alpha(l1)) == pytest.approx(l1)


def test_sklearn_elastic_net_and_glmnet_gaussian():
    x, y = diabetes()
    l1, l2 = 0.03, 0.035
    alpha, ratio = C.sklearn_elastic_net(l1, l2)
    assert (alpha, ratio) == C.glmnet(l1, l2, "gaussian") and C.from_sklearn_elastic_net(alpha, ratio) == (l1, l2)
    w = ElasticNet(alpha=alpha, l1_ratio=ratio, fit_intercept=False, tol=1e-12, max_iter=100_000).fit(x, y).coef_
    assert kkt_violation(mse_gradient(x, y, w) + 2 * l2 * w, w, l1) < 1e-6
    naive = (
        ElasticNet(alpha=l1 + l2, l1_ratio=l1 / (l1 + l2), fit_intercept=False, tol=1e-12, max_iter=100_000)
        .fit(x, y)
        .coef_
    )
    assert kkt_violation(mse_gradient(x, y, naive) + 2 * l2 * naive, naive, l1) > 1e-3


def log_loss_gradient(x, y, w, b):
    """∇ (w, b) of Keras's `binary_crossentropy` (mean) for a logistic model."""
    p = 1 / (1 + np.exp(-(x @ w + b)))
    return x.T @ (p - y) / len(y), np.mean(p - y)


def test_logistic_C_l2():
    x, y = cancer()
    l2 = 1e-2
    assert C.l2_from_logistic_C(C.logistic_C(l2, len(y)), len(y)) == pytest.approx(l2)
    for c, should_hold in ((C.logistic_C(l2, len(y)), True), (1 / l2, False)):
        model = LogisticRegression(C=c, tol=1e-12, max_iter=10_000).fit(x, y)
        gw, gb = log_loss_gradient(x, y, model.coef_[0], model.intercept_[0])
        residual = np.abs(gw + 2 * l2 * model.coef_[0]).max() / np.abs(gw).max()
        assert (residual < 1e-4) == should_hold, residual
        assert abs(gb) < 1e-6  # the intercept is unpenalized in both


def sparse_logistic(C, l1_ratio):
    """An elastic-net logistic regression, spelled for the installed scikit-learn (1.8 deprecated `penalty`)."""
    import sklearn

    major, minor = (int(p) for p in sklearn.__version__.split(".")[:2])
    penalty = {} if (major, minor) >= (1, 8) else {"penalty": "elasticnet"}
    return LogisticRegression(C=C, l1_ratio=l1_ratio, solver="saga", tol=1e-10, max_iter=50_000, **penalty)


def test_logistic_C_l1_and_glmnet_binomial():
    x, y = cancer()
    l1, l2 = 0.02, 0.0
    model = sparse_logistic(C.logistic_C_l1(l1, len(y)), 1.0).fit(x, y)
    w = model.coef_[0]
    gw, _ = log_loss_gradient(x, y, w, model.intercept_[0])
    assert (w == 0).any() and kkt_violation(gw, w, l1) < 1e-3
    lam, alpha = C.glmnet(l1, l2, "binomial")
    assert (lam, alpha) == (l1, 1.0)  # pure lasso: glmnet's λ is Keras's l1 for the binomial family
    assert C.glmnet(0.03, 0.035, "binomial") == (0.1, 0.3)
    # glmnet binomial ≡ sklearn elastic-net logistic with C = 1/(nλ), l1_ratio = α
    lam, alpha = C.glmnet(0.01, 0.005, "binomial")
    model = sparse_logistic(1 / (len(y) * lam), alpha).fit(x, y)
    w = model.coef_[0]
    gw, _ = log_loss_gradient(x, y, w, model.intercept_[0])
    assert kkt_violation(gw + 2 * 0.005 * w, w, 0.01) < 1e-3


@pytest.mark.tf_only  # a tf.GradientTape loop
def test_coupled_and_decoupled_weight_decay_against_keras():
    """Coupled decay (PyTorch's `weight_decay`, gradient + wd·w) is L2(wd/2) with any optimizer;
    decoupled decay (Keras/PyTorch AdamW) equals it only for plain SGD."""
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(64, 5)).astype("float32"), rng.normal(size=(64, 1)).astype("float32")
    l2 = 0.05

    def train(optimizer, regularizer=None, steps=5):
        keras.utils.set_random_seed(0)
        model = keras.Sequential([keras.Input((5,)), keras.layers.Dense(1, kernel_regularizer=regularizer)])
        model.compile(optimizer=optimizer, loss="mse")
        model.fit(x, y, batch_size=64, epochs=steps, verbose=0, shuffle=False)
        return model.get_weights()[0]

    def coupled(optimizer_cls, wd, steps=5, **kw):  # PyTorch's rule, written out: g ← g + wd·w
        keras.utils.set_random_seed(0)
        model = keras.Sequential([keras.Input((5,)), keras.layers.Dense(1)])
        optimizer = optimizer_cls(**kw)
        for _ in range(steps):
            with tf.GradientTape() as tape:
                loss = keras.losses.mean_squared_error(y, model(x))
                loss = tf.reduce_mean(loss)
            grads = tape.gradient(loss, model.trainable_variables)
            grads = [g + wd * v if "kernel" in v.path else g for g, v in zip(grads, model.trainable_variables)]
            optimizer.apply(grads, model.trainable_variables)
        return model.get_weights()[0]

    def kernels_only(optimizer):  # Keras decays every variable unless told; the L2 here is on the kernel
        optimizer.exclude_from_weight_decay(var_names=["bias"])
        return optimizer

    l2_reg = keras.regularizers.L2(l2)
    sgd_l2 = train(keras.optimizers.SGD(0.1), l2_reg)
    decayed = train(kernels_only(keras.optimizers.SGD(0.1, weight_decay=C.decoupled_weight_decay(l2))))
    assert np.allclose(decayed, sgd_l2, atol=1e-6)
    assert np.allclose(
        coupled(keras.optimizers.Adam, C.coupled_weight_decay(l2), learning_rate=0.1),
        train(keras.optimizers.Adam(0.1), l2_reg),
        atol=1e-6,
    )
    adam_l2 = train(keras.optimizers.Adam(0.1), l2_reg)
    adamw = train(kernels_only(keras.optimizers.AdamW(0.1, weight_decay=2 * l2)))
    assert np.abs(adamw - adam_l2).max() > 1e-3  # with Adam, decoupled decay is another regularizer
    with pytest.raises(ValueError, match="Received: optimizer='adam'"):
        C.decoupled_weight_decay(l2, "adam")


def test_priors_give_the_map_objective():
    """n × (Keras objective) and the negative log-posterior have the same gradient."""
    rng = np.random.default_rng(1)
    x, w, b = rng.normal(size=(50, 3)), rng.normal(size=3), 0.0
    y = (rng.random(50) < 0.5).astype(float)
    n, sigma, scale = len(y), 0.7, 0.2
    gw, _ = log_loss_gradient(x, y, w, b)
    keras_grad = n * (gw + 2 * C.gaussian_prior_l2(sigma, n) * w)
    map_grad = n * gw + w / sigma**2  # ∇[Σ NLL + Σw²/(2σ²)]
    np.testing.assert_allclose(keras_grad, map_grad)
    np.testing.assert_allclose(n * (gw + C.laplace_prior_l1(scale, n) * np.sign(w)), n * gw + np.sign(w) / scale)
    # regression: NLL = RSS/(2τ²), Keras mse = RSS/n
    t = rng.normal(size=50)
    tau2 = 0.3
    g_mse = 2 / n * x.T @ (x @ w - t)
    np.testing.assert_allclose(
        n / (2 * tau2) * (g_mse + 2 * C.gaussian_prior_l2(sigma, n, tau2) * w), x.T @ (x @ w - t) / tau2 + w / sigma**2
    )
    np.testing.assert_allclose(
        n / (2 * tau2) * (g_mse + C.laplace_prior_l1(scale, n, tau2) * np.sign(w)),
        x.T @ (x @ w - t) / tau2 + np.sign(w) / scale,
    )


def test_mlp_alpha_conversion_matches_sklearns_own_batch_loss():
    """sklearn's MLP adds alpha/(2·batch)·Σw² per batch: alpha = 2·batch·λ gives Keras's λ·Σw²."""
    import numpy as np
    from sklearn.neural_network import MLPClassifier

    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(32, 5)), rng.integers(0, 3, 32)
    strength = 1e-2
    mlp = MLPClassifier(hidden_layer_sizes=(4,), alpha=C.mlp_alpha(strength, 32), max_iter=1, batch_size=32)
    mlp.partial_fit(x, y, classes=[0, 1, 2])
    plain = MLPClassifier(hidden_layer_sizes=(4,), alpha=0.0, max_iter=1, batch_size=32)
    plain.partial_fit(x, y, classes=[0, 1, 2])

    # evaluate both losses at the same weights with sklearn's own backprop
    def batch_loss(model):
        activations = [x] + [None] * (model.n_layers_ - 1)
        deltas = [None] * (len(activations) - 1)
        coef_grads = [np.empty_like(c) for c in mlp.coefs_]
        intercept_grads = [np.empty_like(c) for c in mlp.intercepts_]
        model.coefs_, model.intercepts_ = [c.copy() for c in mlp.coefs_], [c.copy() for c in mlp.intercepts_]
        import inspect

        extra = {"sample_weight": None} if "sample_weight" in inspect.signature(model._backprop).parameters else {}
        loss, *_ = model._backprop(
            X=x,
            y=np.eye(3)[y],
            activations=activations,
            deltas=deltas,
            coef_grads=coef_grads,
            intercept_grads=intercept_grads,
            **extra,
        )
        return loss

    penalty = batch_loss(mlp) - batch_loss(plain)
    assert penalty == pytest.approx(strength * sum(np.square(c).sum() for c in mlp.coefs_), rel=1e-9)


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: C.ridge_alpha(-1, 10), "Received: l2=-1"),
        (lambda: C.ridge_alpha(0.1, 0), "Received: n=0"),
        (lambda: C.logistic_C(0.0, 10), "Received: l2=0.0"),
        (lambda: C.glmnet(0.1, 0.1, "poisson"), "Received: family='poisson'"),
        (lambda: C.from_sklearn_elastic_net(0.1, 1.5), "Received: l1_ratio=1.5"),
    ],
)
def test_bad_arguments_name_themselves(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_the_worked_numbers_in_docs_conventions():
    """The last column of docs/conventions.md's table, computed."""
    assert C.from_tf_nn_l2_loss(0.01) == 0.005 and C.ridge_alpha(0.01, 400) == 4.0 and C.lasso_alpha(0.01) == 0.005
    assert C.sklearn_elastic_net(0.03, 0.035) == (0.05, 0.3) and C.glmnet(0.03, 0.035, "binomial") == (0.1, 0.3)
    assert C.logistic_C(0.01, 400) == pytest.approx(0.125) and C.logistic_C_l1(0.02, 500) == pytest.approx(0.1)
    assert C.mlp_alpha(1e-3, 32) == pytest.approx(0.064)
    assert C.coupled_weight_decay(5e-4) == C.decoupled_weight_decay(5e-4) == pytest.approx(1e-3)
    assert C.gaussian_prior_l2(1.0, 500) == pytest.approx(1e-3) and C.laplace_prior_l1(0.1, 1000) == pytest.approx(0.01)
