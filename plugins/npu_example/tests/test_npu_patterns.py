"""What npu_example claims, and the reason each decline gives, on one-layer QDQ models."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

import byoc
from byoc.testing import compile_reference, make_model, qdq_layer_model


def weights(out_c, in_c, kernel=3, seed=0):
    shape = (out_c, in_c) + ((kernel, kernel) if isinstance(kernel, int) else tuple(kernel))
    return np.random.default_rng(seed).integers(-127, 128, shape).astype(np.int8)


def explain(model, node="quantize"):
    """How ``node`` was placed; a pattern's decline is recorded at its root, the
    QuantizeLinear."""
    compiled = byoc.compile(model, plugins=["npu_example"], placement="priority")
    explanation = compiled.plan.explanations[node]
    return compiled, explanation.plugin, explanation.pattern, \
        " ".join(explanation.reasons.get("npu_example", []))


def x_for(model, seed=0):
    value = model.graph.input[0]
    shape = [d.dim_value for d in value.type.tensor_type.shape.dim]
    return {value.name: np.random.default_rng(seed).uniform(-4, 4, shape).astype(np.float32)}


def assert_equal_to_reference(compiled, model, names=None):
    feeds = x_for(model)
    ours, expected = compiled.run(feeds), compile_reference(model).run(feeds)
    for name in names or expected:
        np.testing.assert_array_equal(ours[name], expected[name])


@pytest.mark.parametrize("attrs,weight,pattern", [
    ({"pads": [1, 1, 1, 1]}, weights(16, 8), "npu_example.qdq_conv2d"),
    ({"pads": [1, 1, 1, 1], "strides": [2, 2], "group": 8}, weights(8, 1),
     "npu_example.qdq_depthwise_conv2d"),
    ({"pads": [3, 3, 3, 3], "strides": [2, 2]}, weights(8, 8, 7), "npu_example.qdq_conv2d"),
])
def test_convolutions_are_claimed_and_exact(attrs, weight, pattern):
    model = qdq_layer_model("Conv", [1, 8, 10, 10], weight, attrs=attrs, activation="Relu",
                            bias=np.arange(weight.shape[0], dtype=np.int32) * 50,
                            w_scales=np.linspace(0.005, 0.02, weight.shape[0]))
    compiled, plugin, taken_by, _ = explain(model)
    assert (plugin, taken_by) == ("npu_example", pattern)
    assert_equal_to_reference(compiled, model)


def test_gemm_is_a_fully_connected_layer():
    model = qdq_layer_model("Gemm", [3, 40], weights(24, 40, kernel=()), attrs={"transB": 1},
                            bias=np.arange(24, dtype=np.int32), w_scales=0.004)
    compiled, plugin, pattern, _ = explain(model)
    assert (plugin, pattern) == ("npu_example", "npu_example.qdq_fully_connected")
    assert_equal_to_reference(compiled, model)


@pytest.mark.parametrize("attrs,weight,reason", [
    ({"pads": [3, 3, 3, 3]}, weights(8, 8, 9), "kernel [9, 9]; the NPU's windows are 1..7 wide"),
    ({"strides": [3, 3]}, weights(8, 8), "strides [3, 3]; the NPU steps 1..2"),
    ({"dilations": [2, 2]}, weights(8, 8), "dilations [2, 2]; the NPU's windows are not dilated"),
    ({"pads": [4, 0, 0, 0]}, weights(8, 8), "pads [4, 0, 0, 0] (top, left, bottom, right); "
                                            "the NPU pads 0..3"),
    ({"group": 2}, weights(8, 4), "grouped convolution (group=2, 8 -> 8 channels)"),
    ({}, weights(2049, 8, 1), "8 -> 2049 channels; the NPU takes at most 2048"),
])
def test_convolutions_the_npu_cannot_run_are_declined_with_the_reason(attrs, weight, reason):
    model = qdq_layer_model("Conv", [1, 8, 10, 10], weight, attrs=attrs)
    _, plugin, _, reasons = explain(model)
    assert plugin != "npu_example"
    assert reason in reasons, reasons


def test_asymmetric_weights_are_declined():
    model = qdq_layer_model("Conv", [1, 8, 6, 6], weights(8, 8))
    for init in model.graph.initializer:
        if init.name == "wz":
            init.CopyFrom(onnx.numpy_helper.from_array(np.array(3, np.int8), "wz"))
    _, plugin, _, reasons = explain(model)
    assert plugin != "npu_example" and "symmetric int8 weights" in reasons


def test_groups_with_float_semantics_are_declined():
    model = qdq_layer_model("Conv", [1, 8, 6, 6], weights(8, 8), bias=np.ones(8, np.int32))
    for init in model.graph.initializer:
        if init.name == "bs":     # a bias scale other than x_scale * w_scale
            init.CopyFrom(onnx.numpy_helper.from_array(np.full(1, 0.3, np.float32), "bs"))
    _, plugin, _, reasons = explain(model)
    assert plugin != "npu_example" and "not an integer layer" in reasons


def test_an_int32_accumulator_that_could_overflow_is_declined():
    full = np.full((1, 2048, 7, 7), 127, np.int8)
    model = qdq_layer_model("Conv", [1, 2048, 7, 7], full, x_zero=0)
    _, plugin, _, reasons = explain(model)
    assert plugin != "npu_example"
    assert "int32 accumulator could reach 3249899520" in reasons


def test_batches_are_declined():
    model = qdq_layer_model("Conv", [2, 8, 6, 6], weights(8, 8), attrs={"pads": [1] * 4})
    _, plugin, _, reasons = explain(model)
    assert plugin != "npu_example" and "batch 2" in reasons


# -- pooling, Add, Flatten ------------------------------------------------------------------


def qdq_model(op_type, shapes, out_shape, attrs=None, second_input=False, out_scale=0.07,
              out_zero=9):
    """x (float) -> Q -> DQ -> op [-> with a second Q/DQ input] -> Q -> DQ -> out."""
    init = {"s": np.float32(0.05), "z": np.uint8(128), "s2": np.float32(0.031),
            "z2": np.uint8(100), "ys": np.float32(out_scale), "yz": np.uint8(out_zero)}
    nodes = [helper.make_node("QuantizeLinear", ["x", "s", "z"], ["xq"]),
             helper.make_node("DequantizeLinear", ["xq", "s", "z"], ["xd"])]
    operands, inputs = ["xd"], [("x", TensorProto.FLOAT, shapes[0])]
    if second_input:
        nodes += [helper.make_node("QuantizeLinear", ["x2", "s2", "z2"], ["x2q"]),
                  helper.make_node("DequantizeLinear", ["x2q", "s2", "z2"], ["x2d"])]
        operands.append("x2d")
        inputs.append(("x2", TensorProto.FLOAT, shapes[1]))
    nodes += [helper.make_node(op_type, operands, ["r"], name="layer", **(attrs or {})),
              helper.make_node("QuantizeLinear", ["r", "ys", "yz"], ["y"], name="quantize"),
              helper.make_node("DequantizeLinear", ["y", "ys", "yz"], ["out"])]
    return make_model(nodes, inputs, [("out", TensorProto.FLOAT, out_shape)], init, opset=13)


def feeds_for(model, seed=0):
    rng = np.random.default_rng(seed)
    return {v.name: rng.uniform(-6, 6, [d.dim_value for d in v.type.tensor_type.shape.dim])
            .astype(np.float32) for v in model.graph.input}


@pytest.mark.parametrize("op_type,attrs,out_shape", [
    ("MaxPool", {"kernel_shape": [3, 3], "strides": [2, 2], "pads": [1, 1, 1, 1]}, [1, 16, 5, 5]),
    ("AveragePool", {"kernel_shape": [2, 2], "strides": [2, 2]}, [1, 16, 4, 4]),
    ("AveragePool", {"kernel_shape": [3, 3], "pads": [1, 1, 1, 1], "count_include_pad": 1},
     [1, 16, 9, 9]),
    ("GlobalAveragePool", {}, [1, 16, 1, 1]),
])
def test_pools_are_claimed_and_exact(op_type, attrs, out_shape):
    model = qdq_model(op_type, [[1, 16, 9, 9]], out_shape, attrs)
    compiled, plugin, pattern, _ = explain(model)
    assert (plugin, pattern) == ("npu_example", "npu_example.qdq_pool")
    feeds = feeds_for(model)
    np.testing.assert_array_equal(compiled.run(feeds)["out"],
                                  compile_reference(model).run(feeds)["out"])


@pytest.mark.parametrize("op_type,attrs,out_shape,reason", [
    ("MaxPool", {"kernel_shape": [2, 2], "strides": [2, 2], "ceil_mode": 1}, [1, 16, 5, 5],
     "ceil_mode=1"),
    ("AveragePool", {"kernel_shape": [9, 9]}, [1, 16, 1, 1], "kernel [9, 9]"),
    ("MaxPool", {"kernel_shape": [2, 2], "strides": [4, 4]}, [1, 16, 2, 2], "strides [4, 4]"),
])
def test_pools_the_npu_cannot_run_are_declined(op_type, attrs, out_shape, reason):
    model = qdq_model(op_type, [[1, 16, 9, 9]], out_shape, attrs)
    _, plugin, _, reasons = explain(model)
    assert plugin != "npu_example" and reason in reasons, reasons


def test_add_is_claimed_and_exact_and_broadcasting_is_declined():
    model = qdq_model("Add", [[1, 8, 5, 5], [1, 8, 5, 5]], [1, 8, 5, 5], second_input=True)
    compiled, plugin, pattern, _ = explain(model)
    assert (plugin, pattern) == ("npu_example", "npu_example.qdq_add")
    feeds = feeds_for(model)
    np.testing.assert_array_equal(compiled.run(feeds)["out"],
                                  compile_reference(model).run(feeds)["out"])
    broadcast = qdq_model("Add", [[1, 8, 5, 5], [1, 8, 1, 1]], [1, 8, 5, 5], second_input=True)
    _, plugin, _, reasons = explain(broadcast)
    assert plugin != "npu_example" and "without broadcasting" in reasons


def test_flatten_is_claimed_only_when_it_moves_no_byte():
    plain = qdq_model("Flatten", [[1, 16, 1, 1]], [1, 16], out_scale=0.05, out_zero=128)
    _, plugin, pattern, _ = explain(plain)
    assert (plugin, pattern) == ("npu_example", "npu_example.qdq_flatten")
    spatial = qdq_model("Flatten", [[1, 4, 2, 2]], [1, 16], out_scale=0.05, out_zero=128)
    _, plugin, _, reasons = explain(spatial)
    assert plugin != "npu_example" and "NHWC and NCHW order alike" in reasons
    requantizing = qdq_model("Flatten", [[1, 16, 1, 1]], [1, 16])
    _, plugin, _, reasons = explain(requantizing)
    assert plugin != "npu_example" and "requantizes" in reasons


def test_a_dequantize_shared_with_a_host_op_is_declined():
    init = {"s": np.float32(0.05), "z": np.uint8(128), "w": weights(8, 8, 1),
            "ws": np.float32(0.01), "wz": np.int8(0), "ys": np.float32(0.1),
            "yz": np.uint8(128)}
    nodes = [helper.make_node("QuantizeLinear", ["x", "s", "z"], ["xq"]),
             helper.make_node("DequantizeLinear", ["xq", "s", "z"], ["xd"], name="shared"),
             helper.make_node("DequantizeLinear", ["w", "ws", "wz"], ["wd"]),
             helper.make_node("Conv", ["xd", "wd"], ["c"], name="layer"),
             helper.make_node("QuantizeLinear", ["c", "ys", "yz"], ["y"]),
             helper.make_node("Sigmoid", ["xd"], ["sig"], name="sigmoid")]
    model = make_model(nodes, [("x", TensorProto.FLOAT, [1, 8, 4, 4])],
                       [("y", TensorProto.UINT8, [1, 8, 4, 4]),
                        ("sig", TensorProto.FLOAT, [1, 8, 4, 4])], init, opset=13)
    compiled, plugin, _, reasons = explain(model, "shared")
    assert plugin != "npu_example"
    assert "also read by Sigmoid node 'sigmoid', which the NPU does not run" in reasons
    # The conv still runs on the NPU, reading the float value and quantizing it back.
    assert compiled.plan.partition_of("layer").plugin == "npu_example"
    assert_equal_to_reference(compiled, model, ["y"])


def residual_adds_model():
    """xq -> DequantizeLinear 'shared', read by two quantized Adds: shared + shared, then
    (that sum) + shared. The NPU claims the DequantizeLinear for its two Add layers."""
    init = {"s": np.float32(0.05), "z": np.int8(0), "s1": np.float32(0.1), "z1": np.int8(0),
            "s2": np.float32(0.15), "z2": np.int8(0)}
    nodes = [helper.make_node("QuantizeLinear", ["x", "s", "z"], ["xq"]),
             helper.make_node("DequantizeLinear", ["xq", "s", "z"], ["xd"], name="shared"),
             helper.make_node("Add", ["xd", "xd"], ["a1"], name="add1"),
             helper.make_node("QuantizeLinear", ["a1", "s1", "z1"], ["q1"]),
             helper.make_node("DequantizeLinear", ["q1", "s1", "z1"], ["d1"]),
             helper.make_node("Add", ["d1", "xd"], ["a2"], name="add2"),
             helper.make_node("QuantizeLinear", ["a2", "s2", "z2"], ["y"])]
    return make_model(nodes, [("x", TensorProto.FLOAT, [1, 4, 3, 3])],
                      [("y", TensorProto.INT8, [1, 4, 3, 3])], init, opset=13)


@pytest.mark.parametrize("options", [
    {"pins": {"Add": "reference"}},              # both layers pinned away: it stands alone
    {"pins": {"add2": "reference"}},             # the second layer reads its float output
])
def test_a_shared_dequantize_whose_layers_run_elsewhere_still_compiles(options):
    """Pins drop the Add layers the DequantizeLinear was claimed for; the NPU partition
    holding it receives the int8 value and hands the float one on (found by the fuzzer)."""
    model = residual_adds_model()
    compiled = byoc.compile(model, plugins=["npu_example"], placement="priority", **options)
    assert compiled.plan.partition_of("shared").plugin == "npu_example"
    assert not compiled.fallbacks
    assert_equal_to_reference(compiled, model)
