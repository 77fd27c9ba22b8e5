"""The graph IR: typed values, nodes and graphs, with the rewriting helpers passes use.

A :class:`Graph` is a list of :class:`Node` in topological order over named values. Every value
has a static :class:`TensorType`. A value is defined exactly once: as a graph input, as a
constant (a numpy array held by the graph), or as the output of one node. Values are referred
to by name, as in ONNX, so a graph can be inspected, printed and rewritten without pointer
bookkeeping. An empty string in a node's inputs marks an omitted optional input.

The invariants are checked by :func:`byoc.core.verify.verify`; rewriting helpers here keep the
node list topologically sorted when callers insert nodes next to their uses.
"""

from __future__ import annotations

import itertools
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, Iterable, Iterator

import numpy as np

from byoc.errors import VerificationError


@dataclass(frozen=True)
class TensorType:
    """A static tensor type: numpy dtype and a tuple of non-negative dims."""

    dtype: np.dtype
    shape: tuple[int, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "dtype", np.dtype(self.dtype))
        object.__setattr__(self, "shape", tuple(int(d) for d in self.shape))

    @classmethod
    def of(cls, array: np.ndarray) -> "TensorType":
        return cls(array.dtype, array.shape)

    @property
    def rank(self) -> int:
        return len(self.shape)

    @property
    def size(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64))

    def __str__(self) -> str:
        return f"{self.dtype.name}[{','.join(str(d) for d in self.shape)}]"


@dataclass
class Node:
    """One operator application. ``attrs`` holds plain Python values and numpy arrays."""

    op_type: str
    inputs: list[str]
    outputs: list[str]
    attrs: dict[str, Any] = field(default_factory=dict)
    name: str = ""
    domain: str = ""

    @property
    def present_inputs(self) -> list[str]:
        """Inputs that are given (omitted optional inputs are empty strings)."""
        return [name for name in self.inputs if name]


@dataclass
class Graph:
    """A typed dataflow graph with its inputs, outputs, constants and opset imports."""

    name: str = "graph"
    nodes: list[Node] = field(default_factory=list)
    inputs: list[str] = field(default_factory=list)
    outputs: list[str] = field(default_factory=list)
    types: dict[str, TensorType] = field(default_factory=dict)
    constants: dict[str, np.ndarray] = field(default_factory=dict)
    opsets: dict[str, int] = field(default_factory=dict)

    # -- queries ------------------------------------------------------------------------------

    def type_of(self, value: str) -> TensorType:
        try:
            return self.types[value]
        except KeyError:
            raise VerificationError(f"value {value!r} has no type in graph {self.name!r}") from None

    def is_constant(self, value: str) -> bool:
        return value in self.constants

    def producers(self) -> dict[str, Node]:
        """Map from each node-produced value to the node that produces it."""
        return {out: node for node in self.nodes for out in node.outputs if out}

    def consumers(self) -> dict[str, list[Node]]:
        """Map from each value to the nodes that read it (in node order, without repeats)."""
        users: dict[str, list[Node]] = defaultdict(list)
        for node in self.nodes:
            for value in dict.fromkeys(node.present_inputs):
                users[value].append(node)
        return users

    def node_by_name(self, name: str) -> Node:
        for node in self.nodes:
            if node.name == name:
                return node
        raise KeyError(name)

    def op_counts(self) -> dict[str, int]:
        counts: dict[str, int] = defaultdict(int)
        for node in self.nodes:
            counts[node.op_type] += 1
        return dict(sorted(counts.items()))

    # -- naming -------------------------------------------------------------------------------

    def fresh_name(self, hint: str) -> str:
        """A value or node name not used anywhere in the graph, derived from ``hint``."""
        # Usually the hint is free: one look through the graph, without collecting its names.
        if not (hint in self.types or hint in self.constants or hint in self.inputs
                or any(hint == node.name or hint in node.outputs for node in self.nodes)):
            return hint
        taken = self._all_names()
        for i in itertools.count(1):
            candidate = f"{hint}_{i}"
            if candidate not in taken:
                return candidate
        raise AssertionError("unreachable")

    def _all_names(self) -> set[str]:
        names = set(self.types) | set(self.constants) | set(self.inputs)
        for node in self.nodes:
            names.add(node.name)
            names.update(node.outputs)
        return names

    # -- rewriting ----------------------------------------------------------------------------

    def add_constant(self, hint: str, array: np.ndarray) -> str:
        """Add ``array`` as a new constant and return its value name."""
        name = self.fresh_name(hint)
        array = np.asarray(array)
        self.constants[name] = array
        self.types[name] = TensorType.of(array)
        return name

    def insert_before(self, anchor: Node, node: Node) -> Node:
        """Insert ``node`` just before ``anchor`` (keeps topological order if its inputs
        are defined before ``anchor``)."""
        self.nodes.insert(self._index(anchor), node)
        return node

    def insert_after(self, anchor: Node, node: Node) -> Node:
        self.nodes.insert(self._index(anchor) + 1, node)
        return node

    def remove_node(self, node: Node) -> None:
        """Remove ``node``; its outputs lose their types unless still used as graph outputs."""
        self.nodes.pop(self._index(node))
        for out in node.outputs:
            if out and out not in self.outputs:
                self.types.pop(out, None)

    def replace_all_uses(self, old: str, new: str) -> None:
        """Make every reader of value ``old`` (nodes and graph outputs) read ``new``."""
        for node in self.nodes:
            node.inputs = [new if name == old else name for name in node.inputs]
        self.outputs = [new if name == old else name for name in self.outputs]

    def replace_with_constant(self, node: Node, values: Iterable[np.ndarray]) -> None:
        """Replace a node by constants holding its outputs' values, keeping value names."""
        self.nodes.pop(self._index(node))
        for out, array in zip(node.outputs, values):
            if out:
                self.constants[out] = np.asarray(array)
                self.types[out] = TensorType.of(self.constants[out])

    def prune_constants(self) -> None:
        """Drop constants that nothing reads."""
        used = {name for node in self.nodes for name in node.present_inputs} | set(self.outputs)
        for name in [c for c in self.constants if c not in used]:
            del self.constants[name]
            if name not in self.inputs:
                del self.types[name]

    def topological_sort(self) -> None:
        """Reorder nodes topologically (stable: keeps the current order where it can).

        Raises VerificationError naming the nodes on a cycle or with an undefined input.
        """
        defined = set(self.inputs) | set(self.constants)
        produced_by = self.producers()
        state: dict[int, int] = {}  # id(node) -> 1 visiting, 2 done
        order: list[Node] = []

        def visit(node: Node, path: list[Node]) -> None:
            key = id(node)
            if state.get(key) == 2:
                return
            if state.get(key) == 1:
                cycle = path[path.index(node):] + [node]
                names = " -> ".join(n.name or n.op_type for n in cycle)
                raise VerificationError(f"graph {self.name!r} has a cycle: {names}")
            state[key] = 1
            for value in node.present_inputs:
                if value in defined:
                    continue
                producer = produced_by.get(value)
                if producer is None:
                    raise VerificationError(
                        f"node {node.name!r} ({node.op_type}) reads {value!r}, which no graph "
                        f"input, constant or node defines")
                visit(producer, path + [node])
            state[key] = 2
            order.append(node)

        for node in self.nodes:
            visit(node, [])
        self.nodes = order

    def __iter__(self) -> Iterator[Node]:
        return iter(self.nodes)

    def _index(self, node: Node) -> int:
        for i, candidate in enumerate(self.nodes):
            if candidate is node:
                return i
        raise ValueError(f"node {node.name!r} is not in graph {self.name!r}")

    def copy(self) -> "Graph":
        """A deep enough copy for rewriting: new node objects, shared constant arrays."""
        return Graph(
            name=self.name,
            nodes=[Node(n.op_type, list(n.inputs), list(n.outputs), dict(n.attrs), n.name,
                        n.domain) for n in self.nodes],
            inputs=list(self.inputs),
            outputs=list(self.outputs),
            types=dict(self.types),
            constants=dict(self.constants),
            opsets=dict(self.opsets),
        )
