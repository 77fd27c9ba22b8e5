"""Helpers for tests of byoc and of plugin packages."""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import onnx
from onnx import helper, numpy_helper

ValueSpec = tuple[str, int, Sequence]


def compile_reference(model, **options):
    """``byoc.compile`` on the reference interpreter alone: the oracle to compare plugins
    with (no default plugins, no accelerators)."""
    import byoc

    return byoc.compile(model, default_plugins=(), **options)


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


_TRAINING_BN = "BatchNormalization in training mode updates statistics; byoc compiles inference"
_TRAINING_DROPOUT = ("Dropout in training mode drops elements at random; a reference for "
                     "inference cannot reproduce onnx's random mask")
# Corpus cases in scope by their ops that test training behaviour, with the reason each is
# skipped.
TRAINING_MODE_CASES: dict[str, str] = {
    "test_batchnorm_epsilon_training_mode": _TRAINING_BN,
    "test_batchnorm_example_training_mode": _TRAINING_BN,
    "test_training_dropout": _TRAINING_DROPOUT,
    "test_training_dropout_default": _TRAINING_DROPOUT,
    "test_training_dropout_default_mask": _TRAINING_DROPOUT,
    "test_training_dropout_mask": _TRAINING_DROPOUT,
}


def in_node_corpus_scope(case) -> bool:
    """Whether a case of onnx's node test corpus is within byoc's scope: byoc supports its
    opset, every op it uses and every element type it reads, writes or casts to."""
    from byoc.core import dtypes
    from byoc.core.importer import MIN_OPSET
    from byoc.core.interpreter import registered_ops

    supported = {op for domain, op in registered_ops() if domain == ""}
    graph = case.model.graph
    opset = next((o.version for o in case.model.opset_import if o.domain in ("", "ai.onnx")), 0)
    element_types = [v.type.tensor_type.elem_type if v.type.HasField("tensor_type") else -1
                     for v in list(graph.input) + list(graph.output)]
    element_types += [a.i for n in graph.node for a in n.attribute if a.name == "to"]
    return (MIN_OPSET <= opset
            and all(n.domain in ("", "ai.onnx") and n.op_type in supported for n in graph.node)
            and all(dtypes.to_numpy(t) is not None for t in element_types))


def node_corpus() -> list:
    """The cases of onnx's node test corpus within byoc's scope, sorted by name."""
    from onnx.backend.test.loader import load_model_tests

    return sorted((c for c in load_model_tests(kind="node") if in_node_corpus_scope(c)),
                  key=lambda c: c.name)


def qdq_layer_model(op: str, x_shape: Sequence[int], weight: np.ndarray, *,
                    attrs: Mapping | None = None, x_dtype=np.uint8, y_dtype=None,
                    x_scale: float = 0.05, x_zero: int | None = None, y_scale: float = 0.11,
                    y_zero: int = 3, w_scales: np.ndarray | float = 0.01,
                    bias: np.ndarray | None = None, activation: str | None = None,
                    quantize_input: bool = True) -> onnx.ModelProto:
    """One int8 layer in onnxruntime's QDQ form: [QuantizeLinear(x) ->] DequantizeLinear ->
    ``op`` (Conv, Gemm or MatMul) with DequantizeLinear'd constant ``weight`` (int8) and
    int32 ``bias`` -> [activation] -> QuantizeLinear to ``y`` (then a DequantizeLinear to the
    float output ``out``; both are model outputs). ``w_scales`` is one scale or one per output channel. With
    ``quantize_input`` the model input ``x`` is float; otherwise it is the quantized
    ``xq``. The output shape is left to shape inference."""
    from onnx import TensorProto

    from byoc.core.dtypes import to_onnx

    attrs = dict(attrs or {})
    y_dtype = np.dtype(y_dtype or x_dtype)
    x_dtype = np.dtype(x_dtype)
    w_scales = np.asarray(w_scales, np.float32)
    axis = 1 if op == "MatMul" or (op == "Gemm" and not attrs.get("transB")) else 0
    if x_zero is None:
        x_zero = 128 if x_dtype == np.uint8 else 0
    init = {"xs": np.float32(x_scale), "xz": np.array(x_zero, x_dtype),
            "ys": np.float32(y_scale), "yz": np.array(y_zero, y_dtype),
            "w": np.asarray(weight, np.int8), "ws": w_scales,
            "wz": np.zeros(w_scales.shape, np.int8)}
    nodes = []
    if quantize_input:
        nodes.append(helper.make_node("QuantizeLinear", ["x", "xs", "xz"], ["xq"]))
    nodes += [helper.make_node("DequantizeLinear", ["xq", "xs", "xz"], ["xd"]),
              helper.make_node("DequantizeLinear", ["w", "ws", "wz"], ["wd"], axis=axis)]
    inputs = ["xd", "wd"]
    if bias is not None:
        init.update(b=np.asarray(bias, np.int32),
                    bs=(np.float32(x_scale) * w_scales).astype(np.float32),
                    bz=np.zeros(w_scales.shape, np.int32))
        nodes.append(helper.make_node("DequantizeLinear", ["b", "bs", "bz"], ["bd"], axis=0))
        inputs.append("bd")
    nodes.append(helper.make_node(op, inputs, ["acc"], name="layer", **attrs))
    last = "acc"
    if activation:
        nodes.append(helper.make_node(activation, ["acc"], ["act"], name="activation"))
        last = "act"
    nodes += [helper.make_node("QuantizeLinear", [last, "ys", "yz"], ["y"], name="quantize"),
              helper.make_node("DequantizeLinear", ["y", "ys", "yz"], ["out"])]
    source = ("x", TensorProto.FLOAT, list(x_shape)) if quantize_input else \
        ("xq", to_onnx(x_dtype), list(x_shape))
    outputs = [("y", to_onnx(y_dtype), None), ("out", TensorProto.FLOAT, None)]
    model = make_model(nodes, [source], outputs, init, opset=13)
    return onnx.shape_inference.infer_shapes(model, strict_mode=True)


def zoo_module():
    """The example model zoo (examples/zoo.py of the byoc source tree), imported once."""
    import importlib.util
    import sys
    from pathlib import Path

    name = "examples_zoo"
    if name not in sys.modules:
        path = Path(__file__).resolve().parents[1] / "examples" / "zoo.py"
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module  # dataclasses look their module up while the class is made
        spec.loader.exec_module(module)
    return sys.modules[name]
