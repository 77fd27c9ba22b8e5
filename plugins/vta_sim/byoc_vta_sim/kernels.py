"""Micro-op kernels: a tile's GEMM loop nest as two hardware loops plus a micro-op list.

A convolution tile has six dimensions: output-channel blocks, output rows and columns (which
select the accumulator element written), and input-channel blocks, kernel rows and kernel
columns (which are summed over). Every one of them moves the ACC, INP and WGT indices by a
constant step, so any two can be the instruction's ``iter_out`` / ``iter_in`` loops and the
rest are enumerated as micro-ops. :func:`plan_gemm` picks the two that leave the fewest
micro-ops, under two rules: the steps must fit the factor fields, and the micro-op list must
enumerate at least three accumulator elements innermost, so that no micro-op writes an
element one of the two before it wrote (the accumulator hazard of docs/vta-isa.md). It
prefers loops over accumulator dimensions: then the micro-op list starts with every
element's first product, which an overwriting GEMM can run, and a tile needs no reset pass.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np

from byoc_vta_sim.isa import GemmInsn, Uop, encode_uops, field_of, pack_uops
from byoc_vta_sim.tiling import ConvShape

# The largest loop count and index steps the GEMM instruction's loop fields hold.
MAX_ITER = min(field_of(GemmInsn, name).hi for name in ("iter_out", "iter_in"))
MAX_FACTOR = {index: min(field_of(GemmInsn, f"{index}_factor_{loop}").hi for loop in ("out", "in"))
              for index in ("dst", "src", "wgt")}


@dataclass(frozen=True)
class Dim:
    name: str
    size: int
    dst: int
    src: int
    wgt: int
    writes: bool   # True when the dimension selects the accumulator element

    def fits_loop(self) -> bool:
        return (self.size <= MAX_ITER and self.dst <= MAX_FACTOR["dst"]
                and self.src <= MAX_FACTOR["src"] and self.wgt <= MAX_FACTOR["wgt"])


@dataclass(frozen=True)
class TileGeometry:
    """One tile of the layer ``shape`` (which gives the kernel window) as the GEMM sees it:
    toc output-channel blocks of th x tw pixels summed over ticb input-channel blocks, with
    buffer base indices. Each input-channel block of the tile's input is
    ``shape.in_extent(th, tw)`` rows by columns in the INP buffer."""

    shape: ConvShape
    toc: int
    th: int
    tw: int
    ticb: int
    acc_base: int
    inp_base: int
    wgt_base: int

    def dims(self) -> list[Dim]:
        shape = self.shape
        in_rows, in_cols = shape.in_extent(self.th, self.tw)
        pixels = self.th * self.tw
        return [
            Dim("icb", self.ticb, 0, in_rows * in_cols, shape.taps, False),
            Dim("kh", shape.kernel_h, 0, shape.dilation_h * in_cols, shape.kernel_w, False),
            Dim("kw", shape.kernel_w, 0, shape.dilation_w, 1, False),
            Dim("oc", self.toc, pixels, 0, self.ticb * shape.taps, True),
            Dim("oh", self.th, self.tw, shape.stride_h // shape.row_step * in_cols, 0,
                True),
            Dim("ow", self.tw, 1, shape.stride_w, 0, True),
        ]


@dataclass(frozen=True)
class GemmKernel:
    """Micro-ops plus the GEMM instruction (without uop_bgn/uop_end) that runs them.

    ``first_products``: when both loops run over accumulator dimensions, the micro-op list
    starts with one micro-op per accumulator element of the summed dimensions' first index
    (first input-channel block, first tap), and this is their number, so the first step of a
    tile can run them as an overwriting GEMM and the rest accumulating, with no reset; None
    when a loop runs over a summed dimension."""

    uops: np.ndarray          # encoded micro-ops (uint32)
    insn: GemmInsn
    first_products: int | None = None

    @property
    def size(self) -> int:
        return len(self.uops)


def plan_gemm(tile: TileGeometry, max_uops: int | None = None
              ) -> tuple[list[Dim], list[Dim]] | None:
    """(loops outer-first, micro-op dims outer-first), or None. Of the plans with at most
    ``max_uops`` micro-ops, one whose loops run over accumulator dimensions only (so that the
    first products can overwrite: :class:`GemmKernel`) with the fewest micro-ops; if there is
    none, the plan with the fewest micro-ops."""
    dims = tile.dims()
    best = None
    for count in (2, 1, 0):
        for loops in itertools.permutations([d for d in dims if d.size > 1], count):
            if not all(d.fits_loop() for d in loops):
                continue
            rest = [d for d in dims if d not in loops]
            if math.prod(d.size for d in rest if d.writes) < 3:
                continue
            uops = math.prod(d.size for d in rest)
            key = (max_uops is not None and uops > max_uops, _loops_over_sums(loops), uops)
            if best is None or key < best[0]:
                # Summed dimensions outer, accumulator dimensions inner.
                ordered = [d for d in rest if not d.writes] + [d for d in rest if d.writes]
                best = (key, list(loops), ordered)
    return None if best is None else (best[1], best[2])


def gemm_kernel(tile: TileGeometry, max_uops: int | None = None) -> GemmKernel | None:
    plan = plan_gemm(tile, max_uops)
    if plan is None:
        return None
    loops, uop_dims = plan
    grids = np.meshgrid(*[np.arange(d.size) for d in uop_dims], indexing="ij")
    dst = tile.acc_base + sum(g * d.dst for g, d in zip(grids, uop_dims))
    src = tile.inp_base + sum(g * d.src for g, d in zip(grids, uop_dims))
    wgt = tile.wgt_base + sum(g * d.wgt for g, d in zip(grids, uop_dims))
    words = pack_uops(*(np.asarray(a).ravel() for a in (dst, src, wgt)))
    outer = loops[0] if len(loops) > 0 else Dim("-", 1, 0, 0, 0, False)
    inner = loops[1] if len(loops) > 1 else Dim("-", 1, 0, 0, 0, False)
    insn = GemmInsn(iter_out=outer.size, iter_in=inner.size,
                    dst_factor_out=outer.dst, dst_factor_in=inner.dst,
                    src_factor_out=outer.src, src_factor_in=inner.src,
                    wgt_factor_out=outer.wgt, wgt_factor_in=inner.wgt)
    first = None if _loops_over_sums(loops) else math.prod(d.size for d in uop_dims if d.writes)
    return GemmKernel(words, insn, first)


def _loops_over_sums(loops) -> bool:
    """Whether a hardware loop runs over a summed dimension (input-channel block, tap)."""
    return any(not d.writes for d in loops)


def single_uop(dst: int, src: int = 0) -> np.ndarray:
    return encode_uops([Uop(dst, src, 0)])
