"""From a partition's int8 layers to generator layers: checks, packing and layouts.

The integer meaning of each layer comes from byoc's core
(:class:`byoc.core.interpreter.integer_groups.IntegerLayer`): QDQ groups as the reference
interpreter evaluates them, and QLinearConv / QLinearMatMul. :func:`layer_refusal` says why
the accelerator cannot run one (the pattern checks give it as the decline reason);
:func:`lower_layers` turns the layers of a partition into :class:`generator.Layer` objects
and the DRAM layout of every activation they touch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from byoc.core.interpreter.integer_groups import IntegerLayer
from byoc.core.interpreter.window import plan as plan_window
from byoc.core.ir import Graph
from byoc_vta_sim.config import VtaConfig
from byoc_vta_sim.generator import Layer
from byoc_vta_sim.layout import ActivationLayout, int8_offset, pack_weights
from byoc_vta_sim.requant import mulshr_operand
from byoc_vta_sim.tiling import ConvShape, choose_tiling

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


def lower_layers(layers: list[IntegerLayer], graph: Graph, config: VtaConfig
                 ) -> tuple[list[Layer], dict[str, ActivationLayout], dict[str, dict]]:
    """Generator layers, the layout of every activation, and per activation how the runtime
    converts it (kind, dtype, int8 offset)."""
    geometries = [geometry(layer, graph) for layer in layers]
    # Each activation is padded for the most demanding reader, and its border holds the
    # readers' input zero point.
    pads: dict[str, tuple[int, int, int, int]] = {}
    fills: dict[str, int] = {}
    kinds: dict[str, str] = {}
    values: dict[str, dict] = {}
    for layer, geo in zip(layers, geometries):
        fill = layer.x_zero - int8_offset(layer.x_dtype)
        if layer.x in fills and fills[layer.x] != fill and any(pads[layer.x] + geo.pads):
            raise ValueError(f"{layer.x!r} is padded with different zero points by its readers")
        old = pads.get(layer.x, (0, 0, 0, 0))
        pads[layer.x] = tuple(max(a, b) for a, b in zip(old, geo.pads))
        fills[layer.x] = fill
        kinds.setdefault(layer.x, layer.kind)
        values[layer.x] = {"kind": layer.kind, "dtype": np.dtype(layer.x_dtype).name,
                           "offset": int8_offset(layer.x_dtype)}
    for layer in layers:
        kinds.setdefault(layer.y, layer.kind)
        fills.setdefault(layer.y, layer.y_zero - int8_offset(layer.y_dtype))
        values.setdefault(layer.y, {"kind": layer.kind, "dtype": np.dtype(layer.y_dtype).name,
                                    "offset": int8_offset(layer.y_dtype)})
    for name, kind in kinds.items():
        if values[name]["kind"] != kind:
            raise ValueError(f"{name!r} is read both as an image and as a matrix")
    regions = {name: value_layout(graph.types[name].shape, kinds[name],
                                  pads.get(name, (0, 0, 0, 0)), fills[name], config)
               for name in kinds}
    out = []
    for layer, geo in zip(layers, geometries):
        shape = conv_shape(geo, config)
        tiling = choose_tiling(shape, config)
        source = regions[layer.x]
        out.append(Layer(
            name=layer.op.name, shape=shape, tiling=tiling, source=layer.x, target=layer.y,
            window_top=source.pad_top - geo.pads[0], window_left=source.pad_left - geo.pads[1],
            weights=_weights(layer, shape, config), params=_params(layer, geo, shape, config),
            zero_point=layer.y_zero - int8_offset(layer.y_dtype),
            lower_bound=layer.out_min - int8_offset(layer.y_dtype),
            upper_bound=layer.out_max - int8_offset(layer.y_dtype)))
    return out, regions, values


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
