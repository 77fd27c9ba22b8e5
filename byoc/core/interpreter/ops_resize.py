"""Resize and Upsample: separable nearest, linear and cubic interpolation.

Interpolation is separable, so each resized axis is done in turn: every output position is
mapped to a source coordinate (``coordinate_transformation_mode``), then either the nearest
source element is taken or a few neighbouring elements ("taps") are blended with kernel
weights. Taps that fall outside the input are clamped to its edge, as the ONNX reference does.
"""

from __future__ import annotations

import math
from typing import Callable

import numpy as np

from byoc.core.interpreter.base import OpImpl, register
from byoc.core.interpreter.ops_shape import int_list, normalize_axis

NEAREST_MODES: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "round_prefer_floor": lambda x: np.ceil(x - 0.5),
    "round_prefer_ceil": lambda x: np.floor(x + 0.5),
    "floor": np.floor,
    "ceil": np.ceil,
}


def source_coordinates(mode: str, out_len: int, in_len: int, scale: float,
                        roi: tuple[float, float]) -> np.ndarray:
    """The source coordinate of each output position along one axis.

    The arithmetic is float32, as in onnxruntime: where the exact coordinate is an integer, a
    float32 scale such as 0.6 lands on it in float32 but just below it in float64, and nearest
    rounding would then pick another element. Like the ONNX reference (and unlike
    onnxruntime), "length_resized" is ``scale * in_len``, which differs from the integer output
    length when the scale does not divide evenly.
    """
    y = np.arange(out_len, dtype=np.float32)
    scale, length = np.float32(scale), np.float32(in_len)
    resized = scale * length
    if mode == "half_pixel":
        x = (y + 0.5) / scale - 0.5
    elif mode == "half_pixel_symmetric":
        x = length / 2 * (1 - out_len / resized) + (y + 0.5) / scale - 0.5
    elif mode == "pytorch_half_pixel":
        x = (y + 0.5) / scale - 0.5 if resized > 1 else np.zeros_like(y)
    elif mode == "align_corners":
        x = y * (length - 1) / (resized - 1) if resized != 1 else np.zeros_like(y)
    elif mode == "asymmetric":
        x = y / scale
    elif mode == "tf_half_pixel_for_nn":
        x = (y + 0.5) / scale
    elif mode == "tf_crop_and_resize":
        start, end = np.float32(roi[0]), np.float32(roi[1])
        if resized == 1:
            x = np.full_like(y, (start + end) / 2 * (length - 1))
        else:
            x = start * (length - 1) + y * (end - start) * (length - 1) / (resized - 1)
    else:
        raise ValueError(f"coordinate_transformation_mode {mode!r} is not supported")
    return x.astype(np.float64)


def _linear_kernel(distance: np.ndarray) -> np.ndarray:
    return np.clip(1 - np.abs(distance), 0, 1)


def _cubic_kernel(distance: np.ndarray, a: float) -> np.ndarray:
    """Keys' cubic convolution kernel with coefficient ``a``."""
    d = np.abs(distance)
    near = ((a + 2) * d - (a + 3)) * d * d + 1
    far = ((a * d - 5 * a) * d + 8 * a) * d - 4 * a
    return np.where(d <= 1, near, np.where(d < 2, far, 0.0))


def taps(source: np.ndarray, in_len: int, scale: float, mode: str, cubic_a: float,
          antialias: bool, exclude_outside: bool) -> tuple[np.ndarray, np.ndarray]:
    """Input indices and weights, both (out_len, taps), for linear or cubic interpolation.

    Antialiasing a downscale stretches the kernel by ``1/scale``, so more taps are needed.
    """
    if mode == "cubic":
        kernel, support = (lambda distance: _cubic_kernel(distance, cubic_a)), 2
    else:
        kernel, support = _linear_kernel, 1
    stretch = min(scale, 1.0) if antialias else 1.0
    first = math.floor(-support / stretch) + 1
    offsets = np.arange(first, 2 - first)
    # Taps are placed around the element left of the source point; at an exact integer that
    # is the point minus one (its weight then comes out zero), which is the ONNX convention.
    positions = (np.ceil(source) - 1)[:, None] + offsets[None, :]
    weights = kernel((positions - source[:, None]) * stretch)
    if exclude_outside:
        weights = np.where((positions < 0) | (positions > in_len - 1), 0.0, weights)
    if antialias or exclude_outside:
        total = weights.sum(axis=1, keepdims=True)
        weights = weights / np.where(total == 0, 1.0, total)
    return np.clip(positions, 0, in_len - 1).astype(np.intp), weights


def _along(vector: np.ndarray, axis: int, rank: int) -> np.ndarray:
    """Reshape a per-position array (its first dim along ``axis``) to broadcast in a tensor."""
    return vector.reshape(vector.shape + (1,) * (rank - axis - vector.ndim))


def interpolate(x: np.ndarray, axes: list[int], scales: list[float], out_lens: list[int], *,
                mode: str, coordinate_mode: str,
                nearest: Callable[[np.ndarray, float], np.ndarray],
                cubic_a: float = -0.75, antialias: bool = False, exclude_outside: bool = False,
                roi: list[tuple[float, float]] | None = None,
                extrapolation_value: float = 0.0) -> np.ndarray:
    """Resize ``x`` along ``axes`` to ``out_lens``, with ``nearest(source, scale)`` choosing
    the element in nearest mode."""
    if mode not in ("nearest", "linear", "cubic"):
        raise ValueError(f"Resize mode {mode!r} is not nearest, linear or cubic")
    dtype = x.dtype
    result = x if mode == "nearest" else x.astype(np.float64)
    for i, axis in enumerate(axes):
        in_len, out_len, scale = x.shape[axis], out_lens[i], scales[i]
        axis_roi = roi[i] if roi is not None else (0.0, 1.0)
        cropping = coordinate_mode == "tf_crop_and_resize" and axis_roi != (0.0, 1.0)
        if scale == 1 and out_len == in_len and not cropping:
            continue
        source = source_coordinates(coordinate_mode, out_len, in_len, scale, axis_roi)
        if mode == "nearest":
            index = np.clip(nearest(source, scale), 0, in_len - 1).astype(np.intp)
            result = np.take(result, index, axis=axis)
        else:
            index, weights = taps(source, in_len, scale, mode, cubic_a, antialias,
                                   exclude_outside)
            gathered = np.take(result, index, axis=axis)
            result = (gathered * _along(weights, axis, gathered.ndim)).sum(axis=axis + 1)
        if coordinate_mode == "tf_crop_and_resize":
            outside = (source < 0) | (source > in_len - 1)
            result = np.where(_along(outside, axis, result.ndim),
                              np.asarray(extrapolation_value).astype(result.dtype), result)
    if dtype.kind in "iu" and result.dtype != dtype:
        info = np.iinfo(dtype)
        return np.clip(np.rint(result), info.min, info.max).astype(dtype)
    return result.astype(dtype, copy=False)


def scaled_length(length: int, scale: float) -> int:
    """``floor(length * scale)`` in float32, the scales' own precision: 10 x 0.7 is then 7, as
    in onnxruntime, where float64 would give 6.99999988 and floor it to 6."""
    return math.floor(np.float32(length) * np.float32(scale))


def present(values: np.ndarray | None) -> np.ndarray | None:
    """Opsets 11-12 pass an empty tensor for an unused roi or scales input."""
    return values if values is not None and values.size else None


def legacy_nearest(source: np.ndarray, scale: float) -> np.ndarray:
    # Upsample and Resize-10 name no rounding rule; onnxruntime truncates when upscaling and
    # rounds up when downscaling, and the ONNX reference repeats elements for integer scales.
    return np.floor(source) if scale >= 1 else np.ceil(source)


def _legacy_resize(x: np.ndarray, scales: np.ndarray, mode: str) -> np.ndarray:
    """Upsample and Resize-10: scales for every dim, asymmetric coordinates."""
    factors = np.asarray(scales, dtype=np.float64).reshape(-1).tolist()
    if len(factors) != x.ndim:
        raise ValueError(f"{len(factors)} scales for a tensor of rank {x.ndim}")
    out_lens = [scaled_length(n, s) for n, s in zip(x.shape, factors)]
    return interpolate(x, list(range(x.ndim)), factors, out_lens,
                       mode=mode, coordinate_mode="asymmetric", nearest=legacy_nearest)


@register("Resize")
class Resize(OpImpl):
    """Resize by ``scales`` or to ``sizes`` (opset 10 takes only scales and behaves like
    Upsample). ``axes`` and ``keep_aspect_ratio_policy`` (opset 18) restrict and constrain the
    resized dims; ``roi`` matters only for tf_crop_and_resize."""

    def run(self, x, *inputs, mode="nearest", coordinate_transformation_mode="half_pixel",
            nearest_mode="round_prefer_floor", cubic_coeff_a=-0.75, exclude_outside=0,
            extrapolation_value=0.0, antialias=0, axes=None, keep_aspect_ratio_policy="stretch"):
        if self.opset < 11:
            return _legacy_resize(x, inputs[0], mode)
        roi, scales, sizes = (list(inputs) + [None] * 3)[:3]
        roi, scales, sizes = present(roi), present(scales), present(sizes)
        axes = [normalize_axis(a, x.ndim) for a in axes] if axes else list(range(x.ndim))
        in_lens = [x.shape[a] for a in axes]
        if scales is not None:
            factors = np.asarray(scales, dtype=np.float64).reshape(-1).tolist()
            if len(factors) != len(axes):
                raise ValueError(f"Resize has {len(factors)} scales for {len(axes)} axes")
            out_lens = [scaled_length(n, s) for n, s in zip(in_lens, factors)]
        elif sizes is not None:
            out_lens = int_list(sizes)
            if len(out_lens) != len(axes):
                raise ValueError(f"Resize has {len(out_lens)} sizes for {len(axes)} axes")
            factors = [o / n for o, n in zip(out_lens, in_lens)]
            if keep_aspect_ratio_policy != "stretch":
                factors, out_lens = keep_aspect(factors, in_lens, keep_aspect_ratio_policy)
        else:
            raise ValueError("Resize needs either scales or sizes")
        if nearest_mode not in NEAREST_MODES:
            raise ValueError(f"Resize nearest_mode {nearest_mode!r} is not supported")
        pick = NEAREST_MODES[nearest_mode]
        if roi is not None:
            bounds = np.asarray(roi, dtype=np.float64).reshape(-1).tolist()
            roi = list(zip(bounds[:len(axes)], bounds[len(axes):]))
        elif coordinate_transformation_mode == "tf_crop_and_resize":
            raise ValueError("Resize with tf_crop_and_resize needs the roi input")
        return interpolate(x, axes, factors, out_lens, mode=mode,
                           coordinate_mode=coordinate_transformation_mode,
                           nearest=lambda source, scale: pick(source),
                           cubic_a=cubic_coeff_a, antialias=bool(antialias),
                           exclude_outside=bool(exclude_outside), roi=roi,
                           extrapolation_value=extrapolation_value)


def keep_aspect(factors: list[float], in_lens: list[int],
                 policy: str) -> tuple[list[float], list[int]]:
    """One scale for all resized axes: the smallest (not_larger) or largest (not_smaller)."""
    if policy == "not_larger":
        scale = min(factors)
    elif policy == "not_smaller":
        scale = max(factors)
    else:
        raise ValueError(f"keep_aspect_ratio_policy {policy!r} is not stretch, not_larger or "
                         f"not_smaller")
    return [scale] * len(in_lens), [math.floor(scale * n + 0.5) for n in in_lens]


@register("Upsample")
class Upsample(OpImpl):
    """Upsample (deprecated in opset 10): ``scales`` is an attribute in opset 7, an input
    from 9."""

    def run(self, x, scales_input=None, mode="nearest", scales=None):
        return _legacy_resize(x, scales_input if scales_input is not None else scales, mode)
