"""Convolutions with few output positions and large weights (ResNet-50's 7x7 layers): output
channels in the vector lanes.

The GEMM path of :mod:`.conv` puts output positions in the lanes of its micro-tiles, so 49
positions fill two 32-wide panels (64 columns, a quarter of them padding) and 196 fill seven
(224). Here the product is transposed, ``C^T[P, M] = X^T[P, K] @ W^T[K, M]``: the positions
are the micro-tile's rows (MR of them, chosen to divide P where it can: 49 = 7 x 7), the
output channels its lanes. The weights are packed at compile time as panels of output
channels; the input is gathered into slivers of MR positions per K block, through a table of
each tap's input offset per position (built at compile time, -1 in the padding). A second
kernel writes the transposed result from the workspace into the NCHW output and runs the bias
and the fused epilogue on each channel's plane while it is in cache.
"""

from __future__ import annotations

import numpy as np
from llvmlite import ir

from byoc_cpu_llvm.codegen import F32, I64, const_i64, splat
from byoc_cpu_llvm.kernels.epilogue import Epilogue
from byoc_cpu_llvm.kernels.gemm_driver import (
    GemmPlan,
    a_scratch_size,
    choose_mr,
    emit_gemm,
    lanes,
    pack_b,
    panel_width,
)
from byoc_cpu_llvm.kernels.microkernel import lane_mask, masked_gather, masked_load, vec_type

# At most this many output positions, at least this many bytes of weights and a panel's worth
# of output channels. Measured on ResNet-50 (per-kernel times of the whole model): its 7x7
# layers, whose weights (4-9 MB) come from memory, run 10-20% faster here; with 196 positions
# (14x14) the gathers and the write-out cost what the padding saved, and on a single layer
# whose weights stay in cache (benchmarks/conv_layers.py) the GEMM path is faster.
MAX_POSITIONS = 64
MIN_WEIGHT_BYTES = 1 << 20
MIN_CHANNELS = 32


def narrow_fits(geo) -> bool:
    """Whether a convolution (:class:`~.conv.ConvGeometry`) takes this path: one group, few
    output positions that do not fill whole panels, large weights and a panel's worth of
    channels."""
    positions = geo.oh * geo.ow
    return (geo.groups == 1 and positions <= MAX_POSITIONS and positions % panel_width()
            and geo.m >= MIN_CHANNELS and geo.m * geo.k * 4 >= MIN_WEIGHT_BYTES)


def tap_offsets(geo, padded: int) -> np.ndarray:
    """``[taps, padded]``: the offset in its input plane of each tap of each output position,
    -1 where the tap falls in the padding (and for positions past the last)."""
    taps = geo.kh * geo.kw
    table = np.full((taps, padded), -1, np.int64)
    p = np.arange(geo.oh * geo.ow)
    oh, ow = p // geo.ow, p % geo.ow
    for tap in range(taps):
        kh, kw = divmod(tap, geo.kw)
        ih = oh * geo.sh - geo.pt + kh * geo.dh
        iw = ow * geo.sw - geo.pl + kw * geo.dw
        inside = (ih >= 0) & (ih < geo.h) & (iw >= 0) & (iw < geo.w)
        table[tap, :p.size] = np.where(inside, ih * geo.w + iw, -1)
    return table


def emit_narrow(program, group, geo, epi: Epilogue) -> None:
    """The transposed product and the kernel writing it out (see the module docstring)."""
    graph = program.graph
    node = group.head
    tag = node.name or "conv"
    positions = geo.oh * geo.ow
    mr = choose_mr(positions)
    padded = -(-positions // mr) * mr
    weights = np.asarray(graph.constants[node.inputs[1]], np.float32).reshape(geo.m, geo.k)
    w_slot = program.constant(f"{tag}__{node.inputs[1]}__narrow",
                              pack_b(np.ascontiguousarray(weights.T), panel_width()))
    table_slot = None
    if not geo.pointwise:
        key = "conv_narrow_taps_" + "_".join(map(str, (
            geo.h, geo.w, geo.oh, geo.ow, geo.kh, geo.kw, geo.sh, geo.sw, geo.dh, geo.dw,
            geo.pt, geo.pl, padded)))
        table_slot = program.constant(key, tap_offsets(geo, padded))
    work = program.workspace("conv_narrow_workspace", np.float32, geo.n * positions * geo.m)
    a_scratch = program.scratch(f"{tag}__narrow_a", np.float32,
                                a_scratch_size(positions, mr, geo.k))
    x_slot, out_slot = program.value(node.inputs[0]), program.value(group.output)
    # Layers of one geometry (ResNet-50's repeated blocks) share both kernels.
    geometry = geo.signature
    program.shared_kernel(
        tag + "_narrow", ("conv_narrow", geometry, mr, padded, lanes()),
        [s for s in (x_slot, w_slot, table_slot, work, a_scratch) if s is not None],
        lambda kb: _product(program, kb, geo, mr, padded, x_slot, w_slot, table_slot, work,
                            a_scratch))
    epilogue = epi.signature()
    program.shared_kernel(
        tag + "_narrow_out",
        None if epilogue is None else ("conv_narrow_out", geometry, lanes(), epilogue),
        [work, out_slot, *epi.operand_slots()],
        lambda kb: _write_out(kb, geo, work, out_slot, epi))


def _product(program, kb, geo, mr, padded, x_slot, w_slot, table_slot, work_slot,
             a_scratch) -> None:
    """``C^T[n] = X^T[n] @ W^T`` into the workspace, ``[N, P, M]``."""
    positions = geo.oh * geo.ow
    nr = panel_width()
    taps = geo.kh * geo.kw
    b = kb.b
    x, w, work = kb.buffer(x_slot), kb.buffer(w_slot), kb.buffer(work_slot)
    table = kb.buffer(table_slot) if table_slot is not None else None
    vt = vec_type(mr)
    offsets_t = ir.VectorType(I64, mr)

    def a_prepare(kb_, batch, k0, kc, mt0, mt1, dest, kc_max):
        image = b.mul(batch, const_i64(geo.c))
        with kb.loop(mt0, mt1, name="na_t") as mt:
            first = b.mul(mt, const_i64(mr))
            sliver = kb.element(dest, b.mul(b.sub(mt, mt0), const_i64(kc_max * mr)), F32)
            inside = lane_mask(b, b.sub(const_i64(positions), first), mr)
            with kb.loop(const_i64(0), kc, name="na_k") as kk:
                k = b.add(k0, kk)
                if table is None:       # 1x1, stride 1, unpadded: positions are contiguous
                    plane = b.mul(b.add(image, k), const_i64(geo.h * geo.w))
                    value = masked_load(b, kb.module, kb.element(x, b.add(plane, first), F32),
                                        inside, vt)
                else:
                    channel, tap = b.sdiv(k, const_i64(taps)), b.srem(k, const_i64(taps))
                    row = kb.element(table, b.add(b.mul(tap, const_i64(padded)), first), I64)
                    offsets = b.load(row, typ=offsets_t, align=8)
                    valid = b.icmp_signed(">=", offsets, ir.Constant(offsets_t, [0] * mr))
                    plane = kb.element(x, b.mul(b.add(image, channel),
                                                const_i64(geo.h * geo.w)), F32)
                    base = b.ptrtoint(plane, I64)
                    addresses = b.add(splat(b, base, mr),
                                      b.mul(offsets, ir.Constant(offsets_t, [4] * mr)))
                    value = masked_gather(b, kb.module,
                                          b.inttoptr(addresses, ir.VectorType(plane.type, mr)),
                                          valid, ir.Constant(vt, None), 4)
                b.store(value, kb.element(sliver, b.mul(kk, const_i64(mr)), F32), align=4)

    def b_const(kb_, batch, panel, k0):
        return kb.element(w, b.add(b.mul(panel, const_i64(geo.k * nr)),
                                   b.mul(k0, const_i64(nr))), F32)

    def c_info(kb_, batch):
        return (kb.element(work, b.mul(batch, const_i64(positions * geo.m)), F32), {},
                const_i64(0))

    plan = GemmPlan(m=positions, n=geo.m, k=geo.k, batches=geo.n, mr=mr, a_ptr=None,
                    c_info=c_info, epilogue=Epilogue((geo.n, positions, geo.m), 1, [2]),
                    b_const=b_const, a_prepare=a_prepare, a_scratch=a_scratch)
    emit_gemm(program, kb, plan, work)


def _write_out(kb, geo, work_slot, out_slot, epi: Epilogue) -> None:
    """``out[n, m, p] = C^T[n, p, m]``, then the epilogue on each channel's plane."""
    positions = geo.oh * geo.ow
    L = lanes()
    width = -(-positions // L) * L
    b = kb.b
    work, out = kb.buffer(work_slot), kb.buffer(out_slot)
    epi.bind(kb)
    begin, end = kb.thread_share(geo.n * geo.m)
    with kb.loop(begin, end, name="plane") as plane:
        n = b.sdiv(plane, const_i64(geo.m))
        m = b.srem(plane, const_i64(geo.m))
        source = b.add(b.mul(n, const_i64(positions * geo.m)), m)
        target = b.mul(plane, const_i64(positions))
        with kb.loop(0, positions, name="p") as p:
            value = kb.load(work, b.add(source, b.mul(p, const_i64(geo.m))), F32)
            kb.store(value, out, b.add(target, p))
        epi.apply_tile(kb, out, {0: n}, m, const_i64(1), const_i64(0), const_i64(positions),
                       L, width)


__all__ = ["emit_narrow", "narrow_fits", "tap_offsets"]
