"""Data movement: Transpose, Concat, Split, Slice, Pad, Gather, Expand, Tile, DepthToSpace,
SpaceToDepth (and Resize in nearest mode, via :mod:`byoc_cpu_llvm.kernels.resize`).

All of them are one emitter, the *strided copy*: every output element is read from the
input at an offset that is a sum of one contribution per output dim, each a function of that
dim's coordinate alone. A contribution is affine (``coordinate * stride``, with a constant
part folded into a base offset) or, when it is not, a constant table baked into the module
(Pad's reflections, Tile's wrap-around, DepthToSpace's blocks, Resize's nearest indices). A
table entry of -1 means "outside the input" and the element gets the fill value (Pad in
constant mode). Gather's index dim takes its contribution from the run-time indices.

Adjacent dims that are contiguous in both input and output are merged, so most copies become
a loop over rows with a unit-stride inner loop that LLVM turns into vector moves. Threads
split the flat range of output elements evenly. A copy whose output's innermost dim is strided
in the input while another dim is contiguous there (NCHW <-> NHWC and other transposes) runs
in square tiles instead, so reads and writes both stay in cache.

Values are moved as integers of their width, so every dtype of 1, 2, 4 or 8 bytes is
supported and float bits (NaN payloads, -0.0) are kept exactly.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from llvmlite import ir

from byoc.core.interpreter.ops_shape import int_list, normalize_axis
from byoc.core.ir import Graph, Node
from byoc_cpu_llvm.codegen import I64, KernelBuilder, const_i64
from byoc_cpu_llvm.kernels import lowering

# -- the strided copy --------------------------------------------------------------------------


@dataclass
class IndexDim:
    """An output dim whose input contribution is ``stride * normalize(indices[coordinate])``:
    Gather's indices, read at run time (negative ones count from the end of ``length``)."""

    slot: int
    dtype: np.dtype
    length: int
    stride: int


@dataclass
class Copy:
    """Copy into a region of ``shape`` of buffer ``dst`` (element strides ``dst_strides``
    from ``dst_offset``) from buffer ``src``. ``maps`` gives each output dim's contribution
    to the input offset: an int64 table (``-1``: outside the input) or an :class:`IndexDim`.
    ``fill`` is the value (as a numpy scalar of the dtype) of elements outside the input, or
    ``fill_slot`` the buffer whose first element (of the dtype) is, read at run time."""

    shape: tuple[int, ...]
    maps: list
    src: int
    dst: int
    dtype: np.dtype
    dst_strides: tuple[int, ...] | None = None
    dst_offset: int = 0
    fill: object = None
    src_elements: int = 1
    fill_slot: int | None = None


@dataclass
class _Dim:
    n: int
    stride: int = 0            # affine input stride
    dst: int = 0               # output stride
    table: np.ndarray | None = None
    index: IndexDim | None = None

    @property
    def affine(self) -> bool:
        return self.table is None and self.index is None


@dataclass
class _Plan:
    dims: list[_Dim] = field(default_factory=list)
    base: int = 0
    dst_base: int = 0
    all_outside: bool = False
    empty: bool = False


def contiguous_strides(shape) -> list[int]:
    strides, step = [], 1
    for dim in reversed(tuple(shape)):
        strides.append(step)
        step *= dim
    return strides[::-1]


def affine_table(n: int, stride: int, start: int = 0) -> np.ndarray:
    return start + np.arange(n, dtype=np.int64) * stride


def _plan(copy: Copy) -> _Plan:
    plan = _Plan(dst_base=copy.dst_offset)
    dst_strides = copy.dst_strides or tuple(contiguous_strides(copy.shape))
    if any(n == 0 for n in copy.shape):
        plan.empty = True
        return plan
    for n, m, ds in zip(copy.shape, copy.maps, dst_strides):
        if isinstance(m, IndexDim):
            plan.dims.append(_Dim(n, dst=ds, index=m))
            continue
        table = np.asarray(m, dtype=np.int64).reshape(-1)
        if len(table) != n:
            raise ValueError(f"cpu_llvm copy: a table of {len(table)} entries for a dim of {n}")
        if n == 1 and table[0] < 0:
            plan.all_outside = True
            continue
        if n == 1:
            plan.base += int(table[0])
            continue
        steps = np.diff(table)
        if (table >= 0).all() and (steps == steps[0]).all():
            plan.base += int(table[0])
            plan.dims.append(_Dim(n, stride=int(steps[0]), dst=ds))
        else:
            plan.dims.append(_Dim(n, dst=ds, table=table))
    if copy.src_elements == 0:
        plan.all_outside = True
    if plan.all_outside:
        plan.dims = [_Dim(d.n, dst=d.dst) for d in plan.dims]
    merged: list[_Dim] = []
    for dim in plan.dims:
        last = merged[-1] if merged else None
        if (last is not None and last.affine and dim.affine
                and last.stride == dim.stride * dim.n and last.dst == dim.dst * dim.n):
            merged[-1] = _Dim(last.n * dim.n, stride=dim.stride, dst=dim.dst)
        else:
            merged.append(dim)
    plan.dims = merged or [_Dim(1)]
    return plan


def int_type_of(dtype: np.dtype) -> ir.IntType:
    return ir.IntType(np.dtype(dtype).itemsize * 8)


def bit_pattern(value, dtype: np.dtype) -> int:
    """The bit pattern of ``value`` (already of ``dtype``) as an unsigned integer."""
    dtype = np.dtype(dtype)
    return int(np.asarray(value, dtype=dtype).reshape(1).view(f"u{dtype.itemsize}")[0])


def global_table(kb: KernelBuilder, values, element: ir.Type = I64) -> ir.GlobalVariable:
    """A constant array in the module (``int64`` unless ``element`` says otherwise)."""
    values = np.asarray(values).reshape(-1)
    array_type = ir.ArrayType(element, len(values))
    if isinstance(element, ir.IntType):
        items = [int(v) for v in values]
    else:
        items = [float(v) for v in values]
    var = ir.GlobalVariable(kb.module, array_type, kb.module.get_unique_name("table"))
    var.global_constant = True
    var.linkage = "private"
    var.initializer = ir.Constant(array_type, items)
    return var


def smax(kb: KernelBuilder, a, b):
    return kb.b.select(kb.b.icmp_signed(">", a, b), a, b)


def smin(kb: KernelBuilder, a, b):
    return kb.b.select(kb.b.icmp_signed("<", a, b), a, b)


def iterate(kb: KernelBuilder, shape, row_fn, col_fn) -> None:
    """Run over this thread's share of the elements of ``shape`` (flat, row-major):
    ``state = row_fn(coordinates of the leading dims)`` once per row, then
    ``col_fn(state, col)`` for each element of the row."""
    b = kb.b
    shape = list(shape) or [1]
    inner = shape[-1]
    total = int(np.prod(shape, dtype=np.int64))
    begin, end = kb.thread_share(total)
    inner_v = const_i64(inner)
    first = b.sdiv(begin, inner_v)
    last = b.sdiv(b.add(end, const_i64(inner - 1)), inner_v)
    with kb.loop(first, last, name="row") as row:
        coords = []
        remainder = row
        for n in reversed(shape[:-1]):
            coords.append(b.srem(remainder, const_i64(n)))
            remainder = b.sdiv(remainder, const_i64(n))
        state = row_fn(coords[::-1])
        row_start = b.mul(row, inner_v)
        c0 = smax(kb, b.sub(begin, row_start), const_i64(0))
        c1 = smin(kb, b.sub(end, row_start), inner_v)
        with kb.loop(c0, c1, name="col") as col:
            col_fn(state, col)


class _Contributions:
    """Emits each dim's contribution to the input offset (and whether it is inside)."""

    def __init__(self, kb: KernelBuilder, dims: list[_Dim]) -> None:
        self.kb = kb
        self.tables = {id(d): global_table(kb, d.table) for d in dims if d.table is not None}
        self.index_bases = {id(d): kb.buffer(d.index.slot) for d in dims if d.index is not None}

    def of(self, dim: _Dim, coord):
        """(offset contribution, inside flag or None)."""
        kb, b = self.kb, self.kb.b
        if dim.affine:
            return (b.mul(coord, const_i64(dim.stride)) if dim.stride else const_i64(0)), None
        if dim.table is not None:
            value = kb.load(self.tables[id(dim)], coord, I64)
            if (dim.table < 0).any():
                return value, b.icmp_signed(">=", value, const_i64(0))
            return value, None
        index = dim.index
        raw = kb.load(self.index_bases[id(dim)], coord, int_type_of(index.dtype))
        value = b.sext(raw, I64) if raw.type.width < 64 else raw
        length = const_i64(index.length)
        value = b.select(b.icmp_signed("<", value, const_i64(0)), b.add(value, length), value)
        # Out-of-range indices (an error in the reference) are clamped, never read outside.
        value = smin(kb, smax(kb, value, const_i64(0)), const_i64(max(index.length - 1, 0)))
        return b.mul(value, const_i64(index.stride)), None


def _and(b, a, c):
    if a is None:
        return c
    if c is None:
        return a
    return b.and_(a, c)


def emit_copy(kb: KernelBuilder, copy: Copy) -> None:
    """Emit ``copy`` into the kernel being built (this thread's share of it)."""
    plan = _plan(copy)
    if plan.empty:
        return
    elem = int_type_of(copy.dtype)
    b = kb.b
    dst_base = kb.buffer(copy.dst)
    fill = None if copy.fill is None else ir.Constant(elem, bit_pattern(copy.fill, copy.dtype))
    if copy.fill_slot is not None:
        fill = kb.load(kb.buffer(copy.fill_slot), const_i64(0), elem)
    if plan.all_outside:
        shape = [d.n for d in plan.dims]

        def row_fill(coords):
            off = const_i64(plan.dst_base)
            for d, c in zip(plan.dims, coords):
                off = b.add(off, b.mul(c, const_i64(d.dst)))
            return off

        def col_fill(off, col):
            kb.store(fill, dst_base, b.add(off, b.mul(col, const_i64(plan.dims[-1].dst))))

        iterate(kb, shape, row_fill, col_fill)
        return
    src_base = kb.buffer(copy.src)
    if _tiled(plan):
        _emit_tiled(kb, plan, elem, src_base, dst_base)
        return
    parts = _Contributions(kb, plan.dims)
    last = plan.dims[-1]

    def row_fn(coords):
        off, dst_off, inside = const_i64(plan.base), const_i64(plan.dst_base), None
        for dim, coord in zip(plan.dims[:-1], coords):
            value, flag = parts.of(dim, coord)
            off = b.add(off, value)
            dst_off = b.add(dst_off, b.mul(coord, const_i64(dim.dst)))
            inside = _and(b, inside, flag)
        return off, dst_off, inside

    def col_fn(state, col):
        off, dst_off, inside = state
        value, flag = parts.of(last, col)
        inside = _and(b, inside, flag)
        src = b.add(off, value)
        if inside is not None:
            src = b.select(inside, src, const_i64(0))
        loaded = kb.load(src_base, src, elem)
        if inside is not None:
            loaded = b.select(inside, loaded, fill)
        kb.store(loaded, dst_base, b.add(dst_off, b.mul(col, const_i64(last.dst))))

    iterate(kb, [d.n for d in plan.dims], row_fn, col_fn)


def _tiled(plan: _Plan) -> bool:
    dims = plan.dims
    if len(dims) < 2 or not all(d.affine for d in dims):
        return False
    last = dims[-1]
    if last.dst != 1 or last.stride == 1 or last.n < 8:
        return False
    return any(d.stride == 1 and d.n >= 8 for d in dims[:-1])


def _emit_tiled(kb: KernelBuilder, plan: _Plan, elem, src_base, dst_base) -> None:
    """A transpose in T x T tiles of (the dim contiguous in the input, the output's last)."""
    b = kb.b
    dims = plan.dims
    q = len(dims) - 1
    p = max(i for i, d in enumerate(dims[:-1]) if d.stride == 1)
    others = [d for i, d in enumerate(dims) if i not in (p, q)]
    size = _tile_size_for(elem)
    tiles_p = -(-dims[p].n // size)
    tiles_q = -(-dims[q].n // size)
    units = int(np.prod([d.n for d in others], dtype=np.int64)) * tiles_p * tiles_q
    begin, end = kb.thread_share(units)
    with kb.loop(begin, end, name="tile") as unit:
        tq = b.srem(unit, const_i64(tiles_q))
        rest = b.sdiv(unit, const_i64(tiles_q))
        tp = b.srem(rest, const_i64(tiles_p))
        rest = b.sdiv(rest, const_i64(tiles_p))
        src_off, dst_off = const_i64(plan.base), const_i64(plan.dst_base)
        for d in reversed(others):
            coord = b.srem(rest, const_i64(d.n))
            rest = b.sdiv(rest, const_i64(d.n))
            src_off = b.add(src_off, b.mul(coord, const_i64(d.stride)))
            dst_off = b.add(dst_off, b.mul(coord, const_i64(d.dst)))
        i0 = b.mul(tp, const_i64(size))
        i1 = smin(kb, b.add(i0, const_i64(size)), const_i64(dims[p].n))
        j0 = b.mul(tq, const_i64(size))
        j1 = smin(kb, b.add(j0, const_i64(size)), const_i64(dims[q].n))
        with kb.loop(i0, i1, name="ti") as i:
            src_i = b.add(src_off, i)
            dst_i = b.add(dst_off, b.mul(i, const_i64(dims[p].dst)))
            with kb.loop(j0, j1, name="tj") as j:
                value = kb.load(src_base, b.add(src_i, b.mul(j, const_i64(dims[q].stride))), elem)
                kb.store(value, dst_base, b.add(dst_i, j))


def _tile_size_for(elem: ir.IntType) -> int:
    return max(16, 64 // (elem.width // 8))


def lower_copies(program, node: Node, copies: list[Copy]) -> None:
    """One kernel running ``copies`` (they write disjoint regions) in turn."""
    kb = program.kernel(node.name or node.op_type)
    for copy in copies:
        emit_copy(kb, copy)
    kb.finish()


# -- checks --------------------------------------------------------------------------------------


def movable(dtype: np.dtype) -> bool:
    dtype = np.dtype(dtype)
    return dtype.kind in "biufc" and dtype.itemsize in (1, 2, 4, 8)


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
    node, graph = group.head, program.graph
    out = _type(graph, node.outputs[0])
    lower_copies(program, node, [Copy(out.shape, _transpose_maps(node, graph),
                                      _input(program, node, 0), program.value(node.outputs[0]),
                                      out.dtype, src_elements=_type(graph, node.inputs[0]).size)])


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
    copies = []
    for value, t, offset in plan:
        strides = contiguous_strides(t.shape)
        maps = [affine_table(n, s) for n, s in zip(t.shape, strides)]
        copies.append(Copy(t.shape, maps, program.value(value), dst, out.dtype,
                           dst_strides=tuple(out_strides), dst_offset=offset,
                           src_elements=t.size))
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
    node, graph = group.head, program.graph
    out = _type(graph, node.outputs[0])
    lower_copies(program, node, [Copy(out.shape, _slice_maps(node, graph),
                                      _input(program, node, 0), program.value(node.outputs[0]),
                                      out.dtype, src_elements=_type(graph, node.inputs[0]).size)])


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
    node, graph = group.head, program.graph
    out = _type(graph, node.outputs[0])
    maps, fill, fill_value = _pad_plan(node, graph)
    fill_slot = program.value(fill_value) if fill_value else None
    lower_copies(program, node, [Copy(out.shape, maps, _input(program, node, 0),
                                      program.value(node.outputs[0]), out.dtype, fill=fill,
                                      src_elements=_type(graph, node.inputs[0]).size,
                                      fill_slot=fill_slot)])


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
    node, graph = group.head, program.graph
    out = _type(graph, node.outputs[0])
    maps = _broadcast_maps(node, graph, node.op_type == "Tile")
    lower_copies(program, node, [Copy(out.shape, maps, _input(program, node, 0),
                                      program.value(node.outputs[0]), out.dtype,
                                      src_elements=_type(graph, node.inputs[0]).size)])


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
    node, graph = group.head, program.graph
    out = _type(graph, node.outputs[0])
    lower_copies(program, node, [Copy(out.shape, _block_maps(node, graph),
                                      _input(program, node, 0), program.value(node.outputs[0]),
                                      out.dtype, src_elements=_type(graph, node.inputs[0]).size)])


__all__ = [
    "Copy",
    "IndexDim",
    "affine_table",
    "contiguous_strides",
    "emit_copy",
    "global_table",
    "iterate",
    "lower_copies",
    "movable",
]
