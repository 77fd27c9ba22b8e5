"""Requantization on the accelerator: multipliers as MULSHR operands (docs/vta-isa.md, "ALU
extension: MULSHR") and the requantizing STORE ("STORE").

The reference requantizes an int32 accumulator by a float32 multiplier M. The accelerator
multiplies by a fixed-point m and shifts right by s with rounding: M = m * 2**-s, where
m = frexp(M).mantissa * 2**25 is an integer in [2**24, 2**25) (exact: a float32 mantissa has
24 bits) and s = 25 - frexp(M).exponent (:func:`byoc.quantization.fixed_point_multiplier`).
The operand word packs both: (m << 6) | s.
"""

from __future__ import annotations

import numpy as np

from byoc.quantization import fixed_point_multiplier, multiply_shift

MANTISSA_BITS = 25
SHIFT_BITS = 6


def mulshr_operand(multiplier: float) -> int:
    """The MULSHR operand word for a float32 multiplier; ValueError when it has no exact
    encoding (M <= 0, or a shift outside 0..63)."""
    mantissa, shift = fixed_point_multiplier(multiplier, MANTISSA_BITS)
    if not 0 <= shift < (1 << SHIFT_BITS):
        raise ValueError(f"requantization multiplier {float(np.float32(multiplier))!r} needs a "
                         f"shift of {shift}, outside MULSHR's 0..63")
    return (mantissa << SHIFT_BITS) | shift


def mulshr(acc: np.ndarray, operand: np.ndarray | int) -> np.ndarray:
    """MULSHR on int32 lanes as docs/vta-isa.md defines it: the operand's signed 26-bit
    multiplier ``operand >> 6`` and shift ``operand & 63``, the product rounded half up and
    saturated (:func:`byoc.quantization.multiply_shift`)."""
    operand = np.asarray(operand, np.int32).astype(np.int64)
    return multiply_shift(acc, operand >> SHIFT_BITS, operand & ((1 << SHIFT_BITS) - 1))


PARAM_ELEMENTS = 3
"""ACC elements of a requantizing STORE's parameters: bias, MULSHR operand, range."""


def range_lanes(zero_point: int, lower: int, upper: int) -> int:
    """A requantizing STORE's range lane: the output zero point in bits 7..0, the lower and
    upper bound of the stored value in bits 15..8 and 23..16, each a signed byte."""
    for name, value in (("zero point", zero_point), ("lower bound", lower),
                        ("upper bound", upper)):
        if not -128 <= value <= 127:
            raise ValueError(f"the requantization's {name} {value} is not an int8")
    return (zero_point & 0xFF) | (lower & 0xFF) << 8 | (upper & 0xFF) << 16


def store_requantize(acc: np.ndarray, params: np.ndarray) -> np.ndarray:
    """What a requantizing STORE writes for the int32 accumulator lanes ``acc`` (any leading
    shape, lanes last) given its three parameter elements ``params`` (3 x lanes): every lane
    ``min(max(MULSHR(acc + bias, operand) + zero, lower), upper)``, the addition of the bias
    wrapping in int32, the rest exact; as int8 (the low 8 bits)."""
    bias, operand, ranges = (np.asarray(p, np.int64) for p in params)
    biased = (np.asarray(acc, np.int64) + bias + (1 << 31)) % (1 << 32) - (1 << 31)
    scaled = mulshr(biased, operand).astype(np.int64)

    def byte(k):
        return ((ranges >> (8 * k)) & 0xFF ^ 0x80) - 0x80
    return np.minimum(np.maximum(scaled + byte(0), byte(1)), byte(2)).astype(np.int8)
