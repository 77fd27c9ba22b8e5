"""The instruction and micro-op encoding: every field round-trips at its extremes, values
that do not fit are refused naming the field, undefined codes are refused on decode, and the
bit tables of docs/vta-isa.md are the encoder's."""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from byoc_vta_sim.isa import (
    AluInsn,
    AluOp,
    FinishInsn,
    GemmInsn,
    IsaError,
    MemInsn,
    MemType,
    Uop,
    decode_insn,
    decode_stream,
    decode_uops,
    encode_insn,
    encode_stream,
    encode_uops,
    expand_loop,
    insn_fields,
    uop_fields,
)

ISA_DOC = Path(__file__).resolve().parents[3] / "docs" / "vta-isa.md"

KINDS = {
    "LOAD": MemInsn(memory_type=MemType.INP),
    "STORE": MemInsn(store=True, memory_type=MemType.OUT),
    "GEMM": GemmInsn(),
    "ALU": AluInsn(),
    "FINISH": FinishInsn(),
}

# Fields holding an enum: their extremes are the enum's, not the field width's.
ENUM_EXTREMES = {"memory_type": (MemType.UOP, MemType.OUT), "alu_op": (AluOp.MIN, AluOp.MULSHR)}


def field_cases():
    cases = []
    for kind, insn in KINDS.items():
        for f in insn_fields(insn):
            low, high = ENUM_EXTREMES.get(f.name, (f.lo, f.hi))
            values = {low, high, 0} if f.name not in ENUM_EXTREMES else {low, high}
            for value in sorted(values):
                cases.append(pytest.param(insn, f.name, value, id=f"{kind}.{f.name}={value}"))
    return cases


@pytest.mark.parametrize("insn,name,value", field_cases())
def test_every_field_round_trips_at_its_extremes(insn, name, value):
    changed = replace(insn, **{name: value})
    data = encode_insn(changed)
    assert len(data) == 16
    assert decode_insn(data) == changed


def test_all_fields_at_maximum_together_round_trip():
    for insn in KINDS.values():
        values = {f.name: f.hi for f in insn_fields(insn) if f.name not in ENUM_EXTREMES}
        values.update({n: hi for n, (_, hi) in ENUM_EXTREMES.items()
                       if n in {f.name for f in insn_fields(insn)}})
        changed = replace(insn, **values)
        assert decode_insn(encode_insn(changed)) == changed


def test_signed_immediate_extremes_are_two_complement():
    for imm, top in ((-32768, 0x8000), (32767, 0x7FFF), (-1, 0xFFFF)):
        data = encode_insn(AluInsn(use_imm=1, imm=imm))
        assert int.from_bytes(data, "little") >> 112 == top
        assert decode_insn(data).imm == imm


@pytest.mark.parametrize("insn,name,value", [
    (MemInsn(), "sram_base", 1 << 16),
    (MemInsn(), "dram_base", 1 << 32),
    (MemInsn(), "x_pad_1", 16),
    (MemInsn(), "y_size", -1),
    (GemmInsn(), "uop_bgn", 1 << 13),
    (GemmInsn(), "uop_end", 1 << 14),
    (GemmInsn(), "wgt_factor_in", 1 << 10),
    (AluInsn(), "imm", 32768),
    (AluInsn(), "imm", -32769),
    (AluInsn(), "src_factor_out", 1 << 11),
    (FinishInsn(), "push_next", 2),
])
def test_out_of_range_values_are_refused_naming_the_field(insn, name, value):
    with pytest.raises(IsaError, match=rf"field {name}={value} does not fit"):
        encode_insn(replace(insn, **{name: value}))


@pytest.mark.parametrize("uop", [Uop(0, 0, 0), Uop(2047, 2047, 1023), Uop(2047, 0, 0),
                                 Uop(0, 2047, 0), Uop(0, 0, 1023)])
def test_micro_op_round_trips(uop):
    words = encode_uops([uop])
    assert decode_uops(words) == [uop]
    assert [int(a[0]) for a in uop_fields(words)] == [uop.dst, uop.src, uop.wgt]


def test_micro_op_field_layout():
    (word,) = encode_uops([Uop(dst=1, src=1, wgt=1)])
    assert int(word) == 1 | 1 << 11 | 1 << 22


@pytest.mark.parametrize("uop,name", [(Uop(2048), "dst"), (Uop(0, 2048), "src"),
                                      (Uop(0, 0, 1024), "wgt"), (Uop(-1), "dst")])
def test_micro_op_out_of_range_is_refused(uop, name):
    with pytest.raises(IsaError, match=rf"micro-op 0: field {name}="):
        encode_uops([uop])


def raw(word: int) -> bytes:
    return word.to_bytes(16, "little")


@pytest.mark.parametrize("opcode", [5, 6, 7])
def test_undefined_opcode_is_refused(opcode):
    with pytest.raises(IsaError, match=rf"instruction 2: opcode {opcode} is not defined"):
        decode_stream(encode_stream([FinishInsn(), FinishInsn()]) + raw(opcode))


@pytest.mark.parametrize("memory_type", [5, 6, 7])
@pytest.mark.parametrize("opcode", [0, 1])
def test_undefined_memory_type_is_refused(opcode, memory_type):
    with pytest.raises(IsaError, match=rf"memory type {memory_type} is not defined"):
        decode_insn(raw(opcode | memory_type << 7))


@pytest.mark.parametrize("alu_op", [5, 6, 7])
def test_reserved_alu_operations_are_refused(alu_op):
    with pytest.raises(IsaError, match=rf"ALU operation {alu_op} is not defined"):
        decode_insn(raw(4 | alu_op << 108))


def test_stream_length_must_be_whole_instructions():
    with pytest.raises(IsaError, match="has 17 bytes"):
        decode_stream(bytes(17))


def test_expand_loop_order_and_factors():
    words = encode_uops([Uop(0, 1, 2), Uop(5, 6, 7)])
    insn = GemmInsn(uop_bgn=0, uop_end=2, iter_out=2, iter_in=3, dst_factor_out=100,
                    dst_factor_in=10, src_factor_out=1, src_factor_in=2, wgt_factor_out=3,
                    wgt_factor_in=4)
    dst, src, wgt = expand_loop(insn, words)
    expected = [(u.dst + 100 * i + 10 * j, u.src + i + 2 * j, u.wgt + 3 * i + 4 * j)
                for i in range(2) for j in range(3) for u in decode_uops(words)]
    assert list(zip(dst.tolist(), src.tolist(), wgt.tolist())) == expected


# -- the ISA document's bit tables ----------------------------------------------------------


def doc_tables() -> dict[str, dict[str, tuple[int, int]]]:
    """{section: {field: (lsb, width)}} from the `### ` sections of docs/vta-isa.md."""
    tables = {}
    for section in re.split(r"^### ", ISA_DOC.read_text(), flags=re.M)[1:]:
        title = section.splitlines()[0].strip()
        rows = re.findall(r"^\| `(\w+)` \| \[(\d+)(?::(\d+))?\] \| (\d+) \|", section, re.M)
        fields = {}
        for name, msb, lsb, width in rows:
            lsb = int(lsb) if lsb else int(msb)
            assert int(msb) - lsb + 1 == int(width), (title, name)
            fields[name] = (lsb, int(width))
        if fields:
            tables[title] = fields
    return tables


@pytest.mark.parametrize("title,insn", [("LOAD and STORE", MemInsn()), ("GEMM", GemmInsn()),
                                        ("ALU", AluInsn()), ("FINISH", FinishInsn()),
                                        ("Micro-op", Uop(0))])
def test_isa_document_tables_match_the_encoder(title, insn):
    documented = doc_tables()[title]
    assert documented == {f.name: (f.lsb, f.width) for f in insn.FIELDS}


def test_encoded_words_are_two_little_endian_64_bit_halves():
    insn = MemInsn(memory_type=MemType.ACC, sram_base=3, y_size=5)
    data = encode_insn(insn)
    low, high = np.frombuffer(data, "<u8")
    assert int(low) == 0 | MemType.ACC << 7 | 3 << 10
    assert int(high) == 5
