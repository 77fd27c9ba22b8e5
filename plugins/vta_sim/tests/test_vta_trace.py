"""vta_sim's device trace: one event per generated layer, whose cycles add up to the
partition's cycle counter (the timing model's on the simulator, the RTL's on the RTL)."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import byoc
from byoc.model_zoo import Int8Variant
from byoc.report.trace import chrome_trace


@pytest.fixture(scope="module")
def two_conv_model():
    """x[1,16,8,8] -> Conv 3x3 -> Relu -> Conv 1x1 (32 channels) -> Relu, int8 QDQ: one
    vta_sim partition of two layers."""
    rng = np.random.default_rng(0)
    weights = [numpy_helper.from_array(rng.normal(0, 0.2, shape).astype(np.float32), name)
               for name, shape in (("w1", (16, 16, 3, 3)), ("w2", (32, 16, 1, 1)))]
    nodes = [helper.make_node("Conv", ["x", "w1"], ["c1"], name="conv1", pads=[1] * 4),
             helper.make_node("Relu", ["c1"], ["r1"], name="relu1"),
             helper.make_node("Conv", ["r1", "w2"], ["c2"], name="conv2"),
             helper.make_node("Relu", ["c2"], ["y"], name="relu2")]
    graph = helper.make_graph(
        nodes, "two_conv", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 16, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], weights)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    return Int8Variant("two_conv", calibration_samples=2)(onnx.shape_inference.infer_shapes(model))


def traced_partitions(model, target):
    compiled = byoc.compile(model, plugins=["vta_sim"], placement="priority",
                            plugin_options={"vta_sim": {"target": target}})
    feeds = {"x": np.random.default_rng(1).uniform(-2, 2, (1, 16, 8, 8)).astype(np.float32)}
    _, profiles = compiled.profile(feeds)
    return [p for p in profiles if p.plugin == "vta_sim"], chrome_trace(profiles, compiled.name)


def check_layers(profiles, trace, cycle_counter):
    (profile,) = profiles
    device = profile.device
    assert [e.name for e in device.events] == ["conv1", "conv2"]
    assert [e.nodes for e in device.events] == [("conv1",), ("conv2",)]
    assert device.events[0].start_cycle == 0
    assert device.events[1].start_cycle == device.events[0].cycles > 0
    assert sum(e.cycles for e in device.events) == device.cycles == \
        profile.counters[cycle_counter] > 0
    assert device.clock_hz == 100e6
    events = trace["traceEvents"]
    partition = next(e for e in events if e.get("cat") == "partition"
                     and e["args"]["plugin"] == "vta_sim")
    assert partition["args"]["cycles"] == device.cycles
    assert {"conv1", "conv2"} <= set(partition["args"]["nodes"])
    layers = [e for e in events if e.get("cat") == "device"]
    assert [e["args"]["cycles"] for e in layers] == [e.cycles for e in device.events]
    assert sum(e["dur"] for e in layers) == pytest.approx(device.cycles / 100)   # us at 100 MHz


def test_layers_on_the_simulator_add_up_to_the_estimated_cycles(two_conv_model):
    check_layers(*traced_partitions(two_conv_model, "sim"), "estimated_cycles")


@pytest.mark.slow
def test_layers_on_the_rtl_add_up_to_its_cycle_counter(two_conv_model):
    """The core counts a whole run's cycles: they are shared among the layers in the
    proportions of the timing model's layer boundaries."""
    rtl, trace = traced_partitions(two_conv_model, "rtl")
    check_layers(rtl, trace, "cycles")
    (sim,), _ = traced_partitions(two_conv_model, "sim")

    def first_share(device):
        return device.events[0].cycles / device.cycles

    assert first_share(rtl[0].device) == pytest.approx(first_share(sim.device), abs=1e-3)
