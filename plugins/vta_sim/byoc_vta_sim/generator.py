"""The instruction generator: int8 layers to one instruction stream and its DRAM image.

Input is a list of :class:`Layer` (convolutions; a fully connected layer is a 1x1
convolution over a 1 x M image) in execution order; output is a :class:`Program`: the
instruction stream, and the DRAM image holding packed weights, requantization parameters,
micro-op kernels and a region per activation (borders pre-filled with the zero point).

Each layer is cut into tiles (:mod:`byoc_vta_sim.tiling`). Per input-channel step of a tile
the load module loads the weights (unless that buffer half already holds them) and the
input window; the compute module loads the requantization parameters on the first step
when that ACC half does not hold the tile's yet, and runs the GEMM kernel on every step, the
first step's first products overwriting the accumulators (a reset pass only where the
kernel's loops cannot start them: :class:`byoc_vta_sim.kernels.GemmKernel`); the store
module requantizes the accumulators (bias, MULSHR, clamp, zero point: the requantizing
STORE of docs/vta-isa.md) into the next layer's padded layout. Buffers are split in halves
used by alternate steps (INP, WGT) and alternate tiles (ACC), and dependency tokens let the
three modules overlap:

- load of step s (s >= 2) pops compute->load: compute is done with that half;
- the last load of a step pushes load->compute, the step's first GEMM pops it (the
  parameter load before it needs no input);
- the last GEMM of a step pushes compute->load;
- the first compute instruction of tile t (t >= 2) pops store->compute: the store of tile
  t - 2 has read that ACC half; the tile's last GEMM pushes compute->store, the first store
  pops it and the last store pushes store->compute.

Between layers a barrier makes the next layer's loads wait for every store of this one, and
leaves every token queue empty, so each layer's stream stands on its own.

Debug taps (byoc verify's request, ``Layer.tap``). The accumulator never leaves the chip, and
a STORE writes only the low 8 bits of each ACC lane. To expose a layer's int32 accumulator
(its integer convolution or matrix product, bias included) the layer runs a second pass after
its barrier: the same loads and GEMMs, then ADD bias, and the accumulator is stored in four
byte planes into the tap's DRAM region, an ALU SHR by 8 between planes, so plane k holds bits
8k..8k+7 of every lane. Within a tile the ALU and the store module take turns on the same ACC
elements: each SHR pops the store->compute token the plane's last STORE pushed, and pushes
compute->store for the next plane's first STORE. The first compute instruction of every tile
after the first pops the previous tile's last store token, so at most one store->compute token
is ever outstanding and the pass's barrier waits for one. The real output comes from the
first pass, untouched; a layer without a tap emits exactly the stream it always did.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import numpy as np

from byoc_vta_sim.config import VtaConfig
from byoc_vta_sim.dram_layout import ActivationLayout
from byoc_vta_sim.isa import (
    AluInsn,
    AluOp,
    FinishInsn,
    GemmInsn,
    Insn,
    MemInsn,
    MemType,
    Uop,
    encode_stream,
    encode_uops,
)
from byoc_vta_sim.kernels import TileGeometry, gemm_kernel, single_uop
from byoc_vta_sim.requant import PARAM_ELEMENTS, range_lanes
from byoc_vta_sim.tiling import (
    PARAMS_PER_BLOCK,
    ConvShape,
    OutputTile,
    Tiling,
    halves,
    output_tiles,
)

TAP_PLANES = 4   # byte planes of a debug tap: the 32 bits of an accumulator lane
# ACC elements of an Add's parameters: its multipliers ma and mb, then the requantizing
# STORE's three (the constant as bias, the rounding shift, the range).
ADD_PARAM_ELEMENTS = 2 + PARAM_ELEMENTS


class GenerationError(ValueError):
    """A layer cannot be turned into instructions (the message says why)."""


@dataclass
class Layer:
    """One convolution in accelerator terms, ready to emit."""

    name: str
    shape: ConvShape
    tiling: Tiling
    source: str                 # activation value read
    target: str                 # activation value written
    window_top: int             # first input row/column of output (0, 0) in the padded layout
    window_left: int
    weights: np.ndarray         # WGT elements [OCB][ICB][taps] (elements, block_out, block_in)
    params: np.ndarray          # int32 (out_blocks, 2, block_out): bias, MULSHR operand
    zero_point: int             # stored (int8) output zero point
    lower_bound: int            # stored output range: int8, narrowed by a fused Relu/Clip
    upper_bound: int
    tap: ActivationLayout | None = None   # one byte plane of the accumulator's debug tap

    @property
    def real_out_blocks(self) -> int:
        return self.shape.out_blocks


@dataclass
class AddLayer:
    """An int8 elementwise add: y = round((ma * a + mb * b + c) / 2**shift), clamped, plus the
    output zero point; ``params`` holds ma, mb and c as three ACC elements (int32, every lane
    the same). Tiles are ``tiling.toc`` channel blocks x ``th`` rows x ``tw`` columns."""

    name: str
    a: str
    b: str
    target: str
    shape: ConvShape            # 1x1 geometry: out_blocks channel blocks over out_height x width
    tiling: Tiling
    params: np.ndarray
    shift: int
    zero_point: int
    lower_bound: int
    upper_bound: int


@dataclass
class Program:
    """What the runtime runs: a stream, the DRAM image it runs against, and where each
    activation lives in it (byte offset and layout)."""

    stream: bytes
    dram: np.ndarray
    regions: dict[str, tuple[int, ActivationLayout]]
    summary: list[dict] = field(default_factory=list)
    values: dict[str, dict] = field(default_factory=dict)   # how the runtime converts each
    dequantized: dict[str, dict] = field(default_factory=dict)  # float inputs to requantize
    taps: dict[str, tuple[int, ActivationLayout]] = field(default_factory=dict)
    """Per tapped layer: the byte offset of its debug tap's four byte planes (one after the
    other, each of the layout given) in the DRAM image."""
    debug_taps: list[dict] = field(default_factory=list)    # what the runtime reads back


class _Dram:
    def __init__(self, align: int) -> None:
        self.chunks: list[tuple[int, np.ndarray]] = []
        self.size = 0
        self.align = align      # regions start at a multiple of every element size

    def put(self, data: np.ndarray) -> int:
        """Place ``data`` (its bytes) at the next aligned offset; returns the byte offset."""
        offset = self.size
        raw = np.ascontiguousarray(data).view(np.uint8).ravel()
        self.chunks.append((offset, raw))
        self.size = offset + math.ceil(len(raw) / self.align) * self.align
        return offset

    def image(self) -> np.ndarray:
        image = np.zeros(max(self.size, self.align), np.uint8)
        for offset, raw in self.chunks:
            image[offset:offset + len(raw)] = raw
        return image


class _Emitter:
    def __init__(self, config: VtaConfig) -> None:
        self.config = config
        self.insns: list[Insn] = []
        self.dram = _Dram(config.dram_align)
        self.kernels: dict[bytes, int] = {}   # micro-op words -> DRAM byte offset

    def add(self, insn: Insn) -> int:
        self.insns.append(insn)
        return len(self.insns) - 1

    def flag(self, index: int, **flags: int) -> None:
        self.insns[index] = replace(self.insns[index], **flags)

    def uop_load(self, words: np.ndarray, sram_base: int) -> MemInsn:
        key = words.tobytes()
        if key not in self.kernels:
            self.kernels[key] = self.dram.put(words.astype("<u4"))
        return MemInsn(memory_type=MemType.UOP, sram_base=sram_base,
                       dram_base=self.kernels[key] // 4, y_size=1, x_size=len(words),
                       x_stride=len(words))


def generate(layers: list[Layer], regions: dict[str, ActivationLayout],
             config: VtaConfig) -> Program:
    """The program running ``layers`` in order; ``regions`` gives the layout of every
    activation they read or write."""
    emitter = _Emitter(config)
    placed = {}
    for name, layout in regions.items():
        fill = np.full(layout.elements * config.inp_elem_bytes, layout.fill, np.int8)
        placed[name] = (emitter.dram.put(fill), layout)
    taps = {layer.name: (emitter.dram.put(np.zeros(
        TAP_PLANES * layer.tap.elements * config.out_elem_bytes, np.uint8)), layer.tap)
        for layer in layers if isinstance(layer, Layer) and layer.tap is not None}
    summary = []
    for layer in layers:
        first = len(emitter.insns)
        info = (_emit_add(emitter, layer, placed) if isinstance(layer, AddLayer)
                else _emit_layer(emitter, layer, placed, taps))
        info["instructions"] = len(emitter.insns) - first
        summary.append(info)
    emitter.add(FinishInsn())
    return Program(encode_stream(emitter.insns), emitter.dram.image(), placed, summary,
                   taps=taps)


def _emit_layer(em: _Emitter, layer: Layer, placed: dict, taps: dict) -> dict:
    """The layer's pass that writes its output, then, if it has a debug tap, the pass that
    writes the tap (both read the same weights and parameters)."""
    wgt_base = em.dram.put(layer.weights) // em.config.wgt_elem_bytes
    param_base = em.dram.put(_store_params(layer)) // em.config.acc_elem_bytes
    info = _emit_pass(em, layer, placed[layer.source], wgt_base, param_base,
                      placed[layer.target])
    if layer.name in taps:
        _emit_pass(em, layer, placed[layer.source], wgt_base, param_base, taps[layer.name],
                   tap=True)
    return info


def _emit_pass(em: _Emitter, layer: Layer, source: tuple[int, ActivationLayout],
               wgt_base: int, param_base: int, target: tuple[int, ActivationLayout],
               tap: bool = False) -> dict:
    """Every tile of ``layer``: loads, GEMMs, then the requantization into ``target`` or,
    with ``tap``, the accumulator's byte planes into the tap region ``target``."""
    cfg, shape, tiling = em.config, layer.shape, layer.tiling
    inp_half, wgt_half, acc_half = halves(cfg)
    in_offset, in_layout = source
    out_offset, out_layout = target
    in_base = in_offset // cfg.inp_elem_bytes
    out_base = out_offset // cfg.out_elem_bytes
    taps = shape.taps
    param_rows = PARAMS_PER_BLOCK * tiling.toc

    # ALU micro-ops: [out, bias] and [out, multiplier] per ACC half, at the UOP buffer start.
    alu_words = np.concatenate([np.concatenate([
        single_uop(h * acc_half + param_rows, h * acc_half),
        single_uop(h * acc_half + param_rows, h * acc_half + 1)]) for h in (0, 1)])
    em.add(em.uop_load(alu_words, 0))
    gemm_region = (cfg.uop_depth - len(alu_words)) // 4
    resident_uops: dict[int, bytes] = {}
    resident_wgt: list[tuple | None] = [None, None]
    resident_params: list[tuple | None] = [None, None]   # per ACC half: (oc0, toc) held

    n_ic = tiling.counts(shape)[3]
    step = tile = 0
    gemm_uops = 0
    for out in output_tiles(shape, tiling):
        n, oc0, toc, oh0, th, ow0, tw = (out.n, out.oc0, out.toc, out.oh0, out.th, out.ow0,
                                         out.tw)
        acc = tile % 2
        acc_out = acc * acc_half + param_rows
        pixels = out.pixels
        in_rows, in_cols = shape.in_extent(th, tw)
        for ic_t in range(n_ic):
            ic0 = ic_t * tiling.ticb
            ticb = min(tiling.ticb, shape.in_blocks - ic0)
            half = step % 2
            # -- load module: weights unless resident, then the input window.
            loads = []
            key = (oc0, ic0, toc, ticb)
            if resident_wgt[half] != key:
                resident_wgt[half] = key
                loads.append(em.add(MemInsn(
                    memory_type=MemType.WGT, sram_base=half * wgt_half,
                    dram_base=wgt_base + (oc0 * shape.in_blocks + ic0) * taps,
                    y_size=toc, x_size=ticb * taps,
                    x_stride=shape.in_blocks * taps)))
            row0 = layer.window_top + oh0 * shape.stride_h
            col0 = layer.window_left + ow0 * shape.stride_w
            for icb in range(ticb):
                loads.append(em.add(MemInsn(
                    memory_type=MemType.INP,
                    sram_base=half * inp_half + icb * in_rows * in_cols,
                    dram_base=in_base + in_layout.element(n, ic0 + icb, row0, col0),
                    y_size=in_rows, x_size=in_cols,
                    x_stride=in_layout.padded_width * shape.row_step)))
            em.flag(loads[0], pop_next=int(step >= 2))
            em.flag(loads[-1], push_next=1)
            # -- compute module.
            computes = []
            if ic_t == 0 and resident_params[acc] != (oc0, toc):
                resident_params[acc] = (oc0, toc)
                computes.append(em.add(MemInsn(
                    memory_type=MemType.ACC, sram_base=acc * acc_half,
                    dram_base=param_base + oc0 * PARAMS_PER_BLOCK, y_size=1,
                    x_size=toc * PARAMS_PER_BLOCK,
                    x_stride=toc * PARAMS_PER_BLOCK)))
            geometry = TileGeometry(shape, toc, th, tw, ticb, acc_out, half * inp_half,
                                    half * wgt_half)
            kernel = gemm_kernel(geometry, max_uops=gemm_region)
            if kernel is None or kernel.size > gemm_region:
                raise GenerationError(
                    f"layer {layer.name}: no micro-op kernel fits a "
                    f"{toc}x{th}x{tw} tile")
            first = kernel.first_products if ic_t == 0 else None
            if ic_t == 0 and first is None:
                # The reset borrows an ALU micro-op for its dst (the out base).
                computes.append(em.add(GemmInsn(
                    reset=1, uop_bgn=2 * acc, uop_end=2 * acc + 1, iter_out=toc,
                    iter_in=pixels, dst_factor_out=pixels, dst_factor_in=1)))
            region = (2 * half + acc) % 4
            region_base = len(alu_words) + region * gemm_region
            words = kernel.uops
            if resident_uops.get(region) != words.tobytes():
                resident_uops[region] = words.tobytes()
                computes.append(em.add(em.uop_load(words, region_base)))
            # The first step's first products start the accumulators (no reset pass).
            parts = ([(0, first, 1), (first, kernel.size, 0)] if first is not None
                     else [(0, kernel.size, 0)])
            gemms = [em.add(replace(kernel.insn, uop_bgn=region_base + bgn,
                                    uop_end=region_base + end, overwrite=overwrite))
                     for bgn, end, overwrite in parts if end > bgn]
            computes += gemms
            gemm_uops += kernel.size * kernel.insn.iter_out * kernel.insn.iter_in
            # A tile reuses the ACC half of tile - 2 (of tile - 1 in a tap pass, whose stores
            # the ALU waits for anyway): its first instruction waits for that tile's stores.
            # Only the first GEMM waits for the step's loads, so the parameters (and a reset)
            # go ahead while they arrive.
            em.flag(computes[0], pop_next=int(ic_t == 0 and tile >= (1 if tap else 2)))
            em.flag(gemms[0], pop_prev=1)
            em.flag(gemms[-1], push_prev=1)
            step += 1
        if tap:
            _emit_tap(em, out, acc, acc_out, out_base, out_layout)
        else:
            # The stores requantize: the tile's last GEMM hands its accumulators over.
            em.flag(gemms[-1], push_next=1)
            _emit_stores(em, out, acc_out, out_base, out_layout,
                         params=acc * acc_half)
        tile += 1
    _emit_barrier(em, steps=step, stores=1 if tap else min(tile, 2))
    return {"layer": layer.name, "tiling": [tiling.toc, tiling.ticb, tiling.th, tiling.tw],
            "tiles": tile, "steps": step, "gemm_uops": gemm_uops}


def _emit_add(em: _Emitter, layer: AddLayer, placed: dict) -> dict:
    """Per tile: load a and b (INP), copy them into two ACC regions with an identity-weight
    GEMM, then MULSHR each by its multiplier and add them; the STOREs add the zero-point
    constant, round-shift, clamp and add the output zero point (a requantizing STORE whose
    parameters are the constant, the shift as a MULSHR by 1 and the range)."""
    cfg, shape, tiling = em.config, layer.shape, layer.tiling
    inp_half, wgt_half, acc_half = halves(cfg)
    sources = [placed[layer.a], placed[layer.b]]
    out_offset, out_layout = placed[layer.target]
    out_base = out_offset // cfg.out_elem_bytes
    identity = np.eye(cfg.block_out, cfg.block_in, dtype=np.int8)[None]
    identity_base = em.dram.put(identity) // cfg.wgt_elem_bytes
    shift = np.full((1, cfg.block_out), (1 << 6) | layer.shift, np.int32)
    ranges = np.full((1, cfg.block_out), range_lanes(layer.zero_point, layer.lower_bound,
                                                     layer.upper_bound), np.int32)
    param_base = em.dram.put(np.concatenate([layer.params, shift, ranges])
                             ) // cfg.acc_elem_bytes
    params = ADD_PARAM_ELEMENTS
    block_tile = tiling.toc * tiling.th * tiling.tw

    def regions(half):
        """ACC: params, A (toc x pixels), B right after A; INP: a then b, same shape."""
        base = half * acc_half
        return base, base + params, base + params + block_tile
    uops = []
    for half in (0, 1):
        base, a_acc, b_acc = regions(half)
        uops += [(a_acc, base), (b_acc, base + 1), (a_acc, b_acc),
                 (a_acc, half * inp_half, half * wgt_half)]
    words = encode_uops([Uop(*u) for u in uops])
    per_half = len(uops) // 2
    em.add(em.uop_load(words, 0))
    tile = 0
    for out in output_tiles(shape, tiling):
        n, c0, tcb, h0, th, w0, tw = out.n, out.oc0, out.toc, out.oh0, out.th, out.ow0, out.tw
        half, pixels = tile % 2, th * tw
        base, a_acc, b_acc = regions(half)
        loads = []
        if tile < 2:    # the identity weights stay in each half
            loads.append(em.add(MemInsn(
                memory_type=MemType.WGT, sram_base=half * wgt_half,
                dram_base=identity_base, y_size=1, x_size=1, x_stride=1)))
        for k, (offset, layout) in enumerate(sources):
            for j in range(tcb):
                loads.append(em.add(MemInsn(
                    memory_type=MemType.INP,
                    sram_base=half * inp_half + k * block_tile + j * pixels,
                    dram_base=offset // cfg.inp_elem_bytes + layout.element(
                        n, c0 + j, layout.pad_top + h0, layout.pad_left + w0),
                    y_size=th, x_size=tw, x_stride=layout.padded_width)))
        em.flag(loads[0], pop_next=int(tile >= 2))
        em.flag(loads[-1], push_next=1)
        u = half * per_half
        elements = tcb * pixels
        # A and B (and a and b in INP) are block_tile apart: one loop covers both.
        both = dict(iter_out=2, iter_in=elements, dst_factor_out=block_tile,
                    dst_factor_in=1)
        em.add(MemInsn(memory_type=MemType.ACC, sram_base=base,
                       dram_base=param_base, y_size=1, x_size=params,
                       x_stride=params, pop_prev=1, pop_next=int(tile >= 2)))
        em.add(GemmInsn(reset=1, uop_bgn=u, uop_end=u + 1, **both))
        em.add(GemmInsn(uop_bgn=u + 3, uop_end=u + 4, src_factor_out=block_tile,
                        src_factor_in=1, push_prev=1, **both))
        loop = dict(iter_in=elements, dst_factor_in=1)
        chain = [
            AluInsn(alu_op=AluOp.MULSHR, uop_bgn=u, uop_end=u + 1, **loop),
            AluInsn(alu_op=AluOp.MULSHR, uop_bgn=u + 1, uop_end=u + 2, **loop),
            AluInsn(alu_op=AluOp.ADD, uop_bgn=u + 2, uop_end=u + 3,
                    src_factor_in=1, push_next=1, **loop),
        ]
        for insn in chain:
            em.add(insn)
        _emit_stores(em, out, a_acc, out_base, out_layout, params=base + 2, param_step=0)
        tile += 1
    _emit_barrier(em, steps=tile, stores=min(tile, 2))
    return {"layer": layer.name, "tiling": [tiling.toc, 1, tiling.th, tiling.tw],
            "tiles": tile, "steps": tile, "gemm_uops": 0}


def _emit_stores(em: _Emitter, out: OutputTile, acc_base: int, out_base: int,
                 layout: ActivationLayout, params: int | None = None,
                 param_step: int = PARAMS_PER_BLOCK) -> None:
    """One STORE per output-channel block of the tile (the ACC region is [block][pixel]) into
    the interior of the output's padded layout; the first pops compute->store, the last
    pushes store->compute. With ``params`` (the ACC element of the tile's first block's
    parameters, the next block's ``param_step`` further), the STOREs requantize."""
    stores = []
    for j in range(out.toc):
        if out.oc0 + j >= layout.channel_blocks:
            break  # blocks added only to avoid the accumulator hazard are not stored
        stores.append(em.add(MemInsn(
            store=True, memory_type=MemType.OUT, sram_base=acc_base + j * out.pixels,
            dram_base=out_base + layout.element(out.n, out.oc0 + j, layout.pad_top + out.oh0,
                                                layout.pad_left + out.ow0),
            y_size=out.th, x_size=out.tw, x_stride=layout.padded_width,
            requantize=int(params is not None),
            param_base=0 if params is None else params + j * param_step)))
    em.flag(stores[0], pop_prev=1)
    em.flag(stores[-1], push_prev=1)


def _store_params(layer: Layer) -> np.ndarray:
    """The requantizing STORE's three ACC elements per output-channel block: the layer's bias
    and MULSHR operand, and the range lane (zero point, lower and upper bound)."""
    lanes = range_lanes(layer.zero_point, layer.lower_bound, layer.upper_bound)
    blocks, _, lanes_per_block = layer.params.shape
    ranges = np.full((blocks, 1, lanes_per_block), lanes, np.int32)
    return np.ascontiguousarray(np.concatenate([layer.params, ranges], axis=1))


def _emit_tap(em: _Emitter, out: OutputTile, acc: int, acc_out: int, tap_base: int,
              plane: ActivationLayout) -> None:
    """ADD bias, then the accumulator's four byte planes, least significant first, into the
    tap region at ``tap_base`` (OUT elements; plane k starts k planes further): STORE, SHR
    by 8, STORE... Each SHR waits for the STOREs before it to have read the ACC elements."""
    bias_uop = 2 * acc
    loop = dict(iter_out=out.toc, iter_in=out.pixels, dst_factor_out=out.pixels,
                dst_factor_in=1, uop_bgn=bias_uop, uop_end=bias_uop + 1)
    em.add(AluInsn(alu_op=AluOp.ADD, src_factor_out=PARAMS_PER_BLOCK, push_next=1, **loop))
    for k in range(TAP_PLANES):
        if k:
            em.add(AluInsn(alu_op=AluOp.SHR, use_imm=1, imm=8, pop_next=1, push_next=1,
                           **loop))
        _emit_stores(em, out, acc_out, tap_base + k * plane.elements, plane)


def _emit_barrier(em: _Emitter, steps: int, stores: int) -> None:
    """Wait for the layer's last stores (``stores`` store->compute tokens outstanding), then
    let the load module drain its tokens, so the next layer (or FINISH) starts with every
    queue empty and every store done."""
    nop_compute = MemInsn(memory_type=MemType.UOP)
    nop_load = MemInsn(memory_type=MemType.INP)
    for i in range(stores):
        em.add(replace(nop_compute, pop_next=1, push_prev=int(i == stores - 1)))
    drains = min(steps, 2) + 1
    for i in range(drains):
        em.add(replace(nop_load, pop_next=1, push_next=int(i == drains - 1)))
    em.add(replace(nop_compute, pop_prev=1))
