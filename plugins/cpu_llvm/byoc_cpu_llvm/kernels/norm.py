"""Normalizations of a fixed layout: BatchNormalization (inference), InstanceNormalization,
LayerNormalization, GroupNormalization and RMSNormalization (the ones over chosen axes,
MeanVarianceNormalization, LpNormalization and LRN, are in :mod:`.axis_norm`).

Each follows the reference's arithmetic step by step (same operations in the same order, no
fused multiply-adds), so only the order of the long sums (mean, variance) differs from it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
from llvmlite import ir

from byoc.core.ir import Graph, Node
from byoc_cpu_llvm.codegen import const_i64, llvm_type
from byoc_cpu_llvm.kernels import lowering
from byoc_cpu_llvm.kernels.elementwise import strides_for
from byoc_cpu_llvm.kernels.reduction_parts import (
    FLOATS,
    Epilogue,
    Var,
    chunk_bounds,
    empty_dims,
    horizontal,
    lanes_for,
    reduce_run,
)

SPAN = 4096  # spatial elements one BatchNormalization work item covers


def input_refusal(node: Node, graph: Graph, params: list[str]) -> str | None:
    """Why a normalization of an (N, C, ...) input with ``params`` cannot run, or None."""
    x_type = graph.types[node.inputs[0]]
    if x_type.dtype not in FLOATS:
        return f"cpu_llvm {node.op_type} does not handle {x_type.dtype}"
    if len(x_type.shape) < 2:
        return f"{node.op_type} takes an (N, C, ...) input of rank 2 or more"
    for value in params:
        if value and graph.types[value].dtype != x_type.dtype:
            return (f"cpu_llvm {node.op_type} needs its parameters in the input's dtype "
                    f"({x_type.dtype})")
    return empty_dims(node, graph)


def _per_channel(node: Node, graph: Graph, params: list[str]) -> str | None:
    channels = graph.types[node.inputs[0]].shape[1]
    for value in params:
        if graph.types[value].size != channels:
            return f"{node.op_type} parameter {value!r} must hold one value per channel"
    return None


def _sum_run(kb, base, start, length, dtype, kind: str = "sum") -> ir.Value:
    """The sum (``kind`` "sum") or the sum of squares ("sumsq") of ``length`` contiguous
    values (vector accumulators, then the lanes)."""
    elem = llvm_type(dtype)
    lanes = lanes_for(dtype)
    vec = None
    if length >= lanes:
        vec_type = ir.VectorType(elem, lanes)
        vec = Var(kb, vec_type, ir.Constant(vec_type, [0.0] * lanes), name="vsum")
    scalar = Var(kb, elem, ir.Constant(elem, 0.0), name="sum")
    reduce_run(kb, kind, base, start, length, dtype, vec, scalar)
    total = scalar.get()
    if vec is not None:
        total = kb.b.fadd(horizontal(kb, kind, vec.get(), dtype), total)
    return total


def _variance_sum(kb, base, start, length, mean, dtype) -> ir.Value:
    """``sum((x - mean)^2)`` over a contiguous run (a reassociable loop LLVM vectorizes)."""
    elem = llvm_type(dtype)
    b = kb.b
    acc = Var(kb, elem, ir.Constant(elem, 0.0), name="sq")
    with kb.loop(0, length, name="v") as i:
        centered = b.fsub(kb.load(base, b.add(start, i), elem), mean)
        acc.set(b.fadd(acc.get(), b.fmul(centered, centered), flags=("reassoc",)))
    return acc.get()


def sqrt(kb, x):
    """``sqrt(x)``, correctly rounded."""
    return kb.intrinsic("llvm.sqrt", x.type, [x])


# -- BatchNormalization --------------------------------------------------------------------------

def check_batchnorm(node: Node, graph: Graph) -> str | None:
    if node.attrs.get("training_mode", 0) or len([o for o in node.outputs if o]) > 1:
        return "cpu_llvm BatchNormalization runs in inference mode only"
    return (input_refusal(node, graph, node.inputs[1:5])
            or _per_channel(node, graph, node.inputs[1:5]))


@dataclass
class _ChannelLayout:
    """Layout of an N x C x spatial input and the node's epsilon, as kernels use them."""

    dtype: np.dtype
    elem: ir.Type
    batch: int
    channels: int
    spatial: int
    epsilon: ir.Constant


def _per_channel_kernel(program, group, n_inputs: int):
    """The common start of the per-channel normalization kernels: the input's layout, the
    bound epilogue, the kernel, its first ``n_inputs`` input buffers and the output buffer."""
    graph = program.graph
    node = group.head
    x_type = graph.types[node.inputs[0]]
    epilogue = Epilogue(program, group, graph.types[group.output].shape)
    slots = [program.value(v) for v in node.inputs[:n_inputs]]
    out_slot = program.value(group.output)
    kb = program.kernel(node.name or node.op_type)
    epilogue.bind(kb)
    layout = _ChannelLayout(x_type.dtype, llvm_type(x_type.dtype), x_type.shape[0],
                            x_type.shape[1], int(np.prod(x_type.shape[2:], dtype=np.int64)),
                            ir.Constant(llvm_type(x_type.dtype), float(np.asarray(
                                node.attrs.get("epsilon", 1e-5), x_type.dtype))))
    return kb, epilogue, layout, [kb.buffer(s) for s in slots], kb.buffer(out_slot)


@lowering("BatchNormalization", check=check_batchnorm, epilogue=True)
def lower_batchnorm(program, group) -> None:
    kb, epilogue, layout, (src, scale, bias, mean, var), dst = _per_channel_kernel(
        program, group, 5)
    elem, channels, spatial, epsilon = layout.elem, layout.channels, layout.spatial, \
        layout.epsilon
    planes = layout.batch * channels
    chunks = -(-spatial // SPAN)
    b = kb.b
    begin, end = kb.thread_share(planes * chunks)
    with kb.loop(begin, end, name="item") as item:
        plane = b.udiv(item, const_i64(chunks))
        channel = b.urem(plane, const_i64(channels))
        lo, hi = chunk_bounds(b, item, chunks, SPAN, spatial)
        m = kb.load(mean, channel, elem)
        inv_std = b.fdiv(ir.Constant(elem, 1.0),
                         sqrt(kb, b.fadd(kb.load(var, channel, elem), epsilon)))
        s, t = kb.load(scale, channel, elem), kb.load(bias, channel, elem)
        base = b.mul(plane, const_i64(spatial))
        with kb.loop(lo, hi, name="i") as i:
            at = b.add(base, i)
            y = b.fadd(b.fmul(b.fmul(b.fsub(kb.load(src, at, elem), m), inv_std), s), t)
            kb.store(epilogue.apply(kb, y, at), dst, at)
    kb.finish()


# -- InstanceNormalization -----------------------------------------------------------------------

def check_instancenorm(node: Node, graph: Graph) -> str | None:
    return (input_refusal(node, graph, node.inputs[1:3])
            or _per_channel(node, graph, node.inputs[1:3]))


@lowering("InstanceNormalization", check=check_instancenorm, epilogue=True)
def lower_instancenorm(program, group) -> None:
    kb, epilogue, layout, (src, scale, bias), dst = _per_channel_kernel(program, group, 3)
    dtype, elem, channels, spatial, epsilon = (layout.dtype, layout.elem, layout.channels,
                                               layout.spatial, layout.epsilon)
    b = kb.b
    count = ir.Constant(elem, float(spatial))
    begin, end = kb.thread_share(layout.batch * channels)
    with kb.loop(begin, end, name="plane") as plane:
        channel = b.urem(plane, const_i64(channels))
        base = b.mul(plane, const_i64(spatial))
        mean = b.fdiv(_sum_run(kb, src, base, spatial, dtype), count)
        var = b.fdiv(_variance_sum(kb, src, base, spatial, mean, dtype), count)
        denominator = sqrt(kb, b.fadd(var, epsilon))
        s, t = kb.load(scale, channel, elem), kb.load(bias, channel, elem)
        with kb.loop(0, spatial, name="i") as i:
            at = b.add(base, i)
            normalized = b.fdiv(b.fsub(kb.load(src, at, elem), mean), denominator)
            y = b.fadd(b.fmul(normalized, s), t)
            kb.store(epilogue.apply(kb, y, at), dst, at)
    kb.finish()


# -- LayerNormalization --------------------------------------------------------------------------

def _trailing_axis(node: Node, graph: Graph) -> int:
    """The first of the dims ``axis..rank-1`` a Layer- or RMSNormalization normalizes."""
    rank = len(graph.types[node.inputs[0]].shape)
    axis = node.attrs.get("axis", -1)
    if not -rank <= axis < rank:
        raise ValueError(f"{node.op_type} axis {axis} is out of range for rank {rank}")
    return axis % rank


def _param_stride(shape, x_shape, axis: int) -> int | None:
    """1 when a Scale/B of ``shape`` is laid out like the normalized dims (element j of a
    row), 0 when it is one value, None for other broadcasts."""
    if len(shape) > len(x_shape):
        return None
    strides = strides_for(shape, x_shape)
    if not any(strides):
        return 0
    inner = strides_for(x_shape[axis:], x_shape[axis:])
    wanted = [0] * axis + inner
    relevant = [d for d, n in enumerate(x_shape) if n != 1]
    if all(strides[d] == wanted[d] for d in relevant):
        return 1
    return None


def _trailing_refusal(node: Node, graph: Graph, params: list[str]) -> str | None:
    """Why a Layer- or RMSNormalization (float32, over the trailing dims from ``axis``) with
    the parameter values ``params`` cannot run, or None."""
    x_type = graph.types[node.inputs[0]]
    if x_type.dtype != np.float32:
        return f"cpu_llvm {node.op_type} handles float32 only, not {x_type.dtype}"
    if node.attrs.get("stash_type", 1) != 1:
        return f"cpu_llvm {node.op_type} supports stash_type FLOAT (1) only"
    if not x_type.shape:
        return f"{node.op_type} needs an input of rank 1 or more"
    reason = empty_dims(node, graph)
    if reason:
        return reason
    try:
        axis = _trailing_axis(node, graph)
    except ValueError as error:
        return str(error)
    for value in params:
        if value and graph.types[value].dtype != x_type.dtype:
            return f"cpu_llvm {node.op_type} needs {value!r} in the input's dtype"
        if value and _param_stride(graph.types[value].shape, x_type.shape, axis) is None:
            return (f"cpu_llvm {node.op_type} needs {value!r} shaped like the normalized "
                    f"dims (or one value)")
    return None


def _rows(node: Node, graph: Graph) -> tuple[int, int, int]:
    """``(axis, rows, length)``: the input seen as ``rows`` contiguous rows of the ``length``
    values a Layer- or RMSNormalization normalizes together."""
    shape = graph.types[node.inputs[0]].shape
    axis = _trailing_axis(node, graph)
    return (axis, int(np.prod(shape[:axis], dtype=np.int64)),
            int(np.prod(shape[axis:], dtype=np.int64)))


@contextlib.contextmanager
def _row_loop(kb, rows: int, length: int) -> Iterator[tuple[ir.Value, ir.Value]]:
    """Around the body, for each of this thread's share of ``rows`` rows of ``length``
    values: yields the row and the offset of its first value."""
    begin, end = kb.thread_share(rows)
    with kb.loop(begin, end, name="row") as row:
        yield row, kb.b.mul(row, const_i64(length))


def check_layernorm(node: Node, graph: Graph) -> str | None:
    return _trailing_refusal(node, graph, node.inputs[1:3])


@lowering("LayerNormalization", check=check_layernorm, epilogue=True)
def lower_layernorm(program, group) -> None:
    graph = program.graph
    node = group.head
    x_type = graph.types[node.inputs[0]]
    dtype = x_type.dtype
    elem = llvm_type(dtype)
    axis, rows, length = _rows(node, graph)
    params = [(v, _param_stride(graph.types[v].shape, x_type.shape, axis)) if v else None
              for v in (node.inputs[1:3] + ["", ""])[:2]]
    stats = [(o if o else None) for o in (node.outputs[1:3] + ["", ""])[:2]]
    epilogue = Epilogue(program, group, graph.types[group.output].shape)
    in_slot = program.value(node.inputs[0])
    param_slots = [program.value(p[0]) if p else None for p in params]
    stat_slots = [program.value(o) if o else None for o in stats]
    out_slot = program.value(group.output)
    kb = program.kernel(node.name or node.op_type)
    epilogue.bind(kb)
    src, dst = kb.buffer(in_slot), kb.buffer(out_slot)
    param_bases = [kb.buffer(s) if s is not None else None for s in param_slots]
    stat_bases = [kb.buffer(s) if s is not None else None for s in stat_slots]
    b = kb.b
    epsilon = ir.Constant(elem, float(np.float32(node.attrs.get("epsilon", 1e-5))))
    count = ir.Constant(elem, float(length))
    with _row_loop(kb, rows, length) as (row, base):
        mean = b.fdiv(_sum_run(kb, src, base, length, dtype), count)
        var = b.fdiv(_variance_sum(kb, src, base, length, mean, dtype), count)
        inv_std = b.fdiv(ir.Constant(elem, 1.0), sqrt(kb, b.fadd(var, epsilon)))
        for value, out in zip((mean, inv_std), stat_bases):
            if out is not None:
                kb.store(value, out, row)
        with kb.loop(0, length, name="j") as j:
            at = b.add(base, j)
            y = b.fmul(b.fsub(kb.load(src, at, elem), mean), inv_std)
            for param, pbase, op in zip(params, param_bases, (b.fmul, b.fadd)):
                if param is not None:
                    offset = j if param[1] else const_i64(0)
                    y = op(y, kb.load(pbase, offset, elem))
            kb.store(epilogue.apply(kb, y, at), dst, at)
    kb.finish()


# -- GroupNormalization --------------------------------------------------------------------------

def check_groupnorm(node: Node, graph: Graph) -> str | None:
    x_type = graph.types[node.inputs[0]]
    if x_type.dtype != np.float32:
        return f"cpu_llvm GroupNormalization handles float32 only, not {x_type.dtype}"
    opset = graph.opsets.get("", 0)
    if opset >= 21 and node.attrs.get("stash_type", 1) != 1:
        return "cpu_llvm GroupNormalization supports stash_type FLOAT (1) only"
    reason = input_refusal(node, graph, node.inputs[1:3])
    if reason:
        return reason
    channels = x_type.shape[1]
    groups = node.attrs.get("num_groups", 0)
    if groups < 1 or channels % groups:
        return f"GroupNormalization num_groups {groups} does not divide {channels} channels"
    expected = channels if opset >= 21 else groups
    for value in node.inputs[1:3]:
        if graph.types[value].shape != (expected,):
            return (f"GroupNormalization-{opset} parameter {value!r} must hold {expected} "
                    f"values")
    return None


@lowering("GroupNormalization", check=check_groupnorm, epilogue=True)
def lower_groupnorm(program, group) -> None:
    """Each (sample, group) is a contiguous run of ``channels/groups * spatial`` values:
    threads split the runs; a run is standardized like InstanceNormalization's planes, then
    each of its channels takes its scale and bias (per group before opset 21)."""
    kb, epilogue, layout, (src, scale, bias), dst = _per_channel_kernel(program, group, 3)
    node = group.head
    dtype, elem, spatial, epsilon = layout.dtype, layout.elem, layout.spatial, layout.epsilon
    groups = node.attrs["num_groups"]
    per_group = layout.channels // groups
    per_channel_params = program.graph.opsets.get("", 0) >= 21
    length = per_group * spatial
    b = kb.b
    count = ir.Constant(elem, float(length))
    begin, end = kb.thread_share(layout.batch * groups)
    with kb.loop(begin, end, name="run") as run:
        base = b.mul(run, const_i64(length))
        mean = b.fdiv(_sum_run(kb, src, base, length, dtype), count)
        var = b.fdiv(_variance_sum(kb, src, base, length, mean, dtype), count)
        denominator = sqrt(kb, b.fadd(var, epsilon))
        first_channel = b.mul(b.urem(run, const_i64(groups)), const_i64(per_group))
        with kb.loop(0, per_group, name="c") as c:
            param = b.add(first_channel, c) if per_channel_params else b.urem(
                run, const_i64(groups))
            s, t = kb.load(scale, param, elem), kb.load(bias, param, elem)
            plane = b.add(base, b.mul(c, const_i64(spatial)))
            with kb.loop(0, spatial, name="i") as i:
                at = b.add(plane, i)
                normalized = b.fdiv(b.fsub(kb.load(src, at, elem), mean), denominator)
                kb.store(epilogue.apply(kb, b.fadd(b.fmul(normalized, s), t), at), dst, at)
    kb.finish()


# -- RMSNormalization ----------------------------------------------------------------------------

def check_rmsnorm(node: Node, graph: Graph) -> str | None:
    return _trailing_refusal(node, graph, node.inputs[1:2])


@lowering("RMSNormalization", check=check_rmsnorm, epilogue=True)
def lower_rmsnorm(program, group) -> None:
    """Threads split the rows (the normalized dims are the contiguous tail of each); a row
    sums its squares with vector accumulators, then scales every element."""
    graph = program.graph
    node = group.head
    x_type = graph.types[node.inputs[0]]
    dtype, elem = x_type.dtype, llvm_type(x_type.dtype)
    axis, rows, length = _rows(node, graph)
    scale_stride = _param_stride(graph.types[node.inputs[1]].shape, x_type.shape, axis)
    epilogue = Epilogue(program, group, graph.types[group.output].shape)
    slots = [program.value(v) for v in (node.inputs[0], node.inputs[1], group.output)]
    kb = program.kernel(node.name or node.op_type)
    epilogue.bind(kb)
    src, scale, dst = (kb.buffer(s) for s in slots)
    b = kb.b
    epsilon = ir.Constant(elem, float(np.float32(node.attrs.get("epsilon", 1e-5))))
    count = ir.Constant(elem, float(length))
    with _row_loop(kb, rows, length) as (row, base):
        mean_square = b.fdiv(_sum_run(kb, src, base, length, dtype, "sumsq"), count)
        reciprocal = b.fdiv(ir.Constant(elem, 1.0), sqrt(kb, b.fadd(mean_square, epsilon)))
        with kb.loop(0, length, name="j") as j:
            at = b.add(base, j)
            weight = kb.load(scale, j if scale_stride else const_i64(0), elem)
            y = b.fmul(b.fmul(kb.load(src, at, elem), reciprocal), weight)
            kb.store(epilogue.apply(kb, y, at), dst, at)
    kb.finish()


__all__ = ["input_refusal", "lower_batchnorm", "lower_groupnorm", "lower_instancenorm",
           "lower_layernorm", "lower_rmsnorm", "sqrt"]
