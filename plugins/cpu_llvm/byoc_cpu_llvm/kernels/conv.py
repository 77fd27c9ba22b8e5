"""Float32 convolution: any kernel, stride, padding, dilation and groups.

2-D convolutions with constant weights take the packed GEMM path below. Run-time weights, and
1-D or 3-D+ convolutions, take the direct path (:func:`float_gather`, shared with
ConvTranspose and the integer convolutions): each output element sums its window straight
from the input and weight buffers, one element at a time.

Per (image, group) a convolution is the product ``W[Mg, Cg*KH*KW] @ cols[Cg*KH*KW, OH*OW]``
run by the blocked GEMM driver (:mod:`~byoc_cpu_llvm.kernels.gemm_driver`): the weights are packed
at compile time, the columns (im2col) are built per (K block, N block) into per-thread
scratch, one input row segment at a time (zero padding outside the image), and packed into
panels. 1x1 stride-1 unpadded convolutions pack the input rows directly; other stride-1
convolutions with as many output as input columns (3x3 "same" ones) pack each row of the
column matrix straight from the input as a shifted view of its channel plane, with masked
vector loads whose masks (a table per tap, built at compile time) zero the padding.
3x3 stride-1 convolutions with enough output tiles take Winograd F(4x4, 3x3) instead
(:mod:`~byoc_cpu_llvm.kernels.winograd`).
Convolutions with one input channel per group (depthwise) use the register-tiled kernel of
:mod:`~byoc_cpu_llvm.kernels.depthwise`, or, past its unrolled taps, a direct kernel that
accumulates whole output rows in memory.
The bias and the fused epilogue nodes run on each tile while it is in cache.
"""

from __future__ import annotations

import numpy as np
from llvmlite import ir

from byoc.core.interpreter import window as win
from byoc.core.ir import Graph, Node
from byoc_cpu_llvm.codegen import F32, I64, const_i64, smax, smin, splat
from byoc_cpu_llvm.kernels import lowering
from byoc_cpu_llvm.kernels.conv_narrow import emit_narrow, narrow_fits
from byoc_cpu_llvm.kernels.depthwise import depthwise_fits, emit_depthwise
from byoc_cpu_llvm.kernels.epilogue import Epilogue, add_scaled_step
from byoc_cpu_llvm.kernels.gemm_driver import (
    NC_PANELS,
    NRV,
    GemmPlan,
    a_block_offset,
    b_scratch_size,
    choose_mr,
    emit_gemm,
    lanes,
    pack_a_by_k_block,
    pack_rows,
    panel_width,
)
from byoc_cpu_llvm.kernels.microkernel import masked_load, vec_type
from byoc_cpu_llvm.kernels.reduction_parts import Epilogue as ReduceEpilogue
from byoc_cpu_llvm.kernels.reduction_parts import Var
from byoc_cpu_llvm.kernels.scalar_ops import EMITTERS
from byoc_cpu_llvm.kernels.winograd import emit_winograd, winograd_fits

F32_DTYPE = np.dtype(np.float32)


def check_conv(node: Node, graph: Graph) -> str | None:
    for value in node.present_inputs + node.outputs[:1]:
        if graph.types[value].dtype != np.float32:
            return "cpu_llvm Conv handles float32 only"
    if _direct_only(node, graph):
        bias = node.inputs[2] if len(node.inputs) > 2 else ""
        if bias and graph.types[bias].size != graph.types[node.inputs[1]].shape[0]:
            return "Conv bias must hold one value per output channel"
        return conv_shape_refusal(node, graph, node.inputs[0], node.inputs[1], node.outputs[0])
    return None


class ConvGeometry:
    """The sizes of a 2-D NCHW convolution, its window (strides, dilations, pads) and the
    matrix product it becomes per (image, group): M = output channels per group, K = input
    channels per group x kernel taps, N = output positions."""

    def __init__(self, node: Node, x_shape, w_shape):
        attrs = node.attrs
        self.n, self.c, self.h, self.w = x_shape
        self.m = w_shape[0]
        self.kh, self.kw = w_shape[2:]
        self.groups = int(attrs.get("group", 1))
        window = win.plan((self.h, self.w), (self.kh, self.kw), strides=attrs.get("strides"),
                          dilations=attrs.get("dilations"), pads=attrs.get("pads"),
                          auto_pad=attrs.get("auto_pad", "NOTSET"))
        self.sh, self.sw = window.strides
        self.dh, self.dw = window.dilations
        self.pt, self.pl = window.pads_begin
        self.oh, self.ow = window.out_shape
        self.cg = self.c // self.groups
        self.mg = self.m // self.groups
        self.k = self.cg * self.kh * self.kw
        self.cols = self.oh * self.ow

    @property
    def signature(self) -> tuple:
        """Every size of the convolution, for kernels shared by layers of one geometry."""
        return tuple(sorted(vars(self).items()))

    @property
    def shifted(self) -> bool:
        """Stride 1 and as many output as input columns: column ``q`` of row ``(c, kh, kw)``
        of the column matrix is element ``q + (kh * dh - pt) * W + kw * dw - pl`` of input
        plane ``c``, or zero where the tap falls in the padding (see :meth:`tap_masks`)."""
        return self.sh == self.sw == 1 and self.ow == self.w

    def tap_masks(self, lanes: int, vectors: int) -> np.ndarray:
        """For a :attr:`shifted` convolution: per tap, ``vectors`` lane masks (bit ``i`` of
        entry ``t`` for column ``t * lanes + i``) of the columns whose tap is inside the
        input. Columns past the last output position read whatever their tap finds inside the
        input: only C columns past the output take it, and those are never stored."""
        q = np.arange(vectors * lanes)
        oh, ow = q // self.ow, q % self.ow
        bits = 1 << np.arange(lanes, dtype=np.int64)
        table = np.zeros((self.kh * self.kw, vectors), np.int64)
        for tap in range(self.kh * self.kw):
            kh, kw = divmod(tap, self.kw)
            ih = oh + kh * self.dh - self.pt
            iw = ow + kw * self.dw - self.pl
            inside = (ih >= 0) & (ih < self.h) & (iw >= 0) & (iw < self.w)
            table[tap] = (inside.reshape(vectors, lanes) * bits).sum(axis=1)
        return table

    def tap_shift(self, b: ir.IRBuilder, tap: ir.Value) -> ir.Value:
        """For a :attr:`shifted` convolution: where tap ``tap`` (``kh * KW + kw``) views a
        channel plane, ``(kh * dh - pt) * W + kw * dw - pl`` elements from it."""
        kh, kw = b.sdiv(tap, const_i64(self.kw)), b.srem(tap, const_i64(self.kw))
        return b.add(b.mul(b.sub(b.mul(kh, const_i64(self.dh)), const_i64(self.pt)),
                           const_i64(self.w)),
                     b.sub(b.mul(kw, const_i64(self.dw)), const_i64(self.pl)))

    @property
    def pointwise(self) -> bool:
        """A 1x1, stride-1, unpadded convolution: its input already is the column matrix."""
        return (self.kh == self.kw == 1 and self.sh == self.sw == 1 and self.pt == self.pl == 0
                and self.oh == self.h and self.ow == self.w)

    def ow_ranges(self) -> np.ndarray:
        """For each kernel column: the output columns [lo, hi) whose tap is inside the input."""
        table = []
        for kw in range(self.kw):
            off = kw * self.dw - self.pl
            lo = min(self.ow, max(0, -(off // self.sw)))
            hi = min(self.ow, max(lo, -((off - self.w) // self.sw)))
            table += [lo, hi]
        return np.asarray(table, np.int64)


@lowering("Conv", check=check_conv, epilogue=True)
def lower_conv(program, group) -> None:
    graph = program.graph
    node = group.head
    if _direct_only(node, graph):
        geo = conv_gather_geometry(node, graph.types[node.inputs[0]].shape,
                                   graph.types[node.inputs[1]].shape)
        bias = node.inputs[2] if len(node.inputs) > 2 and node.inputs[2] else None
        float_gather(program, group, geo, node.inputs[0], node.inputs[1], bias,
                     node.name or "conv")
        return
    geo = ConvGeometry(node, graph.types[node.inputs[0]].shape,
                       graph.types[node.inputs[1]].shape)
    out_shape = (geo.n, geo.m, geo.oh, geo.ow)
    epi = Epilogue(out_shape, 1, [2, 3])
    if len(node.inputs) > 2 and node.inputs[2]:
        bias = epi.operand(program, node.inputs[2], [0, 1, 0, 0])
        epi.add_step(add_scaled_step(1.0), [None, bias])
    epi.add_nodes(program, group)
    {"depthwise": emit_depthwise, "direct": _lower_direct, "winograd": emit_winograd,
     "narrow": emit_narrow, "gemm": _lower_gemm}[_path(geo)](program, group, geo, epi)


def _path(geo: ConvGeometry) -> str:
    if depthwise_fits(geo) and geo.mg < 4:
        return "depthwise"
    if geo.cg == 1 and geo.mg < 4:
        return "direct"
    if winograd_fits(geo):
        return "winograd"
    if narrow_fits(geo):
        return "narrow"
    return "gemm"


def takes_prologue(node: Node, graph: Graph) -> bool:
    """Whether the convolution can normalize its input as it packs it (a BatchNormalization
    [+ Relu] prologue, see :func:`byoc_cpu_llvm.fusion.attach_prologues`): a pointwise one on
    the GEMM path."""
    if node.op_type != "Conv" or check_conv(node, graph) or _direct_only(node, graph):
        return False
    geo = ConvGeometry(node, graph.types[node.inputs[0]].shape,
                       graph.types[node.inputs[1]].shape)
    return geo.pointwise and geo.groups == 1 and _path(geo) == "gemm"


def _prologue(program, group, channels: int) -> tuple[str, int | None, bool]:
    """(the value the convolution reads, the slot of its per-channel scale and shift, whether
    a Relu follows) for ``group``'s BatchNormalization prologue (None: no prologue)."""
    node = group.head
    if not group.prologue:
        return node.inputs[0], None, False
    bn, graph = group.prologue[0], program.graph
    gamma, beta, mean, var = (np.asarray(graph.constants[v], np.float64)
                              for v in bn.inputs[1:5])
    scale = gamma / np.sqrt(var + float(bn.attrs.get("epsilon", 1e-5)))
    table = np.stack([scale, beta - mean * scale]).astype(np.float32).reshape(2, channels)
    slot = program.constant(f"{node.name or 'conv'}__{bn.outputs[0]}__prologue", table)
    return bn.inputs[0], slot, len(group.prologue) > 1


def _lower_gemm(program, group, geo: ConvGeometry, epi: Epilogue) -> None:
    graph = program.graph
    node = group.head
    tag = node.name or "conv"
    nr = panel_width()
    mr = choose_mr(geo.mg)
    mtiles = -(-geo.mg // mr)
    weights = np.asarray(graph.constants[node.inputs[1]], np.float32)
    packed = pack_a_by_k_block(weights.reshape(geo.groups, geo.mg, geo.k), mr)
    a_slot = program.constant(f"{tag}__{node.inputs[1]}__apack", packed)
    x_name, prologue_slot, prologue_relu = _prologue(program, group, geo.c)
    x_slot = program.value(x_name)
    out_slot = program.value(group.output)
    b_scratch = program.scratch(f"{tag}__bscr", np.float32, b_scratch_size(geo.k))
    ranges_slot = row_scratch = masks_slot = None
    if geo.shifted and not geo.pointwise:
        masks_slot = tap_masks_constant(program, geo, lanes(), _mask_vectors(geo))
    elif not geo.pointwise:
        ranges_slot = program.constant(f"{tag}__owranges", geo.ow_ranges())
        row_scratch = program.scratch(f"{tag}__rowbuf", np.float32, NC_PANELS * nr)

    def build(kb):
        b = kb.b
        out = kb.buffer(out_slot)
        x = kb.buffer(x_slot)
        a_base = kb.buffer(a_slot)
        ranges = kb.buffer(ranges_slot) if ranges_slot is not None else None
        masks = kb.buffer(masks_slot) if masks_slot is not None else None
        rowbuf = (kb.element(kb.buffer(row_scratch), b.mul(kb.tid, const_i64(NC_PANELS * nr)), F32)
                  if row_scratch is not None else None)
        hw = geo.h * geo.w

        def split(batch):
            return b.sdiv(batch, const_i64(geo.groups)), b.srem(batch, const_i64(geo.groups))

        def a_ptr(kb_, batch, mt, k0):
            _, g = split(batch)
            off = b.add(b.mul(g, const_i64(mtiles * geo.k * mr)),
                        a_block_offset(b, geo.mg, mr, geo.k, mt, k0))
            return kb.element(a_base, off, F32)

        def c_info(kb_, batch):
            n, g = split(batch)
            row_base = b.mul(g, const_i64(geo.mg))
            off = b.mul(b.add(b.mul(n, const_i64(geo.m)), row_base), const_i64(geo.cols))
            return kb.element(out, off, F32), {0: n}, row_base

        def channel_plane(batch, k):
            n, g = split(batch)
            channel = b.add(b.add(b.mul(n, const_i64(geo.c)), b.mul(g, const_i64(geo.cg))), k)
            return b.mul(channel, const_i64(hw))

        def b_pack(kb_, batch, k0, kc, col0, ncols, dest, stride):
            transform = None
            if geo.pointwise:
                def row(kk):
                    off = b.add(channel_plane(batch, b.add(k0, kk)), col0)
                    return kb.element(x, off, F32)

                if prologue_slot is not None:
                    transform = _normalizer(kb, prologue_slot, geo.c, k0, prologue_relu)
            elif masks is not None:
                _pack_shifted(kb, geo, x, masks, batch, k0, kc, col0, ncols, dest, stride,
                              channel_plane)
                return
            else:
                def row(kk):
                    _fill_row(kb, geo, x, ranges, rowbuf, batch, b.add(k0, kk), col0, ncols,
                              channel_plane)
                    return rowbuf
            pack_rows(kb_, row, kc, ncols, dest, stride, transform)

        plan = GemmPlan(m=geo.mg, n=geo.cols, k=geo.k, batches=geo.n * geo.groups, mr=mr,
                        a_ptr=a_ptr, c_info=c_info, epilogue=epi, b_pack=b_pack,
                        b_scratch=b_scratch)
        emit_gemm(program, kb, plan, out)

    # Layers of one geometry and epilogue (ResNet-50 repeats its blocks) share the kernel.
    epilogue = epi.signature()
    signature = None if epilogue is None else (
        "conv_gemm", geo.signature, mr, nr, epilogue, prologue_slot is not None, prologue_relu)
    slots = [s for s in (out_slot, x_slot, a_slot, ranges_slot, masks_slot, row_scratch,
                         b_scratch, prologue_slot) if s is not None]
    program.shared_kernel(tag, signature, slots + epi.operand_slots(), build)


def _normalizer(kb, slot: int, channels: int, k0, relu: bool):
    """``transform(kk)`` for :func:`pack_rows`: row ``k0 + kk`` (an input channel) scaled and
    shifted by the prologue's table (``slot``: scales, then shifts), then Relu'd."""
    b = kb.b
    table = kb.buffer(slot)

    def transform(kk):
        channel = b.add(k0, kk)
        scale = splat(b, kb.load(table, channel, F32), lanes())
        shift = splat(b, kb.load(table, b.add(channel, const_i64(channels)), F32), lanes())

        def apply(value):
            value = b.fadd(b.fmul(value, scale), shift)
            if relu:
                return EMITTERS["Relu"](kb, "Relu", [value], {}, [F32_DTYPE], F32_DTYPE)
            return value
        return apply
    return transform


def _pack_shifted(kb, geo: ConvGeometry, x, masks, batch, k0, kc, col0, ncols, dest,
                  panel_stride: int, channel_plane) -> None:
    """Pack rows [k0, k0 + kc) of a :attr:`~ConvGeometry.shifted` convolution's column matrix,
    columns [col0, col0 + ncols), into panels at ``dest``: one masked vector load per
    ``lanes`` columns, straight from the input (masked-off lanes are padding: read as zero and
    never touched, so their addresses may fall outside the input)."""
    b = kb.b
    L, nr = lanes(), panel_width()
    vt = vec_type(L)
    taps = geo.kh * geo.kw
    mask_t = ir.VectorType(ir.IntType(1), L)
    panels = b.sdiv(b.add(ncols, const_i64(nr - 1)), const_i64(nr))
    first_vector = b.sdiv(col0, const_i64(L))
    with kb.loop(const_i64(0), kc, name="pk") as kk:
        k = b.add(k0, kk)
        tap = b.srem(k, const_i64(taps))
        offset = geo.tap_shift(b, tap)
        plane = channel_plane(batch, b.sdiv(k, const_i64(taps)))
        src = b.gep(x, [b.add(b.add(plane, col0), offset)], source_etype=F32)
        mask_row = b.add(b.mul(tap, const_i64(_mask_vectors(geo))), first_vector)
        with kb.loop(const_i64(0), panels, name="pj") as j:
            for v in range(NRV):
                col = b.add(b.mul(j, const_i64(nr)), const_i64(v * L))
                bits = kb.load(masks, b.add(mask_row, b.sdiv(col, const_i64(L))), I64)
                mask = b.bitcast(b.trunc(bits, ir.IntType(L)), mask_t)
                value = masked_load(b, kb.module, b.gep(src, [col], source_etype=F32), mask, vt)
                dest_off = b.add(b.add(b.mul(j, const_i64(panel_stride)),
                                       b.mul(kk, const_i64(nr))), const_i64(v * L))
                b.store(value, kb.element(dest, dest_off, F32), align=4)


def tap_masks_constant(program, geo: ConvGeometry, lanes_: int, vectors: int) -> int:
    """The slot of ``geo.tap_masks(lanes_, vectors)``, keyed by what the table depends on so
    that the layers of one geometry share it."""
    key = "conv_tapmasks_" + "_".join(map(str, (
        geo.h, geo.w, geo.oh, geo.kh, geo.kw, geo.dh, geo.dw, geo.pt, geo.pl, lanes_, vectors)))
    return program.constant(key, geo.tap_masks(lanes_, vectors))


def _mask_vectors(geo: ConvGeometry) -> int:
    """Lane masks per tap in a :attr:`~ConvGeometry.shifted` convolution's table: the output
    positions rounded up to whole panels."""
    nr = panel_width()
    return -(-geo.cols // nr) * (nr // lanes())


def row_segment(b: ir.IRBuilder, geo: ConvGeometry, oh: ir.Value, col0: ir.Value,
                end: ir.Value, lo_kw: ir.Value, hi_kw: ir.Value, off_h: ir.Value):
    """Output row ``oh`` against the block of output columns [col0, end), for one kernel tap
    (``lo_kw``, ``hi_kw``: its in-bounds output columns; ``off_h``: its input row offset):
    ``(start, seg_lo, seg_hi, ih, lo, hi)`` with ``start`` the row's first flat column, [seg_lo,
    seg_hi) the block's part of the row and ``ih`` the input row read; [lo, hi) is the run
    that reads the input, [seg_lo, lo) and [hi, seg_hi) are padding (all of it when ``ih`` is
    outside the input). Columns are relative to ``start``."""
    ow_n = const_i64(geo.ow)
    start = b.mul(oh, ow_n)
    seg_lo = b.sub(smax(b, col0, start), start)
    seg_hi = b.sub(smin(b, end, b.add(start, ow_n)), start)
    ih = b.add(b.mul(oh, const_i64(geo.sh)), off_h)
    valid = b.icmp_unsigned("<", ih, const_i64(geo.h))
    lo = smin(b, smax(b, seg_lo, lo_kw), seg_hi)
    hi = smax(b, lo, smin(b, seg_hi, hi_kw))
    return start, seg_lo, seg_hi, ih, b.select(valid, lo, seg_hi), b.select(valid, hi, seg_hi)


def _fill_row(kb, geo: ConvGeometry, x, ranges, rowbuf, batch, k, col0, ncols, channel_plane):
    """Write row ``k`` of the im2col matrix, columns [col0, col0 + ncols), to ``rowbuf``."""
    b = kb.b
    taps = geo.kh * geo.kw
    c = b.sdiv(k, const_i64(taps))
    tap = b.srem(k, const_i64(taps))
    kh = b.sdiv(tap, const_i64(geo.kw))
    kw = b.srem(tap, const_i64(geo.kw))
    plane = channel_plane(batch, c)
    lo_kw = kb.load(ranges, b.mul(kw, const_i64(2)), I64)
    hi_kw = kb.load(ranges, b.add(b.mul(kw, const_i64(2)), const_i64(1)), I64)
    off_w = b.sub(b.mul(kw, const_i64(geo.dw)), const_i64(geo.pl))
    off_h = b.sub(b.mul(kh, const_i64(geo.dh)), const_i64(geo.pt))
    ow_n = const_i64(geo.ow)
    end = b.add(col0, ncols)
    oh_first = b.sdiv(col0, ow_n)
    oh_end = b.add(b.sdiv(b.sub(end, const_i64(1)), ow_n), const_i64(1))
    zero = ir.Constant(F32, 0.0)
    with kb.loop(oh_first, oh_end, name="oh") as oh:
        start, seg_lo, seg_hi, ih, lo, hi = row_segment(b, geo, oh, col0, end, lo_kw, hi_kw,
                                                        off_h)
        shift = b.sub(start, col0)          # rowbuf index of output column 0 of this row
        with kb.loop(seg_lo, lo, name="z0") as ow:
            kb.store(zero, rowbuf, b.add(shift, ow))
        src_row = b.add(plane, b.add(b.mul(ih, const_i64(geo.w)), off_w))
        with kb.loop(lo, hi, name="cp") as ow:
            value = kb.load(x, b.add(src_row, b.mul(ow, const_i64(geo.sw))), F32)
            kb.store(value, rowbuf, b.add(shift, ow))
        with kb.loop(hi, seg_hi, name="z1") as ow:
            kb.store(zero, rowbuf, b.add(shift, ow))


def _lower_direct(program, group, geo: ConvGeometry, epi: Epilogue) -> None:
    """One input channel per group: accumulate each output row over the taps in memory."""
    graph = program.graph
    node = group.head
    tag = node.name or "conv"
    L, nr = lanes(), panel_width()
    weights = np.asarray(graph.constants[node.inputs[1]], np.float32).reshape(geo.m, -1)
    w_slot = program.constant(f"{tag}__{node.inputs[1]}__direct", weights)
    ranges_slot = program.constant(f"{tag}__owranges", geo.ow_ranges())
    x_slot = program.value(node.inputs[0])
    out_slot = program.value(group.output)

    kb = program.kernel(tag)
    b = kb.b
    out, x = kb.buffer(out_slot), kb.buffer(x_slot)
    w_base, ranges = kb.buffer(w_slot), kb.buffer(ranges_slot)
    epi.bind(kb)
    zero = ir.Constant(F32, 0.0)
    begin, end = kb.thread_share(geo.n * geo.m)
    with kb.loop(begin, end, name="plane") as plane:
        n = b.sdiv(plane, const_i64(geo.m))
        m = b.srem(plane, const_i64(geo.m))
        channel = b.add(b.mul(n, const_i64(geo.c)), b.sdiv(m, const_i64(geo.mg)))
        x_plane = b.mul(channel, const_i64(geo.h * geo.w))
        o_plane = b.mul(plane, const_i64(geo.cols))
        with kb.loop(0, geo.oh, name="oh") as oh:
            o_row = b.add(o_plane, b.mul(oh, const_i64(geo.ow)))
            with kb.loop(0, geo.ow, name="z") as ow:
                kb.store(zero, out, b.add(o_row, ow))
            with kb.loop(0, geo.kh, name="kh") as kh:
                ih = b.add(b.mul(oh, const_i64(geo.sh)),
                           b.sub(b.mul(kh, const_i64(geo.dh)), const_i64(geo.pt)))
                with b.if_then(b.icmp_unsigned("<", ih, const_i64(geo.h))):
                    x_row = b.add(x_plane, b.mul(ih, const_i64(geo.w)))
                    with kb.loop(0, geo.kw, name="kw") as kw:
                        tap = b.add(b.mul(kh, const_i64(geo.kw)), kw)
                        wv = kb.load(w_base, b.add(b.mul(m, const_i64(geo.kh * geo.kw)), tap),
                                     F32)
                        lo = kb.load(ranges, b.mul(kw, const_i64(2)), I64)
                        hi = kb.load(ranges, b.add(b.mul(kw, const_i64(2)), const_i64(1)), I64)
                        off = b.sub(b.mul(kw, const_i64(geo.dw)), const_i64(geo.pl))
                        with kb.loop(lo, hi, name="ow") as ow:
                            xv = kb.load(x, b.add(x_row, b.add(b.mul(ow, const_i64(geo.sw)),
                                                               off)), F32)
                            slot = b.add(o_row, ow)
                            acc = kb.load(out, slot, F32)
                            kb.store(kb.fma(wv, xv, acc), out, slot)
        if not epi.empty:
            with kb.loop(0, -(-geo.cols // nr), name="ec") as chunk:
                col0 = b.mul(chunk, const_i64(nr))
                cols = smin(b, const_i64(nr), b.sub(const_i64(geo.cols), col0))
                epi.apply_tile(kb, out, {0: n}, m, const_i64(1), col0, cols, L, nr)
    kb.finish()




# -- the direct (gather) path: any rank, weights read as they are at run time ----------------


class WindowGather:
    """Geometry of a direct window sum over ``N x C x D1 x ... x Dr`` input: output element
    ``(n, m, o)`` of group ``g = m // mg`` sums, over the group's ``cg`` input channels and
    the ``kernel`` taps, ``x[n, g * cg + c, i(o, tap)] * w[...]``. For a convolution
    ``i = o * s - pad + tap * d``; for a transposed one (``transpose``) ``i = q / s`` where
    ``q = o + pad - tap * d`` must be a non-negative multiple of ``s``. Weights are read as
    ``M x cg x taps`` (convolution) or ``C x mg x taps`` (transposed)."""

    def __init__(self, x_shape, out_shape, kernel, strides, dilations, pads, groups: int,
                 transpose: bool = False):
        self.n, self.c = x_shape[:2]
        self.in_shape = tuple(x_shape[2:])
        self.m = out_shape[1]
        self.out_spatial = tuple(out_shape[2:])
        self.kernel, self.strides = tuple(kernel), tuple(strides)
        self.dilations, self.pads = tuple(dilations), tuple(pads)
        self.groups, self.transpose = groups, transpose
        self.cg, self.mg = self.c // groups, self.m // groups
        self.taps = int(np.prod(self.kernel, dtype=np.int64))
        self.positions = int(np.prod(self.out_spatial, dtype=np.int64))
        self.in_size = int(np.prod(self.in_shape, dtype=np.int64))

    @property
    def out_shape(self) -> tuple[int, ...]:
        return (self.n, self.m) + self.out_spatial


def _unravel(b, index, sizes):
    coords = []
    for size in reversed(sizes):
        coords.append(b.urem(index, const_i64(size)))
        index = b.udiv(index, const_i64(size))
    return coords[::-1]


def emit_gather(kb, geo: WindowGather, zero, term, store) -> None:
    """Each thread's share of the output elements: ``acc = zero``, then for every input
    channel of the group and every tap inside the input ``acc = term(acc, x_offset,
    w_offset, m)``, then ``store(acc, flat, m)`` (``flat`` the output element's index)."""
    b = kb.b
    acc = Var(kb, zero.type, name="acc")
    begin, end = kb.thread_share(geo.n * geo.m * geo.positions)
    with kb.loop(begin, end, name="out") as flat:
        p = b.urem(flat, const_i64(geo.positions))
        nm = b.udiv(flat, const_i64(geo.positions))
        m = b.urem(nm, const_i64(geo.m))
        n = b.udiv(nm, const_i64(geo.m))
        g = b.udiv(m, const_i64(geo.mg))
        outs = _unravel(b, p, geo.out_spatial)
        acc.set(zero)
        first_channel = b.add(b.mul(n, const_i64(geo.c)), b.mul(g, const_i64(geo.cg)))
        with kb.loop(0, geo.cg, name="ci") as c:
            x_plane = b.mul(b.add(first_channel, c), const_i64(geo.in_size))
            if geo.transpose:
                w_row = b.add(b.mul(b.add(b.mul(g, const_i64(geo.cg)), c), const_i64(geo.mg)),
                              b.sub(m, b.mul(g, const_i64(geo.mg))))
            else:
                w_row = b.add(b.mul(m, const_i64(geo.cg)), c)
            w_base = b.mul(w_row, const_i64(geo.taps))
            with kb.loop(0, geo.taps, name="tap") as t:
                ks = _unravel(b, t, geo.kernel)
                valid = ir.Constant(ir.IntType(1), 1)
                x_off = x_plane
                stride = geo.in_size
                for o, k, s, d, pad, size in zip(outs, ks, geo.strides, geo.dilations,
                                                 geo.pads, geo.in_shape):
                    stride //= size
                    if geo.transpose:
                        q = b.sub(b.add(o, const_i64(pad)), b.mul(k, const_i64(d)))
                        ok = b.icmp_signed(">=", q, const_i64(0))
                        if s != 1:
                            ok = b.and_(ok, b.icmp_signed("==", b.srem(q, const_i64(s)),
                                                          const_i64(0)))
                            q = b.sdiv(q, const_i64(s))
                        i = q
                        ok = b.and_(ok, b.icmp_signed("<", i, const_i64(size)))
                    else:
                        i = b.add(b.sub(b.mul(o, const_i64(s)), const_i64(pad)),
                                  b.mul(k, const_i64(d)))
                        ok = b.icmp_unsigned("<", i, const_i64(size))
                    valid = b.and_(valid, ok)
                    x_off = b.add(x_off, b.mul(i, const_i64(stride)))
                with b.if_then(valid):
                    acc.set(term(acc.get(), x_off, b.add(w_base, t), m))
        store(acc.get(), flat, m)


def float_gather(program, group, geo: WindowGather, x_name: str, w_name: str,
                 bias_name: str | None, tag: str) -> None:
    """A float32 direct window sum plus an optional per-channel bias, then the group's
    epilogue; weights and bias are read from their buffers as they are (constant or not)."""
    epilogue = ReduceEpilogue(program, group, geo.out_shape)
    x_slot, w_slot = program.value(x_name), program.value(w_name)
    bias_slot = program.value(bias_name) if bias_name else None
    out_slot = program.value(group.output)
    kb = program.kernel(tag)
    epilogue.bind(kb)
    x, w, out = kb.buffer(x_slot), kb.buffer(w_slot), kb.buffer(out_slot)
    bias = kb.buffer(bias_slot) if bias_slot is not None else None
    b = kb.b

    def term(acc, x_off, w_off, m):
        return kb.fma(kb.load(x, x_off, F32), kb.load(w, w_off, F32), acc)

    def store(acc, flat, m):
        if bias is not None:
            acc = b.fadd(acc, kb.load(bias, m, F32))
        kb.store(epilogue.apply(kb, acc, flat), out, flat)

    emit_gather(kb, geo, ir.Constant(F32, 0.0), term, store)
    kb.finish()


def conv_gather_geometry(node: Node, x_shape, w_shape) -> WindowGather:
    """The direct-path geometry of a Conv-like node (Conv, ConvInteger, QLinearConv)."""
    attrs = node.attrs
    window = win.plan(tuple(x_shape[2:]), tuple(w_shape[2:]), strides=attrs.get("strides"),
                      dilations=attrs.get("dilations"), pads=attrs.get("pads"),
                      auto_pad=attrs.get("auto_pad", "NOTSET"))
    return WindowGather(x_shape, (x_shape[0], w_shape[0]) + tuple(window.out_shape),
                        window.kernel, window.strides, window.dilations, window.pads_begin,
                        int(attrs.get("group", 1)))


def conv_shape_refusal(node: Node, graph: Graph, x_name: str, w_name: str,
                       out_name: str) -> str | None:
    """Why a Conv-like node's shapes do not fit the direct path, or None."""
    x_shape, w_shape = graph.types[x_name].shape, graph.types[w_name].shape
    if len(x_shape) < 3 or len(w_shape) != len(x_shape):
        return f"{node.op_type} needs an N x C x D1 x ... input and weights of the same rank"
    groups = int(node.attrs.get("group", 1))
    if (groups < 1 or x_shape[1] % groups or w_shape[1] * groups != x_shape[1]
            or w_shape[0] % groups):
        return f"{node.op_type} channels do not match the groups"
    kernel_shape = node.attrs.get("kernel_shape")
    if kernel_shape and tuple(kernel_shape) != tuple(w_shape[2:]):
        return f"{node.op_type} kernel_shape does not match the weights"
    try:
        geo = conv_gather_geometry(node, x_shape, w_shape)
    except ValueError as error:
        return str(error)
    if tuple(graph.types[out_name].shape) != geo.out_shape:
        return f"{node.op_type} output shape does not match its window geometry"
    if 0 in geo.out_shape or 0 in x_shape:
        return f"{node.op_type} on an empty tensor is not supported by cpu_llvm"
    return None


def _direct_only(node: Node, graph: Graph) -> bool:
    """Whether a Conv takes the direct path (run-time weights, or not 2-D)."""
    return (len(graph.types[node.inputs[0]].shape) != 4
            or not graph.is_constant(node.inputs[1]))


__all__ = ["WindowGather", "check_conv", "conv_gather_geometry", "conv_shape_refusal",
           "emit_gather", "float_gather", "lower_conv"]
