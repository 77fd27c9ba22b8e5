"""What each vta_sim instruction does to the buffers and to DRAM, checked against numpy
expectations written out here (the pinned semantics in docs/vta-isa.md)."""

from __future__ import annotations

import numpy as np
import pytest

from byoc_vta_sim import sim as sim_module
from byoc_vta_sim.config import DEFAULT_CONFIG
from byoc_vta_sim.isa import (
    AluInsn,
    AluOp,
    FinishInsn,
    GemmInsn,
    MemInsn,
    MemType,
    Uop,
    encode_stream,
    encode_uops,
)
from byoc_vta_sim.sim import SimulationError, Simulator, describe

INT32_MIN, INT32_MAX = -(1 << 31), (1 << 31) - 1
RNG_SEED = 20240607


def run_compute(sim, *insns, dram=None):
    """Run compute-module instructions then FINISH; returns the run's counters."""
    return sim.run([*insns, FinishInsn()], np.zeros(64, np.uint8) if dram is None else dram)


def set_uops(sim, *uops):
    sim.uop[:len(uops)] = encode_uops(uops)


def store_stream(store):
    """``store`` wrapped in the tokens that make it run before FINISH."""
    return [MemInsn(memory_type=MemType.UOP, push_next=1),              # compute -> store
            store.with_deps(pop_prev=1, push_prev=1),                   # store -> compute
            MemInsn(memory_type=MemType.UOP, pop_next=1), FinishInsn()]


def wrap32(value):
    return (value - INT32_MIN) % (1 << 32) + INT32_MIN


# -- LOAD ---------------------------------------------------------------------------------


def test_load_inp_writes_padded_rows_from_strided_dram():
    sim = Simulator()
    sim.inp[:] = 0x55                                   # marks what the LOAD must not touch
    elem = DEFAULT_CONFIG.inp_elem_bytes
    dram = np.arange(40 * elem, dtype=np.uint32).astype(np.uint8)
    load = MemInsn(memory_type=MemType.INP, sram_base=3, dram_base=2, y_size=2, x_size=3,
                   x_stride=5, y_pad_0=1, y_pad_1=1, x_pad_0=1, x_pad_1=2)
    counters = run_compute(sim, load, dram=dram)

    as_elements = dram.view(np.int8).reshape(-1, 1, DEFAULT_CONFIG.block_in)
    expected = np.zeros((4, 6, 1, DEFAULT_CONFIG.block_in), np.int8)   # 4 rows of width 6
    expected[1, 1:4] = as_elements[2:5]                                 # DRAM row 0: 2, 3, 4
    expected[2, 1:4] = as_elements[7:10]                                # DRAM row 1: 7, 8, 9
    np.testing.assert_array_equal(sim.inp[3:27], expected.reshape(24, 1, -1))
    assert (sim.inp[:3] == 0x55).all() and (sim.inp[27:] == 0x55).all()
    assert counters["bytes_loaded_inp"] == 2 * 3 * elem


def test_load_wgt_stores_each_element_out_by_in():
    sim = Simulator()
    dram = np.random.default_rng(RNG_SEED).integers(0, 256, 3 * 256, dtype=np.uint8)
    run_compute(sim, MemInsn(memory_type=MemType.WGT, sram_base=7, dram_base=1, y_size=1,
                             x_size=2, x_stride=2), dram=dram)
    np.testing.assert_array_equal(sim.wgt[7], dram[256:512].view(np.int8).reshape(16, 16))
    np.testing.assert_array_equal(sim.wgt[8], dram[512:768].view(np.int8).reshape(16, 16))


def test_load_acc_and_uop_read_little_endian_words():
    sim = Simulator()
    acc_values = np.array([[INT32_MIN, -1, 0, 1] * 4, list(range(-8, 8))], dtype="<i4")
    uop_words = encode_uops([Uop(dst=5, src=9, wgt=3), Uop(dst=2047, src=2047, wgt=1023)])
    dram = np.concatenate([acc_values.view(np.uint8).ravel(), uop_words.view(np.uint8)])
    run_compute(sim,
                MemInsn(memory_type=MemType.ACC, sram_base=10, y_size=2, x_size=1, x_stride=1),
                MemInsn(memory_type=MemType.UOP, sram_base=4, dram_base=32, y_size=1,
                        x_size=2, x_stride=2), dram=dram)
    np.testing.assert_array_equal(sim.acc[10:12, 0], acc_values)
    np.testing.assert_array_equal(sim.uop[4:6], uop_words)


def test_load_with_x_size_zero_moves_no_data_even_with_pads():
    sim = Simulator()
    sim.inp[:] = 7
    # dram_base is far outside the DRAM image: a token-only LOAD does not touch DRAM.
    token_only = MemInsn(memory_type=MemType.INP, dram_base=10**6, y_size=4, x_size=0,
                         y_pad_0=2, x_pad_0=2)
    counters = run_compute(sim, token_only)
    assert (sim.inp == 7).all()
    assert counters["bytes_loaded_inp"] == 0 and counters["insns_load"] == 1


# -- STORE --------------------------------------------------------------------------------


def test_store_writes_low_8_bits_of_each_lane_in_strided_rows():
    sim = Simulator()
    lanes = np.array([0, 1, 127, 128, 255, 256, -1, -128, -129, INT32_MAX, INT32_MIN,
                      0x12345678, -0x12345678, 511, 1000, -1000], dtype=np.int32)
    sim.acc[4:8, 0] = lanes + np.arange(4)[:, None]
    dram = np.full(10 * 16, 0xEE, np.uint8)
    store = MemInsn(store=True, memory_type=MemType.OUT, sram_base=4, dram_base=1, y_size=2,
                    x_size=2, x_stride=3)
    counters = sim.run(store_stream(store), dram)

    low_bytes = ((lanes.astype(np.int64) + np.arange(4)[:, None]) % 256).astype(np.uint8)
    expected = np.full((10, 16), 0xEE, np.uint8)
    expected[[1, 2, 4, 5]] = low_bytes                  # OUT elements 1, 2 then 4, 5
    np.testing.assert_array_equal(dram.reshape(10, 16), expected)
    assert counters["bytes_stored_out"] == 4 * 16


def test_store_rows_that_overlap_in_dram_are_written_in_row_order():
    sim = Simulator()
    sim.acc[0:4, 0] = np.arange(4)[:, None]
    dram = np.zeros(5 * 16, np.uint8)
    sim.run(store_stream(MemInsn(store=True, memory_type=MemType.OUT, y_size=2, x_size=2,
                                 x_stride=1)), dram)
    # Row 0 writes elements 0, 1 (values 0, 1); row 1 then writes elements 1, 2 (values 2, 3).
    np.testing.assert_array_equal(dram.reshape(5, 16)[:, 0], [0, 2, 3, 0, 0])


def requantized_by_hand(a, bias, multiplier, shift, zero, lower, upper):
    """The requantizing STORE of docs/vta-isa.md, one lane, in Python integers."""
    x = wrap32(a + bias)
    product = x * multiplier
    y = product if shift == 0 else (product + (1 << (shift - 1))) >> shift
    y = max(INT32_MIN, min(INT32_MAX, y))
    return min(max(y + zero, lower), upper)


def range_lane(zero, lower, upper, top=0):
    lane = (zero & 0xFF) | (lower & 0xFF) << 8 | (upper & 0xFF) << 16 | top << 24
    return lane - (1 << 32) if lane >= 1 << 31 else lane


def test_requantizing_store_adds_bias_multiplies_shifts_clamps_and_adds_zero_per_lane():
    # One lane per case: (a, bias, multiplier, shift, zero, lower, upper).
    cases = [
        (12345, 0, 26414048, 31, 0, -128, 127),         # the ISA document's worked example
        (-12345, 0, 26414048, 31, 0, -128, 127),
        (6, 0, 1 << 24, 26, 0, -128, 127),              # 1.5 rounds up to 2
        (-6, 0, 1 << 24, 26, 0, -128, 127),             # -1.5 rounds up to -1
        (INT32_MAX, 1, 1, 0, 0, -128, 127),             # the bias add wraps to INT32_MIN
        (1 << 30, 0, (1 << 25) - 1, 0, -3, -128, 127),  # saturates to int32, then clamps
        (100, -40, 1, 0, 5, -128, 127),                 # 60 + 5
        (100, 0, 1, 0, -20, 0, 70),                     # 80 clamps to the upper bound 70
        (-100, 0, 1, 0, 10, 0, 127),                    # Relu's lower bound 0
        (50, 0, -3, 1, 0, -128, 127),                   # negative multiplier: -75
        (7, 0, 1, 0, 0, 5, -5),                         # lower > upper: min(max(..)) = -5
        (INT32_MIN, -1, -1, 0, -128, -128, 127),        # wraps to INT32_MAX, * -1
        (1, 2, 3, 0, 1, -128, 127),
        (-129, 0, 1, 0, 0, -128, 127),
        (255, 0, 1, 0, -128, -128, 127),                # 127 exactly
        (0, 0, 0, 63, 0, -128, 127),
    ]
    sim = Simulator()
    sim.acc[2, 0] = [c[0] for c in cases]
    sim.acc[9, 0] = [c[1] for c in cases]
    sim.acc[10, 0] = [(c[2] << 6) | c[3] for c in cases]
    sim.acc[11, 0] = [range_lane(*c[4:], top=0xA5 if i % 2 else 0) for i, c in enumerate(cases)]
    dram = np.zeros(3 * 16, np.uint8)
    store = MemInsn(store=True, memory_type=MemType.OUT, sram_base=2, dram_base=1, y_size=1,
                    x_size=1, x_stride=1, requantize=1, param_base=9)
    sim.run(store_stream(store), dram)
    expected = [requantized_by_hand(*c) for c in cases]
    assert dram.view(np.int8).reshape(3, 16)[1].tolist() == expected
    assert dram[:16].tolist() == [0] * 16 and dram[32:].tolist() == [0] * 16


def test_requantizing_store_uses_one_parameter_set_for_every_element():
    sim = Simulator()
    sim.acc[0:4, 0] = np.arange(4)[:, None] * 10 + np.arange(16)
    sim.acc[100, 0] = np.arange(16)                     # bias
    sim.acc[101, 0] = 1 << 6                            # times 1, no shift
    sim.acc[102, 0] = range_lane(-3, -128, 127)
    dram = np.zeros(4 * 16, np.uint8)
    sim.run(store_stream(MemInsn(store=True, memory_type=MemType.OUT, y_size=2, x_size=2,
                                 x_stride=2, requantize=1, param_base=100)), dram)
    expected = np.arange(4)[:, None] * 10 + 2 * np.arange(16) - 3
    np.testing.assert_array_equal(dram.view(np.int8).reshape(4, 16), expected)


def test_requantizing_store_parameters_past_the_acc_buffer_are_refused():
    last = DEFAULT_CONFIG.acc_depth - 2
    store = MemInsn(store=True, memory_type=MemType.OUT, y_size=1, x_size=1, x_stride=1,
                    requantize=1, param_base=last)
    with pytest.raises(SimulationError, match=rf"reads requantization parameters from ACC "
                                              rf"elements {last}\.\.{last + 2}"):
        Simulator().run(store_stream(store), np.zeros(16, np.uint8))


# -- GEMM ---------------------------------------------------------------------------------


def test_gemm_accumulates_every_micro_op_of_the_loop_nest():
    rng = np.random.default_rng(RNG_SEED)
    sim = Simulator()
    sim.inp[:64] = rng.integers(-128, 128, sim.inp[:64].shape)
    sim.wgt[:32] = rng.integers(-128, 128, sim.wgt[:32].shape)
    sim.acc[:64] = rng.integers(-1000, 1000, sim.acc[:64].shape)
    set_uops(sim, Uop(dst=0, src=1, wgt=2), Uop(dst=1, src=3, wgt=0), Uop(dst=9, src=0, wgt=5))
    gemm = GemmInsn(uop_bgn=0, uop_end=3, iter_out=2, iter_in=3, dst_factor_out=20,
                    dst_factor_in=2, src_factor_out=10, src_factor_in=1, wgt_factor_out=7,
                    wgt_factor_in=3)
    expected = sim.acc.astype(np.int64)
    for i in range(2):
        for j in range(3):
            for dst, src, wgt in ((0, 1, 2), (1, 3, 0), (9, 0, 5)):
                d, s, w = dst + 20 * i + 2 * j, src + 10 * i + j, wgt + 7 * i + 3 * j
                expected[d] += sim.inp[s].astype(np.int64) @ sim.wgt[w].astype(np.int64).T
    counters = run_compute(sim, gemm)
    np.testing.assert_array_equal(sim.acc, expected)
    assert counters["gemm_uops"] == 18


def test_gemm_sums_micro_ops_that_share_a_destination_and_wraps_int32():
    sim = Simulator()
    sim.inp[0] = 127
    sim.wgt[0] = 127                                    # each micro-op adds 16 * 127 * 127
    sim.acc[3] = INT32_MAX - 100
    set_uops(sim, Uop(dst=3, src=0, wgt=0))
    run_compute(sim, GemmInsn(uop_bgn=0, uop_end=1, iter_out=5, iter_in=2))
    assert (sim.acc[3] == wrap32(INT32_MAX - 100 + 10 * 16 * 127 * 127)).all()


def test_gemm_reset_zeroes_exactly_the_loop_destinations():
    sim = Simulator()
    sim.acc[:] = 9
    set_uops(sim, Uop(dst=1), Uop(dst=4))
    counters = run_compute(sim, GemmInsn(reset=1, uop_bgn=0, uop_end=2, iter_out=2,
                                         iter_in=1, dst_factor_out=10))
    zeroed = [1, 4, 11, 14]
    assert (sim.acc[zeroed] == 0).all()
    assert (np.delete(sim.acc, zeroed, axis=0) == 9).all()
    assert counters["gemm_uops"] == 4                   # reset micro-ops count


def test_gemm_overwrite_writes_the_product_and_the_last_micro_op_wins():
    rng = np.random.default_rng(RNG_SEED)
    sim = Simulator()
    sim.inp[:8] = rng.integers(-128, 128, sim.inp[:8].shape)
    sim.wgt[:8] = rng.integers(-128, 128, sim.wgt[:8].shape)
    sim.acc[:] = 777
    # dst 5 is written twice (the second product stays), dst 6 once, dst 7 never.
    set_uops(sim, Uop(dst=5, src=1, wgt=2), Uop(dst=6, src=3, wgt=0), Uop(dst=5, src=4, wgt=7))
    counters = run_compute(sim, GemmInsn(overwrite=1, uop_bgn=0, uop_end=3))

    def product(src, wgt):
        return sim.inp[src].astype(np.int64) @ sim.wgt[wgt].astype(np.int64).T
    np.testing.assert_array_equal(sim.acc[5], product(4, 7))
    np.testing.assert_array_equal(sim.acc[6], product(3, 0))
    assert (sim.acc[7] == 777).all()
    assert counters["gemm_uops"] == 3


def test_gemm_reset_wins_over_overwrite():
    sim = Simulator()
    sim.inp[0] = 1
    sim.wgt[0] = 1
    sim.acc[:] = 9
    set_uops(sim, Uop(dst=2))
    run_compute(sim, GemmInsn(reset=1, overwrite=1, uop_bgn=0, uop_end=1))
    assert (sim.acc[2] == 0).all()


# -- ALU ----------------------------------------------------------------------------------


def alu_lanes(op, a_values, b_values):
    """Run one ALU micro-op acc[0] = op(acc[0], acc[1]) on the given lanes."""
    sim = Simulator()
    sim.acc[0, 0] = np.asarray(a_values, dtype=np.int64).astype(np.int32)
    sim.acc[1, 0] = np.asarray(b_values, dtype=np.int64).astype(np.int32)
    set_uops(sim, Uop(dst=0, src=1))
    run_compute(sim, AluInsn(alu_op=op, uop_bgn=0, uop_end=1))
    return sim.acc[0, 0].tolist()


def test_alu_min_max_are_signed_and_add_wraps():
    a = [-5, 3, INT32_MIN, INT32_MAX] * 4
    b = [3, -5, INT32_MAX, 1] * 4
    assert alu_lanes(AluOp.MIN, a, b)[:4] == [-5, -5, INT32_MIN, 1]
    assert alu_lanes(AluOp.MAX, a, b)[:4] == [3, 3, INT32_MAX, INT32_MAX]
    assert alu_lanes(AluOp.ADD, a, b)[:4] == [-2, -2, -1, INT32_MIN]


def test_alu_shr_shifts_right_arithmetically_and_left_for_negative_amounts():
    a = [-100, -100, -100, 100, -100, 0x40000000, 3, 1, 7, 7, 7, 7, 7, 7, 7, 7]
    s = [3, 0, 40, 40, -4, -1, -40, -31, 31, 32, 1, 2, 0, -1, -2, 1]
    expected = [-13, -100, -1, 0, -1600, INT32_MIN, INT32_MIN, INT32_MIN, 0, 0, 3, 1, 7, 14,
                28, 3]
    assert alu_lanes(AluOp.SHR, a, s) == expected


def mulshr_operand(multiplier, shift):
    return multiplier * 64 + shift


def test_alu_mulshr_rounds_halves_up_saturates_and_handles_signs():
    cases = [  # (a, multiplier, shift, expected)
        (3, 1, 1, 2),                                   # 1.5 -> 2
        (-3, 1, 1, -1),                                 # -1.5 -> -1
        (5, 3, 2, 4),                                   # 3.75 -> 4
        (-5, 3, 2, -4),                                 # -3.75 -> -4
        (5, 7, 0, 35),                                  # shift 0: the plain product
        (7, -999, 3, -874),                             # -874.125 -> -874
        (INT32_MAX, (1 << 25) - 1, 0, INT32_MAX),       # saturates high
        (INT32_MIN, (1 << 25) - 1, 0, INT32_MIN),       # saturates low
        (-(1 << 30), -(1 << 25), 1, INT32_MAX),         # 2^54 saturates high
        (1 << 30, 1 << 20, 40, 1024),                   # 2^50 >> 40
        (123, 456, 63, 0),
        (-1, 1, 63, 0),                                 # -2^-63 rounds up to 0
        (0, -5, 4, 0),
        (1000, -1, 0, -1000),
        (INT32_MIN, -1, 0, INT32_MAX),                  # 2^31 saturates
        (6, 1, 2, 2),                                   # 1.5 -> 2
    ]
    a = [c[0] for c in cases]
    b = [mulshr_operand(c[1], c[2]) for c in cases]
    assert alu_lanes(AluOp.MULSHR, a, b) == [c[3] for c in cases]


def test_alu_immediate_is_sign_extended_from_16_bits():
    sim = Simulator()
    sim.acc[0:5, 0] = np.arange(16) * 100 - 800
    set_uops(sim, Uop(dst=0), Uop(dst=1), Uop(dst=2), Uop(dst=3), Uop(dst=4))
    imm_insns = [AluInsn(alu_op=AluOp.MIN, uop_bgn=0, uop_end=1, use_imm=1, imm=-5),
                 AluInsn(alu_op=AluOp.ADD, uop_bgn=1, uop_end=2, use_imm=1, imm=-32768),
                 AluInsn(alu_op=AluOp.SHR, uop_bgn=2, uop_end=3, use_imm=1, imm=-1),
                 AluInsn(alu_op=AluOp.MULSHR, uop_bgn=3, uop_end=4, use_imm=1,
                         imm=mulshr_operand(-3, 2)),
                 AluInsn(alu_op=AluOp.MAX, uop_bgn=4, uop_end=5, use_imm=1, imm=32767)]
    before = sim.acc[0:5, 0].astype(np.int64)
    sim.run(encode_stream([*imm_insns, FinishInsn()]), np.zeros(16, np.uint8))
    np.testing.assert_array_equal(sim.acc[0, 0], np.minimum(before[0], -5))
    np.testing.assert_array_equal(sim.acc[1, 0], before[1] - 32768)
    np.testing.assert_array_equal(sim.acc[2, 0], before[2] * 2)
    np.testing.assert_array_equal(sim.acc[3, 0], (before[3] * -3 + 2) >> 2)
    np.testing.assert_array_equal(sim.acc[4, 0], np.full(16, 32767))


def test_alu_micro_ops_see_results_of_earlier_micro_ops():
    sim = Simulator()
    sim.acc[0:3] = np.array([1, 10, 100])[:, None, None]
    # acc[1] += acc[0]; acc[2] += acc[1] (the new acc[1]); then acc[0] += acc[2], twice.
    set_uops(sim, Uop(dst=1, src=0), Uop(dst=2, src=1), Uop(dst=0, src=2))
    run_compute(sim, AluInsn(alu_op=AluOp.ADD, uop_bgn=0, uop_end=2),
                AluInsn(alu_op=AluOp.ADD, uop_bgn=2, uop_end=3, iter_in=2))
    assert sim.acc[0:3, 0, 0].tolist() == [1 + 111 + 111, 11, 111]


def test_alu_immediate_applied_repeatedly_to_one_element_accumulates():
    sim = Simulator()
    set_uops(sim, Uop(dst=6))
    counters = run_compute(sim, AluInsn(alu_op=AluOp.ADD, uop_bgn=0, uop_end=1, iter_out=3,
                                        iter_in=4, use_imm=1, imm=5))
    assert (sim.acc[6] == 60).all()
    assert counters["alu_uops"] == 12


def test_alu_reset_zeroes_destinations_whatever_the_operation():
    sim = Simulator()
    sim.acc[:] = -4
    set_uops(sim, Uop(dst=2, src=3))
    run_compute(sim, AluInsn(reset=1, alu_op=AluOp.MULSHR, uop_bgn=0, uop_end=1, iter_in=2,
                             dst_factor_in=5))
    assert (sim.acc[[2, 7]] == 0).all() and (np.delete(sim.acc, [2, 7], axis=0) == -4).all()


def reference_alu(op, a, b):
    """The pinned per-lane semantics, on Python integers."""
    if op is AluOp.MIN:
        return min(a, b)
    if op is AluOp.MAX:
        return max(a, b)
    if op is AluOp.ADD:
        return wrap32(a + b)
    if op is AluOp.SHR:
        return a >> min(b, 31) if b >= 0 else wrap32(a << min(-b, 31))
    product, shift = a * (b >> 6), b & 63
    rounded = product if shift == 0 else (product + (1 << (shift - 1))) >> shift
    return max(INT32_MIN, min(INT32_MAX, rounded))


@pytest.mark.parametrize("op", list(AluOp))
@pytest.mark.parametrize("index_range", [4, 64], ids=["colliding", "mostly_distinct"])
def test_alu_random_programs_match_the_sequential_definition(op, index_range):
    rng = np.random.default_rng([RNG_SEED, int(op), index_range])
    sim = Simulator()
    if op is AluOp.SHR:
        values = rng.integers(-40, 40, sim.acc[:80].shape)
    else:
        values = rng.integers(INT32_MIN, INT32_MAX, sim.acc[:80].shape, endpoint=True)
    sim.acc[:80] = values
    uops = [Uop(dst=int(d), src=int(s))
            for d, s in rng.integers(0, index_range, (6, 2))]
    set_uops(sim, *uops)
    insn = AluInsn(alu_op=op, uop_bgn=0, uop_end=6, iter_out=2, iter_in=2, dst_factor_out=3,
                   dst_factor_in=7, src_factor_out=1, src_factor_in=5)
    expected = [[int(x) for x in row] for row in values[:, 0]]
    for i in range(2):
        for j in range(2):
            for u in uops:
                d, s = u.dst + 3 * i + 7 * j, u.src + i + 5 * j
                expected[d] = [reference_alu(op, a, b) for a, b in zip(expected[d], expected[s])]
    run_compute(sim, insn)
    assert sim.acc[:80, 0].tolist() == expected


# -- errors and counters -------------------------------------------------------------------


def test_load_past_the_dram_image_names_the_instruction():
    sim = Simulator()
    load = MemInsn(memory_type=MemType.INP, dram_base=3, y_size=2, x_size=2, x_stride=4)
    with pytest.raises(SimulationError, match=r"instruction 1 \(LOAD INP sram 0 <- dram 3 "
                                              r"\(2x2, stride 4\)\) in the load module reads "
                                              r"DRAM bytes 48\.\.143.*128 bytes"):
        sim.run([MemInsn(memory_type=MemType.UOP), load, FinishInsn()],
                np.zeros(128, np.uint8))


def test_load_past_the_buffer_names_the_buffer_and_depth():
    sim = Simulator()
    load = MemInsn(memory_type=MemType.ACC, sram_base=2046, y_size=1, x_size=2, x_stride=2,
                   x_pad_1=1)
    with pytest.raises(SimulationError, match=r"instruction 0 .*writes ACC elements "
                                              r"2046\.\.2048, but the ACC buffer has 2048"):
        run_compute(sim, load, dram=np.zeros(1024, np.uint8))


def test_store_past_the_dram_image_names_the_instruction():
    store = MemInsn(store=True, memory_type=MemType.OUT, dram_base=3, y_size=1, x_size=2,
                    x_stride=2)
    with pytest.raises(SimulationError, match=r"instruction 1 \(STORE OUT .*store module "
                                              r"writes DRAM bytes 48\.\.79"):
        Simulator().run(store_stream(store), np.zeros(64, np.uint8))


def test_micro_op_index_past_a_buffer_names_the_micro_op_and_iteration():
    sim = Simulator()
    set_uops(sim, Uop(dst=0, src=0, wgt=0), Uop(dst=1, src=1000, wgt=1))
    gemm = GemmInsn(uop_bgn=0, uop_end=2, iter_out=3, iter_in=2, src_factor_out=500,
                    src_factor_in=60)
    with pytest.raises(SimulationError, match=r"instruction 0 \(GEMM uops 0\.\.2 x 3 x 2\) "
                                              r"in the compute module: micro-op 1 at loop "
                                              r"iteration i=2, j=1 reads INP element 2060"):
        run_compute(sim, gemm)
    assert (sim.acc == 0).all()                         # refused before any micro-op ran


def test_uop_range_past_the_uop_buffer_is_refused():
    with pytest.raises(SimulationError, match=r"uop_end=9000 is past the UOP buffer's 8192"):
        run_compute(Simulator(), AluInsn(uop_bgn=0, uop_end=9000))


@pytest.mark.parametrize("insn, problem", [
    (MemInsn(memory_type=MemType.INP, pop_prev=1), "pop_prev must be 0"),
    (MemInsn(memory_type=MemType.OUT), "LOAD cannot read memory type OUT"),
    (MemInsn(store=True, memory_type=MemType.ACC), "STORE writes memory type OUT only"),
    (MemInsn(store=True, memory_type=MemType.OUT, x_pad_0=1),
     "field x_pad_0 is a LOAD field; a STORE encodes other fields in its bits"),
    (MemInsn(memory_type=MemType.ACC, requantize=1), "field requantize is a STORE field"),
    (MemInsn(store=True, memory_type=MemType.OUT, param_base=5),
     "param_base=5 names requantization parameters, but requantize is 0"),
    (MemInsn(store=True, memory_type=MemType.OUT, push_next=1), "push_next must be 0"),
])
def test_malformed_instructions_are_refused_by_name(insn, problem):
    with pytest.raises(SimulationError, match=rf"instruction 0 .*{problem}"):
        run_compute(Simulator(), insn)


def test_instruction_whose_fields_do_not_fit_is_refused():
    with pytest.raises(SimulationError, match=r"instruction 0 cannot be encoded.*imm=40000"):
        run_compute(Simulator(), AluInsn(use_imm=1, imm=40000))


def test_counters_per_run_and_cumulative():
    sim = Simulator()
    stream = [MemInsn(memory_type=MemType.INP, y_size=2, x_size=3, x_stride=3, push_next=1),
              MemInsn(memory_type=MemType.WGT, y_size=1, x_size=2, x_stride=2),
              MemInsn(memory_type=MemType.UOP, y_size=1, x_size=5, x_stride=5, pop_prev=1),
              MemInsn(memory_type=MemType.ACC, y_size=1, x_size=1, x_stride=1),
              GemmInsn(uop_bgn=0, uop_end=5, iter_out=2, iter_in=3),
              AluInsn(uop_bgn=1, uop_end=3, iter_out=4, use_imm=1, push_next=1),
              MemInsn(store=True, memory_type=MemType.OUT, y_size=3, x_size=1, x_stride=1,
                      pop_prev=1, push_prev=1),
              MemInsn(memory_type=MemType.UOP, pop_next=1),
              FinishInsn()]
    expected = {"gemm_uops": 30, "alu_uops": 8, "insns_load": 2, "insns_compute": 6,
                "insns_store": 1, "bytes_loaded_uop": 20, "bytes_loaded_wgt": 512,
                "bytes_loaded_inp": 96, "bytes_loaded_acc": 64, "bytes_stored_out": 48}
    assert sim.run(stream, np.zeros(1024, np.uint8)) == expected
    assert sim.run(encode_stream(stream), np.zeros(1024, np.uint8)) == expected
    assert sim.counters == {name: 2 * value for name, value in expected.items()}


def test_describe_is_one_short_line_per_instruction():
    assert describe(GemmInsn(reset=1, uop_bgn=0, uop_end=12, iter_out=4, iter_in=3)) == \
        "GEMM uops 0..12 x 4 x 3 reset"
    assert describe(MemInsn(memory_type=MemType.INP, dram_base=96, y_size=3, x_size=16,
                            x_stride=58, y_pad_0=1, y_pad_1=1, x_pad_0=1, x_pad_1=1)) == \
        "LOAD INP sram 0 <- dram 96 (3x16, stride 58, pad 1/1/1/1)"
    assert describe(MemInsn(store=True, memory_type=MemType.OUT, sram_base=4, dram_base=8,
                            y_size=2, x_size=3, x_stride=5)) == \
        "STORE OUT sram 4 -> dram 8 (2x3, stride 5)"
    assert describe(AluInsn(alu_op=AluOp.MULSHR, uop_bgn=2, uop_end=3, use_imm=1,
                            imm=-70)) == "ALU MULSHR uops 2..3 x 1 x 1 imm -70"
    assert describe(MemInsn(memory_type=MemType.UOP)) == "LOAD UOP (tokens only)"
    assert describe(FinishInsn()) == "FINISH"


@pytest.mark.parametrize("chunk", [1, 7, 25, None], ids=["1", "7", "25", "default"])
def test_results_do_not_depend_on_how_micro_op_loops_are_split(monkeypatch, chunk):
    if chunk is not None:
        monkeypatch.setattr(sim_module, "_CHUNK_UOPS", chunk)
    rng = np.random.default_rng(RNG_SEED)
    sim = Simulator()
    sim.inp[:40] = rng.integers(-128, 128, sim.inp[:40].shape)
    sim.wgt[:40] = rng.integers(-128, 128, sim.wgt[:40].shape)
    sim.acc[:40] = rng.integers(-5000, 5000, sim.acc[:40].shape)
    uops = [Uop(dst=int(d), src=int(s), wgt=int(w)) for d, s, w in rng.integers(0, 8, (5, 3))]
    set_uops(sim, *uops)
    loop = {"uop_bgn": 0, "uop_end": 5, "iter_out": 3, "iter_in": 4, "dst_factor_out": 5,
            "dst_factor_in": 2, "src_factor_out": 3, "src_factor_in": 1}
    insns = [GemmInsn(**loop, wgt_factor_out=4, wgt_factor_in=7),
             AluInsn(**loop, alu_op=AluOp.MULSHR, use_imm=1, imm=mulshr_operand(5, 3)),
             AluInsn(**loop, alu_op=AluOp.ADD)]

    expected = sim.acc.astype(np.int64)
    for insn in insns:
        for i in range(3):
            for j in range(4):
                for u in uops:
                    d, s = u.dst + 5 * i + 2 * j, u.src + 3 * i + j
                    if isinstance(insn, GemmInsn):
                        w = u.wgt + 4 * i + 7 * j
                        expected[d] = wrap32(expected[d] + sim.inp[s].astype(np.int64)
                                             @ sim.wgt[w].astype(np.int64).T)
                    else:
                        b = [insn.imm] * 16 if insn.use_imm else expected[s, 0].tolist()
                        expected[d, 0] = [reference_alu(insn.alu_op, int(x), int(y))
                                          for x, y in zip(expected[d, 0], b)]
    run_compute(sim, *insns)
    np.testing.assert_array_equal(sim.acc, expected)


def test_plain_integer_fields_mean_the_same_as_the_enums():
    sim = Simulator()
    sim.acc[0] = -64
    set_uops(sim, Uop(dst=0))
    run_compute(sim, AluInsn(alu_op=3, uop_bgn=0, uop_end=1, use_imm=1, imm=2))   # SHR
    assert (sim.acc[0] == -16).all()
