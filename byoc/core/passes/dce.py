"""Dead-code elimination: drop nodes and constants that no graph output depends on."""

from __future__ import annotations

from byoc.core.ir import Graph


def eliminate_dead_code(graph: Graph) -> int:
    live = set(graph.outputs)
    kept = []
    for node in reversed(graph.nodes):
        if any(out in live for out in node.outputs if out):
            kept.append(node)
            live.update(node.present_inputs)
    removed = [node for node in graph.nodes if not any(node is k for k in kept)]
    for node in removed:
        graph.remove_node(node)
    # Outputs of kept nodes that nothing reads stay typed: the node still defines them.
    constants_before = len(graph.constants)
    graph.prune_constants()
    return len(removed) + constants_before - len(graph.constants)
