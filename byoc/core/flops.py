"""Arithmetic work of nodes: multiply-accumulates of the ops that dominate a model's time."""

from __future__ import annotations

import numpy as np

from byoc.core.ir import Graph, Node

# Ops whose weight is input 1 in the layout [C_out, C_in / group, k...] (QLinearConv: 3).
_CONV_WEIGHT_INPUT = {"Conv": 1, "ConvInteger": 1, "QLinearConv": 3}
# Ops whose first matrix operand (the one that carries K in its last dim) is input i.
_MATMUL_A_INPUT = {"MatMul": 0, "MatMulInteger": 0, "QLinearMatMul": 0}


def node_macs(node: Node, graph: Graph) -> int:
    """Multiply-accumulates of a Conv, Gemm or MatMul-like node (0 for other ops)."""
    if node.domain or not node.outputs:
        return 0
    outputs = int(np.prod(graph.types[node.outputs[0]].shape, dtype=np.int64))
    if node.op_type in _CONV_WEIGHT_INPUT:
        weight = graph.types[node.inputs[_CONV_WEIGHT_INPUT[node.op_type]]].shape
        return outputs * int(np.prod(weight[1:], dtype=np.int64))
    if node.op_type == "Gemm":
        a = graph.types[node.inputs[0]].shape
        return outputs * (a[0] if node.attrs.get("transA", 0) else a[1])
    if node.op_type in _MATMUL_A_INPUT:
        return outputs * graph.types[node.inputs[_MATMUL_A_INPUT[node.op_type]]].shape[-1]
    return 0


def graph_flops(graph: Graph, nodes: list[Node] | None = None) -> int:
    """2 * multiply-accumulates over ``nodes`` (default: the whole graph)."""
    return 2 * sum(node_macs(n, graph) for n in (graph.nodes if nodes is None else nodes))
