"""Cast and CastLike: conversions between every element type byoc supports, as the ONNX
specification of Cast (opsets 6 to 25) describes them.

- float to integer truncates toward zero (out of range is undefined in ONNX); integer to a
  narrower integer keeps the low bits, two's complement;
- float8 targets round to nearest even; with ``saturate`` (the default) values beyond the
  type's largest finite value, infinities included, become that value, without it they
  become NaN (or infinity for float8e5m2), as ml_dtypes converts;
- float8e8m0 (a power of two, 2**-127 to 2**127) rounds as ``round_mode`` says;
- 4- and 2-bit integers take floats truncated, as every integer type does (onnxruntime
  rounds to nearest for them; in range ONNX does not say, out of range is undefined, where
  ml_dtypes gives 0);
- numbers print as onnxruntime prints them: ``%.8g`` for floats with ``NaN``, ``INF`` and
  ``-INF``, ``1``/``0`` for bools; strings parse as plain or scientific decimal literals,
  or the case-insensitive literals ``INF``, ``+INF``, ``-INF`` and ``NaN``.
"""

from __future__ import annotations

import re

import numpy as np

from byoc.core import dtypes
from byoc.core.interpreter.base import OpImpl, register

ROUND_MODES = ("up", "down", "nearest")
_DECIMAL = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")
_WHOLE_NUMBER = re.compile(r"[+-]?\d+")
_SPECIAL_FLOATS = {"inf": np.inf, "+inf": np.inf, "-inf": -np.inf, "nan": np.nan}
_E8M0_BIAS = 127
_E8M0_LARGEST = 254  # the code of 2**127
_E8M0_NAN = 255


def cast(x: np.ndarray, dtype: np.dtype, saturate: bool = True,
         round_mode: str = "up") -> np.ndarray:
    """``x`` converted to ``dtype`` as ONNX's Cast converts it (see the module docstring)."""
    dtype = np.dtype(dtype)
    if dtype == dtypes.STRING:
        return _format_strings(x)
    if x.dtype == dtypes.STRING:
        x = _parse_strings(x, dtype)
    x = dtypes.widened(x)
    if dtype == dtypes.FLOAT8E8M0:
        return _to_e8m0(x, saturate, round_mode)
    if dtype in dtypes.FLOAT8_TYPES and saturate:
        limit = dtypes.float_max(dtype)
        x = np.clip(x.astype(np.promote_types(x.dtype, np.float32)), -limit, limit)
    with np.errstate(over="ignore", invalid="ignore"):
        if dtypes.is_float(x.dtype) and dtypes.is_integer(dtype):
            return np.trunc(x).astype(dtype)
        return x.astype(dtype)


def _to_e8m0(x: np.ndarray, saturate: bool, round_mode: str) -> np.ndarray:
    """float8e8m0 holds ``2**(code - 127)`` for codes 0 to 254 (255 is NaN): the exponent of
    ``x``, rounded to a neighbouring power of two as ``round_mode`` says (``nearest`` rounds
    ties up, measured linearly). Out of range saturates to the smallest or largest code, or
    is NaN without ``saturate``. Zero and negative values (which ONNX leaves unspecified)
    count as below the range, as in onnxruntime."""
    wide = x.astype(np.float64)
    mantissa, exponent = np.frexp(wide)  # wide = mantissa * 2**exponent
    fraction = 2 * mantissa - 1  # wide = (1 + fraction) * 2**(exponent - 1) when positive
    if round_mode == "up":
        exponent = exponent + (fraction > 0)
    elif round_mode == "nearest":
        exponent = exponent + (fraction >= 0.5)
    code = exponent - 1 + _E8M0_BIAS
    too_small = (code < 0) | (wide <= 0)
    too_large = (code > _E8M0_LARGEST) | (wide == np.inf)
    code = np.where(too_small, 0 if saturate else _E8M0_NAN, code)
    code = np.where(too_large, _E8M0_LARGEST if saturate else _E8M0_NAN, code)
    code = np.where(np.isnan(wide), _E8M0_NAN, code)
    return code.astype(np.uint8).view(dtypes.FLOAT8E8M0)


def _format_strings(x: np.ndarray) -> np.ndarray:
    x = dtypes.widened(x)
    if x.dtype == dtypes.STRING:
        return x.copy()
    if x.dtype == np.bool_:
        texts = ["1" if value else "0" for value in x.flat]
    elif dtypes.is_float(x.dtype):
        texts = [_format_float(float(value)) for value in x.flat]
    else:
        texts = [str(int(value)) for value in x.flat]
    strings = np.empty(x.shape, dtypes.STRING)
    strings.flat[:] = texts
    return strings


def _format_float(value: float) -> str:
    if np.isnan(value):
        return "NaN"
    if np.isinf(value):
        return "INF" if value > 0 else "-INF"
    return f"{value:.8g}"


def _parse_strings(x: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """The numbers the strings of ``x`` spell: Python ints (exact) for an integer
    ``dtype``, float64 otherwise; :func:`cast` converts them on to ``dtype``."""
    if dtypes.is_integer(dtype):
        values = [_parse_integer(text) for text in x.flat]
        signed = dtypes.integer_range(dtype)[0] < 0
        try:
            return np.array(values, np.int64 if signed else np.uint64).reshape(x.shape)
        except OverflowError:
            raise ValueError(f"Cast to {dtype.name}: a string spells a number outside the "
                             f"64-bit integer range") from None
    return np.array([_parse_float(text) for text in x.flat], np.float64).reshape(x.shape)


def _parse_float(text: str) -> float:
    stripped = str(text).strip()
    if stripped.lower() in _SPECIAL_FLOATS:
        return _SPECIAL_FLOATS[stripped.lower()]
    if not _DECIMAL.fullmatch(stripped):
        raise ValueError(f"Cast cannot read {text!r} as a number; ONNX casts strings that "
                         f"spell decimal numbers (\"3.14\", \"1e-5\"), INF, -INF or NaN")
    return float(stripped)


def _parse_integer(text: str) -> int:
    stripped = str(text).strip()
    if _WHOLE_NUMBER.fullmatch(stripped):
        return int(stripped)
    value = _parse_float(text)
    if not np.isfinite(value):
        raise ValueError(f"Cast cannot convert {text!r} to an integer type")
    return int(value)


def _check_round_mode(round_mode: str, op: str) -> None:
    if round_mode not in ROUND_MODES:
        raise ValueError(f"{op} round_mode {round_mode!r} is not one of "
                         f"{', '.join(ROUND_MODES)}")


@register("Cast")
class Cast(OpImpl):
    """Cast to the element type the ``to`` attribute names."""

    def check(self, x, to, saturate=1, round_mode="up"):
        if dtypes.to_numpy(to) is None:
            raise ValueError(f"Cast to {dtypes.onnx_type_name(to)} is not supported")
        _check_round_mode(round_mode, "Cast")

    def run(self, x, to, saturate=1, round_mode="up"):
        return cast(x, dtypes.to_numpy(to), bool(saturate), round_mode)


@register("CastLike")
class CastLike(OpImpl):
    """Cast to the element type of the second input (whose values are not read)."""

    def check(self, x, target_type, saturate=1, round_mode="up"):
        _check_round_mode(round_mode, "CastLike")

    def run(self, x, target_type, saturate=1, round_mode="up"):
        return cast(x, target_type.dtype, bool(saturate), round_mode)
