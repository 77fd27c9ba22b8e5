"""QuantizeLinear to every ONNX element type: integer types by :mod:`byoc.quantization`,
the float8 and float4 types as Cast converts."""

from __future__ import annotations

import numpy as np

from byoc import quantization
from byoc.core import dtypes
from byoc.core.interpreter.ops_cast import cast


def quantize(x: np.ndarray, scale: np.ndarray, zero_point: np.ndarray | None, axis: int = 1,
             dtype: np.dtype | None = None, precision: np.dtype = np.float32,
             saturate_float8: bool = True) -> np.ndarray:
    """QuantizeLinear: ``saturate(round_half_to_even(x / scale) + zero_point)`` for integer
    types (:func:`byoc.quantization.quantize`); for float types (float8, float4)
    ``x / scale + zero_point`` converted as Cast converts, ``saturate_float8`` being Cast's
    ``saturate``.

    The division is done in ``precision``: float32 by default, as onnxruntime does for float
    inputs; ONNX asks for the scale's type (or the node's ``precision`` attribute) from
    opset 23 on.
    """
    dtype = np.dtype(dtype or (zero_point.dtype if zero_point is not None else np.uint8))
    if not dtypes.is_float(dtype):
        return quantization.quantize(x, scale, zero_point, dtype, axis=axis,
                                     precision=precision)
    scaled = quantization.scaled_by(x, scale, axis, precision)
    if zero_point is not None:
        scaled = scaled + dtypes.widened(quantization.along_axis(zero_point, axis, x.ndim))
    return cast(scaled, dtype, saturate_float8)
