"""Softmax and LogSoftmax, numerically stable: ``exp(x - max)`` normalized by its sum.

The input is seen as ``outer x length x inner`` around the normalized axis (before opset 13,
everything from ``axis`` on is one axis of ``length``). When ``inner`` is 1 each row is
contiguous: threads split the rows, and a row takes three passes (max with vector
accumulators; exp and sum, float32 exp a vector at a time; scale). Otherwise threads split
``outer`` x chunks of ``inner``, keep a per-thread scratch row of maxima and sums, and every
pass runs along ``inner`` (contiguous), which LLVM vectorizes.
"""

from __future__ import annotations

import numpy as np
from llvmlite import ir

from byoc.core.ir import Graph, Node
from byoc_cpu_llvm.codegen import const_i64, llvm_type
from byoc_cpu_llvm.kernels import lowering
from byoc_cpu_llvm.kernels.reduction_parts import (
    CHUNK,
    FLOATS,
    Epilogue,
    Var,
    chunk_bounds,
    combine,
    empty_dims,
    horizontal,
    lanes_for,
    reduce_run,
    splat,
    vload,
    vstore,
)
from byoc_cpu_llvm.kernels.scalar_ops import exp, fast_exp, log


def _layout(node: Node, graph: Graph) -> tuple[int, int, int]:
    """``(outer, length, inner)`` around the normalized axis."""
    shape = graph.types[node.inputs[0]].shape
    opset = graph.opsets.get("", 0)
    modern = opset >= 13
    axis = node.attrs.get("axis", -1 if modern else 1)
    rank = len(shape)
    if not -rank <= axis < rank:
        raise ValueError(f"{node.op_type} axis {axis} is out of range for rank {rank}")
    axis %= rank
    outer = int(np.prod(shape[:axis], dtype=np.int64))
    if modern:
        return outer, shape[axis], int(np.prod(shape[axis + 1:], dtype=np.int64))
    return outer, int(np.prod(shape[axis:], dtype=np.int64)), 1


def check_softmax(node: Node, graph: Graph) -> str | None:
    dtype = graph.types[node.inputs[0]].dtype
    if dtype not in FLOATS:
        return f"cpu_llvm {node.op_type} does not handle {dtype}"
    if not graph.types[node.inputs[0]].shape:
        return f"cpu_llvm {node.op_type} needs an input of rank 1 or more"
    try:
        _layout(node, graph)
    except ValueError as error:
        return str(error)
    return empty_dims(node, graph)


@lowering("Softmax", "LogSoftmax", check=check_softmax, epilogue=True)
def lower_softmax(program, group) -> None:
    graph = program.graph
    node = group.head
    is_log = node.op_type == "LogSoftmax"
    dtype = graph.types[node.inputs[0]].dtype
    elem = llvm_type(dtype)
    outer, length, inner = _layout(node, graph)
    epilogue = Epilogue(program, group, graph.types[group.output].shape)
    in_slot, out_slot = program.value(node.inputs[0]), program.value(group.output)
    scratch_slot = None
    if inner > 1:
        scratch_slot = program.scratch(f"{group.output}.softmax_scratch", dtype, 2 * CHUNK)
    kb = program.kernel(node.name or node.op_type)
    epilogue.bind(kb)
    src, dst = kb.buffer(in_slot), kb.buffer(out_slot)
    b = kb.b
    zero = ir.Constant(elem, 0.0)

    def finish(x, at, maximum, total):
        """The output at ``at`` from input ``x`` (log) or the stored exp (softmax)."""
        if is_log:
            value = b.fsub(b.fsub(x, maximum), total)
        else:
            value = b.fdiv(x, total)
        result = epilogue.apply(kb, value, at)
        if isinstance(result.type, ir.VectorType):
            vstore(kb, result, dst, at)
        else:
            kb.store(result, dst, at)

    if inner == 1:
        lanes = lanes_for(dtype)
        vec_type = ir.VectorType(elem, lanes)
        vec_max = Var(kb, vec_type, name="vmax") if length >= lanes else None
        vec_sum = (Var(kb, vec_type, name="vsum")
                   if length >= lanes and dtype == np.float32 else None)
        row_max, total = Var(kb, elem, name="max"), Var(kb, elem, name="sum")
        begin, end = kb.thread_share(outer)
        with kb.loop(begin, end, name="row") as row:
            start = b.mul(row, const_i64(length))
            row_max.set(ir.Constant(elem, float("-inf")))
            if vec_max is not None:
                vec_max.set(ir.Constant(vec_type, [float("-inf")] * lanes))
            reduce_run(kb, "max", src, start, length, dtype, vec_max, row_max)
            maximum = row_max.get()
            if vec_max is not None:
                maximum = combine(kb, "max", horizontal(kb, "max", vec_max.get(), dtype),
                                  maximum, dtype)
            total.set(zero)
            # float32 rows take exp a vector at a time (libm's one lane at a time was nine
            # tenths of a BERT Softmax); the rest of the row, and other floats, by element
            whole = length // lanes * lanes if vec_sum is not None else 0
            if whole:
                vec_sum.set(ir.Constant(vec_type, None))
                row_max_vec = splat(kb, maximum, lanes)
                with kb.loop(0, whole, lanes, name="v") as i:
                    at = b.add(start, i)
                    e = fast_exp(kb, b.fsub(vload(kb, src, at, elem, lanes), row_max_vec))
                    if not is_log:
                        vstore(kb, e, dst, at)
                    vec_sum.set(b.fadd(vec_sum.get(), e, flags=("reassoc",)))
            with kb.loop(whole, length, name="j") as j:
                at = b.add(start, j)
                e = exp(kb, b.fsub(kb.load(src, at, elem), maximum))
                if not is_log:
                    kb.store(e, dst, at)
                total.set(b.fadd(total.get(), e, flags=("reassoc",)))
            if whole:
                total.set(b.fadd(total.get(), horizontal(kb, "sum", vec_sum.get(), dtype),
                                 flags=("reassoc",)))
            norm = log(kb, total.get()) if is_log else total.get()
            if whole:
                norm_vec, max_vec = splat(kb, norm, lanes), splat(kb, maximum, lanes)
                with kb.loop(0, whole, lanes, name="v") as i:
                    at = b.add(start, i)
                    finish(vload(kb, src if is_log else dst, at, elem, lanes), at, max_vec,
                           norm_vec)
            with kb.loop(whole, length, name="j") as j:
                at = b.add(start, j)
                finish(kb.load(src if is_log else dst, at, elem), at, maximum, norm)
    else:
        chunks = -(-inner // CHUNK)
        scratch = kb.element(kb.buffer(scratch_slot), b.mul(kb.tid, const_i64(2 * CHUNK)),
                             elem)
        maxima = scratch
        sums = kb.element(scratch, const_i64(CHUNK), elem)
        begin, end = kb.thread_share(outer * chunks)
        with kb.loop(begin, end, name="item") as item:
            o = b.udiv(item, const_i64(chunks))
            lo, hi = chunk_bounds(b, item, chunks, CHUNK, inner)
            count = b.sub(hi, lo)
            base = b.add(b.mul(o, const_i64(length * inner)), lo)

            def at(r, k):
                return b.add(base, b.add(b.mul(r, const_i64(inner)), k))

            with kb.loop(0, count, name="k") as k:
                kb.store(kb.load(src, at(const_i64(0), k), elem), maxima, k)
                kb.store(zero, sums, k)
            with kb.loop(1, length, name="r") as r, kb.loop(0, count, name="k") as k:
                current = kb.load(maxima, k, elem)
                kb.store(combine(kb, "max", current, kb.load(src, at(r, k), elem), dtype),
                         maxima, k)
            with kb.loop(0, length, name="r") as r, kb.loop(0, count, name="k") as k:
                e = exp(kb, b.fsub(kb.load(src, at(r, k), elem), kb.load(maxima, k, elem)))
                if not is_log:
                    kb.store(e, dst, at(r, k))
                kb.store(b.fadd(kb.load(sums, k, elem), e), sums, k)
            if is_log:
                with kb.loop(0, count, name="k") as k:
                    kb.store(log(kb, kb.load(sums, k, elem)), sums, k)
            with kb.loop(0, length, name="r") as r, kb.loop(0, count, name="k") as k:
                where = at(r, k)
                finish(kb.load(src if is_log else dst, where, elem), where,
                       kb.load(maxima, k, elem), kb.load(sums, k, elem))
    kb.finish()


__all__ = ["lower_softmax"]
