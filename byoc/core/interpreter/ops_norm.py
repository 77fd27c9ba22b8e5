"""Normalizations (BatchNormalization, InstanceNormalization, LayerNormalization) and
Softmax/LogSoftmax."""

from __future__ import annotations

from abc import abstractmethod

import numpy as np

from byoc.core.dtypes import onnx_type_name, to_numpy
from byoc.core.interpreter.base import OpImpl, register, widened_dtype


def per_channel(param: np.ndarray, rank: int, dtype: np.dtype) -> np.ndarray:
    """A ``[C]`` parameter shaped ``[C, 1, ..., 1]`` to broadcast over an ``(N, C, ...)``
    tensor of ``rank`` dims."""
    return np.asarray(param, dtype).reshape((-1,) + (1,) * (rank - 2))


def check_nc(x: np.ndarray, op: str) -> None:
    if x.ndim < 2:
        raise ValueError(f"{op} takes an (N, C, ...) input of rank 2 or more, got shape "
                         f"{list(x.shape)}")


@register("BatchNormalization")
class BatchNormalization(OpImpl):
    """BatchNormalization in inference mode: ``scale * (x - mean) / sqrt(var + epsilon) + B``
    with the running ``mean`` and ``var``, per channel (axis 1)."""

    def run(self, x, scale, bias, mean, var, epsilon=1e-5, momentum=0.9, training_mode=0):
        # Before opset 14 a node asks for training by declaring the extra statistics outputs.
        if training_mode or sum(1 for name in self.node.outputs if name) > 1:
            raise ValueError("BatchNormalization in training mode (training_mode=1 or the "
                             "running/saved statistics outputs) is not supported; export the "
                             "model in inference mode (eval)")
        check_nc(x, "BatchNormalization")
        dtype = widened_dtype(x.dtype)
        rank = x.ndim
        inv_std = 1 / np.sqrt(per_channel(var, rank, dtype) + np.asarray(epsilon, dtype))
        y = ((x.astype(dtype) - per_channel(mean, rank, dtype)) * inv_std
             * per_channel(scale, rank, dtype) + per_channel(bias, rank, dtype))
        return y.astype(x.dtype)


@register("InstanceNormalization")
class InstanceNormalization(OpImpl):
    """InstanceNormalization: normalize each (n, c) slice over its spatial dims, then apply
    the per-channel ``scale`` and ``B``."""

    def run(self, x, scale, bias, epsilon=1e-5):
        check_nc(x, "InstanceNormalization")
        dtype = widened_dtype(x.dtype)
        values = x.astype(dtype)
        spatial = tuple(range(2, x.ndim))
        mean = values.mean(axis=spatial, keepdims=True)
        centered = values - mean
        var = (centered * centered).mean(axis=spatial, keepdims=True)
        normalized = centered / np.sqrt(var + np.asarray(epsilon, dtype))
        y = normalized * per_channel(scale, x.ndim, dtype) + per_channel(bias, x.ndim, dtype)
        return y.astype(x.dtype)


@register("LayerNormalization")
class LayerNormalization(OpImpl):
    """LayerNormalization over dims ``axis..rank-1``; also returns Mean and InvStdDev.

    Standardization runs in the ``stash_type`` precision, which is also the type of Mean and
    InvStdDev; the normalized values are cast back to X's type before Scale and B apply.
    """

    def run(self, x, scale, bias=None, axis=-1, epsilon=1e-5, stash_type=1):
        stash = to_numpy(stash_type)
        if stash is None or not np.issubdtype(stash, np.floating):
            raise ValueError(f"LayerNormalization stash_type {onnx_type_name(stash_type)} is "
                             f"not supported; use FLOAT (1)")
        if not -x.ndim <= axis < x.ndim:
            raise ValueError(f"LayerNormalization axis {axis} is out of range for rank {x.ndim}")
        normalized_axes = tuple(range(axis % x.ndim, x.ndim))
        values = x.astype(stash)
        mean = values.mean(axis=normalized_axes, keepdims=True)
        centered = values - mean
        var = (centered * centered).mean(axis=normalized_axes, keepdims=True)
        inv_std_dev = 1 / np.sqrt(var + np.asarray(epsilon, stash))
        y = (centered * inv_std_dev).astype(x.dtype) * scale
        if bias is not None:
            y = y + bias
        return y.astype(x.dtype), mean, inv_std_dev.astype(stash)


class SoftmaxFamily(OpImpl):
    """Shared axis handling of Softmax and LogSoftmax.

    From opset 13 the op normalizes along the single ``axis`` (default -1). Before, the input
    is coerced to 2-D at ``axis`` (default 1): everything from ``axis`` on is one row, so the
    reduction runs over all of those dims together.
    """

    def run(self, x, axis=None):
        if self.opset >= 13:
            axis = -1 if axis is None else axis
        else:
            axis = 1 if axis is None else axis
        if not -x.ndim <= axis < x.ndim:
            raise ValueError(f"{self.node.op_type} axis {axis} is out of range for rank "
                             f"{x.ndim}")
        if x.size == 0:
            return x.copy()
        axes = (axis % x.ndim,) if self.opset >= 13 else tuple(range(axis % x.ndim, x.ndim))
        values = x.astype(widened_dtype(x.dtype))
        # Subtracting the max keeps exp() from overflowing; the result is unchanged.
        shifted = values - values.max(axis=axes, keepdims=True)
        return self.normalize(shifted, axes).astype(x.dtype)

    @abstractmethod
    def normalize(self, shifted: np.ndarray, axes: tuple[int, ...]) -> np.ndarray:
        """Implemented by each subclass."""


@register("Softmax")
class Softmax(SoftmaxFamily):
    def normalize(self, shifted, axes):
        exp = np.exp(shifted)
        return exp / exp.sum(axis=axes, keepdims=True)


@register("LogSoftmax")
class LogSoftmax(SoftmaxFamily):
    def normalize(self, shifted, axes):
        # x - log(sum(exp(x))) stays finite where log(softmax(x)) would underflow to -inf.
        return shifted - np.log(np.exp(shifted).sum(axis=axes, keepdims=True))
