"""The accelerator's instruction set: instructions, micro-ops, and their binary encoding.

The encoding is VTA's bit for bit (docs/vta-isa.md has the tables): 128-bit instructions
stored as two little-endian 64-bit words, 32-bit micro-ops. Each instruction kind is a small
frozen dataclass; its field table (name, first bit, width, signed) is data, so that encoding,
decoding, range checks and the disassembler all read the same table.

``encode`` refuses a value that does not fit its field, naming the field; ``decode`` refuses
an opcode, memory type or ALU operation the ISA does not define.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import IntEnum
from typing import ClassVar, Iterable, Union

import numpy as np

from byoc.errors import PluginError

INSN_BYTES = 16
UOP_BYTES = 4


class IsaError(PluginError):
    """An instruction or micro-op that cannot be encoded, decoded or executed."""


class Opcode(IntEnum):
    LOAD = 0
    STORE = 1
    GEMM = 2
    FINISH = 3
    ALU = 4


class MemType(IntEnum):
    UOP = 0
    WGT = 1
    INP = 2
    ACC = 3
    OUT = 4


class AluOp(IntEnum):
    """VTA's four ALU operations and the project's extension MULSHR (docs/vta-isa.md)."""

    MIN = 0
    MAX = 1
    ADD = 2
    SHR = 3
    MULSHR = 4


@dataclass(frozen=True)
class Field:
    name: str
    lsb: int
    width: int
    signed: bool = False

    @property
    def lo(self) -> int:
        return -(1 << (self.width - 1)) if self.signed else 0

    @property
    def hi(self) -> int:
        return (1 << (self.width - 1)) - 1 if self.signed else (1 << self.width) - 1


_HEADER = (Field("opcode", 0, 3), Field("pop_prev", 3, 1), Field("pop_next", 4, 1),
           Field("push_prev", 5, 1), Field("push_next", 6, 1))
_LOOP = (Field("uop_bgn", 8, 13), Field("uop_end", 21, 14), Field("iter_out", 35, 14),
         Field("iter_in", 49, 14), Field("dst_factor_out", 64, 11),
         Field("dst_factor_in", 75, 11), Field("src_factor_out", 86, 11),
         Field("src_factor_in", 97, 11))


@dataclass(frozen=True)
class _Insn:
    """Dependency flags every instruction carries (see "Dependency tokens" in the ISA doc)."""

    FIELDS: ClassVar[tuple[Field, ...]] = _HEADER

    pop_prev: int = 0
    pop_next: int = 0
    push_prev: int = 0
    push_next: int = 0

    @property
    def opcode(self) -> Opcode:
        raise NotImplementedError

    def values(self) -> dict[str, int]:
        """Every encoded field's value (enums as ints)."""
        out = {}
        for f in self.FIELDS:
            value = getattr(self, f.name)
            out[f.name] = int(value)
        return out

    def with_deps(self, **flags: int) -> "Insn":
        return replace(self, **flags)


@dataclass(frozen=True)
class MemInsn(_Insn):
    """LOAD or STORE: a 2-D strided DMA between DRAM and one on-chip buffer, with zero
    padding on LOAD."""

    FIELDS: ClassVar[tuple[Field, ...]] = _HEADER + (
        Field("memory_type", 7, 3), Field("sram_base", 10, 16), Field("dram_base", 26, 32),
        Field("y_size", 64, 16), Field("x_size", 80, 16), Field("x_stride", 96, 16),
        Field("y_pad_0", 112, 4), Field("y_pad_1", 116, 4), Field("x_pad_0", 120, 4),
        Field("x_pad_1", 124, 4))

    store: bool = False
    memory_type: MemType = MemType.INP
    sram_base: int = 0
    dram_base: int = 0
    y_size: int = 0
    x_size: int = 0
    x_stride: int = 0
    y_pad_0: int = 0
    y_pad_1: int = 0
    x_pad_0: int = 0
    x_pad_1: int = 0

    @property
    def opcode(self) -> Opcode:
        return Opcode.STORE if self.store else Opcode.LOAD

    @property
    def row_width(self) -> int:
        """Elements per row written to the buffer, padding included."""
        return self.x_pad_0 + self.x_size + self.x_pad_1

    @property
    def sram_elements(self) -> int:
        """Buffer elements a LOAD writes (or a STORE reads)."""
        if self.x_size == 0:
            return 0
        return (self.y_pad_0 + self.y_size + self.y_pad_1) * self.row_width


@dataclass(frozen=True)
class _LoopInsn(_Insn):
    """The loop nest GEMM and ALU share: micro-ops [uop_bgn, uop_end) run for i < iter_out,
    j < iter_in, each index offset by i * factor_out + j * factor_in."""

    reset: int = 0
    uop_bgn: int = 0
    uop_end: int = 0
    iter_out: int = 1
    iter_in: int = 1
    dst_factor_out: int = 0
    dst_factor_in: int = 0
    src_factor_out: int = 0
    src_factor_in: int = 0


@dataclass(frozen=True)
class GemmInsn(_LoopInsn):
    """GEMM: acc[dst] += inp[src] x wgt[wgt]^T (or zero it with reset) over the loop nest."""

    FIELDS: ClassVar[tuple[Field, ...]] = _HEADER + (Field("reset", 7, 1),) + _LOOP + (
        Field("wgt_factor_out", 108, 10), Field("wgt_factor_in", 118, 10))

    wgt_factor_out: int = 0
    wgt_factor_in: int = 0

    @property
    def opcode(self) -> Opcode:
        return Opcode.GEMM


@dataclass(frozen=True)
class AluInsn(_LoopInsn):
    """ALU: acc[dst] = op(acc[dst], imm or acc[src]) over the loop nest."""

    FIELDS: ClassVar[tuple[Field, ...]] = _HEADER + (Field("reset", 7, 1),) + _LOOP + (
        Field("alu_op", 108, 3), Field("use_imm", 111, 1), Field("imm", 112, 16, signed=True))

    alu_op: AluOp = AluOp.ADD
    use_imm: int = 0
    imm: int = 0

    @property
    def opcode(self) -> Opcode:
        return Opcode.ALU


@dataclass(frozen=True)
class FinishInsn(_Insn):
    """FINISH: the end of the stream; raises the done flag."""

    @property
    def opcode(self) -> Opcode:
        return Opcode.FINISH


Insn = Union[MemInsn, GemmInsn, AluInsn, FinishInsn]


@dataclass(frozen=True)
class Uop:
    """A micro-op: base indices into ACC (dst), INP or ACC (src) and WGT (wgt)."""

    FIELDS: ClassVar[tuple[Field, ...]] = (Field("dst", 0, 11), Field("src", 11, 11),
                                           Field("wgt", 22, 10))

    dst: int
    src: int = 0
    wgt: int = 0


# -- modules and token queues ------------------------------------------------------------------


class Module(IntEnum):
    """The three modules, in pipeline order ("prev" and "next" are relative to it)."""

    LOAD = 0
    COMPUTE = 1
    STORE = 2

    @property
    def label(self) -> str:
        """How messages and counters name the module: "load", "compute", "store"."""
        return self.name.lower()


QUEUE_NAMES = {"L2C": "load->compute", "C2L": "compute->load", "C2S": "compute->store",
               "S2C": "store->compute"}
"""The four token queues by short name."""

DEP_FLAGS = ("pop_prev", "pop_next", "push_prev", "push_next")

TOKEN_QUEUES: dict[Module, dict[str, str | None]] = {
    Module.LOAD: {"pop_prev": None, "pop_next": "C2L", "push_prev": None, "push_next": "L2C"},
    Module.COMPUTE: {"pop_prev": "L2C", "pop_next": "S2C", "push_prev": "C2L",
                     "push_next": "C2S"},
    Module.STORE: {"pop_prev": "C2S", "pop_next": None, "push_prev": "S2C", "push_next": None},
}
"""The queue each dependency flag pops or pushes, per module; None where the flag must be 0."""


def module_of(insn: Insn) -> Module:
    """The module fetch routes ``insn`` to: STORE to store, LOAD of INP or WGT to load,
    everything else to compute."""
    if isinstance(insn, MemInsn):
        if insn.store:
            return Module.STORE
        if insn.memory_type in (MemType.INP, MemType.WGT):
            return Module.LOAD
    return Module.COMPUTE


def token_moves(insn: Insn) -> tuple[list[str], list[str]]:
    """The queues ``insn`` pops and pushes. Flags that must be 0 for its module are left
    out (the validator reports them)."""
    table = TOKEN_QUEUES[module_of(insn)]
    pops = [table[f] for f in ("pop_prev", "pop_next") if getattr(insn, f) and table[f]]
    pushes = [table[f] for f in ("push_prev", "push_next") if getattr(insn, f) and table[f]]
    return pops, pushes


# -- encoding -------------------------------------------------------------------------------


def _pack(fields_: Iterable[Field], values: dict[str, int], what: str) -> int:
    word = 0
    for f in fields_:
        value = values[f.name]
        if not f.lo <= value <= f.hi:
            raise IsaError(f"{what}: field {f.name}={value} does not fit in {f.width} "
                           f"{'signed ' if f.signed else ''}bits ({f.lo}..{f.hi})")
        word |= (value & ((1 << f.width) - 1)) << f.lsb
    return word


def _unpack(fields_: Iterable[Field], word: int) -> dict[str, int]:
    out = {}
    for f in fields_:
        value = (word >> f.lsb) & ((1 << f.width) - 1)
        if f.signed and value >> (f.width - 1):
            value -= 1 << f.width
        out[f.name] = value
    return out


def encode_insn(insn: Insn) -> bytes:
    """The 16 bytes of one instruction."""
    values = insn.values()
    values["opcode"] = int(insn.opcode)
    word = _pack(insn.FIELDS, values, f"{insn.opcode.name} instruction")
    return word.to_bytes(INSN_BYTES, "little")


def decode_insn(data: bytes, index: int | None = None) -> Insn:
    """The instruction in 16 bytes; ``index`` (its position in a stream) names it in errors."""
    where = f"instruction {index}" if index is not None else "instruction"
    if len(data) != INSN_BYTES:
        raise IsaError(f"{where}: an instruction is {INSN_BYTES} bytes, not {len(data)}")
    word = int.from_bytes(data, "little")
    opcode = word & 7
    if opcode not in Opcode._value2member_map_:
        raise IsaError(f"{where}: opcode {opcode} is not defined (LOAD=0, STORE=1, GEMM=2, "
                       f"FINISH=3, ALU=4)")
    opcode = Opcode(opcode)
    cls = {Opcode.LOAD: MemInsn, Opcode.STORE: MemInsn, Opcode.GEMM: GemmInsn,
           Opcode.ALU: AluInsn, Opcode.FINISH: FinishInsn}[opcode]
    values = _unpack(cls.FIELDS, word)
    del values["opcode"]
    if cls is MemInsn:
        if values["memory_type"] not in MemType._value2member_map_:
            raise IsaError(f"{where} ({opcode.name}): memory type {values['memory_type']} is "
                           f"not defined (UOP=0, WGT=1, INP=2, ACC=3, OUT=4)")
        values["memory_type"] = MemType(values["memory_type"])
        values["store"] = opcode is Opcode.STORE
    if cls is AluInsn:
        if values["alu_op"] not in AluOp._value2member_map_:
            raise IsaError(f"{where} (ALU): ALU operation {values['alu_op']} is not defined "
                           f"(MIN=0, MAX=1, ADD=2, SHR=3, MULSHR=4; 5..7 are reserved)")
        values["alu_op"] = AluOp(values["alu_op"])
    return cls(**values)


def encode_stream(insns: Iterable[Insn]) -> bytes:
    return b"".join(encode_insn(i) for i in insns)


def decode_stream(data: bytes) -> list[Insn]:
    if len(data) % INSN_BYTES:
        raise IsaError(f"an instruction stream is a whole number of {INSN_BYTES}-byte "
                       f"instructions; this one has {len(data)} bytes")
    return [decode_insn(data[i:i + INSN_BYTES], i // INSN_BYTES)
            for i in range(0, len(data), INSN_BYTES)]


def encode_uops(uops: Iterable[Uop]) -> np.ndarray:
    """Micro-ops as uint32 words (their DRAM image is the little-endian bytes)."""
    words = [_pack(Uop.FIELDS, {"dst": u.dst, "src": u.src, "wgt": u.wgt}, f"micro-op {i}")
             for i, u in enumerate(uops)]
    return np.array(words, dtype="<u4")


def decode_uops(words: np.ndarray) -> list[Uop]:
    return [Uop(**_unpack(Uop.FIELDS, int(w))) for w in np.asarray(words, dtype="<u4")]


def uop_fields(words: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(dst, src, wgt) index arrays of encoded micro-ops, vectorized."""
    words = np.asarray(words, dtype=np.uint32)
    return ((words & 0x7FF).astype(np.int64), ((words >> 11) & 0x7FF).astype(np.int64),
            ((words >> 22) & 0x3FF).astype(np.int64))


def expand_loop(insn: GemmInsn | AluInsn, uop_buffer: np.ndarray
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The absolute (dst, src, wgt) indices of every micro-op ``insn`` executes, in execution
    order (``i < iter_out``, then ``j < iter_in``, then ``u`` from uop_bgn to uop_end), from
    the encoded micro-ops in ``uop_buffer``. ALU instructions give a wgt array of zeros."""
    dst, src, wgt = uop_fields(uop_buffer[insn.uop_bgn:insn.uop_end])
    i = np.arange(insn.iter_out, dtype=np.int64)[:, None, None]
    j = np.arange(insn.iter_in, dtype=np.int64)[None, :, None]
    shape = (insn.iter_out, insn.iter_in, len(dst))

    def index(base, factor_out, factor_in):
        return np.broadcast_to(base[None, None, :] + i * factor_out + j * factor_in,
                               shape).ravel()

    wgt_out = insn.wgt_factor_out if isinstance(insn, GemmInsn) else 0
    wgt_in = insn.wgt_factor_in if isinstance(insn, GemmInsn) else 0
    return (index(dst, insn.dst_factor_out, insn.dst_factor_in),
            index(src, insn.src_factor_out, insn.src_factor_in),
            index(wgt if isinstance(insn, GemmInsn) else np.zeros_like(wgt), wgt_out, wgt_in))


def insn_fields(insn: Insn) -> list[Field]:
    """The instruction's encoded fields after the opcode, in bit order."""
    return [f for f in insn.FIELDS if f.name != "opcode"]


def verilog_defines() -> list[str]:
    """The encoding as Verilog ``define``s for the RTL: every field's bit range
    (``VTA_MEM_SRAM_BASE`` is ``25:10``) and every opcode, memory type and ALU operation."""
    kinds = (("INSN", _HEADER), ("MEM", MemInsn.FIELDS), ("GEMM", GemmInsn.FIELDS),
             ("ALU", AluInsn.FIELDS), ("UOP", Uop.FIELDS))
    lines = []
    for kind, table in kinds:
        for f in table:
            if kind != "INSN" and f in _HEADER:
                continue
            lines.append(f"`define VTA_{kind}_{f.name.upper()} {f.lsb + f.width - 1}:{f.lsb}")
    widths = {f.name: f.width for f in (*MemInsn.FIELDS, *AluInsn.FIELDS)}
    for enum, prefix, field in ((Opcode, "OP", "opcode"), (MemType, "MEM", "memory_type"),
                                (AluOp, "ALU", "alu_op")):
        for member in enum:
            lines.append(f"`define VTA_{prefix}_{member.name} {widths[field]}'d{int(member)}")
    return lines


__all__ = ["DEP_FLAGS", "QUEUE_NAMES", "TOKEN_QUEUES", "AluInsn", "AluOp", "FinishInsn",
           "GemmInsn", "INSN_BYTES", "Insn", "IsaError", "MemInsn", "MemType", "Module", "Opcode",
           "UOP_BYTES", "Uop", "decode_insn", "decode_stream", "decode_uops", "encode_insn",
           "encode_stream", "encode_uops", "expand_loop", "insn_fields", "uop_fields",
           "verilog_defines"]
