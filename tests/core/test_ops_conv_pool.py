"""The reference convolution and pooling ops against onnxruntime on one-node models."""

from __future__ import annotations

import numpy as np
import pytest
from core.node_harness import assert_same_outputs, run_onnxruntime, run_reference

from byoc.core.interpreter.runner import evaluate_node
from byoc.core.ir import Node

ort = pytest.importorskip("onnxruntime")

OPSET = 21


def run_both(op_type: str, inputs: list[np.ndarray | None], n_outputs: int = 1, **attrs):
    """Run one node on byoc's interpreter and on onnxruntime; return both lists of outputs."""
    expected = run_onnxruntime(op_type, inputs, OPSET, n_outputs, **attrs)
    return run_reference(op_type, inputs, OPSET, n_outputs, **attrs), expected


def check(ours, expected, exact: bool = False):
    assert_same_outputs(ours, expected, exact, rtol=1e-4, atol=1e-5)


def floats(rng, *shape):
    return rng.standard_normal(shape).astype(np.float32)


def integers(rng, dtype, *shape):
    """Values over the whole range of an integer dtype."""
    info = np.iinfo(dtype)
    return rng.integers(info.min, info.max, shape, endpoint=True).astype(dtype)


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


@pytest.mark.parametrize("x_shape, w_shape, bias, attrs", [
    ((2, 4, 9, 11), (6, 2, 3, 3), True,
     dict(group=2, dilations=[2, 1], strides=[2, 3], pads=[1, 0, 2, 1])),
    ((1, 8, 10, 10), (8, 1, 3, 3), True, dict(group=8, pads=[1, 1, 1, 1])),
    ((1, 3, 10, 7), (5, 3, 3, 2), False, dict(auto_pad="SAME_UPPER", strides=[2, 2])),
    ((1, 3, 10, 7), (5, 3, 4, 3), True, dict(auto_pad="SAME_LOWER", strides=[3, 1])),
    ((1, 3, 10, 7), (5, 3, 3, 3), True, dict(auto_pad="VALID", strides=[3, 2])),
    ((2, 4, 17), (6, 4, 5), True, dict(strides=[2], dilations=[3], pads=[2, 1])),
    ((1, 2, 5, 6, 7), (4, 1, 2, 3, 2), True, dict(group=2, strides=[1, 2, 1], pads=[1] * 6)),
])
def test_conv(rng, x_shape, w_shape, bias, attrs):
    inputs = [floats(rng, *x_shape), floats(rng, *w_shape),
              floats(rng, w_shape[0]) if bias else None]
    check(*run_both("Conv", inputs, **attrs))


def test_conv_same_with_dilations(rng):
    """onnxruntime refuses dilations with SAME padding, so compare with the explicit pads the
    spec implies: dilated extents 4 and 5 need 3 and 4 positions, the odd one first."""
    inputs = [floats(rng, 1, 3, 10, 7), floats(rng, 5, 3, 4, 3), floats(rng, 5)]
    ours = evaluate_node(Node("Conv", ["x", "w", "b"], ["y"],
                              {"auto_pad": "SAME_LOWER", "dilations": [1, 2]}), inputs)
    _, expected = run_both("Conv", inputs, dilations=[1, 2], pads=[2, 2, 1, 2])
    check(ours, expected)


@pytest.mark.parametrize("x_shape, w_shape, attrs", [
    ((2, 4, 5, 6), (4, 3, 3, 2), dict(group=2, strides=[2, 3], dilations=[1, 2],
                                      pads=[1, 0, 0, 1], output_padding=[1, 2])),
    ((1, 3, 4, 5), (3, 2, 3, 3), dict(strides=[2, 2], output_shape=[10, 9])),
    ((1, 3, 4, 5), (3, 2, 3, 3), dict(strides=[2, 2], auto_pad="SAME_UPPER")),
    ((1, 3, 4, 5), (3, 2, 3, 2), dict(strides=[2, 3], auto_pad="SAME_LOWER")),
    ((1, 2, 3, 3), (2, 2, 1, 1), dict(strides=[2, 2], auto_pad="SAME_UPPER")),
    ((1, 2, 7), (2, 3, 4), dict(strides=[3], auto_pad="VALID")),
    ((1, 6, 3, 3, 2), (6, 1, 2, 2, 2), dict(group=6, strides=[2, 1, 2])),
])
def test_conv_transpose(rng, x_shape, w_shape, attrs):
    inputs = [floats(rng, *x_shape), floats(rng, *w_shape),
              floats(rng, w_shape[1] * attrs.get("group", 1))]
    check(*run_both("ConvTranspose", inputs, **attrs))


@pytest.mark.parametrize("x_dtype, w_dtype, attrs", [
    (np.uint8, np.uint8, dict(pads=[1, 2, 0, 1], strides=[2, 1])),
    (np.uint8, np.int8, dict(group=2, dilations=[2, 2])),
    (np.int8, np.int8, dict(auto_pad="SAME_UPPER")),
])
def test_conv_integer(rng, x_dtype, w_dtype, attrs):
    group = attrs.get("group", 1)
    inputs = [integers(rng, x_dtype, 2, 4, 8, 7),
              integers(rng, w_dtype, 3 * group, 4 // group, 3, 3),
              np.array(rng.integers(0, 100), x_dtype), np.array(rng.integers(0, 100), w_dtype)]
    check(*run_both("ConvInteger", inputs, **attrs), exact=True)


def test_conv_integer_accumulates_exactly():
    """255 * 255 * 3 * 3 * 64 does not fit float32's 24-bit mantissa; the sum must be exact."""
    x = np.full((1, 64, 3, 3), 255, np.uint8)
    w = np.full((1, 64, 3, 3), 255, np.uint8)
    w[0, 0, 0, 0] = 254
    node = Node("ConvInteger", ["x", "w"], ["y"], {})
    y = evaluate_node(node, [x, w])[0]
    assert y.dtype == np.int32 and y.item() == 255 * 255 * 9 * 64 - 255


@pytest.mark.parametrize("x_dtype, attrs", [
    (np.uint8, dict(pads=[1, 1, 1, 1], strides=[2, 2])),
    (np.int8, dict(group=3, strides=[1, 2], auto_pad="SAME_LOWER")),
    (np.uint8, dict(dilations=[2, 1], pads=[2, 1, 0, 1])),
    (np.uint8, dict(group=6, pads=[0, 1, 1, 0])),
])
def test_qlinear_conv_per_channel(rng, x_dtype, attrs):
    out_channels, group = 6, attrs.get("group", 1)
    middle = 128 if x_dtype == np.uint8 else 0
    inputs = [
        integers(rng, x_dtype, 2, 6, 9, 8), np.array(0.021, np.float32),
        np.array(middle + rng.integers(-20, 20), x_dtype),
        integers(rng, np.int8, out_channels, 6 // group, 3, 3),
        rng.uniform(0.001, 0.01, out_channels).astype(np.float32),
        np.zeros(out_channels, np.int8),
        np.array(0.35, np.float32), np.array(middle + 7, x_dtype),
        rng.integers(-5000, 5000, out_channels).astype(np.int32),
    ]
    check(*run_both("QLinearConv", inputs, **attrs), exact=True)


@pytest.mark.parametrize("dtype, attrs", [
    (np.float32, dict(kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1])),
    (np.float32, dict(kernel_shape=[3, 2], strides=[2, 2], ceil_mode=1, dilations=[1, 2])),
    (np.float32, dict(kernel_shape=[2, 3], auto_pad="SAME_LOWER", strides=[2, 1])),
    (np.float32, dict(kernel_shape=[3, 3], storage_order=1, pads=[0, 1, 2, 0])),
    (np.uint8, dict(kernel_shape=[2, 2], strides=[2, 2], auto_pad="SAME_UPPER")),
    (np.uint8, dict(kernel_shape=[3, 3], pads=[2, 1, 0, 2])),
    (np.int8, dict(kernel_shape=[3], strides=[2], ceil_mode=1)),
])
def test_max_pool_with_indices(rng, dtype, attrs):
    rank = len(attrs["kernel_shape"])
    shape = (2, 3, 9, 8)[:2 + rank]
    if dtype == np.float32:
        x = floats(rng, *shape)
    else:
        # Few distinct values, so windows have ties (the first maximum must win) and uint8
        # zeros tie with the padding value.
        x = rng.integers(-2 if dtype == np.int8 else 0, 3, shape).astype(dtype)
    check(*run_both("MaxPool", [x], n_outputs=2, **attrs), exact=True)
    check(*run_both("MaxPool", [x], **attrs), exact=True)


@pytest.mark.parametrize("attrs", [
    dict(kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1]),
    dict(kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1], count_include_pad=1),
    dict(kernel_shape=[3, 2], strides=[2, 3], pads=[1, 0, 1, 1], ceil_mode=1,
         count_include_pad=1),
    dict(kernel_shape=[2, 2], strides=[2, 2], ceil_mode=1),
    dict(kernel_shape=[3, 3], auto_pad="SAME_UPPER", strides=[2, 2], count_include_pad=1),
    dict(kernel_shape=[2, 3], dilations=[2, 2], pads=[1, 1, 1, 1]),
])
def test_average_pool(rng, attrs):
    check(*run_both("AveragePool", [floats(rng, 2, 3, 9, 8)], **attrs))


@pytest.mark.parametrize("op_type", ["GlobalAveragePool", "GlobalMaxPool"])
@pytest.mark.parametrize("shape", [(2, 3, 7), (1, 4, 5, 6), (1, 2, 3, 4, 5)])
def test_global_pools(rng, op_type, shape):
    check(*run_both(op_type, [floats(rng, *shape)]))


@pytest.mark.parametrize("attrs", [dict(size=3), dict(size=5, alpha=0.01, beta=0.6, bias=2.0)])
def test_lrn(rng, attrs):
    check(*run_both("LRN", [floats(rng, 2, 7, 5, 4)], **attrs))


def test_lrn_even_size_window():
    """size 4 sums one channel before and two after (onnxruntime only takes odd sizes)."""
    x = np.arange(1, 6, dtype=np.float32).reshape(1, 5, 1, 1)
    y = evaluate_node(Node("LRN", ["x"], ["y"], {"size": 4, "alpha": 4.0, "beta": 1.0}), [x])[0]
    sums = np.array([1 + 4 + 9, 1 + 4 + 9 + 16, 4 + 9 + 16 + 25, 9 + 16 + 25, 16 + 25])
    np.testing.assert_allclose(y.ravel(), np.arange(1, 6) / (1 + sums), rtol=1e-6)
