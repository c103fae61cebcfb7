"""Exact zeros: proximal steps (reglab.kit.optimizers.Proximal) and FTRL, on real data."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from sklearn.datasets import load_digits
from sklearn.linear_model import Lasso

from reglab import LossLedger, checks
from reglab.conventions import lasso_alpha
from reglab.kit.optimizers import Proximal

pytestmark = pytest.mark.both_backends  # the Keras-level kit works on either backend

X, Y = load_digits(return_X_y=True)
X = (X / 16).astype("float32")


def digits_model(regularizer=None):
    keras.utils.set_random_seed(0)
    return keras.Sequential(
        [
            keras.Input((64,)),
            keras.layers.Dense(64, activation="relu", name="hidden", kernel_regularizer=regularizer),
            keras.layers.Dense(10, activation="softmax", name="out"),
        ],
        name="net",
    )


def train(model, optimizer, epochs=8):
    ledger = LossLedger()
    model.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(X, Y, epochs=epochs, batch_size=32, verbose=0, validation_split=0.2, callbacks=[ledger])
    return ledger.history.iloc[-1]


@pytest.mark.tf_only  # 3000 steps from a tf.data pipeline
def test_proximal_sgd_is_ista_and_reaches_sklearns_lasso_exactly():
    x, y = (a.astype("float32") for a in checks.diabetes())
    l1 = 0.05
    model = keras.Sequential([keras.Input((10,)), keras.layers.Dense(1, kernel_initializer="zeros")])
    model.compile(optimizer=Proximal(keras.optimizers.SGD(0.2), l1=l1), loss="mse")
    model.fit(
        tf.data.Dataset.from_tensors((x, y)).repeat(3000), epochs=1, verbose=0, shuffle=False
    )  # 3000 full-batch steps
    w = model.get_weights()[0].ravel()
    exact = Lasso(alpha=lasso_alpha(l1), tol=1e-12, max_iter=100_000).fit(x.astype(float), y.astype(float)).coef_
    assert np.array_equal(w == 0, exact == 0) and (exact == 0).sum() >= 2  # the same exact zeros
    assert np.linalg.norm(w - exact) / np.linalg.norm(exact) < 1e-5


def test_proximal_adam_gives_exact_zeros_where_adam_with_l1_gives_none(tmp_path):
    plain = train(digits_model(keras.regularizers.L1(1e-3)), keras.optimizers.Adam(1e-3))
    assert plain["zeros:net/hidden/kernel"] == 0 and plain["near_zero:net/hidden/kernel"] > 0.1

    model = digits_model()
    sparse = train(model, Proximal(keras.optimizers.Adam(1e-3), l1=1e-3, weights="hidden/kernel$"))
    kernel = model.get_layer("hidden").kernel.numpy()
    assert sparse["zeros:net/hidden/kernel"] == (kernel == 0).sum() > 0.3 * kernel.size  # the ledger counts them
    assert (model.get_layer("out").kernel.numpy() != 0).all()  # only the selected weights are thresholded
    assert abs(sparse["val_accuracy"] - plain["val_accuracy"]) < 0.05
    model.save(tmp_path / "sparse.keras")
    loaded = keras.models.load_model(tmp_path / "sparse.keras", safe_mode=True)
    assert np.array_equal(loaded.get_layer("hidden").kernel.numpy() == 0, kernel == 0)  # real zeros in the file
    assert isinstance(loaded.optimizer, Proximal) and loaded.optimizer.l1 == 1e-3


def test_proximal_group_lasso_removes_whole_units():
    model = digits_model()
    train(model, Proximal(keras.optimizers.SGD(0.1), group_lasso=5e-2, weights="hidden/kernel$"))
    kernel = model.get_layer("hidden").kernel.numpy()
    dead = (kernel == 0).all(axis=0)
    # Pixels that are (almost) never on get (almost) no gradient, so group shrinkage alone takes their
    # weights to 0 even in live units; elsewhere zeros come as whole units.
    rare = (X != 0).mean(axis=0) < 0.05
    assert dead.sum() >= 1 and (kernel[~rare][:, ~dead] != 0).all()


def test_ftrl_is_the_alternative_with_exact_zeros():
    model = digits_model()
    last = train(model, keras.optimizers.Ftrl(0.1, l1_regularization_strength=1e-2), epochs=4)
    assert last["zeros:net/hidden/kernel"] > 0


def test_the_proximal_operators():
    optimizer = Proximal("sgd", l1=0.5, group_lasso=1.0)
    w = np.array([[1.0, 0.2], [-2.0, 0.1]], dtype="float32")  # columns are the groups
    soft = np.array([[0.5, 0.0], [-1.5, 0.0]])  # L1 first: sign(w)·max(|w| − 0.5·1, 0)
    norm = np.linalg.norm(soft[:, 0])
    expected = soft * np.array([max(0, 1 - 1.0 / norm), 0.0])  # then group shrinkage (sparse group lasso)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(optimizer.prox(w, 1.0)), expected, rtol=1e-6)


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: Proximal("adagrad", l1=0.1), "Received: inner=Adagrad"),
        (lambda: Proximal("sgd", l1=-1), "Received: l1=-1"),
        (lambda: Proximal("sgd", group_lasso="a"), "Received: group_lasso='a'"),
        (lambda: Proximal("sgd", l1=0.1, weights="("), "Received: weights='\\('"),
        (lambda: Proximal("sgd", l1=0.1, clipnorm=1.0), "Received: clipnorm=1.0"),
    ],
)
def test_bad_arguments_name_themselves(make, message):
    with pytest.raises(ValueError, match=message):
        make()
