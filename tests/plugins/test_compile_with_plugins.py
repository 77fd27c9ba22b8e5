"""The whole plugin path: partition, lower, codegen, run, save, load, with two test plugins."""

from __future__ import annotations

import itertools
import zipfile

import numpy as np
import pytest
import yaml
from conftest import make_model, zoo
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper
from plugins.toy_plugins import Adder, ConvFuse

import byoc
from byoc.errors import ArtifactError, ByocError
from byoc.pipeline import FallbackWarning
from byoc.plugins import hookimpl
from byoc.plugins.manager import default_manager
from byoc.testing import compile_reference

TOY = ("convfuse", "adder")
ORDERS = [list(p) for r in range(len(TOY) + 1) for p in itertools.permutations(TOY, r)]
ZOO = ["mlp", "cnn", "resnet18", "transformer", "cnn_int8", "resnet18_int8"]


@pytest.fixture
def toy_plugins():
    manager = default_manager()
    registered = [manager.register(cls()).name for cls in (ConvFuse, Adder)]
    yield manager
    for name in registered:
        manager.unregister(name)


def assert_same_outputs(ours, reference, exact):
    assert ours.keys() == reference.keys()
    for key, expected in reference.items():
        if exact:
            np.testing.assert_array_equal(ours[key], expected)
        else:
            np.testing.assert_allclose(ours[key], expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", ZOO)
def test_zoo_compiles_in_every_plugin_order_and_matches_the_reference(toy_plugins, zoo_dir,
                                                                      name):
    path = zoo_dir / f"{name}.onnx"
    feeds = zoo.sample_inputs(path, seed=0)
    reference = compile_reference(path).run(feeds)
    for order in ORDERS:
        model = byoc.compile(path, plugins=order, default_plugins=())
        plan = model.plan
        plan.check_acyclic()
        assert sorted(n.name for p in plan.partitions for n in p.nodes) == \
            sorted(n.name for n in model.graph.nodes)
        # convfuse computes convolutions with its own kernels, so allow float rounding.
        assert_same_outputs(model.run(feeds), reference, exact="convfuse" not in order)


def test_plugins_take_what_they_claim_with_explanations(toy_plugins, zoo_dir):
    model = byoc.compile(zoo_dir / "resnet18.onnx", plugins=["convfuse", "adder"],
                         default_plugins=())
    plugin_of = {n: e.plugin for n, e in model.plan.explanations.items()}
    convs = [n for n in model.graph.nodes if n.op_type == "Conv"]
    adds = [n for n in model.graph.nodes if n.op_type == "Add"]
    assert len(convs) == 20 and all(plugin_of[c.name] == "convfuse" for c in convs)
    assert len(adds) == 8 and all(plugin_of[a.name] == "adder" for a in adds)
    pool = next(n for n in model.graph.nodes if n.op_type == "MaxPool")
    explanation = model.plan.explanations[pool.name]
    assert explanation.plugin == "reference"
    assert explanation.reasons["adder"] == ["no adder pattern matches this MaxPool node"]


def test_declines_carry_the_plugins_reason_and_strict_refuses_them(toy_plugins):
    rng = np.random.default_rng(0)
    init = {"w": rng.standard_normal((4, 2, 3, 3)).astype(np.float32)}
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], name="grouped", group=2,
                              pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c"], ["y"], name="relu")]
    model = make_model(nodes, [("x", TensorProto.FLOAT, [1, 4, 5, 5])],
                       [("y", TensorProto.FLOAT, [1, 4, 5, 5])], init)
    compiled = byoc.compile(model, plugins=["convfuse"], default_plugins=())
    reasons = compiled.plan.explanations["grouped"].reasons["convfuse"]
    assert any("no grouped convolution (group=2)" in r for r in reasons)
    with pytest.raises(ByocError, match=r"--strict: .*node 'grouped'.*group=2"):
        byoc.compile(model, plugins=["convfuse"], strict=True, default_plugins=())


def test_min_partition_size_and_pins(toy_plugins, zoo_dir):
    path = zoo_dir / "cnn.onnx"
    small = byoc.compile(path, plugins=["convfuse"], min_partition_size=3,
                         default_plugins=())
    assert {p.plugin for p in small.plan.partitions} == {"reference"}
    pinned = byoc.compile(path, plugins=["convfuse"], pins={"Conv": "reference"},
                          default_plugins=())
    assert {p.plugin for p in pinned.plan.partitions} == {"reference"}


class BrokenCodegen(ConvFuse):
    """convfuse whose code generator fails."""

    @hookimpl
    def byoc_plugin_info(self):
        info = super().byoc_plugin_info()
        return type(info)(name="brokenconv", version="1.0.0", device=info.device,
                          description="fails in codegen")

    @hookimpl
    def byoc_partition_patterns(self):
        return [make_named_conv_pattern("brokenconv.conv")]

    @hookimpl
    def byoc_codegen_partition(self, partition, lowered):
        raise RuntimeError("register allocation failed")


def make_named_conv_pattern(name):
    from byoc.partition.patterns import make_conv_pattern
    return make_conv_pattern(name, with_bias="optional", activation="optional")


def test_failing_codegen_falls_back_with_a_warning_or_fails_under_strict(zoo_dir):
    manager = default_manager()
    manager.register(BrokenCodegen())
    try:
        path = zoo_dir / "cnn.onnx"
        feeds = zoo.sample_inputs(path)
        reference = compile_reference(path).run(feeds)
        with pytest.warns(FallbackWarning, match=r"plugin 'brokenconv' could not compile "
                                                 r"partition 'p\d+_brokenconv'.*its nodes run "
                                                 r"on reference .*register al"):
            model = byoc.compile(path, plugins=["brokenconv"], default_plugins=())
        assert {p.plugin for p in model.parts} == {"reference"}
        assert_same_outputs(model.run(feeds), reference, exact=True)
        # With the host plugin cpu_llvm selected (the default), it takes the convolutions.
        with pytest.warns(FallbackWarning, match=r"its nodes run on cpu_llvm \(partition"):
            model = byoc.compile(path, plugins=["brokenconv"], default_plugins=["cpu_llvm"])
        assert [p.plugin for p in model.parts] == ["cpu_llvm"]
        assert_same_outputs(model.run(feeds), reference, exact=False)
        with pytest.raises(ByocError, match="brokenconv.*register allocation failed"):
            byoc.compile(path, plugins=["brokenconv"], strict=True, default_plugins=())
    finally:
        manager.unregister("brokenconv")


def test_artifact_round_trip_profile_and_refusals(toy_plugins, zoo_dir, tmp_path):
    path = zoo_dir / "cnn.onnx"
    feeds = zoo.sample_inputs(path)
    model = byoc.compile(path, plugins=["convfuse", "adder"], default_plugins=())
    artifact = tmp_path / "cnn.byoc"
    model.save(artifact)
    loaded = byoc.load(artifact)
    assert_same_outputs(loaded.run(feeds), model.run(feeds), exact=True)
    outputs, profile = loaded.profile(feeds)
    assert [p.plugin for p in profile] == [part.plugin for part in loaded.parts]
    assert any(p.counters.get("steps") for p in profile if p.plugin == "convfuse")
    with zipfile.ZipFile(artifact) as zf:
        manifest = yaml.safe_load(zf.read("manifest.yaml"))
    assert manifest["plugins"] == {"convfuse": "1.0.0", "reference": byoc.__version__}

    toy_plugins.unregister("convfuse")
    with pytest.raises(ArtifactError, match="needs plugin 'convfuse' \\(version 1.0.0\\)"):
        byoc.load(artifact)
    newer = ConvFuse()
    newer.version = "2.0.0"
    toy_plugins.register(newer)
    with pytest.raises(ArtifactError, match="compiled with plugin 'convfuse' 1.0.0, but "
                                            "2.0.0 is installed"):
        byoc.load(artifact)


def test_runtime_returning_a_wrong_shape_is_caught_at_the_boundary(toy_plugins, zoo_dir):
    # strict: otherwise the partition would move to the host (tests/reliability covers that)
    model = byoc.compile(zoo_dir / "cnn.onnx", plugins=["convfuse"], default_plugins=(),
                         strict=True)
    part = next(p for p in model.parts if p.plugin == "convfuse")
    part.runtime.run = lambda inputs: {n: np.zeros(1, np.float32)
                                       for n in part.signature.outputs}
    with pytest.raises(ByocError, match="plugin 'convfuse', partition .*float32\\[1\\].*says"):
        model.run(zoo.sample_inputs(zoo_dir / "cnn.onnx"))


OPS = ("Add", "Relu", "Mul", "Sub")


@st.composite
def random_models(draw):
    """A random DAG of elementwise ops over [2, 3] float tensors, some reading constants."""
    n = draw(st.integers(2, 10))
    values = ["x0", "x1"]
    nodes, init = [], {}
    for i in range(n):
        op = draw(st.sampled_from(OPS))
        a = draw(st.sampled_from(values))
        if op == "Relu":
            ins = [a]
        elif draw(st.booleans()):
            init[f"c{i}"] = np.full((2, 3), i + 1, np.float32)
            ins = [a, f"c{i}"]
        else:
            ins = [a, draw(st.sampled_from(values))]
        nodes.append(helper.make_node(op, ins, [f"v{i}"], name=f"n{i}"))
        values.append(f"v{i}")
    outputs = sorted({nodes[-1].output[0], draw(st.sampled_from(values[2:]))})
    return make_model(nodes, [(x, TensorProto.FLOAT, [2, 3]) for x in ("x0", "x1")],
                      [(o, TensorProto.FLOAT, [2, 3]) for o in outputs], init)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                 HealthCheck.function_scoped_fixture])
@given(model=random_models(), order=st.sampled_from(ORDERS), seed=st.integers(0, 2**16))
def test_random_graphs_compile_to_the_reference_result(toy_plugins, model, order, seed):
    rng = np.random.default_rng(seed)
    feeds = {x: rng.standard_normal((2, 3)).astype(np.float32) for x in ("x0", "x1")}
    compiled = byoc.compile(model, plugins=order, default_plugins=())
    compiled.plan.check_acyclic()
    names = [n.name for p in compiled.plan.partitions for n in p.nodes]
    assert sorted(names) == sorted(set(names)) == sorted(n.name for n in compiled.graph.nodes)
    assert_same_outputs(compiled.run(feeds), compile_reference(model).run(feeds), exact=True)
