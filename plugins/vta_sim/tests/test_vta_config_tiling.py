"""The hardware configuration, requantization operands, tiling, micro-op kernels and the cycle
model: the pieces the generator is built from."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from byoc_vta_sim.config import (
    DEFAULT_CONFIG,
    ConfigError,
    config_from_dict,
    load_config,
)
from byoc_vta_sim.isa import decode_stream
from byoc_vta_sim.kernels import TileGeometry, gemm_kernel
from byoc_vta_sim.requant import mulshr, mulshr_operand
from byoc_vta_sim.tiling import ConvShape, choose_tiling, fits, halves
from byoc_vta_sim.timing import estimate_stream
from byoc_vta_sim.validate import validate_stream


def test_default_configuration_is_vtas():
    c = DEFAULT_CONFIG
    assert (c.batch, c.block_in, c.block_out) == (1, 16, 16)
    assert (c.inp_elem_bytes, c.wgt_elem_bytes, c.acc_elem_bytes, c.out_elem_bytes) == \
        (16, 256, 64, 16)
    assert (c.uop_depth, c.inp_depth, c.wgt_depth, c.acc_depth) == (8192, 2048, 1024, 2048)
    assert c.macs_per_cycle == 256


def test_verilog_header_carries_every_parameter():
    header = DEFAULT_CONFIG.verilog_header()
    for name, value in DEFAULT_CONFIG.to_dict().items():
        assert f"`define VTA_{name.upper()} {value}\n" in header
    assert "`define VTA_LOG_ACC_DEPTH 11" in header and header.startswith("// Generated")


@pytest.mark.parametrize("change,message", [
    ({"acc_depth": 4096}, "acc_depth=4096 is more than the instruction encoding can address"),
    ({"inp_bits": 4}, "only int8 inputs and weights"),
    ({"block_in": 0}, "block_in must be a whole number >= 1"),
    ({"mem_port_bits": 12}, "not a whole number of bytes"),
    ({"colour": 3}, "unknown colour"),
])
def test_bad_configurations_name_the_parameter(change, message):
    data = {**DEFAULT_CONFIG.to_dict(), **change}
    with pytest.raises(ConfigError, match=message):
        config_from_dict(data)


def test_configuration_files(tmp_path):
    small = tmp_path / "small.yaml"
    small.write_text("\n".join(f"{k}: {v}" for k, v in
                               {**DEFAULT_CONFIG.to_dict(), "acc_depth": 256}.items()))
    assert load_config(small).acc_depth == 256
    broken = tmp_path / "broken.yaml"
    broken.write_text("batch: [1\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(broken)
    with pytest.raises(ConfigError, match="missing"):
        config_from_dict({"batch": 1})
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "absent.yaml")


def test_a_configuration_saved_before_a_parameter_existed_still_loads():
    older = {k: v for k, v in DEFAULT_CONFIG.to_dict().items() if k != "clock_hz"}
    assert config_from_dict(older) == DEFAULT_CONFIG
    with pytest.raises(ConfigError, match="missing acc_depth"):
        config_from_dict({k: v for k, v in older.items() if k != "acc_depth"})


@pytest.mark.parametrize("multiplier", [0.7, 0.0123, 3.1e-6, 2.0 ** -30, 1.5, 1000.0])
def test_mulshr_operand_is_the_float32_multiplier_exactly(multiplier):
    operand = mulshr_operand(multiplier)
    m, s = operand >> 6, operand & 63
    assert 2 ** 24 <= m < 2 ** 25
    assert m * 2.0 ** -s == float(np.float32(multiplier))


@pytest.mark.parametrize("multiplier", [0.0, -0.5, 2.0 ** 26, 2.0 ** -45])
def test_mulshr_operand_refuses_what_it_cannot_encode(multiplier):
    with pytest.raises(ValueError):
        mulshr_operand(multiplier)


def test_mulshr_rounds_like_the_reference_except_ties():
    """In the range requantization lands in (results within a few int8 ranges), the float32
    product of the reference is accurate, so only ties may round differently."""
    rng = np.random.default_rng(0)
    for multiplier in (0.00311, 0.2713, 0.8871):   # calibration-like, no simple ratios
        acc = rng.integers(-int(1000 / multiplier), int(1000 / multiplier), 200_000)
        ours = mulshr(acc, np.full(acc.shape, mulshr_operand(multiplier))).astype(np.int64)
        exact = acc * np.float64(np.float32(multiplier))
        assert np.all(np.abs(ours - exact) <= 0.5)
        reference = np.rint((acc.astype(np.float32) * np.float32(multiplier)))
        assert (ours == reference).mean() > 0.999


RESNET_3X3 = ConvShape(1, 4, 4, 56, 56, 3, 3, 1, 1, 1, 1)


def test_chosen_tiling_fits_half_of_every_buffer():
    for shape in (RESNET_3X3, ConvShape(1, 32, 32, 7, 7, 3, 3, 1, 1, 1, 1),
                  ConvShape(1, 1, 4, 112, 112, 7, 7, 2, 2, 1, 1)):
        tiling = choose_tiling(shape, DEFAULT_CONFIG)
        assert tiling is not None and fits(shape, tiling, DEFAULT_CONFIG)
        inp, wgt, acc = halves(DEFAULT_CONFIG)
        rows, cols = shape.in_extent(tiling.th, tiling.tw)
        assert tiling.ticb * rows * cols <= inp
        assert tiling.toc * tiling.ticb * shape.taps <= wgt
        assert tiling.toc * (tiling.th * tiling.tw + 2) <= acc


def test_no_tiling_when_one_window_cannot_fit():
    tiny = dataclasses.replace(DEFAULT_CONFIG, inp_depth=16)
    wide = ConvShape(1, 1, 1, 4, 4, 11, 11, 1, 1, 1, 1)   # an 11x11 window needs 121 elements
    assert choose_tiling(wide, tiny) is None


@pytest.mark.parametrize("tile", [
    dict(toc=2, th=14, tw=28, ticb=1, kernel_h=3, kernel_w=3),
    dict(toc=3, th=1, tw=1, ticb=4, kernel_h=1, kernel_w=1),     # a classifier row
    dict(toc=1, th=2, tw=2, ticb=2, kernel_h=3, kernel_w=3),
])
def test_gemm_kernels_cover_every_product_once_without_hazards(tile):
    shape = ConvShape(1, tile["ticb"], tile["toc"], tile["th"], tile["tw"], tile["kernel_h"],
                      tile["kernel_w"], 1, 1, 1, 1)
    t = TileGeometry(shape, tile["toc"], tile["th"], tile["tw"], tile["ticb"], acc_base=0,
                     inp_base=0, wgt_base=0)
    kernel = gemm_kernel(t)
    from byoc_vta_sim.isa import expand_loop
    insn = dataclasses.replace(kernel.insn, uop_bgn=0, uop_end=kernel.size)
    dst, src, wgt = expand_loop(insn, kernel.uops)
    products = set(zip(dst.tolist(), src.tolist(), wgt.tolist()))
    assert len(products) == len(dst) == math.prod(
        tile[k] for k in ("toc", "th", "tw", "ticb", "kernel_h", "kernel_w"))
    # No micro-op writes what one of the two before it wrote.
    assert not np.any(dst[2:] == dst[:-2]) and not np.any(dst[1:] == dst[:-1])


def test_cycle_estimate_of_a_stream_is_bounded_by_its_parts():
    import byoc
    from byoc.core.integer_layers import integer_plans
    from byoc.testing import qdq_layer_model
    from byoc_vta_sim.generator import generate
    from byoc_vta_sim.lower import lower_layers

    weight = np.random.default_rng(0).integers(-127, 128, (64, 64, 3, 3)).astype(np.int8)
    graph = byoc.import_model(qdq_layer_model("Conv", [1, 64, 28, 28], weight,
                                              attrs={"pads": [1] * 4}))
    layers, regions, _ = lower_layers([p.layer for p in integer_plans(graph).values()], graph,
                                      DEFAULT_CONFIG)
    program = generate(layers, regions, DEFAULT_CONFIG)
    insns = decode_stream(program.stream)
    validate_stream(insns, DEFAULT_CONFIG, program.dram)
    estimate = estimate_stream(insns, DEFAULT_CONFIG)
    ideal = 28 * 28 * 64 * 64 * 9 // 256
    assert estimate["gemm_busy"] >= ideal
    assert max(estimate["gemm_busy"], estimate["load_busy"]) <= estimate["cycles"]
    assert estimate["cycles"] < estimate["gemm_busy"] + estimate["alu_busy"] + \
        estimate["load_busy"] + estimate["store_busy"]   # the modules overlap
