"""Sliding-window geometry shared by the convolution and pooling ops.

A window op slides a kernel of ``kernel[i]`` taps, ``dilations[i]`` apart, over the spatial
axes of an ``N x C x D1 x ... x Dn`` tensor in steps of ``strides[i]``. :func:`plan` turns the
ONNX attributes into output sizes and begin/end pads; :func:`unpooled_shape` runs that
geometry backwards, for MaxUnpool; :func:`pad_for_windows` pads the input so every window
lies inside it; :func:`taps` gives, for each kernel tap, the strided view of
the padded input that the tap reads at every output position. Looping over taps (not pixels)
keeps the ops vectorized.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Iterator, Sequence

import numpy as np

AUTO_PADS = ("NOTSET", "SAME_UPPER", "SAME_LOWER", "VALID")


@dataclass(frozen=True)
class Window:
    """The resolved geometry of one window op over ``len(kernel)`` spatial axes."""

    kernel: tuple[int, ...]
    strides: tuple[int, ...]
    dilations: tuple[int, ...]
    pads_begin: tuple[int, ...]
    pads_end: tuple[int, ...]
    out_shape: tuple[int, ...]

    @property
    def extents(self) -> tuple[int, ...]:
        """How many input positions one dilated window spans, per axis."""
        return tuple((k - 1) * d + 1 for k, d in zip(self.kernel, self.dilations))


def spatial_attr(values: Sequence[int] | None, rank: int, default: int,
                 name: str) -> tuple[int, ...]:
    """An attribute with one int per spatial axis (``strides``, ``dilations``...), defaulted."""
    if values is None or len(values) == 0:
        return (default,) * rank
    if len(values) != rank:
        raise ValueError(f"{name} has {len(values)} values, but the input has {rank} spatial "
                         f"axes; give one value per spatial axis")
    return tuple(int(v) for v in values)


def explicit_pads(pads: Sequence[int] | None,
                  rank: int) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Split ONNX ``pads`` ``[x1_begin, x2_begin, ..., x1_end, x2_end, ...]`` in two."""
    if pads is None or len(pads) == 0:
        return (0,) * rank, (0,) * rank
    if len(pads) != 2 * rank:
        raise ValueError(f"pads has {len(pads)} values, expected {2 * rank} (a begin and an end "
                         f"value per spatial axis)")
    if any(p < 0 for p in pads):
        raise ValueError(f"pads {list(pads)} has a negative value")
    return tuple(int(p) for p in pads[:rank]), tuple(int(p) for p in pads[rank:])


def split_same(total: int, auto_pad: str) -> tuple[int, int]:
    """Split a SAME padding total: SAME_UPPER puts the odd extra at the end, SAME_LOWER at the
    beginning."""
    small, large = total // 2, total - total // 2
    return (small, large) if auto_pad == "SAME_UPPER" else (large, small)


def plan(in_shape: Sequence[int], kernel: Sequence[int], *, strides=None, dilations=None,
         pads=None, auto_pad: str = "NOTSET", ceil_mode: int = 0) -> Window:
    """Resolve the output size and padding of a window op, as the ONNX spec defines them."""
    rank = len(in_shape)
    kernel = spatial_attr(kernel, rank, 1, "kernel_shape")
    strides = spatial_attr(strides, rank, 1, "strides")
    dilations = spatial_attr(dilations, rank, 1, "dilations")
    if auto_pad not in AUTO_PADS:
        raise ValueError(f"auto_pad {auto_pad!r} is not one of {', '.join(AUTO_PADS)}")
    extents = [(k - 1) * d + 1 for k, d in zip(kernel, dilations)]
    if auto_pad in ("SAME_UPPER", "SAME_LOWER"):
        out_shape = [-(-n // s) for n, s in zip(in_shape, strides)]
        # A stride larger than the kernel can leave nothing to pad; the total never goes negative.
        totals = [max(0, (o - 1) * s + e - n)
                  for o, s, e, n in zip(out_shape, strides, extents, in_shape)]
        begin, end = zip(*(split_same(t, auto_pad) for t in totals))
    else:
        if auto_pad == "VALID":
            begin, end = (0,) * rank, (0,) * rank
        else:
            begin, end = explicit_pads(pads, rank)
        out_shape = []
        for n, before, after, s, ext in zip(in_shape, begin, end, strides, extents):
            span = n + before + after - ext
            if span < 0:
                raise ValueError(f"the kernel window spans {ext} positions (dilations "
                                 f"included), more than the padded input's "
                                 f"{n + before + after}")
            size = (-(-span // s) if ceil_mode else span // s) + 1
            # ceil_mode must not add a window that starts in the end padding (ONNX, PyTorch).
            if ceil_mode and (size - 1) * s >= n + before:
                size -= 1
            out_shape.append(size)
    return Window(kernel, strides, dilations, tuple(begin), tuple(end), tuple(out_shape))


def unpooled_shape(pooled_shape: Sequence[int], kernel: Sequence[int], *, strides=None,
                   pads=None) -> tuple[int, ...]:
    """The spatial shape an input of pooling had, given the pooled shape: the largest one
    that pools to it, ``(pooled - 1) * stride + kernel - pads``."""
    rank = len(pooled_shape)
    kernel = spatial_attr(kernel, rank, 1, "kernel_shape")
    strides = spatial_attr(strides, rank, 1, "strides")
    begin, end = explicit_pads(pads, rank)
    shape = tuple((n - 1) * s + k - b - e
                  for n, s, k, b, e in zip(pooled_shape, strides, kernel, begin, end))
    if any(d < 0 for d in shape):
        raise ValueError(f"pads {list(pads)} are larger than the unpooled extent "
                         f"{[(n - 1) * s + k for n, s, k in zip(pooled_shape, strides, kernel)]}")
    return shape


def pad_for_windows(x: np.ndarray, window: Window, value=0) -> np.ndarray:
    """Pad the spatial axes of ``x`` with ``value`` so every window of ``window`` fits.

    ceil_mode windows may reach past the end pads; they get the same ``value``, and ops that
    must not count those positions correct for it themselves.
    """
    in_shape = x.shape[2:]
    widths = [(0, 0), (0, 0)]
    for n, before, after, o, s, ext in zip(in_shape, window.pads_begin, window.pads_end,
                                           window.out_shape, window.strides, window.extents):
        widths.append((before, max(after, (o - 1) * s + ext - n - before)))
    if all(w == (0, 0) for w in widths):
        return x
    return np.pad(x, widths, constant_values=value)


def tap_indices(window: Window) -> Iterator[tuple[int, ...]]:
    """The kernel taps in row-major order (the order the kernel's weights are stored in)."""
    return itertools.product(*(range(k) for k in window.kernel))


def taps(padded: np.ndarray, window: Window) -> Iterator[np.ndarray]:
    """For each kernel tap in row-major order, the ``N x C x out_shape`` view of ``padded``
    (from :func:`pad_for_windows`) that the tap reads at every output position."""
    for tap in tap_indices(window):
        index = (slice(None), slice(None)) + tuple(
            slice(t * d, t * d + (o - 1) * s + 1, s)
            for t, d, o, s in zip(tap, window.dilations, window.out_shape, window.strides))
        yield padded[index]
