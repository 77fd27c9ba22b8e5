"""The command stream format: every command and descriptor round-trips through bytes, and
malformed streams are refused with the place they go wrong."""

from __future__ import annotations

import dataclasses
import struct

import numpy as np
import pytest

from byoc_npu_example.command_stream import (
    COMMAND_HEAD,
    DESCRIPTOR,
    HEADER,
    TAP_FLAG,
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


def tapped_program() -> Program:
    """The sample program with debug taps on its CONV2D (int32 accumulators) and first POOL
    (float32 results), in two 32-bit descriptors after the activations."""
    program = sample_program()
    program.tensors += [TensorDesc(1600, (1, 4, 4, 32), np.dtype(np.int32), 0, 1.0),
                        TensorDesc(3648, (1, 4, 4, 32), np.dtype(np.float32), 0, 1.0)]
    program.commands[0] = dataclasses.replace(program.commands[0], tap=3)
    program.commands[2] = dataclasses.replace(program.commands[2], tap=4)
    program.dram_bytes = 3648 + 2048
    return program


def test_debug_taps_round_trip_in_version_2_and_leave_version_1_as_it_was():
    plain, tapped = encode(sample_program()), encode(tapped_program())
    assert struct.unpack_from("<H", plain, 4) == (1,)
    assert struct.unpack_from("<H", tapped, 4) == (2,)
    assert decode(tapped) == tapped_program() and encode(decode(tapped)) == tapped
    # Two 20-byte descriptors, and 4 bytes (tap descriptor, reserved) after each tapped body.
    assert len(tapped) == len(plain) + 2 * 20 + 2 * 4
    conv_head = 16 + 5 * 20
    assert tapped[conv_head + 1] == TAP_FLAG
    assert decode(tapped).tensors[3].nbytes == 4 * 4 * 32 * 4


def _with_tap(index, tap):
    program = tapped_program()
    program.commands[index] = dataclasses.replace(program.commands[index], tap=tap)
    return encode(program)


SHAPE_AND_DTYPE = "must be a descriptor of dtype {} and the output's shape"


@pytest.mark.parametrize("data,message", [
    (_with_tap(2, 3), "tap descriptor 3 " + SHAPE_AND_DTYPE.format("float32")),
    (_with_tap(0, 4), "tap descriptor 4 " + SHAPE_AND_DTYPE.format("int32")),
    (_with_tap(4, 4), "tap descriptor 4 " + SHAPE_AND_DTYPE.format("float32") +
     r" \[1, 1, 16, 32\]"),
    (_with_tap(0, 9), "tap descriptor 9 must be"),
    (encode(dataclasses.replace(tapped_program(), commands=[
        Conv2d(3, 0, Window(), 0, 16, 32, -128, 127, 4)])),
     "tensor operands 3, 0, 65535 must be int8 or uint8"),
])
def test_malformed_taps_are_refused(data, message):
    with pytest.raises(FormatError, match=message):
        decode(data)


def test_a_version_1_stream_has_no_taps_nor_32_bit_descriptors():
    plain = encode(sample_program())
    conv_mode = 16 + 3 * 20 + 1
    with pytest.raises(FormatError, match="CONV2D has no modes \\(mode byte 128\\)"):
        decode(plain[:conv_mode] + bytes([TAP_FLAG]) + plain[conv_mode + 1:])
    tapped = encode(tapped_program())
    with pytest.raises(FormatError, match="dtype code 2 \\(0 int8, 1 uint8\\)"):
        decode(tapped[:4] + struct.pack("<H", 1) + tapped[6:])
