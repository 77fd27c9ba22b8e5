"""Float32 depthwise convolutions (one input channel per group, constant weights, NCHW).

Threads split the (image, input channel) planes. Each plane is copied into a per-thread
scratch whose border (zeroed once per thread, never written again) is the padding, wide
enough that every output row reads whole vectors: the inner loops then have no bounds
checks and no masks. Per output channel of the plane (the channel multiplier, usually 1) the
taps' weights are splatted once and stay in registers; the output is computed in tiles of
``ROWS x VECTORS`` vectors of ``lanes`` columns, each tap one load per vector (stride s:
``lanes * s`` floats and a shuffle taking every s-th) and one fused multiply-add into an
accumulator held in a register. Only the last vector of a row is stored with a mask. The
bias and the fused epilogue run on the accumulators before the store when their operands are
one value per channel (bias, Clip bounds); otherwise (a residual Add) on the finished plane
while it is in cache.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from llvmlite import ir

from byoc_cpu_llvm.codegen import F32, I32, const_i64, llvm_type, smin
from byoc_cpu_llvm.kernels.gemm_driver import lanes, panel_width
from byoc_cpu_llvm.kernels.microkernel import lane_mask, masked_load, masked_store, vec_type

if TYPE_CHECKING:
    from byoc_cpu_llvm.kernels.conv import ConvGeometry
    from byoc_cpu_llvm.kernels.epilogue import Epilogue

MOST_TAPS = 64       # the taps are unrolled (larger kernels take conv's row kernel)
TILE_VECTORS = 8     # accumulators per tile


def depthwise_fits(geo: ConvGeometry) -> bool:
    """Whether :func:`emit_depthwise` takes the convolution."""
    return geo.cg == 1 and geo.kh * geo.kw <= MOST_TAPS


class PaddedPlane:
    """The padded plane in scratch: ``rows`` x ``width`` floats, input element (ih, iw) at
    ``(ih + pt) * width + iw + pl``; wide enough for the last vector's widest load."""

    def __init__(self, geo: ConvGeometry, lanes: int):
        vectors = -(-geo.ow // lanes)
        self.rows = max((geo.oh - 1) * geo.sh + (geo.kh - 1) * geo.dh + 1, geo.pt + geo.h)
        reach = vectors * lanes * geo.sw + (geo.kw - 1) * geo.dw
        self.width = max(reach, geo.pl + geo.w)
        self.size = self.rows * self.width
        # Input rows [row_lo, row_hi) land inside the scratch (rows past it are never read).
        self.row_lo = max(0, -geo.pt)
        self.row_hi = min(geo.h, self.rows - geo.pt)
        self.copied = min(geo.w, self.width - geo.pl)


def tile_shape(geo: ConvGeometry, lanes: int) -> tuple[int, int]:
    """(rows, vectors) of an output tile: a row's vectors first, then rows up to
    TILE_VECTORS accumulators (independent FMA chains that hide the FMA latency)."""
    vectors = min(-(-geo.ow // lanes), 4)
    return max(1, min(geo.oh, TILE_VECTORS // vectors)), vectors


def emit_depthwise(program, group, geo: ConvGeometry, epi: Epilogue) -> None:
    """The kernel of a depthwise Conv ``group`` (weights constant, ``epi`` its bias and fused
    nodes)."""
    graph = program.graph
    node = group.head
    tag = node.name or "conv"
    L = lanes()
    taps = geo.kh * geo.kw
    weights = np.asarray(graph.constants[node.inputs[1]], np.float32).reshape(geo.m, taps)
    w_slot = program.constant(f"{tag}__{node.inputs[1]}__dw", weights)
    padded = PaddedPlane(geo, L)
    pad_slot = program.scratch(f"{tag}__dwpad", np.float32, padded.size)
    x_slot, out_slot = program.value(node.inputs[0]), program.value(group.output)

    kb = program.kernel(tag)
    b = kb.b
    x, out, w_base = kb.buffer(x_slot), kb.buffer(out_slot), kb.buffer(w_slot)
    pad = kb.element(kb.buffer(pad_slot), b.mul(kb.tid, const_i64(padded.size)), F32)
    epi.bind(kb)
    _zero(kb, pad, padded.size, L)
    begin, end = kb.thread_share(geo.n * geo.c)
    with kb.loop(begin, end, name="plane") as plane:
        n = b.sdiv(plane, const_i64(geo.c))
        _copy_plane(kb, geo, padded, kb.element(x, b.mul(plane, const_i64(geo.h * geo.w)), F32),
                    pad, L)
        with kb.loop(0, geo.mg, name="mult") as j:
            m = b.add(b.mul(b.srem(plane, const_i64(geo.c)), const_i64(geo.mg)), j)
            tap_weights = [kb.splat(kb.load(w_base, b.add(b.mul(m, const_i64(taps)),
                                                          const_i64(t)), F32), L)
                           for t in range(taps)]
            out_plane = kb.element(out, b.mul(b.add(b.mul(n, const_i64(geo.m)), m),
                                              const_i64(geo.cols)), F32)
            fused = _channel_operands(kb, epi, n, m, L)
            _emit_plane(kb, geo, padded, pad, out_plane, tap_weights, L,
                        lambda acc: epi.run_steps(kb, acc, fused) if fused is not None else acc)
            if fused is None:
                nr = panel_width()
                with kb.loop(0, -(-geo.cols // nr), name="ec") as chunk:
                    col0 = b.mul(chunk, const_i64(nr))
                    cols = smin(b, const_i64(nr), b.sub(const_i64(geo.cols), col0))
                    epi.apply_tile(kb, out, {0: n}, m, const_i64(1), col0, cols, L, nr)
    kb.finish()


def _channel_operands(kb, epi: Epilogue, n, m, L: int) -> dict[str, ir.Value] | None:
    """The epilogue's operands for image ``n``, channel ``m`` as vectors, when each is one
    value per channel (or a scalar): the steps can then run on the accumulators. None when
    some operand varies along the plane (the epilogue then runs on the stored plane)."""
    if epi.empty or any(op.kind != "row" for op in epi.operands.values()):
        return {} if epi.empty else None
    b = kb.b
    values = {}
    for name, op in epi.operands.items():
        offset = b.add(b.mul(n, const_i64(op.strides[0])), b.mul(m, const_i64(op.strides[1])))
        values[name] = kb.splat(kb.load(epi.bases[name], offset, llvm_type(op.dtype)), L)
    return values


def _zero(kb, pad, size: int, L: int) -> None:
    b = kb.b
    zeros = ir.Constant(vec_type(L), None)
    with kb.loop(0, -(-size // L), name="zero") as i:
        at = b.mul(i, const_i64(L))
        masked_store(b, kb.module, zeros, kb.element(pad, at, F32),
                     lane_mask(b, b.sub(const_i64(size), at), L))


def _copy_plane(kb, geo: ConvGeometry, padded: PaddedPlane, source, pad, L: int) -> None:
    """The input plane at ``source`` into the inside of the scratch at ``pad``."""
    b = kb.b
    vt = vec_type(L)
    with kb.loop(padded.row_lo, padded.row_hi, name="copy") as ih:
        src_row = kb.element(source, b.mul(ih, const_i64(geo.w)), F32)
        dst_row = kb.element(pad, b.add(b.mul(b.add(ih, const_i64(geo.pt)),
                                              const_i64(padded.width)), const_i64(geo.pl)), F32)
        with kb.loop(0, -(-padded.copied // L), name="chunk") as q:
            at = b.mul(q, const_i64(L))
            mask = lane_mask(b, b.sub(const_i64(padded.copied), at), L)
            value = masked_load(b, kb.module, kb.element(src_row, at, F32), mask, vt)
            masked_store(b, kb.module, value, kb.element(dst_row, at, F32), mask)


def _emit_plane(kb, geo: ConvGeometry, padded: PaddedPlane, pad, out_plane, tap_weights,
                L: int, finish) -> None:
    """All output rows of one channel: full tiles, then the leftover rows and vectors."""
    rows, vectors = tile_shape(geo, L)
    row_vectors = -(-geo.ow // L)
    full_rows = geo.oh - geo.oh % rows
    full_vectors = row_vectors - row_vectors % vectors
    for row_lo, row_hi, tile_rows in ((0, full_rows, rows), (full_rows, geo.oh, 1)):
        if row_lo == row_hi:
            continue
        for vec_lo, vec_hi, tile_vecs in ((0, full_vectors, vectors),
                                          (full_vectors, row_vectors, 1)):
            if vec_lo == vec_hi:
                continue
            with kb.loop(row_lo, row_hi, step=tile_rows, name="oh") as oh, \
                    kb.loop(vec_lo, vec_hi, step=tile_vecs, name="ov") as v:
                _emit_tile(kb, geo, padded, pad, out_plane, tap_weights, oh, v, tile_rows,
                           tile_vecs, L, finish)


def _emit_tile(kb, geo: ConvGeometry, padded: PaddedPlane, pad, out_plane, tap_weights, oh,
               v, rows: int, vectors: int, L: int, finish) -> None:
    """Output rows [oh, oh + rows) x vectors [v, v + vectors): accumulate every tap in
    registers, apply ``finish`` (the fused epilogue) and store (the row's last vector
    masked)."""
    b = kb.b
    wide = vec_type(L * geo.sw)
    every_sw = ir.Constant(ir.VectorType(I32, L), [i * geo.sw for i in range(L)])
    window = kb.element(pad, b.add(b.mul(b.mul(oh, const_i64(geo.sh)), const_i64(padded.width)),
                                   b.mul(b.mul(v, const_i64(L)), const_i64(geo.sw))), F32)
    acc = [[ir.Constant(vec_type(L), None)] * vectors for _ in range(rows)]
    for t, weight in enumerate(tap_weights):
        kh, kw = divmod(t, geo.kw)
        for r in range(rows):
            for c in range(vectors):
                at = ((r * geo.sh + kh * geo.dh) * padded.width
                      + c * L * geo.sw + kw * geo.dw)
                loaded = b.load(kb.element(window, const_i64(at), F32), typ=wide, align=4)
                if geo.sw > 1:
                    loaded = b.shuffle_vector(loaded, ir.Constant(wide, None), every_sw)
                acc[r][c] = kb.fma(loaded, weight, acc[r][c])
    for c in range(vectors):
        col = b.mul(b.add(v, const_i64(c)), const_i64(L))
        mask = lane_mask(b, b.sub(const_i64(geo.ow), col), L)
        for r in range(rows):
            at = b.add(b.mul(b.add(oh, const_i64(r)), const_i64(geo.ow)), col)
            masked_store(b, kb.module, finish(acc[r][c]), kb.element(out_plane, at, F32),
                         mask)


__all__ = ["depthwise_fits", "emit_depthwise"]
