"""GEMM utilisation of the generated streams on ResNet-18's convolutions, default configuration.

Utilisation = (MACs / macs_per_cycle) / cycles. For a convolution the compute module runs
GEMM micro-ops only: the first input block's products overwrite the accumulators (no reset
pass) and the STOREs requantize (no ALU pass; docs/vta-isa.md). What keeps the GEMM core
idle is what the loads and stores do not hide and each instruction's pipeline fill. Issue 23
asks for 95% on every 3x3 layer and 80% on the 1x1 stride-2 layers; the floors below are
what the generator reaches, in the timing model's cycles (within a few percent of the
RTL's, which the slow test checks on one layer).
"""

from __future__ import annotations

import dataclasses
from typing import Callable, NamedTuple

import numpy as np
import pytest

import byoc
from byoc.core.integer_layers import integer_plans
from byoc.testing import compile_reference, qdq_layer_model
from byoc_vta_sim.config import DEFAULT_CONFIG
from byoc_vta_sim.generator import GenerationError, generate
from byoc_vta_sim.isa import AluInsn, GemmInsn, MemInsn, MemType, decode_stream
from byoc_vta_sim.lower import lower_layers
from byoc_vta_sim.sim import Simulator
from byoc_vta_sim.tile_choice import SHORTLIST, best_tiling, stream_cycles
from byoc_vta_sim.tiling import ConvShape, Tiling, choose_tiling, ranked_tilings
from byoc_vta_sim.timing import estimate_stream

CFG = DEFAULT_CONFIG

# (input size, in channels, out channels, kernel, stride): utilisation floor
RESNET18 = {
    (56, 64, 64, 3, 1): 0.990,        # the timing model gives 99.3%
    (56, 64, 128, 3, 2): 0.983,       # 98.6%
    (28, 128, 128, 3, 1): 0.990,      # 99.3%
    (28, 128, 256, 3, 2): 0.981,      # 98.4%
    (14, 256, 256, 3, 1): 0.989,      # 99.2%
    (14, 256, 512, 3, 2): 0.981,      # 98.4%
    (7, 512, 512, 3, 1): 0.988,       # 99.1%
    (56, 64, 128, 1, 2): 0.916,       # 91.9%
    (28, 128, 256, 1, 2): 0.898,      # 90.1%
    (14, 256, 512, 1, 2): 0.914,      # 91.7%
}


def conv_shape(size, c_in, c_out, kernel, stride) -> ConvShape:
    out = size // stride
    return ConvShape(1, c_in // CFG.block_in, c_out // CFG.block_out, out, out, kernel,
                     kernel, stride, stride, 1, 1)


def ideal_cycles(shape: ConvShape) -> float:
    return shape.gemm_uops * CFG.block_in * CFG.block_out / CFG.macs_per_cycle


@pytest.mark.parametrize("layer", list(RESNET18), ids=lambda layer: "x".join(map(str, layer)))
def test_resnet18_layers_reach_their_utilisation(layer):
    shape = conv_shape(*layer)
    cycles = stream_cycles(shape, best_tiling(shape, CFG), CFG)
    utilisation = ideal_cycles(shape) / cycles
    assert utilisation >= RESNET18[layer], (layer, f"{utilisation:.2%}")
    assert utilisation <= 1


@pytest.mark.parametrize("layer", [(56, 64, 64, 3, 1), (56, 64, 128, 1, 2), (7, 512, 512, 3, 1)],
                         ids=lambda layer: "x".join(map(str, layer)))
def test_a_convolution_keeps_the_compute_module_to_gemm_micro_ops(layer):
    """No reset pass and no ALU pass: every micro-op the compute module runs is a product."""
    run = layer_stream(*layer, seed=2)
    assert not any(isinstance(insn, AluInsn) for insn in run.insns)
    assert not any(isinstance(insn, GemmInsn) and insn.reset for insn in run.insns)
    assert any(isinstance(insn, GemmInsn) and insn.overwrite for insn in run.insns)
    stores = [insn for insn in run.insns if isinstance(insn, MemInsn) and insn.store
              and insn.x_size]
    assert stores and all(insn.requantize for insn in stores)
    dram = run.dram.copy()
    counters = Simulator(CFG).run(run.insns, dram)
    assert counters["gemm_uops"] == conv_shape(*layer).gemm_uops
    assert counters["alu_uops"] == 0
    np.testing.assert_array_equal(run.read_output(dram), run.expected)


def test_the_timing_model_never_picks_a_slower_tiling_than_the_formula():
    for layer in [(56, 64, 128, 3, 2), (28, 128, 256, 1, 2), (14, 256, 512, 1, 2)]:
        shape = conv_shape(*layer)
        assert (stream_cycles(shape, best_tiling(shape, CFG), CFG)
                <= stream_cycles(shape, choose_tiling(shape, CFG), CFG))


def test_a_one_row_kernel_with_a_stride_loads_only_the_rows_it_reads():
    """A 1x1 stride-2 layer reads every other input row; only those are loaded (every
    column of a loaded row is, as a DMA row is contiguous)."""
    size, c_in, c_out = 28, 128, 256
    run = layer_stream(size, c_in, c_out, 1, 2, seed=0)
    loads = [insn for insn in run.insns if isinstance(insn, MemInsn)
             and insn.memory_type == MemType.INP and not insn.store and insn.x_size]
    assert {insn.x_stride for insn in loads} == {2 * size}
    n_oc, _, n_w, _ = run.tiling.counts(conv_shape(size, c_in, c_out, 1, 2))
    assert sum(insn.y_size for insn in loads) == n_oc * n_w * (size // 2) * c_in // CFG.block_in


class LayerRun(NamedTuple):
    insns: list
    dram: np.ndarray          # the program's DRAM image with the input in place
    expected: np.ndarray      # the reference interpreter's output
    read_output: Callable[[np.ndarray], np.ndarray]   # the output, from a DRAM image
    tiling: Tiling


def layer_stream(size, c_in, c_out, kernel, stride, seed) -> LayerRun:
    """One QDQ Conv + Relu layer on a random input, generated by vta_sim."""
    rng = np.random.default_rng(seed)
    model = qdq_layer_model(
        "Conv", [1, c_in, size, size],
        rng.integers(-127, 128, (c_out, c_in, kernel, kernel)).astype(np.int8),
        attrs={"pads": [kernel // 2] * 4, "strides": [stride] * 2},
        w_scales=rng.uniform(0.0002, 0.001, c_out), bias=rng.integers(-3000, 3000, c_out),
        activation="Relu", quantize_input=False)
    graph = byoc.import_model(model)
    layers = [plan.layer for plan in integer_plans(graph).values()]
    gen_layers, regions, values = lower_layers(layers, graph, CFG)
    program = generate(gen_layers, regions, CFG)
    x = rng.integers(0, 256, (1, c_in, size, size), np.uint8)
    offset, layout = program.regions["xq"]
    image = layout.pack(x, values["xq"]["offset"]).view(np.uint8).ravel()
    dram = program.dram.copy()
    dram[offset:offset + image.size] = image
    y_offset, y_layout = program.regions["y"]

    def read_output(after: np.ndarray) -> np.ndarray:
        stored = after[y_offset:y_offset + y_layout.elements * CFG.block_out]
        return y_layout.unpack(stored.view(np.int8).reshape(-1, CFG.block_out),
                               values["y"]["offset"], np.uint8)

    return LayerRun(decode_stream(program.stream), dram,
                    compile_reference(model).run({"xq": x})["y"], read_output,
                    gen_layers[0].tiling)


@pytest.mark.slow
@pytest.mark.cosim
def test_a_1x1_stride_2_layer_on_the_rtl_reaches_its_utilisation_bit_exact():
    from byoc_vta_sim.rtl import RtlSimulator

    layer = (28, 128, 256, 1, 2)
    run = layer_stream(*layer, seed=1)
    expected, actual = run.dram.copy(), run.dram.copy()
    Simulator(CFG).run(run.insns, expected)
    counters = RtlSimulator(CFG).run(run.insns, actual)
    np.testing.assert_array_equal(actual, expected)
    np.testing.assert_array_equal(run.read_output(actual), run.expected)
    shape = conv_shape(*layer)
    assert ideal_cycles(shape) / counters["cycles"] >= RESNET18[layer]
    estimate = estimate_stream(run.insns, CFG)["cycles"]
    assert abs(counters["cycles"] / estimate - 1) < 0.02


def test_a_tiling_the_generator_cannot_emit_is_never_chosen():
    """With 64 micro-ops of UOP buffer, the formula's second choice for this layer has no
    kernel that fits; the timing model's choice must be one the generator emits."""
    config = dataclasses.replace(CFG, uop_depth=64)
    shape = ConvShape(1, 1, 1, 7, 7, 3, 3, 2, 2, 1, 1)
    for tiling in ranked_tilings(shape, config)[:SHORTLIST]:
        try:
            stream_cycles(shape, tiling, config)
        except GenerationError:
            break
    else:
        pytest.fail("every candidate generates: the case no longer tests anything")
    stream_cycles(shape, best_tiling(shape, config), config)
