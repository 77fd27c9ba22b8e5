"""Pooling: MaxPool and AveragePool over 1-D or 2-D windows (NCW / NCHW), and the global
pools over any number of spatial axes. Windows over other numbers of axes, and MaxPool with
its Indices output, take a generic one-element-at-a-time kernel (:func:`_lower_generic`).

The window geometry is resolved at compile time. Threads split the output rows (N*C*OH).
For each row the range of valid kernel rows comes from a constant table, and the output
columns fall in three parts: the interior, whose windows lie inside the input across the
width, is computed without any bounds check, ``lanes`` outputs at a time (for a stride above
one, a contiguous load and a shuffle pick every stride-th value); the few border columns at
either end are unrolled with their valid kernel columns known at compile time. Every sum
runs in the reference's tap order, so AveragePool matches it bit for bit.
"""

from __future__ import annotations

import numpy as np
from llvmlite import ir

from byoc.core.interpreter import window as win
from byoc.core.ir import Graph, Node
from byoc_cpu_llvm.codegen import I64, const, const_i64, is_float, llvm_type
from byoc_cpu_llvm.kernels import lowering
from byoc_cpu_llvm.kernels.reduce import emit_reduction
from byoc_cpu_llvm.kernels.reduction_parts import (
    FLOATS,
    INTS,
    Epilogue,
    Var,
    empty_dims,
    epilogue_kernel,
    lanes_for,
    splat,
    strided_vload,
    vstore,
)

MAX_VECTOR_STRIDE = 4
MAX_BORDER_TAPS = 4096


def _window(node: Node, graph: Graph) -> win.Window:
    shape = graph.types[node.inputs[0]].shape
    a = node.attrs
    return win.plan(shape[2:], a.get("kernel_shape"), strides=a.get("strides"),
                    dilations=a.get("dilations"), pads=a.get("pads"),
                    auto_pad=a.get("auto_pad", "NOTSET"), ceil_mode=a.get("ceil_mode", 0))


def _axis(n: int, w: win.Window, axis: int, include_pad: bool):
    """Per output position along one axis: the valid kernel taps, and how many positions
    the average divides by."""
    k, s, d = w.kernel[axis], w.strides[axis], w.dilations[axis]
    pb, pe = w.pads_begin[axis], w.pads_end[axis]
    lo, hi = (-pb, n + pe) if include_pad else (0, n)
    taps, counts = [], []
    for o in range(w.out_shape[axis]):
        positions = [o * s - pb + t * d for t in range(k)]
        taps.append([t for t, p in enumerate(positions) if 0 <= p < n])
        counts.append(sum(1 for p in positions if lo <= p < hi))
    return taps, counts


def _geometry(node: Node, graph: Graph):
    """(H, W, window along h as (k, s, d, pb), along w likewise, OH, OW, h taps/counts,
    w taps/counts) with a 1-D pool seen as a 2-D one of height 1."""
    shape = graph.types[node.inputs[0]].shape
    w = _window(node, graph)
    include = bool(node.attrs.get("count_include_pad", 0))
    spatial = list(shape[2:])
    params = [(w.kernel[i], w.strides[i], w.dilations[i], w.pads_begin[i])
              for i in range(len(spatial))]
    axes = [_axis(n, w, i, include) for i, n in enumerate(spatial)]
    outs = list(w.out_shape)
    if len(spatial) == 1:
        spatial, params, outs = [1] + spatial, [(1, 1, 1, 0)] + params, [1] + outs
        axes = [([[0]], [1])] + axes
    return spatial, params, outs, axes


def _generic(node: Node, graph: Graph) -> bool:
    """Whether a pool takes the generic path: windows over other than 1 or 2 axes, or a
    MaxPool producing its Indices output."""
    return (len(graph.types[node.inputs[0]].shape) not in (3, 4)
            or (node.op_type == "MaxPool" and _wants_indices(node)))


def _wants_indices(node: Node) -> bool:
    return len(node.outputs) > 1 and bool(node.outputs[1])


def check_pool(node: Node, graph: Graph) -> str | None:
    op = node.op_type
    shape = graph.types[node.inputs[0]].shape
    dtype = graph.types[node.inputs[0]].dtype
    if dtype not in (FLOATS | INTS if op == "MaxPool" else FLOATS):
        return f"cpu_llvm {op} does not handle {dtype}"
    if len(shape) < 3:
        return f"{op} needs an N x C x D1 x ... input"
    kernel_shape = node.attrs.get("kernel_shape")
    if not kernel_shape:
        return f"{op} needs a kernel_shape attribute"
    if len(kernel_shape) != len(shape) - 2:
        return f"{op} kernel_shape needs one value per spatial axis"
    if op == "MaxPool" and node.attrs.get("storage_order", 0) not in (0, 1):
        return "MaxPool storage_order must be 0 or 1"
    if _generic(node, graph):
        return _check_generic(node, graph)
    try:
        _, params, outs, axes = _geometry(node, graph)
    except ValueError as error:
        return str(error)
    if tuple(graph.types[node.outputs[0]].shape[2:]) != tuple(outs[-len(shape) + 2:]):
        return f"{op} output shape does not match its window geometry"
    if op == "MaxPool" and any(not valid for per_output, _ in axes for valid in per_output):
        return "cpu_llvm MaxPool declines windows that hold no input element at all"
    w_taps = axes[1][0]
    border = sum(len(t) for t in w_taps if len(t) != params[1][0])
    if border > MAX_BORDER_TAPS:
        return f"cpu_llvm {op}: the window is too wide for its input ({border} border taps)"
    return empty_dims(node, graph)


def _check_generic(node: Node, graph: Graph) -> str | None:
    op = node.op_type
    shape = graph.types[node.inputs[0]].shape
    try:
        w = _window(node, graph)
    except ValueError as error:
        return str(error)
    out_shape = tuple(shape[:2]) + tuple(w.out_shape)
    if tuple(graph.types[node.outputs[0]].shape) != out_shape:
        return f"{op} output shape does not match its window geometry"
    if op == "MaxPool":
        if _wants_indices(node):
            indices = graph.types[node.outputs[1]]
            if indices.dtype != np.int64 or tuple(indices.shape) != out_shape:
                return "MaxPool Indices must be int64 and shaped like the output"
        for axis, n in enumerate(shape[2:]):
            if any(not taps for taps in _axis(n, w, axis, False)[0]):
                return "cpu_llvm MaxPool declines windows that hold no input element at all"
    return empty_dims(node, graph)


def _table(kb, values, elem: ir.Type, name: str) -> ir.GlobalVariable:
    array_type = ir.ArrayType(elem, len(values))
    table = ir.GlobalVariable(kb.module, array_type, f"{kb.function.name}_{name}")
    table.global_constant = True
    table.linkage = "internal"
    table.initializer = ir.Constant(array_type, [ir.Constant(elem, v) for v in values])
    return table


@lowering("MaxPool", "AveragePool", check=check_pool, epilogue=True)
def lower_pool(program, group) -> None:
    graph = program.graph
    node = group.head
    if _generic(node, graph):
        _lower_generic(program, group)
        return
    is_max = node.op_type == "MaxPool"
    x_type = graph.types[node.inputs[0]]
    dtype = x_type.dtype
    elem = llvm_type(dtype)
    (H, W), params, (OH, OW), (h_axis, w_axis) = _geometry(node, graph)
    (_, sh, dh, ph), (KW, sw, dw, pw) = params
    h_taps, h_counts = h_axis
    w_taps, w_counts = w_axis
    planes = x_type.shape[0] * x_type.shape[1]
    kb, epilogue, src, dst = epilogue_kernel(program, group)
    b = kb.b
    kh_lo_table = _table(kb, [t[0] if t else 0 for t in h_taps], I64, "khlo")
    kh_hi_table = _table(kb, [t[-1] + 1 if t else 0 for t in h_taps], I64, "khhi")
    count_table = None if is_max else _table(kb, [float(c) for c in h_counts], elem, "count")

    def from_table(table, index, typ):
        ptr = b.gep(table, [const_i64(0), index], inbounds=True)
        return b.load(ptr, typ=typ)

    begin, end = kb.thread_share(planes * OH)
    with kb.loop(begin, end, name="row") as row:
        plane = b.udiv(row, const_i64(OH))
        oh = b.urem(row, const_i64(OH))
        in_plane = b.mul(plane, const_i64(H * W))
        out_row = b.mul(row, const_i64(OW))
        kh_lo = from_table(kh_lo_table, oh, I64)
        kh_hi = from_table(kh_hi_table, oh, I64)
        ih0 = b.sub(b.mul(oh, const_i64(sh)), const_i64(ph))
        count_h = None if is_max else from_table(count_table, oh, elem)

        def row_offset(kh):
            return b.add(in_plane, b.mul(b.add(ih0, b.mul(kh, const_i64(dh))), const_i64(W)))

        def point(ow, lanes, taps, count_w):
            """Outputs ``ow .. ow + lanes - 1`` of this row, reading kernel columns
            ``taps`` (all valid for these outputs)."""
            col0 = b.sub(b.mul(ow, const_i64(sw)), const_i64(pw))
            vec_elem = ir.VectorType(elem, lanes) if lanes > 1 else elem

            def tap(kh, t):
                offset = b.add(b.add(row_offset(kh), col0), const_i64(t * dw))
                return strided_vload(kb, src, offset, elem, lanes, sw)

            if is_max:  # the first valid tap, then only a strictly greater value, wins
                acc = Var(kb, vec_elem, tap(kh_lo, taps[0]), name="best")
            else:
                acc = Var(kb, vec_elem, const(0, ir.Constant(vec_elem, None)), name="total")
            with kb.loop(kh_lo, kh_hi, name="kh") as kh:
                for t in taps:
                    x = tap(kh, t)
                    current = acc.get()
                    if is_max:
                        acc.set(b.select(_greater(b, x, current, dtype), x, current))
                    else:
                        acc.set(b.fadd(current, x))
            result = acc.get()
            if not is_max:
                divisor = b.fmul(count_h, ir.Constant(elem, float(count_w)))
                result = b.fdiv(result, splat(kb, divisor, lanes))
            at = b.add(out_row, ow)
            vstore(kb, epilogue.apply(kb, result, at), dst, at)

        interior = [ow for ow in range(OW) if len(w_taps[ow]) == KW]
        lo, hi = (interior[0], interior[-1] + 1) if interior else (OW, OW)
        for ow in list(range(lo)) + list(range(hi, OW)):
            if w_taps[ow]:
                point(const_i64(ow), 1, w_taps[ow], w_counts[ow])
            else:  # (AveragePool only) no input in the window: 0 / count
                point(const_i64(ow), 1, [], w_counts[ow])
        # The interior in full vectors, then what remains in vectors of half as many lanes
        # and so on (a row of 8-bit values may hold fewer than one register's worth).
        all_taps = list(range(KW))
        lanes = lanes_for(dtype) if sw <= MAX_VECTOR_STRIDE else 1
        vectors = (hi - lo) // lanes if lanes > 1 else 0
        if vectors:
            with kb.loop(0, vectors, name="vec") as i:
                point(b.add(const_i64(lo), b.mul(i, const_i64(lanes))), lanes, all_taps, KW)
        done = lo + vectors * lanes
        while lanes > 2:
            lanes //= 2
            if hi - done >= lanes:
                point(const_i64(done), lanes, all_taps, KW)
                done += lanes
        if done < hi:
            with kb.loop(done, hi, name="ow") as ow:
                point(ow, 1, all_taps, KW)
    kb.finish()


def _lower_generic(program, group) -> None:
    """One output element at a time over any number of spatial axes: the taps in row-major
    order, skipping those outside the input; MaxPool keeps the first strictly greater value
    (and the winning tap, for Indices), AveragePool divides the sum by the number of taps
    inside the counted region (the input, or the input and its pads)."""
    graph = program.graph
    node = group.head
    is_max = node.op_type == "MaxPool"
    x_type = graph.types[node.inputs[0]]
    dtype = x_type.dtype
    elem = llvm_type(dtype)
    w = _window(node, graph)
    spatial = list(x_type.shape[2:])
    outs = list(w.out_shape)
    rank = len(spatial)
    in_size = int(np.prod(spatial, dtype=np.int64))
    positions = int(np.prod(outs, dtype=np.int64))
    planes = x_type.shape[0] * x_type.shape[1]
    taps = int(np.prod(w.kernel, dtype=np.int64))
    include = bool(node.attrs.get("count_include_pad", 0))
    indices = is_max and _wants_indices(node)
    epilogue = Epilogue(program, group, graph.types[group.output].shape)
    in_slot, out_slot = program.value(node.inputs[0]), program.value(group.output)
    idx_slot = program.value(node.outputs[1]) if indices else None

    kb = program.kernel(node.name or node.op_type)
    epilogue.bind(kb)
    src, dst = kb.buffer(in_slot), kb.buffer(out_slot)
    idx_dst = kb.buffer(idx_slot) if indices else None
    b = kb.b
    acc = Var(kb, elem, name="acc")
    seen = Var(kb, ir.IntType(1), name="seen")
    winner = Var(kb, I64, name="winner")
    count = Var(kb, I64, name="count")

    def unravel_(index, sizes):
        coords = []
        for size in reversed(sizes):
            coords.append(b.urem(index, const_i64(size)))
            index = b.udiv(index, const_i64(size))
        return coords[::-1]

    def positions_of(o_coords, t):
        return [b.add(b.sub(b.mul(o, const_i64(s)), const_i64(p)), b.mul(k, const_i64(d)))
                for o, k, s, d, p in zip(o_coords, unravel_(t, list(w.kernel)), w.strides,
                                         w.dilations, w.pads_begin)]

    begin, end = kb.thread_share(planes * positions)
    with kb.loop(begin, end, name="out") as flat:
        plane = b.udiv(flat, const_i64(positions))
        o_coords = unravel_(b.urem(flat, const_i64(positions)), outs)
        in_plane = b.mul(plane, const_i64(in_size))
        acc.set(ir.Constant(elem, None) if not is_max else ir.Constant(elem, 0))
        seen.set(ir.Constant(ir.IntType(1), 0))
        winner.set(const_i64(0))
        count.set(const_i64(0))
        with kb.loop(0, taps, name="tap") as t:
            coords = positions_of(o_coords, t)
            valid = ir.Constant(ir.IntType(1), 1)
            counted = ir.Constant(ir.IntType(1), 1)
            offset = in_plane
            stride = in_size
            for i, n, pb, pe in zip(coords, spatial, w.pads_begin, w.pads_end):
                stride //= n
                valid = b.and_(valid, b.icmp_unsigned("<", i, const_i64(n)))
                if include:
                    counted = b.and_(counted, b.and_(
                        b.icmp_signed(">=", i, const_i64(-pb)),
                        b.icmp_signed("<", i, const_i64(n + pe))))
                offset = b.add(offset, b.mul(i, const_i64(stride)))
            if not is_max:
                count.set(b.add(count.get(), b.zext(counted if include else valid, I64)))
            with b.if_then(valid):
                x = kb.load(src, offset, elem)
                current = acc.get()
                if is_max:
                    better = b.or_(b.not_(seen.get()), _greater(b, x, current, dtype))
                    acc.set(b.select(better, x, current))
                    winner.set(b.select(better, t, winner.get()))
                    seen.set(ir.Constant(ir.IntType(1), 1))
                else:
                    acc.set(b.fadd(current, x))
        result = acc.get()
        if not is_max:
            result = b.fdiv(result, b.uitofp(count.get(), elem))
        kb.store(epilogue.apply(kb, result, flat), dst, flat)
        if indices:
            coords = positions_of(o_coords, winner.get())
            order = range(rank) if node.attrs.get("storage_order", 0) == 0 else \
                range(rank - 1, -1, -1)
            within = const_i64(0)
            for axis in order:
                within = b.add(b.mul(within, const_i64(spatial[axis])), coords[axis])
            kb.store(b.add(in_plane, within), idx_dst, flat)
    kb.finish()


def _greater(b, x, y, dtype):
    if is_float(dtype):
        return b.fcmp_ordered(">", x, y)
    if np.issubdtype(dtype, np.signedinteger):
        return b.icmp_signed(">", x, y)
    return b.icmp_unsigned(">", x, y)


def check_global(node: Node, graph: Graph) -> str | None:
    shape = graph.types[node.inputs[0]].shape
    dtype = graph.types[node.inputs[0]].dtype
    allowed = FLOATS | INTS if node.op_type == "GlobalMaxPool" else FLOATS
    if dtype not in allowed:
        return f"cpu_llvm {node.op_type} does not handle {dtype}"
    if len(shape) < 3:
        return f"{node.op_type} needs an N x C x D1 x ... input"
    return empty_dims(node, graph)


@lowering("GlobalAveragePool", "GlobalMaxPool", check=check_global, epilogue=True)
def lower_global_pool(program, group) -> None:
    node = group.head
    shape = program.graph.types[node.inputs[0]].shape
    axes = tuple(range(2, len(shape)))
    if node.op_type == "GlobalMaxPool":
        emit_reduction(program, group, "max", None, shape, axes)
    else:
        # Summed and divided in double, rounded once: the reference's GlobalAveragePool.
        emit_reduction(program, group, "sum", "mean", shape, axes, acc_dtype=np.float64)


__all__ = ["lower_global_pool", "lower_pool"]
