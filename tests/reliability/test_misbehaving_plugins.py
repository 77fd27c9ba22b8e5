"""A plugin that breaks its contract, one fault at a time, never takes byoc down with it.

``Faulty`` claims the model's Add and misbehaves in exactly one way, chosen by ``fault``: in
its pattern check, its lowering, its code generator, its runtime factory or its runtime. By
default byoc names the plugin (and the partition or pattern), warns with a FallbackWarning and
runs that work on the host, with results equal to the reference; under strict the same fault
is an error. A loaded artifact has no graph to recompile from, so a runtime fault there is an
ExecutionError naming the plugin and the partition.
"""

from __future__ import annotations

import re
import warnings

import numpy as np
import onnx
import pytest
from conftest import make_model
from onnx import TensorProto, helper
from plugins.toy_plugins import Adder

import byoc
from byoc.errors import ArtifactError, ByocError, ExecutionError, PluginError
from byoc.partition.patterns import Accept, make_op_pattern
from byoc.pipeline import FallbackWarning
from byoc.plugins import Payload, PluginInfo, hookimpl
from byoc.plugins.manager import default_manager
from byoc.testing import compile_reference

PLUGIN = "faulty"
PARTITION = r"p\d+_faulty"


class Boom(RuntimeError):
    """What the faulty plugin raises."""


class Faulty:
    """Claims Add; misbehaves as ``fault`` says (None: behaves)."""

    def __init__(self) -> None:
        self.fault: str | None = None
        self.runs = 0

    @hookimpl
    def byoc_plugin_info(self):
        return PluginInfo(name=PLUGIN, version="1.0.0", device="a device with a fault",
                          description="misbehaves on purpose")

    @hookimpl
    def byoc_partition_patterns(self):
        def check(match, graph):
            if self.fault == "check_raises":
                raise Boom("the check fell over")
            if self.fault == "check_returns_true":
                return True
            return Accept()
        if self.fault == "patterns_raises":
            raise Boom("no pattern table")
        if self.fault == "patterns_returns_garbage":
            return ["Add", 42]
        return [make_op_pattern("faulty.add", "Add", check=check)]

    @hookimpl
    def byoc_partition_cost(self, pattern_name, nodes, graph):
        if self.fault == "cost_raises":
            raise Boom("no cost model")
        if self.fault == "cost_returns_nan":
            return float("nan")
        return None

    @hookimpl
    def byoc_lower_partition(self, partition, graph, constants):
        if self.fault == "lower_raises":
            raise Boom("lowering fell over")
        if self.fault == "lower_returns_none":
            return None
        return [node.present_inputs for node in partition.nodes]

    @hookimpl
    def byoc_codegen_partition(self, partition, lowered):
        if self.fault == "codegen_raises":
            raise Boom("codegen fell over")
        if self.fault == "codegen_returns_bytes":
            return b"raw bytes, not a Payload"
        return Payload(b"add", {"adds": len(lowered)})

    @hookimpl
    def byoc_runtime_create(self, payload, partition):
        if self.fault == "runtime_create_raises":
            raise Boom("no device")
        if self.fault == "runtime_create_returns_none":
            return None
        if self.fault == "runtime_without_run":
            return object()
        return FaultyRuntime(self, partition)


class FaultyRuntime:
    def __init__(self, plugin: Faulty, signature) -> None:
        self.plugin, self.signature = plugin, signature

    def run(self, inputs):
        plugin = self.plugin
        plugin.runs += 1
        (out, expected), = self.signature.outputs.items()
        a, b = inputs.values()
        good = {out: (a + b).astype(expected.dtype)}
        fault = plugin.fault
        if fault == "run_raises":
            raise Boom("the device hung")
        if fault == "run_raises_byoc_error":
            raise ExecutionError("the device reported a parity error")
        if fault == "run_fails_on_second_call" and plugin.runs >= 2:
            raise Boom("the device hung the second time")
        if fault == "run_returns_list":
            return list(good.values())
        if fault == "run_misses_output":
            return {}
        if fault == "run_wrong_shape":
            return {out: np.zeros((1,), expected.dtype)}
        if fault == "run_wrong_dtype":
            return {out: good[out].astype(np.float64)}
        if fault == "run_extra_names":
            return {**good, "junk": np.zeros(1), "more junk": None}
        if fault == "run_returns_text":
            return {out: "not an array"}
        return good


COMPILE_FAULTS = ["check_raises", "check_returns_true", "patterns_raises",
                  "patterns_returns_garbage", "lower_raises", "lower_returns_none",
                  "codegen_raises", "codegen_returns_bytes", "runtime_create_raises",
                  "runtime_create_returns_none", "runtime_without_run"]
RUN_FAULTS = ["run_raises", "run_raises_byoc_error", "run_fails_on_second_call",
              "run_returns_list", "run_misses_output", "run_wrong_shape", "run_wrong_dtype",
              "run_extra_names", "run_returns_text"]
# What each fault's message must mention besides the plugin.
SAYS = {"check_raises": r"faulty\.add.*Boom: the check fell over",
        "check_returns_true": r"faulty\.add.*returned True instead of Accept\(\)",
        "patterns_raises": r"claims nothing: byoc_partition_patterns failed .*Boom",
        "patterns_returns_garbage": r"returned \['Add', 42\], expected a list of .*Pattern",
        "cost_raises": r"pattern 'faulty\.add': its cost is taken as unknown .*Boom",
        "cost_returns_nan": r"pattern 'faulty\.add': its cost is taken as unknown .*nan",
        "lower_raises": "byoc_lower_partition: Boom", "lower_returns_none": "returned nothing",
        "codegen_raises": "byoc_codegen_partition: Boom", "codegen_returns_bytes": "Payload",
        "runtime_create_raises": "byoc_runtime_create: Boom",
        "runtime_create_returns_none": "run\\(\\) method",
        "runtime_without_run": "run\\(\\) method", "run_raises": "Boom: the device hung",
        "run_raises_byoc_error": "parity error", "run_fails_on_second_call": "second time",
        "run_returns_list": "returned list", "run_misses_output": "did not return output",
        "run_wrong_shape": r"float32\[1\]", "run_wrong_dtype": "float64",
        "run_extra_names": "does not define: junk, more junk",
        "run_returns_text": "output 's' is str"}


COST_FAULTS = ["cost_raises", "cost_returns_nan"]


def test_there_are_at_least_fifteen_fault_kinds():
    assert len(set(COMPILE_FAULTS) | set(RUN_FAULTS) | set(COST_FAULTS)) == len(SAYS) >= 15


@pytest.fixture
def faulty():
    manager = default_manager()
    plugin = Faulty()
    manager.register(plugin)
    yield plugin
    manager.unregister(PLUGIN)


@pytest.fixture
def model():
    """(a + b) -> Relu -> y, with a, b float32[2, 3]: Faulty claims the Add."""
    nodes = [helper.make_node("Add", ["a", "b"], ["s"], name="add"),
             helper.make_node("Relu", ["s"], ["y"], name="relu")]
    return make_model(nodes, [("a", TensorProto.FLOAT, [2, 3]), ("b", TensorProto.FLOAT, [2, 3])],
                      [("y", TensorProto.FLOAT, [2, 3])])


@pytest.fixture
def feeds():
    rng = np.random.default_rng(0)
    return {name: rng.standard_normal((2, 3)).astype(np.float32) for name in "ab"}


def compile_faulty(model, strict=False):
    return byoc.compile(model, plugins=[PLUGIN], default_plugins=(), strict=strict)


def fallback_messages(caught) -> list[str]:
    return [str(w.message) for w in caught if issubclass(w.category, FallbackWarning)]


def says(fault: str, message: str) -> bool:
    return (f"plugin {PLUGIN!r}" in message and re.search(SAYS[fault], message) is not None)


def compile_with_fault(faulty, model, fault):
    """Compile with ``fault`` planted; the compiled model and its FallbackWarning messages."""
    faulty.fault = fault
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        compiled = compile_faulty(model)
    return compiled, fallback_messages(caught)


@pytest.mark.parametrize("fault", COMPILE_FAULTS)
def test_a_compile_time_fault_falls_back_to_the_host(fault, faulty, model, feeds):
    compiled, messages = compile_with_fault(faulty, model, fault)
    assert len(messages) == 1 and says(fault, messages[0]), messages
    assert all(part.plugin != PLUGIN for part in compiled.parts)
    assert compiled.fallbacks == messages
    np.testing.assert_array_equal(compiled.run(feeds)["y"],
                                  compile_reference(model).run(feeds)["y"])


@pytest.mark.parametrize("fault", COMPILE_FAULTS)
def test_a_compile_time_fault_is_an_error_under_strict(fault, faulty, model):
    faulty.fault = fault
    with pytest.raises(ByocError) as failed:
        compile_faulty(model, strict=True)
    assert says(fault, str(failed.value)), str(failed.value)


def test_a_raising_check_is_a_decline_the_plan_explains(faulty, model):
    faulty.fault = "check_raises"
    with pytest.warns(FallbackWarning):
        compiled = compile_faulty(model)
    explanation = compiled.plan.explanations["add"]
    assert explanation.plugin == "reference"
    (reason,) = explanation.reasons[PLUGIN]
    assert reason.startswith("faulty.add: declined because plugin 'faulty' failed: the check "
                             "raised Boom: the check fell over")
    assert compiled.plan.check_failures == [
        "plugin 'faulty', pattern 'faulty.add', node 'add' (ai.onnx::Add): the check raised "
        "Boom: the check fell over"]
    with pytest.raises(PluginError, match="--strict: 1 plugin fault.* while partitioning"):
        compile_faulty(model, strict=True)


@pytest.mark.parametrize("fault", RUN_FAULTS)
def test_a_run_time_fault_moves_the_partition_to_the_host_once(fault, faulty, model, feeds):
    compiled = compile_faulty(model)
    assert any(part.plugin == PLUGIN for part in compiled.parts)
    faulty.fault = fault
    reference = compile_reference(model).run(feeds)["y"]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        first = compiled.run(feeds)["y"]
        runs_after_fault = faulty.runs
        second = compiled.run(feeds)["y"]
    if fault == "run_fails_on_second_call":
        runs_after_fault = faulty.runs  # it fails on the second run, then stays on the host
    np.testing.assert_array_equal(first, reference)
    np.testing.assert_array_equal(second, reference)
    messages = fallback_messages(caught)
    assert len(messages) == 1, messages
    assert says(fault, messages[0]) and "runs on the host (reference)" in messages[0]
    assert all(part.plugin != PLUGIN for part in compiled.parts)
    compiled.run(feeds)
    assert faulty.runs == runs_after_fault, "the faulty runtime ran again after the fallback"
    assert compiled.fallbacks == messages


@pytest.mark.parametrize("fault", RUN_FAULTS)
def test_a_run_time_fault_is_an_error_under_strict(fault, faulty, model, feeds):
    compiled = compile_faulty(model, strict=True)
    assert compiled.strict
    faulty.fault = fault
    with pytest.raises(ExecutionError) as failed:
        compiled.run(feeds)
        compiled.run(feeds)
    assert says(fault, str(failed.value)), str(failed.value)
    assert any(part.plugin == PLUGIN for part in compiled.parts)


@pytest.mark.parametrize("fault", RUN_FAULTS)
def test_a_run_time_fault_in_a_loaded_artifact_names_plugin_and_partition(
        fault, faulty, model, feeds, tmp_path):
    path = tmp_path / "m.byoc"
    compile_faulty(model).save(path)
    loaded = byoc.load(path)
    faulty.fault = fault
    with pytest.raises(ExecutionError, match=PARTITION) as failed:
        loaded.run(feeds)
        loaded.run(feeds)
    assert says(fault, str(failed.value)), str(failed.value)


@pytest.mark.parametrize("fault", ["runtime_create_raises", "runtime_without_run"])
def test_a_runtime_factory_fault_on_load_names_plugin_and_partition(fault, faulty, model,
                                                                    tmp_path):
    path = tmp_path / "m.byoc"
    compile_faulty(model).save(path)
    faulty.fault = fault
    with pytest.raises(ArtifactError, match=f"plugin 'faulty' \\(partition '{PARTITION}'\\)"):
        byoc.load(path)


@pytest.fixture
def rival():
    manager = default_manager()
    name = manager.register(Adder()).name
    yield name
    manager.unregister(name)


@pytest.mark.parametrize("order", [[PLUGIN, "adder"], ["adder", PLUGIN]])
def test_overlapping_claims_are_settled_by_priority_and_explained(order, faulty, rival, model,
                                                                  feeds):
    compiled = byoc.compile(model, plugins=order, default_plugins=())
    winner, loser = order
    explanation = compiled.plan.explanations["add"]
    assert explanation.plugin == winner
    assert explanation.reasons[loser] == [
        f"overlap: taken by {winner}.add (rule: priority)"]
    np.testing.assert_array_equal(compiled.run(feeds)["y"],
                                  compile_reference(model).run(feeds)["y"])


def test_cli_run_of_an_artifact_whose_runtime_fails_prints_one_error(faulty, model, tmp_path,
                                                                    capsys):
    from byoc.cli import main

    path = tmp_path / "m.byoc"
    compile_faulty(model).save(path)
    faulty.fault = "run_raises"
    assert main(["run", str(path)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("byoc: error: ") and err.count("byoc: error:") == 1
    assert "plugin 'faulty'" in err and "p0_faulty" in err and "Traceback" not in err


@pytest.mark.parametrize("fault", COST_FAULTS)
def test_a_broken_cost_hook_is_an_unknown_cost(fault, faulty, model, feeds):
    """The partitioner does without the cost (the plugin still runs what it claims), with
    one warning naming plugin and pattern; under strict it is an error."""
    compiled, messages = compile_with_fault(faulty, model, fault)
    assert len(messages) == 1 and says(fault, messages[0]), messages
    assert compiled.plan.patterns["add"] == "faulty.add"
    assert PLUGIN in [part.plugin for part in compiled.parts]
    np.testing.assert_array_equal(compiled.run(feeds)["y"],
                                  compile_reference(model).run(feeds)["y"])
    with pytest.raises(PluginError) as failed:
        compile_faulty(model, strict=True)
    assert says(fault, str(failed.value)), str(failed.value)


# A CLI run calls the runtime once, so "run_fails_on_second_call" has nothing to show there.
@pytest.mark.parametrize("fault", COMPILE_FAULTS + COST_FAULTS +
                         [f for f in RUN_FAULTS if f != "run_fails_on_second_call"])
def test_cli_names_every_fault_without_a_traceback(fault, faulty, model, tmp_path, capsys):
    """``byoc run model.onnx --plugins faulty``: the run finishes on the host with a warning
    naming the plugin; with --strict it is one ``byoc: error:`` paragraph and exit 1."""
    from byoc.cli import main

    path = tmp_path / "m.onnx"
    onnx.save(model, path)
    faulty.fault = fault
    assert main(["run", str(path), "--plugins", PLUGIN]) == 0
    err = capsys.readouterr().err
    assert "Traceback" not in err and says(fault, " ".join(err.split())), err  # unwrapped
    assert main(["run", str(path), "--plugins", PLUGIN, "--strict"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("byoc: error: ") and err.count("byoc: error:") == 1, err
    assert "Traceback" not in err and says(fault, " ".join(err.split())), err
