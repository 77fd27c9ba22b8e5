"""The instruction generator: single int8 layers compiled to streams, run on the functional
simulator, compared with the reference interpreter."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

import byoc
from byoc.core.integer_layers import integer_plans
from byoc.testing import compile_reference, make_model, qdq_layer_model
from byoc_vta_sim.config import DEFAULT_CONFIG
from byoc_vta_sim.generator import generate
from byoc_vta_sim.isa import decode_stream
from byoc_vta_sim.lower import lower_layers
from byoc_vta_sim.sim import Simulator
from byoc_vta_sim.tiling import ranked_tilings
from byoc_vta_sim.validate import validate_stream

# Buffers an eighth of the default: every layer below needs several tiles in every dimension.
SMALL = dataclasses.replace(DEFAULT_CONFIG, inp_depth=256, wgt_depth=128, acc_depth=256,
                            uop_depth=2048)


def conv_model(in_c=20, out_c=24, size=9, kernel=3, per_channel=True, seed=0, **options):
    rng = np.random.default_rng(seed)
    weight = rng.integers(-127, 128, (out_c, in_c, kernel, kernel)).astype(np.int8)
    scales = rng.uniform(0.002, 0.01, out_c) if per_channel else 0.004
    attrs = options.pop("attrs", {"pads": [kernel // 2] * 4})
    return qdq_layer_model("Conv", [1, in_c, size, size], weight, attrs=attrs, w_scales=scales,
                           bias=rng.integers(-3000, 3000, out_c), **options)


def inputs_for(model, seed=1):
    value = model.graph.input[0]
    shape = [d.dim_value for d in value.type.tensor_type.shape.dim]
    rng = np.random.default_rng(seed)
    if value.type.tensor_type.elem_type == 1:
        return {value.name: rng.uniform(-6, 6, shape).astype(np.float32)}
    dtype = np.uint8 if value.type.tensor_type.elem_type == 2 else np.int8
    info = np.iinfo(dtype)
    return {value.name: rng.integers(info.min, int(info.max) + 1, shape).astype(dtype)}


def assert_close_to_reference(model, feeds=None):
    """Quantized outputs within one step of the reference everywhere, equal on >= 99.9%."""
    feeds = feeds or inputs_for(model)
    compiled = byoc.compile(model, plugins=["vta_sim"], placement="priority")
    assert compiled.plan.partition_of("layer").plugin == "vta_sim"
    expected = compile_reference(model).run(feeds)["y"]
    ours = compiled.run(feeds)["y"]
    assert ours.dtype == expected.dtype and ours.shape == expected.shape
    diff = np.abs(ours.astype(np.int64) - expected.astype(np.int64))
    assert diff.max() <= 1
    assert (diff == 0).mean() >= 0.999, f"{(diff != 0).sum()} of {diff.size} differ"
    return compiled


@pytest.mark.parametrize("case", [
    dict(),                                                           # 3x3 pad 1
    dict(attrs={"strides": [2, 2], "pads": [1, 1, 1, 1]}),            # stride 2
    dict(attrs={"strides": [2, 2], "pads": [0, 1, 1, 0]}),            # asymmetric pads
    dict(kernel=1, attrs={"strides": [2, 2]}),                        # 1x1 stride 2
    dict(kernel=5, size=13, attrs={"dilations": [2, 2], "pads": [4, 4, 4, 4]}),
    dict(kernel=7, in_c=3, out_c=16, size=20, attrs={"strides": [2, 2], "pads": [3] * 4}),
    dict(activation="Relu"),
    dict(per_channel=False, y_zero=-5, x_dtype=np.int8, x_zero=7),
    dict(y_dtype=np.int8, y_zero=-20, activation="Relu"),
    dict(quantize_input=False, x_dtype=np.uint8, x_zero=131),
])
def test_conv_layer_matches_reference(case):
    assert_close_to_reference(conv_model(**dict(case)))


@pytest.mark.parametrize("op,x_shape,w_shape,attrs", [
    ("Gemm", [1, 64], (10, 64), {"transB": 1}),        # a classifier: 10 outputs, 1 row
    ("Gemm", [5, 40], (40, 33), {}),
    ("MatMul", [2, 3, 48], (48, 20), {}),
])
def test_matrix_layer_matches_reference(op, x_shape, w_shape, attrs):
    rng = np.random.default_rng(3)
    out = w_shape[0] if attrs.get("transB") else w_shape[1]
    model = qdq_layer_model(op, x_shape, rng.integers(-127, 128, w_shape), attrs=attrs,
                            w_scales=rng.uniform(0.002, 0.01, out),
                            bias=None if op == "MatMul" else rng.integers(-999, 999, out))
    assert_close_to_reference(model)


def test_integer_accumulation_is_exact():
    """With a power-of-two multiplier (2**-5) MULSHR's only freedom is the rounding of exact
    halves: everything else must equal the reference exactly, and halves round up."""
    rng = np.random.default_rng(7)
    weight = rng.integers(-3, 4, (32, 32, 3, 3)).astype(np.int8)
    model = qdq_layer_model("Conv", [1, 32, 10, 10], weight, attrs={"pads": [1, 1, 1, 1]},
                            x_scale=0.5, w_scales=0.0625, y_scale=1.0, y_zero=128,
                            x_dtype=np.uint8)
    feeds = inputs_for(model)
    expected = compile_reference(model).run(feeds)["y"].astype(np.int64)
    compiled = byoc.compile(model, plugins=["vta_sim"], placement="priority")
    ours = compiled.run(feeds)["y"].astype(np.int64)
    x = feeds["x"]
    xq = (np.clip(np.rint(x / 0.5) + 128, 0, 255) - 128).astype(np.int64)
    acc = np.zeros(expected.shape, np.int64)
    padded = np.pad(xq, ((0, 0), (0, 0), (1, 1), (1, 1)))
    for kh in range(3):
        for kw in range(3):
            acc += np.einsum("nchw,oc->nohw", padded[:, :, kh:kh + 10, kw:kw + 10],
                             weight[:, :, kh, kw].astype(np.int64))
    ties = acc % 32 == 16
    unsaturated = (expected > 0) & (expected < 255)
    assert ties.sum() > 20 and unsaturated.mean() > 0.9
    np.testing.assert_array_equal(ours[~ties], expected[~ties])
    up = np.clip((acc + 16) // 32 + 128, 0, 255)
    np.testing.assert_array_equal(ours[ties], up[ties])


def test_small_buffers_tile_every_dimension_and_stay_exact():
    model = conv_model(in_c=40, out_c=56, size=15, kernel=3, quantize_input=False)
    graph = byoc.import_model(model)
    layers = [plan.layer for plan in integer_plans(graph).values()]
    gen_layers, regions, values = lower_layers(layers, graph, SMALL)
    shape = gen_layers[0].shape
    # The fastest tiling that cuts output channels, rows and input channels (the generator's
    # own choice may leave one whole).
    tiling = next(t for t in ranked_tilings(shape, SMALL)
                  if all(count > 1 for count in np.array(t.counts(shape))[[0, 1, 3]]))
    program = generate([dataclasses.replace(gen_layers[0], tiling=tiling)], regions, SMALL)
    insns = decode_stream(program.stream)
    validate_stream(insns, SMALL, program.dram)

    feeds = inputs_for(model)
    reference = compile_reference(model).run(feeds)["y"]
    xq = feeds["xq"]
    offset, layout = program.regions["xq"]
    dram = program.dram.copy()
    image = layout.pack(xq, values["xq"]["offset"]).view(np.uint8).ravel()
    dram[offset:offset + image.size] = image
    Simulator(SMALL).run(insns, dram)
    y_offset, y_layout = program.regions["y"]
    stored = dram[y_offset:y_offset + y_layout.elements * 16].view(np.int8).reshape(-1, 16)
    ours = y_layout.unpack(stored, values["y"]["offset"], np.uint8)
    diff = np.abs(ours.astype(int) - reference.astype(int))
    assert diff.max() <= 1 and (diff == 0).mean() >= 0.999


def two_conv_model(seed=11):
    """uint8 x -> conv(16->32, 3x3, Relu) -> conv(32->16, 3x3, stride 2): two QDQ layers."""
    from onnx import TensorProto, helper

    rng = np.random.default_rng(seed)
    init = {"xs": np.float32(0.05), "xz": np.uint8(128), "s1": np.float32(0.08),
            "z1": np.uint8(0), "s2": np.float32(0.1), "z2": np.uint8(120)}
    nodes = [helper.make_node("DequantizeLinear", ["x", "xs", "xz"], ["xd"])]
    scale = np.float32(0.05)
    for i, (c_in, c_out, stride, relu) in enumerate([(16, 32, 1, True), (32, 16, 2, False)], 1):
        w_scale = rng.uniform(0.002, 0.01, c_out).astype(np.float32)
        init.update({f"w{i}": rng.integers(-127, 128, (c_out, c_in, 3, 3)).astype(np.int8),
                     f"ws{i}": w_scale, f"wz{i}": np.zeros(c_out, np.int8),
                     f"b{i}": rng.integers(-2000, 2000, c_out).astype(np.int32),
                     f"bs{i}": (scale * w_scale).astype(np.float32),
                     f"bz{i}": np.zeros(c_out, np.int32)})
        nodes += [helper.make_node("DequantizeLinear", [f"w{i}", f"ws{i}", f"wz{i}"],
                                   [f"wd{i}"], axis=0),
                  helper.make_node("DequantizeLinear", [f"b{i}", f"bs{i}", f"bz{i}"],
                                   [f"bd{i}"], axis=0),
                  helper.make_node("Conv", ["xd" if i == 1 else f"yd{i - 1}",
                                            f"wd{i}", f"bd{i}"], [f"c{i}"], name=f"conv{i}",
                                   pads=[1, 1, 1, 1], strides=[stride, stride])]
        last = f"c{i}"
        if relu:
            nodes.append(helper.make_node("Relu", [last], [f"r{i}"]))
            last = f"r{i}"
        nodes += [helper.make_node("QuantizeLinear", [last, f"s{i}", f"z{i}"], [f"y{i}"]),
                  helper.make_node("DequantizeLinear", [f"y{i}", f"s{i}", f"z{i}"], [f"yd{i}"])]
        scale = init[f"s{i}"]
    return make_model(nodes, [("x", TensorProto.UINT8, [1, 16, 12, 12])],
                      [("y1", TensorProto.UINT8, [1, 32, 12, 12]),
                       ("y2", TensorProto.UINT8, [1, 16, 6, 6])], init, opset=13)


def test_two_layers_in_one_partition_share_dram():
    """conv -> conv in one partition: the first layer's stores write the second layer's padded
    input region, which the second layer's loads read after the barrier."""
    model = two_conv_model()
    feeds = inputs_for(model)
    compiled = byoc.compile(model, plugins=["vta_sim"], placement="priority")
    part = compiled.plan.partition_of("conv1")
    assert part is compiled.plan.partition_of("conv2") and part.plugin == "vta_sim"
    expected = compile_reference(model).run(feeds)
    ours = compiled.run(feeds)
    for name in ("y1", "y2"):
        diff = np.abs(ours[name].astype(int) - expected[name].astype(int))
        assert diff.max() <= 1 and (diff == 0).mean() >= 0.995, name


@pytest.mark.parametrize("bounds", [(0.0, 6.0), (-1.5, 2.0)])
def test_fused_clip_is_requantized_range(bounds):
    """Conv -> Clip(min, max) -> QuantizeLinear: the clamp runs in the quantized domain."""
    from onnx import numpy_helper

    model = conv_model(activation="Clip", seed=5)
    clip = next(n for n in model.graph.node if n.op_type == "Clip")
    for name, value in zip(("clip_min", "clip_max"), bounds):
        model.graph.initializer.append(numpy_helper.from_array(np.float32(value), name))
        clip.input.append(name)
    compiled = assert_close_to_reference(model)
    assert compiled.plan.patterns["activation"] == "vta_sim.qdq_conv"


def add_model(shape=(1, 40, 9, 11), scales=(0.0513, 0.0771, 0.1049), zeros=(128, 120, 110),
              activation=None, dtype=np.uint8):
    """DQ(x1), DQ(x2) -> Add -> [activation] -> Q. Scales are calibration-like (no simple
    ratios: with ratios like 1/2 many sums land exactly on .5, where the reference's float32
    rounding and the accelerator's fixed point may round differently)."""
    from onnx import TensorProto, helper

    init = {"s1": np.float32(scales[0]), "z1": np.array(zeros[0], dtype),
            "s2": np.float32(scales[1]), "z2": np.array(zeros[1], dtype),
            "sy": np.float32(scales[2]), "zy": np.array(zeros[2], dtype)}
    nodes = [helper.make_node("DequantizeLinear", ["x1", "s1", "z1"], ["d1"]),
             helper.make_node("DequantizeLinear", ["x2", "s2", "z2"], ["d2"]),
             helper.make_node("Add", ["d1", "d2"], ["sum"], name="layer")]
    last = "sum"
    if activation:
        nodes.append(helper.make_node(activation, [last], ["act"]))
        last = "act"
    nodes.append(helper.make_node("QuantizeLinear", [last, "sy", "zy"], ["y"]))
    onnx_type = TensorProto.UINT8 if dtype == np.uint8 else TensorProto.INT8
    return make_model(nodes, [("x1", onnx_type, list(shape)), ("x2", onnx_type, list(shape))],
                      [("y", onnx_type, list(shape))], init, opset=13)


@pytest.mark.parametrize("options", [
    dict(),
    dict(activation="Relu", shape=(1, 64, 14, 14)),
    dict(scales=(0.31, 0.0107, 0.0233), zeros=(-3, 10, -128), dtype=np.int8),
    dict(shape=(2, 16, 3, 5), scales=(0.1, 0.1, 0.1)),      # every sum an integer: exact
])
def test_elementwise_add_matches_reference(options):
    model = add_model(**options)
    rng = np.random.default_rng(8)
    dtype = options.get("dtype", np.uint8)
    info = np.iinfo(dtype)
    shape = options.get("shape", (1, 40, 9, 11))
    feeds = {name: rng.integers(info.min, int(info.max) + 1, shape).astype(dtype)
             for name in ("x1", "x2")}
    assert_close_to_reference(model, feeds)
