"""Quantization arithmetic shared by the int8 op implementations (ONNX semantics)."""

from __future__ import annotations

import numpy as np

_RANGES = {np.dtype(t): (np.iinfo(t).min, np.iinfo(t).max)
           for t in (np.int8, np.uint8, np.int16, np.uint16, np.int32)}


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
    low, high = _RANGES[np.dtype(dtype)]
    return np.clip(values, low, high).astype(dtype)


def quantize(x: np.ndarray, scale: np.ndarray, zero_point: np.ndarray | None, axis: int = 1,
             dtype: np.dtype | None = None, precision: np.dtype = np.float32) -> np.ndarray:
    """QuantizeLinear: ``saturate(round_half_to_even(x / scale) + zero_point)``.

    The division is done in ``precision``: float32 by default, as onnxruntime does for float
    inputs; ONNX asks for the scale's type (or the node's ``precision`` attribute) from
    opset 23 on.
    """
    dtype = np.dtype(dtype or (zero_point.dtype if zero_point is not None else np.uint8))
    rank = x.ndim
    scaled = x.astype(precision) / along_axis(scale, axis, rank).astype(precision)
    rounded = np.rint(scaled).astype(np.float64)
    if zero_point is not None:
        rounded = rounded + along_axis(zero_point, axis, rank).astype(np.float64)
    return saturate(rounded, dtype)


def dequantize(x: np.ndarray, scale: np.ndarray, zero_point: np.ndarray | None,
               axis: int = 1) -> np.ndarray:
    """DequantizeLinear: ``(x - zero_point) * scale``, in the scale's float dtype."""
    rank = x.ndim
    shifted = x.astype(np.int64)
    if zero_point is not None:
        shifted = shifted - along_axis(zero_point, axis, rank).astype(np.int64)
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
