"""The NPU's command stream: a header, a table of tensor descriptors, then the commands.

Everything is little-endian and fixed-size per kind (the package README draws each layout):

- header, 16 bytes: magic ``NPUX``, format version (u16), descriptor count (u16), command
  count (u16), reserved (u16, 0), DRAM size in bytes (u32);
- tensor descriptor, 20 bytes: DRAM offset (u32), N, H, W, C (u16 each), dtype (u8: 0 int8,
  1 uint8, 2 int32, 3 float32), reserved (u8, 0), zero point (i16), scale (f32). A
  descriptor is a view: several may describe the same bytes (a reshape, or readers that
  dequantize differently);
- command: an 8-byte head (opcode u8, mode u8, output descriptor u16, input descriptor u16,
  second input descriptor u16 or 0xFFFF) and a body whose layout the opcode fixes.

Debug taps (version 2): a command whose mode byte has bit 7 (:data:`TAP_FLAG`) set also
writes the value it computes before requantizing to a tap descriptor, named in 4 bytes after
its body (descriptor u16, reserved u16, 0): the int32 accumulators (bias added) of a CONV2D or
DEPTHWISE_CONV2D, the float32 results of a POOL or ELTWISE_ADD, in the output's N x H x W x C
shape. Taps and the 32-bit dtypes exist only in version 2; a stream without taps is encoded as
version 1, byte for byte the format before taps, and both versions decode.

:func:`encode` and :func:`decode` convert between bytes and :class:`Program`; decoding checks
every field it can, so the simulator only ever sees well-formed commands.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from enum import IntEnum

import numpy as np

MAGIC = b"NPUX"
VERSION = 1
TAP_VERSION = 2         # the first version with debug taps
NO_TENSOR = 0xFFFF
TAP_FLAG = 0x80         # in a command's mode byte: a tap descriptor follows the body

HEADER = struct.Struct("<4sHHHHI")
DESCRIPTOR = struct.Struct("<IHHHHBBhf")
COMMAND_HEAD = struct.Struct("<BBHHH")
TAP = struct.Struct("<HH")      # tap descriptor, reserved (0)
WINDOW = "8B"          # kernel h, w; stride h, w; pad top, left, bottom, right

DTYPES = {0: np.dtype(np.int8), 1: np.dtype(np.uint8), 2: np.dtype(np.int32),
          3: np.dtype(np.float32)}
ACTIVATION_DTYPES = (np.dtype(np.int8), np.dtype(np.uint8))
DTYPE_CODES = {dtype: code for code, dtype in DTYPES.items()}


class Opcode(IntEnum):
    CONV2D = 1
    DEPTHWISE_CONV2D = 2
    POOL = 3
    ELTWISE_ADD = 4


class PoolMode(IntEnum):
    MAX = 0
    AVERAGE = 1             # the divisor counts the input positions of the window
    AVERAGE_WITH_PADS = 2   # the divisor counts the padding positions too
    GLOBAL_AVERAGE = 3      # the whole H x W plane of each channel; the window is unused


@dataclass(frozen=True)
class TensorDesc:
    """An NHWC tensor in DRAM: an int8/uint8 activation with its quantization (zero point,
    scale), or an int32/float32 debug tap (zero point 0, scale 1)."""

    offset: int
    shape: tuple[int, int, int, int]      # N, H, W, C
    dtype: np.dtype
    zero_point: int
    scale: float

    @property
    def nbytes(self) -> int:
        n, h, w, c = self.shape
        return n * h * w * c * np.dtype(self.dtype).itemsize


@dataclass(frozen=True)
class Window:
    kernel: tuple[int, int] = (1, 1)
    strides: tuple[int, int] = (1, 1)
    pads: tuple[int, int, int, int] = (0, 0, 0, 0)     # top, left, bottom, right

    def out_size(self, height: int, width: int) -> tuple[int, int]:
        top, left, bottom, right = self.pads
        return ((height + top + bottom - self.kernel[0]) // self.strides[0] + 1,
                (width + left + right - self.kernel[1]) // self.strides[1] + 1)


@dataclass(frozen=True)
class Conv2d:
    """acc = bias + sum((x - x_zero) * w) over the window (int32), then
    ``requantize(acc, multiplier, y_zero, qmin, qmax)``. Weights at ``weights`` are
    O x kH x kW x I int8, O and I padded to the channel block; ``bias`` (int32) and
    ``multipliers`` (float32) hold one value per padded output channel. ``tap``, when not
    NO_TENSOR, is an int32 descriptor that also receives ``acc``."""

    output: int
    input: int
    window: Window
    weights: int
    bias: int
    multipliers: int
    qmin: int
    qmax: int
    tap: int = NO_TENSOR
    opcode = Opcode.CONV2D


@dataclass(frozen=True)
class DepthwiseConv2d(Conv2d):
    """Conv2d with one filter per channel: weights are kH x kW x C int8, C padded."""

    opcode = Opcode.DEPTHWISE_CONV2D


@dataclass(frozen=True)
class Pool:
    """Pooling on the float32 vector unit: dequantize, max or average, quantize, clamp.
    ``tap``, when not NO_TENSOR, is a float32 descriptor that also receives the pooled
    values before quantization."""

    output: int
    input: int
    mode: PoolMode
    window: Window
    qmin: int
    qmax: int
    tap: int = NO_TENSOR
    opcode = Opcode.POOL


@dataclass(frozen=True)
class EltwiseAdd:
    """On the float32 vector unit: dequantize both inputs, add, quantize, clamp. ``tap``,
    when not NO_TENSOR, is a float32 descriptor that also receives the sums before
    quantization."""

    output: int
    input: int
    input2: int
    qmin: int
    qmax: int
    tap: int = NO_TENSOR
    opcode = Opcode.ELTWISE_ADD


Command = Conv2d | DepthwiseConv2d | Pool | EltwiseAdd

# The body that follows the 8-byte head, per opcode.
BODIES = {
    Opcode.CONV2D: struct.Struct(f"<{WINDOW}IIIhh"),
    Opcode.DEPTHWISE_CONV2D: struct.Struct(f"<{WINDOW}IIIhh"),
    Opcode.POOL: struct.Struct(f"<{WINDOW}hh"),
    Opcode.ELTWISE_ADD: struct.Struct("<hh"),
}


@dataclass
class Program:
    """What the NPU runs: descriptors, commands in order, and the DRAM size they need."""

    tensors: list[TensorDesc] = field(default_factory=list)
    commands: list[Command] = field(default_factory=list)
    dram_bytes: int = 0


class FormatError(ValueError):
    """Bytes that are not a valid command stream (the message says where)."""


def encode(program: Program) -> bytes:
    """The program's bytes: version 1 unless a command writes a debug tap."""
    tapped = any(command.tap != NO_TENSOR for command in program.commands)
    out = [HEADER.pack(MAGIC, TAP_VERSION if tapped else VERSION, len(program.tensors),
                       len(program.commands), 0, program.dram_bytes)]
    for desc in program.tensors:
        out.append(DESCRIPTOR.pack(desc.offset, *desc.shape, DTYPE_CODES[np.dtype(desc.dtype)],
                                   0, desc.zero_point, desc.scale))
    for command in program.commands:
        out.append(_encode_command(command))
    return b"".join(out)


def _encode_command(command: Command) -> bytes:
    body = BODIES[command.opcode]
    tapped = command.tap != NO_TENSOR
    tap = TAP.pack(command.tap, 0) if tapped else b""
    flag = TAP_FLAG if tapped else 0
    if isinstance(command, EltwiseAdd):
        head = COMMAND_HEAD.pack(command.opcode, flag, command.output, command.input,
                                 command.input2)
        return head + body.pack(command.qmin, command.qmax) + tap
    window = (*command.window.kernel, *command.window.strides, *command.window.pads)
    if isinstance(command, Pool):
        head = COMMAND_HEAD.pack(command.opcode, command.mode | flag, command.output,
                                 command.input, NO_TENSOR)
        return head + body.pack(*window, command.qmin, command.qmax) + tap
    head = COMMAND_HEAD.pack(command.opcode, flag, command.output, command.input, NO_TENSOR)
    return head + body.pack(*window, command.weights, command.bias, command.multipliers,
                            command.qmin, command.qmax) + tap


def decode(data: bytes) -> Program:
    if len(data) < HEADER.size:
        raise FormatError(f"a command stream starts with a {HEADER.size}-byte header; got "
                          f"{len(data)} bytes")
    magic, version, n_tensors, n_commands, reserved, dram_bytes = HEADER.unpack_from(data)
    if magic != MAGIC or version not in (VERSION, TAP_VERSION) or reserved:
        raise FormatError(f"not an npu_example command stream of version {VERSION} or "
                          f"{TAP_VERSION} (magic {magic!r}, version {version}); recompile the "
                          f"model")
    program = Program(dram_bytes=dram_bytes)
    pos = HEADER.size
    for index in range(n_tensors):
        _need(data, pos, DESCRIPTOR.size, f"descriptor {index}")
        offset, n, h, w, c, code, reserved, zero, scale = DESCRIPTOR.unpack_from(data, pos)
        codes = DTYPES if version == TAP_VERSION else (0, 1)
        if code not in codes or reserved:
            raise FormatError(f"descriptor {index} at byte {pos}: dtype code {code} (0 int8, "
                              f"1 uint8{', 2 int32, 3 float32' if len(codes) > 2 else ''}) "
                              f"with reserved byte {reserved}")
        desc = TensorDesc(offset, (n, h, w, c), DTYPES[code], zero, scale)
        if offset + desc.nbytes > dram_bytes:
            raise FormatError(f"descriptor {index} ends at byte {offset + desc.nbytes} of a "
                              f"{dram_bytes}-byte DRAM")
        program.tensors.append(desc)
        pos += DESCRIPTOR.size
    for index in range(n_commands):
        command, pos = _decode_command(data, pos, index, program.tensors,
                                       version == TAP_VERSION)
        program.commands.append(command)
    if pos != len(data):
        raise FormatError(f"{len(data) - pos} bytes after the last command")
    return program


def _decode_command(data: bytes, pos: int, index: int, tensors: list[TensorDesc],
                    taps: bool) -> tuple[Command, int]:
    """Command ``index`` at ``pos`` and the position after it; ``taps`` says whether the
    stream's version has debug taps."""
    _need(data, pos, COMMAND_HEAD.size, f"command {index}")
    opcode, mode, output, first, second = COMMAND_HEAD.unpack_from(data, pos)
    where = f"command {index} at byte {pos}"
    if opcode not in BODIES:
        raise FormatError(f"{where}: unknown opcode {opcode}")
    opcode = Opcode(opcode)
    body = BODIES[opcode]
    pos += COMMAND_HEAD.size
    _need(data, pos, body.size, where)
    fields = body.unpack_from(data, pos)
    pos += body.size
    tap = NO_TENSOR
    if taps and mode & TAP_FLAG:
        mode &= ~TAP_FLAG
        _need(data, pos, TAP.size, f"the tap of {where}")
        tap, reserved = TAP.unpack_from(data, pos)
        pos += TAP.size
        if reserved:
            raise FormatError(f"{where}: reserved bytes {reserved} after its tap descriptor")
    n_tensors = len(tensors)
    operands = [output, first] + ([second] if opcode is Opcode.ELTWISE_ADD else [])
    if any(t >= n_tensors for t in operands) or \
            (opcode is not Opcode.ELTWISE_ADD and second != NO_TENSOR):
        raise FormatError(f"{where}: tensor operands {output}, {first}, {second} outside the "
                          f"{n_tensors} descriptors")
    if any(tensors[t].dtype not in ACTIVATION_DTYPES for t in operands):
        raise FormatError(f"{where}: tensor operands {output}, {first}, {second} must be int8 "
                          f"or uint8 descriptors")
    if tap != NO_TENSOR:
        _check_tap(tensors, tap, output, opcode, where)
    if opcode is Opcode.ELTWISE_ADD:
        if mode:
            raise FormatError(f"{where}: ELTWISE_ADD has no modes (mode byte {mode})")
        return EltwiseAdd(output, first, second, *fields, tap), pos
    window = Window(tuple(fields[0:2]), tuple(fields[2:4]), tuple(fields[4:8]))
    if min(*window.kernel, *window.strides) < 1:
        raise FormatError(f"{where}: kernel {window.kernel} and strides {window.strides} must "
                          f"be positive")
    if opcode is Opcode.POOL:
        if mode not in PoolMode.__members__.values():
            raise FormatError(f"{where}: unknown pool mode {mode}")
        return Pool(output, first, PoolMode(mode), window, *fields[8:], tap), pos
    if mode:
        raise FormatError(f"{where}: {opcode.name} has no modes (mode byte {mode})")
    cls = Conv2d if opcode is Opcode.CONV2D else DepthwiseConv2d
    return cls(output, first, window, *fields[8:], tap), pos


def _check_tap(tensors: list[TensorDesc], tap: int, output: int, opcode: Opcode,
               where: str) -> None:
    """A tap is an int32 (MAC array) or float32 (vector unit) descriptor of the output's
    shape."""
    expected = np.dtype(np.int32 if opcode in (Opcode.CONV2D, Opcode.DEPTHWISE_CONV2D)
                        else np.float32)
    if tap >= len(tensors) or tensors[tap].dtype != expected or \
            tensors[tap].shape != tensors[output].shape:
        raise FormatError(f"{where}: tap descriptor {tap} must be a descriptor of dtype "
                          f"{expected} and the output's shape {list(tensors[output].shape)}")


def _need(data: bytes, pos: int, size: int, what: str) -> None:
    if pos + size > len(data):
        raise FormatError(f"the stream ends inside {what} (needs bytes {pos}..{pos + size}, "
                          f"has {len(data)})")

