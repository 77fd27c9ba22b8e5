"""cpu_llvm's data movement, generator, Resize and remaining scalar kernels against the
reference interpreter: exact equality, on 1 and 2 threads, with the node run on cpu_llvm."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import byoc
from byoc.core.dtypes import to_onnx
from byoc.testing import compile_reference

THREADS = [1, 2]


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("BYOC_CACHE_DIR", str(tmp_path))


def build(nodes, feeds, outputs, initializers=None, opset=17):
    """A model of ``nodes`` reading ``feeds`` (graph inputs), output types inferred by ONNX."""
    graph = helper.make_graph(
        nodes, "t",
        [helper.make_tensor_value_info(n, to_onnx(a.dtype), list(a.shape))
         for n, a in feeds.items()],
        [helper.make_tensor_value_info(o, TensorProto.UNDEFINED, None) for o in outputs],
        initializer=[numpy_helper.from_array(np.asarray(a), n)
                     for n, a in (initializers or {}).items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    return onnx.shape_inference.infer_shapes(model, strict_mode=True)


def run_both(model, feeds, threads, exact=True):
    ours = byoc.compile(model, plugins=["cpu_llvm"],
                        plugin_options={"cpu_llvm": {"threads": threads, "min_work_per_thread": 0}})
    assert ours.parts and all(p.plugin == "cpu_llvm" for p in ours.parts), \
        [p.plugin for p in ours.parts]
    expected = compile_reference(model).run(feeds)
    got = ours.run(feeds)
    assert expected.keys() == got.keys()
    for key in expected:
        assert got[key].dtype == expected[key].dtype and got[key].shape == expected[key].shape
        if exact:
            np.testing.assert_array_equal(got[key], expected[key], err_msg=key)
        else:
            np.testing.assert_allclose(got[key], expected[key], rtol=2e-7, atol=1e-7,
                                       err_msg=key)
    return got


def check_op(op, feeds, threads, outputs=("y",), initializers=None, opset=17, exact=True,
             inputs=None, **attrs):
    node = helper.make_node(op, list(inputs or feeds), list(outputs), name="n", **attrs)
    run_both(build([node], feeds, outputs, initializers, opset), feeds, threads, exact)


def rand(shape, dtype=np.float32, seed=0):
    rng = np.random.default_rng(seed)
    if np.dtype(dtype) == np.bool_:
        return rng.random(shape) > 0.5
    if np.issubdtype(dtype, np.integer):
        return rng.integers(-100 if np.issubdtype(dtype, np.signedinteger) else 0, 100,
                            shape).astype(dtype)
    return rng.standard_normal(shape).astype(dtype)


# -- Transpose -----------------------------------------------------------------------------------

@pytest.mark.parametrize("threads", THREADS)
@pytest.mark.parametrize("shape, perm", [
    ((2, 3, 4, 5), [0, 2, 3, 1]), ((2, 5, 4, 3), [0, 3, 1, 2]),   # small NCHW <-> NHWC
    ((1, 37, 19, 21), [0, 2, 3, 1]), ((1, 19, 21, 37), [0, 3, 1, 2]),  # tiled, ragged tiles
    ((3, 4, 5), None), ((6, 7), [1, 0]), ((64, 48), [1, 0]), ((2, 3, 4, 5, 6), [4, 2, 0, 3, 1]),
    ((5,), [0]), ((1, 1, 8, 1), [3, 2, 1, 0]),
])
def test_transpose(threads, shape, perm):
    attrs = {} if perm is None else {"perm": perm}
    check_op("Transpose", {"x": rand(shape)}, threads, **attrs)


@pytest.mark.parametrize("dtype", [np.int8, np.int16, np.int64, np.bool_, np.float16,
                                   np.float64])
def test_transpose_dtypes(dtype):
    check_op("Transpose", {"x": rand((3, 20, 17), dtype)}, 2, perm=[2, 0, 1])


# -- Concat and Split ----------------------------------------------------------------------------

@pytest.mark.parametrize("threads", THREADS)
@pytest.mark.parametrize("axis, shapes", [
    (1, [(2, 3, 4), (2, 5, 4), (2, 1, 4)]), (0, [(1, 6), (3, 6)]), (-1, [(2, 3, 1), (2, 3, 7)]),
    (2, [(1, 2, 3, 4), (1, 2, 5, 4)]), (0, [(4,)] * 5), (1, [(2, 0, 3), (2, 4, 3)]),
])
def test_concat(threads, axis, shapes):
    feeds = {f"x{i}": rand(s, seed=i) for i, s in enumerate(shapes)}
    check_op("Concat", feeds, threads, axis=axis)


def test_concat_with_a_constant_input():
    x = rand((2, 3))
    node = helper.make_node("Concat", ["x", "c"], ["y"], axis=0)
    run_both(build([node], {"x": x}, ["y"], {"c": rand((4, 3), seed=5)}), {"x": x}, 2)


@pytest.mark.parametrize("threads", THREADS)
@pytest.mark.parametrize("shape, axis, split, outputs, opset, extra", [
    ((6, 4), 0, None, 3, 17, {}),
    ((2, 10, 3), 1, [2, 3, 5], 3, 17, {}),
    ((2, 10, 3), -1, [1, 2], 2, 17, {}),
    ((2, 7), 1, None, 3, 18, {"num_outputs": 3}),
    ((4, 6), 1, [4, 2], 2, 11, {}),        # split as an attribute
])
def test_split(threads, shape, axis, split, outputs, opset, extra):
    x = rand(shape)
    names = [f"y{i}" for i in range(outputs)]
    attrs = dict(axis=axis, **extra)
    inputs, inits = ["x"], {}
    if split is not None and opset >= 13:
        inputs.append("split")
        inits["split"] = np.array(split, np.int64)
    elif split is not None:
        attrs["split"] = split
    node = helper.make_node("Split", inputs, names, **attrs)
    run_both(build([node], {"x": x}, names, inits, opset), {"x": x}, threads)


# -- Slice ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("threads", THREADS)
@pytest.mark.parametrize("shape, starts, ends, axes, steps", [
    ((10, 8), [1, 2], [7, 8], None, None),
    ((10, 8), [-3], [100], [0], None),
    ((10, 8), [9, 7], [-11, 0], [0, 1], [-1, -2]),
    ((4, 5, 6), [0, 1], [6, 5], [2, 1], [2, 3]),
    ((4, 5, 6), [5], [-100], [-1], [-3]),
    ((3, 16), [0], [16], [1], [1]),
    ((3, 4), [2], [1], [0], [1]),          # empty
])
def test_slice(threads, shape, starts, ends, axes, steps):
    x = rand(shape)
    inits = {"starts": np.array(starts, np.int64), "ends": np.array(ends, np.int64)}
    inputs = ["x", "starts", "ends"]
    if axes is not None or steps is not None:
        inits["axes"] = np.array(axes if axes is not None else range(len(starts)), np.int64)
        inputs.append("axes")
    if steps is not None:
        inits["steps"] = np.array(steps, np.int64)
        inputs.append("steps")
    node = helper.make_node("Slice", inputs, ["y"])
    run_both(build([node], {"x": x}, ["y"], inits), {"x": x}, threads)


def test_slice_opset9_attributes():
    x = rand((5, 6))
    node = helper.make_node("Slice", ["x"], ["y"], starts=[1, -4], ends=[4, 100], axes=[0, 1])
    run_both(build([node], {"x": x}, ["y"], opset=9), {"x": x}, 2)


# -- Pad -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("threads", THREADS)
@pytest.mark.parametrize("mode", ["constant", "reflect", "edge", "wrap"])
@pytest.mark.parametrize("shape, pads", [
    ((1, 2, 5, 6), [0, 0, 1, 2, 0, 0, 3, 1]),
    ((3, 4), [2, 0, 1, 3]),
    ((3, 7), [0, -2, 1, -1]),             # negative pads crop
    ((2, 3), [0, 5, 0, 6]),               # reflect/wrap wider than the data
])
def test_pad(threads, mode, shape, pads):
    x = rand(shape)
    inits = {"pads": np.array(pads, np.int64)}
    inputs = ["x", "pads"]
    if mode == "constant":
        inits["value"] = np.array(1.5, np.float32)
        inputs.append("value")
    node = helper.make_node("Pad", inputs, ["y"], mode=mode)
    run_both(build([node], {"x": x}, ["y"], inits), {"x": x}, threads)


def test_pad_axes_and_integers():
    x = rand((3, 4, 5), np.int32)
    inits = {"pads": np.array([1, 2, 0, 3], np.int64), "value": np.array(-7, np.int32),
             "axes": np.array([0, -1], np.int64)}
    node = helper.make_node("Pad", ["x", "pads", "value", "axes"], ["y"])
    run_both(build([node], {"x": x}, ["y"], inits, opset=18), {"x": x}, 2)


def test_pad_opset9_attributes():
    x = rand((2, 3))
    node = helper.make_node("Pad", ["x"], ["y"], pads=[1, 1, 1, 2], value=-2.0)
    run_both(build([node], {"x": x}, ["y"], opset=9), {"x": x}, 1)


# -- Gather --------------------------------------------------------------------------------------

@pytest.mark.parametrize("threads", THREADS)
@pytest.mark.parametrize("index_dtype", [np.int32, np.int64])
@pytest.mark.parametrize("shape, axis, indices", [
    ((5, 4), 0, [[0, 4], [-1, 2]]), ((3, 6, 2), 1, [5, -6, 0, 3]), ((3, 6, 2), -1, [1]),
    ((7,), 0, 3), ((2, 3, 4), 2, [[3, -1, 0]]),
])
def test_gather_runtime_indices(threads, index_dtype, shape, axis, indices):
    feeds = {"x": rand(shape), "i": np.array(indices, index_dtype)}
    check_op("Gather", feeds, threads, axis=axis)


def test_gather_constant_indices():
    x = rand((6, 5))
    node = helper.make_node("Gather", ["x", "i"], ["y"], axis=1)
    model = build([node], {"x": x}, ["y"], {"i": np.array([[4, -5], [2, 2]], np.int64)})
    run_both(model, {"x": x}, 2)


# -- Expand, Tile --------------------------------------------------------------------------------

@pytest.mark.parametrize("threads", THREADS)
@pytest.mark.parametrize("shape, target", [
    ((3, 1), [3, 4]), ((1, 4), [2, 3, 4]), ((2, 1, 3), [1, 5, 1]), ((1,), [7]), ((4,), [1])])
def test_expand(threads, shape, target):
    x = rand(shape)
    node = helper.make_node("Expand", ["x", "shape"], ["y"])
    run_both(build([node], {"x": x}, ["y"], {"shape": np.array(target, np.int64)}),
             {"x": x}, threads)


@pytest.mark.parametrize("threads", THREADS)
@pytest.mark.parametrize("shape, repeats", [((2, 3), [2, 3]), ((3,), [4]), ((2, 1, 3), [1, 5, 1]),
                                            ((1, 2, 2), [3, 1, 2])])
def test_tile(threads, shape, repeats):
    x = rand(shape, np.int64)
    node = helper.make_node("Tile", ["x", "r"], ["y"])
    run_both(build([node], {"x": x}, ["y"], {"r": np.array(repeats, np.int64)}),
             {"x": x}, threads)


# -- DepthToSpace, SpaceToDepth ------------------------------------------------------------------

@pytest.mark.parametrize("threads", THREADS)
@pytest.mark.parametrize("mode", ["DCR", "CRD"])
@pytest.mark.parametrize("shape, block", [((1, 8, 3, 4), 2), ((2, 18, 2, 3), 3),
                                          ((1, 4, 5, 5), 1)])
def test_depth_to_space(threads, mode, shape, block):
    check_op("DepthToSpace", {"x": rand(shape)}, threads, blocksize=block, mode=mode)


@pytest.mark.parametrize("threads", THREADS)
@pytest.mark.parametrize("shape, block", [((1, 2, 4, 6), 2), ((2, 3, 6, 3), 3)])
def test_space_to_depth(threads, shape, block):
    check_op("SpaceToDepth", {"x": rand(shape)}, threads, blocksize=block)


# -- Resize, Upsample ----------------------------------------------------------------------------

RESIZE_CASES = [
    ((1, 2, 4, 5), [1, 1, 2, 2], None),
    ((1, 2, 4, 5), [1, 1, 0.5, 0.6], None),
    ((2, 1, 5, 3), [1, 1, 1.7, 2.5], None),
    ((1, 3, 7, 6), None, [1, 3, 3, 11]),
    ((1, 1, 6, 6), None, [1, 1, 6, 9]),
]


@pytest.mark.parametrize("threads", THREADS)
@pytest.mark.parametrize("mode", ["nearest", "linear"])
@pytest.mark.parametrize("coordinate", ["half_pixel", "asymmetric", "align_corners",
                                        "pytorch_half_pixel"])
@pytest.mark.parametrize("shape, scales, sizes", RESIZE_CASES)
def test_resize(threads, mode, coordinate, shape, scales, sizes):
    x = rand(shape)
    inits = {"roi": np.zeros(0, np.float32)}
    if scales is not None:
        inits["scales"] = np.array(scales, np.float32)
        inputs = ["x", "roi", "scales"]
    else:
        inits["sizes"] = np.array(sizes, np.int64)
        inputs = ["x", "roi", "", "sizes"]
    node = helper.make_node("Resize", inputs, ["y"], mode=mode,
                            coordinate_transformation_mode=coordinate)
    run_both(build([node], {"x": x}, ["y"], inits), {"x": x}, threads)


@pytest.mark.parametrize("nearest_mode", ["round_prefer_floor", "round_prefer_ceil", "floor",
                                          "ceil"])
def test_resize_nearest_modes(nearest_mode):
    x = rand((1, 2, 5, 7))
    node = helper.make_node("Resize", ["x", "", "scales"], ["y"], mode="nearest",
                            nearest_mode=nearest_mode)
    model = build([node], {"x": x}, ["y"], {"scales": np.array([1, 1, 1.5, 0.7], np.float32)},
                  opset=13)
    run_both(model, {"x": x}, 2)


@pytest.mark.parametrize("dtype", [np.uint8, np.int32, np.float64])
def test_resize_linear_other_dtypes(dtype):
    x = rand((1, 1, 4, 6), dtype)
    node = helper.make_node("Resize", ["x", "", "scales"], ["y"], mode="linear")
    model = build([node], {"x": x}, ["y"], {"scales": np.array([1, 1, 1.5, 2.5], np.float32)},
                  opset=13)
    run_both(model, {"x": x}, 2)


def test_resize_axes_and_exclude_outside():
    x = rand((2, 5, 6))
    node = helper.make_node("Resize", ["x", "", "", "sizes"], ["y"], mode="linear",
                            axes=[2, 1], exclude_outside=1)
    model = build([node], {"x": x}, ["y"], {"sizes": np.array([9, 3], np.int64)}, opset=19)
    run_both(model, {"x": x}, 2)


def test_resize_opset10_and_upsample():
    x = rand((1, 2, 3, 4))
    scales = {"s": np.array([1, 1, 2, 3], np.float32)}
    for opset, op in [(10, "Resize"), (9, "Upsample")]:
        for mode in ["nearest", "linear"]:
            node = helper.make_node(op, ["x", "s"], ["y"], mode=mode)
            run_both(build([node], {"x": x}, ["y"], scales, opset=opset), {"x": x}, 2)


# -- Shape, ConstantOfShape, Range ---------------------------------------------------------------

def _run_partition(node, types, feeds, threads):
    """Lower one node as a partition directly (these ops fold away in byoc.compile)."""
    from byoc.core.ir import Graph
    from byoc.plugins.api import Partition
    from byoc_cpu_llvm import plugin
    graph = Graph(nodes=[node], inputs=list(feeds), outputs=list(node.outputs), types=types,
                  opsets={"": 17})
    part = Partition("p", "cpu_llvm", [node], list(feeds), list(node.outputs), types, {"": 17})
    payload = plugin.byoc_codegen_partition(part, plugin.byoc_lower_partition(part, graph, {}))
    runtime = plugin.byoc_runtime_create(payload, part.signature(),
                                         {"threads": threads, "min_work_per_thread": 0})
    return runtime.run(feeds)


@pytest.mark.parametrize("threads", THREADS)
@pytest.mark.parametrize("start, end", [(0, None), (1, 3), (-2, None), (0, -1), (3, 1)])
def test_shape(threads, start, end):
    from byoc.core.ir import Node, TensorType
    attrs = {"start": start} if end is None else {"start": start, "end": end}
    expected = np.array((2, 3, 4, 5)[start:end], np.int64)
    node = Node("Shape", ["x"], ["y"], attrs)
    types = {"x": TensorType(np.float32, (2, 3, 4, 5)), "y": TensorType(np.int64, expected.shape)}
    got = _run_partition(node, types, {"x": rand((2, 3, 4, 5))}, threads)["y"]
    np.testing.assert_array_equal(got, expected)
    assert got.dtype == np.int64


@pytest.mark.parametrize("threads", THREADS)
@pytest.mark.parametrize("value", [None, np.array([3], np.int32), np.array([-0.5], np.float64)])
def test_constant_of_shape(threads, value):
    # Large enough not to be folded into a constant.
    attrs = {} if value is None else {"value": numpy_helper.from_array(value)}
    node = helper.make_node("ConstantOfShape", ["shape"], ["y"], **attrs)
    model = build([node], {}, ["y"], {"shape": np.array([300, 250], np.int64)})
    compiled = byoc.compile(model, plugins=["cpu_llvm"],
                            plugin_options={"cpu_llvm": {"threads": threads,
                                                        "min_work_per_thread": 0}})
    assert [p.plugin for p in compiled.parts] == ["cpu_llvm"]
    np.testing.assert_array_equal(compiled.run({})["y"], compile_reference(model).run({})["y"])
    assert compiled.run({})["y"].dtype == compile_reference(model).run({})["y"].dtype


@pytest.mark.parametrize("threads", THREADS)
@pytest.mark.parametrize("start, limit, delta, dtype", [
    (0, 70000, 1, np.int64), (5, -300000, -3, np.int32), (0.5, 7000.0, 0.1, np.float32),
    (-1.0, 100.0, 0.001, np.float64)])
def test_range(threads, start, limit, delta, dtype):
    inits = {"s": np.array(start, dtype), "l": np.array(limit, dtype), "d": np.array(delta, dtype)}
    node = helper.make_node("Range", ["s", "l", "d"], ["y"])
    model = build([node], {}, ["y"], inits)
    compiled = byoc.compile(model, plugins=["cpu_llvm"],
                            plugin_options={"cpu_llvm": {"threads": threads,
                                                        "min_work_per_thread": 0}})
    assert [p.plugin for p in compiled.parts] == ["cpu_llvm"]
    np.testing.assert_array_equal(compiled.run({})["y"], compile_reference(model).run({})["y"])


# -- Floor, Ceil, Round, Sign, Sin, Cos, Softsign ------------------------------------------------

SPECIAL = np.array([0.5, 1.5, 2.5, -0.5, -1.5, -2.5, 0.0, -0.0, 3.7, -3.7, np.nan, np.inf,
                    -np.inf, 1e30, -1e-30], np.float32)


@pytest.mark.filterwarnings("ignore:invalid value encountered")
@pytest.mark.parametrize("threads", THREADS)
@pytest.mark.parametrize("op", ["Floor", "Ceil", "Round", "Sign", "Softsign", "Sin", "Cos"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_scalar_ops(threads, op, dtype):
    x = np.concatenate([SPECIAL, rand(50, seed=3) * 10]).astype(dtype).reshape(5, 13)
    # numpy's float32 sin and cos are its own SIMD approximations (not correctly rounded);
    # cpu_llvm rounds libm's double result, so they may differ in the last bit.
    exact = not (op in ("Sin", "Cos") and dtype == np.float32)
    check_op(op, {"x": x}, threads, exact=exact)


@pytest.mark.parametrize("dtype", [np.int32, np.int8, np.uint8])
def test_sign_integers(dtype):
    check_op("Sign", {"x": rand((4, 9), dtype)}, 2)


def test_movement_feeds_fused_elementwise():
    """A chain: Transpose -> Relu -> Concat with a Slice -> Sign; all on cpu_llvm."""
    x = rand((2, 3, 4, 5))
    nodes = [helper.make_node("Transpose", ["x"], ["t"], perm=[0, 2, 3, 1]),
             helper.make_node("Relu", ["t"], ["r"]),
             helper.make_node("Slice", ["t", "s", "e", "a"], ["s1"]),
             helper.make_node("Concat", ["r", "s1"], ["c"], axis=3),
             helper.make_node("Sign", ["c"], ["y"])]
    inits = {"s": np.array([1], np.int64), "e": np.array([3], np.int64),
             "a": np.array([3], np.int64)}
    for threads in THREADS:
        run_both(build(nodes, {"x": x}, ["y"], inits), {"x": x}, threads)
