"""QDQ groups (DequantizeLinear -> Conv/MatMul/Gemm -> [Relu] -> QuantizeLinear) that the
reference evaluates as integer operations: which of a partition's groups cpu_llvm runs as one
integer kernel, and the lowering of each onto :mod:`.kernels.qconv` or
:mod:`.kernels.qmatmul`. Also DequantizeLinear -> MaxPool -> QuantizeLinear with one scale
and zero point, which is a MaxPool on the quantized values (:class:`QdqPool`), and
DequantizeLinear(a), DequantizeLinear(b) -> Add -> [Relu] -> QuantizeLinear, which
:mod:`.kernels.qadd` runs as one kernel on the quantized values (:class:`QdqAdd`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from byoc.core.integer_layers import IntegerGroup, integer_plans
from byoc.core.ir import Graph, Node
from byoc.core.qdq import QdqGroup, find_qdq_groups
from byoc_cpu_llvm.fusion import Group
from byoc_cpu_llvm.kernels.int8_product import INT8_TYPES, overflow_refusal
from byoc_cpu_llvm.kernels.pool import check_pool, lower_pool
from byoc_cpu_llvm.kernels.qadd import QuantizedTensor, lower_quantized_add
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
    absorbed |= _unread_dequantizes(
        partition, graph, [dq for layer in layers for dq in layer.igroup.group.dequantize],
        absorbed)
    return layers, absorbed


def _unread_dequantizes(partition, graph: Graph, dequantizes, replaced: set[int]) -> set[int]:
    """The ids of the DequantizeLinear nodes among ``dequantizes`` (None skipped) that are in
    ``partition``, define no output of it or of the graph, and are read only by nodes in
    ``replaced``: kernels that read the quantized value themselves."""
    inside = {id(n) for n in partition.nodes}
    outputs = set(partition.outputs) | set(graph.outputs)
    consumers = graph.consumers()
    return {id(dq) for dq in dequantizes
            if dq is not None and id(dq) in inside and dq.outputs[0] not in outputs
            and all(id(reader) in replaced for reader in consumers.get(dq.outputs[0], []))}


def _normal_scale(scale: np.ndarray) -> bool:
    """A float32 scale that is positive and normal, and small enough that no product with a
    code difference (at most 255) overflows."""
    tiny, huge = np.finfo(np.float32).tiny, np.finfo(np.float32).max / 256
    return scale.dtype == np.float32 and tiny <= float(scale) <= huge


@dataclass
class QdqPool:
    """DequantizeLinear -> MaxPool -> QuantizeLinear, the two with one float32 scale and zero
    point: a MaxPool on the quantized values gives the same bits. Dequantization is
    increasing for a positive scale, so the largest quantized value of a window is the one
    whose dequantized value wins, and quantizing that value again gives it back exactly
    (see :func:`lower_qdq_layer`). The kernel's windows read only input elements, so no
    padding value enters a maximum."""

    dequantize: Node
    pool: Node
    quantize: Node

    @property
    def kernel(self) -> Group:
        """The MaxPool, reading the quantized input and writing the QuantizeLinear's output."""
        return Group(Node("MaxPool", [self.dequantize.inputs[0]], [self.quantize.outputs[0]],
                          dict(self.pool.attrs), self.pool.name or "MaxPool"))


def _scalar_parameters(graph: Graph, node: Node):
    """(scale, zero point or None) of a Quantize/DequantizeLinear when both are constant
    scalars, else None."""
    names = node.inputs[1:3]
    if not all(graph.is_constant(n) for n in names if n):
        return None
    scale = np.asarray(graph.constants[names[0]])
    zero = np.asarray(graph.constants[names[1]]) if len(names) > 1 and names[1] else None
    if scale.size != 1 or (zero is not None and zero.size != 1):
        return None
    return scale, zero


def qdq_pool_refusal(graph: Graph, dq: Node, pool: Node, q: Node) -> str | None:
    """Why DequantizeLinear ``dq`` -> MaxPool ``pool`` -> QuantizeLinear ``q`` is not exactly
    a MaxPool on the quantized values, or None."""
    x_type = graph.types[dq.inputs[0]]
    if x_type.dtype not in INT8_TYPES or graph.types[q.outputs[0]].dtype != x_type.dtype:
        return "the quantized input and output must be the same int8/uint8 type"
    if len(pool.outputs) > 1 and pool.outputs[1]:
        return "MaxPool's Indices output needs the float pool"
    if "precision" in q.attrs or graph.is_constant(dq.inputs[0]):
        return "QuantizeLinear with a precision attribute, or a constant input"
    params = [_scalar_parameters(graph, n) for n in (dq, q)]
    if None in params:
        return "the scales and zero points must be constant scalars"
    (scale, zero), (q_scale, q_zero) = params
    if scale.dtype != np.float32 or q_scale.dtype != np.float32 or scale != q_scale:
        return "the two scales must be the same float32 value"
    if not _normal_scale(scale):
        return "the scale must be a normal positive float32"
    zeros = [0 if z is None else int(z) for z in (zero, q_zero)]
    if zeros[0] != zeros[1]:
        return "the two zero points must be equal"
    return check_pool(QdqPool(dq, pool, q).kernel.head, graph)


def partition_qdq_pools(partition, graph: Graph, taken: set[int]) -> tuple[list[QdqPool],
                                                                           set[int]]:
    """The DequantizeLinear -> MaxPool -> QuantizeLinear chains inside ``partition`` (none of
    whose nodes is in ``taken``) that run as a MaxPool on the quantized values, and the ids
    of the nodes that kernel replaces: the pool, the QuantizeLinear, and the
    DequantizeLinear when nothing else reads it."""
    inside = {id(n) for n in partition.nodes}
    producers = {v: n for n in partition.nodes for v in n.outputs if v}
    consumers = graph.consumers()
    outputs = set(partition.outputs) | set(graph.outputs)
    pools, absorbed = [], set()
    for pool in partition.nodes:
        if pool.op_type != "MaxPool" or pool.domain or id(pool) in taken:
            continue
        dq = producers.get(pool.inputs[0])
        readers = consumers.get(pool.outputs[0], [])
        if (dq is None or dq.op_type != "DequantizeLinear" or id(dq) in taken
                or len(readers) != 1 or pool.outputs[0] in outputs):
            continue
        q = readers[0]
        if (q.op_type != "QuantizeLinear" or id(q) not in inside or id(q) in taken
                or qdq_pool_refusal(graph, dq, pool, q)):
            continue
        pools.append(QdqPool(dq, pool, q))
        absorbed.update((id(pool), id(q)))
    absorbed |= _unread_dequantizes(partition, graph, [c.dequantize for c in pools], absorbed)
    return pools, absorbed


def lower_qdq_pool(program, chain: QdqPool) -> None:
    lower_pool(program, chain.kernel)


@dataclass
class QdqAdd:
    """DequantizeLinear(a), DequantizeLinear(b) -> Add -> [Relu] -> QuantizeLinear on tensors
    of one shape, each quantized per tensor: one kernel reading ``a`` and ``b`` and writing
    the quantized sum (:func:`~byoc_cpu_llvm.kernels.qadd.lower_quantized_add`)."""

    group: QdqGroup

    @property
    def quantized_inputs(self) -> list[str]:
        return [dq.inputs[0] for dq in self.group.dequantize]

    @property
    def replaced(self) -> list[Node]:
        """The nodes the kernel replaces whatever else reads the inputs: the Add, the Relu
        and the QuantizeLinear."""
        group = self.group
        return [n for n in (group.op, group.activation, group.quantize) if n is not None]


def qdq_add_refusal(graph: Graph, group: QdqGroup) -> str | None:
    """Why an Add's QDQ group is not one quantized-add kernel, or None."""
    dq_a, dq_b = group.dequantize
    q = group.quantize
    if group.activation is not None and group.activation.op_type != "Relu":
        return "only a Relu is fused between the Add and the QuantizeLinear"
    values = [dq_a.inputs[0], dq_b.inputs[0], q.outputs[0]]
    if any(graph.types[v].dtype not in INT8_TYPES for v in values):
        return "the quantized inputs and output must be int8/uint8"
    if len({graph.types[v].shape for v in values}) != 1:
        return "the two inputs and the output must have one shape (no broadcasting)"
    nodes = (dq_a, dq_b, q)
    if "precision" in q.attrs or any(n.attrs.get("block_size", 0) for n in nodes):
        return "QuantizeLinear with a precision attribute, or blocked quantization"
    params = [_scalar_parameters(graph, n) for n in nodes]
    if None in params:
        return "the scales and zero points must be constant scalars (per tensor)"
    # No product of a scale by a code difference overflows, so no sum is NaN.
    if not all(_normal_scale(scale) for scale, _ in params):
        return "the scales must be normal positive float32 values"
    return None


def partition_qdq_adds(partition, graph: Graph, taken: set[int]) -> tuple[list[QdqAdd],
                                                                          set[int]]:
    """The quantized Adds inside ``partition`` (none of whose nodes is in ``taken``) whose
    quantized inputs the partition has, and the ids of the nodes their kernels replace:
    the Add, Relu and QuantizeLinear, and each DequantizeLinear that only nodes in
    ``taken`` or replaced here read."""
    inside = {id(n) for n in partition.nodes}
    available = set(partition.inputs) | {v for n in partition.nodes for v in n.outputs if v}
    outputs = set(partition.outputs) | set(graph.outputs)
    adds, absorbed = [], set()
    for group in find_qdq_groups(graph, ops=("Add",)):
        chain = QdqAdd(group)
        if (not all(id(n) in inside and id(n) not in taken for n in chain.replaced)
                or any(n.outputs[0] in outputs for n in chain.replaced[:-1])
                or not all(v in available or graph.is_constant(v)
                           for v in chain.quantized_inputs)
                or qdq_add_refusal(graph, group)):
            continue
        adds.append(chain)
        absorbed.update(id(n) for n in chain.replaced)
    absorbed |= _unread_dequantizes(
        partition, graph, [dq for chain in adds for dq in chain.group.dequantize],
        taken | absorbed)
    return adds, absorbed


def lower_qdq_add(program, chain: QdqAdd) -> None:
    group = chain.group

    def quantized(node: Node, value: str) -> QuantizedTensor:
        scale, zero = _scalar_parameters(program.graph, node)
        return QuantizedTensor(value, np.float32(scale.reshape(())),
                               0 if zero is None else int(zero.reshape(())))

    dq_a, dq_b = group.dequantize
    lower_quantized_add(program, group.op.name or "Add",
                        quantized(dq_a, dq_a.inputs[0]), quantized(dq_b, dq_b.inputs[0]),
                        quantized(group.quantize, group.quantize.outputs[0]),
                        relu=group.activation is not None)


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

