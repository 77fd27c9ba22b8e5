"""Normalizations over chosen axes rather than a fixed layout: MeanVarianceNormalization and
LpNormalization (planned like a reduction: size-1 dims dropped, neighbouring dims of one kind
merged) and LRN (a window across neighbouring channels). The normalizations of a fixed
layout are in :mod:`.norm`, whose arithmetic rules these follow.
"""

from __future__ import annotations

import numpy as np
from llvmlite import ir

from byoc.core.interpreter.ops_norm import MeanVarianceNormalization
from byoc.core.ir import Graph, Node
from byoc_cpu_llvm.codegen import const_i64, llvm_type
from byoc_cpu_llvm.kernels import lowering
from byoc_cpu_llvm.kernels.norm import input_refusal, sqrt
from byoc_cpu_llvm.kernels.reduce import plan_groups
from byoc_cpu_llvm.kernels.reduction_parts import (
    CHUNK,
    FLOATS,
    Var,
    chunk_bounds,
    dot,
    empty_dims,
    epilogue_kernel,
    unravel,
)

# -- MeanVarianceNormalization -------------------------------------------------------------------

def _mvn_axes(node: Node, graph: Graph) -> set[int]:
    rank = len(graph.types[node.inputs[0]].shape)
    axes = list(node.attrs.get("axes", (0, 2, 3)))
    if any(not -rank <= a < rank for a in axes) or len({a % rank for a in axes}) != len(axes):
        raise ValueError(f"MeanVarianceNormalization axes {axes} are out of range for rank "
                         f"{rank} or repeat a dim")
    return {a % rank for a in axes}


def check_mvn(node: Node, graph: Graph) -> str | None:
    dtype = graph.types[node.inputs[0]].dtype
    if dtype not in FLOATS:
        return f"cpu_llvm MeanVarianceNormalization does not handle {dtype}"
    try:
        _mvn_axes(node, graph)
    except ValueError as error:
        return str(error)
    return empty_dims(node, graph)


@lowering("MeanVarianceNormalization", check=check_mvn, epilogue=True)
def lower_mvn(program, group) -> None:
    """The input is planned as a reduction (size-1 dims dropped, neighbouring dims of one kind
    merged); threads split the kept positions, and each makes three passes over its reduced
    elements (sum, squared deviations, normalize) in loops whose innermost one is contiguous
    when the innermost dims are reduced, so LLVM vectorizes it."""
    graph = program.graph
    node = group.head
    x_type = graph.types[node.inputs[0]]
    elem = llvm_type(x_type.dtype)
    groups = plan_groups(x_type.shape, _mvn_axes(node, graph))
    strides = [int(np.prod([s for s, _ in groups[i + 1:]], dtype=np.int64))
               for i in range(len(groups))]
    kept = [(size, stride) for (size, reduced), stride in zip(groups, strides) if not reduced]
    reduced = [(size, stride) for (size, is_reduced), stride in zip(groups, strides)
               if is_reduced]
    count = ir.Constant(elem, float(np.prod([s for s, _ in reduced], dtype=np.int64)))
    kb, epilogue, src, dst = epilogue_kernel(program, group)
    b = kb.b
    total = Var(kb, elem, name="total")

    def over_reduced(levels, offset, body):
        if not levels:
            body(offset)
            return
        size, stride = levels[0]
        with kb.loop(0, size, name="r") as r:
            over_reduced(levels[1:], b.add(offset, b.mul(r, const_i64(stride))), body)

    def accumulate(base, term):
        total.set(ir.Constant(elem, 0.0))
        over_reduced(reduced, base, lambda at: total.set(
            b.fadd(total.get(), term(kb.load(src, at, elem)), flags=("reassoc",))))
        return total.get()

    begin, end = kb.thread_share(int(np.prod([s for s, _ in kept], dtype=np.int64)))
    with kb.loop(begin, end, name="o") as o:
        base = dot(kb, unravel(kb, o, [s for s, _ in kept]), [st for _, st in kept])
        mean = b.fdiv(accumulate(base, lambda x: x), count)

        def squared_deviation(x):
            centered = b.fsub(x, mean)
            return b.fmul(centered, centered)

        std = sqrt(kb, b.fdiv(accumulate(base, squared_deviation), count))
        denominator = b.fadd(std, ir.Constant(elem, MeanVarianceNormalization.EPSILON))

        def normalize(at):
            y = b.fdiv(b.fsub(kb.load(src, at, elem), mean), denominator)
            kb.store(epilogue.apply(kb, y, at), dst, at)

        over_reduced(reduced, base, normalize)
    kb.finish()


# -- LpNormalization -----------------------------------------------------------------------------

def _lp_layout(node: Node, graph: Graph) -> tuple[int, int, int]:
    """``(outer, length, inner)`` around the normalized axis."""
    shape = graph.types[node.inputs[0]].shape
    axis = node.attrs.get("axis", -1)
    if not -len(shape) <= axis < len(shape):
        raise ValueError(f"LpNormalization axis {axis} is out of range for rank {len(shape)}")
    axis %= len(shape)
    return (int(np.prod(shape[:axis], dtype=np.int64)), shape[axis],
            int(np.prod(shape[axis + 1:], dtype=np.int64)))


def check_lpnorm(node: Node, graph: Graph) -> str | None:
    dtype = graph.types[node.inputs[0]].dtype
    if dtype not in FLOATS:
        return f"cpu_llvm LpNormalization does not handle {dtype}"
    if node.attrs.get("p", 2) not in (1, 2):
        return "LpNormalization p must be 1 or 2"
    try:
        _lp_layout(node, graph)
    except ValueError as error:
        return str(error)
    return empty_dims(node, graph)


@lowering("LpNormalization", check=check_lpnorm, epilogue=True)
def lower_lpnorm(program, group) -> None:
    """When the axis is innermost each row is contiguous: threads split the rows. Otherwise
    threads split ``outer`` x chunks of ``inner``, keep the chunk's norms in a per-thread
    scratch row, and every pass runs along ``inner`` (contiguous), which LLVM vectorizes. A
    zero norm gives 0, as in the reference."""
    graph = program.graph
    node = group.head
    dtype = graph.types[node.inputs[0]].dtype
    elem = llvm_type(dtype)
    outer, length, inner = _lp_layout(node, graph)
    squares = node.attrs.get("p", 2) == 2
    scratch_slot = None
    if inner > 1:
        scratch_slot = program.scratch(f"{group.output}.lp_norms", dtype, CHUNK)
    kb, epilogue, src, dst = epilogue_kernel(program, group)
    b = kb.b
    zero = ir.Constant(elem, 0.0)

    def term(x):
        return b.fmul(x, x) if squares else kb.intrinsic("llvm.fabs", elem, [x])

    def finished(total):
        return sqrt(kb, total) if squares else total

    def store_normalized(at, norm):
        quotient = b.fdiv(kb.load(src, at, elem), norm)
        y = b.select(b.fcmp_ordered("==", norm, zero), zero, quotient)
        kb.store(epilogue.apply(kb, y, at), dst, at)

    if inner == 1:
        total = Var(kb, elem, name="total")
        begin, end = kb.thread_share(outer)
        with kb.loop(begin, end, name="row") as row:
            base = b.mul(row, const_i64(length))
            total.set(zero)
            with kb.loop(0, length, name="j") as j:
                x = kb.load(src, b.add(base, j), elem)
                total.set(b.fadd(total.get(), term(x), flags=("reassoc",)))
            norm = finished(total.get())
            with kb.loop(0, length, name="j") as j:
                store_normalized(b.add(base, j), norm)
        kb.finish()
        return
    chunks = -(-inner // CHUNK)
    norms = kb.element(kb.buffer(scratch_slot), b.mul(kb.tid, const_i64(CHUNK)), elem)
    begin, end = kb.thread_share(outer * chunks)
    with kb.loop(begin, end, name="item") as item:
        lo, hi = chunk_bounds(b, item, chunks, CHUNK, inner)
        base = b.mul(b.udiv(item, const_i64(chunks)), const_i64(length * inner))
        with kb.loop(lo, hi, name="k") as k:
            kb.store(zero, norms, b.sub(k, lo))
        with kb.loop(0, length, name="a") as a:
            row = b.add(base, b.mul(a, const_i64(inner)))
            with kb.loop(lo, hi, name="k") as k:
                slot = b.sub(k, lo)
                x = kb.load(src, b.add(row, k), elem)
                kb.store(b.fadd(kb.load(norms, slot, elem), term(x)), norms, slot)
        with kb.loop(lo, hi, name="k") as k:
            slot = b.sub(k, lo)
            kb.store(finished(kb.load(norms, slot, elem)), norms, slot)
        with kb.loop(0, length, name="a") as a:
            row = b.add(base, b.mul(a, const_i64(inner)))
            with kb.loop(lo, hi, name="k") as k:
                store_normalized(b.add(row, k), kb.load(norms, b.sub(k, lo), elem))
    kb.finish()


# -- LRN -----------------------------------------------------------------------------------------

def check_lrn(node: Node, graph: Graph) -> str | None:
    size = node.attrs.get("size")
    if size is None or size < 1:
        return "LRN needs a positive size attribute"
    return input_refusal(node, graph, [])


@lowering("LRN", check=check_lrn, epilogue=True)
def lower_lrn(program, group) -> None:
    """The output buffer first accumulates the squares over the channel window (ascending
    channels, as the reference sums), then becomes ``x / (bias + alpha/size * sum)^beta``."""
    graph = program.graph
    node = group.head
    x_type = graph.types[node.inputs[0]]
    dtype = x_type.dtype
    elem = llvm_type(dtype)
    channels = x_type.shape[1]
    spatial = int(np.prod(x_type.shape[2:], dtype=np.int64))
    size = int(node.attrs["size"])
    before, after = (size - 1) // 2, size // 2
    alpha = float(np.asarray(node.attrs.get("alpha", 0.0001) / size, dtype))
    beta = float(np.asarray(node.attrs.get("beta", 0.75), dtype))
    bias = float(np.asarray(node.attrs.get("bias", 1.0), dtype))
    kb, epilogue, src, dst = epilogue_kernel(program, group)
    b = kb.b
    begin, end = kb.thread_share(x_type.shape[0] * channels)
    with kb.loop(begin, end, name="plane") as plane:
        channel = b.urem(plane, const_i64(channels))
        batch_base = b.mul(b.sub(plane, channel), const_i64(spatial))
        base = b.mul(plane, const_i64(spatial))
        first = b.sub(channel, const_i64(before))
        first = b.select(b.icmp_signed("<", first, const_i64(0)), const_i64(0), first)
        last = b.add(channel, const_i64(after + 1))
        last = b.select(b.icmp_signed(">", last, const_i64(channels)), const_i64(channels),
                        last)
        with kb.loop(0, spatial, name="i") as i:
            kb.store(ir.Constant(elem, 0.0), dst, b.add(base, i))
        with kb.loop(first, last, name="c") as c:
            source = b.add(batch_base, b.mul(c, const_i64(spatial)))
            with kb.loop(0, spatial, name="i") as i:
                x = kb.load(src, b.add(source, i), elem)
                at = b.add(base, i)
                kb.store(b.fadd(kb.load(dst, at, elem), b.fmul(x, x)), dst, at)
        with kb.loop(0, spatial, name="i") as i:
            at = b.add(base, i)
            scale = b.fadd(ir.Constant(elem, bias),
                           b.fmul(ir.Constant(elem, alpha), kb.load(dst, at, elem)))
            power = kb.intrinsic("llvm.pow", elem, [scale, ir.Constant(elem, beta)])
            y = b.fdiv(kb.load(src, at, elem), power)
            kb.store(epilogue.apply(kb, y, at), dst, at)
    kb.finish()


__all__ = ["lower_lpnorm", "lower_lrn", "lower_mvn"]
