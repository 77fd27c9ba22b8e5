"""The reference indexing, scatter, detection, sampling and patch ops against onnxruntime on
one-node models: the forms onnx's node corpus leaves out (negative axes and indices,
duplicate scatter indices under every reduction, empty inputs, every opset's attribute
forms), and the errors for out-of-range indices and for outputs whose size depends on
values not known at import.
"""

from __future__ import annotations

import numpy as np
import pytest
from core.node_harness import assert_same_outputs, run_onnxruntime, run_reference
from onnx import TensorProto, helper

import byoc
from byoc.errors import ExecutionError, ShapeInferenceError
from byoc.testing import make_model

ort = pytest.importorskip("onnxruntime")

RNG = np.random.default_rng(11)


def check(op_type: str, inputs: list[np.ndarray | None], opset: int, n_outputs: int = 1,
          exact: bool = True, tolerance: float = 1e-5, **attrs):
    """byoc's interpreter and onnxruntime agree on one node."""
    expected = run_onnxruntime(op_type, inputs, opset, n_outputs, **attrs)
    ours = run_reference(op_type, inputs, opset, n_outputs, **attrs)
    assert_same_outputs(ours, expected, exact, rtol=tolerance, atol=tolerance)


def ints(*values):
    return np.array(values, dtype=np.int64)


def floats(shape, low=-1.0, high=1.0):
    return RNG.uniform(low, high, shape).astype(np.float32)


# -- scatters ---------------------------------------------------------------------------------

@pytest.mark.parametrize("reduction, opset", [
    ("none", 11), ("none", 13), ("add", 16), ("mul", 16), ("max", 18), ("min", 18)])
def test_scatter_elements_duplicates_under_every_reduction(reduction, opset):
    data = floats((3, 4))
    # Column 1 of row 0 is hit three times, row 2 twice; negative indices count from the end.
    indices = ints(1, -3, 1, 3, 0, 1, -2, 2).reshape(2, 4)
    updates = floats((2, 4), 0.5, 2.0)
    attrs = {} if reduction == "none" else {"reduction": reduction}
    check("ScatterElements", [data, indices, updates], opset, axis=-1, **attrs)


def test_scatter_elements_on_integers_along_the_first_axis():
    data = np.arange(24, dtype=np.int32).reshape(2, 3, 4)
    indices = np.array([[[1, 0, 1, 1]], [[0, -1, 0, 1]]], dtype=np.int32)
    updates = np.full((2, 1, 4), -5, np.int32)
    check("ScatterElements", [data, indices, updates], 18, axis=0, reduction="add")


def test_scatter_elements_with_empty_indices_copies_data():
    data = floats((3, 2))
    check("ScatterElements", [data, np.zeros((0, 2), np.int64), np.zeros((0, 2), np.float32)],
          18, axis=0)


@pytest.mark.parametrize("opset", [9, 10])
def test_scatter_of_opsets_9_and_10(opset):
    data = floats((3, 3))
    check("Scatter", [data, ints(2, 0, 1, 1, 2, 0).reshape(2, 3), floats((2, 3))], opset,
          axis=1)


def test_scatter_elements_names_an_out_of_range_index():
    data, updates = floats((2, 3)), floats((1, 2))
    with pytest.raises(ExecutionError, match=r"index 3 at position \[0, 1\] of indices is out "
                                             r"of range for dimension 1 of data, of size 3 "
                                             r"\(valid: -3 to 2\)"):
        run_reference("ScatterElements", [data, ints(0, 3).reshape(1, 2), updates], 18, axis=1)
    with pytest.raises(ExecutionError, match=r"index -4 at position \[0, 0\]"):
        run_reference("ScatterElements", [data, ints(-4, 0).reshape(1, 2), updates], 18,
                      axis=-1)


@pytest.mark.parametrize("reduction, opset", [
    ("none", 11), ("add", 16), ("mul", 16), ("max", 18), ("min", 18)])
def test_scatter_nd_slices_with_duplicates(reduction, opset):
    data = floats((4, 3, 2))
    # Rows address whole [3, 2] slices; slice 1 (also written as -3) is hit three times.
    indices = ints(1, -3, 3, 1).reshape(4, 1)
    updates = floats((4, 3, 2), 0.5, 2.0)
    attrs = {} if reduction == "none" else {"reduction": reduction}
    check("ScatterND", [data, indices, updates], opset, **attrs)


def test_scatter_nd_elements_and_empty_indices():
    data = np.arange(12, dtype=np.int64).reshape(3, 4)
    check("ScatterND", [data, ints(0, -1, 2, 0, 0, -1).reshape(3, 2), ints(7, 8, 9)], 18,
          reduction="add")
    check("ScatterND", [data, np.zeros((0, 2), np.int64), np.zeros((0,), np.int64)], 18)


def test_scatter_nd_names_an_out_of_range_index():
    with pytest.raises(ExecutionError, match=r"index 5 at position \[1, 1\] of indices is out "
                                             r"of range for dimension 1 of data, of size 3"):
        run_reference("ScatterND", [floats((2, 3)), ints(0, 1, 1, 5).reshape(2, 2),
                                    floats((2,))], 18)


def test_scatter_reduction_needs_its_opset():
    with pytest.raises(ExecutionError, match="reduction 'max' needs opset 18"):
        run_reference("ScatterND", [floats((2,)), ints(0).reshape(1, 1), floats((1,))], 16,
                      reduction="max")


@pytest.mark.parametrize("mode, write_indices, axis", [
    ("linear", None, -2), ("linear", ints(0, 3), -2), ("circular", ints(4, 2), -2),
    ("circular", ints(3, 1), 2)])
def test_tensor_scatter(mode, write_indices, axis):
    cache = floats((2, 3, 5, 4))
    update = floats((2, 3, 2, 4))
    check("TensorScatter", [cache, update, write_indices], 24, mode=mode, axis=axis)


def test_tensor_scatter_refuses_a_linear_write_past_the_cache():
    with pytest.raises(ExecutionError, match="write index 4 of batch entry 1 leaves no room"):
        run_reference("TensorScatter", [floats((2, 5, 3)), floats((2, 2, 3)), ints(0, 4)], 24)


# -- indexing ---------------------------------------------------------------------------------

@pytest.mark.parametrize("axis", [-1, 0, -2, 2])
def test_one_hot_negative_and_out_of_range_indices(axis):
    indices = ints(0, -1, 4, -5, 2, 7).reshape(2, 3)
    check("OneHot", [indices, np.array([5], np.int64), np.array([-2, 3], np.int64)], 11,
          axis=axis)


def test_one_hot_before_opset_11_has_no_negative_indices():
    """OneHot-9 puts negative indices out of range (all off); onnxruntime counts them from
    the end at every opset, byoc follows the spec of each."""
    (hot,) = run_reference("OneHot", [ints(1, -1, 3), ints(3), np.array([0, 1], np.int64)], 9)
    np.testing.assert_array_equal(hot, [[0, 1, 0], [0, 0, 0], [0, 0, 0]])
    (hot,) = run_reference("OneHot", [ints(1, -1, 3), ints(3), np.array([0, 1], np.int64)], 11)
    np.testing.assert_array_equal(hot, [[0, 1, 0], [0, 0, 1], [0, 0, 0]])


def test_one_hot_with_float_indices_and_depth():
    indices = np.array([[1.0, 2.7], [-1.0, 0.0]], np.float32)
    check("OneHot", [indices, np.array(3.0, np.float32), np.array([0.5, 1.5], np.float32)], 11)


@pytest.mark.parametrize("x", [
    np.array([[0, 1.5, 0], [2, 0, -1]], np.float32), np.zeros((2, 0, 3), np.int32),
    np.zeros((3, 2), np.float32), np.array([[True, False], [False, True]]),
    np.array(4, np.int64)])
def test_non_zero(x):
    check("NonZero", [x], 13)


@pytest.mark.parametrize("condition, axis", [
    (np.array([True, False, True]), 1), (np.array([False, True]), -1),
    (np.array([True, False, False, True, True]), None), (np.array([False, False]), 0),
    (np.array([True]), 2),
    # Longer than the axis: onnxruntime ignores the extra entries, true or not.
    (np.array([True, False, False, True]), 1)])
def test_compress(condition, axis):
    x = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
    check("Compress", [x, condition], 11, **({} if axis is None else {"axis": axis}))


@pytest.mark.parametrize("x, axis, is_sorted", [
    (np.array([2.0, 1.0, 1.0, 3.0, 4.0, 3.0], np.float32), None, 1),
    (np.array([5, 2, 5, 9, 2, 0], np.int64), None, 0),
    (np.array([[1, 0, 0], [1, 0, 0], [2, 3, 4]], np.int64), 0, 0),
    (np.array([[1, 0, 1], [1, 0, 1]], np.int64), 1, 0),
    (np.array([[[1, 1], [0, 1]], [[1, 1], [0, 1]]], np.float32), -1, 1),
    (np.array([[1, 1], [0, 1]], np.int64), -2, 1), (np.zeros((0,), np.float32), None, 1)])
def test_unique(x, axis, is_sorted):
    attrs = {"sorted": is_sorted} | ({} if axis is None else {"axis": axis})
    check("Unique", [x], 11, n_outputs=4, **attrs)


@pytest.mark.parametrize("batch_axis, time_axis, lengths", [
    (1, 0, ints(4, 3, 1)), (0, 1, ints(1, 2, 4)), (1, 0, ints(0, 4, 2))])
def test_reverse_sequence(batch_axis, time_axis, lengths):
    shape = (4, 3, 2) if batch_axis == 1 else (3, 4, 2)
    check("ReverseSequence", [floats(shape), lengths], 10, batch_axis=batch_axis,
          time_axis=time_axis)


def test_reverse_sequence_refuses_a_length_past_the_time_axis():
    with pytest.raises(ExecutionError, match="sequence length 5 of batch entry 1 is outside "
                                             r"\[0, 4\]"):
        run_reference("ReverseSequence", [floats((4, 2)), ints(1, 5)], 10)


@pytest.mark.parametrize("shape, axes", [
    (ints(3, 7, 2), None), (ints(1, 6), [0, -1]), (ints(5), [-2]), (ints(0, 4), [1, 2])])
def test_center_crop_pad(shape, axes):
    check("CenterCropPad", [floats((4, 5, 3)), shape], 18,
          **({} if axes is None else {"axes": axes}))


# -- patches ----------------------------------------------------------------------------------

@pytest.mark.parametrize("image, block, attrs", [
    ((5, 5), (2, 3), {}),
    ((6, 7), (3, 2), {"strides": [2, 1], "pads": [1, 0, 2, 1], "dilations": [1, 2]}),
    ((4, 3, 5), (2, 2, 2), {"strides": [1, 1, 2]})])
def test_col2im(image, block, attrs):
    strides = attrs.get("strides", [1] * len(image))
    dilations = attrs.get("dilations", [1] * len(image))
    pads = attrs.get("pads", [0] * 2 * len(image))
    blocks = [(n + pads[i] + pads[i + len(image)] - (k - 1) * d - 1) // s + 1
              for i, (n, k, s, d) in enumerate(zip(image, block, strides, dilations))]
    x = floats((2, 3 * int(np.prod(block)), int(np.prod(blocks))))
    check("Col2Im", [x, ints(*image), ints(*block)], 18, exact=False, **attrs)


def test_col2im_refuses_a_wrong_block_count():
    x = floats((1, 4, 5))
    with pytest.raises(ExecutionError, match="input has 5 blocks; an image of \\[3, 3\\]"):
        run_reference("Col2Im", [x, ints(3, 3), ints(2, 2)], 18)


@pytest.mark.parametrize("attrs, with_mask", [
    ({}, False), ({"pads": [1, 1, 1, 1], "strides": [2, 1]}, True),
    ({"group": 2, "offset_group": 2, "dilations": [2, 1]}, True)])
def test_deform_conv(attrs, with_mask):
    group, offset_group = attrs.get("group", 1), attrs.get("offset_group", 1)
    x, w = floats((2, 4, 6, 5)), floats((6, 4 // group, 3, 2))
    strides = attrs.get("strides", [1, 1])
    dilations = attrs.get("dilations", [1, 1])
    pads = attrs.get("pads", [0, 0, 0, 0])
    out = [(n + pads[i] + pads[i + 2] - (k - 1) * d - 1) // s + 1
           for i, (n, k, s, d) in enumerate(zip((6, 5), (3, 2), strides, dilations))]
    offset = floats((2, offset_group * 6 * 2, *out), -2.0, 2.0)
    mask = floats((2, offset_group * 6, *out), 0.0, 1.0) if with_mask else None
    check("DeformConv", [x, w, offset, floats((6,)), mask], 19, exact=False, **attrs)


@pytest.mark.parametrize("x_shape, w_shape, attrs", [
    ((1, 2, 9), (3, 2, 3), {"pads": [1, 2], "dilations": [2]}),
    ((1, 2, 5, 5), (3, 2, 3, 3), {"pads": [0, 1, 0, 1], "strides": [1, 2]}),
    ((2, 4, 4, 5, 3), (2, 2, 2, 3, 2), {"group": 2, "strides": [2, 1, 1]})])
def test_deform_conv_without_offsets_is_conv(x_shape, w_shape, attrs):
    """Zero offsets sample every tap exactly on a pixel: the result is a plain Conv's, in 1,
    2 and 3 spatial dimensions (onnxruntime implements 2 only)."""
    x, w = floats(x_shape), floats(w_shape)
    (plain,) = run_reference("Conv", [x, w], 17, **attrs)
    taps = int(np.prod(w_shape[2:]))
    offset = np.zeros((x_shape[0], taps * (len(x_shape) - 2), *plain.shape[2:]), np.float32)
    (deformed,) = run_reference("DeformConv", [x, w, offset], 19, **attrs)
    np.testing.assert_allclose(deformed, plain, rtol=1e-6, atol=1e-6)


def test_deform_conv_refuses_offsets_of_the_wrong_output_size():
    x, w = floats((1, 2, 5, 5)), floats((3, 2, 3, 3))
    with pytest.raises(ExecutionError, match=r"offset has shape \[1, 18, 4, 4\]; expected "
                                             r"\[1, 18, 3, 3\]"):
        run_reference("DeformConv", [x, w, floats((1, 18, 4, 4))], 19)


# -- detection --------------------------------------------------------------------------------

def _boxes(count: int, center_point_box: int) -> np.ndarray:
    corners = RNG.uniform(0, 10, (2, count, 2))
    sizes = RNG.uniform(1, 4, (2, count, 2))
    if center_point_box:
        return np.concatenate([corners, sizes], axis=-1).astype(np.float32)
    # Corner boxes given in either order of the two corners.
    return np.concatenate([corners + sizes, corners], axis=-1).astype(np.float32)


@pytest.mark.parametrize("center_point_box, limit, iou, score", [
    (0, 3, 0.3, None), (1, 10, 0.5, 0.4), (0, 0, 0.5, None), (0, 2, 0.0, 0.2)])
def test_non_max_suppression(center_point_box, limit, iou, score):
    boxes = _boxes(12, center_point_box)
    scores = RNG.permutation(2 * 3 * 12).reshape(2, 3, 12).astype(np.float32) / 72
    optional = [ints(limit), np.array([iou], np.float32)]
    if score is not None:
        optional.append(np.array([score], np.float32))
    check("NonMaxSuppression", [boxes, scores, *optional], 11,
          center_point_box=center_point_box)


def test_non_max_suppression_without_optional_inputs_selects_nothing():
    check("NonMaxSuppression", [_boxes(4, 0), floats((2, 1, 4))], 11)


@pytest.mark.parametrize("opset, attrs", [
    (10, {}), (10, {"mode": "max", "sampling_ratio": 2}),
    (16, {}), (16, {"coordinate_transformation_mode": "output_half_pixel"}),
    (16, {"mode": "max", "spatial_scale": 0.5, "output_height": 3, "output_width": 2}),
    (16, {"sampling_ratio": 3, "output_height": 2, "output_width": 4})])
def test_roi_align(opset, attrs):
    x = floats((2, 3, 8, 7))
    # Regions inside, partly outside, and degenerate (a point).
    rois = np.array([[0.5, 1.0, 5.5, 6.0], [-2.0, -1.0, 3.0, 9.5], [4.0, 4.0, 4.0, 4.0],
                     [1.2, 0.3, 6.9, 7.7]], np.float32)
    check("RoiAlign", [x, rois, ints(0, 1, 1, 0)], opset, exact=False, **attrs)


def test_roi_align_names_a_bad_batch_index():
    with pytest.raises(ExecutionError, match="batch index 2 of region 0 is out of range"):
        run_reference("RoiAlign", [floats((2, 1, 4, 4)), floats((1, 4)), ints(2)], 16)


@pytest.mark.parametrize("spatial_scale", [1.0, 0.5])
def test_max_roi_pool(spatial_scale):
    x = floats((2, 3, 8, 9))
    rois = np.array([[0, 0, 0, 5, 3], [1, 2.5, 1.5, 8.6, 7.5], [1, 7, 6, 4, 2],
                     [0, -3, -2, 20, 20]], np.float32)
    check("MaxRoiPool", [x, rois], 9, pooled_shape=[3, 2], spatial_scale=spatial_scale)


# -- sampling ---------------------------------------------------------------------------------

@pytest.mark.parametrize("mode", ["bilinear", "nearest", "bicubic"])
@pytest.mark.parametrize("padding_mode", ["zeros", "border", "reflection"])
@pytest.mark.parametrize("align_corners", [0, 1])
def test_grid_sample_of_opset_16(mode, padding_mode, align_corners):
    x = floats((2, 3, 5, 6))
    # Coordinates up to well beyond the edges (several reflections).
    grid = floats((2, 4, 7, 2), -3.5, 3.5)
    check("GridSample", [x, grid], 16, exact=False, mode=mode, padding_mode=padding_mode,
          align_corners=align_corners)


@pytest.mark.parametrize("mode", ["linear", "nearest"])
@pytest.mark.parametrize("padding_mode", ["zeros", "border", "reflection"])
def test_grid_sample_volumetric(mode, padding_mode):
    x = floats((1, 2, 3, 4, 5))
    grid = floats((1, 2, 3, 4, 3), -1.6, 1.6)
    check("GridSample", [x, grid], 20, exact=False, mode=mode, padding_mode=padding_mode)


def test_grid_sample_before_opset_20_takes_4d_input_only():
    with pytest.raises(ExecutionError, match="before opset 20 takes 4-D input"):
        run_reference("GridSample", [floats((1, 1, 2, 2, 2)), floats((1, 1, 1, 1, 3))], 16)


@pytest.mark.parametrize("size, align_corners", [
    (ints(2, 3, 4, 5), 0), (ints(2, 1, 1, 6), 0), (ints(2, 3, 4, 5), 1), (ints(2, 2, 3, 2, 4), 0),
    (ints(2, 2, 3, 2, 4), 1)])
def test_affine_grid(size, align_corners):
    spatial = len(size) - 2
    theta = floats((2, spatial, spatial + 1))
    check("AffineGrid", [theta, size], 20, exact=False, align_corners=align_corners)


def test_affine_grid_puts_an_axis_of_one_pixel_at_minus_one_with_align_corners():
    """onnxruntime gives 1 there, and the ONNX function body divides by zero (NaN) for
    height and width; byoc follows the function body's definition for depth and the ONNX
    reference: -1."""
    identity = np.array([[[1, 0, 0], [0, 1, 0]]], np.float32)
    (grid,) = run_reference("AffineGrid", [identity, ints(1, 1, 1, 3)], 20, align_corners=1)
    np.testing.assert_array_equal(grid[0, 0], [[-1, -1], [0, -1], [1, -1]])


# -- import: outputs whose size depends on values ---------------------------------------------

def test_value_dependent_output_size_names_the_input_and_what_to_do():
    model = make_model([helper.make_node("Compress", ["x", "keep"], ["y"], name="pick", axis=0)],
                       [("x", TensorProto.FLOAT, [4, 2]), ("keep", TensorProto.BOOL, [4])],
                       [("y", TensorProto.FLOAT, None)], opset=11)
    with pytest.raises(ShapeInferenceError) as error:
        byoc.compile(model, default_plugins=(), dynamic_tail=False)
    message = str(error.value)
    assert "node 'pick' (ai.onnx::Compress, opset 11)" in message
    assert "depends on the values of input 'keep' (condition)" in message
    assert "constant_inputs={'keep': value}" in message
    keep = np.array([True, False, False, True])
    compiled = byoc.compile(model, default_plugins=(), constant_inputs={"keep": keep})
    x = floats((4, 2))
    np.testing.assert_array_equal(compiled.run({"x": x})["y"], x[keep])


def test_value_dependent_output_size_of_a_computed_value():
    model = make_model([helper.make_node("Relu", ["x"], ["r"]),
                        helper.make_node("NonZero", ["r"], ["y"], name="where")],
                       [("x", TensorProto.FLOAT, [3, 3])], [("y", TensorProto.INT64, None)],
                       opset=13)
    with pytest.raises(ShapeInferenceError, match="input 'r' \\(X\\), which are not known at "
                                                  "import.*compute it from constants only"):
        byoc.compile(model, default_plugins=(), dynamic_tail=False)


def test_scatter_shapes_are_checked_at_import():
    model = make_model([helper.make_node("ScatterElements", ["x", "i", "u"], ["y"], axis=1)],
                       [("x", TensorProto.FLOAT, [2, 3]), ("i", TensorProto.INT64, [3, 1]),
                        ("u", TensorProto.FLOAT, [3, 1])],
                       [("y", TensorProto.FLOAT, [2, 3])], opset=18)
    with pytest.raises(ShapeInferenceError, match="indices of shape \\[3, 1\\] reach past data "
                                                  "of shape \\[2, 3\\]"):
        byoc.compile(model, default_plugins=())


def test_an_out_of_range_index_fed_at_run_time_names_the_node():
    model = make_model([helper.make_node("ScatterND", ["x", "i", "u"], ["y"], name="write")],
                       [("x", TensorProto.FLOAT, [3, 2]), ("i", TensorProto.INT64, [1, 1]),
                        ("u", TensorProto.FLOAT, [1, 2])],
                       [("y", TensorProto.FLOAT, [3, 2])], opset=18)
    compiled = byoc.compile(model)
    feeds = {"x": floats((3, 2)), "u": floats((1, 2))}
    np.testing.assert_array_equal(compiled.run(feeds | {"i": ints(-1).reshape(1, 1)})["y"][2],
                                  feeds["u"][0])
    with pytest.raises(ExecutionError, match=r"node 'write' .*index 3 at position \[0, 0\] "
                                             r"of indices is out of range for dimension 0"):
        compiled.run(feeds | {"i": ints(3).reshape(1, 1)})


def test_the_last_of_duplicate_scatter_writes_wins():
    """As in the spec's loops and onnxruntime's kernels (numpy leaves it open)."""
    data = np.zeros((2, 3), np.float32)
    (elements,) = run_reference("ScatterElements", [data, ints(2, -1, 0, 2).reshape(1, 4),
                                                    np.arange(1, 5, dtype=np.float32)[None]],
                                18, axis=1)
    np.testing.assert_array_equal(elements, [[3, 0, 4], [0, 0, 0]])
    (slices,) = run_reference("ScatterND", [data, ints(1, 0, -1).reshape(3, 1),
                                            np.arange(9, dtype=np.float32).reshape(3, 3)], 18)
    np.testing.assert_array_equal(slices, [[3, 4, 5], [6, 7, 8]])
