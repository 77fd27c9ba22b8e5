"""Integer matrix products with few activation rows (a classifier's Gemm on one image):
``x [cols, K] @ W [K, N]`` with constant W, vectorized over the N outputs.

The product driver of :mod:`.int8_product` vectorizes over the activation rows (32 per
micro-tile), so with one row it would compute 32 columns for each one it keeps. Here the
weights are packed by the driver's own :func:`~.int8_product.pack_weights` in tiles of 16
output channels, ``[K/4][16][4]`` signed bytes, so that one 64-byte load holds 4 k values of
16 channels; each k step broadcasts 4 activation bytes (flipped to unsigned like the
driver's) and runs one u8 x s8 dot product (:func:`~.int8_product.dot4`) per tile, on
``TILES`` tiles at once. The per-channel constants, the weight zero point's correction
(with the activation row's byte sum) and the requantization are the driver's (see its
module docstring), so the results are the same bit for bit.
"""

from __future__ import annotations

import numpy as np
from llvmlite import ir

from byoc_cpu_llvm.codegen import F32, I8, I32, const_i64, counted_loop, smin, splat
from byoc_cpu_llvm.kernels.int8_product import (
    LANES,
    VEC,
    IntProduct,
    WeightOperands,
    dot4,
    requantize_lanes,
    store_lanes,
)
from byoc_cpu_llvm.kernels.microkernel import lane_mask
from byoc_cpu_llvm.kernels.qconv_pack import masked_load_bytes

MOST_COLS = 4    # activation rows up to which this path beats the product driver
TILES = 8        # tiles of 16 channels accumulated at once (8 independent dot products)
CHUNK = 64       # bytes per vector when copying an activation row


def emit_vector_product(program, spec: IntProduct, tag: str, x_slot: int,
                        out_slot: int) -> None:
    """The kernel of ``spec`` (one weight group; output element (row r, col c) at
    ``c * col_stride + r``, as :func:`.qmatmul.lower_matrix_product` forms it) for
    ``spec.cols <= MOST_COLS``."""
    kb = program.kernel(tag)
    b = kb.b
    weights = WeightOperands(program, kb, tag, spec, LANES)
    need_xsum, mtiles, k4 = weights.need_xsum, weights.mtiles, weights.k4
    a_base, rowc_base, wz_base, mult_base = weights.packed, weights.rowc, weights.wz, weights.mult
    row_bytes = -(-k4 * 4 // CHUNK) * CHUNK
    scratch = program.scratch(f"{tag}__qvx", np.uint8, row_bytes)
    byte_vec = ir.VectorType(I8, CHUNK)
    flip = 0x80 if spec.x_signed else 0
    x, out = kb.buffer(x_slot), kb.buffer(out_slot)
    row = kb.element(kb.buffer(scratch), b.mul(kb.tid, const_i64(row_bytes)), I8)
    t_begin, t_end = kb.thread_share(mtiles)
    ones = ir.Constant(VEC, [0x01010101] * LANES)

    def tiles_from(first, count: int, col) -> None:
        """Tiles [first, first + count): their k loop and epilogue for activation row col."""
        zeros = [ir.Constant(VEC, None)] * (count + (1 if need_xsum else 0))
        with counted_loop(b, const_i64(0), const_i64(k4), "kq", carried=zeros) as loop:
            q, accs = loop.index, loop.carried
            word = b.load(kb.element(row, b.mul(q, const_i64(4)), I8), typ=I32, align=1)
            x4 = b.bitcast(splat(b, word, LANES), VEC)
            new = []
            for t in range(count):
                tile = b.add(first, const_i64(t))
                at = b.add(b.mul(tile, const_i64(k4 * LANES * 4)), b.mul(q, const_i64(LANES * 4)))
                weights = b.load(kb.element(a_base, at, I8), typ=VEC, align=1)
                new.append(dot4(kb, accs[t], x4, weights))
            if need_xsum:
                new.append(dot4(kb, accs[count], x4, ones))
            loop.next_carried = new
        for t in range(count):
            row0 = b.mul(b.add(first, const_i64(t)), const_i64(LANES))
            total = b.add(accs[t], b.load(kb.element(rowc_base, row0, I32), typ=VEC, align=4))
            if need_xsum:
                wz = b.load(kb.element(wz_base, row0, I32), typ=VEC, align=4)
                total = b.add(total, b.mul(accs[count], wz))
            if mult_base is not None:
                multiplier = b.load(kb.element(mult_base, row0, F32),
                                    typ=ir.VectorType(F32, LANES), align=4)
                total = requantize_lanes(kb, spec, total, multiplier)
            store_lanes(kb, total, out, b.add(b.mul(col, const_i64(spec.col_stride)), row0),
                        smin(b, const_i64(LANES), b.sub(const_i64(spec.rows), row0)))

    with kb.loop(0, spec.cols, name="col") as col:
        # The activation row, flipped, zero past K (so the last k step adds nothing).
        source = kb.element(x, b.mul(col, const_i64(spec.k)), I8)
        with kb.loop(0, row_bytes // CHUNK, name="chunk") as i:
            at = b.mul(i, const_i64(CHUNK))
            inside = lane_mask(b, b.sub(const_i64(spec.k), at), CHUNK)
            value = masked_load_bytes(kb, kb.element(source, at, I8), inside,
                                      ir.Constant(byte_vec, None))
            if flip:
                value = b.select(inside, b.xor(value, ir.Constant(byte_vec, [flip] * CHUNK)),
                                 ir.Constant(byte_vec, None))
            b.store(value, kb.element(row, at, I8), align=1)
        whole = b.add(t_begin, b.mul(b.sdiv(b.sub(t_end, t_begin), const_i64(TILES)),
                                     const_i64(TILES)))
        with kb.loop(t_begin, whole, step=TILES, name="tiles") as first:
            tiles_from(first, TILES, col)
        with kb.loop(whole, t_end, name="tile") as first:
            tiles_from(first, 1, col)
    kb.finish()


__all__ = ["MOST_COLS", "emit_vector_product"]
