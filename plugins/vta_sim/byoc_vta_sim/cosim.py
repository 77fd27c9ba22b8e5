"""Co-simulation: one stream on the functional simulator and on the RTL, compared bit for bit.

:func:`cosimulate` runs the stream on both from the same DRAM image and buffer state, then
compares every DRAM byte and the counters both keep (micro-ops, instructions per module,
bytes per memory type). On a difference it runs the RTL once more with tracing on and raises
:class:`CosimMismatch` naming the first differing address, the STORE that wrote it and the
VCD file.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from byoc.cosim import CosimError, compare_memories
from byoc_vta_sim.config import VtaConfig
from byoc_vta_sim.isa import FinishInsn, Insn, MemInsn, MemType
from byoc_vta_sim.rtl import RtlSimulator
from byoc_vta_sim.sim import COUNTER_NAMES, Simulator, _instructions, describe


class CosimMismatch(CosimError):
    """The RTL and the functional simulator disagree on a stream."""


@dataclass
class CosimResult:
    dram: np.ndarray                  # the DRAM image after the run (both agree on it)
    sim_counters: dict[str, int]
    rtl_counters: dict[str, int]


def cosimulate(stream: bytes | Sequence[Insn], dram: np.ndarray, simulator: Simulator,
               rtl: RtlSimulator, *, vcd_dir: os.PathLike | str | None = None) -> CosimResult:
    """Run ``stream`` on ``simulator`` and ``rtl`` from copies of ``dram``; raise
    :class:`CosimMismatch` unless DRAM and counters agree. Both keep their buffers across
    runs, so give them the same history (fresh ones, or the same streams before)."""
    insns = _instructions(stream)
    expected, actual = dram.copy(), dram.copy()
    sim_counters = simulator.run(insns, expected)
    rtl_counters = rtl.run(insns, actual)
    mismatch = compare_memories(expected, actual)
    counters = [f"{name}: simulator {sim_counters[name]}, RTL {rtl_counters[name]}"
                for name in COUNTER_NAMES if sim_counters[name] != rtl_counters[name]]
    if mismatch is None and not counters:
        return CosimResult(actual, sim_counters, rtl_counters)
    problems = []
    if mismatch is not None:
        writer = last_store_covering(insns, mismatch.first, rtl.config.out_elem_bytes)
        problems.append(
            f"{mismatch.count} DRAM byte(s) differ, the first at byte {mismatch.first} "
            f"(simulator {mismatch.expected:#04x}, RTL {mismatch.actual:#04x}), written by "
            + (f"instruction {writer} ({describe(insns[writer])})" if writer is not None
               else "no STORE of the stream (a write outside every STORE's rows)"))
    if counters:
        problems.append("counters differ: " + "; ".join(counters))
    vcd = _trace_again(insns, dram, rtl, vcd_dir)
    raise CosimMismatch("vta_sim co-simulation: the RTL disagrees with the functional "
                        "simulator: " + "; ".join(problems) + f". Waveform of the RTL run: "
                        f"{vcd}")


def clearing_stream(config: VtaConfig) -> tuple[list[Insn], np.ndarray]:
    """A stream and DRAM image that zero every on-chip buffer (each LOAD repeats one zero
    element with stride 0), so a simulator and the RTL can start from the same state."""
    def fill(memory_type: MemType, depth: int, **flags: int) -> MemInsn:
        return MemInsn(memory_type=memory_type, y_size=depth, x_size=1, x_stride=0, **flags)

    insns: list[Insn] = [fill(MemType.INP, config.inp_depth),
                         fill(MemType.WGT, config.wgt_depth, push_next=1),
                         fill(MemType.UOP, config.uop_depth),
                         fill(MemType.ACC, config.acc_depth, pop_prev=1),
                         FinishInsn()]
    return insns, np.zeros(config.wgt_elem_bytes, dtype=np.uint8)


def last_store_covering(insns: Sequence[Insn], address: int, elem_bytes: int) -> int | None:
    """Index of the last STORE whose DRAM rows include byte ``address``."""
    for index in range(len(insns) - 1, -1, -1):
        insn = insns[index]
        if not (isinstance(insn, MemInsn) and insn.store and insn.x_size):
            continue
        row_bytes = insn.x_size * elem_bytes
        for y in range(insn.y_size):
            start = (insn.dram_base + y * insn.x_stride) * elem_bytes
            if start <= address < start + row_bytes:
                return index
    return None


def _trace_again(insns: list[Insn], dram: np.ndarray, rtl: RtlSimulator,
                 vcd_dir: os.PathLike | str | None) -> Path:
    folder = Path(vcd_dir) if vcd_dir is not None else Path(tempfile.mkdtemp(prefix="vta-cosim-"))
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "vta_rtl.vcd"
    rtl.run(insns, dram.copy(), trace=path)
    return path


__all__ = ["CosimMismatch", "CosimResult", "clearing_stream", "cosimulate",
           "last_store_covering"]
