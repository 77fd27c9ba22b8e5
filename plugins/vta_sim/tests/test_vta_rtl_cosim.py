"""The accelerator's RTL (hw/vta) against the functional simulator, bit for bit.

Every test here builds or runs the Verilated RTL (marked ``cosim``; the build is cached on
disk, about 10 s the first time). Each stream runs on the functional simulator and on the RTL
from the same state; every DRAM byte and the counters both keep must agree
(:func:`byoc_vta_sim.cosim.cosimulate`). Hand-made streams also check their result against
numpy, so that agreement on a stream that computes nothing cannot pass.
"""

from __future__ import annotations

import shutil
import subprocess
from collections import Counter
from dataclasses import replace
from pathlib import Path

import numpy as np
import onnx
import pytest

import byoc
from byoc.cosim import CosimError
from byoc.cosim.build import build_record
from byoc.testing import compile_reference, zoo_module
from byoc_vta_sim.config import DEFAULT_CONFIG
from byoc_vta_sim.cosim import CosimMismatch, clearing_stream, cosimulate
from byoc_vta_sim.isa import (
    AluInsn,
    AluOp,
    FinishInsn,
    GemmInsn,
    MemInsn,
    MemType,
    Uop,
    decode_stream,
    encode_uops,
)
from byoc_vta_sim.random_streams import random_program, requant_params
from byoc_vta_sim.requant import PARAM_ELEMENTS, store_requantize
from byoc_vta_sim.rtl import RtlSimulator, build_rtl, check_supported, rtl_dir, rtl_sources
from byoc_vta_sim.sim import SimulationError, Simulator, alu_apply
from byoc_vta_sim.timing import estimate_stream

pytestmark = pytest.mark.cosim

CFG = DEFAULT_CONFIG
INT32_MIN, INT32_MAX = -(1 << 31), (1 << 31) - 1


@pytest.fixture(scope="module")
def rtl():
    return RtlSimulator(CFG)


@pytest.fixture
def pair(rtl):
    """A fresh functional simulator and the RTL, both with every buffer zeroed."""
    sim = Simulator(CFG)
    insns, dram = clearing_stream(CFG)
    rtl.run(insns, dram.copy())
    return sim, rtl


# -- the design itself -----------------------------------------------------------------------


def test_checked_in_include_is_the_default_configuration():
    """hw/vta/generated/vta_config.vh (read by lint and by readers) is what the YAML says."""
    checked_in = (rtl_dir() / "generated" / "vta_config.vh").read_text()
    assert checked_in == CFG.verilog_header(), (
        "regenerate it: python -c \"from byoc_vta_sim.config import DEFAULT_CONFIG; "
        "open('hw/vta/generated/vta_config.vh', 'w').write(DEFAULT_CONFIG.verilog_header())\"")


def test_rtl_is_lint_clean_with_the_checked_in_waivers():
    root = rtl_dir()
    result = subprocess.run(
        [shutil.which("verilator") or "verilator", "--lint-only", "-Wall",
         f"-I{root / 'generated'}", str(root / "lint_waivers.vlt"),
         *map(str, rtl_sources(root)), "--top-module", "vta_shell"],
        capture_output=True, text=True)
    assert result.returncode == 0 and "%Warning" not in result.stderr, result.stderr


def test_configurations_the_rtl_cannot_pack_are_refused_by_name():
    with pytest.raises(CosimError, match="block_in=12: must be a power of two"):
        check_supported(replace(CFG, block_in=12))
    with pytest.raises(CosimError, match="mem_port_bits=32: must be at least 64"):
        check_supported(replace(CFG, mem_port_bits=32))


# -- hand-made streams, one instruction kind at a time ---------------------------------------


class Program:
    """A DRAM image and a stream: LOAD UOP, INP, WGT and ACC regions, compute instructions,
    then every ACC element of ``observe`` stored whole (four STOREs of one byte each, the ACC
    shifted right by 8 between them), so that all 32 bits of the results are visible."""

    def __init__(self):
        self.dram = bytearray()
        self.loads: list = []          # load-module instructions
        self.prelude: list = []        # compute-module LOADs
        self.compute: list = []

    def put(self, array) -> int:
        """Place ``array`` at the next 256-byte boundary; its byte offset."""
        offset = -(-len(self.dram) // 256) * 256
        self.dram.extend(bytes(offset - len(self.dram)))
        self.dram.extend(np.ascontiguousarray(array).tobytes())
        return offset

    def load(self, memory_type, data, elem_bytes, **fields):
        offset = self.put(data)
        insn = MemInsn(memory_type=memory_type, dram_base=offset // elem_bytes, **fields)
        (self.loads if memory_type in (MemType.INP, MemType.WGT) else self.prelude).append(insn)

    def uops(self, *uops):
        words = encode_uops(uops)
        self.load(MemType.UOP, words, 4, y_size=1, x_size=len(words), x_stride=len(words))

    def stream(self, observe: range):
        out = self.put(np.zeros((4, len(observe), 16), np.uint8))
        insns = [*self.loads]
        if insns:
            insns[-1] = insns[-1].with_deps(push_next=1)
        compute = [*self.prelude]
        compute[0] = compute[0].with_deps(pop_prev=int(bool(self.loads)))
        insns += compute + self.compute
        shift = Uop(dst=observe.start)
        insns.append(MemInsn(memory_type=MemType.UOP, dram_base=self.put(encode_uops([shift])) // 4,
                             y_size=1, x_size=1, x_stride=1, sram_base=4000, push_next=1))
        for byte in range(4):
            insns.append(MemInsn(store=True, memory_type=MemType.OUT, sram_base=observe.start,
                                 dram_base=out // 16 + byte * len(observe), y_size=1,
                                 x_size=len(observe), x_stride=len(observe), pop_prev=1,
                                 push_prev=1))
            last = byte == 3
            insns.append(AluInsn(alu_op=AluOp.SHR, use_imm=1, imm=8, uop_bgn=4000, uop_end=4001,
                                 iter_out=len(observe), dst_factor_out=1, pop_next=1,
                                 push_next=int(not last)))
        insns.append(FinishInsn())
        return insns, np.frombuffer(bytes(self.dram), np.uint8).copy(), out


def observed(dram, out, count):
    """The int32 ACC values a Program stored, as (count, 16)."""
    planes = dram[out:out + 4 * count * 16].reshape(4, count, 16).astype(np.uint32)
    return (planes[0] | planes[1] << 8 | planes[2] << 16 | planes[3] << 24).view(np.int32)


def run_both(pair, program, observe):
    sim, rtl = pair
    insns, dram, out = program.stream(observe)
    result = cosimulate(insns, dram, sim, rtl)
    return observed(result.dram, out, len(observe)), result


def test_load_inp_with_padding_and_stride_then_gemm_by_identity(pair):
    rng = np.random.default_rng(1)
    rows = rng.integers(-128, 128, (3, 5, 16)).astype(np.int8)      # 3 DRAM rows, stride 5
    p = Program()
    p.uops(*[Uop(dst=e, src=10 + e, wgt=0) for e in range(40)])
    p.load(MemType.INP, rows, 16, y_size=3, x_size=4, x_stride=5, y_pad_0=1, y_pad_1=2,
           x_pad_0=2, x_pad_1=2, sram_base=10)
    p.load(MemType.WGT, np.eye(16, dtype=np.int8), 256, y_size=1, x_size=1, x_stride=1)
    p.compute = [GemmInsn(reset=1, uop_end=40), GemmInsn(uop_end=40)]
    # INP elements 10..57 after the load: 1 zero row, 3 rows of (2 zeros, 4 data, 2 zeros),
    # 2 zero rows; the GEMM copies elements 10..49 into ACC 0..39.
    image = np.zeros((6, 8, 16), np.int8)
    image[1:4, 2:6] = rows[:, :4]
    values, result = run_both(pair, p, range(40))
    np.testing.assert_array_equal(values, image.reshape(-1, 16)[:40].astype(np.int32))
    assert result.rtl_counters["bytes_loaded_inp"] == 3 * 4 * 16


def test_gemm_accumulates_over_its_loop_nest_and_wraps(pair):
    rng = np.random.default_rng(2)
    inp = rng.integers(-128, 128, (16, 16)).astype(np.int8)
    wgt = rng.integers(-128, 128, (4, 16, 16)).astype(np.int8)
    acc = rng.integers(INT32_MIN, INT32_MAX, (6, 16), dtype=np.int64).astype(np.int32)
    p = Program()
    p.uops(*[Uop(dst=u, src=u, wgt=u) for u in range(3)])
    p.load(MemType.INP, inp, 16, y_size=1, x_size=16, x_stride=16)
    p.load(MemType.WGT, wgt, 256, y_size=1, x_size=4, x_stride=4)
    p.load(MemType.ACC, acc, 64, y_size=1, x_size=6, x_stride=6)
    # the inner loop adds into the same three accumulators (three micro-ops apart)
    p.compute = [GemmInsn(uop_end=3, iter_out=2, iter_in=2, dst_factor_out=3, src_factor_out=4,
                          src_factor_in=8, wgt_factor_out=1)]
    expected = acc.astype(np.int64)
    for i in range(2):
        for j in range(2):
            for u in range(3):
                expected[u + 3 * i] += inp[u + 4 * i + 8 * j].astype(np.int64) @ \
                    wgt[u + i].astype(np.int64).T
    expected = ((expected - INT32_MIN) % (1 << 32) + INT32_MIN).astype(np.int32)
    values, result = run_both(pair, p, range(6))
    np.testing.assert_array_equal(values, expected)            # int32 wraparound
    assert result.rtl_counters["gemm_uops"] == 12


ALU_CASES = {
    "min": (AluOp.MIN, None), "max": (AluOp.MAX, None), "add": (AluOp.ADD, None),
    "shr": (AluOp.SHR, None), "shr_imm_right": (AluOp.SHR, 3), "shr_imm_left": (AluOp.SHR, -5),
    "add_imm": (AluOp.ADD, -32768), "mulshr": (AluOp.MULSHR, None),
}


@pytest.mark.parametrize("case", ALU_CASES)
def test_alu_operation_on_extreme_and_random_lanes(pair, case):
    op, imm = ALU_CASES[case]
    rng = np.random.default_rng(3)
    a = rng.integers(INT32_MIN, INT32_MAX, (4, 16), dtype=np.int64)
    a[0, :4] = [INT32_MIN, INT32_MAX, 0, -1]
    if op is AluOp.SHR:
        x = rng.integers(-40, 40, (4, 16))
        x[0, :6] = [31, 32, -31, -32, INT32_MIN, INT32_MAX]
    elif op is AluOp.MULSHR:
        # operand = multiplier (signed 26 bits) << 6 | shift
        x = rng.integers(-(1 << 25), 1 << 25, (4, 16)) * 64 + rng.integers(0, 64, (4, 16))
        x[0, :4] = [((1 << 25) - 1) * 64, (1 << 24) * 64 + 26, -(1 << 25) * 64 + 1, 63]
    else:
        x = rng.integers(INT32_MIN, INT32_MAX, (4, 16), dtype=np.int64)
    p = Program()
    p.uops(*[Uop(dst=e, src=e + 4) for e in range(4)])
    p.load(MemType.ACC, np.concatenate([a, x]).astype(np.int32), 64, y_size=1, x_size=8,
           x_stride=8)
    if imm is None:
        p.compute = [AluInsn(alu_op=op, uop_end=4)]
    else:
        p.compute = [AluInsn(alu_op=op, use_imm=1, imm=imm, uop_end=4)]
    expected = alu_apply(op, a, x if imm is None else imm)
    values, result = run_both(pair, p, range(4))
    np.testing.assert_array_equal(values, expected)
    assert result.rtl_counters["alu_uops"] == 4 + 4 * 4      # the op, then 4 observing shifts


def test_alu_micro_ops_see_earlier_results_three_apart(pair):
    """Chained ADDs on one element, three micro-ops apart (the hazard rule's distance)."""
    p = Program()
    chain = [Uop(dst=0, src=3), Uop(dst=1, src=3), Uop(dst=2, src=3)] * 4
    p.uops(*chain)
    p.load(MemType.ACC, np.arange(64, dtype=np.int32).reshape(4, 16), 64, y_size=1, x_size=4,
           x_stride=4)
    p.compute = [AluInsn(alu_op=AluOp.ADD, uop_end=len(chain))]
    values, _ = run_both(pair, p, range(3))
    base = np.arange(64, dtype=np.int32).reshape(4, 16)
    np.testing.assert_array_equal(values, base[:3] + 4 * base[3])


def test_store_rows_with_stride_and_token_only_instructions(pair):
    sim, rtl = pair
    acc = np.arange(6 * 16, dtype=np.int32).reshape(6, 16) * 7 - 300
    p = Program()
    p.uops(Uop(dst=0))
    p.load(MemType.ACC, acc, 64, y_size=2, x_size=3, x_stride=3)
    out = p.put(np.full((4, 5, 16), 0xAB, np.uint8))
    insns = [*p.prelude]
    insns[-1] = insns[-1].with_deps(push_next=1)
    insns += [MemInsn(store=True, memory_type=MemType.OUT, sram_base=0, dram_base=out // 16,
                      y_size=2, x_size=3, x_stride=5, pop_prev=1),
              MemInsn(store=True, memory_type=MemType.OUT, x_size=0, push_prev=1),
              MemInsn(memory_type=MemType.ACC, x_size=0, pop_next=1), FinishInsn()]
    dram = np.frombuffer(bytes(p.dram), np.uint8).copy()
    result = cosimulate(insns, dram, sim, rtl)
    rows = result.dram[out:out + 10 * 16].reshape(2, 5, 16)
    np.testing.assert_array_equal(rows[:, :3].reshape(6, 16), (acc & 0xFF).astype(np.uint8))
    assert (rows[:, 3:] == 0xAB).all()          # the gap between rows is left alone
    assert result.rtl_counters["insns_store"] == 2 and result.rtl_counters["bytes_stored_out"] == 96


def test_gemm_overwrite_keeps_the_last_product_and_reset_wins(pair):
    """An overwriting GEMM whose inner loop writes the same three elements twice keeps the
    second pass's products (the accumulator's old values count for nothing); with reset set
    too it writes zeros; a plain GEMM then accumulates onto those zeros."""
    rng = np.random.default_rng(4)
    inp = rng.integers(-128, 128, (8, 16)).astype(np.int8)
    wgt = rng.integers(-128, 128, (3, 16, 16)).astype(np.int8)
    acc = rng.integers(INT32_MIN, INT32_MAX, (8, 16), dtype=np.int64).astype(np.int32)
    p = Program()
    p.uops(*[Uop(dst=u, src=u, wgt=u) for u in range(3)],
           *[Uop(dst=3 + u, src=(6 + u) % 8, wgt=u) for u in range(3)])
    p.load(MemType.INP, inp, 16, y_size=1, x_size=8, x_stride=8)
    p.load(MemType.WGT, wgt, 256, y_size=1, x_size=3, x_stride=3)
    p.load(MemType.ACC, acc, 64, y_size=1, x_size=8, x_stride=8)
    p.compute = [GemmInsn(overwrite=1, uop_end=3, iter_in=2, src_factor_in=3),
                 GemmInsn(overwrite=1, reset=1, uop_bgn=3, uop_end=6),
                 GemmInsn(uop_bgn=3, uop_end=6)]

    def product(src, w):
        return inp[src].astype(np.int64) @ wgt[w].astype(np.int64).T

    expected = acc.copy()
    for u in range(3):
        expected[u] = product(3 + u, u)
        expected[3 + u] = product((6 + u) % 8, u)
    values, result = run_both(pair, p, range(8))
    np.testing.assert_array_equal(values, expected)
    assert result.rtl_counters["gemm_uops"] == 12


def requantized_store(pair, acc, params, *, param_base, rows=1, sram_base=0):
    """STORE ``acc`` (elements x 16 int32 lanes, loaded from ACC element ``sram_base``) in
    ``rows`` rows, requantized by ``params`` (3 x 16: bias, MULSHR operand, range lane)
    loaded at ``param_base``, on the simulator and the RTL; the int8 lanes stored."""
    sim, rtl = pair
    count = len(acc)
    x_size = count // rows
    p = Program()
    p.load(MemType.ACC, np.asarray(acc, np.int32), 64, y_size=1, x_size=count,
           x_stride=count, sram_base=sram_base)
    p.load(MemType.ACC, np.asarray(params, np.int32), 64, y_size=1, x_size=3, x_stride=3,
           sram_base=param_base)
    out = p.put(np.full((rows, x_size + 1, 16), 0xAB, np.uint8))   # a gap after each row
    insns = [*p.prelude]
    insns[-1] = insns[-1].with_deps(push_next=1)
    insns += [MemInsn(store=True, memory_type=MemType.OUT, sram_base=sram_base,
                      dram_base=out // 16, y_size=rows, x_size=x_size, x_stride=x_size + 1,
                      requantize=1, param_base=param_base, pop_prev=1, push_prev=1),
              MemInsn(memory_type=MemType.ACC, x_size=0, pop_next=1), FinishInsn()]
    dram = np.frombuffer(bytes(p.dram), np.uint8).copy()
    result = cosimulate(insns, dram, sim, rtl)
    stored = result.dram[out:out + rows * (x_size + 1) * 16].reshape(rows, x_size + 1, 16)
    assert (stored[:, x_size] == 0xAB).all()          # the gaps are left alone
    assert result.rtl_counters["bytes_stored_out"] == count * 16
    return stored[:, :x_size].reshape(count, 16).view(np.int8)


def operand(multiplier, shift):
    return multiplier << 6 | shift


def lanes(cases):
    """(a, bias, multiplier, shift, zero, lower, upper, top byte, expected) per lane, as the
    data (1 x 16), the parameters (3 x 16) and the expected bytes (1 x 16)."""
    cases = list(cases) + [cases[-1]] * (16 - len(cases))
    a, bias, multiplier, shift, zero, lower, upper, top, expected = map(np.array, zip(*cases))
    ranges = zero & 0xFF | (lower & 0xFF) << 8 | (upper & 0xFF) << 16 | top << 24
    params = np.stack([bias, operand(multiplier, shift), ranges]).astype(np.int64)
    params = (params + (1 << 31)) % (1 << 32) - (1 << 31)
    return a[None].astype(np.int32), params.astype(np.int32), expected[None]


M25 = (1 << 25) - 1      # the largest multiplier


def test_requantizing_store_rounds_halves_up_for_both_signs(pair):
    """MULSHR's rounding in the store: halves go toward +infinity, negative ones too
    (docs/vta-isa.md's examples: 0.25 * 6 = 1.5 -> 2, 0.25 * -6 = -1.5 -> -1)."""
    full = (0, -128, 127, 0)
    acc, params, expected = lanes([
        (6, 0, 1 << 24, 26, *full, 2), (-6, 0, 1 << 24, 26, *full, -1),
        (2, 0, 1 << 24, 26, *full, 1), (-2, 0, 1 << 24, 26, *full, 0),
        (10, 0, 1 << 24, 26, *full, 3), (-10, 0, 1 << 24, 26, *full, -2),
        (-3, 0, 1, 1, *full, -1), (-1, 0, 1, 1, *full, 0),
        (-5, 0, -1, 1, *full, 3), (5, 0, -1, 1, *full, -2),            # negative multiplier
        (-7, 0, 1, 2, *full, -2), (-6, 0, 1, 2, *full, -1),            # -1.75, -1.5
        (12345, 0, 26414048, 31, -100, -128, 127, 0, 152 - 100),      # the worked example
        (-12345, 0, 26414048, 31, 100, -128, 127, 0, -152 + 100),
        (-1, 0, M25, 63, *full, 0), (40, -37, 3, 0, *full, 9)])          # bias first
    stored = requantized_store(pair, acc, params, param_base=1)
    np.testing.assert_array_equal(stored, expected)
    np.testing.assert_array_equal(stored, store_requantize(acc, params[:, None]))


def test_requantizing_store_saturates_to_int32_then_adds_the_zero_point_exactly(pair):
    """MULSHR saturates to int32 and the zero point is added without wrapping (a wrap would
    turn 2^31 - 1 + 100 into a negative number); the bias sum wraps; the clamp takes lower
    then upper, so lower > upper gives upper; the range lane's top byte is ignored."""
    acc, params, expected = lanes([
        (1 << 30, 0, M25, 0, 100, -128, 127, 0, 127),
        (-(1 << 30), 0, M25, 0, -100, -128, 127, 0, -128),
        (INT32_MIN, 0, -(1 << 25), 0, -128, -128, 127, 0, 127),        # 2^56 saturates
        (INT32_MAX, 1, 1, 0, 0, -128, 127, 0, -128),                    # the bias sum wraps
        (INT32_MIN, -1, 1, 0, 0, -128, 127, 0, 127),
        (1000, 0, 1, 0, 0, -5, 7, 0, 7), (-1000, 0, 1, 0, 0, -5, 7, 0, -5),
        (3, 0, 1, 0, 2, -5, 7, 0, 5),
        (3, 0, 1, 0, 0, 10, -10, 0, -10), (-50, 0, 1, 0, 0, 10, -10, 0, -10),
        (0, 0, 1, 0, -128, -128, 127, 0, -128), (127, 0, 1, 0, 127, -128, 127, 0, 127),
        (5, 0, 1, 0, 1, -128, 127, 0xAB, 6), (9, 0, 1, 0, 0, 42, 42, 0xFF, 42),
        (200, 0, 1, 0, -100, -128, 127, 0x80, 100),
        (1 << 20, 0, 1 << 24, 45, 0, 0, 127, 0x7F, 1)])               # 0.5 -> 1
    stored = requantized_store(pair, acc, params, param_base=9)
    np.testing.assert_array_equal(stored, expected)


@pytest.mark.parametrize("where", ["last ACC elements", "inside the stored rows"])
def test_requantizing_store_of_rows_with_random_lane_parameters(pair, where):
    """Every element of every row gets the same per-lane parameters; the parameters may be
    the ACC buffer's last three elements, or elements the STORE also stores."""
    rng = np.random.default_rng(5)
    acc = rng.integers(-(1 << 20), 1 << 20, (12, 16)).astype(np.int32)
    acc[::3] = rng.integers(INT32_MIN, INT32_MAX, (4, 16), dtype=np.int64)
    params = requant_params(rng, CFG).reshape(3, 16)
    if where == "last ACC elements":
        sram_base, param_base = CFG.acc_depth - 40, CFG.acc_depth - PARAM_ELEMENTS
    else:
        sram_base, param_base = 100, 104
        acc[4:7] = params
    stored = requantized_store(pair, acc, params, param_base=param_base, rows=3,
                               sram_base=sram_base)
    np.testing.assert_array_equal(stored, store_requantize(acc, params[:, None]))


STORE_SHAPES = [(1, 1, 1), (4, 1, 4), (8, 3, 9), (40, 1, 40), (3, 20, 3), (16, 18, 16)]


@pytest.mark.parametrize("latency", [32, pytest.param(5, marks=pytest.mark.slow)])
def test_timing_model_follows_the_store_cycle_by_cycle(latency):
    """byoc_vta_sim.timing's STOREs take the RTL's cycles exactly, requantizing or not
    (x_size, y_size, x_stride as above). With a short memory latency the requantizing
    STORE's three parameter reads show: three cycles more than the plain STORE."""
    config = replace(CFG, mem_latency=latency)
    rtl = RtlSimulator(config)
    acc = np.arange(64 * 16, dtype=np.int32)
    for x_size, y_size, x_stride in STORE_SHAPES:
        cycles = {}
        for requantize in (0, 1):
            insns = [MemInsn(memory_type=MemType.ACC, y_size=1, x_size=64, x_stride=64,
                             push_next=1),
                     MemInsn(store=True, memory_type=MemType.OUT, sram_base=3,
                             dram_base=acc.nbytes // 16, y_size=y_size, x_size=x_size,
                             x_stride=x_stride, requantize=requantize,
                             param_base=60 * requantize, pop_prev=1, push_prev=1),
                     MemInsn(memory_type=MemType.ACC, pop_next=1), FinishInsn()]
            dram = np.zeros(acc.nbytes + y_size * x_stride * 16, np.uint8)
            dram[:acc.nbytes] = acc.view(np.uint8)
            cycles[requantize] = rtl.run(insns, dram)["cycles"]
            assert estimate_stream(insns, config)["cycles"] == cycles[requantize], (
                x_size, y_size, x_stride, requantize)
        if latency == 5:
            assert cycles[1] - cycles[0] == PARAM_ELEMENTS


# -- generated streams -----------------------------------------------------------------------


@pytest.mark.parametrize("name", ["cnn_int8", pytest.param("resnet18_int8",
                                                           marks=pytest.mark.slow)])
def test_every_vta_partition_of_the_int8_zoo_models_cosimulates(tmp_path, name):
    """target=cosim runs every vta_sim partition's stream on both and compares every run;
    the model's outputs equal the reference interpreter's."""
    model = onnx.load(str(zoo_module().build(name, tmp_path)))
    value = model.graph.input[0]
    shape = [d.dim_value or 1 for d in value.type.tensor_type.shape.dim]
    feeds = {value.name: np.random.default_rng(0).uniform(-2, 2, shape).astype(np.float32)}
    compiled = byoc.compile(model, plugins=["vta_sim"], placement="priority",
                            plugin_options={"vta_sim": {"target": "cosim"}})
    ours, profiles = compiled.profile(feeds)
    expected = compile_reference(model).run(feeds)
    for output in expected:
        np.testing.assert_array_equal(ours[output], expected[output])
    vta = [p for p in profiles if p.plugin == "vta_sim"]
    assert len(vta) >= 4 and all(p.counters["rtl_cycles"] > p.counters["gemm_uops"] > 0
                                 and p.counters["rtl_runs_equal"] == 1 for p in vta)


def test_random_programs_cosimulate(pair):
    """36 random legal programs (random shapes, padding, strides, micro-op loops, ALU
    operations, requantizing STOREs, overwriting GEMMs and token patterns), each from zeroed
    buffers. test_vta_random_streams.py checks that these programs reach every case of the
    requantization's arithmetic."""
    sim, rtl = pair
    clear, zeros = clearing_stream(CFG)
    stored = 0
    kinds: Counter = Counter()
    for seed in range(36):
        program = random_program(np.random.default_rng(seed), CFG, tasks=3)
        sim.run(clear, zeros.copy())
        rtl.run(clear, zeros.copy())
        result = cosimulate(program.insns, program.dram, sim, rtl)
        stored += result.rtl_counters["bytes_stored_out"]
        for insn in program.insns:
            if isinstance(insn, MemInsn) and insn.store:
                kinds["requantizing STORE" if insn.requantize else "STORE"] += 1
            elif isinstance(insn, GemmInsn) and insn.overwrite:
                kinds["GEMM overwrite reset" if insn.reset else "GEMM overwrite"] += 1
    assert stored > 36 * 16
    assert kinds["requantizing STORE"] >= 30 and kinds["STORE"] >= 30, kinds
    assert kinds["GEMM overwrite"] >= 10 and kinds["GEMM overwrite reset"] >= 1, kinds


CONFIGS = {
    "64-bit port": dict(mem_port_bits=64),
    "256-bit port, latency 5": dict(mem_port_bits=256, mem_latency=5),
    "no latency, 4-deep queues": dict(mem_latency=0, insn_queue_depth=4),
    "8x8 GEMM, small buffers, 512-bit port": dict(block_in=8, block_out=8, uop_depth=1024,
                                                  inp_depth=256, wgt_depth=128, acc_depth=256,
                                                  mem_port_bits=512),
    "batch 2": dict(batch=2),
}


@pytest.mark.slow
@pytest.mark.parametrize("variant", CONFIGS)
def test_other_configurations_build_and_cosimulate(variant):
    """The RTL takes every size from the generated include: other port widths (beats split
    and joined differently), latencies, queue depths, GEMM shapes and buffer depths."""
    config = replace(CFG, **CONFIGS[variant])
    sim, rtl = Simulator(config), RtlSimulator(config)
    # its profile-guided build's workload ran on this configuration too
    assert build_record(rtl.model)["profiled"] is True
    clear, zeros = clearing_stream(config)
    rtl.run(clear, zeros.copy())
    for seed in range(6):
        program = random_program(np.random.default_rng(100 + seed), config, tasks=3)
        cosimulate(program.insns, program.dram, sim, rtl)


# -- failures are reported, never silent ------------------------------------------------------


def generated_stream(tmp_path):
    model = onnx.load(str(zoo_module().build("cnn_int8", tmp_path)))
    compiled = byoc.compile(model, plugins=["vta_sim"], placement="priority")
    part = next(p for p in compiled.parts if p.plugin == "vta_sim")
    return decode_stream(part.payload.data), np.array(part.payload.arrays["dram"], np.uint8)


def test_watchdog_names_what_each_module_is_doing(rtl, tmp_path):
    insns, dram = generated_stream(tmp_path)
    with pytest.raises(SimulationError) as caught:
        rtl.run(insns, dram, max_cycles=300)
    message = str(caught.value)
    assert "cycle limit of 300" in message
    assert "compute module" in message and "fetch" in message and "tokens held" in message


def test_a_disagreement_names_the_byte_the_store_and_the_waveform(rtl, tmp_path):
    insns, dram = generated_stream(tmp_path)

    class OffByOne(Simulator):
        """A functional simulator with a planted bug: one stored byte is off."""
        def run(self, stream, dram):
            counters = super().run(stream, dram)
            dram[self.victim] ^= 1
            return counters

    reference = dram.copy()
    Simulator(CFG).run(insns, reference)
    victim = int(np.flatnonzero(reference != dram)[5])
    sim = OffByOne(CFG)
    sim.victim = victim
    with pytest.raises(CosimMismatch) as caught:
        cosimulate(insns, dram, sim, rtl, vcd_dir=tmp_path)
    message = str(caught.value)
    assert f"the first at byte {victim}" in message
    assert "STORE" in message and "written by instruction" in message
    vcd = tmp_path / "vta_rtl.vcd"
    assert str(vcd) in message
    head = vcd.read_text(errors="replace")[:200_000]
    assert "$enddefinitions" in head and "o_done" in head


def test_streams_breaking_the_hazard_rule_are_refused_before_running(rtl):
    p = Program()
    p.uops(Uop(dst=0, src=1), Uop(dst=0, src=1))       # back-to-back writes of ACC[0]
    p.load(MemType.ACC, np.zeros((2, 16), np.int32), 64, y_size=1, x_size=2, x_stride=2)
    p.compute = [AluInsn(alu_op=AluOp.ADD, uop_end=2)]
    insns, dram, _ = p.stream(range(1))
    with pytest.raises(SimulationError, match="relies on"):
        rtl.run(insns, dram)


def test_instructions_that_do_not_fit_are_refused_by_name_as_on_the_simulator(rtl):
    """The RTL driver encodes the stream once for the core; an instruction whose fields do
    not fit gets the functional simulator's message, naming it."""
    with pytest.raises(SimulationError, match=r"instruction 1 cannot be encoded.*imm=40000"):
        rtl.run([FinishInsn(), AluInsn(use_imm=1, imm=40000)], np.zeros(64, np.uint8))


def test_rtl_target_from_the_command_line(tmp_path, capsys):
    """`byoc run --plugin-option vta_sim.target=rtl` runs on the RTL (its cycle and stall
    counters in the profile); a target that does not exist is a one-paragraph error."""
    from byoc.cli import main

    model_path = zoo_module().build("cnn_int8", tmp_path)
    artifact = tmp_path / "cnn.byoc"
    assert main(["compile", str(model_path), "--plugins", "vta_sim", "--placement", "priority",
                 "-o", str(artifact)]) == 0
    capsys.readouterr()
    assert main(["run", str(artifact), "--profile", "--plugin-option",
                 "vta_sim.target=rtl"]) == 0
    out = capsys.readouterr().out
    assert "gemm_busy" in out and "stall_l2c" in out and "load->compute token, cycles" in out
    assert main(["run", str(artifact), "--plugin-option", "vta_sim.target=fpga"]) != 0
    err = " ".join(capsys.readouterr().err.split())
    assert "vta_sim.target='fpga' is not valid: give one of sim, rtl, cosim" in err
    assert "Traceback" not in err


def test_build_is_cached_by_design_and_configuration(tmp_path):
    first = build_rtl(CFG)
    again = build_rtl(CFG)
    assert again.library == first.library
    # compiled with the profile of byoc_vta_sim.rtl_workload, which ran to its end
    assert build_record(first)["profiled"] is True
    other = build_rtl(replace(CFG, mem_latency=7))
    assert other.library != first.library
    assert Path(first.library).exists()
