"""Quantization arithmetic shared by the int8 op implementations (ONNX semantics)."""

from __future__ import annotations

import numpy as np

from byoc.core import dtypes
from byoc.core.interpreter.ops_cast import cast


def along_axis(param: np.ndarray, axis: int, rank: int) -> np.ndarray:
    """Reshape a per-tensor (scalar or size-1) or per-axis (1-D) parameter to broadcast
    against a tensor of ``rank`` dims along ``axis``. A parameter that already has ``rank``
    dims (blocked quantization, expanded to the tensor's shape) is returned as it is."""
    param = np.asarray(param)
    if param.size == 1:
        return param.reshape(())
    if param.ndim == rank:
        return param
    shape = [1] * rank
    shape[axis % rank] = param.size
    return param.reshape(shape)


def saturate(values: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """Clamp integer-valued ``values`` to the range of ``dtype`` and convert."""
    low, high = dtypes.integer_range(dtype)
    return np.clip(values, low, high).astype(dtype)


def quantize(x: np.ndarray, scale: np.ndarray, zero_point: np.ndarray | None, axis: int = 1,
             dtype: np.dtype | None = None, precision: np.dtype = np.float32,
             saturate_float8: bool = True) -> np.ndarray:
    """QuantizeLinear: ``saturate(round_half_to_even(x / scale) + zero_point)`` for integer
    types; for float types (float8, float4) ``x / scale + zero_point`` converted as Cast
    converts, ``saturate_float8`` being Cast's ``saturate``.

    The division is done in ``precision``: float32 by default, as onnxruntime does for float
    inputs; ONNX asks for the scale's type (or the node's ``precision`` attribute) from
    opset 23 on.
    """
    dtype = np.dtype(dtype or (zero_point.dtype if zero_point is not None else np.uint8))
    rank = x.ndim
    scaled = dtypes.widened(x.astype(precision)
                            / along_axis(scale, axis, rank).astype(precision))
    if dtypes.is_float(dtype):
        if zero_point is not None:
            scaled = scaled + dtypes.widened(along_axis(zero_point, axis, rank))
        return cast(scaled, dtype, saturate_float8)
    rounded = np.rint(scaled).astype(np.float64)
    if zero_point is not None:
        rounded = rounded + along_axis(zero_point, axis, rank).astype(np.float64)
    return saturate(rounded, dtype)


def dequantize(x: np.ndarray, scale: np.ndarray, zero_point: np.ndarray | None,
               axis: int = 1) -> np.ndarray:
    """DequantizeLinear: ``(x - zero_point) * scale``, in the scale's float dtype. The
    difference is taken in int64 (exactly) for integer types, in float32 for the float8
    and float4 types."""
    rank = x.ndim
    wide = np.float32 if dtypes.is_float(x.dtype) else np.int64
    shifted = x.astype(wide)
    if zero_point is not None:
        shifted = shifted - along_axis(zero_point, axis, rank).astype(wide)
    scale = along_axis(scale, axis, rank)
    return (shifted.astype(scale.dtype) * scale).astype(scale.dtype)


def requantize(acc: np.ndarray, multiplier: np.ndarray, zero_point: np.ndarray | None,
               dtype: np.dtype) -> np.ndarray:
    """``saturate(round_half_to_even(acc * multiplier) + zero_point)`` for integer accumulators,
    with ``multiplier`` and ``zero_point`` already broadcastable against ``acc``.

    The product is taken in float32, as onnxruntime's requantization does, so results match
    it bit for bit.
    """
    scaled = acc.astype(np.float32) * np.asarray(multiplier).astype(np.float32)
    rounded = np.rint(scaled).astype(np.float64)
    if zero_point is not None:
        rounded = rounded + np.asarray(zero_point).astype(np.float64)
    return saturate(rounded, dtype)
