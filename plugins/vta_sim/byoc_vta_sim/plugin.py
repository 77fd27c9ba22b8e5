"""The vta_sim plugin's hooks: patterns, cost, estimates, lowering, codegen and runtime.

vta_sim claims int8 convolution and matrix-product layers, in onnxruntime's QDQ form and as
QLinearConv / QLinearMatMul, when they have the integer meaning the reference gives them
(see :mod:`byoc.core.integer_layers`) and fit the accelerator (see
:func:`byoc_vta_sim.lower.layer_refusal`). Everything else stays on the host.

byoc verify's debug request (``Partition.debug_outputs``): the accelerator returns the output
of a conv or matrix layer's op node (Conv, Gemm, MatMul), read from a debug tap of its int32
accumulator that a second pass of the layer stores in four byte planes
(:mod:`byoc_vta_sim.generator`), as float32 (times ``x_scale * w_scale`` per channel). Its
other inner values never exist on the accelerator and are left out. Without the request the
payload is what it always was.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from byoc.core.integer_layers import (
    IntegerLayer,
    integer_plans,
    qlinear_layer,
)
from byoc.core.ir import Graph, Node
from byoc.core.qdq import QdqGroup, find_qdq_groups
from byoc.errors import PluginError
from byoc.estimate import boundary_bytes
from byoc.partition.int8_patterns import (
    make_qdq_elementwise_pattern,
    make_qdq_pattern,
    make_qlinear_pattern,
)
from byoc.partition.patterns import Accept, Decline
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
from byoc_vta_sim import __version__
from byoc_vta_sim.cli_tools import cli_commands
from byoc_vta_sim.config import DEFAULT_CONFIG
from byoc_vta_sim.generator import GenerationError, Program, generate
from byoc_vta_sim.isa import decode_stream
from byoc_vta_sim.lower import (
    AddSpec,
    accumulator_tap,
    add_refusal,
    estimated_cycles,
    layer_refusal,
    lower_layers,
    qdq_add,
)
from byoc_vta_sim.runtime import TARGETS, VtaRuntime, create_runtime
from byoc_vta_sim.timing import estimate_stream

NAME = "vta_sim"
CONFIG = DEFAULT_CONFIG


@hookimpl
def byoc_plugin_info() -> PluginInfo:
    c = CONFIG
    return PluginInfo(name=NAME, version=__version__,
                      device=f"VTA-like int8 accelerator {c.batch}x{c.block_in}x{c.block_out} "
                             f"(functional simulator)",
                      description="int8 conv and matmul layers compiled to VTA instruction "
                                  "streams")


def _qdq_layer(match, graph: Graph) -> IntegerLayer | None:
    plan = integer_plans(graph).get(match.captured["quantize"].name)
    if plan is None or plan.group.op is not match.captured["op"]:
        return None
    return plan.layer


def _check_qdq(match, graph: Graph):
    layer = _qdq_layer(match, graph)
    if layer is None:
        return Decline("not an integer layer: the reference gives this group float semantics "
                       "(it needs per-tensor input/output scales, constant weights, an int32 "
                       "bias with scale x_scale * w_scale, and Relu, Clip with constant bounds "
                       "or no activation)")
    reason = layer_refusal(layer, graph, CONFIG)
    return Accept() if reason is None else Decline(reason)


def _check_qlinear(match, graph: Graph):
    layer = qlinear_layer(graph, match.captured["op"])
    if layer is None:
        return Decline("the scales, zero points and weights must be constants, with "
                       "per-tensor input and output scales")
    reason = layer_refusal(layer, graph, CONFIG)
    return Accept() if reason is None else Decline(reason)


def _add_groups(graph: Graph) -> dict[str, QdqGroup]:
    """QDQ Add groups by the name of their QuantizeLinear."""
    return {g.quantize.name: g for g in find_qdq_groups(graph, ops=("Add",))}


def _check_add(match, graph: Graph):
    group = _add_groups(graph).get(match.captured["quantize"].name)
    if group is None or group.op is not match.captured["op"]:
        return Decline("not a QDQ Add group")
    spec = qdq_add(graph, group)
    if isinstance(spec, str):
        return Decline(spec)
    reason = add_refusal(spec, graph, CONFIG)
    return Accept() if reason is None else Decline(reason)


@hookimpl
def byoc_partition_patterns() -> list:
    return [make_qdq_pattern(f"{NAME}.qdq_conv", ("Conv",), check=_check_qdq),
            make_qdq_pattern(f"{NAME}.qdq_matmul", ("MatMul", "Gemm"), check=_check_qdq),
            make_qdq_elementwise_pattern(f"{NAME}.qdq_add", ("Add",), check=_check_add),
            make_qlinear_pattern(f"{NAME}.qlinear", check=_check_qlinear, constant_weights=True)]


@hookimpl
def byoc_partition_cost(pattern_name: str, nodes: list[Node], graph: Graph) -> float | None:
    layers = _layers_of(nodes, graph)
    if len(layers) != 1 or isinstance(layers[0], AddSpec):
        return None
    return estimated_cycles(layers[0], graph, CONFIG)


@hookimpl
def byoc_estimate_match(nodes: list[Node], graph: Graph) -> Estimate | None:
    """The cycles these layers add to a partition's instruction stream, from the timing
    model (:mod:`byoc_vta_sim.timing`), at the configuration's clock.

    A partition's estimate is the sum of its matches'. Within one stream the modules
    overlap a layer's first loads with the last computation and stores of the layer before
    it, and the stream's start (the first fetch) and FINISH are paid once. So when the int8
    layer just before these ones (in graph order, only Quantize/DequantizeLinear between)
    is one vta_sim takes, and so would share their partition, the estimate is what these
    layers add to that layer's stream; otherwise it is their own stream's cycles."""
    layers = _layers_of(nodes, graph)
    if not layers or any(_refusal(layer, graph) is not None for layer in layers):
        return None
    cycles = _stream_cycles(layers, graph)
    if cycles is None:
        return None
    before = _layer_before(layers[0], graph)
    if before is not None:
        alone, together = _stream_cycles([before], graph), _stream_cycles([before, *layers], graph)
        if alone is not None and together is not None:
            cycles = together - alone
    bytes_in, bytes_out = boundary_bytes(nodes, graph)
    return Estimate(cycles / CONFIG.clock_hz, cycles, bytes_in, bytes_out,
                    f"vta_sim timing model of the generated instruction stream at "
                    f"{CONFIG.clock_hz / 1e6:g} MHz")


def _stream_cycles(layers: list[IntegerLayer | AddSpec], graph: Graph) -> int | None:
    """The timing model's cycles for the stream of ``layers`` alone, or None if the
    lowering or the generator refuses them. Remembered for the layers of the last graphs
    estimated: a match's own stream is also the stream of the layer before the next one."""
    key = (id(graph), *map(id, layers))
    known = _STREAMS.get(key)
    if known is not None and all(a is b for a, b in zip(known[0], layers)):
        return known[1]
    try:
        gen_layers, regions, _ = lower_layers(layers, graph, CONFIG)
        program = generate(gen_layers, regions, CONFIG)
        cycles = estimate_stream(decode_stream(program.stream), CONFIG)["cycles"]
    except (ValueError, GenerationError):
        cycles = None
    if len(_STREAMS) >= 512:
        _STREAMS.clear()
    _STREAMS[key] = (list(layers), cycles)   # the layers are kept, so their ids stay theirs
    return cycles


# (id(graph), id(layer), ...) -> (the layers, their stream's cycles); see _stream_cycles.
_STREAMS: dict[tuple[int, ...], tuple[list, int | None]] = {}

_BETWEEN_LAYERS = ("QuantizeLinear", "DequantizeLinear")


def _layer_before(layer: IntegerLayer | AddSpec, graph: Graph) -> IntegerLayer | AddSpec | None:
    """The int8 layer vta_sim takes that comes just before ``layer`` in graph order, if
    nothing but its own activation and quantization and Quantize/DequantizeLinear nodes
    lie between them. Only the nearest layer before can be it: a layer vta_sim refuses
    lies between any earlier one and ``layer``."""
    order = {id(n): i for i, n in enumerate(graph.nodes)}
    earlier = [other for other in _layers_of(graph.nodes, graph)
               if order[id(other.op)] < order[id(layer.op)]]
    if not earlier:
        return None
    before = max(earlier, key=lambda other: order[id(other.op)])
    if _refusal(before, graph) is not None:
        return None
    own = {id(n) for n in before.nodes}
    between = graph.nodes[order[id(before.op)] + 1:order[id(layer.op)]]
    if all(id(n) in own or n.op_type in _BETWEEN_LAYERS for n in between):
        return before
    return None


@hookimpl
def byoc_estimate_transfer() -> Transfer:
    """The accelerator reads and writes host tensors in DRAM through its memory port: one
    beat of ``mem_port_bits`` per cycle after ``mem_latency`` cycles."""
    return Transfer(bandwidth=CONFIG.dram_bytes_per_second,
                    latency=CONFIG.mem_latency / CONFIG.clock_hz)


def _refusal(layer: IntegerLayer | AddSpec, graph: Graph) -> str | None:
    return (add_refusal(layer, graph, CONFIG) if isinstance(layer, AddSpec)
            else layer_refusal(layer, graph, CONFIG))


def _layers_of(nodes: list[Node], graph: Graph) -> list[IntegerLayer | AddSpec]:
    """The int8 layers made of ``nodes``, in graph order."""
    inside = {id(n) for n in nodes}
    layers = []
    for plan in integer_plans(graph).values():
        group = plan.group
        core = [n for n in (group.op, group.activation, group.quantize) if n is not None]
        if all(id(n) in inside for n in core):
            layers.append(plan.layer)
    for node in nodes:
        layer = qlinear_layer(graph, node)
        if layer is not None:
            layers.append(layer)
    for group in _add_groups(graph).values():
        if all(id(n) in inside for n in (group.op, group.activation, group.quantize)
               if n is not None):
            spec = qdq_add(graph, group)
            if isinstance(spec, AddSpec):
                layers.append(spec)
    order = {id(n): i for i, n in enumerate(graph.nodes)}
    return sorted(layers, key=lambda layer: order[id(layer.op)])


def _layer_of(match, graph: Graph) -> IntegerLayer | AddSpec | str:
    """The int8 layer one of vta_sim's pattern matches stands for, or why there is none."""
    if match.pattern == f"{NAME}.qlinear":
        layer = qlinear_layer(graph, match.captured["op"])
        return layer if layer is not None else "not a QLinear operator with constant parameters"
    quantize = match.captured["quantize"].name
    if match.pattern == f"{NAME}.qdq_add":
        return qdq_add(graph, _add_groups(graph)[quantize])
    plan = integer_plans(graph).get(quantize)
    return plan.layer if plan is not None else "not an integer layer"


@hookimpl
def byoc_lower_partition(partition: Partition, graph: Graph,
                         constants: dict[str, np.ndarray]) -> Program:
    layers = []
    for match in partition.matches:
        layer = _layer_of(match, graph)
        if isinstance(layer, str):
            raise PluginError(f"vta_sim cannot run node {match.root.name!r} "
                              f"({match.root.op_type}): {layer}")
        layers.append(layer)
    covered = {id(n) for layer in layers for n in layer.nodes}
    stray = [n for n in partition.nodes if id(n) not in covered]
    if stray:
        node = stray[0]
        raise PluginError(f"vta_sim: partition {partition.name!r} holds node {node.name!r} "
                          f"({node.op_type}), which is not part of an int8 layer vta_sim runs")
    produced = {layer.y for layer in layers}
    for value in partition.outputs:
        if value not in produced:
            raise PluginError(f"vta_sim: partition {partition.name!r} must output {value!r}, "
                              f"which is not the int8 result of one of its layers")
    for layer in layers:
        reason = _refusal(layer, graph)
        if reason is not None:
            raise PluginError(f"vta_sim cannot run node {layer.op.name!r} "
                              f"({layer.op.op_type}): {reason}")
    dequantized = _dequantized_inputs(partition, graph)
    read = {v for layer in layers for v in ((layer.a, layer.b) if isinstance(layer, AddSpec)
                                            else (layer.x,))}
    for value in partition.inputs:
        if value not in dequantized and value not in read:
            raise PluginError(f"vta_sim: partition {partition.name!r} reads {value!r}, which is "
                              f"not the int8 input of one of its layers")
    requested = set(partition.debug_outputs)
    taps = {layer.op.name: tap for layer in layers
            if (tap := accumulator_tap(layer, graph)) is not None and tap["name"] in requested}
    try:
        gen_layers, regions, values = lower_layers(layers, graph, CONFIG, taps=taps)
        program = generate(gen_layers, regions, CONFIG)
    except (ValueError, GenerationError) as err:
        raise PluginError(f"vta_sim: partition {partition.name!r}: {err}") from None
    program.values = values
    program.dequantized = dequantized
    program.debug_taps = [{**tap, "offset": int(program.taps[layer][0]),
                           "layout": _plain(program.taps[layer][1].__dict__)}
                          for layer, tap in taps.items()]
    return program


def _dequantized_inputs(partition: Partition, graph: Graph) -> dict[str, dict]:
    """Partition inputs that are the float output of a layer input's DequantizeLinear left
    outside the partition (it has other readers): the runtime quantizes them back, which
    gives the int8 values exactly (fl(fl(q * s) / s) rounds to q)."""
    inside = {id(n) for n in partition.nodes}
    groups = [plan.group for plan in integer_plans(graph).values()]
    groups += list(_add_groups(graph).values())
    out = {}
    for group in groups:
        readers = group.dequantize[:2] if group.op.op_type == "Add" else group.dequantize[:1]
        for dq in readers:
            if id(group.op) in inside and id(dq) not in inside and \
                    dq.outputs[0] in partition.inputs:
                zero = dq.inputs[2] if len(dq.inputs) > 2 and dq.inputs[2] else None
                out[dq.outputs[0]] = {
                    "quantized": dq.inputs[0],
                    "scale": float(graph.constants[dq.inputs[1]].reshape(())),
                    "zero": int(graph.constants[zero].reshape(())) if zero else 0}
    return out


@hookimpl
def byoc_codegen_partition(partition: Partition, lowered: Program) -> Payload:
    estimate = estimate_stream(decode_stream(lowered.stream), CONFIG)
    regions = {name: {"offset": int(offset), "layout": _plain(layout.__dict__),
                      "kind": lowered.values[name]["kind"],
                      "shift": int(lowered.values[name]["offset"])}
               for name, (offset, layout) in lowered.regions.items()}
    metadata = {"config": CONFIG.to_dict(), "regions": regions, "layers": lowered.summary,
                "dequantized_inputs": lowered.dequantized,
                "instructions": len(lowered.stream) // 16,
                "dram_bytes": int(lowered.dram.size),
                "estimated_cycles": int(estimate["cycles"])}
    if lowered.debug_taps:
        metadata["taps"] = lowered.debug_taps
    return Payload(lowered.stream, metadata, {"dram": lowered.dram})


def _plain(values: dict) -> dict:
    return {k: int(v) for k, v in values.items()}


@hookimpl
def byoc_plugin_options() -> list[PluginOption]:
    return [PluginOption("target", TARGETS, "sim",
                         "what runs the instruction streams: sim, the functional simulator; "
                         "rtl, the Verilated RTL of hw/vta; cosim, both, compared after "
                         "every run")]


@hookimpl
def byoc_runtime_create(payload: Payload, partition: PartitionSignature,
                        options: dict[str, Any]) -> VtaRuntime:
    return create_runtime(payload, partition, options)


@hookimpl
def byoc_cli_commands() -> list:
    return cli_commands()


@hookimpl
def byoc_conformance_limits() -> list[PatternLimits]:
    # Conv and matrix layers requantize with MULSHR, an exact fixed-point multiply by the
    # float32 multiplier, while the reference multiplies in float32 and rounds half to even:
    # a result near a rounding boundary may land one step the other way. The Add picks
    # multipliers that match the reference on every input pair, so it is held to equality.
    int8 = ("uint8", "int8")
    layer = {"x_dtype": int8, "per_channel": (False, True),
             "activation": (None, "Relu", "Clip")}
    return [
        PatternLimits(f"{NAME}.qdq_conv", quantized_steps=1,
                      accepts={**layer, "kernel": range(1, 8), "stride": (1, 2, 3),
                               "pad": (0, 1, 2), "dilation": (1, 2), "group": (1,),
                               "channels": range(1, 65), "filters": range(1, 65)}),
        PatternLimits(f"{NAME}.qdq_matmul", quantized_steps=1,
                      accepts={**layer, "m": range(1, 65), "k": range(1, 65),
                               "n": range(1, 65), "trans_b": (0, 1)}),
        PatternLimits(f"{NAME}.qdq_add",
                      accepts={"x_dtype": int8, "rank": (4,), "broadcast": ("none",),
                               "activation": (None, "Relu", "Clip")},
                      # Some ratios of the three scales have no fixed-point multipliers that
                      # match the reference on every input pair; lower.qdq_add declines them.
                      known_declines=("cannot reproduce the reference's float32 Add",)),
        PatternLimits(f"{NAME}.qlinear", quantized_steps=1,
                      accepts={"x_dtype": int8, "kernel": (1, 3, 5), "stride": (1, 2),
                               "group": (1,), "m": (1, 4), "n": (5, 16)}),
    ]
