"""Resize (and Upsample) in nearest and linear mode, with constant scales or sizes.

The source positions and weights of every output position along each resized axis depend
only on shapes and attributes, so they are computed at compile time, with the reference
interpreter's own coordinate and tap functions (the float32 coordinate arithmetic included),
and baked into the module as tables.

* nearest: a strided copy (:mod:`byoc_cpu_llvm.kernels.movement`) whose resized dims read
  through an index table.
* linear: each output element is the reference's separable evaluation done in place: for
  the resized axes in order, two taps each, blended in float64 (2^k loads for k resized
  axes), then rounded to the output dtype (integers with round-half-even and saturation).

Cubic mode, antialiased linear filtering and tf_crop_and_resize are declined.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from llvmlite import ir

from byoc.core.interpreter.ops_resize import (
    NEAREST_MODES,
    keep_aspect,
    legacy_nearest,
    present,
    scaled_length,
    source_coordinates,
    taps,
)
from byoc.core.interpreter.ops_shape import int_list, normalize_axis
from byoc.core.ir import Graph, Node
from byoc_cpu_llvm.codegen import F64, I64, const_i64, llvm_type
from byoc_cpu_llvm.kernels import lowering
from byoc_cpu_llvm.kernels.movement import (
    Copy,
    affine_table,
    contiguous_strides,
    emit_copy,
    global_table,
    iterate,
    movable,
)

_LINEAR_DTYPES = {np.dtype(t) for t in (np.float32, np.float64, np.int8, np.uint8, np.int16,
                                        np.uint16, np.int32, np.uint32)}


@dataclass
class _Axis:
    axis: int
    in_len: int
    out_len: int
    scale: float


@dataclass
class _Plan:
    mode: str
    coordinate_mode: str
    axes: list[_Axis]                 # the axes actually resized, in the reference's order
    nearest: object
    exclude_outside: bool


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _constant(graph: Graph, node: Node, position: int):
    if position >= len(node.inputs) or not node.inputs[position]:
        return None
    name = node.inputs[position]
    if not graph.is_constant(name):
        raise ValueError(f"input {position} ({name!r}) is not a constant")
    return graph.constants[name]


def _plan(node: Node, graph: Graph) -> _Plan:
    x = graph.types[node.inputs[0]]
    if x.rank == 0:
        raise ValueError("it resizes a scalar")
    attrs = node.attrs
    mode = _text(attrs.get("mode", "nearest"))
    opset = graph.opsets.get("", 0)
    if node.op_type == "Upsample" or opset < 11:
        scales = attrs.get("scales") if node.op_type == "Upsample" else None
        if scales is None:
            scales = _constant(graph, node, 1)
        if scales is None:
            raise ValueError("it has no scales")
        factors = np.asarray(scales, dtype=np.float64).reshape(-1).tolist()
        if len(factors) != x.rank:
            raise ValueError(f"{len(factors)} scales for a tensor of rank {x.rank}")
        axes = list(range(x.rank))
        out_lens = [scaled_length(n, s) for n, s in zip(x.shape, factors)]
        coordinate_mode, nearest, exclude = "asymmetric", legacy_nearest, False
        antialias = False
    else:
        coordinate_mode = _text(attrs.get("coordinate_transformation_mode", "half_pixel"))
        if coordinate_mode == "tf_crop_and_resize":
            raise ValueError("coordinate mode tf_crop_and_resize is not supported")
        scales = present(_constant(graph, node, 2))
        sizes = present(_constant(graph, node, 3))
        axes = [normalize_axis(a, x.rank) for a in attrs["axes"]] if attrs.get("axes") \
            else list(range(x.rank))
        in_lens = [x.shape[a] for a in axes]
        if scales is not None:
            factors = np.asarray(scales, dtype=np.float64).reshape(-1).tolist()
            if len(factors) != len(axes):
                raise ValueError(f"{len(factors)} scales for {len(axes)} axes")
            out_lens = [scaled_length(n, s) for n, s in zip(in_lens, factors)]
        elif sizes is not None:
            out_lens = int_list(sizes)
            if len(out_lens) != len(axes):
                raise ValueError(f"{len(out_lens)} sizes for {len(axes)} axes")
            factors = [o / n for o, n in zip(out_lens, in_lens)]
            policy = _text(attrs.get("keep_aspect_ratio_policy", "stretch"))
            if policy != "stretch":
                factors, out_lens = keep_aspect(factors, in_lens, policy)
        else:
            raise ValueError("it has neither scales nor sizes")
        nearest_mode = _text(attrs.get("nearest_mode", "round_prefer_floor"))
        if nearest_mode not in NEAREST_MODES:
            raise ValueError(f"nearest_mode {nearest_mode!r} is not supported")
        pick = NEAREST_MODES[nearest_mode]

        def nearest(source, scale, pick=pick):
            return pick(source)
        exclude = bool(attrs.get("exclude_outside", 0))
        antialias = bool(attrs.get("antialias", 0))
    if mode not in ("nearest", "linear"):
        raise ValueError(f"mode {mode!r} is not supported (only nearest and linear)")
    if mode == "linear" and antialias:
        raise ValueError("antialiased linear resizing is not supported")
    resized = []
    shape = list(x.shape)
    for axis, out_len, scale in zip(axes, out_lens, factors):
        shape[axis] = out_len
        if scale == 1 and out_len == x.shape[axis]:
            continue
        resized.append(_Axis(axis, x.shape[axis], out_len, scale))
    out = graph.types[node.outputs[0]]
    if tuple(shape) != out.shape:
        raise ValueError(f"the resized shape {shape} differs from the output's {out.shape}")
    if mode == "linear" and out.dtype not in _LINEAR_DTYPES:
        raise ValueError(f"linear resizing of {out.dtype} is not supported")
    if mode == "nearest" and not movable(out.dtype):
        raise ValueError(f"{out.dtype} values cannot be moved")
    if any(a.in_len == 0 for a in resized) and out.size:
        raise ValueError("it resizes an empty axis")
    return _Plan(mode, coordinate_mode, resized, nearest, exclude)


def check(node: Node, graph: Graph) -> str | None:
    try:
        _plan(node, graph)
    except (KeyError, ValueError, TypeError, ArithmeticError) as error:
        return f"cpu_llvm cannot lower this {node.op_type}: {error}"
    return None


def _coordinates(plan: _Plan, axis: _Axis) -> np.ndarray:
    return source_coordinates(plan.coordinate_mode, axis.out_len, axis.in_len, axis.scale,
                               (0.0, 1.0))


@lowering("Resize", "Upsample", check=check)
def lower_resize(program, group) -> None:
    node, graph = group.head, program.graph
    plan = _plan(node, graph)
    x = graph.types[node.inputs[0]]
    out = graph.types[node.outputs[0]]
    strides = contiguous_strides(x.shape)
    src, dst = program.value(node.inputs[0]), program.value(node.outputs[0])
    if plan.mode == "nearest":
        maps = [affine_table(n, s) for n, s in zip(out.shape, strides)]
        for a in plan.axes:
            source = _coordinates(plan, a)
            index = np.clip(plan.nearest(source, a.scale), 0, a.in_len - 1).astype(np.int64)
            maps[a.axis] = index * strides[a.axis]
        kb = program.kernel(node.name or node.op_type)
        emit_copy(kb, Copy(out.shape, maps, src, dst, out.dtype, src_elements=x.size))
        kb.finish()
        return
    _lower_linear(program, node, plan, x, out, strides, src, dst)


def _lower_linear(program, node, plan, x, out, strides, src, dst) -> None:
    kb = program.kernel(node.name or node.op_type)
    b = kb.b
    if out.size == 0:
        kb.finish()
        return
    elem = llvm_type(x.dtype)
    is_float = np.issubdtype(x.dtype, np.floating)
    signed = np.issubdtype(x.dtype, np.signedinteger)
    src_base, dst_base = kb.buffer(src), kb.buffer(dst)
    tables = {}
    for a in plan.axes:
        index, weights = taps(_coordinates(plan, a), a.in_len, a.scale, "linear", -0.75,
                               False, plan.exclude_outside)
        tap_count = index.shape[1]
        tables[a.axis] = (global_table(kb, index.astype(np.int64) * strides[a.axis]),
                          global_table(kb, weights.astype(np.float64), F64), tap_count)
    resized = {a.axis for a in plan.axes}
    order = [a.axis for a in plan.axes]
    rank = len(out.shape)

    def to_double(value):
        if is_float:
            return value if value.type == F64 else b.fpext(value, F64)
        return b.sitofp(value, F64) if signed else b.uitofp(value, F64)

    def from_double(value):
        if is_float:
            return value if elem == F64 else b.fptrunc(value, elem)
        info = np.iinfo(x.dtype)
        value = kb.intrinsic("llvm.rint", F64, [value])
        value = kb.intrinsic("llvm.maxnum", F64, [value, ir.Constant(F64, float(info.min))])
        value = kb.intrinsic("llvm.minnum", F64, [value, ir.Constant(F64, float(info.max))])
        return b.fptosi(value, elem) if signed else b.fptoui(value, elem)

    def blend(level, offset, coords):
        if level < 0:
            return to_double(kb.load(src_base, offset, elem))
        axis = order[level]
        index_table, weight_table, tap_count = tables[axis]
        total = None
        for t in range(tap_count):
            slot = b.add(b.mul(coords[axis], const_i64(tap_count)), const_i64(t))
            contribution = kb.load(index_table, slot, I64)
            weight = kb.load(weight_table, slot, F64)
            term = b.fmul(blend(level - 1, b.add(offset, contribution), coords), weight)
            total = term if total is None else b.fadd(total, term)
        return total

    def row_fn(coords):
        offset = const_i64(0)
        for d, coord in enumerate(coords):
            if d not in resized:
                offset = b.add(offset, b.mul(coord, const_i64(strides[d])))
        return coords, offset, b.mul(_flat(coords), const_i64(out.shape[-1]))

    def _flat(coords):
        flat = const_i64(0)
        for d, coord in enumerate(coords):
            flat = b.add(b.mul(flat, const_i64(out.shape[d])), coord)
        return flat

    def col_fn(state, col):
        coords, offset, row_start = state
        coords = list(coords) + [col]
        if rank - 1 not in resized:
            offset = b.add(offset, b.mul(col, const_i64(strides[rank - 1])))
        value = from_double(blend(len(order) - 1, offset, coords))
        kb.store(value, dst_base, b.add(row_start, col))

    iterate(kb, out.shape, row_fn, col_fn)
    kb.finish()


__all__ = ["lower_resize"]
