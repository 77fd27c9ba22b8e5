"""Integer quantization arithmetic: one definition for byoc's reference and every plugin.

A real value ``x`` is held as ``q = saturate(round_half_to_even(x / scale) + zero_point)``
(:func:`quantize`) and read back as ``(q - zero_point) * scale`` (:func:`dequantize`). An
integer layer's int32 accumulator goes to its output type by :func:`requantize`,
``saturate(round_half_to_even(float32(acc) * multiplier) + zero_point)``, with the float32
multiplier ``x_scale * w_scale / y_scale``. Hardware without a float multiplier uses the
multiplier's fixed-point form, ``mantissa * 2**-shift`` (:func:`fixed_point_multiplier`), and
rounds the product half up instead (:func:`multiply_shift`).

These are ONNX's QuantizeLinear, DequantizeLinear and the requantization of its integer ops;
the reference interpreter computes with them, and so do the plugins' simulators and runtimes,
so that their results are the reference's to the bit. The module depends on numpy and
:mod:`byoc.core.dtypes` only, not on the interpreter. QuantizeLinear's float8 and float4
outputs, converted as Cast converts, are the interpreter's (:mod:`byoc.core.interpreter.quant`).
"""

from __future__ import annotations

import math

import numpy as np

from byoc.core import dtypes

FLOAT32_MANTISSA_BITS = 24
"""Significant bits of a float32, the implicit leading one included."""


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


def saturate(values: np.ndarray, dtype: np.dtype,
             bounds: tuple[int, int] | None = None) -> np.ndarray:
    """Clamp integer-valued ``values`` to ``bounds`` (by default the range of ``dtype``; a
    fused Relu or Clip narrows it) and convert to ``dtype``."""
    low, high = dtypes.integer_range(dtype) if bounds is None else bounds
    return np.clip(values, low, high).astype(dtype)


def scaled_by(x: np.ndarray, scale: np.ndarray, axis: int = 1,
              precision: np.dtype = np.float32) -> np.ndarray:
    """``x / scale`` computed in ``precision`` (float32 by default, as onnxruntime divides
    float inputs); a quotient in one of ml_dtypes' narrow floats (bfloat16...) comes back as
    float32, which holds it exactly."""
    x = np.asarray(x)
    divisor = along_axis(scale, axis, x.ndim).astype(precision)
    return dtypes.widened(x.astype(precision) / divisor)


def quantize(x: np.ndarray, scale: np.ndarray, zero_point: np.ndarray | int | None,
             dtype: np.dtype, *, axis: int = 1, precision: np.dtype = np.float32,
             bounds: tuple[int, int] | None = None) -> np.ndarray:
    """``saturate(round_half_to_even(x / scale) + zero_point)`` to the integer ``dtype``, the
    division as :func:`scaled_by` takes it; scale and zero point per tensor or along
    ``axis``, saturation to ``bounds`` when given."""
    steps = scaled_by(x, scale, axis, precision)
    if zero_point is not None:
        zero_point = along_axis(zero_point, axis, np.ndim(x))
    return _round_and_saturate(steps, zero_point, dtype, bounds)


def dequantize(x: np.ndarray, scale: np.ndarray, zero_point: np.ndarray | int | None,
               axis: int = 1) -> np.ndarray:
    """``(x - zero_point) * scale`` in the scale's float dtype (pass a float32 scale for a
    float32 result). The difference is taken in int64 (exactly) for integer types, in float32
    for the float8 and float4 types."""
    x = np.asarray(x)
    wide = np.float32 if dtypes.is_float(x.dtype) else np.int64
    shifted = x.astype(wide)
    if zero_point is not None:
        shifted = shifted - along_axis(zero_point, axis, x.ndim).astype(wide)
    scale = along_axis(scale, axis, x.ndim)
    return (shifted.astype(scale.dtype) * scale).astype(scale.dtype)


def requantize(acc: np.ndarray, multiplier: np.ndarray, zero_point: np.ndarray | int | None,
               dtype: np.dtype, bounds: tuple[int, int] | None = None) -> np.ndarray:
    """``saturate(round_half_to_even(acc * multiplier) + zero_point)`` for integer
    accumulators, with ``multiplier`` and ``zero_point`` already broadcastable against
    ``acc``; saturation to ``bounds`` when given.

    ``acc`` is rounded to float32 and multiplied by the float32 multiplier in float32, as
    onnxruntime's requantization does, so results match it bit for bit.
    """
    scaled = np.asarray(acc).astype(np.float32) * np.asarray(multiplier).astype(np.float32)
    return _round_and_saturate(scaled, zero_point, dtype, bounds)


def _round_and_saturate(values: np.ndarray, zero_point: np.ndarray | int | None,
                        dtype: np.dtype, bounds: tuple[int, int] | None) -> np.ndarray:
    # float64 holds every rounded float32 in an integer type's range, plus the zero point,
    # exactly.
    rounded = np.rint(values).astype(np.float64)
    if zero_point is not None:
        rounded = rounded + np.asarray(zero_point).astype(np.float64)
    return saturate(rounded, dtype, bounds)


def fixed_point_multiplier(multiplier: float, mantissa_bits: int) -> tuple[int, int]:
    """``(mantissa, shift)`` with ``float32(multiplier) == mantissa * 2**-shift`` exactly and
    ``2**(mantissa_bits - 1) <= mantissa < 2**mantissa_bits``: the multiplier's float32
    mantissa, so ``mantissa_bits`` must hold its 24 bits. ValueError for a multiplier that is
    not positive and finite; ``shift`` may come out negative for a multiplier of
    ``2**mantissa_bits`` or more."""
    if mantissa_bits < FLOAT32_MANTISSA_BITS:
        raise ValueError(f"a float32 multiplier needs {FLOAT32_MANTISSA_BITS} mantissa bits, "
                         f"not {mantissa_bits}")
    value = float(np.float32(multiplier))
    if not value > 0 or not math.isfinite(value):
        raise ValueError(f"requantization multiplier {value!r} is not positive")
    fraction, exponent = math.frexp(value)
    return int(fraction * (1 << mantissa_bits)), mantissa_bits - exponent


def multiply_shift(acc: np.ndarray, mantissa: np.ndarray | int,
                   shift: np.ndarray | int) -> np.ndarray:
    """``saturate_int32(floor((acc * mantissa + 2**(shift - 1)) / 2**shift))`` lane by lane:
    the product rounded half up (towards +infinity) by an arithmetic shift right of
    ``0 <= shift < 64`` bits, then clamped to int32. Exact while ``|acc * mantissa| < 2**62``
    (an int32 accumulator times a mantissa of up to 31 bits)."""
    product = np.asarray(acc, np.int64) * np.asarray(mantissa, np.int64)
    shift = np.asarray(shift, np.int64)
    half = np.where(shift > 0, np.left_shift(1, np.maximum(shift - 1, 0)), 0)
    return saturate((product + half) >> shift, np.int32)


__all__ = [
    "FLOAT32_MANTISSA_BITS",
    "along_axis",
    "dequantize",
    "fixed_point_multiplier",
    "multiply_shift",
    "quantize",
    "requantize",
    "saturate",
    "scaled_by",
]
