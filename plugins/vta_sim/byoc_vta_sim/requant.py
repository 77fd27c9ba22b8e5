"""Requantization multipliers as MULSHR operands (docs/vta-isa.md, "ALU extension").

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
