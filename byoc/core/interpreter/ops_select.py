"""Selecting elements by index or by rank: GatherElements, GatherND and TopK.

Indices may be negative (counting from the end of their axis). An index outside its axis is
an error naming the index and where it is, as in onnxruntime; it is found only when the node
runs, since index values are data.
"""

from __future__ import annotations

import math

import numpy as np

from byoc.core.interpreter.base import OpImpl, register
from byoc.core.interpreter.ops_shape import normalize_axis


def checked_positions(indices: np.ndarray, length: int, what: str,
                      component: tuple[int, ...] = ()) -> np.ndarray:
    """``indices`` into an axis of ``length`` as positions in ``[0, length)``; a ValueError
    naming the first index outside ``[-length, length)`` and its place in the node's indices
    (``indices`` may be the slice ``[..., component]`` of them)."""
    indices = np.asarray(indices, np.int64)
    outside = (indices < -length) | (indices >= length)
    if outside.any():
        place = tuple(int(i) for i in np.argwhere(outside)[0])
        raise ValueError(f"index {int(indices[place])} at {list(place + component)} of the "
                         f"indices is out of range for {what} of size {length} (valid: "
                         f"{-length} to {length - 1})")
    return np.where(indices < 0, indices + length, indices)


@register("GatherElements")
class GatherElements(OpImpl):
    """``output[i0, ..., ik, ...] = data[i0, ..., indices[i0, ..., ik, ...], ...]`` with the
    index replacing the coordinate of ``axis``; the output has the indices' shape."""

    def check(self, data, indices, axis=0):
        if data.ndim < 1 or indices.ndim != data.ndim:
            raise ValueError(f"GatherElements needs data and indices of the same rank (1 or "
                             f"more), got shapes {list(data.shape)} and {list(indices.shape)}")
        axis = normalize_axis(axis, data.ndim)
        for dim, (size, bound) in enumerate(zip(indices.shape, data.shape)):
            if dim != axis and size > bound:
                raise ValueError(f"indices of shape {list(indices.shape)} exceed data of shape "
                                 f"{list(data.shape)} in dim {dim}; only dim {axis} (the axis) "
                                 f"may be longer")

    def run(self, data, indices, axis=0):
        self.check(data, indices, axis)
        axis = normalize_axis(axis, data.ndim)
        coordinates = list(np.indices(indices.shape, sparse=True))
        coordinates[axis] = checked_positions(indices, data.shape[axis], f"axis {axis}")
        return data[tuple(coordinates)]


@register("GatherND")
class GatherND(OpImpl):
    """Gather slices of ``data`` by index tuples, the last dim of ``indices``.

    The first ``batch_dims`` dims of data and indices are a shared batch: each tuple indexes
    the data of its own batch. A tuple of ``m`` indices picks the slice
    ``data[batch..., i1, ..., im]``; the output's shape is
    ``indices.shape[:-1] + data.shape[batch_dims + m:]``.
    """

    def check(self, data, indices, batch_dims=0):
        if data.ndim < 1 or indices.ndim < 1:
            raise ValueError(f"GatherND needs data and indices of rank 1 or more, got shapes "
                             f"{list(data.shape)} and {list(indices.shape)}")
        if not 0 <= batch_dims < min(data.ndim, indices.ndim):
            raise ValueError(f"batch_dims {batch_dims} must be at least 0 and less than the "
                             f"ranks of data ({data.ndim}) and indices ({indices.ndim})")
        if data.shape[:batch_dims] != indices.shape[:batch_dims]:
            raise ValueError(f"the first {batch_dims} (batch) dims of data "
                             f"{list(data.shape)} and indices {list(indices.shape)} differ")
        if indices.shape[-1] > data.ndim - batch_dims:
            raise ValueError(f"index tuples of {indices.shape[-1]} values are longer than the "
                             f"{data.ndim - batch_dims} dims of data {list(data.shape)} after "
                             f"its {batch_dims} batch dims")

    def run(self, data, indices, batch_dims=0):
        self.check(data, indices, batch_dims)
        depth = indices.shape[-1]
        batches = math.prod(data.shape[:batch_dims])
        tuples = math.prod(indices.shape[batch_dims:-1])
        slices = data.reshape((batches,) + data.shape[batch_dims:])
        selectors = [np.broadcast_to(np.arange(batches)[:, None], (batches, tuples))]
        selectors += [checked_positions(indices[..., k], data.shape[batch_dims + k],
                                        f"dim {batch_dims + k} of the data",
                                        component=(k,)).reshape(batches, tuples)
                      for k in range(depth)]
        gathered = slices[tuple(selectors)]
        return gathered.reshape(indices.shape[:-1] + data.shape[batch_dims + depth:])


@register("TopK")
class TopK(OpImpl):
    """The ``k`` largest (or smallest) elements along ``axis`` and their int64 indices.

    ``k`` is an attribute before opset 10 and a one-element input from then on. Results are
    ordered best first; of equal values the one with the lower index comes first, as the spec
    says, and NaN counts as greater than every number (so it is selected first by largest=1
    and last by largest=0), as in onnxruntime. ``sorted=0`` leaves the order to the
    implementation, so the sorted order is returned for it too.
    """

    def check(self, x, k_input=None, axis=-1, largest=1, sorted=1, k=None):
        if x.ndim < 1:
            raise ValueError("TopK needs an input of rank 1 or more, got a scalar")
        normalize_axis(axis, x.ndim)
        if self.opset >= 10 and (k_input is None or k_input.size != 1):
            raise ValueError("TopK needs K as an input holding one value")

    def run(self, x, k_input=None, axis=-1, largest=1, sorted=1, k=None):
        self.check(x, k_input, axis)
        axis = normalize_axis(axis, x.ndim)
        count = int(k_input.reshape(-1)[0]) if self.opset >= 10 else k
        length = x.shape[axis]
        if count is None or not 0 <= count <= length:
            raise ValueError(f"TopK k={count} must be between 0 and the length {length} of "
                             f"axis {axis}")
        # A stable ascending sort keeps equal values in index order and puts NaN last. For the
        # largest, sort the reversed axis and reverse the result: equal values then come out
        # in index order again, and NaN first.
        if largest:
            from_end = np.argsort(np.flip(x, axis), axis=axis, kind="stable")
            order = length - 1 - np.flip(from_end, axis)
        else:
            order = np.argsort(x, axis=axis, kind="stable")
        indices = np.take(order, np.arange(count), axis=axis).astype(np.int64)
        return np.take_along_axis(x, indices, axis=axis), indices
