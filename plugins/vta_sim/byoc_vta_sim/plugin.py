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

import functools
import os
from dataclasses import dataclass
from typing import Any

import numpy as np

from byoc.core.integer_layers import (
    IntegerLayer,
    integer_plans,
    qlinear_layer,
)
from byoc.core.ir import Graph, Node
from byoc.core.qdq import QdqGroup, find_qdq_groups
from byoc.errors import PluginError, PluginOptionError
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
    HardwareFigures,
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
from byoc_vta_sim.config import (
    DEFAULT_CONFIG,
    PARAMETERS,
    ConfigError,
    VtaConfig,
    config_from_dict,
    configured,
)
from byoc_vta_sim.generator import GenerationError, Program, generate
from byoc_vta_sim.isa import decode_stream
from byoc_vta_sim.lower import (
    AddSpec,
    accumulator_tap,
    add_refusal,
    estimated_cycles,
    geometry,
    layer_refusal,
    lower_layers,
    qdq_add,
)
from byoc_vta_sim.runtime import TARGETS, VtaRuntime, create_runtime
from byoc_vta_sim.timing import estimate_stream

NAME = "vta_sim"


def config_of(options: dict[str, Any]) -> VtaConfig:
    """The hardware configuration a compile's options ask for: the file of ``config`` (VTA's
    default one when not given) with every parameter option given overriding its value
    (see :func:`byoc_plugin_options`). A configuration vta_sim refuses is the user's to
    fix: a PluginOptionError naming the parameter and the rule."""
    path = options.get("config")
    overrides = {name: options.get(name) for name in PARAMETERS}
    key = (path, _file_stamp(path), *overrides.values())
    if key not in _CONFIGS:
        try:
            config = configured(path, overrides)
        except ConfigError as err:
            raise PluginOptionError(f"{err}. Fix the option (--plugin-option "
                                    f"vta_sim.NAME=VALUE) or the configuration file") from None
        if len(_CONFIGS) >= 64:
            _CONFIGS.clear()
        _CONFIGS[key] = config
    return _CONFIGS[key]


# The configurations of the options seen, by option values and the file's modification
# stamp: a compile asks for its configuration in every hook, for every match.
_CONFIGS: dict[tuple, VtaConfig] = {}


def _file_stamp(path: str | None) -> tuple[int, int] | None:
    try:
        stat = os.stat(path) if path is not None else None
    except OSError:
        return None     # configured() names the file it cannot read
    return (stat.st_mtime_ns, stat.st_size) if stat else None


def config_source(options: dict[str, Any]) -> dict[str, Any]:
    """Where a compile's configuration came from, as the artifact records it: the file
    (None for vta_default.yaml) and the parameters overridden."""
    return {"file": options.get("config"),
            "overrides": {name: options[name] for name in PARAMETERS
                          if options.get(name) is not None}}


@hookimpl
def byoc_plugin_info() -> PluginInfo:
    c = DEFAULT_CONFIG
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


def _check_qdq(match, graph: Graph, config: VtaConfig):
    layer = _qdq_layer(match, graph)
    if layer is None:
        return Decline("not an integer layer: the reference gives this group float semantics "
                       "(it needs per-tensor input/output scales, constant weights, an int32 "
                       "bias with scale x_scale * w_scale, and Relu, Clip with constant bounds "
                       "or no activation)")
    reason = layer_refusal(layer, graph, config)
    return Accept() if reason is None else Decline(reason)


def _check_qlinear(match, graph: Graph, config: VtaConfig):
    layer = qlinear_layer(graph, match.captured["op"])
    if layer is None:
        return Decline("the scales, zero points and weights must be constants, with "
                       "per-tensor input and output scales")
    reason = layer_refusal(layer, graph, config)
    return Accept() if reason is None else Decline(reason)


def _add_groups(graph: Graph) -> dict[str, QdqGroup]:
    """QDQ Add groups by the name of their QuantizeLinear."""
    return {g.quantize.name: g for g in find_qdq_groups(graph, ops=("Add",))}


def _check_add(match, graph: Graph, config: VtaConfig):
    group = _add_groups(graph).get(match.captured["quantize"].name)
    if group is None or group.op is not match.captured["op"]:
        return Decline("not a QDQ Add group")
    spec = qdq_add(graph, group)
    if isinstance(spec, str):
        return Decline(spec)
    reason = add_refusal(spec, graph, config)
    return Accept() if reason is None else Decline(reason)


@hookimpl
def byoc_partition_patterns(options: dict[str, Any]) -> list:
    config = config_of(options)
    qdq = functools.partial(_check_qdq, config=config)
    return [make_qdq_pattern(f"{NAME}.qdq_conv", ("Conv",), check=qdq),
            make_qdq_pattern(f"{NAME}.qdq_matmul", ("MatMul", "Gemm"), check=qdq),
            make_qdq_elementwise_pattern(f"{NAME}.qdq_add", ("Add",),
                                         check=functools.partial(_check_add, config=config)),
            make_qlinear_pattern(f"{NAME}.qlinear", constant_weights=True,
                                 check=functools.partial(_check_qlinear, config=config))]


@hookimpl
def byoc_partition_cost(pattern_name: str, nodes: list[Node], graph: Graph,
                        options: dict[str, Any]) -> float | None:
    layers = _layers_of(nodes, graph)
    if len(layers) != 1 or isinstance(layers[0], AddSpec):
        return None
    return estimated_cycles(layers[0], graph, config_of(options))


@hookimpl
def byoc_estimate_match(nodes: list[Node], graph: Graph, options: dict[str, Any]
                        ) -> Estimate | None:
    """The cycles these layers add to a partition's instruction stream, from the timing
    model (:mod:`byoc_vta_sim.timing`), at the configuration's clock.

    A partition's estimate is the sum of its matches'. Within one stream the modules
    overlap a layer's first loads with the last computation and stores of the layer before
    it, and the stream's start (the first fetch) and FINISH are paid once. So when the int8
    layer just before these ones (in graph order, only Quantize/DequantizeLinear between)
    is one vta_sim takes, and so would share their partition, the estimate is what these
    layers add to that layer's stream; otherwise it is their own stream's cycles."""
    config = config_of(options)
    layers = _layers_of(nodes, graph)
    if not layers or any(_refusal(layer, graph, config) is not None for layer in layers):
        return None
    cycles = _stream_cycles(layers, graph, config)
    if cycles is None:
        return None
    before = _layer_before(layers[0], graph, config)
    if before is not None:
        alone = _stream_cycles([before], graph, config)
        together = _stream_cycles([before, *layers], graph, config)
        if alone is not None and together is not None:
            cycles = together - alone
    bytes_in, bytes_out = boundary_bytes(nodes, graph)
    return Estimate(cycles / config.clock_hz, cycles, bytes_in, bytes_out,
                    f"vta_sim timing model of the generated instruction stream at "
                    f"{config.clock_hz / 1e6:g} MHz")


def _stream_cycles(layers: list[IntegerLayer | AddSpec], graph: Graph, config: VtaConfig
                   ) -> int | None:
    """The timing model's cycles for the stream of ``layers`` alone, or None if the
    lowering or the generator refuses them. Remembered for the layers of the last graphs
    estimated: a match's own stream is also the stream of the layer before the next one."""
    key = (config, id(graph), *map(id, layers))
    known = _STREAMS.get(key)
    if known is not None and all(a is b for a, b in zip(known[0], layers)):
        return known[1]
    try:
        gen_layers, regions, _ = lower_layers(layers, graph, config)
        program = generate(gen_layers, regions, config)
        cycles = estimate_stream(decode_stream(program.stream), config)["cycles"]
    except (ValueError, GenerationError):
        cycles = None
    if len(_STREAMS) >= 512:
        _STREAMS.clear()
    _STREAMS[key] = (list(layers), cycles)   # the layers are kept, so their ids stay theirs
    return cycles


# (config, id(graph), id(layer), ...) -> (the layers, their stream's cycles); see
# _stream_cycles.
_STREAMS: dict[tuple, tuple[list, int | None]] = {}

_BETWEEN_LAYERS = ("QuantizeLinear", "DequantizeLinear")


def _layer_before(layer: IntegerLayer | AddSpec, graph: Graph, config: VtaConfig
                  ) -> IntegerLayer | AddSpec | None:
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
    if _refusal(before, graph, config) is not None:
        return None
    own = {id(n) for n in before.nodes}
    between = graph.nodes[order[id(before.op)] + 1:order[id(layer.op)]]
    if all(id(n) in own or n.op_type in _BETWEEN_LAYERS for n in between):
        return before
    return None


@hookimpl
def byoc_estimate_transfer(options: dict[str, Any]) -> Transfer:
    """The accelerator reads and writes host tensors in DRAM through its memory port: one
    beat of ``mem_port_bits`` per cycle after ``mem_latency`` cycles."""
    config = config_of(options)
    return Transfer(bandwidth=config.dram_bytes_per_second,
                    latency=config.mem_latency / config.clock_hz)


def _refusal(layer: IntegerLayer | AddSpec, graph: Graph, config: VtaConfig) -> str | None:
    return (add_refusal(layer, graph, config) if isinstance(layer, AddSpec)
            else layer_refusal(layer, graph, config))


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
                         constants: dict[str, np.ndarray], options: dict[str, Any]) -> Lowered:
    config = config_of(options)
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
        reason = _refusal(layer, graph, config)
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
        gen_layers, regions, values = lower_layers(layers, graph, config, taps=taps)
        program = generate(gen_layers, regions, config)
    except (ValueError, GenerationError) as err:
        raise PluginError(f"vta_sim: partition {partition.name!r}: {err}") from None
    program.values = values
    program.dequantized = dequantized
    program.debug_taps = [{**tap, "offset": int(program.taps[layer][0]),
                           "layout": _plain(program.taps[layer][1].__dict__)}
                          for layer, tap in taps.items()]
    macs = sum(geometry(layer, graph).macs for layer in layers if not isinstance(layer, AddSpec))
    return Lowered(program, config, config_source(options), macs)


@dataclass
class Lowered:
    """A partition lowered for one configuration: the generated program, the configuration
    and where it came from (both recorded in the payload), and the multiply-accumulates
    its layers do (the ideal of its GEMM work)."""

    program: Program
    config: VtaConfig
    source: dict[str, Any]
    macs: int


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
def byoc_codegen_partition(partition: Partition, lowered: Lowered) -> Payload:
    program, config = lowered.program, lowered.config
    estimate = estimate_stream(decode_stream(program.stream), config)
    regions = {name: {"offset": int(offset), "layout": _plain(layout.__dict__),
                      "kind": program.values[name]["kind"],
                      "shift": int(program.values[name]["offset"])}
               for name, (offset, layout) in program.regions.items()}
    metadata = {"config": config.to_dict(), "config_source": lowered.source,
                "regions": regions, "layers": program.summary,
                "dequantized_inputs": program.dequantized,
                "instructions": len(program.stream) // 16,
                "dram_bytes": int(program.dram.size),
                "estimated_cycles": int(estimate["cycles"]), "macs": lowered.macs}
    if program.debug_taps:
        metadata["taps"] = program.debug_taps
    return Payload(program.stream, metadata, {"dram": program.dram})


def _plain(values: dict) -> dict:
    return {k: int(v) for k, v in values.items()}


@hookimpl
def byoc_plugin_options() -> list[PluginOption]:
    """``target`` (run stage) chooses what runs the streams. The hardware configuration is
    chosen at compile time and recorded in the artifact: ``config`` names a YAML file of the
    form of vta_default.yaml, and each hardware parameter (``block_out``, ``inp_depth``,
    ``mem_port_bits``, ...) is an option of its own that overrides the file's value."""
    defaults = DEFAULT_CONFIG.to_dict()
    return [PluginOption("target", TARGETS, "sim",
                         "what runs the instruction streams: sim, the functional simulator; "
                         "rtl, the Verilated RTL of hw/vta; cosim, both, compared after "
                         "every run"),
            PluginOption("config", str, None,
                         "the hardware configuration: a YAML file of the form of vta_sim's "
                         "vta_default.yaml (default: that file, VTA's 1x16x16)",
                         stage="compile"),
            *(PluginOption(name, int, None,
                           f"hardware parameter {name}, overriding the configuration file's "
                           f"(default file: {defaults[name]})", stage="compile")
              for name in PARAMETERS)]


@hookimpl
def byoc_runtime_create(payload: Payload, partition: PartitionSignature,
                        options: dict[str, Any]) -> VtaRuntime:
    return create_runtime(payload, partition, options)


@hookimpl
def byoc_hardware_figures(payload: Payload, counters: dict[str, int | float]
                          ) -> HardwareFigures | None:
    """The figures of a partition's runs, for ``byoc sweep``: the RTL's cycles where it ran
    (targets rtl and cosim), else the timing model's estimate of the stream; the GEMM's ideal
    (the layers' multiply-accumulates over the configuration's MACs per cycle); the bytes the
    load and store modules moved; the configuration's on-chip buffer bytes; and, on target
    cosim, whether every run's DRAM equalled the functional simulator's."""
    meta = payload.metadata
    if "macs" not in meta:
        return None     # compiled by a vta_sim before 0.9: no figures recorded
    config = config_from_dict(meta["config"], "configuration in the artifact")
    runs = counters.get("runs", 0)
    cycles = counters.get("rtl_cycles", counters.get("cycles", counters.get("estimated_cycles")))
    moved = sum(value for name, value in counters.items() if name.startswith(("bytes_loaded_",
                                                                              "bytes_stored_")))
    equal = None
    if "rtl_runs_equal" in counters:
        equal = counters["rtl_runs_equal"] == runs
    return HardwareFigures(int(cycles or 0), -(-meta["macs"] * runs // config.macs_per_cycle),
                           int(moved), config.sram_bytes, equal)


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
