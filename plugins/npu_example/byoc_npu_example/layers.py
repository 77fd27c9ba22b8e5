"""Which quantized groups the NPU runs, as what, and why it declines the others.

Every layer the NPU runs is a QDQ group (:mod:`byoc.core.qdq`): DequantizeLinear on each
input -> op -> [Relu/Clip] -> QuantizeLinear. :func:`npu_layer` turns a group into one of
the layers below, or returns the reason the NPU cannot run it; the pattern checks decline
with that reason, and lowering runs the same function again, so the two cannot disagree.

- :class:`ConvLayer`: Conv (group 1 or depthwise) and Gemm/MatMul (a 1x1 convolution over
  the rows), with the integer meaning the reference gives them
  (:class:`byoc.core.integer_layers.IntegerLayer`);
- :class:`PoolLayer`: MaxPool, AveragePool, GlobalAveragePool;
- :class:`AddLayer`: Add of two int8 tensors of the same shape;
- :class:`FlattenLayer`: Flatten that leaves the bytes as they are (no command: its output
  descriptor views its input's bytes).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from byoc.core.integer_layers import IntegerLayer, activation_range, integer_plans
from byoc.core.interpreter.window import plan as plan_window
from byoc.core.ir import Graph, Node
from byoc.core.qdq import QdqGroup, find_qdq_groups
from byoc_npu_example.command_stream import PoolMode, Window
from byoc_npu_example.config import CONFIG, NpuConfig

INT8_TYPES = (np.dtype(np.int8), np.dtype(np.uint8))
CONV_OPS = ("Conv", "Gemm", "MatMul")
POOL_OPS = ("MaxPool", "AveragePool", "GlobalAveragePool")
GROUP_OPS = CONV_OPS + POOL_OPS + ("Add", "Flatten")


@dataclass(frozen=True)
class Quant:
    """A per-tensor quantized value: its name, dtype, zero point and float32 scale."""

    value: str
    dtype: np.dtype
    zero_point: int
    scale: float


@dataclass
class ConvLayer:
    group: QdqGroup
    integer: IntegerLayer
    x: Quant
    y: Quant
    window: Window
    depthwise: bool

    @property
    def inputs(self) -> list[Quant]:
        return [self.x]


@dataclass
class PoolLayer:
    group: QdqGroup
    x: Quant
    y: Quant
    mode: PoolMode
    window: Window
    qmin: int
    qmax: int

    @property
    def inputs(self) -> list[Quant]:
        return [self.x]


@dataclass
class AddLayer:
    group: QdqGroup
    a: Quant
    b: Quant
    y: Quant
    qmin: int
    qmax: int

    @property
    def inputs(self) -> list[Quant]:
        return [self.a, self.b]


@dataclass
class FlattenLayer:
    group: QdqGroup
    x: Quant
    y: Quant

    @property
    def inputs(self) -> list[Quant]:
        return [self.x]


Layer = ConvLayer | PoolLayer | AddLayer | FlattenLayer


def qdq_groups(graph: Graph) -> dict[str, QdqGroup]:
    """Every QDQ group around an op the NPU knows, by the name of its QuantizeLinear."""
    return {g.quantize.name: g for g in find_qdq_groups(graph, ops=GROUP_OPS)}


def npu_layer(group: QdqGroup, graph: Graph, config: NpuConfig = CONFIG) -> Layer | str:
    """The NPU layer ``group`` is, or why the NPU cannot run it."""
    op = group.op.op_type
    if op in CONV_OPS:
        return _conv_layer(group, graph, config)
    x = quant_of(group.dequantize[0], graph)
    y = quant_of(group.quantize, graph)
    for side in (x, y):
        if isinstance(side, str):
            return side
    if op == "Flatten":
        return _flatten_layer(group, graph, x, y)
    out_range = activation_range(graph, group.activation, np.float32(y.scale),
                                 np.asarray(y.zero_point, y.dtype))
    if out_range is None:
        return "only Relu, or Clip with constant bounds, can follow it on the NPU"
    if op == "Add":
        b = quant_of(group.dequantize[1], graph)
        if isinstance(b, str):
            return b
        shapes = {graph.types[v].shape for v in (x.value, b.value, y.value)}
        if len(shapes) != 1:
            return (f"ELTWISE_ADD adds two tensors of the same shape, without broadcasting; "
                    f"got {graph.types[x.value].shape} + {graph.types[b.value].shape}")
        reason = tensor_refusal(x.value, graph, config)
        return reason or AddLayer(group, x, b, y, *out_range)
    return _pool_layer(group, graph, x, y, out_range, config)


def quant_of(node: Node, graph: Graph) -> Quant | str:
    """The quantization a (De)QuantizeLinear applies, if per tensor with constants."""
    scale = node.inputs[1]
    zero = node.inputs[2] if len(node.inputs) > 2 else ""
    if not graph.is_constant(scale) or (zero and not graph.is_constant(zero)):
        return f"{node.op_type} node {node.name!r} has run-time scales or zero points"
    scale_array = graph.constants[scale]
    if scale_array.size != 1 or (zero and graph.constants[zero].size != 1):
        return (f"{node.op_type} node {node.name!r} quantizes per channel; the NPU's "
                f"activations are quantized per tensor")
    if scale_array.dtype != np.float32:
        return f"the scale of {node.name!r} is {scale_array.dtype}; the NPU takes float32 scales"
    value = node.inputs[0] if node.op_type == "DequantizeLinear" else node.outputs[0]
    dtype = graph.types[value].dtype
    if dtype not in INT8_TYPES:
        return f"{value!r} is {dtype}; the NPU's activations are int8 or uint8"
    zero_point = int(graph.constants[zero].reshape(())) if zero else 0
    return Quant(value, dtype, zero_point, float(scale_array.reshape(())))


def tensor_refusal(value: str, graph: Graph, config: NpuConfig) -> str | None:
    """Why the NPU cannot hold ``value`` as an N x H x W x C tensor descriptor, or None."""
    shape = graph.types[value].shape
    if len(shape) not in (2, 3, 4):
        return f"{value!r} has rank {len(shape)}; the NPU holds 2-D, 3-D and 4-D tensors"
    if len(shape) == 4 and shape[0] != 1:
        return f"{value!r} has batch {shape[0]}; the NPU runs one image (batch 1) at a time"
    dims = nhwc_shape(shape)
    if max(dims) > config.max_dim:
        return f"{value!r} {list(shape)} has a dimension beyond the NPU's {config.max_dim}"
    return None


def nhwc_shape(shape: tuple[int, ...]) -> tuple[int, int, int, int]:
    """The N x H x W x C descriptor shape of a graph value: 4-D NCHW values as NHWC, a matrix
    (or a stack of them) as 1 x 1 x rows x columns."""
    if len(shape) == 4:
        n, c, h, w = shape
        return n, h, w, c
    return 1, 1, int(np.prod(shape[:-1])), shape[-1]


def window_refusal(kernel, strides, dilations, pads, config: NpuConfig) -> str | None:
    if any(d != 1 for d in dilations):
        return f"dilations {list(dilations)}; the NPU's windows are not dilated"
    if not all(1 <= k <= config.max_kernel for k in kernel):
        return f"kernel {list(kernel)}; the NPU's windows are 1..{config.max_kernel} wide"
    if not all(1 <= s <= config.max_stride for s in strides):
        return f"strides {list(strides)}; the NPU steps 1..{config.max_stride}"
    if not all(0 <= p <= config.max_pad for p in pads):
        return (f"pads {list(pads)} (top, left, bottom, right); the NPU pads "
                f"0..{config.max_pad} on each side")
    return None


def _window(node: Node, graph: Graph, x: str, kernel,
            config: NpuConfig) -> tuple[Window, str | None]:
    attrs = node.attrs
    plan = plan_window(graph.types[x].shape[2:], kernel, strides=attrs.get("strides"),
                       dilations=attrs.get("dilations"), pads=attrs.get("pads"),
                       auto_pad=attrs.get("auto_pad") or "NOTSET")
    pads = (plan.pads_begin[0], plan.pads_begin[1], plan.pads_end[0], plan.pads_end[1])
    reason = window_refusal(plan.kernel, plan.strides, plan.dilations, pads, config)
    return Window(tuple(plan.kernel), tuple(plan.strides), pads), reason


def _conv_layer(group: QdqGroup, graph: Graph, config: NpuConfig) -> ConvLayer | str:
    plan = integer_plans(graph).get(group.quantize.name)
    if plan is None or plan.group.op is not group.op:
        return ("not an integer layer: the reference gives this group float semantics (it "
                "needs per-tensor input and output scales, constant weights, an int32 bias "
                "with scale x_scale * w_scale, and Relu, Clip with constant bounds or nothing "
                "after the op)")
    layer = plan.layer
    x, y = quant_of(group.dequantize[0], graph), quant_of(group.quantize, graph)
    for side in (x, y):
        if isinstance(side, str):
            return side
    if layer.weight.dtype != np.int8:
        return f"the weights are {layer.weight.dtype}; the MAC array multiplies int8 weights"
    if np.any(layer.w_zero):
        return "the weights have a nonzero zero point; the NPU needs symmetric int8 weights"
    multipliers = np.asarray(layer.multiplier, np.float32)
    if not (np.all(np.isfinite(multipliers)) and np.all(multipliers > 0)):
        return "the requantize unit takes positive, finite float32 multipliers"
    for value in (layer.x, layer.y):
        reason = tensor_refusal(value, graph, config)
        if reason:
            return reason
    if layer.kind == "matmul":
        window, depthwise = Window(), False
        if len(graph.types[layer.x].shape) == 4:
            return ("a matrix product of a 4-D tensor; the NPU's FULLY_CONNECTED reads rows "
                    "of a 2-D or 3-D tensor")
        in_c, out_c = layer.weight.shape
    else:
        if len(graph.types[layer.x].shape) != 4:
            return "only 2-D convolutions (4-D input) run on the NPU"
        out_c, per_group = layer.weight.shape[:2]
        in_c = graph.types[layer.x].shape[1]
        groups = layer.attrs.get("group") or 1
        depthwise = groups > 1
        if depthwise and not (groups == in_c == out_c and per_group == 1):
            return (f"grouped convolution (group={groups}, {in_c} -> {out_c} channels); the "
                    f"NPU runs group 1 and depthwise convolutions (group = channels, one "
                    f"filter per channel)")
        window, reason = _window(group.op, graph, layer.x, layer.weight.shape[2:], config)
        if reason:
            return reason
    if max(in_c, out_c) > config.max_channels:
        return (f"{in_c} -> {out_c} channels; the NPU takes at most {config.max_channels} "
                f"channels")
    reason = _accumulator_refusal(layer)
    return reason or ConvLayer(group, layer, x, y, window, depthwise)


def _accumulator_refusal(layer: IntegerLayer) -> str | None:
    """The MAC array accumulates in int32: the largest total any input can give must fit."""
    info = np.iinfo(layer.x_dtype)
    largest_input = max(abs(int(info.min) - layer.x_zero), abs(int(info.max) - layer.x_zero))
    weight = np.abs(layer.weight.astype(np.int64))
    per_channel = weight.reshape(weight.shape[0], -1).sum(axis=1) if layer.kind == "conv" \
        else weight.sum(axis=0)
    bias = np.zeros(1, np.int64) if layer.bias is None else np.abs(layer.bias)
    bound = int((largest_input * per_channel + bias).max())
    if bound >= 2 ** 31:
        return (f"its int32 accumulator could reach {bound}; the MAC array accumulates in "
                f"int32")
    return None


def _pool_layer(group: QdqGroup, graph: Graph, x: Quant, y: Quant,
                out_range: tuple[int, int], config: NpuConfig) -> PoolLayer | str:
    node = group.op
    reason = tensor_refusal(x.value, graph, config)
    if reason:
        return reason
    if len(graph.types[x.value].shape) != 4:
        return "the NPU pools 4-D (N x C x H x W) tensors"
    if node.op_type == "GlobalAveragePool":
        return PoolLayer(group, x, y, PoolMode.GLOBAL_AVERAGE, Window(), *out_range)
    if node.attrs.get("ceil_mode"):
        return "ceil_mode=1; the NPU's pooling windows round the output size down"
    if len([o for o in node.outputs if o]) > 1:
        return "MaxPool's Indices output; the NPU only computes the pooled values"
    window, reason = _window(node, graph, x.value, node.attrs.get("kernel_shape"), config)
    if reason:
        return reason
    if node.op_type == "MaxPool":
        mode = PoolMode.MAX
    elif node.attrs.get("count_include_pad"):
        mode = PoolMode.AVERAGE_WITH_PADS
    else:
        mode = PoolMode.AVERAGE
    return PoolLayer(group, x, y, mode, window, *out_range)


def _flatten_layer(group: QdqGroup, graph: Graph, x: Quant, y: Quant) -> FlattenLayer | str:
    shape = graph.types[x.value].shape
    if (group.op.attrs.get("axis", 1)) != 1 or len(shape) not in (2, 4) or \
            (len(shape) == 4 and shape[2:] != (1, 1)):
        return (f"Flatten(axis={group.op.attrs.get('axis', 1)}) of {list(shape)}: the NPU "
                f"flattens N x C x 1 x 1 tensors and matrices, whose bytes NHWC and NCHW "
                f"order alike")
    if (x.dtype, x.zero_point, x.scale) != (y.dtype, y.zero_point, y.scale):
        return "the Flatten requantizes (its input and output quantization differ)"
    if group.activation is not None:
        return "an activation after Flatten"
    return FlattenLayer(group, x, y)
