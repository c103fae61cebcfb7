"""Model builders for sweeps described in a config file (the Python API takes any builder)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from reglab import validation
from reglab.search import points

if TYPE_CHECKING:  # Keras is imported where a model is made: `reglab sweep` checks `hidden` without it
    import keras


def widths(hidden) -> list[int]:
    """`hidden`, checked: a non-empty list of positive layer widths (no Keras needed: `reglab sweep`
    checks a config's `hidden` before importing Keras)."""
    if not isinstance(hidden, (list, tuple)) or not hidden:
        raise ValueError(f"`hidden` is a non-empty list of layer widths. Received: hidden={hidden!r}")
    return [validation.number(h, "hidden", low=1, integer=True) for h in hidden]


class MLP:
    """A builder: inputs → Dense(h, activation) for h in `hidden` → an output layer for the task.

    Each call builds fresh weights (under the member's seed) and applies the point with
    `reglab.search.points.apply`: penalties and dropout on the hidden layers, or on `layer_groups`.
    Hidden layers are named `hidden_1`, `hidden_2`, … and the output layer `output`.

    >>> build = MLP(hidden=[8], n_features=4, n_outputs=3)
    >>> model = build({"l2": 1e-3, "dropout": 0.5})
    >>> [layer.name for layer in model.layers]
    ['hidden_1', 'hidden_1_dropout', 'output']
    """

    def __init__(self, hidden=(64,), activation="relu", n_features=None, n_outputs=None, layer_groups=None):
        import keras

        self.hidden = widths(hidden)
        try:
            keras.activations.get(activation)
        except (ValueError, TypeError):
            raise ValueError(f"Unknown activation. Received: activation={activation!r}") from None
        self.activation = activation
        self.n_features, self.n_outputs = n_features, n_outputs
        self.layer_groups = dict(layer_groups or {})

    def bind(self, n_features: int, n_outputs: int) -> "MLP":
        return MLP(self.hidden, self.activation, n_features, n_outputs, self.layer_groups)

    def plain(self) -> keras.Model:
        import keras

        layers = [keras.Input((self.n_features,))]
        layers += [
            keras.layers.Dense(h, activation=self.activation, name=f"hidden_{i + 1}") for i, h in enumerate(self.hidden)
        ]
        activation = "softmax" if self.n_outputs > 1 else None
        layers.append(keras.layers.Dense(self.n_outputs, activation=activation, name="output"))
        return keras.Sequential(layers, name="mlp")

    def __call__(self, point: dict) -> keras.Model:
        return points.apply(self.plain(), point, "hidden", self.layer_groups, fresh=True)

    def spec(self) -> dict:
        return {
            "kind": "mlp",
            "hidden": self.hidden,
            "activation": self.activation,
            "n_features": self.n_features,
            "n_outputs": self.n_outputs,
            "layer_groups": self.layer_groups,
        }
