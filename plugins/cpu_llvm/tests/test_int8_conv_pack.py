"""The vectorized im2col packing of cpu_llvm's integer convolutions (kernels/qconv_pack.py):
each path (window, segments with loaded or gathered strides, pointwise)
bit-exact with the reference interpreter on odd shapes, padding, strides, both activation types
and zero points at the extremes, at 1 and 2 threads."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
from onnx import TensorProto as T
from onnx import helper
from test_int8 import TT, check_exact, conv_out_shape, ints

from byoc.testing import make_model
from byoc_cpu_llvm.kernels import qconv_pack
from byoc_cpu_llvm.kernels.conv import ConvGeometry
from byoc_cpu_llvm.target import host_target

# name: x shape, w shape, attrs, whether the window path can take it
CASES = {
    # 64 columns of a 70-wide image span more than a 128-byte window: segments, stride 1.
    "wide_image": ([1, 3, 70, 70], [5, 3, 3, 3], {"pads": [1, 1, 1, 1]}, False),
    "stride_3": ([1, 2, 66, 66], [3, 2, 3, 3], {"strides": [3, 3], "pads": [0, 1, 2, 0]},
                 False),
    # strides past 4 gather their bytes
    "stride_5": ([1, 3, 75, 75], [6, 3, 5, 5], {"strides": [5, 5], "pads": [2, 2, 2, 2]},
                 False),
    "small_stride_2": ([2, 7, 10, 10], [9, 7, 3, 3], {"strides": [2, 2], "pads": [1, 1, 1, 1]},
                       True),
    "small_odd": ([1, 13, 11, 9], [17, 13, 3, 3], {"pads": [1, 2, 0, 1]}, True),
    # 1x1, stride 1: the input is the column matrix; 37 channels, 81 columns (a tail block).
    "pointwise": ([1, 37, 9, 9], [19, 37, 1, 1], {}, False),
}
# uint8 and int8 activations, zero points at both extremes
ZEROS = [(np.uint8, 0), (np.uint8, 255), (np.int8, -128), (np.int8, 127)]


@pytest.fixture(params=["window", "segments"])
def pack_path(request, monkeypatch):
    if request.param == "window" and not host_target().has("avx512vbmi"):
        pytest.skip("the host has no AVX512-VBMI")
    monkeypatch.setattr(qconv_pack, "USE_WINDOW", request.param == "window")
    return request.param


@pytest.mark.parametrize("x_dtype,x_zero", ZEROS)
@pytest.mark.parametrize("name", list(CASES))
def test_packed_convolution_is_exact(pack_path, name, x_dtype, x_zero):
    x_shape, w_shape, attrs, _ = CASES[name]
    rng = np.random.default_rng(len(name) + abs(x_zero))
    m = w_shape[0]
    init = {"xs": np.float32(0.02), "xz": np.array(x_zero, x_dtype),
            "w": ints(rng, np.int8, w_shape), "wz": np.zeros(m, np.int8),
            "ws": rng.uniform(0.001, 0.01, m).astype(np.float32), "ys": np.float32(0.05),
            "yz": np.array(128 if x_dtype == np.uint8 else 0, x_dtype),
            "b": rng.integers(-3000, 3000, m).astype(np.int32)}
    out_shape = conv_out_shape(x_shape, w_shape, attrs)
    model = make_model(
        [helper.make_node("QLinearConv", ["x", "xs", "xz", "w", "ws", "wz", "ys", "yz", "b"],
                          ["y"], **attrs)],
        [("x", TT[np.dtype(x_dtype)], x_shape)], [("y", TT[np.dtype(x_dtype)], out_shape)],
        init, opset=13)
    reference = check_exact(model, {"x": ints(rng, x_dtype, x_shape)})
    assert len(np.unique(reference["y"])) > 20  # not all saturated
    integer = make_model(
        [helper.make_node("ConvInteger", ["x", "w", "xz"], ["y"], **attrs)],
        [("x", TT[np.dtype(x_dtype)], x_shape)], [("y", T.INT32, out_shape)], init, opset=13)
    check_exact(integer, {"x": ints(rng, x_dtype, x_shape)})


@pytest.mark.parametrize("name", list(CASES))
def test_window_path_takes_the_small_images(name):
    """The cases above exercise the path they are named for."""
    x_shape, w_shape, attrs, small = CASES[name]
    geo = _geometry(x_shape, w_shape, attrs)
    assert (qconv_pack.window_tables(geo) is not None and not geo.pointwise) == small


def _geometry(x_shape, w_shape, attrs) -> ConvGeometry:
    return ConvGeometry(SimpleNamespace(attrs=attrs), x_shape, w_shape)
