"""Scatters: ScatterElements (and its opset 9-10 name Scatter), ScatterND, TensorScatter.

Each writes ``updates`` into a copy of ``data`` at the positions ``indices`` give. Negative
indices count from the end of their axis. Index bounds depend on values, so ``check`` (which
sees only shapes at import) checks shapes, and ``run`` names the first out-of-range index.
With a reduction, duplicate indices combine all their updates with the existing value
(``numpy.ufunc.at`` is unbuffered, so every duplicate counts); without one, the last update
of a duplicate wins, as in the spec's loops and onnxruntime.
"""

from __future__ import annotations

import numpy as np

from byoc.core.interpreter.base import OpImpl, register
from byoc.core.interpreter.ops_shape import normalize_axis

# Reduction attribute -> the unbuffered ufunc that folds an update into the existing value.
_REDUCTIONS = {"add": np.add, "mul": np.multiply, "max": np.maximum, "min": np.minimum}
# The opset that introduced each reduction; "none" has always been there.
_REDUCTION_SINCE = {"none": 0, "add": 16, "mul": 16, "max": 18, "min": 18}


def check_reduction(reduction: str, opset: int, op: str) -> None:
    since = _REDUCTION_SINCE.get(reduction)
    if since is None:
        raise ValueError(f"{op} reduction {reduction!r} is not one of "
                         f"{', '.join(_REDUCTION_SINCE)}")
    if opset and opset < since:
        raise ValueError(f"{op} reduction {reduction!r} needs opset {since} or later; the "
                         f"model imports opset {opset}")


def within_bounds(indices: np.ndarray, data_shape: tuple[int, ...],
                  axis: int | None) -> np.ndarray:
    """``indices`` into data of ``data_shape``, negative ones counted from the end of their
    dimension. With ``axis``, every index addresses that dimension (ScatterElements);
    without, the last axis of ``indices`` runs over data's leading dimensions (ScatterND).

    Raises a ValueError naming the first index out of range, where it is and its bounds.
    """
    dims = np.arange(indices.shape[-1]) if axis is None else np.array([axis])
    sizes = np.array(data_shape, dtype=np.int64)[dims]   # broadcasts along the last axis
    indices = indices.astype(np.int64)
    outside = (indices < -sizes) | (indices >= sizes)
    if outside.any():
        position = tuple(int(i) for i in np.argwhere(outside)[0])
        dim = axis if axis is not None else position[-1]
        size = data_shape[dim]
        raise ValueError(f"index {int(indices[position])} at position {list(position)} of "
                         f"indices is out of range for dimension {dim} of data, of size "
                         f"{size} (valid: {-size} to {size - 1})")
    return np.where(indices < 0, indices + sizes, indices)


def scatter(data: np.ndarray, target: tuple, updates: np.ndarray,
            reduction: str) -> np.ndarray:
    """A copy of ``data`` with ``updates`` written (or folded by ``reduction``) at the
    fancy index ``target`` (one index array per leading dimension of data, broadcast
    together; ``updates`` has their shape plus data's remaining dimensions)."""
    result = data.copy()
    if reduction != "none":
        _REDUCTIONS[reduction].at(result, target, updates)
        return result
    # numpy leaves open which of several writes to one element wins; the spec's loop (and
    # onnxruntime) let the last one win, so only each element's last write is made.
    addressed = data.shape[:len(target)]
    flat = np.ravel_multi_index(np.broadcast_arrays(*target), addressed).reshape(-1)
    _, last_from_end = np.unique(flat[::-1], return_index=True)
    last = len(flat) - 1 - last_from_end
    result[np.unravel_index(flat[last], addressed)] = \
        updates.reshape(len(flat), *data.shape[len(target):])[last]
    return result


@register("ScatterElements", "Scatter")
class ScatterElements(OpImpl):
    """``output[..., indices[i, j, ...], ...] = updates[i, j, ...]`` with the index replacing
    the position along ``axis``; ``reduction`` (opset 16: add, mul; 18: max, min) folds the
    update into the existing value instead. Scatter (opsets 9-10) is the same op without a
    reduction; its negative indices, invalid before opset 11, count from the end as later
    (and in onnxruntime)."""

    def check(self, data, indices, updates, axis=0, reduction="none"):
        check_reduction(reduction, self.opset, self.node.op_type)
        axis = normalize_axis(axis, data.ndim)
        if not data.ndim == indices.ndim == updates.ndim:
            raise ValueError(f"data, indices and updates must have the same rank; got shapes "
                             f"{list(data.shape)}, {list(indices.shape)} and "
                             f"{list(updates.shape)}")
        if indices.shape != updates.shape:
            raise ValueError(f"indices of shape {list(indices.shape)} and updates of shape "
                             f"{list(updates.shape)} must have the same shape")
        if any(i > d for k, (i, d) in enumerate(zip(indices.shape, data.shape)) if k != axis):
            raise ValueError(f"indices of shape {list(indices.shape)} reach past data of shape "
                             f"{list(data.shape)} in a dimension other than axis {axis}")

    def run(self, data, indices, updates, axis=0, reduction="none"):
        self.check(data, indices, updates, axis=axis, reduction=reduction)
        axis = normalize_axis(axis, data.ndim)
        positions = list(np.indices(indices.shape, sparse=True))
        positions[axis] = within_bounds(indices, data.shape, axis)
        return scatter(data, tuple(positions), updates, reduction)


@register("ScatterND")
class ScatterND(OpImpl):
    """``output[indices[i, ..., :]] = updates[i, ...]``: each row of the last axis of
    ``indices`` addresses an element (or, when shorter than data's rank, a slice) of data;
    ``reduction`` (opset 16: add, mul; 18: max, min) folds the update in instead."""

    def check(self, data, indices, updates, reduction="none"):
        check_reduction(reduction, self.opset, self.node.op_type)
        if indices.ndim < 1 or not 1 <= indices.shape[-1] <= data.ndim:
            raise ValueError(f"the last dimension of indices (shape {list(indices.shape)}) must "
                             f"be between 1 and the rank of data ({data.ndim})")
        depth = indices.shape[-1]
        expected = indices.shape[:-1] + data.shape[depth:]
        if updates.shape != expected:
            raise ValueError(f"updates has shape {list(updates.shape)}; indices of shape "
                             f"{list(indices.shape)} into data of shape {list(data.shape)} "
                             f"need updates of shape {list(expected)}")

    def run(self, data, indices, updates, reduction="none"):
        self.check(data, indices, updates, reduction=reduction)
        depth = indices.shape[-1]
        rows = within_bounds(indices, data.shape, None).reshape(-1, depth)
        return scatter(data, tuple(rows.T), updates.reshape(len(rows), *data.shape[depth:]),
                       reduction)


@register("TensorScatter")
class TensorScatter(OpImpl):
    """A key/value-cache update (opset 24): ``update`` is written into a copy of
    ``past_cache`` along the sequence ``axis``, starting for each batch entry at its
    ``write_indices`` value (0 without them). In mode ``circular`` the positions wrap around
    the cache's length; in mode ``linear`` they must fit in it."""

    def check(self, past_cache, update, write_indices=None, axis=-2, mode="linear"):
        if mode not in ("linear", "circular"):
            raise ValueError(f"TensorScatter mode {mode!r} is not linear or circular")
        axis = normalize_axis(axis, past_cache.ndim)
        if axis == 0:
            raise ValueError("TensorScatter axis must not be the batch axis 0")
        if update.ndim != past_cache.ndim or any(
                u != c for k, (u, c) in enumerate(zip(update.shape, past_cache.shape))
                if k != axis) or update.shape[axis] > past_cache.shape[axis]:
            raise ValueError(f"update of shape {list(update.shape)} does not fit past_cache of "
                             f"shape {list(past_cache.shape)}: the shapes must agree except "
                             f"along axis {axis}, where update may be shorter")
        if write_indices is not None and write_indices.shape != past_cache.shape[:1]:
            raise ValueError(f"write_indices has shape {list(write_indices.shape)}; it needs "
                             f"one index per batch entry ([{past_cache.shape[0]}])")

    def run(self, past_cache, update, write_indices=None, axis=-2, mode="linear"):
        self.check(past_cache, update, write_indices, axis=axis, mode=mode)
        axis = normalize_axis(axis, past_cache.ndim)
        batch, capacity, length = past_cache.shape[0], past_cache.shape[axis], update.shape[axis]
        starts = (np.zeros(batch, np.int64) if write_indices is None
                  else write_indices.astype(np.int64))
        positions = starts[:, None] + np.arange(length)
        if mode == "circular":
            positions %= capacity
        elif length and ((starts < 0) | (starts + length > capacity)).any():
            entry = int(np.argmax((starts < 0) | (starts + length > capacity)))
            raise ValueError(f"write index {int(starts[entry])} of batch entry {entry} leaves "
                             f"no room for {length} updates in a cache of length {capacity} "
                             f"(mode linear; use mode circular to wrap around)")
        # One index per (batch entry, update position), broadcast over the other axes.
        shape = [1] * past_cache.ndim
        shape[0], shape[axis] = batch, length
        present = past_cache.copy()
        np.put_along_axis(present, positions.reshape(shape), update, axis)
        return present
