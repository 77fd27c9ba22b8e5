"""QLinearMatMul and MatMulInteger: with a constant second operand (and constant parameters)
on the int8 product driver of :mod:`.int8_product`, or, up to :data:`.qgemv.MOST_COLS` rows
of activations, on :mod:`.qgemv` (vectorized over the outputs); otherwise on an exact direct
path, one int64 dot product per output element.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from llvmlite import ir

from byoc.core.ir import Graph, Node
from byoc_cpu_llvm.codegen import F16, F32, I8, I32, I64, const_i64
from byoc_cpu_llvm.kernels import lowering
from byoc_cpu_llvm.kernels.elementwise import strides_for
from byoc_cpu_llvm.kernels.int8_product import (
    INT8_TYPES,
    NB,
    DirectKernel,
    IntProduct,
    emit_product,
    emit_requantize,
    overflow_refusal,
)
from byoc_cpu_llvm.kernels.qgemv import MOST_COLS, emit_vector_product

# -- matrix products with constant weights ----------------------------------------------------

def matmul_pack(k: int, x_signed: bool) -> Callable:
    """``pack_b`` for activations X [cols, K] (row-major): column c of the product is row c of
    X, so a packed group of 4 is 4 consecutive bytes of a row."""
    flip = 0x80 if x_signed else 0

    def pack(kb, x, bi, c0, ncols, dest, k4):
        b = kb.b
        with kb.loop(const_i64(0), ncols, name="pj") as j:
            row = b.mul(b.add(c0, j), const_i64(k))
            with kb.loop(0, k4 * 4, name="pk") as kk:
                inside = b.icmp_signed("<", kk, const_i64(k))
                value = kb.load(x, b.add(row, b.select(inside, kk, const_i64(0))), I8)
                if flip:
                    value = b.xor(value, ir.Constant(I8, flip))
                value = b.select(inside, value, ir.Constant(I8, 0))
                k4i = b.lshr(kk, const_i64(2))
                offset = b.add(b.mul(b.add(b.mul(k4i, const_i64(NB)), j), const_i64(4)),
                               b.and_(kk, const_i64(3)))
                kb.store(value, dest, offset)
    return pack


def lower_matrix_product(program, tag: str, x_name: str, out_name: str, matrix: np.ndarray,
                         w_zero: np.ndarray, x_zero: int, **requant) -> None:
    """``x [..., K] @ matrix [K, N]`` with constant ``matrix``, into ``out_name``."""
    graph = program.graph
    x_type = graph.types[x_name]
    k, n = matrix.shape
    cols = int(np.prod(x_type.shape[:-1], dtype=np.int64))
    x_signed = x_type.dtype == np.int8
    spec = IntProduct(weights=np.asarray(matrix).T[None].astype(np.int64),
                      w_unsigned=np.asarray(matrix).dtype == np.uint8,
                      w_zero=np.broadcast_to(np.asarray(w_zero, np.int64).ravel(), (n,)),
                      x_zero=int(x_zero), x_signed=x_signed, batches=1, cols=cols, out_image=0,
                      row_stride=1, col_stride=n, out_dtype=graph.types[out_name].dtype,
                      **requant)
    if cols <= MOST_COLS:
        emit_vector_product(program, spec, tag, program.value(x_name), program.value(out_name))
        return
    emit_product(program, spec, tag, program.value(x_name), program.value(out_name),
                 matmul_pack(k, x_signed))


def _scalar(graph: Graph, name: str, default=0):
    if not name:
        return default
    return np.asarray(graph.constants[name]).reshape(()).item()


def _const(graph: Graph, node: Node, index: int) -> np.ndarray | None:
    name = node.inputs[index] if len(node.inputs) > index else ""
    return np.asarray(graph.constants[name]) if name else None


def _matmul_refusal(node: Node, graph: Graph, a: str, b: str, a_params: list[str],
                    b_params: list[str]) -> str | None:
    a_type, b_type = graph.types[a], graph.types[b]
    if a_type.dtype not in INT8_TYPES or b_type.dtype not in INT8_TYPES:
        return f"cpu_llvm {node.op_type} handles int8/uint8 operands only"
    if not graph.is_constant(b) or len(b_type.shape) != 2:
        return f"cpu_llvm {node.op_type} needs a constant 2-D second operand"
    if len(a_type.shape) < 2:
        return f"cpu_llvm {node.op_type} needs a first operand of rank 2 or more"
    for name in a_params + b_params:
        if name and not graph.is_constant(name):
            return f"cpu_llvm {node.op_type} needs constant scales and zero points"
    for name in a_params:
        if name and np.size(graph.constants[name]) != 1:
            return f"cpu_llvm {node.op_type} handles a per-tensor first operand only"
    n = b_type.shape[1]
    for name in b_params:
        if name:
            shape = np.shape(graph.constants[name])
            if np.size(graph.constants[name]) not in (1, n) or len(shape) > 2:
                return f"cpu_llvm {node.op_type}: b parameters must be per tensor or per column"
    return None


def check_matmul_integer(node: Node, graph: Graph) -> str | None:
    inputs = list(node.inputs) + [""] * (4 - len(node.inputs))
    if _direct_matmul(graph, inputs[1], inputs[2:4]):
        return _direct_matmul_refusal(node, graph, inputs[0], inputs[1], inputs[2], inputs[3])
    return _matmul_refusal(node, graph, inputs[0], inputs[1], [inputs[2]], [inputs[3]])


def check_qlinear_matmul(node: Node, graph: Graph) -> str | None:
    i = node.inputs
    if _direct_matmul(graph, i[3], [i[1], i[2]] + list(i[4:8])):
        return _direct_matmul_refusal(node, graph, i[0], i[3], i[2], i[5],
                                      scales=(i[1], i[4], i[6]), y_zero=i[7])
    reason = _matmul_refusal(node, graph, i[0], i[3], [i[1], i[2]], [i[4], i[5]])
    if reason:
        return reason
    for name in (i[6], i[7]):
        if not graph.is_constant(name) or np.size(graph.constants[name]) != 1:
            return "cpu_llvm QLinearMatMul needs constant per-tensor y parameters"
    if graph.types[node.outputs[0]].dtype not in INT8_TYPES:
        return "cpu_llvm QLinearMatMul outputs int8/uint8 only"
    k = graph.types[i[3]].shape[0]
    return overflow_refusal(k, None)


@lowering("MatMulInteger", check=check_matmul_integer)
def lower_matmul_integer(program, group) -> None:
    node = group.head
    graph = program.graph
    inputs = list(node.inputs) + [""] * (4 - len(node.inputs))
    if _direct_matmul(graph, inputs[1], inputs[2:4]):
        _lower_direct_matmul(program, node, inputs[0], inputs[1], inputs[2], inputs[3])
        return
    matrix = graph.constants[inputs[1]]
    w_zero = _const(graph, node, 3)
    lower_matrix_product(program, node.name or "matmulinteger", inputs[0], node.outputs[0],
                         matrix, np.zeros(1) if w_zero is None else w_zero,
                         _scalar(graph, inputs[2]))


@lowering("QLinearMatMul", check=check_qlinear_matmul)
def lower_qlinear_matmul(program, group) -> None:
    node = group.head
    graph = program.graph
    i = node.inputs
    c = graph.constants
    if _direct_matmul(graph, i[3], [i[1], i[2]] + list(i[4:8])):
        _lower_direct_matmul(program, node, i[0], i[3], i[2], i[5],
                             scales=(i[1], i[4], i[6]), y_zero=i[7])
        return
    # The multiplier exactly as the reference forms it (in the scales' type).
    multiplier = (np.asarray(c[i[1]]).reshape(()) * np.asarray(c[i[4]]).reshape(-1)
                  / np.asarray(c[i[6]]).reshape(()))
    n = graph.types[i[3]].shape[1]
    multiplier = np.broadcast_to(np.asarray(multiplier).astype(np.float32), (n,))
    lower_matrix_product(program, node.name or "qlinearmatmul", i[0], node.outputs[0],
                         c[i[3]], c[i[5]], _scalar(graph, i[2]), multiplier=multiplier,
                         y_zero=int(_scalar(graph, i[7])))


# -- the direct path: a run-time second operand (or run-time parameters) -----------------------


def _direct_matmul(graph: Graph, b: str, params: list[str]) -> bool:
    return not graph.is_constant(b) or any(p and not graph.is_constant(p) for p in params)


def _direct_matmul_refusal(node: Node, graph: Graph, a: str, b: str, a_zero: str, b_zero: str,
                           scales=None, y_zero: str = "") -> str | None:
    op = node.op_type
    a_type, b_type = graph.types[a], graph.types[b]
    if a_type.dtype not in INT8_TYPES or b_type.dtype not in INT8_TYPES:
        return f"cpu_llvm {op} handles int8/uint8 operands only"
    if len(a_type.shape) < 2 or len(b_type.shape) < 2:
        return f"cpu_llvm {op} with a run-time operand needs operands of rank 2 or more"
    m, k = a_type.shape[-2:]
    k2, n = b_type.shape[-2:]
    if k != k2:
        return f"{op} operands do not fit together"
    try:
        batch = np.broadcast_shapes(tuple(a_type.shape[:-2]), tuple(b_type.shape[:-2]))
    except ValueError:
        return f"{op} batch dimensions do not broadcast"
    if tuple(graph.types[node.outputs[0]].shape) != tuple(batch) + (m, n):
        return f"{op} output shape does not match its operands"
    if 0 in graph.types[node.outputs[0]].shape or k == 0:
        return f"{op} on an empty tensor is not supported by cpu_llvm"
    a_params = [a_zero] + ([scales[0]] if scales else [])
    b_params = [b_zero] + ([scales[1]] if scales else [])
    for names, rows in ((a_params, m), (b_params, n)):
        for name in names:
            if name and (graph.types[name].size != 1 and tuple(graph.types[name].shape)
                         != (rows,)):
                return f"cpu_llvm {op}: a parameter is neither per tensor nor a 1-D per " \
                    "row (a) / per column (b) vector"
    for name in (a_zero, b_zero, y_zero):
        if name and graph.types[name].dtype not in INT8_TYPES:
            return f"cpu_llvm {op} needs int8/uint8 zero points"
    if scales is None:
        if graph.types[node.outputs[0]].dtype != np.int32:
            return f"cpu_llvm {op} outputs int32 only"
        return None
    if len({graph.types[name].dtype for name in scales}) != 1 or \
            graph.types[scales[0]].dtype not in (np.float32, np.float16):
        return f"cpu_llvm {op} with a run-time operand handles float32 or float16 scales, " \
            "all of one type"
    if not y_zero or graph.types[y_zero].size != 1 or graph.types[scales[2]].size != 1:
        return f"cpu_llvm {op} needs per-tensor y parameters"
    if graph.types[node.outputs[0]].dtype != graph.types[y_zero].dtype:
        return f"cpu_llvm {op} output type differs from y_zero_point's"
    return None


def _lower_direct_matmul(program, node: Node, a_name: str, b_name: str, a_zero: str,
                         b_zero: str, scales=None, y_zero: str = "") -> None:
    """One output element at a time: the exact sum over k of ``(a - a_zero[row]) *
    (b - b_zero[col])``, wrapped to int32 as the reference does, then (QLinearMatMul)
    requantized with ``a_scale * b_scale / y_scale`` formed in float32 at run time."""
    graph = program.graph
    a_shape, b_shape = graph.types[a_name].shape, graph.types[b_name].shape
    out_name = node.outputs[0]
    out_shape = tuple(graph.types[out_name].shape)
    m, k = a_shape[-2:]
    n = b_shape[-1]
    batch = out_shape[:-2]
    a_strides = strides_for(tuple(a_shape[:-2]) + (1, 1), batch + (1, 1))[:-2]
    b_strides = strides_for(tuple(b_shape[:-2]) + (1, 1), batch + (1, 1))[:-2]
    names = {"a": a_name, "b": b_name, "az": a_zero, "bz": b_zero, "out": out_name,
             "yz": y_zero}
    if scales is not None:
        names.update(as_=scales[0], bs=scales[1], ys=scales[2])
    direct = DirectKernel(program, node, names)
    kb = direct.kb
    bld = kb.b
    acc = bld.alloca(I64, name="acc")
    begin, end = kb.thread_share(int(np.prod(out_shape, dtype=np.int64)))
    with kb.loop(begin, end, name="out") as flat:
        col = bld.urem(flat, const_i64(n))
        row = bld.urem(bld.udiv(flat, const_i64(n)), const_i64(m))
        rest = bld.udiv(flat, const_i64(m * n))
        a_off, b_off = const_i64(0), const_i64(0)
        for axis in reversed(range(len(batch))):
            coord = bld.urem(rest, const_i64(batch[axis]))
            rest = bld.udiv(rest, const_i64(batch[axis]))
            a_off = bld.add(a_off, bld.mul(coord, const_i64(a_strides[axis] * m * k)))
            b_off = bld.add(b_off, bld.mul(coord, const_i64(b_strides[axis] * k * n)))
        a_off = bld.add(a_off, bld.mul(row, const_i64(k)))
        b_off = bld.add(b_off, col)
        az = direct.load_i64("az", direct.param_index("az", row)) if a_zero else const_i64(0)
        bz = direct.load_i64("bz", direct.param_index("bz", col)) if b_zero else const_i64(0)
        bld.store(const_i64(0), acc)
        with kb.loop(0, k, name="k") as kk:
            x = bld.sub(direct.load_i64("a", bld.add(a_off, kk)), az)
            y = bld.sub(direct.load_i64("b", bld.add(b_off, bld.mul(kk, const_i64(n)))), bz)
            bld.store(bld.add(bld.load(acc, typ=I64), bld.mul(x, y)), acc)
        total = bld.trunc(bld.load(acc, typ=I64), I32)
        if scales is None:
            direct.store(total, flat)
        else:
            half = graph.types[scales[0]].dtype == np.float16
            elem = F16 if half else F32
            multiplier = _multiplier(bld, half,
                                     direct.load("as_", direct.param_index("as_", row), elem),
                                     direct.load("bs", direct.param_index("bs", col), elem),
                                     direct.load("ys", const_i64(0), elem))
            value = emit_requantize(kb, bld.sext(total, I64), multiplier,
                                    direct.load_i64("yz", const_i64(0)),
                                    graph.types[out_name].dtype)
            direct.store(value, flat)
    kb.finish()


def _multiplier(bld: ir.IRBuilder, half: bool, a_scale: ir.Value, b_scale: ir.Value,
                y_scale: ir.Value) -> ir.Value:
    """``a_scale * b_scale / y_scale`` as a float32, formed in the scales' own type.

    For float16 scales each step is computed in float32 and rounded back to float16, which is
    exactly how numpy (and so the reference) does float16 arithmetic."""
    if not half:
        return bld.fdiv(bld.fmul(a_scale, b_scale), y_scale)

    def rounded(value: ir.Value) -> ir.Value:
        return bld.fpext(bld.fptrunc(value, F16), F32)
    product = rounded(bld.fmul(bld.fpext(a_scale, F32), bld.fpext(b_scale, F32)))
    return rounded(bld.fdiv(product, bld.fpext(y_scale, F32)))

