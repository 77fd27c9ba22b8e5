"""Data movement: Transpose, Concat, Split, Slice, Pad, Gather, Expand, Tile, DepthToSpace,
SpaceToDepth, each planned as strided copies (:mod:`.strided_copy`).
"""

from __future__ import annotations

import numpy as np

from byoc.core.interpreter.ops_shape import int_list, normalize_axis
from byoc.core.ir import Graph, Node
from byoc_cpu_llvm.kernels import lowering
from byoc_cpu_llvm.kernels.strided_copy import (
    Copy,
    IndexDim,
    affine_table,
    contiguous_strides,
    lower_copies,
    movable,
)

# -- checks --------------------------------------------------------------------------------------

def _dtype_check(node: Node, graph: Graph) -> str | None:
    for value in node.outputs[:1]:
        if value and not movable(graph.types[value].dtype):
            return f"cpu_llvm does not move {graph.types[value].dtype} values"
    return None


def _constant(graph: Graph, node: Node, position: int):
    """Input ``position`` as an array if it is a constant, None if omitted; KeyError if it is
    a run-time value."""
    if position >= len(node.inputs) or not node.inputs[position]:
        return None
    name = node.inputs[position]
    if not graph.is_constant(name):
        raise KeyError(f"input {position} of {node.op_type} ({name!r}) is not a constant")
    return graph.constants[name]


def _checked(planner):
    """A check that runs the planner and reports its failure as the reason."""
    def check(node: Node, graph: Graph) -> str | None:
        reason = _dtype_check(node, graph)
        if reason:
            return reason
        try:
            planner(node, graph)
        except (KeyError, ValueError, IndexError, TypeError, ArithmeticError) as error:
            detail = error.args[0] if error.args else error
            return f"cpu_llvm cannot lower this {node.op_type}: {detail}"
        return None
    return check


def _lower_copy(program, node: Node, maps, **options) -> None:
    """One kernel copying input 0 to the whole output through ``maps`` (``options``: the
    :class:`Copy` fields past the defaults, Pad's fill)."""
    graph = program.graph
    out = graph.types[node.outputs[0]]
    lower_copies(program, node, [Copy(out.shape, maps, _input(program, node, 0),
                                      program.value(node.outputs[0]), out.dtype,
                                      src_elements=graph.types[node.inputs[0]].size,
                                      **options)])


def _input(program, node, i):
    return program.value(node.inputs[i])


def _type(graph, value):
    return graph.types[value]


# -- the ops ---------------------------------------------------------------------------------


def _transpose_maps(node, graph):
    x = _type(graph, node.inputs[0])
    perm = node.attrs.get("perm")
    perm = list(range(x.rank))[::-1] if perm is None else [normalize_axis(p, x.rank)
                                                          for p in perm]
    if sorted(perm) != list(range(x.rank)):
        raise ValueError(f"perm {perm} is not a permutation of {x.rank} dims")
    strides = contiguous_strides(x.shape)
    return [affine_table(x.shape[p], strides[p]) for p in perm]


@lowering("Transpose", check=_checked(_transpose_maps))
def lower_transpose(program, group) -> None:
    _lower_copy(program, group.head, _transpose_maps(group.head, program.graph))


def _concat_plan(node, graph):
    out = _type(graph, node.outputs[0])
    axis = normalize_axis(node.attrs["axis"], out.rank)
    out_strides = contiguous_strides(out.shape)
    plan, offset = [], 0
    for value in node.inputs:
        if not value:
            continue
        t = _type(graph, value)
        plan.append((value, t, offset * out_strides[axis]))
        offset += t.shape[axis]
    if offset != out.shape[axis]:
        raise ValueError("the inputs do not add up to the output along the axis")
    return plan, out_strides


@lowering("Concat", check=_checked(_concat_plan))
def lower_concat(program, group) -> None:
    node, graph = group.head, program.graph
    out = _type(graph, node.outputs[0])
    plan, out_strides = _concat_plan(node, graph)
    dst = program.value(node.outputs[0])
    dst_home, dst_offset = program.home(node.outputs[0])
    copies = []
    for value, t, offset in plan:
        if program.home(value) == (dst_home, dst_offset + offset):
            continue  # placed: its producer wrote it there (see concat_placement)
        strides = contiguous_strides(t.shape)
        maps = [affine_table(n, s) for n, s in zip(t.shape, strides)]
        copies.append(Copy(t.shape, maps, program.value(value), dst, out.dtype,
                           dst_strides=tuple(out_strides), dst_offset=offset,
                           src_elements=t.size))
    if copies:
        lower_copies(program, node, copies)


def _split_plan(node, graph):
    x = _type(graph, node.inputs[0])
    axis = normalize_axis(node.attrs.get("axis", 0), x.rank)
    strides = contiguous_strides(x.shape)
    plan, start = [], 0
    for value in node.outputs:
        if not value:
            raise ValueError("an output is omitted")
        t = _type(graph, value)
        maps = [affine_table(n, s, start * s if d == axis else 0)
                for d, (n, s) in enumerate(zip(t.shape, strides))]
        plan.append((value, t, maps))
        start += t.shape[axis]
    if start != x.shape[axis]:
        raise ValueError("the outputs do not add up to the input along the axis")
    return plan


@lowering("Split", check=_checked(_split_plan))
def lower_split(program, group) -> None:
    node, graph = group.head, program.graph
    src = _input(program, node, 0)
    size = _type(graph, node.inputs[0]).size
    lower_copies(program, node, [Copy(t.shape, maps, src, program.value(value), t.dtype,
                                      src_elements=size)
                                 for value, t, maps in _split_plan(node, graph)])


def _slice_maps(node, graph):
    x = _type(graph, node.inputs[0])
    attrs = node.attrs
    if "starts" in attrs:
        starts, ends, axes = attrs["starts"], attrs["ends"], attrs.get("axes")
        steps = None
    else:
        starts, ends = int_list(_constant(graph, node, 1)), int_list(_constant(graph, node, 2))
        axes, steps = int_list(_constant(graph, node, 3)), int_list(_constant(graph, node, 4))
        if starts is None or ends is None:
            raise ValueError("starts and ends are needed")
    steps = steps or [1] * len(starts)
    axes = list(axes) if axes is not None else list(range(len(starts)))
    if not len(starts) == len(ends) == len(axes) == len(steps):
        raise ValueError("starts, ends, axes and steps differ in length")
    ranges = [range(n) for n in x.shape]
    for start, end, axis, step in zip(starts, ends, axes, steps):
        if step == 0:
            raise ValueError("steps must not be 0")
        axis = normalize_axis(axis, x.rank)
        ranges[axis] = range(x.shape[axis])[slice(start, end, step)]
    strides = contiguous_strides(x.shape)
    out = _type(graph, node.outputs[0])
    if tuple(len(r) for r in ranges) != out.shape:
        raise ValueError("the sliced shape differs from the output's")
    return [np.asarray(list(r), dtype=np.int64) * s for r, s in zip(ranges, strides)]


@lowering("Slice", check=_checked(_slice_maps))
def lower_slice(program, group) -> None:
    _lower_copy(program, group.head, _slice_maps(group.head, program.graph))


def _pad_plan(node, graph):
    x = _type(graph, node.inputs[0])
    attrs = node.attrs
    mode = attrs.get("mode", "constant")
    if isinstance(mode, bytes):
        mode = mode.decode()
    if mode not in ("constant", "reflect", "edge", "wrap"):
        raise ValueError(f"mode {mode!r} is not constant, reflect, edge or wrap")
    pads_input = _constant(graph, node, 1)
    amounts = int_list(pads_input) if pads_input is not None else list(attrs["pads"])
    value_name = node.inputs[2] if len(node.inputs) > 2 else ""
    run_time_value = (mode == "constant" and bool(value_name)
                      and not graph.is_constant(value_name)
                      and _type(graph, value_name).size > 0)
    if run_time_value and _type(graph, value_name).dtype != x.dtype:
        raise ValueError("a run-time constant value of another dtype than the data's")
    constant_value = None if run_time_value else _constant(graph, node, 2)
    axes_input = _constant(graph, node, 3)
    axes = int_list(axes_input) if axes_input is not None else list(range(x.rank))
    if len(amounts) != 2 * len(axes):
        raise ValueError("it needs two pads per axis")
    widths = [(0, 0)] * x.rank
    for i, axis in enumerate(axes):
        widths[normalize_axis(axis, x.rank)] = (amounts[i], amounts[len(axes) + i])
    strides = contiguous_strides(x.shape)
    maps = []
    for n, (before, after), stride in zip(x.shape, widths, strides):
        kept = np.arange(n, dtype=np.int64)[max(-before, 0):n - max(-after, 0)]
        width = (max(before, 0), max(after, 0))
        if mode == "constant":
            index = np.pad(kept, width, mode="constant", constant_values=-1)
        else:
            index = np.pad(kept, width, mode=mode)
        maps.append(np.where(index >= 0, index * stride, -1))
    out = _type(graph, node.outputs[0])
    if tuple(len(m) for m in maps) != out.shape:
        raise ValueError("the padded shape differs from the output's")
    fill = None
    if run_time_value:
        return maps, fill, value_name  # its first element, read by the kernel
    if mode == "constant":
        value = attrs.get("value", 0.0)
        if constant_value is not None and constant_value.size:
            value = constant_value.reshape(-1)[0]
        # As the reference: np.pad casts the fill value to the data's dtype.
        fill = np.pad(np.zeros(0, x.dtype), (1, 0), mode="constant", constant_values=value)[0]
    return maps, fill, None


@lowering("Pad", check=_checked(_pad_plan))
def lower_pad(program, group) -> None:
    maps, fill, fill_value = _pad_plan(group.head, program.graph)
    fill_slot = program.value(fill_value) if fill_value else None
    _lower_copy(program, group.head, maps, fill=fill, fill_slot=fill_slot)


def _gather_plan(node, graph):
    x = _type(graph, node.inputs[0])
    indices = _type(graph, node.inputs[1])
    if indices.dtype not in (np.dtype(np.int32), np.dtype(np.int64)):
        raise ValueError(f"indices of dtype {indices.dtype}")
    axis = normalize_axis(node.attrs.get("axis", 0), x.rank)
    outer = int(np.prod(x.shape[:axis], dtype=np.int64))
    inner = int(np.prod(x.shape[axis + 1:], dtype=np.int64))
    length = x.shape[axis]
    if length == 0 and indices.size:
        raise ValueError("it gathers from an empty axis")
    return outer, length, inner, indices


@lowering("Gather", check=_checked(_gather_plan))
def lower_gather(program, group) -> None:
    node, graph = group.head, program.graph
    out = _type(graph, node.outputs[0])
    outer, length, inner, indices = _gather_plan(node, graph)
    shape = (outer, indices.size, inner)
    maps = [affine_table(outer, length * inner),
            IndexDim(program.value(node.inputs[1]), indices.dtype, length, inner),
            affine_table(inner, 1)]
    lower_copies(program, node, [Copy(shape, maps, _input(program, node, 0),
                                      program.value(node.outputs[0]), out.dtype,
                                      src_elements=_type(graph, node.inputs[0]).size)])


def _broadcast_maps(node, graph, repeat: bool):
    """Expand (a dim of 1 repeats its element) or Tile (a dim repeats all its elements)."""
    x = _type(graph, node.inputs[0])
    out = _type(graph, node.outputs[0])
    if len(out.shape) < x.rank or (repeat and len(out.shape) != x.rank):
        raise ValueError("the output has fewer dims than the input")
    shape = (1,) * (len(out.shape) - x.rank) + x.shape
    strides = contiguous_strides(shape)
    maps = []
    for n, m, s in zip(shape, out.shape, strides):
        if repeat:
            if m and (n == 0 or m % n):
                raise ValueError("the output dims are not multiples of the input's")
            maps.append((np.arange(m, dtype=np.int64) % max(n, 1)) * s)
        else:
            if n not in (1, m):
                raise ValueError("the input does not broadcast to the output")
            maps.append(affine_table(m, s if n != 1 else 0))
    return maps


@lowering("Expand", "Tile", check=_checked(
    lambda node, graph: _broadcast_maps(node, graph, node.op_type == "Tile")))
def lower_broadcast(program, group) -> None:
    node = group.head
    _lower_copy(program, node, _broadcast_maps(node, program.graph, node.op_type == "Tile"))


def _block_maps(node, graph):
    """DepthToSpace / SpaceToDepth as per-dim tables (each output dim's contribution
    depends on its own coordinate only)."""
    x = _type(graph, node.inputs[0])
    b = int(node.attrs["blocksize"])
    mode = node.attrs.get("mode", "DCR")
    if x.rank != 4 or b < 1:
        raise ValueError("it needs a 4-D input and a positive blocksize")
    if mode not in ("DCR", "CRD"):
        raise ValueError(f"mode {mode!r} is not DCR or CRD")
    n, c, h, w = x.shape
    s_n, s_c, s_h, s_w = contiguous_strides(x.shape)
    if node.op_type == "DepthToSpace":
        if c % (b * b):
            raise ValueError("the channels do not divide by blocksize squared")
        cc = c // (b * b)
        oc, oh, ow = np.arange(cc), np.arange(h * b), np.arange(w * b)
        if mode == "DCR":   # channel = (i * b + j) * cc + c'
            tc = oc * s_c
            th = (oh // b) * s_h + (oh % b) * b * cc * s_c
            tw = (ow // b) * s_w + (ow % b) * cc * s_c
        else:               # channel = c' * b * b + i * b + j
            tc = oc * b * b * s_c
            th = (oh // b) * s_h + (oh % b) * b * s_c
            tw = (ow // b) * s_w + (ow % b) * s_c
    else:
        if h % b or w % b:
            raise ValueError("the spatial dims do not divide by the blocksize")
        oc, oh, ow = np.arange(c * b * b), np.arange(h // b), np.arange(w // b)
        if mode == "DCR":   # out channel = (i * b + j) * c + ch
            i, j, ch = oc // (b * c), (oc // c) % b, oc % c
        else:               # out channel = ch * b * b + i * b + j
            ch, i, j = oc // (b * b), (oc // b) % b, oc % b
        tc = ch * s_c + i * s_h + j * s_w
        th = oh * b * s_h
        tw = ow * b * s_w
    return [affine_table(n, s_n), tc, th, tw]


@lowering("DepthToSpace", "SpaceToDepth", check=_checked(_block_maps))
def lower_blocks(program, group) -> None:
    _lower_copy(program, group.head, _block_maps(group.head, program.graph))

