"""The reference host plugin: runs partitions on byoc's numpy reference interpreter.

It claims no patterns: as the host it takes whatever no accelerator plugin takes. It is a
plugin like any other, published through byoc's own entry point in the group ``byoc.plugins``.

A partition runs on the same semantics as the whole model: a quantized layer whose op and
QuantizeLinear are in the partition is evaluated as one integer operation even when one of
its DequantizeLinear nodes runs elsewhere (other nodes read it too, see
:func:`byoc.partition.partitioner.quantized_layers`). The lowering puts a copy of that
DequantizeLinear into the partition's graph, reading the constant it dequantizes or, for a
run-time value, the partition's float input quantized back (exact for every 8-bit value).
"""

from __future__ import annotations

from typing import Any

import numpy as np

import byoc
from byoc.core.integer_layers import integer_plans
from byoc.core.interpreter import Interpreter
from byoc.core.ir import Graph, Node, TensorType
from byoc.core.verify import verify
from byoc.plugins import hookimpl
from byoc.plugins.api import (
    Partition,
    PartitionSignature,
    Payload,
    PluginInfo,
    PluginOption,
    Transfer,
)
from byoc.plugins.graph_payload import graph_from_payload, graph_to_payload

NAME = "reference"


@hookimpl
def byoc_plugin_info() -> PluginInfo:
    return PluginInfo(name=NAME, version=byoc.__version__,
                      device="host CPU (numpy reference interpreter)",
                      description="byoc's reference interpreter as a host backend")


@hookimpl
def byoc_plugin_options() -> list[PluginOption]:
    """The reference interpreter takes no options: any given to it is refused by name."""
    return []


@hookimpl
def byoc_estimate_transfer() -> Transfer:
    """The interpreter works in host memory: it moves nothing."""
    return Transfer.free()


@hookimpl
def byoc_lower_partition(partition: Partition, graph: Graph,
                         constants: dict[str, np.ndarray]) -> Graph:
    subgraph = partition.subgraph(constants)
    if _dequantize_inside(subgraph, partition, graph):
        verify(subgraph)
    return subgraph


def _dequantize_inside(subgraph: Graph, partition: Partition, graph: Graph) -> int:
    """Give each quantized layer of ``partition`` its DequantizeLinear nodes that run outside
    it, as copies in ``subgraph`` (see the module docstring); return how many were added."""
    inside = {id(n) for n in partition.nodes}
    by_name = {n.name: n for n in subgraph.nodes}
    added = 0
    for plan in integer_plans(graph).values():
        group = plan.group
        core = [n for n in (group.op, group.activation, group.quantize) if n is not None]
        if not all(id(n) in inside for n in core):
            continue
        op = by_name[group.op.name]
        for position, dq in enumerate(group.dequantize):
            if dq is None or id(dq) in inside:
                continue
            nodes = _dequantize_copy(subgraph, graph, dq)
            if nodes:
                op.inputs[position] = nodes[-1].outputs[0]
                at = subgraph.nodes.index(op)
                subgraph.nodes[at:at] = nodes
                added += len(nodes)
    return added


def _dequantize_copy(subgraph: Graph, graph: Graph, dq: Node) -> list[Node]:
    """Nodes that compute ``dq`` inside ``subgraph``, ending in a DequantizeLinear: on the
    constant it reads, or on its float output (a partition input) quantized back. Empty when
    the quantized type cannot be rebuilt (no zero point on a type other than uint8)."""
    data, params = dq.inputs[0], [v for v in dq.inputs[1:] if v]
    for value in ([data] if graph.is_constant(data) else []) + params:
        subgraph.constants.setdefault(value, graph.constants[value])
        subgraph.types.setdefault(value, graph.types.get(value) or
                                  TensorType.of(graph.constants[value]))
    nodes = []
    if not graph.is_constant(data):
        zero = dq.inputs[2] if len(dq.inputs) > 2 else ""
        if not zero and graph.types[data].dtype != np.uint8:
            return []
        requantized = subgraph.fresh_name(f"{data}__requantized")
        subgraph.types[requantized] = graph.types[data]
        nodes.append(Node("QuantizeLinear", [dq.outputs[0], *dq.inputs[1:]], [requantized],
                          dict(dq.attrs), subgraph.fresh_name(f"{dq.name}__requantize")))
        data = requantized
    output = subgraph.fresh_name(f"{dq.outputs[0]}__inside")
    subgraph.types[output] = graph.types[dq.outputs[0]]
    nodes.append(Node("DequantizeLinear", [data, *dq.inputs[1:]], [output], dict(dq.attrs),
                      subgraph.fresh_name(f"{dq.name}__inside"), dq.domain))
    return nodes


@hookimpl
def byoc_codegen_partition(partition: Partition, lowered: Any) -> Payload:
    return graph_to_payload(lowered)


class InterpreterRuntime:
    """Runs one partition's subgraph on the reference interpreter."""

    def __init__(self, graph: Graph) -> None:
        self._interpreter = Interpreter(graph)

    def run(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return self._interpreter.run(inputs)


@hookimpl
def byoc_runtime_create(payload: Payload, partition: PartitionSignature) -> InterpreterRuntime:
    return InterpreterRuntime(graph_from_payload(payload))
