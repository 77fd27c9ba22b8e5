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
from byoc_vta_sim.random_streams import random_program
from byoc_vta_sim.rtl import RtlSimulator, build_rtl, check_supported, rtl_dir, rtl_sources
from byoc_vta_sim.sim import SimulationError, Simulator, alu_apply

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
    operations and token patterns), each from zeroed buffers."""
    sim, rtl = pair
    clear, zeros = clearing_stream(CFG)
    stored = 0
    for seed in range(36):
        program = random_program(np.random.default_rng(seed), CFG, tasks=3)
        sim.run(clear, zeros.copy())
        rtl.run(clear, zeros.copy())
        result = cosimulate(program.insns, program.dram, sim, rtl)
        stored += result.rtl_counters["bytes_stored_out"]
    assert stored > 36 * 16


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
