"""Choosing a convolution's tiling by the timing model of the stream it would run.

:func:`byoc_vta_sim.tiling.estimate_cycles` is a formula: quick enough to rank every tiling
that fits, but blind to what decides the last few percent (which loads the previous tile's
compute hides, the first load nothing hides, the per-instruction costs). So the formula keeps
the ``shortlist`` best tilings, the generator emits the layer alone for each of them (weights
and data do not change the timing), and :mod:`byoc_vta_sim.timing` (within a few percent of
the RTL) picks the fastest of those the generator can emit.
"""

from __future__ import annotations

import functools

import numpy as np

from byoc_vta_sim.config import VtaConfig
from byoc_vta_sim.dram_layout import ActivationLayout
from byoc_vta_sim.generator import GenerationError, Layer, generate
from byoc_vta_sim.isa import decode_stream
from byoc_vta_sim.tiling import ConvShape, Tiling, ranked_tilings
from byoc_vta_sim.timing import estimate_stream

SHORTLIST = 3


def stream_cycles(shape: ConvShape, tiling: Tiling, config: VtaConfig) -> int:
    """The timing model's cycles for the layer ``shape`` alone, cut into ``tiling``."""
    height = ((shape.out_height - 1) * shape.stride_h
              + (shape.kernel_h - 1) * shape.dilation_h + 1)
    width = ((shape.out_width - 1) * shape.stride_w
             + (shape.kernel_w - 1) * shape.dilation_w + 1)
    regions = {
        "x": ActivationLayout(shape.batch, shape.in_blocks * config.block_in, height, width,
                              0, 0, 0, 0, config.block_in, 0),
        "y": ActivationLayout(shape.batch, shape.out_blocks * config.block_out,
                              shape.out_height, shape.out_width, 0, 0, 0, 0,
                              config.block_out, 0)}
    weights = np.zeros((shape.out_blocks * shape.in_blocks * shape.taps, config.block_out,
                        config.block_in), np.int8)
    params = np.zeros((shape.out_blocks, 2, config.block_out), np.int32)  # bias, operand
    layer = Layer("tiling", shape, tiling, "x", "y", 0, 0, weights, params, zero_point=0,
                  lower_bound=-128, upper_bound=127)
    program = generate([layer], regions, config)
    return estimate_stream(decode_stream(program.stream), config)["cycles"]


@functools.lru_cache(maxsize=1024)
def best_tiling(shape: ConvShape, config: VtaConfig,
                shortlist: int = SHORTLIST) -> Tiling | None:
    """Of the ``shortlist`` tilings the formula ranks best, the one whose stream the timing
    model finds fastest; None if no tiling fits."""
    candidates = ranked_tilings(shape, config)[:shortlist]
    if len(candidates) < 2:
        return candidates[0] if candidates else None
    timed = []
    for tiling in candidates:
        try:
            timed.append((stream_cycles(shape, tiling, config), tiling))
        except GenerationError:
            continue    # e.g. its micro-op kernel does not fit the UOP buffer
    # None generates: the first, so that generating the layer says why.
    return min(timed, key=lambda pair: pair[0])[1] if timed else candidates[0]
