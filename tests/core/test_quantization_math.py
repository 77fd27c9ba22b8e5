"""byoc.quantization, the arithmetic the reference and every plugin share: rounding (half to
even for quantize and requantize, half up for the fixed-point form), saturation, and the
fixed-point multiplier, each against exact rational arithmetic."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest

from byoc.quantization import (
    along_axis,
    dequantize,
    fixed_point_multiplier,
    multiply_shift,
    quantize,
    requantize,
    saturate,
)

INT32_MIN, INT32_MAX = -(1 << 31), (1 << 31) - 1


def round_half_even(value: Fraction) -> int:
    return round(value)   # Python's round of a Fraction goes to the even neighbour on a tie


def round_half_up(value: Fraction) -> int:
    return (value + Fraction(1, 2)).__floor__()


# -- quantize ------------------------------------------------------------------------------------


def test_quantize_rounds_halves_to_even_on_both_sides_of_zero():
    halves = np.array([-3.5, -2.5, -1.5, -0.5, 0.5, 1.5, 2.5, 3.5], np.float32)
    assert quantize(halves, np.float32(1), None, np.int8).tolist() == [-4, -2, -2, 0, 0, 2, 2, 4]
    # The tie is decided before the zero point is added: 2.5 -> 2, then + 3.
    assert quantize(halves, np.float32(1), 3, np.int8).tolist() == [-1, 1, 1, 3, 3, 5, 5, 7]


def test_quantize_divides_in_float32_and_rounds_the_float32_quotient():
    scale = np.float32(0.1)
    x = np.array([0.25, -0.25, 0.35, 12.7, -12.7], np.float32)
    expected = [round_half_even(Fraction(float(np.float32(v) / scale))) for v in x]
    assert quantize(x, scale, None, np.int8).tolist() == expected


@pytest.mark.parametrize("dtype, low, high", [(np.int8, -128, 127), (np.uint8, 0, 255),
                                              (np.int16, -32768, 32767)])
def test_quantize_saturates_to_the_type_and_to_given_bounds(dtype, low, high):
    x = np.array([-1e30, -np.inf, low - 0.6, low - 0.4, high + 0.4, high + 0.6, np.inf, 1e30],
                 np.float32)
    got = quantize(x, np.float32(1), None, dtype)
    assert got.dtype == dtype
    assert got.tolist() == [low, low, low, low, high, high, high, high]
    assert quantize(np.array([-50, 3, 50], np.float32), np.float32(1), None, dtype,
                    bounds=(max(low, 0), 10)).tolist() == [max(low, 0), 3, 10]


def test_quantize_applies_scale_and_zero_point_along_the_axis():
    x = np.array([[[1.0], [1.0]], [[-1.0], [-1.0]]], np.float32)    # N x C x 1
    scale = np.array([0.5, 0.25], np.float32)
    zero = np.array([10, 20], np.uint8)
    assert quantize(x, scale, zero, np.uint8, axis=1).tolist() == [[[12], [24]], [[8], [16]]]


def test_quantize_precision_sets_the_division_type():
    # In float16, 2049 is 2048 and 2048 / 3 is 682.5, a tie; in float32 the quotient is
    # 683.0000 to float32's precision.
    x, scale = np.array([2049.0], np.float32), np.float32(3.0)
    assert quantize(x, scale, None, np.int16).tolist() == [683]
    assert quantize(x, scale, None, np.int16, precision=np.float16).tolist() == [682]


# -- dequantize ----------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.int8, np.uint8, np.int32])
def test_dequantize_takes_the_difference_exactly_then_scales_in_the_scale_type(dtype):
    info = np.iinfo(dtype)
    q = np.array([info.min, -1 if info.min else 0, 0, 1, info.max], dtype)
    zero = np.asarray(info.max, dtype)
    scale = np.float32(0.1)
    got = dequantize(q, scale, zero)
    assert got.dtype == np.float32
    expected = [np.float32(np.float32(int(v) - int(zero)) * scale) for v in q]
    assert got.tolist() == expected


def test_dequantize_then_quantize_gives_back_every_int8():
    q = np.arange(-128, 128, dtype=np.int8)
    for scale in (np.float32(0.0078125), np.float32(0.0123), np.float32(3.7)):
        for zero in (-128, -3, 0, 127):
            values = dequantize(q, scale, np.int8(zero))
            back = quantize(values, scale, np.int8(zero), np.int8)
            inside = (q.astype(int) - zero >= -128) & (q.astype(int) - zero <= 127)
            assert (back == q)[inside].all()


# -- requantize ----------------------------------------------------------------------------------


def test_requantize_rounds_the_float32_product_half_to_even():
    acc = np.array([-7, -5, -3, -1, 1, 3, 5, 7, 9], np.int32)
    got = requantize(acc, np.float32(0.5), None, np.int8)
    assert got.tolist() == [round_half_even(Fraction(int(a), 2)) for a in acc]
    assert got.tolist() == [-4, -2, -2, 0, 0, 2, 2, 4, 4]


def test_requantize_rounds_the_accumulator_to_float32_first():
    # 2**24 + 1 is not a float32: it becomes 2**24, and so does the product by 1.
    acc = np.array([(1 << 24) + 1, -(1 << 24) - 1], np.int32)
    assert requantize(acc, np.float32(1), None, np.int32).tolist() == [1 << 24, -(1 << 24)]


def test_requantize_matches_exact_arithmetic_away_from_ties():
    rng = np.random.default_rng(0)
    acc = rng.integers(-100_000, 100_000, 2000).astype(np.int32)
    multiplier = np.float32(0.0012345)
    zero = np.int8(-7)
    got = requantize(acc, multiplier, zero, np.int8)
    for a, y in zip(acc.tolist(), got.tolist()):
        product = Fraction(float(np.float32(a) * multiplier))   # the one float32 multiply
        assert y == min(max(round_half_even(product) + int(zero), -128), 127)


@pytest.mark.parametrize("dtype, low, high", [(np.int8, -128, 127), (np.uint8, 0, 255),
                                              (np.int32, INT32_MIN, INT32_MAX)])
def test_requantize_saturates_to_the_output_type(dtype, low, high):
    acc = np.array([INT32_MIN, -1000, 1000, INT32_MAX], np.int32)
    got = requantize(acc, np.float32(4.0), None, dtype)
    assert got.dtype == dtype
    assert got[[0, -1]].tolist() == [low, high]


def test_requantize_clamps_to_bounds_after_the_zero_point():
    acc = np.array([-100, 0, 100], np.int32)
    got = requantize(acc, np.float32(1), np.int8(5), np.int8, bounds=(5, 50))
    assert got.tolist() == [5, 5, 50]


def test_requantize_broadcasts_per_channel_multipliers():
    acc = np.full((1, 3, 2), 10, np.int32)
    multiplier = along_axis(np.array([0.5, 1.0, 2.0], np.float32), 1, acc.ndim)
    assert requantize(acc, multiplier, None, np.int8)[0, :, 0].tolist() == [5, 10, 20]


# -- saturation and broadcasting -------------------------------------------------------------------


def test_saturate_clamps_and_converts():
    values = np.array([-1e12, -129, -128, 127, 128, 1e12])
    assert saturate(values, np.int8).tolist() == [-128, -128, -128, 127, 127, 127]
    assert saturate(values, np.uint8).tolist() == [0, 0, 0, 127, 128, 255]
    assert saturate(values, np.int32).tolist() == [INT32_MIN, -129, -128, 127, 128, INT32_MAX]


def test_along_axis_shapes_per_tensor_and_per_axis_parameters():
    assert along_axis(np.array([3.0]), 1, 4).shape == ()
    assert along_axis(np.array([1, 2, 3]), 1, 4).shape == (1, 3, 1, 1)
    assert along_axis(np.array([1, 2, 3]), -1, 2).shape == (1, 3)
    assert along_axis(np.ones((2, 3)), 0, 2).shape == (2, 3)


# -- the fixed-point form -----------------------------------------------------------------------


@pytest.mark.parametrize("multiplier", [0.7, 0.0123, 3.1e-6, 2.0 ** -30, 1.5, 1000.0, 1.0,
                                        float(np.nextafter(np.float32(1), np.float32(0)))])
@pytest.mark.parametrize("bits", [24, 25, 31])
def test_fixed_point_multiplier_is_the_float32_multiplier_exactly(multiplier, bits):
    mantissa, shift = fixed_point_multiplier(multiplier, bits)
    assert 1 << (bits - 1) <= mantissa < 1 << bits
    assert Fraction(mantissa, 1) / Fraction(2) ** shift == Fraction(float(np.float32(multiplier)))


@pytest.mark.parametrize("multiplier", [0.0, -0.5, float("inf"), float("nan")])
def test_fixed_point_multiplier_refuses_what_is_not_positive_and_finite(multiplier):
    with pytest.raises(ValueError, match="not positive"):
        fixed_point_multiplier(multiplier, 25)


def test_fixed_point_multiplier_needs_room_for_a_float32_mantissa():
    with pytest.raises(ValueError, match="24 mantissa bits"):
        fixed_point_multiplier(0.5, 16)


def test_multiply_shift_rounds_halves_up_on_both_sides_of_zero():
    acc = np.array([-7, -5, -3, -1, 1, 3, 5, 7], np.int32)
    got = multiply_shift(acc, 1, 1)
    assert got.tolist() == [round_half_up(Fraction(int(a), 2)) for a in acc]
    assert got.tolist() == [-3, -2, -1, 0, 1, 2, 3, 4]


def test_multiply_shift_matches_exact_arithmetic():
    rng = np.random.default_rng(1)
    acc = np.concatenate([rng.integers(INT32_MIN, INT32_MAX, 3000, endpoint=True),
                          [INT32_MIN, INT32_MAX, 0, -1, 1]]).astype(np.int32)
    mantissa = rng.integers(-(1 << 25), 1 << 25, acc.size)
    shift = rng.integers(0, 64, acc.size)
    got = multiply_shift(acc, mantissa, shift)
    assert got.dtype == np.int32
    for a, m, s, y in zip(acc.tolist(), mantissa.tolist(), shift.tolist(), got.tolist()):
        exact = round_half_up(Fraction(a * m, 1 << s))
        assert y == min(max(exact, INT32_MIN), INT32_MAX)


def test_multiply_shift_saturates_to_int32():
    acc = np.array([INT32_MAX, INT32_MIN, INT32_MIN], np.int32)
    assert multiply_shift(acc, np.array([3, 3, -1]), 0).tolist() == [INT32_MAX, INT32_MIN,
                                                                        INT32_MAX]


def test_fixed_point_requantization_differs_from_float32_only_at_ties():
    """With the multiplier's exact fixed-point form, multiply_shift gives the exact product
    rounded half up; the float32 requantization rounds a float32 product half to even. In
    the range requantization lands in they agree except near a tie."""
    rng = np.random.default_rng(2)
    multiplier = np.float32(0.2713)
    mantissa, shift = fixed_point_multiplier(multiplier, 25)
    acc = rng.integers(-4000, 4000, 20_000).astype(np.int32)
    fixed = multiply_shift(acc, mantissa, shift)
    exact = [round_half_up(Fraction(int(a)) * Fraction(float(multiplier))) for a in acc]
    assert fixed.tolist() == exact
    float32 = requantize(acc, multiplier, None, np.int32)
    assert (fixed == float32).mean() > 0.999
