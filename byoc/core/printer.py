"""The graph IR as readable text (what ``byoc show`` prints)."""

from __future__ import annotations

import numpy as np

from byoc.core.ir import Graph, Node


def format_graph(graph: Graph, max_constants: int = 20) -> str:
    opsets = ", ".join(f"{d or 'ai.onnx'} {v}" for d, v in sorted(graph.opsets.items()))
    lines = [f"graph {graph.name} ({opsets})"]
    lines.append("  inputs:")
    lines += [f"    %{name}: {graph.types[name]}" for name in graph.inputs
              if name not in graph.constants]
    lines.append(f"  constants: {len(graph.constants)} "
                 f"({_count_bytes(graph)} bytes)")
    for name in list(graph.constants)[:max_constants]:
        lines.append(f"    %{name}: {graph.types[name]}{_preview(graph.constants[name])}")
    if len(graph.constants) > max_constants:
        lines.append(f"    ... {len(graph.constants) - max_constants} more")
    lines.append(f"  nodes: {len(graph.nodes)}")
    lines += ["    " + format_node(graph, node) for node in graph.nodes]
    lines.append("  outputs:")
    lines += [f"    %{name}: {graph.types[name]}" for name in graph.outputs]
    return "\n".join(lines)


def format_node(graph: Graph, node: Node) -> str:
    outs = ", ".join(f"%{o}" for o in node.outputs)
    types = ", ".join(str(graph.types[o]) if o in graph.types else "?" for o in node.outputs)
    ins = ", ".join(f"%{i}" if i else "_" for i in node.inputs)
    op = f"{node.domain}::{node.op_type}" if node.domain else node.op_type
    attrs = ""
    if node.attrs:
        attrs = " {" + ", ".join(f"{k}={_attr(v)}" for k, v in sorted(node.attrs.items())) + "}"
    return f"{outs} = {op}({ins}){attrs} : {types}  # {node.name}"


def _attr(value) -> str:
    if isinstance(value, np.ndarray):
        return f"tensor<{value.dtype.name}{list(value.shape)}>"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(_attr(v) for v in value) + "]"
    return repr(value) if isinstance(value, str) else str(value)


def _preview(array: np.ndarray) -> str:
    if array.size <= 8:
        return " = " + np.array2string(np.asarray(array).ravel(), separator=",",
                                       max_line_width=200)
    return ""


def _count_bytes(graph: Graph) -> int:
    return sum(int(np.asarray(a).nbytes) for a in graph.constants.values())
