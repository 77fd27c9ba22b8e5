"""byoc verify's debug request on npu_example: a partition compiled with
``Partition.debug_outputs`` returns, besides its outputs, the float value of each layer's op
node, read back from the debug tap its command writes (the int32 accumulator of a CONV2D or
DEPTHWISE_CONV2D, the float32 result of a POOL or ELTWISE_ADD before quantization). Each tap
must equal the reference interpreter's float value of that node, evaluated node by node on
the partition's inputs, within verify's tolerance; the outputs must not change, and an
ordinary compile must give the payload it always gave."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from onnx import TensorProto, helper

import byoc
from byoc.core.interpreter.runner import Interpreter, evaluate_node
from byoc.layouts import signature_in_layout
from byoc.testing import make_model, payload_digest, qdq_layer_model
from byoc.verify import debug_request
from byoc_npu_example import plugin
from byoc_npu_example.command_stream import Pool, decode

RTOL = 1e-4     # byoc verify's default: relative to the largest reference magnitude


def conv_weights(out_c, in_c, kernel=3, seed=0):
    shape = (out_c, in_c) + ((kernel, kernel) if kernel else ())
    return np.random.default_rng(seed).integers(-127, 128, shape).astype(np.int8)


def one_op_model(op_type, shapes, out_shape, attrs=None):
    """x [, x2] (float) -> QuantizeLinear -> DequantizeLinear -> ``op_type`` named 'layer'
    -> Relu -> QuantizeLinear -> DequantizeLinear -> out."""
    init = {"s": np.float32(0.05), "z": np.uint8(128), "s2": np.float32(0.031),
            "z2": np.uint8(100), "ys": np.float32(0.07), "yz": np.uint8(9)}
    nodes, operands, inputs = [], [], []
    for index, shape in enumerate(shapes):
        x, s, z = ("x", "s", "z") if index == 0 else ("x2", "s2", "z2")
        nodes += [helper.make_node("QuantizeLinear", [x, s, z], [f"{x}q"]),
                  helper.make_node("DequantizeLinear", [f"{x}q", s, z], [f"{x}d"])]
        operands.append(f"{x}d")
        inputs.append((x, TensorProto.FLOAT, shape))
    nodes += [helper.make_node(op_type, operands, ["r"], name="layer", **(attrs or {})),
              helper.make_node("Relu", ["r"], ["a"]),
              helper.make_node("QuantizeLinear", ["a", "ys", "yz"], ["y"]),
              helper.make_node("DequantizeLinear", ["y", "ys", "yz"], ["out"])]
    return make_model(nodes, inputs, [("out", TensorProto.FLOAT, out_shape)], init, opset=13)


LAYERS = {
    "conv": lambda: qdq_layer_model(
        "Conv", [1, 8, 10, 10], conv_weights(16, 8), attrs={"pads": [1, 1, 1, 1]},
        activation="Relu", bias=np.arange(16, dtype=np.int32) * 50 - 300,
        w_scales=np.linspace(0.005, 0.02, 16)),
    "depthwise_conv": lambda: qdq_layer_model(
        "Conv", [1, 8, 10, 10], conv_weights(8, 1),
        attrs={"pads": [1, 1, 1, 1], "strides": [2, 2], "group": 8},
        bias=np.arange(8, dtype=np.int32) * 40, w_scales=np.linspace(0.01, 0.03, 8)),
    "fully_connected": lambda: qdq_layer_model(
        "Gemm", [3, 40], conv_weights(24, 40, kernel=0), attrs={"transB": 1},
        bias=np.arange(24, dtype=np.int32), w_scales=0.004, activation="Relu"),
    "max_pool": lambda: one_op_model(
        "MaxPool", [[1, 16, 9, 9]], [1, 16, 5, 5],
        {"kernel_shape": [3, 3], "strides": [2, 2], "pads": [1, 1, 1, 1]}),
    "average_pool": lambda: one_op_model(
        "AveragePool", [[1, 16, 9, 9]], [1, 16, 9, 9],
        {"kernel_shape": [3, 3], "pads": [1, 1, 1, 1]}),
    "global_average_pool": lambda: one_op_model("GlobalAveragePool", [[1, 16, 9, 9]],
                                                [1, 16, 1, 1]),
    "add": lambda: one_op_model("Add", [[1, 8, 5, 5], [1, 8, 5, 5]], [1, 8, 5, 5]),
}


def npu_partition(model):
    """The model compiled for npu_example, its optimized graph and the NPU's partition."""
    compiled = byoc.compile(model, plugins=["npu_example"], placement="priority")
    (partition,) = [p for p in compiled.plan.partitions if p.plugin == "npu_example"]
    return compiled, compiled.graph, partition


def compile_partition(partition, graph):
    """The partition through npu_example's hooks, as byoc compiles it: its payload and
    runtime."""
    lowered = plugin.byoc_lower_partition(partition=partition, graph=graph,
                                          constants=graph.constants)
    payload = plugin.byoc_codegen_partition(partition=partition, lowered=lowered)
    signature = signature_in_layout(partition.signature(), "NHWC")
    return payload, plugin.byoc_runtime_create(payload=payload, partition=signature, options={})


def reference_inputs(model, graph, partition):
    """The partition's inputs as the reference interpreter computes them from random model
    inputs (the int8 values the NPU reads)."""
    rng = np.random.default_rng(0)
    feeds = {name: rng.uniform(-6, 6, graph.types[name].shape).astype(np.float32)
             for name in graph.inputs}
    values = Interpreter(graph).values(feeds)
    return {name: values[name] for name in partition.inputs}


def float_values(graph, partition, inputs):
    """Every value of the partition evaluated node by node on the reference interpreter: the
    float path, which gives the op node's own output."""
    env = {**graph.constants, **inputs}
    for node in partition.nodes:
        results = evaluate_node(node, [env[v] if v else None for v in node.inputs],
                                opset=graph.opsets.get("", 0))
        env.update(zip(node.outputs, results))
    return env


def nhwc(array):
    return array.transpose(0, 2, 3, 1) if array.ndim == 4 else array


@pytest.mark.parametrize("layer", list(LAYERS))
def test_each_layer_returns_its_op_output_equal_to_the_reference_float_value(layer):
    model = LAYERS[layer]()
    compiled, graph, partition = npu_partition(model)
    inputs = reference_inputs(model, graph, partition)
    feeds = {name: nhwc(array) for name, array in inputs.items()}
    _, ordinary = compile_partition(partition, graph)
    debug = dataclasses.replace(partition, debug_outputs=debug_request(partition))
    payload, runtime = compile_partition(debug, graph)
    results = runtime.run(feeds)

    (op,) = [m.captured["op"] for m in partition.matches]
    assert set(results) == set(partition.outputs) | {op.outputs[0]}, \
        "only the op node's output is tapped: no DequantizeLinear or Relu output"
    expected = nhwc(float_values(graph, partition, inputs)[op.outputs[0]])
    tapped = results[op.outputs[0]]
    assert (tapped.dtype, tapped.shape) == (np.float32, expected.shape)
    error = np.abs(tapped.astype(np.float64) - expected).max()
    assert error <= RTOL * np.abs(expected).max(), (layer, error, np.abs(expected).max())
    for name, values in ordinary.run(feeds).items():
        np.testing.assert_array_equal(results[name], values)
    assert [tap["node"] for tap in payload.metadata["taps"]] == [op.name]


# sha256 prefixes of each layer's ordinary payload (stream, metadata and constants), taken
# before the NPU had debug taps: an ordinary compile must not change by one byte.
ORDINARY_PAYLOADS = {
    "conv": "5821c6920b575ab0",
    "depthwise_conv": "5a914691a8b38eca",
    "fully_connected": "00adddfe2ad23d80",
    "max_pool": "8331a3ce907b579d",
    "average_pool": "528b320e1728f7b5",
    "global_average_pool": "51f9a52bb64f303c",
    "add": "fc05d038b1d0bf0f",
}


@pytest.mark.parametrize("layer", list(LAYERS))
def test_an_ordinary_compile_gives_the_payload_it_gave_before_taps(layer):
    compiled, graph, partition = npu_partition(LAYERS[layer]())
    (part,) = [p for p in compiled.parts if p.plugin == "npu_example"]
    assert payload_digest(part.payload)[:16] == ORDINARY_PAYLOADS[layer]
    assert decode(part.payload.data) and part.payload.data[4] == 1    # format version 1
    assert "taps" not in part.payload.metadata


def test_a_request_for_values_the_npu_never_computes_changes_nothing():
    """The DequantizeLinear outputs are the int8 input, the Relu output is folded into the
    requantize clamp: neither exists on the NPU, so asking for them gives the ordinary
    payload."""
    _, graph, partition = npu_partition(LAYERS["conv"]())
    (op,) = [m.captured["op"] for m in partition.matches]
    unreal = [v for v in debug_request(partition) if v != op.outputs[0]]
    assert len(unreal) == 4          # the input's, weights' and bias' dequantized, Relu's
    ordinary, _ = compile_partition(partition, graph)
    asked, runtime = compile_partition(dataclasses.replace(partition, debug_outputs=unreal),
                                       graph)
    assert payload_digest(asked) == payload_digest(ordinary)
    assert not runtime.taps


def test_taps_sit_after_the_activations_and_cost_their_dram_traffic():
    model = LAYERS["average_pool"]()
    _, graph, partition = npu_partition(model)
    ordinary, plain = compile_partition(partition, graph)
    tapped, runtime = compile_partition(
        dataclasses.replace(partition, debug_outputs=debug_request(partition)), graph)
    before, after = decode(ordinary.data), decode(tapped.data)
    assert after.tensors[:len(before.tensors)] == before.tensors
    (command,) = after.commands
    assert isinstance(command, Pool) and command.tap == len(before.tensors)
    assert after.tensors[command.tap].offset >= before.dram_bytes
    feeds = {n: nhwc(a) for n, a in reference_inputs(model, graph, partition).items()}
    plain.run(feeds)
    runtime.run(feeds)
    counters = runtime.counters()
    assert counters["bytes_tapped"] == 1 * 9 * 9 * 16 * 4
    assert counters["cycles"] > plain.counters()["cycles"]
