"""The seeds' `tf.keras` snippets run on Keras's JAX backend unchanged (`tf.keras` is Keras 3 there), and
their models train as a population."""

import keras

import reglab


def test_the_tutorials_tf_keras_models_train_as_a_population(digits):
    import tensorflow as tf
    from tensorflow.keras import layers, regularizers

    assert tf.keras.Sequential is keras.Sequential and keras.backend.backend() == "jax"
    x, y = digits

    def build(point):  # seed 002's network: L2 on the hidden layers, Dropout between them
        return tf.keras.Sequential(
            [
                layers.Input(shape=(64,)),
                layers.Dense(64, activation="relu", kernel_regularizer=regularizers.l2(point["l2"])),
                layers.Dropout(0.5),
                layers.Dense(32, activation="relu", kernel_regularizer=regularizers.l2(point["l2"])),
                layers.Dense(10, activation="softmax"),
            ]
        )

    sweep = reglab.Sweep(build, grid={"l2": [0.0, 0.01]}, cv=2, epochs=3, engine="population", refit=False, seed=0)
    result = sweep.run(x, y)
    final = result.members.set_index("l2")
    assert (result.members.status == "ok").all() and len(result.members) == 4
    assert (final.loc[0.0, "train_penalty"] == 0).all() and (final.loc[0.01, "train_penalty"] > 0).all()
    assert final.val_accuracy.min() > 0.5
    assert result.timing["members"] == 4 and result.timing["populations"] == 1  # both λ in one compiled program
