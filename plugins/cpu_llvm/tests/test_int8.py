"""int8 on cpu_llvm: QuantizeLinear/DequantizeLinear, the integer ops and QDQ groups, all
bit-exact with the reference interpreter."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto as T
from onnx import helper

import byoc
from byoc.testing import compile_reference, make_model, zoo_module
from byoc_cpu_llvm.kernels import int8_product
from byoc_cpu_llvm.target import host_target

TT = {np.dtype(np.uint8): T.UINT8, np.dtype(np.int8): T.INT8, np.dtype(np.int16): T.INT16,
      np.dtype(np.uint16): T.UINT16, np.dtype(np.int32): T.INT32}


def compiled_parts(model, threads=None):
    # min_work_per_thread=0: small test models still use every thread asked for.
    options = {"cpu_llvm": {"threads": threads, "min_work_per_thread": 0}} if threads else {}
    return byoc.compile(model, plugins=["cpu_llvm"], plugin_options=options)


def check_exact(model, feeds, threads=(1, 2)):
    reference = compile_reference(model).run(feeds)
    for count in threads:
        compiled = compiled_parts(model, count)
        assert compiled.parts and all(p.plugin == "cpu_llvm" for p in compiled.parts)
        ours = compiled.run(feeds)
        for name, expected in reference.items():
            assert ours[name].dtype == expected.dtype
            np.testing.assert_array_equal(ours[name], expected,
                                          err_msg=f"{name} with {count} threads")
    return reference


def ints(rng, dtype, shape):
    info = np.iinfo(dtype)
    return rng.integers(info.min, int(info.max) + 1, shape).astype(dtype)


@pytest.fixture(params=["vnni", "portable"])
def int_path(request, monkeypatch):
    """Run the integer kernels with VNNI (when the host has it) and with the portable path."""
    if request.param == "vnni" and not host_target().has("avx512vnni"):
        pytest.skip("the host has no AVX512-VNNI")
    monkeypatch.setattr(int8_product, "USE_VNNI", request.param == "vnni")
    return request.param


# -- QuantizeLinear / DequantizeLinear -----------------------------------------------------------

@pytest.mark.parametrize("dtype", [np.int8, np.uint8, np.int16, np.uint16])
@pytest.mark.parametrize("per_axis", [False, True])
def test_quantize_dequantize_ties_and_saturation(dtype, per_axis):
    rng = np.random.default_rng(1)
    shape = [2, 3, 5, 7]
    info = np.iinfo(dtype)
    # Multiples of 0.5 times the scale give ties; the range goes far past saturation.
    x = (rng.integers(-2 * 70000, 2 * 70000, shape) / 2).astype(np.float32)
    x.flat[:6] = [0.5, 1.5, 2.5, -0.5, -1.5, -2.5]
    if per_axis:
        scale = np.array([1.0, 0.5, 2.0], np.float32)
        zero = np.array([3, info.max // 2, info.min // 3 if info.min else 7], dtype)
        attrs = {"axis": 1}
    else:
        scale, zero, attrs = np.float32(1.0), np.array(5, dtype), {}
    model = make_model(
        [helper.make_node("QuantizeLinear", ["x", "s", "z"], ["q"], **attrs),
         helper.make_node("DequantizeLinear", ["q", "s", "z"], ["y"], **attrs)],
        [("x", T.FLOAT, shape)], [("q", TT[np.dtype(dtype)], shape), ("y", T.FLOAT, shape)],
        {"s": scale, "z": zero}, opset=21 if np.dtype(dtype).itemsize == 2 else 13)
    reference = check_exact(model, {"x": x})
    assert reference["q"].min() == info.min and reference["q"].max() == info.max
    # Channel 0 has scale 1: ties round to even.
    np.testing.assert_array_equal(reference["q"].flat[:6].astype(int) - int(zero.flat[0]),
                                  [0, 2, 2, 0, -2, -2])


def test_dequantize_int32_and_no_zero_point():
    rng = np.random.default_rng(2)
    x = ints(rng, np.int32, [4, 33])
    model = make_model(
        [helper.make_node("DequantizeLinear", ["x", "s", "z"], ["y"]),
         helper.make_node("DequantizeLinear", ["x", "s"], ["y2"])],
        [("x", T.INT32, [4, 33])], [("y", T.FLOAT, [4, 33]), ("y2", T.FLOAT, [4, 33])],
        {"s": np.float32(0.37), "z": np.int32(-2 ** 31 + 5)}, opset=13)
    check_exact(model, {"x": x})


def test_quantize_without_zero_point_is_uint8():
    x = np.linspace(-3, 300, 64, dtype=np.float32).reshape(8, 8)
    model = make_model([helper.make_node("QuantizeLinear", ["x", "s"], ["q"])],
                       [("x", T.FLOAT, [8, 8])], [("q", T.UINT8, [8, 8])],
                       {"s": np.float32(0.5)}, opset=13)
    check_exact(model, {"x": x})


def test_blocked_dequantization_matches_the_reference():
    scales = np.linspace(0.5, 3.0, 6, dtype=np.float32).reshape(3, 2)
    model = make_model([helper.make_node("DequantizeLinear", ["x", "s"], ["y"], axis=1,
                                         block_size=2)],
                       [("x", T.INT8, [3, 4])], [("y", T.FLOAT, [3, 4])], {"s": scales},
                       opset=21)
    compiled = compiled_parts(model)
    assert all(p.plugin == "cpu_llvm" for p in compiled.parts)
    x = np.arange(-6, 6, dtype=np.int8).reshape(3, 4)
    np.testing.assert_array_equal(compiled.run({"x": x})["y"],
                                  compile_reference(model).run({"x": x})["y"])


# -- QLinearConv / ConvInteger / QLinearMatMul / MatMulInteger -----------------------------------

TYPE_PAIRS = [(np.uint8, np.int8), (np.int8, np.int8), (np.uint8, np.uint8), (np.int8, np.uint8)]
CONV_CASES = [
    # x shape, w shape, attrs
    ([2, 6, 9, 8], [10, 3, 3, 3], {"pads": [1, 0, 2, 1], "strides": [1, 2], "group": 2}),
    ([1, 5, 12, 11], [19, 5, 1, 1], {}),
    ([1, 3, 17, 17], [8, 3, 7, 7], {"pads": [3, 3, 3, 3], "strides": [2, 2]}),
    ([1, 8, 10, 10], [8, 1, 3, 3], {"pads": [2, 2, 2, 2], "dilations": [2, 2], "group": 8}),
]


def conv_out_shape(x_shape, w_shape, attrs):
    pads = attrs.get("pads", [0, 0, 0, 0])
    strides = attrs.get("strides", [1, 1])
    dilations = attrs.get("dilations", [1, 1])
    spatial = [(x_shape[2 + i] + pads[i] + pads[2 + i] - dilations[i] * (w_shape[2 + i] - 1)
                - 1) // strides[i] + 1 for i in range(2)]
    return [x_shape[0], w_shape[0]] + spatial


@pytest.mark.parametrize("x_dtype,w_dtype", TYPE_PAIRS)
@pytest.mark.parametrize("case", range(len(CONV_CASES)))
def test_qlinear_conv_and_conv_integer(int_path, x_dtype, w_dtype, case):
    rng = np.random.default_rng(case)
    x_shape, w_shape, attrs = CONV_CASES[case]
    m = w_shape[0]
    w = ints(rng, w_dtype, w_shape)
    x = ints(rng, x_dtype, x_shape)
    w_center = 128 if w_dtype == np.uint8 else 0
    w_zero = (w_center + rng.integers(-3, 4, [m] if case % 2 else [])).astype(w_dtype)
    x_zero = np.array((128 if x_dtype == np.uint8 else 0) + 7, x_dtype)
    init = {"xs": np.float32(0.5), "xz": x_zero, "w": w, "wz": w_zero,
            # multipliers 0.5 * ws / ys are powers of two: some products are exact .5 ties
            "ws": rng.choice(np.array([1.0, 0.5], np.float32), m), "ys": np.float32(256.0),
            "yz": np.array(3, x_dtype), "b": rng.integers(-5000, 5000, m).astype(np.int32)}
    out_shape = conv_out_shape(x_shape, w_shape, attrs)
    conv_integer = make_model(
        [helper.make_node("ConvInteger", ["x", "w", "xz", "wz"], ["y"], **attrs)],
        [("x", TT[np.dtype(x_dtype)], x_shape)], [("y", T.INT32, out_shape)], init, opset=13)
    check_exact(conv_integer, {"x": x})
    qlinear = make_model(
        [helper.make_node("QLinearConv", ["x", "xs", "xz", "w", "ws", "wz", "ys", "yz", "b"],
                          ["y"], **attrs)],
        [("x", TT[np.dtype(x_dtype)], x_shape)], [("y", TT[np.dtype(x_dtype)], out_shape)],
        init, opset=13)
    reference = check_exact(qlinear, {"x": x})
    assert len(np.unique(reference["y"])) > 20  # not all saturated


@pytest.mark.parametrize("x_dtype", [np.int8, np.uint8])
@pytest.mark.parametrize("side", [2, 5, 7, 9])  # 4, 25, 49, 81 output columns
@pytest.mark.parametrize("kernel", [1, 2])
def test_narrow_results_of_a_tail_column_stay_in_their_row(int_path, x_dtype, side, kernel):
    """Output rows of 4 channels whose last 16-column vector has few valid lanes (49 = 3 x 16
    + 1): each lane's byte goes to its own place and nothing past it (the next channel's first
    columns, where a 4-byte store once landed)."""
    rng = np.random.default_rng(side)
    x_shape, w_shape = [1, 3, side + kernel - 1, side + kernel - 1], [4, 3, kernel, kernel]
    init = {"xs": np.float32(0.05), "xz": np.array(6, x_dtype), "w": ints(rng, np.int8, w_shape),
            "wz": np.array(0, np.int8), "ws": np.float32(0.01), "ys": np.float32(0.0346),
            "yz": np.array(3, x_dtype)}
    model = make_model(
        [helper.make_node("QLinearConv", ["x", "xs", "xz", "w", "ws", "wz", "ys", "yz"], ["y"])],
        [("x", TT[np.dtype(x_dtype)], x_shape)],
        [("y", TT[np.dtype(x_dtype)], [1, 4, side, side])], init, opset=13)
    reference = check_exact(model, {"x": ints(rng, x_dtype, x_shape)})
    assert len(np.unique(reference["y"])) > 3


@pytest.mark.parametrize("x_dtype,w_dtype", TYPE_PAIRS)
@pytest.mark.parametrize("x_shape,n", [([3, 5, 37], 21), ([1, 512], 100), ([70, 16], 3)])
def test_qlinear_matmul_and_matmul_integer(int_path, x_dtype, w_dtype, x_shape, n):
    rng = np.random.default_rng(n)
    k = x_shape[-1]
    init = {"xs": np.float32(0.05), "xz": np.array(9, x_dtype), "w": ints(rng, w_dtype, [k, n]),
            "ws": rng.uniform(0.01, 0.02, n).astype(np.float32), "wz": ints(rng, w_dtype, [n]),
            "ys": np.float32(0.3), "yz": np.array(5, x_dtype)}
    x = ints(rng, x_dtype, x_shape)
    out_shape = x_shape[:-1] + [n]
    xt = TT[np.dtype(x_dtype)]
    check_exact(make_model(
        [helper.make_node("QLinearMatMul", ["x", "xs", "xz", "w", "ws", "wz", "ys", "yz"],
                          ["y"])], [("x", xt, x_shape)], [("y", xt, out_shape)], init,
        opset=13), {"x": x})
    check_exact(make_model(
        [helper.make_node("MatMulInteger", ["x", "w", "xz", "wz"], ["y"])],
        [("x", xt, x_shape)], [("y", T.INT32, out_shape)], init, opset=13), {"x": x})


# -- QDQ groups ---------------------------------------------------------------------------------

def qdq_model(op, activation="Relu", bias_scale_factor=1.0, seed=0, x_dtype=np.uint8,
              w_dtype=np.int8, shared_input=False):
    """QuantizeLinear(x) -> DQ -> op(DQ(w), DQ(bias)) -> activation -> QuantizeLinear (as in
    tests/core/test_integer_groups.py), optionally with the input DQ read by a second node."""
    rng = np.random.default_rng(seed)
    x_scale, y_scale = np.float32(0.05), np.float32(0.11)
    if op == "Conv":
        w = ints(rng, w_dtype, (8, 4, 3, 3))
        x_shape, y_shape, attrs, axis = [1, 4, 9, 9], [1, 8, 9, 9], {"pads": [1, 1, 1, 1]}, 0
    elif op == "Gemm":
        w = ints(rng, w_dtype, (6, 16))
        x_shape, y_shape, attrs, axis = [3, 16], [3, 6], {"transB": 1}, 0
    else:  # MatMul, weights per output channel on axis 1
        w = ints(rng, w_dtype, (16, 6))
        x_shape, y_shape, attrs, axis = [2, 3, 16], [2, 3, 6], {}, 1
    channels = w.shape[axis]
    w_scale = rng.uniform(0.005, 0.02, channels).astype(np.float32)
    init = {
        "xs": x_scale, "xz": np.array(128 if x_dtype == np.uint8 else -3, x_dtype),
        "ys": y_scale, "yz": np.array(3, x_dtype),
        "w": w, "ws": w_scale,
        "wz": np.zeros(channels, w_dtype) if w_dtype == np.int8 else ints(rng, w_dtype, channels),
        "b": rng.integers(-2000, 2000, channels).astype(np.int32),
        "bs": (x_scale * w_scale * np.float32(bias_scale_factor)).astype(np.float32),
        "bz": np.zeros(channels, np.int32),
    }
    nodes = [
        helper.make_node("QuantizeLinear", ["x", "xs", "xz"], ["xq"]),
        helper.make_node("DequantizeLinear", ["xq", "xs", "xz"], ["xd"]),
        helper.make_node("DequantizeLinear", ["w", "ws", "wz"], ["wd"], axis=axis),
    ]
    if op == "MatMul":  # no bias input
        for name in ("b", "bs", "bz"):
            del init[name]
        nodes.append(helper.make_node(op, ["xd", "wd"], ["acc"], name="layer"))
    else:
        nodes += [helper.make_node("DequantizeLinear", ["b", "bs", "bz"], ["bd"], axis=0),
                  helper.make_node(op, ["xd", "wd", "bd"], ["acc"], name="layer", **attrs)]
    last = "acc"
    if activation:
        nodes.append(helper.make_node(activation, ["acc"], ["act"]))
        last = "act"
    nodes.append(helper.make_node("QuantizeLinear", [last, "ys", "yz"], ["y"], name="quant"))
    outputs = [("y", TT[np.dtype(x_dtype)], y_shape)]
    if shared_input:
        nodes.append(helper.make_node("Relu", ["xd"], ["side"]))
        outputs.append(("side", T.FLOAT, x_shape))
    return make_model(nodes, [("x", T.FLOAT, x_shape)], outputs, init, opset=13), x_shape


@pytest.mark.parametrize("op", ["Conv", "Gemm", "MatMul"])
@pytest.mark.parametrize("activation", ["Relu", None])
@pytest.mark.parametrize("x_dtype,w_dtype", [(np.uint8, np.int8), (np.int8, np.int8),
                                             (np.uint8, np.uint8)])
def test_qdq_group_runs_as_one_integer_kernel(int_path, op, activation, x_dtype, w_dtype):
    for seed in range(3):
        model, x_shape = qdq_model(op, activation, seed=seed, x_dtype=x_dtype,
                                   w_dtype=w_dtype)
        x = np.random.default_rng(100 + seed).uniform(-6, 6, x_shape).astype(np.float32)
        check_exact(model, {"x": x})
    compiled = compiled_parts(model)
    assert compiled.plan.patterns["layer"] == f"cpu_llvm.qdq_{'conv' if op == 'Conv' else 'matmul'}"


def test_qdq_group_with_shared_input_dequantize():
    model, x_shape = qdq_model("Conv", shared_input=True)
    x = np.random.default_rng(5).uniform(-6, 6, x_shape).astype(np.float32)
    check_exact(model, {"x": x})
    assert byoc.compile(model, plugins=["cpu_llvm"]).plan.patterns["layer"] == \
        "cpu_llvm.qdq_conv"


def test_qdq_group_whose_input_dequantize_runs_elsewhere():
    """With the shared input DequantizeLinear pinned to the host, the group's kernel gets the
    float input and quantizes it back (exactly) before the integer product."""
    model, x_shape = qdq_model("Conv", shared_input=True)
    x = np.random.default_rng(6).uniform(-6, 6, x_shape).astype(np.float32)
    reference = compile_reference(model).run({"x": x})
    compiled = byoc.compile(model, plugins=["cpu_llvm"], pins={"DequantizeLinear_1": "reference"})
    assert compiled.plan.patterns["layer"] == "cpu_llvm.qdq_conv"
    layer_part = compiled.plan.partition_of("layer")
    assert layer_part.plugin == "cpu_llvm" and "xd" in layer_part.inputs  # the float input
    ours = compiled.run({"x": x})
    for name, expected in reference.items():
        np.testing.assert_array_equal(ours[name], expected)


def test_float_semantics_groups_are_not_claimed_as_integer():
    model, _x_shape = qdq_model("Conv", bias_scale_factor=2.0)
    compiled = compiled_parts(model)
    assert compiled.plan.patterns["layer"] != "cpu_llvm.qdq_conv"


# -- the int8 example models --------------------------------------------------------------------

@pytest.mark.parametrize("name", ["cnn_int8", "resnet18_int8"])
def test_int8_zoo_models_are_exact(tmp_path, name):
    model = onnx.load(str(zoo_module().build(name, tmp_path)))
    graph_input = model.graph.input[0]
    shape = [d.dim_value or 1 for d in graph_input.type.tensor_type.shape.dim]
    x = np.random.default_rng(0).uniform(-2, 2, shape).astype(np.float32)
    reference = compile_reference(model).run({graph_input.name: x})
    compiled = byoc.compile(model, plugins=["cpu_llvm"])
    on_cpu_llvm = sum(sum(p.ops.values()) for p in compiled.parts if p.plugin == "cpu_llvm")
    total = sum(sum(p.ops.values()) for p in compiled.parts)
    print(f"{name}: {on_cpu_llvm} of {total} nodes on cpu_llvm")
    assert on_cpu_llvm == total
    ours = compiled.run({graph_input.name: x})
    for value, expected in reference.items():
        np.testing.assert_array_equal(ours[value], expected)
