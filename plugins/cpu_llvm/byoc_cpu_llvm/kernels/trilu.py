"""Trilu: the upper or lower triangle of each matrix in the last two dims, the rest zeroed.

Threads split the matrix rows (all dims but the last). In row ``i`` the kept columns are one
contiguous range (``j >= i + k`` for the upper triangle, ``j <= i + k`` for the lower), so a
row is a copy and a fill, both plain loops that LLVM vectorizes. ``k`` is read at run time.
Values move as integers of their width, so every element type of that width is handled
alike.
"""

from __future__ import annotations

import numpy as np
from llvmlite import ir

from byoc.core.ir import Graph, Node
from byoc_cpu_llvm.codegen import I64, const_i64, smax, smin
from byoc_cpu_llvm.kernels import lowering
from byoc_cpu_llvm.kernels.strided_copy import int_type_of, movable


def check_trilu(node: Node, graph: Graph) -> str | None:
    x = graph.types[node.inputs[0]]
    if not movable(x.dtype):
        return f"cpu_llvm Trilu does not handle {x.dtype}"
    if len(x.shape) < 2:
        return (f"Trilu needs an input of rank 2 or more; node {node.name!r} has shape "
                f"{list(x.shape)}")
    if len(node.inputs) > 1 and node.inputs[1]:
        k = graph.types[node.inputs[1]]
        if k.size != 1 or len(k.shape) > 1 or k.dtype != np.int64:
            return (f"Trilu's k input must be an int64 scalar; node {node.name!r} has "
                    f"{k.dtype} of shape {list(k.shape)}")
    return None


@lowering("Trilu", check=check_trilu)
def lower_trilu(program, group) -> None:
    graph = program.graph
    node = group.head
    x = graph.types[node.inputs[0]]
    matrix_rows, cols = x.shape[-2], x.shape[-1]
    rows = int(np.prod(x.shape[:-1], dtype=np.int64))
    upper = bool(node.attrs.get("upper", 1))
    elem = int_type_of(x.dtype)
    src_slot, dst_slot = program.value(node.inputs[0]), program.value(node.outputs[0])
    kb = program.kernel(node.name or node.op_type)
    src, dst = kb.buffer(src_slot), kb.buffer(dst_slot)
    b = kb.b
    zero = ir.Constant(elem, 0)
    if len(node.inputs) > 1 and node.inputs[1]:
        # Read at run time (a constant k too); clamped so that i + k cannot overflow.
        k = kb.load(kb.buffer(program.value(node.inputs[1])), const_i64(0), I64)
        k = smin(kb.b, smax(kb.b, k, const_i64(-matrix_rows - 1)), const_i64(cols + 1))
    else:
        k = const_i64(0)
    begin, end = kb.thread_share(rows)
    with kb.loop(begin, end, name="row") as row:
        i = b.urem(row, const_i64(max(matrix_rows, 1)))  # (no rows at all when it is 0)
        # The first column past the lower triangle, or the first of the upper one.
        edge = b.add(b.add(i, k), const_i64(0 if upper else 1))
        edge = smin(kb.b, smax(kb.b, edge, const_i64(0)), const_i64(cols))
        kept = (edge, const_i64(cols)) if upper else (const_i64(0), edge)
        zeroed = (const_i64(0), edge) if upper else (edge, const_i64(cols))
        base = b.mul(row, const_i64(cols))
        with kb.loop(*kept, name="keep") as j:
            at = b.add(base, j)
            kb.store(kb.load(src, at, elem), dst, at)
        with kb.loop(*zeroed, name="zero") as j:
            kb.store(zero, dst, b.add(base, j))
    kb.finish()


__all__ = ["lower_trilu"]
