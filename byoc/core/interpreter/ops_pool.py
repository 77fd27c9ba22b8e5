"""Pooling and normalization over windows: MaxPool, AveragePool, LpPool, the global pools,
MaxUnpool and LRN."""

from __future__ import annotations

import numpy as np

from byoc.core.interpreter import window as win
from byoc.core.interpreter.base import OpImpl, register


def pool_sum_dtype(dtype: np.dtype) -> np.dtype:
    """float16 sums lose too much precision; they are taken in float32."""
    return np.dtype(np.float32) if dtype == np.float16 else np.dtype(dtype)


def lowest(dtype: np.dtype):
    """A padding value no element can lose a max against."""
    return -np.inf if np.issubdtype(dtype, np.floating) else np.iinfo(dtype).min


def pool_window(x: np.ndarray, kernel_shape, op: str, **attrs) -> win.Window:
    if x.ndim < 3:
        raise ValueError(f"{op} needs an N x C x D1 x ... input; got shape {list(x.shape)}")
    if kernel_shape is None or len(kernel_shape) != x.ndim - 2:
        raise ValueError(f"{op} needs kernel_shape with one value per spatial axis of its "
                         f"input {list(x.shape)}; got {kernel_shape}")
    return win.plan(x.shape[2:], kernel_shape, **attrs)


@register("MaxPool")
class MaxPool(OpImpl):
    """MaxPool, with the optional Indices output (flat indices into x, row- or column-major
    over the spatial axes as ``storage_order`` says; the first maximum wins ties)."""

    def run(self, x, auto_pad="NOTSET", ceil_mode=0, dilations=None, kernel_shape=None,
            pads=None, storage_order=0, strides=None):
        window = pool_window(x, kernel_shape, "MaxPool", strides=strides, dilations=dilations,
                             pads=pads, auto_pad=auto_pad, ceil_mode=ceil_mode)
        padded = win.pad_for_windows(x, window, lowest(x.dtype))
        # Which padded positions hold input: a padding cell must not win even a tie (uint8's
        # padding value is a legal 0), or Indices would point outside the input.
        inside = win.pad_for_windows(np.ones((1, 1) + x.shape[2:], bool), window, False)
        best = np.full(x.shape[:2] + window.out_shape, lowest(x.dtype), x.dtype)
        winner = np.zeros(best.shape, np.int64)
        seen = np.zeros((1, 1) + window.out_shape, bool)
        for index, (view, valid) in enumerate(zip(win.taps(padded, window),
                                                  win.taps(inside, window))):
            # The first input cell of a window, then only a strictly greater one, wins (as in
            # onnxruntime): ties go to the first maximum in row-major tap order.
            better = valid & (~seen | (view > best))
            np.copyto(best, view, where=better)
            winner[better] = index
            seen |= valid
        if len(self.node.outputs) > 1 and self.node.outputs[1]:
            return best, self.flat_indices(winner, x.shape, window, storage_order)
        return best

    @staticmethod
    def flat_indices(winner: np.ndarray, x_shape, window: win.Window, storage_order: int):
        """Turn the winning tap of each window into a flat index of the unpadded input."""
        taps = np.unravel_index(winner, window.kernel)
        spatial = x_shape[2:]
        rank = len(spatial)
        coords = []
        for axis in range(rank):
            shape = [1] * winner.ndim
            shape[2 + axis] = window.out_shape[axis]
            starts = np.arange(window.out_shape[axis]).reshape(shape) * window.strides[axis]
            coords.append(starts + taps[axis] * window.dilations[axis]
                          - window.pads_begin[axis])
        order = "C" if storage_order == 0 else "F"
        within = np.ravel_multi_index(coords, spatial, order=order)
        batch, channels = x_shape[:2]
        # Batch and channel offsets are row-major whatever storage_order says (onnxruntime).
        planes = np.arange(batch * channels).reshape(batch, channels, *([1] * rank))
        return (planes * int(np.prod(spatial)) + within).astype(np.int64)


@register("AveragePool")
class AveragePool(OpImpl):
    """AveragePool; the divisor counts the explicit (or auto) pads when count_include_pad is
    set, and never the positions ceil_mode adds past them."""

    def run(self, x, auto_pad="NOTSET", ceil_mode=0, count_include_pad=0, dilations=None,
            kernel_shape=None, pads=None, strides=None):
        window = pool_window(x, kernel_shape, "AveragePool", strides=strides,
                             dilations=dilations, pads=pads, auto_pad=auto_pad,
                             ceil_mode=ceil_mode)
        dtype = pool_sum_dtype(x.dtype)
        padded = win.pad_for_windows(x.astype(dtype, copy=False), window, 0)
        total = np.zeros(x.shape[:2] + window.out_shape, dtype)
        for view in win.taps(padded, window):
            total += view
        return (total / self.counts(x.shape[2:], padded.shape[2:], window,
                                    count_include_pad)).astype(x.dtype)

    @staticmethod
    def counts(in_shape, padded_shape, window: win.Window, count_include_pad: int):
        """How many positions each window averages, as a 1 x 1 x out_shape array."""
        counted = np.zeros((1, 1) + tuple(padded_shape), np.float32)
        if count_include_pad:
            region = tuple(slice(0, b + n + e) for b, n, e in
                           zip(window.pads_begin, in_shape, window.pads_end))
        else:
            region = tuple(slice(b, b + n) for b, n in zip(window.pads_begin, in_shape))
        counted[(slice(None), slice(None)) + region] = 1
        return sum(win.taps(counted, window))


@register("GlobalAveragePool")
class GlobalAveragePool(OpImpl):
    """The mean over the spatial axes, summed in float64 and rounded once to the input's type.

    A float32 sum depends on the order it is taken in, and a quantized model's pooled values
    (multiples of one scale) often average to exactly a rounding tie of the QuantizeLinear
    that follows: one order gives one side, another order the other. In float64 the sum of a
    plane of same-scale float32 values is exact, so every backend that sums in float64 gets
    the same bits whatever its order.
    """

    def run(self, x):
        spatial = tuple(range(2, x.ndim))
        return x.mean(axis=spatial, keepdims=True, dtype=np.float64).astype(x.dtype)


@register("GlobalMaxPool")
class GlobalMaxPool(OpImpl):
    def run(self, x):
        return x.max(axis=tuple(range(2, x.ndim)), keepdims=True)


@register("LpPool")
class LpPool(OpImpl):
    """The p-norm ``(sum |x|^p)^(1/p)`` of each window; padding counts as zeros. ``ceil_mode``
    and ``dilations`` come with opset 18."""

    def check(self, x, auto_pad="NOTSET", ceil_mode=0, dilations=None, kernel_shape=None,
              p=2, pads=None, strides=None):
        if p <= 0:
            raise ValueError(f"LpPool's p attribute must be positive; got {p}")
        pool_window(x, kernel_shape, "LpPool", strides=strides, dilations=dilations,
                    pads=pads, auto_pad=auto_pad, ceil_mode=ceil_mode)

    def run(self, x, auto_pad="NOTSET", ceil_mode=0, dilations=None, kernel_shape=None, p=2,
            pads=None, strides=None):
        window = pool_window(x, kernel_shape, "LpPool", strides=strides, dilations=dilations,
                             pads=pads, auto_pad=auto_pad, ceil_mode=ceil_mode)
        dtype = pool_sum_dtype(x.dtype)
        powers = np.abs(x.astype(dtype)) ** np.asarray(p, dtype)
        padded = win.pad_for_windows(powers, window, 0)
        total = np.zeros(x.shape[:2] + window.out_shape, dtype)
        for view in win.taps(padded, window):
            total += view
        return (total ** np.asarray(1 / p, dtype)).astype(x.dtype)


@register("GlobalLpPool")
class GlobalLpPool(OpImpl):
    """The p-norm over all spatial axes of each channel."""

    def check(self, x, p=2):
        if p <= 0:
            raise ValueError(f"GlobalLpPool's p attribute must be positive; got {p}")

    def run(self, x, p=2):
        dtype = pool_sum_dtype(x.dtype)
        spatial = tuple(range(2, x.ndim))
        total = np.sum(np.abs(x.astype(dtype)) ** np.asarray(p, dtype), axis=spatial,
                       keepdims=True)
        return (total ** np.asarray(1 / p, dtype)).astype(x.dtype)


@register("MaxUnpool")
class MaxUnpool(OpImpl):
    """Scatter each value of X to the flat position its index in I names (MaxPool's Indices:
    row-major over the whole output tensor); every other element is 0.

    The output's shape is the ``output_shape`` input when given, else the shape MaxPool with
    the same kernel, strides and pads would have pooled from.
    """

    def check(self, x, indices, output_shape=None, kernel_shape=None, pads=None,
              strides=None):
        if indices.shape != x.shape:
            raise ValueError(f"MaxUnpool's indices input must have the shape of X "
                             f"{list(x.shape)}; got {list(indices.shape)}")
        if x.ndim < 3:
            raise ValueError(f"MaxUnpool needs an N x C x D1 x ... input; got shape "
                             f"{list(x.shape)}")
        if output_shape is not None and output_shape.shape != (x.ndim,):
            raise ValueError(f"MaxUnpool's output_shape input must hold {x.ndim} dims (one per "
                             f"dim of X); got shape {list(output_shape.shape)}")
        if kernel_shape is None or len(kernel_shape) != x.ndim - 2:
            raise ValueError(f"MaxUnpool needs kernel_shape with one value per spatial axis of "
                             f"its input {list(x.shape)}; got {kernel_shape}")
        win.unpooled_shape(x.shape[2:], kernel_shape, strides=strides, pads=pads)

    def run(self, x, indices, output_shape=None, kernel_shape=None, pads=None, strides=None):
        self.check(x, indices, output_shape, kernel_shape, pads, strides)
        if output_shape is not None:
            shape = tuple(int(d) for d in output_shape)
        else:
            shape = x.shape[:2] + win.unpooled_shape(x.shape[2:], kernel_shape,
                                                     strides=strides, pads=pads)
        size = int(np.prod(shape))
        flat = indices.reshape(-1)
        outside = (flat < 0) | (flat >= size)
        if outside.any():
            raise ValueError(f"MaxUnpool index {int(flat[outside][0])} is outside the output "
                             f"of shape {list(shape)} ({size} elements)")
        y = np.zeros(size, x.dtype)
        y[flat] = x.reshape(-1)
        return y.reshape(shape)


@register("LRN")
class LRN(OpImpl):
    """LRN: ``x / (bias + alpha / size * sum of x^2 over nearby channels) ^ beta``.

    The window covers ``floor((size - 1) / 2)`` channels before and ``ceil((size - 1) / 2)``
    after each channel, cut at the edges.
    """

    def run(self, x, alpha=0.0001, beta=0.75, bias=1.0, size=None):
        if size is None or size < 1:
            raise ValueError(f"LRN needs a positive size attribute; got {size}")
        dtype = pool_sum_dtype(x.dtype)
        squares = np.square(x.astype(dtype))
        before, after = (size - 1) // 2, size // 2
        padded = np.pad(squares, [(0, 0), (before, after)] + [(0, 0)] * (x.ndim - 2))
        channels = x.shape[1]
        square_sum = sum(padded[:, offset:offset + channels] for offset in range(size))
        scale = np.asarray(bias, dtype) + np.asarray(alpha / size, dtype) * square_sum
        return (x.astype(dtype) / scale ** np.asarray(beta, dtype)).astype(x.dtype)
