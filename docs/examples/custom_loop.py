"""A custom GradientTape training loop that never forgets the penalty.

The custom-regularizer tutorial's `train_step` sums a regularizer over `model.trainable_weights`
by hand; that silently skips biases or penalizes them twice, ignores the regularizers the layers
already carry, and misses activity penalties. `reglab.regularization_loss(model)` is exactly what
`model.fit` would add (`sum(model.losses)`), and `reglab.schedules.set_epoch` moves a scheduled λ.

Run it:  python docs/examples/custom_loop.py
"""

import keras
import numpy as np
import tensorflow as tf
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

import reglab
from reglab.regularizers import L2
from reglab.schedules import LinearWarmup, Scheduled


def build(strength: float, seed: int = 0) -> keras.Model:
    keras.utils.set_random_seed(seed)
    model = keras.Sequential([
        keras.Input((64,)),
        keras.layers.Dense(64, activation="relu", name="hidden"),
        keras.layers.Dense(10, activation="softmax", name="output"),
    ])
    penalty = Scheduled(L2(strength), LinearWarmup(epochs=3))  # full strength from epoch 3 on
    return reglab.regularize(model, kernel=penalty)


def train(model, x, y, epochs: int = 8, batch_size: int = 32, seed: int = 0) -> list[dict]:
    optimizer = keras.optimizers.Adam(1e-3)
    loss_fn = keras.losses.SparseCategoricalCrossentropy()

    @tf.function
    def train_step(xb, yb):
        with tf.GradientTape() as tape:
            predictions = model(xb, training=True)
            prediction_loss = loss_fn(yb, predictions)
            penalty = reglab.regularization_loss(model)  # after the forward pass: activity terms included
            total = prediction_loss + penalty
        gradients = tape.gradient(total, model.trainable_weights)
        optimizer.apply_gradients(zip(gradients, model.trainable_weights))
        return prediction_loss, penalty

    rng = np.random.default_rng(seed)
    log = []
    for epoch in range(epochs):
        reglab.schedules.set_epoch(model, epoch)  # the compiled step reads the new λ; no retracing
        order = rng.permutation(len(x))
        sums = np.zeros(2)
        for start in range(0, len(x), batch_size):
            batch = order[start:start + batch_size]
            sums += np.array([float(v) for v in train_step(x[batch], y[batch])]) * len(batch)
        log.append({"epoch": epoch + 1, "train_loss": sums[0] / len(x), "train_penalty": sums[1] / len(x)})
    return log


def main(epochs: int = 8) -> dict:
    x, y = load_digits(return_X_y=True)
    x_train, x_val, y_train, y_val = train_test_split(
        (x / 16).astype("float32"), y, test_size=0.25, random_state=0, stratify=y
    )
    results = {}
    for strength in (0.0, 0.01):
        model = build(strength)
        log = train(model, x_train, y_train, epochs=epochs)
        accuracy = float(np.mean(model.predict(x_val, verbose=0).argmax(1) == y_val))
        norm = float(np.linalg.norm(model.get_layer("hidden").kernel.numpy()))
        results[strength] = {"log": log, "val_accuracy": accuracy, "hidden_norm": norm}
        print(f"L2 λ={strength:<5g} val accuracy {accuracy:.3f}  ‖W_hidden‖ {norm:.2f}  "
              f"penalty by epoch {[round(r['train_penalty'], 4) for r in log]}")
    return results


if __name__ == "__main__":
    main()
