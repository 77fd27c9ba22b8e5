"""The workload that the RTL's profile-guided build runs (:class:`byoc.cosim.ProfileRun`).

GCC compiles the Verilated accelerator twice: once instrumented, to run this workload, and
once with the profile it left, laid out for what the workload did. So the workload should
look like real use: two int8 convolutions compiled by vta_sim's own lowering and generator (a
3x3 layer, where GEMM loops overlap the loads, and a 1x1 stride-2 layer, where loads and
stores weigh more), then random legal programs that reach the instructions and options the
convolutions do not (every ALU operation, ACC loads, padding). A layer the configuration
cannot take is left out; the random programs run on every configuration.
"""

from __future__ import annotations

import json

import numpy as np

from byoc.cosim import CosimModel
from byoc_vta_sim.config import VtaConfig, config_from_dict
from byoc_vta_sim.random_streams import random_program

# (input size, kernel, stride) of the convolutions; channels are two blocks in and out
LAYERS = ((14, 3, 1), (14, 1, 2))
RANDOM_PROGRAMS = 12
RANDOM_TASKS = 8
SEED = 0


def run(model: CosimModel, argument: str) -> None:
    """Run the workload on ``model``, the accelerator built for the configuration that
    ``argument`` describes (``VtaConfig.to_dict()`` as JSON)."""
    from byoc_vta_sim.rtl import RtlSimulator

    config = config_from_dict(json.loads(argument))
    rtl = RtlSimulator(config, model=model)
    for seed, (size, kernel, stride) in enumerate(LAYERS):
        program = conv_program(config, size, 2 * config.block_in, 2 * config.block_out,
                               kernel, stride, SEED + seed)
        if program is not None:
            rtl.run(*program)
    rng = np.random.default_rng(SEED)
    for _ in range(RANDOM_PROGRAMS):
        program = random_program(rng, config, tasks=RANDOM_TASKS)
        rtl.run(program.insns, program.dram.copy())


def conv_program(config: VtaConfig, size: int, c_in: int, c_out: int, kernel: int, stride: int,
                 seed: int) -> tuple[bytes, np.ndarray] | None:
    """One QDQ Conv + Relu layer (random weights, scales and bias from ``seed``) lowered and
    generated for ``config``: its stream and DRAM image, with a random input (from
    ``seed + 1``) in place; None when vta_sim does not take the layer. benchmarks/vta_rtl.py
    runs ResNet-18's layers made this way."""
    import byoc
    from byoc.core.integer_layers import integer_plans
    from byoc.testing import qdq_layer_model
    from byoc_vta_sim.generator import generate
    from byoc_vta_sim.lower import layer_refusal, lower_layers

    rng = np.random.default_rng(seed)
    weight = rng.integers(-127, 128, (c_out, c_in, kernel, kernel)).astype(np.int8)
    model = qdq_layer_model("Conv", [1, c_in, size, size], weight,
                            attrs={"pads": [kernel // 2] * 4, "strides": [stride] * 2},
                            w_scales=rng.uniform(0.0002, 0.001, c_out),
                            bias=rng.integers(-3000, 3000, c_out), activation="Relu",
                            quantize_input=False)
    graph = byoc.import_model(model)
    layers = [plan.layer for plan in integer_plans(graph).values()]
    if any(layer_refusal(layer, graph, config) for layer in layers):
        return None
    gen_layers, regions, values = lower_layers(layers, graph, config)
    program = generate(gen_layers, regions, config)
    dram = program.dram.copy()
    offset, layout = program.regions["xq"]
    x = np.random.default_rng(seed + 1).integers(0, 256, (1, c_in, size, size), np.uint8)
    image = layout.pack(x, values["xq"]["offset"]).view(np.uint8).ravel()
    dram[offset:offset + image.size] = image
    return program.stream, dram
