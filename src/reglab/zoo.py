"""One small real model per family people train, on scikit-learn's digits: what the population
engine's equivalence tests and `reglab bench --zoo` run.

Each entry is `(builder, inputs)`: a builder `point -> keras.Model` whose swept strength is
`point["l2"]`, and the digits as that model reads them (64 features, 8×8 images, 8 rows of 8 pixels
as a sequence, 64 pixel values 0–16 as tokens, or — for the two-input model — the image and its
row and column sums).

A bias right before BatchNormalization changes nothing (the normalization subtracts it), so its
gradient is rounding noise, which Adam scales up to steps of the learning rate: two exact
implementations disagree on such a weight. Those layers go without a bias, as is usual.
"""

from __future__ import annotations

import keras
import numpy as np
from keras import layers as L

from reglab.kit import regularizers as R


def mlp_dropout(point):
    return keras.Sequential(
        [
            keras.Input((64,)),
            L.Dense(32, activation="relu", kernel_regularizer=R.ElasticNet(point["l2"], 0.3), name="h1"),
            L.Dropout(point.get("dropout", 0.2)),  # a searched rate, `reglab bench --search`
            L.Dense(
                16,
                activation="tanh",
                kernel_regularizer=R.GroupLasso(point["l2"]),
                bias_regularizer=R.L2(point["l2"]),
                activity_regularizer=R.L1(1e-4),
                name="h2",
            ),
            L.Dense(10, activation="softmax", kernel_regularizer=R.Smoothness(point["l2"]), name="out"),
        ],
        name="net",
    )


def convnet(point):
    return keras.Sequential(
        [
            keras.Input((8, 8, 1)),
            L.Conv2D(8, 3, padding="same", activation="relu", kernel_regularizer=R.L2(point["l2"])),
            L.SpatialDropout2D(0.1),
            L.MaxPooling2D(2),
            L.Conv2D(8, 2, activation="relu"),
            L.Flatten(),
            L.Dropout(0.2),
            L.Dense(10, activation="softmax"),
        ]
    )


def resnet_bn(point):
    inputs = keras.Input((8, 8, 1))
    h = L.Conv2D(8, 3, padding="same", use_bias=False, kernel_regularizer=R.L2(point["l2"]))(inputs)
    h = L.Activation("relu")(L.BatchNormalization()(h))
    r = L.Conv2D(8, 3, padding="same", use_bias=False, kernel_regularizer=R.L2(point["l2"]))(h)
    h = L.Add()([h, L.Activation("relu")(L.BatchNormalization()(r))])
    h = L.GaussianNoise(0.1)(L.GlobalAveragePooling2D()(h))
    return keras.Model(inputs, L.Dense(10, activation="softmax")(h))


def conv1d_bn(point):
    return keras.Sequential(
        [
            keras.Input((8, 8)),
            L.Conv1D(8, 3, padding="same", use_bias=False, kernel_regularizer=R.Smoothness(point["l2"])),
            L.BatchNormalization(),
            L.Activation("relu"),
            L.GlobalMaxPooling1D(),
            L.Dense(10, activation="softmax"),
        ]
    )


def bilstm(point):
    return keras.Sequential(
        [
            keras.Input((8, 8)),
            L.Bidirectional(L.LSTM(8, kernel_regularizer=R.L2(point["l2"]), recurrent_regularizer=R.L2(point["l2"]))),
            L.LayerNormalization(),
            L.Dense(10, activation="softmax"),
        ]
    )


def embedding_gru(point):
    return keras.Sequential(
        [
            keras.Input((64,), dtype="int32"),
            L.Embedding(17, 8, embeddings_regularizer=R.L2(point["l2"])),
            L.GRU(8),
            L.Dense(10, activation="softmax"),
        ]
    )


def transformer(point):
    inputs = keras.Input((64,), dtype="int32")
    h = L.Embedding(17, 8)(inputs)
    a = L.MultiHeadAttention(2, 4, kernel_regularizer=R.L2(point["l2"]), dropout=0.1)(h, h)
    h = L.LayerNormalization()(L.Add()([h, a]))
    h = L.GlobalAveragePooling1D()(h)
    return keras.Model(inputs, L.Dense(10, activation="softmax")(h))


def two_inputs(point):
    """A functional model with two inputs: the image through a convolution, its row and column sums
    through a dense layer, concatenated."""
    image, sums = keras.Input((8, 8, 1), name="image"), keras.Input((16,), name="sums")
    h = L.Flatten()(L.Conv2D(4, 3, activation="relu", kernel_regularizer=R.L2(point["l2"]))(image))
    s = L.Dense(8, activation="relu", kernel_regularizer=R.L2(point["l2"]))(sums)
    return keras.Model([image, sums], L.Dense(10, activation="softmax")(L.Concatenate()([h, s])))


@keras.saving.register_keras_serializable("reglab_zoo")
class Subclassed(keras.Model):
    """A subclassed model, unbuilt until it first sees data (as users write them)."""

    def __init__(self, l2=0.0, **kwargs):
        super().__init__(**kwargs)
        self.l2 = l2
        self.hidden = L.Dense(16, activation="relu", kernel_regularizer=R.L2(l2))
        self.drop = L.Dropout(0.1)
        self.out = L.Dense(10, activation="softmax")

    def call(self, x, training=False):
        return self.out(self.drop(self.hidden(x), training=training))


def subclassed(point):
    return Subclassed(point["l2"])


# keras-io's own sizes (its time-series FCN, its MNIST convnet, a small ResNet): what users train, for
# `reglab bench --zoo`; the digits upsampled to the image sizes those models expect.


def fcn(point):
    """keras-io's time-series classification FCN: three Conv1D(64, 3) + BatchNorm + ReLU, global average
    pooling; the digits as sequences of 64 steps."""
    inputs = keras.Input((64, 1))
    h = inputs
    for _ in range(3):
        h = L.Conv1D(64, 3, padding="same", use_bias=False, kernel_regularizer=R.L2(point["l2"]))(h)
        h = L.Activation("relu")(L.BatchNormalization()(h))
    return keras.Model(inputs, L.Dense(10, activation="softmax")(L.GlobalAveragePooling1D()(h)))


def mnist_convnet(point):
    """keras-io's simple MNIST convnet on 28 × 28 images."""
    return keras.Sequential(
        [
            keras.Input((28, 28, 1)),
            L.Conv2D(32, 3, activation="relu", kernel_regularizer=R.L2(point["l2"])),
            L.MaxPooling2D(2),
            L.Conv2D(64, 3, activation="relu", kernel_regularizer=R.L2(point["l2"])),
            L.MaxPooling2D(2),
            L.Flatten(),
            L.Dropout(0.5),
            L.Dense(10, activation="softmax"),
        ]
    )


def small_resnet(point):
    """A small ResNet on 16 × 16 images: a stem, two residual blocks of Conv2D(16) + BatchNorm, one of
    Conv2D(32) with stride 2 and a projection, global average pooling."""

    def conv(filters, strides=1, size=3):
        return L.Conv2D(
            filters, size, strides=strides, padding="same", use_bias=False, kernel_regularizer=R.L2(point["l2"])
        )

    def block(h, filters, strides=1):
        r = L.Activation("relu")(L.BatchNormalization()(conv(filters, strides)(h)))
        r = L.BatchNormalization()(conv(filters)(r))
        skip = h if strides == 1 else L.BatchNormalization()(conv(filters, strides, size=1)(h))
        return L.Activation("relu")(L.Add()([skip, r]))

    inputs = keras.Input((16, 16, 1))
    h = L.Activation("relu")(L.BatchNormalization()(conv(16)(inputs)))
    h = block(block(h, 16), 32, strides=2)
    return keras.Model(inputs, L.Dense(10, activation="softmax")(L.GlobalAveragePooling2D()(h)))


def digits():
    """(features in [0, 1] as float32, pixel values 0–16 as int32 tokens, labels)."""
    from sklearn.datasets import load_digits

    data = load_digits()
    return (data.data / 16).astype("float32"), data.data.astype("int32"), data.target.astype("int64")


def families() -> dict:
    """{name: (builder, inputs)} over the digits."""
    x, tokens, _ = digits()
    images = x.reshape(-1, 8, 8, 1)
    return {
        "mlp-dropout": (mlp_dropout, x),
        "convnet": (convnet, images),
        "resnet-batchnorm": (resnet_bn, images),
        "conv1d-batchnorm": (conv1d_bn, x.reshape(-1, 8, 8)),
        "bidirectional-lstm": (bilstm, x.reshape(-1, 8, 8)),
        "embedding-gru": (embedding_gru, tokens),
        "attention": (transformer, tokens),
        "subclassed": (subclassed, x),
        "two-inputs": (
            two_inputs,
            {"image": images, "sums": np.concatenate([images.sum(1), images.sum(2)], axis=1)[..., 0]},
        ),
    }


def keras_io_families() -> dict:
    """{name: (builder, inputs)}: the models of keras-io's examples at their sizes, over the digits."""
    x, _, _ = digits()
    images = x.reshape(-1, 8, 8, 1)
    upsample = lambda k: np.kron(images, np.ones((1, k, k, 1), "float32"))  # each pixel a k × k block
    return {
        "keras-io-fcn": (fcn, x.reshape(-1, 64, 1)),
        "keras-io-mnist-convnet": (mnist_convnet, np.pad(upsample(3), ((0, 0), (2, 2), (2, 2), (0, 0)))),
        "small-resnet": (small_resnet, upsample(2)),
    }
