"""Activations added after the classic ones of ops_elementwise: Celu, ThresholdedRelu, Mish,
Shrink, Swish, SwiGLU, and Hardmax.

float16 inputs are computed in float32 and rounded once, as onnxruntime does.
"""

from __future__ import annotations

import math

import numpy as np

from byoc.core.interpreter.base import OpImpl, register, widened_dtype
from byoc.core.interpreter.ops_elementwise import Unary
from byoc.core.interpreter.ops_shape import normalize_axis


def _sigmoid(x: np.ndarray) -> np.ndarray:
    # exp of a large negative x overflows to inf, which still gives the right limit of 0.
    with np.errstate(over="ignore"):
        return 1 / (1 + np.exp(-x))


@register("Celu")
class Celu(Unary):
    """``max(0, x) + min(0, alpha * (exp(x / alpha) - 1))``."""

    def check(self, x, alpha=1.0):
        if alpha == 0:
            raise ValueError("Celu's alpha attribute must not be 0 (x is divided by it); "
                             "the ONNX default is 1.0")

    def apply(self, x, alpha=1.0):
        wide = x.astype(widened_dtype(x.dtype))
        alpha = np.asarray(alpha, wide.dtype)
        with np.errstate(over="ignore"):
            return np.maximum(wide, 0) + np.minimum(0, alpha * np.expm1(wide / alpha))


@register("ThresholdedRelu")
class ThresholdedRelu(Unary):
    """``x`` where ``x > alpha``, else 0."""

    def apply(self, x, alpha=1.0):
        return np.where(x > np.asarray(alpha, x.dtype), x, 0)


@register("Mish")
class Mish(Unary):
    """``x * tanh(softplus(x))``."""

    def apply(self, x):
        wide = x.astype(widened_dtype(x.dtype))
        return wide * np.tanh(np.logaddexp(0, wide))


@register("Shrink")
class Shrink(Unary):
    """``x + bias`` where ``x < -lambd``, else ``x - bias`` where ``x > lambd``, else 0 (a
    negative ``lambd`` makes both hold; the first wins, as the spec orders them and
    onnxruntime does). Integer inputs compare and shift in float64 and are truncated back."""

    def apply(self, x, bias=0.0, lambd=0.5):
        wide = x.astype(np.float64 if x.dtype.kind in "iu" else widened_dtype(x.dtype))
        return np.where(wide < -lambd, wide + bias, np.where(wide > lambd, wide - bias, 0))


@register("Swish")
class Swish(Unary):
    """``x * sigmoid(alpha * x)``."""

    def apply(self, x, alpha=1.0):
        wide = x.astype(widened_dtype(x.dtype))
        return wide * _sigmoid(np.asarray(alpha, wide.dtype) * wide)


@register("SwiGLU")
class SwiGLU(OpImpl):
    """``Swish_alpha(gate) * value``, for a gate and a value of one shape (no broadcasting)."""

    def check(self, gate, value, alpha=1.0):
        if gate.shape != value.shape:
            raise ValueError(f"SwiGLU needs its gate and value inputs of one shape (it does not "
                             f"broadcast); got {list(gate.shape)} and {list(value.shape)}")

    def run(self, gate, value, alpha=1.0):
        self.check(gate, value)
        wide = gate.astype(widened_dtype(gate.dtype))
        swish = wide * _sigmoid(np.asarray(alpha, wide.dtype) * wide)
        return (swish * value).astype(gate.dtype)


@register("Hardmax")
class Hardmax(OpImpl):
    """1 at the first maximum along ``axis``, 0 elsewhere.

    From opset 13 ``axis`` (default -1) is one axis; before 13 the input is seen as a matrix
    of the dims before ``axis`` (default 1) by the dims from it, and each row is one-hot.
    """

    def run(self, x, axis=None):
        if self.opset >= 13:
            axis = normalize_axis(-1 if axis is None else axis, x.ndim)
            rows = np.moveaxis(x, axis, -1)
        else:
            axis = 1 if axis is None else axis
            if not -x.ndim <= axis <= x.ndim:
                raise ValueError(f"axis {axis} is out of range for a tensor of rank {x.ndim}")
            axis = axis + x.ndim if axis < 0 else axis
            rows = x.reshape(x.shape[:axis] + (math.prod(x.shape[axis:]),))
        hot = np.zeros(rows.shape, x.dtype)
        if rows.shape[-1]:
            np.put_along_axis(hot, np.argmax(rows, axis=-1)[..., None], 1, axis=-1)
        if self.opset >= 13:
            return np.moveaxis(hot, -1, axis)
        return hot.reshape(x.shape)
