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
    # BatchNormalization [, Relu] whose result only the head reads: the head applies them to
    # its input as it reads it (see attach_prologues)
    prologue: list[Node] = field(default_factory=list)

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


def attach_prologues(groups: list[Group], graph: Graph, keep: set[str],
                     takes_prologue) -> list[Group]:
    """``groups`` with each BatchNormalization [+ Relu] group (inference mode, constant
    parameters) whose result only one group reads, a head that ``takes_prologue(head,
    graph)``, as that group's prologue: the pre-activation of DenseNet's layers, whose 1x1
    convolutions then normalize their input as they pack it, and no kernel writes the
    normalized copy."""
    readers: dict[str, list[Group]] = {}
    for group in groups:
        for node in group.nodes:
            for value in set(node.present_inputs):
                readers.setdefault(value, []).append(group)
    absorbed = set()
    for group in groups:
        head = group.head
        if head.op_type != "BatchNormalization" or head.domain:
            continue
        if [n.op_type for n in group.epilogue] not in ([], ["Relu"]):
            continue
        out = group.output
        users = readers.get(out, [])
        if out in keep or len(users) != 1 or users[0].prologue:
            continue
        user = users[0]
        if (user.head.inputs[:1] != [out] or out in user.head.inputs[1:]
                or any(out in n.inputs for n in user.epilogue)
                or not all(graph.is_constant(v) for v in head.inputs[1:5])
                or not takes_prologue(user.head, graph)):
            continue
        user.prologue = group.nodes
        absorbed.add(id(group))
    return [group for group in groups if id(group) not in absorbed]
