"""Winograd F(4x4, 3x3): 3x3 stride-1 float32 convolutions with 4x fewer multiply-adds
(Lavin and Gray, "Fast Algorithms for Convolutional Neural Networks", 2016).

The output of each channel is cut into 4x4 tiles. A tile is ``A^T [sum_c U_c * V_c] A``
where ``U_c = G w_c G^T`` is the transformed 3x3 filter of input channel ``c`` (6x6, made at
compile time), ``V_c = B^T d_c B`` the transformed 6x6 input window of the tile and ``*`` the
elementwise product: for each of the 36 points ``p`` of the 6x6 domain the sum over ``c`` is
a matrix product ``M[p] = U[p] @ V[p]`` (output channels x input channels, times input
channels x tiles): 36 products per tile and channel pair where the direct convolution does
144. A layer runs as three kernels:

1. the input transform writes ``V[n, p, c, t]``, a vector of tiles of one tile row at a time:
   the window's six input rows are loaded as vectors and de-interleaved with shuffles;
2. the blocked GEMM driver (:mod:`.gemm_driver`) computes ``M[n, p] = U[p] @ V[n, p]`` for
   the 36 points of every image (``U`` packed at compile time);
3. the output transform computes ``A^T M A`` per tile, a vector of tiles at a time, writes the
   4x4 results into the NCHW output (interleaved back with shuffles) and runs the bias and
   the fused epilogue on each output row segment.

``V`` and ``M`` live in one workspace that the program's Winograd layers share (they run one
after another). The transforms' rounding costs a few 1e-6 of the output's largest value per
layer (F(4x4, 3x3) with the points 0, +-1, +-2 and infinity); :func:`winograd_fits` leaves the
layers where the 2.25x larger transformed weights or few tiles would make it slower to the
direct GEMM path.
"""

from __future__ import annotations

import numpy as np
from llvmlite import ir

from byoc_cpu_llvm.codegen import F32, I32, const, const_i64, smax, smin, splat
from byoc_cpu_llvm.kernels.epilogue import Epilogue
from byoc_cpu_llvm.kernels.gemm_driver import (
    GemmPlan,
    a_block_offset,
    b_scratch_size,
    choose_mr,
    emit_gemm,
    lanes,
    pack_a_by_k_block,
    pack_rows,
)
from byoc_cpu_llvm.kernels.microkernel import lane_mask, masked_load, masked_store, vec_type

# F(4x4, 3x3) at the points 0, 1, -1, 2, -2 and infinity.
B_T = np.array([[4, 0, -5, 0, 1, 0],
                [0, -4, -4, 1, 1, 0],
                [0, 4, -4, -1, 1, 0],
                [0, -2, -1, 2, 1, 0],
                [0, 2, -1, -2, 1, 0],
                [0, 4, 0, -5, 0, 1]], np.float64)
G = np.array([[1 / 4, 0, 0],
              [-1 / 6, -1 / 6, -1 / 6],
              [-1 / 6, 1 / 6, -1 / 6],
              [1 / 24, 1 / 12, 1 / 6],
              [1 / 24, -1 / 12, 1 / 6],
              [0, 0, 1]], np.float64)
A_T = np.array([[1, 1, 1, 1, 1, 0],
                [0, 1, -1, 2, -2, 0],
                [0, 1, 1, 4, 4, 0],
                [0, 1, -1, 8, -8, 1]], np.float64)
TILE = 4        # output rows and columns of a tile
WINDOW = 6      # input rows and columns of a tile's window
POINTS = WINDOW * WINDOW

# Below these the direct GEMM path is faster (measured with benchmarks/conv_layers.py):
# few tiles leave the products too narrow, and the transformed weights (4x the 3x3 ones)
# stream from memory for little work.
MIN_TILES = 36
MIN_CHANNELS = 16


def winograd_fits(geo) -> bool:
    """Whether a convolution (:class:`~.conv.ConvGeometry`) takes this path: 3x3, stride 1,
    no dilation, one group, and enough tiles and channels to win."""
    tiles = -(-geo.oh // TILE) * -(-geo.ow // TILE)
    return (geo.kh == geo.kw == 3 and geo.sh == geo.sw == 1 and geo.dh == geo.dw == 1
            and geo.groups == 1 and tiles >= MIN_TILES and geo.c >= MIN_CHANNELS
            and geo.m >= MIN_CHANNELS)


def transform_weights(weights: np.ndarray) -> np.ndarray:
    """``U[p, m, c] = (G w[m, c] G^T)[p]`` for weights ``[M, C, 3, 3]``: [36, M, C] float32
    (computed in float64)."""
    u = np.einsum("ak,mckl,bl->abmc", G, weights.astype(np.float64), G)
    return u.reshape(POINTS, *weights.shape[:2]).astype(np.float32)


def emit_winograd(program, group, geo, epi: Epilogue) -> None:
    """The three kernels of a Winograd convolution (see the module docstring)."""
    graph = program.graph
    node = group.head
    tag = node.name or "conv"
    th, tw = -(-geo.oh // TILE), -(-geo.ow // TILE)
    tiles = th * tw
    v_size = geo.n * POINTS * geo.c * tiles
    work = program.workspace("winograd_workspace", np.float32,
                             v_size + geo.n * POINTS * geo.m * tiles)
    weights = np.asarray(graph.constants[node.inputs[1]], np.float32)
    L = lanes()
    # Layers of one shape (DenseNet's growth layers) share the kernels: each signature below
    # names every parameter its kernel's code is built from.
    x_slot = program.value(node.inputs[0])
    program.shared_kernel(
        tag + "_wg_in", ("winograd_in", geo.n, geo.c, geo.h, geo.w, geo.pt, geo.pl, th, tw, L),
        [x_slot, work], lambda kb: _input_transform(kb, geo, x_slot, work, th, tw))
    mr = choose_mr(geo.m)
    a_slot = program.constant(f"{tag}__winograd_u",
                              pack_a_by_k_block(transform_weights(weights), mr))
    b_scratch = program.scratch(f"{tag}__wg_bscr", np.float32, b_scratch_size(geo.c))
    program.shared_kernel(
        tag + "_wg_gemm", ("winograd_gemm", geo.n, geo.m, geo.c, tiles, mr, L),
        [work, a_slot, b_scratch],
        lambda kb: _products(program, kb, geo, mr, a_slot, b_scratch, work, v_size, tiles))
    out_slot = program.value(group.output)
    epilogue = epi.signature()
    program.shared_kernel(
        tag + "_wg_out",
        None if epilogue is None else ("winograd_out", geo.n, geo.m, geo.c, geo.oh, geo.ow, th,
                                       tw, L, epilogue),
        [out_slot, work, *epi.operand_slots()],
        lambda kb: _output_transform(kb, geo, out_slot, work, v_size, th, tw, epi))


def _combine(b: ir.IRBuilder, coefficients: np.ndarray, vectors: list) -> list:
    """``coefficients @ vectors`` (a list of vectors per row), skipping zero coefficients."""
    rows = []
    for row in coefficients:
        total = None
        for coefficient, vector in zip(row, vectors):
            if coefficient == 0:
                continue
            if total is None:
                if coefficient == 1:
                    total = vector
                elif coefficient == -1:
                    total = b.fneg(vector)
                else:
                    total = b.fmul(const(coefficient, vector), vector)
            elif coefficient == 1:
                total = b.fadd(total, vector)
            elif coefficient == -1:
                total = b.fsub(total, vector)
            else:
                total = b.fadd(total, b.fmul(const(coefficient, vector), vector))
        rows.append(total)
    return rows


def _concat(b: ir.IRBuilder, vectors: list) -> ir.Value:
    """One vector of the ``vectors`` (same type) one after the other, padded with zeros to a
    power of two of them."""
    while len(vectors) & (len(vectors) - 1):
        vectors = vectors + [ir.Constant(vectors[0].type, None)]
    while len(vectors) > 1:
        width = vectors[0].type.count
        mask = ir.Constant(ir.VectorType(I32, 2 * width), list(range(2 * width)))
        vectors = [b.shuffle_vector(vectors[i], vectors[i + 1], mask)
                   for i in range(0, len(vectors), 2)]
    return vectors[0]


def _pick(b: ir.IRBuilder, vector: ir.Value, indices) -> ir.Value:
    """The lanes ``indices`` of ``vector``, as a vector."""
    mask = ir.Constant(ir.VectorType(I32, len(indices)), [int(i) for i in indices])
    return b.shuffle_vector(vector, ir.Constant(vector.type, ir.Undefined), mask)


def _range_mask(b: ir.IRBuilder, lo: ir.Value, hi: ir.Value, width: int) -> ir.Value:
    """Lanes ``l`` of a ``width``-lane mask with ``lo <= l < hi`` (i64 bounds)."""
    index = ir.Constant(ir.VectorType(I32, width), list(range(width)))

    def lanes_of(value):
        return splat(b, b.trunc(smin(b, smax(b, value, const_i64(0)), const_i64(width)), I32),
                     width)
    return b.and_(b.icmp_signed(">=", index, lanes_of(lo)), b.icmp_signed("<", index, lanes_of(hi)))


def _tile_row(kb, item: ir.Value, th: int, channels: int):
    """Work item ``item`` of a transform, one tile row of one channel plane: (tile row,
    plane = n * channels + channel, n, channel)."""
    b = kb.b
    plane = b.sdiv(item, const_i64(th))
    return (b.srem(item, const_i64(th)), plane, b.sdiv(plane, const_i64(channels)),
            b.srem(plane, const_i64(channels)))


def _input_transform(kb, geo, x_slot: int, work_slot: int, th: int, tw: int) -> None:
    """Kernel 1: ``V[n, p, c, t] = (B^T d B)[p]`` for every tile ``t`` of every channel."""
    L = lanes()
    vt = vec_type(L)
    window_vectors = -(-(TILE * L + WINDOW - TILE) // L)
    b = kb.b
    x, work = kb.buffer(x_slot), kb.buffer(work_slot)
    tiles = th * tw
    begin, end = kb.thread_share(geo.n * geo.c * th)
    with kb.loop(begin, end, name="row") as item:
        i, plane, n, c = _tile_row(kb, item, th, geo.c)
        plane_base = b.gep(x, [b.mul(plane, const_i64(geo.h * geo.w))], source_etype=F32)
        with kb.loop(0, -(-tw // L), name="chunk") as chunk:
            j0 = b.mul(chunk, const_i64(L))
            first_col = b.sub(b.mul(j0, const_i64(TILE)), const_i64(geo.pl))
            d = []
            for a in range(WINDOW):
                r = b.add(b.mul(i, const_i64(TILE)), const_i64(a - geo.pt))
                inside = b.icmp_unsigned("<", r, const_i64(geo.h))
                safe_r = b.select(inside, r, const_i64(0))
                row_base = b.gep(plane_base, [b.mul(safe_r, const_i64(geo.w))],
                                 source_etype=F32)
                vectors = []
                for v in range(window_vectors):
                    start = b.add(first_col, const_i64(v * L))
                    hi = b.select(inside, b.sub(const_i64(geo.w), start), const_i64(0))
                    mask = _range_mask(b, b.neg(start), hi, L)
                    pointer = b.gep(row_base, [start], source_etype=F32)
                    vectors.append(masked_load(b, kb.module, pointer, mask, vt))
                row = _concat(b, vectors)
                d.append([_pick(b, row, [TILE * lane + col for lane in range(L)])
                          for col in range(WINDOW)])
            # rows: t = B^T d (per column), then V = t B (per row)
            t = [_combine(b, B_T, [d[a][col] for a in range(WINDOW)])
                 for col in range(WINDOW)]                       # t[col][row']
            count = smin(b, const_i64(L), b.sub(const_i64(tw), j0))
            mask = lane_mask(b, count, L)
            tile0 = b.add(b.mul(i, const_i64(tw)), j0)
            for row_out in range(WINDOW):
                values = _combine(b, B_T, [t[col][row_out] for col in range(WINDOW)])
                for col_out, value in enumerate(values):
                    p = row_out * WINDOW + col_out
                    offset = b.add(b.mul(b.add(b.mul(b.add(b.mul(n, const_i64(POINTS)),
                                                           const_i64(p)),
                                                     const_i64(geo.c)), c),
                                         const_i64(tiles)), tile0)
                    masked_store(b, kb.module, value, kb.element(work, offset, F32), mask)


def _products(program, kb, geo, mr: int, a_slot: int, b_scratch: int, work_slot: int,
              v_size: int, tiles: int) -> None:
    """Kernel 2: ``M[n, p] = U[p] @ V[n, p]``, M after V in the workspace (U packed by
    :func:`pack_a_by_k_block`, one point after the other)."""
    per_point = -(-geo.m // mr) * mr * geo.c
    b = kb.b
    work, a_base = kb.buffer(work_slot), kb.buffer(a_slot)

    def a_ptr(kb_, batch, mt, k0):
        point = b.srem(batch, const_i64(POINTS))
        offset = b.add(b.mul(point, const_i64(per_point)),
                       a_block_offset(b, geo.m, mr, geo.c, mt, k0))
        return kb.element(a_base, offset, F32)

    def c_info(kb_, batch):
        offset = b.add(const_i64(v_size), b.mul(batch, const_i64(geo.m * tiles)))
        return kb.element(work, offset, F32), {}, const_i64(0)

    def b_pack(kb_, batch, k0, kc, col0, ncols, dest, stride):
        def row(kk):
            channel = b.add(b.mul(batch, const_i64(geo.c)), b.add(k0, kk))
            return kb.element(work, b.add(b.mul(channel, const_i64(tiles)), col0), F32)
        pack_rows(kb_, row, kc, ncols, dest, stride)

    plan = GemmPlan(m=geo.m, n=tiles, k=geo.c, batches=geo.n * POINTS, mr=mr, a_ptr=a_ptr,
                    c_info=c_info, epilogue=Epilogue((geo.n * POINTS, geo.m, tiles), 1, [2]),
                    b_pack=b_pack, b_scratch=b_scratch)
    emit_gemm(program, kb, plan, work)


def _output_transform(kb, geo, out_slot: int, work_slot: int, v_size: int, th: int, tw: int,
                      epi: Epilogue) -> None:
    """Kernel 3: each tile's ``A^T M A`` into the output, then the epilogue."""
    L = lanes()
    vt = vec_type(L)
    b = kb.b
    out, work = kb.buffer(out_slot), kb.buffer(work_slot)
    epi.bind(kb)
    tiles = th * tw
    # output column TILE * lane + col of a row segment comes from lane ``lane`` of Y[col]
    interleave = [(q % TILE) * L + q // TILE for q in range(TILE * L)]
    begin, end = kb.thread_share(geo.n * geo.m * th)
    with kb.loop(begin, end, name="row") as item:
        i, plane, n, m = _tile_row(kb, item, th, geo.m)
        with kb.loop(0, -(-tw // L), name="chunk") as chunk:
            j0 = b.mul(chunk, const_i64(L))
            count = smin(b, const_i64(L), b.sub(const_i64(tw), j0))
            mask = lane_mask(b, count, L)
            tile0 = b.add(b.mul(i, const_i64(tw)), j0)
            points = []
            for p in range(POINTS):
                offset = b.add(const_i64(v_size), b.add(b.mul(b.add(b.mul(
                    b.add(b.mul(n, const_i64(POINTS)), const_i64(p)), const_i64(geo.m)), m),
                    const_i64(tiles)), tile0))
                points.append(masked_load(b, kb.module, kb.element(work, offset, F32), mask,
                                          vt))
            # s = A^T X (per column), then Y = s A (per row)
            s = [_combine(b, A_T, [points[r * WINDOW + col] for r in range(WINDOW)])
                 for col in range(WINDOW)]                        # s[col][row]
            col0 = b.mul(j0, const_i64(TILE))
            width = smin(b, const_i64(TILE * L), b.sub(const_i64(geo.ow), col0))
            for row in range(TILE):
                y = _combine(b, A_T, [s[col][row] for col in range(WINDOW)])
                oh = b.add(b.mul(i, const_i64(TILE)), const_i64(row))
                with b.if_then(b.icmp_signed("<", oh, const_i64(geo.oh))):
                    segment = _pick(b, _concat(b, y), interleave)
                    flat = b.add(b.mul(oh, const_i64(geo.ow)), col0)
                    base = b.add(b.mul(plane, const_i64(geo.oh * geo.ow)), flat)
                    for v in range(TILE):
                        part = _pick(b, segment, range(v * L, (v + 1) * L))
                        store_mask = lane_mask(b, b.sub(width, const_i64(v * L)), L)
                        masked_store(b, kb.module, part,
                                     kb.element(out, b.add(base, const_i64(v * L)), F32),
                                     store_mask)
                    epi.apply_tile(kb, out, {0: n}, m, const_i64(1), flat, width, L, TILE * L)


__all__ = ["emit_winograd", "transform_weights", "winograd_fits"]
