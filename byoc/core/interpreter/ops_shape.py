"""Shape and data movement: reshapes, transposes, slicing, gathering, padding, constants.

These ops move or copy elements and never change their values or dtype; several return views
of their input, which the interpreter never writes to.
"""

from __future__ import annotations

import math

import numpy as np

from byoc.core.interpreter.base import OpImpl, register
from byoc.core.ir import TensorType


def int_list(values) -> list[int] | None:
    """An integer attribute or 1-D input as a list of Python ints; None stays None."""
    if values is None:
        return None
    return np.asarray(values, dtype=np.int64).reshape(-1).tolist()


def normalize_axis(axis: int, rank: int) -> int:
    """``axis`` in ``[-rank, rank)`` mapped to ``[0, rank)``."""
    if not -rank <= axis < rank:
        raise ValueError(f"axis {axis} is out of range for a tensor of rank {rank}")
    return axis + rank if axis < 0 else axis


@register("Reshape")
class Reshape(OpImpl):
    """Reshape; a 0 copies the input's dim unless ``allowzero``, a -1 is inferred.

    Opsets before 5 give the target as the ``shape`` attribute.
    """

    def run(self, data, target=None, allowzero=0, shape=None):
        dims = int_list(target if target is not None else shape)
        if not allowzero:
            dims = [data.shape[i] if d == 0 else d for i, d in enumerate(dims)]
        return data.reshape(dims)


@register("Flatten")
class Flatten(OpImpl):
    """Flatten to 2-D: the dims before ``axis`` become rows, the rest columns."""

    def run(self, x, axis=1):
        if not -x.ndim <= axis <= x.ndim:
            raise ValueError(f"axis {axis} is out of range for a tensor of rank {x.ndim}")
        axis = axis + x.ndim if axis < 0 else axis
        return x.reshape(math.prod(x.shape[:axis]), math.prod(x.shape[axis:]))


@register("Transpose")
class Transpose(OpImpl):
    """Transpose; without ``perm`` the dims are reversed."""

    def run(self, x, perm=None):
        return np.transpose(x, perm)


@register("Squeeze")
class Squeeze(OpImpl):
    """Remove size-1 dims: those in ``axes`` (attribute before opset 13, input from 13),
    or all of them when no axes are given."""

    def run(self, data, axes_input=None, axes=None):
        chosen = int_list(axes_input) if axes_input is not None else axes
        if not chosen:
            return np.squeeze(data)
        return np.squeeze(data, axis=tuple(normalize_axis(a, data.ndim) for a in chosen))


@register("Unsqueeze")
class Unsqueeze(OpImpl):
    """Insert size-1 dims at ``axes`` of the output (attribute before opset 13, input from 13)."""

    def run(self, data, axes_input=None, axes=None):
        chosen = int_list(axes_input) if axes_input is not None else list(axes)
        out_rank = data.ndim + len(chosen)
        positions = [normalize_axis(a, out_rank) for a in chosen]
        if len(set(positions)) != len(positions):
            raise ValueError(f"Unsqueeze axes {chosen} repeat a dimension")
        return np.expand_dims(data, tuple(positions))


@register("Concat")
class Concat(OpImpl):
    def run(self, *inputs, axis):
        return np.concatenate(inputs, axis=normalize_axis(axis, inputs[0].ndim))


@register("Split")
class Split(OpImpl):
    """Split along ``axis`` into the node's outputs.

    Chunk sizes come from ``split`` (attribute before opset 13, input from 13); without them
    the chunks are equal, except that from opset 18 the last one may be smaller.
    """

    def run(self, x, split_input=None, axis=0, split=None, num_outputs=None):
        axis = normalize_axis(axis, x.ndim)
        sizes = int_list(split_input) if split_input is not None else split
        length = x.shape[axis]
        if not sizes:
            count = num_outputs or len(self.node.outputs)
            chunk = -(-length // count)
            sizes = [max(0, min(chunk, length - i * chunk)) for i in range(count)]
        if sum(sizes) != length or len(sizes) != len(self.node.outputs):
            raise ValueError(f"split sizes {list(sizes)} do not divide dim {axis} of length "
                             f"{length} into {len(self.node.outputs)} outputs")
        return tuple(np.split(x, np.cumsum(sizes)[:-1], axis=axis))


@register("Slice")
class Slice(OpImpl):
    """Slice; ``starts``/``ends``/``axes`` are attributes before opset 10, inputs (with
    ``steps``) from 10.

    ONNX clamps out-of-range bounds exactly as Python slicing does, so the bounds are used as
    Python slice bounds directly.
    """

    def run(self, data, starts_input=None, ends_input=None, axes_input=None, steps_input=None,
            starts=None, ends=None, axes=None):
        if starts_input is not None:
            starts, ends = int_list(starts_input), int_list(ends_input)
            axes = int_list(axes_input)
        steps = int_list(steps_input) or [1] * len(starts)
        axes = axes if axes is not None else range(len(starts))
        if not len(starts) == len(ends) == len(axes) == len(steps):
            raise ValueError("Slice starts, ends, axes and steps differ in length")
        index = [slice(None)] * data.ndim
        for start, end, axis, step in zip(starts, ends, axes, steps):
            if step == 0:
                raise ValueError("Slice steps must not be 0")
            index[normalize_axis(axis, data.ndim)] = slice(start, end, step)
        return data[tuple(index)]


@register("Gather")
class Gather(OpImpl):
    """Gather along ``axis``; negative indices count from the end."""

    def run(self, data, indices, axis=0):
        return np.take(data, indices, axis=normalize_axis(axis, data.ndim))


@register("Pad")
class Pad(OpImpl):
    """Pad in mode constant, reflect, edge or wrap.

    ``pads`` and ``value`` are attributes before opset 11 and inputs from 11; the ``axes``
    input (opset 18) restricts them to some dims. Negative pads crop.
    """

    def run(self, data, pads_input=None, constant_value=None, axes_input=None,
            mode="constant", pads=None, value=0.0):
        amounts = int_list(pads_input) if pads_input is not None else list(pads)
        axes = int_list(axes_input) if axes_input is not None else list(range(data.ndim))
        if len(amounts) != 2 * len(axes):
            raise ValueError(f"Pad has {len(amounts)} pads for {len(axes)} axes; it needs two "
                             f"per axis")
        crop = [slice(None)] * data.ndim
        widths = [(0, 0)] * data.ndim
        for i, axis in enumerate(axes):
            axis = normalize_axis(axis, data.ndim)
            before, after = amounts[i], amounts[len(axes) + i]
            crop[axis] = slice(max(-before, 0), data.shape[axis] - max(-after, 0))
            widths[axis] = (max(before, 0), max(after, 0))
        data = data[tuple(crop)]
        if mode == "constant":
            fill = value if constant_value is None or constant_value.size == 0 \
                else constant_value.reshape(-1)[0]
            return np.pad(data, widths, mode="constant", constant_values=fill)
        if mode in ("reflect", "edge", "wrap"):
            return np.pad(data, widths, mode=mode)
        raise ValueError(f"Pad mode {mode!r} is not one of constant, reflect, edge, wrap")


@register("Expand")
class Expand(OpImpl):
    """Broadcast to ``shape`` bidirectionally (a 1 in ``shape`` keeps the input's dim)."""

    def run(self, x, shape):
        target = np.broadcast_shapes(x.shape, tuple(int_list(shape)))
        # broadcast_to gives a read-only view with zero strides; callers get a real tensor.
        return np.broadcast_to(x, target).copy()


@register("Tile")
class Tile(OpImpl):
    def run(self, x, repeats):
        return np.tile(x, int_list(repeats))


@register("Shape")
class Shape(OpImpl):
    """The input's dims ``start:end`` (opset 15) as int64; bounds clamp like Python's."""

    def run(self, x, start=0, end=None):
        return np.array(x.shape[start:end], dtype=np.int64)


@register("ConstantOfShape")
class ConstantOfShape(OpImpl):
    """A tensor of ``shape`` filled with the one element of ``value`` (float32 0 by default)."""

    def run(self, shape, value=None):
        fill = np.zeros(1, np.float32) if value is None else np.asarray(value).reshape(-1)
        return np.full(int_list(shape), fill[0], dtype=fill.dtype)


@register("Range")
class Range(OpImpl):
    """``start + i * delta`` for ``i < ceil((limit - start) / delta)``.

    From opset 27, float16 and bfloat16 are computed in the ``stash_type`` precision (float32
    by default).
    """

    def run(self, start, limit, delta, stash_type=1):
        dtype = start.dtype
        compute = dtype
        if dtype.name in ("float16", "bfloat16") and self.opset >= 27:
            compute = np.dtype(np.float64 if stash_type == 11 else np.float32)
        start, limit, delta = (np.asarray(v, compute).reshape(()) for v in (start, limit, delta))
        count = max(math.ceil(float(limit - start) / float(delta)), 0)
        return (start + np.arange(count, dtype=compute) * delta).astype(dtype)


@register("Identity")
class Identity(OpImpl):
    def run(self, x):
        return x


@register("Dropout")
class Dropout(OpImpl):
    """Dropout: at inference (the usual case) the identity, with an all-kept mask.

    The mask is bool from opset 10 and the input's dtype before. In training mode (opset 12's
    ``training_mode`` input set) with a ratio above 0, each element is kept with probability
    ``1 - ratio`` and scaled by ``1 / (1 - ratio)``. The draw is numpy's MT19937 generator
    seeded with the ``seed`` attribute (uniform numbers, kept where at least ``ratio``), as
    onnx's own reference draws it, so a seeded node gives the same mask every run; without a
    seed, each run draws anew, as the specification says.
    """

    def run(self, data, ratio_input=None, training_mode=None, ratio=0.5, seed=None):
        drop_ratio = float(ratio_input) if ratio_input is not None else ratio
        training = training_mode is not None and bool(training_mode)
        if not 0 <= drop_ratio < 1 and training:
            raise ValueError(f"Dropout's ratio is {drop_ratio}; it must be in [0, 1)")
        if not training or drop_ratio == 0:
            kept = np.ones(data.shape, bool)
            output = data
        else:
            kept = np.random.RandomState(seed).uniform(0, 1.0, data.shape) >= drop_ratio
            output = (data * kept / (1 - drop_ratio)).astype(data.dtype)
        if len(self.node.outputs) < 2:
            return output
        return output, kept.astype(self._mask_dtype(data.dtype))

    def infer_types(self, input_types, **attrs):
        data = input_types[0]
        mask = TensorType(self._mask_dtype(data.dtype), data.shape)
        return [data, mask][:len(self.node.outputs)]

    def _mask_dtype(self, data_dtype: np.dtype) -> np.dtype:
        return np.dtype(bool) if self.opset >= 10 else np.dtype(data_dtype)


@register("Constant")
class Constant(OpImpl):
    """The tensor held by whichever ``value*`` attribute is set (floats are float32, ints
    int64)."""

    def run(self, value=None, value_float=None, value_floats=None, value_int=None,
            value_ints=None):
        if value is not None:
            return np.asarray(value)
        if value_float is not None:
            return np.array(value_float, dtype=np.float32)
        if value_floats is not None:
            return np.array(value_floats, dtype=np.float32)
        if value_int is not None:
            return np.array(value_int, dtype=np.int64)
        if value_ints is not None:
            return np.array(value_ints, dtype=np.int64)
        raise ValueError("Constant has none of the attributes value, value_float(s), "
                         "value_int(s); give one of them")


def _check_blocks(x: np.ndarray, blocksize: int, op: str) -> None:
    if x.ndim != 4 or blocksize < 1:
        raise ValueError(f"{op} needs a 4-D NCHW input and a positive blocksize, got shape "
                         f"{list(x.shape)} and blocksize {blocksize}")


@register("DepthToSpace")
class DepthToSpace(OpImpl):
    """Move channel blocks into space; mode DCR (depth-column-row) or CRD."""

    def run(self, x, blocksize, mode="DCR"):
        _check_blocks(x, blocksize, "DepthToSpace")
        n, c, h, w = x.shape
        b = blocksize
        if c % (b * b):
            raise ValueError(f"DepthToSpace: {c} channels do not divide by blocksize² {b * b}")
        if mode == "DCR":
            blocks = x.reshape(n, b, b, c // (b * b), h, w).transpose(0, 3, 4, 1, 5, 2)
        elif mode == "CRD":
            blocks = x.reshape(n, c // (b * b), b, b, h, w).transpose(0, 1, 4, 2, 5, 3)
        else:
            raise ValueError(f"DepthToSpace mode {mode!r} is not DCR or CRD")
        return blocks.reshape(n, c // (b * b), h * b, w * b)


@register("SpaceToDepth")
class SpaceToDepth(OpImpl):
    """Move spatial blocks into channels; mode DCR (the only one before opset 28) or CRD."""

    def run(self, x, blocksize, mode="DCR"):
        _check_blocks(x, blocksize, "SpaceToDepth")
        n, c, h, w = x.shape
        b = blocksize
        if h % b or w % b:
            raise ValueError(f"SpaceToDepth: spatial dims {h}x{w} do not divide by blocksize {b}")
        blocks = x.reshape(n, c, h // b, b, w // b, b)
        if mode == "DCR":
            blocks = blocks.transpose(0, 3, 5, 1, 2, 4)
        elif mode == "CRD":
            blocks = blocks.transpose(0, 1, 3, 5, 2, 4)
        else:
            raise ValueError(f"SpaceToDepth mode {mode!r} is not DCR or CRD")
        return blocks.reshape(n, c * b * b, h // b, w // b)
