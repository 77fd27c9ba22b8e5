"""Benchmark vta_sim's instruction generator and functional simulator on ResNet-18's convs.

For each 3x3 and 1x1 convolution shape of ResNet-18 (56x56 down to 7x7, 64 to 512 channels),
one int8 QDQ layer (random weights, per-channel scales, Relu) goes through vta_sim's lowering
and generator, and the report gives:

- GEMM and ALU micro-ops of the generated stream (a GEMM micro-op is one 16x16
  matrix-vector product; the requantization is done by the STOREs, so the compute module
  runs no ALU micro-op for a convolution);
- ideal cycles: MACs / 256, the GEMM core's peak;
- estimated cycles: byoc_vta_sim.timing's model of the stream (three modules overlapping,
  one shared memory port of the configured width and latency) and the utilisation
  ideal / estimated;
- the functional simulator's wall time for the layer (median of ``--runs``), with the
  generated output checked against the reference interpreter's output for the layer.

    python benchmarks/vta_sim.py [--runs 3] [--out benchmarks/RESULTS_vta_sim.md]
"""

from __future__ import annotations

import argparse
import platform
import shlex
import statistics
import sys
import time
from datetime import datetime, timezone

import numpy as np
from results_file import write_section

import byoc
from byoc.core.integer_layers import integer_plans
from byoc.testing import compile_reference, qdq_layer_model
from byoc_vta_sim.config import DEFAULT_CONFIG
from byoc_vta_sim.generator import generate
from byoc_vta_sim.isa import decode_stream
from byoc_vta_sim.lower import lower_layers
from byoc_vta_sim.sim import Simulator
from byoc_vta_sim.timing import estimate_stream

# (name, input size, in channels, out channels, kernel, stride)
LAYERS = [
    ("conv2_x 3x3", 56, 64, 64, 3, 1),
    ("conv3_1 3x3 s2", 56, 64, 128, 3, 2),
    ("conv3_x 3x3", 28, 128, 128, 3, 1),
    ("conv4_1 3x3 s2", 28, 128, 256, 3, 2),
    ("conv4_x 3x3", 14, 256, 256, 3, 1),
    ("conv5_1 3x3 s2", 14, 256, 512, 3, 2),
    ("conv5_x 3x3", 7, 512, 512, 3, 1),
    ("conv3_1 down 1x1 s2", 56, 64, 128, 1, 2),
    ("conv4_1 down 1x1 s2", 28, 128, 256, 1, 2),
    ("conv5_1 down 1x1 s2", 14, 256, 512, 1, 2),
]


def layer_model(size, c_in, c_out, kernel, stride, seed):
    rng = np.random.default_rng(seed)
    weight = rng.integers(-127, 128, (c_out, c_in, kernel, kernel)).astype(np.int8)
    return qdq_layer_model("Conv", [1, c_in, size, size], weight,
                           attrs={"pads": [kernel // 2] * 4, "strides": [stride] * 2},
                           w_scales=rng.uniform(0.0002, 0.001, c_out),
                           bias=rng.integers(-3000, 3000, c_out), activation="Relu",
                           quantize_input=False)


def measure(size, c_in, c_out, kernel, stride, runs, seed):
    model = layer_model(size, c_in, c_out, kernel, stride, seed)
    graph = byoc.import_model(model)
    layers = [plan.layer for plan in integer_plans(graph).values()]
    gen_layers, regions, values = lower_layers(layers, graph, DEFAULT_CONFIG)
    start = time.perf_counter()
    program = generate(gen_layers, regions, DEFAULT_CONFIG)
    generate_s = time.perf_counter() - start
    insns = decode_stream(program.stream)
    estimate = estimate_stream(insns, DEFAULT_CONFIG)
    x = np.random.default_rng(seed + 1).integers(0, 256, (1, c_in, size, size), np.uint8)
    offset, layout = program.regions["xq"]
    image = layout.pack(x, values["xq"]["offset"]).view(np.uint8).ravel()
    times, counters = [], {}
    for _ in range(runs):
        dram = program.dram.copy()
        dram[offset:offset + image.size] = image
        simulator = Simulator(DEFAULT_CONFIG)
        start = time.perf_counter()
        counters = simulator.run(insns, dram)
        times.append(time.perf_counter() - start)
    y_offset, y_layout = program.regions["y"]
    stored = dram[y_offset:y_offset + y_layout.elements * 16].view(np.int8).reshape(-1, 16)
    ours = y_layout.unpack(stored, values["y"]["offset"], np.uint8)
    expected = compile_reference(model).run({"xq": x})["y"]
    diff = np.abs(ours.astype(int) - expected.astype(int))
    out = size // stride
    macs = out * out * c_out * c_in * kernel * kernel
    ideal = macs / DEFAULT_CONFIG.macs_per_cycle
    return {
        "alu_uops": counters["alu_uops"], "gemm_uops": counters["gemm_uops"], "ideal": ideal,
        "estimated": estimate["cycles"],
        "utilisation": ideal / estimate["cycles"], "sim_s": statistics.median(times),
        "generate_s": generate_s, "instructions": len(insns), "tiling": gen_layers[0].tiling,
        "max_diff": int(diff.max()), "equal": float((diff == 0).mean()), "macs": macs,
        "bytes": sum(v for k, v in counters.items() if k.startswith("bytes_")),
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args(argv)
    begin = time.perf_counter()
    rows = []
    for i, (name, size, c_in, c_out, kernel, stride) in enumerate(LAYERS):
        r = measure(size, c_in, c_out, kernel, stride, args.runs, seed=i)
        rows.append((name, size, c_in, c_out, kernel, stride, r))
        print(f"{name}: {r['gemm_uops']} uops, ideal {r['ideal']:.0f}, est {r['estimated']}, "
              f"util {r['utilisation']:.1%}, sim {r['sim_s']:.2f} s", flush=True)
    c = DEFAULT_CONFIG
    command = "python " + " ".join(shlex.quote(a) for a in
                                   ["benchmarks/vta_sim.py", *(argv or sys.argv[1:])])
    lines = [
        "# vta_sim: ResNet-18 conv layers on the instruction generator and functional "
        "simulator", "", "Produced by:", "", f"    {command}", "",
        f"- Machine: {platform.processor() or platform.machine()}, Python "
        f"{platform.python_version()}, numpy {np.__version__}",
        f"- Date: {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC; the whole run took "
        f"{time.perf_counter() - begin:.0f} s",
        f"- Configuration: {c.batch}x{c.block_in}x{c.block_out} int8 GEMM "
        f"({c.macs_per_cycle} MACs/cycle), INP {c.inp_depth} / WGT {c.wgt_depth} / ACC "
        f"{c.acc_depth} / UOP {c.uop_depth} elements, {c.mem_port_bits}-bit memory port, "
        f"{c.mem_latency}-cycle latency",
        "- Each layer: one QDQ Conv (+Relu) with random int8 weights and per-channel scales on "
        "a uint8 input, lowered and generated by vta_sim, run on the functional simulator; "
        "the output is compared with the reference interpreter (max |diff| in quantization "
        "steps, share of equal elements).",
        "- GEMM / ALU uops: micro-ops the simulator counted. A GEMM micro-op is a 16x16 int8 "
        "matrix-vector product; the first input block's products overwrite the accumulators "
        "(no reset micro-ops), and the STOREs requantize (no ALU micro-ops).",
        "- ideal = MACs / 256; estimated = byoc_vta_sim.timing's model of the generated stream "
        "(load, compute and store modules overlapping through their tokens, one shared memory "
        "port); utilisation = ideal / estimated. sim s = median wall time of the functional "
        f"simulator over {args.runs} runs.", "",
        "| layer | in | C in -> out | k/s | tile (oc blk, ic blk, h, w) | GEMM uops | ALU uops "
        "| ideal cycles | estimated cycles | utilisation | DRAM MB moved | instructions | sim s "
        "| max diff | equal |",
        "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for name, size, c_in, c_out, kernel, stride, r in rows:
        t = r["tiling"]
        lines.append(
            f"| {name} | {size}x{size} | {c_in} -> {c_out} | {kernel}/{stride} | "
            f"{t.toc}, {t.ticb}, {t.th}, {t.tw} | {r['gemm_uops']:,} | {r['alu_uops']:,} | "
            f"{r['ideal']:,.0f} | {r['estimated']:,} | {r['utilisation']:.1%} | "
            f"{r['bytes'] / 1e6:.2f} | "
            f"{r['instructions']:,} | {r['sim_s']:.2f} | {r['max_diff']} | "
            f"{r['equal']:.4%} |")
    three = [r for *_, k, _s, r in rows if k == 3]
    total_sim = sum(r["sim_s"] for *_, r in rows)
    lines += ["",
              f"- Sum over these {len(rows)} layers: simulator wall time {total_sim:.1f} s; "
              f"3x3 layers: ideal {sum(r['ideal'] for r in three):,.0f} cycles, estimated "
              f"{sum(r['estimated'] for r in three):,} cycles, utilisation "
              f"{sum(r['ideal'] for r in three) / sum(r['estimated'] for r in three):.1%}.",
              ""]
    write_section("vta_sim", "\n".join(lines))
    print("wrote the vta_sim section of benchmarks/RESULTS.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
