"""Arithmetic work of nodes: multiply-accumulates of the ops that dominate a model's time."""

from __future__ import annotations

import numpy as np

from byoc.core.interpreter.ops_einsum import parse_equation
from byoc.core.ir import Graph, Node

# Ops whose weight is input 1 in the layout [C_out, C_in / group, k...] (QLinearConv: 3).
_CONV_WEIGHT_INPUT = {"Conv": 1, "ConvInteger": 1, "QLinearConv": 3}
# Ops whose first matrix operand (the one that carries K in its last dim) is input i.
_MATMUL_A_INPUT = {"MatMul": 0, "MatMulInteger": 0, "QLinearMatMul": 0}


def node_macs(node: Node, graph: Graph) -> int:
    """Multiply-accumulates of a Conv, Gemm, MatMul-like, Einsum, recurrent or Attention node
    (0 for other ops)."""
    if node.domain or not node.outputs:
        return 0
    if node.op_type in _SEQUENCE_MACS:
        return _SEQUENCE_MACS[node.op_type](node, graph)
    if not node.outputs[0]:
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


def _einsum_macs(node: Node, graph: Graph) -> int:
    # One multiply-accumulate per output element and per combination of the summed
    # subscripts.
    equation = parse_equation(node.attrs["equation"], len(node.inputs))
    sizes = equation.letter_sizes([graph.types[v].shape for v in node.inputs])
    summed = [size for letter, size in sizes.items() if letter not in equation.output]
    return graph.types[node.outputs[0]].size * int(np.prod(summed, dtype=np.int64))


def _recurrent_macs(node: Node, graph: Graph) -> int:
    # X W^T and H R^T at every step, for every batch entry and direction (W is
    # [directions, gates * hidden, input], R [directions, gates * hidden, hidden]).
    seq_times_batch = int(np.prod(graph.types[node.inputs[0]].shape[:2], dtype=np.int64))
    directions, width, input_size = graph.types[node.inputs[1]].shape
    hidden = graph.types[node.inputs[2]].shape[2]
    return seq_times_batch * directions * width * (input_size + hidden)


def _attention_macs(node: Node, graph: Graph) -> int:
    # Q K^T and P V: every element of Q and of Y meets every key (the cache's too).
    k = graph.types[node.inputs[1]].shape
    keys = k[2] if len(k) == 4 else k[1]
    if len(node.inputs) > 4 and node.inputs[4]:
        keys += graph.types[node.inputs[4]].shape[2]
    y = node.outputs[0]
    return (graph.types[node.inputs[0]].size + (graph.types[y].size if y else 0)) * keys


_SEQUENCE_MACS = {"Einsum": _einsum_macs, "RNN": _recurrent_macs, "GRU": _recurrent_macs,
                  "LSTM": _recurrent_macs, "Attention": _attention_macs}


def graph_flops(graph: Graph, nodes: list[Node] | None = None) -> int:
    """2 * multiply-accumulates over ``nodes`` (default: the whole graph)."""
    return 2 * sum(node_macs(n, graph) for n in (graph.nodes if nodes is None else nodes))
