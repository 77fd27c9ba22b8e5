"""The partition plan as an ONNX model: one node per partition, for viewers such as Netron.

Each partition becomes a node in the custom domain ``byoc.partition`` whose op type is the
plugin's name, named after the partition, reading its boundary inputs and writing its boundary
outputs. Its attributes: ``plugin`` (string), ``nodes`` (the node count), ``ops`` (op counts in
order of first appearance, e.g. ``"Conv:3,Relu:3"``) and ``patterns`` (the patterns that took
its nodes). Every boundary value carries its type. Weights are left out: each partition
carries its own.

A graph output that no partition defines is either a graph input, referenced as it is (an
Identity cannot re-define the same name, and renaming it would change the model's interface),
or a constant, stored as an initializer of that name (the only weight kept, since it *is* a
result of the model). The ONNX checker does not check ops of domains it does not know, so the
model passes ``onnx.checker.check_model`` as long as the domain is imported.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import onnx
from onnx import AttributeProto, helper, numpy_helper

from byoc.core import dtypes
from byoc.core.ir import Graph, TensorType
from byoc.errors import ByocError
from byoc.partition.partitioner import PartitionPlan
from byoc.plugins.api import Partition

PARTITION_DOMAIN = "byoc.partition"
PARTITION_DOMAIN_VERSION = 1
DEFAULT_OPSET = 17


def export_partitioned_onnx(graph: Graph, plan: PartitionPlan) -> onnx.ModelProto:
    """The partition graph of ``plan`` over ``graph`` as a checked ONNX model."""
    nodes = [_partition_node(partition, plan) for partition in plan.partitions]
    defined = {v for p in plan.partitions for v in p.outputs}
    real_inputs = list(dict.fromkeys(graph.inputs))
    initializers = [numpy_helper.from_array(graph.constants[v], v)
                    for v in dict.fromkeys(graph.outputs)
                    if v not in defined and v not in real_inputs and v in graph.constants]
    boundary = {v: t for p in plan.partitions for v, t in p.types.items()
                if v in p.inputs or v in p.outputs}
    interface = set(real_inputs) | set(graph.outputs)
    onnx_graph = helper.make_graph(
        nodes, graph.name,
        [_value_info(v, graph.type_of(v), "graph input") for v in real_inputs],
        [_value_info(v, graph.type_of(v), "graph output") for v in dict.fromkeys(graph.outputs)],
        initializer=initializers,
        value_info=[_value_info(v, t, "partition boundary value") for v, t in boundary.items()
                    if v not in interface])
    model = helper.make_model(
        onnx_graph, producer_name="byoc",
        opset_imports=[helper.make_opsetid("", graph.opsets.get("", DEFAULT_OPSET)),
                       helper.make_opsetid(PARTITION_DOMAIN, PARTITION_DOMAIN_VERSION)])
    model.doc_string = (f"Partition plan of {graph.name!r}: {len(plan.partitions)} partitions "
                        f"over {len(graph.nodes)} nodes (weights not included)")
    try:
        onnx.checker.check_model(model)
    except onnx.checker.ValidationError as error:
        raise ByocError(f"the partitioned ONNX model of graph {graph.name!r} is invalid: "
                        f"{error}") from error
    return model


def write_partitioned_onnx(path: str | Path, graph: Graph, plan: PartitionPlan) -> None:
    """Write :func:`export_partitioned_onnx` of ``graph`` and ``plan`` to ``path``."""
    onnx.save(export_partitioned_onnx(graph, plan), str(path))


def op_summary(partition: Partition) -> str:
    """The partition's op counts in order of first appearance, e.g. ``"Conv:3,Relu:3"``."""
    return ",".join(f"{op}:{n}" for op, n in Counter(n.op_type for n in partition.nodes).items())


def _partition_node(partition: Partition, plan: PartitionPlan) -> onnx.NodeProto:
    patterns = list(dict.fromkeys(plan.patterns[n.name] for n in partition.nodes
                                  if plan.patterns.get(n.name)))
    node = helper.make_node(
        partition.plugin, partition.inputs, partition.outputs, name=partition.name,
        domain=PARTITION_DOMAIN, doc_string=", ".join(n.name for n in partition.nodes),
        plugin=partition.plugin, nodes=len(partition.nodes), ops=op_summary(partition))
    node.attribute.append(helper.make_attribute("patterns", patterns,
                                                attr_type=AttributeProto.STRINGS))
    return node


def _value_info(value: str, tensor_type: TensorType, role: str) -> onnx.ValueInfoProto:
    try:
        elem_type = dtypes.to_onnx(tensor_type.dtype)
    except KeyError:
        raise ByocError(f"{role} {value!r} has dtype {tensor_type.dtype}, which has no ONNX "
                        f"element type byoc supports") from None
    return helper.make_tensor_value_info(value, elem_type, list(tensor_type.shape))
