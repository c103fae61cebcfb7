"""`reglab demo`: no, moderate and strong L2 on real data, seen through the loss ledger.

The experiment of the regularization-factor tutorial: the same network trained with λ = 0, 0.01
and 0.1, comparing training and validation curves. Data: scikit-learn's digits (1,797 8×8 images,
10 classes), a stratified 75/25 split.
"""

from __future__ import annotations

import keras
import numpy as np
import pandas as pd
from rich.console import Console
from rich.table import Table
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

from reglab.ledger import LossLedger
from reglab.regularize import regularize
from reglab.regularizers import L2

LAMBDAS = (0.0, 0.01, 0.1)


def digits_split(seed: int = 0):
    x, y = load_digits(return_X_y=True)
    x = (x / 16.0).astype("float32")
    return train_test_split(x, y, test_size=0.25, random_state=seed, stratify=y)


def build_mlp(seed: int = 0) -> keras.Model:
    keras.utils.set_random_seed(seed)
    return keras.Sequential([
        keras.Input((64,)),
        keras.layers.Dense(128, activation="relu", name="hidden_1"),
        keras.layers.Dense(64, activation="relu", name="hidden_2"),
        keras.layers.Dense(10, activation="softmax", name="output"),
    ], name="mlp")


def train_with_l2(strength: float, data, epochs: int, seed: int = 0) -> pd.DataFrame:
    """Train the MLP with L2(strength) on both hidden kernels; return the ledger's history."""
    x_train, x_val, y_train, y_val = data
    model = regularize(build_mlp(seed), kernel=L2(strength), layers=[0, 1])
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    ledger = LossLedger()
    model.fit(x_train, y_train, validation_data=(x_val, y_val), epochs=epochs, batch_size=32, verbose=0,
              callbacks=[ledger])
    history = ledger.history
    history.insert(0, "l2", strength)
    return history


def run_demo(epochs: int = 30, seed: int = 0, quiet: bool = False) -> pd.DataFrame:
    console = Console()
    data = digits_split(seed)
    histories = []
    for strength in LAMBDAS:
        if not quiet:
            console.print(f"training with L2 λ={strength:g} for {epochs} epochs …")
        histories.append(train_with_l2(strength, data, epochs, seed))
    history = pd.concat(histories, ignore_index=True)

    if not quiet:
        curves = Table(title="Learning curves: prediction loss (no penalty), train / validation")
        curves.add_column("epoch", justify="right")
        for strength in LAMBDAS:
            curves.add_column(f"λ={strength:g}", justify="right")
        marks = sorted({1, *range(5, epochs + 1, max(1, epochs // 6)), epochs})
        for epoch in marks:
            cells = []
            for strength in LAMBDAS:
                row = history[(history.l2 == strength) & (history.epoch == epoch)].iloc[0]
                cells.append(f"{row.train_loss:.3f} / {row.val_loss:.3f}")
            curves.add_row(str(epoch), *cells)
        console.print(curves)

    final = history[history.epoch == epochs]
    table = Table(title=f"After {epochs} epochs (digits, 75/25 split)")
    for name in ("L2 λ", "train loss", "penalty", "val loss", "gap", "val accuracy", "‖W‖₂ hidden"):
        table.add_column(name, justify="right")
    hidden = [c.split(":", 1)[1] for c in final.columns if c.startswith("penalty:")]  # the regularized kernels
    for _, row in final.iterrows():
        norm = np.sqrt(sum(row[f"l2:{name}"] ** 2 for name in hidden))
        table.add_row(f"{row.l2:g}", f"{row.train_loss:.4f}", f"{row.train_penalty:.4f}", f"{row.val_loss:.4f}",
                      f"{row.val_loss - row.train_loss:+.4f}", f"{row.val_accuracy:.3f}", f"{norm:.2f}")
    console.print(table)
    console.print(
        "train/val loss are prediction losses without the penalty; gap = val - train. "
        "Strong λ shrinks the weights and closes the gap; too strong underfits."
    )
    return history
