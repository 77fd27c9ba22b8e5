"""The accelerator's instruction set: instructions, micro-ops, and their binary encoding.

The encoding is VTA's bit for bit (docs/vta-isa.md has the tables): 128-bit instructions
stored as two little-endian 64-bit words, 32-bit micro-ops. Each instruction kind is a small
frozen dataclass whose fields declare their bits (``sram_base: int = _bits(10, 16)``); the
class's field table (``FIELDS``: name, first bit, width, signed) is read off them, so that
encoding, decoding, range checks, the disassembler and the RTL's defines all read one table.

``encode`` refuses a value that does not fit its field, naming the field; ``decode`` refuses
an opcode, memory type or ALU operation the ISA does not define.
"""

from __future__ import annotations

from dataclasses import MISSING, dataclass, field, fields, replace
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

    @property
    def mask(self) -> int:
        return (1 << self.width) - 1


_OPCODE_FIELD = Field("opcode", 0, 3)


def _bits(lsb: int, width: int, *, signed: bool = False, default=0, only: str | None = None):
    """A dataclass field encoded in bits [lsb, lsb + width) of its word (``default=MISSING``
    for a field the constructor requires; ``only="load"`` or ``"store"`` for a MemInsn field
    that one of the two opcodes encodes, where the other encodes different fields)."""
    return field(default=default, metadata={"bits": (lsb, width, signed), "only": only})


def _bit_layout(cls):
    """Class decorator, above ``@dataclass``: sets ``cls.FIELDS``, its encoded fields in bit
    order, from the bits its dataclass fields declare (and the opcode's, for an instruction),
    so that each field's place is written once, beside its name."""
    declared = [Field(f.name, *f.metadata["bits"]) for f in fields(cls) if "bits" in f.metadata]
    opcode = [_OPCODE_FIELD] if hasattr(cls, "opcode") else []
    cls.FIELDS = tuple(sorted(opcode + declared, key=lambda f: f.lsb))
    cls.ONLY = {f.name: f.metadata["only"] for f in fields(cls) if f.metadata.get("only")}
    return cls


@_bit_layout
@dataclass(frozen=True)
class _Insn:
    """Dependency flags every instruction carries (see "Dependency tokens" in the ISA doc)."""

    FIELDS: ClassVar[tuple[Field, ...]]
    ONLY: ClassVar[dict[str, str]]
    OPCODE: ClassVar[Opcode]

    pop_prev: int = _bits(3, 1)
    pop_next: int = _bits(4, 1)
    push_prev: int = _bits(5, 1)
    push_next: int = _bits(6, 1)

    @property
    def opcode(self) -> Opcode:
        return self.OPCODE

    def encoded_fields(self) -> tuple[Field, ...]:
        """The fields this instruction's opcode encodes (a LOAD and a STORE differ)."""
        return self.FIELDS

    def values(self) -> dict[str, int]:
        """Every encoded field's value (enums as ints)."""
        return {f.name: int(getattr(self, f.name)) for f in self.encoded_fields()}

    def with_deps(self, **flags: int) -> "Insn":
        return replace(self, **flags)


@_bit_layout
@dataclass(frozen=True)
class MemInsn(_Insn):
    """LOAD or STORE: a 2-D strided DMA between DRAM and one on-chip buffer, with zero
    padding on LOAD, and on STORE optionally the requantization of each accumulator lane
    by the parameters in three ACC elements from ``param_base`` (docs/vta-isa.md)."""

    store: bool = False
    memory_type: MemType = _bits(7, 3, default=MemType.INP)
    sram_base: int = _bits(10, 16)
    dram_base: int = _bits(26, 32)
    requantize: int = _bits(58, 1, only="store")
    y_size: int = _bits(64, 16)
    x_size: int = _bits(80, 16)
    x_stride: int = _bits(96, 16)
    y_pad_0: int = _bits(112, 4, only="load")
    y_pad_1: int = _bits(116, 4, only="load")
    x_pad_0: int = _bits(120, 4, only="load")
    x_pad_1: int = _bits(124, 4, only="load")
    param_base: int = _bits(112, 16, only="store")

    @property
    def opcode(self) -> Opcode:
        return Opcode.STORE if self.store else Opcode.LOAD

    def encoded_fields(self) -> tuple[Field, ...]:
        return _MEM_FIELDS[self.store]

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


_MEM_FIELDS = {store: tuple(f for f in MemInsn.FIELDS if MemInsn.ONLY.get(f.name, kind) == kind)
               for store, kind in ((False, "load"), (True, "store"))}
"""The fields a LOAD (False) and a STORE (True) encode."""


@dataclass(frozen=True)
class _LoopInsn(_Insn):
    """The loop nest GEMM and ALU share: micro-ops [uop_bgn, uop_end) run for i < iter_out,
    j < iter_in, each index offset by i * factor_out + j * factor_in."""

    reset: int = _bits(7, 1)
    uop_bgn: int = _bits(8, 13)
    uop_end: int = _bits(21, 14)
    iter_out: int = _bits(35, 14, default=1)
    iter_in: int = _bits(49, 14, default=1)
    dst_factor_out: int = _bits(64, 11)
    dst_factor_in: int = _bits(75, 11)
    src_factor_out: int = _bits(86, 11)
    src_factor_in: int = _bits(97, 11)


@_bit_layout
@dataclass(frozen=True)
class GemmInsn(_LoopInsn):
    """GEMM: acc[dst] += inp[src] x wgt[wgt]^T over the loop nest (with ``overwrite``,
    acc[dst] = the product; with ``reset``, zero)."""

    OPCODE = Opcode.GEMM

    overwrite: int = _bits(63, 1)
    wgt_factor_out: int = _bits(108, 10)
    wgt_factor_in: int = _bits(118, 10)


@_bit_layout
@dataclass(frozen=True)
class AluInsn(_LoopInsn):
    """ALU: acc[dst] = op(acc[dst], imm or acc[src]) over the loop nest."""

    OPCODE = Opcode.ALU

    alu_op: AluOp = _bits(108, 3, default=AluOp.ADD)
    use_imm: int = _bits(111, 1)
    imm: int = _bits(112, 16, signed=True)


@_bit_layout
@dataclass(frozen=True)
class FinishInsn(_Insn):
    """FINISH: the end of the stream; raises the done flag."""

    OPCODE = Opcode.FINISH


Insn = Union[MemInsn, GemmInsn, AluInsn, FinishInsn]


@_bit_layout
@dataclass(frozen=True)
class Uop:
    """A micro-op: base indices into ACC (dst), INP or ACC (src) and WGT (wgt)."""

    FIELDS: ClassVar[tuple[Field, ...]]

    dst: int = _bits(0, 11, default=MISSING)
    src: int = _bits(11, 11)
    wgt: int = _bits(22, 10)


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
        word |= (value & f.mask) << f.lsb
    return word


def _unpack(fields_: Iterable[Field], word: int) -> dict[str, int]:
    out = {}
    for f in fields_:
        value = (word >> f.lsb) & f.mask
        if f.signed and value >> (f.width - 1):
            value -= 1 << f.width
        out[f.name] = value
    return out


def encode_insn(insn: Insn) -> bytes:
    """The 16 bytes of one instruction."""
    values = insn.values()
    values["opcode"] = int(insn.opcode)
    for name, only in insn.ONLY.items():
        if name not in values and getattr(insn, name):
            raise IsaError(f"{insn.opcode.name} instruction: field {name} is a {only.upper()} "
                           f"field; a {insn.opcode.name} encodes other fields in its bits "
                           f"(set it to 0)")
    word = _pack(insn.encoded_fields(), values, f"{insn.opcode.name} instruction")
    return word.to_bytes(INSN_BYTES, "little")


def decode_insn(data: bytes, index: int | None = None) -> Insn:
    """The instruction in 16 bytes; ``index`` (its position in a stream) names it in errors."""
    where = f"instruction {index}" if index is not None else "instruction"
    if len(data) != INSN_BYTES:
        raise IsaError(f"{where}: an instruction is {INSN_BYTES} bytes, not {len(data)}")
    word = int.from_bytes(data, "little")
    opcode = (word >> _OPCODE_FIELD.lsb) & _OPCODE_FIELD.mask
    if opcode not in Opcode._value2member_map_:
        raise IsaError(f"{where}: opcode {opcode} is not defined (LOAD=0, STORE=1, GEMM=2, "
                       f"FINISH=3, ALU=4)")
    opcode = Opcode(opcode)
    cls = {Opcode.LOAD: MemInsn, Opcode.STORE: MemInsn, Opcode.GEMM: GemmInsn,
           Opcode.ALU: AluInsn, Opcode.FINISH: FinishInsn}[opcode]
    table = _MEM_FIELDS[opcode is Opcode.STORE] if cls is MemInsn else cls.FIELDS
    values = _unpack(table, word)
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
    dst, src, wgt = (((words >> f.lsb) & f.mask).astype(np.int64) for f in Uop.FIELDS)
    return dst, src, wgt


def pack_uops(dst: np.ndarray, src: np.ndarray, wgt: np.ndarray) -> np.ndarray:
    """Encoded micro-ops (uint32) from index arrays, vectorized: the inverse of
    :func:`uop_fields`. Unlike :func:`encode_uops` it does not check that the indices fit."""
    words = np.zeros(np.shape(dst), dtype=np.uint32)
    for f, index in zip(Uop.FIELDS, (dst, src, wgt)):
        words |= np.asarray(index).astype(np.uint32) << f.lsb
    return words


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
    return [f for f in insn.encoded_fields() if f.name != "opcode"]


def field_of(kind: type, name: str) -> Field:
    """The encoded field ``name`` of an instruction or micro-op class."""
    return next(f for f in kind.FIELDS if f.name == name)


def verilog_defines() -> list[str]:
    """The encoding as Verilog ``define``s for the RTL: every field's bit range
    (``VTA_MEM_SRAM_BASE`` is ``25:10``) and every opcode, memory type and ALU operation."""
    header = _Insn.FIELDS
    kinds = (("INSN", header), ("MEM", MemInsn.FIELDS), ("GEMM", GemmInsn.FIELDS),
             ("ALU", AluInsn.FIELDS), ("UOP", Uop.FIELDS))
    lines = []
    for kind, table in kinds:
        for f in table:
            if kind != "INSN" and f in header:
                continue
            lines.append(f"`define VTA_{kind}_{f.name.upper()} {f.lsb + f.width - 1}:{f.lsb}")
    widths = {f.name: f.width for f in (*MemInsn.FIELDS, *AluInsn.FIELDS)}
    for enum, prefix, name in ((Opcode, "OP", "opcode"), (MemType, "MEM", "memory_type"),
                               (AluOp, "ALU", "alu_op")):
        for member in enum:
            lines.append(f"`define VTA_{prefix}_{member.name} {widths[name]}'d{int(member)}")
    return lines


__all__ = ["DEP_FLAGS", "QUEUE_NAMES", "TOKEN_QUEUES", "AluInsn", "AluOp", "FinishInsn",
           "GemmInsn", "INSN_BYTES", "Insn", "IsaError", "MemInsn", "MemType", "Module", "Opcode",
           "UOP_BYTES", "Uop", "decode_insn", "decode_stream", "decode_uops", "encode_insn",
           "encode_stream", "encode_uops", "expand_loop", "field_of", "insn_fields",
           "pack_uops",
           "uop_fields", "verilog_defines"]
