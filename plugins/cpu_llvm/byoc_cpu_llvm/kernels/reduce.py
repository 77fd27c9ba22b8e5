"""Reductions (ReduceSum/Mean/Max/Min/Prod/L1/L2/SumSquare/LogSum/LogSumExp) and
ArgMax/ArgMin, built from :mod:`.reduction_parts`.

A reduction is planned on the input's shape with its size-1 dims dropped and neighbouring
dims of the same kind (reduced or kept) merged into one. When the innermost group is reduced
each output element sums a contiguous run: threads split the outputs, and the run is read
with explicit vector accumulators. When the innermost group is kept, threads split rows of
the output into chunks and accumulate into the output in place, so the inner loop is a plain
elementwise loop over contiguous memory that LLVM vectorizes.
"""

from __future__ import annotations

import numpy as np
from llvmlite import ir

from byoc.core.ir import Graph, Node
from byoc_cpu_llvm.codegen import (
    I64,
    KernelBuilder,
    const,
    const_i64,
    is_float,
    is_signed,
    llvm_type,
)
from byoc_cpu_llvm.kernels import lowering
from byoc_cpu_llvm.kernels.reduction_parts import (
    CHUNK,
    FLOATS,
    INTS,
    Epilogue,
    Var,
    chunk_bounds,
    combine,
    dot,
    empty_dims,
    epilogue_kernel,
    head_dtype,
    horizontal,
    identity,
    lanes_for,
    merging,
    reduce_run,
    strided_vload,
    unravel,
    vload,
    vstore,
)
from byoc_cpu_llvm.kernels.scalar_ops import exp, fast_exp, log

REDUCE_OPS = ("ReduceSum", "ReduceMean", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceL2",
              "ReduceL1", "ReduceSumSquare", "ReduceLogSum")


# -- generic reduction ---------------------------------------------------------------------------

def plan_groups(shape, axes) -> list[list]:
    """``shape`` without its size-1 dims, neighbouring dims of one kind merged:
    ``[[size, reduced], ...]``, with at least one kept and one reduced group."""
    groups: list[list] = []
    for dim, size in enumerate(shape):
        if size == 1:
            continue
        reduced = dim in axes
        if groups and groups[-1][1] == reduced:
            groups[-1][0] *= size
        else:
            groups.append([size, reduced])
    if not any(reduced for _, reduced in groups):
        groups.append([1, True])
    if all(reduced for _, reduced in groups):
        groups.insert(0, [1, False])
    return groups


def split_levels(shape, axes) -> tuple[list[list], list[tuple[int, int]],
                                       list[tuple[int, int]]]:
    """The groups of :func:`plan_groups`, and the (size, element stride) of the kept and of
    the reduced ones, outermost first."""
    groups = plan_groups(shape, set(axes))
    strides, step = [], 1
    for size, _ in reversed(groups):
        strides.append(step)
        step *= size
    strides = strides[::-1]
    kept = [(s, st) for (s, red), st in zip(groups, strides) if not red]
    reduced = [(s, st) for (s, red), st in zip(groups, strides) if red]
    return groups, kept, reduced


def emit_reduction(program, group, kind: str, finish: str | None, in_shape, axes,
                   acc_dtype=None) -> None:
    """A kernel folding ``group.head``'s first input over ``axes`` with ``kind`` (see
    :func:`combine`); ``finish`` is None, ``mean`` (divide by the count), ``sqrt`` or ``log``.

    ``acc_dtype``, a float wider than the input's, accumulates and finishes in that type and
    rounds once at the end, as the reference does for GlobalAveragePool (only for reductions
    whose innermost dims are reduced)."""
    graph = program.graph
    node = group.head
    dtype = graph.types[node.inputs[0]].dtype
    elem = llvm_type(dtype)
    out_shape = graph.types[group.output].shape
    if 0 in tuple(in_shape):
        emit_empty_reduction(program, group, kind, finish)
        return
    groups, kept, reduced = split_levels(in_shape, axes)
    count = int(np.prod([s for s, red in groups if red], dtype=np.int64))
    epilogue = Epilogue(program, group, out_shape)
    in_slot, out_slot = program.value(node.inputs[0]), program.value(group.output)
    kb = program.kernel(node.name or node.op_type)
    epilogue.bind(kb)
    src, dst = kb.buffer(in_slot), kb.buffer(out_slot)
    b = kb.b
    init = const(identity(kind, dtype), ir.Constant(elem, None))
    acc_dtype = np.dtype(acc_dtype or dtype)
    acc_elem = llvm_type(acc_dtype)
    if acc_dtype != dtype and (not groups[-1][1] or not is_float(dtype)):
        raise ValueError("a wider accumulator needs a float reduction over the innermost dims")

    def finished(value, flat):
        if finish == "mean":
            value = b.fdiv(value, const(float(count), value))
        elif finish is not None:
            value = finishing(kb, finish, value)
        if acc_dtype != dtype:
            value = b.fptrunc(value, elem)
        return epilogue.apply(kb, value, flat)

    if groups[-1][1]:
        # Innermost group reduced: each output folds contiguous runs.
        outputs = int(np.prod([s for s, _ in kept], dtype=np.int64))
        run = groups[-1][0]
        lanes = lanes_for(acc_dtype)
        vec_type = ir.VectorType(acc_elem, lanes)
        acc_init = const(identity(kind, acc_dtype), ir.Constant(acc_elem, None))
        begin, end = kb.thread_share(outputs)
        vec_acc = Var(kb, vec_type, name="vacc") if run >= lanes else None
        scalar_acc = Var(kb, acc_elem, name="acc")
        with kb.loop(begin, end, name="o") as o:
            base = dot(kb, unravel(kb, o, [s for s, _ in kept]), [st for _, st in kept])
            scalar_acc.set(acc_init)
            if vec_acc is not None:
                vec_acc.set(ir.Constant(vec_type, [acc_init] * lanes))
            nest(kb, reduced[:-1], base,
                 lambda off: reduce_run(kb, kind, src, off, run, dtype, vec_acc, scalar_acc,
                                        acc_dtype))
            total = scalar_acc.get()
            if vec_acc is not None:
                total = combine(kb, merging(kind),
                                horizontal(kb, kind, vec_acc.get(), acc_dtype), total,
                                acc_dtype)
            vstore(kb, finished(total, o), dst, o)
    else:
        # Innermost group kept: accumulate chunks of output rows in place.
        inner = groups[-1][0]
        rows_sizes = [s for s, _ in kept[:-1]]
        rows_strides = [st for _, st in kept[:-1]]
        chunks = -(-inner // CHUNK)
        rows = int(np.prod(rows_sizes, dtype=np.int64))
        begin, end = kb.thread_share(rows * chunks)
        with kb.loop(begin, end, name="item") as item:
            row = b.udiv(item, const_i64(chunks))
            lo, hi = chunk_bounds(b, item, chunks, CHUNK, inner)
            in_base = dot(kb, unravel(kb, row, rows_sizes), rows_strides)
            out_base = b.mul(row, const_i64(inner))
            with kb.loop(lo, hi, name="k") as k:
                kb.store(init, dst, b.add(out_base, k))

            def body(offset):
                with kb.loop(lo, hi, name="k") as k:
                    at = b.add(out_base, k)
                    x = kb.load(src, b.add(offset, k), elem)
                    kb.store(combine(kb, kind, kb.load(dst, at, elem), x, dtype), dst, at)

            nest(kb, reduced, in_base, body)
            if finish is not None or group.epilogue:
                with kb.loop(lo, hi, name="k") as k:
                    at = b.add(out_base, k)
                    kb.store(finished(kb.load(dst, at, elem), at), dst, at)
    kb.finish()


def nest(kb: KernelBuilder, levels, offset: ir.Value, body) -> None:
    """Loops over the (size, stride) ``levels``, calling ``body(offset)`` innermost."""
    if not levels:
        body(offset)
        return
    size, stride = levels[0]
    with kb.loop(0, size, name="r") as r:
        nest(kb, levels[1:], kb.b.add(offset, kb.b.mul(r, const_i64(stride))), body)


def finishing(kb: KernelBuilder, finish: str, value: ir.Value) -> ir.Value:
    """``sqrt`` or ``log`` of a reduction's result."""
    if finish == "sqrt":
        return kb.intrinsic("llvm.sqrt", value.type, [value])
    return log(kb, value)


def emit_empty_reduction(program, group, kind: str, finish: str | None) -> None:
    """A reduction of an empty input, as numpy's: every output element (there may be none) is
    ``kind``'s identity (0, 1, or the dtype's lowest/highest value for max/min, -inf/inf for
    floats) after ``finish`` (a mean of nothing is 0/0 = NaN, a log of nothing -inf) and the
    epilogue."""
    graph = program.graph
    node = group.head
    dtype = graph.types[node.inputs[0]].dtype
    elem = llvm_type(dtype)
    out_shape = graph.types[group.output].shape
    total = int(np.prod(out_shape, dtype=np.int64))
    epilogue = Epilogue(program, group, out_shape)
    out_slot = program.value(group.output)
    kb = program.kernel(node.name or node.op_type)
    epilogue.bind(kb)
    dst = kb.buffer(out_slot)
    b = kb.b
    begin, end = kb.thread_share(total)
    with kb.loop(begin, end, name="o") as o:
        value = const(identity(kind, dtype), ir.Constant(elem, None))
        if finish == "mean":
            value = b.fdiv(value, const(0.0, value))
        elif finish is not None:
            value = finishing(kb, finish, value)
        kb.store(epilogue.apply(kb, value, o), dst, o)
    kb.finish()


# -- ReduceX -------------------------------------------------------------------------------------

_KINDS = {"ReduceSum": ("sum", None), "ReduceMean": ("sum", "mean"),
          "ReduceMax": ("max", None), "ReduceMin": ("min", None),
          "ReduceProd": ("prod", None), "ReduceL2": ("sumsq", "sqrt"),
          "ReduceL1": ("l1", None), "ReduceSumSquare": ("sumsq", None),
          "ReduceLogSum": ("sum", "log")}
# Reductions whose integer inputs the reference computes in float64 (and truncates back).
_FLOAT_RESULTS = ("ReduceMean", "ReduceL2", "ReduceLogSum", "ReduceLogSumExp")


def reduce_axes(node: Node, graph: Graph) -> tuple[int, ...] | str:
    """The normalized axes a ReduceX node reduces, or why they cannot be known."""
    rank = len(graph.types[node.inputs[0]].shape)
    if len(node.inputs) > 1 and node.inputs[1]:
        if not graph.is_constant(node.inputs[1]):
            return f"{node.op_type} with computed (non-constant) axes is not supported by cpu_llvm"
        chosen = np.asarray(graph.constants[node.inputs[1]], np.int64).reshape(-1).tolist()
    else:
        chosen = list(node.attrs.get("axes") or [])
    if not chosen and not node.attrs.get("noop_with_empty_axes", 0):
        chosen = list(range(rank))
    axes = set()
    for axis in chosen:
        if not -rank <= axis < rank:
            return f"{node.op_type} axis {axis} is out of range for rank {rank}"
        axes.add(axis % rank)
    return tuple(sorted(axes))


def check_reduce(node: Node, graph: Graph) -> str | None:
    dtype = head_dtype(node, graph)
    if dtype not in FLOATS | INTS:
        return f"cpu_llvm {node.op_type} does not handle {dtype}"
    if dtype in INTS and node.op_type in _FLOAT_RESULTS:
        return (f"cpu_llvm {node.op_type} handles float inputs only (integer inputs are "
                f"reduced in float64 by the reference)")
    axes = reduce_axes(node, graph)
    return axes if isinstance(axes, str) else None


@lowering(*REDUCE_OPS, check=check_reduce, epilogue=True)
def lower_reduce(program, group) -> None:
    node = group.head
    kind, finish = _KINDS[node.op_type]
    shape = program.graph.types[node.inputs[0]].shape
    emit_reduction(program, group, kind, finish, shape, reduce_axes(node, program.graph))


# -- ReduceLogSumExp ----------------------------------------------------------------------------

@lowering("ReduceLogSumExp", check=check_reduce, epilogue=True)
def lower_reduce_log_sum_exp(program, group) -> None:
    """``m + log(sum(exp(x - m)))`` with ``m`` the largest element (0 when it is not finite,
    as the reference shifts): each output takes two passes over its elements, one for ``m``
    and one for the sum. Its elements are runs of the innermost dims when those are reduced
    (read as vectors, with vectorized exp for float32), else single strided elements."""
    graph = program.graph
    node = group.head
    dtype = graph.types[node.inputs[0]].dtype
    elem = llvm_type(dtype)
    in_shape = graph.types[node.inputs[0]].shape
    if 0 in tuple(in_shape):
        emit_empty_reduction(program, group, "sum", "log")
        return
    groups, kept, reduced = split_levels(in_shape, reduce_axes(node, graph))
    run = reduced[-1][0] if groups[-1][1] else 1
    outer_levels = reduced[:-1] if groups[-1][1] else reduced
    outputs = int(np.prod([s for s, _ in kept], dtype=np.int64))
    kb, epilogue, src, dst = epilogue_kernel(program, group)
    b = kb.b
    lanes = lanes_for(dtype) if run >= lanes_for(dtype) else 1
    vec_type = ir.VectorType(elem, lanes)
    vec_acc = Var(kb, vec_type, name="vacc") if lanes > 1 else None
    scalar_acc = Var(kb, elem, name="acc")
    begin, end = kb.thread_share(outputs)
    with kb.loop(begin, end, name="o") as o:
        base = dot(kb, unravel(kb, o, [s for s, _ in kept]), [st for _, st in kept])
        # Pass 1: the largest element.
        lowest = const(-np.inf, ir.Constant(elem, None))
        scalar_acc.set(lowest)
        if vec_acc is not None:
            vec_acc.set(ir.Constant(vec_type, [lowest] * lanes))
        nest(kb, outer_levels, base,
             lambda off: reduce_run(kb, "max", src, off, run, dtype, vec_acc, scalar_acc))
        largest = scalar_acc.get()
        if vec_acc is not None:
            largest = combine(kb, "max", horizontal(kb, "max", vec_acc.get(), dtype), largest,
                              dtype)
        finite = b.fcmp_ordered("!=", kb.intrinsic("llvm.fabs", elem, [largest]),
                                const(np.inf, largest))
        shift = b.select(finite, largest, const(0.0, largest))
        # Pass 2: the sum of exp(x - shift).
        zero = const(0.0, largest)
        scalar_acc.set(zero)
        if vec_acc is not None:
            vec_acc.set(ir.Constant(vec_type, [zero] * lanes))
        nest(kb, outer_levels, base,
             lambda off: _sum_shifted_exp(kb, src, off, run, elem, shift, vec_acc, scalar_acc))
        total = scalar_acc.get()
        if vec_acc is not None:
            total = b.fadd(horizontal(kb, "sum", vec_acc.get(), dtype), total)
        result = b.fadd(log(kb, total), shift)
        vstore(kb, epilogue.apply(kb, result, o), dst, o)
    kb.finish()


def _sum_shifted_exp(kb: KernelBuilder, src: ir.Value, start: ir.Value, length: int,
                     elem: ir.Type, shift: ir.Value, vec_acc: Var | None,
                     scalar_acc: Var) -> None:
    """Add ``exp(x - shift)`` of ``length`` contiguous values from ``start`` to the
    accumulators: whole vectors into ``vec_acc`` (when given), the rest into ``scalar_acc``."""
    b = kb.b
    done = 0
    if vec_acc is not None:
        lanes = vec_acc.typ.count
        done = length // lanes * lanes
        shifts = kb.splat(shift, lanes)
        with kb.loop(0, done, lanes, name="v") as i:
            x = vload(kb, src, b.add(start, i), elem, lanes)
            vec_acc.set(b.fadd(vec_acc.get(), fast_exp(kb, b.fsub(x, shifts)),
                               flags=("reassoc",)))
    if done < length:
        with kb.loop(done, length, name="s") as i:
            x = kb.load(src, b.add(start, i), elem)
            scalar_acc.set(b.fadd(scalar_acc.get(), exp(kb, b.fsub(x, shift)),
                                  flags=("reassoc",)))


# -- ArgMax, ArgMin ------------------------------------------------------------------------------

def check_arg_extreme(node: Node, graph: Graph) -> str | None:
    dtype = head_dtype(node, graph)
    if dtype not in FLOATS | INTS:
        return f"cpu_llvm {node.op_type} does not handle {dtype}"
    rank = len(graph.types[node.inputs[0]].shape)
    if not -rank <= node.attrs.get("axis", 0) < rank:
        return f"{node.op_type} axis {node.attrs.get('axis')} is out of range for rank {rank}"
    return empty_dims(node, graph)


@lowering("ArgMax", "ArgMin", check=check_arg_extreme, epilogue=True)
def lower_arg_extreme(program, group) -> None:
    """Each output scans its run along the axis (stride = the size of the dims after it) for
    the first extreme element (the last with ``select_last_index``); a NaN counts as the
    extreme, as in numpy."""
    graph = program.graph
    node = group.head
    dtype = graph.types[node.inputs[0]].dtype
    elem = llvm_type(dtype)
    shape = graph.types[node.inputs[0]].shape
    axis = node.attrs.get("axis", 0) % len(shape)
    last = bool(node.attrs.get("select_last_index", 0))
    beats = ">" if node.op_type == "ArgMax" else "<"
    length = shape[axis]
    inner = int(np.prod(shape[axis + 1:], dtype=np.int64))
    outputs = int(np.prod(shape, dtype=np.int64)) // length
    kb, epilogue, src, dst = epilogue_kernel(program, group)
    b = kb.b
    best, where = Var(kb, elem, name="best"), Var(kb, I64, name="where")
    begin, end = kb.thread_share(outputs)
    with kb.loop(begin, end, name="o") as o:
        base = b.add(b.mul(b.udiv(o, const_i64(inner)), const_i64(inner * length)),
                     b.urem(o, const_i64(inner)))
        best.set(kb.load(src, base, elem))
        where.set(const_i64(0))
        with kb.loop(1, length, name="r") as r:
            x = kb.load(src, b.add(base, b.mul(r, const_i64(inner))), elem)
            current = best.get()
            if is_float(dtype):
                if last:  # a NaN always wins (the last one); else the last extreme
                    take = b.or_(b.fcmp_unordered("uno", x, x),
                                 b.fcmp_ordered(beats + "=", x, current))
                else:  # the first NaN, else the first extreme
                    take = b.and_(b.fcmp_ordered("ord", current, current),
                                  b.fcmp_unordered(beats, x, current))
            else:
                op = beats + "=" if last else beats
                take = (b.icmp_signed(op, x, current) if is_signed(dtype)
                        else b.icmp_unsigned(op, x, current))
            best.set(b.select(take, x, current))
            where.set(b.select(take, r, where.get()))
        kb.store(epilogue.apply(kb, where.get(), o), dst, o)
    kb.finish()


__all__ = ["Epilogue", "Var", "combine", "emit_reduction", "lanes_for",
           "strided_vload", "vload", "vstore"]
