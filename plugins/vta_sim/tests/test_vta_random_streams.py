"""Random legal streams (byoc_vta_sim.random_streams): valid, and race-free, so that their
result is a property of the stream alone — what the RTL co-simulation relies on."""

from __future__ import annotations

import dataclasses
from collections import Counter

import numpy as np
import pytest

from byoc_vta_sim.config import DEFAULT_CONFIG
from byoc_vta_sim.disasm import mnemonic
from byoc_vta_sim.isa import AluOp, GemmInsn, MemInsn
from byoc_vta_sim.random_streams import random_program
from byoc_vta_sim.requant import PARAM_ELEMENTS
from byoc_vta_sim.sim import Simulator
from byoc_vta_sim.validate import validate_stream

INT32_MIN, INT32_MAX = -(1 << 31), (1 << 31) - 1
SMALL = dataclasses.replace(DEFAULT_CONFIG, inp_depth=64, wgt_depth=32, acc_depth=64,
                            uop_depth=64)


@pytest.mark.parametrize("config", [DEFAULT_CONFIG, SMALL], ids=["default", "small"])
def test_random_streams_are_valid_and_independent_of_the_schedule(config):
    stored_something = 0
    kinds = set()
    for seed in range(40):
        program = random_program(np.random.default_rng(seed), config, tasks=5)
        kinds |= {mnemonic(insn) for insn in program.insns}
        validate_stream(program.insns, config, program.dram)
        results = []
        # A queue depth of 1 makes fetch stall constantly and reorders how the modules
        # interleave; a race-free stream gives the same bytes either way.
        for depth in (config.insn_queue_depth, 1, 3):
            dram = program.dram.copy()
            Simulator(dataclasses.replace(config, insn_queue_depth=depth)).run(
                program.insns, dram)
            results.append(dram)
        for other in results[1:]:
            np.testing.assert_array_equal(results[0], other, err_msg=f"seed {seed}")
        start, end = program.out_region
        stored_something += int(np.any(results[0][start:end]))
    assert stored_something >= 35
    assert kinds >= {"LOAD INP", "LOAD WGT", "LOAD ACC", "LOAD UOP", "STORE OUT",
                     "STORE OUT requant", "GEMM", "GEMM reset", "GEMM overwrite", "FINISH",
                     *(f"ALU {op.name}" for op in AluOp)}, kinds


def test_random_streams_are_reproducible_by_seed():
    a = random_program(np.random.default_rng(3), DEFAULT_CONFIG)
    b = random_program(np.random.default_rng(3), DEFAULT_CONFIG)
    assert a.insns == b.insns and np.array_equal(a.dram, b.dram)


def extension_cases(programs, config) -> Counter:
    """How often the programs reach each case of the requantizing STORE's arithmetic (lane
    by lane, on the data each STORE reads, as the simulator runs them) and of the
    overwriting GEMM."""
    cases: Counter = Counter()
    sim = Simulator(config)

    def observe(index, insn):
        if isinstance(insn, GemmInsn) and insn.overwrite:
            cases["GEMM overwrite and reset" if insn.reset else "GEMM overwrite"] += 1
            if not insn.reset and insn.dst_factor_in == 0 and insn.iter_in > 1:
                cases["GEMM overwrite writing elements again"] += 1
        if not (isinstance(insn, MemInsn) and insn.store and insn.requantize and insn.x_size):
            return
        count = insn.y_size * insn.x_size
        if insn.param_base == config.acc_depth - PARAM_ELEMENTS:
            cases["parameters at the last ACC elements"] += 1
        a = sim.acc[insn.sram_base:insn.sram_base + count].astype(np.int64)
        bias, operand, ranges = sim.acc[insn.param_base:insn.param_base + 3].astype(np.int64)
        total = a + bias
        x = (total + (1 << 31)) % (1 << 32) - (1 << 31)
        shift, product = operand & 63, x * (operand >> 6)
        rounded = np.where(shift == 0, product, (product + (1 << np.maximum(shift - 1, 0)))
                           >> shift)
        y = np.clip(rounded, INT32_MIN, INT32_MAX)

        def byte(k):
            return ((ranges >> (8 * k)) & 0xFF ^ 0x80) - 0x80
        zero, lower, upper = byte(0), byte(1), byte(2)
        r = np.minimum(np.maximum(y + zero, lower), upper)
        half = (shift > 0) & ((product & ((1 << shift) - 1)) == (1 << np.maximum(shift - 1, 0)))
        cases.update({
            "bias sum wraps": int(np.sum(total != x)),
            "negative multiplier": int(np.sum(np.broadcast_to(operand >> 6 < 0, a.shape))),
            "rounding half, negative": int(np.sum(half & (product < 0))),
            "rounding half, positive": int(np.sum(half & (product > 0))),
            "saturated high, zero point added": int(np.sum((rounded > INT32_MAX) & (zero > 0))),
            "saturated low, zero point added": int(np.sum((rounded < INT32_MIN) & (zero < 0))),
            "lower above upper": int(np.sum(np.broadcast_to(lower > upper, a.shape))),
            "range top byte set": int(np.sum(np.broadcast_to(ranges >> 24 != 0, a.shape))),
            "within the bounds": int(np.sum((lower < r) & (r < upper))),
        })
        cases.update(f"shift {s}" for s in np.broadcast_to(shift, a.shape).ravel().tolist())

    for program in programs:
        sim.run(program.insns, program.dram.copy(), observer=observe)
    return cases


EXTENSION_CASES = ["GEMM overwrite", "GEMM overwrite and reset",
                   "GEMM overwrite writing elements again", "parameters at the last ACC elements",
                   "bias sum wraps", "negative multiplier", "rounding half, negative",
                   "rounding half, positive", "saturated high, zero point added",
                   "saturated low, zero point added", "lower above upper", "range top byte set",
                   "within the bounds", *(f"shift {s}" for s in range(64))]


@pytest.mark.parametrize("config, seeds, tasks", [
    (DEFAULT_CONFIG, range(36), 3),      # test_vta_rtl_cosim.py: test_random_programs_cosimulate
    (SMALL, range(40), 5),
], ids=["cosimulated", "small"])
def test_random_streams_reach_every_case_of_the_extensions(config, seeds, tasks):
    """The requantizing STORE and the overwriting GEMM appear in the random streams, with
    the data that reaches each case of their definitions (docs/vta-isa.md)."""
    programs = [random_program(np.random.default_rng(seed), config, tasks=tasks)
                for seed in seeds]
    cases = extension_cases(programs, config)
    missing = [case for case in EXTENSION_CASES if cases[case] == 0]
    assert not missing, cases
