"""Lowering a partition: fuse its nodes into groups, emit a kernel per group, finish the
program (IR text, buffer plan and constants)."""

from __future__ import annotations

import numpy as np

from byoc.core.flops import graph_flops
from byoc.core.ir import Graph
from byoc.errors import PluginError
from byoc.plugins.api import Partition
from byoc_cpu_llvm.concat_placement import place_concat_inputs
from byoc_cpu_llvm.fusion import Group, attach_prologues, plan_groups
from byoc_cpu_llvm.kernels import LOWERINGS, supports
from byoc_cpu_llvm.kernels.conv import takes_prologue
from byoc_cpu_llvm.program import ProgramBuilder
from byoc_cpu_llvm.qdq_groups import (
    QdqAdd,
    QdqLayer,
    QdqPool,
    lower_qdq_add,
    lower_qdq_layer,
    lower_qdq_pool,
    partition_qdq_adds,
    partition_qdq_layers,
    partition_qdq_pools,
)

# Ops that only reinterpret their input's memory: their output aliases the input.
ALIASING_OPS = {"Reshape", "Flatten", "Squeeze", "Unsqueeze", "Identity", "Dropout"}


def lower_partition(partition: Partition, graph: Graph,
                    constants: dict[str, np.ndarray]) -> tuple[str, dict, dict[str, np.ndarray]]:
    """The partition as (LLVM IR text, runtime metadata, constant arrays)."""
    program = ProgramBuilder(partition.name, graph, partition.inputs, partition.outputs)
    position = {id(node): i for i, node in enumerate(partition.nodes)}
    outputs = set(partition.outputs)
    compute, copies, keep = [], [], set(outputs)
    # QDQ groups (DequantizeLinear -> Conv/MatMul/Gemm -> [Relu] -> QuantizeLinear) that the
    # reference evaluates as integer operations become one integer kernel each, placed at their
    # QuantizeLinear; the nodes that kernel replaces are not lowered one by one.
    layers, absorbed = partition_qdq_layers(partition, graph)
    keep.update(layer.x_quant for layer in layers)  # their kernels read it from memory
    # Likewise DequantizeLinear -> MaxPool -> QuantizeLinear with one scale: a MaxPool on the
    # quantized values.
    pools, pooled = partition_qdq_pools(partition, graph, absorbed)
    absorbed |= pooled
    keep.update(chain.dequantize.inputs[0] for chain in pools)
    # And DequantizeLinear(a), DequantizeLinear(b) -> Add -> [Relu] -> QuantizeLinear: one
    # kernel on the quantized values.
    adds, added = partition_qdq_adds(partition, graph, absorbed)
    absorbed |= added
    keep.update(value for chain in adds for value in chain.quantized_inputs)
    for node in partition.nodes:
        if id(node) in absorbed:
            continue
        if node.op_type in ALIASING_OPS and not node.domain and not alias_refusal(node, graph):
            keep.add(node.inputs[0])
            if node.outputs[0] in outputs:
                copies.append(node)
            else:
                program.alias(node.outputs[0], node.inputs[0])
            continue
        reason = supports(node, graph)
        if reason is not None:
            raise PluginError(f"cpu_llvm cannot lower node {node.name!r}: {reason}")
        compute.append(node)
    # Emit kernels and output copies in dataflow order: each after the last node it covers.
    groups = attach_prologues(plan_groups(compute, graph, keep), graph, keep, takes_prologue)
    place_concat_inputs(program, groups, graph, {*partition.inputs, *outputs})
    steps = [(max(position[id(n)] for n in group.nodes), group) for group in groups]
    steps += [(position[id(node)], node) for node in copies]
    steps += [(position[id(layer.igroup.group.quantize)], layer) for layer in layers]
    steps += [(position[id(chain.quantize)], chain) for chain in pools]
    steps += [(position[id(chain.group.quantize)], chain) for chain in adds]
    for _, step in sorted(steps, key=lambda item: item[0]):
        if isinstance(step, Group):
            LOWERINGS[step.head.op_type](program, step)
        elif isinstance(step, QdqLayer):
            lower_qdq_layer(program, step)
        elif isinstance(step, QdqPool):
            lower_qdq_pool(program, step)
        elif isinstance(step, QdqAdd):
            lower_qdq_add(program, step)
        else:
            program.copy(step.outputs[0], step.inputs[0])
    ir_text, meta = program.finish()
    meta["work"] = estimated_work(partition, graph)
    return ir_text, meta, program.arrays


def estimated_work(partition: Partition, graph: Graph) -> int:
    """A rough count of a partition's operations per run: the flops of its matrix products
    plus one per element it writes (the runtime runs small partitions on one thread)."""
    written = sum(graph.types[o].size for n in partition.nodes for o in n.outputs if o)
    return graph_flops(graph, partition.nodes) + written


def alias_refusal(node, graph: Graph) -> str | None:
    """Why a Reshape-like node cannot simply alias its input, or None when it can: the bytes
    must stay the same, and a Dropout must be in inference mode with no mask output."""
    if [o for o in node.outputs[1:] if o]:
        return f"{node.op_type} with a second output is not an alias"
    if node.op_type == "Dropout" and len(node.inputs) > 2 and node.inputs[2]:
        training = node.inputs[2]
        if not graph.is_constant(training) or bool(graph.constants[training]):
            return "Dropout in training mode (or with a run-time training_mode) is not supported"
    if graph.types[node.inputs[0]].size != graph.types[node.outputs[0]].size:
        return f"{node.op_type} changes the element count"
    return None
