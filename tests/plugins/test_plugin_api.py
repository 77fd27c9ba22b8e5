"""The plugin API: hook specs, registration and validation, calling hooks, entry points."""

from __future__ import annotations

import importlib.metadata
import inspect
import sys
import textwrap

import numpy as np
import pytest

from byoc import cli
from byoc.core.ir import Graph, Node, TensorType
from byoc.core.verify import verify
from byoc.errors import ByocError, PluginError, VerificationError
from byoc.plugins import (
    Partition,
    PartitionSignature,
    Payload,
    PluginInfo,
    PluginManager,
    hookimpl,
    hookspecs,
    runtime_counters,
)
from byoc.plugins import manager as manager_module
from byoc.plugins.manager import HOOK_NAMES


class FakePattern:
    def __init__(self, name):
        self.name = name


class AddRuntime:
    def __init__(self, signature):
        self.signature = signature
        self.runs = 0

    def run(self, inputs):
        self.runs += 1
        (x,) = inputs.values()
        return {name: x + 1 for name in self.signature.outputs}

    def counters(self):
        return {"runs": self.runs}


class TinyPlugin:
    """A small plugin implementing a few hooks, taking fewer arguments than some specs."""

    @hookimpl
    def byoc_plugin_info(self):
        return PluginInfo(name="tiny", version="1.2.3", device="a test device",
                          description="adds one", preferred_layout="NHWC")

    @hookimpl
    def byoc_partition_patterns(self):
        return [FakePattern("add_one"), FakePattern("relu")]

    @hookimpl
    def byoc_partition_cost(self, pattern_name, nodes):
        return 10.0 * len(nodes) if pattern_name == "add_one" else None

    @hookimpl
    def byoc_codegen_partition(self, partition, lowered):
        return Payload(data=b"\x01" + lowered.encode(), metadata={"nodes": len(partition.nodes)})

    @hookimpl
    def byoc_runtime_create(self, payload, partition):
        return AddRuntime(partition)


def three_node_graph() -> Graph:
    f32 = np.dtype("float32")
    t = TensorType(f32, (2, 3))
    weight = np.ones((2, 3), dtype=f32)
    return Graph(
        name="g",
        nodes=[Node("Relu", ["x"], ["a"], name="relu"),
               Node("Add", ["a", "w"], ["b"], name="add"),
               Node("Neg", ["b"], ["y"], name="neg")],
        inputs=["x"], outputs=["y"],
        types={"x": t, "a": t, "b": t, "y": t, "w": t},
        constants={"w": weight},
        opsets={"": 17},
    )


# -- registration and calls ---------------------------------------------------------------


def test_register_and_call_hooks():
    pm = PluginManager()
    loaded = pm.register(TinyPlugin())
    assert loaded.name == "tiny"
    assert loaded.info.version == "1.2.3" and loaded.info.preferred_layout == "NHWC"
    assert loaded.origin == "registered in-process"
    assert pm.plugins() == [loaded] and pm.get("tiny") is loaded

    patterns = pm.call("tiny", "byoc_partition_patterns", options={})
    assert [p.name for p in patterns] == ["add_one", "relu"]
    graph = three_node_graph()
    assert pm.call("tiny", "byoc_partition_cost", pattern_name="add_one",
                   nodes=graph.nodes[:2], graph=graph, options={}) == 20.0
    assert pm.call("tiny", "byoc_partition_cost", pattern_name="relu",
                   nodes=graph.nodes[:1], graph=graph, options={}) is None
    # Not implemented: None.
    assert pm.call("tiny", "byoc_lower_partition", partition=None, graph=graph,
                   constants={}, options={}) is None

    partition = Partition("p0", "tiny", graph.nodes[:1], ["x"], ["a"], dict(graph.types))
    payload = pm.call("tiny", "byoc_codegen_partition", partition=partition, lowered="ir")
    assert payload == Payload(b"\x01ir", {"nodes": 1})
    signature = partition.signature()
    assert signature == PartitionSignature("p0", {"x": graph.types["x"]},
                                           {"a": graph.types["a"]})
    runtime = pm.call("tiny", "byoc_runtime_create", payload=payload, partition=signature,
                      options={})
    out = runtime.run({"x": np.zeros((2, 3), np.float32)})
    assert np.array_equal(out["a"], np.ones((2, 3), np.float32))
    assert runtime_counters(runtime) == {"runs": 1}
    assert runtime_counters(object()) == {}


def test_call_reaches_only_the_named_plugin():
    class Other(TinyPlugin):
        @hookimpl
        def byoc_plugin_info(self):
            return PluginInfo("other", "0.1", "another device", "")

        @hookimpl
        def byoc_partition_patterns(self):
            return [FakePattern("other_pattern")]

    pm = PluginManager()
    pm.register(TinyPlugin())
    pm.register(Other())
    def names(plugin):
        return [p.name for p in pm.call(plugin, "byoc_partition_patterns", options={})]
    assert names("tiny") == ["add_one", "relu"]
    assert names("other") == ["other_pattern"]
    assert [p.name for p in pm.plugins()] == ["tiny", "other"]


def test_module_plugin_and_explicit_name():
    import types

    module = types.ModuleType("tiny_module_plugin")
    module.byoc_plugin_info = hookimpl(lambda: PluginInfo("m", "1", "dev", ""))
    pm = PluginManager()
    loaded = pm.register(module, name="custom")
    assert loaded.name == "custom" and loaded.info.name == "m"
    assert pm.call("custom", "byoc_partition_patterns", options={}) is None


def test_unknown_plugin_lists_installed():
    pm = PluginManager()
    pm.register(TinyPlugin())
    with pytest.raises(PluginError, match=r"no plugin named 'npu'.*installed plugins: tiny"):
        pm.get("npu")
    with pytest.raises(PluginError, match="no plugin named 'npu'"):
        pm.call("npu", "byoc_plugin_info")


def test_call_checks_keyword_arguments():
    pm = PluginManager()
    pm.register(TinyPlugin())
    with pytest.raises(TypeError, match="pattern_name"):
        pm.call("tiny", "byoc_partition_cost", pattern_name="add_one")
    with pytest.raises(PluginError, match="byoc_partition_patterns"):
        pm.call("tiny", "byoc_partition_paterns")


def test_plugin_exception_names_plugin_and_hook():
    class Broken(TinyPlugin):
        @hookimpl
        def byoc_partition_patterns(self):
            raise ZeroDivisionError("oops")

    pm = PluginManager()
    pm.register(Broken())
    with pytest.raises(PluginError, match=r"'tiny' failed in byoc_partition_patterns.*oops"):
        pm.call("tiny", "byoc_partition_patterns", options={})


def test_duplicate_names_and_objects_are_refused():
    pm = PluginManager()
    plugin = TinyPlugin()
    pm.register(plugin)
    with pytest.raises(PluginError, match="already registered as 'tiny'"):
        pm.register(plugin)
    with pytest.raises(PluginError, match="two plugins are named 'tiny'"):
        pm.register(TinyPlugin())
    assert len(pm.plugins()) == 1


# -- validation ---------------------------------------------------------------------------


def test_misspelt_hook_is_refused_with_suggestion():
    class Misspelt(TinyPlugin):
        @hookimpl
        def byoc_partition_paterns(self):
            return []

    pm = PluginManager()
    with pytest.raises(PluginError) as info:
        pm.register(Misspelt(), name="misspelt")
    message = str(info.value)
    assert "'misspelt'" in message
    assert "byoc_partition_paterns" in message
    assert "did you mean 'byoc_partition_patterns'" in message
    assert pm.plugins() == []


def test_wrong_signature_names_expected_signature():
    class ExtraArgument(TinyPlugin):
        @hookimpl
        def byoc_partition_cost(self, pattern_name, nodes, graph, budget):
            return 1.0

    pm = PluginManager()
    with pytest.raises(PluginError) as info:
        pm.register(ExtraArgument(), name="extra")
    message = str(info.value)
    assert "'extra'" in message and "byoc_partition_cost" in message
    assert "budget" in message
    assert ("byoc_partition_cost(pattern_name: str, nodes: list[Node], graph: Graph, "
            "options: dict[str, Any]) -> float | None") in message
    assert pm.plugins() == []
    # The failed plugin left nothing behind: a good one registers under the same name.
    assert pm.register(TinyPlugin(), name="extra").name == "extra"


def test_plugin_without_info_is_refused():
    class NoInfo:
        @hookimpl
        def byoc_partition_patterns(self):
            return []

    with pytest.raises(PluginError, match=r"'NoInfo' does not implement byoc_plugin_info.*"
                                          r"byoc_plugin_info\(\) -> PluginInfo"):
        PluginManager().register(NoInfo())


def test_info_must_be_plugin_info():
    class BadInfo:
        @hookimpl
        def byoc_plugin_info(self):
            return {"name": "bad"}

    pm = PluginManager()
    with pytest.raises(PluginError, match="returned dict, expected a byoc.plugins.api.PluginInfo"):
        pm.register(BadInfo())
    assert pm.plugins() == []


def test_unmarked_hook_is_refused():
    class Unmarked(TinyPlugin):
        def byoc_partition_patterns(self):
            return []

    with pytest.raises(PluginError, match="byoc_partition_patterns' without the "
                                          "@byoc.plugins.hookimpl marker"):
        PluginManager().register(Unmarked())


def test_plugin_error_is_a_byoc_error():
    assert issubclass(PluginError, ByocError)


# -- hook specs ----------------------------------------------------------------------------


def test_every_hook_is_documented():
    assert set(HOOK_NAMES) == {
        "byoc_plugin_info", "byoc_plugin_options", "byoc_import_custom_ops",
        "byoc_partition_patterns",
        "byoc_partition_cost", "byoc_estimate_match", "byoc_estimate_transfer",
        "byoc_lower_partition", "byoc_codegen_partition",
        "byoc_runtime_create", "byoc_hardware_figures", "byoc_cli_commands",
        "byoc_conformance_limits"}
    for name in HOOK_NAMES:
        spec = getattr(hookspecs, name)
        doc = inspect.getdoc(spec)
        assert doc, name
        assert ":returns:" in doc, f"{name} does not document its return value"
        assert "firstresult" in doc, name
        for param in inspect.signature(spec).parameters:
            assert f":param {param}:" in doc, f"{name} does not document {param}"
        assert inspect.signature(spec).return_annotation is not inspect.Signature.empty, name
        assert spec.byoc_spec["firstresult"] is True


# -- Partition ------------------------------------------------------------------------------


def test_partition_subgraph_is_a_verified_graph():
    graph = three_node_graph()
    verify(graph)
    partition = Partition("p0", "tiny", graph.nodes[1:], inputs=["a"], outputs=["y"],
                          types=dict(graph.types))
    sub = partition.subgraph(graph.constants)
    verify(sub)
    assert [n.name for n in sub.nodes] == ["add", "neg"]
    assert sub.inputs == ["a"] and sub.outputs == ["y"]
    assert set(sub.constants) == {"w"}
    assert set(sub.types) == {"a", "w", "b", "y"}
    # Nodes are copies: rewriting the subgraph leaves the model's graph alone.
    sub.nodes[0].inputs[0] = "changed"
    assert graph.nodes[1].inputs == ["a", "w"]


def test_partition_subgraph_reports_undefined_values():
    graph = three_node_graph()
    partition = Partition("p0", "tiny", graph.nodes[1:], inputs=["a"], outputs=["y"],
                          types=dict(graph.types))
    with pytest.raises(VerificationError, match=r"partition 'p0'.*'add'.*reads 'w'"):
        partition.subgraph({})


def test_payload_metadata_must_be_plain_data():
    assert Payload(bytearray(b"ab"), {"a": [1, 2.0, "x", None, True]}).data == b"ab"
    with pytest.raises(PluginError, match=r"metadata.shape\[0\] holds a int64"):
        Payload(b"", {"shape": [np.int64(3)]})
    with pytest.raises(PluginError, match="must be bytes"):
        Payload("text", {})


# -- entry points and the CLI ---------------------------------------------------------------


@pytest.fixture
def fake_entry_point(tmp_path, monkeypatch):
    module_name = "byoc_test_fake_plugin"
    (tmp_path / f"{module_name}.py").write_text(textwrap.dedent("""
        from byoc.plugins import PluginInfo, hookimpl

        class Pattern:
            def __init__(self, name):
                self.name = name

        @hookimpl
        def byoc_plugin_info():
            return PluginInfo(name="fake", version="0.9", device="fake accelerator",
                              description="a plugin found through an entry point")

        @hookimpl
        def byoc_partition_patterns():
            return [Pattern("conv_relu"), "unnamed"]
    """))
    monkeypatch.syspath_prepend(str(tmp_path))
    ep = importlib.metadata.EntryPoint("fake", value=module_name, group="byoc.plugins")
    calls = []

    def fake_entry_points(**kwargs):
        calls.append(kwargs)
        return [ep] if kwargs.get("group") == "byoc.plugins" else []

    monkeypatch.setattr(manager_module, "entry_points", fake_entry_points)
    yield calls
    sys.modules.pop(module_name, None)


def test_entry_point_discovery(fake_entry_point):
    pm = PluginManager()
    loaded = pm.load_entry_points()
    assert fake_entry_point == [{"group": "byoc.plugins"}]
    assert [p.name for p in loaded] == ["fake"]
    assert loaded[0].info.device == "fake accelerator"
    assert loaded[0].origin == "entry point fake = byoc_test_fake_plugin"
    assert pm.load_entry_points() == []  # already loaded: nothing new
    assert pm.call("fake", "byoc_partition_patterns", options={})[1] == "unnamed"


def test_broken_entry_point_is_a_plugin_error(monkeypatch):
    ep = importlib.metadata.EntryPoint("broken", value="byoc_no_such_module_xyz",
                                       group="byoc.plugins")
    monkeypatch.setattr(manager_module, "entry_points", lambda **kwargs: [ep])
    with pytest.raises(PluginError, match=r"plugin 'broken'.*could not be loaded.*"
                                          r"ModuleNotFoundError"):
        PluginManager().load_entry_points()


def test_cli_plugins_lists_discovered_plugins(fake_entry_point, capsys):
    assert cli.main(["plugins"]) == 0
    out = capsys.readouterr().out
    assert "fake 0.9 (from entry point fake = byoc_test_fake_plugin)" in out
    assert "fake accelerator" in out
    assert "conv_relu, 'unnamed'" in out


def test_cli_plugins_without_plugins(monkeypatch, capsys):
    monkeypatch.setattr(manager_module, "entry_points", lambda **kwargs: [])
    assert cli.main(["plugins"]) == 0
    assert "no plugins installed" in capsys.readouterr().out
