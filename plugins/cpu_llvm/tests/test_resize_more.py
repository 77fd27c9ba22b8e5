"""cpu_llvm's Resize beyond plain nearest and linear: cubic (cubic_coeff_a, exclude_outside),
antialiased linear and cubic, tf_crop_and_resize (roi, extrapolation_value), against the
reference interpreter, bit for bit (the sign of zeros included), on 1 to 3 threads, with the
node run on cpu_llvm."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

import byoc
from byoc.testing import compile_reference, make_model

_TYPES = {np.dtype(np.float32): TensorProto.FLOAT, np.dtype(np.float64): TensorProto.DOUBLE,
          np.dtype(np.uint8): TensorProto.UINT8, np.dtype(np.int8): TensorProto.INT8,
          np.dtype(np.int16): TensorProto.INT16, np.dtype(np.int32): TensorProto.INT32}


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("BYOC_CACHE_DIR", str(tmp_path))


def data(shape, dtype=np.float32, seed=0):
    """Values of widely varying magnitude and both signs (zeros of both signs included), so
    that a different summation order shows in the last bits."""
    rng = np.random.default_rng(seed)
    dtype = np.dtype(dtype)
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        return rng.integers(info.min, int(info.max) + 1, size=shape).astype(dtype)
    x = rng.standard_normal(shape) * np.exp2(rng.integers(-12, 12, size=shape))
    x.reshape(-1)[::7] = 0.0
    x.reshape(-1)[3::11] = -0.0
    return x.astype(dtype)


def resize_model(x, *, scales=None, sizes=None, roi=None, opset=19, roi_input=None,
                 **attrs):
    """``roi_input`` (a dtype) makes the roi a graph input rather than an initializer."""
    inits = {}
    inputs = ["x", "", "", ""]
    graph_inputs = [("x", _TYPES[x.dtype], list(x.shape))]
    if roi_input is not None:
        inputs[1] = "roi"
        graph_inputs.append(("roi", _TYPES[np.dtype(roi_input)], [len(roi)]))
    elif roi is not None:
        inits["roi"] = np.asarray(roi, np.float32)
        inputs[1] = "roi"
    if scales is not None:
        inits["scales"] = np.asarray(scales, np.float32)
        inputs[2] = "scales"
    else:
        inits["sizes"] = np.asarray(sizes, np.int64)
        inputs[3] = "sizes"
        if opset < 13:   # scales is not optional before opset 13: an empty tensor
            inits["scales"] = np.zeros(0, np.float32)
            inputs[2] = "scales"
    while not inputs[-1]:
        inputs.pop()
    node = helper.make_node("Resize", inputs, ["y"], **attrs)
    elem = _TYPES[x.dtype]
    model = make_model([node], graph_inputs, [("y", elem, None)], inits, opset=opset)
    return onnx.shape_inference.infer_shapes(model, strict_mode=True)


def run_both(model, x, threads, roi=None):
    ours = byoc.compile(model, plugins=["cpu_llvm"],
                        plugin_options={"cpu_llvm": {"threads": threads,
                                                     "min_work_per_thread": 0}})
    assert ours.parts and all(p.plugin == "cpu_llvm" for p in ours.parts), \
        [p.plugin for p in ours.parts]
    feeds = {"x": x} if roi is None else {"x": x, "roi": roi}
    expected = compile_reference(model).run(feeds)["y"]
    got = ours.run(feeds)["y"]
    assert got.dtype == expected.dtype and got.shape == expected.shape
    # Bit for bit: view the values as unsigned integers of their width.
    width = f"u{got.dtype.itemsize}"
    np.testing.assert_array_equal(got.view(width), expected.view(width))
    return got


# (shape, scales, sizes, axes): upsampling, downsampling (strong ones give 8+ taps with
# antialiasing, hence numpy's pairwise summation when the axis is innermost), the last axis
# resized or not, a trailing length-1 dim, and axes.
CASES = [
    ((1, 2, 4, 5), [1, 1, 2, 2], None, None),
    ((1, 2, 8, 9), [1, 1, 0.5, 0.6], None, None),
    ((2, 1, 5, 3), [1, 1, 1.7, 2.5], None, None),
    ((1, 3, 17, 19), None, [1, 3, 5, 4], None),
    ((1, 1, 30, 40), [1, 1, 0.3, 0.2], None, None),
    ((2, 23, 3), [0.25, 1], None, [1, 2]),
    ((3, 33, 1), None, [3, 4, 1], None),
    ((4, 29, 6), None, [7, 2], [2, 1]),
    ((1, 1, 64, 3), [1, 1, 0.07, 1], None, None),
]


@pytest.mark.parametrize("threads", [1, 3])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("mode, antialias", [("cubic", 0), ("cubic", 1), ("linear", 1)])
@pytest.mark.parametrize("shape, scales, sizes, axes", CASES)
def test_filtered(threads, dtype, mode, antialias, shape, scales, sizes, axes):
    """float64 outputs show the float64 blend's last bits (float32 rounding hides them)."""
    x = data(shape, dtype)
    attrs = {"mode": mode, "antialias": antialias}
    if axes is not None:
        attrs["axes"] = axes
    run_both(resize_model(x, scales=scales, sizes=sizes, **attrs), x, threads)


@pytest.mark.parametrize("coordinate", ["half_pixel", "asymmetric", "align_corners",
                                        "pytorch_half_pixel", "half_pixel_symmetric"])
@pytest.mark.parametrize("a, exclude", [(-0.75, 0), (-0.5, 1), (-0.5, 0)])
@pytest.mark.parametrize("scales", [[1, 1, 0.6, 1.8], [1, 1, 2, 0.5]])
def test_cubic_attributes(coordinate, a, exclude, scales):
    x = data((1, 2, 6, 7))
    run_both(resize_model(x, scales=scales, mode="cubic", cubic_coeff_a=a,
                          exclude_outside=exclude,
                          coordinate_transformation_mode=coordinate), x, 2)


@pytest.mark.parametrize("mode", ["linear", "cubic"])
@pytest.mark.parametrize("policy", ["not_larger", "not_smaller"])
def test_antialias_keep_aspect(mode, policy):
    x = data((1, 1, 16, 12))
    run_both(resize_model(x, sizes=[5, 7], axes=[2, 3], mode=mode, antialias=1,
                          keep_aspect_ratio_policy=policy), x, 2)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("mode", ["linear", "cubic"])
@pytest.mark.parametrize("shape", [(2, 300), (300, 2), (2, 300, 1)])
def test_many_taps(dtype, mode, shape):
    """Hundreds of taps: numpy's pairwise summation halves blocks beyond 128 terms."""
    x = data(shape, dtype)
    sizes = [3, 2, 1][:len(shape)] if shape[0] == 300 else [2, 3, 1][:len(shape)]
    run_both(resize_model(x, sizes=sizes, mode=mode, antialias=1), x, 2)


@pytest.mark.parametrize("mode, antialias", [("linear", 0), ("cubic", 0), ("cubic", 1),
                                             ("linear", 1)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_negative_zeros(mode, antialias, dtype):
    """The reference's sums start from +0.0, so blended -0.0s come out +0.0."""
    x = np.full((1, 1, 6, 7), -0.0, dtype)
    x[0, 0, 0, 0] = -1.5
    run_both(resize_model(x, scales=[1, 1, 0.5, 1.5], mode=mode, antialias=antialias), x, 2)


@pytest.mark.parametrize("dtype", [np.uint8, np.int8, np.int16, np.int32, np.float64])
@pytest.mark.parametrize("mode, antialias", [("cubic", 0), ("cubic", 1), ("linear", 1)])
def test_filtered_dtypes(dtype, mode, antialias):
    x = data((1, 1, 9, 10), dtype)
    run_both(resize_model(x, scales=[1, 1, 0.5, 1.5], mode=mode, antialias=antialias), x, 2)


CROPS = [
    # (shape, roi, scales, sizes, axes)
    ((1, 1, 4, 4), [0, 0, 0.4, 0.6, 1, 1, 0.6, 0.8], [1, 1, 0.8, 0.8], None, None),
    ((1, 1, 4, 4), [0, 0, 0.4, 0.6, 1, 1, 1.2, 1.7], None, [1, 1, 3, 3], None),
    ((1, 1, 4, 4), [0, 0, -0.3, 0.1, 1, 1, 0.9, 1.4], [1, 1, 2.5, 1.5], None, None),
    ((2, 3, 5, 6), [0.2, -0.5, 0.8, 1.3], None, [4, 7], [2, 3]),
    ((2, 5, 6), [0.1, 1.1], [1.6], None, [1]),
    ((1, 1, 5, 6), [0, 0, 0.5, -0.2, 1, 1, 0.5, 1.2], None, [1, 1, 1, 9], None),
    # Later axes first: the earlier pass changes the strides the later one reads with.
    ((1, 2, 4, 5), [0.6, 0.4, 0.8, 0.6], None, [3, 3], [3, 2]),
    ((1, 2, 4, 5), [0.1, -0.2, 0.3, 0.7, 1.2, 0.9], [1.5, 0.5, 2], None, [3, 1, 2]),
]


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("mode", ["nearest", "linear", "cubic"])
@pytest.mark.parametrize("extrapolation", [None, 10.0, -2.5])
@pytest.mark.parametrize("shape, roi, scales, sizes, axes", CROPS)
def test_crop_and_resize(threads, mode, extrapolation, shape, roi, scales, sizes, axes):
    x = data(shape)
    attrs = {"mode": mode, "coordinate_transformation_mode": "tf_crop_and_resize"}
    if extrapolation is not None:
        attrs["extrapolation_value"] = extrapolation
    if axes is not None:
        attrs["axes"] = axes
    run_both(resize_model(x, scales=scales, sizes=sizes, roi=roi, **attrs), x, threads)


@pytest.mark.parametrize("dtype", [np.uint8, np.int16])
@pytest.mark.parametrize("mode", ["nearest", "linear", "cubic"])
def test_crop_and_resize_integers(dtype, mode):
    x = data((1, 1, 5, 5), dtype)
    run_both(resize_model(x, sizes=[1, 1, 4, 6], roi=[0, 0, -0.2, 0.3, 1, 1, 0.9, 1.4],
                          mode=mode, coordinate_transformation_mode="tf_crop_and_resize",
                          extrapolation_value=7.0), x, 2)


def test_crop_and_resize_opset11():
    x = data((1, 1, 4, 4))
    run_both(resize_model(x, sizes=[1, 1, 3, 3], roi=[0, 0, 0.4, 0.6, 1, 1, 1.2, 1.7],
                          opset=11, mode="linear",
                          coordinate_transformation_mode="tf_crop_and_resize",
                          extrapolation_value=10.0), x, 2)


def test_declines_huge_filters():
    """Thousands of taps per position (a 1000x antialiased downscale) stay on the
    reference."""
    from byoc.core.importer import import_model
    from byoc_cpu_llvm.kernels import supports
    x = data((1, 3000))
    model = resize_model(x, scales=[1, 0.001], mode="cubic", antialias=1)
    graph = import_model(model)
    assert "taps" in supports(graph.nodes[0], graph)
    compiled = byoc.compile(model, plugins=["cpu_llvm"])
    assert all(p.plugin != "cpu_llvm" for p in compiled.parts)
    np.testing.assert_array_equal(compiled.run({"x": x})["y"],
                                  compile_reference(model).run({"x": x})["y"])


def test_crop_without_roi_declines():
    from byoc.core.importer import import_model
    from byoc_cpu_llvm.kernels import supports
    node = helper.make_node("Resize", ["x", "", "", "sizes"], ["y"], mode="linear",
                            coordinate_transformation_mode="tf_crop_and_resize")
    model = make_model([node], [("x", TensorProto.FLOAT, [1, 1, 4, 4])],
                       [("y", TensorProto.FLOAT, [1, 1, 3, 3])],
                       {"sizes": np.array([1, 1, 3, 3], np.int64)}, opset=19)
    graph = import_model(model)
    assert "roi" in supports(graph.nodes[0], graph)


RUNTIME_CROPS = CROPS + [
    ((1, 1, 4, 4), [0, 0, 0.4, 0.6, 1, 1, 0.6, 0.8], [1, 1, 0.25, 0.5], None, None),
    ((2, 3, 5, 6), [0, 0, 0, 0, 1, 1, 1, 1], None, [2, 3, 5, 9], None),
    ((2, 3, 5, 6), [0, 0.1, 0, 0, 1, 0.7, 1, 1], None, [2, 3, 5, 6], None),
]


@pytest.mark.parametrize("threads, dtype", [(1, np.float32), (2, np.float32),
                                            (2, np.float64)])
@pytest.mark.parametrize("roi_dtype", [np.float32, np.float64])
@pytest.mark.parametrize("mode, antialias, exclude", [
    ("nearest", 0, 0), ("linear", 0, 0), ("cubic", 0, 0), ("linear", 1, 0), ("cubic", 1, 1),
    ("cubic", 0, 1)])
@pytest.mark.parametrize("shape, roi, scales, sizes, axes", RUNTIME_CROPS)
def test_crop_and_resize_roi_input(threads, dtype, roi_dtype, mode, antialias, exclude, shape,
                                   roi, scales, sizes, axes):
    """A roi that is a graph input (as in ONNX's node tests): the tables are computed at run
    time, by the same float32 and float64 arithmetic as the reference's."""
    x = data(shape, dtype)
    attrs = {"mode": mode, "coordinate_transformation_mode": "tf_crop_and_resize",
             "extrapolation_value": 10.0}
    if mode != "nearest":
        attrs.update(antialias=antialias, exclude_outside=exclude)
    if axes is not None:
        attrs["axes"] = axes
    model = resize_model(x, scales=scales, sizes=sizes, roi=roi, roi_input=roi_dtype, **attrs)
    run_both(model, x, threads, roi=np.asarray(roi, roi_dtype))


@pytest.mark.parametrize("mode", ["nearest", "linear", "cubic"])
@pytest.mark.parametrize("nearest_mode", ["round_prefer_floor", "round_prefer_ceil", "floor",
                                          "ceil"])
def test_crop_and_resize_roi_input_values(mode, nearest_mode):
    """One compiled model run with several rois, integers included."""
    x = data((1, 2, 7, 6), np.uint8)
    roi = np.array([0.1, 0.2, 0.95, 0.8], np.float32)
    model = resize_model(x, sizes=[5, 8], axes=[2, 3], roi=roi, roi_input=np.float32,
                         mode=mode, nearest_mode=nearest_mode,
                         coordinate_transformation_mode="tf_crop_and_resize")
    for values in ([0.1, 0.2, 0.95, 0.8], [0, 0, 1, 1], [-0.3, 0.5, 1.4, 0.6],
                   [0.37, 0.01, 0.63, 1.9]):
        run_both(model, x, 2, roi=np.asarray(values, np.float32))
