"""Boundary layouts: a plugin that prefers NHWC gets NHWC, conversions sit only where layouts
differ, back-to-back conversions cancel, artifacts keep the layouts, reports show them."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto, helper

import byoc
from byoc.compiled import load
from byoc.core.ir import TensorType
from byoc.layouts import GRAPH_LAYOUT, LayoutEnv, convert, plan_conversions, signature_in_layout
from byoc.partition.patterns import make_op_pattern
from byoc.plugins import PartitionSignature, Payload, PluginInfo, PluginManager, hookimpl
from byoc.plugins import reference as reference_plugin
from byoc.report import render_html_report
from byoc.summary import format_summary


class NhwcRuntime:
    """Applies its ops (Relu, Sigmoid) to NHWC data and records the shapes it was given."""

    def __init__(self, signature, ops, seen):
        self.signature, self.ops, self.seen = signature, ops, seen

    def run(self, inputs):
        (name, x), = inputs.items()
        self.seen.append((self.signature.name, name, x.shape, x.flags.c_contiguous))
        for op in self.ops:
            x = np.maximum(x, 0) if op == "Relu" else 1 / (1 + np.exp(-x))
        (out,) = self.signature.outputs
        return {out: x.astype(np.float32)}


class NhwcPlugin:
    """Claims the given ops (one pattern each) and wants NHWC at its boundaries."""

    def __init__(self, name="nhwc", ops=("Relu",), layout="NHWC"):
        self.name, self.ops, self.layout = name, ops, layout
        self.seen = []

    @hookimpl
    def byoc_plugin_info(self):
        return PluginInfo(name=self.name, version="0.1.0", device="test",
                          description="NHWC kernels", preferred_layout=self.layout)

    @hookimpl
    def byoc_partition_patterns(self):
        return [make_op_pattern(f"{self.name}.{op.lower()}", op) for op in self.ops]

    @hookimpl
    def byoc_lower_partition(self, partition):
        return ",".join(node.op_type for node in partition.nodes)

    @hookimpl
    def byoc_codegen_partition(self, lowered):
        return Payload(data=lowered.encode())

    @hookimpl
    def byoc_runtime_create(self, payload, partition):
        return NhwcRuntime(partition, payload.data.decode().split(","), self.seen)


def manager_with(*plugins):
    manager = PluginManager()
    manager.register(reference_plugin)
    for plugin in plugins:
        manager.register(plugin)
    return manager


def chain_model():
    """x -> Relu -> Sigmoid -> Neg -> Relu -> y, and the Sigmoid output is a model output."""
    shape = [1, 3, 4, 5]
    value = lambda n: helper.make_tensor_value_info(n, TensorProto.FLOAT, shape)  # noqa: E731
    nodes = [helper.make_node("Relu", ["x"], ["a"], name="relu1"),
             helper.make_node("Sigmoid", ["a"], ["b"], name="sigmoid"),
             helper.make_node("Neg", ["b"], ["c"], name="neg"),
             helper.make_node("Relu", ["c"], ["y"], name="relu2")]
    graph = helper.make_graph(nodes, "chain", [value("x")], [value("y"), value("b")])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def compile_chain(relu=None, sigmoid=None):
    """Relu on plugin ``nhwc``, Sigmoid on plugin ``nhwc2`` (two plugins, so the Relu ->
    Sigmoid edge is a boundary between two NHWC partitions); Neg on the host."""
    relu = relu or NhwcPlugin("nhwc", ("Relu",))
    sigmoid = sigmoid or NhwcPlugin("nhwc2", ("Sigmoid",))
    return byoc.compile(chain_model(), plugins=["nhwc", "nhwc2"], default_plugins=(),
                        manager=manager_with(relu, sigmoid))


def expected_outputs(x):
    a = np.maximum(x, 0)
    b = 1 / (1 + np.exp(-a))
    return {"y": np.maximum(-b, 0), "b": b}


def test_nhwc_partitions_get_channels_last_and_results_are_unchanged():
    relu, sigmoid = NhwcPlugin("nhwc", ("Relu",)), NhwcPlugin("nhwc2", ("Sigmoid",))
    compiled = compile_chain(relu, sigmoid)
    x = np.random.default_rng(0).normal(size=(1, 3, 4, 5)).astype(np.float32)
    out = compiled.run({"x": x})
    for name, want in expected_outputs(x).items():
        np.testing.assert_allclose(out[name], want, rtol=1e-6)
        assert out[name].shape == (1, 3, 4, 5)
    # every NHWC partition saw channels last, C-contiguous
    seen = relu.seen + sigmoid.seen
    assert len(seen) == 3 and {shape for *_, shape, _ in seen} == {(1, 4, 5, 3)}
    assert all(contiguous for *_, contiguous in seen)
    nhwc_parts = [p for p in compiled.parts if p.plugin in ("nhwc", "nhwc2")]
    assert len(nhwc_parts) == 3
    for part in nhwc_parts:
        sig = part.signature
        assert all(sig.layouts[v] == "NHWC" for v in [*sig.inputs, *sig.outputs])
        assert all(t.shape == (1, 4, 5, 3) for t in [*sig.inputs.values(), *sig.outputs.values()])


def test_back_to_back_nhwc_partitions_pass_values_without_converting():
    compiled = compile_chain()
    plan = compiled.layout_plan()
    by_value = {c.value: c for c in plan.conversions}
    # into the first NHWC partition, out of the Sigmoid to the host Neg and the model output,
    # into the last Relu, and out of it to the model output
    assert by_value["x"].source == "NCHW" and by_value["x"].target == "NHWC"
    assert by_value["b"].target == GRAPH_LAYOUT
    assert set(by_value["b"].consumers) >= {"model"}
    assert by_value["y"].source == "NHWC" and by_value["y"].consumers == ("model",)
    # relu1 -> sigmoid: both NHWC, the pair of conversions cancels
    kept = {c.value: c for c in plan.kept}
    assert "a" in kept and kept["a"].source == kept["a"].target == "NHWC"
    assert "a" not in by_value


def test_a_value_read_by_several_consumers_is_converted_once():
    env = LayoutEnv()
    x = np.arange(24, dtype=np.float32).reshape(1, 2, 3, 4)
    env.put("x", x)
    first = env.get("x", "NHWC")
    assert first.shape == (1, 3, 4, 2) and env.get("x", "NHWC") is first
    np.testing.assert_array_equal(convert(first, "NHWC", "NCHW"), x)
    env.put("y", first, "NHWC")
    assert env.get("y", "NHWC") is first
    np.testing.assert_array_equal(env.get("y"), x)


def test_only_four_dimensional_values_change_layout():
    f32 = np.dtype("float32")
    sig = PartitionSignature("p", {"img": TensorType(f32, (1, 8, 2, 3)),
                                   "vec": TensorType(f32, (1, 8))},
                             {"out": TensorType(f32, (1, 8, 2, 3))})
    nhwc = signature_in_layout(sig, "NHWC")
    assert nhwc.inputs["img"].shape == (1, 2, 3, 8) and nhwc.inputs["vec"].shape == (1, 8)
    assert nhwc.layouts == {"img": "NHWC", "out": "NHWC"}
    assert signature_in_layout(sig, "NCHW") is sig
    assert plan_conversions([nhwc], ["out"]).conversions[-1].source == "NHWC"


def test_artifact_keeps_boundary_layouts(tmp_path):
    relu, sigmoid = NhwcPlugin("nhwc", ("Relu",)), NhwcPlugin("nhwc2", ("Sigmoid",))
    compiled = compile_chain(relu, sigmoid)
    path = tmp_path / "chain.byoc"
    compiled.save(path)
    loaded = load(path, manager=manager_with(relu, sigmoid))
    x = np.random.default_rng(1).normal(size=(1, 3, 4, 5)).astype(np.float32)
    for name, array in loaded.run({"x": x}).items():
        np.testing.assert_allclose(array, compiled.run({"x": x})[name])
    assert [p.signature.layouts for p in loaded.parts] == \
        [p.signature.layouts for p in compiled.parts]


def test_reports_show_where_conversions_sit():
    compiled = compile_chain()
    text = format_summary(compiled)
    assert "layout conversions at partition boundaries:" in text
    assert "x: NCHW -> NHWC (model ->" in text and "a: stays NHWC" in text
    page = render_html_report(compiled.graph, compiled.plan, "chain", use_graphviz=False,
                              layouts=compiled.layout_plan())
    assert "<h2>Layout conversions</h2>" in page and "NCHW → NHWC" in page
    assert "conversions cancel" in page


def test_an_unknown_preferred_layout_is_a_plugin_error_naming_it():
    with pytest.warns(UserWarning, match="prefers tensor layout 'NCWH'"):
        compiled = compile_chain(relu=NhwcPlugin("nhwc", ("Relu",), layout="NCWH"))
    assert {p.plugin for p in compiled.parts} == {"reference", "nhwc2"}
