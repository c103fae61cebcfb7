"""A population's convolutions on the CPU: each one issued where XLA runs it fast, its members batched
the way measured fastest.

Two things make convolutions slow in a population's epoch on XLA's CPU backend, and both are fixed
while the epoch is traced (`jax.lax.conv_general_dilated` — what Keras's JAX backend calls for every
Conv*D layer — is replaced by `_Convolution` inside `per_member_on_cpu()`):

1. **Where the weight gradient runs.** XLA's CPU backend computes a convolution with Eigen only in
   the canonical order (batch, spatial…, feature) × (spatial…, in, out); its pass that rewrites other
   convolutions into that order (`ConvCanonicalization`) visits only the program's top level, never
   the body of a loop. JAX's transpose rule expresses a convolution's weight gradient with the batch
   as the contracted feature dimension (`f0b_i0o->0bf`), and an epoch's steps are a loop
   (`lax.scan`): so every step's weight gradient fell to XLA's naive loop emitter — Conv1D(64, 3) on
   32 × 64 × 64, ten steps: 584 ms in a loop vs 12.5 ms unrolled, for one member, as `model.fit`
   would (its step is the top level of its program). The backward pass here is JAX's own VJP with
   each of its convolutions re-issued in the canonical order by explicit transposes (`canonical`):
   the same arithmetic, now run by Eigen inside the loop (5.1 s → 0.074 s for nine members).
2. **How members are batched.** `jax.vmap` makes a grouped convolution of the member axis; members
   can also run one after another unrolled in the program, or in a `lax.map` loop. Which is fastest
   depends on the shapes and the number of members (measured: unrolled 1.7–4.7× faster than grouped
   for 6–12 members at keras-io sizes, grouped as fast for 40 members of a tiny convolution, `map`
   close to unrolled and compiled 3–8× faster). So each convolution's forward + backward is measured
   under each strategy when the program is traced, in a loop as the epoch runs it, and the one with
   the least compile time + expected running time (steps × one step) is used (`choose`).
   `REGLAB_CONV_BATCHING=unrolled|map|vmap` forces one (`auto`, the default, measures).

The arithmetic of each member's convolution is XLA's own in every strategy; only the order of the
operands' axes and the order in which members are computed change. On an accelerator nothing is
replaced: XLA's own grouped convolutions (cuDNN) are what it runs well.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import jax
import numpy as np

STRATEGIES = ("unrolled", "map", "vmap")
_SAMPLE = 4  # members measured for the strategies whose cost grows linearly with members
# Measuring costs ~0.3–1.5 s a convolution (three compilations). A convolution whose whole run is less
# arithmetic than this (~0.5 s at the 100 GFLOP/s a CPU's Eigen reaches) cannot repay it: it takes `map`,
# which compiles fastest and was within 1.8× of the best step in every measurement (never pathological,
# as grouped convolutions were for 32 → 64 channels: 4.6× the best).
WORTH_MEASURING = 50e9  # floating-point operations, forward + backward, all members, all expected calls
_context = threading.local()  # the trace in progress: its expected calls per convolution and its decisions
_decided: dict = {}  # per process: a convolution's signature -> the strategy measured best and the figures
_original = jax.lax.conv_general_dilated


def forced() -> str | None:
    """The strategy `REGLAB_CONV_BATCHING` forces, or None (measure)."""
    value = os.environ.get("REGLAB_CONV_BATCHING", "auto")
    if value == "auto":
        return None
    if value not in STRATEGIES:
        raise ValueError(
            f"REGLAB_CONV_BATCHING is one of auto, {', '.join(STRATEGIES)}. Received: REGLAB_CONV_BATCHING={value!r}"
        )
    return value


def canonical(
    lhs,
    rhs,
    window_strides,
    padding,
    lhs_dilation=None,
    rhs_dilation=None,
    dimension_numbers=None,
    feature_group_count=1,
    batch_group_count=1,
    precision=None,
    preferred_element_type=None,
):
    """`jax.lax.conv_general_dilated`, its operands transposed to (batch, spatial…, feature) and
    (spatial…, in, out) and its result transposed back: the same convolution in the order Eigen runs.

    >>> x = jax.random.normal(jax.random.key(0), (2, 5, 7))  # (batch, features, width)
    >>> w = jax.random.normal(jax.random.key(1), (3, 5, 3))  # (out, in, width)
    >>> args = ((1,), "SAME", None, None, ("NCW", "OIW", "NCW"))
    >>> canonical(x, w, *args).shape
    (2, 3, 7)
    >>> bool(jax.numpy.allclose(canonical(x, w, *args), jax.lax.conv_general_dilated(x, w, *args), atol=1e-5))
    True
    """
    lhs_spec, rhs_spec, out_spec = jax.lax.conv_dimension_numbers(lhs.shape, rhs.shape, dimension_numbers)
    n = lhs.ndim
    spatial = tuple(range(1, n - 1))
    lhs = jax.numpy.transpose(lhs, (lhs_spec[0], *lhs_spec[2:], lhs_spec[1]))
    rhs = jax.numpy.transpose(rhs, (*rhs_spec[2:], rhs_spec[1], rhs_spec[0]))
    order = jax.lax.ConvDimensionNumbers((0, n - 1, *spatial), (n - 1, n - 2, *range(n - 2)), (0, n - 1, *spatial))
    out = _original(
        lhs,
        rhs,
        window_strides,
        padding,
        lhs_dilation,
        rhs_dilation,
        order,
        feature_group_count,
        batch_group_count,
        precision,
        preferred_element_type,
    )
    back = [0] * n  # result axis out_spec[k] comes from the canonical result's axis (0, n - 1, 1, 2, …)[k]
    for k, axis in enumerate(out_spec):
        back[axis] = (0, n - 1, *spatial)[k]
    return jax.numpy.transpose(out, back)


def _canonically(jaxpr, consts, *args):
    """Evaluate `jaxpr` with each of its convolutions (also inside nested jitted calls) issued by `canonical`."""
    from jax.extend.core import Literal

    env = dict(zip(jaxpr.constvars, consts))
    env.update(zip(jaxpr.invars, args))
    for eqn in jaxpr.eqns:
        values = [v.val if isinstance(v, Literal) else env[v] for v in eqn.invars]
        params = eqn.params
        if eqn.primitive.name == "conv_general_dilated":
            outs = [
                canonical(
                    *values,
                    params["window_strides"],
                    params["padding"],
                    params["lhs_dilation"],
                    params["rhs_dilation"],
                    params["dimension_numbers"],
                    params["feature_group_count"],
                    params["batch_group_count"],
                    params["precision"],
                    params["preferred_element_type"],
                )
            ]
        elif eqn.primitive.name in ("pjit", "jit", "closed_call") and "jaxpr" in params:
            inner = params["jaxpr"]
            outs = _canonically(inner.jaxpr, inner.consts, *values)
        else:
            outs = eqn.primitive.bind(*values, **params)
            outs = outs if eqn.primitive.multiple_results else [outs]
        env.update(zip(eqn.outvars, outs))
    return [v.val if isinstance(v, Literal) else env[v] for v in jaxpr.outvars]


def _batched(fn, strategy: str):
    """`fn` of one member, over a leading member axis on the arguments flagged batched: how `strategy` does it."""

    def run(axis_size, in_batched, *args):
        if strategy == "vmap":
            return jax.vmap(fn, in_axes=[0 if b else None for b in in_batched])(*args)
        batched = [a for a, b in zip(args, in_batched) if b]

        def one(sliced):
            it = iter(sliced)
            return fn(*[next(it) if b else a for a, b in zip(args, in_batched)])

        if strategy == "map":
            return jax.lax.map(one, batched)
        outs = [one([a[m] for a in batched]) for m in range(axis_size)]  # unrolled: one convolution per member
        return jax.tree.map(lambda *parts: jax.numpy.stack(parts), *outs)

    return run


class _Convolution:
    """One convolution call of a member's step (its arguments but the operands fixed): forward and backward
    as functions of one member, each with a batching rule that applies the strategy chosen for it."""

    def __init__(self, args, kwargs):
        self.args, self.kwargs = args, kwargs

    def forward(self, x, w):
        return canonical(x, w, *self.args, **self.kwargs)

    def backward(self, x, w, g):
        closed = jax.make_jaxpr(lambda x, w, g: jax.vjp(self.forward, x, w)[1](g))(x, w, g)
        return tuple(_canonically(closed.jaxpr, closed.consts, x, w, g))

    def flops(self, x, w) -> float:
        """Floating-point operations of one member's forward + backward (≈ 3 forwards)."""
        out = jax.eval_shape(self.forward, x, w)
        lhs_spec, rhs_spec, out_spec = jax.lax.conv_dimension_numbers(
            x.shape, w.shape, self.kwargs.get("dimension_numbers", self.args[4] if len(self.args) > 4 else None)
        )
        per_output = 2 * np.prod([w.shape[d] for d in rhs_spec[1:]])  # in-features (per group) × window
        return 3.0 * per_output * np.prod(out.shape)

    def signature(self, axis_size, in_batched, x, w) -> str:
        return repr(
            (
                self.args,
                sorted(self.kwargs.items()),
                x.shape,
                str(x.dtype),
                w.shape,
                str(w.dtype),
                tuple(in_batched),
                axis_size,
            )
        )

    def _rule(self, fn):
        mapped = jax.custom_batching.custom_vmap(fn)

        @mapped.def_vmap
        def rule(axis_size, in_batched, *args):
            x, w = (
                jax.ShapeDtypeStruct(a.shape[1:] if b else a.shape, a.dtype)  # one member's
                for a, b in zip(args[:2], in_batched[:2])
            )
            strategy = choose(self, axis_size, tuple(in_batched[:2]), x, w)
            out = _batched(fn, strategy)(axis_size, in_batched, *args)
            return out, jax.tree.map(lambda _: True, out)

        return mapped

    def __call__(self, lhs, rhs):
        forward, backward = self._rule(self.forward), self._rule(self.backward)

        @jax.custom_vjp
        def conv(x, w):
            return forward(x, w)

        conv.defvjp(lambda x, w: (forward(x, w), (x, w)), lambda res, g: backward(*res, g))
        return conv(lhs, rhs)


def choose(convolution: _Convolution, axis_size: int, in_batched: tuple, x, w) -> str:
    """The strategy for this convolution with `axis_size` members: the one forced, else the one with the
    least compile time + expected calls × time of a step, measured once per signature in this process."""
    key = convolution.signature(axis_size, in_batched, x, w)
    calls = getattr(_context, "calls", 0)
    strategy = forced()
    if strategy is not None:
        decision = {"strategy": strategy, "expected_calls": calls, "measured": None, "forced": True}
    elif key in _decided:
        decision = _decided[key]
    elif axis_size == 1:  # one member: the convolution itself, whatever the strategy
        decision = {"strategy": "unrolled", "expected_calls": calls, "measured": None}
    elif calls * convolution.flops(x, w) * axis_size < WORTH_MEASURING:  # it could not repay measuring
        decision = {"strategy": "map", "expected_calls": calls, "measured": None}
    else:
        started = time.perf_counter()
        with ThreadPoolExecutor(1) as pool:  # a thread of its own: tracing state is per thread
            decision = pool.submit(
                _measure, convolution, axis_size, in_batched, x.shape, x.dtype, w.shape, w.dtype, calls
            ).result()
        decision["seconds"] = time.perf_counter() - started  # what measuring cost
        _decided[key] = decision
    decisions = getattr(_context, "decisions", None)
    if decisions is not None:
        decisions[key] = decision
    return decision["strategy"]


def _measure(convolution, axis_size, in_batched, x_shape, x_dtype, w_shape, w_dtype, calls, steps=3) -> dict:
    """Compile and time forward + backward under each strategy, in a loop of `steps` as the epoch runs it.
    `unrolled` and `map` run members one after another, so they are measured on a few and their step
    scaled up (and `unrolled`'s compilation too: its program holds one convolution per member).
    One after another: compiling side by side on a CPU slows the others' compilations and runs down."""
    rng = np.random.default_rng(0)

    def build(strategy):
        members = axis_size if strategy == "vmap" else min(axis_size, _SAMPLE)
        shape = lambda s, b: (steps, members, *s) if b else (steps, *s)
        xs = rng.standard_normal(shape(x_shape, in_batched[0])).astype(x_dtype)
        ws = rng.standard_normal(shape(w_shape, in_batched[1])).astype(w_dtype)
        forward, backward = _batched(convolution.forward, strategy), _batched(convolution.backward, strategy)

        def loop(xs, ws):
            def body(total, step):
                x, w = step
                y = forward(members, in_batched, x, w)
                dx, dw = backward(members, (*in_batched, True), x, w, jax.numpy.tanh(y))
                return total + dx.sum() + dw.sum(), None

            return jax.lax.scan(body, 0.0, (xs, ws))[0]

        started = time.perf_counter()
        compiled = jax.jit(loop).lower(xs, ws).compile()
        return compiled, (xs, ws), members, time.perf_counter() - started

    figures = {}
    for strategy in STRATEGIES:
        compiled, args, members, compile_seconds = build(strategy)
        compiled(*args).block_until_ready()
        runs = []
        for _ in range(2):
            started = time.perf_counter()
            compiled(*args).block_until_ready()
            runs.append((time.perf_counter() - started) / steps)
        scale = axis_size / members
        figures[strategy] = {
            "step_seconds": min(runs) * scale,
            "compile_seconds": compile_seconds * (scale if strategy == "unrolled" else 1),
        }
    cost = {s: f["compile_seconds"] + calls * f["step_seconds"] for s, f in figures.items()}
    return {"strategy": min(cost, key=cost.get), "expected_calls": calls, "measured": figures}


def remember(decisions: dict) -> None:
    """Take measured decisions as this process's own (a resumed population's, from its checkpoint: the same
    strategies round the same way, so the resumed run equals an uninterrupted one bit for bit)."""
    for key, decision in decisions.items():
        if isinstance(decision, dict) and decision.get("measured") and decision.get("strategy") in STRATEGIES:
            _decided[key] = decision


@contextlib.contextmanager
def per_member_on_cpu():
    """While tracing a population's program on the CPU: each convolution canonical and batched as measured
    best for the runs `expected_calls` announces for its part of the program. Yields the decisions made
    ({signature: {strategy, figures}}), to keep with the program."""
    decisions: dict = {}
    if jax.default_backend() != "cpu":
        yield decisions
        return
    forced()  # a wrong REGLAB_CONV_BATCHING is refused before any tracing
    _context.calls, _context.decisions = 0, decisions

    def conv(lhs, rhs, *args, **kwargs):
        return _Convolution(args, kwargs)(lhs, rhs)

    jax.lax.conv_general_dilated = conv
    try:
        yield decisions
    finally:
        jax.lax.conv_general_dilated = _original
        _context.calls, _context.decisions = 0, None


@contextlib.contextmanager
def expected_calls(calls: int):
    """Inside `per_member_on_cpu`: the convolutions traced here will run `calls` times (a segment's steps ×
    epochs; 0: never measure them)."""
    before = getattr(_context, "calls", 0)
    _context.calls = calls
    try:
        yield
    finally:
        _context.calls = before
