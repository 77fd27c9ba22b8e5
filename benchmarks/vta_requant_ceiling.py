"""What moving the requantization off the compute module would buy: RTL cycles and GEMM
utilisation of ResNet-18's conv layers, as generated today and with the requantization's ALU
passes left out.

Issue 23 asks for 95% GEMM utilisation on the 3x3 layers and 80% on the 1x1 stride-2 layers.
The compute module runs GEMM and ALU micro-ops in one pipeline, so each output tile's five
requantization passes (ADD bias, MULSHR, MAX, MIN, ADD zero point; docs/vta-isa.md) idle the
GEMM core. This script measures the ceiling of an ISA that requantized elsewhere (in the STORE
path, say): the generator is patched so that a tile's last GEMM gives the store its token and
no ALU pass runs. The outputs of those streams are wrong; only their cycles mean something.
Both versions run on the Verilated RTL (the same layers and seeds as benchmarks/vta_rtl.py),
with the same tilings: today's streams are generated first, and vta_sim keeps each shape's
choice of tiling (``tile_choice.best_tiling``) for the patched ones.
Writes its section of benchmarks/RESULTS.md.
"""

from __future__ import annotations

import shlex
import sys
import time
from contextlib import contextmanager
from datetime import datetime, timezone

from results_file import write_section
from vta_rtl import layer_program
from vta_sim import LAYERS

from byoc_vta_sim import generator
from byoc_vta_sim.config import DEFAULT_CONFIG
from byoc_vta_sim.isa import AluInsn, GemmInsn
from byoc_vta_sim.rtl import RtlSimulator


@contextmanager
def requantization_left_out():
    """Within, the generator emits no requantization: the tile's last compute instruction
    pushes the compute->store token instead."""
    original = generator._emit_requantize

    def left_out(em, layer, acc, toc, pixels):
        last = max(i for i, insn in enumerate(em.insns) if isinstance(insn, (GemmInsn, AluInsn)))
        em.flag(last, push_next=1)

    generator._emit_requantize = left_out
    try:
        yield
    finally:
        generator._emit_requantize = original


def cycles(rtl: RtlSimulator) -> list[int]:
    return [rtl.run(*layer_program(size, c_in, c_out, kernel, stride, seed))["cycles"]
            for seed, (_, size, c_in, c_out, kernel, stride) in enumerate(LAYERS)]


def main(argv=None) -> int:
    begin = time.perf_counter()
    rtl = RtlSimulator(DEFAULT_CONFIG)
    today = cycles(rtl)
    with requantization_left_out():
        ceiling = cycles(rtl)
    ideal = [(size // stride) ** 2 * c_out * c_in * kernel * kernel
             / DEFAULT_CONFIG.macs_per_cycle
             for _, size, c_in, c_out, kernel, stride in LAYERS]
    command = "python " + " ".join(shlex.quote(a) for a in
                                   ["benchmarks/vta_requant_ceiling.py", *(argv or sys.argv[1:])])
    lines = [
        "# vta_sim: the utilisation ceiling without the requantization's ALU passes", "",
        "Produced by:", "", f"    {command}", "",
        f"- Date: {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC; the run took "
        f"{time.perf_counter() - begin:.0f} s",
        "- RTL cycles of each ResNet-18 layer (default configuration, the layers and seeds of "
        "vta_rtl), as generated today and with the generator patched to leave the five "
        "requantization passes out (the outputs are then wrong: cycles only). Utilisation = "
        "(MACs / 256) / RTL cycles.", "",
        "| layer | k/s | today: cycles | today: utilisation | no ALU passes: cycles "
        "| no ALU passes: utilisation |",
        "|---|--:|--:|--:|--:|--:|",
    ]
    for layer, now, best, need in zip(LAYERS, today, ceiling, ideal):
        name, kernel, stride = layer[0], layer[4], layer[5]
        lines.append(f"| {name} | {kernel}/{stride} | {now:,} | {need / now:.1%} | {best:,} | "
                     f"{need / best:.1%} |")
    three = [i for i, layer in enumerate(LAYERS) if layer[4] == 3]
    ideal3 = sum(ideal[i] for i in three)
    lines += ["",
              f"- 3x3 layers together: {ideal3 / sum(today[i] for i in three):.1%} today, "
              f"{ideal3 / sum(ceiling[i] for i in three):.1%} without the ALU passes "
              f"(issue 23's goal: 95%; 80% on each 1x1 stride-2 layer)."]
    write_section("vta_requant_ceiling", "\n".join(lines))
    print("\n".join(lines[-len(LAYERS) - 3:]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
