"""Matrix products: Gemm, MatMul, and the integer MatMulInteger and QLinearMatMul."""

from __future__ import annotations

import numpy as np

from byoc.core.interpreter.base import OpImpl, accumulation_dtype, register
from byoc.quantization import requantize


@register("Gemm")
class Gemm(OpImpl):
    """Gemm: ``alpha * A' @ B' + beta * C``, with C broadcast to the (M, N) result."""

    def run(self, a, b, c=None, alpha=1.0, beta=1.0, transA=0, transB=0):
        if a.ndim != 2 or b.ndim != 2:
            raise ValueError(f"Gemm takes 2-D A and B, got shapes {list(a.shape)} and "
                             f"{list(b.shape)}")
        a = a.T if transA else a
        b = b.T if transB else b
        if a.shape[1] != b.shape[0]:
            raise ValueError(f"Gemm inner dimensions differ: A' is {list(a.shape)}, B' is "
                             f"{list(b.shape)}")
        out_shape = (a.shape[0], b.shape[1])
        if c is not None and np.broadcast_shapes(c.shape, out_shape) != out_shape:
            raise ValueError(f"Gemm C of shape {list(c.shape)} does not broadcast to the result "
                             f"shape {list(out_shape)}")
        if np.issubdtype(a.dtype, np.integer):
            # Integer Gemm has float alpha/beta; like the ONNX reference, scale in float64 and
            # truncate, except in the common alpha = beta = 1 case, which stays exact.
            product = np.matmul(a, b)
            y = product if alpha == 1 else product * alpha
            if c is not None and beta != 0:
                y = y + (c if beta == 1 else c * beta)
            return y.astype(a.dtype)
        dtype = accumulation_dtype(a.dtype)
        y = np.matmul(a.astype(dtype), b.astype(dtype))
        if alpha != 1:
            y = y * np.asarray(alpha, dtype)
        # beta = 0 drops C entirely, so an inf or NaN in C cannot leak in as 0 * inf.
        if c is not None and beta != 0:
            y = y + c.astype(dtype) * np.asarray(beta, dtype)
        return y.astype(a.dtype)


@register("MatMul")
class MatMul(OpImpl):
    """MatMul with numpy semantics: 1-D operands are promoted and batch dims broadcast."""

    def run(self, a, b):
        if np.issubdtype(a.dtype, np.integer):
            return np.matmul(a, b).astype(a.dtype)
        dtype = accumulation_dtype(a.dtype)
        return np.matmul(a.astype(dtype), b.astype(dtype)).astype(a.dtype)


def quant_param(param: np.ndarray, operand: np.ndarray, per: str, name: str) -> np.ndarray:
    """Shape a scale or zero point of a matmul operand (a matrix or a stack of them) to
    broadcast against it.

    A scalar or one-element tensor is per tensor. A 1-D vector holds one value per row
    (``per="row"``, operand ``a``: shape ``[M]`` stands for ``[M, 1]``) or per column
    (``per="column"``, operand ``b``: ``[N]``). An N-D tensor (``[D1, D2, M, 1]`` or
    ``[D1, D2, 1, N]``) is used as it is.
    """
    param = np.asarray(param)
    if param.size == 1:
        return param.reshape(())
    shaped = param.reshape(-1, 1) if param.ndim == 1 and per == "row" else param
    if shaped.ndim > operand.ndim or any(
            p not in (1, d) for p, d in zip(shaped.shape[::-1], operand.shape[::-1])):
        raise ValueError(f"{name} of shape {list(param.shape)} does not fit an operand of shape "
                         f"{list(operand.shape)}; give a scalar or one value per {per}")
    return shaped


def as_matrices(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray, tuple[int, ...]]:
    """Promote 1-D operands to matrices as numpy.matmul does; also return the result axes
    that promotion added, to squeeze out at the end."""
    added: tuple[int, ...] = ()
    if a.ndim == 1:
        a, added = a[np.newaxis], added + (-2,)
    if b.ndim == 1:
        b, added = b[:, np.newaxis], added + (-1,)
    return a, b, added


def shifted(x: np.ndarray, zero_point: np.ndarray | None, per: str, name: str) -> np.ndarray:
    """``x - zero_point`` as exact int64."""
    values = x.astype(np.int64)
    if zero_point is None:
        return values
    return values - quant_param(zero_point, x, per, name).astype(np.int64)


def integer_matmul(a, a_zero_point, b, b_zero_point) -> np.ndarray:
    """``(a - a_zero_point) @ (b - b_zero_point)`` of matrices, as an int32 accumulator.

    The sum is exact in int64; the cast to int32 wraps, which is the one overflow ONNX allows
    ("accumulation may overflow if and only if in 32 bits").
    """
    product = np.matmul(shifted(a, a_zero_point, "row", "a_zero_point"),
                        shifted(b, b_zero_point, "column", "b_zero_point"))
    return product.astype(np.int32)


@register("MatMulInteger")
class MatMulInteger(OpImpl):
    """MatMulInteger: int8/uint8 matmul with optional per-tensor, per-row (A) or per-column
    (B) zero points, exact int32 result."""

    def run(self, a, b, a_zero_point=None, b_zero_point=None):
        a, b, added = as_matrices(a, b)
        return np.squeeze(integer_matmul(a, a_zero_point, b, b_zero_point), axis=added)


@register("QLinearMatMul")
class QLinearMatMul(OpImpl):
    """QLinearMatMul: exact integer matmul, then requantization to y's scale and zero point.

    ``a``'s scale and zero point are per tensor or per row, ``b``'s per tensor or per column,
    ``y``'s per tensor. The multiplier ``a_scale * b_scale / y_scale`` is formed in the scales'
    type; the accumulator is scaled in float32, rounded half to even and saturated, as
    onnxruntime does.
    """

    def run(self, a, a_scale, a_zero_point, b, b_scale, b_zero_point, y_scale, y_zero_point):
        for name, value in (("y_scale", y_scale), ("y_zero_point", y_zero_point)):
            if np.size(value) != 1:
                raise ValueError(f"{name} must hold one value (per tensor), got shape "
                                 f"{list(np.shape(value))}")
        a, b, added = as_matrices(a, b)
        acc = integer_matmul(a, a_zero_point, b, b_zero_point)
        multiplier = (quant_param(a_scale, a, "row", "a_scale")
                      * quant_param(b_scale, b, "column", "b_scale")
                      / np.asarray(y_scale).reshape(()))
        y = requantize(acc, multiplier, y_zero_point.reshape(()), y_zero_point.dtype)
        return np.squeeze(y, axis=added)
