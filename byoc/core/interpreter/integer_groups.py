"""Quantized groups evaluated as the integer operations they stand for.

A DequantizeLinear -> Conv/MatMul/Gemm -> [Relu] -> QuantizeLinear group is how ONNX writes an
int8 layer. Read literally it is float math, and float math breaks rounding ties of the final
QuantizeLinear differently depending on summation order; in a deep network one flipped value
spreads through every later layer. Integer hardware and onnxruntime's fused kernels compute
such a group as an exact integer accumulation ``sum((x - x_zero) * (w - w_zero)) + bias`` and a
requantization by the float32 multiplier ``x_scale * w_scale / y_scale``. The reference
interpreter gives the group exactly those semantics (those of QLinearConv / QLinearMatMul),
so that every backend has one bit-exact target.

A group qualifies when the input and output are quantized per tensor, the weight is a
constant quantized per tensor or per output channel, the bias (if any) is int32 with scale
``x_scale * w_scale`` and zero point 0, Gemm has alpha = beta = 1, and the activation is Relu
or absent. Other groups keep their literal float semantics.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from byoc.core.interpreter.ops_conv import integer_correlate
from byoc.core.interpreter.ops_linalg import integer_matmul
from byoc.core.interpreter.quant import along_axis, requantize
from byoc.core.ir import Graph, Node
from byoc.core.qdq import QdqGroup, find_qdq_groups

Env = dict[str, np.ndarray]


@dataclass
class IntegerGroup:
    """A qualifying group: ``evaluate(env)`` gives the QuantizeLinear's output."""

    group: QdqGroup
    evaluate: Callable[[Env], np.ndarray]

    @property
    def replaced_nodes(self) -> list[Node]:
        """Nodes whose float results the integer evaluation makes unnecessary."""
        return [n for n in (self.group.op, self.group.activation) if n is not None]


def plan_integer_groups(graph: Graph) -> dict[str, IntegerGroup]:
    """The qualifying groups of ``graph``, keyed by the name of their QuantizeLinear node."""
    plans = {}
    for group in find_qdq_groups(graph, ops=("Conv", "MatMul", "Gemm")):
        evaluate = _plan(graph, group)
        if evaluate is not None:
            plans[group.quantize.name] = IntegerGroup(group, evaluate)
    return plans


def _plan(graph: Graph, group: QdqGroup) -> Callable[[Env], np.ndarray] | None:
    op, quantize = group.op, group.quantize
    dq_x, dq_w = group.dequantize[0], group.dequantize[1]
    dq_b = group.dequantize[2] if len(group.dequantize) > 2 else None
    if len(op.present_inputs) > 2 and dq_b is None:
        return None
    if group.activation is not None and group.activation.op_type != "Relu":
        return None
    x_scale, x_zero = _params(graph, dq_x)
    w_scale, w_zero = _params(graph, dq_w)
    y_scale, y_zero = _params(graph, quantize)
    if any(v is None for v in (x_scale, w_scale, y_scale)) or not graph.is_constant(dq_w.inputs[0]):
        return None
    if x_scale.size != 1 or y_scale.size != 1 or y_zero is None:
        return None
    weight = graph.constants[dq_w.inputs[0]]
    channel_axis = _weight_channel_axis(op)
    if channel_axis is None or (w_scale.size > 1 and
                                dq_w.attrs.get("axis", 1) % weight.ndim != channel_axis):
        return None
    bias_name = None
    if dq_b is not None:
        b_scale, b_zero = _params(graph, dq_b)
        bias_name = dq_b.inputs[0]
        expected = np.float32(x_scale.reshape(())) * w_scale.astype(np.float32).ravel()
        if (b_scale is None or graph.types[bias_name].dtype != np.int32
                or (b_zero is not None and np.any(b_zero))
                or not np.allclose(b_scale.ravel(), expected, rtol=1e-6, atol=0)):
            return None
    multiplier = (np.float32(x_scale.reshape(())) * w_scale.astype(np.float32)
                  / np.float32(y_scale.reshape(()))).ravel()
    relu = group.activation is not None
    x_name = dq_x.inputs[0]

    def finish(acc: np.ndarray, out_axis: int, env: Env) -> np.ndarray:
        if bias_name is not None:
            acc = acc + along_axis(env[bias_name].astype(np.int64), out_axis, acc.ndim)
        y = requantize(acc, along_axis(multiplier, out_axis, acc.ndim), y_zero.reshape(()),
                       y_zero.dtype)
        return np.maximum(y, y_zero.reshape(())) if relu else y

    if op.op_type == "Conv":
        attrs = {k: op.attrs.get(k) for k in ("auto_pad", "dilations", "group", "kernel_shape",
                                               "pads", "strides")}

        def evaluate(env: Env) -> np.ndarray:
            acc = integer_correlate(env[x_name], x_zero, weight, w_zero,
                                    attrs["group"] or 1, attrs["kernel_shape"],
                                    attrs["auto_pad"] or "NOTSET", attrs["dilations"],
                                    attrs["pads"], attrs["strides"], "Conv")
            return finish(acc, 1, env)
        return evaluate

    if op.op_type == "Gemm" and (op.attrs.get("alpha", 1.0) != 1.0
                                 or op.attrs.get("beta", 1.0) != 1.0 or op.attrs.get("transA")):
        return None
    matrix = weight.T if op.op_type == "Gemm" and op.attrs.get("transB") else weight

    def evaluate(env: Env) -> np.ndarray:
        # A per-channel zero point is one value per column of the (transposed) weight.
        acc = integer_matmul(env[x_name], x_zero, matrix, w_zero)
        return finish(acc.astype(np.int64), -1, env)
    return evaluate


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

