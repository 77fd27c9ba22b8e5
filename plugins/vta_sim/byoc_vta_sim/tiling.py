"""How a layer is cut into tiles that fit the on-chip buffers.

Every layer is a 2-D convolution (a fully connected layer is a 1x1 convolution over a 1 x M
"image"). A tile is ``toc`` output-channel blocks x ``th`` output rows x ``tw`` output columns,
accumulated over input-channel tiles of ``ticb`` blocks. Each buffer is split in two halves
so that the loads of one tile overlap the compute of the previous one (two "virtual
threads"); a tile must therefore fit half of each buffer. :func:`ranked_tilings` orders the
tilings that fit by a quick formula (:func:`estimate_cycles`), :func:`choose_tiling` takes its
first; the generator's layers take the best of its first few by the timing model of their
stream (:mod:`byoc_vta_sim.tile_choice`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from byoc_vta_sim.config import VtaConfig
from byoc_vta_sim.requant import PARAM_ELEMENTS

# Pipeline depth of the GEMM and ALU units, paid once per instruction in the cycle model.
PIPELINE_CYCLES = 4
# ACC elements per output-channel block for the requantizing STORE's parameters (bias,
# multiplier, range).
PARAMS_PER_BLOCK = PARAM_ELEMENTS


@dataclass(frozen=True)
class ConvShape:
    """A layer's geometry in blocks (channel counts already padded to the block size)."""

    batch: int
    in_blocks: int
    out_blocks: int
    out_height: int
    out_width: int
    kernel_h: int
    kernel_w: int
    stride_h: int
    stride_w: int
    dilation_h: int
    dilation_w: int

    @property
    def taps(self) -> int:
        return self.kernel_h * self.kernel_w

    @property
    def row_step(self) -> int:
        """Input rows (padded layout) between two rows loaded into INP: a one-row kernel
        reads only every ``stride_h``-th row, so only those are loaded."""
        return self.stride_h if self.kernel_h == 1 else 1

    def in_extent(self, rows: int, cols: int) -> tuple[int, int]:
        """Input rows and columns that ``rows x cols`` outputs read, as loaded into INP (rows
        ``row_step`` apart in the padded layout)."""
        return ((rows - 1) * self.stride_h // self.row_step
                + (self.kernel_h - 1) * self.dilation_h + 1,
                (cols - 1) * self.stride_w + (self.kernel_w - 1) * self.dilation_w + 1)

    @property
    def gemm_uops(self) -> int:
        """Micro-ops of the whole layer: one per output pixel, channel block pair and tap."""
        return (self.batch * self.out_height * self.out_width * self.out_blocks
                * self.in_blocks * self.taps)


@dataclass(frozen=True)
class Tiling:
    toc: int
    ticb: int
    th: int
    tw: int

    def counts(self, shape: ConvShape) -> tuple[int, int, int, int]:
        """Number of tiles along out channels, rows, columns and in channels."""
        return (math.ceil(shape.out_blocks / self.toc), math.ceil(shape.out_height / self.th),
                math.ceil(shape.out_width / self.tw), math.ceil(shape.in_blocks / self.ticb))


@dataclass(frozen=True)
class OutputTile:
    """One tile of a layer's output: image n, channel blocks [oc0, oc0 + toc), rows
    [oh0, oh0 + th), columns [ow0, ow0 + tw); edge tiles are smaller than the tiling's."""

    n: int
    oc0: int
    toc: int
    oh0: int
    th: int
    ow0: int
    tw: int

    @property
    def pixels(self) -> int:
        return self.th * self.tw


def output_tiles(shape: ConvShape, tiling: Tiling):
    """The output tiles in the order the generator runs them: images, then output-channel
    tiles (so a weight tile stays loaded across the spatial tiles), then rows, columns."""
    n_oc, n_h, n_w, _ = tiling.counts(shape)
    for n in range(shape.batch):
        for oc0 in range(0, n_oc * tiling.toc, tiling.toc):
            for oh0 in range(0, n_h * tiling.th, tiling.th):
                for ow0 in range(0, n_w * tiling.tw, tiling.tw):
                    yield OutputTile(n, oc0, min(tiling.toc, shape.out_blocks - oc0),
                                     oh0, min(tiling.th, shape.out_height - oh0),
                                     ow0, min(tiling.tw, shape.out_width - ow0))


def halves(config: VtaConfig) -> tuple[int, int, int]:
    """Elements of the INP, WGT and ACC buffers available to one virtual thread."""
    return config.inp_depth // 2, config.wgt_depth // 2, config.acc_depth // 2


def smallest_tile(shape: ConvShape, tiling: Tiling) -> tuple[int, int, int]:
    """The (out blocks, rows, columns) of the smallest tile (the one at every edge)."""
    def last(n, t):
        return n - (math.ceil(n / t) - 1) * t
    return (last(shape.out_blocks, tiling.toc), last(shape.out_height, tiling.th),
            last(shape.out_width, tiling.tw))


def fits(shape: ConvShape, tiling: Tiling, config: VtaConfig) -> bool:
    """Whether a tile fits half of each buffer, and every tile writes at least 3 accumulator
    elements (so that consecutive micro-ops can avoid the accumulator hazard)."""
    inp, wgt, acc = halves(config)
    rows, cols = shape.in_extent(tiling.th, tiling.tw)
    return (math.prod(smallest_tile(shape, tiling)) >= 3
            and tiling.ticb * rows * cols <= inp
            and tiling.toc * tiling.ticb * shape.taps <= wgt
            and tiling.toc * (tiling.th * tiling.tw + PARAMS_PER_BLOCK) <= acc)


def dma_cycles(config: VtaConfig, rows: int, row_bytes: int) -> int:
    """Cycles of one 2-D DMA: the memory latency, then whole port beats per row."""
    return config.mem_latency + rows * math.ceil(row_bytes / config.mem_port_bytes)


def estimate_cycles(shape: ConvShape, tiling: Tiling, config: VtaConfig) -> int:
    """A quick estimate of a layer's cycles: with double buffering the load, compute and
    store modules overlap, so the layer takes about as long as the busiest of them, plus
    the first load and the last store that nothing hides."""
    n_oc, n_h, n_w, n_ic = tiling.counts(shape)
    outputs = shape.batch * n_oc * n_h * n_w
    rows, cols = shape.in_extent(tiling.th, tiling.tw)
    inp_load = tiling.ticb * dma_cycles(config, rows, cols * config.inp_elem_bytes)
    wgt_load = dma_cycles(config, tiling.toc,
                          tiling.ticb * shape.taps * config.wgt_elem_bytes)
    # Weights stay resident across the spatial tiles of an output-channel tile when one
    # input-channel tile holds them all (each buffer half loads them once).
    wgt_loads = outputs * n_ic if n_ic > 1 else shape.batch * n_oc * min(2, n_h * n_w)
    load = outputs * n_ic * inp_load + wgt_loads * wgt_load
    pixels = tiling.th * tiling.tw
    # The first step's first products overwrite the accumulators: one more instruction.
    gemm = (outputs * n_ic * (tiling.toc * pixels * tiling.ticb * shape.taps + PIPELINE_CYCLES)
            + outputs * PIPELINE_CYCLES)
    # Each ACC half keeps an output-channel tile's parameters across its spatial tiles.
    param_loads = shape.batch * n_oc * min(2, n_h * n_w)
    epilogue = param_loads * dma_cycles(config, 1, tiling.toc * PARAMS_PER_BLOCK
                                        * config.acc_elem_bytes)
    # The STOREs requantize: each reads its block's parameters first.
    store = outputs * tiling.toc * (dma_cycles(config, tiling.th,
                                               tiling.tw * config.out_elem_bytes)
                                    + PARAMS_PER_BLOCK)
    return max(load, gemm + epilogue, store) + inp_load + wgt_load + store // max(outputs, 1)


def _candidates(n: int, limit: int = 12) -> list[int]:
    """Tile sizes worth trying for a dimension of n: n split into 1, 2, 3... equal parts."""
    sizes = sorted({math.ceil(n / parts) for parts in range(1, n + 1)}, reverse=True)
    return sizes[:limit] + ([1] if sizes[limit:] else [])


def ranked_tilings(shape: ConvShape, config: VtaConfig) -> list[Tiling]:
    """Every candidate tiling that fits, fewest estimated cycles first (for each output-
    channel tile, input-channel tile and tile width, only the tallest tile that fits)."""
    ranked: list[tuple[int, int, Tiling]] = []
    for toc in _candidates(shape.out_blocks):
        for ticb in _candidates(shape.in_blocks):
            for tw in _candidates(shape.out_width):
                for th in _candidates(shape.out_height):
                    tiling = Tiling(toc, ticb, th, tw)
                    if fits(shape, tiling, config):
                        ranked.append((estimate_cycles(shape, tiling, config), len(ranked),
                                       tiling))
                        break
    return [tiling for *_, tiling in sorted(ranked)]


def choose_tiling(shape: ConvShape, config: VtaConfig) -> Tiling | None:
    """The fitting tiling with the fewest estimated cycles, or None if no tile fits."""
    ranked = ranked_tilings(shape, config)
    return ranked[0] if ranked else None
