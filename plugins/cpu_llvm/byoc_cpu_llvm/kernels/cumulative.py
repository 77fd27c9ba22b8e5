"""Running sums and products along an axis: CumSum and CumProd, the axis a constant or read
at run time.

The input is seen as ``outer x length x inner`` around the axis. Threads split ``outer`` x
chunks of ``inner``; a work item walks the axis in order (backwards with ``reverse``) and at
each step adds (or multiplies) a whole chunk of ``inner`` to the previous step's results, a
contiguous loop that LLVM vectorizes. Each result is folded in the same order as numpy's
cumsum, so float results equal the reference's exactly.
"""

from __future__ import annotations

import numpy as np
from llvmlite import ir

from byoc.core.ir import Graph, Node
from byoc_cpu_llvm.codegen import F32, I32, const, const_i64, is_float, llvm_type
from byoc_cpu_llvm.kernels import lowering
from byoc_cpu_llvm.kernels.elementwise import half_supported
from byoc_cpu_llvm.kernels.reduction_parts import CHUNK, chunk_bounds

_NUMBERS = {np.dtype(t) for t in (np.float32, np.float64, np.int8, np.uint8, np.int16,
                                  np.uint16, np.int32, np.uint32, np.int64, np.uint64)}
_FLOAT16 = np.dtype(np.float16)
# What an exclusive fold starts from, per op.
_IDENTITY = {"CumSum": 0, "CumProd": 1}


def _constant_axis(node: Node, graph: Graph) -> int | None:
    """The normalized axis when it is a constant, None when it is read at run time; a
    ValueError says why a constant one is invalid."""
    rank = len(graph.types[node.inputs[0]].shape)
    name = node.inputs[1]
    if not graph.is_constant(name):
        return None
    axis = np.asarray(graph.constants[name])
    if axis.size != 1 or axis.ndim > 1:
        raise ValueError(f"its axis input must be a scalar; got shape {list(axis.shape)}")
    value = int(axis.reshape(()))
    if not -rank <= value < rank:
        raise ValueError(f"axis {value} is out of range for an input of rank {rank}")
    return value % rank


def check_cumulative(node: Node, graph: Graph) -> str | None:
    dtype = graph.types[node.inputs[0]].dtype
    if dtype == _FLOAT16 and not half_supported():
        return "cpu_llvm handles float16 only on CPUs with float16 conversions (F16C)"
    if dtype not in _NUMBERS and dtype != _FLOAT16:
        return f"cpu_llvm {node.op_type} does not handle {dtype}"
    if not graph.types[node.inputs[0]].shape:
        return f"{node.op_type} needs an input of rank 1 or more; node {node.name!r} has a scalar"
    axis_type = graph.types[node.inputs[1]]
    if axis_type.size != 1 or len(axis_type.shape) > 1:
        return (f"{node.op_type}'s axis input must be a scalar; node {node.name!r} has shape "
                f"{list(axis_type.shape)}")
    try:
        _constant_axis(node, graph)
    except ValueError as error:
        return f"cpu_llvm cannot lower this {node.op_type}: {error}"
    return None


@lowering(*_IDENTITY, check=check_cumulative)
def lower_cumulative(program, group) -> None:
    """A constant axis gives one loop nest; an axis read at run time gives one per possible
    axis, the run taking the one its value selects (an axis out of range is a fault)."""
    graph = program.graph
    node = group.head
    rank = len(graph.types[node.inputs[0]].shape)
    axis = _constant_axis(node, graph)
    src_slot, dst_slot = program.value(node.inputs[0]), program.value(node.outputs[0])
    if axis is None:
        axis_type = graph.types[node.inputs[1]]
        status_slot, code = program.fault(
            f"node {node.name or node.op_type!r} ({node.op_type}): its axis input "
            f"{node.inputs[1]!r} is outside [-{rank}, {rank - 1}]")
    kb = program.kernel(node.name or node.op_type)
    src, dst = kb.buffer(src_slot), kb.buffer(dst_slot)
    if axis is not None:
        _emit_fold(kb, node, graph, axis, src, dst)
    else:
        b = kb.b
        raw = kb.load_i64(kb.buffer(program.value(node.inputs[1])), const_i64(0),
                          axis_type.dtype)
        chosen = b.select(b.icmp_signed("<", raw, const_i64(0)), b.add(raw, const_i64(rank)),
                          raw)
        with b.if_then(b.icmp_unsigned(">=", chosen, const_i64(rank)), likely=False):
            kb.store(ir.Constant(I32, code), kb.buffer(status_slot), const_i64(0))
        for candidate in range(rank):
            with b.if_then(b.icmp_signed("==", chosen, const_i64(candidate))):
                _emit_fold(kb, node, graph, candidate, src, dst)
    kb.finish()


def _emit_fold(kb, node: Node, graph: Graph, axis: int, src: ir.Value, dst: ir.Value) -> None:
    """This thread's share of the running fold along ``axis``."""
    shape = graph.types[node.inputs[0]].shape
    dtype = graph.types[node.inputs[0]].dtype
    elem = llvm_type(dtype)
    exclusive = bool(node.attrs.get("exclusive", 0))
    reverse = bool(node.attrs.get("reverse", 0))
    outer = int(np.prod(shape[:axis], dtype=np.int64))
    length = shape[axis]
    inner = int(np.prod(shape[axis + 1:], dtype=np.int64))
    chunks = -(-inner // CHUNK)
    b = kb.b

    def fold(acc: ir.Value, x: ir.Value) -> ir.Value:
        if dtype == _FLOAT16:  # each step rounds to float16, as numpy's float16 cumsum
            acc, x = b.fpext(acc, F32), b.fpext(x, F32)
            return b.fptrunc(fold_in(acc, x, np.dtype(np.float32)), elem)
        return fold_in(acc, x, dtype)

    def fold_in(acc, x, in_dtype):
        if node.op_type == "CumSum":
            return b.fadd(acc, x) if is_float(in_dtype) else b.add(acc, x)
        return b.fmul(acc, x) if is_float(in_dtype) else b.mul(acc, x)

    begin, end = kb.thread_share(outer * chunks if length else 0)
    with kb.loop(begin, end, name="item") as item:
        row = b.mul(b.udiv(item, const_i64(chunks)), const_i64(length * inner))
        lo, hi = chunk_bounds(b, item, chunks, CHUNK, inner)

        def at(position: ir.Value) -> ir.Value:
            """Offset of the first element at ``position`` along the axis in this row."""
            return b.add(row, b.mul(position, const_i64(inner)))

        first_at = at(const_i64(length - 1 if reverse else 0))
        with kb.loop(lo, hi, name="k") as k:
            offset = b.add(first_at, k)
            start = (const(_IDENTITY[node.op_type], ir.Constant(elem, None)) if exclusive
                     else kb.load(src, offset, elem))
            kb.store(start, dst, offset)
        with kb.loop(1, length, name="t") as t:
            position = b.sub(const_i64(length - 1), t) if reverse else t
            previous = b.add(position, const_i64(1)) if reverse else b.sub(position,
                                                                          const_i64(1))
            here, before = at(position), at(previous)
            # Exclusive: each result leaves its own element out, taking the one before.
            taken = before if exclusive else here
            with kb.loop(lo, hi, name="k") as k:
                value = fold(kb.load(dst, b.add(before, k), elem),
                             kb.load(src, b.add(taken, k), elem))
                kb.store(value, dst, b.add(here, k))


__all__ = ["lower_cumulative"]
