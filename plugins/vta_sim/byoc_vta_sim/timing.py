"""A cycle estimate of an instruction stream: three modules, one memory port, tokens.

Each module runs its instructions in order; an instruction starts when its module is free
and the tokens it pops have been pushed, and pushes its tokens when it ends. Durations:

- LOAD / STORE: the memory latency, then one port beat per ``mem_port_bits`` of each row
  (rows of one instruction stream back to back); transfers of different modules share the
  port, one beat per cycle. Zero padding is written at one buffer element per cycle. A
  token-only LOAD/STORE (x_size = 0) takes one cycle.
- GEMM / ALU: one micro-op per cycle, plus the unit's pipeline depth per instruction.

This is the model the benchmark reports next to the ideal (MACs / 256) and that the
partitioner's cost hook approximates per layer (:func:`byoc_vta_sim.tiling.estimate_cycles`).
The RTL of hw/ measures the real figure.
"""

from __future__ import annotations

import bisect
import math
from collections import deque

from byoc_vta_sim.config import VtaConfig
from byoc_vta_sim.isa import (
    QUEUE_NAMES,
    AluInsn,
    GemmInsn,
    Insn,
    MemInsn,
    MemType,
    Module,
)
from byoc_vta_sim.schedule import RoundSchedule
from byoc_vta_sim.tiling import PIPELINE_CYCLES


def _elem_bytes(config: VtaConfig, memory_type: MemType) -> int:
    return {MemType.UOP: config.uop_elem_bytes, MemType.WGT: config.wgt_elem_bytes,
            MemType.INP: config.inp_elem_bytes, MemType.ACC: config.acc_elem_bytes,
            MemType.OUT: config.out_elem_bytes}[memory_type]


class _Port:
    """The memory port's busy intervals. Instructions are timed in schedule order, which is
    not time order (the load module may be timed far ahead of the compute module), so a
    transfer takes the first gap long enough at or after the time it can start."""

    def __init__(self) -> None:
        self.busy: list[tuple[int, int]] = []     # sorted, disjoint [start, end)

    def reserve(self, earliest: int, beats: int) -> int:
        start = earliest
        position = bisect.bisect_left(self.busy, (start, start))
        if position and self.busy[position - 1][1] > start:
            position -= 1
        while position < len(self.busy) and self.busy[position][0] < start + beats:
            start = max(start, self.busy[position][1])
            position += 1
        self.busy.insert(position, (start, start + beats))
        return start


def estimate_stream(insns: list[Insn], config: VtaConfig) -> dict[str, int]:
    """Estimated total cycles and busy cycles per unit for a valid stream (the instruction
    order is the simulator's; any order the tokens allow gives the same times)."""
    schedule = RoundSchedule(insns, config.insn_queue_depth)
    tokens: dict[str, deque[int]] = {name: deque() for name in QUEUE_NAMES}
    clock = dict.fromkeys(Module, 0)
    busy = {"gemm_busy": 0, "alu_busy": 0, "load_busy": 0, "store_busy": 0}
    port = _Port()
    for index in schedule:
        insn, module = insns[index], schedule.modules[index]
        pops, pushes = schedule.moves[index]
        start = max([clock[module]] + [tokens[q].popleft() for q in pops])
        if isinstance(insn, MemInsn) and insn.x_size:
            row_beats = math.ceil(insn.x_size * _elem_bytes(config, insn.memory_type)
                                  / config.mem_port_bytes)
            beats = insn.y_size * row_beats
            transfer = port.reserve(start + config.mem_latency, beats)
            end = transfer + beats + insn.sram_elements - insn.y_size * insn.x_size
            busy["store_busy" if insn.store else "load_busy"] += end - start
        elif isinstance(insn, (GemmInsn, AluInsn)):
            uops = (insn.uop_end - insn.uop_bgn) * insn.iter_out * insn.iter_in
            end = start + uops + PIPELINE_CYCLES
            busy["alu_busy" if isinstance(insn, AluInsn) else "gemm_busy"] += uops
        else:
            end = start + 1
        clock[module] = end
        for q in pushes:
            tokens[q].append(end)
    return {"cycles": max(clock.values()), **busy}
