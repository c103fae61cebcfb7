"""The stacked engine: every member of a sweep trained at once, in one compiled program.

Members that share an architecture are stacked: each weight gets a leading member axis, each member
gathers its own shuffled batches by index from device-resident data, and a whole epoch runs inside
one XLA-compiled TensorFlow function. Per-member quantities — penalty coefficients (per regularizer,
per layer), dropout rates, learning rates, step counters, seeds — are tensors, so one compiled
program serves every point of the sweep. The optimizer update is elementwise, so this is the same
mathematics as training the members one by one (a test checks it against the reference engine).

Isolation: nothing reduces across the member axis except the sum of the members' losses, whose
gradient is block-diagonal. A member whose loss stops being finite is frozen at its last finite
weights (its step size becomes 0 and its gradient is replaced before the update, so NaN never enters the
arithmetic) and marked diverged. A non-finite gradient under a finite loss (rare: it shows up in the
weights) is caught once per epoch: that member goes back to its weights at the start of the epoch and
is marked diverged — cheaper than scanning every gradient at every step.

Models it cannot express (anything but Dense, Conv1D/2D, pooling, Flatten, Dropout, Activation in a
chain, or an unsupported optimizer setting) raise `Unsupported` with a one-line reason; the sweep
then falls back to the reference engine.
"""

from __future__ import annotations

import math
import os
import time
import traceback
from dataclasses import dataclass, field

import keras
import numpy as np
import tensorflow as tf

from reglab import points, records
from reglab import regularizers as R
from reglab.engine.batches import default_order, pad as _pad, standardized_views as _standardized_views
from reglab.schedules import Scheduled


JIT = True  # XLA: a whole epoch of every member is one compiled program


class Unsupported(Exception):
    """The model or training setting cannot be stacked; the message says why."""


# --- lowering a Keras model to a chain of stacked operations ------------------------------------


@dataclass
class Op:
    kind: str  # dense, conv, pool, flatten, dropout, activation
    name: str
    config: dict
    weights: list = field(default_factory=list)  # [(slot, path)] for kernel / bias
    activity: object = None  # the activity regularizer, if any


_POOLS = {"MaxPooling1D": ("max", 1), "MaxPooling2D": ("max", 2), "AveragePooling1D": ("avg", 1),
          "AveragePooling2D": ("avg", 2)}


def _chain(model) -> list:
    """The leaf layers of a model that is a simple chain (Sequential, or functional without branches)."""
    layers = []
    for layer in model.layers:
        if isinstance(layer, keras.layers.InputLayer):
            continue
        if isinstance(layer, keras.Model):
            if not isinstance(layer, keras.Sequential):
                raise Unsupported(f"nested functional model {layer.name!r}")
            layers.extend(_chain(layer))
        else:
            layers.append(layer)
    if not isinstance(model, keras.Sequential):
        for layer in layers:
            if len(layer._inbound_nodes) != 1 or len(keras.tree.flatten(layer._inbound_nodes[0].input_tensors)) != 1:
                raise Unsupported(f"layer {layer.name!r} is not part of a single chain")
    return layers


def lower(model) -> list[Op]:
    """The model as a chain of `Op`s, or `Unsupported`."""
    ops_ = []
    for layer in _chain(model):
        config = layer.get_config()
        kind = type(layer).__name__
        activity = layer.activity_regularizer
        if kind == "Dense":
            op = Op("dense", layer.name, {"activation": config["activation"], "use_bias": config["use_bias"]})
        elif kind in ("Conv1D", "Conv2D"):
            if config.get("groups", 1) != 1 or config.get("data_format", "channels_last") != "channels_last":
                raise Unsupported(f"{kind} {layer.name!r} with groups or channels_first")
            rank = 1 if kind == "Conv1D" else 2
            op = Op("conv", layer.name, {"rank": rank, "strides": _tuple(config["strides"], rank),
                                         "padding": config["padding"].upper(),
                                         "dilation": _tuple(config["dilation_rate"], rank),
                                         "activation": config["activation"], "use_bias": config["use_bias"]})
            if op.config["padding"] not in ("VALID", "SAME"):
                raise Unsupported(f"{kind} padding {config['padding']!r}")
        elif kind in _POOLS:
            how, rank = _POOLS[kind]
            op = Op("pool", layer.name, {"how": how, "rank": rank, "size": _tuple(config["pool_size"], rank),
                                         "strides": _tuple(config["strides"] or config["pool_size"], rank),
                                         "padding": config["padding"].upper()})
        elif kind == "Flatten":
            op = Op("flatten", layer.name, {})
        elif kind == "Dropout":
            if config.get("noise_shape") is not None:
                raise Unsupported(f"Dropout {layer.name!r} with a noise_shape")
            op = Op("dropout", layer.name, {"rate": float(config["rate"])})
        elif kind == "Activation":
            op = Op("activation", layer.name, {"activation": config["activation"]})
        else:
            raise Unsupported(f"layer type {kind} ({layer.name!r})")
        if op.kind in ("dense", "conv"):
            op.weights = [("kernel", layer.kernel)] + ([("bias", layer.bias)] if op.config["use_bias"] else [])
            if not all(v.trainable for _, v in op.weights):
                raise Unsupported(f"frozen weights in {layer.name!r}")
            op.config["act_fn"] = keras.activations.get(op.config["activation"])
        if op.kind == "activation":
            op.config["act_fn"] = keras.activations.get(op.config["activation"])
        op.activity = activity
        ops_.append(op)
    return ops_


def _tuple(value, rank):
    return tuple(value) if isinstance(value, (list, tuple)) else (value,) * rank


def signature(ops_: list[Op], model) -> tuple:
    """Members whose models share this signature can be stacked (dropout rates may differ)."""
    parts = []
    for op in ops_:
        config = {k: v for k, v in op.config.items() if k not in ("act_fn", "rate")}
        shapes = tuple((slot, tuple(v.shape), v.path) for slot, v in op.weights)
        parts.append((op.kind, op.name, repr(sorted(config.items())), shapes))
    return (tuple(model.input_shape[1:]), tuple(parts))


# --- penalties as per-member coefficients on a small basis of functions -------------------------


def _decompose(regularizer) -> list[tuple[tuple, float, object]]:
    """[(basis key, coefficient, function of one member's tensor)] such that
    regularizer(w) == Σ coefficient · function(w). Unknown regularizers are their own basis."""
    if regularizer is None:
        return []
    if isinstance(regularizer, Scheduled):  # the outer one is taken apart by `_slots`
        raise Unsupported("a Scheduled penalty inside another regularizer")
    if isinstance(regularizer, R.L1L2) or type(regularizer) in (R.L1, R.L2):
        l1 = float(getattr(regularizer, "l1", 0.0) or 0.0)
        l2 = float(getattr(regularizer, "l2", 0.0) or 0.0)
        return [(("abs",), l1, None), (("sq",), l2, None)]
    if type(regularizer) is R.ElasticNet:
        return [(("abs",), regularizer.strength * regularizer.l1_ratio, None),
                (("sq",), regularizer.strength * (1 - regularizer.l1_ratio) / 2, None)]
    if type(regularizer) is R.GroupLasso:
        return [(("group", regularizer.axis), regularizer.strength, None)]
    if type(regularizer) is R.Smoothness:
        return [(("smooth", regularizer.axis), regularizer.strength, None)]
    return [(("custom", id(regularizer)), 1.0, regularizer)]


def _basis_value(key, fn, w, member_mask=None):
    """Σ over each member's tensor of the basis function: (M, ...) -> (M,)."""
    axes = list(range(1, len(w.shape)))
    if key[0] == "abs":
        return tf.reduce_sum(tf.abs(w), axis=axes)
    if key[0] == "sq":
        return tf.reduce_sum(tf.square(w), axis=axes)
    if key[0] == "group":
        ndim = len(w.shape) - 1
        axis = key[1]
        reduce = list(range(ndim - 1)) if axis is None else [a % ndim for a in ((axis,) if isinstance(axis, int) else axis)]
        squares = tf.reduce_sum(tf.square(w), axis=[a + 1 for a in reduce]) if reduce else tf.square(w)
        positive = squares > 0
        norms = tf.where(positive, tf.sqrt(tf.where(positive, squares, tf.ones_like(squares))), tf.zeros_like(squares))
        return tf.reduce_sum(norms, axis=list(range(1, len(norms.shape))))
    if key[0] == "smooth":
        ndim = len(w.shape) - 1
        a = key[1] % ndim + 1
        if w.shape[a] < 2:
            return tf.zeros(tf.shape(w)[:1], w.dtype)
        n = w.shape[a]
        diff = tf.gather(w, tf.range(1, n), axis=a) - tf.gather(w, tf.range(0, n - 1), axis=a)
        return tf.reduce_sum(tf.square(diff), axis=list(range(1, len(w.shape))))
    # a custom regularizer: called per member (unrolled; members that do not use it get 0)
    values = [tf.cast(fn(w[m]), w.dtype) if member_mask[m] else tf.zeros((), w.dtype) for m in range(w.shape[0])]
    return tf.stack(values)


@dataclass
class Slot:
    """One penalized place (a weight, or a layer's output) with its basis and per-member coefficients."""

    term: str  # the record name: the weight's path, or "<layer>/activity"
    op_index: int
    weight_index: int | None  # index into the flat weight list; None for activity
    keys: list  # basis keys
    fns: list
    coefficients: np.ndarray  # (M, len(keys)), at scale 1
    schedules: list = field(default_factory=list)  # per member: its `Schedule`, or None; [] if none is scheduled

    def scales(self, epoch: int) -> np.ndarray:
        """(M,) each member's multiplier of this slot's penalty in `epoch` (0-based), as Keras's
        float32 scale variable holds it; 1 for members without a schedule."""
        return np.array([np.float32(s(epoch)) if s is not None else 1.0 for s in self.schedules], dtype="float32")


def _slots(ops_per_member: list[list[Op]], flat_index) -> list[Slot]:
    template = ops_per_member[0]
    slots = []
    for i, op in enumerate(template):
        places = [(slot, wi) for wi, (slot, _) in enumerate(op.weights)] + [("activity", None)]
        for slot_name, wi in places:
            regs = []
            for ops_ in ops_per_member:
                member_op = ops_[i]
                if slot_name == "activity":
                    regs.append(member_op.activity)
                else:
                    regs.append(member_op.weights[wi][1].regularizer)
            if all(r is None for r in regs):
                continue
            schedules = [reg.schedule if isinstance(reg, Scheduled) else None for reg in regs]
            regs = [reg.regularizer if isinstance(reg, Scheduled) else reg for reg in regs]
            keys, fns, coefficient_rows = [], [], []
            for m, reg in enumerate(regs):
                row = {}
                for key, coef, fn in _decompose(reg):
                    if key not in keys:
                        keys.append(key)
                        fns.append(fn)
                    row[key] = row.get(key, 0.0) + coef
                coefficient_rows.append(row)
            coefficients = np.array([[row.get(k, 0.0) for k in keys] for row in coefficient_rows], dtype="float32")
            # a basis function no member uses (L2 is L1L2 with l1=0) would still cost its value and gradient
            used = [k for k in range(len(keys)) if coefficients[:, k].any()]
            keys, fns, coefficients = [keys[k] for k in used], [fns[k] for k in used], coefficients[:, used]
            term = f"{op.name}/activity" if slot_name == "activity" else op.weights[wi][1].path
            slots.append(Slot(term, i, None if wi is None else flat_index[(i, wi)], keys, fns, coefficients,
                              schedules if any(schedules) else []))
    return slots


# --- the stacked forward pass -------------------------------------------------------------------


def _mix(x):
    """A 32-bit integer hash (murmur3's finalizer): the counter-based RNG of per-member dropout."""
    x = tf.bitwise.bitwise_xor(x, tf.bitwise.right_shift(x, 16))
    x = x * tf.constant(0x85EBCA6B, tf.uint32)
    x = tf.bitwise.bitwise_xor(x, tf.bitwise.right_shift(x, 13))
    x = x * tf.constant(0xC2B2AE35, tf.uint32)
    return tf.bitwise.bitwise_xor(x, tf.bitwise.right_shift(x, 16))


def _uniform(shape, member_seeds, counter):
    """Uniform [0, 1) numbers, a function of (member seed, counter, position) only."""
    size = tf.reduce_prod(shape[1:])
    position = tf.reshape(tf.cast(tf.range(size), tf.uint32), tf.concat([[1], shape[1:]], 0))
    seeds = tf.reshape(member_seeds, tf.concat([[-1], tf.ones_like(shape[1:])], 0))
    bits = _mix(_mix(seeds ^ _mix(tf.cast(counter, tf.uint32) + tf.constant(0x9E3779B9, tf.uint32))) + position)
    return tf.cast(tf.bitwise.right_shift(bits, 8), tf.float32) * (1.0 / (1 << 24))


class Program:
    """The stacked computation for one group of members sharing an architecture."""

    def __init__(self, ops_, slots, loss_fn, metric_fns):
        self.ops, self.slots = ops_, slots
        self.loss_fn, self.metric_fns = loss_fn, metric_fns

    def forward(self, weights, coefficients, x, training, rates, member_seeds, counter, row_mask):
        """x: (M, B, ...) → (outputs, activity penalties per slot {slot index: (M,)}).
        coefficients: per slot, the members' (M, basis) penalty coefficients."""
        activity = {}
        w = 0
        for i, op in enumerate(self.ops):
            if op.kind == "dense":
                kernel = weights[w]
                shape = tf.shape(x)
                flat = tf.reshape(x, [shape[0], -1, shape[-1]])
                y = tf.matmul(flat, kernel)
                if op.config["use_bias"]:
                    y = y + weights[w + 1][:, None, :]
                x = tf.reshape(y, tf.concat([shape[:-1], [kernel.shape[-1]]], 0))
                x = op.config["act_fn"](x)
                w += len(op.weights)
            elif op.kind == "conv":
                x = self._conv(op, x, weights[w], weights[w + 1] if op.config["use_bias"] else None)
                x = op.config["act_fn"](x)
                w += len(op.weights)
            elif op.kind == "pool":
                x = self._pool(op, x)
            elif op.kind == "flatten":
                shape = tf.shape(x)
                x = tf.reshape(x, [shape[0], shape[1], -1])
            elif op.kind == "dropout" and training:
                rate = tf.reshape(rates[:, i], [-1] + [1] * (len(x.shape) - 1))
                keep = _uniform(tf.shape(x), member_seeds, counter * 131 + i) >= rate
                x = tf.where(keep, x / (1.0 - rate), tf.zeros_like(x))
            elif op.kind == "activation":
                x = op.config["act_fn"](x)
            for s, slot in enumerate(self.slots):
                if slot.weight_index is None and slot.op_index == i:
                    masked = x * tf.reshape(row_mask, [tf.shape(row_mask)[0], -1] + [1] * (len(x.shape) - 2))
                    n = tf.maximum(tf.reduce_sum(row_mask, axis=1), 1.0)
                    activity[s] = self._slot_penalty(slot, coefficients[s], masked) / n
        return x, activity

    @staticmethod
    def _conv(op, x, kernel, bias):
        # Members become groups of a grouped convolution: (M, B, *S, C) → (B, *S, M·C).
        M = kernel.shape[0]
        rank = op.config["rank"]
        if rank == 1:
            x = x[:, :, None]
            kernel = kernel[:, None]
        shape = tf.shape(x)
        B, H, W_, C = shape[1], shape[2], shape[3], x.shape[-1]
        merged = tf.reshape(tf.transpose(x, [1, 2, 3, 0, 4]), [B, H, W_, M * C])
        kh, kw, cin, cout = kernel.shape[1:]
        filters = tf.reshape(tf.transpose(kernel, [1, 2, 3, 0, 4]), [kh, kw, cin, M * cout])
        strides = (1,) + op.config["strides"] if rank == 1 else op.config["strides"]
        dilation = (1,) + op.config["dilation"] if rank == 1 else op.config["dilation"]
        y = tf.nn.conv2d(merged, filters, strides=[1, *strides, 1], padding=op.config["padding"], dilations=[1, *dilation, 1])
        ys = tf.shape(y)
        y = tf.transpose(tf.reshape(y, [ys[0], ys[1], ys[2], M, cout]), [3, 0, 1, 2, 4])
        if bias is not None:
            y = y + bias[:, None, None, None, :]
        return y[:, :, 0] if rank == 1 else y

    @staticmethod
    def _pool(op, x):
        shape = tf.shape(x)  # (M, B, *spatial, C): pool with members folded into the batch
        flat = tf.reshape(x, tf.concat([[-1], shape[2:]], 0))
        pool = tf.nn.max_pool if op.config["how"] == "max" else tf.nn.avg_pool
        y = pool(flat, ksize=op.config["size"], strides=op.config["strides"], padding=op.config["padding"])
        return tf.reshape(y, tf.concat([shape[:2], tf.shape(y)[1:]], 0))

    @staticmethod
    def _slot_penalty(slot, coefficients, tensor):
        total = tf.zeros(tf.shape(tensor)[:1], tensor.dtype)
        for k, (key, fn) in enumerate(zip(slot.keys, slot.fns)):
            total += coefficients[:, k] * _basis_value(key, fn, tensor, slot.coefficients[:, k] != 0)
        return total

    def penalties(self, weights, coefficients, activity):
        """(M, n_slots): every slot's penalty per member."""
        columns = []
        for s, slot in enumerate(self.slots):
            columns.append(activity[s] if slot.weight_index is None
                           else self._slot_penalty(slot, coefficients[s], weights[slot.weight_index]))
        if not columns:
            return tf.zeros([weights[0].shape[0], 0])
        return tf.stack(columns, axis=1)


# --- optimizers with a member axis (the same update rules as Keras's) ---------------------------


class StackedOptimizer:
    """Adam, AdamW, SGD (momentum, Nesterov) and RMSprop, elementwise over stacked weights."""

    def __init__(self, optimizer):
        kind = type(optimizer).__name__
        if kind not in ("Adam", "AdamW", "SGD", "RMSprop"):
            raise Unsupported(f"optimizer {kind}")
        for attribute in ("clipnorm", "clipvalue", "global_clipnorm"):
            if getattr(optimizer, attribute, None):
                raise Unsupported(f"{kind} with {attribute} (a cross-member reduction is never allowed)")
        if getattr(optimizer, "use_ema", False) or getattr(optimizer, "amsgrad", False) or getattr(optimizer, "centered", False):
            raise Unsupported(f"{kind} with use_ema, amsgrad or centered")
        if getattr(optimizer, "gradient_accumulation_steps", None):
            raise Unsupported(f"{kind} with gradient accumulation")
        self.kind = kind
        self.schedule = optimizer._learning_rate if isinstance(
            optimizer._learning_rate, keras.optimizers.schedules.LearningRateSchedule) else None
        self.learning_rate = float(keras.ops.convert_to_numpy(optimizer.learning_rate)) if self.schedule is None else None
        self.weight_decay = float(optimizer.weight_decay or 0.0)
        self.hyper = {k: float(getattr(optimizer, k)) for k in ("beta_1", "beta_2", "epsilon", "momentum", "rho")
                      if isinstance(getattr(optimizer, k, None), (int, float))}
        self.nesterov = bool(getattr(optimizer, "nesterov", False))

    def n_slots(self) -> int:
        if self.kind in ("Adam", "AdamW"):
            return 2
        if self.kind == "RMSprop":
            return 2 if self.hyper.get("momentum", 0) > 0 else 1
        return 1 if self.hyper.get("momentum", 0) != 0 else 0

    def rate(self, iterations):
        """Per-member learning rate at each member's own iteration count (M,)."""
        if self.schedule is None:
            return tf.fill(tf.shape(iterations), tf.constant(self.learning_rate, tf.float32))
        return tf.cast(self.schedule(tf.cast(iterations, tf.float32)), tf.float32)

    def update(self, w, g, slots, iterations, lr, ok, decay=None):
        """One step for one stacked weight. lr, iterations (before the step), ok, decay: (M,); `decay` is
        each member's decoupled weight decay on this weight (Keras's `w ← w − w·wd·lr` first), or None.

        Members with ok=False keep their weight and slots bit for bit without an elementwise select:
        their learning rate becomes 0 and their moment decays 1, so the update adds exact zeros
        (`g` must already be finite for them). Members with ok=True get Keras's arithmetic exactly.
        """
        shape = [-1] + [1] * (len(w.shape) - 1)
        okf = tf.reshape(tf.cast(ok, tf.float32), shape)
        lr = tf.reshape(lr, shape) * okf

        def moment_decay(value):  # a moment's decay factor: `value` for members that step, 1 for the others
            return tf.where(tf.reshape(ok, shape), tf.constant(value, tf.float32), tf.constant(1.0, tf.float32))

        if decay is not None:
            w = w - w * tf.reshape(decay, shape) * lr
        h = self.hyper
        if self.kind in ("Adam", "AdamW"):
            m, v = slots
            alpha = self._adam_alpha(lr, iterations, shape)
            m = m + (g - m) * ((1 - h["beta_1"]) * okf)
            v = v + (tf.square(g) - v) * ((1 - h["beta_2"]) * okf)
            return w - m * alpha / (tf.sqrt(v) + h["epsilon"]), [m, v]
        if self.kind == "SGD":
            if not self.n_slots():
                return w - g * lr, []
            (m,) = slots
            m = m * moment_decay(h["momentum"]) - g * lr
            step = m * h["momentum"] - g * lr if self.nesterov else m
            return w + step * okf, [m]
        velocity = moment_decay(h["rho"]) * slots[0] + ((1 - h["rho"]) * okf) * tf.square(g)
        increment = lr * g / tf.sqrt(velocity + h["epsilon"])
        if self.n_slots() == 2:
            momentum = moment_decay(h["momentum"]) * slots[1] + increment
            return w - momentum * okf, [velocity, momentum]
        return w - increment, [velocity]


    def _adam_alpha(self, lr, iterations, shape):
        """Keras's Adam step factor lr·√(1−β₂ᵗ)/(1−β₁ᵗ) at t = iterations + 1 (the step being taken)."""
        h = self.hyper
        t = tf.reshape(tf.cast(iterations + 1, tf.float32), shape)
        return lr * tf.sqrt(1 - tf.pow(h["beta_2"], t)) / (1 - tf.pow(h["beta_1"], t))

    def step_size(self, new_slots, iterations, lr, ok, rank):
        """η: the step per unit of gradient just taken (after `update`; 0 for members that did not step),
        as `reglab.optimizers.Proximal` computes it for the Keras optimizer."""
        shape = [-1] + [1] * (rank - 1)
        lr = tf.reshape(lr * tf.cast(ok, tf.float32), shape)
        h = self.hyper
        if self.kind in ("Adam", "AdamW"):
            alpha = self._adam_alpha(lr, iterations, shape)
            return alpha / (tf.sqrt(new_slots[1]) + h["epsilon"])
        if self.kind == "RMSprop":
            return lr / tf.sqrt(new_slots[0] + h["epsilon"])
        return lr


def soft_threshold(w, strength, step):
    """The proximal operator of `strength·Σ|w|` (per member) for the step `step`."""
    threshold = tf.reshape(strength, [-1] + [1] * (len(w.shape) - 1)) * step
    return tf.sign(w) * tf.maximum(tf.abs(w) - threshold, 0.0)


def group_shrink(w, strength, step):
    """The proximal operator of `strength·Σ_g‖w_g‖₂`, a group per output unit, with the group's mean
    step (as `reglab.optimizers.Proximal.prox`)."""
    reduce = list(range(1, len(w.shape) - 1))
    norms = tf.sqrt(tf.reduce_sum(tf.square(w), axis=reduce, keepdims=True))
    tau = tf.reshape(strength, [-1] + [1] * (len(w.shape) - 1)) * tf.reduce_mean(
        step * tf.ones_like(w), axis=reduce, keepdims=True)
    scale = tf.maximum(1.0 - tau / tf.maximum(norms, 1e-30), 0.0)
    return w * tf.where(norms > 0, scale, 0.0)


# --- metrics ------------------------------------------------------------------------------------


def _metric_fn(name: str, loss: str):
    """Per-sample metric of (y (M,B), output (M,B,…)) for the metrics the sweeps use."""
    if name in ("accuracy", "acc"):
        if loss == "binary_crossentropy":
            return lambda y, out: tf.cast(tf.equal(tf.cast(out[..., 0] > 0.5, tf.float32), tf.cast(y, tf.float32)), tf.float32)
        return lambda y, out: tf.cast(tf.equal(tf.argmax(out, axis=-1, output_type=tf.int32), tf.cast(y, tf.int32)), tf.float32)
    if name in ("mean_absolute_error", "mae"):
        return lambda y, out: tf.abs(out[..., 0] - tf.cast(y, out.dtype))
    raise Unsupported(f"metric {name!r}")


def _loss_fn(name: str):
    function = keras.losses.get(name)
    if name in ("sparse_categorical_crossentropy",):
        return lambda y, out: function(y, out)
    if name in ("binary_crossentropy", "mean_squared_error", "mse", "mean_absolute_error"):
        return lambda y, out: function(tf.cast(y, out.dtype)[..., None], out)
    raise Unsupported(f"loss {name!r}")


# --- training -----------------------------------------------------------------------------------


@dataclass
class Group:
    """Members that share an architecture, with what the stacked program needs to know about them."""

    members: list
    ops: list  # the template chain
    point_models: list  # the Keras model of each member's point


def plan_groups(members, make_model) -> tuple[list[Group], dict]:
    """Build one model per point, lower it, group members by architecture.

    Returns (groups, {member id: error} for points whose model could not be built). Raises
    `Unsupported` if a model cannot be stacked.
    """
    if any("learning_rate" in m.point for m in members):
        raise Unsupported("points with their own learning_rate")
    models, lowered, groups, failed = {}, {}, {}, {}
    for member in members:
        if member.point_id not in models and member.point_id not in failed:
            keras.backend.clear_session(free_memory=False)  # names reset; a full gc pass costs ~0.2 s
            keras.utils.set_random_seed(member.seed)
            try:
                model = make_model(member.point)
            except Exception as error:  # recorded as this point's failure, like the reference engine does
                failed[member.point_id] = "".join(traceback.format_exception_only(error)).strip()[:500]
                continue
            models[member.point_id] = model
            lowered[member.point_id] = lower(model)
        if member.point_id in failed:
            continue
        key = signature(lowered[member.point_id], models[member.point_id])
        groups.setdefault(key, []).append(member)
    errors = {m.id: failed[m.point_id] for m in members if m.point_id in failed}
    return [Group(ms, lowered[ms[0].point_id], [models[m.point_id] for m in ms]) for ms in groups.values()], errors


def _initial_weights(group: Group, fresh: bool) -> list[np.ndarray]:
    """Stacked initial weights: the point model's own (fresh=False, e.g. a pretrained model), or each
    member's own draw from the layer's initializer under a seed derived from the member's seed."""
    stacked = []
    template = [v for op in group.ops for _, v in op.weights]
    own = {id(model): [keras.ops.convert_to_numpy(v) for op in lower(model) for _, v in op.weights]
           for model in group.point_models} if not fresh else {}
    for wi, variable in enumerate(template):
        per_member = []
        for member, model in zip(group.members, group.point_models):
            if not fresh:
                per_member.append(own[id(model)][wi])
                continue
            layer_name, slot = variable.path.split("/")[-2:]
            layer = next(l for l in _chain(model) if l.name == layer_name)
            initializer = getattr(layer, f"{slot}_initializer")
            config = initializer.get_config()
            if "seed" in config:
                config["seed"] = (member.seed * 1000003 + wi) % (2**31 - 1)
            fresh_init = type(initializer).from_config(config)
            per_member.append(keras.ops.convert_to_numpy(fresh_init(tuple(variable.shape), "float32")))
        stacked.append(np.stack(per_member).astype("float32"))
    return stacked


def shard_count(members: int) -> int:
    """How many shards of members to run side by side in threads (one on a GPU).

    Equal-sized shards share one compiled program, so a second shard costs no compilation. Measured
    on 2 cores, 40 members of the standard benchmark, same process: one shard 0.104–0.112 s an epoch,
    two 0.091–0.098 s (XLA's own threads already keep both cores partly busy, hence not 2×). Small
    groups stay whole: one shard per 16 members, at most one per core. REGLAB_STACKED_SHARDS overrides.
    """
    if os.environ.get("REGLAB_STACKED_SHARDS"):
        return max(1, min(members, int(os.environ["REGLAB_STACKED_SHARDS"])))
    if tf.config.list_physical_devices("GPU"):
        return 1
    return max(1, min(os.cpu_count() or 1, members // 16))


def train_group(group: Group, data, training, fresh_init=True, initial_weights=None, order=default_order,
                restore_best=False):
    """Train every member of `group` at once. Returns ({member id: records DataFrame}, final stacked
    weights as numpy (the best epoch's with `restore_best`), timing dict)."""
    from concurrent.futures import ThreadPoolExecutor
    from dataclasses import replace

    members = group.members
    M = len(members)
    flat_index, weight_paths = {}, []
    for i, op in enumerate(group.ops):
        for wi, (_, v) in enumerate(op.weights):
            flat_index[(i, wi)] = len(weight_paths)
            weight_paths.append(v.path)
    per_member_ops = [lower(model) for model in group.point_models]
    slots = _slots(per_member_ops, flat_index)
    rates = np.array([[op.config.get("rate", 0.0) if op.kind == "dropout" else 0.0 for op in ops_] for ops_ in per_member_ops],
                     dtype="float32")
    from reglab.engine.reference import make_optimizer

    optimizer = StackedOptimizer(make_optimizer(training))
    # what each point asks of the optimizer, per member and weight (0 where it does not act)
    settings = [points.optimizer_settings(m.point) for m in members]
    targets = [set(points.optimizer_targets(model)) for model in group.point_models]
    decay = np.array([[(s["weight_decay"] if path in t else 0.0) if "weight_decay" in s else optimizer.weight_decay
                       for path in weight_paths] for s, t in zip(settings, targets)], dtype="float32")
    prox, group_prox = (np.array([[s.get(key, 0.0) if path in t else 0.0 for path in weight_paths]
                             for s, t in zip(settings, targets)], dtype="float32") for key in ("prox_l1", "prox_group"))
    # static: a weight no member decays or thresholds costs nothing
    decayed, thresholded, shrunk = decay.any(axis=0), prox.any(axis=0), group_prox.any(axis=0)
    loss_fn = _loss_fn(training.loss)
    metric_names = list(training.metrics)
    metric_fns = [_metric_fn(name, training.loss) for name in metric_names]

    # Device-resident data: one standardized copy per split, flattened; a member's indices are offset
    # into its own copy, so gathering a batch is one tf.gather for all members.
    x_views, y_views, view_of = _standardized_views(data, members, training.standardize)
    N = data.x.shape[0]
    X = tf.constant(x_views.reshape(-1, *x_views.shape[2:]))
    Y = tf.constant(y_views.reshape(-1))
    offsets_all = (view_of * N).astype("int32")
    start = initial_weights if initial_weights is not None else _initial_weights(group, fresh_init)
    seeds_all = np.array([m.seed for m in members], dtype="uint32")
    val_idx_all, val_mask_all = _pad([m.val for m in members])

    B = training.batch_size
    steps = max(math.ceil(len(m.train) / B) for m in members)
    T, K = len(slots), len(metric_fns)
    width = 3 + T + K

    def gather(indices):
        return tf.gather(X, indices), tf.gather(Y, indices)

    def member_shape(rank):
        return [-1] + [1] * (rank - 1)

    # One compiled program serves every shard: the shards' state is an argument, not a capture, so
    # equal-sized shards share one trace and one XLA compilation.
    @tf.function(jit_compile=JIT, reduce_retracing=False, autograph=False)
    def run_epoch(program, state, idx, mask, epoch):
        weights, opt_slots, coefficients = state["weights"], state["opt_slots"], state["coefficients"]
        iterations, alive = state["iterations"], state["alive"]
        Ms = weights[0].shape[0]
        idx = idx + state["offsets"][:, None, None]

        def body(s, acc):
            xb, yb = gather(idx[:, s])
            mb = mask[:, s]
            n = tf.reduce_sum(mb, axis=1)
            active = (n > 0) & alive
            current = [w.read_value() for w in weights]
            with tf.GradientTape() as tape:
                tape.watch(current)
                out, activity = program.forward(current, coefficients, xb, True, state["rates"], state["seeds"],
                                                epoch * steps + s, mb)
                pred = tf.reduce_sum(loss_fn(yb, out) * mb, axis=1) / tf.maximum(n, 1.0)
                pens = program.penalties(current, coefficients, activity)
                total = pred + tf.reduce_sum(pens, axis=1)
                objective = tf.reduce_sum(tf.where(active, total, tf.zeros_like(total)))
            grads = tape.gradient(objective, current)
            finite = tf.math.is_finite(total)
            ok = active & finite
            lr = optimizer.rate(iterations)
            for wi, (w, g, slots_) in enumerate(zip(weights, grads, opt_slots)):
                # a non-finite gradient never enters the arithmetic; the update leaves non-ok members as they are
                safe_g = tf.where(tf.reshape(ok, member_shape(len(g.shape))), g, tf.zeros_like(g))
                new_w, new_state = optimizer.update(w.read_value(), safe_g, [v.read_value() for v in slots_],
                                                    iterations, lr, ok, state["decay"][:, wi] if decayed[wi] else None)
                if thresholded[wi] or shrunk[wi]:  # L1 first, then group shrinkage: the sparse group lasso
                    step = optimizer.step_size(new_state, iterations, lr, ok, len(g.shape))
                    if thresholded[wi]:
                        new_w = soft_threshold(new_w, state["prox"][:, wi], step)
                    if shrunk[wi] and len(g.shape) > 2:
                        new_w = group_shrink(new_w, state["group"][:, wi], step)
                w.assign(new_w)
                for v, nv in zip(slots_, new_state):
                    v.assign(nv)
            iterations.assign(iterations + tf.cast(ok, tf.int32))
            alive.assign(alive & ~(active & ~finite))
            metric_sums = [tf.reduce_sum(fn(yb, out) * mb, axis=1) for fn in metric_fns]
            row = tf.stack([n, pred * n, tf.reduce_sum(pens, axis=1) * n] + [pens[:, t] * n for t in range(T)]
                           + metric_sums, axis=1)
            return s + 1, acc + tf.where(active[:, None], row, tf.zeros_like(row))

        at_start = [w.read_value() for w in weights]
        _, acc = tf.while_loop(lambda s, acc: s < steps, body, [tf.constant(0), tf.zeros([Ms, width])])
        # a sum is not finite if a term is not (or if it overflows: divergence as well)
        broken = tf.zeros([Ms], tf.bool)
        for w in weights:
            broken |= ~tf.math.is_finite(tf.reduce_sum(tf.reshape(w, [Ms, -1]), axis=1))
        for w, w0 in zip(weights, at_start):
            w.assign(tf.where(tf.reshape(broken, member_shape(len(w.shape))), w0, w))
        alive.assign(alive & ~broken)
        return acc, validate(program, state), _weight_stats(weights), alive.read_value()

    def validate(program, state):
        xb, yb = gather(state["val_idx"])
        val_mask, weights = state["val_mask"], state["weights"]
        current = [w.read_value() for w in weights]
        out, activity = program.forward(current, state["coefficients"], xb, False, state["rates"], state["seeds"], 0,
                                        val_mask)
        n = tf.reduce_sum(val_mask, axis=1)
        loss = tf.reduce_sum(loss_fn(yb, out) * val_mask, axis=1) / n
        pens = tf.reduce_sum(program.penalties(current, state["coefficients"], activity), axis=1)
        metrics = [tf.reduce_sum(fn(yb, out) * val_mask, axis=1) / n for fn in metric_fns]
        if state["best_weights"]:
            best_loss = state["best_loss"]
            improved = tf.math.is_finite(loss) & (loss < best_loss)
            for w, b in zip(weights, state["best_weights"]):
                b.assign(tf.where(tf.reshape(improved, member_shape(len(w.shape))), w, b))
            best_loss.assign(tf.where(improved, loss, best_loss))
        return tf.stack([loss, pens] + metrics, axis=1)

    programs = {}

    def make_shard(sl: slice):
        """The state of the members in `sl` and the `Program` they run (shared by shards whose members
        call the same custom regularizers, the only per-member structure baked into a trace)."""
        shard_slots = [replace(slot, coefficients=slot.coefficients[sl], schedules=slot.schedules[sl]) for slot in slots]
        key = tuple((slot.coefficients[:, k] != 0).tobytes() for slot in shard_slots
                    for k, basis in enumerate(slot.keys) if basis[0] == "custom")
        program = programs.setdefault(key, Program(group.ops, shard_slots, loss_fn, metric_fns))
        weights = [tf.Variable(w[sl], trainable=False) for w in start]
        size = sl.stop - sl.start
        state = {
            "weights": weights,
            "opt_slots": [[tf.Variable(tf.zeros_like(w), trainable=False) for _ in range(optimizer.n_slots())]
                          for w in weights],
            # scheduled slots' coefficients change each epoch: variables, read by the compiled program
            "coefficients": [tf.Variable(slot.coefficients, trainable=False) if slot.schedules else
                             tf.constant(slot.coefficients) for slot in shard_slots],
            "iterations": tf.Variable(tf.zeros([size], tf.int32), trainable=False),
            "alive": tf.Variable(tf.ones([size], tf.bool), trainable=False),
            "rates": tf.constant(rates[sl]), "seeds": tf.constant(seeds_all[sl]),
            "offsets": tf.constant(offsets_all[sl]),
            "val_idx": tf.constant(val_idx_all[sl] + offsets_all[sl][:, None]),
            "val_mask": tf.constant(val_mask_all[sl]),
            "best_loss": tf.Variable(tf.fill([size], np.inf), trainable=False),
            "best_weights": [tf.Variable(w[sl], trainable=False) for w in start] if restore_best else [],
            "decay": tf.constant(decay[sl]), "prox": tf.constant(prox[sl]), "group": tf.constant(group_prox[sl]),
        }

        def epoch_step(idx, mask, epoch):
            for slot, coefficients in zip(shard_slots, state["coefficients"]):
                if slot.schedules:
                    coefficients.assign(slot.coefficients * slot.scales(epoch)[:, None])
            outputs = run_epoch(program, state, tf.constant(idx[sl]), tf.constant(mask[sl]), tf.constant(epoch))
            return [value.numpy() for value in outputs]

        return epoch_step, (state["best_weights"] or weights)

    n_shards = shard_count(M)
    bounds = np.linspace(0, M, n_shards + 1).round().astype(int)
    shards = [make_shard(slice(a, b)) for a, b in zip(bounds, bounds[1:])]
    rows = {m.id: [] for m in members}
    status = ["ok"] * M
    timing = {"epoch_seconds": [], "shards": n_shards}
    started = time.perf_counter()
    with ThreadPoolExecutor(n_shards) as pool:  # TensorFlow releases the GIL while a program runs
        for epoch in range(training.epochs):
            t0 = time.perf_counter()
            idx, mask = _pad([order(m, epoch) for m in members], steps * B)
            idx, mask = idx.reshape(M, steps, B), mask.reshape(M, steps, B)
            # the first epoch compiles: shard 0 alone, so the others find the program compiled
            parts = ([shards[0][0](idx, mask, epoch)] if epoch == 0 else []) + list(
                pool.map(lambda shard: shard[0](idx, mask, epoch), shards[1:] if epoch == 0 else shards))
            acc = np.concatenate([p[0] for p in parts]).astype("float64")
            val = np.concatenate([p[1] for p in parts]).astype("float64")
            stats = np.concatenate([p[2] for p in parts])  # (M, weights, WEIGHT_STATS)
            alive = np.concatenate([p[3] for p in parts])
            timing["epoch_seconds"].append(time.perf_counter() - t0)  # the first includes compilation
            scales = {t: slot.scales(epoch) for t, slot in enumerate(slots) if slot.schedules}
            for m, member in enumerate(members):
                if status[m] == "diverged":
                    continue
                n = acc[m, 0]
                train_loss, train_penalty = acc[m, 1] / n, acc[m, 2] / n
                row = {"epoch": epoch + 1, "train_loss": train_loss, "train_penalty": train_penalty,
                       "train_total": train_loss + train_penalty, "val_loss": val[m, 0], "val_penalty": val[m, 1],
                       "val_total": val[m, 0] + val[m, 1]}
                for k, name in enumerate(metric_names):
                    row[f"train_{name}"] = acc[m, 3 + T + k] / n
                for k, name in enumerate(metric_names):
                    row[f"val_{name}"] = val[m, 2 + k]
                for t, slot in enumerate(slots):
                    row[records.column("penalty", slot.term)] = acc[m, 3 + t] / n
                    if t in scales and slot.schedules[m] is not None:
                        row[records.column("scale", slot.term)] = float(scales[t][m])
                for wi, path in enumerate(weight_paths):
                    for q, quantity in enumerate(records.WEIGHT_STATS):
                        row[records.column(quantity, path)] = stats[m, wi, q]
                for wi, path in enumerate(weight_paths):  # as the ledger's `decay_terms`
                    if decay[m, wi]:
                        row[records.column("decay", path)] = float(decay[m, wi]) / 2 * stats[m, wi, 1] ** 2
                status[m] = records.status(row["train_total"] if alive[m] else math.nan, status[m])
                row["status"] = status[m]
                rows[member.id].append(row)
    timing["seconds"] = time.perf_counter() - started
    final = [np.concatenate([shard[1][w].numpy() for shard in shards]) for w in range(len(weight_paths))]
    out = {member.id: records.frame(rows[member.id]) for member in members}
    return out, final, timing


def _weight_stats(weights) -> tf.Tensor:
    """(M, weights, records.WEIGHT_STATS) in float64, computed where the weights live (no copy to the host)."""
    columns = []
    for w in weights:
        flat = tf.cast(tf.reshape(w, [tf.shape(w)[0], -1]), tf.float64)
        size = tf.cast(tf.shape(flat)[1], tf.float64)
        columns.append(tf.stack([
            tf.reduce_sum(tf.abs(flat), axis=1),
            tf.sqrt(tf.reduce_sum(tf.square(flat), axis=1)),
            tf.reduce_sum(tf.cast(tf.equal(flat, 0.0), tf.float64), axis=1),
            tf.reduce_sum(tf.cast(tf.abs(flat) < records.NEAR_ZERO, tf.float64), axis=1) / size,
        ], axis=1))
    return tf.stack(columns, axis=1)
