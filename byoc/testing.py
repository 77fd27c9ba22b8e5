"""Helpers for tests of byoc and of plugin packages."""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import onnx
from onnx import helper, numpy_helper

ValueSpec = tuple[str, int, Sequence]


def make_model(nodes: Sequence[onnx.NodeProto], inputs: Sequence[ValueSpec],
               outputs: Sequence[ValueSpec],
               initializers: Mapping[str, np.ndarray] | None = None, opset: int = 17,
               name: str = "test") -> onnx.ModelProto:
    """A checked-in-memory ONNX model. ``inputs``/``outputs`` are (name, elem_type, shape)
    with dims as ints or symbolic names; ``initializers`` maps names to arrays."""
    graph = helper.make_graph(
        nodes, name,
        [helper.make_tensor_value_info(n, t, s) for n, t, s in inputs],
        [helper.make_tensor_value_info(n, t, s) for n, t, s in outputs],
        initializer=[numpy_helper.from_array(np.asarray(a), n)
                     for n, a in (initializers or {}).items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    return model
