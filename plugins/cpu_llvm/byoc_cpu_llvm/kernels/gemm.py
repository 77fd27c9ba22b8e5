"""Blocked float32 matrix products: the shared GEMM driver, and the Gemm and MatMul lowerings
(plus a plain dot-product MatMul for float16 and float64).

A kernel computes ``batches`` independent products ``C[M, N] = A[M, K] @ B[K, N]`` (row-major
C, rows ``N`` apart) in MR x NR tiles with the shared micro-kernel (see
:mod:`~byoc_cpu_llvm.kernels.microkernel`). A is packed in slivers of MR rows (at compile time
when it is a constant, else per K block into per-thread scratch); B is packed in panels of NR
columns (at compile time when constant, else per (K block, N block) into per-thread scratch).
Threads split the (batch, N panel) pairs when there are enough of them, and the M tiles
otherwise. After the last K block of a tile its epilogue runs on it while it is in cache.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
from llvmlite import ir

from byoc.core.ir import Graph, Node
from byoc_cpu_llvm.codegen import F32, F64, I64, KernelBuilder, const_i64, llvm_type
from byoc_cpu_llvm.kernels import lowering
from byoc_cpu_llvm.kernels.elementwise import half_supported, strides_for
from byoc_cpu_llvm.kernels.epilogue import Epilogue, add_scaled_step, scale_step
from byoc_cpu_llvm.kernels.microkernel import (
    call_ukernel,
    lane_mask,
    masked_load,
    vec_type,
)
from byoc_cpu_llvm.target import host_target

MR_MAX = 8     # rows of a micro-tile (accumulators: MR x NRV vectors)
NRV = 2        # vectors per micro-tile row
KC = 256       # K block: a B panel (KC x NR floats) stays in L1
NC_PANELS = 16  # N block, in panels: a packed B block stays in L2


def lanes() -> int:
    return max(4, host_target().float_lanes)


def choose_mr(m: int) -> int:
    """Rows per micro-tile: M itself when small, else the MR in [4, MR_MAX] wasting the
    fewest padded rows (the larger on ties)."""
    if m <= MR_MAX:
        return m
    return min(range(MR_MAX, 3, -1), key=lambda r: (-(-m // r)) * r - m)


def k_block(k: int) -> int:
    """Split K into equal blocks of at most KC."""
    blocks = -(-k // KC)
    return -(-k // blocks)


def pack_a(a: np.ndarray, mr: int) -> np.ndarray:
    """``a`` ([..., M, K]) as [..., M tiles, K, MR], zero-padded to whole tiles."""
    *lead, m, k = a.shape
    tiles = -(-m // mr)
    padded = np.zeros((*lead, tiles * mr, k), np.float32)
    padded[..., :m, :] = a
    return np.ascontiguousarray(
        padded.reshape(*lead, tiles, mr, k).swapaxes(-1, -2)).astype(np.float32)


def pack_b(b: np.ndarray, nr: int) -> np.ndarray:
    """``b`` ([..., K, N]) as [..., N panels, K, NR], zero-padded to whole panels."""
    *lead, k, n = b.shape
    panels = -(-n // nr)
    padded = np.zeros((*lead, k, panels * nr), np.float32)
    padded[..., :n] = b
    return np.ascontiguousarray(
        padded.reshape(*lead, k, panels, nr).swapaxes(-2, -3)).astype(np.float32)


@dataclass
class GemmPlan:
    """What the driver needs to know about one kernel's products.

    ``a_ptr(kb, batch, mt, k0)`` points at the packed sliver of M tile ``mt`` from ``k0``
    (after ``a_prepare(kb, batch, k0, kc, mt0, mt1)`` packed it, when A is not constant).
    ``b_pack(kb, batch, k0, kc, col0, ncols, dest)`` packs a B block into panels at ``dest``
    (each ``kc_max * NR`` floats apart); or ``b_const(kb, batch, panel, k0)`` points at a
    pre-packed panel. ``c_info(kb, batch)`` gives the C pointer of the product, the batch
    coordinates of the output for the epilogue and the output row of C's first row.
    """

    m: int
    n: int
    k: int
    batches: int
    mr: int
    a_ptr: Callable
    c_info: Callable
    epilogue: Epilogue
    b_pack: Callable | None = None
    b_const: Callable | None = None
    a_prepare: Callable | None = None
    a_scratch: int | None = None      # scratch slot for runtime-packed A
    b_scratch: int | None = None


@contextlib.contextmanager
def while_loop(kb: KernelBuilder, start: ir.Value, stop: ir.Value,
               name: str) -> Iterator[tuple[ir.Value, Callable]]:
    """``for (u = start; u < stop; u = next)``; the body calls ``advance(next)`` once."""
    b = kb.b
    pre = b.block
    header = kb.function.append_basic_block(f"{name}.header")
    body = kb.function.append_basic_block(f"{name}.body")
    done = kb.function.append_basic_block(f"{name}.done")
    b.branch(header)
    b.position_at_end(header)
    index = b.phi(I64, name=name)
    index.add_incoming(start, pre)
    b.cbranch(b.icmp_signed("<", index, stop), body, done)
    b.position_at_end(body)
    nexts = []
    yield index, nexts.append
    index.add_incoming(nexts[0], b.block)
    b.branch(header)
    b.position_at_end(done)


def smin(b: ir.IRBuilder, x: ir.Value, y: ir.Value) -> ir.Value:
    return b.select(b.icmp_signed("<", x, y), x, y)


def smax(b: ir.IRBuilder, x: ir.Value, y: ir.Value) -> ir.Value:
    return b.select(b.icmp_signed(">", x, y), x, y)


def scratch_ptr(kb: KernelBuilder, slot: int, elements: int) -> ir.Value:
    return kb.element(kb.buffer(slot), kb.b.mul(kb.tid, const_i64(elements)), F32)


def emit_gemm(program, kb: KernelBuilder, plan: GemmPlan, out: ir.Value) -> None:
    """Emit the blocked product described by ``plan`` into kernel ``kb``."""
    b = kb.b
    L = lanes()
    nr = NRV * L
    M, N, K, mr = plan.m, plan.n, plan.k, plan.mr
    panels = -(-N // nr)
    mtiles = -(-M // mr)
    kc_max = k_block(K)
    kblocks = -(-K // kc_max)
    units = plan.batches * panels
    plan.epilogue.bind(kb)

    b_scr = scratch_ptr(kb, plan.b_scratch, kc_max * NC_PANELS * nr) if plan.b_pack else None
    a_scr = (scratch_ptr(kb, plan.a_scratch, mtiles * mr * kc_max)
             if plan.a_prepare else None)

    # Split the (batch, panel) units when there are enough, else the M tiles.
    by_units = b.icmp_signed(">=", const_i64(units), b.mul(kb.nthreads, const_i64(4)))
    ub, ue = kb.thread_share(units)
    mb, me = kb.thread_share(mtiles)
    u0 = b.select(by_units, ub, const_i64(0))
    u1 = b.select(by_units, ue, const_i64(units))
    mt0 = b.select(by_units, const_i64(0), mb)
    mt1 = b.select(by_units, const_i64(mtiles), me)

    with while_loop(kb, u0, u1, "unit") as (u, advance):
        batch = b.sdiv(u, const_i64(panels))
        panel = b.srem(u, const_i64(panels))
        count = smin(b, smin(b, b.sub(u1, u), b.sub(const_i64(panels), panel)),
                     const_i64(NC_PANELS))
        col0 = b.mul(panel, const_i64(nr))
        ncols = smin(b, b.sub(const_i64(N), col0), b.mul(count, const_i64(nr)))
        c_ptr, batch_coords, row_base = plan.c_info(kb, batch)
        with kb.loop(0, kblocks, name="kblk") as kbi:
            k0 = b.mul(kbi, const_i64(kc_max))
            kc = smin(b, const_i64(kc_max), b.sub(const_i64(K), k0))
            if plan.b_pack:
                plan.b_pack(kb, batch, k0, kc, col0, ncols, b_scr, kc_max * nr)
            if plan.a_prepare:
                plan.a_prepare(kb, batch, k0, kc, mt0, mt1, a_scr, kc_max)
            accumulate = b.zext(b.icmp_signed(">", kbi, const_i64(0)), I64)
            last = b.icmp_signed("==", kbi, const_i64(kblocks - 1))
            with kb.loop(const_i64(0), count, name="pan") as j:
                if plan.b_pack:
                    bp = kb.element(b_scr, b.mul(j, const_i64(kc_max * nr)), F32)
                else:
                    bp = plan.b_const(kb, batch, b.add(panel, j), k0)
                jcol = b.mul(j, const_i64(nr))
                cols = smin(b, const_i64(nr), b.sub(ncols, jcol))
                tile_col = b.add(col0, jcol)
                with kb.loop(mt0, mt1, name="mt") as mt:
                    row = b.mul(mt, const_i64(mr))
                    rows = smin(b, const_i64(mr), b.sub(const_i64(M), row))
                    if plan.a_prepare:
                        ap = kb.element(a_scr, b.mul(b.sub(mt, mt0), const_i64(kc_max * mr)),
                                        F32)
                    else:
                        ap = plan.a_ptr(kb, batch, mt, k0)
                    cp = kb.element(c_ptr, b.add(b.mul(row, const_i64(N)), tile_col), F32)
                    call_ukernel(kb, mr, NRV, L, [ap, bp, nr, cp, N, kc, accumulate, rows,
                                                  cols])
                    if not plan.epilogue.empty:
                        with _if(kb, last):
                            plan.epilogue.apply_tile(kb, out, batch_coords,
                                                     b.add(row_base, row), rows, tile_col,
                                                     cols, L, nr)
        advance(b.add(u, count))


@contextlib.contextmanager
def _if(kb: KernelBuilder, cond: ir.Value) -> Iterator[None]:
    with kb.b.if_then(cond):
        yield


def pack_rows(kb: KernelBuilder, row_ptr: Callable, kc: ir.Value, ncols: ir.Value,
              dest: ir.Value, panel_stride: int) -> None:
    """Pack ``kc`` rows of B (row ``kk`` starts at ``row_ptr(kk)``, at the block's first
    column) into panels at ``dest``; columns past ``ncols`` become zeros."""
    b = kb.b
    L = lanes()
    nr = NRV * L
    vt = vec_type(L)
    panels = b.sdiv(b.add(ncols, const_i64(nr - 1)), const_i64(nr))
    with kb.loop(const_i64(0), kc, name="pk") as kk:
        src = row_ptr(kk)
        with kb.loop(const_i64(0), panels, name="pj") as j:
            for v in range(NRV):
                col = b.add(b.mul(j, const_i64(nr)), const_i64(v * L))
                mask = lane_mask(b, b.sub(ncols, col), L)
                value = masked_load(b, kb.module, kb.element(src, col, F32), mask, vt)
                offset = b.add(b.add(b.mul(j, const_i64(panel_stride)),
                                     b.mul(kk, const_i64(nr))), const_i64(v * L))
                b.store(value, kb.element(dest, offset, F32), align=4)


def pack_rows_strided(kb: KernelBuilder, elem_ptr: Callable, kc: ir.Value, ncols: ir.Value,
                      dest: ir.Value, panel_stride: int) -> None:
    """Pack a B block whose element (kk, q) is at ``elem_ptr(kk, q)`` (any layout)."""
    b = kb.b
    nr = NRV * lanes()
    panels = b.sdiv(b.add(ncols, const_i64(nr - 1)), const_i64(nr))
    padded = b.mul(panels, const_i64(nr))
    with kb.loop(const_i64(0), kc, name="pk") as kk, kb.loop(const_i64(0), padded,
                                                             name="pq") as q:
        inside = b.icmp_signed("<", q, ncols)
        safe_q = b.select(inside, q, const_i64(0))
        value = b.load(elem_ptr(kk, safe_q), typ=F32)
        value = b.select(inside, value, ir.Constant(F32, 0.0))
        j = b.sdiv(q, const_i64(nr))
        offset = b.add(b.add(b.mul(j, const_i64(panel_stride)), b.mul(kk, const_i64(nr))),
                       b.srem(q, const_i64(nr)))
        b.store(value, kb.element(dest, offset, F32))


def pack_a_runtime(kb: KernelBuilder, elem_ptr: Callable, m: int, mr: int, k0: ir.Value,
                   kc: ir.Value, mt0: ir.Value, mt1: ir.Value, dest: ir.Value,
                   kc_max: int) -> None:
    """Pack rows of A (element (i, k) at ``elem_ptr(i, k)``) of M tiles [mt0, mt1) and
    columns [k0, k0 + kc) into slivers at ``dest`` (``kc_max * mr`` floats apart)."""
    b = kb.b
    with kb.loop(mt0, mt1, name="pa_t") as mt:
        sliver = kb.element(dest, b.mul(b.sub(mt, mt0), const_i64(kc_max * mr)), F32)
        with kb.loop(const_i64(0), kc, name="pa_k") as kk:
            for i in range(mr):
                row = b.add(b.mul(mt, const_i64(mr)), const_i64(i))
                inside = b.icmp_signed("<", row, const_i64(m))
                safe = b.select(inside, row, const_i64(0))
                value = b.load(elem_ptr(safe, b.add(k0, kk)), typ=F32)
                value = b.select(inside, value, ir.Constant(F32, 0.0))
                b.store(value, kb.element(sliver, b.add(b.mul(kk, const_i64(mr)),
                                                        const_i64(i)), F32))


# -- Gemm and MatMul --------------------------------------------------------------------------

def _float32_only(node: Node, graph: Graph) -> str | None:
    for value in node.present_inputs + node.outputs[:1]:
        if graph.types[value].dtype != np.float32:
            return f"cpu_llvm {node.op_type} handles float32 only"
    return None


def check_gemm(node: Node, graph: Graph) -> str | None:
    reason = _float32_only(node, graph)
    if reason:
        return reason
    a, b = (graph.types[v].shape for v in node.inputs[:2])
    if len(a) != 2 or len(b) != 2:
        return "Gemm takes 2-D A and B"
    return None


_WIDE_MATMUL = {np.dtype(np.float16), np.dtype(np.float64)}


def _matmul_dtype(node: Node, graph: Graph) -> np.dtype | None:
    """The common dtype of MatMul's operands and result, or None when they differ."""
    dtypes = {np.dtype(graph.types[v].dtype) for v in node.present_inputs + node.outputs[:1]}
    return dtypes.pop() if len(dtypes) == 1 else None


def check_matmul(node: Node, graph: Graph) -> str | None:
    dtype = _matmul_dtype(node, graph)
    if dtype in _WIDE_MATMUL:
        if dtype == np.float16 and not half_supported():
            return "cpu_llvm handles float16 only on CPUs with float16 conversions (F16C)"
    else:
        reason = _float32_only(node, graph)
        if reason:
            return reason
    a, b = (graph.types[v].shape for v in node.inputs[:2])
    if len(a) < 1 or len(b) < 1:
        return "MatMul needs operands of rank 1 or more"
    return None


class _Operand:
    """A or B of a product: a graph value seen as [batch..., rows, cols] (maybe transposed)."""

    def __init__(self, program, name: str, shape, trans: bool):
        self.name = name
        self.shape = tuple(shape)
        self.trans = trans
        self.constant = program.graph.is_constant(name)
        self.array = (np.asarray(program.graph.constants[name], np.float32)
                      if self.constant else None)


@lowering("Gemm", check=check_gemm, epilogue=True)
def lower_gemm(program, group) -> None:
    node = group.head
    graph = program.graph
    attrs = node.attrs
    alpha, beta = float(attrs.get("alpha", 1.0)), float(attrs.get("beta", 1.0))
    trans_a, trans_b = int(attrs.get("transA", 0)), int(attrs.get("transB", 0))
    a_name, b_name = node.inputs[:2]
    a_shape, b_shape = graph.types[a_name].shape, graph.types[b_name].shape
    m, k = (a_shape[1], a_shape[0]) if trans_a else a_shape
    n = b_shape[0] if trans_b else b_shape[1]
    out_shape = (m, n)
    epi = Epilogue(out_shape, 0, [1])
    if alpha != 1.0:
        epi.add_step(scale_step(alpha), [None])
    c_name = node.inputs[2] if len(node.inputs) > 2 and node.inputs[2] else None
    if c_name and beta != 0.0:
        epi.add_step(add_scaled_step(beta), [None, epi.operand(program, c_name)])
    epi.add_nodes(program, group)
    _lower_product(program, group, epi, a_name, b_name, (), [(), ()], m, n, k,
                   bool(trans_a), bool(trans_b), out_shape)


@lowering("MatMul", check=check_matmul, epilogue=True)
def lower_matmul(program, group) -> None:
    node = group.head
    graph = program.graph
    a_name, b_name = node.inputs[:2]
    a_shape, b_shape = graph.types[a_name].shape, graph.types[b_name].shape
    out_shape = graph.types[node.outputs[0]].shape
    a2 = (1,) + tuple(a_shape) if len(a_shape) == 1 else tuple(a_shape)
    b2 = tuple(b_shape) + (1,) if len(b_shape) == 1 else tuple(b_shape)
    m, k = a2[-2:]
    n = b2[-1]
    batch = tuple(np.broadcast_shapes(a2[:-2], b2[:-2]))
    # The epilogue sees the output as [batch..., M, N] (1-D operands keep a unit axis).
    full_shape = batch + (m, n)
    epi = Epilogue(full_shape, -2, [-1])
    epi_shape_fix = _reshaped_operands(program, group, out_shape, len(a_shape), len(b_shape))
    for name, strides in epi_shape_fix.items():
        epi.operand(program, name, strides)
    epi.add_nodes(program, group)
    if _matmul_dtype(node, graph) in _WIDE_MATMUL:
        _lower_dot_product(program, group, epi, a_name, b_name, batch, [a2[:-2], b2[:-2]],
                           m, n, k)
        return
    _lower_product(program, group, epi, a_name, b_name, batch, [a2[:-2], b2[:-2]], m, n, k,
                   False, False, full_shape, a2, b2)


def _lower_dot_product(program, group, epi: Epilogue, a_name, b_name, batch, op_batches,
                       m, n, k) -> None:
    """A plain MatMul for float16 and float64: each output element is a dot product
    accumulated in float64 and rounded once to the output dtype (as the reference does), then
    put through the epilogue one element at a time. Threads split the output rows."""
    elem = llvm_type(program.graph.types[group.head.outputs[0]].dtype)
    batches = int(np.prod(batch, dtype=np.int64)) if batch else 1
    a_bstrides = _batch_strides(op_batches[0], batch, m * k)
    b_bstrides = _batch_strides(op_batches[1], batch, k * n)
    out_slot = program.value(group.output)
    a_slot, b_slot = program.value(a_name), program.value(b_name)
    kb = program.kernel(group.head.name or group.head.op_type)
    b = kb.b
    acc = b.alloca(F64, name="acc")
    out = kb.buffer(out_slot)
    a_base, b_base = kb.buffer(a_slot), kb.buffer(b_slot)
    epi.bind(kb)
    rank = len(batch) + 2

    def widen(value):
        return value if value.type == F64 else b.fpext(value, F64)

    begin, end = kb.thread_share(batches * m)
    with kb.loop(begin, end, name="row") as row:
        batch_idx = b.sdiv(row, const_i64(m))
        i = b.srem(row, const_i64(m))
        coords, rem = [], batch_idx
        for dim in reversed(batch):
            coords.append(b.srem(rem, const_i64(dim)))
            rem = b.sdiv(rem, const_i64(dim))
        coords = coords[::-1]

        def offset(strides):
            off = const_i64(0)
            for coord, stride in zip(coords, strides):
                if stride:
                    off = b.add(off, b.mul(coord, const_i64(stride)))
            return off

        a_row = b.add(offset(a_bstrides), b.mul(i, const_i64(k)))
        b_mat = offset(b_bstrides)
        op_row = {}
        for name, op in epi.operands.items():
            off = offset(op.strides[:rank - 2])
            if op.strides[rank - 2]:
                off = b.add(off, b.mul(i, const_i64(op.strides[rank - 2])))
            op_row[name] = off
        out_row = b.mul(row, const_i64(n))
        with kb.loop(const_i64(0), const_i64(n), name="col") as j:
            b.store(ir.Constant(F64, 0.0), acc)
            with kb.loop(const_i64(0), const_i64(k), name="dot") as kk:
                x = widen(kb.load(a_base, b.add(a_row, kk), elem))
                y = widen(kb.load(b_base, b.add(b_mat, b.add(b.mul(kk, const_i64(n)), j)),
                                  elem))
                b.store(b.fadd(b.load(acc, typ=F64), b.fmul(x, y)), acc)
            result = b.load(acc, typ=F64)
            if elem != F64:
                result = b.fptrunc(result, elem)
            if not epi.empty:
                loaded = {}
                for name, op in epi.operands.items():
                    off = op_row[name]
                    if op.strides[rank - 1]:
                        off = b.add(off, b.mul(j, const_i64(op.strides[rank - 1])))
                    loaded[name] = kb.load(epi.bases[name], off, llvm_type(op.dtype))
                result = epi.run_steps(kb, result, loaded)
            kb.store(result, out, b.add(out_row, j))
    kb.finish()


def _reshaped_operands(program, group, out_shape, a_rank, b_rank) -> dict[str, list[int]]:
    """Strides over [batch..., M, N] of epilogue operands broadcast against ``out_shape``,
    which lacks the M axis when A is 1-D and the N axis when B is 1-D."""
    if a_rank > 1 and b_rank > 1:
        return {}
    result = {}
    graph = program.graph
    produced = {n.outputs[0] for n in group.nodes}
    for node in group.epilogue:
        for value in node.present_inputs:
            if value in result or value in produced:
                continue
            strides = strides_for(graph.types[value].shape, out_shape)
            if b_rank == 1:
                strides = strides + [0]
            if a_rank == 1:
                strides = strides[:-1] + [0] + strides[-1:]
            result[value] = strides
    return result


def _lower_product(program, group, epi: Epilogue, a_name, b_name, batch, op_batches,
                   m, n, k, trans_a, trans_b, full_shape, a_full=None, b_full=None) -> None:
    graph = program.graph
    L = lanes()
    nr = NRV * L
    a_full = a_full or tuple(graph.types[a_name].shape)
    b_full = b_full or tuple(graph.types[b_name].shape)
    batches = int(np.prod(batch, dtype=np.int64)) if batch else 1
    a_const = graph.is_constant(a_name)
    b_const = graph.is_constant(b_name)
    a_bstrides = _batch_strides(op_batches[0], batch, m * k)
    b_bstrides = _batch_strides(op_batches[1], batch, k * n)
    # Fold the batch into M when B is shared by every batch and A's batches are contiguous.
    fold = (batches > 1 and not any(b_bstrides) and not a_const
            and a_bstrides == _batch_strides(batch, batch, m * k))
    if fold:
        folded = _folded_epilogue(program, epi, batches * m, n)
        fold = folded is not None
        epi = folded if fold else epi
    rows_total = m * batches if fold else m
    mr = choose_mr(rows_total)
    kc_max = k_block(k)
    mtiles = -(-rows_total // mr)
    out_slot = program.value(group.output)
    a_slot = b_slot = None
    a_packed_slot = b_packed_slot = None
    plan_batches = 1 if fold else batches

    if a_const:
        arr = np.asarray(graph.constants[a_name], np.float32).reshape(a_full)
        arr = np.broadcast_to(arr, tuple(op_batches[0]) + arr.shape[-2:]).reshape(-1, *arr.shape[-2:])
        if trans_a:
            arr = arr.swapaxes(-1, -2)
        a_packed_slot = program.constant(f"{group.head.name or 'gemm'}__{a_name}__apack",
                                         pack_a(arr, mr))
    else:
        a_slot = program.value(a_name)
    if b_const:
        arr = np.asarray(graph.constants[b_name], np.float32).reshape(b_full)
        arr = arr.reshape(-1, *arr.shape[-2:])
        if trans_b:
            arr = arr.swapaxes(-1, -2)
        b_packed_slot = program.constant(f"{group.head.name or 'gemm'}__{b_name}__bpack",
                                         pack_b(arr, nr))
    else:
        b_slot = program.value(b_name)

    kb = program.kernel(group.head.name or group.head.op_type)
    b = kb.b
    out = kb.buffer(out_slot)
    a_base = kb.buffer(a_slot if a_slot is not None else a_packed_slot)
    b_base = kb.buffer(b_slot if b_slot is not None else b_packed_slot)

    def batch_offset(batch_idx, strides):
        off = const_i64(0)
        rem = batch_idx
        for dim, stride in zip(reversed(batch), reversed(strides)):
            coord = b.srem(rem, const_i64(dim))
            rem = b.sdiv(rem, const_i64(dim))
            if stride:
                off = b.add(off, b.mul(coord, const_i64(stride)))
        return off

    def batch_index(batch_idx, op_batch):
        """Index of the operand's own (broadcast) batch matrix."""
        return batch_offset(batch_idx, _batch_strides(op_batch, batch, 1))

    def a_elem(batch_idx):
        base_off = const_i64(0) if fold else batch_offset(batch_idx, a_bstrides)

        def elem(i, kk):
            if trans_a:
                off = b.add(b.mul(kk, const_i64(m)), i)
            else:
                off = b.add(b.mul(i, const_i64(k)), kk)
            return kb.element(a_base, b.add(base_off, off), F32)
        return elem

    def a_prepare(kb_, batch_idx, k0, kc, mt0, mt1, dest, kcm):
        pack_a_runtime(kb_, a_elem(batch_idx), rows_total, mr, k0, kc, mt0, mt1, dest, kcm)

    def a_ptr(kb_, batch_idx, mt, k0):
        mat = batch_index(batch_idx, op_batches[0])
        off = b.add(b.mul(b.add(b.mul(mat, const_i64(mtiles)), mt), const_i64(k * mr)),
                    b.mul(k0, const_i64(mr)))
        return kb.element(a_base, off, F32)

    def b_pack(kb_, batch_idx, k0, kc, col0, ncols, dest, stride):
        base_off = batch_offset(batch_idx, b_bstrides)
        if trans_b:
            def elem(kk, q):
                off = b.add(b.mul(b.add(col0, q), const_i64(k)), b.add(k0, kk))
                return kb.element(b_base, b.add(base_off, off), F32)
            pack_rows_strided(kb_, elem, kc, ncols, dest, stride)
        else:
            def row(kk):
                off = b.add(b.mul(b.add(k0, kk), const_i64(n)), col0)
                return kb.element(b_base, b.add(base_off, off), F32)
            pack_rows(kb_, row, kc, ncols, dest, stride)

    panels = -(-n // nr)

    def b_panel(kb_, batch_idx, panel, k0):
        mat = batch_index(batch_idx, op_batches[1])
        off = b.add(b.mul(b.add(b.mul(mat, const_i64(panels)), panel), const_i64(k * nr)),
                    b.mul(k0, const_i64(nr)))
        return kb.element(b_base, off, F32)

    def c_info(kb_, batch_idx):
        if fold:
            return out, {}, const_i64(0)
        coords, rem = {}, batch_idx
        for axis in range(len(batch) - 1, -1, -1):
            coords[axis] = b.srem(rem, const_i64(batch[axis]))
            rem = b.sdiv(rem, const_i64(batch[axis]))
        return kb.element(out, b.mul(batch_idx, const_i64(m * n)), F32), coords, const_i64(0)

    tag = group.head.name or group.head.op_type
    plan = GemmPlan(
        m=rows_total, n=n, k=k, batches=plan_batches, mr=mr, a_ptr=a_ptr, c_info=c_info,
        epilogue=epi,
        b_pack=None if b_const else b_pack, b_const=b_panel if b_const else None,
        a_prepare=None if a_const else a_prepare,
        a_scratch=None if a_const else program.scratch(f"{tag}__ascr", np.float32,
                                                       mtiles * mr * kc_max),
        b_scratch=None if b_const else program.scratch(f"{tag}__bscr", np.float32,
                                                       kc_max * NC_PANELS * nr))
    emit_gemm(program, kb, plan, out)
    kb.finish()


def _folded_epilogue(program, epi: Epilogue, rows: int, n: int) -> Epilogue | None:
    """``epi`` for an output seen as one [batch * M, N] matrix, or None when an operand's
    strides over the batch axes and M do not merge into one row stride."""
    folded = Epilogue((rows, n), 0, [1])
    shape = epi.out_shape
    for name, op in epi.operands.items():
        coords = np.indices(shape[:-1]).reshape(len(shape) - 1, -1)
        offsets = (coords * np.array(op.strides[:-1])[:, None]).sum(axis=0)
        stride = int(offsets[1] - offsets[0]) if offsets.size > 1 else 0
        if not np.array_equal(offsets, stride * np.arange(offsets.size)):
            return None
        folded.operand(program, name, [stride, op.strides[-1]])
    folded.steps = epi.steps
    return folded


def _batch_strides(op_batch, batch, matrix_elems: int) -> list[int]:
    """Element strides of an operand's batch matrices over the output's batch axes."""
    op_batch = tuple(op_batch)
    padded = (1,) * (len(batch) - len(op_batch)) + op_batch
    strides, step = [], matrix_elems
    for dim in reversed(padded):
        strides.append(step if dim != 1 else 0)
        step *= dim
    return strides[::-1]


__all__ = ["GemmPlan", "choose_mr", "emit_gemm", "pack_a", "pack_b", "pack_rows"]
