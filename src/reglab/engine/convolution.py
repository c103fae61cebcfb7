"""One batching rule, because a measurement demands it: convolutions of a population on the CPU.

`jax.vmap` turns a member axis over convolution weights into a grouped convolution
(`feature_group_count = members`), and XLA's CPU backend computes the backward pass of a grouped
convolution very slowly: 12 members, 32×8×8×16 inputs, 3×3×16×16 kernels, forward + backward took
14–16 ms against 3.5 ms for one convolution per member (shared/experiments/conv_vjp_probe.py). So,
while a population's step is traced on the CPU, `jax.lax.conv_general_dilated` (what Keras's JAX
backend calls for every Conv*D layer) becomes a function with a custom VJP whose forward and
backward halves each carry a batching rule that runs the members one after another (`lax.map`: one
convolution in the program whatever the population's size). The arithmetic of each member's
convolution is XLA's own; only the order in which members are computed changes.
"""

from __future__ import annotations

import contextlib
import functools

import jax


def _per_member(fn):
    """`fn` with a batching rule that maps over the member axis instead of batching the operation."""
    mapped = jax.custom_batching.custom_vmap(fn)

    @mapped.def_vmap
    def rule(axis_size, in_batched, *args):
        batched = [a for a, b in zip(args, in_batched) if b]

        def one(sliced):
            it = iter(sliced)
            return fn(*[next(it) if b else a for a, b in zip(args, in_batched)])

        out = jax.lax.map(one, batched)
        return out, jax.tree.map(lambda _: True, out)

    return mapped


def _member_conv(original):
    @functools.wraps(original)
    def conv(lhs, rhs, *args, **kwargs):
        def forward(x, w):
            return original(x, w, *args, **kwargs)

        def backward(x, w, g):
            return jax.vjp(forward, x, w)[1](g)

        fwd, bwd = _per_member(forward), _per_member(backward)

        @jax.custom_vjp
        def f(x, w):
            return fwd(x, w)

        f.defvjp(lambda x, w: (fwd(x, w), (x, w)), lambda res, g: bwd(*res, g))
        return f(lhs, rhs)

    return conv


@contextlib.contextmanager
def per_member_on_cpu():
    """While tracing a population step: member-by-member convolutions on the CPU, XLA's own elsewhere."""
    if jax.default_backend() != "cpu":
        yield
        return
    original = jax.lax.conv_general_dilated
    jax.lax.conv_general_dilated = _member_conv(original)
    try:
        yield
    finally:
        jax.lax.conv_general_dilated = original
