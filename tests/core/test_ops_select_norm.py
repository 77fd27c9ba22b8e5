"""The reference's GatherElements, GatherND, TopK and GroupNormalization, RMSNormalization,
MeanVarianceNormalization, LpNormalization against onnxruntime on one-node models, every
opset form; gathers and TopK indices must match exactly."""

from __future__ import annotations

import numpy as np
import pytest
from core.node_harness import assert_same_outputs, run_onnxruntime, run_reference

from byoc.errors import ExecutionError

ort = pytest.importorskip("onnxruntime")


def check(op_type: str, inputs: list, opset: int, n_outputs: int = 1, exact: bool = False,
          rtol: float = 1e-5, **attrs) -> None:
    ours = run_reference(op_type, inputs, opset, n_outputs, **attrs)
    expected = run_onnxruntime(op_type, inputs, opset, n_outputs, **attrs)
    assert_same_outputs(ours, expected, exact, rtol=rtol, atol=rtol)


def floats(rng, *shape, dtype=np.float32):
    return rng.standard_normal(shape).astype(dtype)


@pytest.fixture
def rng():
    return np.random.default_rng(4321)


# -- GatherElements ---------------------------------------------------------------------------


@pytest.mark.parametrize("opset", [11, 13])
@pytest.mark.parametrize("shape, index_shape, axis", [
    ((5,), (7,), 0), ((3, 4), (3, 4), 0), ((3, 4), (2, 6), 1), ((3, 4), (5, 2), -2),
    ((2, 3, 4), (2, 3, 9), 2), ((2, 3, 4), (1, 2, 4), 1),
])
@pytest.mark.parametrize("index_dtype", [np.int32, np.int64])
def test_gather_elements(rng, opset, shape, index_shape, axis, index_dtype):
    length = shape[axis]
    indices = rng.integers(-length, length, index_shape).astype(index_dtype)
    data = rng.integers(-100, 100, shape).astype(np.int64)
    check("GatherElements", [data, indices], opset, exact=True, axis=axis)


def test_gather_elements_out_of_range_index_is_named(rng):
    indices = np.array([[0, 1], [3, 0]], np.int64)
    with pytest.raises(ExecutionError, match=r"index 3 at \[1, 0\].*size 3.*-3 to 2"):
        run_reference("GatherElements", [floats(rng, 3, 2), indices], 13, axis=0)


def test_gather_elements_refuses_indices_wider_than_the_data(rng):
    with pytest.raises(ExecutionError, match="dim 1"):
        run_reference("GatherElements", [floats(rng, 3, 2), np.zeros((3, 3), np.int64)], 13,
                      axis=0)


# -- GatherND ---------------------------------------------------------------------------------


@pytest.mark.parametrize("opset", [12, 13])
@pytest.mark.parametrize("shape, index_shape, batch_dims", [
    ((4, 5), (3, 2), 0), ((4, 5), (3, 1), 0), ((4, 5, 6), (2, 3, 2), 0),
    ((2, 4, 5), (2, 3, 1), 1), ((2, 3, 4, 5), (2, 3, 2), 2), ((2, 3, 4, 5), (2, 3, 6, 2), 2),
    ((3, 4), (3, 0), 1), ((6,), (4, 1), 0),
])
def test_gather_nd(rng, opset, shape, index_shape, batch_dims):
    depth = index_shape[-1]
    bounds = np.array(shape[batch_dims:batch_dims + depth])
    indices = (rng.integers(-(2 ** 20), 2 ** 20, index_shape) % (2 * bounds)) - bounds
    data = floats(rng, *shape)
    check("GatherND", [data, indices.astype(np.int64)], opset, exact=True,
          batch_dims=batch_dims)


def test_gather_nd_opset_11_has_no_batch_dims(rng):
    check("GatherND", [floats(rng, 4, 5), np.array([[1, -1], [0, 2]], np.int64)], 11,
          exact=True)


def test_gather_nd_out_of_range_index_is_named(rng):
    with pytest.raises(ExecutionError, match=r"index -5 at \[1, 1\].*dim 1.*size 4"):
        run_reference("GatherND", [floats(rng, 2, 4, 3), np.array([[1, 1], [1, -5]])], 13)


@pytest.mark.parametrize("index_shape, batch_dims, message", [
    ((2, 4), 0, "longer than the 3 dims"), ((3, 1), 1, "batch"), ((2, 1), 2, "batch_dims 2"),
])
def test_gather_nd_shape_errors(rng, index_shape, batch_dims, message):
    with pytest.raises(ExecutionError, match=message):
        run_reference("GatherND", [floats(rng, 2, 4, 3), np.zeros(index_shape, np.int64)], 13,
                      batch_dims=batch_dims)


# -- TopK -------------------------------------------------------------------------------------


@pytest.mark.parametrize("opset", [11, 24])
@pytest.mark.parametrize("largest", [1, 0])
@pytest.mark.parametrize("shape, axis, k", [
    ((10,), 0, 3), ((4, 9), -1, 9), ((4, 9), 0, 2), ((3, 5, 6), 1, 0), ((2, 50, 3), 1, 7),
])
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int32, np.int64])
def test_top_k(rng, opset, largest, shape, axis, k, dtype):
    # Few distinct values, so ties are many and their order (lower index first) is tested.
    x = rng.integers(0, 5, shape).astype(dtype)
    check("TopK", [x, np.array([k], np.int64)], opset, n_outputs=2, exact=True, axis=axis,
          largest=largest, sorted=1)


@pytest.mark.parametrize("largest", [1, 0])
def test_top_k_orders_nan_as_the_greatest_value(largest):
    x = np.array([[1, np.nan, 3, -np.inf, 3, np.nan, -1, 0.0, -0.0]], np.float32)
    for k in (1, 4, 9):
        check("TopK", [x, np.array([k], np.int64)], 11, n_outputs=2, exact=True,
              largest=largest)


@pytest.mark.parametrize("largest, expected", [(1, [4, 0, 2]), (0, [1, 3, 2])])
def test_top_k_uint64_compares_unsigned(largest, expected):
    """onnxruntime has no uint64 TopK; values above 2**63 must rank as large, not negative."""
    x = np.array([2**63 + 5, 1, 2**63, 7, 2**64 - 1], np.uint64)
    values, indices = run_reference("TopK", [x, np.array([3], np.int64)], 11, 2,
                                    largest=largest)
    assert indices.tolist() == expected and values.tolist() == x[expected].tolist()


def test_top_k_opset_9_takes_k_as_an_attribute(rng):
    check("TopK", [floats(rng, 3, 8)], 9, n_outputs=2, exact=True, k=3, axis=1)


def test_top_k_larger_than_the_axis_is_refused(rng):
    with pytest.raises(ExecutionError, match="k=5 must be between 0 and the length 4"):
        run_reference("TopK", [floats(rng, 2, 4), np.array([5], np.int64)], 11, 2)


# -- GroupNormalization -----------------------------------------------------------------------


@pytest.mark.parametrize("shape, groups", [((2, 6, 5, 4), 3), ((1, 4, 7), 4), ((3, 8), 2),
                                           ((2, 6, 2, 3, 2), 1)])
def test_group_normalization_21_scales_per_channel(rng, shape, groups):
    channels = shape[1]
    check("GroupNormalization", [floats(rng, *shape), floats(rng, channels),
                                 floats(rng, channels)], 21, num_groups=groups, epsilon=1e-3)


@pytest.mark.parametrize("shape, groups", [((2, 6, 5, 4), 3), ((3, 8), 2)])
def test_group_normalization_18_scales_per_group(rng, shape, groups):
    check("GroupNormalization", [floats(rng, *shape), floats(rng, groups), floats(rng, groups)],
          18, num_groups=groups)


def test_group_normalization_float16_stash_float(rng):
    x = floats(rng, 2, 4, 6, dtype=np.float16)
    check("GroupNormalization", [x, floats(rng, 4, dtype=np.float16),
                                 floats(rng, 4, dtype=np.float16)], 21, rtol=2e-3, num_groups=2)


@pytest.mark.parametrize("opset, groups, params, message", [
    (21, 4, 6, "num_groups 4 must be positive and divide the 6 channels"),
    (21, 3, 3, r"one value per channel \(\[6\]\)"),
    (18, 3, 6, r"one value per group \(\[3\]\)"),
])
def test_group_normalization_shape_errors(rng, opset, groups, params, message):
    with pytest.raises(ExecutionError, match=message):
        run_reference("GroupNormalization", [floats(rng, 2, 6, 4), floats(rng, params),
                                             floats(rng, params)], opset, num_groups=groups)


# -- RMSNormalization -------------------------------------------------------------------------


@pytest.mark.parametrize("shape, axis, scale_shape", [
    ((4, 8), -1, (8,)), ((2, 3, 5), 1, (3, 5)), ((2, 3, 5), -2, (1, 5)), ((2, 3, 5), 0, (3, 5)),
    ((6, 16), -1, ()),
])
def test_rms_normalization(rng, shape, axis, scale_shape):
    check("RMSNormalization", [floats(rng, *shape), floats(rng, *scale_shape)], 23, axis=axis,
          epsilon=1e-3)


def test_rms_normalization_float16_in_float32_stash(rng):
    x = floats(rng, 3, 64, dtype=np.float16) * np.float16(30)  # squares overflow float16
    (y,) = run_reference("RMSNormalization", [x, np.ones(64, np.float16)], 23)
    wide = x.astype(np.float32)
    expected = wide / np.sqrt(np.mean(wide * wide, axis=1, keepdims=True) + 1e-5)
    assert y.dtype == np.float16 and np.isfinite(y).all()
    np.testing.assert_allclose(y, expected, rtol=1e-3)


def test_rms_normalization_scale_must_broadcast_to_x(rng):
    with pytest.raises(ExecutionError, match=r"scale of shape \[4\] does not broadcast"):
        run_reference("RMSNormalization", [floats(rng, 3, 5), floats(rng, 4)], 23)


# -- MeanVarianceNormalization ----------------------------------------------------------------


@pytest.mark.parametrize("opset", [9, 13])
@pytest.mark.parametrize("shape, axes", [((2, 3, 4, 5), None), ((2, 3, 4, 5), [1]),
                                         ((2, 3, 4, 5), [-1, 0]), ((4, 6), [0, 1])])
def test_mean_variance_normalization(rng, opset, shape, axes):
    attrs = {} if axes is None else {"axes": axes}
    check("MeanVarianceNormalization", [floats(rng, *shape)], opset, rtol=1e-4, **attrs)


def test_mean_variance_normalization_of_a_constant_slice_is_zero():
    (y,) = run_reference("MeanVarianceNormalization", [np.full((1, 2, 3, 3), 7, np.float32)],
                         13)
    np.testing.assert_array_equal(y, 0)


def test_mean_variance_normalization_refuses_repeated_axes(rng):
    with pytest.raises(ExecutionError, match="repeat"):
        run_reference("MeanVarianceNormalization", [floats(rng, 2, 3)], 13, axes=[1, -1])


# -- LpNormalization --------------------------------------------------------------------------


@pytest.mark.parametrize("opset", [9, 22])
@pytest.mark.parametrize("p", [1, 2])
@pytest.mark.parametrize("shape, axis", [((3, 4), -1), ((3, 4), 0), ((2, 3, 4, 5), 1),
                                         ((7,), 0)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_lp_normalization(rng, opset, p, shape, axis, dtype):
    x = floats(rng, *shape, dtype=dtype)
    x[(0,) * len(shape)] = 0
    check("LpNormalization", [x], opset, p=p, axis=axis)


def test_lp_normalization_of_zeros_is_zero():
    x = np.zeros((2, 3), np.float32)
    x[1] = [3, 0, -4]
    (y,) = run_reference("LpNormalization", [x], 22, p=2)
    np.testing.assert_array_equal(y, np.array([[0, 0, 0], [0.6, 0, -0.8]], np.float32))


def test_lp_normalization_refuses_p_3(rng):
    with pytest.raises(ExecutionError, match="p=3"):
        run_reference("LpNormalization", [floats(rng, 2, 3)], 22, p=3)
