"""QuantizeLinear and DequantizeLinear, bit-exact with byoc's reference (ONNX semantics).

QuantizeLinear: ``saturate(round_half_to_even(x / scale) + zero_point)``, the division in
float32, rounding with ``llvm.roundeven``; adding the zero point and clamping in float32 is
exact (a rounded value is an integer; where float32 could not hold the sum exactly the value
saturates anyway). DequantizeLinear: ``(x - zero_point) * scale`` with the difference exact in
integers and one float32 product. Scales and zero points are constants, per tensor or per
axis (one per index of ``axis``); the tensor is seen as ``[outer, axis, inner]`` rows of
``inner`` elements that share one scale and zero point, so the inner loop vectorizes.

Declined: blocked quantization, run-time scales or zero points, float16/float64 data or
scales, and QuantizeLinear with a ``precision`` other than float32. A NaN input quantizes to
an unspecified value (as in numpy's cast of NaN).
"""

from __future__ import annotations

import numpy as np
from llvmlite import ir

from byoc.core.ir import Graph, Node
from byoc_cpu_llvm.codegen import F32, I32, I64, const_i64, llvm_type
from byoc_cpu_llvm.kernels import lowering

QUANT_TYPES = tuple(np.dtype(t) for t in (np.int8, np.uint8, np.int16, np.uint16))
DEQUANT_TYPES = QUANT_TYPES + (np.dtype(np.int32),)
FLOAT_ONNX = 1  # TensorProto.FLOAT


def _const_param(graph: Graph, node: Node, index: int) -> np.ndarray | None:
    name = node.inputs[index] if len(node.inputs) > index else ""
    return np.asarray(graph.constants[name]) if name and graph.is_constant(name) else None


def _params_refusal(node: Node, graph: Graph, x_type) -> str | None:
    if node.attrs.get("block_size", 0):
        return f"cpu_llvm {node.op_type} does not handle blocked quantization"
    for index, what in ((1, "scale"), (2, "zero point")):
        name = node.inputs[index] if len(node.inputs) > index else ""
        if index == 2 and not name:
            continue
        if not graph.is_constant(name):
            return f"cpu_llvm {node.op_type} needs a constant {what}"
        size = np.size(graph.constants[name])
        if size != 1:
            axis = node.attrs.get("axis", 1)
            rank = len(x_type.shape)
            if not -rank <= axis < rank or size != x_type.shape[axis]:
                return f"cpu_llvm {node.op_type}: {what} fits neither per tensor nor per axis"
    if graph.types[node.inputs[1]].dtype != np.float32:
        return f"cpu_llvm {node.op_type} handles float32 scales only"
    return None


def check_quantize(node: Node, graph: Graph) -> str | None:
    x_type = graph.types[node.inputs[0]]
    if x_type.dtype != np.float32:
        return "cpu_llvm QuantizeLinear handles float32 input only"
    if graph.types[node.outputs[0]].dtype not in QUANT_TYPES:
        return "cpu_llvm QuantizeLinear outputs int8, uint8, int16 or uint16"
    precision = node.attrs.get("precision", 0)
    if precision and precision != FLOAT_ONNX:
        return "cpu_llvm QuantizeLinear divides in float32 only (precision attribute)"
    return _params_refusal(node, graph, x_type)


def check_dequantize(node: Node, graph: Graph) -> str | None:
    x_type = graph.types[node.inputs[0]]
    if x_type.dtype not in DEQUANT_TYPES:
        return "cpu_llvm DequantizeLinear handles int8, uint8, int16, uint16 and int32 input"
    if graph.types[node.outputs[0]].dtype != np.float32:
        return "cpu_llvm DequantizeLinear produces float32 only"
    return _params_refusal(node, graph, x_type)


def _layout(shape, axis: int, per_axis: bool) -> tuple[int, int, int]:
    """``(outer, axis_len, inner)`` of a tensor quantized along ``axis`` (or per tensor)."""
    size = int(np.prod(shape, dtype=np.int64)) if shape else 1
    if not per_axis:
        return 1, 1, size
    axis %= len(shape)
    inner = int(np.prod(shape[axis + 1:], dtype=np.int64))
    return size // (shape[axis] * inner), shape[axis], inner


def emit_quantize(program, x_name: str, out_name: str, scale: np.ndarray,
                  zero: np.ndarray | None, axis: int, out_dtype: np.dtype, tag: str) -> None:
    """A kernel writing QuantizeLinear(x) to ``out_name`` (both graph values of the program)."""
    shape = program.graph.types[x_name].shape
    scale = np.asarray(scale, np.float32).ravel()
    zero = np.zeros(1, np.int64) if zero is None else np.asarray(zero).astype(np.int64).ravel()
    outer, axis_len, inner = _layout(shape, axis, scale.size > 1 or zero.size > 1)
    scale = np.broadcast_to(scale, (axis_len,)).astype(np.float32)
    zero = np.broadcast_to(zero, (axis_len,)).astype(np.float32)
    info = np.iinfo(out_dtype)
    x_slot = program.value(x_name)
    out_slot = program.value(out_name)
    s_slot = program.constant(f"{tag}__qscale", scale)
    z_slot = program.constant(f"{tag}__qzero", zero)
    out_t = llvm_type(out_dtype)

    kb = program.kernel(tag)
    b = kb.b
    x, out = kb.buffer(x_slot), kb.buffer(out_slot)
    s_base, z_base = kb.buffer(s_slot), kb.buffer(z_slot)
    low, high = ir.Constant(F32, float(info.min)), ir.Constant(F32, float(info.max))
    begin, end = kb.thread_share(outer * axis_len)
    with kb.loop(begin, end, name="row") as row:
        channel = b.srem(row, const_i64(axis_len))
        s = kb.load(s_base, channel, F32)
        z = kb.load(z_base, channel, F32)
        base = b.mul(row, const_i64(inner))
        with kb.loop(0, inner, name="col") as col:
            at = b.add(base, col)
            value = b.fdiv(kb.load(x, at, F32), s)
            value = b.fadd(kb.intrinsic("llvm.roundeven", F32, [value]), z)
            value = kb.intrinsic("llvm.minnum", F32,
                                 [kb.intrinsic("llvm.maxnum", F32, [value, low]), high])
            kb.store(b.trunc(b.fptosi(value, I32), out_t) if out_t != I32
                     else b.fptosi(value, I32), out, at)
    kb.finish()


@lowering("QuantizeLinear", check=check_quantize)
def lower_quantize(program, group) -> None:
    node = group.head
    graph = program.graph
    scale = _const_param(graph, node, 1)
    zero = _const_param(graph, node, 2)
    emit_quantize(program, node.inputs[0], node.outputs[0], scale, zero,
                  node.attrs.get("axis", 1), graph.types[node.outputs[0]].dtype,
                  node.name or "quantize")


@lowering("DequantizeLinear", check=check_dequantize)
def lower_dequantize(program, group) -> None:
    node = group.head
    graph = program.graph
    x_type = graph.types[node.inputs[0]]
    scale = np.asarray(_const_param(graph, node, 1), np.float32).ravel()
    zero = _const_param(graph, node, 2)
    zero = np.zeros(1, np.int64) if zero is None else zero.astype(np.int64).ravel()
    outer, axis_len, inner = _layout(x_type.shape, node.attrs.get("axis", 1),
                                     scale.size > 1 or zero.size > 1)
    wide = x_type.dtype == np.int32  # x - zero may need 33 bits
    acc_t = I64 if wide else I32
    tag = node.name or "dequantize"
    s_slot = program.constant(f"{tag}__dqscale", np.broadcast_to(scale, (axis_len,)))
    z_slot = program.constant(f"{tag}__dqzero", np.broadcast_to(zero, (axis_len,)).astype(
        np.int64 if wide else np.int32))
    x_slot = program.value(node.inputs[0])
    out_slot = program.value(node.outputs[0])
    signed = np.issubdtype(x_type.dtype, np.signedinteger)
    elem_t = llvm_type(x_type.dtype)

    kb = program.kernel(tag)
    b = kb.b
    x, out = kb.buffer(x_slot), kb.buffer(out_slot)
    s_base, z_base = kb.buffer(s_slot), kb.buffer(z_slot)
    begin, end = kb.thread_share(outer * axis_len)
    with kb.loop(begin, end, name="row") as row:
        channel = b.srem(row, const_i64(axis_len))
        s = kb.load(s_base, channel, F32)
        z = kb.load(z_base, channel, acc_t)
        base = b.mul(row, const_i64(inner))
        with kb.loop(0, inner, name="col") as col:
            at = b.add(base, col)
            value = kb.load(x, at, elem_t)
            if elem_t != acc_t:
                value = b.sext(value, acc_t) if signed else b.zext(value, acc_t)
            shifted = b.sub(value, z)
            kb.store(b.fmul(b.sitofp(shifted, F32), s), out, at)
    kb.finish()


__all__ = ["check_dequantize", "check_quantize", "emit_quantize"]
