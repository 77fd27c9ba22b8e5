"""The reference matmul, normalization and quantization ops against onnxruntime on one-node
models; integer results must match exactly."""

from __future__ import annotations

import numpy as np
import pytest
from core.node_harness import assert_same_outputs, run_onnxruntime, run_reference
from onnx import TensorProto

from byoc.errors import ExecutionError

ort = pytest.importorskip("onnxruntime")


def check(op_type: str, inputs: list[np.ndarray | None], opset: int = 21, n_outputs: int = 1,
          exact: bool = False, rtol: float = 1e-5, **attrs) -> None:
    ours = run_reference(op_type, inputs, opset, n_outputs, **attrs)
    expected = run_onnxruntime(op_type, inputs, opset, n_outputs, **attrs)
    assert_same_outputs(ours, expected, exact, rtol=rtol, atol=rtol)


def floats(rng, *shape, dtype=np.float32):
    return rng.standard_normal(shape).astype(dtype)


def integers(rng, dtype, *shape):
    """Values over the whole range of an integer dtype."""
    info = np.iinfo(dtype)
    return rng.integers(info.min, info.max, shape, endpoint=True).astype(dtype)


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


# -- Gemm and MatMul ------------------------------------------------------------------------


@pytest.mark.parametrize("trans_a, trans_b", [(0, 0), (1, 0), (0, 1), (1, 1)])
@pytest.mark.parametrize("c_shape", [None, (), (5,), (3, 1), (3, 5)])
def test_gemm(rng, trans_a, trans_b, c_shape):
    a = floats(rng, *((4, 3) if trans_a else (3, 4)))
    b = floats(rng, *((5, 4) if trans_b else (4, 5)))
    c = None if c_shape is None else floats(rng, *c_shape)
    check("Gemm", [a, b, c], 13, transA=trans_a, transB=trans_b, alpha=0.5, beta=2.0)


def test_gemm_beta_zero_ignores_c(rng):
    c = np.full((3, 5), np.inf, np.float32)
    (y,) = run_reference("Gemm", [floats(rng, 3, 4), floats(rng, 4, 5), c], 13, beta=0.0)
    assert np.isfinite(y).all()


@pytest.mark.parametrize("a_shape, b_shape", [
    ((4,), (4,)), ((4,), (2, 4, 3)), ((2, 3, 4), (4,)), ((2, 1, 3, 4), (5, 4, 2)),
])
@pytest.mark.parametrize("dtype", [np.float32, np.float16, np.int32, np.int64])
def test_matmul(rng, a_shape, b_shape, dtype):
    a = (floats(rng, *a_shape) * 4).astype(dtype)
    b = (floats(rng, *b_shape) * 4).astype(dtype)
    check("MatMul", [a, b], 13, exact=np.issubdtype(dtype, np.integer),
          rtol=1e-2 if dtype == np.float16 else 1e-5)


@pytest.mark.parametrize("a_type, b_type", [(np.uint8, np.uint8), (np.uint8, np.int8),
                                            (np.int8, np.int8), (np.int8, np.uint8)])
def test_matmul_integer(rng, a_type, b_type):
    a, b = integers(rng, a_type, 2, 7, 33), integers(rng, b_type, 33, 9)
    check("MatMulInteger", [a, b], 13, exact=True)
    check("MatMulInteger", [a, b, integers(rng, a_type), integers(rng, b_type, 9)], 13,
          exact=True)


def test_matmul_integer_per_row_zero_point(rng):
    """onnxruntime only takes a per-tensor zero point for A; check against the formula."""
    a, b = integers(rng, np.uint8, 5, 16), integers(rng, np.int8, 16, 3)
    a_zero_point, b_zero_point = integers(rng, np.uint8, 5), integers(rng, np.int8, 3)
    (y,) = run_reference("MatMulInteger", [a, b, a_zero_point, b_zero_point], 13)
    want = ((a.astype(np.int64) - a_zero_point[:, None]) @ (b.astype(np.int64) - b_zero_point))
    assert y.dtype == np.int32
    np.testing.assert_array_equal(y, want)


@pytest.mark.parametrize("a_type, b_type", [(np.uint8, np.uint8), (np.uint8, np.int8),
                                            (np.int8, np.int8)])
@pytest.mark.parametrize("per_column", [False, True])
def test_qlinear_matmul(rng, a_type, b_type, per_column):
    n = 11
    param_shape = (1, n) if per_column else ()
    a, b = integers(rng, a_type, 2, 6, 40), integers(rng, b_type, 40, n)
    inputs = [a, np.array(0.02, np.float32), integers(rng, a_type),
              b, rng.uniform(0.005, 0.03, param_shape).astype(np.float32),
              integers(rng, b_type, *param_shape),
              np.array(0.35, np.float32), integers(rng, a_type)]
    check("QLinearMatMul", inputs, exact=True)


def test_qlinear_matmul_per_row_a(rng):
    """A per-row scale and zero point for ``a``: the formula, requantized in float32."""
    a, b = integers(rng, np.uint8, 4, 8), integers(rng, np.int8, 8, 3)
    a_scale = rng.uniform(0.01, 0.1, 4).astype(np.float32)
    a_zero_point = integers(rng, np.uint8, 4)
    b_scale, b_zero_point = np.array(0.05, np.float32), np.array(0, np.int8)
    y_scale, y_zero_point = np.array(0.5, np.float32), np.array(128, np.uint8)
    (y,) = run_reference("QLinearMatMul", [a, a_scale, a_zero_point, b, b_scale, b_zero_point,
                                           y_scale, y_zero_point], 21)
    acc = (a.astype(np.int64) - a_zero_point[:, None]) @ b.astype(np.int64)
    multiplier = (a_scale[:, None] * b_scale / y_scale).astype(np.float32)
    want = np.clip(np.rint(acc.astype(np.float32) * multiplier) + 128, 0, 255).astype(np.uint8)
    np.testing.assert_array_equal(y, want)


def test_qlinear_matmul_rejects_a_per_column_y_scale(rng):
    a, b = integers(rng, np.uint8, 4, 8), integers(rng, np.uint8, 8, 3)
    scale, zero_point = np.array(0.1, np.float32), np.array(0, np.uint8)
    inputs = [a, scale, zero_point, b, scale, zero_point, np.full(3, 0.1, np.float32),
              zero_point]
    with pytest.raises(ExecutionError, match="y_scale must hold one value"):
        run_reference("QLinearMatMul", inputs, 21)


# -- normalizations and softmax ---------------------------------------------------------------


@pytest.mark.parametrize("opset", [9, 15])
@pytest.mark.parametrize("dtype", [np.float32, np.float16])
def test_batch_normalization(rng, opset, dtype):
    x = floats(rng, 2, 3, 4, 5, dtype=dtype)
    scale, bias, mean = (floats(rng, 3, dtype=dtype) for _ in range(3))
    var = rng.uniform(0.5, 2, 3).astype(dtype)
    check("BatchNormalization", [x, scale, bias, mean, var], opset, epsilon=1e-3,
          rtol=3e-3 if dtype == np.float16 else 1e-5)


def test_instance_normalization(rng):
    check("InstanceNormalization", [floats(rng, 2, 3, 5, 4), floats(rng, 3), floats(rng, 3)],
          epsilon=1e-3)


@pytest.mark.parametrize("axis", [-1, -2, 1, 0])
@pytest.mark.parametrize("dtype", [np.float32, np.float16])
def test_layer_normalization(rng, axis, dtype):
    x = floats(rng, 2, 3, 4, 5, dtype=dtype)
    scale, bias = (floats(rng, *x.shape[axis:], dtype=dtype) for _ in range(2))
    tolerance = 3e-3 if dtype == np.float16 else 1e-5
    check("LayerNormalization", [x, scale, bias], 17, n_outputs=3, axis=axis, rtol=tolerance)
    check("LayerNormalization", [x, scale], 17, axis=axis, epsilon=1e-2, rtol=tolerance)


@pytest.mark.parametrize("op_type", ["Softmax", "LogSoftmax"])
@pytest.mark.parametrize("opset", [11, 13])
@pytest.mark.parametrize("axis", [None, 0, 1, -1])
def test_softmax(rng, op_type, opset, axis):
    """Before opset 13 the input is coerced to 2-D at ``axis`` (default 1); from 13 on the op
    works along one axis (default -1)."""
    attrs = {} if axis is None else {"axis": axis}
    check(op_type, [floats(rng, 2, 3, 4) * 30], opset, **attrs)


# -- QuantizeLinear and DequantizeLinear --------------------------------------------------------


@pytest.mark.parametrize("dtype, expected", [
    (np.uint8, [0, 0, 0, 2, 2, 4, 0, 0, 255, 0, 255]),
    (np.int8, [-2, 0, 0, 2, 2, 4, -2, -2, 127, -128, 127]),
    (np.int16, [-2, 0, 0, 2, 2, 4, -2, -2, 300, -300, 32767]),
    (np.uint16, [0, 0, 0, 2, 2, 4, 0, 0, 300, 0, 65535]),
])
def test_quantize_rounds_half_to_even_and_saturates(dtype, expected):
    x = np.array([-2.5, -0.5, 0.5, 1.5, 2.5, 3.5, -1.5, -2.5, 300, -300, 1e9], np.float32)
    inputs = [x, np.array(1.0, np.float32), np.array(0, dtype)]
    (y,) = run_reference("QuantizeLinear", inputs, 21)
    assert y.dtype == dtype
    np.testing.assert_array_equal(y, np.array(expected, dtype))
    check("QuantizeLinear", inputs, exact=True)


@pytest.mark.parametrize("opset", [13, 21])
def test_quantize_ties_with_zero_points_match_onnxruntime(opset):
    x = np.arange(-400, 400, dtype=np.float32) * 0.25
    for dtype, zero_point in [(np.uint8, 128), (np.uint8, 3), (np.int8, -7), (np.int8, 0)]:
        for scale in (0.5, 0.25, 0.1, 3.0):
            check("QuantizeLinear", [x, np.array(scale, np.float32), np.array(zero_point, dtype)],
                  opset, exact=True)


def test_quantize_default_zero_point_is_uint8(rng):
    (y,) = run_reference("QuantizeLinear", [floats(rng, 10) * 100, np.array(0.5, np.float32)], 13)
    assert y.dtype == np.uint8
    check("QuantizeLinear", [floats(rng, 10) * 100, np.array(0.5, np.float32)], 13, exact=True)


@pytest.mark.parametrize("axis", [0, 1, -1])
def test_quantize_per_axis(rng, axis):
    x = floats(rng, 3, 5, 4) * 50
    n = x.shape[axis]
    check("QuantizeLinear", [x, rng.uniform(0.05, 1, n).astype(np.float32),
                             integers(rng, np.int8, n)], axis=axis, exact=True)


@pytest.mark.parametrize("opset", [21, 23])
def test_quantize_float16_divides_like_onnxruntime(rng, opset):
    """Opset 23 divides in the scale's type (float16, which makes ties); before, float32."""
    x = floats(rng, 1000, dtype=np.float16) * 100
    check("QuantizeLinear", [x, np.array(0.37, np.float16), np.array(3, np.int8)], opset,
          exact=True)


@pytest.mark.parametrize("axis, block_size", [(1, 3), (0, 2), (1, 7)])
def test_quantize_and_dequantize_blocked(rng, axis, block_size):
    x = floats(rng, 4, 7) * 20
    shape = list(x.shape)
    shape[axis] = -(-shape[axis] // block_size)
    scale = rng.uniform(0.1, 1, shape).astype(np.float32)
    zero_point = integers(rng, np.int8, *shape)
    check("QuantizeLinear", [x, scale, zero_point], axis=axis, block_size=block_size, exact=True)
    q = integers(rng, np.int8, *x.shape)
    check("DequantizeLinear", [q, scale, zero_point], axis=axis, block_size=block_size,
          exact=True)


def test_quantize_to_unsupported_type_is_refused(rng):
    with pytest.raises(ExecutionError, match="QuantizeLinear to FLOAT6E2M3 is not supported"):
        run_reference("QuantizeLinear", [floats(rng, 4), np.array(1.0, np.float32)], 25,
                      output_dtype=TensorProto.FLOAT6E2M3)


@pytest.mark.parametrize("dtype", [np.int8, np.uint8, np.int16, np.uint16, np.int32])
@pytest.mark.parametrize("axis", [0, 1])
def test_dequantize_per_axis(rng, dtype, axis):
    x = integers(rng, dtype, 3, 4)
    n = x.shape[axis]
    zero_point = [] if dtype == np.int32 else [integers(rng, dtype, n)]
    check("DequantizeLinear", [x, rng.uniform(0.01, 1, n).astype(np.float32)] + zero_point,
          axis=axis, exact=True)


def test_dequantize_per_tensor_and_output_dtype(rng):
    x = integers(rng, np.uint8, 3, 4)
    scale, zero_point = np.array(0.1, np.float32), np.array(3, np.uint8)
    check("DequantizeLinear", [x, scale, zero_point], 13, exact=True)
    check("DequantizeLinear", [x, scale, zero_point], 23, exact=True,
          output_dtype=TensorProto.FLOAT16)
