"""The NPU simulator: the living spec of every command.

A :class:`Simulator` owns the NPU's DRAM, a byte array whose start holds the constants blob
(packed weights, biases, multipliers). :meth:`Simulator.run` executes a program's commands in
order, each reading its input tensors from DRAM and writing its output tensor back.

Two units do the arithmetic:

- the MAC array (CONV2D, DEPTHWISE_CONV2D): exact integer accumulation in int32 of
  ``(x - x_zero) * w`` plus the bias, then :func:`byoc_npu_example.requant.requantize`;
- the vector unit (POOL, ELTWISE_ADD): IEEE float32. Inputs are dequantized,
  ``float32(q - zero) * scale``; the result is quantized,
  ``clamp(round_half_even(v / scale) + zero, qmin, qmax)``. Window averages add the taps in
  row-major kernel order from 0 and divide by the count; a global average sums each
  channel's H*W plane pairwise (numpy's float32 summation) and divides by H*W. That is the
  float32 arithmetic ONNX gives DequantizeLinear -> pool/Add -> QuantizeLinear, in the order
  byoc's reference interpreter uses, so the results are the reference's to the bit.

Debug taps: a command with a ``tap`` descriptor also writes what it computed before
requantizing there, as the unit holds it: a MAC command its int32 accumulators (bias added),
a vector command its float32 results. byoc verify asks for them (see
:mod:`byoc_npu_example.runtime`); they never change the command's output.

Time: each command takes :func:`command_cycles`, the longer of its arithmetic (MACs over the
MAC array's ``macs_per_cycle``, or output elements over the vector unit's ``vector_lanes``)
and its DRAM traffic (the bytes it reads and writes, taps included, over
``dram_bytes_per_cycle``), plus a
fixed ``command_cycles`` (:class:`byoc_npu_example.config.NpuConfig`). Commands run one after
the other. :attr:`Simulator.command_cycles` holds each command's cycles of the last run.
"""

from __future__ import annotations

from collections import Counter

import numpy as np

from byoc import quantization
from byoc_npu_example.command_stream import (
    NO_TENSOR,
    Conv2d,
    DepthwiseConv2d,
    EltwiseAdd,
    Opcode,
    Pool,
    PoolMode,
    Program,
    TensorDesc,
    Window,
)
from byoc_npu_example.config import CONFIG
from byoc_npu_example.requant import requantize


def padded(count: int) -> int:
    """``count`` rounded up to the channel block the constants are packed in."""
    block = CONFIG.channel_block
    return -(-count // block) * block


class Simulator:
    def __init__(self, program: Program, constants: np.ndarray) -> None:
        if constants.size > program.dram_bytes:
            raise ValueError(f"the constants ({constants.size} bytes) do not fit the program's "
                             f"{program.dram_bytes}-byte DRAM")
        self.program = program
        self.dram = np.zeros(program.dram_bytes, np.uint8)
        self.dram[:constants.size] = constants
        self.counters: Counter[str] = Counter()
        self.command_cycles: list[int] = []

    # -- DRAM ----------------------------------------------------------------------------------

    def tensor(self, index: int) -> np.ndarray:
        """The N x H x W x C array descriptor ``index`` views (a view of DRAM)."""
        desc = self.program.tensors[index]
        raw = self.dram[desc.offset:desc.offset + desc.nbytes]
        return raw.view(desc.dtype).reshape(desc.shape)

    def write(self, index: int, values: np.ndarray) -> None:
        target = self.tensor(index)
        if values.shape != target.shape or values.dtype != target.dtype:
            raise ValueError(f"tensor {index} is {target.dtype}{list(target.shape)}; got "
                             f"{values.dtype}{list(values.shape)}")
        target[...] = values

    def _constant(self, offset: int, dtype, count: int) -> np.ndarray:
        size = np.dtype(dtype).itemsize * count
        return self.dram[offset:offset + size].view(dtype)

    # -- execution -----------------------------------------------------------------------------

    def run(self) -> None:
        self.command_cycles = []
        for command in self.program.commands:
            before = Counter(self.counters)
            EXECUTE[command.opcode](self, command)
            self.counters["commands"] += 1
            self.counters[f"commands_{command.opcode.name.lower()}"] += 1
            cycles = command_cycles(self.counters - before, command.opcode)
            self.command_cycles.append(cycles)
            self.counters["cycles"] += cycles

    def _store(self, command, values: np.ndarray) -> None:
        self.write(command.output, values)
        self.counters["bytes_written"] += values.size

    def _tap(self, command, values: np.ndarray) -> None:
        """Write the command's value before requantization to its tap, if it has one."""
        if command.tap == NO_TENSOR:
            return
        desc = self.program.tensors[command.tap]
        self.write(command.tap, values.astype(desc.dtype, copy=False))
        self.counters["bytes_tapped"] += desc.nbytes

    def _load(self, index: int) -> tuple[np.ndarray, TensorDesc]:
        self.counters["bytes_read"] += self.program.tensors[index].nbytes
        return self.tensor(index), self.program.tensors[index]

    def conv2d(self, command: Conv2d) -> None:
        x, x_desc = self._load(command.input)
        y_desc = self.program.tensors[command.output]
        kh, kw = command.window.kernel
        out_c, in_c = y_desc.shape[3], x_desc.shape[3]
        packed = self._constant(command.weights, np.int8, padded(out_c) * kh * kw * padded(in_c))
        weights = packed.reshape(padded(out_c), kh, kw, padded(in_c))[:out_c, :, :, :in_c]
        columns = _windows(x.astype(np.int32) - x_desc.zero_point, command.window)
        # float64 products and sums of int8 values are exact far beyond any int32 total.
        acc = columns.reshape(-1, kh * kw * in_c).astype(np.float64) @ \
            weights.reshape(out_c, -1).T.astype(np.float64)
        self.counters["macs"] += acc.size * kh * kw * in_c
        self._finish(command, acc.reshape(*columns.shape[:3], out_c), y_desc)

    def depthwise_conv2d(self, command: DepthwiseConv2d) -> None:
        x, x_desc = self._load(command.input)
        y_desc = self.program.tensors[command.output]
        kh, kw = command.window.kernel
        channels = x_desc.shape[3]
        packed = self._constant(command.weights, np.int8, kh * kw * padded(channels))
        weights = packed.reshape(kh, kw, padded(channels))[:, :, :channels]
        columns = _windows(x.astype(np.int32) - x_desc.zero_point, command.window)
        acc = np.einsum("nhwijc,ijc->nhwc", columns.astype(np.int64), weights.astype(np.int64))
        self.counters["macs"] += acc.size * kh * kw
        self._finish(command, acc, y_desc)

    def _finish(self, command: Conv2d, acc: np.ndarray, y_desc: TensorDesc) -> None:
        out_c = y_desc.shape[3]
        bias = self._constant(command.bias, np.int32, padded(out_c))[:out_c]
        multipliers = self._constant(command.multipliers, np.float32, padded(out_c))[:out_c]
        total = (acc.astype(np.int64) + bias).astype(np.int32)   # wraps as int32 hardware does
        self._tap(command, total)
        self._store(command, requantize(total, multipliers, y_desc.zero_point, command.qmin,
                                        command.qmax, y_desc.dtype))

    def pool(self, command: Pool) -> None:
        x, x_desc = self._load(command.input)
        y_desc = self.program.tensors[command.output]
        values = dequantize(x, x_desc)
        if command.mode is PoolMode.GLOBAL_AVERAGE:
            n, h, w, c = values.shape
            planes = np.ascontiguousarray(values.transpose(0, 3, 1, 2)).reshape(n, c, h * w)
            # Summed in float64 (exact for one plane of int8 steps), rounded once: the
            # reference's GlobalAveragePool, whatever the order of the sum.
            result = planes.mean(axis=2, dtype=np.float64).astype(np.float32).reshape(
                n, 1, 1, c)
        elif command.mode is PoolMode.MAX:
            result = _windows(values, command.window, fill=-np.inf).max(axis=(3, 4))
        else:
            taps = _windows(values, command.window, fill=0.0)
            total = np.zeros(taps.shape[:3] + taps.shape[5:], np.float32)
            for i in range(taps.shape[3]):
                for j in range(taps.shape[4]):
                    total += taps[:, :, :, i, j]
            result = total / _window_counts(x.shape, command)
        self._tap(command, result)
        self._store(command, quantize(result, y_desc, (command.qmin, command.qmax)))

    def eltwise_add(self, command: EltwiseAdd) -> None:
        a, a_desc = self._load(command.input)
        b, b_desc = self._load(command.input2)
        y_desc = self.program.tensors[command.output]
        total = dequantize(a, a_desc) + dequantize(b, b_desc)
        self._tap(command, total)
        self._store(command, quantize(total, y_desc, (command.qmin, command.qmax)))


def command_cycles(work: Counter[str], opcode: Opcode) -> int:
    """The cycles of one command that did ``work`` (its counter increments: macs,
    bytes_read, bytes_written, bytes_tapped)."""
    if opcode in (Opcode.CONV2D, Opcode.DEPTHWISE_CONV2D):
        arithmetic = -(-work["macs"] // CONFIG.macs_per_cycle)
    else:   # one output byte is one output element: the NPU's tensors are 8-bit
        arithmetic = -(-work["bytes_written"] // CONFIG.vector_lanes)
    moved = work["bytes_read"] + work["bytes_written"] + work["bytes_tapped"]
    traffic = -(-moved // CONFIG.dram_bytes_per_cycle)
    return CONFIG.command_cycles + max(arithmetic, traffic)


EXECUTE = {
    Opcode.CONV2D: Simulator.conv2d,
    Opcode.DEPTHWISE_CONV2D: Simulator.depthwise_conv2d,
    Opcode.POOL: Simulator.pool,
    Opcode.ELTWISE_ADD: Simulator.eltwise_add,
}


def dequantize(q: np.ndarray, desc: TensorDesc) -> np.ndarray:
    """``float32(q - zero) * scale`` in float32."""
    return quantization.dequantize(q, np.float32(desc.scale), desc.zero_point)


def quantize(values: np.ndarray, desc: TensorDesc,
             bounds: tuple[int, int] | None = None) -> np.ndarray:
    """``clamp(round_half_even(values / scale) + zero, *bounds)``, the division in float32,
    the bounds by default the descriptor type's range."""
    return quantization.quantize(values, desc.scale, desc.zero_point, desc.dtype, bounds=bounds)


def _windows(x: np.ndarray, window: Window, fill=0) -> np.ndarray:
    """N x OH x OW x kH x kW x C: for every output position, the window it reads of ``x``
    (N x H x W x C) padded with ``fill``."""
    top, left, bottom, right = window.pads
    padded_x = np.pad(x, ((0, 0), (top, bottom), (left, right), (0, 0)), constant_values=fill)
    out_h, out_w = window.out_size(x.shape[1], x.shape[2])
    (kh, kw), (sh, sw) = window.kernel, window.strides
    view = np.lib.stride_tricks.sliding_window_view(padded_x, (kh, kw), axis=(1, 2))
    # sliding_window_view puts the window axes last: N x H' x W' x C x kH x kW.
    view = view[:, :(out_h - 1) * sh + 1:sh, :(out_w - 1) * sw + 1:sw]
    return view.transpose(0, 1, 2, 4, 5, 3)


def _window_counts(shape: tuple[int, ...], command: Pool) -> np.ndarray | np.float32:
    """What each window of an average divides by: the whole kernel when padding counts,
    else the input positions the window covers (OH x OW x 1, float32)."""
    if command.mode is PoolMode.AVERAGE_WITH_PADS:
        return np.float32(command.window.kernel[0] * command.window.kernel[1])
    inside = np.ones((1, shape[1], shape[2], 1), np.float32)
    return _windows(inside, command.window).sum(axis=(3, 4), dtype=np.float32)[0]
