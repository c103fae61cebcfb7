"""Weight penalties: Keras's own, re-exported, plus ElasticNet, GroupLasso, Smoothness and L2SP.

Every penalty here follows Keras's convention: a regularizer returns a scalar that is added, as is,
to the mean loss of a batch. `L2(λ)` adds `λ·Σw²` (no ½, no division by n or the batch size).

The maths is written as pure functions of a tensor (`sum_abs`, `sum_squares`, `group_norms`,
`sum_squared_differences`) using `keras.ops` only, so it runs on every Keras backend and the
engines can reuse it; the classes are thin, serializable wrappers that hold the strength.

>>> import numpy as np
>>> w = np.array([[3.0, 0.0], [4.0, 1.0]], dtype="float32")
>>> round(float(GroupLasso(0.1)(w)), 6)   # 0.1 · (‖(3, 4)‖ + ‖(0, 1)‖)
0.6
>>> float(Smoothness(1.0)(w))   # (4-3)² + (1-0)²
2.0
"""

from __future__ import annotations

import base64
import hashlib
import inspect
import weakref

import keras
import numpy as np
from keras import ops
from keras.regularizers import L1, L1L2, L2, OrthogonalRegularizer, Regularizer

from reglab import validation

__all__ = [
    "L1",
    "L2",
    "L1L2",
    "OrthogonalRegularizer",
    "Regularizer",
    "ElasticNet",
    "GroupLasso",
    "Smoothness",
    "L2SP",
    "get",
    "describe",
    "sum_abs",
    "sum_squares",
    "group_norms",
    "sum_squared_differences",
]

_register = keras.saving.register_keras_serializable(package="reglab")


# --- the maths: pure functions of a weight tensor ---------------------------------------------


def sum_abs(x):
    """Σ|x|."""
    return ops.sum(ops.abs(x))


def sum_squares(x):
    """Σx²."""
    return ops.sum(ops.square(x))


def _normalize_axes(axis, ndim: int, name: str = "axis") -> tuple[int, ...]:
    candidates = (axis,) if isinstance(axis, int) else tuple(axis)
    normalized = []
    for a in candidates:
        if not -ndim <= a < ndim:
            raise ValueError(
                f"Invalid value for argument `{name}`: out of range for a weight of rank {ndim}. "
                f"Received: {name}={axis!r}"
            )
        normalized.append(a % ndim)
    return tuple(sorted(set(normalized)))


def group_norms(x, axis=None):
    """Euclidean norm of each group of `x`; a group is everything along `axis` (the reduced axes).

    `axis=None` reduces over all axes but the last, so each output unit of a Dense kernel
    (inputs, units) or each filter of a Conv kernel (..., in_channels, filters) is one group.
    The gradient at an all-zero group is 0 (a subgradient), never NaN: the square root is
    only taken where it is safe (the "double where").
    """
    ndim = len(x.shape)
    reduce = tuple(range(ndim - 1)) if axis is None else _normalize_axes(axis, ndim)
    squares = ops.sum(ops.square(x), axis=reduce) if reduce else ops.square(x)
    positive = squares > 0
    safe = ops.where(positive, squares, ops.ones_like(squares))
    return ops.where(positive, ops.sqrt(safe), ops.zeros_like(squares))


def sum_squared_differences(x, axis=0):
    """Σ (x[i+1] - x[i])² along `axis` (0 when the axis has fewer than two entries)."""
    (a,) = _normalize_axes(axis, len(x.shape))
    if x.shape[a] is not None and x.shape[a] < 2:
        return ops.zeros((), dtype=x.dtype)
    return ops.sum(ops.square(ops.diff(x, axis=a)))


# --- the regularizers --------------------------------------------------------------------------


@_register
class ElasticNet(Regularizer):
    """Elastic-net penalty in glmnet's parametrization.

    Adds `strength · (l1_ratio · Σ|w| + (1 - l1_ratio) / 2 · Σw²)` to the loss. This is exactly
    Keras's `L1L2(l1=strength·l1_ratio, l2=strength·(1-l1_ratio)/2)` (see `to_l1l2`), and
    glmnet's `λ·[α‖w‖₁ + (1-α)/2‖w‖²]` with `λ = strength`, `α = l1_ratio` — except that glmnet
    and scikit-learn put a ½ in front of the mean squared error, while Keras's MSE has none.

    Args:
        strength: the overall strength λ ≥ 0. Defaults to 0.01 (Keras's default for L1 and L2).
        l1_ratio: the L1 share α in [0, 1]; 1 is pure L1 (lasso), 0 is pure L2 with a ½.
            Defaults to 0.5.

    >>> {k: round(v, 6) for k, v in ElasticNet(0.1, l1_ratio=0.25).to_l1l2().get_config().items()}
    {'l1': 0.025, 'l2': 0.0375}
    """

    def __init__(self, strength=0.01, l1_ratio=0.5):
        self.strength = validation.non_negative_float(strength, "strength")
        self.l1_ratio = validation.fraction(l1_ratio, "l1_ratio")

    def __call__(self, x):
        return self.strength * (self.l1_ratio * sum_abs(x) + 0.5 * (1.0 - self.l1_ratio) * sum_squares(x))

    def to_l1l2(self) -> L1L2:
        """The identical penalty as Keras's `L1L2`."""
        return L1L2(l1=self.strength * self.l1_ratio, l2=self.strength * (1.0 - self.l1_ratio) / 2)

    def get_config(self):
        return {"strength": self.strength, "l1_ratio": self.l1_ratio}


@_register
class GroupLasso(Regularizer):
    """Group lasso: `strength · Σ_groups ‖w_group‖₂`, the penalty that removes whole units.

    Unlike L1, which zeroes single weights, group lasso pushes entire groups — all incoming
    weights of a Dense unit, or a whole convolution filter — to zero together (structured
    sparsity). Every group of one weight tensor has the same size, so the √(group size) factor
    of Yuan & Lin is a constant per layer and left to `strength`.

    Args:
        strength: λ ≥ 0. Defaults to 0.01.
        axis: the axes each norm is taken over (as in `keras.constraints.UnitNorm`). Defaults
            to None: all axes but the last, i.e. one group per output unit or filter. Use
            `axis=1` on a Dense kernel to group by input feature (feature selection).

    >>> import numpy as np
    >>> kernel = np.array([[1.0, 0.0], [1.0, 0.0]], dtype="float32")   # unit 2 is already dead
    >>> round(float(GroupLasso(1.0)(kernel)), 4)   # ‖(1, 1)‖ + ‖(0, 0)‖
    1.4142
    """

    def __init__(self, strength=0.01, axis=None):
        self.strength = validation.non_negative_float(strength, "strength")
        self.axis = validation.axes(axis, "axis")

    def __call__(self, x):
        return self.strength * ops.sum(group_norms(x, self.axis))

    def get_config(self):
        axis = list(self.axis) if isinstance(self.axis, tuple) else self.axis
        return {"strength": self.strength, "axis": axis}


@_register
class Smoothness(Regularizer):
    """Smoothness: `strength · Σ (w[i+1] - w[i])²` along `axis`.

    On a Conv1D kernel of shape (kernel_size, in, out), `axis=0` makes each filter vary smoothly
    over time — the smoothness regularizer of the custom-regularizer tutorial. On a Dense kernel,
    `axis=0` ties neighbouring input features (useful when inputs are ordered, e.g. a spectrum).

    Args:
        strength: λ ≥ 0. Defaults to 0.01.
        axis: the axis along which neighbours are compared. Defaults to 0.
    """

    def __init__(self, strength=0.01, axis=0):
        self.strength = validation.non_negative_float(strength, "strength")
        axis = validation.axes(axis, "axis")
        if not isinstance(axis, int):
            raise ValueError(f"Invalid value for argument `axis`: expected a single int. Received: axis={axis!r}")
        self.axis = axis

    def __call__(self, x):
        return self.strength * sum_squared_differences(x, self.axis)

    def get_config(self):
        return {"strength": self.strength, "axis": self.axis}


_REFERENCES: weakref.WeakValueDictionary = weakref.WeakValueDictionary()  # digest -> w₀ (`L2SP.of`)


@_register
class L2SP(Regularizer):
    """L2-SP: `l2 · Σ(w − w₀)²`, an L2 penalty toward a starting point w₀ rather than toward zero — for
    fine-tuning, the pretrained weights (Li, Grandvalet & Davoine, ICML 2018: "Explicit inductive bias for
    transfer learning"). With w₀ = 0 it is `L2(l2)`. `reglab.regularize(model, kernel=L2(λ), toward="initial")`
    attaches one per weight, each holding that weight's values in `model`.

    Args:
        l2: λ ≥ 0. Defaults to 0.01.
        reference: w₀, the weight's starting values (its shape; kept as float32). Serialized with the
            regularizer (in its config, base64), so a saved model keeps what it is pulled toward.

    >>> import numpy as np
    >>> w0 = np.ones((2, 2), "float32")
    >>> float(L2SP(0.5, w0)(np.full((2, 2), 3.0, "float32")))  # 0.5 · 4 · (3 − 1)²
    8.0
    """

    def __init__(self, l2=0.01, reference=None):
        self.l2 = validation.non_negative_float(l2, "l2")
        if isinstance(reference, dict) and {"shape", "float32"} <= set(reference):  # its config
            raw = np.frombuffer(base64.b64decode(reference["float32"]), dtype="<f4")
            reference = raw.reshape([int(n) for n in reference["shape"]])
        if reference is None or isinstance(reference, (str, bytes, dict)):
            raise ValueError(
                "L2SP pulls a weight toward its starting values: give `reference` (an array, e.g. the pretrained "
                f"weight). Received: reference={reference!r}"
            )
        self.reference = np.array(reference, dtype="float32")
        if not np.isfinite(self.reference).all():
            raise ValueError("`reference` must be finite. Received: reference with NaN or inf values")
        self.digest = hashlib.sha256(
            str(self.reference.shape).encode() + self.reference.astype("<f4").tobytes()
        ).hexdigest()[:16]
        _REFERENCES[self.digest] = self.reference

    @staticmethod
    def of(digest: str):
        """The w₀ an L2SP alive in this process holds, by its `digest` (what the population engine's penalty
        basis names it by: members pulled toward the same w₀ share one copy)."""
        return _REFERENCES[digest]

    def __call__(self, x):
        return self.l2 * sum_squares(x - ops.convert_to_tensor(self.reference, dtype=x.dtype))

    def get_config(self):
        data = base64.b64encode(self.reference.astype("<f4").tobytes()).decode("ascii")
        return {"l2": self.l2, "reference": {"shape": list(self.reference.shape), "float32": data}}


# --- lookup ------------------------------------------------------------------------------------

_BY_NAME = {
    "l1": L1,
    "l2": L2,
    "l1l2": L1L2,
    "l1_l2": L1L2,
    "orthogonal": OrthogonalRegularizer,
    "orthogonal_regularizer": OrthogonalRegularizer,
    "elastic_net": ElasticNet,
    "elasticnet": ElasticNet,
    "group_lasso": GroupLasso,
    "grouplasso": GroupLasso,
    "smoothness": Smoothness,
}


NAMES = ("l1", "l2", "l1l2", "elastic_net", "group_lasso", "smoothness", "orthogonal")


def _lookup(name: str):
    key = name.strip().lower().replace("-", "_")
    if key not in _BY_NAME:
        raise ValueError(f"Unknown regularizer name (known: {', '.join(NAMES)}). Received: identifier={name!r}")
    return _BY_NAME[key]


def get(identifier):
    """Turn an identifier into a regularizer; reject anything it cannot interpret.

    Accepts None (returns None), a regularizer or any callable `weights -> scalar` (returned
    as is), a name ("l1", "l2", "l1l2", "elastic_net", "group_lasso", "smoothness",
    "orthogonal"; default strengths), a Keras config dict (`{"class_name": ..., "config": ...}`)
    or a short dict `{"name": "l2", **constructor_arguments}`.

    >>> get("l2").get_config()
    {'l2': 0.01}
    >>> get({"name": "elastic_net", "strength": 1e-3, "l1_ratio": 0.9}).get_config()
    {'strength': 0.001, 'l1_ratio': 0.9}
    >>> get("l3")
    Traceback (most recent call last):
    ...
    ValueError: Unknown regularizer name (known: l1, l2, l1l2, elastic_net, group_lasso, smoothness, orthogonal). Received: identifier='l3'
    """
    if identifier is None:
        return None
    if isinstance(identifier, str):
        return _lookup(identifier)()
    if isinstance(identifier, dict):
        if "class_name" in identifier:
            try:
                return keras.regularizers.deserialize(identifier)
            except (TypeError, ValueError) as error:
                raise ValueError(
                    f"Could not deserialize the regularizer ({error}). Received: identifier={identifier!r}"
                ) from None
        if "name" not in identifier:
            raise ValueError(
                "A regularizer dict needs 'class_name' (a Keras config) or 'name' (e.g. "
                f"{{'name': 'l2', 'l2': 1e-3}}). Received: identifier={identifier!r}"
            )
        kwargs = {k: v for k, v in identifier.items() if k != "name"}
        cls = _lookup(identifier["name"])
        accepted = set(inspect.signature(cls.__init__).parameters) - {"self"}
        unknown = sorted(set(kwargs) - accepted)
        if unknown:
            raise ValueError(
                f"Unknown argument(s) {unknown} for {cls.__name__} (accepts {sorted(accepted)}). "
                f"Received: identifier={identifier!r}"
            )
        return cls(**kwargs)
    if inspect.isclass(identifier):
        raise ValueError(
            f"Pass a regularizer instance, not a class (e.g. {identifier.__name__}(0.01)). "
            f"Received: identifier={identifier!r}"
        )
    if callable(identifier):
        return identifier
    raise ValueError(
        "Could not interpret the regularizer: expected None, a name, a dict or a callable. "
        f"Received: identifier={identifier!r}"
    )


def describe(regularizer) -> str:
    """A short, readable description, e.g. "L2(l2=0.001)" (Keras's repr is an address).

    >>> describe(ElasticNet(0.1, l1_ratio=0.5))
    'ElasticNet(strength=0.1, l1_ratio=0.5)'
    """
    try:
        config = regularizer.get_config()
    except (AttributeError, NotImplementedError):
        return getattr(regularizer, "__name__", repr(regularizer))
    inner = ", ".join(
        f"{k}={describe(get(v)) if isinstance(v, dict) and 'class_name' in v else v}" for k, v in config.items()
    )
    return f"{type(regularizer).__name__}({inner})"
