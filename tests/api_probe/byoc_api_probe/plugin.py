"""The api_probe plugin: a minimal complete byoc plugin, written only against byoc's public
plugin API (byoc.plugins, byoc.plugins.api, byoc.plugins.hookspecs, byoc.partition.patterns
and byoc.errors), so that byoc's own tests notice when a change would break plugins like it.

Its "device" is numpy. It claims two patterns:

- ``api_probe.scale_shift``: ``x * scale + shift``, then an optional Relu, with float32
  constants ``scale`` and ``shift`` (a composite of three ops, one of them optional);
- ``api_probe.abs``: a lone float32 Abs (a single op, from a shared constructor).

Lowering reads the pattern matches that formed the partition (``partition.matches``): the
values each match bound and the nodes it captured give the steps to run and the constants
they read. Codegen stores the steps as JSON and the constants as arrays in the payload; the
runtime replays the steps with numpy. Two options change what happens: ``fold_relu``
(compile stage) applies the Relu in the multiply-add's pass over the data or in a pass of
its own, which the payload's metadata shows; ``threads`` (run stage) splits each pass among
that many threads, which the runtime's counters show.
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from byoc.errors import PluginError, PluginOptionError
from byoc.partition.patterns import (
    Accept,
    Decline,
    Pattern,
    const,
    make_op_pattern,
    op,
    optional,
    wildcard,
)
from byoc.plugins import hookimpl
from byoc.plugins.api import (
    Partition,
    PartitionSignature,
    PatternLimits,
    Payload,
    PluginInfo,
    PluginOption,
)
from byoc_api_probe import __version__

NAME = "api_probe"
SCALE_SHIFT = f"{NAME}.scale_shift"
ABS = f"{NAME}.abs"

# What the device computes, by kernel name; each takes and returns float32 arrays of one shape.
KERNELS = {
    "abs": np.abs,
    "scale_shift": lambda x, scale, shift: x * scale + shift,
    "scale_shift_relu": lambda x, scale, shift: np.maximum(x * scale + shift, np.float32(0)),
    "relu": lambda x: np.maximum(x, np.float32(0)),
}


@hookimpl
def byoc_plugin_info() -> PluginInfo:
    return PluginInfo(name=NAME, version=__version__, device="numpy (API probe)",
                      description="float32 x*scale+shift with an optional Relu, and Abs")


@hookimpl
def byoc_plugin_options() -> list[PluginOption]:
    return [
        PluginOption("fold_relu", bool, True, "apply a Relu in the same pass as the "
                     "multiply-add before it (false: a pass of its own)", stage="compile"),
        PluginOption("threads", int, 1, "threads each pass over the data is split among"),
    ]


def _check_scale_shift(match, graph) -> Accept | Decline:
    x = graph.type_of(match.bound["x"]).shape
    y = graph.type_of(match.outputs[0]).shape
    if x != y:
        return Decline(f"the scale and shift broadcast x from {list(x)} to {list(y)}; {NAME} "
                       f"writes the result in x's shape")
    return Accept()


@hookimpl
def byoc_partition_patterns() -> list[Pattern]:
    mul = op("Mul", wildcard("x"), const("float32", label="scale"), dtype="float32",
             commutative=True, label="mul")
    add = op("Add", mul, const("float32", label="shift"), commutative=True, label="add")
    return [Pattern(SCALE_SHIFT, optional(op("Relu", add, label="relu")), _check_scale_shift),
            make_op_pattern(ABS, "Abs", dtype="float32")]


@hookimpl
def byoc_conformance_limits() -> list[PatternLimits]:
    """For ``pytest --byoc-plugin api_probe``: float32 only, and constants that do not make
    the result bigger than x (the kit's "both" broadcast does). Every rank is taken; rank 2
    comes first so that the kit's base case can broadcast either way."""
    return [PatternLimits(SCALE_SHIFT, {"dtype": ("float32",), "rank": (2, 1, 3, 4, 5),
                                        "broadcast": ("none", "scalar", "trailing")}),
            PatternLimits(ABS, {"dtype": ("float32",)})]


@hookimpl
def byoc_lower_partition(partition: Partition, constants: dict[str, np.ndarray],
                         options: dict[str, Any]) -> tuple[list[dict], dict[str, np.ndarray]]:
    """The partition's steps, one per pass over the data, and the constants they read, from
    the matches that formed it: the values each bound (``x``, ``scale``, ``shift``) and the
    nodes it captured (whether a Relu is there, and the values between the ops)."""
    covered = {id(node) for match in partition.matches for node in match.nodes}
    strays = [node for node in partition.nodes if id(node) not in covered]
    if strays:
        raise PluginError(f"{NAME}: partition {partition.name!r} holds node "
                          f"{strays[0].name!r} ({strays[0].op_type}), which none of its "
                          f"pattern matches covers")
    steps = []
    for match in partition.matches:
        if match.pattern == ABS:
            node = match.captured["op"]
            steps.append({"kernel": "abs", "inputs": [node.inputs[0]], "output": node.outputs[0]})
            continue
        operands = [match.bound[label] for label in ("x", "scale", "shift")]
        relu = match.captured.get("relu")
        if relu is not None and options["fold_relu"]:
            steps.append({"kernel": "scale_shift_relu", "inputs": operands,
                          "output": relu.outputs[0]})
            continue
        steps.append({"kernel": "scale_shift", "inputs": operands,
                      "output": match.captured["add"].outputs[0]})
        if relu is not None:
            steps.append({"kernel": "relu", "inputs": [relu.inputs[0]],
                          "output": relu.outputs[0]})
    read = {value for step in steps for value in step["inputs"]}
    return steps, {name: np.asarray(array) for name, array in constants.items() if name in read}


@hookimpl
def byoc_codegen_partition(partition: Partition, lowered: tuple) -> Payload:
    steps, constants = lowered
    return Payload(json.dumps(steps).encode(), {"kernels": [step["kernel"] for step in steps]},
                   constants)


class ProbeRuntime:
    """Replays a partition's steps with numpy, each pass split among ``threads`` threads."""

    def __init__(self, payload: Payload, partition: PartitionSignature, threads: int):
        self.steps = json.loads(payload.data)
        self.constants = dict(payload.arrays)
        self.outputs = list(partition.outputs)
        self.threads = threads
        self.passes = self.chunks = 0

    def run(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        values = {**self.constants, **inputs}
        with ThreadPoolExecutor(self.threads) as pool:
            for step in self.steps:
                values[step["output"]] = self._pass(step, values, pool)
        return {name: values[name] for name in self.outputs}

    def _pass(self, step: dict, values: dict[str, np.ndarray],
              pool: ThreadPoolExecutor) -> np.ndarray:
        """One kernel over the data, each thread computing a slice of the flattened result."""
        x = values[step["inputs"][0]]
        operands = [np.broadcast_to(values[name], x.shape).reshape(-1)
                    for name in step["inputs"]]
        result = np.empty(x.size, x.dtype)
        edges = np.linspace(0, x.size, min(self.threads, max(x.size, 1)) + 1).astype(int)

        def compute(rows: slice) -> None:
            result[rows] = KERNELS[step["kernel"]](*(operand[rows] for operand in operands))

        slices = [slice(start, stop) for start, stop in zip(edges, edges[1:])]
        list(pool.map(compute, slices))
        self.passes += 1
        self.chunks += len(slices)
        return result.reshape(x.shape)

    def counters(self) -> dict[str, int]:
        return {"passes": self.passes, "chunks": self.chunks}


@hookimpl
def byoc_runtime_create(payload: Payload, partition: PartitionSignature,
                        options: dict[str, Any]) -> ProbeRuntime:
    if options["threads"] < 1:
        raise PluginOptionError(f"plugin option {NAME}.threads={options['threads']}: give 1 "
                                f"or more threads")
    return ProbeRuntime(payload, partition, options["threads"])
