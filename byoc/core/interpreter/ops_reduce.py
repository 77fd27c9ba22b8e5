"""Reductions over axes, and ArgMax/ArgMin."""

from __future__ import annotations

from abc import abstractmethod

import numpy as np

from byoc.core import dtypes
from byoc.core.interpreter.base import OpImpl, register
from byoc.core.interpreter.ops_shape import int_list, normalize_axis


def _accumulator(dtype: np.dtype) -> np.dtype:
    """The dtype to accumulate in: float16 sums drift badly, so they are done in float32."""
    return np.dtype(np.float32) if dtype == np.float16 else dtype


class Reduce(OpImpl):
    """A reduction over ``axes``, given as an attribute in older opsets (ReduceSum before 13,
    the others before 18) and as an input in newer ones. No axes means all of them, unless
    ``noop_with_empty_axes`` is set: then nothing is reduced, which for ReduceL2 still maps each
    element to its absolute value, as in the ONNX reference and onnxruntime."""

    def run(self, data, axes_input=None, axes=None, keepdims=1, noop_with_empty_axes=0):
        chosen = int_list(axes_input) if axes_input is not None else axes
        if not chosen and not noop_with_empty_axes:
            chosen = range(data.ndim)
        axis = tuple(sorted({normalize_axis(a, data.ndim) for a in chosen or ()}))
        with np.errstate(invalid="ignore", divide="ignore"):
            result = self.reduce(dtypes.widened(data), axis, bool(keepdims))
        return np.asarray(result).astype(data.dtype, copy=False)

    @abstractmethod
    def reduce(self, data: np.ndarray, axis: tuple[int, ...], keepdims: bool) -> np.ndarray:
        """Implemented by each subclass."""


@register("ReduceSum")
class ReduceSum(Reduce):
    def reduce(self, data, axis, keepdims):
        return np.sum(data, axis=axis, keepdims=keepdims, dtype=_accumulator(data.dtype))


@register("ReduceMean")
class ReduceMean(Reduce):
    def reduce(self, data, axis, keepdims):
        return np.mean(data, axis=axis, keepdims=keepdims,
                       dtype=_accumulator(data.dtype) if data.dtype.kind == "f" else None)


@register("ReduceProd")
class ReduceProd(Reduce):
    def reduce(self, data, axis, keepdims):
        return np.prod(data, axis=axis, keepdims=keepdims, dtype=_accumulator(data.dtype))


@register("ReduceL2")
class ReduceL2(Reduce):
    """``sqrt(sum(x²))``; integer inputs are reduced in float64 and truncated back."""

    def reduce(self, data, axis, keepdims):
        wide = data.astype(np.float64 if data.dtype.kind in "iub" else _accumulator(data.dtype))
        return np.sqrt(np.sum(wide * wide, axis=axis, keepdims=keepdims))


@register("ReduceL1")
class ReduceL1(Reduce):
    """``sum(|x|)``; integers sum in their own type and wrap, as onnxruntime's do."""

    def reduce(self, data, axis, keepdims):
        return np.sum(np.abs(data), axis=axis, keepdims=keepdims, dtype=_accumulator(data.dtype))


@register("ReduceSumSquare")
class ReduceSumSquare(Reduce):
    """``sum(x²)``; integers square and sum in their own type and wrap."""

    def reduce(self, data, axis, keepdims):
        wide = data.astype(_accumulator(data.dtype))
        return np.sum(wide * wide, axis=axis, keepdims=keepdims)


def _real_accumulator(dtype: np.dtype) -> np.dtype:
    """Logarithms of integer sums (opsets before 18 allow integer inputs) are taken in
    float64 and truncated back."""
    return np.dtype(np.float64) if dtype.kind in "iu" else _accumulator(dtype)


@register("ReduceLogSum")
class ReduceLogSum(Reduce):
    """``log(sum(x))``; an empty reduction gives -inf."""

    def reduce(self, data, axis, keepdims):
        return np.log(np.sum(data, axis=axis, keepdims=keepdims,
                             dtype=_real_accumulator(data.dtype)))


@register("ReduceLogSumExp")
class ReduceLogSumExp(Reduce):
    """``log(sum(exp(x)))``, taken as ``m + log(sum(exp(x - m)))`` with ``m`` the largest
    element, so large inputs do not overflow; an empty reduction gives -inf."""

    def reduce(self, data, axis, keepdims):
        wide = data.astype(_real_accumulator(data.dtype))
        largest = np.max(wide, axis=axis, keepdims=True, initial=-np.inf)
        # An infinite largest element (or none at all) would make x - m NaN; shifting by 0
        # then gives the right infinity.
        shift = np.where(np.isfinite(largest), largest, 0)
        total = np.sum(np.exp(wide - shift), axis=axis, keepdims=True)
        result = np.log(total) + shift
        return result if keepdims else np.squeeze(result, axis)


def _lowest(dtype: np.dtype):
    if dtype == np.bool_:
        return False
    return -np.inf if dtypes.is_float(dtype) else np.iinfo(dtype).min


def _highest(dtype: np.dtype):
    if dtype == np.bool_:
        return True
    return np.inf if dtypes.is_float(dtype) else np.iinfo(dtype).max


@register("ReduceMax")
class ReduceMax(Reduce):
    """Max; an empty reduction gives the dtype's lowest value (-inf for floats)."""

    def reduce(self, data, axis, keepdims):
        return np.max(data, axis=axis, keepdims=keepdims, initial=_lowest(data.dtype))


@register("ReduceMin")
class ReduceMin(Reduce):
    """Min; an empty reduction gives the dtype's highest value (inf for floats)."""

    def reduce(self, data, axis, keepdims):
        return np.min(data, axis=axis, keepdims=keepdims, initial=_highest(data.dtype))


class ArgExtreme(OpImpl):
    """Index (int64) of the extreme element along ``axis``: the first one, or the last with
    ``select_last_index`` (opset 12 on). A NaN counts as the extreme (the first NaN, or the
    last), as in numpy, onnx's reference and cpu_llvm; onnxruntime instead skips NaNs unless
    one comes first, which ONNX leaves open."""

    def run(self, data, axis=0, keepdims=1, select_last_index=0):
        axis = normalize_axis(axis, data.ndim)
        data = dtypes.widened(data)
        if select_last_index:
            index = data.shape[axis] - 1 - self.find(np.flip(data, axis), axis=axis)
        else:
            index = self.find(data, axis=axis)
        if keepdims:
            index = np.expand_dims(index, axis)
        return np.asarray(index, np.int64)

    @abstractmethod
    def find(self, data: np.ndarray, axis: int) -> np.ndarray:
        """The index of the first extreme element along ``axis``."""


@register("ArgMax")
class ArgMax(ArgExtreme):
    def find(self, data, axis):
        return np.argmax(data, axis=axis)


@register("ArgMin")
class ArgMin(ArgExtreme):
    def find(self, data, axis):
        return np.argmin(data, axis=axis)
