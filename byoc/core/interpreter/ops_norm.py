"""Normalizations (BatchNormalization, InstanceNormalization, LayerNormalization,
GroupNormalization, RMSNormalization, MeanVarianceNormalization, LpNormalization) and
Softmax/LogSoftmax."""

from __future__ import annotations

from abc import abstractmethod

import numpy as np

from byoc.core.dtypes import onnx_type_name, to_numpy
from byoc.core.interpreter.base import OpImpl, register, widened_dtype
from byoc.core.interpreter.ops_shape import normalize_axis


def per_channel(param: np.ndarray, rank: int, dtype: np.dtype) -> np.ndarray:
    """A ``[C]`` parameter shaped ``[C, 1, ..., 1]`` to broadcast over an ``(N, C, ...)``
    tensor of ``rank`` dims."""
    return np.asarray(param, dtype).reshape((-1,) + (1,) * (rank - 2))


def check_nc(x: np.ndarray, op: str) -> None:
    if x.ndim < 2:
        raise ValueError(f"{op} takes an (N, C, ...) input of rank 2 or more, got shape "
                         f"{list(x.shape)}")


def stash_dtype(stash_type: int, op: str) -> np.dtype:
    """The float dtype a ``stash_type`` attribute names, which standardization runs in."""
    stash = to_numpy(stash_type)
    if stash is None or not np.issubdtype(stash, np.floating):
        raise ValueError(f"{op} stash_type {onnx_type_name(stash_type)} is not supported; use "
                         f"FLOAT (1), FLOAT16 (10) or DOUBLE (11)")
    return stash


def trailing_axes(axis: int, rank: int, op: str) -> tuple[int, ...]:
    """The dims ``axis..rank-1`` a Layer- or RMSNormalization normalizes over."""
    if not -rank <= axis < rank:
        raise ValueError(f"{op} axis {axis} is out of range for rank {rank}")
    return tuple(range(axis % rank, rank))


def broadcasts_to(shape: tuple[int, ...], target: tuple[int, ...]) -> bool:
    """Whether an operand of ``shape`` broadcasts to ``target`` without changing it."""
    return len(shape) <= len(target) and all(
        size in (1, bound) for size, bound in zip(shape[::-1], target[::-1]))


@register("BatchNormalization")
class BatchNormalization(OpImpl):
    """BatchNormalization: ``scale * (x - mean) / sqrt(var + epsilon) + B`` per channel
    (axis 1).

    In inference mode ``mean`` and ``var`` are the given running statistics. In training
    mode (``training_mode=1`` from opset 14; before, a node that declares the statistics
    outputs) they are the batch's own: the mean and the population variance over every
    axis but 1, computed in float64. The running statistics move towards them,
    ``input * momentum + batch * (1 - momentum)``, and are output: opset 14 on as
    ``(Y, running_mean, running_var)``; before as ``(Y, mean, var, saved_mean, saved_var)``,
    where saved_mean is the batch mean and saved_var the batch's inverse standard deviation
    ``1 / sqrt(batch_var + epsilon)``, as onnxruntime (after cuDNN and Caffe2) saves it.
    """

    def run(self, x, scale, bias, mean, var, epsilon=1e-5, momentum=0.9, training_mode=0):
        check_nc(x, "BatchNormalization")
        training = training_mode if self.opset >= 14 else any(self.node.outputs[1:])
        if not training:
            return self.normalize(x, scale, bias, mean, var, epsilon)
        wide = x.astype(np.float64)
        batch_axes = (0,) + tuple(range(2, x.ndim))
        batch_mean, batch_var = wide.mean(axis=batch_axes), wide.var(axis=batch_axes)
        y = self.normalize(x, scale, bias, batch_mean, batch_var, epsilon)
        running_mean = mean.astype(np.float64) * momentum + batch_mean * (1 - momentum)
        running_var = var.astype(np.float64) * momentum + batch_var * (1 - momentum)
        statistics = [running_mean.astype(mean.dtype), running_var.astype(var.dtype)]
        if self.opset < 14:
            statistics += [batch_mean.astype(mean.dtype),
                           (1 / np.sqrt(batch_var + epsilon)).astype(var.dtype)]
        return (y, *statistics)

    def infer_types(self, input_types, **attrs):
        # ONNX infers no shape for opset 9's statistics outputs: each is one value per channel,
        # of the running mean's type.
        x_type, mean_type = input_types[0], input_types[3]
        return [x_type] + [mean_type] * (len(self.node.outputs) - 1)

    @staticmethod
    def normalize(x, scale, bias, mean, var, epsilon) -> np.ndarray:
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
        stash = stash_dtype(stash_type, "LayerNormalization")
        normalized_axes = trailing_axes(axis, x.ndim, "LayerNormalization")
        values = x.astype(stash)
        mean = values.mean(axis=normalized_axes, keepdims=True)
        centered = values - mean
        var = (centered * centered).mean(axis=normalized_axes, keepdims=True)
        inv_std_dev = 1 / np.sqrt(var + np.asarray(epsilon, stash))
        y = (centered * inv_std_dev).astype(x.dtype) * scale
        if bias is not None:
            y = y + bias
        return y.astype(x.dtype), mean, inv_std_dev.astype(stash)


@register("GroupNormalization")
class GroupNormalization(OpImpl):
    """GroupNormalization: the channels of each sample fall into ``num_groups`` groups of
    consecutive channels; each group (with its spatial dims) is standardized on its own, then
    ``scale`` and ``bias`` apply per channel (opset 21) or per group (opset 18, whose form the
    spec deprecated for that reason).

    Standardization runs in the ``stash_type`` precision from opset 21; opset 18 has no
    stash_type and runs float16 in float32, as the other normalizations. The standardized
    values are cast back to X's type before scale and bias apply.
    """

    def check(self, x, scale, bias, num_groups=None, epsilon=1e-5, stash_type=1):
        check_nc(x, "GroupNormalization")
        channels = x.shape[1]
        if num_groups is None or num_groups < 1 or channels % num_groups:
            raise ValueError(f"GroupNormalization num_groups {num_groups} must be positive and "
                             f"divide the {channels} channels of X {list(x.shape)}")
        per = "channel" if self.opset >= 21 else "group"
        expected = channels if self.opset >= 21 else num_groups
        for name, param in (("scale", scale), ("bias", bias)):
            if param.shape != (expected,):
                raise ValueError(f"GroupNormalization-{self.opset} {name} of shape "
                                 f"{list(param.shape)} must hold one value per {per} "
                                 f"([{expected}])")

    def run(self, x, scale, bias, num_groups=None, epsilon=1e-5, stash_type=1):
        self.check(x, scale, bias, num_groups)
        stash = (stash_dtype(stash_type, "GroupNormalization") if self.opset >= 21
                 else widened_dtype(x.dtype))
        batch, channels = x.shape[:2]
        grouped = x.reshape(batch, num_groups, -1).astype(stash)
        mean = grouped.mean(axis=2, keepdims=True)
        centered = grouped - mean
        var = (centered * centered).mean(axis=2, keepdims=True)
        normalized = (centered / np.sqrt(var + np.asarray(epsilon, stash))).astype(x.dtype)
        if self.opset < 21:
            scale, bias = (np.repeat(p, channels // num_groups) for p in (scale, bias))
        y = (normalized.reshape(x.shape) * per_channel(scale, x.ndim, x.dtype)
             + per_channel(bias, x.ndim, x.dtype))
        return y.astype(x.dtype)

    def infer_types(self, input_types, **attrs):
        # onnx infers nothing through GroupNormalization-21's function body; Y is X's type.
        return input_types[:1]


@register("RMSNormalization")
class RMSNormalization(OpImpl):
    """RMSNormalization over dims ``axis..rank-1``: ``x / sqrt(mean(x²) + epsilon) * scale``.

    As the spec's function: the root mean square and the division (a multiplication by its
    reciprocal) run in the ``stash_type`` precision; the result is cast back to X's type
    before ``scale`` (which broadcasts to X's shape) applies.
    """

    def check(self, x, scale, axis=-1, epsilon=1e-5, stash_type=1):
        normalized_axes = trailing_axes(axis, x.ndim, "RMSNormalization")
        stash_dtype(stash_type, "RMSNormalization")
        if not broadcasts_to(scale.shape, x.shape):
            raise ValueError(f"RMSNormalization scale of shape {list(scale.shape)} does not "
                             f"broadcast to X's shape {list(x.shape)}; give it the shape of "
                             f"the normalized dims {list(x.shape[normalized_axes[0]:])}")

    def run(self, x, scale, axis=-1, epsilon=1e-5, stash_type=1):
        self.check(x, scale, axis, epsilon, stash_type)
        stash = stash_dtype(stash_type, "RMSNormalization")
        values = x.astype(stash)
        mean_square = (values * values).mean(
            axis=trailing_axes(axis, x.ndim, "RMSNormalization"), keepdims=True)
        reciprocal = 1 / np.sqrt(mean_square + np.asarray(epsilon, stash))
        return ((values * reciprocal).astype(x.dtype) * scale).astype(x.dtype)


@register("MeanVarianceNormalization")
class MeanVarianceNormalization(OpImpl):
    """``(x - mean) / (std + 1e-9)`` over ``axes`` (default 0, 2, 3: per channel of NCHW), with
    the population standard deviation, as the spec's function defines it.

    The variance is the mean of squared deviations, which equals the function's
    ``mean(x²) - mean(x)²`` but cannot come out negative by rounding. (onnxruntime's kernel
    leaves out the 1e-9, so a constant slice gives 0/0 = NaN there and 0 here.)
    """

    EPSILON = 1e-9

    def check(self, x, axes=(0, 2, 3)):
        chosen = [normalize_axis(axis, x.ndim) for axis in axes]
        if len(set(chosen)) != len(chosen):
            raise ValueError(f"MeanVarianceNormalization axes {list(axes)} repeat a dimension")

    def run(self, x, axes=(0, 2, 3)):
        self.check(x, axes)
        reduced = tuple(normalize_axis(axis, x.ndim) for axis in axes)
        values = x.astype(widened_dtype(x.dtype))
        mean = values.mean(axis=reduced, keepdims=True)
        centered = values - mean
        std = np.sqrt((centered * centered).mean(axis=reduced, keepdims=True))
        return (centered / (std + np.asarray(self.EPSILON, values.dtype))).astype(x.dtype)

    def infer_types(self, input_types, **attrs):
        # onnx's inference fails in the opset-13 function body (at its Constant); Y is X's type.
        return input_types[:1]


@register("LpNormalization")
class LpNormalization(OpImpl):
    """``x / norm(x)`` along ``axis`` with the L1 (p=1) or L2 (p=2) norm; where the norm is
    0 the result is 0 (the spec leaves it open; onnxruntime and onnx's test data agree)."""

    def check(self, x, axis=-1, p=2):
        normalize_axis(axis, x.ndim)
        if p not in (1, 2):
            raise ValueError(f"LpNormalization p={p} is not supported by the spec; use 1 or 2")

    def run(self, x, axis=-1, p=2):
        self.check(x, axis, p)
        values = x.astype(widened_dtype(x.dtype))
        if p == 1:
            norm = np.abs(values).sum(axis=axis, keepdims=True)
        else:
            norm = np.sqrt((values * values).sum(axis=axis, keepdims=True))
        with np.errstate(invalid="ignore", divide="ignore"):
            y = np.where(norm == 0, 0, values / norm)
        return y.astype(x.dtype)


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
