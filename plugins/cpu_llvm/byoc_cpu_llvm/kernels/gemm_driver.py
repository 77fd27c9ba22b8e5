"""The blocked float32 GEMM driver, shared by Gemm/MatMul/Einsum (:mod:`.gemm`), Conv
(:mod:`.conv`), the recurrent layers and attention.

A kernel computes ``batches`` independent products ``C[M, N] = A[M, K] @ B[K, N]`` (row-major
C, rows ``N`` apart) in MR x NR tiles with the shared micro-kernel (see
:mod:`~byoc_cpu_llvm.kernels.microkernel`). A is packed in slivers of MR rows (at compile time
when it is a constant, else per K block into per-thread scratch); B is packed in panels of NR
columns (at compile time when constant, else per (K block, N block) into per-thread scratch).
Threads split the (batch, N panel) pairs when there are enough of them, and the M tiles
otherwise. After the last K block of a tile its epilogue runs on it while it is in cache.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from llvmlite import ir

from byoc_cpu_llvm.codegen import (
    F32,
    I64,
    KernelBuilder,
    const_i64,
    counted_loop,
    smin,
)
from byoc_cpu_llvm.kernels.epilogue import Epilogue
from byoc_cpu_llvm.kernels.microkernel import (
    call_ukernel,
    lane_mask,
    masked_load,
    tile_products,
    vec_type,
)
from byoc_cpu_llvm.target import host_target

MR_MAX = 8     # rows of a micro-tile (accumulators: MR x NRV vectors)
NRV = 2        # vectors per micro-tile row
KC = 256       # K block: a B panel (KC x NR floats) stays in L1
NC_PANELS = 16  # N block, in panels: a packed B block stays in L2


def lanes() -> int:
    return max(4, host_target().float_lanes)


def panel_width() -> int:
    """NR: the columns of a micro-tile and of a packed B panel (NRV vectors of floats)."""
    return NRV * lanes()


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


def a_scratch_size(m: int, mr: int, k: int) -> int:
    """Floats per thread of the scratch of an A packed at run time: one K block of slivers
    for every M tile."""
    return -(-m // mr) * mr * k_block(k)


def b_scratch_size(k: int) -> int:
    """Floats per thread of the scratch of a B packed at run time: one K block of the
    NC_PANELS panels of an N block."""
    return k_block(k) * NC_PANELS * panel_width()


def pack_a(a: np.ndarray, mr: int) -> np.ndarray:
    """``a`` ([..., M, K]) as [..., M tiles, K, MR], zero-padded to whole tiles."""
    *lead, m, k = a.shape
    tiles = -(-m // mr)
    packed = np.zeros((*lead, tiles, k, mr), np.float32)
    full = m // mr
    if full:
        tiles_of_a = a[..., :full * mr, :].reshape(*lead, full, mr, k)
        packed[..., :full, :, :] = tiles_of_a.swapaxes(-1, -2)
    if m > full * mr:
        packed[..., full, :, :m - full * mr] = a[..., full * mr:, :].swapaxes(-1, -2)
    return packed


def pack_a_by_k_block(a: np.ndarray, mr: int) -> np.ndarray:
    """``a`` ([..., M, K]) packed as :func:`pack_a` does, but K block by K block (see
    :func:`k_block`): [..., K blocks, M tiles, kc, MR], flattened after the leading axes. The
    driver reads a K block's slivers one M tile after the other, so a constant A streams
    through memory in one sequential pass per K block (slivers K apart would each start a
    new stream for the hardware prefetcher, and the weights of deep layers come from DRAM)."""
    packed = pack_a(a, mr)
    k = a.shape[-1]
    kc = k_block(k)
    lead = packed.shape[:-3]
    return np.concatenate([packed[..., k0:k0 + kc, :].reshape(*lead, -1)
                           for k0 in range(0, k, kc)], axis=-1)


def a_block_offset(b: ir.IRBuilder, m: int, mr: int, k: int, mt: ir.Value,
                   k0: ir.Value) -> ir.Value:
    """The offset of M tile ``mt``'s sliver from ``k0`` in one product's A packed by
    :func:`pack_a_by_k_block`."""
    kc = k_block(k)
    tiles = -(-m // mr)
    block_kc = smin(b, const_i64(kc), b.sub(const_i64(k), k0))
    return b.add(b.mul(k0, const_i64(tiles * mr)), b.mul(mt, b.mul(block_kc, const_i64(mr))))


def pack_b(b: np.ndarray, nr: int) -> np.ndarray:
    """``b`` ([..., K, N]) as [..., N panels, K, NR], zero-padded to whole panels."""
    *lead, k, n = b.shape
    panels = -(-n // nr)
    packed = np.zeros((*lead, panels, k, nr), np.float32)
    # one strided copy into place (the weights of a large Gemm are hundreds of MB)
    full = n // nr
    if full:
        packed[..., :full, :, :] = b[..., :full * nr].reshape(*lead, k, full, nr).swapaxes(-2, -3)
    if n > full * nr:
        packed[..., full, :, :n - full * nr] = b[..., full * nr:]
    return packed

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


def scratch_ptr(kb: KernelBuilder, slot: int, elements: int) -> ir.Value:
    return kb.element(kb.buffer(slot), kb.b.mul(kb.tid, const_i64(elements)), F32)


def emit_gemm(program, kb: KernelBuilder, plan: GemmPlan, out: ir.Value) -> None:
    """Emit the blocked product described by ``plan`` into kernel ``kb``."""
    b = kb.b
    L = lanes()
    nr = panel_width()
    M, N, K, mr = plan.m, plan.n, plan.k, plan.mr
    panels = -(-N // nr)
    mtiles = -(-M // mr)
    kc_max = k_block(K)
    kblocks = -(-K // kc_max)
    units = plan.batches * panels
    plan.epilogue.bind(kb)
    # With one K block a whole tile is computed, finished and stored in registers: its
    # epilogue never reloads C (what small-K products, 1x1 convolutions, spend most on).
    in_registers = kblocks == 1 and not plan.epilogue.empty and plan.epilogue.vectorized

    b_scr = scratch_ptr(kb, plan.b_scratch, b_scratch_size(K)) if plan.b_pack else None
    a_scr = scratch_ptr(kb, plan.a_scratch, a_scratch_size(M, mr, K)) if plan.a_prepare else None

    # Split the (batch, panel) units when there are enough, else the M tiles.
    by_units = b.icmp_signed(">=", const_i64(units), b.mul(kb.nthreads, const_i64(4)))
    ub, ue = kb.thread_share(units)
    mb, me = kb.thread_share(mtiles)
    u0 = b.select(by_units, ub, const_i64(0))
    u1 = b.select(by_units, ue, const_i64(units))
    mt0 = b.select(by_units, const_i64(0), mb)
    mt1 = b.select(by_units, const_i64(mtiles), me)

    with counted_loop(b, u0, u1, "unit") as unit:
        u = unit.index
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
            def m_tile(mt):
                row = b.mul(mt, const_i64(mr))
                rows = smin(b, const_i64(mr), b.sub(const_i64(M), row))
                if plan.a_prepare:
                    return row, rows, kb.element(
                        a_scr, b.mul(b.sub(mt, mt0), const_i64(kc_max * mr)), F32)
                return row, rows, plan.a_ptr(kb, batch, mt, k0)

            def panel_cols(j):
                if plan.b_pack:
                    bp = kb.element(b_scr, b.mul(j, const_i64(kc_max * nr)), F32)
                else:
                    bp = plan.b_const(kb, batch, b.add(panel, j), k0)
                jcol = b.mul(j, const_i64(nr))
                return bp, smin(b, const_i64(nr), b.sub(ncols, jcol)), b.add(col0, jcol)

            def tile(row, rows, ap, bp, cols, tile_col):
                cp = kb.element(c_ptr, b.add(b.mul(row, const_i64(N)), tile_col), F32)

                def by_call():
                    args = [ap, bp, nr, cp, N, kc, accumulate, rows, cols]
                    if N % nr and N % nr <= L:
                        # the last panel's few columns take a one-vector micro-kernel
                        narrow = b.icmp_signed("<=", cols, const_i64(L))
                        with b.if_else(narrow) as (then, otherwise):
                            with then:
                                call_ukernel(kb, mr, 1, L, args)
                            with otherwise:
                                call_ukernel(kb, mr, NRV, L, args)
                    else:
                        call_ukernel(kb, mr, NRV, L, args)
                    if not plan.epilogue.empty:
                        with b.if_then(last):
                            plan.epilogue.apply_tile(kb, out, batch_coords,
                                                     b.add(row_base, row), rows, tile_col,
                                                     cols, L, nr)

                if not in_registers:
                    by_call()
                    return
                whole = b.and_(b.icmp_signed("==", rows, const_i64(mr)),
                               b.icmp_signed("==", cols, const_i64(nr)))
                with b.if_else(whole) as (then, otherwise):
                    with then:
                        _registers_tile(kb, plan, ap, bp, cp, batch_coords,
                                        b.add(row_base, row), tile_col)
                    with otherwise:
                        by_call()

            if kblocks == 1:
                # One pass over K: C's traffic (the store, the epilogue's operands) weighs
                # most, so each M tile sweeps the block's panels and writes MR rows of C
                # in long runs (the other order writes every row of C a panel at a time,
                # more streams than the prefetcher follows); the B block stays in L2.
                with kb.loop(mt0, mt1, name="mt") as mt:
                    row, rows, ap = m_tile(mt)
                    with kb.loop(const_i64(0), count, name="pan") as j:
                        tile(row, rows, ap, *panel_cols(j))
            else:
                # A B panel stays in L1 while the M tiles' slivers stream past it.
                with kb.loop(const_i64(0), count, name="pan") as j:
                    bp, cols, tile_col = panel_cols(j)
                    with kb.loop(mt0, mt1, name="mt") as mt:
                        tile(*m_tile(mt), bp, cols, tile_col)
        unit.next_index = b.add(u, count)


def _registers_tile(kb: KernelBuilder, plan: GemmPlan, ap: ir.Value, bp: ir.Value,
                    cp: ir.Value, batch_coords: dict, row0: ir.Value, col0: ir.Value) -> None:
    """A whole MR x NR tile of a one-K-block product, its epilogue applied to the
    accumulators before the only store of C."""
    b = kb.b
    L, nr = lanes(), panel_width()
    zero = ir.Constant(vec_type(L), None)
    accs = tile_products(b, kb.module, ap, bp, const_i64(nr), const_i64(plan.k),
                         [zero] * (plan.mr * NRV), plan.mr, NRV, L)
    finished = plan.epilogue.apply_registers(kb, batch_coords, row0, col0, accs, plan.mr, L)
    for i in range(plan.mr):
        for v in range(NRV):
            ptr = kb.element(cp, const_i64(i * plan.n + v * L), F32)
            b.store(finished[i * NRV + v], ptr, align=4)


def pack_rows(kb: KernelBuilder, row_ptr: Callable, kc: ir.Value, ncols: ir.Value,
              dest: ir.Value, panel_stride: int, transform: Callable | None = None) -> None:
    """Pack ``kc`` rows of B (row ``kk`` starts at ``row_ptr(kk)``, at the block's first
    column) into panels at ``dest``; columns past ``ncols`` become zeros, or, with
    ``transform`` (``transform(kk)`` gives the function applied to row ``kk``'s vectors),
    whatever it makes of zeros (those columns of C are never stored)."""
    b = kb.b
    L = lanes()
    nr = panel_width()
    vt = vec_type(L)
    panels = b.sdiv(b.add(ncols, const_i64(nr - 1)), const_i64(nr))
    with kb.loop(const_i64(0), kc, name="pk") as kk:
        src = row_ptr(kk)
        apply = transform(kk) if transform else None
        with kb.loop(const_i64(0), panels, name="pj") as j:
            for v in range(NRV):
                col = b.add(b.mul(j, const_i64(nr)), const_i64(v * L))
                mask = lane_mask(b, b.sub(ncols, col), L)
                value = masked_load(b, kb.module, kb.element(src, col, F32), mask, vt)
                if apply:
                    value = apply(value)
                offset = b.add(b.add(b.mul(j, const_i64(panel_stride)),
                                     b.mul(kk, const_i64(nr))), const_i64(v * L))
                b.store(value, kb.element(dest, offset, F32), align=4)


def pack_rows_strided(kb: KernelBuilder, elem_ptr: Callable, kc: ir.Value, ncols: ir.Value,
                      dest: ir.Value, panel_stride: int) -> None:
    """Pack a B block whose element (kk, q) is at ``elem_ptr(kk, q)`` (any layout)."""
    b = kb.b
    nr = panel_width()
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


__all__ = ["GemmPlan", "a_block_offset", "a_scratch_size", "b_scratch_size", "choose_mr",
           "emit_gemm", "k_block", "lanes", "pack_a", "pack_a_by_k_block", "pack_a_runtime",
           "pack_b", "pack_rows", "pack_rows_strided", "panel_width"]
