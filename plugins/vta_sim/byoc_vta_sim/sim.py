"""The accelerator's functional simulator: the living specification of its instruction set.

What this module computes is what the ISA means (docs/vta-isa.md writes it down; the RTL and
the instruction generator are tested against this module, never the other way round). It
models the three modules (load, compute, store), their instruction queues and the four
dependency-token queues, but not time: each instruction executes atomically.

Deterministic schedule. A run repeats rounds: fetch routes instructions in stream order until
the stream ends or the queue of the next instruction is full; then the load, compute and store
modules, in that order, each execute head instructions until their queue is empty or the head
waits for a token. A round in which nothing happens before FINISH is a deadlock, reported with
every blocked instruction and the token queue it waits for. The same stream on the same state
therefore always executes in the same order, even when its tokens leave the order open.

Vectorized micro-op loops. :func:`loop_chunks` (which the stream validator walks loops with
too) turns a GEMM or ALU instruction into index arrays (dst, src, wgt) in execution order, in
chunks of at most ``_CHUNK_UOPS`` micro-ops to bound temporary memory. GEMM accumulation is
order-independent (int32 addition wraps), so each chunk is grouped by weight element with one
matrix product per distinct weight, in floating point, which is exact: a product of int8
vectors is an integer far below the float's mantissa. The products are summed per
accumulator lane with ``np.bincount`` (float64, exact) and added to the accumulator with
int32 wraparound. An ALU chunk runs as one vector operation when that cannot differ from the
sequential semantics (no ACC element written twice and none read after being written);
otherwise it runs micro-op by micro-op, each over its lanes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace

import numpy as np

from byoc.errors import ExecutionError
from byoc_vta_sim.config import DEFAULT_CONFIG, VtaConfig
from byoc_vta_sim.isa import (
    QUEUE_NAMES,
    TOKEN_QUEUES,
    AluInsn,
    AluOp,
    FinishInsn,
    GemmInsn,
    Insn,
    IsaError,
    MemInsn,
    MemType,
    Module,
    decode_insn,
    decode_stream,
    encode_insn,
    encode_stream,
    expand_loop,
    module_of,
    uop_fields,
)
from byoc_vta_sim.requant import PARAM_ELEMENTS, mulshr, store_requantize
from byoc_vta_sim.schedule import RoundSchedule, Stalled

COUNTER_HELP = {
    "gemm_uops": "micro-ops the GEMM unit ran (one block matrix product or reset each), "
                 "micro-ops",
    "alu_uops": "micro-ops the ALU ran (one vector operation on an accumulator row each), "
                "micro-ops",
    "insns_load": "instructions the load module ran, instructions",
    "insns_compute": "instructions the compute module ran (FINISH included), instructions",
    "insns_store": "instructions the store module ran, instructions",
    "bytes_loaded_uop": "micro-op kernels loaded from DRAM, bytes",
    "bytes_loaded_wgt": "weights loaded from DRAM, bytes",
    "bytes_loaded_inp": "input activations loaded from DRAM (padding not counted), bytes",
    "bytes_loaded_acc": "accumulator values (biases, requantization parameters) loaded from "
                        "DRAM, bytes",
    "bytes_stored_out": "int8 results stored to DRAM, bytes",
}
"""What each counter of :class:`Simulator` (and of the RTL, under the same names) counts."""
COUNTER_NAMES = tuple(COUNTER_HELP)


# Micro-ops expanded at once; bounds the temporaries of one GEMM chunk to about 60 MB (some
# 450 bytes per micro-op: its lanes' inputs and products, their accumulator lane indices and
# float64 sums, besides its three indices).
_CHUNK_UOPS = 1 << 17

_INT32_MIN = -(1 << 31)


# Micro-ops one run may execute (about half a minute of simulation). A stream whose loop
# fields ask for more (a GEMM of 16383 x 16383 iterations over 8192 micro-ops is 2^41) is a
# runaway, refused before it starts rather than left to run for hours.
MAX_UOPS = 1 << 30


class SimulationError(ExecutionError):
    """An instruction stream the accelerator cannot run: malformed, out of range, deadlocked
    or ended wrongly. The message names the instruction and its module."""


def last_writes(dst: np.ndarray, *indices: np.ndarray) -> tuple[np.ndarray, ...]:
    """The micro-ops (their ``dst`` and other index arrays) that write each destination last,
    in execution order: those whose products an overwriting GEMM keeps."""
    _, from_end = np.unique(dst[::-1], return_index=True)
    last = len(dst) - 1 - from_end
    return (dst[last], *(index[last] for index in indices))


def describe(insn: Insn) -> str:
    """One line naming what ``insn`` does, for error messages."""
    if isinstance(insn, MemInsn):
        kind = f"{insn.opcode.name} {insn.memory_type.name}"
        if insn.x_size == 0:
            return f"{kind} (tokens only)"
        arrow = "->" if insn.store else "<-"
        text = (f"{kind} sram {insn.sram_base} {arrow} dram {insn.dram_base} "
                f"({insn.y_size}x{insn.x_size}, stride {insn.x_stride}")
        pads = (insn.y_pad_0, insn.y_pad_1, insn.x_pad_0, insn.x_pad_1)
        if any(pads):
            text += ", pad " + "/".join(map(str, pads))
        if insn.store and insn.requantize:
            text += f", requantized by acc {insn.param_base}"
        return text + ")"
    if isinstance(insn, (GemmInsn, AluInsn)):
        name = "GEMM" if isinstance(insn, GemmInsn) else f"ALU {insn.alu_op.name}"
        text = f"{name} uops {insn.uop_bgn}..{insn.uop_end} x {insn.iter_out} x {insn.iter_in}"
        if isinstance(insn, AluInsn) and insn.use_imm and not insn.reset:
            text += f" imm {insn.imm}"
        overwrite = isinstance(insn, GemmInsn) and insn.overwrite and not insn.reset
        return text + (" reset" if insn.reset else " overwrite" if overwrite else "")
    return "FINISH"


def _name(index: int, insn: Insn) -> str:
    return f"instruction {index} ({describe(insn)}) in the {module_of(insn).label} module"


def _wrap_int32(values: np.ndarray) -> np.ndarray:
    """int64 values reduced modulo 2^32 into int32."""
    return (((values - _INT32_MIN) & 0xFFFFFFFF) + _INT32_MIN).astype(np.int32)


def alu_apply(op: AluOp, a: np.ndarray, b: np.ndarray | int) -> np.ndarray:
    """``op`` applied lane by lane to int32 accumulator values ``a`` and operand ``b``
    (int32 lanes, or the sign-extended immediate), as int32."""
    a = np.asarray(a, dtype=np.int64)
    b = np.asarray(b, dtype=np.int64)
    if op is AluOp.MIN:
        return np.minimum(a, b).astype(np.int32)
    if op is AluOp.MAX:
        return np.maximum(a, b).astype(np.int32)
    if op is AluOp.ADD:
        return _wrap_int32(a + b)
    if op is AluOp.SHR:
        right = a >> np.minimum(np.maximum(b, 0), 31)
        left = _wrap_int32(a << np.minimum(np.maximum(-b, 0), 31))
        return np.where(b >= 0, right, left).astype(np.int32)
    return mulshr(a, b)


class Simulator:
    """One accelerator: its on-chip buffers (kept across runs, like hardware) and counters."""

    def __init__(self, config: VtaConfig = DEFAULT_CONFIG, *, max_uops: int = MAX_UOPS):
        self.config = config
        self.max_uops = max_uops
        self.uop = np.zeros(config.uop_depth, dtype="<u4")
        self.inp = np.zeros((config.inp_depth, config.batch, config.block_in), dtype=np.int8)
        self.wgt = np.zeros((config.wgt_depth, config.block_out, config.block_in),
                            dtype=np.int8)
        self.acc = np.zeros((config.acc_depth, config.batch, config.block_out), dtype="<i4")
        self.counters: dict[str, int] = dict.fromkeys(COUNTER_NAMES, 0)
        # Each buffer as rows of bytes, one row per element: the DMA's view of it.
        self._buffer_bytes = {
            MemType.UOP: self.uop.view(np.uint8).reshape(config.uop_depth, -1),
            MemType.WGT: self.wgt.view(np.uint8).reshape(config.wgt_depth, -1),
            MemType.INP: self.inp.view(np.uint8).reshape(config.inp_depth, -1),
            MemType.ACC: self.acc.view(np.uint8).reshape(config.acc_depth, -1),
        }
        # Block products below 2^24 are exact in float32.
        exact_f32 = (1 << 14) * config.block_in <= 1 << 24
        self._product_dtype = np.float32 if exact_f32 else np.float64

    # -- running a stream ------------------------------------------------------------------

    def run(self, stream: bytes | Sequence[Insn], dram: np.ndarray, *,
            observer: Callable[[int, Insn], None] | None = None) -> dict[str, int]:
        """Run the stream to FINISH against ``dram`` (1-D uint8, modified in place); return
        this run's counters (also added to :attr:`counters`). ``observer(index, insn)``, when
        given, is called after each instruction, in the order they execute, when the buffers
        and ``dram`` hold its effect."""
        insns = _instructions(stream)
        _check_dram(dram)
        for index, insn in enumerate(insns):
            self._check_insn(index, insn, len(insns))
        check_work(insns, self.max_uops, "simulator")
        counters = dict.fromkeys(COUNTER_NAMES, 0)
        try:
            self._schedule(insns, dram, counters, observer)
        finally:
            for name, value in counters.items():
                self.counters[name] += value
        return counters

    def _schedule(self, insns: list[Insn], dram: np.ndarray, counters: dict[str, int],
                  observer: Callable[[int, Insn], None] | None) -> None:
        schedule = RoundSchedule(insns, self.config.insn_queue_depth)
        try:
            for index in schedule:
                insn = insns[index]
                self._execute(index, insn, dram, counters)
                counters[f"insns_{schedule.modules[index].label}"] += 1
                if observer is not None:
                    observer(index, insn)
                if isinstance(insn, FinishInsn):
                    _check_nothing_pending(index, insns, schedule.pending())
        except Stalled:
            raise _stall_error(insns, schedule) from None

    def _check_insn(self, index: int, insn: Insn, count: int) -> None:
        """Refuse what no schedule could run."""
        def fail(problem: str) -> SimulationError:
            return SimulationError(f"vta_sim: {_name(index, insn)}: {problem}")

        if isinstance(insn, FinishInsn) and index != count - 1:
            raise fail(f"FINISH must be the stream's last instruction, but {count - 1 - index} "
                       f"more follow it; end the stream at FINISH")
        module = module_of(insn)
        for flag, queue in TOKEN_QUEUES[module].items():
            if not getattr(insn, flag):
                continue
            if queue is None:
                raise fail(f"{flag} must be 0 for an instruction of the {module.label} module "
                           f"(there is no token queue in that direction); clear it")
            if isinstance(insn, FinishInsn) and flag.startswith("pop"):
                raise fail("FINISH may not pop tokens; make the instruction before it pop "
                           "them instead")
        if isinstance(insn, MemInsn):
            if not insn.store and insn.memory_type is MemType.OUT:
                raise fail("LOAD cannot read memory type OUT (there is no OUT buffer); load "
                           "INP, WGT, ACC or UOP")
            if insn.store and insn.memory_type is not MemType.OUT:
                raise fail(f"STORE writes memory type OUT only, not {insn.memory_type.name}")
            if insn.store and insn.param_base and not insn.requantize:
                raise fail(f"param_base={insn.param_base} names requantization parameters, "
                           f"but requantize is 0; set requantize or clear param_base")
        if isinstance(insn, (GemmInsn, AluInsn)):
            if insn.uop_end > self.config.uop_depth:
                raise fail(f"uop_end={insn.uop_end} is past the UOP buffer's "
                           f"{self.config.uop_depth} micro-ops (uop_depth)")
            if insn.uop_bgn > insn.uop_end:
                raise fail(f"uop_bgn={insn.uop_bgn} is after uop_end={insn.uop_end}; the "
                           f"micro-op range is [uop_bgn, uop_end)")

    def _execute(self, index: int, insn: Insn, dram: np.ndarray,
                 counters: dict[str, int]) -> None:
        if isinstance(insn, MemInsn):
            if insn.store:
                self._store(index, insn, dram, counters)
            else:
                self._load(index, insn, dram, counters)
        elif isinstance(insn, GemmInsn):
            self._gemm(index, insn, counters)
        elif isinstance(insn, AluInsn):
            self._alu(index, insn, counters)

    # -- LOAD and STORE ----------------------------------------------------------------------

    def _load(self, index: int, insn: MemInsn, dram: np.ndarray,
              counters: dict[str, int]) -> None:
        if insn.x_size == 0:
            return
        buffer = self._buffer_bytes[insn.memory_type]
        elem_bytes = buffer.shape[1]
        self._check_buffer(index, insn, insn.memory_type, insn.sram_base, insn.sram_elements,
                           "writes")
        rows = _dram_rows(index, insn, dram, elem_bytes, "reads")
        region = buffer[insn.sram_base:insn.sram_base + insn.sram_elements].reshape(
            insn.y_pad_0 + insn.y_size + insn.y_pad_1, insn.row_width, elem_bytes)
        region[...] = 0
        region[insn.y_pad_0:insn.y_pad_0 + insn.y_size, insn.x_pad_0:insn.x_pad_0 + insn.x_size
               ] = rows.reshape(insn.y_size, insn.x_size, elem_bytes)
        counters[f"bytes_loaded_{insn.memory_type.name.lower()}"] += rows.size

    def _store(self, index: int, insn: MemInsn, dram: np.ndarray,
               counters: dict[str, int]) -> None:
        if insn.x_size == 0:
            return
        count = insn.y_size * insn.x_size
        self._check_buffer(index, insn, MemType.ACC, insn.sram_base, count, "reads")
        acc = self.acc[insn.sram_base:insn.sram_base + count]
        if insn.requantize:
            self._check_buffer(index, insn, MemType.ACC, insn.param_base, PARAM_ELEMENTS,
                               "reads requantization parameters from")
            params = self.acc[insn.param_base:insn.param_base + PARAM_ELEMENTS]
            low_bytes = store_requantize(acc, params[:, None]).view(np.uint8)
        else:
            low_bytes = (acc & 0xFF).astype(np.uint8)
        values = low_bytes.reshape(insn.y_size, insn.x_size * self.config.out_elem_bytes)
        rows = _dram_rows(index, insn, dram, self.config.out_elem_bytes, "writes")
        if insn.x_stride >= insn.x_size:
            rows[...] = values
        else:                                   # overlapping rows: later rows win
            for y in range(insn.y_size):
                rows[y] = values[y]
        counters["bytes_stored_out"] += values.size

    def _check_buffer(self, index: int, insn: Insn, memory_type: MemType, first: int,
                      count: int, verb: str) -> None:
        depth = len(self._buffer_bytes[memory_type])
        if first + count > depth:
            raise SimulationError(
                f"vta_sim: {_name(index, insn)} {verb} {memory_type.name} elements {first}.."
                f"{first + count - 1}, but the {memory_type.name} buffer has {depth} elements "
                f"({memory_type.name.lower()}_depth); make the tile smaller or fix sram_base")

    # -- GEMM and ALU ------------------------------------------------------------------------

    def _gemm(self, index: int, insn: GemmInsn, counters: dict[str, int]) -> None:
        counters["gemm_uops"] += insn.iter_out * insn.iter_in * (insn.uop_end - insn.uop_bgn)
        self._check_indices(index, insn, ("dst",) if insn.reset else ("dst", "src", "wgt"))
        for _, dst, src, wgt in loop_chunks(insn, self.uop, _CHUNK_UOPS):
            if insn.reset:
                self.acc[dst] = 0
                continue
            if insn.overwrite:
                dst, src, wgt = last_writes(dst, src, wgt)
                self.acc[dst] = 0
            self._accumulate(dst, src, wgt)

    def _accumulate(self, dst: np.ndarray, src: np.ndarray, wgt: np.ndarray) -> None:
        """acc[dst[m]] += inp[src[m]] @ wgt[wgt[m]].T for every micro-op m (any order)."""
        cfg = self.config
        order = np.argsort(wgt, kind="stable")
        dst, src, wgt = dst[order], src[order], wgt[order]
        inputs = self.inp[src].astype(self._product_dtype).reshape(-1, cfg.block_in)
        products = np.empty((len(dst) * cfg.batch, cfg.block_out), dtype=self._product_dtype)
        starts = np.flatnonzero(np.r_[True, wgt[1:] != wgt[:-1]])
        ends = np.r_[starts[1:], len(wgt)]
        for start, end, w in zip((starts * cfg.batch).tolist(), (ends * cfg.batch).tolist(),
                                 wgt[starts].tolist()):
            np.matmul(inputs[start:end], self.wgt[w].T.astype(self._product_dtype),
                      out=products[start:end])
        lanes = cfg.batch * cfg.block_out
        low, high = int(dst.min()), int(dst.max())
        lane_index = ((dst - low)[:, None] * lanes + np.arange(lanes)).ravel()
        sums = np.bincount(lane_index, weights=products.ravel(),
                           minlength=(high - low + 1) * lanes)
        target = self.acc[low:high + 1].reshape(-1)
        target[...] = _wrap_int32(target.astype(np.int64) + sums.astype(np.int64))

    def _alu(self, index: int, insn: AluInsn, counters: dict[str, int]) -> None:
        counters["alu_uops"] += insn.iter_out * insn.iter_in * (insn.uop_end - insn.uop_bgn)
        reads_src = not insn.reset and not insn.use_imm
        self._check_indices(index, insn, ("dst", "src") if reads_src else ("dst",))
        acc = self.acc
        for _, dst, src, _ in loop_chunks(insn, self.uop, _CHUNK_UOPS):
            if insn.reset:
                acc[dst] = 0
                continue
            distinct = np.unique(dst).size == dst.size
            if distinct and (insn.use_imm or not np.isin(src, dst).any()):
                acc[dst] = alu_apply(insn.alu_op, acc[dst], insn.imm if insn.use_imm else acc[src])
                continue
            for d, s in zip(dst.tolist(), src.tolist()):
                acc[d] = alu_apply(insn.alu_op, acc[d], insn.imm if insn.use_imm else acc[s])

    def _check_indices(self, index: int, insn: GemmInsn | AluInsn,
                       used: tuple[str, ...]) -> None:
        """Refuse an instruction whose loop reaches past a buffer, naming the first micro-op
        that does. Factors are unsigned, so the last iteration reaches furthest."""
        if insn.iter_out == 0 or insn.iter_in == 0 or insn.uop_end == insn.uop_bgn:
            return
        gemm = isinstance(insn, GemmInsn)
        targets = {"dst": ("ACC", self.config.acc_depth, "writes"),
                   "src": ("INP", self.config.inp_depth, "reads") if gemm
                   else ("ACC", self.config.acc_depth, "reads"),
                   "wgt": ("WGT", self.config.wgt_depth, "reads")}
        bases = dict(zip(("dst", "src", "wgt"), uop_fields(self.uop[insn.uop_bgn:insn.uop_end])))
        for field in used:
            factor_out = getattr(insn, f"{field}_factor_out")
            factor_in = getattr(insn, f"{field}_factor_in")
            reach = (int(bases[field].max()) + (insn.iter_out - 1) * factor_out
                     + (insn.iter_in - 1) * factor_in)
            buffer, depth, verb = targets[field]
            if reach < depth:
                continue
            position, value = _first_at_least(loop_chunks(insn, self.uop, _CHUNK_UOPS),
                                              field, depth)
            i, j, u = np.unravel_index(position, (insn.iter_out, insn.iter_in,
                                                  insn.uop_end - insn.uop_bgn))
            raise SimulationError(
                f"vta_sim: {_name(index, insn)}: micro-op {insn.uop_bgn + u} at loop "
                f"iteration i={i}, j={j} {verb} {buffer} element {value}, but the {buffer} "
                f"buffer has {depth} elements ({buffer.lower()}_depth); fix the micro-op's "
                f"{field} index or the instruction's {field} factors")


def loop_chunks(insn: GemmInsn | AluInsn, uop_buffer: np.ndarray, max_uops: int
                ) -> Iterator[tuple[int, np.ndarray, np.ndarray, np.ndarray]]:
    """``expand_loop(insn, uop_buffer)`` in consecutive pieces of at most ``max_uops``
    micro-ops (but at least one pass over the micro-op range), in execution order: (position
    of the piece's first micro-op in the instruction, dst, src, wgt). A piece is whole loop
    rows (``iter_in`` passes) when a row fits, else part of one row."""
    uops = insn.uop_end - insn.uop_bgn
    if uops <= 0 or insn.iter_out == 0 or insn.iter_in == 0:
        return
    step_in = min(insn.iter_in, max(1, max_uops // uops))
    step_out = max(1, max_uops // (uops * insn.iter_in)) if step_in == insn.iter_in else 1
    gemm = isinstance(insn, GemmInsn)
    for i in range(0, insn.iter_out, step_out):
        for j in range(0, insn.iter_in, step_in):
            part = replace(insn, iter_out=min(step_out, insn.iter_out - i),
                           iter_in=min(step_in, insn.iter_in - j))
            dst, src, wgt = expand_loop(part, uop_buffer)
            if gemm:
                wgt = wgt + i * insn.wgt_factor_out + j * insn.wgt_factor_in
            yield ((i * insn.iter_in + j) * uops,
                   dst + i * insn.dst_factor_out + j * insn.dst_factor_in,
                   src + i * insn.src_factor_out + j * insn.src_factor_in, wgt)


def loop_uops(insn: Insn) -> int:
    """Micro-ops a GEMM or ALU instruction executes (0 for the others)."""
    if isinstance(insn, (GemmInsn, AluInsn)):
        return insn.iter_out * insn.iter_in * max(insn.uop_end - insn.uop_bgn, 0)
    return 0


def check_work(insns: Sequence[Insn], max_uops: int, machine: str) -> None:
    """Refuse a stream whose micro-ops add up to more than ``max_uops``, naming the
    instruction that crosses the budget."""
    total = 0
    for index, insn in enumerate(insns):
        total += loop_uops(insn)
        if total > max_uops:
            raise SimulationError(
                f"vta_sim: {_name(index, insn)} brings the stream to {total:,} micro-ops, past "
                f"the {machine}'s budget of {max_uops:,} per run (max_uops); a runaway loop? "
                f"Check its iter_out, iter_in and micro-op range, or raise max_uops")


def _first_at_least(chunks: Iterator[tuple[int, np.ndarray, np.ndarray, np.ndarray]],
                    field: str, limit: int) -> tuple[int, int]:
    """(execution position, value) of the first micro-op whose ``field`` index is at least
    ``limit``."""
    column = ("dst", "src", "wgt").index(field)
    for chunk in chunks:
        values = chunk[1 + column]
        hits = np.flatnonzero(values >= limit)
        if hits.size:
            return chunk[0] + int(hits[0]), int(values[hits[0]])
    raise AssertionError("no index reaches the limit")


def _dram_rows(index: int, insn: MemInsn, dram: np.ndarray, elem_bytes: int,
               verb: str) -> np.ndarray:
    """The DRAM bytes of a LOAD's or STORE's rows as a (y_size, x_size * elem_bytes) view."""
    row_bytes = insn.x_size * elem_bytes
    start = insn.dram_base * elem_bytes
    if insn.y_size == 0:
        return np.empty((0, row_bytes), dtype=np.uint8)
    end = start + (insn.y_size - 1) * insn.x_stride * elem_bytes + row_bytes
    if end > dram.size:
        raise SimulationError(
            f"vta_sim: {_name(index, insn)} {verb} DRAM bytes {start}..{end - 1}, but the DRAM "
            f"image has {dram.size} bytes; fix dram_base, y_size or x_stride, or allocate "
            f"a larger DRAM image")
    step = dram.strides[0]
    return np.lib.stride_tricks.as_strided(
        dram[start:], shape=(insn.y_size, row_bytes),
        strides=(insn.x_stride * elem_bytes * step, step), writeable=verb == "writes")


def _instructions(stream: bytes | Sequence[Insn]) -> list[Insn]:
    if isinstance(stream, (bytes, bytearray, memoryview)):
        try:
            return decode_stream(bytes(stream))
        except IsaError as err:
            raise SimulationError(f"vta_sim: cannot decode the instruction stream: {err}"
                                  ) from None
    return _encoded_instructions(stream)[0]


def _encoded_instructions(stream: bytes | Sequence[Insn]) -> tuple[list[Insn], bytes]:
    """The stream as instructions and as the bytes encoding them (what the RTL fetches), each
    instruction encoded once. A stream given as bytes is decoded and encoded again, so the
    bytes hold exactly what the instructions mean."""
    if isinstance(stream, (bytes, bytearray, memoryview)):
        insns = _instructions(stream)
        return insns, encode_stream(insns)
    # Round-tripping through the encoding checks every field's range and turns plain ints
    # into the ISA's enums, so that a stream means the same as objects and as bytes.
    insns, codes = [], []
    for index, insn in enumerate(stream):
        try:
            codes.append(encode_insn(insn))
            insns.append(decode_insn(codes[-1], index))
        except (IsaError, AttributeError, TypeError) as err:
            raise SimulationError(f"vta_sim: instruction {index} cannot be encoded: {err}; "
                                  f"every instruction must fit the ISA's fields") from None
    return insns, b"".join(codes)


def _check_dram(dram: np.ndarray) -> None:
    if not (isinstance(dram, np.ndarray) and dram.dtype == np.uint8 and dram.ndim == 1
            and dram.flags.writeable):
        described = (f"{dram.dtype} array of shape {dram.shape}" if isinstance(dram, np.ndarray)
                     else type(dram).__name__)
        raise SimulationError(f"vta_sim: the DRAM image must be a writeable 1-D numpy uint8 "
                              f"array, not a {described}")


def _check_nothing_pending(finish: int, insns: list[Insn], pending: list[int]) -> None:
    if pending:
        names = "; ".join(_name(index, insns[index]) for index in pending)
        raise SimulationError(
            f"vta_sim: FINISH (instruction {finish}) ran while {len(pending)} instruction(s) "
            f"had not: {names}. Make FINISH wait for them: the compute instruction before "
            f"FINISH must pop the token that the last of them pushes")


def _stall_error(insns: list[Insn], schedule: RoundSchedule) -> SimulationError:
    queues, fetched, depth = schedule.queues, schedule.fetched, schedule.queue_depth
    if fetched == len(insns) and not any(queues.values()):
        return SimulationError(
            f"vta_sim: the stream has no FINISH: all {len(insns)} instructions ran but the "
            f"accelerator never signals done; end the stream with FINISH, made to wait (by a "
            f"token) for the last STORE")
    lines = []
    for module in Module:
        if not queues[module]:
            lines.append(f"the {module.label} module is empty")
            continue
        head = queues[module][0]
        missing = [QUEUE_NAMES[q] for q in schedule.waiting_for(head)]
        lines.append(f"{_name(head, insns[head])} waits for a {' and a '.join(missing)} token")
    if fetched < len(insns):
        lines.append(f"fetch waits at {_name(fetched, insns[fetched])} because that queue is "
                     f"full ({depth} instructions, insn_queue_depth)")
    else:
        lines.append("fetch has reached the end of the stream")
    return SimulationError(
        "vta_sim: deadlock before FINISH: " + "; ".join(lines) + ". Every pop needs an "
        "earlier push on the same token queue; check the dependency flags of these "
        "instructions and of those before them")


__all__ = [
    "COUNTER_HELP",
    "COUNTER_NAMES",
    "MAX_UOPS",
    "SimulationError",
    "Simulator",
    "alu_apply",
    "check_work",
    "describe",
    "loop_chunks",
]
