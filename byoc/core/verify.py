"""The graph IR's invariants, checked in one place."""

from __future__ import annotations

import numpy as np

from byoc.core.ir import Graph, TensorType
from byoc.errors import VerificationError


def verify(graph: Graph) -> None:
    """Check that ``graph`` is well formed, or raise VerificationError saying what is not.

    Invariants: every value is defined exactly once (graph input, constant or node output);
    every defined value has a static type and each constant's array matches its type; nodes
    are in topological order, so there is no cycle and no use before definition; every node
    input and graph output refers to a defined value.
    """
    problems: list[str] = []
    defined: dict[str, str] = {}

    def define(name: str, where: str) -> None:
        if not name:
            return
        if name in defined:
            problems.append(f"value {name!r} is defined twice: by {defined[name]} and by {where}")
        defined[name] = where
        if name not in graph.types:
            problems.append(f"value {name!r} (defined by {where}) has no type")

    for name in graph.inputs:
        if name not in graph.constants:
            define(name, "a graph input")
    for name, array in graph.constants.items():
        define(name, "a constant")
        declared = graph.types.get(name)
        if declared is not None and declared != TensorType.of(np.asarray(array)):
            problems.append(f"constant {name!r} holds {TensorType.of(np.asarray(array))} but "
                            f"is typed {declared}")

    node_names: set[str] = set()
    for node in graph.nodes:
        label = f"node {node.name!r} ({node.op_type})"
        if node.name in node_names:
            problems.append(f"node name {node.name!r} is used twice")
        node_names.add(node.name)
        for value in node.present_inputs:
            if value not in defined:
                later = any(value in n.outputs for n in graph.nodes)
                problems.append(f"{label} reads {value!r} "
                                + ("before it is defined (nodes out of topological order "
                                   "or a cycle)" if later else "which is never defined"))
        for value in node.outputs:
            define(value, label)

    for value in graph.outputs:
        if value not in defined:
            problems.append(f"graph output {value!r} is never defined")
    for name, ttype in graph.types.items():
        if any(d < 0 for d in ttype.shape):
            problems.append(f"value {name!r} has a negative dimension in {ttype}")

    if problems:
        raise VerificationError(f"graph {graph.name!r} is malformed: " + "; ".join(problems))
