"""The conformance kit (``pytest --byoc-plugin NAME``) on byoc's plugins and on broken ones."""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap

import pytest

from byoc.conformance import plugin_cases
from byoc.errors import PluginError
from byoc.partition.patterns import make_op_pattern
from byoc.plugins import PluginInfo, PluginManager, hookimpl
from byoc.plugins.api import PatternLimits


def run_kit(directory, *plugins: str) -> subprocess.CompletedProcess:
    options = [arg for name in plugins for arg in ("--byoc-plugin", name)]
    return subprocess.run([sys.executable, "-m", "pytest", *options, "-q", "-p",
                           "no:cacheprovider"], cwd=directory, capture_output=True, text=True,
                          timeout=300)


# Kit cases that pass, per plugin: cases only get added, so each floor only rises.
PASSING_FLOORS = {"cpu_llvm": 710, "vta_sim": 147, "npu_example": 206}


@pytest.mark.parametrize("plugin", PASSING_FLOORS)
def test_kit_passes_for_each_of_byocs_plugins(tmp_path, plugin):
    result = run_kit(tmp_path, plugin)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    summary = re.findall(r"(\d+) passed", result.stdout)  # the last is pytest's summary line
    passed = int(summary[-1]) if summary else 0
    assert passed >= PASSING_FLOORS[plugin], (f"{passed} kit cases pass for {plugin}; the "
                                              f"floor is {PASSING_FLOORS[plugin]}")


BROKEN_PLUGINS = '''
    import numpy as np

    from byoc.errors import PluginError
    from byoc.partition.patterns import make_op_pattern
    from byoc.plugins import Payload, PluginInfo, hookimpl
    from byoc.plugins.manager import default_manager


    class Elementwise:
        """Claims one float op and runs it with numpy, through ``compute``."""

        def __init__(self, name, op, compute):
            self.name, self.op, self.compute = name, op, compute

        @hookimpl
        def byoc_plugin_info(self):
            return PluginInfo(self.name, "0.0", "numpy", "a deliberately broken plugin")

        @hookimpl
        def byoc_partition_patterns(self):
            return [make_op_pattern(f"{self.name}.{self.op.lower()}", self.op)]

        @hookimpl
        def byoc_lower_partition(self, partition, graph, constants):
            return [n.op_type for n in partition.nodes]

        @hookimpl
        def byoc_codegen_partition(self, partition, lowered):
            return Payload(b"")

        @hookimpl
        def byoc_runtime_create(self, payload, partition, options):
            plugin = self

            class Run:
                def run(self, inputs):
                    out = next(iter(partition.outputs))
                    return {out: plugin.compute(*inputs.values())}
            return Run()


    class FailsToLower(Elementwise):
        @hookimpl
        def byoc_lower_partition(self, partition, graph, constants):
            raise PluginError("no kernel for this yet")


    def pytest_configure(config):
        manager = default_manager()
        manager.register(FailsToLower("breaks", "Relu", None), name="breaks")
        manager.register(Elementwise("off_by_one", "Add", lambda a, b: a + b + 1),
                         name="off_by_one")
'''


def test_kit_fails_a_plugin_that_cannot_lower_or_computes_wrong_results(tmp_path):
    (tmp_path / "conftest.py").write_text(textwrap.dedent(BROKEN_PLUGINS))
    result = run_kit(tmp_path, "breaks", "off_by_one")
    out = result.stdout
    assert result.returncode == 1, out
    assert "pattern 'breaks.relu', case 'Relu-base'" in out
    assert "fell back to the host" in out and "no kernel for this yet" in out
    assert "pattern 'off_by_one.add', case 'Add-base'" in out
    assert "differs from the reference interpreter" in out
    assert "FAILED byoc-conformance/breaks::breaks.relu[Relu-base]" in out


class Claims:
    def __init__(self, limits):
        self.limits = limits

    @hookimpl
    def byoc_plugin_info(self):
        return PluginInfo("claims", "0.0", "nothing", "patterns only")

    @hookimpl
    def byoc_partition_patterns(self):
        return [make_op_pattern("claims.conv", "Conv"), make_op_pattern("claims.relu", "Relu")]

    @hookimpl
    def byoc_conformance_limits(self):
        return self.limits


def cases_of(limits):
    manager = PluginManager()
    manager.register(Claims(limits))
    return plugin_cases("claims", manager)


def test_declared_values_are_built_and_left_out_probes_must_be_declined():
    cases, skipped = cases_of([PatternLimits("claims.conv", accepts={"kernel": (1, 3)}),
                               PatternLimits("claims.relu", skip="not ready")])
    assert skipped == {"claims.relu": "not ready"}
    expect = {c.name: c.expect for c in cases}
    assert expect["Conv-base"] == expect["Conv-kernel=3"] == "accept"
    assert {n for n, e in expect.items() if e == "decline"} == {
        "Conv-outside-kernel=2", "Conv-outside-kernel=5", "Conv-outside-kernel=7"}


def test_without_limits_only_the_base_case_must_be_taken():
    cases, _ = cases_of(None)
    relu = {c.name: c.expect for c in cases if c.pattern == "claims.relu"}
    assert relu["Relu-base"] == "accept"
    assert set(relu.values()) == {"accept", "either"}


@pytest.mark.parametrize("limits, message", [
    ([PatternLimits("claims.gemm")], "'claims.gemm', which is not one of its patterns"),
    ([PatternLimits("claims.conv", accepts={"colour": (1,)})], "names colour, which the kit"),
    ([PatternLimits("claims.conv"), PatternLimits("claims.conv")], "twice"),
    (["conv"], "expected a list of byoc.plugins.api.PatternLimits"),
])
def test_malformed_limits_are_refused_with_the_reason(limits, message):
    with pytest.raises(PluginError, match=message):
        cases_of(limits)


def test_a_pattern_of_a_plugins_own_op_is_refused_with_what_to_do_unless_skipped():
    """The kit has no model builder for a vendor's op: it says so instead of crashing."""
    from plugins.toy_plugins import Vendor

    manager = PluginManager()
    manager.register(Vendor())
    try:
        with pytest.raises(PluginError,
                           match="cannot build a model for pattern 'vendor.bias_gelu'"):
            plugin_cases("vendor", manager)
    finally:
        manager.unregister("vendor")  # withdraws its op from the interpreter's registry
