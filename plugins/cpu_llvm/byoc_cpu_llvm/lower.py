"""Lowering a partition: fuse its nodes into groups, emit a kernel per group, finish the
program (IR text, buffer plan and constants)."""

from __future__ import annotations

import numpy as np

from byoc.core.ir import Graph
from byoc.errors import PluginError
from byoc.plugins.api import Partition
from byoc_cpu_llvm.fusion import Group, plan_groups
from byoc_cpu_llvm.kernels import LOWERINGS, supports
from byoc_cpu_llvm.program import ProgramBuilder

# Ops that only reinterpret their input's memory: their output aliases the input.
ALIASING_OPS = {"Reshape", "Flatten", "Squeeze", "Unsqueeze", "Identity", "Dropout"}


def lower_partition(partition: Partition, graph: Graph,
                    constants: dict[str, np.ndarray]) -> tuple[str, dict, dict[str, np.ndarray]]:
    """The partition as (LLVM IR text, runtime metadata, constant arrays)."""
    program = ProgramBuilder(partition.name, graph, partition.inputs, partition.outputs)
    position = {id(node): i for i, node in enumerate(partition.nodes)}
    outputs = set(partition.outputs)
    compute, copies, keep = [], [], set(outputs)
    for node in partition.nodes:
        if node.op_type in ALIASING_OPS and not node.domain and _plain_alias(node, graph):
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
    steps = [(max(position[id(n)] for n in group.nodes), group)
             for group in plan_groups(compute, graph, keep)]
    steps += [(position[id(node)], node) for node in copies]
    for _, step in sorted(steps, key=lambda item: item[0]):
        if isinstance(step, Group):
            LOWERINGS[step.head.op_type](program, step)
        else:
            program.copy(step.outputs[0], step.inputs[0])
    ir_text, meta = program.finish()
    return ir_text, meta, program.arrays


def _plain_alias(node, graph: Graph) -> bool:
    """Reshape-like nodes alias their input when the bytes stay the same (Dropout only
    without a used mask output)."""
    extra = [o for o in node.outputs[1:] if o]
    return not extra and graph.types[node.inputs[0]].size == graph.types[node.outputs[0]].size
