"""cpu_llvm's GatherElements, GatherND, TopK, GroupNormalization, RMSNormalization,
MeanVarianceNormalization and LpNormalization kernels against the reference interpreter, on
1 and 2 threads, with every node run on cpu_llvm; gathers and TopK must match exactly."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

import byoc
from byoc.compiled import FallbackWarning
from byoc.core.dtypes import to_onnx
from byoc.core.ir import Graph, Node, TensorType
from byoc.errors import ExecutionError
from byoc.testing import compile_reference, make_model
from byoc_cpu_llvm.kernels import supports

THREADS = [1, 2]
RNG = np.random.default_rng(11)


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("BYOC_CACHE_DIR", str(tmp_path))


def compile_on_cpu_llvm(nodes, feeds, outputs, initializers=None, opset=17, threads=1):
    model = make_model(nodes, [(n, to_onnx(a.dtype), list(a.shape)) for n, a in feeds.items()],
                       [(o, TensorProto.UNDEFINED, None) for o in outputs], initializers,
                       opset=opset)
    # Not strict: onnx cannot infer through the function bodies of some of these ops at
    # every opset (MeanVarianceNormalization-13, GroupNormalization-18); byoc's importer can.
    model = onnx.shape_inference.infer_shapes(model)
    compiled = byoc.compile(model, plugins=["cpu_llvm"], plugin_options={
        "cpu_llvm": {"threads": threads, "min_work_per_thread": 0}})
    assert compiled.parts and all(p.plugin == "cpu_llvm" for p in compiled.parts), \
        [(p.plugin, p.ops) for p in compiled.parts]
    return model, compiled


def check(op, feeds, threads, outputs=("y",), initializers=None, opset=17, exact=False,
          rtol=1e-5, atol=1e-6, after=None, **attrs):
    """One ``op`` node (optionally followed by the elementwise op ``after``, which fuses
    into its kernel) on cpu_llvm against the reference."""
    names = list(feeds) + list(initializers or {})
    nodes = [helper.make_node(op, names, list(outputs), name="n", **attrs)]
    if after:
        nodes.append(helper.make_node(after, [outputs[0]], ["z"], name="after"))
        outputs = ("z",) + tuple(outputs[1:])
    model, compiled = compile_on_cpu_llvm(nodes, feeds, outputs, initializers, opset, threads)
    expected = compile_reference(model).run(feeds)
    got = compiled.run(feeds)
    for key in expected:
        assert got[key].dtype == expected[key].dtype and got[key].shape == expected[key].shape
        if exact:
            np.testing.assert_array_equal(got[key], expected[key], err_msg=key)
        else:
            np.testing.assert_allclose(got[key], expected[key], rtol=rtol, atol=atol,
                                       err_msg=key)


def values(shape, dtype):
    dtype = np.dtype(dtype)
    if dtype.kind == "f":
        return RNG.standard_normal(shape).astype(dtype)
    info = np.iinfo(dtype)
    return RNG.integers(info.min, info.max, shape, dtype=dtype, endpoint=True)


def node_support(op, shapes, dtype=np.float32, opset=21, **attrs) -> str | None:
    names = [f"v{i}" for i in range(len(shapes))]
    graph = Graph(types={n: TensorType(np.dtype(dtype), s) for n, s in zip(names, shapes)},
                  opsets={"": opset})
    node = Node(op, names[:-1], names[-1:], attrs)
    return supports(node, graph)


# -- GatherElements -------------------------------------------------------------------------------


@pytest.mark.parametrize("threads", THREADS)
@pytest.mark.parametrize("shape, index_shape, axis", [
    ((7,), (11,), 0), ((5, 6), (3, 6), 0), ((5, 6), (4, 9), 1), ((3, 4, 5), (2, 4, 3), -2),
    ((2, 3, 40), (2, 2, 70), 2), ((4, 3, 2), (9, 1, 2), 0),
])
@pytest.mark.parametrize("dtype, index_dtype", [(np.float32, np.int64), (np.int8, np.int32),
                                                 (np.float64, np.int32), (np.uint16, np.int64)])
def test_gather_elements(threads, shape, index_shape, axis, dtype, index_dtype):
    length = shape[axis]
    indices = RNG.integers(-length, length, index_shape).astype(index_dtype)
    check("GatherElements", {"data": values(shape, dtype), "indices": indices}, threads,
          opset=13, exact=True, axis=axis)


def test_gather_elements_out_of_range_index_faults():
    indices = np.array([[0, 1], [2, 0]], np.int64)
    _, compiled = compile_on_cpu_llvm(
        [helper.make_node("GatherElements", ["data", "indices"], ["y"], name="pick")],
        {"data": values((2, 2), np.float32), "indices": indices}, ["y"], opset=13)
    # The kernel's fault hands the run to the reference, whose error names the index.
    with pytest.warns(FallbackWarning, match="node 'pick' .*GatherElements.* outside the axis"):
        with pytest.raises(ExecutionError, match=r"index 2 at \[1, 0\]"):
            compiled.run({"data": values((2, 2), np.float32), "indices": indices})


# -- GatherND -------------------------------------------------------------------------------------


@pytest.mark.parametrize("threads", THREADS)
@pytest.mark.parametrize("shape, index_shape, batch_dims", [
    ((6, 7), (5, 2), 0), ((6, 7), (4, 1), 0), ((4, 5, 6), (2, 3, 3), 0), ((3, 4, 5), (3, 6, 1), 1),
    ((2, 3, 4, 5), (2, 3, 2), 2), ((2, 3, 4, 50), (2, 3, 7, 1), 2), ((3, 4), (3, 0), 1),
])
@pytest.mark.parametrize("dtype", [np.float32, np.int64, np.uint8])
def test_gather_nd(threads, shape, index_shape, batch_dims, dtype):
    bounds = np.array(shape[batch_dims:batch_dims + index_shape[-1]], np.int64)
    indices = (RNG.integers(0, 2 ** 20, index_shape) % (2 * bounds)) - bounds
    check("GatherND", {"data": values(shape, dtype), "indices": indices.astype(np.int64)},
          threads, opset=13, exact=True, batch_dims=batch_dims)


def test_gather_nd_out_of_range_index_faults():
    feeds = {"data": values((3, 4), np.float32), "indices": np.array([[1, 4]], np.int64)}
    _, compiled = compile_on_cpu_llvm(
        [helper.make_node("GatherND", ["data", "indices"], ["y"], name="pick")], feeds, ["y"],
        opset=13)
    with pytest.warns(FallbackWarning, match="node 'pick' .*GatherND.* outside the axis"):
        with pytest.raises(ExecutionError, match=r"index 4 at \[0, 1\]"):
            compiled.run(feeds)


# -- TopK -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("threads", THREADS)
@pytest.mark.parametrize("largest", [1, 0])
@pytest.mark.parametrize("shape, axis, k", [
    ((13,), 0, 1), ((13,), 0, 13), ((4, 30), -1, 6), ((30, 4), 0, 5), ((2, 9, 3), 1, 8),
    ((3, 200), 1, 64),
])
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int32, np.uint8, np.int64,
                                   np.uint64])
def test_top_k(threads, largest, shape, axis, k, dtype):
    if np.dtype(dtype).kind == "f":
        x = RNG.integers(-3, 4, shape).astype(dtype)  # many ties
        x[RNG.random(shape) < 0.1] = np.nan
        x[RNG.random(shape) < 0.05] = -np.inf
    else:
        x = values(shape, dtype)
        x[RNG.random(shape) < 0.5] = x.reshape(-1)[0]  # many ties
    check("TopK", {"x": x}, threads, outputs=("values", "indices"),
          initializers={"k": np.array([k], np.int64)}, opset=11, exact=True, axis=axis,
          largest=largest)


@pytest.mark.parametrize("threads", THREADS)
def test_top_k_opset_9_attribute_and_long_rows(threads):
    check("TopK", {"x": values((3, 5000), np.float32)}, threads, outputs=("values", "indices"),
          opset=9, exact=True, k=100)


# -- normalizations -------------------------------------------------------------------------------


@pytest.mark.parametrize("threads", THREADS)
@pytest.mark.parametrize("shape, groups", [((2, 6, 5, 4), 3), ((1, 8, 33), 8), ((3, 8), 2),
                                           ((2, 4, 2, 3, 5), 1)])
# Only opset 21: onnx's checker (and so byoc's importer) refuses GroupNormalization-18 models,
# whose form the spec deprecated.
@pytest.mark.parametrize("opset", [21])
def test_group_normalization(threads, shape, groups, opset):
    count = shape[1] if opset >= 21 else groups
    init = {"scale": values((count,), np.float32), "bias": values((count,), np.float32)}
    check("GroupNormalization", {"x": values(shape, np.float32) + 2}, threads,
          initializers=init, opset=opset, rtol=1e-4, atol=1e-5, num_groups=groups,
          epsilon=1e-3, after="Relu")


@pytest.mark.parametrize("threads", THREADS)
@pytest.mark.parametrize("shape, axis, scale_shape", [
    ((4, 64), -1, (64,)), ((2, 3, 5), 1, (3, 5)), ((2, 3, 5), -2, (3, 5)),
    ((2, 3, 70), 0, (2, 3, 70)), ((6, 19), -1, ()), ((5, 1, 24), -1, (1, 1, 24)),
])
def test_rms_normalization(threads, shape, axis, scale_shape):
    check("RMSNormalization", {"x": values(shape, np.float32) * 3}, threads,
          initializers={"scale": values(scale_shape, np.float32)}, opset=23, rtol=1e-5,
          axis=axis, epsilon=1e-4, after="Neg")


@pytest.mark.parametrize("threads", THREADS)
@pytest.mark.parametrize("shape, axes", [
    ((2, 3, 4, 5), None), ((1, 3, 8, 8), None), ((2, 3, 4, 5), [1]), ((2, 3, 4, 5), [0, 1]),
    ((2, 3, 4, 5), [-1]), ((2, 3, 4, 5), [1, 3]), ((6, 50), [0, 1]),
])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_mean_variance_normalization(threads, shape, axes, dtype):
    attrs = {} if axes is None else {"axes": axes}
    check("MeanVarianceNormalization", {"x": values(shape, dtype) + 1}, threads, opset=13,
          rtol=1e-4, atol=1e-5, after="Relu", **attrs)


@pytest.mark.parametrize("threads", THREADS)
@pytest.mark.parametrize("p", [1, 2])
@pytest.mark.parametrize("shape, axis", [((5, 40), -1), ((5, 40), 0), ((2, 3, 700), 1),
                                         ((2, 3, 4, 5), 1), ((9,), 0)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_lp_normalization(threads, p, shape, axis, dtype):
    x = values(shape, dtype)
    x[(0,) * len(shape)] = 0
    x[(1,) + (slice(None),) * (len(shape) - 1)] = 0  # some norms are 0
    check("LpNormalization", {"x": x}, threads, opset=22, p=p, axis=axis, after="Abs")


# -- what cpu_llvm declines -----------------------------------------------------------------------


@pytest.mark.parametrize("op, shapes, dtype, attrs, reason", [
    ("GroupNormalization", [(2, 4, 3), (4,), (4,), (2, 4, 3)], np.float16, {"num_groups": 2},
     "float32 only"),
    ("GroupNormalization", [(2, 4, 3), (4,), (4,), (2, 4, 3)], np.float32,
     {"num_groups": 2, "stash_type": 11}, "stash_type FLOAT"),
    ("RMSNormalization", [(2, 4), (2, 1), (2, 4)], np.float32, {}, "shaped like the normalized"),
    ("TopK", [(3, 0), (1,), (3, 0)], np.float32, {}, "empty"),
    ("GatherElements", [(3, 4), (3, 4), (3, 4)], np.float32, {}, "int32 or int64 indices"),
    ("LpNormalization", [(3, 4), (3, 4)], np.float16, {}, "does not handle float16"),
])
def test_declines_with_a_reason(op, shapes, dtype, attrs, reason):
    assert reason in node_support(op, shapes, dtype, **attrs)
