"""Graph IR to and from plain data (for artifacts): structure as a dict of lists, strings and
numbers; arrays handed to a callback that stores them (as .npy files) and returns a key."""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from byoc.core import dtypes
from byoc.core.ir import Graph, Node, TensorType
from byoc.errors import ArtifactError

StoreArray = Callable[[np.ndarray], str]
LoadArray = Callable[[str], np.ndarray]


def graph_to_dict(graph: Graph, store: StoreArray) -> dict[str, Any]:
    return {
        "name": graph.name,
        "opsets": dict(graph.opsets),
        "inputs": list(graph.inputs),
        "outputs": list(graph.outputs),
        "types": {name: _type_to_dict(t) for name, t in graph.types.items()},
        "constants": {name: store(array) for name, array in graph.constants.items()},
        "nodes": [
            {"name": n.name, "op_type": n.op_type, "domain": n.domain, "inputs": list(n.inputs),
             "outputs": list(n.outputs),
             "attrs": {k: _attr_to_data(v, store) for k, v in n.attrs.items()}}
            for n in graph.nodes
        ],
    }


def graph_from_dict(data: dict[str, Any], load: LoadArray) -> Graph:
    try:
        graph = Graph(
            name=str(data["name"]),
            opsets={str(k): int(v) for k, v in data["opsets"].items()},
            inputs=[str(v) for v in data["inputs"]],
            outputs=[str(v) for v in data["outputs"]],
            types={str(k): _type_from_dict(v) for k, v in data["types"].items()},
            constants={str(k): load(str(v)) for k, v in data["constants"].items()},
        )
        for n in data["nodes"]:
            graph.nodes.append(Node(
                op_type=str(n["op_type"]), inputs=[str(v) for v in n["inputs"]],
                outputs=[str(v) for v in n["outputs"]], name=str(n["name"]),
                domain=str(n["domain"]),
                attrs={str(k): _attr_from_data(v, load) for k, v in n["attrs"].items()}))
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise ArtifactError(f"the artifact's graph description is malformed ({exc!r})") from None
    return graph


def _type_to_dict(ttype: TensorType) -> dict[str, Any]:
    return {"dtype": ttype.dtype.name, "shape": list(ttype.shape)}


def _type_from_dict(data: dict[str, Any]) -> TensorType:
    return TensorType(dtypes.from_name(str(data["dtype"])), tuple(int(d) for d in data["shape"]))


def _attr_to_data(value: Any, store: StoreArray) -> Any:
    if isinstance(value, np.ndarray):
        return {"array": store(value)}
    if isinstance(value, (list, tuple)):
        return [_attr_to_data(v, store) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


def _attr_from_data(data: Any, load: LoadArray) -> Any:
    if isinstance(data, dict):
        return load(str(data["array"]))
    if isinstance(data, list):
        return [_attr_from_data(v, load) for v in data]
    if isinstance(data, (int, float, str)):
        return data
    raise ValueError(f"unexpected attribute value {data!r}")
