"""The conformance kit tests what a pattern claims: composites are built whole, from the
pattern's own matcher tree, and a plugin that computes any op of one wrong fails the kit."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from byoc.conformance import ConformanceFailure, NotApplicable, plugin_cases, run_case
from byoc.conformance.families import Unbuildable
from byoc.conformance.structure import pick, realizations
from byoc.core.ir import Node
from byoc.partition.int8_patterns import make_qdq_pattern
from byoc.partition.patterns import (
    Decline,
    const,
    make_conv_pattern,
    make_elementwise_pattern,
    op,
    optional,
    wildcard,
)
from byoc.plugins import PluginInfo, PluginManager, hookimpl
from byoc.plugins import reference as reference_plugin
from byoc.plugins.api import PatternLimits
from byoc.plugins.graph_payload import graph_from_payload, graph_to_payload
from byoc.plugins.reference import InterpreterRuntime


class Fused:
    """A plugin that runs its patterns' partitions on the reference interpreter, except that
    ``broken`` maps an op type to the op it computes instead (a wrong fused op)."""

    def __init__(self, name, patterns, limits=(), broken=None):
        self.name, self.patterns, self.limits = name, patterns, list(limits)
        self.broken = broken or {}

    @hookimpl
    def byoc_plugin_info(self):
        return PluginInfo(self.name, "0.0", "numpy", "fuses what its patterns claim")

    @hookimpl
    def byoc_partition_patterns(self):
        return self.patterns

    @hookimpl
    def byoc_conformance_limits(self):
        return self.limits

    @hookimpl
    def byoc_lower_partition(self, partition, graph, constants):
        subgraph = partition.subgraph(constants)
        for node in subgraph.nodes:
            if node.op_type in self.broken:
                replacement = self.broken[node.op_type]
                subgraph.nodes[subgraph.nodes.index(node)] = Node(
                    replacement, node.inputs[:1], node.outputs, {}, node.name)
        return subgraph

    @hookimpl
    def byoc_codegen_partition(self, partition, lowered):
        return graph_to_payload(lowered)

    @hookimpl
    def byoc_runtime_create(self, payload, partition, options):
        return InterpreterRuntime(graph_from_payload(payload))


def manager_with(plugin) -> PluginManager:
    manager = PluginManager()
    manager.register(reference_plugin)
    manager.register(plugin, name=plugin.name)
    return manager


def run_all(plugin) -> tuple[list[str], list[str]]:
    """(labels of the cases that passed, failure messages)."""
    manager = manager_with(plugin)
    cases, _ = plugin_cases(plugin.name, manager)
    passed, failures = [], []
    for case in cases:
        try:
            built = case.build()
        except Unbuildable:  # no valid model for these values; the kit leaves it out too
            continue
        try:
            run_case(case, built, manager=manager)
        except ConformanceFailure as exc:
            failures.append(str(exc))
        except NotApplicable:
            continue
        else:
            passed.append(case.label)
    return passed, failures


CONV_ADD_RELU = make_conv_pattern("fused.conv_add_relu", with_bias=True, activation="relu")
ADD_RELU = make_elementwise_pattern("fused.add_relu", ("Add",), activation="relu")


def test_a_composite_is_built_whole_and_a_correct_plugin_passes():
    passed, failures = run_all(Fused("fused", [CONV_ADD_RELU, ADD_RELU]))
    assert failures == []
    assert "fused.conv_add_relu[Conv-base]" in passed
    # Add -> Relu is rooted at the Relu; its cases are built around the Add, so the pattern
    # matches them whole (a lone Relu, as the kit once built, is rightly declined).
    assert "fused.add_relu[Add-base]" in passed
    manager = manager_with(Fused("fused", [CONV_ADD_RELU]))
    case = next(c for c in plugin_cases("fused", manager)[0] if c.name == "Conv-base")
    built = case.build()
    assert [n.op_type for n in built.model.graph.node] == ["Conv", "Add", "Relu"]
    assert built.composite == [n.name for n in built.model.graph.node]


def test_a_fused_relu_computed_wrong_fails_naming_pattern_case_op_and_element():
    _, failures = run_all(Fused("fused", [CONV_ADD_RELU], broken={"Relu": "Identity"}))
    assert failures, "the kit passed a plugin whose fused Relu is the identity"
    message = failures[0]
    assert "pattern 'fused.conv_add_relu'" in message and "case 'Conv-" in message
    assert "first at (" in message and "differs from the reference interpreter" in message
    assert "reference's value of Add" in message and "Relu 'relu_0'" in message


def test_a_wrong_optional_op_is_named_by_the_case_without_it():
    pattern = make_conv_pattern("fused.conv_act", with_bias="optional", activation="optional")
    _, failures = run_all(Fused("fused", [pattern], broken={"Clip": "Relu"}))
    clip_failures = [f for f in failures if "activation=Clip" in f]
    assert clip_failures and len(clip_failures) == len(failures)
    assert all("the wrong op is the Clip (activation)" in f or
               "what comes after it (Clip 'clip_0') is skipped" in f for f in clip_failures)


def test_every_optional_part_is_built_present_and_absent():
    pattern = make_qdq_pattern("fused.qdq", ("Conv",))
    found = realizations(pattern.root)
    base, variations = pick(found)
    chosen = [base, *variations]
    for name in ("activation", "bias", "input_dq.x_zero_point", "output_zero_point"):
        values = {r.params[name] for r in chosen if name in r.params}
        assert len(values) >= 2, (name, values)
    assert {r.params["activation"] for r in chosen} == {None, "Relu", "Clip"}
    assert base.params["bias"] is True and base.params["activation"] == "Clip"


def test_limits_may_restrict_the_structure_and_the_left_out_shapes_must_be_declined():
    pattern = make_qdq_pattern("fused.qdq", ("Conv",))
    plugin = Fused("fused", [pattern], limits=[PatternLimits(
        "fused.qdq", accepts={"activation": (None, "Relu"), "group": (1,), "dilation": (1,)})])
    cases, _ = plugin_cases("fused", manager_with(plugin))
    expect = {c.name: c.expect for c in cases}
    clip = [name for name in expect if "activation=Clip" in name]
    assert clip and all(expect[name] == "decline" for name in clip)
    assert expect["Conv-base"] == "accept"


def test_a_limit_naming_nothing_the_structure_or_builders_know_is_refused():
    plugin = Fused("fused", [CONV_ADD_RELU],
                   limits=[PatternLimits("fused.conv_add_relu", accepts={"actvation": (None,)})])
    with pytest.raises(Exception, match="actvation"):
        plugin_cases("fused", manager_with(plugin))


# -- the shipped plugins: an op inside each of their composites, broken, fails the kit -------


def _activation_ignored(graph, activation, y_scale, y_zero):
    info = np.iinfo(y_zero.dtype)
    return int(info.min), int(info.max)


def _ignore_fused_activations(monkeypatch, module) -> None:
    """Make a plugin module see every quantized layer as if it had no Relu or Clip: the
    layers' output ranges widened to their dtype's, the activation range helper ignoring
    the activation. The reference keeps computing them right."""
    monkeypatch.setenv("BYOC_LOWERING_CACHE", "0")  # cpu_llvm: lower with the broken code
    if hasattr(module, "activation_range"):
        monkeypatch.setattr(module, "activation_range", _activation_ignored)
    if hasattr(module, "qdq_add"):  # vta_sim's Add: its spec carries the output range
        real_add = module.qdq_add

        def add_widened(graph, group):
            spec = real_add(graph, group)
            if isinstance(spec, str):
                return spec
            info = np.iinfo(spec.y_dtype)
            return dataclasses.replace(spec, out_min=int(info.min), out_max=int(info.max))
        monkeypatch.setattr(module, "qdq_add", add_widened)
    if hasattr(module, "integer_plans"):
        real = module.integer_plans

        def widened(graph):
            plans = {}
            for name, plan in real(graph).items():
                info = np.iinfo(plan.layer.y_dtype)
                layer = dataclasses.replace(plan.layer, out_min=int(info.min),
                                            out_max=int(info.max))
                plans[name] = dataclasses.replace(plan, layer=layer)
            return plans
        monkeypatch.setattr(module, "integer_plans", widened)


SHIPPED = [("cpu_llvm", ("byoc_cpu_llvm.qdq_groups",),
            ("cpu_llvm.qdq_conv", "cpu_llvm.qdq_matmul")),
           ("vta_sim", ("byoc_vta_sim.plugin",),
            ("vta_sim.qdq_conv", "vta_sim.qdq_matmul", "vta_sim.qdq_add")),
           ("npu_example", ("byoc_npu_example.layers",),
            ("npu_example.qdq_conv2d", "npu_example.qdq_depthwise_conv2d",
             "npu_example.qdq_fully_connected", "npu_example.qdq_pool", "npu_example.qdq_add"))]


def _size(case) -> int:
    try:
        return sum(a.size for a in case.build().inputs.values())
    except Unbuildable:
        return 0


@pytest.mark.parametrize("plugin,modules,patterns", SHIPPED)
def test_a_shipped_plugin_with_its_fused_activation_broken_fails_on_every_composite(
        monkeypatch, plugin, modules, patterns):
    import importlib

    from byoc.plugins.manager import default_manager

    loaded = [importlib.import_module(name) for name in modules]
    manager = default_manager()
    cases, _ = plugin_cases(plugin, manager)
    chosen = {}
    for pattern in patterns:
        # A case of the pattern with a fused Relu (else Clip) that the plugin takes and
        # computes right as shipped; the larger, the surer some results are negative.
        candidates = sorted((c for c in cases if c.pattern == pattern and c.expect != "decline"
                             and c.values.get("activation") in ("Relu", "Clip")),
                            key=lambda c: (c.values["activation"] != "Relu", -_size(c)))
        chosen[pattern] = next(c for c in candidates
                               if run_case(c, manager=manager) == "taken")
    for module in loaded:
        _ignore_fused_activations(monkeypatch, module)
    for pattern, case in chosen.items():
        with pytest.raises(ConformanceFailure) as failure:
            run_case(case, manager=manager)
        message = str(failure.value)
        assert f"pattern {pattern!r}" in message, message
        if "the pattern did not take a case inside its declared limits" in message:
            continue   # the broken plugin declines its own layer: a failure that says why
        activation = case.values["activation"]
        assert "first at (" in message, message
        assert f"the wrong op is the {activation} (activation)" in message, message


def test_cpu_llvm_with_a_wrong_requantization_fails_the_kit(monkeypatch):
    qdq_groups = pytest.importorskip("byoc_cpu_llvm.qdq_groups")
    from byoc.plugins.manager import default_manager

    real = qdq_groups.integer_plans

    def multiplier_off(graph):
        return {name: dataclasses.replace(plan, layer=dataclasses.replace(
            plan.layer, multiplier=np.float32(1.25) * plan.layer.multiplier))
            for name, plan in real(graph).items()}

    manager = default_manager()
    cases, _ = plugin_cases("cpu_llvm", manager)
    base = next(c for c in cases if c.label == "cpu_llvm.qdq_conv[Conv-base]")
    run_case(base, manager=manager)        # right as shipped
    monkeypatch.setattr(qdq_groups, "integer_plans", multiplier_off)
    monkeypatch.setenv("BYOC_LOWERING_CACHE", "0")  # lower with the broken code
    with pytest.raises(ConformanceFailure, match="differs from the reference") as failure:
        run_case(base, manager=manager)
    assert "the error is in the composite's fixed ops" in str(failure.value)


def test_optional_leaves_and_constants_follow_the_pattern():
    pattern = optional(op("Relu", op("Mul", wildcard(), const(label="scale"), label="op"),
                          label="activation"))
    found = realizations(pattern)
    assert {r.describe() for r in found} == {"Relu(Mul(input, const))", "Mul(input, const)"}


@pytest.mark.parametrize("phrases,passes", [(("cannot reproduce",), True),
                                            (("some other refusal",), False)])
def test_a_decline_inside_the_limits_passes_only_when_the_limits_name_it(phrases, passes):
    def refuses(match, graph):
        return Decline("the scales give ratios the hardware cannot reproduce")

    pattern = make_conv_pattern("fused.conv_relu", activation="relu", check=refuses)
    limits = PatternLimits("fused.conv_relu", accepts={"group": (1,)}, known_declines=phrases)
    passed, failures = run_all(Fused("fused", [pattern], limits=[limits]))
    if passes:
        assert failures == [] and passed
    else:
        assert failures and all("did not take a case inside its declared limits" in f
                                and "cannot reproduce" in f for f in failures)
