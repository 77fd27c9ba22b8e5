"""A partition its accelerator plugin cannot compile goes to cpu_llvm, not to the reference.

``flaky`` is a toy accelerator claiming Add, Mul and Hardmax (an op cpu_llvm has no kernel
for). Its code generator fails for every partition holding a node named ``bad_*``, and its
runtime can be told to fail. The failed partition's nodes are partitioned again without
flaky: cpu_llvm takes what its patterns take, merged with its neighbouring partitions, the
reference takes the rest, and a FallbackWarning says where they went; under strict the failure
is an error naming the plugin and the partition.
"""

from __future__ import annotations

import json
import re
import warnings

import numpy as np
import pytest
from conftest import make_model
from onnx import TensorProto, helper

import byoc
import byoc.pipeline
from byoc.errors import PluginError
from byoc.partition.patterns import make_op_pattern
from byoc.pipeline import FallbackWarning
from byoc.plugins import Payload, PluginInfo, hookimpl
from byoc.plugins.manager import default_manager
from byoc.testing import compile_reference

SHAPE = [2, 8]
HOSTS = ["cpu_llvm"]  # the installed host plugin these tests are about


class Flaky:
    """Claims Add, Mul and Hardmax; its codegen fails on partitions holding a ``bad_*`` node,
    and its runtimes fail while ``fail_running`` is set."""

    def __init__(self) -> None:
        self.fail_running = False
        self.codegens: list[tuple[str, ...]] = []  # the node names of each partition compiled

    @hookimpl
    def byoc_plugin_info(self):
        return PluginInfo(name="flaky", version="1.0.0", device="a toy accelerator",
                          description="fails to compile some partitions")

    @hookimpl
    def byoc_partition_patterns(self):
        return [make_op_pattern(f"flaky.{op.lower()}", op) for op in ("Add", "Mul", "Hardmax")]

    @hookimpl
    def byoc_lower_partition(self, partition, graph, constants):
        return [{"op": n.op_type, "inputs": n.inputs, "output": n.outputs[0],
                 "axis": n.attrs.get("axis", -1)} for n in partition.nodes]

    @hookimpl
    def byoc_codegen_partition(self, partition, lowered):
        names = tuple(n.name for n in partition.nodes)
        self.codegens.append(names)
        if any(name.startswith("bad_") for name in names):
            raise RuntimeError("the tiler found no schedule")
        return Payload(json.dumps(lowered).encode(), {"steps": len(lowered)})

    @hookimpl
    def byoc_runtime_create(self, payload, partition):
        return FlakyRuntime(self, json.loads(payload.data), partition)


class FlakyRuntime:
    def __init__(self, plugin: Flaky, steps: list[dict], signature) -> None:
        self.plugin, self.steps, self.signature = plugin, steps, signature

    def run(self, inputs):
        if self.plugin.fail_running:
            raise RuntimeError("the device hung")
        env = dict(inputs)
        for step in self.steps:
            args = [env[v] for v in step["inputs"]]
            if step["op"] == "Hardmax":
                (x,) = args
                first_max = np.argmax(x, axis=step["axis"])
                env[step["output"]] = np.moveaxis(
                    np.eye(x.shape[step["axis"]], dtype=x.dtype)[first_max], -1, step["axis"])
            else:
                env[step["output"]] = {"Add": np.add, "Mul": np.multiply}[step["op"]](*args)
        return {name: env[name] for name in self.signature.outputs}


@pytest.fixture
def flaky():
    manager = default_manager()
    plugin = Flaky()
    manager.register(plugin)
    yield plugin
    manager.unregister("flaky")


@pytest.fixture
def compiles(monkeypatch):
    """Every partition the pipeline compiles, as (name, plugin, node names)."""
    seen: list[tuple[str, str, tuple[str, ...]]] = []
    compile_partition = byoc.pipeline._compile_partition

    def recording(manager, partition, graph, options):
        seen.append((partition.name, partition.plugin, tuple(n.name for n in partition.nodes)))
        return compile_partition(manager, partition, graph, options)
    monkeypatch.setattr(byoc.pipeline, "_compile_partition", recording)
    return seen


def chain_model(steps):
    """x -> the (name, op, extra inputs) steps in a chain, each reading the previous value
    first -> the last value is the output y."""
    nodes, previous = [], "x"
    for i, (name, op, extra) in enumerate(steps):
        output = "y" if i == len(steps) - 1 else name
        nodes.append(helper.make_node(op, [previous, *extra], [output], name=name))
        previous = output
    return make_model(nodes, [("x", TensorProto.FLOAT, SHAPE)],
                      [("y", TensorProto.FLOAT, SHAPE)])


# relu -> good_add -> sigmoid -> bad_mul -> bad_add -> tanh: flaky takes good_add and
# (bad_mul, bad_add); it compiles the first, not the second.
MERGING = [("relu", "Relu", []), ("good_add", "Add", ["x"]), ("sigmoid", "Sigmoid", []),
           ("bad_mul", "Mul", ["x"]), ("bad_add", "Add", ["x"]), ("tanh", "Tanh", [])]
# relu -> bad_add -> bad_hardmax -> bad_mul -> sigmoid: flaky takes the three bad_* nodes as
# one partition and fails; cpu_llvm has no Hardmax kernel.
WITH_HARDMAX = [("relu", "Relu", []), ("bad_add", "Add", ["x"]),
                ("bad_hardmax", "Hardmax", []), ("bad_mul", "Mul", ["x"]),
                ("sigmoid", "Sigmoid", [])]


def compile_flaky(model, strict=False):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        compiled = byoc.compile(model, plugins=["flaky"], default_plugins=HOSTS, strict=strict)
    messages = [str(w.message) for w in caught if issubclass(w.category, FallbackWarning)]
    return compiled, messages


def layout(compiled):
    return [(p.plugin, [n.name for n in p.nodes]) for p in compiled.plan.partitions]


def feeds():
    return {"x": np.random.default_rng(0).standard_normal(SHAPE).astype(np.float32)}


def assert_matches_the_reference(compiled, model, expected=None):
    if expected is None:
        expected = compile_reference(model).run(feeds())["y"]
    # cpu_llvm's Sigmoid and Tanh are float32 and may round differently from the reference.
    np.testing.assert_allclose(compiled.run(feeds())["y"], expected, rtol=1e-6, atol=1e-6)


def test_failed_nodes_go_to_cpu_llvm_and_merge_with_its_neighbours(flaky, compiles):
    model = chain_model(MERGING)
    compiled, messages = compile_flaky(model)
    assert layout(compiled) == [
        ("cpu_llvm", ["relu"]), ("flaky", ["good_add"]),
        ("cpu_llvm", ["sigmoid", "bad_mul", "bad_add", "tanh"])]
    assert [part.plugin for part in compiled.parts] == ["cpu_llvm", "flaky", "cpu_llvm"]
    why = compiled.plan.explanations["bad_mul"]
    assert why.plugin == "cpu_llvm" and why.pattern == "cpu_llvm.mul"
    (reason,) = why.reasons["flaky"]
    assert re.fullmatch(r"plugin 'flaky' could not compile partition 'p3_flaky': .*"
                        r"byoc_codegen_partition: RuntimeError: the tiler found no schedule.*",
                        reason)
    assert messages == compiled.fallbacks and len(messages) == 1
    assert re.fullmatch(r"plugin 'flaky' could not compile partition 'p3_flaky' \(2 nodes\); "
                        r"its nodes run on cpu_llvm \(partition 'p2_cpu_llvm', 2 nodes\) "
                        r"instead\. The error: .*the tiler found no schedule.*", messages[0])
    assert_matches_the_reference(compiled, model)


def test_partitions_that_did_not_change_are_compiled_once(flaky, compiles):
    compile_flaky(chain_model(MERGING))
    assert flaky.codegens == [("good_add",), ("bad_mul", "bad_add")]
    assert len(compiles) == len(set(compiles)), compiles
    assert ("p0_cpu_llvm", "cpu_llvm", ("relu",)) in compiles


def test_nodes_cpu_llvm_declines_go_to_the_reference(flaky):
    model = chain_model(WITH_HARDMAX)
    compiled, messages = compile_flaky(model)
    assert layout(compiled) == [("cpu_llvm", ["relu", "bad_add"]),
                                ("reference", ["bad_hardmax"]),
                                ("cpu_llvm", ["bad_mul", "sigmoid"])]
    hardmax = compiled.plan.explanations["bad_hardmax"]
    assert hardmax.reasons["flaky"][0].startswith("plugin 'flaky' could not compile partition")
    assert "Hardmax" in " ".join(hardmax.reasons["cpu_llvm"])
    (message,) = messages
    assert ("its nodes run on cpu_llvm (partition 'p0_cpu_llvm', 1 node), reference "
            "(partition 'p1_reference', 1 node) and cpu_llvm (partition 'p2_cpu_llvm', 1 node) "
            "instead") in message
    assert_matches_the_reference(compiled, model)


@pytest.mark.parametrize("steps", [MERGING, WITH_HARDMAX], ids=["merging", "with_hardmax"])
def test_under_strict_a_partition_that_fails_to_compile_is_an_error(flaky, steps):
    with pytest.raises(PluginError, match=r"--strict: plugin 'flaky' could not compile "
                                          r"partition 'p\d+_flaky' .*no schedule"):
        compile_flaky(chain_model(steps), strict=True)


@pytest.mark.parametrize("steps, host", [(MERGING, "cpu_llvm"), (WITH_HARDMAX, "reference")],
                         ids=["cpu_llvm_takes_it", "cpu_llvm_declines_hardmax"])
def test_a_runtime_failing_at_run_time_moves_to_cpu_llvm_when_it_takes_the_partition(
        flaky, compiles, steps, host):
    model = chain_model([(name.replace("bad_", "ok_"), op, extra) for name, op, extra in steps])
    compiled, _ = compile_flaky(model)
    moved = [p.signature.name for p in compiled.parts if p.plugin == "flaky"]
    expected = compile_reference(model).run(feeds())["y"]
    flaky.fail_running = True
    compiles.clear()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert_matches_the_reference(compiled, model, expected)
    assert [str(w.message).split(". The error")[0] for w in caught] == [
        f"plugin 'flaky' failed running partition {name!r}; it runs on the host ({host}) "
        f"from now on" for name in moved]
    assert [p.plugin for p in compiled.parts if p.signature.name in moved] == [host] * len(moved)
    # cpu_llvm is not even tried on a partition its patterns do not take whole.
    assert [(name, plugin) for name, plugin, _ in compiles] == [(name, host) for name in moved]
