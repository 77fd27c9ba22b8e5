"""The strided copy, the one emitter of data movement (:mod:`.movement`, and Resize in
nearest mode, :mod:`.resize`; its tables and loops serve Gather, Trilu and the generators too).

Every output element is read from the
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

from byoc.core.ir import Node
from byoc_cpu_llvm.codegen import I64, PTR, KernelBuilder, const_i64, smax, smin


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
        c0 = smax(kb.b, b.sub(begin, row_start), const_i64(0))
        c1 = smin(kb.b, b.sub(end, row_start), inner_v)
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
        value = smin(kb.b, smax(kb.b, value, const_i64(0)), const_i64(max(index.length - 1, 0)))
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
    if _contiguous(plan):
        _emit_block(kb, plan, elem, src_base, dst_base)
        return
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


def _contiguous(plan: _Plan) -> bool:
    """Whether the copy is one run of consecutive elements to consecutive elements (a Concat
    or Split along the outermost non-unit axis, a Slice of whole rows)."""
    return (len(plan.dims) == 1 and plan.dims[0].affine and plan.dims[0].stride == 1
            and plan.dims[0].dst == 1)


def _emit_block(kb: KernelBuilder, plan: _Plan, elem, src_base, dst_base) -> None:
    """This thread's share of a contiguous copy, as one ``llvm.memcpy``: compiled in no time
    and run by the C library's copy (DenseNet-121's 58 Concats were as many element loops)."""
    b = kb.b
    size = elem.width // 8
    begin, end = kb.thread_share(plan.dims[0].n)
    src = kb.element(src_base, b.add(const_i64(plan.base), begin), elem)
    dst = kb.element(dst_base, b.add(const_i64(plan.dst_base), begin), elem)
    nbytes = b.mul(b.sub(end, begin), const_i64(size))
    name = "llvm.memcpy.p0.p0.i64"
    memcpy = kb.module.globals.get(name) or ir.Function(
        kb.module, ir.FunctionType(ir.VoidType(), [PTR, PTR, I64, ir.IntType(1)]), name)
    b.call(memcpy, [dst, src, nbytes, ir.Constant(ir.IntType(1), 0)])


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
        i1 = smin(kb.b, b.add(i0, const_i64(size)), const_i64(dims[p].n))
        j0 = b.mul(tq, const_i64(size))
        j1 = smin(kb.b, b.add(j0, const_i64(size)), const_i64(dims[q].n))
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


def movable(dtype: np.dtype) -> bool:
    dtype = np.dtype(dtype)
    return dtype.kind in "biufc" and dtype.itemsize in (1, 2, 4, 8)


__all__ = [
    "Copy",
    "IndexDim",
    "affine_table",
    "bit_pattern",
    "contiguous_strides",
    "emit_copy",
    "global_table",
    "int_type_of",
    "iterate",
    "lower_copies",
    "movable",
]
