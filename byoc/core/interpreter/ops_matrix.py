"""Ops on the matrices in the last two dims of a tensor (Trilu, Det), making an identity-like
matrix (EyeLike), and counting a tensor's elements (Size)."""

from __future__ import annotations

import numpy as np

from byoc.core.dtypes import onnx_type_name, to_numpy
from byoc.core.interpreter.base import OpImpl, register


def _scalar_input(value, op: str, name: str) -> None:
    if value is not None and (value.size != 1 or value.ndim > 1):
        raise ValueError(f"{op}'s {name} input must be a scalar; got shape {list(value.shape)}")


@register("Trilu")
class Trilu(OpImpl):
    """Keep the upper (``upper=1``) or lower triangle of each matrix in the last two dims,
    from the ``k``-th diagonal on (k > 0 above the main one, k < 0 below); zero the rest."""

    def check(self, x, k=None, upper=1):
        if x.ndim < 2:
            raise ValueError(f"Trilu needs an input of rank 2 or more; got shape "
                             f"{list(x.shape)}")
        _scalar_input(k, "Trilu", "k")

    def run(self, x, k=None, upper=1):
        self.check(x, k)
        diagonal = 0 if k is None else int(k.reshape(()))
        return np.triu(x, diagonal) if upper else np.tril(x, diagonal)


@register("EyeLike")
class EyeLike(OpImpl):
    """A matrix of the input's shape with ones on the ``k``-th diagonal, of the type
    ``dtype`` names (the input's type by default)."""

    def check(self, x, dtype=None, k=0):
        if x.ndim != 2:
            raise ValueError(f"EyeLike needs a 2-D input; got shape {list(x.shape)}")
        if dtype is not None and to_numpy(dtype) is None:
            raise ValueError(f"EyeLike's dtype {onnx_type_name(dtype)} is not supported")

    def run(self, x, dtype=None, k=0):
        self.check(x, dtype)
        out_dtype = x.dtype if dtype is None else to_numpy(dtype)
        return np.eye(x.shape[0], x.shape[1], k, dtype=out_dtype)


@register("Det")
class Det(OpImpl):
    """The determinant of each square matrix in the last two dims, computed in float64 and
    rounded once to the input's type."""

    def check(self, x):
        if x.ndim < 2 or x.shape[-1] != x.shape[-2]:
            raise ValueError(f"Det needs square matrices in the last two dims; got shape "
                             f"{list(x.shape)}")

    def run(self, x):
        self.check(x)
        return np.linalg.det(x.astype(np.float64)).astype(x.dtype)


@register("Size")
class Size(OpImpl):
    """The number of elements of the input, as an int64 scalar. Reads only the shape."""

    def run(self, x):
        return np.array(x.size, np.int64)
