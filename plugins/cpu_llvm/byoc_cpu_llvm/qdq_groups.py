"""QDQ groups (DequantizeLinear -> Conv/MatMul/Gemm -> [Relu] -> QuantizeLinear) that the
reference evaluates as integer operations: which of a partition's groups cpu_llvm runs as one
integer kernel, and the lowering of each onto :mod:`.kernels.qconv` or
:mod:`.kernels.qmatmul`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from byoc.core.integer_layers import IntegerGroup, integer_plans
from byoc.core.ir import Graph, Node
from byoc_cpu_llvm.kernels.int8_product import INT8_TYPES, overflow_refusal
from byoc_cpu_llvm.kernels.qconv import conv_refusal, lower_conv_product
from byoc_cpu_llvm.kernels.qmatmul import lower_matrix_product
from byoc_cpu_llvm.kernels.quant import emit_quantize


@dataclass
class QdqLayer:
    """The integer operation of a qualifying QDQ group, in the terms of the kernels."""

    igroup: IntegerGroup
    x_quant: str             # the quantized input value (what the input DequantizeLinear reads)
    x_zero: int
    weight: np.ndarray
    w_zero: np.ndarray
    bias: np.ndarray | None
    multiplier: np.ndarray
    y_zero: int
    out_dtype: np.dtype
    out_min: int
    out_max: int
    x_from_float: bool = False   # the input DequantizeLinear is not in the partition

    @property
    def op(self) -> Node:
        return self.igroup.group.op

    @property
    def output(self) -> str:
        return self.igroup.group.quantize.outputs[0]


def qdq_layer(graph: Graph, igroup: IntegerGroup) -> QdqLayer:
    """The group's integer operation (byoc's IntegerLayer) with the weight as stored (Gemm's
    not transposed), which is how the kernels read it."""
    layer = igroup.layer
    weight = np.asarray(graph.constants[igroup.group.dequantize[1].inputs[0]])
    return QdqLayer(igroup, layer.x, layer.x_zero, weight, layer.w_zero, layer.bias,
                    layer.multiplier, layer.y_zero, layer.y_dtype, layer.out_min,
                    layer.out_max)


def qdq_refusal(graph: Graph, igroup: IntegerGroup) -> str | None:
    """Why cpu_llvm cannot run a qualifying group as an integer kernel, or None."""
    group = igroup.group
    dq_x, dq_w = group.dequantize[0], group.dequantize[1]
    dq_b = group.dequantize[2] if len(group.dequantize) > 2 else None
    x_type = graph.types[dq_x.inputs[0]]
    if x_type.dtype not in INT8_TYPES:
        return "cpu_llvm integer kernels take int8/uint8 activations"
    if graph.types[dq_w.inputs[0]].dtype not in INT8_TYPES:
        return "cpu_llvm integer kernels take int8/uint8 weights"
    if dq_b is not None and not graph.is_constant(dq_b.inputs[0]):
        return "cpu_llvm integer kernels need a constant bias"
    if group.quantize.outputs[0] and graph.types[group.quantize.outputs[0]].dtype not in (
            INT8_TYPES + (np.dtype(np.int16), np.dtype(np.uint16))):
        return "cpu_llvm integer kernels output 8- or 16-bit integers"
    layer = qdq_layer(graph, igroup)
    op = group.op
    if op.op_type == "Conv":
        return conv_refusal(graph, op, dq_x.inputs[0], layer.weight, layer.bias)
    w_shape = layer.weight.shape
    if len(w_shape) != 2 or len(x_type.shape) < 2:
        return "cpu_llvm integer MatMul/Gemm takes a 2-D weight and an input of rank 2 or more"
    if op.op_type == "Gemm" and len(x_type.shape) != 2:
        return "Gemm takes a 2-D input"
    return overflow_refusal(x_type.shape[-1], layer.bias)


def lower_qdq_layer(program, layer: QdqLayer) -> None:
    """Emit the integer kernel of a QDQ group: reads the quantized input, writes the output
    of its QuantizeLinear."""
    op = layer.op
    tag = op.name or op.op_type
    if layer.x_from_float:
        # Quantizing the dequantized input again gives back the quantized input exactly:
        # fl(fl(q * s) / s) is within q * 2**-23 of q, so it rounds to q.
        dq_x = layer.igroup.group.dequantize[0]
        scale = program.graph.constants[dq_x.inputs[1]]
        zero = (program.graph.constants[dq_x.inputs[2]] if len(dq_x.inputs) > 2
                and dq_x.inputs[2] else None)
        emit_quantize(program, dq_x.outputs[0], layer.x_quant, scale, zero, 1,
                      program.graph.types[layer.x_quant].dtype, f"{tag}__requantize_input")
    requant = {"bias": layer.bias, "multiplier": layer.multiplier, "y_zero": layer.y_zero,
               "out_min": layer.out_min, "out_max": layer.out_max}
    if op.op_type == "Conv":
        lower_conv_product(program, tag, op, layer.x_quant, layer.output, layer.weight,
                           layer.w_zero, layer.x_zero, **requant)
        return
    matrix = layer.weight.T if op.op_type == "Gemm" and op.attrs.get("transB") else layer.weight
    n = matrix.shape[1]
    requant["multiplier"] = np.broadcast_to(layer.multiplier, (n,))
    if layer.bias is not None:
        requant["bias"] = np.broadcast_to(layer.bias, (n,))
    lower_matrix_product(program, tag, layer.x_quant, layer.output, matrix, layer.w_zero,
                         layer.x_zero, **requant)


def partition_qdq_layers(partition, graph: Graph) -> tuple[list[QdqLayer], set[int]]:
    """The integer groups lying in ``partition`` (their op, activation and QuantizeLinear are
    all in it) that cpu_llvm can run, and the ids of the nodes their kernels replace: those
    three, and the group's DequantizeLinear nodes in the partition that nothing else reads."""
    inside = {id(n) for n in partition.nodes}
    available = set(partition.inputs) | {v for n in partition.nodes for v in n.outputs if v}
    layers, absorbed = [], set()
    for igroup in integer_plans(graph).values():
        group = igroup.group
        core = [n for n in (group.op, group.activation, group.quantize) if n is not None]
        if not all(id(n) in inside for n in core) or qdq_refusal(graph, igroup):
            continue
        layer = qdq_layer(graph, igroup)
        layer.x_from_float = (layer.x_quant not in available
                              and not graph.is_constant(layer.x_quant))
        layers.append(layer)
        absorbed.update(id(n) for n in core)
    consumers = graph.consumers()
    outputs = set(partition.outputs) | set(graph.outputs)
    for layer in layers:
        for dq in layer.igroup.group.dequantize:
            if dq is None or id(dq) not in inside or dq.outputs[0] in outputs:
                continue
            if all(id(reader) in absorbed for reader in consumers.get(dq.outputs[0], [])):
                absorbed.add(id(dq))
    return layers, absorbed


def integer_group_refusal(node: Node, graph: Graph) -> str | None:
    """Why cpu_llvm declines ``node`` alone: it belongs to a group the reference evaluates
    as an integer operation which cpu_llvm cannot lower as one (running its nodes as float
    ops would not be exact)."""
    for igroup in integer_plans(graph).values():
        if any(n is node for n in igroup.group.nodes):
            reason = qdq_refusal(graph, igroup)
            if reason:
                return f"part of integer group {igroup.group.quantize.name!r}: {reason}"
    return None

