"""The int8 product driver: exact integer matrix products on u8 x s8 byte dot products (x86's
AVX512 VNNI ``vpdpbusd`` when the host has it), shared by QLinearMatMul and MatMulInteger
(:mod:`.qmatmul`), QLinearConv and ConvInteger (:mod:`.qconv`) and the QDQ groups
(:mod:`byoc_cpu_llvm.qdq_groups`). Depthwise convolutions (:mod:`.qdepthwise`) and products
with few activation rows (:mod:`.qgemv`) have kernels of their own built from its parts:
the weight packing (:class:`WeightOperands`), :func:`dot4`, :func:`requantize_lanes` and
:func:`store_lanes`. It also holds what the exact direct paths of those ops share (run-time
operands or parameters): :class:`DirectKernel` and :func:`emit_requantize`.

Every integer kernel computes, per output channel ``r`` (a row of the constant weights) and
output column ``c`` (a spatial position, or a row of the activations),
``acc = sum_k (x[k, c] - x_zero) * (w[r, k] - w_zero[r])`` exactly, then either stores ``acc``
(int32: ConvInteger, MatMulInteger) or requantizes ``acc + bias[r]`` like
``quant.requantize``: float32 product with the per-channel multiplier, round half to even,
plus the output zero point, saturated (and max with the zero point after a Relu).

How: the activations become unsigned bytes ``x'`` (int8 ones are flipped by 128, which moves
their zero point by 128) and the weights signed bytes ``w'`` (uint8 ones lose 128, and so does
their zero point), so each step multiplies u8 by s8, the form of x86's ``vpdpbusd`` (AVX512
VNNI: 4 byte products summed into each int32 lane). Expanding the product,
``acc = sum x'w' - x_zero' * sum_k w'[r] + K * x_zero' * w_zero'[r] - w_zero'[r] * sum_k x'``;
the middle terms (and the bias) are one constant per channel folded at compile time, and the
column sums ``sum_k x'`` are only computed (as a dot product with ones) when a weight zero point
is not 0. Everything is taken modulo 2**32, which is exact whenever the true result fits in
int32 (checked at compile time for the requantized forms) and is the wrapping ONNX specifies
for the int32 forms. Without VNNI the same step is written as widening multiplies and adds.

The weights are packed at compile time in slivers of MR channels: ``[K/4][MR][4]`` bytes, so
a step broadcasts one int32 (4 weights) per channel. The activations are packed per block of
NB columns into per-thread scratch as ``[K/4][NB][4]`` bytes, so a step loads 16 columns x 4
k values as one 64-byte vector. A micro-tile of MR channels x 32 columns keeps its
accumulators in registers for the whole K and runs the epilogue on them before storing.
Threads split the (product, column block) units, and when those are fewer than the threads,
the channel tiles of a unit too.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from llvmlite import ir

from byoc.core.ir import Node
from byoc_cpu_llvm.codegen import (
    F32,
    I1,
    I8,
    I32,
    I64,
    KernelBuilder,
    const_i64,
    counted_loop,
    llvm_type,
    smax,
    smin,
    splat,
)
from byoc_cpu_llvm.kernels.microkernel import masked_store
from byoc_cpu_llvm.target import host_target

LANES = 16     # int32 lanes per vector (one 512-bit register)
NRV = 2        # vectors per micro-tile row: 32 columns
MR_MAX = 8     # channels per micro-tile
NB = 64        # columns per packed activation block
INT8_TYPES = (np.dtype(np.int8), np.dtype(np.uint8))
# Use VNNI when the host has it (tests may turn it off to exercise the portable path).
USE_VNNI = True


def vnni_available() -> bool:
    return USE_VNNI and host_target().has("avx512vnni") and host_target().has("avx512f")


@dataclass
class IntProduct:
    """What one integer kernel computes: ``groups`` weight matrices [rows, k] applied to the
    activations of ``batches`` products (batch ``bi`` uses weight group ``bi % groups``)."""

    weights: np.ndarray            # [groups, rows, k] integer values
    w_zero: np.ndarray             # [groups * rows] int64
    x_zero: int
    x_signed: bool
    batches: int
    cols: int
    # Output: element (bi, row r, col c) at out_image * (bi // groups)
    #   + (g * rows + r) * row_stride + c * col_stride.
    out_image: int
    row_stride: int
    col_stride: int
    out_dtype: np.dtype
    bias: np.ndarray | None = None         # [groups * rows] int64
    multiplier: np.ndarray | None = None   # [groups * rows] float32; None: int32 output
    y_zero: int = 0
    out_min: int | None = None            # clamp of the requantized result (Relu, Clip)
    out_max: int | None = None
    w_unsigned: bool = False

    @property
    def groups(self) -> int:
        return self.weights.shape[0]

    @property
    def rows(self) -> int:
        return self.weights.shape[1]

    @property
    def k(self) -> int:
        return self.weights.shape[2]


def overflow_refusal(k: int, bias: np.ndarray | None) -> str | None:
    """Requantized results are exact when the true accumulator fits in int32."""
    worst = k * 255 * 255 + (int(np.abs(bias.astype(np.int64)).max()) if bias is not None
                             and bias.size else 0)
    if worst >= 2 ** 31:
        return "the int32 accumulator could overflow (reduction too long)"
    return None


def _wrap32(values: np.ndarray) -> np.ndarray:
    return ((values.astype(np.int64) + 2 ** 31) % 2 ** 32 - 2 ** 31).astype(np.int32)


def pack_weights(spec: IntProduct, mr: int):
    """Packed weights (``[groups][tiles][K/4][mr][4]`` signed bytes) and per-channel
    constants, padded to whole tiles of ``mr`` channels: ``(packed, rowc, -w_zero, multiplier,
    need_xsum, rpad, mtiles, k4)``."""
    g, rows, k = spec.weights.shape
    w = spec.weights.astype(np.int64)
    wz = np.broadcast_to(spec.w_zero.astype(np.int64), (g * rows,)).reshape(g, rows)
    if spec.w_unsigned:   # uint8 weights: shift to int8
        w, wz = w - 128, wz - 128
    xz = spec.x_zero + 128 if spec.x_signed else spec.x_zero
    mtiles = -(-rows // mr)
    rpad = mtiles * mr
    k4 = -(-k // 4)
    padded = np.zeros((g, rpad, k4 * 4), np.int8)
    padded[:, :rows, :k] = w
    packed = padded.reshape(g, mtiles, mr, k4, 4).transpose(0, 1, 3, 2, 4)
    wsum = w.sum(axis=2)
    rowc = -xz * wsum + k * xz * wz
    if spec.bias is not None:
        rowc = rowc + spec.bias.astype(np.int64).reshape(g, rows)

    def pad(values, dtype):
        out = np.zeros((g, rpad), dtype)
        out[:, :rows] = values
        return out.ravel()
    mult = (pad(np.asarray(spec.multiplier, np.float32).reshape(g, rows), np.float32)
            if spec.multiplier is not None else None)
    return (np.ascontiguousarray(packed).ravel(), pad(_wrap32(rowc), np.int32),
            pad((-wz).astype(np.int32), np.int32), mult, bool(np.any(wz)), rpad, mtiles, k4)


class WeightOperands:
    """The weight side of a kernel of ``spec`` in tiles of ``mr`` channels: the constants of
    :func:`pack_weights` in the program, as pointers in ``kb`` (``wz`` only when some weight
    zero point is not 0, ``mult`` only for requantized outputs), and their sizes."""

    def __init__(self, program, kb: KernelBuilder, tag: str, spec: IntProduct, mr: int):
        packed, rowc, wzneg, mult, self.need_xsum, self.rpad, self.mtiles, self.k4 = \
            pack_weights(spec, mr)
        self.packed = kb.buffer(program.constant(f"{tag}__qapack", packed))
        self.rowc = kb.buffer(program.constant(f"{tag}__qrowc", rowc))
        self.wz = (kb.buffer(program.constant(f"{tag}__qwz", wzneg)) if self.need_xsum
                   else None)
        self.mult = (kb.buffer(program.constant(f"{tag}__qmult", mult)) if mult is not None
                     else None)


def choose_mr(rows: int) -> int:
    return min(rows, MR_MAX)


def emit_product(program, spec: IntProduct, tag: str, x_slot: int, out_slot: int,
                 pack_b: Callable) -> None:
    """Emit the kernel of ``spec``. ``pack_b(kb, x, bi, c0, ncols, dest, k4)`` writes columns
    ``[c0, c0 + ncols)`` of product ``bi``'s activations to ``dest`` as ``[k4][NB][4]`` bytes
    (flipped to unsigned; rows past K zero)."""
    mr = choose_mr(spec.rows)
    kb = program.kernel(tag)
    b = kb.b
    weights = WeightOperands(program, kb, tag, spec, mr)
    need_xsum, rpad, mtiles, k4 = weights.need_xsum, weights.rpad, weights.mtiles, weights.k4
    a_base, rowc_base = weights.packed, weights.rowc
    wz_base, mult_base = weights.wz, weights.mult
    scratch = program.scratch(f"{tag}__qbscr", np.int8, k4 * NB * 4)
    colblocks = -(-spec.cols // NB)
    base_units = spec.batches * colblocks
    x, out = kb.buffer(x_slot), kb.buffer(out_slot)
    dest = kb.element(kb.buffer(scratch), b.mul(kb.tid, const_i64(k4 * NB * 4)), I8)

    # parts = clamp(ceil(nthreads / base_units), 1, mtiles): channel tiles split per unit.
    parts = b.sdiv(b.add(kb.nthreads, const_i64(base_units - 1)), const_i64(base_units))
    parts = smax(b, const_i64(1), smin(b, parts, const_i64(mtiles)))
    total = b.mul(parts, const_i64(base_units))
    begin = b.sdiv(b.mul(total, kb.tid), kb.nthreads)
    end = b.sdiv(b.mul(total, b.add(kb.tid, const_i64(1))), kb.nthreads)
    with kb.loop(begin, end, name="unit") as u:
        base = b.sdiv(u, parts)
        part = b.srem(u, parts)
        bi = b.sdiv(base, const_i64(colblocks))
        c0 = b.mul(b.srem(base, const_i64(colblocks)), const_i64(NB))
        ncols = smin(b, const_i64(NB), b.sub(const_i64(spec.cols), c0))
        pack_b(kb, x, bi, c0, ncols, dest, k4)
        g = b.srem(bi, const_i64(spec.groups))
        image = b.sdiv(bi, const_i64(spec.groups))
        t0 = b.sdiv(b.mul(part, const_i64(mtiles)), parts)
        t1 = b.sdiv(b.mul(b.add(part, const_i64(1)), const_i64(mtiles)), parts)
        out_base = b.mul(image, const_i64(spec.out_image))
        with kb.loop(t0, t1, name="mt") as t:
            a_ptr = kb.element(a_base, b.mul(b.add(b.mul(g, const_i64(mtiles)), t),
                                             const_i64(k4 * mr * 4)), I8)
            with kb.loop(0, NB // (NRV * LANES), name="sub") as s:
                col = b.mul(s, const_i64(NRV * LANES))
                with b.if_then(b.icmp_signed("<", col, ncols)):
                    tile = _Tile(kb, spec, mr, k4, need_xsum)
                    accs, xsums = tile.accumulate(a_ptr, kb.element(dest, b.mul(
                        col, const_i64(4)), I8))
                    row0 = b.mul(t, const_i64(mr))
                    tile.finish(accs, xsums, out, out_base, g, row0, rpad, b.add(c0, col),
                                b.sub(ncols, col), rowc_base, wz_base, mult_base)
    kb.finish()


VEC = ir.VectorType(I32, LANES)
BYTES = ir.VectorType(I8, LANES * 4)


def dot4(kb: KernelBuilder, acc: ir.Value, u8: ir.Value, s8: ir.Value) -> ir.Value:
    """``acc[j] += sum_t u8.byte[4j+t] * s8.byte[4j+t]`` (unsigned x signed bytes)."""
    b = kb.b
    if vnni_available():
        name = "llvm.x86.avx512.vpdpbusd.512"
        fn = kb.module.globals.get(name)
        if fn is None:
            fn = ir.Function(kb.module, ir.FunctionType(VEC, [VEC, VEC, VEC]), name)
        return b.call(fn, [acc, u8, s8])
    wide = ir.VectorType(I32, LANES * 4)
    products = b.mul(b.zext(b.bitcast(u8, BYTES), wide), b.sext(b.bitcast(s8, BYTES), wide))
    total = acc
    for t in range(4):
        part = b.shuffle_vector(products, ir.Constant(wide, ir.Undefined),
                                ir.Constant(VEC, [4 * j + t for j in range(LANES)]))
        total = b.add(total, part)
    return total


class _Tile:
    """One MR x (NRV * LANES) micro-tile: the k loop and the epilogue."""

    def __init__(self, kb: KernelBuilder, spec: IntProduct, mr: int, k4: int, need_xsum: bool):
        self.kb, self.spec, self.mr, self.k4, self.need_xsum = kb, spec, mr, k4, need_xsum

    def accumulate(self, a_ptr, b_ptr):
        kb, b, mr = self.kb, self.kb.b, self.mr
        zeros = [ir.Constant(VEC, None)] * (mr * NRV + (NRV if self.need_xsum else 0))
        with counted_loop(b, const_i64(0), const_i64(self.k4), "kq", carried=zeros) as loop:
            k, phis = loop.index, loop.carried
            bp = kb.element(b_ptr, b.mul(k, const_i64(NB * 4)), I8)
            bvecs = [b.load(kb.element(bp, const_i64(v * LANES * 4), I8), typ=VEC, align=4)
                     for v in range(NRV)]
            ap = kb.element(a_ptr, b.mul(k, const_i64(mr * 4)), I8)
            new = []
            for i in range(mr):
                w = b.load(kb.element(ap, const_i64(i * 4), I8), typ=I32, align=4)
                wv = splat(b, w, LANES)
                for v in range(NRV):
                    new.append(dot4(kb, phis[i * NRV + v], bvecs[v], wv))
            if self.need_xsum:
                ones = ir.Constant(VEC, [0x01010101] * LANES)
                for v in range(NRV):
                    new.append(dot4(kb, phis[mr * NRV + v], bvecs[v], ones))
            loop.next_carried = new
        return phis[:mr * NRV], phis[mr * NRV:]

    def finish(self, accs, xsums, out, out_base, g, row0, rpad, col0, ncols, rowc_base,
               wz_base, mult_base) -> None:
        kb, b, spec = self.kb, self.kb.b, self.spec
        out_t = llvm_type(spec.out_dtype)
        iota = ir.Constant(ir.VectorType(I64, LANES), list(range(LANES)))
        masks = [b.icmp_signed("<", iota,
                               splat(b, b.sub(ncols, const_i64(v * LANES)), LANES))
                 for v in range(NRV)]
        no = ir.Constant(ir.VectorType(I1, LANES), None)
        for i in range(self.mr):
            row = b.add(row0, const_i64(i))
            grow = b.add(b.mul(g, const_i64(rpad)), row)
            row_ok = b.icmp_signed("<", row, const_i64(spec.rows))
            rowc = splat(b, kb.load(rowc_base, grow, I32), LANES)
            wz = splat(b, kb.load(wz_base, grow, I32), LANES) if self.need_xsum else None
            mult = (splat(b, kb.load(mult_base, grow, F32), LANES)
                    if mult_base is not None else None)
            out_row = b.add(out_base, b.mul(b.add(b.mul(g, const_i64(spec.rows)), row),
                                            const_i64(spec.row_stride)))
            for v in range(NRV):
                total = b.add(accs[i * NRV + v], rowc)
                if wz is not None:
                    total = b.add(total, b.mul(xsums[v], wz))
                value = requantize_lanes(kb, spec, total, mult) if mult is not None else total
                mask = b.select(row_ok, masks[v], no)
                col = b.add(col0, const_i64(v * LANES))
                # The lanes this row and vector have: 0 past the last row, else the columns
                # left (the lanes valid in ``mask``).
                count = b.select(row_ok, smax(b, const_i64(0), smin(
                    b, const_i64(LANES), b.sub(ncols, const_i64(v * LANES)))), const_i64(0))
                if spec.col_stride != 1:
                    self._scatter(value, out, out_row, col, count)
                elif out_t == I32:
                    target = kb.element(out, b.add(out_row, col), out_t)
                    masked_store(b, kb.module, value, target, mask, align=1)
                else:
                    # LLVM 22 compiles a truncating masked store whose mask it knows has one
                    # lane into a 4-byte store, writing over the next three bytes (a tail of
                    # one column, e.g. 49 = 3 x 16 + 1). Narrow results go as one plain store
                    # when every lane is valid, lane by lane otherwise.
                    full = b.and_(row_ok, b.icmp_signed(
                        ">=", b.sub(ncols, const_i64(v * LANES)), const_i64(LANES)))
                    with b.if_else(full) as (whole, partial):
                        with whole:
                            b.store(value, kb.element(out, b.add(out_row, col), out_t),
                                    align=1)
                        with partial:
                            self._scatter(value, out, out_row, col, count)

    def _scatter(self, value, out, out_row, col, count) -> None:
        """Lanes ``[0, count)`` of ``value`` to columns ``col...`` of the row at
        ``out_row``."""
        b, stride = self.kb.b, const_i64(self.spec.col_stride)
        store_in_a_loop(self.kb, value, count, out,
                        lambda lane: b.add(out_row, b.mul(b.add(col, lane), stride)))


def requantize_lanes(kb: KernelBuilder, spec: IntProduct, total: ir.Value,
                     mult: ir.Value) -> ir.Value:
    """``LANES`` int32 accumulators (bias included) requantized like ``quant.requantize``:
    ``clamp(round_half_to_even(float32(total) * mult) + y_zero)`` in float32, narrowed to the
    output type (exact: a rounded value is an integer, and the clamp saturates where float32
    could not hold the sum)."""
    b = kb.b
    info = np.iinfo(spec.out_dtype)
    low = info.min if spec.out_min is None else max(info.min, spec.out_min)
    high = info.max if spec.out_max is None else min(info.max, spec.out_max)
    f = b.fmul(b.sitofp(total, ir.VectorType(F32, LANES)), mult)
    f = b.fadd(kb.intrinsic("llvm.roundeven", f.type, [f]),
               splat(b, ir.Constant(F32, float(spec.y_zero)), LANES))
    f = kb.intrinsic("llvm.minnum", f.type, [
        kb.intrinsic("llvm.maxnum", f.type, [f, splat(b, ir.Constant(F32, float(low)), LANES)]),
        splat(b, ir.Constant(F32, float(high)), LANES)])
    value = b.fptosi(f, VEC)
    out_t = llvm_type(spec.out_dtype)
    return b.trunc(value, ir.VectorType(out_t, LANES)) if out_t != I32 else value


def store_lanes(kb: KernelBuilder, value: ir.Value, out: ir.Value, at: ir.Value,
                count: ir.Value) -> None:
    """The first ``count`` lanes of ``value`` at ``out[at...]``: one plain store when all
    are valid; otherwise a masked store for int32, lane by lane for narrower types (LLVM 22
    miscompiles a truncating masked store it knows has one lane, see :class:`_Tile`)."""
    b = kb.b
    lanes = value.type.count
    elem = value.type.element
    with b.if_else(b.icmp_signed(">=", count, const_i64(lanes))) as (whole, partial):
        with whole:
            b.store(value, kb.element(out, at, elem), align=1)
        with partial:
            if elem == I32:
                mask = b.icmp_signed("<", ir.Constant(ir.VectorType(I64, lanes),
                                                      list(range(lanes))), splat(b, count, lanes))
                masked_store(b, kb.module, value, kb.element(out, at, elem), mask, align=1)
            else:
                store_in_a_loop(kb, value, count, out, lambda lane: b.add(at, lane))


def store_in_a_loop(kb: KernelBuilder, value: ir.Value, count: ir.Value, out: ir.Value,
                    offset_of) -> None:
    """Lanes ``[0, count)`` of ``value`` at ``out[offset_of(lane)]``, one by one in a loop
    through a copy of ``value`` on the stack: a tile's ragged edge in a few instructions
    (its lanes unrolled, each behind a branch, were a third of an int8 kernel's code)."""
    b = kb.b
    copy = kb.entry_alloca(value.type, name="lanes")
    b.store(value, copy)
    elem = value.type.element
    with kb.loop(const_i64(0), count, name="lane") as lane:
        kb.store(kb.load(copy, lane, elem), out, offset_of(lane))


class DirectKernel:
    """A kernel of an exact direct path (run-time operands or parameters, read straight from
    their buffers): ``names`` maps each role (``"x"``, ``"w"``, a scale, a zero point...) to
    its graph value; roles named ``""`` are absent."""

    def __init__(self, program, node: Node, names: dict[str, str]) -> None:
        self.types = program.graph.types
        self.names = {key: name for key, name in names.items() if name}
        slots = {key: program.value(name) for key, name in self.names.items()}
        self.kb = program.kernel(node.name or node.op_type.lower())
        self.buffers = {key: self.kb.buffer(slot) for key, slot in slots.items()}

    def load_i64(self, key: str, index: ir.Value) -> ir.Value:
        """Element ``index`` of role ``key``, widened to i64."""
        return self.kb.load_i64(self.buffers[key], index, self.types[self.names[key]].dtype)

    def load(self, key: str, index: ir.Value, elem: ir.Type) -> ir.Value:
        return self.kb.load(self.buffers[key], index, elem)

    def store(self, value: ir.Value, index: ir.Value) -> None:
        self.kb.store(value, self.buffers["out"], index)

    def param_index(self, key: str, index: ir.Value) -> ir.Value:
        """``index`` into a parameter with one value per row or channel, 0 into a per-tensor
        one."""
        return index if self.types[self.names[key]].size != 1 else const_i64(0)


def emit_requantize(kb, acc, multiplier, zero_point, out_dtype) -> ir.Value:
    """One int64 accumulator ``acc`` requantized as the reference does it:
    ``saturate(round_half_to_even(float32(acc) * multiplier) + zero_point)`` with the sum and
    the saturation in float64; ``multiplier`` is an f32 value, ``zero_point`` an i64 one."""
    b = kb.b
    info = np.iinfo(out_dtype)
    scaled = b.fmul(b.sitofp(acc, F32), multiplier)
    rounded = b.fpext(kb.intrinsic("llvm.roundeven", F32, [scaled]), ir.DoubleType())
    shifted = b.fadd(rounded, b.sitofp(zero_point, ir.DoubleType()))
    low, high = ir.Constant(ir.DoubleType(), float(info.min)), \
        ir.Constant(ir.DoubleType(), float(info.max))
    clamped = kb.intrinsic("llvm.minnum", ir.DoubleType(),
                           [kb.intrinsic("llvm.maxnum", ir.DoubleType(), [shifted, low]), high])
    return b.trunc(b.fptosi(clamped, I64), llvm_type(out_dtype))
