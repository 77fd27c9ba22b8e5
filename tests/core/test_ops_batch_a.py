"""Reference math, bitwise, activation, signal, cumulative, matrix, reduction and pooling ops
added for real-model import, against onnxruntime on one-node models.

ONNX's node corpus covers each op's main forms; these tests cover the edges it leaves out:
negative and out-of-range operands, empty tensors, integer wrap-around, NaN and infinity,
both opset forms of ops whose attributes became inputs, and the errors bad attributes give.
"""

from __future__ import annotations

import numpy as np
import pytest
from core.node_harness import assert_same_outputs, run_onnxruntime, run_reference
from onnx import TensorProto, helper

from byoc.errors import ByocError
from byoc.testing import compile_reference, make_model

ort = pytest.importorskip("onnxruntime")

pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")


def check(op_type: str, inputs: list[np.ndarray | None], opset: int, n_outputs: int = 1,
          exact: bool = False, rtol: float = 1e-5, atol: float = 1e-6, **attrs):
    """Compare byoc's interpreter with onnxruntime on one node (NaNs must match too)."""
    expected = run_onnxruntime(op_type, inputs, opset, n_outputs, **attrs)
    ours = run_reference(op_type, inputs, opset, n_outputs, **attrs)
    assert_same_outputs(ours, expected, exact, rtol=rtol, atol=atol)


def scalar(value, dtype=np.int64) -> np.ndarray:
    return np.array(value, dtype)


def import_error(op_type: str, inputs: list[tuple[str, int, list]], opset: int,
                 initializers=None, **attrs) -> str:
    """The message byoc gives when importing a one-node model it must refuse. An input named
    "" is an omitted optional input."""
    initializers = initializers or {}
    node = helper.make_node(op_type, [name for name, _, _ in inputs], ["y"], name="node",
                            **attrs)
    graph_inputs = [i for i in inputs if i[0] and i[0] not in initializers]
    model = make_model([node], graph_inputs, [("y", inputs[0][1], None)], initializers,
                       opset=opset)
    with pytest.raises(ByocError) as error:
        compile_reference(model)
    return str(error.value)


@pytest.fixture
def rng():
    return np.random.default_rng(11)


# -- trigonometric and hyperbolic --------------------------------------------------------------

@pytest.mark.parametrize("op_type, values", [
    ("Tan", [-1.5, -0.5, 0.0, 0.5, 1.5, 3.0]),
    ("Asin", [-1.0, -0.5, 0.0, 0.5, 1.0, 1.5]),
    ("Acos", [-1.0, -0.5, 0.0, 0.5, 1.0, -1.5]),
    ("Atan", [-1e6, -1.0, 0.0, 1.0, 1e6, np.inf]),
    ("Sinh", [-20.0, -1.0, 0.0, 1.0, 20.0, 100.0]),
    ("Cosh", [-20.0, -1.0, 0.0, 1.0, 20.0, 100.0]),
    ("Asinh", [-1e3, -1.0, 0.0, 1.0, 1e3, -np.inf]),
    ("Acosh", [1.0, 1.5, 10.0, 1e3, 0.5, np.inf]),
    ("Atanh", [-1.0, -0.5, 0.0, 0.5, 1.0, 2.0]),
])
@pytest.mark.parametrize("dtype", [np.float32, np.float16])
def test_trigonometric_and_hyperbolic_at_domain_edges(op_type, values, dtype):
    rtol = 1e-3 if dtype == np.float16 else 1e-5
    check(op_type, [np.array(values, dtype)], 22, rtol=rtol)
    check(op_type, [np.zeros((0, 3), dtype)], 9, rtol=rtol)


# -- Mod ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", [np.int8, np.int16, np.int32, np.int64])
@pytest.mark.parametrize("fmod", [0, 1])
def test_mod_of_signed_integers_rounds_as_the_fmod_attribute_says(dtype, fmod):
    a = np.array([-7, -7, 7, 7, -6, 6, 0, np.iinfo(dtype).min], dtype)
    b = np.array([3, -3, 3, -3, 3, -3, -5, -1], dtype)
    check("Mod", [a, b], 13, exact=True, fmod=fmod)


@pytest.mark.parametrize("dtype", [np.uint8, np.uint64])
def test_mod_of_unsigned_integers(dtype):
    a = np.array([0, 1, 200, 255], dtype)
    check("Mod", [a, np.array(7, dtype)], 13, exact=True)


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.float16])
def test_float_fmod_keeps_the_sign_of_the_dividend(dtype):
    a = np.array([-7.5, 7.5, -7.5, 7.5, -0.0, 2.0, 5.0], dtype)
    b = np.array([2.0, -2.0, -2.0, 2.0, 3.0, np.inf, 0.0], dtype)
    check("Mod", [a, b], 13, fmod=1)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_float_floor_mod_of_opset_28_keeps_the_sign_of_the_divisor(dtype):
    a = np.array([-7.5, 7.5, -7.5, 0.0, -0.0, 3.0, -3.0, np.inf, 1.0, np.nan], dtype)
    b = np.array([2.0, -2.0, -2.0, -4.0, 4.0, np.inf, np.inf, 2.0, 0.0, 1.0], dtype)
    expected = run_onnxruntime("Mod", [a, b], 28)[0]
    ours = run_reference("Mod", [a, b], 28)[0]
    np.testing.assert_array_equal(ours, expected)
    # Signed zeros and the sign of an infinite divisor are part of the definition.
    np.testing.assert_array_equal(np.signbit(ours), np.signbit(expected))


def test_mod_broadcasts():
    a = np.arange(-6, 6, dtype=np.int32).reshape(3, 4)
    check("Mod", [a, np.array([5, -5, 3, -3], np.int32)], 13, exact=True)


def test_float_mod_without_fmod_before_opset_28_is_refused_with_the_fix():
    message = import_error("Mod", [("a", TensorProto.FLOAT, [3]), ("b", TensorProto.FLOAT, [3])],
                           13)
    assert "node" in message and "fmod=1" in message and "opset 28" in message


def test_mod_rejects_an_fmod_other_than_0_or_1():
    message = import_error("Mod", [("a", TensorProto.INT32, [3]), ("b", TensorProto.INT32, [3])],
                           13, fmod=2)
    assert "fmod attribute must be 0 or 1; got 2" in message


# -- IsNaN, IsInf ------------------------------------------------------------------------------

SPECIALS = [np.nan, np.inf, -np.inf, 0.0, -1.5, 3.0]


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_isnan(dtype):
    check("IsNaN", [np.array(SPECIALS, dtype)], 20, exact=True)
    check("IsNaN", [np.array(SPECIALS, dtype)], 9, exact=True)


@pytest.mark.parametrize("negative, positive", [(1, 1), (0, 1), (1, 0), (0, 0)])
def test_isinf_detects_the_signs_asked_for(negative, positive):
    check("IsInf", [np.array(SPECIALS, np.float32)], 20, exact=True,
          detect_negative=negative, detect_positive=positive)
    check("IsInf", [np.array(SPECIALS, np.float64)], 10, exact=True,
          detect_negative=negative, detect_positive=positive)


# -- bitwise -----------------------------------------------------------------------------------

@pytest.mark.parametrize("op_type", ["BitwiseAnd", "BitwiseOr", "BitwiseXor"])
@pytest.mark.parametrize("dtype", [np.int8, np.uint16, np.int32, np.uint64])
def test_bitwise_binary_ops_broadcast(op_type, dtype, rng):
    info = np.iinfo(dtype)
    a = rng.integers(info.min, info.max, (2, 3, 4), dtype=dtype, endpoint=True)
    b = rng.integers(info.min, info.max, (4,), dtype=dtype, endpoint=True)
    check(op_type, [a, b], 18, exact=True)


@pytest.mark.parametrize("dtype", [np.int8, np.uint8, np.int64, np.uint32])
def test_bitwise_not(dtype):
    info = np.iinfo(dtype)
    check("BitwiseNot", [np.array([info.min, 0, 1, info.max], dtype)], 18, exact=True)


@pytest.mark.parametrize("dtype", [np.int8, np.int16, np.int32, np.int64])
@pytest.mark.parametrize("direction", ["LEFT", "RIGHT"])
def test_bitshift_of_signed_integers_at_the_edges(dtype, direction):
    """Overflow past the sign bit, sign extension, shifts by the width or more and by
    negative amounts (opset 28)."""
    info = np.iinfo(dtype)
    width = info.bits
    x = np.array([1, -1, info.min, info.max, -5, 5, -5, 5, -5, 7], dtype)
    y = np.array([width - 1, 1, 1, 1, width, width, width + 3, -1, -2, 0], dtype)
    check("BitShift", [x, y], 28, exact=True, direction=direction)


@pytest.mark.parametrize("dtype", [np.uint8, np.uint64])
@pytest.mark.parametrize("direction", ["LEFT", "RIGHT"])
def test_bitshift_of_unsigned_integers_drops_the_bits_shifted_out(dtype, direction):
    info = np.iinfo(dtype)
    x = np.array([1, info.max, info.max, 3, 200], dtype)
    y = np.array([info.bits - 1, 1, info.bits, info.bits + 1, 2], dtype)
    check("BitShift", [x, y], 11, exact=True, direction=direction)
    check("BitShift", [x, y], 28, exact=True, direction=direction)


def test_bitshift_broadcasts_the_shift_amount():
    x = np.arange(12, dtype=np.uint32).reshape(3, 4)
    check("BitShift", [x, np.array([1, 2, 3, 4], np.uint32)], 11, exact=True, direction="LEFT")


def test_bitshift_names_a_bad_direction():
    message = import_error("BitShift", [("x", TensorProto.UINT8, [3]),
                                        ("s", TensorProto.UINT8, [3])], 11, direction="UP")
    assert "direction attribute must be LEFT or RIGHT; got 'UP'" in message


# -- activations -------------------------------------------------------------------------------

WIDE = np.array([-100.0, -20.0, -3.0, -0.5, 0.0, 0.5, 3.0, 20.0, 100.0])


@pytest.mark.parametrize("dtype, rtol", [(np.float32, 1e-5), (np.float64, 1e-7),
                                         (np.float16, 1e-3)])
@pytest.mark.parametrize("alpha", [1.0, 0.5, 2.0])
def test_celu(dtype, rtol, alpha):
    check("Celu", [WIDE.astype(dtype)], 12 if dtype == np.float32 else 28, rtol=rtol,
          alpha=alpha)


def test_celu_with_alpha_0_is_refused():
    message = import_error("Celu", [("x", TensorProto.FLOAT, [3])], 12, alpha=0.0)
    assert "alpha attribute must not be 0" in message


@pytest.mark.parametrize("alpha", [1.0, -0.5, 0.0])
def test_thresholded_relu(alpha):
    values = np.array([-1.0, -0.5, 0.0, 0.5, 1.0, 1.5], np.float32)
    check("ThresholdedRelu", [values], 10, exact=True, alpha=alpha)


@pytest.mark.parametrize("dtype, rtol", [(np.float32, 1e-5), (np.float16, 1e-3)])
def test_mish_stays_finite_for_large_inputs(dtype, rtol):
    check("Mish", [WIDE.astype(dtype)], 22, rtol=rtol)


@pytest.mark.parametrize("dtype", [np.float32, np.int32, np.int8, np.uint8])
@pytest.mark.parametrize("bias, lambd", [(0.0, 0.5), (1.5, 1.5), (0.5, -1.0)])
def test_shrink_of_floats_and_integers(dtype, bias, lambd):
    values = np.array([0, 1, 2, 3, 5, 100], dtype)
    if dtype != np.uint8:
        values = np.concatenate([values, -values])
    check("Shrink", [values], 9, exact=True, bias=bias, lambd=lambd)


@pytest.mark.parametrize("alpha", [1.0, 1.702, -0.5])
def test_swish(alpha):
    check("Swish", [WIDE.astype(np.float32)], 24, alpha=alpha)


def test_swiglu_is_swish_of_the_gate_times_the_value(rng):
    """onnxruntime has no SwiGLU kernel: compare with the graph its definition spells out."""
    gate = rng.standard_normal((2, 3, 8)).astype(np.float32) * 4
    value = rng.standard_normal((2, 3, 8)).astype(np.float32)
    alpha = 1.5
    nodes = [helper.make_node("Mul", ["gate", "alpha"], ["scaled"]),
             helper.make_node("Sigmoid", ["scaled"], ["sigmoid"]),
             helper.make_node("Mul", ["gate", "sigmoid"], ["swish"]),
             helper.make_node("Mul", ["swish", "value"], ["y"])]
    model = make_model(nodes, [("gate", TensorProto.FLOAT, gate.shape),
                               ("value", TensorProto.FLOAT, value.shape)],
                       [("y", TensorProto.FLOAT, gate.shape)],
                       {"alpha": np.float32(alpha)})
    session = ort.InferenceSession(model.SerializeToString(),
                                   providers=["CPUExecutionProvider"])
    (expected,) = session.run(None, {"gate": gate, "value": value})
    (ours,) = run_reference("SwiGLU", [gate, value], 28, alpha=alpha)
    np.testing.assert_allclose(ours, expected, rtol=1e-5, atol=1e-6)


def test_swiglu_refuses_inputs_of_different_shapes():
    # onnx's shape inference refuses such a model at import; the check guards direct runs.
    with pytest.raises(ByocError, match=r"one shape .* got \[2, 4\] and \[1, 4\]"):
        run_reference("SwiGLU", [np.ones((2, 4), np.float32), np.ones((1, 4), np.float32)], 28)


@pytest.mark.parametrize("opset, axis", [(11, None), (11, 0), (11, 2), (11, -1), (13, None),
                                         (13, 0), (13, -2)])
def test_hardmax_in_both_opset_forms(opset, axis, rng):
    x = rng.integers(0, 3, (2, 3, 4)).astype(np.float32)  # many ties: the first one wins
    check("Hardmax", [x], opset, exact=True, **({} if axis is None else {"axis": axis}))


# -- signal ------------------------------------------------------------------------------------

@pytest.mark.parametrize("op_type", ["HannWindow", "HammingWindow", "BlackmanWindow"])
@pytest.mark.parametrize("size", [1, 2, 7, 16])
@pytest.mark.parametrize("periodic", [0, 1])
def test_windows(op_type, size, periodic):
    check(op_type, [scalar(size)], 17, periodic=periodic)
    check(op_type, [scalar(size, np.int32)], 17, periodic=periodic,
          output_datatype=TensorProto.DOUBLE)


@pytest.mark.parametrize("inverse, onesided, parts, length", [
    (0, 0, 1, None), (0, 0, 2, None), (1, 0, 2, None), (0, 1, 1, None), (1, 1, 2, None),
    (0, 0, 1, 5), (0, 0, 2, 12), (1, 0, 2, 5), (1, 0, 2, 12), (0, 1, 1, 5), (0, 1, 1, 12),
    (1, 1, 2, 12), (1, 1, 2, 15),
])
def test_dft_lengths_and_directions(inverse, onesided, parts, length, rng):
    """Forward and inverse, full and onesided, with the signal cut or zero-padded. (An IRFFT
    whose dft_length drops more than one of the bins it is given is left out: onnxruntime's
    results there follow no one definition.)"""
    x = rng.standard_normal((2, 8, 3, parts)).astype(np.float32)
    dft_length = None if length is None else scalar(length)
    check("DFT", [x, dft_length], 17, rtol=1e-4, atol=1e-4, axis=1, inverse=inverse,
          onesided=onesided)
    check("DFT", [x, dft_length, scalar(-3)], 20, rtol=1e-4, atol=1e-4, inverse=inverse,
          onesided=onesided)


def test_dft_of_float64_on_the_default_axis(rng):
    x = rng.standard_normal((3, 10, 2))
    check("DFT", [x], 20, rtol=1e-10, atol=1e-10)
    check("DFT", [x], 17, rtol=1e-10, atol=1e-10)


def test_dft_refuses_the_last_axis():
    with pytest.raises(ByocError, match=r"DFT axis 2 is not a signal axis .* \[-3, -2\] or "
                                        r"\[0, 1\]"):
        run_reference("DFT", [np.ones((2, 8, 1), np.float32), None, scalar(2)], 20)


def test_dft_refuses_a_onesided_transform_of_a_complex_signal():
    with pytest.raises(ByocError, match="onesided=1 transforms a real signal"):
        run_reference("DFT", [np.ones((2, 8, 2), np.float32)], 20, onesided=1)


@pytest.mark.parametrize("step, frame, with_window", [(4, 8, True), (3, 8, False),
                                                      (5, 16, True), (1, 4, False)])
def test_stft_frames_with_and_without_window(step, frame, with_window, rng):
    signal = rng.standard_normal((2, 40, 1)).astype(np.float32)
    window = np.hanning(frame).astype(np.float32) if with_window else None
    check("STFT", [signal, scalar(step), window, scalar(frame)], 17, rtol=1e-4, atol=1e-4,
          onesided=1)


@pytest.mark.parametrize("onesided", [0, 1])
def test_stft_of_a_complex_signal(onesided, rng):
    signal = rng.standard_normal((1, 24, 2)).astype(np.float32)
    check("STFT", [signal, scalar(4), None, scalar(8)], 17, rtol=1e-4, atol=1e-4,
          onesided=onesided)


def test_stft_window_must_match_frame_length(rng):
    signal = rng.standard_normal((1, 24, 1)).astype(np.float32)
    with pytest.raises(ByocError, match="window has 6 points, but frame_length is 8"):
        run_reference("STFT", [signal, scalar(4), np.ones(6, np.float32), scalar(8)], 17)


@pytest.mark.parametrize("bins, length, rate, low, high", [
    (8, 64, 16000, 0.0, 8000.0), (20, 512, 22050, 40.0, 7600.0), (3, 16, 8000, 100.0, 3000.0),
])
def test_mel_weight_matrix(bins, length, rate, low, high):
    inputs = [scalar(bins), scalar(length), scalar(rate), np.array(low, np.float32),
              np.array(high, np.float32)]
    check("MelWeightMatrix", inputs, 17)
    check("MelWeightMatrix", inputs, 17, output_datatype=TensorProto.DOUBLE)


# -- cumulative --------------------------------------------------------------------------------

@pytest.mark.parametrize("op_type, opset", [("CumSum", 14), ("CumSum", 11), ("CumProd", 26)])
@pytest.mark.parametrize("exclusive", [0, 1])
@pytest.mark.parametrize("reverse", [0, 1])
@pytest.mark.parametrize("axis", [0, -1, 1])
def test_cumulative_directions(op_type, opset, exclusive, reverse, axis, rng):
    x = rng.uniform(0.5, 1.5, (3, 4, 2)).astype(np.float32)
    check(op_type, [x, scalar(axis)], opset, exclusive=exclusive, reverse=reverse)


@pytest.mark.parametrize("op_type, opset", [("CumSum", 14), ("CumProd", 26)])
def test_cumulative_integers_wrap_on_overflow(op_type, opset):
    x = np.array([2**30, 2**30, 2**30, -7, 3], np.int32)
    check(op_type, [x, np.array([0], np.int32)], opset, exact=True)


@pytest.mark.parametrize("op_type, opset", [("CumSum", 14), ("CumProd", 26)])
def test_cumulative_over_an_empty_axis(op_type, opset):
    check(op_type, [np.zeros((2, 0), np.float32), scalar(1)], opset, exclusive=1)


# -- matrix ops and Size -----------------------------------------------------------------------

@pytest.mark.parametrize("k", [None, 0, 2, -1, -7, 9])
@pytest.mark.parametrize("upper", [0, 1])
def test_trilu(k, upper, rng):
    x = rng.integers(-9, 9, (2, 4, 6)).astype(np.int64)
    check("Trilu", [x, None if k is None else scalar(k)], 14, exact=True, upper=upper)


def test_trilu_refuses_a_vector():
    with pytest.raises(ByocError, match="rank 2 or more; got shape \\[4\\]"):
        run_reference("Trilu", [np.ones(4, np.float32)], 14)


@pytest.mark.parametrize("shape, k", [((3, 3), 0), ((3, 5), 2), ((5, 3), -1), ((2, 4), 7)])
@pytest.mark.parametrize("dtype", [None, TensorProto.INT32, TensorProto.DOUBLE])
def test_eye_like(shape, k, dtype):
    check("EyeLike", [np.zeros(shape, np.float32)], 9, exact=True, k=k,
          **({} if dtype is None else {"dtype": dtype}))


@pytest.mark.parametrize("shape", [(2, 3, 4), (0, 5), ()])
def test_size(shape):
    check("Size", [np.zeros(shape, np.float32)], 13, exact=True)


def test_det_of_batches_and_singular_matrices(rng):
    x = rng.standard_normal((2, 3, 4, 4)).astype(np.float32)
    x[0, 1, 3] = x[0, 1, 0] * 2  # singular: its determinant is 0 up to rounding
    check("Det", [x], 22, atol=1e-5)
    check("Det", [x[0, 0]], 11, atol=1e-5)


def test_det_refuses_non_square_matrices():
    with pytest.raises(ByocError, match="square matrices in the last two dims; got shape "
                                        "\\[2, 3, 4\\]"):
        run_reference("Det", [np.ones((2, 3, 4), np.float32)], 22)


# -- reductions --------------------------------------------------------------------------------

REDUCTIONS = ["ReduceL1", "ReduceSumSquare", "ReduceLogSum", "ReduceLogSumExp"]


@pytest.mark.parametrize("op_type", REDUCTIONS)
@pytest.mark.parametrize("axes, keepdims", [([1], 1), ([-1, 0], 0), (None, 1), ([-2], 0)])
def test_new_reductions_in_both_axes_forms(op_type, axes, keepdims, rng):
    x = rng.uniform(0.1, 3.0, (2, 3, 4)).astype(np.float32)
    check(op_type, [x], 13, keepdims=keepdims, **({} if axes is None else {"axes": axes}))
    check(op_type, [x, None if axes is None else np.array(axes, np.int64)], 18,
          keepdims=keepdims)


@pytest.mark.parametrize("op_type", REDUCTIONS)
def test_new_reductions_of_empty_sets(op_type):
    check(op_type, [np.zeros((2, 0, 3), np.float32), np.array([1], np.int64)], 18,
          exact=True)


@pytest.mark.parametrize("op_type", REDUCTIONS)
def test_new_reductions_propagate_nan(op_type):
    x = np.array([[1.0, np.nan, 2.0], [1.0, 2.0, 3.0]], np.float32)
    check(op_type, [x, np.array([1], np.int64)], 18)


@pytest.mark.parametrize("op_type", REDUCTIONS)
def test_new_reductions_with_noop_for_empty_axes(op_type, rng):
    x = rng.uniform(0.1, 3.0, (2, 3)).astype(np.float32)
    check(op_type, [x], 18, noop_with_empty_axes=1)


def test_reduce_log_sum_exp_does_not_overflow_and_handles_infinities():
    x = np.array([[1000.0, 1000.0, -5.0], [-np.inf, -np.inf, -np.inf],
                  [np.inf, 1.0, 2.0], [-1000.0, -1000.0, -1001.0]], np.float32)
    check("ReduceLogSumExp", [x, np.array([1], np.int64)], 18)


@pytest.mark.parametrize("op_type", ["ReduceL1", "ReduceSumSquare"])
@pytest.mark.parametrize("dtype", [np.int32, np.int64])
def test_integer_l1_and_sum_square(op_type, dtype):
    x = np.array([[-3, 4, -5], [7, -8, 9]], dtype)
    check(op_type, [x, np.array([-1], np.int64)], 18, exact=True)


@pytest.mark.parametrize("keepdims", [0, 1])
@pytest.mark.parametrize("select_last_index", [0, 1])
@pytest.mark.parametrize("axis", [0, -1, 1])
def test_argmin_picks_the_first_or_last_tie(keepdims, select_last_index, axis, rng):
    x = rng.integers(0, 3, (3, 4, 2)).astype(np.float32)
    check("ArgMin", [x], 13, exact=True, axis=axis, keepdims=keepdims,
          select_last_index=select_last_index)


@pytest.mark.parametrize("select_last_index, expected", [(0, [1, 3, 0]), (1, [3, 3, 0])])
def test_argmin_takes_a_nan_as_the_minimum(select_last_index, expected):
    """As ArgMax does (and cpu_llvm's ArgMax kernel): ONNX leaves NaN open, and onnxruntime
    differs (it skips a NaN unless it comes first), so the rule is checked directly."""
    x = np.array([[1, np.nan, 0, np.nan], [3, 2, 1, 0], [np.nan, 5, -1, 2]], np.float32)
    (ours,) = run_reference("ArgMin", [x], 13, axis=1, keepdims=0,
                            select_last_index=select_last_index)
    np.testing.assert_array_equal(ours, np.array(expected, np.int64))


def test_argmin_of_integers_at_opset_11():
    x = np.array([[5, -3, -3], [np.iinfo(np.int64).min, 0, 0]], np.int64)
    check("ArgMin", [x], 11, exact=True, axis=1)


# -- pooling -----------------------------------------------------------------------------------

@pytest.mark.parametrize("attrs", [
    {"kernel_shape": [2, 2]},
    {"kernel_shape": [3, 3], "pads": [1, 1, 1, 1], "strides": [2, 2]},
    {"kernel_shape": [3, 2], "p": 1},
    {"kernel_shape": [2, 2], "p": 3, "auto_pad": "SAME_UPPER"},
    {"kernel_shape": [2, 3], "auto_pad": "SAME_LOWER", "strides": [2, 1]},
    {"kernel_shape": [2, 2], "dilations": [2, 2]},
    {"kernel_shape": [3, 3], "strides": [2, 2], "ceil_mode": 1},
])
def test_lp_pool(attrs, rng):
    x = rng.standard_normal((2, 3, 7, 6)).astype(np.float32)
    check("LpPool", [x], 18, **attrs)


def test_lp_pool_of_one_and_three_spatial_axes(rng):
    check("LpPool", [rng.standard_normal((1, 2, 9)).astype(np.float32)], 11,
          kernel_shape=[3], strides=[2])
    check("LpPool", [rng.standard_normal((1, 2, 4, 5, 3)).astype(np.float32)], 11,
          kernel_shape=[2, 2, 2])


@pytest.mark.parametrize("p", [1, 2, 3])
@pytest.mark.parametrize("shape", [(2, 3, 5, 4), (1, 2, 7)])
def test_global_lp_pool(p, shape, rng):
    check("GlobalLpPool", [rng.standard_normal(shape).astype(np.float32)], 2, p=p)


def test_lp_pool_refuses_a_p_below_1():
    message = import_error("LpPool", [("x", TensorProto.FLOAT, [1, 1, 4, 4])], 18,
                           kernel_shape=[2, 2], p=0)
    assert "p attribute must be positive; got 0" in message


def pooled_with_indices(x: np.ndarray, **attrs) -> tuple[np.ndarray, np.ndarray]:
    return tuple(run_onnxruntime("MaxPool", [x], 12, n_outputs=2, **attrs))


@pytest.mark.parametrize("shape, attrs", [
    ((2, 3, 6, 8), {"kernel_shape": [2, 2], "strides": [2, 2]}),
    ((2, 3, 5, 7), {"kernel_shape": [3, 3], "strides": [2, 2], "pads": [1, 1, 1, 1]}),
    ((2, 3, 6, 7), {"kernel_shape": [2, 3], "strides": [1, 2]}),
    ((1, 2, 9), {"kernel_shape": [3], "strides": [3]}),
])
def test_max_unpool_inverts_max_pool(shape, attrs, rng):
    x = rng.standard_normal(shape).astype(np.float32)
    pooled, indices = pooled_with_indices(x, **attrs)
    check("MaxUnpool", [pooled, indices], 11, exact=True, **attrs)


def test_max_unpool_to_an_output_shape_indexes_that_shape(rng):
    """The indices MaxPool gave for a 7x7 input address a 7x7 output (as in onnxruntime and
    PyTorch), not the 6x6 shape the attributes alone would give."""
    x = rng.standard_normal((1, 2, 7, 7)).astype(np.float32)
    pooled, indices = pooled_with_indices(x, kernel_shape=[2, 2], strides=[2, 2])
    check("MaxUnpool", [pooled, indices, np.array([1, 2, 7, 7], np.int64)], 11, exact=True,
          kernel_shape=[2, 2], strides=[2, 2])


def test_max_unpool_refuses_an_index_outside_the_output():
    x = np.ones((1, 1, 2, 2), np.float32)
    indices = np.array([0, 1, 2, 16], np.int64).reshape(1, 1, 2, 2)
    with pytest.raises(ByocError, match="index 16 is outside the output of shape"):
        run_reference("MaxUnpool", [x, indices], 11, kernel_shape=[2, 2], strides=[2, 2])


def test_max_unpool_refuses_indices_of_another_shape():
    message = import_error("MaxUnpool", [("x", TensorProto.FLOAT, [1, 1, 2, 2]),
                                         ("i", TensorProto.INT64, [1, 1, 2, 1])], 11,
                           kernel_shape=[2, 2], strides=[2, 2])
    assert "indices input must have the shape of X [1, 1, 2, 2]; got [1, 1, 2, 1]" in message

