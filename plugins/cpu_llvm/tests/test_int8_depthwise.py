"""cpu_llvm's direct integer depthwise convolution (kernels/qdepthwise.py): QLinearConv and
ConvInteger with one channel per group, on both tap paths (dot products, with VNNI and
portable, and widening multiplies), bit-exact with the reference interpreter on odd shapes
(tails of 1 to 15 columns), padding on every side, strides 1 to 4, dilation, both activation
and weight types, zero points at the extremes, at 1 and 2 threads."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
from onnx import TensorProto as T
from onnx import helper
from test_int8 import TT, check_exact, conv_out_shape, int_path, ints  # noqa: F401 (fixture)

from byoc.testing import make_model
from byoc_cpu_llvm.kernels import qdepthwise
from byoc_cpu_llvm.kernels.conv import ConvGeometry
from byoc_cpu_llvm.kernels.qdepthwise import depthwise_fits

# name: x shape, kernel (kh, kw), attrs, whether the depthwise kernel takes it (and whether
# a kernel row's bytes for 16 columns lie within 64, as the dot path needs)
CASES = {
    # 3x3 same padding, 17 columns: a tail of 1
    "same_3x3": ([1, 5, 9, 17], (3, 3), {"pads": [1, 1, 1, 1]}, True),
    # MobileNet's stride 2, asymmetric padding, 2 images, 25 columns (a tail of 9)
    "stride_2": ([2, 3, 13, 50], (3, 3), {"pads": [0, 1, 1, 0], "strides": [2, 2]}, True),
    "stride_3_dilated": ([1, 4, 20, 47], (3, 3),
                         {"pads": [2, 3, 1, 2], "strides": [3, 3], "dilations": [2, 2]}, True),
    # stride 4 across, 1 down; a 5x5 kernel; input rows past the last window are never read
    "stride_4_5x5": ([1, 3, 15, 70], (5, 5), {"pads": [2, 2, 0, 2], "strides": [1, 4]}, True),
    "pointwise_1x1": ([1, 6, 4, 33], (1, 1), {}, True),
    # 15 * 4 + 2 * 2 = 64: one byte too wide for the dot path
    "stride_4_dilated": ([1, 2, 9, 66], (3, 3),
                         {"pads": [1, 1, 1, 1], "strides": [2, 4], "dilations": [1, 2]}, True),
    # wider strides go to the product driver
    "stride_5": ([1, 3, 12, 40], (3, 3), {"pads": [1, 1, 1, 1], "strides": [5, 5]}, False),
}
# activation type and zero point; weight type, its zero points' centre and spread (a spread
# makes some w - w_zero leave the signed byte range: the dot path declines those weights)
ZEROS = [(np.uint8, 0, np.int8, 0, 0), (np.uint8, 255, np.uint8, 128, 3),
         (np.int8, -128, np.uint8, 128, 0), (np.int8, 127, np.int8, 0, 3)]


@pytest.fixture(params=["dot", "multiply"])
def tap_path(request, monkeypatch):
    monkeypatch.setattr(qdepthwise, "USE_DOT", request.param == "dot")
    return request.param


def _weight_zero(rng, w_dtype, centre, spread, channels):
    info = np.iinfo(w_dtype)
    return np.clip(centre + rng.integers(-spread, spread + 1, channels),
                   info.min, info.max).astype(w_dtype)


@pytest.mark.usefixtures("int_path", "tap_path")
@pytest.mark.parametrize("x_dtype,x_zero,w_dtype,w_centre,w_spread", ZEROS)
@pytest.mark.parametrize("name", list(CASES))
def test_depthwise_convolution_is_exact(name, x_dtype, x_zero, w_dtype, w_centre, w_spread):
    x_shape, (kh, kw), attrs, _ = CASES[name]
    attrs = {**attrs, "group": x_shape[1]}
    channels = x_shape[1]
    w_shape = [channels, 1, kh, kw]
    rng = np.random.default_rng(len(name) + abs(x_zero))
    init = {"xs": np.float32(0.5), "xz": np.array(x_zero, x_dtype),
            "w": ints(rng, w_dtype, w_shape),
            "wz": _weight_zero(rng, w_dtype, w_centre, w_spread, channels),
            # multipliers 0.5 * ws / ys are powers of two: some products are exact .5 ties
            "ws": rng.choice(np.array([1.0, 0.5, 0.25], np.float32), channels),
            "ys": np.float32(64.0 * kh * kw),
            "yz": np.array(128 if x_dtype == np.uint8 else 0, x_dtype),
            "b": rng.integers(-3000, 3000, channels).astype(np.int32)}
    out_shape = conv_out_shape(x_shape, w_shape, attrs)
    x_type = TT[np.dtype(x_dtype)]
    qlinear = make_model(
        [helper.make_node("QLinearConv", ["x", "xs", "xz", "w", "ws", "wz", "ys", "yz", "b"],
                          ["y"], **attrs)],
        [("x", x_type, x_shape)], [("y", x_type, out_shape)], init, opset=13)
    reference = check_exact(qlinear, {"x": ints(rng, x_dtype, x_shape)})
    assert len(np.unique(reference["y"])) > 20  # not all saturated
    integer = make_model(
        [helper.make_node("ConvInteger", ["x", "w", "xz", "wz"], ["y"], **attrs)],
        [("x", x_type, x_shape)], [("y", T.INT32, out_shape)], init, opset=13)
    check_exact(integer, {"x": ints(rng, x_dtype, x_shape)})


@pytest.mark.parametrize("name", list(CASES))
def test_depthwise_kernel_takes_the_cases_named_for_it(name):
    """The cases above exercise the path they are meant for."""
    x_shape, (kh, kw), attrs, direct = CASES[name]
    geo = ConvGeometry(SimpleNamespace(attrs={**attrs, "group": x_shape[1]}), x_shape,
                       [x_shape[1], 1, kh, kw])
    assert depthwise_fits(geo) == direct


@pytest.mark.parametrize("name", list(CASES))
def test_dot_path_takes_windows_of_64_bytes_and_weights_of_one_byte(name):
    x_shape, (kh, kw), attrs, direct = CASES[name]
    channels = x_shape[1]
    geo = ConvGeometry(SimpleNamespace(attrs={**attrs, "group": channels}), x_shape,
                       [channels, 1, kh, kw])
    fits = direct and name != "stride_4_dilated"
    byte_range = np.full((channels, kh, kw), -128), np.full((channels, kh, kw), 127)
    assert all(qdepthwise._dot_fits(w, geo) == fits for w in byte_range)
    assert not qdepthwise._dot_fits(np.full((channels, kh, kw), 128), geo)
    assert not qdepthwise._dot_fits(np.full((channels, kh, kw), -129), geo)


def test_grouped_convolution_with_two_channels_per_group_is_not_depthwise():
    geo = ConvGeometry(SimpleNamespace(attrs={"group": 3}), [1, 6, 8, 8], [6, 2, 3, 3])
    assert not depthwise_fits(geo)
