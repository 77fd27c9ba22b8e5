"""hw/npu's requantize-and-activate unit (npu_requant) against byoc's reference, bit for bit.

The reference is ``byoc.quantization.requantize`` followed by the activation's clamp,
as byoc's integer layers evaluate it; each result is also checked against the same formula
written out in numpy float32, and against the plugin's own definition of the unit,
``byoc_npu_example.requant.requantize`` (where a case is inside its contract). Hand-made cases
also check the expected integers, so that three models agreeing on something wrong cannot
pass. Every test builds or runs the Verilated unit (marked ``cosim``; the build is cached
under $BYOC_CACHE_DIR, a few seconds the first time).
"""

from __future__ import annotations

import shutil
import subprocess
from fractions import Fraction

import numpy as np
import pytest

from byoc import quantization
from byoc.cosim import CosimError
from byoc_npu_example import requant, requant_rtl
from byoc_npu_example.requant_rtl import RequantRtl, pack_batch

pytestmark = pytest.mark.cosim

LANES = requant_rtl.DEFAULT_LANES
INT32_MIN, INT32_MAX = -(1 << 31), (1 << 31) - 1
LIMITS = {np.dtype(np.int8): (-128, 127), np.dtype(np.uint8): (0, 255)}


@pytest.fixture(scope="module")
def unit():
    return RequantRtl(LANES)


# -- the references ----------------------------------------------------------------------------


def reference(acc, multiplier, zero_point, qmin, qmax, dtype):
    """byoc's integer layer: quantization.requantize, then the fused activation's clamp."""
    with np.errstate(over="ignore"):
        y = quantization.requantize(np.asarray(acc), np.asarray(multiplier),
                                    np.asarray(zero_point), dtype)
    return np.clip(y, qmin, qmax).astype(dtype)


def float32_formula(acc, multiplier, zero_point, qmin, qmax, dtype):
    """The formula as written: clip(saturate(rint(f32(acc) * f32(m)) + zp), qmin, qmax)."""
    low, high = LIMITS[np.dtype(dtype)]
    with np.errstate(over="ignore"):
        product = np.asarray(acc).astype(np.float32) * np.asarray(multiplier, np.float32)
    shifted = np.rint(product).astype(np.float64) + np.asarray(zero_point, np.float64)
    return np.clip(np.clip(shifted, low, high), qmin, qmax).astype(dtype)


def plugin_model(acc, multiplier, zero_point, qmin, qmax, dtype):
    """byoc_npu_example.requant.requantize, the NPU's own definition of the unit, or None
    where the case is outside its contract (int32 accumulators; one clamp range per call,
    inside the output type). Per-row clamps ((rows, 1) arrays) take one call per range."""
    low, high = LIMITS[np.dtype(dtype)]
    qmin, qmax = np.asarray(qmin), np.asarray(qmax)
    if not (low <= qmin.min() and (qmin <= qmax).all() and qmax.max() <= high):
        return None
    acc = np.asarray(acc).astype(np.int32)
    multiplier = np.broadcast_to(np.asarray(multiplier, np.float32), acc.shape)
    zero_point = np.broadcast_to(np.asarray(zero_point), (len(acc), 1) if qmin.ndim else ())
    with np.errstate(over="ignore"):
        if qmin.ndim == 0:
            return requant.requantize(acc, multiplier, zero_point, int(qmin), int(qmax), dtype)
        result = np.empty(acc.shape, dtype=dtype)
        ranges, which = np.unique(np.hstack([qmin, qmax]), axis=0, return_inverse=True)
        for index, (low_bound, high_bound) in enumerate(ranges):
            rows = which.reshape(-1) == index
            result[rows] = requant.requantize(acc[rows], multiplier[rows], zero_point[rows],
                                              int(low_bound), int(high_bound), dtype)
        return result


def assert_matches_references(rtl, acc, multiplier, zero_point, qmin, qmax, dtype):
    """``rtl`` (what the unit computed) equals every reference model, element for element."""
    models = {"quantization.requantize": reference, "the float32 formula": float32_formula,
              "byoc_npu_example.requant": plugin_model}
    for name, model in models.items():
        expected = model(acc, multiplier, zero_point, qmin, qmax, dtype)
        if expected is None:
            continue
        expected = np.broadcast_to(expected, np.shape(rtl))
        differs = np.argwhere(expected != rtl)
        if differs.size:
            where = tuple(differs[0])
            acc_b = np.broadcast_to(acc, np.shape(rtl))
            m_b = np.broadcast_to(np.asarray(multiplier, np.float32), np.shape(rtl))
            raise AssertionError(
                f"{len(differs)} results differ from {name}; the first at {where}: acc "
                f"{acc_b[where]}, multiplier {m_b[where]!r} ({m_b[where].view(np.uint32):#x}), "
                f"zero point {zero_point}, clamp [{qmin}, {qmax}], {np.dtype(dtype)}: expected "
                f"{expected[where]}, the RTL gave {rtl[where]}")


def check(unit, acc, multiplier, zero_point=0, qmin=None, qmax=None, dtype=np.int8):
    """Run flat ``acc`` (with broadcast multipliers) on the unit, compare, return the result."""
    dtype = np.dtype(dtype)
    low, high = LIMITS[dtype]
    qmin = low if qmin is None else qmin
    qmax = high if qmax is None else qmax
    acc = np.asarray(acc, dtype=np.int64)
    multiplier = np.broadcast_to(np.asarray(multiplier, dtype=np.float32), acc.shape)
    rtl = unit.requantize(acc, multiplier, zero_point, qmin, qmax, dtype)
    assert rtl.dtype == dtype and rtl.shape == acc.shape
    assert_matches_references(rtl, acc, multiplier, zero_point, qmin, qmax, dtype)
    return rtl


def half_even(value: Fraction) -> int:
    """Round a rational to the nearest integer, ties to even (Python's round on Fraction)."""
    return round(value)


# -- the design itself -------------------------------------------------------------------------


@pytest.mark.parametrize("lanes", [LANES, 5])
def test_rtl_is_lint_clean_with_the_checked_in_waivers(lanes):
    root = requant_rtl.rtl_dir()
    result = subprocess.run(
        [shutil.which("verilator") or "verilator", "--lint-only", "-Wall", f"-GLANES={lanes}",
         str(root / "lint_waivers.vlt"), *map(str, requant_rtl.rtl_sources(root)),
         "--top-module", "npu_requant_shell"],
        capture_output=True, text=True, check=False)
    assert result.returncode == 0 and "%Warning" not in result.stderr, result.stderr


def test_record_layout_is_the_shells():
    memory = pack_batch(np.array([[-2, 3]]), np.array([[0.5, -1.0]]), -7, -100, 90, True)
    expected = (b"\xf9\xff" b"\x9c\xff" b"\x5a\x00" b"\x01\x00"
                + np.array([-2, 3], "<i4").tobytes()
                + np.array([0.5, -1.0], "<f4").tobytes())
    assert memory.tobytes() == expected
    assert memory.size == 8 + 8 * 2


def test_a_batch_takes_one_cycle_per_vector(unit):
    vectors = 1000
    acc = np.arange(vectors * LANES).reshape(vectors, LANES)
    unit.run_batch(acc, 1.0, 0, -128, 127, True)
    assert unit.cycles == vectors + requant_rtl.UNIT_LATENCY + requant_rtl.SHELL_LATENCY
    unit.run_batch(acc[:0], 1.0, 0, -128, 127, True)
    assert unit.cycles == 1


def test_operands_the_unit_cannot_take_are_refused_by_name(unit):
    one = np.ones((1, 4), dtype=np.int64)
    with pytest.raises(CosimError, match="zero_point 300 is outside -256..255"):
        pack_batch(one, 1.0, 300, 0, 255, False)
    with pytest.raises(CosimError, match="qmin -257 is outside"):
        pack_batch(one, 1.0, 0, -257, 255, False)
    with pytest.raises(CosimError, match="accumulator 2147483648 is outside"):
        pack_batch(one << 31, 1.0, 0, 0, 255, False)
    with pytest.raises(CosimError, match="multipliers must be finite float32 values; got inf"):
        pack_batch(one, np.inf, 0, 0, 255, False)
    with pytest.raises(CosimError, match="output type must be int8 or uint8, got int16"):
        unit.requantize(one, 1.0, 0, 0, 255, np.int16)


# -- rounding ----------------------------------------------------------------------------------


def test_exact_ties_round_to_even(unit):
    """acc * m = k + 1/2 exactly, for even and odd k of both signs: m = c * 2^-j and
    acc = q * 2^(j-1) with c, q odd make the product c * q / 2, exact in float32."""
    rng = np.random.default_rng(1)
    c = rng.integers(0, 8, 4000) * 2 + 1
    q = (rng.integers(0, 8, 4000) * 2 + 1) * rng.choice([-1, 1], 4000)
    j = rng.integers(1, 21, 4000)
    acc = q << (j - 1)
    multiplier = np.ldexp(c.astype(np.float32), -j)
    rtl = check(unit, acc, multiplier)
    expected = [half_even(Fraction(int(ci * qi), 2)) for ci, qi in zip(c, q)]
    assert rtl.tolist() == expected
    halves = {(int(ci * qi) - 1) // 2 for ci, qi in zip(c, q)}       # k of k + 1/2
    assert {k % 2 for k in halves if k > 0} == {0, 1}
    assert {k % 2 for k in halves if k < 0} == {0, 1}
    hand_made = check(unit, [1, 3, 5, 7, -1, -3, -5, -7], 0.5)
    assert hand_made.tolist() == [0, 2, 2, 4, 0, -2, -2, -4]


def test_products_that_float32_rounds_onto_a_tie(unit):
    """|acc| < 2^24 is exact, but acc * m needs 48 bits: pairs whose exact product is just
    off k + 1/2 while its float32 rounding is k + 1/2 round to even, not to the nearer side."""
    rng = np.random.default_rng(2)
    acc = rng.integers(1 << 23, 1 << 24, 200_000)
    targets = rng.integers(-120, 120, acc.size) + 0.5
    multiplier = (targets / acc).astype(np.float32)
    exact = acc * multiplier.astype(np.float64)         # 24 x 24 bits: exact in float64
    product = acc.astype(np.float32) * multiplier
    onto_tie = (product == targets) & (exact != targets)
    assert onto_tie.sum() > 1000
    acc, multiplier = acc[onto_tie], multiplier[onto_tie]
    rtl = check(unit, acc, multiplier)
    assert (rtl != np.floor(exact[onto_tie] + 0.5)).any()   # rounding the exact product differs
    assert rtl.tolist() == [half_even(Fraction(float(t))) for t in targets[onto_tie]]


def test_products_exactly_between_two_float32_values(unit):
    """Double ties: acc * m = v +- half a float32 step, where v = k + 1/2. float32 rounds
    the tie to v (its significand is the even one), then v rounds to the even integer; a
    product rounded away from the tie would end at k + 1 or k. acc and m are the two factors
    of the product's 25-bit significand N."""
    acc, multipliers, expected = [], [], []
    for k in range(1, 127):
        exponent = (2 * k + 1).bit_length() - 2                 # v in [2^e, 2^(e+1))
        for step in (1, -1):
            significand = (2 * k + 1) * 2 ** (23 - exponent) + step   # v +- ulp/2, / (ulp/2)
            factor = next((f for f in range(3, 5800, 2) if significand % f == 0), None)
            if factor is None:
                continue                                          # a prime: no 24-bit split
            for sign in (1, -1):
                acc.append(sign * factor)
                multipliers.append(np.ldexp(np.float32(significand // factor), exponent - 24))
                expected.append(sign * half_even(Fraction(2 * k + 1, 2)))
    assert len(acc) > 300
    assert check(unit, acc, np.array(multipliers, np.float32)).tolist() == expected


def test_accumulators_beyond_2_24_round_like_float32(unit):
    """float32(acc) keeps 24 bits: 2^24 + 1 becomes 2^24 (tie, even), 2^24 + 3 becomes
    2^24 + 4. acc = (2k + 1) * 2^19 + d with m = 2^-20 is k + 1/2 + d * 2^-20 exactly, but
    float32(acc) drops d (|acc| >= 2^26: float32 steps by 8 there; d = +-4 is a tie that
    float32 rounds to the even multiple of 8), so the result is the even neighbour, not the
    nearer one."""
    assert check(unit, [(1 << 24) + 1, (1 << 24) + 3, -(1 << 24) - 3], 2.0 ** -24).tolist() \
        == [1, 1, -1]
    assert check(unit, [(1 << 24) + 1, (1 << 24) + 3], 2.0 ** -17).tolist() == [127, 127]
    k = np.concatenate([np.arange(-128, -64), np.arange(64, 127)])
    for d in (1, 3, -3, 4, -4):
        acc = (2 * k + 1) * (1 << 19) + d
        assert (np.abs(acc) > 1 << 26).all()
        rtl = check(unit, acc, 2.0 ** -20)
        assert rtl.tolist() == [half_even(Fraction(2 * int(ki) + 1, 2)) for ki in k]
    rng = np.random.default_rng(3)
    acc = rng.integers(1 << 24, INT32_MAX, 50_000) * rng.choice([-1, 1], 50_000)
    multiplier = (rng.uniform(-130, 130, acc.size) / acc).astype(np.float32)
    check(unit, acc, np.abs(multiplier))


def test_int32_extremes(unit):
    acc = np.array([INT32_MIN, INT32_MIN + 1, INT32_MAX, INT32_MAX - 1, -1, 0, 1])
    multipliers = [2.0 ** -31, 2.0 ** -32, 1.5 * 2.0 ** -31, 127.5 * 2.0 ** -31, 2.0 ** -24,
                   2.0 ** -8, 1.0, 4.0]
    for multiplier in multipliers:
        for dtype, zero_point in ((np.int8, 0), (np.int8, -5), (np.uint8, 128)):
            check(unit, acc, multiplier, zero_point, dtype=dtype)
    # float32(INT32_MAX) is 2^31: both extremes land on +-1 with m = 2^-31
    assert check(unit, acc[:3], 2.0 ** -31).tolist() == [-1, -1, 1]
    # 2^31 * 2^-32 = 0.5 exactly: a tie, rounded to 0
    assert check(unit, acc[:3], 2.0 ** -32).tolist() == [0, 0, 0]


# -- saturation, zero points and clamps --------------------------------------------------------


def test_saturation_both_ways(unit):
    acc = [INT32_MAX, 1 << 20, 300, 128, 127, -128, -129, -300, -(1 << 20), INT32_MIN]
    assert check(unit, acc, 1.0).tolist() == [127, 127, 127, 127, 127, -128, -128, -128,
                                              -128, -128]
    assert check(unit, acc, 1.0, dtype=np.uint8).tolist() == [255, 255, 255, 128, 127, 0, 0,
                                                              0, 0, 0]
    # the zero point moves the value before the saturation
    assert check(unit, [200, 100, -100], 1.0, zero_point=-100).tolist() == [100, 0, -128]
    assert check(unit, [200, 100, -100], 1.0, zero_point=100, dtype=np.uint8).tolist() \
        == [255, 200, 0]
    huge = [1, -1, INT32_MAX, INT32_MIN]    # products overflowing float32 saturate too
    assert check(unit, huge, np.finfo(np.float32).max).tolist() == [127, -128, 127, -128]


def test_negative_zero_points(unit):
    acc = np.arange(-300, 301)
    for zero_point in (-128, -100, -17, -1):
        rtl = check(unit, acc, 0.75, zero_point)
        assert rtl[300] == zero_point       # acc = 0
    check(unit, acc, 0.75, -256, -256, 255)   # the unit's 9-bit extremes


def test_activation_clamps(unit):
    rng = np.random.default_rng(4)
    acc = rng.integers(-5000, 5000, 4096)
    scale = np.float32(0.0371)
    for zero_point, dtype in ((-20, np.int8), (0, np.int8), (3, np.uint8), (128, np.uint8)):
        high = LIMITS[np.dtype(dtype)][1]
        relu = check(unit, acc, scale, zero_point, zero_point, high, dtype)
        assert relu.min() == zero_point
        six = min(high, zero_point + round(6 / 0.1))      # Relu6 at an output scale 0.1
        relu6 = check(unit, acc, scale, zero_point, zero_point, six, dtype)
        assert relu6.min() == zero_point and relu6.max() == six
    check(unit, acc, scale, 5, -30, 40)
    check(unit, acc, scale, 5, 40, -30)     # qmin above qmax: np.clip gives qmax
    assert check(unit, [0], 1.0, 0, 10, 10).tolist() == [10]


def test_tiny_multipliers_give_the_zero_point(unit):
    acc = np.array([INT32_MIN, -12345, 0, 1, 99999, INT32_MAX])
    tiny = [0.0, -0.0, 1e-45, 1e-40, float(np.finfo(np.float32).tiny), 2.0 ** -40,
            2.0 ** -33, np.nextafter(np.float32(2.0 ** -32), np.float32(0))]
    for multiplier in tiny:
        for zero_point, dtype in ((0, np.int8), (-9, np.int8), (77, np.uint8)):
            assert (check(unit, acc, multiplier, zero_point, dtype=dtype) == zero_point).all()


def test_multipliers_above_one(unit):
    acc = np.arange(-70, 71)
    for multiplier in (1.0, 1.5, 1.75, 2.0, 3.75, 4.0):
        expected = [half_even(Fraction(int(a)) * Fraction(multiplier)) for a in acc]
        expected = np.clip(expected, -128, 127)
        assert (check(unit, acc, multiplier) == expected).all()
    for multiplier in (2.0 ** 10, 2.0 ** 100, 3e38):
        check(unit, [-1, 0, 1, 12345, INT32_MIN], multiplier, 3)


def test_negative_multipliers(unit):
    """Beyond the contract (multipliers are positive scales): the sign is honoured too."""
    rng = np.random.default_rng(5)
    acc = rng.integers(-3000, 3000, 8192)
    check(unit, acc, -rng.uniform(0.01, 0.2, acc.size).astype(np.float32), 10)
    assert check(unit, [3, -3, 5], -0.5).tolist() == [-2, 2, -2]


# -- random batches ----------------------------------------------------------------------------


def random_batch(rng, vectors, lanes):
    """Accumulators, multipliers 2^-20..2^2, zero points, clamps and output types: half of
    the lanes aimed at results near their output range, the rest spread over all of int32."""
    out_signed = rng.random(vectors) < 0.5
    zero_point = np.where(out_signed, rng.integers(-128, 128, vectors),
                          rng.integers(0, 256, vectors))
    low = np.where(out_signed, -128, 0)
    high = np.where(out_signed, 127, 255)
    bounds = np.sort(rng.integers(low, high + 1, (2, vectors)), axis=0)
    unclamped = rng.random(vectors) < 0.5
    qmin = np.where(unclamped, low, bounds[0])
    qmax = np.where(unclamped, high, bounds[1])

    multiplier = np.exp2(rng.uniform(-20, 2, (vectors, lanes))).astype(np.float32)
    target = rng.uniform(low - zero_point - 8, high - zero_point + 8, (lanes, vectors)).T
    aimed = np.rint(target / multiplier) + rng.integers(-2, 3, (vectors, lanes))
    magnitude = np.exp2(rng.uniform(0, 31, (vectors, lanes)))
    spread = np.rint(magnitude * rng.choice([-1, 1], magnitude.shape))
    uniform = rng.integers(INT32_MIN, INT32_MAX, (vectors, lanes), endpoint=True)
    kind = rng.choice(3, (vectors, lanes), p=[0.5, 0.25, 0.25])
    acc = np.where(kind == 0, aimed, np.where(kind == 1, spread, uniform))
    acc = np.clip(acc, INT32_MIN, INT32_MAX).astype(np.int64)
    return acc, multiplier, zero_point, qmin, qmax, out_signed


def check_batch(rtl_unit, rng, vectors):
    acc, multiplier, zero_point, qmin, qmax, out_signed = random_batch(rng, vectors,
                                                                       rtl_unit.lanes)
    rtl = rtl_unit.run_batch(acc, multiplier, zero_point, qmin, qmax, out_signed)
    for dtype, rows in ((np.int8, out_signed), (np.uint8, ~out_signed)):
        assert_matches_references(rtl[rows].astype(dtype), acc[rows], multiplier[rows],
                                  zero_point[rows, None], qmin[rows, None], qmax[rows, None],
                                  dtype)
    inside = (rtl > qmin[:, None]) & (rtl < qmax[:, None])
    return rtl.size, inside.mean()


def test_random_batches_match_the_reference_bit_for_bit(unit):
    rng = np.random.default_rng(6)
    lanes, inside = 0, []
    for _ in range(4):
        count, fraction = check_batch(unit, rng, 10_000)
        lanes += count
        inside.append(fraction)
    assert lanes == 640_000
    # enough results strictly inside their clamp that agreement is not just saturation
    assert min(inside) > 0.3


@pytest.mark.parametrize("lanes", [5, 8])
def test_other_lane_counts(lanes):
    count, _ = check_batch(RequantRtl(lanes), np.random.default_rng(lanes), 3000)
    assert count == 3000 * lanes


def test_requantize_takes_per_channel_multipliers_of_any_shape(unit):
    """A conv output N x C x H x W (not a whole number of vectors) with one multiplier per
    channel, as a layer hands it over."""
    rng = np.random.default_rng(7)
    acc = rng.integers(-40_000, 40_000, (2, 6, 5, 7))
    multiplier = rng.uniform(1e-3, 4e-3, (1, 6, 1, 1)).astype(np.float32)
    check(unit, acc, multiplier, 12, 12, 127)
    check(unit, acc, multiplier, 140, 140, 255, np.uint8)
