"""Running a graph, or one node, on the reference implementations."""

from __future__ import annotations

from typing import Mapping

import numpy as np

from byoc.core.integer_layers import plan_integer_groups
from byoc.core.interpreter.base import OpImpl, lookup
from byoc.core.interpreter.integer_groups import integer_evaluator
from byoc.core.ir import Graph, Node, TensorType
from byoc.errors import ExecutionError, InputError, UnsupportedOpError, describe_node


def make_impl(node: Node, output_types: list[TensorType | None], opset: int) -> OpImpl:
    cls = lookup(node.domain, node.op_type)
    if cls is None:
        raise UnsupportedOpError(
            f"{describe_node(node)} is not supported by byoc's reference interpreter")
    return cls(node, output_types, opset)


def evaluate_node(node: Node, inputs: list[np.ndarray | None],
                  output_types: list[TensorType | None] | None = None,
                  opset: int = 0) -> list[np.ndarray]:
    """Run one node on arrays; ``None`` stands for an omitted optional input.

    When ``output_types`` are given, each result is checked against its declared type.
    """
    output_types = output_types or [None] * len(node.outputs)
    return execute(make_impl(node, output_types, opset), inputs)


def execute(impl: OpImpl, inputs: list[np.ndarray | None]) -> list[np.ndarray]:
    """Run an implementation and check its results against the node's declared types."""
    node = impl.node
    try:
        result = impl.run(*inputs, **node.attrs)
    except (ArithmeticError, ValueError, IndexError, TypeError) as exc:
        raise ExecutionError(f"{describe_node(node)} failed: {exc}") from exc
    arrays = [np.asarray(r) for r in (result if isinstance(result, (tuple, list)) else (result,))]
    if len(arrays) < len(node.outputs):
        raise ExecutionError(f"{describe_node(node)} produced {len(arrays)} outputs, "
                             f"expected {len(node.outputs)}")
    for name, array, expected in zip(node.outputs, arrays, impl.output_types):
        if name and expected is not None and (array.dtype != expected.dtype
                                              or array.shape != expected.shape):
            raise ExecutionError(
                f"{describe_node(node)} output {name!r} is {TensorType.of(array)}, but the "
                f"graph declares {expected}")
    return arrays[:len(node.outputs)]


class Interpreter:
    """Runs a verified graph node by node. Node implementations are built once.

    Quantized Conv/MatMul/Gemm groups run as the integer operations they stand for (see
    :mod:`byoc.core.integer_layers`); everything else runs node by node. With
    ``integer_groups=False`` they run node by node too, in float as written (``byoc verify``
    takes the values inside a quantized layer from there).
    """

    def __init__(self, graph: Graph, integer_groups: bool = True) -> None:
        self.graph = graph
        self._integer_groups = plan_integer_groups(graph) if integer_groups else {}
        self._replaced = {node.name for group in self._integer_groups.values()
                          for node in group.replaced_nodes}
        self._integer_evaluators = {name: integer_evaluator(group.layer)
                                    for name, group in self._integer_groups.items()}
        self._impls = [
            make_impl(node, [graph.types.get(o) for o in node.outputs],
                      graph.opsets.get(node.domain or "", 0))
            for node in graph.nodes
        ]

    def run(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        env = self.values(feeds)
        return {name: env[name] for name in self.graph.outputs}

    def values(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Every value the graph computes (and its constants and inputs), by name. The
        values a quantized group's integer evaluation makes unnecessary are left out."""
        env: dict[str, np.ndarray] = dict(self.graph.constants)
        env.update(check_feeds(self.graph, feeds))
        for node, impl in zip(self.graph.nodes, self._impls):
            if node.name in self._replaced:
                continue
            evaluate_in_integers = self._integer_evaluators.get(node.name)
            if evaluate_in_integers is not None:
                env[node.outputs[0]] = evaluate_in_integers(env)
                continue
            results = execute(impl, [env[name] if name else None for name in node.inputs])
            env.update((name, array) for name, array in zip(node.outputs, results) if name)
        return env


def check_feeds(graph: Graph, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Check user inputs against the graph's signature; never converts silently."""
    return check_signature({name: graph.types[name] for name in graph.inputs}, feeds)


def check_signature(signature: Mapping[str, TensorType],
                    feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Check inputs against a signature (names, dtypes, shapes); never converts silently."""
    unknown = sorted(set(feeds) - set(signature))
    if unknown:
        raise InputError(f"unknown input(s) {', '.join(unknown)}; the model's inputs are "
                         f"{', '.join(signature)}")
    missing = [name for name in signature if name not in feeds]
    if missing:
        raise InputError(f"missing input(s) {', '.join(missing)}; give a value for each")
    checked = {}
    for name, expected in signature.items():
        array = np.asarray(feeds[name])
        if array.dtype != expected.dtype:
            raise InputError(f"input {name!r} has dtype {array.dtype}, the model expects "
                             f"{expected.dtype}")
        if array.shape != expected.shape:
            raise InputError(f"input {name!r} has shape {list(array.shape)}, the model expects "
                             f"{list(expected.shape)}")
        checked[name] = array
    return checked


def run_graph(graph: Graph, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    return Interpreter(graph).run(feeds)
