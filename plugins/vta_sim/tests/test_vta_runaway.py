"""Streams that would deadlock or run away stop with an error naming the instructions, on the
functional simulator and on the RTL, and never hang; without Verilator, the RTL target says
how to install it."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import numpy as np
import pytest

from byoc.testing import zoo_module
from byoc_vta_sim.config import DEFAULT_CONFIG
from byoc_vta_sim.isa import FinishInsn, GemmInsn, MemInsn, MemType, Uop, encode_uops
from byoc_vta_sim.sim import SimulationError, Simulator


def runaway_stream():
    """One LOAD UOP, then a GEMM of 16383 x 16383 iterations over 8 micro-ops (2^31 of
    them: hours of simulation)."""
    dram = np.zeros(256, np.uint8)
    dram[:32] = encode_uops([Uop(dst=e) for e in range(8)]).view(np.uint8)
    return [MemInsn(memory_type=MemType.UOP, y_size=1, x_size=8, x_stride=8),
            GemmInsn(reset=1, uop_end=8, iter_out=16383, iter_in=16383),
            FinishInsn()], dram


def deadlocked_stream():
    """The GEMM waits for a load->compute token no LOAD ever pushes."""
    return [MemInsn(memory_type=MemType.INP, y_size=1, x_size=1, x_stride=1),
            GemmInsn(reset=1, uop_end=0, pop_prev=1), FinishInsn()], np.zeros(64, np.uint8)


def test_simulator_refuses_a_runaway_loop_before_running_it():
    insns, dram = runaway_stream()
    start = time.perf_counter()
    with pytest.raises(SimulationError) as caught:
        Simulator(DEFAULT_CONFIG).run(insns, dram)
    assert time.perf_counter() - start < 5
    message = str(caught.value)
    assert "instruction 1 (GEMM uops 0..8 x 16383 x 16383 reset)" in message
    assert "2,147,221,512 micro-ops" in message and "max_uops" in message


def test_simulator_names_the_instructions_of_a_deadlock():
    insns, dram = deadlocked_stream()
    with pytest.raises(SimulationError, match=r"deadlock before FINISH: .*instruction 1 \(GEMM"
                                              r".*waits for a load->compute token"):
        Simulator(DEFAULT_CONFIG).run(insns, dram)


@pytest.mark.cosim
def test_rtl_refuses_runaway_and_deadlocked_streams_by_instruction():
    from byoc_vta_sim.rtl import RtlSimulator

    rtl = RtlSimulator(DEFAULT_CONFIG)
    insns, dram = runaway_stream()
    with pytest.raises(SimulationError, match="instruction 1 .*past the RTL driver's budget"):
        rtl.run(insns, dram)
    insns, dram = deadlocked_stream()
    with pytest.raises(SimulationError, match=r"L2C.*instruction 1 \(GEMM"):
        rtl.run(insns, dram)


@pytest.mark.cosim
def test_rtl_target_without_verilator_says_how_to_install_it(tmp_path):
    model = zoo_module().build("cnn_int8", tmp_path)
    artifact = tmp_path / "cnn.byoc"
    env = dict(os.environ, PATH=str(tmp_path))          # no verilator on PATH
    subprocess.run([sys.executable, "-m", "byoc", "compile", str(model), "--plugins",
                    "vta_sim", "--placement", "priority", "-o", str(artifact)],
                   check=True, capture_output=True, env=env)
    result = subprocess.run([sys.executable, "-m", "byoc", "run", str(artifact),
                             "--plugin-option", "vta_sim.target=rtl"], capture_output=True,
                            text=True, env=env, timeout=120)
    assert result.returncode == 1
    err = " ".join(result.stderr.split())
    assert err.startswith("byoc: error:") and "Traceback" not in err
    assert "Verilator is not installed" in err and "apt-get install -y verilator" in err
