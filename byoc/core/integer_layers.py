"""Quantized integer layers: the integer operation a QDQ group or a QLinear node stands for.

A DequantizeLinear -> Conv/MatMul/Gemm -> [Relu] -> QuantizeLinear group is how ONNX writes an
int8 layer. Read literally it is float math, and float math breaks rounding ties of the final
QuantizeLinear differently depending on summation order; in a deep network one flipped value
spreads through every later layer. Integer hardware and onnxruntime's fused kernels compute
such a group as an exact integer accumulation ``sum((x - x_zero) * (w - w_zero)) + bias`` and a
requantization by the float32 multiplier ``x_scale * w_scale / y_scale``. This module finds
those layers in a graph and describes each one (:class:`IntegerLayer`); the reference
interpreter evaluates them with exactly those semantics (those of QLinearConv / QLinearMatMul,
:mod:`byoc.core.interpreter.integer_groups`), so that every backend has one bit-exact target,
and the partitioner keeps each one in one partition.

A group qualifies when the input and output are quantized per tensor, the weight is a
constant quantized per tensor or per output channel, the bias (if any) is int32 with scale
``x_scale * w_scale`` and zero point 0, Gemm has alpha = beta = 1, and the activation is Relu,
Clip with constant bounds, or absent, and every (De)QuantizeLinear is a numpy integer type
with a numpy float scale, not blocked. Other groups keep their literal float semantics.
"""

from __future__ import annotations

import contextlib
import weakref
from dataclasses import dataclass, field
from typing import Iterator

import numpy as np

from byoc.core.ir import Graph, Node
from byoc.core.qdq import QdqGroup, find_qdq_groups


@dataclass
class IntegerLayer:
    """The integer operation a quantized layer stands for, in plugin-neutral terms.

    ``acc = sum((x - x_zero) * (weight - w_zero)) [+ bias]`` exactly in integers, then
    ``y = saturate(round_half_even(float32(acc) * multiplier) + y_zero)`` to ``y_dtype``, then
    clamped to ``[out_min, out_max]``: a fused Relu or Clip, quantized (quantization is
    monotonic, so clamping after it is the same as quantizing the clamped value). ``kind`` is
    "conv" (``weight`` is O x I x kH x kW,
    ``attrs`` the Conv's window attributes) or "matmul" (``weight`` is K x N: the MatMul's
    second operand, Gemm's transposed when transB). ``w_zero``, ``bias`` and ``multiplier``
    have one value or one per output channel. ``x`` and ``y`` name the quantized input and
    output values; ``nodes`` are every node the layer covers.
    """

    kind: str
    op: Node
    nodes: list[Node]
    x: str
    y: str
    x_zero: int
    x_dtype: np.dtype
    weight: np.ndarray
    w_zero: np.ndarray
    bias: np.ndarray | None
    multiplier: np.ndarray
    y_zero: int
    y_dtype: np.dtype
    out_min: int
    out_max: int
    attrs: dict = field(default_factory=dict)

    @property
    def out_channels(self) -> int:
        return self.weight.shape[0] if self.kind == "conv" else self.weight.shape[1]


@dataclass
class IntegerGroup:
    """A qualifying QDQ group and the integer layer it stands for."""

    group: QdqGroup
    layer: IntegerLayer

    @property
    def replaced_nodes(self) -> list[Node]:
        """Nodes whose float results the integer evaluation makes unnecessary."""
        return [n for n in (self.group.op, self.group.activation) if n is not None]


def plan_integer_groups(graph: Graph) -> dict[str, IntegerGroup]:
    """The qualifying groups of ``graph``, keyed by the name of their QuantizeLinear node."""
    plans = {}
    for group in find_qdq_groups(graph, ops=("Conv", "MatMul", "Gemm")):
        layer = integer_layer(graph, group)
        if layer is not None:
            plans[group.quantize.name] = IntegerGroup(group, layer)
    return plans


# id(graph) -> (weak reference to the graph, structure key, plans); pattern checks ask for
# every node, so the plans are computed once per graph state.
_CACHE: dict[int, tuple] = {}


# id(graph) -> (graph, plans) while :func:`unchanged` holds for it.
_HELD: dict[int, tuple] = {}


def integer_plans(graph: Graph) -> dict[str, IntegerGroup]:
    """``plan_integer_groups(graph)``, cached per graph (recomputed when its nodes or
    constants change)."""
    held = _HELD.get(id(graph))
    if held is not None and held[0] is graph:
        return held[1]
    key = (tuple((id(n), tuple(n.inputs), tuple(n.outputs)) for n in graph.nodes),
           tuple(sorted(graph.constants)))
    cached = _CACHE.get(id(graph))
    if cached is not None and cached[0]() is graph and cached[1] == key:
        return cached[2]
    plans = plan_integer_groups(graph)
    for stale in [k for k, v in _CACHE.items() if v[0]() is None]:
        del _CACHE[stale]
    _CACHE[id(graph)] = (weakref.ref(graph), key, plans)
    return plans


@contextlib.contextmanager
def unchanged(graph: Graph) -> Iterator[None]:
    """Within, ``graph`` does not change (it is being partitioned), so :func:`integer_plans`
    gives the plans it computed on entry without checking the graph again: placement asks
    for them at every pattern check and estimate, and the check is a walk of the graph."""
    previous = _HELD.get(id(graph))
    _HELD[id(graph)] = (graph, integer_plans(graph))
    try:
        yield
    finally:
        if previous is None:
            del _HELD[id(graph)]
        else:
            _HELD[id(graph)] = previous


def integer_layer(graph: Graph, group: QdqGroup) -> IntegerLayer | None:
    """The integer operation of a QDQ group, or None when the group does not qualify."""
    op, quantize = group.op, group.quantize
    dq_x, dq_w = group.dequantize[0], group.dequantize[1]
    dq_b = group.dequantize[2] if len(group.dequantize) > 2 else None
    if len(op.present_inputs) > 2 and dq_b is None:
        return None
    if not _numpy_integer_quantization(graph, group):
        return None
    x_scale, x_zero = _params(graph, dq_x)
    w_scale, w_zero = _params(graph, dq_w)
    y_scale, y_zero = _params(graph, quantize)
    if any(v is None for v in (x_scale, w_scale, y_scale)) or not graph.is_constant(dq_w.inputs[0]):
        return None
    if x_scale.size != 1 or y_scale.size != 1:
        return None
    if y_zero is None:  # ONNX's default: zero point 0 of the output type (uint8 unless set)
        y_zero = np.zeros((), graph.types[quantize.outputs[0]].dtype)
    out_range = activation_range(graph, group.activation, y_scale, y_zero)
    if out_range is None:
        return None
    weight = graph.constants[dq_w.inputs[0]]
    channel_axis = _weight_channel_axis(op)
    if channel_axis is None or (w_scale.size > 1 and
                                dq_w.attrs.get("axis", 1) % weight.ndim != channel_axis):
        return None
    bias = None
    if dq_b is not None:
        b_scale, b_zero = _params(graph, dq_b)
        bias_name = dq_b.inputs[0]
        expected = np.float32(x_scale.reshape(())) * w_scale.astype(np.float32).ravel()
        if (b_scale is None or graph.types[bias_name].dtype != np.int32
                or not graph.is_constant(bias_name)
                or (b_zero is not None and np.any(b_zero))
                or not np.allclose(b_scale.ravel(), expected, rtol=1e-6, atol=0)):
            return None
        bias = graph.constants[bias_name].astype(np.int64).ravel()
    if op.op_type == "Gemm" and (op.attrs.get("alpha", 1.0) != 1.0
                                 or op.attrs.get("beta", 1.0) != 1.0 or op.attrs.get("transA")):
        return None
    if op.op_type == "Gemm" and op.attrs.get("transB"):
        weight = weight.T
        w_zero = w_zero  # a per-channel zero point is one value per column either way
    x_zero_value = 0 if x_zero is None else int(x_zero.reshape(()))
    return IntegerLayer(
        kind="conv" if op.op_type == "Conv" else "matmul", op=op, nodes=group.nodes,
        x=dq_x.inputs[0], y=quantize.outputs[0], x_zero=x_zero_value,
        x_dtype=graph.types[dq_x.inputs[0]].dtype, weight=weight,
        w_zero=np.zeros(1, np.int64) if w_zero is None else w_zero.astype(np.int64).ravel(),
        bias=bias, multiplier=_multiplier(x_scale, w_scale, y_scale),
        y_zero=int(y_zero.reshape(())), y_dtype=y_zero.dtype, out_min=out_range[0],
        out_max=out_range[1], attrs=_conv_attrs(op))


def qlinear_layer(graph: Graph, node: Node) -> IntegerLayer | None:
    """The integer operation of a QLinearConv / QLinearMatMul whose scales, zero points and
    weights are constants (per-tensor input and output), or None."""
    if node.op_type not in ("QLinearConv", "QLinearMatMul") or node.domain:
        return None
    names = node.inputs
    params = names[1:3] + names[4:8]
    if len(names) < 8 or not all(graph.is_constant(v) for v in [*params, names[3]] if v):
        return None
    if not all(names[i] for i in (1, 4, 6)):
        return None
    x_scale, w_scale, y_scale = (graph.constants[names[i]] for i in (1, 4, 6))
    x_zero, w_zero, y_zero = (graph.constants[names[i]] if names[i] else None
                              for i in (2, 5, 7))
    if x_scale.size != 1 or y_scale.size != 1:
        return None
    weight = graph.constants[names[3]]
    bias = None
    if len(names) > 8 and names[8]:
        if not graph.is_constant(names[8]):
            return None
        bias = graph.constants[names[8]].astype(np.int64).ravel()
    if node.op_type == "QLinearMatMul" and weight.ndim != 2:
        return None
    x_type = graph.types[names[0]].dtype
    y_dtype = x_type if y_zero is None else y_zero.dtype
    info = np.iinfo(y_dtype)
    return IntegerLayer(
        kind="conv" if node.op_type == "QLinearConv" else "matmul", op=node, nodes=[node],
        x=names[0], y=node.outputs[0], x_zero=0 if x_zero is None else int(x_zero.reshape(())),
        x_dtype=x_type, weight=weight,
        w_zero=np.zeros(1, np.int64) if w_zero is None else w_zero.astype(np.int64).ravel(),
        bias=bias, multiplier=_multiplier(x_scale, w_scale, y_scale),
        y_zero=0 if y_zero is None else int(y_zero.reshape(())),
        y_dtype=y_dtype, out_min=int(info.min), out_max=int(info.max), attrs=_conv_attrs(node))


def activation_range(graph: Graph, activation: Node | None, y_scale: np.ndarray,
                      y_zero: np.ndarray) -> tuple[int, int] | None:
    """The quantized range ``(min, max)`` a fused Relu or Clip (with constant bounds) leaves
    of the output's dtype, or None for any other activation."""
    info = np.iinfo(y_zero.dtype)
    low, high = int(info.min), int(info.max)
    if activation is None:
        return low, high
    zero = int(y_zero.reshape(()))
    if activation.op_type == "Relu":
        return max(low, zero), high
    if activation.op_type != "Clip":
        return None
    bounds = []
    for index, attr in ((1, "min"), (2, "max")):
        name = activation.inputs[index] if len(activation.inputs) > index else ""
        if name:
            if not graph.is_constant(name):
                return None
            bounds.append(graph.constants[name].reshape(()))
        else:
            bounds.append(activation.attrs.get(attr))
    quantized = []
    for bound, default in zip(bounds, (low, high)):
        if bound is None:
            quantized.append(default)
            continue
        step = np.rint(np.float32(bound) / np.float32(y_scale.reshape(())))
        quantized.append(int(np.clip(step + zero, low, high)) if np.isfinite(step) else
                         (low if step < 0 else high))
    return quantized[0], quantized[1]


def _multiplier(x_scale, w_scale, y_scale) -> np.ndarray:
    """The float32 requantization multiplier, formed as onnxruntime forms it."""
    return (np.float32(np.asarray(x_scale).reshape(())) * np.asarray(w_scale, np.float32)
            / np.float32(np.asarray(y_scale).reshape(()))).ravel()


def _conv_attrs(op: Node) -> dict:
    if op.op_type not in ("Conv", "QLinearConv"):
        return {}
    return {k: op.attrs.get(k) for k in ("auto_pad", "dilations", "group", "kernel_shape",
                                          "pads", "strides")}


def _numpy_integer_quantization(graph: Graph, group: QdqGroup) -> bool:
    """Whether every (De)QuantizeLinear of the group quantizes per tensor or per axis (no
    ``block_size``) between a numpy float scale and a numpy integer type. Blocked
    quantization and the 4-bit, 2-bit, float8 and float4 types keep their float semantics."""
    dequantize = [dq for dq in group.dequantize if dq is not None]
    nodes = dequantize + [group.quantize]
    quantized = [dq.inputs[0] for dq in dequantize] + [group.quantize.outputs[0]]
    scales = [node.inputs[1] for node in nodes]
    return (not any(node.attrs.get("block_size", 0) for node in nodes)
            and all(graph.types[name].dtype.kind in "iu" for name in quantized)
            and all(graph.types[name].dtype.kind == "f" for name in scales))


def _params(graph: Graph, node: Node) -> tuple[np.ndarray | None, np.ndarray | None]:
    """The constant scale and zero point of a (De)QuantizeLinear node, or None."""
    scale = node.inputs[1] if len(node.inputs) > 1 else ""
    zero = node.inputs[2] if len(node.inputs) > 2 else ""
    if not graph.is_constant(scale) or (zero and not graph.is_constant(zero)):
        return None, None
    return graph.constants[scale], graph.constants[zero] if zero else None


def _weight_channel_axis(op: Node) -> int | None:
    """The weight axis that indexes output channels (where per-channel scales live)."""
    if op.op_type == "Conv":
        return 0
    if op.op_type == "Gemm":
        return 0 if op.attrs.get("transB") else 1
    return 1 if op.op_type == "MatMul" else None
