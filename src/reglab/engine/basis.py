"""Penalties as per-member coefficients on a small basis of functions.

A population trains members whose points differ in λ, `l1_ratio` or the kind of penalty, in one
compiled program: the program must not depend on those values. Every penalty reglab and Keras
ship is linear in its strengths over a few functions of the weight,

    L1L2(l1, l2)(w)         = l1·Σ|w| + l2·Σw²
    ElasticNet(s, α)(w)     = sα·Σ|w| + s(1-α)/2·Σw²
    GroupLasso(s, axis)(w)  = s·Σ‖w_group‖₂
    Smoothness(s, axis)(w)  = s·Σ(w[i+1]-w[i])²
    L2SP(s, w₀)(w)          = s·Σ(w-w₀)²

so a member's penalty on a weight is `coefficients · basis(w)`, with the coefficients a traced
per-member array and the basis functions (their keys) fixed by the architecture. Any other regularizer
is not decomposed: members then share it only if its configuration is the same (`reglab.engine.grouping.signature`).

>>> decompose(keras.regularizers.L2(0.01))
[(('sq',), 0.01)]
>>> [(key, round(c, 6)) for key, c in decompose(R.ElasticNet(0.1, l1_ratio=0.25))]
[(('abs',), 0.025), (('sq',), 0.0375)]
"""

from __future__ import annotations

import keras
from keras import ops

from reglab.kit import regularizers as R


def decompose(regularizer) -> list[tuple[tuple, float]] | None:
    """[(basis key, coefficient)] with `regularizer(w) == Σ coefficient · value(key, w)`, or None
    for a regularizer that is not a combination of the basis (a custom one)."""
    if regularizer is None:
        return []
    kind = type(regularizer)
    if kind is keras.regularizers.L1:
        return [(("abs",), float(regularizer.l1))]
    if kind is keras.regularizers.L2:
        return [(("sq",), float(regularizer.l2))]
    if kind is keras.regularizers.L1L2:
        return [(("abs",), float(regularizer.l1 or 0.0)), (("sq",), float(regularizer.l2 or 0.0))]
    if kind is R.ElasticNet:
        s, a = float(regularizer.strength), float(regularizer.l1_ratio)
        return [(("abs",), s * a), (("sq",), s * (1 - a) / 2)]
    if kind is R.GroupLasso:
        return [(("group", _plain(regularizer.axis)), float(regularizer.strength))]
    if kind is R.Smoothness:
        return [(("smooth", _plain(regularizer.axis)), float(regularizer.strength))]
    if kind is R.L2SP:  # toward w₀: the key names w₀ (one copy, the program's constant, whatever λ)
        return [(("sp", regularizer.digest), float(regularizer.l2))]
    return None


def value(key: tuple, w):
    """One basis function of one member's weight (a scalar)."""
    if key[0] == "abs":
        return R.sum_abs(w)
    if key[0] == "sq":
        return R.sum_squares(w)
    if key[0] == "group":
        return ops.sum(R.group_norms(w, key[1]))
    if key[0] == "smooth":
        return R.sum_squared_differences(w, key[1])
    if key[0] == "sp":
        return R.sum_squares(w - ops.convert_to_tensor(R.L2SP.of(key[1]), dtype=w.dtype))
    raise KeyError(key)


def _plain(axis):
    return tuple(axis) if isinstance(axis, list) else axis
