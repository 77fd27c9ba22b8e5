"""Naming the first instruction whose effect on the RTL differs from the functional simulator.

The RTL here is built with its write monitor (a cached build of its own, about 10 s the first
time); the fault-injection tests build a corrupted copy of hw/vta too (once per module). The
fault: the GEMM's dot-product adder is 17 bits wide instead of 32, which changes a result only
where a micro-op's dot product leaves [-2^16, 2^16), so only some GEMM instructions go wrong
(in the example CNN, not the first); which ones the tests work out from the functional
simulator alone.
"""

from __future__ import annotations

import contextlib
import re
import shutil
import subprocess

import numpy as np
import onnx
import pytest

import byoc
from byoc.cosim import CosimError
from byoc.testing import compile_reference, zoo_module
from byoc_vta_sim import runtime as vta_runtime
from byoc_vta_sim.config import DEFAULT_CONFIG
from byoc_vta_sim.cosim import clearing_stream
from byoc_vta_sim.first_difference import decode_log, locate_first_difference
from byoc_vta_sim.isa import GemmInsn, MemType, decode_stream
from byoc_vta_sim.rtl import RtlSimulator, rtl_dir, rtl_sources
from byoc_vta_sim.sim import Simulator, last_writes, loop_chunks

pytestmark = pytest.mark.cosim

CFG = DEFAULT_CONFIG
WIDE_ADDER = "reg signed [31:0] sum;"
NARROW_ADDER = "reg signed [16:0] sum;"
NARROW_BITS = 17


# -- the monitor's log, without a simulator ---------------------------------------------------


def record(cycle, kind, index, where, *data, strobe=0xFF):
    return [cycle, kind << 56 | strobe << 48 | index, where, *data]


def test_the_log_keeps_each_instructions_last_write_per_row_with_its_cycle():
    acc = [1 << 32 | 2] + [0] * 7                       # lanes 2, 1, 0, 0, ...
    words = np.array(record(110, MemType.ACC, 4, 9, *[0] * 8)
                     + record(112, MemType.ACC, 4, 9, *acc)
                     + record(113, MemType.OUT, 6, 0x40, 0x0807060504030201, strobe=0b101)
                     + record(120, 5, 4, 1), dtype=np.uint64)
    effects, cycles, retired = decode_log(words, CFG, origin=100)
    assert effects[4] == {(MemType.ACC, 9): np.array(acc, "<u8").tobytes()}
    assert cycles[4] == {(MemType.ACC, 9): 12}
    assert effects[6] == {(MemType.OUT, 0x40): b"\x01", (MemType.OUT, 0x42): b"\x03"}
    assert retired == {4: 20}


def test_a_log_of_another_format_is_refused():
    with pytest.raises(CosimError, match="unknown kind 9"):
        decode_log(np.array(record(1, 9, 0, 0), dtype=np.uint64), CFG, origin=0)


def test_the_plain_rtl_is_refused():
    class Plain:
        write_monitor = False

    with pytest.raises(CosimError, match="write_monitor=True"):
        locate_first_difference([], np.zeros(16, np.uint8), CFG, Plain(), folder=".")


def test_the_shell_with_the_write_monitor_is_lint_clean():
    root = rtl_dir()
    result = subprocess.run(
        [shutil.which("verilator") or "verilator", "--lint-only", "-Wall",
         "+define+VTA_WRITE_MONITOR", f"-I{root / 'generated'}", str(root / "lint_waivers.vlt"),
         *map(str, rtl_sources(root)), "--top-module", "vta_shell"],
        capture_output=True, text=True)
    assert result.returncode == 0 and "%Warning" not in result.stderr, result.stderr


# -- the example CNN's partitions -------------------------------------------------------------


@pytest.fixture(scope="module")
def cnn(tmp_path_factory):
    """The int8 example CNN, its input, and its vta_sim partitions as (stream, DRAM)."""
    path = zoo_module().build("cnn_int8", tmp_path_factory.mktemp("cnn"))
    model = onnx.load(str(path))
    value = model.graph.input[0]
    shape = [d.dim_value or 1 for d in value.type.tensor_type.shape.dim]
    feeds = {value.name: np.random.default_rng(0).uniform(-2, 2, shape).astype(np.float32)}
    compiled = byoc.compile(model, plugins=["vta_sim"], placement="priority")
    streams = [(decode_stream(part.payload.data), np.array(part.payload.arrays["dram"], np.uint8))
               for part in compiled.parts if part.plugin == "vta_sim"]
    return model, feeds, streams


@pytest.fixture(scope="module")
def monitored():
    return RtlSimulator(CFG, write_monitor=True)


@pytest.fixture(scope="module")
def corrupted(tmp_path_factory):
    """The RTL with the narrow GEMM adder, built with its write monitor, and its folder."""
    folder = tmp_path_factory.mktemp("rtl") / "vta"
    shutil.copytree(rtl_dir(), folder)
    gemm = folder / "vta_gemm.v"
    assert WIDE_ADDER in gemm.read_text()
    gemm.write_text(gemm.read_text().replace(WIDE_ADDER, NARROW_ADDER))
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("BYOC_VTA_RTL", str(folder))
        return RtlSimulator(CFG, write_monitor=True), folder


@contextlib.contextmanager
def corrupted_rtl_in_use(folder):
    """Runtimes created inside take their RTL from ``folder`` (the shared RTL models are
    dropped on the way in and out, so no other test gets the corrupted one)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("BYOC_VTA_RTL", str(folder))
        vta_runtime.shared_rtl.cache_clear()
        try:
            yield
        finally:
            vta_runtime.shared_rtl.cache_clear()


def first_wrong_gemm(insns, dram):
    """Index of the first GEMM whose result the narrow adder changes, from the functional
    simulator alone (each GEMM replayed with its dot products wrapped to 17 bits, on the
    accumulator as it was before it), or None."""
    sim = Simulator(CFG)
    clear, zeros = clearing_stream(CFG)
    sim.run(clear, zeros)
    before = sim.acc.copy()
    wrong = []

    def observe(index, insn):
        if isinstance(insn, GemmInsn) and not insn.reset:
            acc = before.astype(np.int64)
            for _, dst, src, wgt in loop_chunks(insn, sim.uop, 1 << 12):
                if insn.overwrite:      # each element keeps its last micro-op's product
                    dst, src, wgt = last_writes(dst, src, wgt)
                    acc[dst] = 0
                dots = np.einsum("nbk,nok->nbo", sim.inp[src].astype(np.int64),
                                 sim.wgt[wgt].astype(np.int64))
                half = 1 << (NARROW_BITS - 1)
                np.add.at(acc, dst, (dots + half) % (2 * half) - half)
            if not np.array_equal(acc.astype(np.uint32), sim.acc.view(np.uint32)):
                wrong.append(index)
        before[...] = sim.acc

    sim.run(insns, dram.copy(), observer=observe)
    return min(wrong, default=None)


def vcd_times(path):
    return [int(line[1:]) for line in path.read_text().splitlines() if line.startswith("#")]


def test_the_real_rtl_agrees_on_every_instruction(cnn, monitored, tmp_path):
    _, _, streams = cnn
    for insns, dram in streams:
        assert locate_first_difference(insns, dram, CFG, monitored, folder=tmp_path) is None
    assert not list(tmp_path.iterdir())          # no waveform when nothing differs


def test_the_corrupted_gemm_is_named_at_the_first_instruction_it_changes(cnn, monitored,
                                                                        corrupted, tmp_path):
    rtl, _ = corrupted
    assert rtl.model.library != monitored.model.library     # the build cache tells them apart
    _, _, streams = cnn
    caught = 0
    for number, (insns, dram) in enumerate(streams):
        expected = first_wrong_gemm(insns, dram)
        difference = locate_first_difference(insns, dram, CFG, rtl, folder=tmp_path / str(number))
        if expected is None:
            assert difference is None
            continue
        caught += 1
        assert difference.instruction == expected
        assert f"instruction {expected} (GEMM" in difference.description
        assert re.search(r"wrote ACC row \d+ \(lanes? \d+", difference.description)
        assert "on the RTL" in difference.description and "functional simulator" in \
            difference.description
        cycle = difference.cycle
        assert f"at cycle {cycle} " in difference.description
        window = tmp_path / str(number) / f"vta_rtl_{expected}.vcd"
        assert difference.waveform == str(window)
        text = window.read_text()
        assert "$enddefinitions" in text and "acc_we" in text
        times = vcd_times(window)
        start, end = 10 * max(cycle - 200, 0), 10 * (cycle + 51)
        assert times[0] == start and start < 10 * cycle < end and times[-1] <= end
        assert times[-1] >= 10 * (cycle + 50)
        whole = tmp_path / "whole.vcd"
        rtl.run(insns, dram.copy(), trace=whole)
        assert window.stat().st_size * 5 < whole.stat().st_size
    assert caught >= 1        # the fault shows on at least one partition


def test_the_runtime_names_the_instruction_for_a_partitions_inputs(cnn, corrupted, tmp_path):
    """target=rtl on the corrupted RTL gives wrong outputs; the partition whose stream the
    fault reaches names the first wrong GEMM; a partition it does not reach gives None, and
    target=sim always does."""
    model, feeds, _ = cnn
    _, folder = corrupted
    with corrupted_rtl_in_use(folder):
        compiled = byoc.compile(model, plugins=["vta_sim"], placement="priority",
                                plugin_options={"vta_sim": {"target": "rtl"}})
        parts = {part.runtime: part for part in compiled.parts if part.plugin == "vta_sim"}
        seen = {}
        for runtime in parts:
            record_inputs(runtime, seen)
        outputs = compiled.run(feeds)
        found = {runtime: runtime.device_difference(inputs, str(tmp_path))
                 for runtime, inputs in seen.items()}
    expected = compile_reference(model).run(feeds)
    assert any(not np.array_equal(outputs[name], expected[name]) for name in expected)
    for runtime, difference in found.items():
        wrong = first_wrong_gemm(runtime.insns, runtime.input_image(seen[runtime]))
        if wrong is None:
            assert difference is None
        else:
            assert difference.instruction == wrong and difference.waveform is not None
        part = parts[runtime]
        on_sim = vta_runtime.VtaRuntime(part.payload, part.signature, "sim")
        assert on_sim.device_difference(seen[runtime], str(tmp_path)) is None
    assert any(difference is not None for difference in found.values())


def record_inputs(runtime, seen):
    run = runtime.run

    def recording(inputs):
        seen[runtime] = dict(inputs)
        return run(inputs)

    runtime.run = recording


def test_verify_names_the_conv_and_the_instruction_on_the_corrupted_rtl(cnn, corrupted,
                                                                      tmp_path):
    """byoc verify on target=rtl with the narrow GEMM adder: the first partition the fault
    reaches fails (the ones before it pass, fed the reference's values), the node named is
    its layer's Conv (the accumulator the plugin exposes on verify's debug request is already
    wrong), and the first instruction named is the first GEMM the fault changes, with a
    waveform around it."""
    from byoc.core.interpreter.runner import Interpreter
    from byoc.verify import verify_compiled

    model, feeds, _ = cnn
    _, folder = corrupted
    with corrupted_rtl_in_use(folder):
        compiled = byoc.compile(model, plugins=["vta_sim"], placement="priority",
                                plugin_options={"vta_sim": {"target": "rtl"}})
        found = verify_compiled(compiled, feeds, waveforms=str(tmp_path))
    values = Interpreter(compiled.graph).values(feeds)
    reached = []
    for part in compiled.parts:
        if part.plugin == "vta_sim":
            image = part.runtime.input_image({n: values[n] for n in part.signature.inputs})
            reached.append((part, first_wrong_gemm(part.runtime.insns, image)))
    part, wrong = next((p, w) for p, w in reached if w is not None)
    assert found.first_failure.name == part.signature.name
    divergence = found.first_divergence
    op_types = {node.name: node.op_type for node in compiled.graph.nodes}
    conv = next(name for name in part.nodes if op_types[name] == "Conv")
    assert (divergence.node, divergence.op_type) == (conv, "Conv")
    assert divergence.device.instruction == wrong
    assert f"instruction {wrong} (GEMM" in divergence.device.description
    assert divergence.device.waveform.startswith(str(tmp_path))
