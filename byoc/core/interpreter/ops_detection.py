"""Object-detection ops: NonMaxSuppression, RoiAlign, MaxRoiPool.

The region ops follow onnxruntime's kernels (which the ONNX reference reproduces), quirks
included: RoiAlign's ``max`` mode takes the largest of the four weighted corner values of
each sample point rather than the largest interpolated value, and MaxRoiPool rounds region
corners half away from zero, as C's ``round`` does.
"""

from __future__ import annotations

import math
from typing import ClassVar

import numpy as np

from byoc.core.interpreter.base import OpImpl, register


def _box_corners(boxes: np.ndarray, center_point_box: int) -> tuple[np.ndarray, ...]:
    """``y_min, x_min, y_max, x_max`` of boxes given as ``[y1, x1, y2, x2]`` (any two opposite
    corners) or, with ``center_point_box``, as ``[x_center, y_center, width, height]``."""
    if center_point_box:
        x, y, half_w, half_h = boxes[:, 0], boxes[:, 1], boxes[:, 2] / 2, boxes[:, 3] / 2
        return y - half_h, x - half_w, y + half_h, x + half_w
    return (np.minimum(boxes[:, 0], boxes[:, 2]), np.minimum(boxes[:, 1], boxes[:, 3]),
            np.maximum(boxes[:, 0], boxes[:, 2]), np.maximum(boxes[:, 1], boxes[:, 3]))


def overlaps(corners: tuple[np.ndarray, ...], box: int, others: np.ndarray) -> np.ndarray:
    """The intersection over union of box ``box`` with each box of ``others`` (indices into
    ``corners``, the boxes' ``y_min, x_min, y_max, x_max``).

    Boxes that do not overlap, and boxes of zero area, have an IoU of 0, so they never
    suppress each other.
    """
    y0, x0, y1, x1 = corners
    height = np.minimum(y1[box], y1[others]) - np.maximum(y0[box], y0[others])
    width = np.minimum(x1[box], x1[others]) - np.maximum(x0[box], x0[others])
    intersection = np.where((height > 0) & (width > 0), height * width, 0.0)
    area = (y1[box] - y0[box]) * (x1[box] - x0[box])
    other_areas = (y1[others] - y0[others]) * (x1[others] - x0[others])
    union = area + other_areas - intersection
    valid = (intersection > 0) & (area > 0) & (other_areas > 0) & (union > 0)
    return np.where(valid, intersection / np.where(valid, union, 1.0), 0.0)


def _scalar(value: np.ndarray | None, default):
    """An optional scalar input (an empty tensor counts as omitted)."""
    if value is None or value.size == 0:
        return default
    return value.reshape(-1)[0]


@register("NonMaxSuppression")
class NonMaxSuppression(OpImpl):
    """Greedy non-maximum suppression per batch entry and class.

    Boxes scoring above ``score_threshold`` are taken in decreasing score order (the lower
    box index first on a tie); a box is kept unless its IoU with a box kept before exceeds
    ``iou_threshold``; at most ``max_output_boxes_per_class`` are kept (none when it is 0 or
    omitted). Each kept box gives a row ``[batch, class, box]`` (int64).
    """

    output_size_depends_on: ClassVar[tuple[str, ...]] = (
        "boxes", "scores", "max_output_boxes_per_class", "iou_threshold", "score_threshold")

    def check(self, boxes, scores, max_output_boxes_per_class=None, iou_threshold=None,
              score_threshold=None, center_point_box=0):
        if center_point_box not in (0, 1):
            raise ValueError(f"center_point_box {center_point_box} is not 0 or 1")
        if boxes.ndim != 3 or boxes.shape[2] != 4:
            raise ValueError(f"boxes must have shape [batches, boxes, 4]; got "
                             f"{list(boxes.shape)}")
        if scores.ndim != 3 or (scores.shape[0], scores.shape[2]) != boxes.shape[:2]:
            raise ValueError(f"scores of shape {list(scores.shape)} do not fit boxes of shape "
                             f"{list(boxes.shape)}: expected [{boxes.shape[0]}, classes, "
                             f"{boxes.shape[1]}]")
        for name, value in (("max_output_boxes_per_class", max_output_boxes_per_class),
                            ("iou_threshold", iou_threshold),
                            ("score_threshold", score_threshold)):
            if value is not None and value.size > 1:
                raise ValueError(f"{name} must hold one value; it has shape "
                                 f"{list(value.shape)}")

    def run(self, boxes, scores, max_output_boxes_per_class=None, iou_threshold=None,
            score_threshold=None, center_point_box=0):
        self.check(boxes, scores, max_output_boxes_per_class, iou_threshold, score_threshold,
                   center_point_box=center_point_box)
        limit = max(int(_scalar(max_output_boxes_per_class, 0)), 0)
        iou_limit = _scalar(iou_threshold, 0.0)
        if not 0 <= iou_limit <= 1:
            raise ValueError(f"iou_threshold {iou_limit} is outside [0, 1]")
        min_score = _scalar(score_threshold, None)
        selected = []
        for batch in range(scores.shape[0] if limit else 0):
            corners = _box_corners(boxes[batch].astype(np.float64), center_point_box)
            for class_index, class_scores in enumerate(scores[batch]):
                remaining = np.argsort(-class_scores.astype(np.float64), kind="stable")
                if min_score is not None:
                    remaining = remaining[class_scores[remaining] > min_score]
                kept = 0
                # The best remaining box is kept; the boxes it suppresses are dropped.
                while remaining.size and kept < limit:
                    best, remaining = remaining[0], remaining[1:]
                    selected.append((batch, class_index, int(best)))
                    kept += 1
                    remaining = remaining[overlaps(corners, best, remaining) <= iou_limit]
        return np.array(selected, dtype=np.int64).reshape(-1, 3)


@register("RoiAlign")
class RoiAlign(OpImpl):
    """Average (or max) of bilinearly interpolated samples over an ``output_height`` x
    ``output_width`` grid of bins in each region of interest.

    ``rois`` rows are ``[x1, y1, x2, y2]`` in input coordinates times ``spatial_scale``. With
    ``coordinate_transformation_mode`` half_pixel (the default from opset 16) the corners are
    shifted by half a pixel; with output_half_pixel (opset 10's only behaviour) they are not,
    and a region is at least one pixel wide and high. Each bin holds ``sampling_ratio``
    samples per axis, or ceil(region size / bins) when it is 0.
    """

    def check(self, x, rois, batch_indices, coordinate_transformation_mode=None, mode="avg",
              **_):
        if x.ndim != 4:
            raise ValueError(f"X must be N x C x H x W; it has shape {list(x.shape)}")
        if rois.ndim != 2 or rois.shape[1] != 4:
            raise ValueError(f"rois must have shape [regions, 4]; got {list(rois.shape)}")
        if batch_indices.shape != rois.shape[:1]:
            raise ValueError(f"batch_indices has shape {list(batch_indices.shape)}; it needs "
                             f"one batch index per region ([{rois.shape[0]}])")
        if mode not in ("avg", "max"):
            raise ValueError(f"RoiAlign mode {mode!r} is not avg or max")
        if coordinate_transformation_mode not in (None, "half_pixel", "output_half_pixel"):
            raise ValueError(f"coordinate_transformation_mode {coordinate_transformation_mode!r} "
                             f"is not half_pixel or output_half_pixel")

    def run(self, x, rois, batch_indices, coordinate_transformation_mode=None, mode="avg",
            output_height=1, output_width=1, sampling_ratio=0, spatial_scale=1.0):
        self.check(x, rois, batch_indices, coordinate_transformation_mode, mode)
        if coordinate_transformation_mode is None:
            coordinate_transformation_mode = "half_pixel" if self.opset >= 16 \
                else "output_half_pixel"
        half_pixel = coordinate_transformation_mode == "half_pixel"
        height, width = x.shape[2:]
        result = np.zeros((rois.shape[0], x.shape[1], output_height, output_width),
                          np.float64)
        for region, (box, batch) in enumerate(zip(rois.astype(np.float64), batch_indices)):
            if not 0 <= batch < x.shape[0]:
                raise ValueError(f"batch index {int(batch)} of region {region} is out of range "
                                 f"for a batch of {x.shape[0]}")
            start_x, start_y, end_x, end_y = box * spatial_scale - (0.5 if half_pixel else 0.0)
            region_h, region_w = end_y - start_y, end_x - start_x
            if not half_pixel:
                region_h, region_w = max(region_h, 1.0), max(region_w, 1.0)
            ys, y_count = self._samples(start_y, region_h, output_height, sampling_ratio)
            xs, x_count = self._samples(start_x, region_w, output_width, sampling_ratio)
            image = x[batch].astype(np.float64)
            corners = [weight_y[:, None] * weight_x * image[:, row[:, None], col]
                       for row, weight_y in _corners(ys, height)
                       for col, weight_x in _corners(xs, width)]
            # C x (bins * samples) x (bins * samples), samples of one bin adjacent.
            shape = (x.shape[1], output_height, y_count, output_width, x_count)
            if mode == "avg":
                bins = sum(corners).reshape(shape).sum(axis=(2, 4))
                result[region] = bins / max(y_count * x_count, 1)
            elif y_count and x_count:
                result[region] = np.max(corners, axis=0).reshape(shape).max(axis=(2, 4))
        return result.astype(x.dtype)

    @staticmethod
    def _samples(start: float, size: float, bins: int, sampling_ratio: int):
        """The sample coordinates along one axis, bin by bin, and the samples per bin."""
        count = sampling_ratio if sampling_ratio > 0 else max(math.ceil(size / bins), 0)
        bin_size = size / bins
        offsets = (np.arange(count) + 0.5) * bin_size / max(count, 1)
        return (start + np.arange(bins)[:, None] * bin_size + offsets).reshape(-1), count


def _corners(coords: np.ndarray, size: int):
    """The two bilinear taps (indices and weights) of each sample coordinate along an axis
    of ``size``, as onnxruntime computes them: a sample more than a pixel outside the image
    weighs 0, one just outside is clamped to the edge."""
    outside = (coords < -1.0) | (coords > size)
    coords = np.maximum(coords, 0.0)
    low = np.floor(coords).astype(np.int64)
    at_edge = low >= size - 1
    low = np.where(at_edge, size - 1, low)
    high = np.where(at_edge, size - 1, low + 1)
    fraction = np.where(at_edge, 0.0, coords - low)
    inside = ~outside
    return [(low, (1.0 - fraction) * inside), (high, fraction * inside)]


@register("MaxRoiPool")
class MaxRoiPool(OpImpl):
    """Max pooling over a ``pooled_shape`` grid of bins in each region of interest.

    ``rois`` rows are ``[batch, x1, y1, x2, y2]``; the corners times ``spatial_scale`` are
    rounded to pixels and the region includes both. An empty bin gives 0.
    """

    def check(self, x, rois, pooled_shape=None, spatial_scale=1.0):
        if x.ndim != 4:
            raise ValueError(f"X must be N x C x H x W; it has shape {list(x.shape)}")
        if rois.ndim != 2 or rois.shape[1] != 5:
            raise ValueError(f"rois must have shape [regions, 5] (batch, x1, y1, x2, y2); got "
                             f"{list(rois.shape)}")
        if pooled_shape is None or len(pooled_shape) != 2 or min(pooled_shape) < 1:
            raise ValueError(f"pooled_shape {pooled_shape} must be two positive sizes")

    def run(self, x, rois, pooled_shape=None, spatial_scale=1.0):
        self.check(x, rois, pooled_shape, spatial_scale)
        pooled_h, pooled_w = pooled_shape
        height, width = x.shape[2:]
        result = np.zeros((rois.shape[0], x.shape[1], pooled_h, pooled_w), x.dtype)
        for region, row in enumerate(rois.astype(np.float64)):
            batch = int(row[0])
            if not 0 <= batch < x.shape[0]:
                raise ValueError(f"batch index {batch} of region {region} is out of range for "
                                 f"a batch of {x.shape[0]}")
            # C's round: half away from zero.
            x1, y1, x2, y2 = np.sign(row[1:]) * np.floor(np.abs(row[1:]) * spatial_scale + 0.5)
            starts_y, ends_y = _bin_bounds(y1, y2, pooled_h, height)
            starts_x, ends_x = _bin_bounds(x1, x2, pooled_w, width)
            for i, (top, bottom) in enumerate(zip(starts_y, ends_y)):
                for j, (left, right) in enumerate(zip(starts_x, ends_x)):
                    if bottom > top and right > left:
                        result[region, :, i, j] = x[batch, :, top:bottom, left:right].max(
                            axis=(1, 2))
        return result


def _bin_bounds(start: float, end: float, bins: int, size: int):
    """The first and past-the-last pixel of each bin of a region from ``start`` to ``end``
    (inclusive) along an axis of ``size``."""
    bin_size = max(end - start + 1, 1) / bins
    index = np.arange(bins)
    first = np.clip(np.floor(index * bin_size) + start, 0, size).astype(np.int64)
    last = np.clip(np.ceil((index + 1) * bin_size) + start, 0, size).astype(np.int64)
    return first, last
