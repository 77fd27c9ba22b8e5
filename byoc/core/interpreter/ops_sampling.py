"""Sampling an image at computed coordinates: GridSample and AffineGrid.

GridSample reads ``X`` (N x C x D1 x ... x Dr) at the normalized coordinates of ``grid``
(N x O1 x ... x Or x r, where the last axis lists the coordinate of the *last* spatial axis
first: x, then y, then z). Interpolation is separable: along each spatial axis every sample
has a few taps (1 nearest, 2 linear, 4 cubic), each an index and a weight, and the result is
the sum over every combination of taps of the product of their weights times the pixel
there (:func:`interpolate`, shared with DeformConv). Weights and sums are float64, rounded
once to the input's dtype.
"""

from __future__ import annotations

import itertools
from typing import ClassVar, NamedTuple

import numpy as np

from byoc.core.interpreter.base import OpImpl, register
from byoc.core.interpreter.ops_shape import int_list

# Keys's cubic convolution coefficient, as PyTorch and onnxruntime use for GridSample.
CUBIC_ALPHA = -0.75
# Opset 16 names the modes bilinear and bicubic; opset 20 renamed them when GridSample
# became N-dimensional.
_MODES = {"bilinear": "linear", "linear": "linear", "bicubic": "cubic", "cubic": "cubic",
          "nearest": "nearest"}
_PADDING_MODES = ("zeros", "border", "reflection")


class Tap(NamedTuple):
    """One interpolation tap along one axis, for every sample: the pixel index, its weight,
    and whether the index lies inside the image (taps outside read 0)."""

    index: np.ndarray
    weight: np.ndarray
    inside: np.ndarray


def interpolate(image: np.ndarray, taps_per_axis: list[list[Tap]]) -> np.ndarray:
    """Sum over every combination of one tap per spatial axis of the product of their
    weights times the pixel they address (0 where a tap is outside).

    ``image`` is B x C x D1 x ... x Dr; each tap's arrays are B x P1 x ... (the sample
    positions). The result is B x C x P1 x ..., in float64.
    """
    positions = taps_per_axis[0][0].index.shape
    if 0 in image.shape[2:]:   # every tap is outside an empty image
        return np.zeros((image.shape[0], image.shape[1], *positions[1:]))
    channels_last = np.moveaxis(image, 1, -1).astype(np.float64, copy=False)
    batch = np.arange(image.shape[0]).reshape((-1,) + (1,) * (len(positions) - 1))
    result = np.zeros((*positions, image.shape[1]))
    for combination in itertools.product(*taps_per_axis):
        weight = np.prod([tap.weight * tap.inside for tap in combination], axis=0)
        index = tuple(np.where(tap.inside, tap.index, 0) for tap in combination)
        result += weight[..., None] * channels_last[(batch, *index)]
    return np.moveaxis(result, -1, 1)


def taps_along_axis(coords: np.ndarray, size: int, mode: str = "linear",
                    padding_mode: str = "zeros",
                    reflect_at: tuple[float, float] | None = None) -> list[Tap]:
    """The taps of pixel coordinates ``coords`` along an axis of ``size`` for ``mode``
    nearest (``coords`` already rounded), linear or cubic. With ``padding_mode`` border,
    taps outside the image are clamped to it; with reflection, reflected at ``reflect_at``
    (low and high bound)."""
    if mode == "nearest":
        offsets, weights = [0], [np.ones_like(coords)]
        base = coords.astype(np.int64)
    else:
        base = np.floor(coords)
        fraction = coords - base
        base = base.astype(np.int64)
        if mode == "linear":
            offsets, weights = [0, 1], [1.0 - fraction, fraction]
        else:
            offsets, weights = [-1, 0, 1, 2], _cubic_weights(fraction)
    taps = []
    for offset, weight in zip(offsets, weights):
        index = base + offset
        if padding_mode == "border":
            index = np.clip(index, 0, size - 1)
        elif padding_mode == "reflection":
            index = np.trunc(reflect(index.astype(np.float64), *reflect_at)).astype(np.int64)
        taps.append(Tap(index, weight, (index >= 0) & (index < size)))
    return taps


def _cubic_weights(fraction: np.ndarray) -> list[np.ndarray]:
    """Keys's cubic convolution weights of the taps at -1, 0, 1 and 2 from the sample."""
    a = CUBIC_ALPHA

    def near(t):  # |t| <= 1
        return ((a + 2) * t - (a + 3)) * t * t + 1

    def far(t):  # 1 < |t| < 2
        return ((a * t - 5 * a) * t + 8 * a) * t - 4 * a

    return [far(fraction + 1), near(fraction), near(1 - fraction), far(2 - fraction)]


def reflect(coords: np.ndarray, low: float, high: float) -> np.ndarray:
    """Coordinates reflected at ``low`` and ``high`` (repeatedly) until they lie between."""
    span = high - low
    if span <= 0:
        return np.full_like(coords, max(low, 0.0))
    below = coords < low
    distance = np.where(below, low - coords, coords - high)
    flips = np.floor(distance / span)
    rest = distance - flips * span
    towards_high = below == (flips % 2 == 0)
    reflected = np.where(towards_high, low + rest, high - rest)
    return np.where(below | (coords > high), reflected, coords)


@register("GridSample")
class GridSample(OpImpl):
    """Sample ``X`` at the normalized coordinates of ``grid`` (-1 and 1 are the outer edges
    of the first and last pixel, or their centres with ``align_corners``).

    ``mode`` nearest (rounding half to even), linear/bilinear or cubic/bicubic (Keys, alpha
    -0.75); ``padding_mode`` zeros (taps outside read 0), border (coordinates and taps
    outside the image clamp to its edge) or reflection (they reflect at its edges). Opset 16
    takes 4-D inputs only; from 20 any number of spatial axes (cubic: 2 only).
    """

    def check(self, x, grid, align_corners=0, mode="bilinear", padding_mode="zeros"):
        if mode not in _MODES:
            raise ValueError(f"GridSample mode {mode!r} is not one of {', '.join(_MODES)}")
        if padding_mode not in _PADDING_MODES:
            raise ValueError(f"GridSample padding_mode {padding_mode!r} is not one of "
                             f"{', '.join(_PADDING_MODES)}")
        spatial = x.ndim - 2
        if spatial < 1 or grid.shape != (x.shape[0], *grid.shape[1:-1], spatial):
            raise ValueError(f"grid of shape {list(grid.shape)} does not fit X of shape "
                             f"{list(x.shape)}: expected [{x.shape[0]}, output sizes..., "
                             f"{spatial}] with one output size per spatial axis")
        if self.opset and self.opset < 20 and x.ndim != 4:
            raise ValueError(f"GridSample before opset 20 takes 4-D input; X has shape "
                             f"{list(x.shape)}")
        if _MODES[mode] == "cubic" and spatial != 2:
            raise ValueError(f"cubic GridSample takes 4-D input; X has shape {list(x.shape)}")

    def run(self, x, grid, align_corners=0, mode="bilinear", padding_mode="zeros"):
        self.check(x, grid, align_corners, mode, padding_mode)
        mode = _MODES[mode]
        sizes = x.shape[2:]
        taps_per_axis = []
        for axis, size in enumerate(sizes):
            # The grid lists the last spatial axis's coordinate first.
            normalized = grid[..., len(sizes) - 1 - axis].astype(np.float64)
            if align_corners:
                coords, low, high = (normalized + 1) / 2 * (size - 1), 0.0, size - 1.0
            else:
                coords, low, high = ((normalized + 1) * size - 1) / 2, -0.5, size - 0.5
            if mode == "nearest":
                coords = np.rint(coords)
            # Linear and nearest sampling move a coordinate beyond the image onto it; cubic
            # sampling moves only its taps, as PyTorch (which defines the op) and
            # onnxruntime do.
            if mode != "cubic" and padding_mode == "border":
                coords = np.clip(coords, 0, size - 1)
            elif mode != "cubic" and padding_mode == "reflection":
                coords = reflect(coords, low, high)
            taps_per_axis.append(taps_along_axis(coords, size, mode, padding_mode, (low, high)))
        return interpolate(x, taps_per_axis).astype(x.dtype)


@register("AffineGrid")
class AffineGrid(OpImpl):
    """The GridSample grid of an affine transform: for each output position of ``size``
    (N x C x H x W, or N x C x D x H x W), ``theta`` (N x 2 x 3, or N x 3 x 4) times the
    position's normalized coordinates ``[x, y, (z,) 1]``. Normalized coordinates run from -1
    to 1 over the pixel centres with ``align_corners``, over the outer pixel edges without."""

    output_size_depends_on: ClassVar[tuple[str, ...]] = ("size",)

    def check(self, theta, size, align_corners=0):
        if size.shape not in ((4,), (5,)):
            raise ValueError(f"size must be [N, C, H, W] or [N, C, D, H, W]; it has shape "
                             f"{list(size.shape)}")
        spatial = size.shape[0] - 2
        if theta.ndim != 3 or theta.shape[1:] != (spatial, spatial + 1):
            raise ValueError(f"theta must have shape [N, {spatial}, {spatial + 1}] for a "
                             f"{spatial}-D size; it has shape {list(theta.shape)}")

    def run(self, theta, size, align_corners=0):
        self.check(theta, size, align_corners)
        batch, _, *spatial = int_list(size)
        if batch != theta.shape[0]:
            raise ValueError(f"size gives a batch of {batch}, theta holds {theta.shape[0]}")
        axes = []
        for length in reversed(spatial):   # x (the last axis) first
            if align_corners:
                # An axis of one pixel sits at -1, as the ONNX function body defines it for
                # depth (its formula divides by zero for height and width).
                axes.append(np.linspace(-1.0, 1.0, length))
            else:
                axes.append((np.arange(length, dtype=np.float64) * 2 + 1) / length - 1)
        # D x H x W x (x, y, z, 1) with x varying along W.
        positions = np.stack([*np.meshgrid(*axes[::-1], indexing="ij")[::-1],
                              np.ones(spatial)], axis=-1)
        grid = np.einsum("...k,nik->n...i", positions, theta.astype(np.float64))
        return grid.astype(theta.dtype)
