"""cpu_llvm's direct window kernels: Conv with run-time weights or 1-D / 3-D inputs,
ConvTranspose, N-D pools and MaxPool's Indices output, and the integer convolutions and
matrix products with run-time weights and parameters; all against the reference interpreter."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from cpu_llvm_checks import assert_outputs_match, compile_alone
from onnx import TensorProto as T
from onnx import helper

import byoc
from byoc.core.dtypes import to_onnx
from byoc.testing import compile_reference, make_model


def model_of(op, feeds, attrs=None, outputs=("y",), consts=None, epilogue=None, types=None,
             **kwargs):
    """One ``op`` node over ``feeds`` (graph inputs, in order) and ``consts`` (initializers);
    ``epilogue`` is an elementwise op applied to the first output; ``types`` are the outputs'
    element types (the first input's by default)."""
    consts = consts or {}
    opset = kwargs.pop("opset", 19)
    names = kwargs.pop("order", list(feeds) + list(consts))
    outs = list(outputs)
    nodes = [helper.make_node(op, names, outs if not epilogue else ["t"] + outs[1:],
                              **(attrs or {}))]
    if epilogue:
        nodes.append(helper.make_node(epilogue, ["t"], [outs[0]]))
    inputs = [(n, to_onnx(v.dtype), list(v.shape)) for n, v in feeds.items()]
    first = to_onnx(next(iter(feeds.values())).dtype)
    types = types or [first] * len(outs)
    # The output shapes, as ONNX shape inference gives them.
    bare = make_model(nodes, inputs, [], initializers=consts, opset=opset)
    inferred = {v.name: [d.dim_value for d in v.type.tensor_type.shape.dim]
                for v in onnx.shape_inference.infer_shapes(bare).graph.value_info}
    return make_model(nodes, inputs, [(o, t, inferred[o]) for o, t in zip(outs, types)],
                      initializers=consts, opset=opset)


def check(model, feeds, exact=False, threads=(1, 3)):
    reference = compile_reference(model).run(feeds)
    for count in threads:
        assert_outputs_match(compile_alone(model, count).run(feeds), reference,
                             *((0.0, 0.0) if exact else (1e-5, 1e-5)))


def floats(rng, *shape):
    return rng.standard_normal(shape).astype(np.float32)


def ints(rng, dtype, *shape):
    info = np.iinfo(dtype)
    return rng.integers(info.min, int(info.max) + 1, shape).astype(dtype)


# -- Conv: run-time weights, 1-D and 3-D -------------------------------------------------------

CONV_CASES = [
    ((1, 3, 7, 6), (4, 3, 3, 3), {"pads": [1, 1, 1, 1]}),
    ((2, 4, 9, 8), (6, 2, 3, 2), {"group": 2, "strides": [2, 1], "dilations": [1, 2]}),
    ((1, 3, 5, 5), (3, 1, 3, 3), {"group": 3, "auto_pad": "SAME_LOWER", "strides": [2, 2]}),
    ((2, 3, 11), (5, 3, 4), {"pads": [2, 1], "strides": [2], "dilations": [2]}),
    ((1, 2, 5, 6, 4), (3, 2, 3, 2, 2), {"pads": [1, 0, 1, 1, 1, 0], "strides": [1, 2, 1]}),
]


# Run-time weights in any rank, and constant weights where the input is not 2-D (2-D constant
# weights take the packed path, tested in test_conv_gemm.py).
DIRECT_CONV_CASES = [(*case, runtime) for case in CONV_CASES for runtime in (True, False)
                     if runtime or len(case[0]) != 4]


@pytest.mark.parametrize("x_shape,w_shape,attrs,runtime", DIRECT_CONV_CASES)
def test_conv_direct(x_shape, w_shape, attrs, runtime):
    rng = np.random.default_rng(0)
    x, w, bias = floats(rng, *x_shape), floats(rng, *w_shape), floats(rng, w_shape[0])
    feeds = {"x": x, "w": w, "b": bias} if runtime else {"x": x}
    consts = {} if runtime else {"w": w, "b": bias}
    check(model_of("Conv", feeds, attrs, consts=consts, epilogue="Relu", order=["x", "w", "b"]),
          feeds)


# -- ConvTranspose -----------------------------------------------------------------------------

TRANSPOSE_CASES = [
    ((1, 2, 3, 3), (2, 3, 3, 3), {}),
    ((2, 4, 3, 4), (4, 2, 3, 3), {"group": 2, "strides": [3, 2]}),
    ((1, 2, 4, 3), (2, 2, 2, 3), {"strides": [2, 2], "pads": [1, 0, 0, 2],
                                  "output_padding": [1, 1]}),
    ((1, 1, 3, 3), (1, 2, 2, 2), {"dilations": [2, 3], "strides": [2, 1]}),
    ((1, 1, 3, 3), (1, 2, 3, 3), {"strides": [3, 2], "output_shape": [10, 8]}),
    ((1, 1, 3, 3), (1, 2, 3, 3), {"strides": [2, 2], "output_shape": [11, 8]}),
    ((1, 2, 3, 4), (2, 1, 3, 3), {"strides": [2, 2], "auto_pad": "SAME_UPPER"}),
    ((1, 2, 3, 4), (2, 1, 2, 3), {"strides": [2, 3], "auto_pad": "SAME_LOWER"}),
    ((2, 3, 5), (3, 2, 3), {"strides": [2], "pads": [1, 2]}),
    ((1, 2, 3, 2, 3), (2, 2, 2, 3, 2), {"strides": [2, 1, 2], "auto_pad": "VALID"}),
]


@pytest.mark.parametrize("runtime", [True, False])
@pytest.mark.parametrize("x_shape,w_shape,attrs", TRANSPOSE_CASES)
def test_conv_transpose(x_shape, w_shape, attrs, runtime):
    rng = np.random.default_rng(1)
    x, w = floats(rng, *x_shape), floats(rng, *w_shape)
    bias = floats(rng, w_shape[1] * attrs.get("group", 1))
    feeds = {"x": x, "w": w, "b": bias} if runtime else {"x": x}
    consts = {} if runtime else {"w": w, "b": bias}
    check(model_of("ConvTranspose", feeds, attrs, consts=consts, order=["x", "w", "b"]), feeds)


def test_conv_transpose_no_bias_with_epilogue():
    rng = np.random.default_rng(2)
    feeds = {"x": floats(rng, 1, 3, 4, 4), "w": floats(rng, 3, 2, 3, 3)}
    check(model_of("ConvTranspose", feeds, {"strides": [2, 2], "pads": [1, 1, 1, 1]},
                   epilogue="Sigmoid"), feeds)


def test_conv_transpose_declines_float64():
    x = np.zeros((1, 1, 2, 2), np.float64)
    model = make_model([helper.make_node("ConvTranspose", ["x", "w"], ["y"])],
                       [("x", T.DOUBLE, [1, 1, 2, 2]), ("w", T.DOUBLE, [1, 1, 2, 2])],
                       [("y", T.DOUBLE, [1, 1, 3, 3])])
    compiled = byoc.compile(model, plugins=["cpu_llvm"])
    assert not any(p.plugin == "cpu_llvm" for p in compiled.parts)
    out = compiled.run({"x": x, "w": x})["y"]
    assert out.shape == (1, 1, 3, 3)


# -- pools: N-D windows and MaxPool's Indices ---------------------------------------------------

POOL_CASES = [
    ((1, 2, 5, 6, 4), {"kernel_shape": [2, 3, 2]}),
    ((2, 1, 6, 5, 7), {"kernel_shape": [3, 2, 3], "strides": [2, 2, 1],
                       "pads": [1, 0, 1, 1, 1, 0]}),
    ((1, 2, 7, 7, 7), {"kernel_shape": [2, 2, 2], "dilations": [2, 2, 3], "strides": [2, 1, 2],
                       "ceil_mode": 1}),
    ((1, 1, 5, 4, 3, 4), {"kernel_shape": [2, 2, 2, 2], "auto_pad": "SAME_UPPER"}),
]


@pytest.mark.parametrize("include_pad", [0, 1])
@pytest.mark.parametrize("shape,attrs", POOL_CASES)
def test_average_pool_nd(shape, attrs, include_pad):
    rng = np.random.default_rng(3)
    feeds = {"x": floats(rng, *shape)}
    check(model_of("AveragePool", feeds, dict(attrs, count_include_pad=include_pad)), feeds)


@pytest.mark.parametrize("shape,attrs", POOL_CASES)
def test_max_pool_nd(shape, attrs):
    rng = np.random.default_rng(4)
    feeds = {"x": floats(rng, *shape)}
    check(model_of("MaxPool", feeds, attrs, epilogue="Neg"), feeds)


INDEX_CASES = POOL_CASES + [
    ((2, 3, 6, 7), {"kernel_shape": [3, 3], "strides": [2, 2], "pads": [1, 1, 1, 1]}),
    ((1, 2, 8, 5), {"kernel_shape": [2, 3], "dilations": [2, 1], "ceil_mode": 1,
                    "strides": [3, 2]}),
    ((2, 2, 9), {"kernel_shape": [3], "strides": [2], "pads": [1, 1]}),
]


@pytest.mark.parametrize("dtype", [np.float32, np.uint8, np.int8])
@pytest.mark.parametrize("storage_order", [0, 1])
@pytest.mark.parametrize("shape,attrs", INDEX_CASES)
def test_max_pool_indices(shape, attrs, storage_order, dtype):
    rng = np.random.default_rng(5)
    # Few distinct values, so ties (the first maximum wins) are common.
    x = rng.integers(0, 4, shape).astype(dtype)
    if dtype == np.float32:
        x = x + np.float32(0.5) * floats(rng, *shape).round()
    feeds = {"x": x}
    model = model_of("MaxPool", feeds, dict(attrs, storage_order=storage_order),
                     outputs=("y", "i"), types=[to_onnx(dtype), T.INT64])
    check(model, feeds, exact=True)


def test_max_pool_indices_declines_empty_window():
    x = np.zeros((1, 1, 4, 4), np.float32)
    model = model_of("MaxPool", {"x": x}, {"kernel_shape": [2, 2], "pads": [2, 2, 0, 0]},
                     outputs=("y", "i"), types=[T.FLOAT, T.INT64])
    compiled = byoc.compile(model, plugins=["cpu_llvm"])
    assert not any(p.plugin == "cpu_llvm" for p in compiled.parts)


# -- integer convolutions and products with run-time weights and parameters ----------------------


@pytest.mark.parametrize("x_dtype,w_dtype", [(np.uint8, np.uint8), (np.int8, np.int8),
                                             (np.uint8, np.int8)])
@pytest.mark.parametrize("x_shape,w_shape,attrs", CONV_CASES)
def test_conv_integer_runtime(x_shape, w_shape, attrs, x_dtype, w_dtype):
    rng = np.random.default_rng(6)
    feeds = {"x": ints(rng, x_dtype, *x_shape), "w": ints(rng, w_dtype, *w_shape),
             "xz": ints(rng, x_dtype, 1), "wz": ints(rng, w_dtype, w_shape[0])}
    check(model_of("ConvInteger", feeds, attrs, types=[T.INT32]), feeds, exact=True)


@pytest.mark.parametrize("per_channel", [False, True])
@pytest.mark.parametrize("x_shape,w_shape,attrs", CONV_CASES)
def test_qlinear_conv_runtime(x_shape, w_shape, attrs, per_channel):
    rng = np.random.default_rng(7)
    m = w_shape[0]
    feeds = {"x": ints(rng, np.uint8, *x_shape), "xs": np.array([0.05], np.float32),
             "xz": np.array([120], np.uint8), "w": ints(rng, np.int8, *w_shape),
             "ws": (rng.uniform(0.001, 0.02, m if per_channel else 1)).astype(np.float32),
             "wz": np.zeros(m if per_channel else 1, np.int8),
             "ys": np.array([0.7], np.float32), "yz": np.array([3], np.int8),
             "b": rng.integers(-500, 500, m).astype(np.int32)}
    check(model_of("QLinearConv", feeds, attrs, types=[T.INT8]), feeds, exact=True)


@pytest.mark.parametrize("a_shape,b_shape", [((4, 3), (3, 5)), ((2, 3, 4), (4, 6)),
                                             ((1, 3, 5), (2, 5, 2)), ((7, 6), (6, 1))])
def test_matmul_integer_runtime(a_shape, b_shape):
    rng = np.random.default_rng(8)
    feeds = {"a": ints(rng, np.uint8, *a_shape), "b": ints(rng, np.int8, *b_shape),
             "az": ints(rng, np.uint8, a_shape[-2]), "bz": ints(rng, np.int8, b_shape[-1])}
    check(model_of("MatMulInteger", feeds, types=[T.INT32]), feeds, exact=True)


@pytest.mark.parametrize("scale_dtype", [np.float32, np.float16])
@pytest.mark.parametrize("dtype", [np.uint8, np.int8])
@pytest.mark.parametrize("a_shape,b_shape", [((4, 3), (3, 5)), ((2, 3, 4), (2, 4, 6))])
def test_qlinear_matmul_runtime(a_shape, b_shape, dtype, scale_dtype):
    """float16 scales: the multiplier is formed in float16, one rounding per step, as the
    reference (numpy) does."""
    rng = np.random.default_rng(9)
    feeds = {"a": ints(rng, dtype, *a_shape), "as": np.array([0.02], scale_dtype),
             "az": ints(rng, dtype, 1), "b": ints(rng, dtype, *b_shape),
             "bs": rng.uniform(0.01, 0.03, b_shape[-1]).astype(scale_dtype),
             "bz": ints(rng, dtype, 1), "ys": np.array([0.0123], scale_dtype),
             "yz": ints(rng, dtype, 1)}
    check(model_of("QLinearMatMul", feeds, types=[to_onnx(dtype)], opset=21), feeds, exact=True)

