"""Ops on image patches: Col2Im (patches back into an image) and DeformConv (a convolution
whose taps sample at learned offsets).

Both use the sliding-window geometry of :mod:`window`: kernel taps ``dilations`` apart,
moved ``strides`` at a time over the padded image.
"""

from __future__ import annotations

import math
from typing import ClassVar

import numpy as np

from byoc.core.interpreter import window as win
from byoc.core.interpreter.base import OpImpl, accumulation_dtype, register
from byoc.core.interpreter.ops_conv import channel_bias, check_bias, check_shapes
from byoc.core.interpreter.ops_sampling import interpolate, taps_along_axis
from byoc.core.interpreter.ops_shape import int_list


@register("Col2Im")
class Col2Im(OpImpl):
    """The inverse of im2col: ``input`` (N x C*prod(block_shape) x L) holds, per channel and
    block tap, one column of L sliding-block positions; each value is added into an image of
    ``image_shape`` at the pixel its tap and block cover (overlapping blocks sum), and the
    pads are cropped off."""

    output_size_depends_on: ClassVar[tuple[str, ...]] = ("image_shape", "block_shape")

    def check(self, x, image_shape, block_shape, dilations=None, pads=None, strides=None):
        if image_shape.ndim != 1 or block_shape.shape != image_shape.shape:
            raise ValueError(f"image_shape (shape {list(image_shape.shape)}) and block_shape "
                             f"(shape {list(block_shape.shape)}) must be 1-D and of one length")
        if x.ndim != 3:
            raise ValueError(f"input must be N x C*prod(block_shape) x L; it has shape "
                             f"{list(x.shape)}")

    def run(self, x, image_shape, block_shape, dilations=None, pads=None, strides=None):
        self.check(x, image_shape, block_shape)
        image, block = int_list(image_shape), int_list(block_shape)
        window = win.plan(image, block, strides=strides, dilations=dilations, pads=pads)
        taps = math.prod(block)
        if taps < 1 or x.shape[1] % taps:
            raise ValueError(f"input dimension 1 ({x.shape[1]}) is not a multiple of the "
                             f"{taps} taps of block_shape {block}")
        if x.shape[2] != math.prod(window.out_shape):
            grid = " x ".join(map(str, window.out_shape))
            raise ValueError(f"input has {x.shape[2]} blocks; an image of {image} with "
                             f"block_shape {block}, strides, dilations and pads as given has "
                             f"{math.prod(window.out_shape)} ({grid})")
        batch, channels = x.shape[0], x.shape[1] // taps
        dtype = accumulation_dtype(x.dtype)
        columns = x.astype(dtype).reshape(batch, channels, taps, *window.out_shape)
        padded = np.zeros((batch, channels, *(n + b + e for n, b, e in
                                              zip(image, window.pads_begin, window.pads_end))),
                          dtype)
        for index, region in enumerate(win.taps(padded, window)):
            region += columns[:, :, index]   # region is a view into padded
        crop = tuple(slice(b, b + n) for b, n in zip(window.pads_begin, image))
        return padded[(slice(None), slice(None)) + crop].astype(x.dtype)


@register("DeformConv")
class DeformConv(OpImpl):
    """Deformable convolution: Conv, except that kernel tap ``k`` of output position ``o``
    reads the input at ``o * strides - pads + k * dilations + offset``, interpolated
    linearly (positions outside the input read 0), and is weighted by ``mask`` (1 when
    omitted). ``offset`` holds, per ``offset_group`` (a block of input channels), kernel tap
    and spatial axis, one offset per output position."""

    def check(self, x, w, offset, bias=None, mask=None, dilations=None, group=1,
              kernel_shape=None, offset_group=1, pads=None, strides=None) -> win.Window:
        """Also returns the sliding-window geometry the shapes were checked against."""
        check_shapes(x, w, group, kernel_shape, 1, "DeformConv")
        check_bias(bias, w.shape[0])
        window = win.plan(x.shape[2:], w.shape[2:], strides=strides, dilations=dilations,
                          pads=pads)
        taps, spatial = math.prod(w.shape[2:]), x.ndim - 2
        if offset_group < 1 or x.shape[1] % offset_group:
            raise ValueError(f"offset_group {offset_group} does not divide the {x.shape[1]} "
                             f"input channels")
        expected = [x.shape[0], offset_group * taps * spatial, *window.out_shape]
        if list(offset.shape) != expected:
            raise ValueError(f"offset has shape {list(offset.shape)}; expected {expected} "
                             f"(offset_group x kernel taps x {spatial} spatial axes, then the "
                             f"output sizes the kernel, strides, dilations and pads give)")
        expected = [x.shape[0], offset_group * taps, *window.out_shape]
        if mask is not None and list(mask.shape) != expected:
            raise ValueError(f"mask has shape {list(mask.shape)}; expected {expected}")
        return window

    def run(self, x, w, offset, bias=None, mask=None, dilations=None, group=1,
            kernel_shape=None, offset_group=1, pads=None, strides=None):
        window = self.check(x, w, offset, bias, mask, dilations, group, kernel_shape,
                            offset_group, pads, strides)
        batch, channels, *sizes = x.shape
        spatial, taps = len(sizes), math.prod(w.shape[2:])
        dtype = accumulation_dtype(x.dtype)
        shifts = offset.astype(dtype).reshape(batch * offset_group, taps, spatial,
                                              *window.out_shape)
        # Where each tap would read in a plain convolution, per axis: taps x output sizes.
        tap_positions = np.array(list(win.tap_indices(window))).T
        taps_per_axis = []
        for axis, size in enumerate(sizes):
            grid_shape = [1] * (spatial + 1)
            grid_shape[axis + 1] = window.out_shape[axis]
            outputs = np.arange(window.out_shape[axis]).reshape(grid_shape)
            taps_shape = [taps] + [1] * spatial
            base = (outputs * window.strides[axis] - window.pads_begin[axis]
                    + tap_positions[axis].reshape(taps_shape) * window.dilations[axis])
            taps_per_axis.append(taps_along_axis(base + shifts[:, :, axis], size))
        grouped = x.reshape(batch * offset_group, channels // offset_group, *sizes)
        # N x C x taps x output positions, then weighted by the mask per offset group.
        columns = interpolate(grouped, taps_per_axis).reshape(batch, offset_group, -1, taps,
                                                              *window.out_shape)
        if mask is not None:
            columns = columns * mask.astype(dtype).reshape(batch, offset_group, 1, taps,
                                                           *window.out_shape)
        columns = columns.reshape(batch, group, -1, math.prod(window.out_shape))
        weights = w.astype(dtype).reshape(group, w.shape[0] // group, -1)
        y = np.matmul(weights, columns).reshape(batch, w.shape[0], *window.out_shape)
        if bias is not None:
            y += channel_bias(bias.astype(dtype), y.ndim)
        return y.astype(x.dtype)
