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

# name: x shape, w shape, attrs, the path that packs it (all paths enabled)
CASES = {
    # 64 columns of a 70-wide image span more than a 128-byte window; stride 1 and as many
    # output as input columns: shifted (segments when the shifted path is off)
    "wide_image": ([1, 3, 70, 70], [5, 3, 3, 3], {"pads": [1, 1, 1, 1]}, "shifted"),
    # shifted, with uneven pads (one output row fewer than the input's), dilation 2, groups
    # and a batch of two
    "shifted_uneven": ([1, 5, 21, 70], [7, 5, 3, 3], {"pads": [2, 1, 0, 1]}, "shifted"),
    "shifted_dilated": ([1, 4, 20, 71], [6, 4, 3, 3], {"pads": [2, 2, 2, 2],
                                                       "dilations": [2, 2]}, "shifted"),
    "shifted_grouped": ([2, 8, 12, 75], [6, 4, 3, 3], {"pads": [1, 1, 1, 1], "group": 2},
                        "shifted"),
    "stride_3": ([1, 2, 66, 66], [3, 2, 3, 3], {"strides": [3, 3], "pads": [0, 1, 2, 0]},
                 "segments"),
    # strides past 4 gather their bytes
    "stride_5": ([1, 3, 75, 75], [6, 3, 5, 5], {"strides": [5, 5], "pads": [2, 2, 2, 2]},
                 "segments"),
    "small_stride_2": ([2, 7, 10, 10], [9, 7, 3, 3], {"strides": [2, 2], "pads": [1, 1, 1, 1]},
                       "window"),
    "small_odd": ([1, 13, 11, 9], [17, 13, 3, 3], {"pads": [1, 2, 0, 1]}, "window"),
    # small and shifted: the shifted path (the window one when the shifted is off)
    "small_same": ([1, 6, 8, 8], [5, 6, 3, 3], {"pads": [1, 1, 1, 1]}, "shifted"),
    # 1x1, stride 1: the input is the column matrix; 37 channels, 81 columns (a tail block).
    "pointwise": ([1, 37, 9, 9], [19, 37, 1, 1], {}, "pointwise"),
}
# uint8 and int8 activations, zero points at both extremes
ZEROS = [(np.uint8, 0), (np.uint8, 255), (np.int8, -128), (np.int8, 127)]


@pytest.fixture(params=["all paths", "window and segments", "segments only"])
def pack_path(request, monkeypatch):
    if request.param == "window and segments" and not host_target().has("avx512vbmi"):
        pytest.skip("the host has no AVX512-VBMI")
    monkeypatch.setattr(qconv_pack, "USE_WINDOW", request.param != "segments only")
    monkeypatch.setattr(qconv_pack, "USE_SHIFTED", request.param == "all paths")
    return request.param


@pytest.mark.parametrize("x_dtype,x_zero", ZEROS)
@pytest.mark.parametrize("name", list(CASES))
def test_packed_convolution_is_exact(pack_path, name, x_dtype, x_zero):
    check_case(name, x_dtype, x_zero, weight_zero=False)


@pytest.mark.parametrize("name", ["wide_image", "small_odd", "stride_3", "pointwise"])
def test_weight_zero_points_with_k_not_a_multiple_of_4(pack_path, name):
    """Weight zero points make the kernel sum the packed activations of each column: the rows
    past K (27, 117, 18 and 37 are not multiples of 4) must add nothing to that sum."""
    check_case(name, np.uint8, 7, weight_zero=True)


def check_case(name, x_dtype, x_zero, weight_zero):
    x_shape, w_shape, attrs, _ = CASES[name]
    rng = np.random.default_rng(len(name) + abs(x_zero))
    m = w_shape[0]
    w_zero = ints(rng, np.int8, (m,)) // 4 if weight_zero else np.zeros(m, np.int8)
    init = {"xs": np.float32(0.02), "xz": np.array(x_zero, x_dtype),
            "w": ints(rng, np.int8, w_shape), "wz": w_zero,
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
def test_each_case_takes_the_path_it_is_meant_for(name, monkeypatch):
    """The cases above exercise the path they are named for: the packing function each gets
    (the window and segment paths share one; the window's reads its tables)."""
    x_shape, w_shape, attrs, path = CASES[name]
    geo = _geometry(x_shape, w_shape, attrs)
    taken = {}
    for function in ("_pointwise_pack", "_shifted_pack", "_window_rows", "_fill_rows"):
        original = getattr(qconv_pack, function)

        def spy(*args, _name=function, _original=original):
            taken[_name] = True
            return _original(*args)
        monkeypatch.setattr(qconv_pack, function, spy)
    program = SimpleNamespace(constant=lambda *args: 0, scratch=lambda *args: 0)
    pack = qconv_pack.conv_pack(program, "t", geo, 0, False)
    kinds = {"_pointwise_pack": "pointwise", "_shifted_pack": "shifted"}
    made = [kinds[f] for f in taken if f in kinds]
    if not made:
        made = ["window" if qconv_pack.window_tables(geo) is not None
                and host_target().has("avx512vbmi") else "segments"]
    assert callable(pack) and made == [path]


def _geometry(x_shape, w_shape, attrs) -> ConvGeometry:
    return ConvGeometry(SimpleNamespace(attrs=attrs), x_shape, w_shape)
