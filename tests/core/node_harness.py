"""Run one ONNX node on onnxruntime and on byoc's reference interpreter.

Inputs are numpy arrays, with None for an omitted optional input (its name is left empty).
Tensor attributes are given as numpy arrays (byoc's IR keeps them so); they are converted to
TensorProto only for onnxruntime.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import helper, numpy_helper

from byoc.core.interpreter.runner import evaluate_node
from byoc.core.ir import Node


def _names(inputs: list[np.ndarray | None], n_outputs: int) -> tuple[list[str], list[str]]:
    names = [f"in{i}" if value is not None else "" for i, value in enumerate(inputs)]
    return names, [f"out{i}" for i in range(n_outputs)]


def run_onnxruntime(op_type: str, inputs: list[np.ndarray | None], opset: int,
                    n_outputs: int = 1, **attrs) -> list[np.ndarray]:
    """Build a one-node model at `opset` and run it on onnxruntime's CPU provider."""
    import onnxruntime as ort

    names, outputs = _names(inputs, n_outputs)
    onnx_attrs = {key: numpy_helper.from_array(value) if isinstance(value, np.ndarray) else value
                  for key, value in attrs.items()}
    graph = helper.make_graph(
        [helper.make_node(op_type, names, outputs, **onnx_attrs)], op_type,
        [helper.make_tensor_value_info(name, helper.np_dtype_to_tensor_dtype(value.dtype),
                                       value.shape)
         for name, value in zip(names, inputs) if name],
        # Outputs untyped: onnxruntime's shape inference fills them in.
        [onnx.ValueInfoProto(name=name) for name in outputs])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)],
                              ir_version=10)
    session = ort.InferenceSession(model.SerializeToString(),
                                   providers=["CPUExecutionProvider"])
    return session.run(None, {n: v for n, v in zip(names, inputs) if n})


def run_reference(op_type: str, inputs: list[np.ndarray | None], opset: int,
                  n_outputs: int = 1, **attrs) -> list[np.ndarray]:
    """Evaluate the same node on byoc's reference interpreter."""
    names, outputs = _names(inputs, n_outputs)
    return evaluate_node(Node(op_type, names, outputs, attrs), inputs, opset=opset)


def assert_same_outputs(ours: list[np.ndarray], expected: list[np.ndarray], exact: bool,
                        rtol: float, atol: float) -> None:
    """Same number of outputs, same dtypes and shapes, and equal (or close) values."""
    assert len(ours) == len(expected)
    for got, want in zip(ours, expected):
        assert got.dtype == want.dtype and got.shape == want.shape
        if exact:
            np.testing.assert_array_equal(got, want)
        else:
            np.testing.assert_allclose(got, want, rtol=rtol, atol=atol)
