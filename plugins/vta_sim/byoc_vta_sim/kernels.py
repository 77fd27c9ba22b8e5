"""Micro-op kernels: a tile's GEMM loop nest as two hardware loops plus a micro-op list.

A convolution tile has six dimensions: output-channel blocks, output rows and columns (which
select the accumulator element written), and input-channel blocks, kernel rows and kernel
columns (which are summed over). Every one of them moves the ACC, INP and WGT indices by a
constant step, so any two can be the instruction's ``iter_out`` / ``iter_in`` loops and the
rest are enumerated as micro-ops. :func:`plan_gemm` picks the two that leave the fewest
micro-ops, under two rules: the steps must fit the factor fields, and the micro-op list must
enumerate at least three accumulator elements innermost, so that no micro-op writes an
element one of the two before it wrote (the accumulator hazard of docs/vta-isa.md).
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np

from byoc_vta_sim.isa import GemmInsn, Uop, encode_uops

# Widths of the loop fields (isa.GemmInsn's field table).
MAX_ITER = (1 << 14) - 1
MAX_FACTOR = {"dst": (1 << 11) - 1, "src": (1 << 11) - 1, "wgt": (1 << 10) - 1}


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
    """One tile as the GEMM sees it, with buffer base indices."""

    toc: int
    th: int
    tw: int
    ticb: int
    kernel_h: int
    kernel_w: int
    stride_h: int
    stride_w: int
    dilation_h: int
    dilation_w: int
    in_rows: int
    in_cols: int
    acc_base: int
    inp_base: int
    wgt_base: int

    def dims(self) -> list[Dim]:
        pixels = self.th * self.tw
        taps = self.kernel_h * self.kernel_w
        plane = self.in_rows * self.in_cols
        return [
            Dim("icb", self.ticb, 0, plane, taps, False),
            Dim("kh", self.kernel_h, 0, self.dilation_h * self.in_cols, self.kernel_w, False),
            Dim("kw", self.kernel_w, 0, self.dilation_w, 1, False),
            Dim("oc", self.toc, pixels, 0, self.ticb * taps, True),
            Dim("oh", self.th, self.tw, self.stride_h * self.in_cols, 0, True),
            Dim("ow", self.tw, 1, self.stride_w, 0, True),
        ]


@dataclass(frozen=True)
class GemmKernel:
    """Micro-ops plus the GEMM instruction (without uop_bgn/uop_end) that runs them."""

    uops: np.ndarray          # encoded micro-ops (uint32)
    insn: GemmInsn

    @property
    def size(self) -> int:
        return len(self.uops)


def plan_gemm(tile: TileGeometry) -> tuple[list[Dim], list[Dim]] | None:
    """(loops outer-first, micro-op dims outer-first) with the fewest micro-ops, or None."""
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
            if best is None or uops < best[0]:
                # Summed dimensions outer, accumulator dimensions inner.
                ordered = [d for d in rest if not d.writes] + [d for d in rest if d.writes]
                best = (uops, list(loops), ordered)
    return None if best is None else (best[1], best[2])


def gemm_kernel(tile: TileGeometry) -> GemmKernel | None:
    plan = plan_gemm(tile)
    if plan is None:
        return None
    loops, uop_dims = plan
    grids = np.meshgrid(*[np.arange(d.size) for d in uop_dims], indexing="ij")
    dst = tile.acc_base + sum(g * d.dst for g, d in zip(grids, uop_dims))
    src = tile.inp_base + sum(g * d.src for g, d in zip(grids, uop_dims))
    wgt = tile.wgt_base + sum(g * d.wgt for g, d in zip(grids, uop_dims))
    dst, src, wgt = (np.asarray(a).ravel() for a in (dst, src, wgt))
    words = (dst.astype(np.uint32) | (src.astype(np.uint32) << 11)
             | (wgt.astype(np.uint32) << 22))
    outer = loops[0] if len(loops) > 0 else Dim("-", 1, 0, 0, 0, False)
    inner = loops[1] if len(loops) > 1 else Dim("-", 1, 0, 0, 0, False)
    insn = GemmInsn(iter_out=outer.size, iter_in=inner.size,
                    dst_factor_out=outer.dst, dst_factor_in=inner.dst,
                    src_factor_out=outer.src, src_factor_in=inner.src,
                    wgt_factor_out=outer.wgt, wgt_factor_in=inner.wgt)
    return GemmKernel(words.astype(np.uint32), insn)


def single_uop(dst: int, src: int = 0) -> np.ndarray:
    return encode_uops([Uop(dst, src, 0)])
