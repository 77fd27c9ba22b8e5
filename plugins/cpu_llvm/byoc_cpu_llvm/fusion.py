"""Grouping a partition's nodes into kernels: a head op and the elementwise chain after it.

An elementwise node joins the group before it (as its *epilogue*) when it reads that group's
result, nothing else reads that result, it is not a partition output, the node keeps the
result's shape and dtype, and its other operands broadcast to that shape. So conv + bias +
relu, gemm + bias, add + relu and longer elementwise chains each become one kernel, and the
intermediate values never reach memory.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from byoc.core.ir import Graph, Node
from byoc_cpu_llvm.kernels import ACCEPTS_EPILOGUE
from byoc_cpu_llvm.kernels.scalar_ops import EMITTERS

COMMUTATIVE = {"Add", "Mul", "Min", "Max", "Sum", "Mean", "Equal", "And", "Or", "Xor"}


@dataclass
class Group:
    """One kernel: ``head`` and the elementwise ``epilogue`` nodes applied to its result."""

    head: Node
    epilogue: list[Node] = field(default_factory=list)

    @property
    def nodes(self) -> list[Node]:
        return [self.head, *self.epilogue]

    @property
    def output(self) -> str:
        return self.nodes[-1].outputs[0]

    def operands(self, node: Node) -> list[str]:
        """``node``'s inputs other than the running result (for epilogue nodes)."""
        previous = self.nodes[self.nodes.index(node) - 1].outputs[0]
        others = list(node.inputs)
        others.remove(previous)
        return others


def plan_groups(nodes: list[Node], graph: Graph, keep: set[str]) -> list[Group]:
    """Group ``nodes`` (in order); values in ``keep`` (partition outputs) stay in memory."""
    readers: dict[str, int] = {}
    for node in nodes:
        for value in set(node.present_inputs):
            readers[value] = readers.get(value, 0) + 1
    groups: list[Group] = []
    for node in nodes:
        last = groups[-1] if groups else None
        if last is not None and _joins(node, last, graph, readers, keep):
            last.epilogue.append(node)
        else:
            groups.append(Group(node))
    return groups


def _joins(node: Node, group: Group, graph: Graph, readers: dict[str, int],
           keep: set[str]) -> bool:
    result = group.output
    if node.op_type not in EMITTERS or node.op_type == "Cast" or node.domain:
        return False
    if "" in node.inputs:  # epilogues take operands by position; omitted ones have none
        return False
    if group.head.op_type not in ACCEPTS_EPILOGUE or len(node.outputs) != 1:
        return False
    if result in keep or readers.get(result) != 1 or result not in node.inputs:
        return False
    if node.inputs.index(result) != 0 and node.op_type not in COMMUTATIVE:
        return False
    if node.inputs.count(result) != 1:
        return False
    before, after = graph.types[result], graph.types[node.outputs[0]]
    if before != after:
        return False
    for value in node.present_inputs:
        shape = graph.types[value].shape
        if value != result and (len(shape) > len(after.shape) or any(
                d not in (1, a) for d, a in zip(shape[::-1], after.shape[::-1]))):
            return False
    return True
