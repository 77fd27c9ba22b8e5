"""Running sums and products along an axis: CumSum and CumProd."""

from __future__ import annotations

from abc import abstractmethod
from typing import ClassVar

import numpy as np

from byoc.core.interpreter.base import OpImpl, register
from byoc.core.interpreter.ops_shape import normalize_axis


class Cumulative(OpImpl):
    """A running fold along the axis given by the second input (a scalar or a one-element
    1-D tensor). ``exclusive`` leaves each element out of its own result, so the first one
    is the fold's identity; ``reverse`` runs from the end of the axis. Integers wrap on
    overflow, as in onnxruntime."""

    identity: ClassVar[int]

    def check(self, x, axis, exclusive=0, reverse=0):
        if axis.size != 1 or axis.ndim > 1:
            raise ValueError(f"{self.op_type}'s axis input must be a scalar; got shape "
                             f"{list(axis.shape)}")
        if x.ndim == 0:
            raise ValueError(f"{self.op_type} needs an input of rank 1 or more; got a scalar")

    def run(self, x, axis, exclusive=0, reverse=0):
        self.check(x, axis)
        axis = normalize_axis(int(axis.reshape(())), x.ndim)
        source = np.flip(x, axis) if reverse else x
        with np.errstate(over="ignore"):
            result = self.fold(source, axis).astype(x.dtype, copy=False)
        if exclusive:
            # Each element takes its predecessor's result; the first takes the identity.
            shifted = np.full_like(result, self.identity)
            later, earlier = [slice(None)] * x.ndim, [slice(None)] * x.ndim
            later[axis], earlier[axis] = slice(1, None), slice(None, -1)
            shifted[tuple(later)] = result[tuple(earlier)]
            result = shifted
        return np.flip(result, axis) if reverse else result

    @abstractmethod
    def fold(self, x: np.ndarray, axis: int) -> np.ndarray:
        """The inclusive running fold of ``x`` along ``axis``."""


@register("CumSum")
class CumSum(Cumulative):
    identity = 0

    def fold(self, x, axis):
        return np.cumsum(x, axis=axis, dtype=x.dtype)


@register("CumProd")
class CumProd(Cumulative):
    identity = 1

    def fold(self, x, axis):
        return np.cumprod(x, axis=axis, dtype=x.dtype)
