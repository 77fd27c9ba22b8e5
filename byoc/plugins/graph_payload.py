"""Payloads that carry a graph IR: for plugins whose compiled form is (a rewrite of) the
subgraph itself, such as the reference host plugin. The structure travels as YAML in
``Payload.data``; constants and array attributes travel as ``Payload.arrays``."""

from __future__ import annotations

import numpy as np
import yaml

from byoc.core.ir import Graph
from byoc.core.serialize import graph_from_dict, graph_to_dict
from byoc.core.verify import verify
from byoc.errors import PluginError
from byoc.plugins.api import Payload

FORMAT = "byoc.graph/1"


def graph_to_payload(graph: Graph) -> Payload:
    arrays: dict[str, np.ndarray] = {}

    def store(array: np.ndarray) -> str:
        key = f"a{len(arrays)}"
        arrays[key] = np.asarray(array)
        return key

    text = yaml.safe_dump(graph_to_dict(graph, store), sort_keys=False)
    return Payload(text.encode(), {"format": FORMAT, "nodes": len(graph.nodes)}, arrays)


def graph_from_payload(payload: Payload) -> Graph:
    if payload.metadata.get("format") != FORMAT:
        raise PluginError(f"payload format {payload.metadata.get('format')!r} is not {FORMAT}")

    def load(key: str) -> np.ndarray:
        if key not in payload.arrays:
            raise PluginError(f"graph payload refers to array {key!r}, which it does not hold")
        return payload.arrays[key]

    try:
        data = yaml.safe_load(payload.data.decode("utf-8"))
    except (UnicodeDecodeError, yaml.YAMLError) as exc:
        raise PluginError(f"graph payload is not valid YAML ({exc})") from None
    graph = graph_from_dict(data, load)
    verify(graph)
    return graph
