"""The command stream format: every command and descriptor round-trips through bytes, and
malformed streams are refused with the place they go wrong."""

from __future__ import annotations

import struct

import numpy as np
import pytest

from byoc_npu_example.command_stream import (
    COMMAND_HEAD,
    DESCRIPTOR,
    HEADER,
    Conv2d,
    DepthwiseConv2d,
    EltwiseAdd,
    FormatError,
    Opcode,
    Pool,
    PoolMode,
    Program,
    TensorDesc,
    Window,
    decode,
    encode,
)


def sample_program() -> Program:
    tensors = [TensorDesc(64, (1, 8, 8, 16), np.dtype(np.uint8), 128, 0.046875),
               TensorDesc(1088, (1, 4, 4, 32), np.dtype(np.int8), -3, 0.125),
               TensorDesc(1088, (1, 1, 16, 32), np.dtype(np.int8), -3, 0.25)]
    commands = [
        Conv2d(1, 0, Window((3, 3), (2, 2), (1, 1, 0, 0)), 0, 16, 32, -128, 127),
        DepthwiseConv2d(1, 1, Window((5, 5), (1, 1), (2, 2, 2, 2)), 48, 0, 16, 0, 127),
        Pool(1, 1, PoolMode.AVERAGE_WITH_PADS, Window((3, 3), (1, 2), (1, 1, 1, 1)), -10, 100),
        Pool(2, 1, PoolMode.GLOBAL_AVERAGE, Window(), -128, 127),
        EltwiseAdd(2, 1, 2, -128, 127),
    ]
    return Program(tensors, commands, dram_bytes=1600)


def test_round_trip_keeps_every_field():
    program = sample_program()
    data = encode(program)
    assert decode(data) == program
    assert encode(decode(data)) == data


def test_layout_sizes_are_the_documented_ones():
    assert (HEADER.size, DESCRIPTOR.size, COMMAND_HEAD.size) == (16, 20, 8)
    program = Program([], [EltwiseAdd(0, 0, 0, 0, 0)], 0)
    program.tensors.append(TensorDesc(0, (1, 1, 1, 1), np.dtype(np.int8), 0, 1.0))
    data = encode(program)
    assert len(data) == 16 + 20 + 8 + 4
    assert data[:4] == b"NPUX" and data[36] == Opcode.ELTWISE_ADD
    # Little-endian: the descriptor's scale is the f32 1.0 at its last four bytes.
    assert data[32:36] == struct.pack("<f", 1.0)


@pytest.mark.parametrize("corrupt,message", [
    (lambda d: b"XXXX" + d[4:], "not an npu_example command stream"),
    (lambda d: d[:-3], "ends inside command 4"),
    (lambda d: d + b"\0", "1 bytes after the last command"),
    (lambda d: d[:16 + 3 * 20] + bytes([9]) + d[16 + 3 * 20 + 1:], "unknown opcode 9"),
    (lambda d: d[:16 + 3 * 20 + 2] + struct.pack("<H", 7) + d[16 + 3 * 20 + 4:],
     "outside the 3 descriptors"),
    (lambda d: d[:16 + 12] + bytes([5]) + d[16 + 13:], "dtype code 5"),
])
def test_malformed_streams_are_refused(corrupt, message):
    with pytest.raises(FormatError, match=message):
        decode(corrupt(encode(sample_program())))


def test_a_descriptor_outside_dram_is_refused():
    program = sample_program()
    program.dram_bytes = 1100
    with pytest.raises(FormatError, match="descriptor 1 ends at byte 1600 of a 1100-byte DRAM"):
        decode(encode(program))
