"""The properties every compiled fuzz case must have, checked by :func:`check_case`.

1. The optimized graph's node names are unique, and every node is in exactly one partition:
   the partitions' nodes, counted with repeats, are the graph's nodes.
2. The partition graph is acyclic, and the plan lists it in a topological order. The edges
   are rebuilt here from which partition's node defines each value a partition reads, not
   taken from the plan's own boundary lists.
3. Every node of a non-host partition was matched by one of that plugin's own patterns (as
   the plugin declares them through ``byoc_partition_patterns``), and its explanation names
   that plugin; host nodes have no pattern.
4. Only plugins in play appear; a pinned node runs on the plugin it is pinned to or on the
   host; no non-host partition is smaller than the minimum partition size; no quantized
   group the reference evaluates as one integer layer (DequantizeLinear -> Conv/MatMul/Gemm
   -> [activation] -> QuantizeLinear) has its op, activation and QuantizeLinear in
   different partitions.
5. Nothing falls back to the host: a pattern that accepts nodes its plugin then cannot
   compile or run is a dishonest check.
6. The outputs equal the reference interpreter's (``byoc.testing.compile_reference``):
   integer outputs exactly; float outputs within ``|got - want| <= FLOAT_ATOL * max(1,
   max|want|) + FLOAT_RTOL * |want|`` (see the constants for why), with NaN where the
   reference has NaN.
7. Every partition, fed the reference's values of its inputs, gives the reference's values
   of its outputs, within the same bounds. A quantized layer whose pattern declares
   ``quantized_steps`` (``byoc_conformance_limits``: hardware that requantizes in fixed
   point) may be that many steps off the integer result of its actual input; a partition
   holding such layers is held to the bounds that follow (:func:`stepped_bounds`), since a
   step of one layer moves the input of the next. When a case has such a partition,
   property 6 checks only dtypes and shapes: one step off early in a network grows through
   the later layers, so the end-to-end outputs have no bound; each partition is held to its
   own instead.
"""

from __future__ import annotations

import functools
import warnings
from collections import Counter

import numpy as np

import byoc
from byoc.compiled import (
    CompiledModel,
    CompiledPartition,
    FallbackWarning,
    HostFallback,
    ModelSignature,
)
from byoc.conformance.check import outside_tolerance, where_different
from byoc.core.integer_layers import plan_integer_groups
from byoc.core.interpreter import Interpreter
from byoc.core.interpreter.ops_conv import integer_correlate
from byoc.core.interpreter.runner import evaluate_node
from byoc.plugins.manager import default_manager
from byoc.plugins.options import default_patterns
from byoc.quantization import along_axis, requantize
from byoc.testing import compile_reference
from tests.reliability.fuzz_graphs import HOST, FuzzCase

# cpu_llvm evaluates float ops in float32 (the reference sums products in float64 and rounds
# once, and uses numpy's transcendental functions). Over the at most 8 ops of a fuzz graph
# the differences stay near 1e-6 relative; 1e-4 leaves room for a few roundings compounding
# through Softmax or Gemm. The absolute term scales with the output's magnitude because sums
# that cancel lose precision relative to their terms, not to their result.
FLOAT_RTOL = 1e-4
FLOAT_ATOL = 1e-5


class PropertyFailure(AssertionError):
    """A fuzz property does not hold; the message says which and where."""


def compile_case(case: FuzzCase) -> CompiledModel:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FallbackWarning)  # checked as a property instead
        return byoc.compile(case.model, **case.compile_options())


def check_case(case: FuzzCase) -> CompiledModel:
    """Compile and run ``case`` and check every property in this module's docstring."""
    compiled = compile_case(case)
    check_plan(compiled, case)
    feeds = case.inputs()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FallbackWarning)
        got = compiled.run(feeds)
    if compiled.fallbacks:
        raise PropertyFailure("work fell back to the host: " + " | ".join(compiled.fallbacks))
    want = compile_reference(case.model).run(feeds)
    steps = {part.signature.name: quantized_steps(compiled, part) for part in compiled.parts}
    if any(steps.values()):
        check_partitions(compiled, feeds, steps)
    compare_outputs(got, want, compiled, exact_values=not any(steps.values()))
    return compiled


@functools.lru_cache(maxsize=None)
def declared_steps(plugin: str) -> dict[str, int]:
    """The ``quantized_steps`` ``plugin`` declares for each of its patterns (0 when not)."""
    limits = default_manager().call(plugin, "byoc_conformance_limits") or []
    return {limit.pattern: limit.quantized_steps for limit in limits}


def quantized_steps(compiled: CompiledModel, part: CompiledPartition) -> int:
    """How many quantization steps ``part``'s results may be off: the most any pattern it
    holds declares."""
    if part.plugin == HOST:
        return 0
    partition = next(p for p in compiled.plan.partitions if p.name == part.signature.name)
    declared = declared_steps(part.plugin)
    return max((declared.get(compiled.plan.patterns[n.name], 0) for n in partition.nodes),
               default=0)


def reference_values(graph, feeds: dict) -> dict[str, np.ndarray]:
    """Every value of the optimized graph on the reference interpreter."""
    return Interpreter(graph).values(feeds)


def check_partitions(compiled: CompiledModel, feeds: dict, steps: dict[str, int]) -> None:
    """Property 7: each partition on the reference's inputs, against the reference's
    outputs: exactly (floats within the tolerance) when none of its patterns declares
    steps, else within the bounds :func:`stepped_bounds` gives."""
    graph = compiled.graph
    env = reference_values(graph, feeds)
    for part in compiled.parts:
        signature = part.signature
        alone = CompiledModel(ModelSignature(signature.name,
                                             {v: graph.types[v] for v in signature.inputs},
                                             {v: graph.types[v] for v in signature.outputs}),
                              [part], fallback=HostFallback(strict=True))
        got = alone.run({v: env[v] for v in signature.inputs})
        what = f"partition {signature.name} ({part.plugin}, fed the reference's inputs"
        if not steps[signature.name]:
            for name, array in got.items():
                compare_value(name, array, env[name], compiled, what + ")")
            continue
        partition = next(p for p in compiled.plan.partitions if p.name == signature.name)
        bounds = stepped_bounds(compiled, partition, env)
        for name, array in got.items():
            if name in bounds:
                compare_bounds(name, array, env[name], bounds[name], compiled,
                               what + ", each layer within its declared steps)")
            else:  # behind an op the bounds cannot follow: only the type is checked
                _check_type(name, np.asarray(array), env[name], what + ")")


# Ops whose outputs never decrease when an input increases (quantization scales are
# positive): evaluated on the lower and on the upper bounds of their inputs, they give the
# bounds of their outputs.
MONOTONE_OPS = frozenset({"DequantizeLinear", "QuantizeLinear", "Add", "Relu", "Clip",
                          "MaxPool", "AveragePool", "GlobalAveragePool", "Flatten", "Reshape",
                          "Transpose", "Concat", "Identity"})


def stepped_bounds(compiled: CompiledModel, partition,
                   env: dict[str, np.ndarray]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Lower and upper bounds of the values ``partition`` computes when every quantized layer
    in it may be off its integer result by the steps its pattern declares, applied to the
    layer's actual input (which an earlier layer of the partition may already have moved):
    a declared step is per layer, and a layer's weights can turn one step of its input into
    several of its output. Values behind an op that is neither a quantized layer nor in
    ``MONOTONE_OPS`` are left out."""
    graph, plan = compiled.graph, compiled.plan
    groups = plan_integer_groups(graph)
    inside = {n.name for n in partition.nodes}
    replaced = {n.name for g in groups.values() for n in g.replaced_nodes}
    declared = declared_steps(partition.plugin)
    bounds: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    unknown: set[str] = set()

    def bound(value: str):
        return bounds.get(value, (env[value], env[value])) if value else (None, None)

    for node in partition.nodes:
        group = groups.get(node.name)
        if group is not None and all(n.name in inside for n in group.replaced_nodes):
            if group.layer.x in unknown:
                unknown.update(node.outputs)
                continue
            lo, hi = _layer_bounds(group.layer, *bound(group.layer.x))  # int64
            k = declared.get(plan.patterns[node.name], 0)
            layer = group.layer
            bounds[node.outputs[0]] = (np.maximum(lo - k, layer.out_min).astype(layer.y_dtype),
                                       np.minimum(hi + k, layer.out_max).astype(layer.y_dtype))
        elif node.name in replaced:
            continue
        elif node.op_type in MONOTONE_OPS and not unknown.intersection(node.inputs):
            ends = []
            for end in (0, 1):
                ends.append(evaluate_node(node, [bound(v)[end] for v in node.inputs],
                                          [graph.types.get(v) for v in node.outputs],
                                          graph.opsets.get(node.domain or "", 0)))
            bounds.update((v, (lo, hi)) for v, lo, hi in zip(node.outputs, *ends) if v)
        else:
            unknown.update(v for v in node.outputs if v)
    return {v: b for v, b in bounds.items() if v not in unknown}


def _layer_bounds(layer, lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The integer results of ``layer`` (an IntegerLayer) over inputs between ``lo`` and
    ``hi``: the accumulator is linear in the input, so its extremes take each input element
    at the end its weight's sign asks for; requantization never decreases."""
    axis = 0 if layer.kind == "conv" else 1
    shape = [-1 if i == axis else 1 for i in range(layer.weight.ndim)]
    diff = layer.weight.astype(np.int64) - layer.w_zero.reshape(shape)
    positive, negative = np.maximum(diff, 0), np.minimum(diff, 0)
    x_zero = np.asarray(layer.x_zero, dtype=np.int64)

    def acc(x: np.ndarray, weight: np.ndarray) -> np.ndarray:
        x = x.astype(np.int64)
        if layer.kind == "conv":
            a = layer.attrs
            return integer_correlate(x, x_zero, weight, None, a["group"] or 1,
                                     a["kernel_shape"], a["auto_pad"] or "NOTSET",
                                     a["dilations"], a["pads"], a["strides"], "Conv")
        return np.matmul(x - x_zero, weight)

    out_axis = 1 if layer.kind == "conv" else -1

    def result(total: np.ndarray) -> np.ndarray:
        if layer.bias is not None:
            total = total + along_axis(layer.bias, out_axis, total.ndim)
        y = requantize(total, along_axis(layer.multiplier, out_axis, total.ndim),
                       np.asarray(layer.y_zero), layer.y_dtype)
        return np.clip(y.astype(np.int64), layer.out_min, layer.out_max)

    return (result(acc(lo, positive) + acc(hi, negative)),
            result(acc(hi, positive) + acc(lo, negative)))


def check_plan(compiled: CompiledModel, case: FuzzCase) -> None:
    graph, plan = compiled.graph, compiled.plan
    names = [n.name for n in graph.nodes]
    repeated = sorted(n for n, k in Counter(names).items() if k > 1)
    if repeated:
        raise PropertyFailure(f"node names appear more than once: {repeated}")
    placed = Counter(n.name for p in plan.partitions for n in p.nodes)
    if placed != Counter(names):
        missing = sorted(set(names) - set(placed))
        twice = sorted(n for n, k in placed.items() if k > 1)
        foreign = sorted(set(placed) - set(names))
        raise PropertyFailure(f"nodes not in exactly one partition: missing {missing}, in "
                              f"several {twice}, not in the graph {foreign}")
    _check_acyclic(plan)
    _check_ownership(plan, case)
    _check_layers_whole(compiled)


def _check_layers_whole(compiled: CompiledModel) -> None:
    partition_of = {n.name: p.name for p in compiled.plan.partitions for n in p.nodes}
    for name, plan in plan_integer_groups(compiled.graph).items():
        group = plan.group
        core = [n for n in (group.op, group.activation, group.quantize) if n is not None]
        partitions = sorted({partition_of[n.name] for n in core})
        if len(partitions) > 1:
            raise PropertyFailure(f"quantized group {name!r} ({group.op.op_type}) is split "
                                  f"across partitions {', '.join(partitions)}")


def _check_acyclic(plan) -> None:
    defined_in = {v: i for i, p in enumerate(plan.partitions) for n in p.nodes
                  for v in n.outputs if v}
    edges = {(defined_in[v], i) for i, p in enumerate(plan.partitions) for n in p.nodes
             for v in n.present_inputs if v in defined_in and defined_in[v] != i}
    indegree = Counter(b for _, b in edges)
    ready = [i for i in range(len(plan.partitions)) if not indegree[i]]
    visited = 0
    while ready:
        a = ready.pop()
        visited += 1
        for edge in [e for e in edges if e[0] == a]:
            indegree[edge[1]] -= 1
            if not indegree[edge[1]]:
                ready.append(edge[1])
    if visited != len(plan.partitions):
        raise PropertyFailure(f"the partition graph has a cycle: edges {sorted(edges)}")
    backwards = sorted((plan.partitions[a].name, plan.partitions[b].name)
                       for a, b in edges if a > b)
    if backwards:
        raise PropertyFailure(f"partitions listed out of topological order: {backwards}")


@functools.lru_cache(maxsize=None)
def plugin_patterns(plugin: str) -> frozenset[str]:
    """The names of the patterns ``plugin`` declares."""
    return frozenset(p.name for p in default_patterns(default_manager(), plugin))


def _check_ownership(plan, case: FuzzCase) -> None:
    in_play = {*case.plugins, HOST}
    if case.default_plugins is None:
        in_play.add("cpu_llvm")
    in_play.update(case.default_plugins or ())
    for partition in plan.partitions:
        plugin = partition.plugin
        if plugin not in in_play:
            raise PropertyFailure(f"{partition.name}: plugin {plugin!r} is not in play")
        if plugin != HOST and len(partition.nodes) < case.min_partition_size:
            raise PropertyFailure(f"{partition.name} has {len(partition.nodes)} nodes, fewer "
                                  f"than min_partition_size={case.min_partition_size}")
        for node in partition.nodes:
            pattern = plan.patterns[node.name]
            explained = plan.explanations[node.name].plugin
            if explained != plugin:
                raise PropertyFailure(f"node {node.name!r} is in {partition.name} but its "
                                      f"explanation says {explained!r}")
            if plugin == HOST and pattern is not None:
                raise PropertyFailure(f"host node {node.name!r} has pattern {pattern!r}")
            if plugin != HOST and pattern not in plugin_patterns(plugin):
                raise PropertyFailure(f"node {node.name!r} ({node.op_type}) is in "
                                      f"{partition.name} without a {plugin} pattern "
                                      f"(pattern: {pattern!r})")
            pin = case.pins.get(node.name, case.pins.get(node.op_type))
            if pin is not None and plugin not in (pin, HOST):
                raise PropertyFailure(f"node {node.name!r} ({node.op_type}) is pinned to "
                                      f"{pin!r} but runs in {partition.name}")


def compare_outputs(got: dict, want: dict, compiled: CompiledModel,
                    exact_values: bool = True) -> None:
    """Property 6: the model's outputs against the reference's (values only when
    ``exact_values``; dtypes and shapes always)."""
    if set(got) != set(want):
        raise PropertyFailure(f"outputs {sorted(got)}, the reference gives {sorted(want)}")
    for name, expected in want.items():
        actual = np.asarray(got[name])
        if not exact_values:
            _check_type(name, actual, expected, "output")
            continue
        compare_value(name, actual, expected, compiled, "output")


def _check_type(name: str, actual: np.ndarray, expected: np.ndarray, what: str) -> None:
    if actual.dtype != expected.dtype or actual.shape != expected.shape:
        raise PropertyFailure(f"{what} {name!r} is {actual.dtype}{list(actual.shape)}, the "
                              f"reference gives {expected.dtype}{list(expected.shape)}")


def compare_value(name: str, actual: np.ndarray, expected: np.ndarray,
                  compiled: CompiledModel, what: str) -> None:
    """``actual`` against the reference's ``expected``: integers exactly, floats within the
    module's tolerance."""
    actual = np.asarray(actual)
    _check_type(name, actual, expected, what)
    if expected.dtype.kind in "fc":
        finite = expected[np.isfinite(expected)]
        atol = FLOAT_ATOL * max(1.0, float(np.max(np.abs(finite), initial=0.0)))
        bad = outside_tolerance(actual, expected, FLOAT_RTOL, atol)
    else:
        bad = actual != expected
    if np.any(bad):
        raise PropertyFailure(f"{what} {name!r} differs from the reference in "
                              f"{where_different(bad, actual, expected)} (partitions: "
                              f"{_layout(compiled)})")


def compare_bounds(name: str, actual: np.ndarray, expected: np.ndarray,
                   bounds: tuple[np.ndarray, np.ndarray], compiled: CompiledModel,
                   what: str) -> None:
    """``actual`` between the ``bounds`` (floats with the module's tolerance); the message
    shows the reference's ``expected`` where it is not."""
    actual = np.asarray(actual)
    _check_type(name, actual, expected, what)
    lo, hi = (np.asarray(b, np.float64) for b in bounds)
    slack = FLOAT_ATOL * np.maximum(1.0, np.abs(hi)) if expected.dtype.kind in "fc" else 0.0
    values = actual.astype(np.float64)
    bad = ~((values >= lo - slack) & (values <= hi + slack))
    if np.any(bad):
        raise PropertyFailure(f"{what} {name!r} is outside its bounds in "
                              f"{where_different(bad, actual, expected)} (partitions: "
                              f"{_layout(compiled)})")


def _layout(compiled: CompiledModel) -> str:
    return ", ".join(f"{p.name}: {', '.join(n.op_type for n in p.nodes)}"
                     for p in compiled.plan.partitions)
