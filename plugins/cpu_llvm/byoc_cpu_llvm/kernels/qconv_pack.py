"""Vectorized im2col packing for the integer convolutions of :mod:`.qconv`: a block of NB
output columns of one (image, group) into the ``[K/4][NB][4]`` bytes the int8 product driver
(:mod:`.int8_product`) reads.

Two steps per block, both on 64-byte vectors. First each k row (input channel, kernel tap)
is written as NB contiguous bytes to a per-thread row buffer, then every 4 k rows are
interleaved into the driver's layout, 64 bytes per store. A 1x1, stride-1, unpadded
convolution skips the first step: its k rows are the input's channel rows. So does a shifted
one (stride 1, as many output as input columns: ResNet's 3x3 layers): its k row is one masked
64-byte load of the channel plane, shifted by the tap's offset, the mask (a compile-time table
per tap and block) putting the zero point in the padding.

Otherwise a k row comes from one of two paths. Window: when the input bytes a block reads
for one tap lie within 128 bytes of a channel plane (small images), it is one masked 128-byte
load of that window, a ``vpermt2b`` with the block's byte indices (a compile-time table, the
same for every tap) and a select with the tap's validity bits (another table) that puts the
zero point in the padding. Segments (large images, or no AVX512-VBMI): per output row in the
block, one masked load of the input run (stride s <= 4: a load of 64 * s bytes and a shuffle
taking every s-th; larger strides: a gather) with the zero point in the padding lanes, and a
masked store.
int8 activations are flipped to unsigned by xor 0x80 on the way; rows past K are zero.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from llvmlite import ir

from byoc_cpu_llvm.codegen import I8, I32, I64, const_i64, smax, smin, splat
from byoc_cpu_llvm.kernels.conv import ConvGeometry, row_segment, tap_masks_constant
from byoc_cpu_llvm.kernels.int8_product import NB
from byoc_cpu_llvm.kernels.microkernel import masked_gather, masked_store
from byoc_cpu_llvm.target import host_target

BYTES = ir.VectorType(I8, NB)
WIDEST_LOADED_STRIDE = 4   # strides past this gather their bytes one by one
WINDOW = 2 * NB            # bytes one vpermt2b picks from
# Use the window and shifted paths where they apply (tests may turn them off to exercise
# the segments).
USE_WINDOW = True
USE_SHIFTED = True


def conv_pack(program, tag: str, geo: ConvGeometry, x_zero: int, x_signed: bool) -> Callable:
    """``pack_b`` for the driver (see :func:`.int8_product.emit_product`) writing the im2col
    columns of one (image, group)."""
    flip = 0x80 if x_signed else 0
    if geo.pointwise:
        return _pointwise_pack(geo, flip)
    k4 = -(-geo.k // 4)
    rows_slot = program.scratch(f"{tag}__qrows", np.int8, k4 * 4 * NB)

    if geo.shifted and USE_SHIFTED:
        return _shifted_pack(program, geo, x_zero, flip)
    tables = window_tables(geo)
    if tables is not None and USE_WINDOW and host_target().has("avx512vbmi"):
        index_slot = program.constant(f"{tag}__qwindex", tables[0])
        valid_slot = program.constant(f"{tag}__qwvalid", tables[1])

        def fill(kb, x, rows, first_channel, c0, ncols):
            _window_rows(kb, geo, x, kb.buffer(index_slot), kb.buffer(valid_slot), rows,
                         first_channel, c0, x_zero, flip)
    else:
        ranges_slot = program.constant(f"{tag}__qowranges", geo.ow_ranges())

        def fill(kb, x, rows, first_channel, c0, ncols):
            _fill_rows(kb, geo, x, kb.buffer(ranges_slot), rows, first_channel, c0, ncols,
                       (x_zero + flip) & 0xFF, flip)

    def pack(kb, x, bi, c0, ncols, dest, k4):
        b = kb.b
        rows = kb.element(kb.buffer(rows_slot), b.mul(kb.tid, const_i64(k4 * 4 * NB)), I8)
        fill(kb, x, rows, _first_channel(kb, geo, bi), c0, ncols)
        with kb.loop(geo.k, k4 * 4, name="pzrow") as kk:
            b.store(ir.Constant(BYTES, None), kb.element(rows, b.mul(kk, const_i64(NB)), I8),
                    align=1)
        interleave_rows(kb, lambda kk: b.load(kb.element(rows, b.mul(kk, const_i64(NB)), I8),
                                              typ=BYTES, align=1), dest, k4)
    return pack


def interleave_rows(kb, row: Callable[[ir.Value], ir.Value], dest: ir.Value, k4: int) -> None:
    """``dest[q][j][t] = row(4q + t)[j]`` for q < k4, j < NB: the driver's layout from NB-byte
    rows (``row(kk)`` emits the load of k row ``kk`` as a ``<NB x i8>``).

    Sixteen shuffles per 4 rows, each a single instruction: bytes then 16-bit pairs unpacked
    within 128-bit lanes (lane L of the four results holds columns 16L..16L+15, four at a
    time), then a 4 x 4 transpose of those lanes. Written as one 256-byte permutation, LLVM
    had made three times as many 128-bit shuffles of it."""
    b = kb.b
    with kb.loop(0, k4, name="ilv") as q:
        a, c, d, e = (row(b.add(b.mul(q, const_i64(4)), const_i64(t))) for t in range(4))
        words = ir.VectorType(ir.IntType(16), NB // 2)
        bytes_lo, bytes_hi = _unpack_masks(NB, 16)
        words_lo, words_hi = _unpack_masks(NB // 2, 8)
        ac = [b.bitcast(b.shuffle_vector(a, c, mask), words) for mask in (bytes_lo, bytes_hi)]
        de = [b.bitcast(b.shuffle_vector(d, e, mask), words) for mask in (bytes_lo, bytes_hi)]
        quads = ir.VectorType(I64, NB // 8)
        # x[i]: lane L holds columns 16L + 4i .. 16L + 4i + 3, rows t = 0..3 each
        x = [b.bitcast(b.shuffle_vector(ac[h], de[h], mask), quads)
             for h in range(2) for mask in (words_lo, words_hi)]
        halves = [b.shuffle_vector(x[i], x[i + 1], _lanes([0, 1, 4, 5]))
                  for i in (0, 2)] + [b.shuffle_vector(x[i], x[i + 1], _lanes([2, 3, 6, 7]))
                                      for i in (0, 2)]
        out = kb.element(dest, b.mul(q, const_i64(NB * 4)), I8)
        for part, (first, second, picks) in enumerate((
                (halves[0], halves[1], [0, 2, 4, 6]), (halves[0], halves[1], [1, 3, 5, 7]),
                (halves[2], halves[3], [0, 2, 4, 6]), (halves[2], halves[3], [1, 3, 5, 7]))):
            value = b.shuffle_vector(first, second, _lanes(picks))
            b.store(b.bitcast(value, BYTES), kb.element(out, const_i64(part * NB), I8),
                    align=1)


def _unpack_masks(elements: int, per_lane: int) -> tuple[ir.Constant, ir.Constant]:
    """The shuffle masks of x86's unpack low / high: elements of two vectors interleaved
    within each 128-bit lane (``per_lane`` elements a lane)."""
    low, high = [], []
    for base in range(0, elements, per_lane):
        for i in range(per_lane // 2):
            low += [base + i, elements + base + i]
            high += [base + per_lane // 2 + i, elements + base + per_lane // 2 + i]
    return (ir.Constant(ir.VectorType(I32, elements), low),
            ir.Constant(ir.VectorType(I32, elements), high))


def _lanes(picks: list[int]) -> ir.Constant:
    """A shuffle of two <8 x i64> taking the 128-bit lanes ``picks`` (0-3 the first's, 4-7
    the second's)."""
    return ir.Constant(ir.VectorType(I32, 8), [2 * p + i for p in picks for i in (0, 1)])


def _pointwise_pack(geo: ConvGeometry, flip: int) -> Callable:
    def pack(kb, x, bi, c0, ncols, dest, k4):
        b = kb.b
        first = b.add(b.mul(_first_channel(kb, geo, bi), const_i64(geo.cols)), c0)
        cols_ok = _lanes_below(b, ncols, NB)

        def row(kk):
            inside = b.icmp_signed("<", kk, const_i64(geo.k))
            mask = b.and_(cols_ok, splat(b, inside, NB))
            at = b.add(first, b.mul(kk, const_i64(geo.cols)))
            value = masked_load_bytes(kb, b.gep(x, [at], source_etype=I8), mask,
                                 ir.Constant(BYTES, None))
            if flip:
                value = b.select(inside, b.xor(value, _bytes(flip, NB)),
                                 ir.Constant(BYTES, None))
            return value
        interleave_rows(kb, row, dest, k4)
    return pack


def _shifted_pack(program, geo: ConvGeometry, x_zero: int, flip: int) -> Callable:
    """``pack_b`` for a :attr:`~.conv.ConvGeometry.shifted` convolution (stride 1, as many
    output as input columns): k row (c, kh, kw) of a block is the block's NB bytes of plane c
    shifted by ``(kh * dh - pt) * W + kw * dw - pl``, one masked load whose mask (a
    compile-time table per tap and block, as the float convolutions have it) puts the zero
    point in the padding. The rows go straight to the interleave, without a row buffer."""
    vectors = -(-geo.cols // NB)
    masks_slot = tap_masks_constant(program, geo, NB, vectors)
    taps = geo.kh * geo.kw
    pad = (x_zero + flip) & 0xFF
    mask_t = ir.VectorType(ir.IntType(1), NB)

    def pack(kb, x, bi, c0, ncols, dest, k4):
        b = kb.b
        first = _first_channel(kb, geo, bi)
        masks = kb.buffer(masks_slot)
        block = b.sdiv(c0, const_i64(NB))

        def row(kk):
            inside = b.icmp_signed("<", kk, const_i64(geo.k))
            k = b.select(inside, kk, const_i64(0))
            tap = b.srem(k, const_i64(taps))
            shift = geo.tap_shift(b, tap)
            plane = b.mul(b.add(first, b.sdiv(k, const_i64(taps))), const_i64(geo.h * geo.w))
            bits = kb.load(masks, b.add(b.mul(tap, const_i64(vectors)), block), I64)
            mask = b.and_(b.bitcast(bits, mask_t), splat(b, inside, NB))
            at = b.add(b.add(plane, c0), shift)
            value = masked_load_bytes(kb, b.gep(x, [at], source_etype=I8), mask,
                                      _bytes(pad ^ flip, NB))
            if flip:
                value = b.xor(value, _bytes(flip, NB))
            return b.select(inside, value, ir.Constant(BYTES, None))
        interleave_rows(kb, row, dest, k4)
    return pack


def window_tables(geo: ConvGeometry) -> tuple[np.ndarray, np.ndarray] | None:
    """For the window path: per column block, the byte index of each column in its window
    (int8 [blocks * NB]) and, per kernel tap, the columns whose tap is inside the input
    (uint64 bit masks [blocks * taps]); None when some block's window exceeds WINDOW bytes.
    A block's window for tap (kh, kw) starts at input row ``oh_first * sh - pt + kh * dh``,
    column ``kw * dw - pl``, where ``oh_first`` is the block's first output row."""
    blocks = -(-geo.cols // NB)
    cols = np.arange(blocks * NB)
    oh, ow = cols // geo.ow, cols % geo.ow
    oh_first = (cols // NB * NB) // geo.ow
    index = (oh - oh_first) * geo.sh * geo.w + ow * geo.sw
    inside = cols < geo.cols
    if index[inside].max() >= WINDOW:
        return None
    valid = np.zeros((blocks, geo.kh * geo.kw), np.uint64)
    weights = np.uint64(1) << np.arange(NB, dtype=np.uint64)
    for kh in range(geo.kh):
        ih = oh * geo.sh - geo.pt + kh * geo.dh
        for kw in range(geo.kw):
            iw = ow * geo.sw - geo.pl + kw * geo.dw
            ok = inside & (ih >= 0) & (ih < geo.h) & (iw >= 0) & (iw < geo.w)
            valid[:, kh * geo.kw + kw] = (ok.reshape(blocks, NB) * weights).sum(
                axis=1, dtype=np.uint64)
    return np.where(inside, index, 0).astype(np.int8), valid.ravel()


def _window_rows(kb, geo: ConvGeometry, x, index_table, valid_table, rows, first_channel, c0,
                 x_zero: int, flip: int) -> None:
    b = kb.b
    taps = geo.kh * geo.kw
    plane_size = geo.h * geo.w
    block = b.sdiv(c0, const_i64(NB))
    index = b.load(kb.element(index_table, c0, I8), typ=BYTES, align=1)
    oh_first = b.sdiv(c0, const_i64(geo.ow))
    top = b.sub(b.mul(oh_first, const_i64(geo.sh)), const_i64(geo.pt))
    pad = _bytes(x_zero, NB)
    wide = ir.VectorType(I8, WINDOW)
    halves = [ir.Constant(ir.VectorType(I32, NB), list(range(h * NB, (h + 1) * NB)))
              for h in range(2)]
    with kb.loop(0, geo.k, name="pk") as kk:
        c = b.sdiv(kk, const_i64(taps))
        tap = b.srem(kk, const_i64(taps))
        kh = b.sdiv(tap, const_i64(geo.kw))
        kw = b.srem(tap, const_i64(geo.kw))
        # The window's first byte, relative to the channel plane.
        start = b.add(b.mul(b.add(top, b.mul(kh, const_i64(geo.dh))), const_i64(geo.w)),
                      b.sub(b.mul(kw, const_i64(geo.dw)), const_i64(geo.pl)))
        plane = b.mul(b.add(first_channel, c), const_i64(plane_size))
        in_plane = _bit_range(b, b.sub(const_i64(0), start),
                              b.sub(const_i64(plane_size), start), WINDOW)
        window = masked_load_bytes(kb, b.gep(x, [b.add(plane, start)], source_etype=I8), in_plane,
                              ir.Constant(wide, None))
        picked = _permute2(kb, b.shuffle_vector(window, window, halves[0]), index,
                           b.shuffle_vector(window, window, halves[1]))
        valid = kb.load(valid_table, b.add(b.mul(block, const_i64(taps)), tap), I64)
        value = b.select(b.bitcast(valid, ir.VectorType(ir.IntType(1), NB)), picked, pad)
        if flip:
            value = b.xor(value, _bytes(flip, NB))
        b.store(value, kb.element(rows, b.mul(kk, const_i64(NB)), I8), align=1)


def _permute2(kb, low: ir.Value, index: ir.Value, high: ir.Value) -> ir.Value:
    """``vpermt2b``: lane j takes byte ``index[j] & 127`` of ``low ++ high``."""
    name = "llvm.x86.avx512.vpermi2var.qi.512"
    fn = kb.module.globals.get(name) or ir.Function(
        kb.module, ir.FunctionType(BYTES, [BYTES, BYTES, BYTES]), name)
    return kb.b.call(fn, [low, index, high])


def _bit_range(b: ir.IRBuilder, lo: ir.Value, hi: ir.Value, lanes: int) -> ir.Value:
    """``<lanes x i1>`` with lanes [lo, hi) set (either bound may lie outside [0, lanes])."""
    word = ir.IntType(lanes)

    def below(count):
        count = smin(b, smax(b, count, const_i64(0)), const_i64(lanes))
        amount = smin(b, count, const_i64(lanes - 1))
        if lanes > 64:
            amount = b.zext(amount, word)
        elif lanes < 64:
            amount = b.trunc(amount, word)
        shifted = b.shl(ir.Constant(word, 1), amount)
        ones = b.sub(shifted, ir.Constant(word, 1))
        return b.select(b.icmp_signed(">=", count, const_i64(lanes)),
                        ir.Constant(word, -1), ones)
    bits = b.and_(below(hi), b.not_(below(lo)))
    return b.bitcast(bits, ir.VectorType(ir.IntType(1), lanes))


def _fill_rows(kb, geo: ConvGeometry, x, ranges, rows, first_channel, c0, ncols, pad: int,
               flip: int) -> None:
    """Rows [0, K) of the block's im2col matrix (columns [c0, c0 + ncols)) into ``rows``,
    NB bytes each, flipped and with ``pad`` in the padding."""
    b = kb.b
    taps = geo.kh * geo.kw
    stride = geo.sw
    end = b.add(c0, ncols)
    ow_n = const_i64(geo.ow)
    oh_first = b.sdiv(c0, ow_n)
    oh_end = b.add(b.sdiv(b.sub(end, const_i64(1)), ow_n), const_i64(1))
    iota = ir.Constant(ir.VectorType(I64, NB), list(range(NB)))
    with kb.loop(0, geo.k, name="pk") as kk:
        c = b.sdiv(kk, const_i64(taps))
        tap = b.srem(kk, const_i64(taps))
        kh = b.sdiv(tap, const_i64(geo.kw))
        kw = b.srem(tap, const_i64(geo.kw))
        plane = b.mul(b.add(first_channel, c), const_i64(geo.h * geo.w))
        lo_kw = kb.load(ranges, b.mul(kw, const_i64(2)), I64)
        hi_kw = kb.load(ranges, b.add(b.mul(kw, const_i64(2)), const_i64(1)), I64)
        off_w = b.sub(b.mul(kw, const_i64(geo.dw)), const_i64(geo.pl))
        off_h = b.sub(b.mul(kh, const_i64(geo.dh)), const_i64(geo.pt))
        row = b.mul(kk, const_i64(NB))
        with kb.loop(oh_first, oh_end, name="poh") as oh:
            start, seg_lo, seg_hi, ih, lo, hi = row_segment(b, geo, oh, c0, end, lo_kw, hi_kw,
                                                            off_h)
            # Lane j is output column seg_lo + j of this output row; at most NB of them.
            first_in = b.add(b.add(plane, b.add(b.mul(ih, const_i64(geo.w)), off_w)),
                             b.mul(seg_lo, const_i64(stride)))
            run_lo, run_hi = b.sub(lo, seg_lo), b.sub(hi, seg_lo)
            if stride <= WIDEST_LOADED_STRIDE:
                wide = ir.VectorType(I8, NB * stride)
                # Bytes [run_lo * s, (run_hi - 1) * s] hold the run's values (every s-th).
                mask = _bit_range(b, b.mul(run_lo, const_i64(stride)), b.add(b.mul(b.sub(
                    run_hi, const_i64(1)), const_i64(stride)), const_i64(1)), NB * stride)
                value = masked_load_bytes(kb, b.gep(x, [first_in], source_etype=I8), mask,
                                     _bytes(pad ^ flip, NB * stride))
                if stride > 1:
                    value = b.shuffle_vector(value, ir.Constant(wide, None), ir.Constant(
                        ir.VectorType(I32, NB), [j * stride for j in range(NB)]))
            else:
                mask = b.and_(b.icmp_signed(">=", iota, splat(b, run_lo, NB)),
                              b.icmp_signed("<", iota, splat(b, run_hi, NB)))
                offsets = b.mul(iota, splat(b, const_i64(stride), NB))
                base = b.ptrtoint(b.gep(x, [first_in], source_etype=I8), I64)
                pointers = b.inttoptr(b.add(splat(b, base, NB), offsets),
                                      ir.VectorType(x.type, NB))
                value = masked_gather(b, kb.module, pointers, mask, _bytes(pad ^ flip, NB), 1)
            if flip:
                value = b.xor(value, _bytes(flip, NB))
            target = kb.element(rows, b.add(row, b.sub(b.add(start, seg_lo), c0)), I8)
            masked_store(b, kb.module, value, target,
                         _bit_range(b, const_i64(0), b.sub(seg_hi, seg_lo), NB), align=1)


def _first_channel(kb, geo: ConvGeometry, bi: ir.Value) -> ir.Value:
    """Index of the first input channel (over all images) of product ``bi`` = (image, group)."""
    b = kb.b
    image = b.sdiv(bi, const_i64(geo.groups))
    group = b.srem(bi, const_i64(geo.groups))
    return b.add(b.mul(image, const_i64(geo.c)), b.mul(group, const_i64(geo.cg)))


def _bytes(value: int, lanes: int) -> ir.Constant:
    return ir.Constant(ir.VectorType(I8, lanes), [value] * lanes)


def _lanes_below(b: ir.IRBuilder, count: ir.Value, lanes: int) -> ir.Value:
    iota = ir.Constant(ir.VectorType(I64, lanes), list(range(lanes)))
    return b.icmp_signed("<", iota, splat(b, count, lanes))


def masked_load_bytes(kb, pointer: ir.Value, mask: ir.Value, passthrough: ir.Value) -> ir.Value:
    """Lanes of ``passthrough.type`` from ``pointer`` where ``mask`` is set (only those are
    read, so the pointer may lie outside the buffer when the mask is empty)."""
    vt = passthrough.type
    name = f"llvm.masked.load.v{vt.count}i8.p0"
    fn = kb.module.globals.get(name) or ir.Function(
        kb.module, ir.FunctionType(vt, [pointer.type, I32, mask.type, vt]), name)
    return kb.b.call(fn, [pointer, ir.Constant(I32, 1), mask, passthrough])


__all__ = ["conv_pack", "interleave_rows", "masked_load_bytes"]
