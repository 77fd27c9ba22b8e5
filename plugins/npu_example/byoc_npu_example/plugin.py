"""The npu_example plugin's hooks: info, patterns, lowering, codegen and runtime.

What it claims, each pattern a QDQ form of one layer (checks decline with the reason
:func:`byoc_npu_example.layers.npu_layer` gives):

- ``qdq_conv2d`` and ``qdq_depthwise_conv2d``: Conv with group 1, or one filter per channel;
- ``qdq_fully_connected``: Gemm / MatMul with constant weights (a 1x1 CONV2D over the rows);
- ``qdq_pool``: MaxPool, AveragePool, GlobalAveragePool;
- ``qdq_add``: Add of two int8 tensors;
- ``qdq_flatten``: a Flatten that moves no byte (N x C x 1 x 1 in, same quantization out);
- ``shared_dequantize``: a DequantizeLinear of an int8 tensor read by several layers the NPU
  runs (a residual block's input), which the layer patterns leave out of their matches.

All but the last may end in a Relu or Clip, which the commands fold into their clamp.

byoc verify's debug request (``Partition.debug_outputs``): the NPU returns the output of a
layer's op node (Conv, Gemm/MatMul, a pool, Add) when asked, read from a debug tap its command
writes (:mod:`byoc_npu_example.lower`); it has no Relu/Clip or DequantizeLinear output to give.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from byoc.core.ir import Graph, Node
from byoc.partition.int8_patterns import make_qdq_elementwise_pattern, make_qdq_pattern
from byoc.partition.patterns import Accept, Decline, Pattern, const, op, wildcard, with_activation
from byoc.plugins import hookimpl
from byoc.plugins.api import (
    Estimate,
    Partition,
    PartitionSignature,
    PatternLimits,
    Payload,
    PluginInfo,
    PluginOption,
    Transfer,
)
from byoc_npu_example import __version__, estimate
from byoc_npu_example.command_stream import encode
from byoc_npu_example.config import CONFIG
from byoc_npu_example.layers import POOL_OPS, npu_layer, qdq_groups, quant_of
from byoc_npu_example.lower import Lowered, lower_partition
from byoc_npu_example.runtime import NpuRuntime, create_runtime

NAME = "npu_example"


@hookimpl
def byoc_plugin_info() -> PluginInfo:
    return PluginInfo(name=NAME, version=__version__,
                      device="example layer-level int8 NPU (numpy simulator)",
                      description="int8 conv, depthwise conv, fully connected, pooling and add "
                                  "layers as an NHWC command stream",
                      preferred_layout="NHWC")


def _layer_of(match, graph: Graph):
    """The NPU layer of the QDQ group a match covers, or why there is none."""
    group = qdq_groups(graph).get(match.captured["quantize"].name)
    if group is None or group.op is not match.captured["op"]:
        return "not a QDQ group (DequantizeLinear -> op -> [Relu/Clip] -> QuantizeLinear)"
    return npu_layer(group, graph, CONFIG)


def _check_layer(match, graph: Graph):
    layer = _layer_of(match, graph)
    return Decline(layer) if isinstance(layer, str) else Accept()


def _check_conv(depthwise: bool):
    """The check of the group-1 (or the depthwise) convolution pattern."""
    def check(match, graph: Graph):
        layer = _layer_of(match, graph)
        if isinstance(layer, str):
            return Decline(layer)
        if layer.depthwise != depthwise:
            kind, other = (("depthwise", "qdq_depthwise_conv2d") if layer.depthwise
                           else ("group 1", "qdq_conv2d"))
            return Decline(f"a {kind} convolution, which {NAME}.{other} takes")
        return Accept()
    return check


def _check_shared_dequantize(match, graph: Graph):
    node = match.captured["dequantize"]
    if graph.is_constant(node.inputs[0]):
        return Decline("it dequantizes a constant; the layer reading it packs it")
    quant = quant_of(node, graph)
    if isinstance(quant, str):
        return Decline(quant)
    value = node.outputs[0]
    if value in graph.outputs:
        return Decline(f"{value!r} is a graph output, which the NPU does not produce as float")
    readers = graph.consumers().get(value, [])
    if len(readers) < 2:
        return Decline("it has one reader; the layer pattern that reads it claims it")
    layers = {id(g.op): g for g in qdq_groups(graph).values() if node in g.dequantize}
    for reader in readers:
        group = layers.get(id(reader))
        layer = "not a QDQ layer" if group is None else npu_layer(group, graph, CONFIG)
        if isinstance(layer, str):
            return Decline(f"it is also read by {reader.op_type} node {reader.name!r}, which "
                           f"the NPU does not run ({layer})")
    return Accept()


def _qdq_single_input_pattern(name: str, op_types: tuple[str, ...], check) -> Pattern:
    """DequantizeLinear -> op -> [Relu/Clip] -> QuantizeLinear for a one-input op."""
    dequantize = op("DequantizeLinear", wildcard("input"), const(), const(), min_inputs=2,
                    label="input_dq", shareable=True)
    body = with_activation(op(op_types, dequantize, label="op"), "optional")
    root = op("QuantizeLinear", body, const(label="output_scale"),
              const(label="output_zero_point"), min_inputs=2, label="quantize")
    return Pattern(name, root, check)


@hookimpl
def byoc_partition_patterns() -> list[Pattern]:
    shared = op("DequantizeLinear", wildcard("input"), const(), const(), min_inputs=2,
                label="dequantize")
    return [
        make_qdq_pattern(f"{NAME}.qdq_conv2d", ("Conv",), check=_check_conv(depthwise=False)),
        make_qdq_pattern(f"{NAME}.qdq_depthwise_conv2d", ("Conv",),
                         check=_check_conv(depthwise=True)),
        make_qdq_pattern(f"{NAME}.qdq_fully_connected", ("Gemm", "MatMul"), check=_check_layer),
        _qdq_single_input_pattern(f"{NAME}.qdq_pool", POOL_OPS, _check_layer),
        make_qdq_elementwise_pattern(f"{NAME}.qdq_add", ("Add",), check=_check_layer),
        _qdq_single_input_pattern(f"{NAME}.qdq_flatten", ("Flatten",), _check_layer),
        Pattern(f"{NAME}.shared_dequantize", shared, _check_shared_dequantize),
    ]


@hookimpl
def byoc_estimate_match(nodes: list[Node], graph: Graph) -> Estimate | None:
    """The commands' cycles from the NPU's layer model (:mod:`.estimate`)."""
    return estimate.estimate(nodes, graph)


@hookimpl
def byoc_estimate_transfer() -> Transfer:
    return estimate.transfer()


@hookimpl
def byoc_conformance_limits() -> list[PatternLimits]:
    return [
        PatternLimits(f"{NAME}.qdq_conv2d", {"group": (1,), "dilation": (1,)}),
        PatternLimits(f"{NAME}.qdq_depthwise_conv2d", {"group": ("depthwise",),
                                                       "dilation": (1,)}),
        PatternLimits(f"{NAME}.qdq_add", {"rank": (2, 3, 4), "broadcast": ("none",),
                                          "batch": (1,)}),
        PatternLimits(f"{NAME}.qdq_flatten",
                      skip="the kit flattens H x W planes larger than 1 x 1, which NHWC "
                           "orders differently, so the NPU declines every case it builds; "
                           "tests/test_npu_patterns.py covers the pattern"),
    ]


@hookimpl
def byoc_lower_partition(partition: Partition, graph: Graph,
                         constants: dict[str, np.ndarray]) -> Lowered:
    return lower_partition(partition, graph, CONFIG)


@hookimpl
def byoc_codegen_partition(partition: Partition, lowered: Lowered) -> Payload:
    metadata = {"inputs": lowered.inputs, "outputs": lowered.outputs,
                "commands": lowered.layers, "dram_bytes": lowered.program.dram_bytes,
                "constants_bytes": int(lowered.constants.size)}
    if lowered.taps:    # only on byoc verify's request: an ordinary payload has no key
        metadata["taps"] = lowered.taps
    return Payload(encode(lowered.program), metadata, {"constants": lowered.constants})


@hookimpl
def byoc_plugin_options() -> list[PluginOption]:
    """The NPU has no options: byoc refuses any option given to it, by name."""
    return []


@hookimpl
def byoc_runtime_create(payload: Payload, partition: PartitionSignature,
                        options: dict[str, Any]) -> NpuRuntime:
    return create_runtime(payload, partition, options)

