"""Selecting and rearranging elements by value: OneHot, NonZero, Compress, Unique,
ReverseSequence, CenterCropPad.

Several of these have outputs whose size depends on the values of an input, not only on its
shape (how many elements are non-zero, how many are unique...). byoc's IR is statically
typed, so such a node can only be imported when those inputs are known at import. Each such
class lists the ONNX names of those inputs in ``output_size_depends_on``: the importer sizes
the outputs by evaluating the node once those inputs are known (the others may be unknown),
and names them in its error when they are not.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from byoc.core.interpreter.base import OpImpl, register
from byoc.core.interpreter.ops_shape import int_list, normalize_axis


@register("OneHot")
class OneHot(OpImpl):
    """A ``depth``-long one-hot axis inserted at ``axis``: ``values[1]`` where the position
    equals the index, ``values[0]`` elsewhere. From opset 11 negative indices count from
    ``depth``; before, they are out of range (onnxruntime counts them from the end there
    too). An index out of range gives an all-off row. Non-integer indices and depth are
    truncated towards zero."""

    output_size_depends_on: ClassVar[tuple[str, ...]] = ("depth",)

    def check(self, indices, depth, values, axis=-1):
        normalize_axis(axis, indices.ndim + 1)
        if depth.size != 1:
            raise ValueError(f"depth must hold one value; it has shape {list(depth.shape)}")
        if values.shape != (2,):
            raise ValueError(f"values must be [off_value, on_value], a tensor of shape [2]; "
                             f"it has shape {list(values.shape)}")

    def run(self, indices, depth, values, axis=-1):
        self.check(indices, depth, values, axis=axis)
        size = int(depth.reshape(-1)[0])
        if size < 1:
            raise ValueError(f"depth {size} is not positive")
        positions = indices.astype(np.int64)
        if self.opset >= 11:
            positions = np.where(positions < 0, positions + size, positions)
        hot = positions[..., None] == np.arange(size)
        return np.moveaxis(np.where(hot, values[1], values[0]), -1,
                           normalize_axis(axis, indices.ndim + 1))


@register("NonZero")
class NonZero(OpImpl):
    """The indices of the non-zero elements, one row per input dimension and one column per
    element, in row-major order (int64). A scalar counts as a one-element vector, as in
    onnxruntime."""

    output_size_depends_on: ClassVar[tuple[str, ...]] = ("X",)

    def run(self, x):
        return np.array(np.nonzero(x.reshape(-1) if x.ndim == 0 else x), dtype=np.int64)


@register("Compress")
class Compress(OpImpl):
    """The slices along ``axis`` (of the flattened input without one) whose ``condition``
    entry is true. A condition shorter than the axis leaves the slices past its end out; one
    longer has its extra entries ignored, as onnxruntime does (the spec leaves that case
    open)."""

    output_size_depends_on: ClassVar[tuple[str, ...]] = ("condition",)

    def check(self, x, condition, axis=None):
        if condition.ndim != 1:
            raise ValueError(f"condition must be 1-D; it has shape {list(condition.shape)}")
        if axis is not None:
            normalize_axis(axis, x.ndim)

    def run(self, x, condition, axis=None):
        self.check(x, condition, axis=axis)
        if axis is None:
            x, axis = x.reshape(-1), 0
        axis = normalize_axis(axis, x.ndim)
        return np.compress(condition[:x.shape[axis]], x, axis=axis)


@register("Unique")
class Unique(OpImpl):
    """The unique elements (or, with ``axis``, unique slices along it), sorted ascending or,
    with ``sorted=0``, in order of first occurrence; then the index of each one's first
    occurrence, the index into the uniques of every input element (or slice), and how often
    each occurs. Without ``axis`` the input is flattened."""

    output_size_depends_on: ClassVar[tuple[str, ...]] = ("X",)

    def check(self, x, axis=None, sorted=1):
        if axis is not None:
            normalize_axis(axis, x.ndim)

    def run(self, x, axis=None, sorted=1):
        if axis is None:
            x, axis = x.reshape(-1), 0
        else:
            axis = normalize_axis(axis, x.ndim)
        uniques, first, inverse, counts = np.unique(x, return_index=True, return_inverse=True,
                                                    return_counts=True, axis=axis)
        inverse = inverse.reshape(-1)
        if not sorted:
            order = np.argsort(first, kind="stable")
            new_position = np.empty_like(order)
            new_position[order] = np.arange(len(order))
            uniques, first, counts = np.take(uniques, order, axis=axis), first[order], counts[order]
            inverse = new_position[inverse]
        return (uniques, first.astype(np.int64), inverse.astype(np.int64),
                counts.astype(np.int64))


@register("ReverseSequence")
class ReverseSequence(OpImpl):
    """Reverse the first ``sequence_lens[b]`` elements along ``time_axis`` of each batch entry
    ``b`` of ``batch_axis``; the rest of each sequence stays in place."""

    def check(self, x, sequence_lens, batch_axis=1, time_axis=0):
        if x.ndim < 2 or {batch_axis, time_axis} != {0, 1}:
            raise ValueError(f"batch_axis {batch_axis} and time_axis {time_axis} must be 0 and "
                             f"1 (one each) of an input of rank 2 or more (rank {x.ndim})")
        if sequence_lens.shape != (x.shape[batch_axis],):
            raise ValueError(f"sequence_lens has shape {list(sequence_lens.shape)}; it needs "
                             f"one length per batch entry ([{x.shape[batch_axis]}])")

    def run(self, x, sequence_lens, batch_axis=1, time_axis=0):
        self.check(x, sequence_lens, batch_axis=batch_axis, time_axis=time_axis)
        steps = x.shape[time_axis]
        lengths = sequence_lens.astype(np.int64)
        outside = (lengths < 0) | (lengths > steps)
        if outside.any():
            entry = int(np.argmax(outside))
            raise ValueError(f"sequence length {int(lengths[entry])} of batch entry {entry} is "
                             f"outside [0, {steps}], the length of time axis {time_axis}")
        time = np.arange(steps)[:, None]
        source = np.where(time < lengths, lengths - 1 - time, time)   # time x batch
        if time_axis > batch_axis:
            source = source.T
        return np.take_along_axis(x, source.reshape(source.shape + (1,) * (x.ndim - 2)),
                                  axis=time_axis)


@register("CenterCropPad")
class CenterCropPad(OpImpl):
    """Crop or zero-pad each of ``axes`` (all axes without them) to the size ``shape`` gives,
    keeping the content centred; an odd difference leaves the extra element at the end."""

    output_size_depends_on: ClassVar[tuple[str, ...]] = ("shape",)

    def check(self, x, shape, axes=None):
        chosen = list(range(x.ndim)) if axes is None else [normalize_axis(a, x.ndim)
                                                           for a in axes]
        if len(set(chosen)) != len(chosen):
            raise ValueError(f"axes {list(axes)} repeat a dimension")
        if shape.shape != (len(chosen),):
            raise ValueError(f"shape has shape {list(shape.shape)}; it needs one size per axis "
                             f"({len(chosen)})")

    def run(self, x, shape, axes=None):
        self.check(x, shape, axes=axes)
        chosen = range(x.ndim) if axes is None else [normalize_axis(a, x.ndim) for a in axes]
        sizes = list(x.shape)
        for axis, size in zip(chosen, int_list(shape)):
            if size < 0:
                raise ValueError(f"target size {size} for axis {axis} is negative")
            sizes[axis] = size
        result = np.zeros(sizes, x.dtype)
        source, target = [], []
        for have, want in zip(x.shape, sizes):
            kept = min(have, want)
            source.append(slice((have - kept) // 2, (have - kept) // 2 + kept))
            target.append(slice((want - kept) // 2, (want - kept) // 2 + kept))
        result[tuple(target)] = x[tuple(source)]
        return result
