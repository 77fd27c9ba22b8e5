"""Where the RTL first departs from the functional simulator: the instruction, and a waveform.

:func:`locate_first_difference` runs one stream on both machines from the same state (every
buffer zeroed by :func:`byoc_vta_sim.cosim.clearing_stream`) and compares, instruction by
instruction in stream order, what each one wrote: the buffer rows of LOADs, GEMMs and ALU
instructions (INP, WGT, UOP, ACC) and the DRAM bytes of STOREs, each with the last value the
instruction gave it (a GEMM adds into a row many times). The first instruction that wrote
another value, or rows the other machine's did not, is the answer.

The simulator executes instructions one at a time, so an observer (``Simulator.run``'s
``observer``) reads each one's rows right after it. The RTL runs its three modules at once;
its build with the write monitor (hw/vta/sim/vta_write_monitor.v) logs every write with the
instruction its module was running and the cycle. The moment of the difference is the
earliest cycle at which the instruction wrote a wrong final value (or, if it only left out
rows, the cycle it retired); the RTL then runs the stream once more, tracing only the cycles
from 200 before that moment to 50 after it.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from byoc.cosim import CosimError
from byoc.plugins.api import DeviceDifference
from byoc_vta_sim.config import VtaConfig
from byoc_vta_sim.cosim import clearing_stream
from byoc_vta_sim.isa import AluInsn, GemmInsn, Insn, MemInsn, MemType, module_of
from byoc_vta_sim.rtl import RtlSimulator
from byoc_vta_sim.sim import Simulator, _instructions, describe, loop_chunks

# Record kinds of the write monitor's log: the memory types, OUT standing for DRAM.
DRAM = MemType.OUT
RETIRE = 5
HEADER_WORDS = 3
# The waveform's window: cycles before the first wrong write, and after it.
CYCLES_BEFORE, CYCLES_AFTER = 200, 50
# How many values of a wrong row the description shows.
VALUES_SHOWN = 8

Location = tuple[int, int]      # (kind, buffer row), or (DRAM, byte address)
Effects = dict[int, dict[Location, bytes]]     # instruction -> location -> last value written

_VALUE_TYPES = {MemType.UOP: "<u4", MemType.WGT: "i1", MemType.INP: "i1", MemType.ACC: "<i4",
                DRAM: "i1"}


def locate_first_difference(insns: bytes | Sequence[Insn], dram: np.ndarray,
                            config: VtaConfig, rtl: RtlSimulator, *,
                            folder: os.PathLike | str) -> DeviceDifference | None:
    """The first instruction of ``insns`` whose writes on ``rtl`` differ from the functional
    simulator's, both run from zeroed buffers against copies of ``dram``; None when every
    instruction wrote the same. ``rtl`` must be built with the write monitor
    (``RtlSimulator(config, write_monitor=True)``). The waveform, a VCD of the cycles around
    the first wrong write, is written into ``folder``."""
    if not rtl.write_monitor:
        raise CosimError("vta_sim: locating the first differing instruction needs the RTL "
                         "built with its write monitor: RtlSimulator(config, "
                         "write_monitor=True)")
    insns = _instructions(insns)
    expected = simulator_effects(insns, dram, config)
    actual, cycles, retired = rtl_effects(insns, dram, rtl)
    index = next((index for index in range(len(insns))
                  if expected.get(index, {}) != actual.get(index, {})), None)
    if index is None:
        return None
    insn, ours, theirs = insns[index], expected.get(index, {}), actual.get(index, {})
    differing = [where for where in ours.keys() | theirs.keys()
                 if ours.get(where) != theirs.get(where)]
    # the first wrong write in time, else (rows the RTL never wrote) the instruction's end
    written = [where for where in differing if where in theirs]
    first = (min(written, key=lambda where: (cycles[index][where], where)) if written
             else min(differing))
    cycle = cycles[index][first] if written else retired.get(index)
    waveform = None
    if cycle is not None:
        waveform = trace_window(insns, dram, rtl, cycle, Path(folder) / f"vta_rtl_{index}.vcd")
    description = (f"instruction {index} ({describe(insn)}) in the {module_of(insn).label} "
                   f"module {_difference(first, ours, theirs)}; "
                   f"{_count(differing, ours.keys() | theirs.keys(), first)}")
    if cycle is not None:
        description += f", at cycle {cycle} of the RTL's run (waveform: {waveform})"
    return DeviceDifference(index, description, cycle, None if waveform is None
                            else str(waveform))


def simulator_effects(insns: list[Insn], dram: np.ndarray, config: VtaConfig) -> Effects:
    """What each instruction wrote on the functional simulator, from zeroed buffers."""
    simulator = Simulator(config)
    clear, zeros = clearing_stream(config)
    simulator.run(clear, zeros)
    image = dram.copy()
    rows = {MemType.UOP: simulator.uop, MemType.WGT: simulator.wgt, MemType.INP: simulator.inp,
            MemType.ACC: simulator.acc}
    rows = {kind: buffer.view(np.uint8).reshape(len(buffer), -1) for kind, buffer in rows.items()}
    effects: Effects = {}

    def observe(index: int, insn: Insn) -> None:
        if isinstance(insn, MemInsn) and insn.store:
            addresses = _stored_bytes(insn, config.out_elem_bytes)
            effects[index] = {(DRAM, address): bytes([value]) for address, value
                              in zip(addresses.tolist(), image[addresses].tolist())}
            return
        if isinstance(insn, MemInsn):
            kind = insn.memory_type
            written = range(insn.sram_base, insn.sram_base + insn.sram_elements)
        elif isinstance(insn, (GemmInsn, AluInsn)):
            kind = MemType.ACC
            chunks = [dst for _, dst, _, _ in loop_chunks(insn, simulator.uop, 1 << 20)]
            written = np.unique(np.concatenate(chunks)).tolist() if chunks else []
        else:
            return
        effects[index] = {(kind, row): rows[kind][row].tobytes() for row in written}

    simulator.run(insns, image, observer=observe)
    return effects


def rtl_effects(insns: list[Insn], dram: np.ndarray, rtl: RtlSimulator
                ) -> tuple[Effects, dict[int, dict[Location, int]], dict[int, int]]:
    """What each instruction wrote on the RTL, from zeroed buffers: the effects, the cycle of
    each location's last write, and the cycle each instruction retired at (cycles of the
    run, from the core's start)."""
    clear, zeros = clearing_stream(rtl.config)
    rtl.run(clear, zeros)
    rtl.model.take_log()
    rtl.run(insns, dram.copy())
    return decode_log(rtl.model.take_log(), rtl.config, rtl.started_at)


def decode_log(words: np.ndarray, config: VtaConfig, origin: int
               ) -> tuple[Effects, dict[int, dict[Location, int]], dict[int, int]]:
    """The write monitor's records (the format is in vta_write_monitor.v) as effects, cycles
    of the last writes and retirement cycles, counting cycles from ``origin``."""
    elem_bytes = {MemType.UOP: config.uop_elem_bytes, MemType.WGT: config.wgt_elem_bytes,
                  MemType.INP: config.inp_elem_bytes, MemType.ACC: config.acc_elem_bytes,
                  DRAM: 8, RETIRE: 0}
    effects: Effects = {}
    cycles: dict[int, dict[Location, int]] = {}
    retired: dict[int, int] = {}
    values = words.tolist()
    position = 0
    while position < len(values):
        cycle, tag, where = values[position:position + HEADER_WORDS]
        kind, strobe, index = tag >> 56, tag >> 48 & 0xFF, tag & 0xFFFFFFFF
        if kind not in elem_bytes:
            raise CosimError(f"vta_sim: the RTL's write monitor logged a record of unknown "
                             f"kind {kind} at word {position}; is the RTL's vta_write_monitor.v "
                             f"the one this module reads?")
        data_words = -(-elem_bytes[kind] // 8)
        data = words[position + HEADER_WORDS:position + HEADER_WORDS + data_words].tobytes()
        position += HEADER_WORDS + data_words
        cycle -= origin
        if kind == RETIRE:
            retired[index] = cycle
            continue
        if kind == DRAM:
            written = {(DRAM, where + byte): data[byte:byte + 1] for byte in range(8)
                       if strobe >> byte & 1}
        else:
            written = {(kind, where): data[:elem_bytes[kind]]}
        effects.setdefault(index, {}).update(written)
        cycles.setdefault(index, {}).update(dict.fromkeys(written, cycle))
    return effects, cycles, retired


def trace_window(insns: list[Insn], dram: np.ndarray, rtl: RtlSimulator, cycle: int,
                 path: Path) -> Path:
    """Run the stream on ``rtl`` again from zeroed buffers, writing a VCD of cycles
    ``cycle`` - 200 .. ``cycle`` + 50 of the run only (timestamps: 10 per cycle of the run)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    clear, zeros = clearing_stream(rtl.config)
    rtl.run(clear, zeros)
    rtl.run(insns, dram.copy(), trace=path,
            window=(max(cycle - CYCLES_BEFORE, 0), cycle + CYCLES_AFTER + 1))
    rtl.model.take_log()
    return path


def _stored_bytes(insn: MemInsn, elem_bytes: int) -> np.ndarray:
    """The DRAM byte addresses a STORE writes, row after row."""
    if insn.x_size == 0:
        return np.empty(0, dtype=np.int64)
    starts = (insn.dram_base + np.arange(insn.y_size) * insn.x_stride) * elem_bytes
    return (starts[:, None] + np.arange(insn.x_size * elem_bytes)).ravel()


def _difference(where: Location, ours: dict[Location, bytes],
                theirs: dict[Location, bytes]) -> str:
    """What the instruction wrote at ``where`` on the RTL against the simulator."""
    kind, place = where
    name = f"DRAM byte {place}" if kind == DRAM else f"{MemType(kind).name} row {place}"
    if where not in theirs:
        return f"did not write {name} on the RTL (the functional simulator did)"
    if where not in ours:
        return f"wrote {name} on the RTL (the functional simulator did not)"
    if kind == DRAM:    # the bytes from the first wrong one on that both wrote
        shown = [(DRAM, place + offset) for offset in range(VALUES_SHOWN)]
        shown = [where for where in shown if where in ours and where in theirs]
        got, expected = ([_values(DRAM, side[where])[0] for where in shown]
                         for side in (theirs, ours))
        return (f"wrote DRAM bytes from {place} on as {got} on the RTL, {expected} on the "
                f"functional simulator")
    got, expected = _values(kind, theirs[where]), _values(kind, ours[where])
    lane = int(np.flatnonzero(got != expected)[0])
    lanes = f"lane {lane}" if lane == got.size - 1 else f"lanes {lane}.."
    shown = slice(lane, lane + VALUES_SHOWN)
    return (f"wrote {name} ({lanes}) as {got[shown].tolist()} on the RTL, "
            f"{expected[shown].tolist()} on the functional simulator")


def _values(kind: int, value: bytes) -> np.ndarray:
    """A written row (or byte) as the numbers it holds: int32 accumulator lanes, int8
    inputs, weights and stored bytes, uint32 micro-ops."""
    return np.frombuffer(value, _VALUE_TYPES[kind]).astype(np.int64)


def _count(differing: list[Location], written: set[Location], first: Location) -> str:
    unit = "bytes" if first[0] == DRAM else "rows"
    return f"{len(differing)} of the {len(written)} {unit} it wrote differ"


__all__ = ["decode_log", "locate_first_difference", "rtl_effects", "simulator_effects",
           "trace_window"]
