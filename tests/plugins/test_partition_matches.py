"""The lowering hook receives, with each partition, the pattern matches that formed it."""

from __future__ import annotations

import numpy as np
from onnx import TensorProto, helper

import byoc
from byoc.partition.patterns import Decline, make_conv_pattern, make_op_pattern
from byoc.plugins import PluginInfo, PluginManager, hookimpl
from byoc.plugins import reference as reference_plugin
from byoc.plugins.graph_payload import graph_from_payload, graph_to_payload
from byoc.plugins.reference import InterpreterRuntime
from byoc.testing import make_model


class Recorder:
    """Claims Conv -> [Relu] and Add; remembers every partition it is asked to lower."""

    def __init__(self):
        self.lowered = []

    @hookimpl
    def byoc_plugin_info(self):
        return PluginInfo("recorder", "0.0", "numpy", "records its partitions")

    @hookimpl
    def byoc_partition_patterns(self):
        return [make_conv_pattern("recorder.conv_relu", activation="optional"),
                make_op_pattern("recorder.add", "Add")]

    @hookimpl
    def byoc_lower_partition(self, partition, graph, constants):
        self.lowered.append(partition)
        return partition.subgraph(constants)

    @hookimpl
    def byoc_codegen_partition(self, partition, lowered):
        return graph_to_payload(lowered)

    @hookimpl
    def byoc_runtime_create(self, payload, partition, options):
        return InterpreterRuntime(graph_from_payload(payload))


def model():
    rng = np.random.default_rng(0)
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], name="conv", pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c"], ["r"], name="relu"),
             helper.make_node("Add", ["r", "x"], ["s"], name="add"),
             helper.make_node("Softmax", ["s"], ["y"], name="softmax", axis=1)]
    weights = {"w": rng.standard_normal((2, 2, 3, 3)).astype(np.float32)}
    return make_model(nodes, [("x", TensorProto.FLOAT, [1, 2, 5, 5])],
                      [("y", TensorProto.FLOAT, [1, 2, 5, 5])], weights)


def test_each_partition_comes_with_the_matches_that_formed_it():
    recorder = Recorder()
    manager = PluginManager()
    manager.register(reference_plugin)
    manager.register(recorder, name="recorder")
    compiled = byoc.compile(model(), plugins=["recorder"], default_plugins=(), manager=manager)
    [partition] = recorder.lowered
    assert [m.pattern for m in partition.matches] == ["recorder.conv_relu", "recorder.add"]
    conv_relu, add = partition.matches
    assert {n.name for n in conv_relu.nodes} == {"conv", "relu"}
    assert conv_relu.captured["conv"].name == "conv"
    assert conv_relu.captured["activation"].name == "relu"
    # the captured nodes are the partition's own, so a lowering can use them directly
    own = {id(n) for n in partition.nodes}
    assert all(id(n) in own for m in partition.matches for n in m.nodes)
    assert {n.name for m in partition.matches for n in m.nodes} == {
        n.name for n in partition.nodes}
    # the host's partition (the Softmax) was formed without a pattern of this plugin
    host = [p for p in compiled.plan.partitions if p.plugin == "reference"]
    assert host and all(p.matches == [] for p in host)
    x = np.random.default_rng(1).standard_normal((1, 2, 5, 5)).astype(np.float32)
    want = byoc.compile(model(), default_plugins=()).run({"x": x})["y"]
    np.testing.assert_allclose(compiled.run({"x": x})["y"], want, rtol=1e-6, atol=1e-6)


def test_a_declined_composite_tells_each_of_its_nodes_why():
    class Declines(Recorder):
        @hookimpl
        def byoc_partition_patterns(self):
            return [make_conv_pattern("recorder.conv_relu", activation="relu",
                                      check=lambda match, graph: Decline("the Relu6 unit is "
                                                                         "busy"))]

    manager = PluginManager()
    manager.register(reference_plugin)
    manager.register(Declines(), name="recorder")
    compiled = byoc.compile(model(), plugins=["recorder"], default_plugins=(), manager=manager)
    for node in ("conv", "relu"):
        reasons = compiled.plan.explanations[node].reasons["recorder"]
        assert any("the Relu6 unit is busy" in r for r in reasons), (node, reasons)
    assert any("rooted at" in r and "'relu'" in r
               for r in compiled.plan.explanations["conv"].reasons["recorder"])
