"""Static checks of an instruction stream (docs/vta-isa.md, "Stream rules").

:func:`validate_stream` finds without running the stream what would otherwise surface as a
simulator error in the middle of a layer, or not at all: the hazard rule is the compiler's
to keep, the accelerator does not check it. The instruction generator runs it on every
stream it emits; a :class:`StreamError` names the instruction (its index in the stream and
its mnemonic), says what is wrong and what to change.
"""

from __future__ import annotations

from collections import Counter, deque
from typing import Sequence

import numpy as np

from byoc_vta_sim.config import DEFAULT_CONFIG, VtaConfig
from byoc_vta_sim.disasm import mnemonic
from byoc_vta_sim.isa import (
    DEP_FLAGS,
    QUEUE_NAMES,
    TOKEN_QUEUES,
    AluInsn,
    FinishInsn,
    GemmInsn,
    Insn,
    IsaError,
    MemInsn,
    MemType,
    Module,
    module_of,
    token_moves,
)
from byoc_vta_sim.requant import PARAM_ELEMENTS
from byoc_vta_sim.schedule import RoundSchedule, Stalled
from byoc_vta_sim.sim import loop_chunks

BUFFER_DEPTH = {MemType.UOP: "uop_depth", MemType.WGT: "wgt_depth", MemType.INP: "inp_depth",
                MemType.ACC: "acc_depth"}
"""The VtaConfig depth of the buffer a LOAD of each memory type writes."""

HAZARD_DISTANCE = 2
"""A micro-op may not write, or an ALU micro-op read, an ACC element written by any of the
this many preceding micro-ops."""

# Micro-ops expanded at once, so that a huge loop nest costs time, not memory. Eight times
# the simulator's chunk for the same peak of about 60 MB: the checks hold some 64 bytes per
# micro-op (its three indices and a few masks), the simulator some 450 (its lanes' values).
_CHUNK_UOPS = 1 << 20


class StreamError(IsaError):
    """An instruction stream that breaks a rule of docs/vta-isa.md ("Stream rules")."""


def elem_bytes(config: VtaConfig, memory_type: MemType) -> int:
    """Bytes of one DRAM element of ``memory_type``."""
    return {MemType.UOP: config.uop_elem_bytes, MemType.WGT: config.wgt_elem_bytes,
            MemType.INP: config.inp_elem_bytes, MemType.ACC: config.acc_elem_bytes,
            MemType.OUT: config.out_elem_bytes}[memory_type]


def validate_stream(insns: Sequence[Insn], config: VtaConfig = DEFAULT_CONFIG,
                    dram: np.ndarray | None = None) -> None:
    """Check ``insns`` against every stream rule; raise StreamError at the first broken one.

    Without ``dram`` the checks are those the instructions alone decide: dependency flags
    legal for the instruction's module, FINISH not popping and exactly once at the end,
    LOAD/STORE regions inside their buffers (no LOAD of OUT, STORE only of OUT and without
    padding), micro-op ranges inside the UOP buffer, every token queue balanced, no deadlock
    under the simulator's schedule, and FINISH ordered by tokens after the last LOAD and
    STORE. With ``dram`` (the 1-D uint8 DRAM image the stream will run on) also: every
    LOAD/STORE's DRAM rows inside it, and, following the UOP buffer through the LOAD UOPs,
    every micro-op's indices inside their buffers, run only after being loaded, and the
    accumulator hazard rule.
    """
    insns = list(insns)
    for index, insn in enumerate(insns):
        _check_flags(index, insn)
        _check_buffers(index, insn, config)
    _check_finish(insns)
    _check_token_balance(insns)
    _check_schedule(insns, config)
    if dram is not None:
        _check_memory(insns, config, _dram_image(dram))


def _where(index: int, insn: Insn) -> str:
    return f"instruction {index} ({mnemonic(insn)})"


def _count(n: int, what: str) -> str:
    return f"{n} {what}{'' if n == 1 else 'es' if what.endswith('sh') else 's'}"


def _queue(name: str) -> str:
    return f"{QUEUE_NAMES[name]} ({name})"


# -- instructions one by one ---------------------------------------------------------------


def _check_flags(index: int, insn: Insn) -> None:
    module = module_of(insn)
    table = TOKEN_QUEUES[module]
    for flag in DEP_FLAGS:
        if getattr(insn, flag) and table[flag] is None:
            side = "previous" if flag.endswith("prev") else "next"
            usable = ", ".join(f"{f} = {table[f]}" for f in DEP_FLAGS if table[f])
            raise StreamError(
                f"{_where(index, insn)}: {flag} must be 0 in the {module.name.lower()} "
                f"module, which has no {side} module; clear it (this module's flags: {usable})")
    if isinstance(insn, FinishInsn) and (insn.pop_prev or insn.pop_next):
        raise StreamError(
            f"{_where(index, insn)}: FINISH may not pop tokens; clear its pop flags and let "
            f"the compute instruction before it pop instead (a LOAD ACC with x_size=0 can "
            f"carry the pop)")


def _check_buffers(index: int, insn: Insn, config: VtaConfig) -> None:
    where = _where(index, insn)
    if isinstance(insn, MemInsn) and not insn.store:
        if insn.memory_type is MemType.OUT:
            raise StreamError(f"{where}: LOAD cannot write OUT, which is not an on-chip buffer "
                              f"(only STORE writes OUT elements, to DRAM); load UOP, WGT, INP "
                              f"or ACC")
        if insn.requantize or insn.param_base:
            raise StreamError(f"{where}: requantize and param_base are STORE fields (a LOAD has "
                              f"its pads in those bits); clear them")
        depth = getattr(config, BUFFER_DEPTH[insn.memory_type])
        end = insn.sram_base + insn.sram_elements
        if insn.sram_elements and end > depth:
            raise StreamError(
                f"{where}: writes {insn.memory_type.name} buffer elements {insn.sram_base}.."
                f"{end - 1} ({insn.y_pad_0}+{insn.y_size}+{insn.y_pad_1} rows of "
                f"{insn.row_width}), beyond the buffer's {depth} elements; lower sram_base or "
                f"split the load")
    elif isinstance(insn, MemInsn):
        if insn.memory_type is not MemType.OUT:
            raise StreamError(f"{where}: STORE writes OUT elements (a byte per ACC lane), so "
                              f"its memory_type must be OUT")
        pads = {f: getattr(insn, f) for f in ("y_pad_0", "y_pad_1", "x_pad_0", "x_pad_1")}
        if any(pads.values()):
            raise StreamError(f"{where}: STORE has no padding, but "
                              f"{', '.join(f'{k}={v}' for k, v in pads.items() if v)}; set the "
                              f"pads to 0")
        end = insn.sram_base + insn.sram_elements
        if insn.sram_elements and end > config.acc_depth:
            raise StreamError(f"{where}: reads ACC elements {insn.sram_base}..{end - 1} "
                              f"({_count(insn.y_size, 'row')} of {insn.x_size}), beyond the ACC "
                              f"buffer's {config.acc_depth} elements; lower sram_base or split "
                              f"the store")
        if insn.requantize and insn.param_base + PARAM_ELEMENTS > config.acc_depth:
            raise StreamError(f"{where}: reads its requantization parameters from ACC elements "
                              f"{insn.param_base}..{insn.param_base + PARAM_ELEMENTS - 1}, "
                              f"beyond the ACC buffer's {config.acc_depth} elements; lower "
                              f"param_base")
        if insn.param_base and not insn.requantize:
            raise StreamError(f"{where}: param_base={insn.param_base} names requantization "
                              f"parameters, but requantize is 0; set requantize or clear "
                              f"param_base")
    elif isinstance(insn, (GemmInsn, AluInsn)):
        if insn.uop_bgn > insn.uop_end:
            raise StreamError(f"{where}: uop_bgn={insn.uop_bgn} is after uop_end="
                              f"{insn.uop_end}; the micro-ops run are [uop_bgn, uop_end)")
        if insn.uop_end > config.uop_depth:
            raise StreamError(f"{where}: uop_end={insn.uop_end} is beyond the UOP buffer's "
                              f"{config.uop_depth} micro-ops")


def _check_finish(insns: list[Insn]) -> None:
    finishes = [i for i, insn in enumerate(insns) if isinstance(insn, FinishInsn)]
    if not finishes:
        raise StreamError(f"the stream has no FINISH (it has {len(insns)} instructions); end "
                          f"it with exactly one FINISH")
    if finishes[0] != len(insns) - 1:
        raise StreamError(f"{_where(finishes[0], insns[finishes[0]])}: FINISH ends the run but "
                          f"is not the last of the stream's {len(insns)} instructions; a stream "
                          f"has exactly one FINISH, at its end")


# -- tokens ---------------------------------------------------------------------------------


def _check_token_balance(insns: list[Insn]) -> None:
    pushes: Counter[str] = Counter()
    pops: Counter[str] = Counter()
    last: dict[tuple[str, str], int] = {}
    for index, insn in enumerate(insns):
        popped, pushed = token_moves(insn)
        for queue in popped:
            pops[queue] += 1
            last["pop", queue] = index
        for queue in pushed:
            pushes[queue] += 1
            last["push", queue] = index
    for queue in QUEUE_NAMES:
        if pushes[queue] == pops[queue]:
            continue
        surplus = "push" if pushes[queue] > pops[queue] else "pop"
        index = last[surplus, queue]
        raise StreamError(
            f"the {_queue(queue)} token queue is unbalanced: {_count(pushes[queue], 'push')} "
            f"and {_count(pops[queue], 'pop')} over the stream (the last {surplus} is "
            f"{_where(index, insns[index])}); every token pushed must be popped exactly once")


def _check_schedule(insns: list[Insn], config: VtaConfig) -> None:
    """Run the tokens alone through the simulator's schedule to find a deadlock, and carry a
    vector clock per token (how many instructions of each module happened before it) to
    check that FINISH comes after the last LOAD and STORE under any schedule."""
    schedule = RoundSchedule(insns, config.insn_queue_depth)
    tokens: dict[str, deque[tuple[int, ...]]] = {q: deque() for q in QUEUE_NAMES}
    clocks = {m: (0,) * len(Module) for m in Module}
    try:
        for index in schedule:
            module = schedule.modules[index]
            popped, pushed = schedule.moves[index]
            clock = clocks[module]
            for q in popped:
                clock = tuple(map(max, clock, tokens[q].popleft()))
            clock = clock[:module] + (clock[module] + 1,) + clock[module + 1:]
            clocks[module] = clock
            for q in pushed:
                tokens[q].append(clock)
            if isinstance(insns[index], FinishInsn):
                _check_finish_waits(insns, schedule.modules, index, clock)
    except Stalled:
        raise _deadlock(insns, schedule, config) from None


def _check_finish_waits(insns: list[Insn], modules: list[Module], finish: int,
                        clock: tuple[int, ...]) -> None:
    carrier = {Module.LOAD: "L2C", Module.STORE: "S2C"}
    for module, queue in carrier.items():
        indices = [i for i, m in enumerate(modules) if m is module]
        if clock[module] < len(indices):
            last = indices[-1]
            raise StreamError(
                f"{_where(last, insns[last])} may still be running when "
                f"{_where(finish, insns[finish])} ends the run: no chain of tokens orders it "
                f"before FINISH. Make it push a {_queue(queue)} token that a compute "
                f"instruction before FINISH pops (FINISH itself may not pop; a LOAD ACC with "
                f"x_size=0 can carry the pop)")


def _deadlock(insns: list[Insn], schedule: RoundSchedule, config: VtaConfig) -> StreamError:
    pending, fetched, modules = schedule.queues, schedule.fetched, schedule.modules
    parts = []
    for module, queue in pending.items():
        name = module.name.lower()
        if not queue:
            parts.append(f"the {name} module has nothing left to run")
            continue
        index = queue[0]
        missing = " and a ".join(_queue(q) for q in schedule.waiting_for(index))
        parts.append(f"the {name} module's next, {_where(index, insns[index])}, waits for a "
                     f"{missing} token")
    if fetched < len(insns):
        parts.append(f"fetch waits at {_where(fetched, insns[fetched])} because the "
                     f"{modules[fetched].name.lower()} module's queue is full "
                     f"(insn_queue_depth={config.insn_queue_depth})")
    return StreamError(
        f"the stream deadlocks before FINISH: {'; '.join(parts)}. Every pop needs a push, "
        f"earlier in the pushing module's order, by an instruction that does not itself wait "
        f"for the popping one")


# -- DRAM, the UOP buffer and the micro-ops ------------------------------------------------------


def _dram_image(dram: np.ndarray) -> np.ndarray:
    if not isinstance(dram, np.ndarray) or dram.dtype != np.uint8 or dram.ndim != 1:
        raise TypeError("dram must be a 1-D numpy uint8 array (the DRAM image)")
    return np.ascontiguousarray(dram)


def _check_memory(insns: list[Insn], config: VtaConfig, dram: np.ndarray) -> None:
    words = dram[:dram.size // 4 * 4].view("<u4")
    uop_buffer = np.zeros(config.uop_depth, np.uint32)
    uop_loaded = np.zeros(config.uop_depth, bool)
    recent = _RecentWrites()
    for index, insn in enumerate(insns):
        if isinstance(insn, MemInsn):
            _check_dram_range(index, insn, config, dram.size)
            if not insn.store and insn.memory_type is MemType.UOP and insn.x_size:
                _load_uops(insn, words, uop_buffer, uop_loaded)
        elif isinstance(insn, (GemmInsn, AluInsn)):
            _check_micro_ops(index, insn, insns, config, uop_buffer, uop_loaded, recent)


def _check_dram_range(index: int, insn: MemInsn, config: VtaConfig, dram_bytes: int) -> None:
    if not insn.x_size or not insn.y_size:
        return
    size = elem_bytes(config, insn.memory_type)
    last = insn.dram_base + (insn.y_size - 1) * insn.x_stride + insn.x_size - 1
    if (last + 1) * size > dram_bytes:
        verb = "writes" if insn.store else "reads"
        raise StreamError(
            f"{_where(index, insn)}: {verb} {insn.memory_type.name} elements "
            f"{insn.dram_base}..{last} of DRAM (bytes up to {(last + 1) * size - 1}, "
            f"{size} bytes per element), beyond the {dram_bytes}-byte DRAM image; check "
            f"dram_base, x_stride and the DRAM layout")


def _load_uops(insn: MemInsn, words: np.ndarray, uop_buffer: np.ndarray,
               uop_loaded: np.ndarray) -> None:
    region = slice(insn.sram_base, insn.sram_base + insn.sram_elements)
    uop_buffer[region] = 0
    uop_loaded[region] = True
    y = np.arange(insn.y_size)[:, None]
    x = np.arange(insn.x_size)[None, :]
    sram = insn.sram_base + (insn.y_pad_0 + y) * insn.row_width + insn.x_pad_0 + x
    uop_buffer[sram] = words[insn.dram_base + y * insn.x_stride + x]


class _RecentWrites:
    """The ACC elements the last HAZARD_DISTANCE micro-ops wrote (-1 before there were any),
    oldest first, and where those micro-ops are (instruction index, position in it)."""

    def __init__(self) -> None:
        self.dst = np.full(HAZARD_DISTANCE, -1, np.int64)
        self.where: list[tuple[int, int] | None] = [None] * HAZARD_DISTANCE

    def advance(self, dst: np.ndarray, index: int, first: int) -> None:
        self.dst = np.concatenate([self.dst, dst[-HAZARD_DISTANCE:]])[-HAZARD_DISTANCE:]
        newest = range(max(0, len(dst) - HAZARD_DISTANCE), len(dst))
        self.where = (self.where + [(index, first + k) for k in newest])[-HAZARD_DISTANCE:]


def _position(insn: GemmInsn | AluInsn, position: int) -> str:
    per_pair = insn.uop_end - insn.uop_bgn
    i, rest = divmod(position, per_pair * insn.iter_in)
    j, u = divmod(rest, per_pair)
    return f"micro-op {position} (i={i}, j={j}, uop {insn.uop_bgn + u})"


def _check_micro_ops(index: int, insn: GemmInsn | AluInsn, insns: list[Insn],
                     config: VtaConfig, uop_buffer: np.ndarray, uop_loaded: np.ndarray,
                     recent: _RecentWrites) -> None:
    where = _where(index, insn)
    if insn.iter_out and insn.iter_in:
        unloaded = np.flatnonzero(~uop_loaded[insn.uop_bgn:insn.uop_end])
        if unloaded.size:
            raise StreamError(f"{where}: runs uop {insn.uop_bgn + int(unloaded[0])}, which no "
                              f"earlier LOAD UOP wrote; load the micro-ops before running them")
    gemm = isinstance(insn, GemmInsn)
    reads_acc = not gemm and not insn.reset and not insn.use_imm
    bounds = [("dst", "ACC", config.acc_depth)]
    if gemm and not insn.reset:
        bounds += [("src", "INP", config.inp_depth), ("wgt", "WGT", config.wgt_depth)]
    elif reads_acc:
        bounds.append(("src", "ACC", config.acc_depth))
    for first, dst, src, wgt in loop_chunks(insn, uop_buffer, _CHUNK_UOPS):
        indices = {"dst": dst, "src": src, "wgt": wgt}
        for role, buffer, depth in bounds:
            beyond = np.flatnonzero(indices[role] >= depth)
            if beyond.size:
                k = int(beyond[0])
                raise StreamError(
                    f"{where}: {_position(insn, first + k)} uses {buffer} element "
                    f"{int(indices[role][k])} as its {role}, beyond the {buffer} buffer's "
                    f"{depth} elements; check the micro-op's {role} index and "
                    f"{role}_factor_out/_in")
        _check_hazards(index, insn, insns, first, dst, src if reads_acc else None, recent)
        recent.advance(dst, index, first)


def _check_hazards(index: int, insn: GemmInsn | AluInsn, insns: list[Insn], first: int,
                   dst: np.ndarray, src: np.ndarray | None, recent: _RecentWrites) -> None:
    written = np.concatenate([recent.dst, dst])
    # earlier[d][k] is the element written d micro-ops before micro-op k of this piece.
    earlier = {d: written[HAZARD_DISTANCE - d:len(written) - d]
               for d in range(1, HAZARD_DISTANCE + 1)}
    clash = np.zeros(len(dst), bool)
    for back in earlier.values():
        clash |= dst == back
        if src is not None:
            clash |= src == back
    if not clash.any():
        return
    k = int(np.flatnonzero(clash)[0])
    writes = any(dst[k] == back[k] for back in earlier.values())
    element = int(dst[k]) if writes else int(src[k])
    distance = next(d for d, back in earlier.items() if back[k] == element)
    position = first + k - distance
    if k - distance >= 0:
        other = f"micro-op {position} of the same instruction"
    else:
        other_index, other_position = recent.where[HAZARD_DISTANCE + k - distance]
        owner = "the same instruction" if other_index == index \
            else _where(other_index, insns[other_index])
        other = f"micro-op {other_position} of {owner}"
    action = "writes" if writes else "reads (src)"
    raise StreamError(
        f"{_where(index, insn)}: {_position(insn, first + k)} {action} ACC element {element}, "
        f"which {other} writes {_count(distance, 'micro-op')} earlier; the "
        f"accelerator does not forward ACC writes to the next {HAZARD_DISTANCE} micro-ops, "
        f"so reorder the micro-ops or the loop nest to put at least {HAZARD_DISTANCE} other "
        f"micro-ops in between")


__all__ = ["BUFFER_DEPTH", "HAZARD_DISTANCE", "StreamError", "elem_bytes", "validate_stream"]
