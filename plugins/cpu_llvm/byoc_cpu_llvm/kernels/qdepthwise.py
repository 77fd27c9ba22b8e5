"""Exact integer depthwise convolutions (one input and one output channel per group, NCHW):
the depthwise layers of QLinearConv, ConvInteger and QDQ Conv groups.

The product driver of :mod:`.int8_product` would run each channel as a 1-row matrix product
with K = taps, packing its im2col columns first; here each (image, channel) plane is computed
directly. The plane is copied into a per-thread scratch surrounded by the input's zero point
(its padding), wide enough that every output row reads whole vectors; int8 activations are
flipped to unsigned on the way (xor 0x80, which moves their zero point by 128). Since the
padding holds the zero point ``z``, ``sum_t (x_t - z) * w'_t = sum_t x_t * w'_t - z * sum_t
w'_t`` with ``w' = w - w_zero``; the last term (with the bias) is one constant per channel
folded at compile time. Then per output row and per 16 output columns:

- dot: when every ``w'`` fits a signed byte and a kernel row's bytes for 16 columns lie
  within 64 (e.g. 3x3 at strides 1 to 3), each group of 4 taps of a kernel row is one
  64-byte load, one byte shuffle that lines up the 4 taps of each column (``vpermb``) and
  one u8 x s8 dot product (:func:`.int8_product.dot4`, ``vpdpbusd`` with AVX512-VNNI);
- multiply: otherwise each tap is one load (stride s <= 4: 16 * s bytes and a shuffle
  taking every s-th) widened to int32 and multiplied by ``w'``.

Everything is int32, exact modulo 2**32 like the driver's (see its module docstring); the
requantization is the driver's own (:func:`.int8_product.requantize_lanes`).
"""

from __future__ import annotations

import numpy as np
from llvmlite import ir

from byoc_cpu_llvm.codegen import F32, I8, I32, const_i64, smin, splat
from byoc_cpu_llvm.kernels.conv import ConvGeometry
from byoc_cpu_llvm.kernels.int8_product import (
    LANES,
    VEC,
    IntProduct,
    dot4,
    requantize_lanes,
    store_lanes,
)
from byoc_cpu_llvm.kernels.microkernel import lane_mask, masked_store
from byoc_cpu_llvm.kernels.qconv_pack import masked_load_bytes

WIDEST_STRIDE = 4   # a tap's 16 columns are one load of 16 * stride bytes
MOST_TAPS = 64      # the taps are unrolled
CHUNK = 64          # bytes per vector: filling and copying the padded plane, the dot path's loads
# Use the dot path where it applies (tests may turn it off to exercise the multiply path).
USE_DOT = True


def depthwise_fits(geo: ConvGeometry) -> bool:
    """Whether :func:`emit_depthwise` takes the convolution."""
    return (geo.groups == geo.c == geo.m and geo.sw <= WIDEST_STRIDE
            and geo.kh * geo.kw <= MOST_TAPS)


class _Padded:
    """The padded plane in scratch: ``rows`` x ``width`` bytes; input element (ih, iw) at
    ``(ih + pt) * width + iw + pl``. Wide enough for the last 16-column vector's taps, and
    followed by CHUNK bytes so that a 64-byte load at any tap stays inside the scratch."""

    def __init__(self, geo: ConvGeometry):
        vectors = -(-geo.ow // LANES)
        self.rows = (geo.oh - 1) * geo.sh + (geo.kh - 1) * geo.dh + 1
        reach = (vectors * LANES - 1) * geo.sw + (geo.kw - 1) * geo.dw + 1
        self.width = max(reach, geo.pl + geo.w)
        self.filled = -(-self.rows * self.width // CHUNK) * CHUNK
        self.size = self.filled + CHUNK
        # Input rows [row_lo, row_hi) land inside the scratch (rows past it are never read).
        self.row_lo = max(0, -geo.pt)
        self.row_hi = min(geo.h, self.rows - geo.pt)


def _shifted_weights(spec: IntProduct, geo: ConvGeometry) -> np.ndarray:
    """``w - w_zero`` per channel and tap (int64 [m, kh, kw])."""
    w = spec.weights.reshape(geo.m, geo.kh, geo.kw).astype(np.int64)
    return w - spec.w_zero.astype(np.int64).reshape(geo.m, 1, 1)


def _dot_fits(shifted: np.ndarray, geo: ConvGeometry) -> bool:
    return (USE_DOT and shifted.min() >= -128 and shifted.max() <= 127
            and (LANES - 1) * geo.sw + min(geo.kw - 1, 3) * geo.dw < CHUNK)


def _dot_weights(shifted: np.ndarray) -> np.ndarray:
    """Per channel, kernel row and group of 4 taps of that row: the 4 weights as the bytes of
    one int32 (unused taps 0): int32 [m, kh, groups]."""
    m, kh, kw = shifted.shape
    groups = -(-kw // 4)
    grouped = np.zeros((m, kh, groups * 4), np.int8)
    grouped[:, :, :kw] = shifted
    return np.ascontiguousarray(grouped).view(np.int32).reshape(m, kh * groups)


def emit_depthwise(program, spec: IntProduct, geo: ConvGeometry, tag: str, x_slot: int,
                   out_slot: int) -> None:
    """The kernel of a depthwise ``spec`` (as :func:`.qconv.lower_conv_product` forms it:
    one weight row per channel, ``x_zero`` as given, not flipped)."""
    shifted = _shifted_weights(spec, geo)
    flip = 0x80 if spec.x_signed else 0
    zero = spec.x_zero + (128 if spec.x_signed else 0)
    folded = -zero * shifted.reshape(geo.m, -1).sum(axis=1)
    if spec.bias is not None:
        folded = folded + spec.bias.astype(np.int64)
    use_dot = _dot_fits(shifted, geo)
    weights = (_dot_weights(shifted) if use_dot
               else shifted.astype(np.int32).reshape(geo.m, -1))
    padded = _Padded(geo)
    w_slot = program.constant(f"{tag}__qdww", weights.ravel())
    c_slot = program.constant(f"{tag}__qdwc", _wrap32(folded))
    m_slot = (program.constant(f"{tag}__qdwm", np.asarray(spec.multiplier, np.float32).ravel())
              if spec.multiplier is not None else None)
    scratch = program.scratch(f"{tag}__qdwpad", np.uint8, padded.size)
    vectors = -(-geo.ow // LANES)

    kb = program.kernel(tag)
    b = kb.b
    x, out = kb.buffer(x_slot), kb.buffer(out_slot)
    w_base, c_base = kb.buffer(w_slot), kb.buffer(c_slot)
    m_base = kb.buffer(m_slot) if m_slot is not None else None
    pad = kb.element(kb.buffer(scratch), b.mul(kb.tid, const_i64(padded.size)), I8)
    begin, end = kb.thread_share(geo.n * geo.c)
    with kb.loop(begin, end, name="plane") as plane:
        channel = b.srem(plane, const_i64(geo.c))
        _copy_plane(kb, geo, padded, kb.element(x, b.mul(plane, const_i64(geo.h * geo.w)), I8),
                    pad, zero & 0xFF, flip)
        per_channel = weights.shape[1]
        tap_weights = [splat(b, kb.load(w_base, b.add(b.mul(channel, const_i64(per_channel)),
                                                      const_i64(t)), I32), LANES)
                       for t in range(per_channel)]
        constant = splat(b, kb.load(c_base, channel, I32), LANES)
        multiplier = (splat(b, kb.load(m_base, channel, F32), LANES)
                      if m_base is not None else None)
        out_plane = b.mul(plane, const_i64(geo.oh * geo.ow))
        taps = _dot_taps if use_dot else _multiply_taps
        with kb.loop(0, geo.oh, name="oh") as oh:
            row = kb.element(pad, b.mul(b.mul(oh, const_i64(geo.sh)),
                                        const_i64(padded.width)), I8)
            out_row = b.add(out_plane, b.mul(oh, const_i64(geo.ow)))
            with kb.loop(0, vectors, name="ow") as v:
                col = b.mul(v, const_i64(LANES))
                window = kb.element(row, b.mul(col, const_i64(geo.sw)), I8)
                total = taps(kb, geo, padded.width, window, tap_weights, constant)
                value = (requantize_lanes(kb, spec, total, multiplier)
                         if multiplier is not None else total)
                store_lanes(kb, value, out, b.add(out_row, col),
                            smin(b, const_i64(LANES), b.sub(const_i64(geo.ow), col)))
    kb.finish()


def _wrap32(values: np.ndarray) -> np.ndarray:
    return ((values.astype(np.int64) + 2 ** 31) % 2 ** 32 - 2 ** 31).astype(np.int32)


def _copy_plane(kb, geo: ConvGeometry, padded: _Padded, source, pad, zero: int,
                flip: int) -> None:
    """The input plane at ``source`` into the scratch at ``pad``, flipped, with ``zero``
    around it."""
    b = kb.b
    byte_vec = ir.VectorType(I8, CHUNK)
    zero_bytes = ir.Constant(byte_vec, [zero] * CHUNK)
    with kb.loop(0, padded.filled // CHUNK, name="fill") as i:
        b.store(zero_bytes, kb.element(pad, b.mul(i, const_i64(CHUNK)), I8), align=1)
    copied = min(geo.w, padded.width - geo.pl)
    with kb.loop(padded.row_lo, padded.row_hi, name="copy") as ih:
        src_row = kb.element(source, b.mul(ih, const_i64(geo.w)), I8)
        dst_row = kb.element(pad, b.add(b.mul(b.add(ih, const_i64(geo.pt)),
                                              const_i64(padded.width)), const_i64(geo.pl)), I8)
        with kb.loop(0, -(-copied // CHUNK), name="chunk") as q:
            at = b.mul(q, const_i64(CHUNK))
            mask = lane_mask(b, b.sub(const_i64(copied), at), CHUNK)
            value = masked_load_bytes(kb, kb.element(src_row, at, I8), mask,
                                      ir.Constant(byte_vec, None))
            if flip:
                value = b.xor(value, ir.Constant(byte_vec, [flip] * CHUNK))
            masked_store(b, kb.module, value, kb.element(dst_row, at, I8), mask, align=1)


def _dot_taps(kb, geo: ConvGeometry, width: int, window, tap_weights, total) -> ir.Value:
    """``total`` plus the 16 columns' taps: per kernel row and group of 4 taps, one 64-byte
    load, a shuffle putting tap t of column j at byte 4j + t, and a dot product."""
    b = kb.b
    groups = -(-geo.kw // 4)
    byte_vec = ir.VectorType(I8, CHUNK)
    for kh in range(geo.kh):
        for g in range(groups):
            at = const_i64(kh * geo.dh * width + 4 * g * geo.dw)
            loaded = b.load(kb.element(window, at, I8), typ=byte_vec, align=1)
            order = [j * geo.sw + min(t, geo.kw - 1 - 4 * g) * geo.dw
                     for j in range(LANES) for t in range(4)]
            lined_up = b.shuffle_vector(loaded, ir.Constant(byte_vec, None),
                                        ir.Constant(ir.VectorType(I32, CHUNK), order))
            total = dot4(kb, total, b.bitcast(lined_up, VEC), tap_weights[kh * groups + g])
    return total


def _multiply_taps(kb, geo: ConvGeometry, width: int, window, tap_weights,
                   total) -> ir.Value:
    """``total`` plus the 16 columns' taps, one widening load and multiply per tap."""
    b = kb.b
    for t in range(geo.kh * geo.kw):
        kh, kw = divmod(t, geo.kw)
        at = const_i64(kh * geo.dh * width + kw * geo.dw)
        loaded = b.load(kb.element(window, at, I8), typ=ir.VectorType(I8, LANES * geo.sw),
                        align=1)
        if geo.sw > 1:
            loaded = b.shuffle_vector(loaded, ir.Constant(loaded.type, None), ir.Constant(
                ir.VectorType(I32, LANES), [j * geo.sw for j in range(LANES)]))
        total = b.add(total, b.mul(b.zext(loaded, VEC), tap_weights[t]))
    return total


__all__ = ["depthwise_fits", "emit_depthwise"]
