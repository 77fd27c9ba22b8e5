"""QuantizeLinear and DequantizeLinear: per tensor, per axis and blocked; to and from the
8- and 16-bit integers, the 4- and 2-bit integers, float8 and float4e2m1."""

from __future__ import annotations

import math

import ml_dtypes
import numpy as np

from byoc.core.dtypes import FLOAT8_TYPES, NARROW_INTEGER_TYPES, onnx_type_name, to_numpy
from byoc.core.interpreter.base import OpImpl, register
from byoc.core.interpreter.quant import quantize
from byoc.quantization import dequantize

QUANTIZED_TYPES = (tuple(np.dtype(t) for t in (np.int8, np.uint8, np.int16, np.uint16))
                   + NARROW_INTEGER_TYPES + FLOAT8_TYPES + (np.dtype(ml_dtypes.float4_e2m1fn),))
DEQUANTIZABLE_TYPES = QUANTIZED_TYPES + (np.dtype(np.int32),)
# The types a dequantized value (or a division's precision) may have: numpy's floats and
# bfloat16.
OUTPUT_FLOAT_TYPES = tuple(np.dtype(t) for t in (np.float32, np.float16, np.float64,
                                                 ml_dtypes.bfloat16))


def type_names(dtypes) -> str:
    return ", ".join(d.name for d in dtypes)


def float_dtype(onnx_type: int, what: str) -> np.dtype:
    """The numpy dtype of an ONNX float type given as an attribute."""
    dtype = to_numpy(onnx_type)
    if dtype not in OUTPUT_FLOAT_TYPES:
        raise ValueError(f"{what} {onnx_type_name(onnx_type)} is not supported; use FLOAT, "
                         f"FLOAT16, BFLOAT16 or DOUBLE")
    return dtype


def check_quant_params(param: np.ndarray, x: np.ndarray, axis: int, block_size: int,
                       name: str) -> None:
    """Raise a ValueError unless ``param`` (a scale or zero point) is per tensor (one value),
    per axis (one value per index of ``axis``) or blocked (the shape of ``x`` with
    ``ceil(D / block_size)`` at ``axis``). ``axis`` only matters for the last two, so a rank-1
    input with the default axis 1 quantizes per tensor, as the spec says."""
    param = np.asarray(param)
    if param.size == 1 and not block_size:
        return
    if not -x.ndim <= axis < x.ndim:
        raise ValueError(f"{name} has {param.size} values, but axis {axis} is out of range for "
                         f"an input of rank {x.ndim}")
    axis %= x.ndim
    if block_size:
        expected = list(x.shape)
        expected[axis] = math.ceil(x.shape[axis] / block_size)
        if list(param.shape) != expected:
            raise ValueError(f"{name} of shape {list(param.shape)} does not fit blocks of "
                             f"{block_size} along axis {axis} of an input of shape "
                             f"{list(x.shape)}; expected {expected}")
    elif param.ndim != 1 or param.size != x.shape[axis]:
        raise ValueError(f"{name} of shape {list(param.shape)} fits neither per-tensor nor "
                         f"per-axis quantization along axis {axis} of an input of shape "
                         f"{list(x.shape)}; give one value, one per index of the axis, or "
                         f"set block_size for blocked quantization")


def quant_params(param: np.ndarray, x: np.ndarray, axis: int, block_size: int,
                 name: str) -> np.ndarray:
    """Check a scale or zero point against ``x`` (see :func:`check_quant_params`) and make it
    usable by quantize/dequantize: a blocked parameter is expanded to the full shape of ``x``,
    the others pass through."""
    check_quant_params(param, x, axis, block_size, name)
    param = np.asarray(param)
    if not block_size:
        return param
    axis %= x.ndim
    expanded = np.repeat(param, block_size, axis=axis)
    return np.take(expanded, np.arange(x.shape[axis]), axis=axis)


@register("QuantizeLinear")
class QuantizeLinear(OpImpl):
    """QuantizeLinear: ``saturate(round_half_to_even(x / y_scale) + y_zero_point)``.

    The output type is y_zero_point's, else the ``output_dtype`` attribute's, else uint8.
    From opset 23 the division runs in the ``precision`` attribute's type, else y_scale's
    (an int32 scale divides exactly in float64, a float8e8m0 one, a power of two, in
    float32); before, in at least float32, as onnxruntime does. Float outputs (float8,
    float4e2m1) take ``x / y_scale + y_zero_point`` converted as Cast converts, with
    ``saturate`` as Cast's.
    """

    def check(self, x, y_scale, y_zero_point=None, axis=1, block_size=0, **_):
        check_quant_params(y_scale, x, axis, block_size, "y_scale")
        if y_zero_point is not None:
            check_quant_params(y_zero_point, x, axis, block_size, "y_zero_point")

    def run(self, x, y_scale, y_zero_point=None, axis=1, saturate=1, block_size=0,
            output_dtype=0, precision=0):
        out_dtype = self.output_dtype(y_zero_point, output_dtype)
        if precision:
            division = float_dtype(precision, "QuantizeLinear precision")
        elif self.opset >= 23:
            division = self.scale_division_dtype(y_scale.dtype)
        else:
            # Before opset 23 the spec leaves the precision open; onnxruntime divides float16
            # in float32, and the float16 division of opset 23 would turn some values into ties.
            division = np.promote_types(self.scale_division_dtype(y_scale.dtype), np.float32)
        scale = quant_params(y_scale, x, axis, block_size, "y_scale")
        zero_point = (None if y_zero_point is None
                      else quant_params(y_zero_point, x, axis, block_size, "y_zero_point"))
        return quantize(x, scale, zero_point, axis, out_dtype, precision=division,
                        saturate_float8=bool(saturate))

    @staticmethod
    def scale_division_dtype(scale_dtype: np.dtype) -> np.dtype:
        if scale_dtype in OUTPUT_FLOAT_TYPES:
            return scale_dtype
        if scale_dtype == np.int32:
            return np.dtype(np.float64)
        if scale_dtype == ml_dtypes.float8_e8m0fnu:
            return np.dtype(np.float32)
        raise ValueError(f"QuantizeLinear with a {scale_dtype.name} scale is not supported")

    @staticmethod
    def output_dtype(zero_point: np.ndarray | None, output_dtype: int) -> np.dtype:
        if zero_point is not None:
            dtype = zero_point.dtype
            if output_dtype and to_numpy(output_dtype) != dtype:
                raise ValueError(f"QuantizeLinear output_dtype {onnx_type_name(output_dtype)} "
                                 f"differs from y_zero_point's type {dtype.name}; they must "
                                 f"agree")
            name = dtype.name
        elif output_dtype:
            dtype, name = to_numpy(output_dtype), onnx_type_name(output_dtype)
        else:
            dtype, name = np.dtype(np.uint8), "uint8"
        if dtype not in QUANTIZED_TYPES:
            raise ValueError(f"QuantizeLinear to {name} is not supported; byoc quantizes to "
                             f"{type_names(QUANTIZED_TYPES)}")
        return dtype


@register("DequantizeLinear")
class DequantizeLinear(OpImpl):
    """DequantizeLinear: ``(x - x_zero_point) * x_scale``.

    The output type is the ``output_dtype`` attribute's, else x_scale's (a float8e8m0 scale
    needs ``output_dtype``). ``x - x_zero_point`` is exact for integer types and taken in
    float32 for float8 and float4; the product is formed in float32 (float64 for a float64
    output) and rounded once to the output type, which for 8-bit inputs equals multiplying
    in the output type.
    """

    def check(self, x, x_scale, x_zero_point=None, axis=1, block_size=0, **_):
        check_quant_params(x_scale, x, axis, block_size, "x_scale")
        if x_zero_point is not None:
            check_quant_params(x_zero_point, x, axis, block_size, "x_zero_point")

    def run(self, x, x_scale, x_zero_point=None, axis=1, block_size=0, output_dtype=0):
        if x.dtype not in DEQUANTIZABLE_TYPES:
            raise ValueError(f"DequantizeLinear of {x.dtype.name} is not supported; byoc "
                             f"dequantizes {type_names(DEQUANTIZABLE_TYPES)}")
        if x_zero_point is not None and x_zero_point.dtype != x.dtype:
            raise ValueError(f"DequantizeLinear x_zero_point is {x_zero_point.dtype.name} but x "
                             f"is {x.dtype.name}; they must have the same type")
        if output_dtype:
            out_dtype = float_dtype(output_dtype, "DequantizeLinear output_dtype")
        elif x_scale.dtype in OUTPUT_FLOAT_TYPES:
            out_dtype = x_scale.dtype
        else:
            raise ValueError(f"DequantizeLinear with a {x_scale.dtype.name} scale needs the "
                             f"output_dtype attribute; give FLOAT, FLOAT16 or BFLOAT16")
        product_dtype = np.float64 if out_dtype == np.float64 else np.float32
        scale = quant_params(x_scale, x, axis, block_size, "x_scale").astype(product_dtype)
        zero_point = (None if x_zero_point is None
                      else quant_params(x_zero_point, x, axis, block_size, "x_zero_point"))
        return dequantize(x, scale, zero_point, axis).astype(out_dtype)
