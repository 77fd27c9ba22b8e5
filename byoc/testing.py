"""Helpers for tests of byoc and of plugin packages."""

from __future__ import annotations

import os
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


def verify(model, inputs: Mapping[str, np.ndarray] | None = None, *,
           plugins: Sequence[str] = (), **options):
    """``byoc verify`` from Python: compile ``model`` (ONNX path, bytes or ModelProto; or
    take a CompiledModel, or load a .byoc artifact that bundles reference vectors) for
    ``plugins`` and check every partition against the reference interpreter, naming the
    first divergence. Returns a :class:`byoc.verify.Verification`: ``ok``, ``outputs_ok``,
    ``partitions``, ``first_divergence``, and ``to_json()`` (the schema of ``byoc verify
    --json``). ``options`` are :func:`byoc.verify.verify`'s (tolerance, seed, waveforms) and
    :func:`byoc.compile`'s (plugin_options, placement, pins...)."""
    from byoc.verify import verify as _verify

    return _verify(model, inputs, plugins=plugins, **options)


def assert_verifies(model, inputs: Mapping[str, np.ndarray] | None = None, *,
                    plugins: Sequence[str] = (), **options):
    """Assert in a test that ``model`` verifies clean on ``plugins`` (see :func:`verify`);
    the assertion's message is ``byoc verify``'s report, naming the first divergence. Returns
    the Verification. For a chip team's CI::

        def test_our_npu_runs_resnet_right():
            assert_verifies("resnet18_int8.onnx", plugins=["our_npu"])
    """
    from byoc.report.verify import format_verification

    found = verify(model, inputs, plugins=plugins, **options)
    if not found.ok:
        raise AssertionError("\n" + format_verification(found, _title(model)))
    return found


def payload_digest(payload) -> str:
    """A sha256 over everything a :class:`byoc.plugins.api.Payload` holds (data, metadata,
    arrays): pin it in a test to prove a change leaves ordinary compiles byte-identical."""
    import hashlib

    digest = hashlib.sha256(payload.data)
    digest.update(repr(sorted(payload.metadata.items())).encode())
    for name, array in sorted(payload.arrays.items()):
        digest.update(name.encode() + np.ascontiguousarray(array).tobytes())
    return digest.hexdigest()


def _title(model) -> str:
    if isinstance(model, (str, os.PathLike)):
        return os.path.basename(os.fspath(model))
    if isinstance(model, onnx.ModelProto):
        return model.graph.name or "the ONNX model"
    return str(getattr(model, "name", "the model"))


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


# Corpus cases byoc does not run, each with the reason. Reports count them as not passing.
CORPUS_SKIPS: dict[str, str] = {
    "test_attention_4d_causal_fp16_expanded": (
        "float16 rounding: byoc computes a float16 Softmax in float32 and rounds once; the "
        "expected values come from numpy rounding every step of it to float16, and the "
        "output lands one float16 step (4.9e-4) away, outside the case's 1e-3 relative "
        "tolerance (onnxruntime's float16 kernels happen to stay inside it)"),
}
# Corpus cases whose expected outputs contradict the ONNX specification and onnxruntime; byoc
# follows the specification. Reports list them apart and leave them out of pass rates.
CORPUS_ERRATA: dict[str, str] = {
    "test_maxunpool_export_with_output_shape": (
        "the expected output reads MaxUnpool's indices as positions in the shape the "
        "attributes give; the specification (indices of the MaxPool input, whose shape "
        "output_shape gives), onnxruntime and PyTorch read them in output_shape (onnx issue "
        "2398)"),
}


def in_node_corpus_scope(case) -> bool:
    """Whether a case of onnx's node test corpus is within byoc's scope (see
    :func:`out_of_corpus_scope`)."""
    return out_of_corpus_scope(case) is None


def out_of_corpus_scope(case) -> str | None:
    """Why a case of onnx's node test corpus is outside byoc's scope, or None when byoc
    supports its opset, every op it uses and every element type it reads, writes, holds
    (initializers, Constant values) or converts to (the ``to``, ``output_dtype`` and
    ``precision`` attributes)."""
    from byoc.core import dtypes
    from byoc.core.importer import MIN_OPSET
    from byoc.core.interpreter import registered_ops

    supported = {op for domain, op in registered_ops() if domain == ""}
    graph = case.model.graph
    opset = next((o.version for o in case.model.opset_import if o.domain in ("", "ai.onnx")), 0)
    if opset < MIN_OPSET:
        return f"opset {opset} is older than byoc imports ({MIN_OPSET})"
    unsupported = sorted({f"{n.domain or 'ai.onnx'}::{n.op_type}" for n in graph.node
                          if n.domain not in ("", "ai.onnx") or n.op_type not in supported})
    if unsupported:
        return f"uses ops byoc does not support: {', '.join(unsupported)}"
    values = list(graph.input) + list(graph.output)
    if any(not v.type.HasField("tensor_type") for v in values):
        return "has inputs or outputs that are not tensors (sequences, optionals)"
    element_types = [v.type.tensor_type.elem_type for v in values]
    element_types += [t.data_type for t in graph.initializer]
    for attribute in (a for n in graph.node for a in n.attribute):
        if attribute.name in ("to", "output_dtype", "precision") and attribute.i:
            element_types.append(attribute.i)
        elif attribute.type == onnx.AttributeProto.TENSOR:
            element_types.append(attribute.t.data_type)
    unknown = sorted({dtypes.onnx_type_name(t) for t in element_types
                      if dtypes.to_numpy(t) is None})
    if unknown:
        return f"uses element types byoc does not support: {', '.join(unknown)}"
    return None


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
    float output ``out``; both are model outputs). ``w_scales`` is one scale or one per output
    channel. With ``quantize_input`` the model input ``x`` is float; otherwise it is the quantized
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


def qdq_cnn(size: int, channels: int, layers: list[tuple[int, int, int]],
            seed: int = 0) -> onnx.ModelProto:
    """A chain of int8 QDQ Conv + Relu layers on a ``size`` x ``size`` image of ``channels``
    (quantized to uint8 first); ``layers`` lists (output channels, kernel, stride)."""
    from onnx import TensorProto

    rng = np.random.default_rng(seed)
    init = {"s0": np.float32(0.05), "z": np.array(128, np.uint8)}
    nodes = [helper.make_node("QuantizeLinear", ["x", "s0", "z"], ["xq"]),
             helper.make_node("DequantizeLinear", ["xq", "s0", "z"], ["d0"])]
    c_in, x = channels, "d0"
    for i, (c_out, kernel, stride) in enumerate(layers):
        w_scale = rng.uniform(0.0005, 0.002, c_out).astype(np.float32)
        init.update({
            f"w{i}": rng.integers(-127, 128, (c_out, c_in, kernel, kernel)).astype(np.int8),
            f"ws{i}": w_scale, f"wz{i}": np.zeros(c_out, np.int8),
            f"b{i}": rng.integers(-2000, 2000, c_out).astype(np.int32),
            f"bs{i}": (init[f"s{i}"] * w_scale).astype(np.float32),
            f"bz{i}": np.zeros(c_out, np.int32), f"s{i + 1}": np.float32(0.05 + 0.01 * i)})
        nodes += [
            helper.make_node("DequantizeLinear", [f"w{i}", f"ws{i}", f"wz{i}"], [f"wd{i}"],
                             axis=0),
            helper.make_node("DequantizeLinear", [f"b{i}", f"bs{i}", f"bz{i}"], [f"bd{i}"],
                             axis=0),
            helper.make_node("Conv", [x, f"wd{i}", f"bd{i}"], [f"c{i}"], name=f"conv{i}",
                             pads=[kernel // 2] * 4, strides=[stride] * 2),
            helper.make_node("Relu", [f"c{i}"], [f"r{i}"], name=f"relu{i}"),
            helper.make_node("QuantizeLinear", [f"r{i}", f"s{i + 1}", "z"], [f"q{i}"],
                             name=f"quantize{i}"),
            helper.make_node("DequantizeLinear", [f"q{i}", f"s{i + 1}", "z"], [f"d{i + 1}"])]
        c_in, x = c_out, f"d{i + 1}"
    model = make_model(nodes, [("x", TensorProto.FLOAT, [1, channels, size, size])],
                       [(x, TensorProto.FLOAT, None)], init, opset=13)
    return onnx.shape_inference.infer_shapes(model, strict_mode=True)


def zoo_module():
    """The example model zoo, :mod:`byoc.model_zoo` (it needs onnxruntime, which byoc's test
    extra installs)."""
    from byoc import model_zoo

    return model_zoo
