"""The reference shape, reduction and resize ops against onnxruntime on one-node models.

Each case runs at the opset that gives the form under test: attributes that later opsets
turned into inputs (axes, split, pads, starts...) are checked in both forms.
"""

from __future__ import annotations

import numpy as np
import pytest
from core.node_harness import assert_same_outputs, run_onnxruntime, run_reference

ort = pytest.importorskip("onnxruntime")

BIG = np.iinfo(np.int64).max


def check(op_type: str, inputs: list[np.ndarray | None], opset: int, n_outputs: int = 1,
          exact: bool = True, **attrs):
    """Compare byoc's interpreter with onnxruntime on one node.

    Tensor attributes are given as numpy arrays (byoc's IR keeps them so).
    """
    expected = run_onnxruntime(op_type, inputs, opset, n_outputs, **attrs)
    ours = run_reference(op_type, inputs, opset, n_outputs, **attrs)
    assert_same_outputs(ours, expected, exact, rtol=1e-5, atol=1e-5)


def ints(*values):
    return np.array(values, dtype=np.int64)


@pytest.fixture
def x():
    return np.random.default_rng(7).standard_normal((2, 3, 4, 5)).astype(np.float32)


# -- shape and data movement ------------------------------------------------------------------

@pytest.mark.parametrize("shape, allowzero", [
    (ints(0, -1, 5), 0), (ints(6, 20), 0), (ints(-1), 0), (ints(2, 0, 4, 5), 0),
    (ints(5, 4, 3, 2), 1),
])
def test_reshape(x, shape, allowzero):
    check("Reshape", [x, shape], 14, allowzero=allowzero)


def test_reshape_allowzero_keeps_a_zero_dim():
    check("Reshape", [np.zeros((0, 3), np.float32), ints(3, 0)], 14, allowzero=1)


@pytest.mark.parametrize("opset, axis", [(9, 0), (13, 2), (13, -1), (13, 4)])
def test_flatten(x, opset, axis):
    check("Flatten", [x], opset, axis=axis)


@pytest.mark.parametrize("perm", [None, [0, 2, 3, 1], [3, 1, 0, 2]])
def test_transpose(x, perm):
    check("Transpose", [x], 13, **({} if perm is None else {"perm": perm}))


def test_squeeze_forms():
    data = np.arange(12, dtype=np.int32).reshape(1, 3, 1, 4, 1)
    check("Squeeze", [data], 11, axes=[0, -1])
    check("Squeeze", [data, ints(2)], 13)
    check("Squeeze", [data], 13)


def test_unsqueeze_forms(x):
    check("Unsqueeze", [x], 11, axes=[0, 5])
    check("Unsqueeze", [x, ints(-1, 1)], 13)
    check("Unsqueeze", [np.array(3.5, np.float32), ints(0)], 13)


def test_concat():
    parts = [np.arange(6, dtype=np.int64).reshape(2, 3), np.ones((2, 1), np.int64),
             np.zeros((2, 0), np.int64)]
    check("Concat", parts, 13, axis=-1)
    check("Concat", parts[:1] * 2, 11, axis=0)


def test_split_forms(x):
    check("Split", [x], 11, n_outputs=2, axis=3, split=[2, 3])
    check("Split", [x, ints(1, 0, 2)], 13, n_outputs=3, axis=1)
    check("Split", [x], 13, n_outputs=2, axis=-2)
    check("Split", [x], 18, n_outputs=3, axis=3, num_outputs=3)  # 2, 2, 1


def test_slice_attribute_form(x):
    check("Slice", [x], 9, starts=[1, -3], ends=[BIG, -1], axes=[1, 3])
    check("Slice", [x], 9, starts=[0, 1], ends=[1, 100])


@pytest.mark.parametrize("starts, ends, axes, steps", [
    (ints(-1, 4), ints(-BIG - 1, 0), ints(2, 3), ints(-1, -2)),
    (ints(0, 1), ints(BIG, 3), None, None),
    (ints(10), ints(-10), ints(-1), ints(-3)),
    (ints(1), ints(2), ints(0), ints(5)),
    (ints(3), ints(1), ints(2), None),
])
def test_slice_input_form(x, starts, ends, axes, steps):
    check("Slice", [x, starts, ends, axes, steps], 13)


@pytest.mark.parametrize("indices, axis", [
    (ints(0, -1, 1), 0), (np.array([[3, -4], [0, 0]], np.int32), 2), (ints(2).reshape(()), 1),
])
def test_gather(x, indices, axis):
    check("Gather", [x, indices], 13, axis=axis)


def test_pad_attribute_form(x):
    check("Pad", [x], 2, pads=[0, 0, 1, 2, 0, 1, 2, 0], value=1.5)
    check("Pad", [x], 2, pads=[0, 0, 2, 1, 0, 0, 1, 3], mode="reflect")


@pytest.mark.parametrize("mode", ["constant", "reflect", "edge", "wrap"])
def test_pad_input_form(x, mode):
    value = np.array(-2.0, np.float32) if mode == "constant" else None
    check("Pad", [x, ints(0, 1, 2, 3, 0, 2, 1, 1), value], 19, mode=mode)


def test_pad_axes_and_negative_pads(x):
    check("Pad", [x, ints(1, -1, 2, 1), np.array(3.0, np.float32), ints(-1, 1)], 18)
    check("Pad", [x, ints(0, 0, -1, 2, 0, 0, 1, -2)], 13)


def test_expand_tile_identity():
    data = np.arange(3, dtype=np.float32).reshape(3, 1)
    check("Expand", [data, ints(2, 1, 4)], 13)
    check("Expand", [data, ints(1, 1)], 13)
    check("Tile", [data, ints(2, 3)], 13)
    check("Identity", [data], 16)


@pytest.mark.parametrize("opset, bounds", [
    (13, {}), (15, {"start": 1}), (15, {"start": -3, "end": -1}), (15, {"end": 10}),
    (15, {"start": 3, "end": 1}),
])
def test_shape(x, opset, bounds):
    check("Shape", [x], opset, **bounds)


def test_constant_of_shape():
    check("ConstantOfShape", [ints(2, 3)], 9)
    check("ConstantOfShape", [ints(4, 0)], 20, value=np.array([7], np.int32))
    check("ConstantOfShape", [ints()], 20, value=np.array([1.5], np.float64))


@pytest.mark.parametrize("start, limit, delta", [
    (np.float32(1.5), np.float32(7), np.float32(0.7)), (np.int32(10), np.int32(-3), np.int32(-4)),
    (np.int64(3), np.int64(3), np.int64(1)), (np.float64(0), np.float64(1), np.float64(-1)),
])
def test_range(start, limit, delta):
    check("Range", [np.array(start), np.array(limit), np.array(delta)], 11, exact=False)


def test_dropout_at_inference(x):
    check("Dropout", [x, np.array(0.4, np.float32), np.array(False)], 13, n_outputs=2)
    check("Dropout", [x], 13)


@pytest.mark.parametrize("opset, mask_dtype", [(7, np.float32), (10, np.bool_)])
def test_old_dropout_mask_keeps_everything(x, opset, mask_dtype):
    """onnxruntime fills the mask of opsets 7-11 with zeros; the spec (and opset 12 on, in both
    onnxruntime and the ONNX reference) marks kept elements true, and inference keeps all."""
    want_y, want_mask = run_onnxruntime("Dropout", [x], opset, n_outputs=2, ratio=0.3)
    y, mask = run_reference("Dropout", [x], opset, n_outputs=2, ratio=0.3)
    np.testing.assert_array_equal(y, want_y)
    assert mask.dtype == want_mask.dtype == mask_dtype and mask.shape == x.shape
    assert mask.all()


@pytest.mark.parametrize("attrs", [
    {"value": np.arange(6, dtype=np.int8).reshape(2, 3)}, {"value_float": 2.5},
    {"value_floats": [1.0, -1.5]}, {"value_int": 7}, {"value_ints": [3, -4, 5]},
])
def test_constant(attrs):
    check("Constant", [], 13, **attrs)


@pytest.mark.parametrize("mode", ["DCR", "CRD"])
def test_depth_to_space(mode):
    data = np.arange(2 * 8 * 2 * 3, dtype=np.float32).reshape(2, 8, 2, 3)
    check("DepthToSpace", [data], 13, blocksize=2, mode=mode)


def test_space_to_depth():
    data = np.arange(2 * 3 * 4 * 6, dtype=np.float32).reshape(2, 3, 4, 6)
    check("SpaceToDepth", [data], 13, blocksize=2)


# -- reductions -------------------------------------------------------------------------------

REDUCTIONS = ["ReduceMean", "ReduceSum", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceL2"]


@pytest.mark.parametrize("op", REDUCTIONS)
@pytest.mark.parametrize("axes, keepdims", [([1], 1), ([0, -1], 0), (None, 1), (None, 0)])
def test_reduce_attribute_form(x, op, axes, keepdims):
    # ReduceSum took axes as an attribute only up to opset 12, the others up to 17.
    opset = 12 if op == "ReduceSum" else 17
    check(op, [x], opset, exact=False, keepdims=keepdims,
          **({} if axes is None else {"axes": axes}))


@pytest.mark.parametrize("op", REDUCTIONS)
@pytest.mark.parametrize("axes, keepdims, noop", [
    (ints(2), 1, 0), (ints(-3, 3), 0, 0), (None, 1, 0), (ints(), 0, 0), (None, 1, 1),
])
def test_reduce_input_form(x, op, axes, keepdims, noop):
    check(op, [x, axes], 18, exact=False, keepdims=keepdims, noop_with_empty_axes=noop)


def test_reduce_keeps_integer_dtypes():
    data = np.arange(-6, 18, dtype=np.int32).reshape(2, 3, 4)
    for op in ["ReduceSum", "ReduceMax", "ReduceMin", "ReduceProd"]:
        check(op, [data, ints(1)], 18, keepdims=0)
    check("ReduceMean", [data.astype(np.float16), ints(2)], 18, exact=False)


@pytest.mark.parametrize("axis, keepdims, last", [(1, 1, 0), (-1, 0, 1), (0, 0, 0), (2, 1, 1)])
def test_argmax(axis, keepdims, last):
    data = np.random.default_rng(3).integers(0, 3, (3, 4, 5)).astype(np.int32)  # many ties
    check("ArgMax", [data], 13, axis=axis, keepdims=keepdims, select_last_index=last)


# -- resize -----------------------------------------------------------------------------------

@pytest.fixture
def image():
    return np.random.default_rng(11).standard_normal((1, 2, 5, 7)).astype(np.float32)


def scales(*values):
    return np.array(values, dtype=np.float32)


@pytest.mark.parametrize("factors, mode", [
    (scales(1, 1, 2, 3), "nearest"), (scales(1, 1, 0.6, 0.5), "nearest"),
    (scales(1, 1, 2, 1.5), "linear"),
])
def test_resize_opset10_and_upsample(image, factors, mode):
    check("Resize", [image, factors], 10, exact=False, mode=mode)
    if factors.min() >= 1:
        check("Upsample", [image, factors], 9, exact=False, mode=mode)


def test_upsample_attribute_form(image):
    check("Upsample", [image], 7, scales=[1.0, 1.0, 2.0, 2.0], mode="nearest")


@pytest.mark.parametrize("coordinates", [
    "half_pixel", "asymmetric", "align_corners", "pytorch_half_pixel", "tf_half_pixel_for_nn",
])
@pytest.mark.parametrize("nearest_mode", ["round_prefer_floor", "round_prefer_ceil", "floor",
                                          "ceil"])
def test_resize_nearest(coordinates, nearest_mode):
    # 5x10 scaled by 1.6x0.8 gives exactly 8x8: for align_corners, onnxruntime divides by the
    # integer output length and the ONNX reference (which byoc follows) by scale * input length.
    image = np.random.default_rng(2).standard_normal((1, 2, 5, 10)).astype(np.float32)
    check("Resize", [image, np.zeros(0, np.float32), scales(1, 1, 1.6, 0.8)], 11,
          mode="nearest", coordinate_transformation_mode=coordinates, nearest_mode=nearest_mode)


@pytest.mark.parametrize("mode", ["linear", "cubic"])
@pytest.mark.parametrize("coordinates", [
    "half_pixel", "asymmetric", "align_corners", "pytorch_half_pixel",
])
def test_resize_interpolating_to_sizes(image, mode, coordinates):
    check("Resize", [image, None, None, ints(1, 2, 9, 4)], 13, exact=False, mode=mode,
          coordinate_transformation_mode=coordinates)


def test_resize_opset11_empty_inputs(image):
    empty = np.zeros(0, np.float32)
    check("Resize", [image, empty, empty, ints(1, 2, 3, 11)], 11, exact=False, mode="linear")


def test_resize_cubic_options(image):
    check("Resize", [image, None, scales(1, 1, 2, 0.5)], 13, exact=False, mode="cubic",
          cubic_coeff_a=-0.5, exclude_outside=1)


def test_resize_tf_crop_and_resize(image):
    roi = scales(0, 0, 0.2, -0.1, 1, 1, 0.9, 1.2)
    check("Resize", [image, roi, None, ints(1, 2, 4, 6)], 13, exact=False, mode="linear",
          coordinate_transformation_mode="tf_crop_and_resize", extrapolation_value=9.0)


def test_resize_axes_and_aspect_policy(image):
    check("Resize", [image, None, scales(3, 2)], 18, axes=[3, 2])
    for policy in ["not_larger", "not_smaller"]:
        check("Resize", [image, None, None, ints(8, 9)], 18, exact=False, mode="linear",
              axes=[2, 3], keep_aspect_ratio_policy=policy)


def test_resize_antialias(image):
    check("Resize", [image, None, scales(1, 1, 0.5, 0.4)], 18, exact=False, mode="linear",
          antialias=1)


def test_resize_integer_image_rounds_and_keeps_dtype():
    """byoc rounds to nearest like the ONNX reference; onnxruntime's uint8 path truncates."""
    data = np.random.default_rng(5).integers(0, 256, (1, 1, 4, 5)).astype(np.uint8)
    inputs = [data, None, scales(1, 1, 1.5, 2.0)]
    (want,) = run_onnxruntime("Resize", inputs, 13, mode="linear")
    (ours,) = run_reference("Resize", inputs, 13, mode="linear")
    assert ours.dtype == np.uint8 and ours.shape == want.shape == (1, 1, 6, 10)
    assert np.abs(ours.astype(int) - want).max() <= 1
