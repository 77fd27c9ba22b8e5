"""Quantized layers stay whole: a pin or a plugin boundary never splits DequantizeLinear ->
Conv -> QuantizeLinear, whose integer semantics only exist for the layer as a whole."""

import numpy as np
import pytest
from onnx import TensorProto, helper

import byoc
from byoc.partition.partitioner import PluginClaims, partition_graph, quantized_layers
from byoc.partition.patterns import make_op_pattern
from byoc.testing import compile_reference, make_model

LAYER = ["dq_w", "conv", "quantize_y"]


def shared_input_model(seed=0, channels=8):
    """x -> QuantizeLinear -> DequantizeLinear 'dq_x', read by the layer (DequantizeLinear of
    the weight, Conv, QuantizeLinear) and by a Sigmoid. The scales make the layer's literal
    float math round differently from its integer operation on a few outputs."""
    rng = np.random.default_rng(seed)
    init = {"xs": np.float32(0.1), "xz": np.int8(0), "ys": np.float32(0.3), "yz": np.int8(0),
            "w": rng.integers(-9, 10, (4, channels, 3, 3)).astype(np.int8),
            "ws": np.float32(0.3), "wz": np.int8(0)}
    nodes = [helper.make_node("QuantizeLinear", ["x", "xs", "xz"], ["xq"], name="quantize_x"),
             helper.make_node("DequantizeLinear", ["xq", "xs", "xz"], ["xd"], name="dq_x"),
             helper.make_node("DequantizeLinear", ["w", "ws", "wz"], ["wd"], name="dq_w"),
             helper.make_node("Conv", ["xd", "wd"], ["acc"], name="conv"),
             helper.make_node("QuantizeLinear", ["acc", "ys", "yz"], ["y"], name="quantize_y"),
             helper.make_node("Sigmoid", ["xd"], ["s"], name="sigmoid")]
    return make_model(nodes, [("x", TensorProto.FLOAT, [1, channels, 8, 8])],
                      [("y", TensorProto.INT8, [1, 4, 6, 6]),
                       ("s", TensorProto.FLOAT, [1, channels, 8, 8])], init)


def ops(plugin, priority, *op_types):
    return PluginClaims(plugin, priority, [make_op_pattern(f"{plugin}.{t.lower()}", t)
                                           for t in op_types])


def layout(plan):
    return [(p.plugin, [n.name for n in p.nodes]) for p in plan.partitions]


def test_a_layer_is_its_op_activation_quantize_and_the_dequantize_only_it_reads():
    graph = byoc.import_model(shared_input_model())
    # dq_x is read by the Sigmoid too: it may run elsewhere
    assert [[n.name for n in layer] for layer in quantized_layers(graph)] == [LAYER]


def test_a_pin_that_would_split_a_layer_keeps_the_layer_whole_on_the_host():
    graph = byoc.import_model(shared_input_model())
    everything = ops("dsp", 0, "QuantizeLinear", "DequantizeLinear", "Conv", "Sigmoid")
    plan = partition_graph(graph, [everything], host="cpu", pins={"Conv": "cpu"})
    assert layout(plan) == [("dsp", ["quantize_x", "dq_x", "sigmoid"]), ("cpu", LAYER)]
    for name in ("dq_w", "quantize_y"):
        reasons = plan.explanations[name].reasons["dsp"]
        assert any("quantized layer 'quantize_y' is kept whole on the host" in r
                   and "(cpu, dsp)" in r for r in reasons), reasons
    assert plan.explanations["conv"].reasons["dsp"] == ["pinned to cpu"]


def test_two_plugins_that_would_split_a_layer_leave_it_to_the_host():
    graph = byoc.import_model(shared_input_model())
    plan = partition_graph(graph, [ops("npu", 0, "Conv"),
                                   ops("dsp", 1, "QuantizeLinear", "DequantizeLinear")],
                           host="cpu")
    assert layout(plan) == [("dsp", ["quantize_x", "dq_x"]), ("cpu", [*LAYER, "sigmoid"])]
    assert "kept whole on the host" in plan.explanations["conv"].reasons["npu"][0]
    assert "(dsp, npu)" in plan.explanations["conv"].reasons["npu"][0]


def test_a_layer_one_plugin_takes_whole_stays_with_it():
    graph = byoc.import_model(shared_input_model())
    plan = partition_graph(graph, [ops("dsp", 0, "DequantizeLinear", "Conv", "QuantizeLinear")],
                           host="cpu", min_partition_size=2)
    assert layout(plan) == [("dsp", ["quantize_x", "dq_x", *LAYER]), ("cpu", ["sigmoid"])]


@pytest.mark.parametrize("seed", [0, 1])
def test_a_pinned_layer_computes_what_the_whole_model_computes(seed):
    """The layer runs on the reference host while cpu_llvm runs its shared input
    DequantizeLinear: the host dequantizes the quantized input again inside its partition
    and evaluates the integer layer, as the whole-model reference does (float math would be
    off by one step on a few of these outputs)."""
    model = shared_input_model(seed)
    x = np.random.default_rng(100 + seed).normal(0, 0.5, (1, 8, 8, 8)).astype(np.float32)
    compiled = byoc.compile(model, pins={"Conv": "reference"}, default_plugins=("cpu_llvm",))
    assert layout(compiled.plan) == [("cpu_llvm", ["quantize_x", "dq_x", "sigmoid"]),
                                     ("reference", LAYER)]
    got, want = compiled.run({"x": x}), compile_reference(model).run({"x": x})
    np.testing.assert_array_equal(got["y"], want["y"])
    np.testing.assert_allclose(got["s"], want["s"], rtol=1e-6)
