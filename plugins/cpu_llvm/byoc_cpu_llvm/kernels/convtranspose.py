"""ConvTranspose (float32, any number of spatial axes): groups, strides, dilations, pads,
output_padding, output_shape and auto_pad, with constant or run-time weights and bias.

The kernel gathers rather than scatters: output position ``o`` (in the full, uncropped result
``o + crop_begin``) receives input position ``i`` through kernel tap ``k`` exactly when
``o + crop_begin - k * d == i * s``, so each output element sums the input channels of its
group over the taps for which that ``i`` is a whole, in-range position. Threads split the
output elements; no two threads write the same element. The crop is resolved exactly as the
reference does it (:meth:`ConvTranspose.crop`); the bias and the group's fused epilogue run on
each result before it is stored.
"""

from __future__ import annotations

import numpy as np

from byoc.core.interpreter import window as win
from byoc.core.interpreter.ops_conv import ConvTranspose
from byoc.core.ir import Graph, Node
from byoc_cpu_llvm.kernels import lowering
from byoc_cpu_llvm.kernels.conv import WindowGather, float_gather


def transpose_geometry(node: Node, graph: Graph) -> WindowGather:
    """The gather geometry of a ConvTranspose (raises ValueError on inconsistent attributes)."""
    x_shape = graph.types[node.inputs[0]].shape
    w_shape = graph.types[node.inputs[1]].shape
    attrs = node.attrs
    rank = len(x_shape) - 2
    groups = int(attrs.get("group", 1))
    in_shape, kernel = tuple(x_shape[2:]), tuple(w_shape[2:])
    strides = win.spatial_attr(attrs.get("strides"), rank, 1, "strides")
    dilations = win.spatial_attr(attrs.get("dilations"), rank, 1, "dilations")
    output_padding = win.spatial_attr(attrs.get("output_padding"), rank, 0, "output_padding")
    full = [(n - 1) * s + (k - 1) * d + 1 + p for n, s, k, d, p in
            zip(in_shape, strides, kernel, dilations, output_padding)]
    begin, end = ConvTranspose.crop(full, in_shape, strides, attrs.get("auto_pad", "NOTSET"),
                                    attrs.get("output_shape"), attrs.get("pads"), rank)
    out_spatial = tuple(f - b - e for f, b, e in zip(full, begin, end))
    if any(o <= 0 for o in out_spatial):
        raise ValueError("the ConvTranspose pads leave an empty output")
    out_shape = (x_shape[0], w_shape[1] * groups) + out_spatial
    return WindowGather(x_shape, out_shape, kernel, strides, dilations, begin, groups,
                        transpose=True)


def check_conv_transpose(node: Node, graph: Graph) -> str | None:
    for value in node.present_inputs + node.outputs[:1]:
        if graph.types[value].dtype != np.float32:
            return "cpu_llvm ConvTranspose handles float32 only"
    x_shape = graph.types[node.inputs[0]].shape
    w_shape = graph.types[node.inputs[1]].shape
    if len(x_shape) < 3 or len(w_shape) != len(x_shape):
        return "ConvTranspose needs an N x C x D1 x ... input and weights of the same rank"
    groups = int(node.attrs.get("group", 1))
    if groups < 1 or x_shape[1] % groups or w_shape[0] != x_shape[1]:
        return "ConvTranspose channels do not match the groups"
    kernel_shape = node.attrs.get("kernel_shape")
    if kernel_shape and tuple(kernel_shape) != tuple(w_shape[2:]):
        return "ConvTranspose kernel_shape does not match the weights"
    bias = node.inputs[2] if len(node.inputs) > 2 else ""
    if bias and tuple(graph.types[bias].shape) != (w_shape[1] * groups,):
        return "ConvTranspose bias must hold one value per output channel"
    try:
        geo = transpose_geometry(node, graph)
    except ValueError as error:
        return str(error)
    if tuple(graph.types[node.outputs[0]].shape) != geo.out_shape:
        return "ConvTranspose output shape does not match its geometry"
    if 0 in x_shape or 0 in geo.out_shape:
        return "ConvTranspose on an empty tensor is not supported by cpu_llvm"
    return None


@lowering("ConvTranspose", check=check_conv_transpose, epilogue=True)
def lower_conv_transpose(program, group) -> None:
    node = group.head
    geo = transpose_geometry(node, program.graph)
    bias = node.inputs[2] if len(node.inputs) > 2 and node.inputs[2] else None
    float_gather(program, group, geo, node.inputs[0], node.inputs[1], bias,
                 node.name or "convtranspose")


__all__ = ["check_conv_transpose", "lower_conv_transpose", "transpose_geometry"]
