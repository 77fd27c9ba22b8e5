"""Resize (and Upsample) in nearest, linear and cubic mode, with constant scales or sizes.

The source positions and weights of every output position along each resized axis depend
only on shapes and attributes, so they are computed at compile time, with the reference
interpreter's own coordinate and tap functions (the float32 coordinate arithmetic included),
and baked into the module as tables.

* nearest: a strided copy (:mod:`byoc_cpu_llvm.kernels.strided_copy`) whose resized dims read
  through an index table; with tf_crop_and_resize, a second kernel then writes the
  extrapolation value where any resized axis samples outside the input.
* linear and cubic (antialiased or not, exclude_outside, tf_crop_and_resize): one kernel per
  resized axis, in the reference's order, each writing a float64 intermediate (the last
  rounds to the output dtype: integers with round-half-even and saturation). Each output
  element sums its taps' ``value * weight`` in exactly the order numpy's ``sum`` over the
  taps axis does in the reference: sequentially from +0.0 when the taps axis is not the
  innermost one of the product (or there are fewer than 8 taps), else numpy's pairwise
  summation (8 accumulators, blocks of 128). With tf_crop_and_resize, positions that sample
  outside the input take the extrapolation value after their axis's pass, as in the
  reference, so later axes blend it.
* tf_crop_and_resize with a roi that is not a constant (a graph input): a first kernel
  (thread 0) computes every axis's tables from the roi with the reference's own float32 and
  float64 operations, in its order (:func:`_emit_tables`), then one pass per axis reads them
  (nearest passes too, in the input's dtype); an axis the reference would leave alone when
  its roi is [0, 1] is copied through at run time.

The summation order was worked out against numpy 2.x's reduction (``add.reduce`` from +0.0;
pairwise when the reduced axis is the innermost of a contiguous array); the tests in
``tests/test_resize_more.py`` compare bit for bit, float64 included.

Why one module above 600 lines: it is one op, and every part of it (the plan, the tables, the
nearest copy, the filtered passes, the run-time ROI path) reads the same private plan of the
node (``_Plan``, ``_Axis``) and must keep the reference's arithmetic order; split, the plan
would become an interface between modules for the sake of a line count.
"""

from __future__ import annotations

import math
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
from byoc.core.ir import Graph, Node, TensorType
from byoc_cpu_llvm.codegen import F64, I8, I64, const_i64, llvm_type
from byoc_cpu_llvm.kernels import lowering
from byoc_cpu_llvm.kernels.strided_copy import (
    Copy,
    affine_table,
    bit_pattern,
    contiguous_strides,
    emit_copy,
    global_table,
    int_type_of,
    iterate,
    movable,
)

_LINEAR_DTYPES = {np.dtype(t) for t in (np.float32, np.float64, np.int8, np.uint8, np.int16,
                                        np.uint16, np.int32, np.uint32)}
# Taps per output position beyond which a filter (a very strong antialiased downscale) is
# declined: each pass unrolls its taps.
MAX_TAPS = 512
# numpy's pairwise summation: unrolled by 8, halved above this many terms.
_PW_BLOCKSIZE = 128


@dataclass
class _Axis:
    axis: int
    in_len: int
    out_len: int
    scale: float
    roi: tuple[float, float] = (0.0, 1.0)
    position: int = 0                 # its place in the node's axes (and roi)
    skippable: bool = False           # left alone by the reference when its roi is [0, 1]


@dataclass
class _Plan:
    mode: str
    coordinate_mode: str
    axes: list[_Axis]                 # the axes actually resized, in the reference's order
    nearest: object
    exclude_outside: bool
    cubic_a: float = -0.75
    antialias: bool = False
    extrapolation_value: float = 0.0
    roi_input: str | None = None      # a tf_crop_and_resize roi known only at run time
    roi_dtype: np.dtype | None = None
    nearest_mode: str = "round_prefer_floor"
    roi_axes: int = 0                 # how many axes the roi covers

    @property
    def cropping(self) -> bool:
        return self.coordinate_mode == "tf_crop_and_resize"


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
    cubic_a, extrapolation, rois = -0.75, 0.0, None
    roi_input = roi_dtype = None
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
        antialias, nearest_mode = False, "legacy"
    else:
        coordinate_mode = _text(attrs.get("coordinate_transformation_mode", "half_pixel"))
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
        cubic_a = float(attrs.get("cubic_coeff_a", -0.75))
        extrapolation = float(attrs.get("extrapolation_value", 0.0))
        if coordinate_mode == "tf_crop_and_resize":
            name = node.inputs[1] if len(node.inputs) > 1 else ""
            if not name:
                raise ValueError("tf_crop_and_resize has no roi")
            if graph.is_constant(name):
                roi = present(graph.constants[name])
                if roi is None:
                    raise ValueError("tf_crop_and_resize has no roi")
                bounds = np.asarray(roi, dtype=np.float64).reshape(-1).tolist()
                rois = list(zip(bounds[:len(axes)], bounds[len(axes):]))
                if len(rois) != len(axes) or len(bounds) != 2 * len(axes):
                    raise ValueError(f"a roi of {len(bounds)} values for {len(axes)} axes")
            else:
                # Known at run time only: the tables are computed then, by the same
                # arithmetic; every axis is resized unless its roi is [0, 1].
                roi_type = graph.types[name]
                if roi_type.dtype not in (np.dtype(np.float32), np.dtype(np.float64)):
                    raise ValueError(f"a {roi_type.dtype} roi is not supported")
                if roi_type.size != 2 * len(axes):
                    raise ValueError(f"a roi of {roi_type.size} values for {len(axes)} axes")
                roi_input, roi_dtype = name, roi_type.dtype
    if mode not in ("nearest", "linear", "cubic"):
        raise ValueError(f"mode {mode!r} is not supported (only nearest, linear and cubic)")
    resized = []
    shape = list(x.shape)
    for i, (axis, out_len, scale) in enumerate(zip(axes, out_lens, factors)):
        shape[axis] = out_len
        roi = rois[i] if rois is not None else (0.0, 1.0)
        cropping = coordinate_mode == "tf_crop_and_resize" and \
            (roi != (0.0, 1.0) or roi_input is not None)
        skippable = scale == 1 and out_len == x.shape[axis]
        if skippable and not cropping:
            continue
        resized.append(_Axis(axis, x.shape[axis], out_len, scale, roi, i, skippable))
    out = graph.types[node.outputs[0]]
    if tuple(shape) != out.shape:
        raise ValueError(f"the resized shape {shape} differs from the output's {out.shape}")
    if mode != "nearest" and out.dtype not in _LINEAR_DTYPES:
        raise ValueError(f"{mode} resizing of {out.dtype} is not supported")
    if mode == "nearest" and not movable(out.dtype):
        raise ValueError(f"{out.dtype} values cannot be moved")
    if any(a.in_len == 0 for a in resized) and out.size:
        raise ValueError("it resizes an empty axis")
    plan = _Plan(mode, coordinate_mode, resized, nearest, exclude, cubic_a, antialias,
                 extrapolation, roi_input, roi_dtype, nearest_mode, len(axes))
    if mode != "nearest":
        for a in resized:
            count = _tap_count(plan, a)
            if count > MAX_TAPS:
                raise ValueError(f"its filter has {count} taps (more than {MAX_TAPS})")
    return plan


def _tap_count(plan: _Plan, a: _Axis) -> int:
    """The taps per output position of ``taps`` (without building the tables)."""
    support = 2 if plan.mode == "cubic" else 1
    stretch = min(a.scale, 1.0) if plan.antialias else 1.0
    first = math.floor(-support / stretch) + 1
    return 2 - 2 * first


def check(node: Node, graph: Graph) -> str | None:
    try:
        _plan(node, graph)
    except (KeyError, ValueError, TypeError, ArithmeticError) as error:
        return f"cpu_llvm cannot lower this {node.op_type}: {error}"
    return None


def _coordinates(plan: _Plan, axis: _Axis) -> np.ndarray:
    return source_coordinates(plan.coordinate_mode, axis.out_len, axis.in_len, axis.scale,
                               axis.roi)


def _outside(plan: _Plan, axis: _Axis) -> np.ndarray | None:
    """Where tf_crop_and_resize samples outside the input along ``axis`` (None otherwise)."""
    if not plan.cropping:
        return None
    source = _coordinates(plan, axis)
    outside = (source < 0) | (source > axis.in_len - 1)
    return outside if outside.any() else None


@lowering("Resize", "Upsample", check=check)
def lower_resize(program, group) -> None:
    node, graph = group.head, program.graph
    plan = _plan(node, graph)
    x = graph.types[node.inputs[0]]
    out = graph.types[node.outputs[0]]
    src, dst = program.value(node.inputs[0]), program.value(node.outputs[0])
    if plan.roi_input is not None:
        _lower_runtime_roi(program, node, plan, x, out, src, dst)
    elif plan.mode == "nearest":
        _lower_nearest(program, node, plan, x, out, src, dst)
    else:
        _lower_filtered(program, node, plan, x, out, src, dst)


def _lower_nearest(program, node, plan, x, out, src, dst) -> None:
    strides = contiguous_strides(x.shape)
    maps = [affine_table(n, s) for n, s in zip(out.shape, strides)]
    for a in plan.axes:
        source = _coordinates(plan, a)
        index = np.clip(plan.nearest(source, a.scale), 0, a.in_len - 1).astype(np.int64)
        maps[a.axis] = index * strides[a.axis]
    kb = program.kernel(node.name or node.op_type)
    emit_copy(kb, Copy(out.shape, maps, src, dst, out.dtype, src_elements=x.size))
    kb.finish()
    outside = {a.axis: o for a in plan.axes if (o := _outside(plan, a)) is not None}
    if outside and out.size:
        _emit_extrapolation(program, node, plan, out, dst, outside)


def _emit_extrapolation(program, node, plan, out, dst, outside) -> None:
    """Overwrite with the extrapolation value (in the output dtype, as the reference casts
    it) every element that samples outside the input along some resized axis."""
    kb = program.kernel((node.name or node.op_type) + "_extrapolate")
    b = kb.b
    dtype = np.dtype(out.dtype)
    value = np.asarray(plan.extrapolation_value).astype(dtype)
    element = int_type_of(dtype)
    constant = ir.Constant(element, bit_pattern(value, dtype))
    dst_base = kb.buffer(dst)
    tables = {axis: global_table(kb, flags.astype(np.int64), I8)
              for axis, flags in outside.items()}
    last = len(out.shape) - 1

    def flagged(flag, axis, coord):
        bit = b.icmp_unsigned("!=", kb.load(tables[axis], coord, I8), ir.Constant(I8, 0))
        return bit if flag is None else b.or_(flag, bit)

    def row_fn(coords):
        flag = None
        for d, coord in enumerate(coords):
            if d in tables:
                flag = flagged(flag, d, coord)
        flat = const_i64(0)
        for d, coord in enumerate(coords):
            flat = b.add(b.mul(flat, const_i64(out.shape[d])), coord)
        return flag, b.mul(flat, const_i64(out.shape[-1]))

    def col_fn(state, col):
        flag, row_start = state
        if last in tables:
            flag = flagged(flag, last, col)
        with b.if_then(flag):
            kb.store(constant, dst_base, b.add(row_start, col))

    iterate(kb, out.shape, row_fn, col_fn)
    kb.finish()


def _pairwise(b, terms: list):
    """numpy's ``pairwise_sum`` of ``terms`` (float64 IR values), operation for operation."""
    n = len(terms)
    if n < 8:
        total = ir.Constant(F64, 0.0)
        for term in terms:
            total = b.fadd(total, term)
        return total
    if n <= _PW_BLOCKSIZE:
        r = list(terms[:8])
        i = 8
        while i < n - n % 8:
            r = [b.fadd(r[j], terms[i + j]) for j in range(8)]
            i += 8
        total = b.fadd(b.fadd(b.fadd(r[0], r[1]), b.fadd(r[2], r[3])),
                       b.fadd(b.fadd(r[4], r[5]), b.fadd(r[6], r[7])))
        for term in terms[i:]:
            total = b.fadd(total, term)
        return total
    half = n // 2
    half -= half % 8
    return b.fadd(_pairwise(b, terms[:half]), _pairwise(b, terms[half:]))


def _sum_terms(b, terms: list, pairwise: bool):
    """``np.sum`` of ``terms`` as the reference's reduction does it: from +0.0, numpy's
    pairwise summation when the terms are its contiguous inner loop, else term by term."""
    if pairwise and len(terms) >= 8:
        return b.fadd(ir.Constant(F64, 0.0), _pairwise(b, terms))
    total = ir.Constant(F64, 0.0)
    for term in terms:
        total = b.fadd(total, term)
    return total


def _blend_taps(kb, src_base, offset, first, tap_count, index_table, weight_table, in_elem,
                to_double, pairwise):
    """The sum over the taps of ``value * weight`` (float64)."""
    b = kb.b
    terms = []
    for t in range(tap_count):
        slot = b.add(first, const_i64(t))
        value = to_double(kb.load(src_base, b.add(offset, kb.load(index_table, slot, I64)),
                                  in_elem))
        terms.append(b.fmul(value, kb.load(weight_table, slot, F64)))
    return _sum_terms(b, terms, pairwise)


def _lower_runtime_roi(program, node, plan, x, out, src, dst) -> None:
    """tf_crop_and_resize with a roi input: a first kernel computes each axis's tables from
    the roi, then one pass per axis as with constant tables (nearest ones in the input's
    dtype)."""
    name = node.name or node.op_type
    if out.size == 0:
        program.kernel(name).finish()
        return
    tables = []
    for i, a in enumerate(plan.axes):
        taps_per = 1 if plan.mode == "nearest" else _tap_count(plan, a)
        key = f"{node.outputs[0]}.resize_tables{i}"
        slots = {"index": program.temp(key + ".index", TensorType(np.dtype(np.int64),
                                                                   (a.out_len * taps_per,))),
                 "outside": program.temp(key + ".outside", TensorType(np.dtype(np.int8),
                                                                       (a.out_len,))),
                 "skip": program.temp(key + ".skip", TensorType(np.dtype(np.int8), (1,)))}
        if plan.mode != "nearest":
            slots["weight"] = program.temp(key + ".weight", TensorType(
                np.dtype(np.float64), (a.out_len * taps_per,)))
        tables.append(slots)
    _emit_tables(program, name, plan, x, tables)
    _emit_passes(program, node, plan, x, out, src, dst, tables)


def _emit_tables(program, name, plan, x, tables) -> None:
    """Thread 0 computes, for every resized axis, what ``source_coordinates`` and ``taps``
    (or the nearest rounding) give at compile time for a constant roi, with the same
    float32 and float64 operations in the same order."""
    kb = program.kernel(name + "_tables")
    b = kb.b
    # The stride of each axis in the tensor its pass reads (earlier passes resized others).
    shape, strides = list(x.shape), []
    for a in plan.axes:
        strides.append(contiguous_strides(shape)[a.axis])
        shape[a.axis] = a.out_len
    roi_base = kb.buffer(program.value(plan.roi_input))
    roi_elem = llvm_type(plan.roi_dtype)
    f32, f64 = ir.FloatType(), F64

    def c32(value):
        return ir.Constant(f32, float(np.float32(value)))

    def c64(value):
        return ir.Constant(f64, float(value))

    def roi_at(j):
        value = kb.load(roi_base, const_i64(j), roi_elem)
        return value if roi_elem == F64 else b.fpext(value, F64)

    def clip(value, high):
        value = kb.intrinsic("llvm.maxnum", F64, [value, c64(0.0)])
        return kb.intrinsic("llvm.minnum", F64, [value, c64(high)])

    with b.if_then(b.icmp_signed("==", kb.tid, const_i64(0))):
        for a, slots, stride in zip(plan.axes, tables, strides):
            low, high = roi_at(a.position), roi_at(a.position + plan.roi_axes)
            same = b.and_(b.fcmp_ordered("==", low, c64(0.0)),
                          b.fcmp_ordered("==", high, c64(1.0)))
            skip = same if a.skippable else ir.Constant(ir.IntType(1), 0)
            kb.store(b.zext(skip, I8), kb.buffer(slots["skip"]), const_i64(0))
            start, end = b.fptrunc(low, f32), b.fptrunc(high, f32)
            length = np.float32(a.in_len)
            resized = np.float32(a.scale) * length
            length1 = c32(length - 1)
            index_base = kb.buffer(slots["index"])
            outside_base = kb.buffer(slots["outside"])
            with kb.loop(0, a.out_len, name="y") as y:
                if resized == 1:
                    x32 = b.fmul(b.fdiv(b.fadd(start, end), c32(2)), length1)
                else:
                    y32 = b.sitofp(y, f32)
                    x32 = b.fadd(b.fmul(start, length1),
                                 b.fdiv(b.fmul(b.fmul(y32, b.fsub(end, start)), length1),
                                        c32(resized - 1)))
                source = b.fpext(x32, F64)
                outside = b.or_(b.fcmp_ordered("<", source, c64(0.0)),
                                b.fcmp_ordered(">", source, c64(a.in_len - 1)))
                kb.store(b.zext(outside, I8), outside_base, y)
                if plan.mode == "nearest":
                    picked = _runtime_nearest(kb, plan.nearest_mode, source)
                    index = b.fptosi(clip(picked, a.in_len - 1), I64)
                    kb.store(b.mul(index, const_i64(stride)), index_base, y)
                    continue
                _emit_taps(kb, plan, a, source, y, slots, stride, clip)
    kb.finish()


def _runtime_nearest(kb, mode: str, source):
    b = kb.b
    if mode == "round_prefer_floor":
        return kb.intrinsic("llvm.ceil", F64, [b.fsub(source, ir.Constant(F64, 0.5))])
    if mode == "round_prefer_ceil":
        return kb.intrinsic("llvm.floor", F64, [b.fadd(source, ir.Constant(F64, 0.5))])
    if mode in ("floor", "ceil"):
        return kb.intrinsic(f"llvm.{mode}", F64, [source])
    raise ValueError(f"nearest_mode {mode!r} is not supported")


def _emit_taps(kb, plan, a, source, y, slots, stride, clip) -> None:
    """``taps`` for one output position: kernel weights of the taps around ``source``,
    zeroed outside the input (exclude_outside), normalized (antialias, exclude_outside)."""
    b = kb.b

    def c64(value):
        return ir.Constant(F64, float(value))
    support = 2 if plan.mode == "cubic" else 1
    stretch = min(a.scale, 1.0) if plan.antialias else 1.0
    first = math.floor(-support / stretch) + 1
    count = 2 - 2 * first
    base = b.fsub(kb.intrinsic("llvm.ceil", F64, [source]), c64(1))
    positions, weights = [], []
    ca = plan.cubic_a
    for t in range(count):
        position = b.fadd(base, c64(first + t))
        distance = b.fmul(b.fsub(position, source), c64(stretch))
        d = kb.intrinsic("llvm.fabs", F64, [distance])
        if plan.mode == "cubic":
            near = b.fadd(b.fmul(b.fmul(b.fsub(b.fmul(c64(ca + 2), d), c64(ca + 3)), d), d),
                          c64(1))
            far = b.fsub(b.fmul(b.fadd(b.fmul(b.fsub(b.fmul(c64(ca), d), c64(5 * ca)), d),
                                       c64(8 * ca)), d), c64(4 * ca))
            weight = b.select(b.fcmp_ordered("<=", d, c64(1)), near,
                              b.select(b.fcmp_ordered("<", d, c64(2)), far, c64(0.0)))
        else:
            weight = clip(b.fsub(c64(1), d), 1.0)
        if plan.exclude_outside:
            out = b.or_(b.fcmp_ordered("<", position, c64(0)),
                        b.fcmp_ordered(">", position, c64(a.in_len - 1)))
            weight = b.select(out, c64(0.0), weight)
        positions.append(position)
        weights.append(weight)
    if plan.antialias or plan.exclude_outside:
        # weights.sum(axis=1) of an (out_len, taps) array: the taps are innermost.
        total = _sum_terms(b, weights, True)
        total = b.select(b.fcmp_ordered("==", total, c64(0.0)), c64(1.0), total)
        weights = [b.fdiv(w, total) for w in weights]
    index_base, weight_base = kb.buffer(slots["index"]), kb.buffer(slots["weight"])
    row = b.mul(y, const_i64(count))
    for t, (position, weight) in enumerate(zip(positions, weights)):
        slot = b.add(row, const_i64(t))
        index = b.fptosi(clip(position, a.in_len - 1), I64)
        kb.store(b.mul(index, const_i64(stride)), index_base, slot)
        kb.store(weight, weight_base, slot)


def _lower_filtered(program, node, plan, x, out, src, dst) -> None:
    """Linear or cubic: one pass per resized axis, through float64 intermediates."""
    name = node.name or node.op_type
    if out.size == 0:
        program.kernel(name).finish()
        return
    _emit_passes(program, node, plan, x, out, src, dst)


def _emit_passes(program, node, plan, x, out, src, dst, tables: list | None = None) -> None:
    """One pass per resized axis (one pass copying through when none is), each into a
    temporary of the input's dtype when nearest, of float64 otherwise, the last into ``dst``;
    ``tables``: the run-time tables of each axis, when they are computed at run time."""
    name = node.name or node.op_type
    if not plan.axes:   # nothing resized: the float64 round trip is the identity
        _emit_pass(program, name, plan, None, x.shape, x.dtype, src, out.shape, out.dtype,
                   dst)
        return
    nearest = plan.mode == "nearest"
    shape, slot, dtype = list(x.shape), src, np.dtype(x.dtype)
    for i, a in enumerate(plan.axes):
        out_shape = list(shape)
        out_shape[a.axis] = a.out_len
        if i == len(plan.axes) - 1:
            target, target_dtype = dst, np.dtype(out.dtype)
        else:
            target_dtype = dtype if nearest else np.dtype(np.float64)
            target = program.temp(f"{node.outputs[0]}.resize_pass{i}",
                                  TensorType(target_dtype, tuple(out_shape)))
        _emit_pass(program, f"{name}_axis{a.axis}", plan, a, shape, dtype, slot, out_shape,
                   target_dtype, target, runtime=tables[i] if tables else None)
        shape, slot, dtype = out_shape, target, target_dtype


def _emit_pass(program, name, plan, a, in_shape, in_dtype, src, out_shape, out_dtype,
               dst, runtime: dict | None = None) -> None:
    """Resize ``src`` (``in_shape``) along ``a`` into ``dst``: gather the taps, blend them in
    float64 in numpy's order, extrapolate, convert to ``out_dtype``."""
    kb = program.kernel(name)
    b = kb.b
    in_elem, out_elem = llvm_type(in_dtype), llvm_type(out_dtype)
    strides = contiguous_strides(in_shape)
    rank = len(out_shape)
    src_base, dst_base = kb.buffer(src), kb.buffer(dst)
    axis = a.axis if a is not None else -1
    nearest = plan.mode == "nearest"
    skip = None
    if a is not None and runtime is not None:
        # Tables computed at run time (see _emit_tables); nearest passes have one tap.
        tap_count = 1 if nearest else _tap_count(plan, a)
        index_table = kb.buffer(runtime["index"])
        weight_table = None if nearest else kb.buffer(runtime["weight"])
        if a.skippable:
            skip = b.icmp_unsigned("!=", kb.load(kb.buffer(runtime["skip"]), const_i64(0), I8),
                                   ir.Constant(I8, 0))
    elif a is not None:
        index, weights = taps(_coordinates(plan, a), a.in_len, a.scale, plan.mode,
                               plan.cubic_a, plan.antialias, plan.exclude_outside)
        tap_count = index.shape[1]
        index_table = global_table(kb, index.astype(np.int64) * strides[axis])
        weight_table = global_table(kb, weights.astype(np.float64), F64)
    if a is not None:
        # The reference sums (gathered * weights) over the taps axis: when every dim after
        # it has length 1 the taps are numpy's contiguous inner loop (pairwise summation),
        # otherwise the iterator walks the trailing dims inside and adds tap by tap.
        pairwise = int(np.prod(in_shape[axis + 1:], dtype=np.int64)) == 1
        if runtime is not None:
            outside_table = kb.buffer(runtime["outside"])
        else:
            outside = _outside(plan, a)
            outside_table = None if outside is None else global_table(
                kb, outside.astype(np.int64), I8)
        if nearest:     # the reference casts the value to the tensor's dtype
            value = np.asarray(plan.extrapolation_value).astype(in_dtype)
            extrapolation = ir.Constant(in_elem, float(value) if in_dtype.kind == "f"
                                        else int(value))
        else:
            extrapolation = ir.Constant(F64, float(np.float64(plan.extrapolation_value)))

    def to_double(value):
        if nearest:
            return value
        if np.issubdtype(in_dtype, np.floating):
            return value if value.type == F64 else b.fpext(value, F64)
        signed = np.issubdtype(in_dtype, np.signedinteger)
        return b.sitofp(value, F64) if signed else b.uitofp(value, F64)

    def from_double(value):
        if nearest:
            return value
        if np.issubdtype(out_dtype, np.floating):
            return value if out_elem == F64 else b.fptrunc(value, out_elem)
        info = np.iinfo(out_dtype)
        value = kb.intrinsic("llvm.rint", F64, [value])
        value = kb.intrinsic("llvm.maxnum", F64, [value, ir.Constant(F64, float(info.min))])
        value = kb.intrinsic("llvm.minnum", F64, [value, ir.Constant(F64, float(info.max))])
        signed = np.issubdtype(out_dtype, np.signedinteger)
        return b.fptosi(value, out_elem) if signed else b.fptoui(value, out_elem)

    def blend(offset, coord):
        if a is None:
            return to_double(kb.load(src_base, offset, in_elem))
        first = b.mul(coord, const_i64(tap_count))
        if nearest:
            total = kb.load(src_base, b.add(offset, kb.load(index_table, first, I64)), in_elem)
        else:
            total = _blend_taps(kb, src_base, offset, first, tap_count, index_table,
                                weight_table, in_elem, to_double, pairwise)
        if outside_table is not None:
            flag = b.icmp_unsigned("!=", kb.load(outside_table, coord, I8), ir.Constant(I8, 0))
            total = b.select(flag, extrapolation, total)
        if skip is not None:
            same = b.add(offset, b.mul(coord, const_i64(strides[axis])))
            total = b.select(skip, to_double(kb.load(src_base, same, in_elem)), total)
        return total

    def row_fn(coords):
        offset = const_i64(0)
        flat = const_i64(0)
        for d, coord in enumerate(coords):
            if d != axis:
                offset = b.add(offset, b.mul(coord, const_i64(strides[d])))
            flat = b.add(b.mul(flat, const_i64(out_shape[d])), coord)
        return coords, offset, b.mul(flat, const_i64(out_shape[-1]))

    def col_fn(state, col):
        coords, offset, row_start = state
        if rank - 1 != axis:
            offset = b.add(offset, b.mul(col, const_i64(strides[rank - 1])))
        coord = col if axis == rank - 1 else (coords[axis] if axis >= 0 else None)
        kb.store(from_double(blend(offset, coord)), dst_base, b.add(row_start, col))

    iterate(kb, out_shape, row_fn, col_fn)
    kb.finish()


__all__ = ["lower_resize"]
