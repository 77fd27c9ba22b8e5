"""The dynamic tail: the nodes of a model whose output sizes are only known when it runs.

byoc compiles static shapes, but a model may hold a node whose output size depends on the
*values* of a runtime input: NonMaxSuppression's selected boxes, NonZero, Unique, Compress with
a runtime condition, TopK with a runtime K, a Reshape, Expand or Range whose shape-deciding
input is computed. Such a node cannot be typed at import, and neither can any node that reads
(directly or through others) a value whose shape is therefore unknown. The importer sets those
nodes apart as the model's dynamic tail (:class:`DynamicTail`) and imports everything else
statically; the static graph gets, as extra outputs, the values the tail reads from it.

Partitions (cpu_llvm, accelerators) compile the static graph only. After they have run, the
tail runs eagerly on the reference interpreter: node by node in topological order, with the
reference's op implementations at the model's opsets, on the actual arrays. It needs no
static types, and its outputs have the shapes the run gives them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np

from byoc.core.interpreter import evaluate_node, lookup
from byoc.core.ir import Graph, Node
from byoc.core.printer import format_node
from byoc.core.serialize import LoadArray, StoreArray, graph_from_dict, graph_to_dict
from byoc.errors import ArtifactError, ExecutionError, describe_node

# How the summary, the report and `byoc show` name where the tail runs.
TAIL_HOST = "reference, eager"


@dataclass(frozen=True)
class TailRoot:
    """A node that starts the tail: the size of its outputs depends on values not known at
    import. ``deciding_inputs`` are the ONNX names of the inputs whose values decide it
    (empty when the op does not say which)."""

    node: str
    op_type: str
    deciding_inputs: tuple[str, ...]

    def describe(self) -> str:
        if self.deciding_inputs:
            why = f"output size depends on the values of {', '.join(self.deciding_inputs)}"
        else:
            why = "output shape depends on runtime values"
        return f"node {self.node!r} ({self.op_type}: {why})"


@dataclass
class DynamicTail:
    """The nodes that run eagerly after the static graph, and what they need.

    ``inputs`` are the values the tail reads from the static graph (its extra outputs) or
    from the model's inputs; ``constants`` the constants it reads; ``outputs`` the model
    outputs it computes; ``model_outputs`` every output of the model in the model's order
    (those the static graph computes too); ``roots`` the nodes that start it.
    """

    nodes: list[Node]
    opsets: dict[str, int]
    inputs: list[str]
    constants: dict[str, np.ndarray]
    outputs: list[str]
    model_outputs: list[str]
    roots: list[TailRoot]

    def run(self, values: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """The tail's outputs, from ``values`` holding every one of its ``inputs``."""
        env: dict[str, np.ndarray] = dict(self.constants)
        env.update((name, values[name]) for name in self.inputs)
        for node in self.nodes:
            arrays = [env[name] if name else None for name in node.inputs]
            try:
                results = evaluate_node(node, arrays, opset=self.opsets.get(node.domain, 0))
            except ExecutionError as exc:
                raise ExecutionError(f"in the dynamic tail ({TAIL_HOST}): {exc}") from exc
            env.update((name, array) for name, array in zip(node.outputs, results) if name)
        return {name: env[name] for name in self.outputs}

    def describe(self) -> str:
        """One line: how many nodes, from which nodes and why, e.g. "3 nodes, from node 'nms'
        (NonMaxSuppression: output size depends on the values of boxes, scores)"."""
        count = f"{len(self.nodes)} node{'s' if len(self.nodes) != 1 else ''}"
        return f"{count}, from {'; '.join(root.describe() for root in self.roots)}"

    def format(self) -> str:
        """The tail as text in the style of the graph printer, shapes shown as '?'."""
        lines = [f"dynamic tail ({TAIL_HOST}): {self.describe()}",
                 f"  reads: {', '.join(f'%{name}' for name in self.inputs) or '(nothing)'}"]
        untyped = self._as_graph()
        lines += ["    " + format_node(untyped, node) for node in self.nodes]
        lines.append(f"  outputs: {', '.join(f'%{name}' for name in self.outputs)}")
        return "\n".join(lines)

    # -- artifacts -------------------------------------------------------------------------

    def to_dict(self, store: StoreArray) -> dict[str, Any]:
        """Plain data for an artifact's manifest; arrays go through ``store``."""
        return {"graph": graph_to_dict(self._as_graph(), store),
                "model_outputs": list(self.model_outputs),
                "roots": [{"node": r.node, "op_type": r.op_type,
                           "deciding_inputs": list(r.deciding_inputs)} for r in self.roots]}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], load: LoadArray) -> DynamicTail:
        """The tail :meth:`to_dict` described, checked (see :meth:`check`); ArtifactError
        when it is malformed."""
        try:
            graph = graph_from_dict(data["graph"], load)
            roots = [TailRoot(str(r["node"]), str(r["op_type"]),
                              tuple(str(i) for i in r["deciding_inputs"]))
                     for r in data["roots"]]
            model_outputs = [str(name) for name in data["model_outputs"]]
        except (KeyError, TypeError, ValueError) as exc:
            raise ArtifactError(f"the artifact's dynamic tail is malformed ({exc!r})") from None
        tail = cls(graph.nodes, graph.opsets, graph.inputs, graph.constants, graph.outputs,
                   model_outputs, roots)
        tail.check()
        return tail

    def check(self) -> None:
        """ArtifactError unless every node's op has a reference implementation, every value
        is defined once before it is read, and the outputs are model outputs."""
        defined = set(self.inputs) | set(self.constants)
        for node in self.nodes:
            if lookup(node.domain, node.op_type) is None:
                raise ArtifactError(f"the artifact's dynamic tail holds {describe_node(node)}, "
                                    f"which the reference interpreter does not implement")
            undefined = [name for name in node.present_inputs if name not in defined]
            if undefined:
                raise ArtifactError(f"the artifact's dynamic tail: {describe_node(node)} reads "
                                    f"{', '.join(map(repr, undefined))}, defined nowhere before "
                                    f"it")
            twice = [name for name in node.outputs if name in defined]
            if twice:
                raise ArtifactError(f"the artifact's dynamic tail: {describe_node(node)} "
                                    f"defines {', '.join(map(repr, twice))} again")
            defined.update(name for name in node.outputs if name)
        stray = [name for name in self.outputs
                 if name not in defined or name not in self.model_outputs]
        if stray:
            raise ArtifactError(f"the artifact's dynamic tail gives {', '.join(map(repr, stray))}"
                                f", which it does not compute or the model does not output")

    def _as_graph(self) -> Graph:
        # Without types: the tail's shapes are only known when it runs.
        return Graph(name="dynamic_tail", nodes=self.nodes, inputs=self.inputs,
                     outputs=self.outputs, constants=self.constants, opsets=self.opsets)
