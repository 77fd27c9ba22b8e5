"""Convolutions: Conv, ConvTranspose, and the integer ConvInteger and QLinearConv.

All four run as one matrix product per (image, group): the input is unfolded into columns
(one row per input channel and kernel tap, one column per output position) and multiplied by
the weights. Integer convolutions accumulate in int64, so they are exact.
"""

from __future__ import annotations

import numpy as np

from byoc.core.interpreter import window as win
from byoc.core.interpreter.base import OpImpl, accumulation_dtype, register
from byoc.quantization import along_axis, requantize


def check_shapes(x: np.ndarray, w: np.ndarray, group: int, kernel_shape, in_channels_axis: int,
                 op: str) -> None:
    """Raise a ValueError saying what is wrong when ``x`` and ``w`` do not fit together."""
    if x.ndim < 3 or w.ndim != x.ndim:
        raise ValueError(f"{op} needs an N x C x D1 x ... input and a weight of the same rank; "
                         f"got shapes {list(x.shape)} and {list(w.shape)}")
    channels = x.shape[1]
    if group < 1 or channels % group:
        raise ValueError(f"group {group} does not divide the {channels} input channels")
    if in_channels_axis == 1 and (w.shape[1] * group != channels or w.shape[0] % group):
        raise ValueError(f"weight shape {list(w.shape)} does not fit {channels} input channels "
                         f"in {group} groups (expected M x {channels // group} x k..., with M "
                         f"a multiple of {group})")
    if in_channels_axis == 0 and w.shape[0] != channels:
        raise ValueError(f"weight shape {list(w.shape)} does not fit {channels} input channels "
                         f"(expected {channels} x M/group x k...)")
    if kernel_shape and tuple(kernel_shape) != w.shape[2:]:
        raise ValueError(f"kernel_shape {list(kernel_shape)} does not match the weight's "
                         f"spatial shape {list(w.shape[2:])}")


def check_bias(bias: np.ndarray | None, out_channels: int) -> None:
    if bias is not None and bias.shape != (out_channels,):
        raise ValueError(f"bias of shape {list(bias.shape)} does not fit {out_channels} output "
                         f"channels (expected [{out_channels}])")


def check_weight_scale(w_scale: np.ndarray, w: np.ndarray) -> None:
    if np.size(w_scale) not in (1, w.shape[0]):
        raise ValueError(f"w_scale has {np.size(w_scale)} values; give one, or one per "
                         f"output channel ({w.shape[0]})")


def correlate(x: np.ndarray, w: np.ndarray, group: int, window: win.Window) -> np.ndarray:
    """Grouped cross-correlation of ``x`` (N x C x ...) with ``w`` (M x C/group x k...), both
    already in the accumulation dtype; ``x`` is zero-padded as ``window`` says."""
    batch = x.shape[0]
    out_channels = w.shape[0]
    padded = win.pad_for_windows(x, window, 0)
    # N x C x taps x positions, laid out so each group's rows are contiguous.
    columns = np.stack(list(win.taps(padded, window)), axis=2)
    columns = columns.reshape(batch, group, -1, int(np.prod(window.out_shape, dtype=np.int64)))
    weights = w.reshape(group, out_channels // group, -1)
    return np.matmul(weights, columns).reshape(batch, out_channels, *window.out_shape)


def conv_window(x: np.ndarray, w: np.ndarray, auto_pad, dilations, pads, strides) -> win.Window:
    return win.plan(x.shape[2:], w.shape[2:], strides=strides, dilations=dilations, pads=pads,
                    auto_pad=auto_pad)


def channel_bias(bias: np.ndarray, rank: int) -> np.ndarray:
    """A per-output-channel bias shaped to broadcast over N x M x D1 x ... results."""
    return bias.reshape((1, -1) + (1,) * (rank - 2))


@register("Conv")
class Conv(OpImpl):
    """Conv: grouped, dilated, strided cross-correlation plus an optional bias."""

    def check(self, x, w, bias=None, group=1, kernel_shape=None, **_):
        check_shapes(x, w, group, kernel_shape, 1, "Conv")
        check_bias(bias, w.shape[0])

    def run(self, x, w, bias=None, auto_pad="NOTSET", dilations=None, group=1,
            kernel_shape=None, pads=None, strides=None):
        check_shapes(x, w, group, kernel_shape, 1, "Conv")
        window = conv_window(x, w, auto_pad, dilations, pads, strides)
        dtype = accumulation_dtype(x.dtype)
        y = correlate(x.astype(dtype, copy=False), w.astype(dtype, copy=False), group, window)
        if bias is not None:
            y += channel_bias(bias.astype(dtype), y.ndim)
        return y.astype(x.dtype, copy=False)


def integer_correlate(x, x_zero_point, w, w_zero_point, group, kernel_shape, auto_pad,
                      dilations, pads, strides, op: str) -> np.ndarray:
    """Exact int64 ``sum((x - x_zero_point) * (w - w_zero_point))`` over each window.

    Subtracting the zero point before padding with 0 is the same as padding ``x`` with its zero
    point, which is what the spec asks for.
    """
    check_shapes(x, w, group, kernel_shape, 1, op)
    xs = x.astype(np.int64)
    if x_zero_point is not None:
        xs -= along_axis(x_zero_point, 1, x.ndim).astype(np.int64)
    ws = w.astype(np.int64)
    if w_zero_point is not None:
        ws -= along_axis(w_zero_point, 0, w.ndim).astype(np.int64)
    return correlate(xs, ws, group, conv_window(x, w, auto_pad, dilations, pads, strides))


@register("ConvInteger")
class ConvInteger(OpImpl):
    """ConvInteger: int8/uint8 convolution with zero points, int32 result."""

    def check(self, x, w, *_zero_points, group=1, kernel_shape=None, **_):
        check_shapes(x, w, group, kernel_shape, 1, "ConvInteger")

    def run(self, x, w, x_zero_point=None, w_zero_point=None, auto_pad="NOTSET",
            dilations=None, group=1, kernel_shape=None, pads=None, strides=None):
        acc = integer_correlate(x, x_zero_point, w, w_zero_point, group, kernel_shape, auto_pad,
                                dilations, pads, strides, "ConvInteger")
        return acc.astype(np.int32)


@register("QLinearConv")
class QLinearConv(OpImpl):
    """QLinearConv: exact integer convolution, then requantization to y's scale and zero point.

    The accumulator is scaled by ``x_scale * w_scale / y_scale`` (per tensor or per output
    channel) in float32, rounded half to even, offset by ``y_zero_point`` and saturated, as
    onnxruntime does.
    """

    def check(self, x, x_scale, x_zero_point, w, w_scale, w_zero_point, y_scale, y_zero_point,
              bias=None, group=1, kernel_shape=None, **_):
        check_shapes(x, w, group, kernel_shape, 1, "QLinearConv")
        check_bias(bias, w.shape[0])
        check_weight_scale(w_scale, w)

    def run(self, x, x_scale, x_zero_point, w, w_scale, w_zero_point, y_scale, y_zero_point,
            bias=None, auto_pad="NOTSET", dilations=None, group=1, kernel_shape=None, pads=None,
            strides=None):
        check_weight_scale(w_scale, w)
        acc = integer_correlate(x, x_zero_point, w, w_zero_point, group, kernel_shape, auto_pad,
                                dilations, pads, strides, "QLinearConv")
        if bias is not None:
            acc += channel_bias(bias.astype(np.int64), acc.ndim)
        scale = (np.asarray(x_scale, np.float32) * np.asarray(w_scale, np.float32)
                 / np.asarray(y_scale, np.float32))
        dtype = x.dtype if y_zero_point is None else y_zero_point.dtype
        zero_point = None if y_zero_point is None else along_axis(y_zero_point, 1, acc.ndim)
        return requantize(acc, along_axis(scale, 1, acc.ndim), zero_point, dtype)


@register("ConvTranspose")
class ConvTranspose(OpImpl):
    """ConvTranspose: the gradient of Conv with respect to its input, plus an optional bias.

    Each input position scatters ``x * w`` over a kernel-sized patch of a full-size result,
    which is then cropped by the pads (given, or derived from ``output_shape``/``auto_pad``).
    """

    def check(self, x, w, bias=None, group=1, kernel_shape=None, **_):
        check_shapes(x, w, group, kernel_shape, 0, "ConvTranspose")
        check_bias(bias, w.shape[1] * group)

    def run(self, x, w, bias=None, auto_pad="NOTSET", dilations=None, group=1,
            kernel_shape=None, output_padding=None, output_shape=None, pads=None, strides=None):
        check_shapes(x, w, group, kernel_shape, 0, "ConvTranspose")
        rank = x.ndim - 2
        in_shape, kernel = x.shape[2:], w.shape[2:]
        strides = win.spatial_attr(strides, rank, 1, "strides")
        dilations = win.spatial_attr(dilations, rank, 1, "dilations")
        output_padding = win.spatial_attr(output_padding, rank, 0, "output_padding")
        full = [(n - 1) * s + (k - 1) * d + 1 + p for n, s, k, d, p in
                zip(in_shape, strides, kernel, dilations, output_padding)]
        begin, end = self.crop(full, in_shape, strides, auto_pad, output_shape, pads, rank)
        out_shape = [f - b - e for f, b, e in zip(full, begin, end)]
        if any(o <= 0 for o in out_shape):
            raise ValueError(f"the pads {list(begin) + list(end)} leave an empty output")

        dtype = accumulation_dtype(x.dtype)
        batch, channels = x.shape[:2]
        out_channels = w.shape[1] * group
        taps = int(np.prod(kernel, dtype=np.int64))
        # Per group: (M/group * taps) x (C/group) weights times C/group x positions input.
        weights = w.astype(dtype).reshape(group, channels // group, -1).transpose(0, 2, 1)
        columns = x.astype(dtype).reshape(batch, group, channels // group, -1)
        patches = np.matmul(weights, columns).reshape(batch, out_channels, taps, *in_shape)

        # An output_shape beyond the full size leaves zeros past the full extent.
        result = np.zeros((batch, out_channels, *(max(f, b + o) for f, b, o in
                                                   zip(full, begin, out_shape))), dtype)
        for index, tap in enumerate(np.ndindex(*kernel)):
            target = tuple(slice(t * d, t * d + (n - 1) * s + 1, s)
                           for t, d, n, s in zip(tap, dilations, in_shape, strides))
            result[(slice(None), slice(None)) + target] += patches[:, :, index]
        crop = tuple(slice(b, b + o) for b, o in zip(begin, out_shape))
        y = result[(slice(None), slice(None)) + crop]
        if bias is not None:
            y = y + channel_bias(bias.astype(dtype), y.ndim)
        return np.ascontiguousarray(y).astype(x.dtype, copy=False)

    @staticmethod
    def crop(full, in_shape, strides, auto_pad, output_shape, pads, rank):
        """Begin and end crops of the full result, per the ConvTranspose spec."""
        if output_shape is not None and len(output_shape) > 0:
            # Some exporters give output_shape with the N and C dims; only spatial dims count.
            target = list(output_shape)[-rank:]
        elif auto_pad in ("SAME_UPPER", "SAME_LOWER"):
            # The spec says input size * stride; ONNX shape inference and onnxruntime never
            # exceed the full size (a stride longer than the kernel leaves gaps, not growth).
            target = [min(n * s, f) for n, s, f in zip(in_shape, strides, full)]
        elif auto_pad == "VALID":
            return [0] * rank, [0] * rank
        elif auto_pad == "NOTSET":
            return win.explicit_pads(pads, rank)
        else:
            raise ValueError(f"auto_pad {auto_pad!r} is not one of {', '.join(win.AUTO_PADS)}")
        begin, end = [], []
        for f, t in zip(full, target):
            total = f - t
            # SAME_UPPER crops the odd extra at the end, anything else at the beginning. An
            # output_shape beyond the full size (ONNX shape inference accepts it, onnxruntime
            # refuses it) gets zeros at the end.
            b, _ = win.split_same(max(total, 0), auto_pad)
            begin.append(b)
            end.append(total - b)
        return begin, end
