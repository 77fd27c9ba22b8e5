"""Removal of Identity nodes and of Dropout nodes that cannot drop anything."""

from __future__ import annotations

import numpy as np

from byoc.core.ir import Graph, Node

PASS_THROUGH_OPS = ("Identity", "Dropout")


def remove_identities(graph: Graph) -> int:
    """Make readers of an Identity/Dropout output read its input instead.

    A Dropout's mask output, when present, becomes an all-true constant. When the
    pass-through output is a graph output its name is kept: the node producing the input is
    changed to produce it; if the input is a graph input or constant (or itself a graph
    output), the node stays, since removing it would rename a model output.
    """
    removed = 0
    producers = graph.producers()
    for node in list(graph.nodes):
        if node.op_type not in PASS_THROUGH_OPS or node.domain or _may_train(node, graph):
            continue
        source, target = node.inputs[0], node.outputs[0]
        producer = producers.get(source)
        keeps_output_name = target in graph.outputs
        if keeps_output_name and (producer is None or source in graph.outputs):
            continue
        mask = node.outputs[1] if len(node.outputs) > 1 else ""
        mask_type = graph.types.get(mask)
        graph.remove_node(node)
        if mask:
            graph.constants[mask] = np.ones(mask_type.shape, dtype=mask_type.dtype)
            graph.types[mask] = mask_type
        if keeps_output_name:
            _rename_output(graph, producer, source, target)
            producers[target] = producer
        else:
            graph.replace_all_uses(target, source)
        removed += 1
    return removed


def _may_train(node: Node, graph: Graph) -> bool:
    """Whether a Dropout may drop elements: its training_mode input is not a constant false
    and its ratio not a constant 0."""
    if node.op_type != "Dropout" or len(node.inputs) < 3 or not node.inputs[2]:
        return False
    training, ratio = node.inputs[2], node.inputs[1]
    if graph.is_constant(training) and not np.asarray(graph.constants[training]).any():
        return False
    return not (ratio and graph.is_constant(ratio) and float(graph.constants[ratio]) == 0)


def _rename_output(graph: Graph, producer: Node, old: str, new: str) -> None:
    producer.outputs = [new if o == old else o for o in producer.outputs]
    graph.types[new] = graph.types.pop(old)
    graph.replace_all_uses(old, new)
