"""QuantizeLinear and DequantizeLinear, bit-exact with byoc's reference (ONNX semantics).

QuantizeLinear: ``saturate(round_half_to_even(x / scale) + zero_point)``, the division in
float32, rounding with ``llvm.roundeven``; adding the zero point and clamping in float32 is
exact (a rounded value is an integer; where float32 could not hold the sum exactly the value
saturates anyway). DequantizeLinear: ``(x - zero_point) * scale`` with the difference exact in
integers and one float32 product.

Scales and zero points are constants or values computed at run time, per tensor, per axis
(one per index of ``axis``) or blocked (``block_size`` consecutive indices of ``axis`` share
one). The tensor is seen as ``[outer, axis, inner]``, processed in rows of ``inner``
elements; a parameter's element for ``(o, d, i)`` is at ``o * so + (d // block) * sd +
i * si`` (all strides 0 per tensor; ``sd = 1`` per axis; the parameter's own strides when
blocked), so the inner loop stays contiguous and vectorizes.

Declined: float16/float64 data or scales, and QuantizeLinear with a ``precision`` other than
float32. A NaN input quantizes to an unspecified value (as in numpy's cast of NaN).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
from llvmlite import ir

from byoc.core.ir import Graph, Node
from byoc_cpu_llvm.codegen import F32, I32, I64, const_i64, llvm_type
from byoc_cpu_llvm.kernels import lowering

QUANT_TYPES = tuple(np.dtype(t) for t in (np.int8, np.uint8, np.int16, np.uint16))
DEQUANT_TYPES = QUANT_TYPES + (np.dtype(np.int32),)
FLOAT_ONNX = 1  # TensorProto.FLOAT


def _param_name(node: Node, index: int) -> str:
    return node.inputs[index] if len(node.inputs) > index else ""


def _param_kind(node: Node, shape: tuple[int, ...], x_shape: tuple[int, ...]) -> str | None:
    """``tensor``, ``axis`` or ``blocked`` for a scale or zero point of ``shape`` (as the
    reference's quant_params accepts them), or None when it fits none."""
    size = int(np.prod(shape, dtype=np.int64)) if shape else 1
    block = node.attrs.get("block_size", 0)
    if size == 1 and not block:
        return "tensor"
    axis, rank = node.attrs.get("axis", 1), len(x_shape)
    if not -rank <= axis < rank:
        return None
    axis %= rank
    if block:
        expected = list(x_shape)
        expected[axis] = math.ceil(x_shape[axis] / block)
        return "blocked" if list(shape) == expected else None
    return "axis" if len(shape) == 1 and size == x_shape[axis] else None


def _params_refusal(node: Node, graph: Graph, x_type) -> str | None:
    if node.attrs.get("block_size", 0) < 0:
        return f"cpu_llvm {node.op_type}: a negative block_size is invalid"
    for index, what in ((1, "scale"), (2, "zero point")):
        name = _param_name(node, index)
        if index == 2 and not name:
            continue
        if _param_kind(node, graph.types[name].shape, x_type.shape) is None:
            return (f"cpu_llvm {node.op_type}: {what} fits neither per tensor, per axis nor "
                    f"blocked quantization")
    if graph.types[node.inputs[1]].dtype != np.float32:
        return f"cpu_llvm {node.op_type} handles float32 scales only"
    return None


def check_quantize(node: Node, graph: Graph) -> str | None:
    x_type = graph.types[node.inputs[0]]
    if x_type.dtype != np.float32:
        return "cpu_llvm QuantizeLinear handles float32 input only"
    if graph.types[node.outputs[0]].dtype not in QUANT_TYPES:
        return "cpu_llvm QuantizeLinear outputs int8, uint8, int16 or uint16"
    zero = _param_name(node, 2)
    if zero and graph.types[zero].dtype != graph.types[node.outputs[0]].dtype:
        return "cpu_llvm QuantizeLinear: the zero point's dtype differs from the output's"
    precision = node.attrs.get("precision", 0)
    if precision and precision != FLOAT_ONNX:
        return "cpu_llvm QuantizeLinear divides in float32 only (precision attribute)"
    return _params_refusal(node, graph, x_type)


def check_dequantize(node: Node, graph: Graph) -> str | None:
    x_type = graph.types[node.inputs[0]]
    if x_type.dtype not in DEQUANT_TYPES:
        return "cpu_llvm DequantizeLinear handles int8, uint8, int16, uint16 and int32 input"
    zero = _param_name(node, 2)
    if zero and graph.types[zero].dtype != x_type.dtype:
        return "cpu_llvm DequantizeLinear: the zero point's dtype differs from the input's"
    if graph.types[node.outputs[0]].dtype != np.float32:
        return "cpu_llvm DequantizeLinear produces float32 only"
    return _params_refusal(node, graph, x_type)


@dataclass
class Param:
    """Where a scale or zero point lives: its buffer slot, its dtype, and its element strides
    over (outer index, axis index // block, inner index)."""

    slot: int
    dtype: np.dtype
    strides: tuple[int, int, int]


@dataclass
class Layout:
    """A tensor as ``[outer, axis_len, inner]``; ``block`` axis indices share a parameter."""

    outer: int
    axis_len: int
    inner: int
    block: int = 1


def _layout(shape, axis: int, per_axis: bool, block: int = 1) -> Layout:
    size = int(np.prod(shape, dtype=np.int64)) if shape else 1
    if not per_axis:
        return Layout(1, 1, size)
    axis %= len(shape)
    inner = int(np.prod(shape[axis + 1:], dtype=np.int64))
    outer = int(np.prod(shape[:axis], dtype=np.int64))
    return Layout(outer, shape[axis], inner, block)


def _node_params(program, node: Node, x_shape) -> tuple[Layout, Param, Param | None]:
    """The layout of ``node``'s input and its scale and zero point (constants or run-time
    values, read from their buffers as they are)."""
    graph = program.graph
    block = node.attrs.get("block_size", 0)
    names = [_param_name(node, 1), _param_name(node, 2)]
    kinds = [_param_kind(node, graph.types[n].shape, x_shape) if n else "tensor"
             for n in names]
    layout = _layout(x_shape, node.attrs.get("axis", 1), kinds != ["tensor", "tensor"],
                     block or 1)
    params = []
    for name, kind in zip(names, kinds):
        if not name:
            params.append(None)
            continue
        if kind == "tensor":
            strides = (0, 0, 0)
        elif kind == "axis":
            strides = (0, 1, 0)
        else:
            blocks = graph.types[name].shape[node.attrs.get("axis", 1) % len(x_shape)]
            strides = (blocks * layout.inner, layout.inner, 1)
        params.append(Param(program.value(name), graph.types[name].dtype, strides))
    return layout, params[0], params[1]


def _param_loader(kb, param: Param, layout: Layout, row: ir.Value):
    """A function of the inner index giving ``param``'s element for row ``row``, converted:
    floats to float32 and integers to the width ``wide`` (signed or unsigned per dtype)."""
    b = kb.b
    base = kb.buffer(param.slot)
    so, sd, si = param.strides
    offset = const_i64(0)
    if so:
        offset = b.add(offset, b.mul(b.udiv(row, const_i64(layout.axis_len)), const_i64(so)))
    if sd:
        d = b.urem(row, const_i64(layout.axis_len))
        if layout.block > 1:
            d = b.udiv(d, const_i64(layout.block))
        offset = b.add(offset, b.mul(d, const_i64(sd)))
    elem = llvm_type(param.dtype)
    if not si:
        value = kb.load(base, offset, elem)
        return lambda col: value
    return lambda col: kb.load(base, b.add(offset, b.mul(col, const_i64(si))), elem)


@contextlib.contextmanager
def _elements(kb, layout: Layout, scale: Param, zero: Param | None) -> Iterator[tuple]:
    """Around the body, for each element of this thread's share of the rows: yields
    ``(at, col, scale_at, zero_at)``, the element's offset and inner index and the
    :func:`_param_loader` of its row's scale and zero point (None without one)."""
    b = kb.b
    begin, end = kb.thread_share(layout.outer * layout.axis_len)
    with kb.loop(begin, end, name="row") as row:
        scale_at = _param_loader(kb, scale, layout, row)
        zero_at = _param_loader(kb, zero, layout, row) if zero is not None else None
        base = b.mul(row, const_i64(layout.inner))
        with kb.loop(0, layout.inner, name="col") as col:
            yield b.add(base, col), col, scale_at, zero_at


def _to_float(kb, value: ir.Value, dtype: np.dtype) -> ir.Value:
    if np.issubdtype(dtype, np.floating):
        return value
    signed = np.issubdtype(dtype, np.signedinteger)
    return kb.b.sitofp(value, F32) if signed else kb.b.uitofp(value, F32)


def _to_int(kb, value: ir.Value, dtype: np.dtype, wide: ir.Type) -> ir.Value:
    if value.type == wide:
        return value
    signed = np.issubdtype(dtype, np.signedinteger)
    return kb.b.sext(value, wide) if signed else kb.b.zext(value, wide)


def _emit_quantize(program, tag: str, x_slot: int, out_slot: int, layout: Layout,
                   scale: Param, zero: Param | None, out_dtype: np.dtype) -> None:
    info = np.iinfo(out_dtype)
    out_t = llvm_type(out_dtype)
    kb = program.kernel(tag)
    b = kb.b
    x, out = kb.buffer(x_slot), kb.buffer(out_slot)
    low, high = ir.Constant(F32, float(info.min)), ir.Constant(F32, float(info.max))
    with _elements(kb, layout, scale, zero) as (at, col, scale_at, zero_at):
        value = b.fdiv(kb.load(x, at, F32), scale_at(col))
        value = kb.intrinsic("llvm.roundeven", F32, [value])
        if zero_at is not None:
            value = b.fadd(value, _to_float(kb, zero_at(col), zero.dtype))
        value = kb.intrinsic("llvm.minnum", F32,
                             [kb.intrinsic("llvm.maxnum", F32, [value, low]), high])
        kb.store(b.trunc(b.fptosi(value, I32), out_t) if out_t != I32
                 else b.fptosi(value, I32), out, at)
    kb.finish()


def emit_quantize(program, x_name: str, out_name: str, scale: np.ndarray,
                  zero: np.ndarray | None, axis: int, out_dtype: np.dtype, tag: str) -> None:
    """A kernel writing QuantizeLinear(x) to ``out_name`` (both graph values of the program)
    with constant per-tensor or per-axis ``scale`` and ``zero``."""
    shape = program.graph.types[x_name].shape
    scale = np.asarray(scale, np.float32).ravel()
    zero = None if zero is None else np.asarray(zero).astype(np.int64).ravel()
    layout = _layout(shape, axis, scale.size > 1 or (zero is not None and zero.size > 1))

    def param(key, array):
        return Param(program.constant(key, array), array.dtype,
                     (0, 1 if array.size > 1 else 0, 0))
    _emit_quantize(program, tag, program.value(x_name), program.value(out_name), layout,
                   param(f"{tag}__qscale", scale),
                   None if zero is None else param(f"{tag}__qzero", zero), out_dtype)


@lowering("QuantizeLinear", check=check_quantize)
def lower_quantize(program, group) -> None:
    node = group.head
    graph = program.graph
    layout, scale, zero = _node_params(program, node, graph.types[node.inputs[0]].shape)
    _emit_quantize(program, node.name or "quantize", program.value(node.inputs[0]),
                   program.value(node.outputs[0]), layout, scale, zero,
                   graph.types[node.outputs[0]].dtype)


@lowering("DequantizeLinear", check=check_dequantize)
def lower_dequantize(program, group) -> None:
    node = group.head
    graph = program.graph
    x_type = graph.types[node.inputs[0]]
    layout, scale, zero = _node_params(program, node, x_type.shape)
    wide = x_type.dtype == np.int32  # x - zero may need 33 bits
    acc_t = I64 if wide else I32
    x_slot = program.value(node.inputs[0])
    out_slot = program.value(node.outputs[0])
    elem_t = llvm_type(x_type.dtype)

    kb = program.kernel(node.name or "dequantize")
    b = kb.b
    x, out = kb.buffer(x_slot), kb.buffer(out_slot)
    with _elements(kb, layout, scale, zero) as (at, col, scale_at, zero_at):
        shifted = _to_int(kb, kb.load(x, at, elem_t), x_type.dtype, acc_t)
        if zero_at is not None:
            shifted = b.sub(shifted, _to_int(kb, zero_at(col), zero.dtype, acc_t))
        kb.store(b.fmul(b.sitofp(shifted, F32), scale_at(col)), out, at)
    kb.finish()


__all__ = ["check_dequantize", "check_quantize", "emit_quantize"]
