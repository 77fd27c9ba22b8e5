"""From a partition's int8 layers to generator layers: checks, packing and layouts.

The integer meaning of each layer comes from byoc's core
(:class:`byoc.core.integer_layers.IntegerLayer`): QDQ groups as the reference
interpreter evaluates them, and QLinearConv / QLinearMatMul. :func:`layer_refusal` says why
the accelerator cannot run one (the pattern checks give it as the decline reason);
:func:`lower_layers` turns the layers of a partition into :class:`generator.Layer` objects
and the DRAM layout of every activation they touch.

byoc verify's debug request (``Partition.debug_outputs``) is honoured for the output of a
conv or matrix layer's op node (Conv, Gemm, MatMul), the one inner value the accelerator
computes: its int32 accumulator after the bias ADD equals that float output divided by
``x_scale * w_scale`` of each output channel. :func:`accumulator_tap` says what the runtime
needs to read it back; ``lower_layers(..., taps=...)`` gives those layers a debug tap, which
the generator writes in a second pass of the layer (see :mod:`byoc_vta_sim.generator`).
The DequantizeLinear outputs (the int8 inputs themselves) and a fused Relu's or Clip's output
(folded into the requantization's clamp) never exist on the accelerator, nor does an Add's
float sum (its fixed-point ALU chain is scaled for the output): those are left out.
"""

from __future__ import annotations

import math
from collections.abc import Collection
from dataclasses import dataclass, replace

import numpy as np

from byoc.core.integer_layers import IntegerLayer, activation_range
from byoc.core.interpreter.window import plan as plan_window
from byoc.core.ir import Graph, Node
from byoc.core.qdq import QdqGroup
from byoc_vta_sim.config import VtaConfig
from byoc_vta_sim.dram_layout import ActivationLayout, int8_offset, pack_weights
from byoc_vta_sim.generator import ADD_PARAM_ELEMENTS, AddLayer, Layer
from byoc_vta_sim.requant import mulshr, mulshr_operand
from byoc_vta_sim.tile_choice import best_tiling
from byoc_vta_sim.tiling import ConvShape, Tiling, choose_tiling

INT8_TYPES = (np.dtype(np.int8), np.dtype(np.uint8))


@dataclass(frozen=True)
class Geometry:
    """A layer seen as a 2-D convolution over N x C x H x W (a matmul is 1 x K x 1 x M)."""

    batch: int
    in_channels: int
    height: int
    width: int
    out_channels: int
    out_height: int
    out_width: int
    kernel: tuple[int, int]
    strides: tuple[int, int]
    dilations: tuple[int, int]
    pads: tuple[int, int, int, int]     # top, left, bottom, right

    @property
    def macs(self) -> int:
        return (self.batch * self.out_height * self.out_width * self.out_channels
                * self.in_channels * self.kernel[0] * self.kernel[1])


def geometry(layer: IntegerLayer, graph: Graph) -> Geometry:
    """The layer's convolution geometry; ValueError naming what does not fit the model."""
    x_shape = graph.types[layer.x].shape
    if layer.kind == "matmul":
        if len(x_shape) < 2 or layer.weight.ndim != 2:
            raise ValueError("the accelerator runs matrix products of a matrix (or a batch of "
                             "rows) by a constant 2-D weight")
        k, n = layer.weight.shape
        rows = math.prod(x_shape[:-1])
        return Geometry(1, k, 1, rows, n, 1, rows, (1, 1), (1, 1), (1, 1), (0, 0, 0, 0))
    attrs = layer.attrs
    if len(x_shape) != 4 or layer.weight.ndim != 4:
        raise ValueError(f"only 2-D convolutions are supported (input of rank {len(x_shape)})")
    if (attrs.get("group") or 1) != 1:
        raise ValueError(f"grouped convolution (group={attrs['group']}) is not supported; the "
                         f"GEMM core needs group=1")
    window = plan_window(x_shape[2:], layer.weight.shape[2:], strides=attrs.get("strides"),
                         dilations=attrs.get("dilations"), pads=attrs.get("pads"),
                         auto_pad=attrs.get("auto_pad") or "NOTSET")
    return Geometry(x_shape[0], x_shape[1], x_shape[2], x_shape[3], layer.weight.shape[0],
                    window.out_shape[0], window.out_shape[1], window.kernel, window.strides,
                    window.dilations, (window.pads_begin[0], window.pads_begin[1],
                                       window.pads_end[0], window.pads_end[1]))


def conv_shape(geo: Geometry, config: VtaConfig) -> ConvShape:
    in_blocks = -(-geo.in_channels // config.block_in)
    out_blocks = -(-geo.out_channels // config.block_out)
    # Fewer than three accumulator elements per layer would make consecutive micro-ops hit
    # the same element; extra (never stored) output blocks avoid that.
    out_blocks = max(out_blocks, -(-3 // (geo.out_height * geo.out_width)))
    return ConvShape(geo.batch, in_blocks, out_blocks, geo.out_height, geo.out_width,
                     geo.kernel[0], geo.kernel[1], geo.strides[0], geo.strides[1],
                     geo.dilations[0], geo.dilations[1])


def layer_refusal(layer: IntegerLayer, graph: Graph, config: VtaConfig) -> str | None:
    """Why the accelerator cannot run ``layer``, or None."""
    if config.batch != 1 or config.block_in != config.block_out:
        return (f"the instruction generator needs batch 1 and block_in == block_out (the "
                f"configuration has {config.batch}x{config.block_in}x{config.block_out})")
    for role, dtype in (("input", layer.x_dtype), ("output", layer.y_dtype)):
        if np.dtype(dtype) not in INT8_TYPES:
            return f"the {role} is {np.dtype(dtype)}; the accelerator takes int8 or uint8"
    if layer.weight.dtype != np.int8:
        return f"the weights are {layer.weight.dtype}; the GEMM core multiplies int8 weights"
    if np.any(layer.w_zero):
        return "the weights have a nonzero zero point; the accelerator needs symmetric weights"
    try:
        geo = geometry(layer, graph)
        for m in np.atleast_1d(layer.multiplier):
            mulshr_operand(float(m))
    except ValueError as err:
        return str(err)
    shape = conv_shape(geo, config)
    if choose_tiling(shape, config) is None:
        return (f"no tile of this layer fits the buffers ({shape.in_blocks} input blocks, "
                f"{shape.kernel_h}x{shape.kernel_w} kernel, stride {shape.stride_h}x"
                f"{shape.stride_w}; INP half {config.inp_depth // 2}, WGT half "
                f"{config.wgt_depth // 2}, ACC half {config.acc_depth // 2} elements)")
    return None


def estimated_cycles(layer: IntegerLayer, graph: Graph, config: VtaConfig) -> int | None:
    from byoc_vta_sim.tiling import estimate_cycles
    if layer_refusal(layer, graph, config) is not None:
        return None
    shape = conv_shape(geometry(layer, graph), config)
    return estimate_cycles(shape, choose_tiling(shape, config), config)


@dataclass
class AddSpec:
    """A QDQ elementwise Add: y = Q(DQ(a) + DQ(b)) [with a fused Relu/Clip], on equal 4-D
    shapes. The accelerator computes it in fixed point: with ``shift`` S, ma = round(Ma 2**S)
    and mb = round(Mb 2**S) for Ma = a_scale / y_scale and Mb = b_scale / y_scale,
    y = round_half_up((ma (a - a_zero) + mb (b - b_zero) + offset) / 2**S) + y_zero, clamped
    to [out_min, out_max]; :func:`qdq_add` chooses ma, mb, S and offset so that this equals
    the reference on every input pair."""

    op: Node
    nodes: list[Node]
    a: str
    b: str
    y: str
    a_zero: int
    b_zero: int
    a_dtype: np.dtype
    b_dtype: np.dtype
    y_zero: int
    y_dtype: np.dtype
    out_min: int
    out_max: int
    ma: int
    mb: int
    shift: int
    offset: int = 0            # added before the rounding shift (see _exact_add)

    kind = "add"


# The fixed-point multipliers of an Add stay below 2**21 so that ma*a + mb*b + c (|a|, |b| <=
# 128 after the int8 shift, zero points folded into c) cannot overflow int32.
ADD_MULTIPLIER_BITS = 21


def qdq_add(graph: Graph, group: QdqGroup) -> AddSpec | str:
    """The Add group as an :class:`AddSpec`, or the reason the accelerator cannot run it."""
    dq_a, dq_b = group.dequantize[0], group.dequantize[1]
    params = []
    for node in (dq_a, dq_b, group.quantize):
        scale = node.inputs[1]
        zero = node.inputs[2] if len(node.inputs) > 2 else ""
        if not graph.is_constant(scale) or (zero and not graph.is_constant(zero)):
            return "the scales and zero points must be constants"
        s = graph.constants[scale]
        z = graph.constants[zero] if zero else np.zeros((), graph.types[node.outputs[0]].dtype
                                                        if node is group.quantize else
                                                        graph.types[node.inputs[0]].dtype)
        if s.size != 1 or z.size != 1:
            return "only per-tensor scales and zero points are supported for Add"
        params.append((float(np.float32(s.reshape(()))), int(z.reshape(())), z.dtype))
    a, b, y = dq_a.inputs[0], dq_b.inputs[0], group.quantize.outputs[0]
    shapes = {graph.types[v].shape for v in (a, b, y)}
    if len(shapes) != 1 or len(graph.types[y].shape) != 4:
        return ("the accelerator adds two 4-D tensors of the same shape (no broadcasting); "
                f"got {', '.join(str(graph.types[v].shape) for v in (a, b))}")
    for v in (a, b, y):
        if graph.types[v].dtype not in INT8_TYPES:
            return f"{v!r} is {graph.types[v].dtype}; the accelerator takes int8 or uint8"
    y_scale, y_zero, y_dtype = params[2]
    out_range = activation_range(graph, group.activation, np.float32(y_scale),
                                 np.asarray(y_zero, y_dtype))
    if out_range is None:
        return "only Relu or Clip with constant bounds can follow the Add"
    ma, mb = params[0][0] / y_scale, params[1][0] / y_scale
    shift = ADD_MULTIPLIER_BITS - 1 - math.floor(math.log2(max(ma, mb)))
    if not 1 <= shift <= 63:
        return f"the requantization multipliers {ma:g}, {mb:g} need a shift outside 1..63"
    spec = AddSpec(group.op, group.nodes, a, b, y, params[0][1], params[1][1],
                   graph.types[a].dtype, graph.types[b].dtype, y_zero, y_dtype, out_range[0],
                   out_range[1], round(ma * 2 ** shift), round(mb * 2 ** shift), shift)
    return _exact_add(spec, graph, group)


def _exact_add(spec: AddSpec, graph: Graph, group: QdqGroup) -> AddSpec | str:
    """``spec`` with multipliers and a rounding offset that give the reference's result for
    every pair of inputs, or why there are none.

    The reference adds in float32, which a fixed-point multiply reproduces except near
    rounding ties, and one differing element spreads through every later layer. An Add has
    only 256 x 256 input pairs, so the candidates (multipliers next to the rounded ones, one
    or two more bits of shift) are checked on all of them; for each, the offsets added
    before the rounding shift that are right for every pair form an interval, computed
    directly. The int32 intermediates of the ALU chain must not overflow."""
    expected = _reference_add_table(graph, group, spec)
    a, b = _operand_grids(spec)
    zero = spec.y_zero
    beyond = 1 << (31 - spec.shift + 2)    # further than any int32 total can round to
    low = np.where(expected <= spec.out_min, -beyond, expected - zero)
    high = np.where(expected >= spec.out_max, beyond, expected - zero)
    candidates = sorted(
        ((extra, d_a, d_b) for extra in range(3) for d_a in range(-3, 4)
         for d_b in range(-3, 4)), key=lambda c: (abs(c[1]) + abs(c[2]), c[0]))
    for extra, d_a, d_b in candidates:
        shift = spec.shift + extra
        if shift > 63:
            continue
        ma = (spec.ma << extra) + d_a
        mb = (spec.mb << extra) + d_b
        total = ma * a + mb * b
        if max(abs(int(total.min())), abs(int(total.max())), ma * 256, mb * 256) >= 2 ** 30:
            continue
        half = 1 << (shift - 1)
        # round_half_up((total + offset) / 2**shift) in [low, high] for every pair.
        offset_min = int((low * (1 << shift) - total - half).max())
        offset_max = int(((high + 1) * (1 << shift) - total - half - 1).min())
        if offset_min <= offset_max and min(abs(offset_min), abs(offset_max)) < 2 ** 29:
            offset = min(max(0, offset_min), offset_max)
            exact = replace(spec, ma=ma, mb=mb, shift=shift, offset=offset)
            if np.array_equal(fixed_point_add_table(exact), expected):
                return exact
    return ("the accelerator's fixed-point Add cannot reproduce the reference's float32 Add "
            "on every input pair (near rounding ties), and one differing element spreads "
            "through every later layer")


def _operand_grids(spec: AddSpec) -> tuple[np.ndarray, np.ndarray]:
    """(a - a_zero, b - b_zero) for every pair of inputs, as int64."""
    return np.meshgrid(_pairs(spec.a_dtype).astype(np.int64) - spec.a_zero,
                       _pairs(spec.b_dtype).astype(np.int64) - spec.b_zero, indexing="ij")


def _pairs(dtype: np.dtype) -> np.ndarray:
    info = np.iinfo(dtype)
    return np.arange(info.min, int(info.max) + 1).astype(dtype)


def _reference_add_table(graph: Graph, group: QdqGroup, spec: AddSpec) -> np.ndarray:
    """The group's output for every (a, b) pair, from the reference interpreter's ops."""
    from byoc.core.interpreter.runner import evaluate_node

    a, b = np.meshgrid(_pairs(spec.a_dtype), _pairs(spec.b_dtype), indexing="ij")
    env = {spec.a: a, spec.b: b}
    opset = graph.opsets.get("", 0)
    for node in [*group.dequantize[:2], group.op, group.activation, group.quantize]:
        if node is None:
            continue
        inputs = [env[v] if v in env else graph.constants.get(v) if v else None
                  for v in node.inputs]
        for name, value in zip(node.outputs, evaluate_node(node, inputs, opset=opset)):
            env[name] = value
    return env[spec.y].astype(np.int64)


def fixed_point_add_table(spec: AddSpec) -> np.ndarray:
    """What the accelerator's ALU chain and requantizing STORE (generator._emit_add)
    compute for every (a, b)."""
    a, b = _operand_grids(spec)
    total = spec.ma * a + spec.mb * b + spec.offset
    rounded = mulshr(total, np.full(total.shape, (1 << 6) | spec.shift))
    return np.clip(rounded.astype(np.int64) + spec.y_zero, spec.out_min, spec.out_max)


def add_tiling(channel_blocks: int, height: int, width: int, config: VtaConfig) -> Tiling | None:
    """The tile of an Add with the fewest tiles: a, b in INP and A, B in ACC per half."""
    inp, _wgt, acc = (config.inp_depth // 2, config.wgt_depth // 2, config.acc_depth // 2)
    best = None
    for tcb in range(channel_blocks, 0, -1):
        for tw in (width, *range(width - 1, 0, -1)):
            th = min(height, inp // (2 * tcb * tw),
                     (acc - ADD_PARAM_ELEMENTS) // (2 * tcb * tw))
            if th < 1 or tcb * th * tw < 3:
                continue
            tiles = math.ceil(channel_blocks / tcb) * math.ceil(height / th) * \
                math.ceil(width / tw)
            edge = ((channel_blocks - 1) % tcb + 1) * ((height - 1) % th + 1) * \
                ((width - 1) % tw + 1)
            if edge >= 3 and (best is None or tiles < best[0]):
                best = (tiles, Tiling(tcb, 1, th, tw))
            break
    return None if best is None else best[1]


def value_layout(shape: tuple[int, ...], kind: str, pads: tuple[int, int, int, int],
                 fill: int, config: VtaConfig) -> ActivationLayout:
    """The DRAM layout of an activation: N x C x H x W for convolutions, rows x K for
    matrix products (as a 1 x K x 1 x rows image)."""
    if kind == "matmul":
        return ActivationLayout(1, shape[-1], 1, math.prod(shape[:-1]), 0, 0, 0, 0,
                                config.block_in, fill)
    top, left, bottom, right = pads
    return ActivationLayout(shape[0], shape[1], shape[2], shape[3], top, bottom, left, right,
                            config.block_in, fill)


def add_refusal(spec: AddSpec, graph: Graph, config: VtaConfig) -> str | None:
    n, c, h, w = graph.types[spec.y].shape
    if add_tiling(-(-c // config.block_out), h, w, config) is None:
        return "no tile of this Add fits the buffers with at least 3 accumulator elements"
    return None


def accumulator_tap(layer: IntegerLayer | AddSpec, graph: Graph) -> dict | None:
    """What a debug tap of the layer's op node output holds, for the runtime: the value's
    ``name``, its op ``node``, ``kind`` (conv or matmul), graph ``shape``, and the float
    ``scales`` (``x_scale * w_scale``, one per output channel) that turn the int32
    accumulator into it; None for a layer whose op output the accelerator never holds (an
    Add, or a QLinear operator, whose op output is the int8 result)."""
    if isinstance(layer, AddSpec) or layer.op.outputs[0] == layer.y:
        return None
    producers = {value: node for node in graph.nodes for value in node.outputs}
    x_dq, w_dq = (producers.get(v) for v in layer.op.inputs[:2])
    if any(dq is None or dq.op_type != "DequantizeLinear" for dq in (x_dq, w_dq)):
        return None
    x_scale = np.float64(graph.constants[x_dq.inputs[1]].reshape(()))
    w_scales = np.asarray(graph.constants[w_dq.inputs[1]], np.float64).ravel()
    scales = np.broadcast_to(x_scale * w_scales, (layer.out_channels,))
    value = layer.op.outputs[0]
    return {"name": value, "node": layer.op.name, "kind": layer.kind,
            "shape": list(graph.types[value].shape), "scales": [float(s) for s in scales]}


def lower_layers(layers: list[IntegerLayer | AddSpec], graph: Graph, config: VtaConfig,
                 taps: Collection[str] = ()
                 ) -> tuple[list[Layer | AddLayer], dict[str, ActivationLayout], dict[str, dict]]:
    """Generator layers, the layout of every activation, and per activation how the runtime
    converts it (kind, dtype, int8 offset). The conv and matrix layers whose op node is
    named in ``taps`` get a debug tap of their accumulator: one byte plane of it is laid out
    like the op's output, unpadded."""
    geometries = [None if isinstance(layer, AddSpec) else geometry(layer, graph)
                  for layer in layers]
    # Each activation is padded for the most demanding reader, and its border holds the
    # readers' input zero point.
    pads: dict[str, tuple[int, int, int, int]] = {}
    fills: dict[str, int] = {}
    values: dict[str, dict] = {}

    def read(value, kind, dtype, zero, value_pads):
        fill = zero - int8_offset(dtype)
        if value in fills and fills[value] != fill and any(pads[value] + value_pads):
            raise ValueError(f"{value!r} is padded with different zero points by its readers")
        old = pads.get(value, (0, 0, 0, 0))
        pads[value] = tuple(max(a, b) for a, b in zip(old, value_pads))
        fills[value] = fill
        spec = {"kind": kind, "dtype": np.dtype(dtype).name, "offset": int8_offset(dtype)}
        if values.setdefault(value, spec)["kind"] != kind:
            raise ValueError(f"{value!r} is read both as an image and as a matrix")

    for layer, geo in zip(layers, geometries):
        if isinstance(layer, AddSpec):
            read(layer.a, "conv", layer.a_dtype, layer.a_zero, (0, 0, 0, 0))
            read(layer.b, "conv", layer.b_dtype, layer.b_zero, (0, 0, 0, 0))
        else:
            read(layer.x, layer.kind, layer.x_dtype, layer.x_zero, geo.pads)
    for layer in layers:
        kind = "conv" if isinstance(layer, AddSpec) else layer.kind
        fills.setdefault(layer.y, layer.y_zero - int8_offset(layer.y_dtype))
        spec = {"kind": kind, "dtype": np.dtype(layer.y_dtype).name,
                "offset": int8_offset(layer.y_dtype)}
        if values.setdefault(layer.y, spec)["kind"] != kind:
            raise ValueError(f"{layer.y!r} is read both as an image and as a matrix")
    regions = {name: value_layout(graph.types[name].shape, spec["kind"],
                                  pads.get(name, (0, 0, 0, 0)), fills[name], config)
               for name, spec in values.items()}
    out = []
    for layer, geo in zip(layers, geometries):
        zero = layer.y_zero - int8_offset(layer.y_dtype)
        low, high = (layer.out_min - int8_offset(layer.y_dtype),
                     layer.out_max - int8_offset(layer.y_dtype))
        if isinstance(layer, AddSpec):
            out.append(_add_layer(layer, regions[layer.y], zero, low, high, config))
            continue
        shape = conv_shape(geo, config)
        source = regions[layer.x]
        out.append(Layer(
            name=layer.op.name, shape=shape, tiling=best_tiling(shape, config),
            source=layer.x, target=layer.y,
            window_top=source.pad_top - geo.pads[0], window_left=source.pad_left - geo.pads[1],
            weights=_weights(layer, shape, config), params=_params(layer, geo, shape, config),
            zero_point=zero, lower_bound=low, upper_bound=high,
            tap=value_layout(graph.types[layer.y].shape, layer.kind, (0, 0, 0, 0), 0, config)
            if layer.op.name in taps else None))
    return out, regions, values


def _add_layer(spec: AddSpec, layout: ActivationLayout, zero: int, low: int, high: int,
               config: VtaConfig) -> AddLayer:
    blocks = layout.channel_blocks
    shape = ConvShape(layout.batch, blocks, blocks, layout.height, layout.width,
                      1, 1, 1, 1, 1, 1)
    a_zero = spec.a_zero - int8_offset(spec.a_dtype)
    b_zero = spec.b_zero - int8_offset(spec.b_dtype)
    constant = spec.offset - (spec.ma * a_zero + spec.mb * b_zero)
    params = np.array([spec.ma << 6, spec.mb << 6, constant], np.int64)
    params = np.repeat(params[:, None], config.block_out, axis=1).astype(np.int32)
    return AddLayer(spec.op.name, spec.a, spec.b, spec.y, shape,
                    add_tiling(blocks, layout.height, layout.width, config), params,
                    spec.shift, zero, low, high)


def _weights(layer: IntegerLayer, shape: ConvShape, config: VtaConfig) -> np.ndarray:
    weight = layer.weight
    if layer.kind == "matmul":
        weight = weight.T[:, :, None, None]       # K x N -> N x K x 1 x 1
    return pack_weights(np.asarray(weight, np.int8), shape.out_blocks, config.block_out,
                        config.block_in)


def _params(layer: IntegerLayer, geo: Geometry, shape: ConvShape,
            config: VtaConfig) -> np.ndarray:
    """Per output channel: the bias with the input zero point folded in, and the MULSHR
    operand; as (out_blocks, 2, block_out) int32."""
    weight = layer.weight if layer.kind == "conv" else layer.weight.T
    sums = weight.reshape(geo.out_channels, -1).astype(np.int64).sum(axis=1)
    x_zero = layer.x_zero - int8_offset(layer.x_dtype)
    bias = np.zeros(geo.out_channels, np.int64) if layer.bias is None else layer.bias
    folded = np.broadcast_to(bias, (geo.out_channels,)) - x_zero * sums
    wrapped = ((folded + (1 << 31)) % (1 << 32) - (1 << 31)).astype(np.int32)
    multipliers = np.broadcast_to(np.asarray(layer.multiplier, np.float32).ravel(),
                                  (geo.out_channels,))
    operands = np.array([mulshr_operand(float(m)) for m in multipliers], np.int64)
    params = np.zeros((shape.out_blocks * config.block_out, 2), np.int32)
    params[:geo.out_channels, 0] = wrapped
    params[:geo.out_channels, 1] = operands.astype(np.int32)
    return np.ascontiguousarray(
        params.reshape(shape.out_blocks, config.block_out, 2).transpose(0, 2, 1))
