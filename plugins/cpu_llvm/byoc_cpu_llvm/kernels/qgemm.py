"""Exact integer matrix products: the int8 product driver, QLinearMatMul, MatMulInteger and
the QDQ MatMul/Gemm groups (their Conv counterparts are in :mod:`.qconv`).

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

from byoc.core.interpreter.integer_groups import IntegerGroup, integer_plans
from byoc.core.ir import Graph, Node
from byoc_cpu_llvm.codegen import (
    F16,
    F32,
    I1,
    I8,
    I32,
    I64,
    PTR,
    VOID,
    KernelBuilder,
    const_i64,
    llvm_type,
)
from byoc_cpu_llvm.kernels import lowering
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


def _prepare(spec: IntProduct, mr: int):
    """Packed weights and per-channel constants (padded to whole micro-tiles)."""
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


def choose_mr(rows: int) -> int:
    return min(rows, MR_MAX)


def emit_product(program, spec: IntProduct, tag: str, x_slot: int, out_slot: int,
                 pack_b: Callable) -> None:
    """Emit the kernel of ``spec``. ``pack_b(kb, x, bi, c0, ncols, dest, k4)`` writes columns
    ``[c0, c0 + ncols)`` of product ``bi``'s activations to ``dest`` as ``[k4][NB][4]`` bytes
    (flipped to unsigned; rows past K zero)."""
    mr = choose_mr(spec.rows)
    apack, rowc, wzneg, mult, need_xsum, rpad, mtiles, k4 = _prepare(spec, mr)
    a_slot = program.constant(f"{tag}__qapack", apack)
    rowc_slot = program.constant(f"{tag}__qrowc", rowc)
    wz_slot = program.constant(f"{tag}__qwz", wzneg) if need_xsum else None
    mult_slot = program.constant(f"{tag}__qmult", mult) if mult is not None else None
    scratch = program.scratch(f"{tag}__qbscr", np.int8, k4 * NB * 4)
    colblocks = -(-spec.cols // NB)
    base_units = spec.batches * colblocks

    kb = program.kernel(tag)
    b = kb.b
    x, out = kb.buffer(x_slot), kb.buffer(out_slot)
    a_base, rowc_base = kb.buffer(a_slot), kb.buffer(rowc_slot)
    wz_base = kb.buffer(wz_slot) if wz_slot is not None else None
    mult_base = kb.buffer(mult_slot) if mult_slot is not None else None
    dest = kb.element(kb.buffer(scratch), b.mul(kb.tid, const_i64(k4 * NB * 4)), I8)

    # parts = clamp(ceil(nthreads / base_units), 1, mtiles): channel tiles split per unit.
    parts = b.sdiv(b.add(kb.nthreads, const_i64(base_units - 1)), const_i64(base_units))
    parts = _smax(b, const_i64(1), _smin(b, parts, const_i64(mtiles)))
    total = b.mul(parts, const_i64(base_units))
    begin = b.sdiv(b.mul(total, kb.tid), kb.nthreads)
    end = b.sdiv(b.mul(total, b.add(kb.tid, const_i64(1))), kb.nthreads)
    with kb.loop(begin, end, name="unit") as u:
        base = b.sdiv(u, parts)
        part = b.srem(u, parts)
        bi = b.sdiv(base, const_i64(colblocks))
        c0 = b.mul(b.srem(base, const_i64(colblocks)), const_i64(NB))
        ncols = _smin(b, const_i64(NB), b.sub(const_i64(spec.cols), c0))
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


def _smin(b, x, y):
    return b.select(b.icmp_signed("<", x, y), x, y)


def _smax(b, x, y):
    return b.select(b.icmp_signed(">", x, y), x, y)


VEC = ir.VectorType(I32, LANES)
BYTES = ir.VectorType(I8, LANES * 4)


def _splat(b: ir.IRBuilder, value: ir.Value, lanes: int = LANES) -> ir.Value:
    vt = ir.VectorType(value.type, lanes)
    undef = ir.Constant(vt, ir.Undefined)
    first = b.insert_element(undef, value, ir.Constant(I32, 0))
    return b.shuffle_vector(first, undef, ir.Constant(ir.VectorType(I32, lanes), [0] * lanes))


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
        zero = ir.Constant(VEC, None)
        pre = b.block
        header = kb.function.append_basic_block("kq.header")
        body = kb.function.append_basic_block("kq.body")
        done = kb.function.append_basic_block("kq.done")
        b.branch(header)
        b.position_at_end(header)
        k = b.phi(I64, name="kq")
        k.add_incoming(const_i64(0), pre)
        n_acc = mr * NRV + (NRV if self.need_xsum else 0)
        phis = []
        for i in range(n_acc):
            phi = b.phi(VEC, name=f"qacc{i}")
            phi.add_incoming(zero, pre)
            phis.append(phi)
        b.cbranch(b.icmp_signed("<", k, const_i64(self.k4)), body, done)
        b.position_at_end(body)
        bp = kb.element(b_ptr, b.mul(k, const_i64(NB * 4)), I8)
        bvecs = [b.load(kb.element(bp, const_i64(v * LANES * 4), I8), typ=VEC, align=4)
                 for v in range(NRV)]
        ap = kb.element(a_ptr, b.mul(k, const_i64(mr * 4)), I8)
        new = []
        for i in range(mr):
            w = b.load(kb.element(ap, const_i64(i * 4), I8), typ=I32, align=4)
            wv = _splat(b, w)
            for v in range(NRV):
                new.append(dot4(kb, phis[i * NRV + v], bvecs[v], wv))
        if self.need_xsum:
            ones = ir.Constant(VEC, [0x01010101] * LANES)
            for v in range(NRV):
                new.append(dot4(kb, phis[mr * NRV + v], bvecs[v], ones))
        k.add_incoming(b.add(k, const_i64(1)), b.block)
        for phi, value in zip(phis, new):
            phi.add_incoming(value, b.block)
        b.branch(header)
        b.position_at_end(done)
        return phis[:mr * NRV], phis[mr * NRV:]

    def finish(self, accs, xsums, out, out_base, g, row0, rpad, col0, ncols, rowc_base,
               wz_base, mult_base) -> None:
        kb, b, spec = self.kb, self.kb.b, self.spec
        from byoc_cpu_llvm.codegen import llvm_type
        out_t = llvm_type(spec.out_dtype)
        iota = ir.Constant(ir.VectorType(I64, LANES), list(range(LANES)))
        masks = [b.icmp_signed("<", iota, _splat(b, b.sub(ncols, const_i64(v * LANES))))
                 for v in range(NRV)]
        no = ir.Constant(ir.VectorType(I1, LANES), None)
        if spec.multiplier is not None:
            info = np.iinfo(spec.out_dtype)
            low = info.min if spec.out_min is None else max(info.min, spec.out_min)
            high = info.max if spec.out_max is None else min(info.max, spec.out_max)
            f_low = _splat(b, ir.Constant(F32, float(low)))
            f_high = _splat(b, ir.Constant(F32, float(high)))
            f_zero = _splat(b, ir.Constant(F32, float(spec.y_zero)))
        for i in range(self.mr):
            row = b.add(row0, const_i64(i))
            grow = b.add(b.mul(g, const_i64(rpad)), row)
            row_ok = b.icmp_signed("<", row, const_i64(spec.rows))
            rowc = _splat(b, kb.load(rowc_base, grow, I32))
            wz = _splat(b, kb.load(wz_base, grow, I32)) if self.need_xsum else None
            mult = _splat(b, kb.load(mult_base, grow, F32)) if mult_base is not None else None
            out_row = b.add(out_base, b.mul(b.add(b.mul(g, const_i64(spec.rows)), row),
                                            const_i64(spec.row_stride)))
            for v in range(NRV):
                total = b.add(accs[i * NRV + v], rowc)
                if wz is not None:
                    total = b.add(total, b.mul(xsums[v], wz))
                if mult is not None:
                    f = b.fmul(b.sitofp(total, ir.VectorType(F32, LANES)), mult)
                    f = b.fadd(kb.intrinsic("llvm.roundeven", f.type, [f]), f_zero)
                    f = kb.intrinsic("llvm.minnum", f.type,
                                     [kb.intrinsic("llvm.maxnum", f.type, [f, f_low]), f_high])
                    value = b.fptosi(f, VEC)
                    if out_t != I32:
                        value = b.trunc(value, ir.VectorType(out_t, LANES))
                else:
                    value = total
                mask = b.select(row_ok, masks[v], no)
                col = b.add(col0, const_i64(v * LANES))
                if spec.col_stride != 1:
                    self._scatter(value, out, out_row, col, mask, out_t)
                elif out_t == I32:
                    _masked_store(kb, value, kb.element(out, b.add(out_row, col), out_t), mask)
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
                            self._scatter(value, out, out_row, col, mask, out_t)

    def _scatter(self, value, out, out_row, col, mask, out_t) -> None:
        kb, b = self.kb, self.kb.b
        for lane in range(LANES):
            index = ir.Constant(I32, lane)
            with b.if_then(b.extract_element(mask, index)):
                offset = b.add(out_row, b.mul(b.add(col, const_i64(lane)),
                                              const_i64(self.spec.col_stride)))
                kb.store(b.extract_element(value, index), out, offset)


def _masked_store(kb: KernelBuilder, value: ir.Value, ptr: ir.Value, mask: ir.Value) -> None:
    vt = value.type
    name = f"llvm.masked.store.v{vt.count}i{vt.element.width}.p0"
    fn = kb.module.globals.get(name)
    if fn is None:
        fn = ir.Function(kb.module, ir.FunctionType(VOID, [vt, PTR, I32, mask.type]), name)
    kb.b.call(fn, [value, ptr, ir.Constant(I32, 1), mask])


# -- matrix products with constant weights ----------------------------------------------------

def matmul_pack(k: int, x_signed: bool) -> Callable:
    """``pack_b`` for activations X [cols, K] (row-major): column c of the product is row c of
    X, so a packed group of 4 is 4 consecutive bytes of a row."""
    flip = 0x80 if x_signed else 0

    def pack(kb, x, bi, c0, ncols, dest, k4):
        b = kb.b
        with kb.loop(const_i64(0), ncols, name="pj") as j:
            row = b.mul(b.add(c0, j), const_i64(k))
            with kb.loop(0, k4 * 4, name="pk") as kk:
                inside = b.icmp_signed("<", kk, const_i64(k))
                value = kb.load(x, b.add(row, b.select(inside, kk, const_i64(0))), I8)
                if flip:
                    value = b.xor(value, ir.Constant(I8, flip))
                value = b.select(inside, value, ir.Constant(I8, 0))
                k4i = b.lshr(kk, const_i64(2))
                offset = b.add(b.mul(b.add(b.mul(k4i, const_i64(NB)), j), const_i64(4)),
                               b.and_(kk, const_i64(3)))
                kb.store(value, dest, offset)
    return pack


def lower_matrix_product(program, tag: str, x_name: str, out_name: str, matrix: np.ndarray,
                         w_zero: np.ndarray, x_zero: int, **requant) -> None:
    """``x [..., K] @ matrix [K, N]`` with constant ``matrix``, into ``out_name``."""
    graph = program.graph
    x_type = graph.types[x_name]
    k, n = matrix.shape
    cols = int(np.prod(x_type.shape[:-1], dtype=np.int64))
    x_signed = x_type.dtype == np.int8
    spec = IntProduct(weights=np.asarray(matrix).T[None].astype(np.int64),
                      w_unsigned=np.asarray(matrix).dtype == np.uint8,
                      w_zero=np.broadcast_to(np.asarray(w_zero, np.int64).ravel(), (n,)),
                      x_zero=int(x_zero), x_signed=x_signed, batches=1, cols=cols, out_image=0,
                      row_stride=1, col_stride=n, out_dtype=graph.types[out_name].dtype,
                      **requant)
    emit_product(program, spec, tag, program.value(x_name), program.value(out_name),
                 matmul_pack(k, x_signed))


def _scalar(graph: Graph, name: str, default=0):
    if not name:
        return default
    return np.asarray(graph.constants[name]).reshape(()).item()


def _const(graph: Graph, node: Node, index: int) -> np.ndarray | None:
    name = node.inputs[index] if len(node.inputs) > index else ""
    return np.asarray(graph.constants[name]) if name else None


def _matmul_refusal(node: Node, graph: Graph, a: str, b: str, a_params: list[str],
                    b_params: list[str]) -> str | None:
    a_type, b_type = graph.types[a], graph.types[b]
    if a_type.dtype not in INT8_TYPES or b_type.dtype not in INT8_TYPES:
        return f"cpu_llvm {node.op_type} handles int8/uint8 operands only"
    if not graph.is_constant(b) or len(b_type.shape) != 2:
        return f"cpu_llvm {node.op_type} needs a constant 2-D second operand"
    if len(a_type.shape) < 2:
        return f"cpu_llvm {node.op_type} needs a first operand of rank 2 or more"
    for name in a_params + b_params:
        if name and not graph.is_constant(name):
            return f"cpu_llvm {node.op_type} needs constant scales and zero points"
    for name in a_params:
        if name and np.size(graph.constants[name]) != 1:
            return f"cpu_llvm {node.op_type} handles a per-tensor first operand only"
    n = b_type.shape[1]
    for name in b_params:
        if name:
            shape = np.shape(graph.constants[name])
            if np.size(graph.constants[name]) not in (1, n) or len(shape) > 2:
                return f"cpu_llvm {node.op_type}: b parameters must be per tensor or per column"
    return None


def check_matmul_integer(node: Node, graph: Graph) -> str | None:
    inputs = list(node.inputs) + [""] * (4 - len(node.inputs))
    if _direct_matmul(graph, inputs[1], inputs[2:4]):
        return _direct_matmul_refusal(node, graph, inputs[0], inputs[1], inputs[2], inputs[3])
    return _matmul_refusal(node, graph, inputs[0], inputs[1], [inputs[2]], [inputs[3]])


def check_qlinear_matmul(node: Node, graph: Graph) -> str | None:
    i = node.inputs
    if _direct_matmul(graph, i[3], [i[1], i[2]] + list(i[4:8])):
        return _direct_matmul_refusal(node, graph, i[0], i[3], i[2], i[5],
                                      scales=(i[1], i[4], i[6]), y_zero=i[7])
    reason = _matmul_refusal(node, graph, i[0], i[3], [i[1], i[2]], [i[4], i[5]])
    if reason:
        return reason
    for name in (i[6], i[7]):
        if not graph.is_constant(name) or np.size(graph.constants[name]) != 1:
            return "cpu_llvm QLinearMatMul needs constant per-tensor y parameters"
    if graph.types[node.outputs[0]].dtype not in INT8_TYPES:
        return "cpu_llvm QLinearMatMul outputs int8/uint8 only"
    k = graph.types[i[3]].shape[0]
    return overflow_refusal(k, None)


@lowering("MatMulInteger", check=check_matmul_integer)
def lower_matmul_integer(program, group) -> None:
    node = group.head
    graph = program.graph
    inputs = list(node.inputs) + [""] * (4 - len(node.inputs))
    if _direct_matmul(graph, inputs[1], inputs[2:4]):
        _lower_direct_matmul(program, node, inputs[0], inputs[1], inputs[2], inputs[3])
        return
    matrix = graph.constants[inputs[1]]
    w_zero = _const(graph, node, 3)
    lower_matrix_product(program, node.name or "matmulinteger", inputs[0], node.outputs[0],
                         matrix, np.zeros(1) if w_zero is None else w_zero,
                         _scalar(graph, inputs[2]))


@lowering("QLinearMatMul", check=check_qlinear_matmul)
def lower_qlinear_matmul(program, group) -> None:
    node = group.head
    graph = program.graph
    i = node.inputs
    c = graph.constants
    if _direct_matmul(graph, i[3], [i[1], i[2]] + list(i[4:8])):
        _lower_direct_matmul(program, node, i[0], i[3], i[2], i[5],
                             scales=(i[1], i[4], i[6]), y_zero=i[7])
        return
    # The multiplier exactly as the reference forms it (in the scales' type).
    multiplier = (np.asarray(c[i[1]]).reshape(()) * np.asarray(c[i[4]]).reshape(-1)
                  / np.asarray(c[i[6]]).reshape(()))
    n = graph.types[i[3]].shape[1]
    multiplier = np.broadcast_to(np.asarray(multiplier).astype(np.float32), (n,))
    lower_matrix_product(program, node.name or "qlinearmatmul", i[0], node.outputs[0],
                         c[i[3]], c[i[5]], _scalar(graph, i[2]), multiplier=multiplier,
                         y_zero=int(_scalar(graph, i[7])))


# -- the direct path: a run-time second operand (or run-time parameters) -----------------------


def _direct_matmul(graph: Graph, b: str, params: list[str]) -> bool:
    return not graph.is_constant(b) or any(p and not graph.is_constant(p) for p in params)


def _elements(graph: Graph, name: str) -> int:
    return int(np.prod(graph.types[name].shape, dtype=np.int64))


def _direct_matmul_refusal(node: Node, graph: Graph, a: str, b: str, a_zero: str, b_zero: str,
                           scales=None, y_zero: str = "") -> str | None:
    op = node.op_type
    a_type, b_type = graph.types[a], graph.types[b]
    if a_type.dtype not in INT8_TYPES or b_type.dtype not in INT8_TYPES:
        return f"cpu_llvm {op} handles int8/uint8 operands only"
    if len(a_type.shape) < 2 or len(b_type.shape) < 2:
        return f"cpu_llvm {op} with a run-time operand needs operands of rank 2 or more"
    m, k = a_type.shape[-2:]
    k2, n = b_type.shape[-2:]
    if k != k2:
        return f"{op} operands do not fit together"
    try:
        batch = np.broadcast_shapes(tuple(a_type.shape[:-2]), tuple(b_type.shape[:-2]))
    except ValueError:
        return f"{op} batch dimensions do not broadcast"
    if tuple(graph.types[node.outputs[0]].shape) != tuple(batch) + (m, n):
        return f"{op} output shape does not match its operands"
    if 0 in graph.types[node.outputs[0]].shape or k == 0:
        return f"{op} on an empty tensor is not supported by cpu_llvm"
    a_params = [a_zero] + ([scales[0]] if scales else [])
    b_params = [b_zero] + ([scales[1]] if scales else [])
    for names, rows in ((a_params, m), (b_params, n)):
        for name in names:
            if name and (_elements(graph, name) != 1 and tuple(graph.types[name].shape)
                         != (rows,)):
                return f"cpu_llvm {op}: a parameter is neither per tensor nor a 1-D per " \
                    "row (a) / per column (b) vector"
    for name in (a_zero, b_zero, y_zero):
        if name and graph.types[name].dtype not in INT8_TYPES:
            return f"cpu_llvm {op} needs int8/uint8 zero points"
    if scales is None:
        if graph.types[node.outputs[0]].dtype != np.int32:
            return f"cpu_llvm {op} outputs int32 only"
        return None
    if len({graph.types[name].dtype for name in scales}) != 1 or \
            graph.types[scales[0]].dtype not in (np.float32, np.float16):
        return f"cpu_llvm {op} with a run-time operand handles float32 or float16 scales, " \
            "all of one type"
    if not y_zero or _elements(graph, y_zero) != 1 or _elements(graph, scales[2]) != 1:
        return f"cpu_llvm {op} needs per-tensor y parameters"
    if graph.types[node.outputs[0]].dtype != graph.types[y_zero].dtype:
        return f"cpu_llvm {op} output type differs from y_zero_point's"
    return None


def _lower_direct_matmul(program, node: Node, a_name: str, b_name: str, a_zero: str,
                         b_zero: str, scales=None, y_zero: str = "") -> None:
    """One output element at a time: the exact sum over k of ``(a - a_zero[row]) *
    (b - b_zero[col])``, wrapped to int32 as the reference does, then (QLinearMatMul)
    requantized with ``a_scale * b_scale / y_scale`` formed in float32 at run time."""
    from byoc_cpu_llvm.kernels.elementwise import strides_for

    graph = program.graph
    a_shape, b_shape = graph.types[a_name].shape, graph.types[b_name].shape
    out_name = node.outputs[0]
    out_shape = tuple(graph.types[out_name].shape)
    m, k = a_shape[-2:]
    n = b_shape[-1]
    batch = out_shape[:-2]
    a_strides = strides_for(tuple(a_shape[:-2]) + (1, 1), batch + (1, 1))[:-2]
    b_strides = strides_for(tuple(b_shape[:-2]) + (1, 1), batch + (1, 1))[:-2]
    names = {"a": a_name, "b": b_name, "az": a_zero, "bz": b_zero, "out": out_name,
             "yz": y_zero}
    if scales is not None:
        names.update(as_=scales[0], bs=scales[1], ys=scales[2])
    slots = {key: program.value(name) for key, name in names.items() if name}
    kb = program.kernel(node.name or node.op_type.lower())
    bld = kb.b
    bufs = {key: kb.buffer(slot) for key, slot in slots.items()}

    def load_ext(key: str, index) -> ir.Value:
        return kb.load_i64(bufs[key], index, graph.types[names[key]].dtype)

    def param_index(key: str, index) -> ir.Value:
        return index if _elements(graph, names[key]) != 1 else const_i64(0)

    acc = bld.alloca(I64, name="acc")
    begin, end = kb.thread_share(int(np.prod(out_shape, dtype=np.int64)))
    with kb.loop(begin, end, name="out") as flat:
        col = bld.urem(flat, const_i64(n))
        row = bld.urem(bld.udiv(flat, const_i64(n)), const_i64(m))
        rest = bld.udiv(flat, const_i64(m * n))
        a_off, b_off = const_i64(0), const_i64(0)
        for axis in reversed(range(len(batch))):
            coord = bld.urem(rest, const_i64(batch[axis]))
            rest = bld.udiv(rest, const_i64(batch[axis]))
            a_off = bld.add(a_off, bld.mul(coord, const_i64(a_strides[axis] * m * k)))
            b_off = bld.add(b_off, bld.mul(coord, const_i64(b_strides[axis] * k * n)))
        a_off = bld.add(a_off, bld.mul(row, const_i64(k)))
        b_off = bld.add(b_off, col)
        az = load_ext("az", param_index("az", row)) if a_zero else const_i64(0)
        bz = load_ext("bz", param_index("bz", col)) if b_zero else const_i64(0)
        bld.store(const_i64(0), acc)
        with kb.loop(0, k, name="k") as kk:
            x = bld.sub(load_ext("a", bld.add(a_off, kk)), az)
            y = bld.sub(load_ext("b", bld.add(b_off, bld.mul(kk, const_i64(n)))), bz)
            bld.store(bld.add(bld.load(acc, typ=I64), bld.mul(x, y)), acc)
        total = bld.trunc(bld.load(acc, typ=I64), I32)
        if scales is None:
            kb.store(total, bufs["out"], flat)
        else:
            half = graph.types[scales[0]].dtype == np.float16
            elem = F16 if half else F32
            multiplier = _multiplier(bld, half,
                                     kb.load(bufs["as_"], param_index("as_", row), elem),
                                     kb.load(bufs["bs"], param_index("bs", col), elem),
                                     kb.load(bufs["ys"], const_i64(0), elem))
            value = emit_requantize(kb, bld.sext(total, I64), multiplier,
                                    load_ext("yz", const_i64(0)), graph.types[out_name].dtype)
            kb.store(value, bufs["out"], flat)
    kb.finish()


def _multiplier(bld: ir.IRBuilder, half: bool, a_scale: ir.Value, b_scale: ir.Value,
                y_scale: ir.Value) -> ir.Value:
    """``a_scale * b_scale / y_scale`` as a float32, formed in the scales' own type.

    For float16 scales each step is computed in float32 and rounded back to float16, which is
    exactly how numpy (and so the reference) does float16 arithmetic."""
    if not half:
        return bld.fdiv(bld.fmul(a_scale, b_scale), y_scale)

    def rounded(value: ir.Value) -> ir.Value:
        return bld.fpext(bld.fptrunc(value, F16), F32)
    product = rounded(bld.fmul(bld.fpext(a_scale, F32), bld.fpext(b_scale, F32)))
    return rounded(bld.fdiv(product, bld.fpext(y_scale, F32)))


# -- QDQ groups -------------------------------------------------------------------------------



@dataclass
class QdqLayer:
    """The integer operation of a qualifying QDQ group, in the terms of the kernels."""

    igroup: IntegerGroup
    x_quant: str             # the quantized input value (what the input DequantizeLinear reads)
    x_zero: int
    weight: np.ndarray
    w_zero: np.ndarray
    bias: np.ndarray | None
    multiplier: np.ndarray
    y_zero: int
    out_dtype: np.dtype
    out_min: int
    out_max: int
    x_from_float: bool = False   # the input DequantizeLinear is not in the partition

    @property
    def op(self) -> Node:
        return self.igroup.group.op

    @property
    def output(self) -> str:
        return self.igroup.group.quantize.outputs[0]


def qdq_layer(graph: Graph, igroup: IntegerGroup) -> QdqLayer:
    """The group's integer operation (byoc's IntegerLayer) with the weight as stored (Gemm's
    not transposed), which is how the kernels read it."""
    layer = igroup.layer
    weight = np.asarray(graph.constants[igroup.group.dequantize[1].inputs[0]])
    return QdqLayer(igroup, layer.x, layer.x_zero, weight, layer.w_zero, layer.bias,
                    layer.multiplier, layer.y_zero, layer.y_dtype, layer.out_min,
                    layer.out_max)


def qdq_refusal(graph: Graph, igroup: IntegerGroup) -> str | None:
    """Why cpu_llvm cannot run a qualifying group as an integer kernel, or None."""
    group = igroup.group
    dq_x, dq_w = group.dequantize[0], group.dequantize[1]
    dq_b = group.dequantize[2] if len(group.dequantize) > 2 else None
    x_type = graph.types[dq_x.inputs[0]]
    if x_type.dtype not in INT8_TYPES:
        return "cpu_llvm integer kernels take int8/uint8 activations"
    if graph.types[dq_w.inputs[0]].dtype not in INT8_TYPES:
        return "cpu_llvm integer kernels take int8/uint8 weights"
    if dq_b is not None and not graph.is_constant(dq_b.inputs[0]):
        return "cpu_llvm integer kernels need a constant bias"
    if group.quantize.outputs[0] and graph.types[group.quantize.outputs[0]].dtype not in (
            INT8_TYPES + (np.dtype(np.int16), np.dtype(np.uint16))):
        return "cpu_llvm integer kernels output 8- or 16-bit integers"
    layer = qdq_layer(graph, igroup)
    op = group.op
    if op.op_type == "Conv":
        from byoc_cpu_llvm.kernels.qconv import conv_refusal
        return conv_refusal(graph, op, dq_x.inputs[0], layer.weight, layer.bias)
    w_shape = layer.weight.shape
    if len(w_shape) != 2 or len(x_type.shape) < 2:
        return "cpu_llvm integer MatMul/Gemm takes a 2-D weight and an input of rank 2 or more"
    if op.op_type == "Gemm" and len(x_type.shape) != 2:
        return "Gemm takes a 2-D input"
    return overflow_refusal(x_type.shape[-1], layer.bias)


def lower_qdq_layer(program, layer: QdqLayer) -> None:
    """Emit the integer kernel of a QDQ group: reads the quantized input, writes the output
    of its QuantizeLinear."""
    op = layer.op
    tag = op.name or op.op_type
    if layer.x_from_float:
        # Quantizing the dequantized input again gives back the quantized input exactly:
        # fl(fl(q * s) / s) is within q * 2**-23 of q, so it rounds to q.
        from byoc_cpu_llvm.kernels.quant import emit_quantize
        dq_x = layer.igroup.group.dequantize[0]
        scale = program.graph.constants[dq_x.inputs[1]]
        zero = (program.graph.constants[dq_x.inputs[2]] if len(dq_x.inputs) > 2
                and dq_x.inputs[2] else None)
        emit_quantize(program, dq_x.outputs[0], layer.x_quant, scale, zero, 1,
                      program.graph.types[layer.x_quant].dtype, f"{tag}__requantize_input")
    requant = {"bias": layer.bias, "multiplier": layer.multiplier, "y_zero": layer.y_zero,
               "out_min": layer.out_min, "out_max": layer.out_max}
    if op.op_type == "Conv":
        from byoc_cpu_llvm.kernels.qconv import lower_conv_product
        lower_conv_product(program, tag, op, layer.x_quant, layer.output, layer.weight,
                           layer.w_zero, layer.x_zero, **requant)
        return
    matrix = layer.weight.T if op.op_type == "Gemm" and op.attrs.get("transB") else layer.weight
    n = matrix.shape[1]
    requant["multiplier"] = np.broadcast_to(layer.multiplier, (n,))
    if layer.bias is not None:
        requant["bias"] = np.broadcast_to(layer.bias, (n,))
    lower_matrix_product(program, tag, layer.x_quant, layer.output, matrix, layer.w_zero,
                         layer.x_zero, **requant)


def partition_qdq_layers(partition, graph: Graph) -> tuple[list[QdqLayer], set[int]]:
    """The integer groups lying in ``partition`` (their op, activation and QuantizeLinear are
    all in it) that cpu_llvm can run, and the ids of the nodes their kernels replace: those
    three, and the group's DequantizeLinear nodes in the partition that nothing else reads."""
    inside = {id(n) for n in partition.nodes}
    available = set(partition.inputs) | {v for n in partition.nodes for v in n.outputs if v}
    layers, absorbed = [], set()
    for igroup in integer_plans(graph).values():
        group = igroup.group
        core = [n for n in (group.op, group.activation, group.quantize) if n is not None]
        if not all(id(n) in inside for n in core) or qdq_refusal(graph, igroup):
            continue
        layer = qdq_layer(graph, igroup)
        layer.x_from_float = (layer.x_quant not in available
                              and not graph.is_constant(layer.x_quant))
        layers.append(layer)
        absorbed.update(id(n) for n in core)
    consumers = graph.consumers()
    outputs = set(partition.outputs) | set(graph.outputs)
    for layer in layers:
        for dq in layer.igroup.group.dequantize:
            if dq is None or id(dq) not in inside or dq.outputs[0] in outputs:
                continue
            if all(id(reader) in absorbed for reader in consumers.get(dq.outputs[0], [])):
                absorbed.add(id(dq))
    return layers, absorbed


def integer_group_refusal(node: Node, graph: Graph) -> str | None:
    """Why cpu_llvm declines ``node`` alone: it belongs to a group the reference evaluates
    as an integer operation which cpu_llvm cannot lower as one (running its nodes as float
    ops would not be exact)."""
    for igroup in integer_plans(graph).values():
        if any(n is node for n in igroup.group.nodes):
            reason = qdq_refusal(graph, igroup)
            if reason:
                return f"part of integer group {igroup.group.quantize.name!r}: {reason}"
    return None


__all__ = [
    "IntProduct",
    "QdqLayer",
    "emit_product",
    "integer_group_refusal",
    "integer_plans",
    "lower_qdq_layer",
    "partition_qdq_layers",
    "qdq_layer",
    "qdq_refusal",
]


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
