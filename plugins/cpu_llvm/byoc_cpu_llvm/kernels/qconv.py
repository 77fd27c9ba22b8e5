"""Exact integer 2-D convolutions (NCHW): QLinearConv, ConvInteger and QDQ Conv groups.

Per (image, group) the convolution is the product of the constant weights [Mg, Cg*KH*KW]
and the im2col matrix of the input, run by the integer product driver of
:mod:`~byoc_cpu_llvm.kernels.int8_product`. The im2col columns are packed into the
driver's ``[K/4][NB][4]`` layout by :mod:`.qconv_pack`; positions in the padding read the
input's zero point (so they add nothing, as the reference's zero-padded ``x - x_zero``).
Depthwise convolutions (one channel per group) are computed directly, plane by plane, by
:mod:`.qdepthwise`.
Any stride, padding, dilation and group count; weights int8 or uint8, per tensor or per
output channel zero points; activations int8 or uint8 with a per-tensor zero point.
Run-time weights, scales, zero points or bias, and convolutions that are not 2-D, take an
exact direct path instead (:func:`_lower_direct`, one int64 window sum per output element).
"""

from __future__ import annotations

import numpy as np

from byoc.core.ir import Graph, Node
from byoc_cpu_llvm.codegen import F32, I32, I64, const_i64
from byoc_cpu_llvm.kernels import lowering
from byoc_cpu_llvm.kernels.conv import (
    ConvGeometry,
    WindowGather,
    conv_gather_geometry,
    conv_shape_refusal,
    emit_gather,
)
from byoc_cpu_llvm.kernels.int8_product import (
    INT8_TYPES,
    DirectKernel,
    IntProduct,
    emit_product,
    emit_requantize,
    overflow_refusal,
)
from byoc_cpu_llvm.kernels.qconv_pack import conv_pack
from byoc_cpu_llvm.kernels.qdepthwise import depthwise_fits, emit_depthwise


def conv_refusal(graph: Graph, node: Node, x_name: str, weight: np.ndarray,
                 bias: np.ndarray | None) -> str | None:
    x_shape = graph.types[x_name].shape
    if len(x_shape) != 4 or weight.ndim != 4:
        return "cpu_llvm integer Conv handles 2-D (NCHW) convolutions only"
    geo = ConvGeometry(node, x_shape, weight.shape)
    if geo.cg * geo.groups != geo.c or geo.mg * geo.groups != geo.m or weight.shape[1] != geo.cg:
        return "Conv channels do not match the groups"
    return overflow_refusal(geo.k, bias)


def lower_conv_product(program, tag: str, node: Node, x_name: str, out_name: str,
                       weight: np.ndarray, w_zero: np.ndarray, x_zero: int, **requant) -> None:
    graph = program.graph
    x_type = graph.types[x_name]
    geo = ConvGeometry(node, x_type.shape, weight.shape)
    x_signed = x_type.dtype == np.int8
    for key in ("bias", "multiplier"):
        if requant.get(key) is not None:
            requant[key] = np.broadcast_to(requant[key], (geo.m,))
    spec = IntProduct(weights=np.asarray(weight).reshape(geo.groups, geo.mg, geo.k)
                      .astype(np.int64),
                      w_unsigned=np.asarray(weight).dtype == np.uint8,
                      w_zero=np.broadcast_to(np.asarray(w_zero, np.int64).ravel(), (geo.m,)),
                      x_zero=int(x_zero), x_signed=x_signed, batches=geo.n * geo.groups,
                      cols=geo.cols, out_image=geo.m * geo.cols, row_stride=geo.cols,
                      col_stride=1, out_dtype=graph.types[out_name].dtype, **requant)
    if depthwise_fits(geo):
        emit_depthwise(program, spec, geo, tag, program.value(x_name), program.value(out_name))
        return
    emit_product(program, spec, tag, program.value(x_name), program.value(out_name),
                 conv_pack(program, tag, geo, int(x_zero), x_signed))


def _params_refusal(node: Node, graph: Graph, names: list[str], m: int) -> str | None:
    """Scales and zero points: constant; per tensor, except w's (index 1 in ``names``) may be
    per output channel."""
    for i, name in enumerate(names):
        if not name:
            continue
        if not graph.is_constant(name):
            return f"cpu_llvm {node.op_type} needs constant scales and zero points"
        size = np.size(graph.constants[name])
        if size != 1 and not (i == 1 and size == m):
            return f"cpu_llvm {node.op_type}: a parameter is neither per tensor nor per channel"
    return None


def _conv_types(node: Node, graph: Graph, x: str, w: str) -> str | None:
    if graph.types[x].dtype not in INT8_TYPES or graph.types[w].dtype not in INT8_TYPES:
        return f"cpu_llvm {node.op_type} handles int8/uint8 data only"
    if not graph.is_constant(w):
        return f"cpu_llvm {node.op_type} needs constant weights"
    return None


def check_qlinear_conv(node: Node, graph: Graph) -> str | None:
    i = list(node.inputs) + [""] * (9 - len(node.inputs))
    if _direct(graph, i[0], i[3], i[1:3] + i[4:9]):
        return _direct_refusal(node, graph, i[0], i[3], i[2], i[5],
                               scales=(i[1], i[4], i[6]), y_zero=i[7], bias=i[8])
    reason = _conv_types(node, graph, i[0], i[3])
    if reason:
        return reason
    if not i[7]:
        return "cpu_llvm QLinearConv needs y_zero_point"
    m = graph.types[i[3]].shape[0]
    for pair in ([i[1], i[4], i[6]], [i[2], i[5], i[7]]):
        reason = _params_refusal(node, graph, pair, m)
        if reason:
            return reason
    if i[8] and not graph.is_constant(i[8]):
        return "cpu_llvm QLinearConv needs a constant bias"
    if graph.types[node.outputs[0]].dtype not in INT8_TYPES:
        return "cpu_llvm QLinearConv outputs int8/uint8 only"
    bias = graph.constants[i[8]] if i[8] else None
    return conv_refusal(graph, node, i[0], graph.constants[i[3]], bias)


def check_conv_integer(node: Node, graph: Graph) -> str | None:
    i = list(node.inputs) + [""] * (4 - len(node.inputs))
    if _direct(graph, i[0], i[1], i[2:4]):
        return _direct_refusal(node, graph, i[0], i[1], i[2], i[3])
    reason = _conv_types(node, graph, i[0], i[1])
    if reason:
        return reason
    reason = _params_refusal(node, graph, [i[2], i[3]], graph.types[i[1]].shape[0])
    if reason:
        return reason
    weight = graph.constants[i[1]]
    if len(graph.types[i[0]].shape) != 4 or weight.ndim != 4:
        return "cpu_llvm ConvInteger handles 2-D (NCHW) convolutions only"
    return None


def _scalar(graph: Graph, name: str) -> int:
    return int(np.asarray(graph.constants[name]).reshape(())) if name else 0


@lowering("QLinearConv", check=check_qlinear_conv)
def lower_qlinear_conv(program, group) -> None:
    node = group.head
    graph = program.graph
    c = graph.constants
    i = list(node.inputs) + [""] * (9 - len(node.inputs))
    if _direct(graph, i[0], i[3], i[1:3] + i[4:9]):
        _lower_direct(program, node, i[0], i[3], i[2], i[5], node.outputs[0],
                      scales=(i[1], i[4], i[6]), y_zero=i[7], bias=i[8])
        return
    # The multiplier exactly as the reference forms it.
    multiplier = (np.asarray(c[i[1]], np.float32) * np.asarray(c[i[4]], np.float32)
                  / np.asarray(c[i[6]], np.float32)).astype(np.float32).ravel()
    bias = np.asarray(c[i[8]]).astype(np.int64).ravel() if i[8] else None
    lower_conv_product(program, node.name or "qlinearconv", node, i[0], node.outputs[0],
                       c[i[3]], np.asarray(c[i[5]]).ravel(), _scalar(graph, i[2]),
                       bias=bias, multiplier=multiplier, y_zero=_scalar(graph, i[7]))


@lowering("ConvInteger", check=check_conv_integer)
def lower_conv_integer(program, group) -> None:
    node = group.head
    graph = program.graph
    i = list(node.inputs) + [""] * (4 - len(node.inputs))
    if _direct(graph, i[0], i[1], i[2:4]):
        _lower_direct(program, node, i[0], i[1], i[2], i[3], node.outputs[0])
        return
    w_zero = np.asarray(graph.constants[i[3]]).ravel() if i[3] else np.zeros(1, np.int64)
    lower_conv_product(program, node.name or "convinteger", node, i[0], node.outputs[0],
                       graph.constants[i[1]], w_zero, _scalar(graph, i[2]))


# -- the direct path: run-time weights or parameters, or 1-D / 3-D+ convolutions -------------


def _direct(graph: Graph, x: str, w: str, params: list[str]) -> bool:
    """Whether an integer convolution takes the direct path: weights or parameters only known
    at run time, or a convolution that is not 2-D."""
    return (len(graph.types[x].shape) != 4 or not graph.is_constant(w)
            or any(p and not graph.is_constant(p) for p in params))


def _direct_refusal(node: Node, graph: Graph, x: str, w: str, x_zero: str, w_zero: str,
                    scales=None, y_zero: str = "", bias: str = "") -> str | None:
    op = node.op_type
    if graph.types[x].dtype not in INT8_TYPES or graph.types[w].dtype not in INT8_TYPES:
        return f"cpu_llvm {op} handles int8/uint8 data only"
    reason = conv_shape_refusal(node, graph, x, w, node.outputs[0])
    if reason:
        return reason
    m = graph.types[w].shape[0]
    for name, per_channel in ((x_zero, False), (w_zero, True)):
        if name and (graph.types[name].dtype not in INT8_TYPES
                     or graph.types[name].size not in ((1, m) if per_channel else (1,))):
            return f"cpu_llvm {op}: a zero point is neither per tensor nor per output channel"
    if scales is None:
        if graph.types[node.outputs[0]].dtype != np.int32:
            return f"cpu_llvm {op} outputs int32 only"
        return None
    if not y_zero:
        return f"cpu_llvm {op} needs y_zero_point"
    if graph.types[y_zero].dtype not in INT8_TYPES or graph.types[y_zero].size != 1:
        return f"cpu_llvm {op} needs a per-tensor int8/uint8 y_zero_point"
    if graph.types[node.outputs[0]].dtype != graph.types[y_zero].dtype:
        return f"cpu_llvm {op} output type differs from y_zero_point's"
    for name, per_channel in zip(scales, (False, True, False)):
        if (graph.types[name].dtype != np.float32
                or graph.types[name].size not in ((1, m) if per_channel else (1,))):
            return f"cpu_llvm {op}: a scale is not float32 per tensor (or per output channel)"
    if bias and (graph.types[bias].dtype != np.int32 or graph.types[bias].size != m):
        return f"cpu_llvm {op} needs an int32 bias with one value per output channel"
    return None


def _lower_direct(program, node: Node, x_name: str, w_name: str, x_zero: str, w_zero: str,
                  out_name: str, scales=None, y_zero: str = "", bias: str = "") -> None:
    """Exact int64 window sums of ``(x - x_zero) * (w - w_zero[m])`` read straight from the
    buffers (constant or not); ConvInteger stores them as int32, QLinearConv adds the bias and
    requantizes with ``x_scale * w_scale[m] / y_scale`` formed in float32 at run time."""
    graph = program.graph
    geo: WindowGather = conv_gather_geometry(node, graph.types[x_name].shape,
                                             graph.types[w_name].shape)
    names = {"x": x_name, "w": w_name, "xz": x_zero, "wz": w_zero, "out": out_name,
             "yz": y_zero, "bias": bias}
    if scales is not None:
        names.update(xs=scales[0], ws=scales[1], ys=scales[2])
    direct = DirectKernel(program, node, names)
    kb = direct.kb
    b = kb.b
    zero64 = const_i64(0)
    xz = direct.load_i64("xz", zero64) if x_zero else zero64

    def term(acc, x_off, w_off, m):
        wz = direct.load_i64("wz", direct.param_index("wz", m)) if w_zero else zero64
        product = b.mul(b.sub(direct.load_i64("x", x_off), xz),
                        b.sub(direct.load_i64("w", w_off), wz))
        return b.add(acc, product)

    def store(acc, flat, m):
        if scales is None:
            direct.store(b.trunc(acc, I32), flat)
            return
        if bias:
            acc = b.add(acc, b.sext(direct.load("bias", m, I32), I64))
        multiplier = b.fdiv(b.fmul(direct.load("xs", zero64, F32),
                                   direct.load("ws", direct.param_index("ws", m), F32)),
                            direct.load("ys", zero64, F32))
        value = emit_requantize(kb, acc, multiplier, direct.load_i64("yz", zero64),
                                graph.types[out_name].dtype)
        direct.store(value, flat)

    emit_gather(kb, geo, zero64, term, store)
    kb.finish()


__all__ = ["ConvGeometry", "conv_refusal", "lower_conv_product"]
