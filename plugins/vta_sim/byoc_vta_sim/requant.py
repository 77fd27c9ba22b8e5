"""Requantization multipliers as MULSHR operands (docs/vta-isa.md, "ALU extension").

The reference requantizes an int32 accumulator by a float32 multiplier M. The accelerator
multiplies by a fixed-point m and shifts right by s with rounding: M = m * 2**-s, where
m = frexp(M).mantissa * 2**25 is an integer in [2**24, 2**25) (exact: a float32 mantissa has
24 bits) and s = 25 - frexp(M).exponent. The operand word packs both: (m << 6) | s.
"""

from __future__ import annotations

import math

import numpy as np

MANTISSA_BITS = 25
SHIFT_BITS = 6


def mulshr_operand(multiplier: float) -> int:
    """The MULSHR operand word for a float32 multiplier; ValueError when it has no exact
    encoding (M <= 0, or a shift outside 0..63)."""
    value = float(np.float32(multiplier))
    if not value > 0 or not math.isfinite(value):
        raise ValueError(f"requantization multiplier {value!r} is not positive")
    fraction, exponent = math.frexp(value)
    mantissa = int(fraction * (1 << MANTISSA_BITS))
    shift = MANTISSA_BITS - exponent
    if not 0 <= shift < (1 << SHIFT_BITS):
        raise ValueError(f"requantization multiplier {value!r} needs a shift of {shift}, "
                         f"outside MULSHR's 0..63")
    return (mantissa << SHIFT_BITS) | shift


def mulshr(acc: np.ndarray, operand: np.ndarray) -> np.ndarray:
    """MULSHR on int32 lanes as docs/vta-isa.md defines it (the simulator's definition)."""
    a = np.asarray(acc, np.int64)
    b = np.asarray(operand, np.int32).astype(np.int64)
    m, s = b >> SHIFT_BITS, b & ((1 << SHIFT_BITS) - 1)
    p = a * m
    half = np.where(s > 0, np.left_shift(1, np.maximum(s - 1, 0)), 0)
    r = (p + half) >> s
    return np.clip(r, -(1 << 31), (1 << 31) - 1).astype(np.int32)
