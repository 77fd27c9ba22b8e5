"""cpu_llvm's pooling, reduction, softmax and normalization kernels against the reference
interpreter, on 1 and 2 threads, with every node run on cpu_llvm."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from cpu_llvm_checks import assert_outputs_match, compile_alone
from onnx import TensorProto, helper

import byoc
from byoc.core.ir import Graph, Node, TensorType
from byoc.testing import compile_reference, make_model
from byoc_cpu_llvm.kernels import supports

THREADS = [1, 2]
ONNX_TYPES = {np.dtype(np.float32): TensorProto.FLOAT, np.dtype(np.float64): TensorProto.DOUBLE,
              np.dtype(np.int64): TensorProto.INT64, np.dtype(np.int32): TensorProto.INT32,
              np.dtype(np.int8): TensorProto.INT8, np.dtype(np.uint8): TensorProto.UINT8}
RNG = np.random.default_rng(7)


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("BYOC_CACHE_DIR", str(tmp_path))


def build(nodes, feeds, outputs, initializers=None, opset=17):
    """A model reading ``feeds`` (graph inputs); output types come from ONNX inference."""
    model = make_model(nodes, [(n, ONNX_TYPES[a.dtype], list(a.shape)) for n, a in feeds.items()],
                       [(o, TensorProto.UNDEFINED, None) for o in outputs], initializers,
                       opset=opset)
    return onnx.shape_inference.infer_shapes(model, strict_mode=True)


def run_both(model, feeds, threads, exact=False, rtol=1e-5, atol=1e-6):
    """:func:`cpu_llvm_checks.run_both` within ``rtol``/``atol`` (or ``exact``), returning
    the compiled model."""
    ours = compile_alone(model, threads)
    expected = compile_reference(model).run(feeds)
    assert_outputs_match(ours.run(feeds), expected, *((0.0, 0.0) if exact else (rtol, atol)))
    return ours


def check(op, feeds, threads, outputs=("y",), initializers=None, opset=17, inputs=None,
          exact=False, rtol=1e-5, atol=1e-6, **attrs):
    node = helper.make_node(op, list(inputs or feeds), list(outputs), name="n", **attrs)
    model = build([node], feeds, outputs, initializers, opset)
    return run_both(model, feeds, threads, exact=exact, rtol=rtol, atol=atol)


def randn(*shape, dtype=np.float32):
    return RNG.standard_normal(shape).astype(dtype)


def positive(*shape):
    return RNG.uniform(0.5, 1.5, shape).astype(np.float32)


# -- pooling --------------------------------------------------------------------------------------

POOLS = [
    {"kernel_shape": [3, 3]},
    {"kernel_shape": [3, 3], "strides": [2, 2], "pads": [1, 1, 1, 1]},
    {"kernel_shape": [2, 2], "strides": [2, 2]},
    {"kernel_shape": [3, 3], "strides": [2, 2], "ceil_mode": 1},
    {"kernel_shape": [3, 2], "strides": [1, 2], "pads": [1, 0, 2, 0], "ceil_mode": 1},
    {"kernel_shape": [3, 3], "auto_pad": "SAME_UPPER"},
    {"kernel_shape": [4, 4], "strides": [2, 2], "auto_pad": "SAME_LOWER"},
    {"kernel_shape": [2, 3], "auto_pad": "VALID", "strides": [1, 2]},
    {"kernel_shape": [5, 5], "pads": [2, 2, 2, 2]},
    {"kernel_shape": [2, 2], "strides": [5, 5], "pads": [1, 1, 1, 1]},
    {"kernel_shape": [1, 7], "pads": [0, 3, 0, 3]},
]


@pytest.mark.parametrize("threads", THREADS)
@pytest.mark.parametrize("attrs", POOLS)
@pytest.mark.parametrize("shape", [(2, 3, 9, 11), (1, 2, 32, 40)])
def test_maxpool(shape, attrs, threads):
    check("MaxPool", {"x": randn(*shape)}, threads, exact=True, **attrs)


@pytest.mark.parametrize("threads", THREADS)
@pytest.mark.parametrize("attrs", [{"kernel_shape": [3, 3], "dilations": [2, 2]},
                                   {"kernel_shape": [2, 3], "dilations": [3, 1],
                                    "pads": [2, 1, 2, 1], "strides": [1, 2]}])
def test_maxpool_dilations(attrs, threads):
    check("MaxPool", {"x": randn(2, 2, 13, 17)}, threads, exact=True, **attrs)


@pytest.mark.parametrize("threads", THREADS)
@pytest.mark.parametrize("dtype", [np.int8, np.uint8, np.float64])
def test_maxpool_dtypes(dtype, threads):
    x = RNG.integers(0, 120, (2, 3, 10, 70)).astype(dtype)
    check("MaxPool", {"x": x}, threads, exact=True, kernel_shape=[3, 3], pads=[1, 1, 1, 1])
    check("MaxPool", {"x": x}, threads, exact=True, kernel_shape=[2, 2], strides=[2, 2])


@pytest.mark.parametrize("threads", THREADS)
def test_maxpool_1d_and_nan(threads):
    check("MaxPool", {"x": randn(2, 3, 50)}, threads, exact=True, kernel_shape=[3], strides=[2],
          pads=[1, 1])
    x = randn(1, 2, 6, 40)
    x[0, 0, 2, ::3] = np.nan
    x[0, 1, 1:4, 5] = np.nan
    check("MaxPool", {"x": x}, threads, exact=True, kernel_shape=[3, 3])
    check("MaxPool", {"x": x}, threads, exact=True, kernel_shape=[2, 2], strides=[2, 2])


@pytest.mark.parametrize("threads", THREADS)
@pytest.mark.parametrize("attrs", POOLS)
@pytest.mark.parametrize("include", [0, 1])
def test_averagepool(attrs, include, threads):
    check("AveragePool", {"x": randn(2, 3, 9, 35)}, threads, exact=True,
          count_include_pad=include, **attrs)


@pytest.mark.parametrize("threads", THREADS)
def test_averagepool_1d_dilated_float64(threads):
    check("AveragePool", {"x": randn(2, 3, 40)}, threads, exact=True, kernel_shape=[4],
          pads=[1, 2], count_include_pad=1)
    check("AveragePool", {"x": randn(1, 2, 12, 33, dtype=np.float64)}, threads, exact=True,
          kernel_shape=[3, 3], strides=[1, 2], pads=[1, 1, 1, 1])
    check("AveragePool", {"x": randn(1, 2, 12, 33)}, threads, opset=19, exact=True,
          kernel_shape=[3, 3], dilations=[2, 2], pads=[1, 1, 1, 1], ceil_mode=1)


@pytest.mark.parametrize("threads", THREADS)
@pytest.mark.parametrize("shape", [(2, 3, 7, 9), (1, 5, 100), (2, 2, 3, 4, 5), (1, 3, 1, 1)])
def test_global_pools(shape, threads):
    check("GlobalAveragePool", {"x": randn(*shape)}, threads)
    check("GlobalMaxPool", {"x": randn(*shape)}, threads, exact=True)


@pytest.mark.parametrize("threads", THREADS)
def test_global_maxpool_nan(threads):
    x = randn(2, 3, 5, 7)
    x[1, 2, 3, 4] = np.nan
    check("GlobalMaxPool", {"x": x}, threads, exact=True)


def test_pool_declines():
    def reason(op, shape, outputs=("y",), **attrs):
        node = helper.make_node(op, ["x"], list(outputs), name="n", **attrs)
        model = build([node], {"x": np.zeros(shape, np.float32)}, outputs)
        graph = byoc.import_model(model)
        return supports(graph.nodes[0], graph)

    assert "no input element" in reason("MaxPool", (1, 1, 4, 4), kernel_shape=[2, 2],
                                        pads=[2, 2, 0, 0])
    assert reason("MaxPool", (1, 1, 4, 4), ("y", "i"), kernel_shape=[2, 2]) is None
    assert reason("MaxPool", (1, 1, 4, 4, 4), kernel_shape=[2, 2, 2]) is None


# -- reductions -----------------------------------------------------------------------------------

REDUCE_AXES = [None, [0], [1], [-1], [0, 2], [1, 2], [0, 1, 2, 3], [2, 3], [0, 3]]


@pytest.mark.parametrize("threads", THREADS)
@pytest.mark.parametrize("axes", REDUCE_AXES)
@pytest.mark.parametrize("keepdims", [0, 1])
@pytest.mark.parametrize("op", ["ReduceSum", "ReduceMean", "ReduceMax", "ReduceMin",
                                "ReduceProd", "ReduceL2"])
def test_reduce_axes_input(op, axes, keepdims, threads):
    """Opset 18: axes as a constant input."""
    x = positive(3, 4, 5, 67) if op != "ReduceProd" else RNG.uniform(0.9, 1.1, (3, 4, 5, 67)
                                                                     ).astype(np.float32)
    init = {} if axes is None else {"axes": np.array(axes, np.int64)}
    inputs = ["x"] + ([] if axes is None else ["axes"])
    check(op, {"x": x}, threads, initializers=init, inputs=inputs, opset=18,
          keepdims=keepdims, exact=op in ("ReduceMax", "ReduceMin"), rtol=2e-5)


@pytest.mark.parametrize("threads", THREADS)
@pytest.mark.parametrize("op", ["ReduceSum", "ReduceMean", "ReduceMax", "ReduceL2"])
def test_reduce_axes_attribute(op, threads):
    """Opset 11: axes as an attribute (ReduceSum too before 13)."""
    x = positive(2, 6, 33)
    check(op, {"x": x}, threads, opset=11, axes=[1])
    check(op, {"x": x}, threads, opset=11, axes=[0, 2], keepdims=0)
    check(op, {"x": x}, threads, opset=11)


@pytest.mark.parametrize("threads", THREADS)
@pytest.mark.parametrize("op", ["ReduceSum", "ReduceMean", "ReduceMax", "ReduceL2"])
def test_reduce_noop_with_empty_axes(op, threads):
    x = randn(3, 4, 5)
    check(op, {"x": x}, threads, opset=18, noop_with_empty_axes=1)
    check(op, {"x": x}, threads, opset=18, noop_with_empty_axes=0)


INT_REDUCTIONS = [(op, dtype) for op in ("ReduceSum", "ReduceMax", "ReduceMin", "ReduceProd")
                  for dtype in (np.int32, np.int64)]
INT_REDUCTIONS += [(op, dtype) for op in ("ReduceMax", "ReduceMin")
                   for dtype in (np.int8, np.uint8)]


@pytest.mark.parametrize("threads", THREADS)
@pytest.mark.parametrize("op,dtype", INT_REDUCTIONS)
def test_reduce_ints(op, dtype, threads):
    low = 0 if dtype == np.uint8 else -3
    x = RNG.integers(low, 4, (3, 5, 40)).astype(dtype)
    axes = np.array([2], np.int64)
    check(op, {"x": x}, threads, initializers={"axes": axes}, inputs=["x", "axes"], opset=18,
          exact=True)
    axes = np.array([0, 1], np.int64)
    check(op, {"x": x}, threads, initializers={"axes": axes}, inputs=["x", "axes"], opset=18,
          exact=True)


@pytest.mark.parametrize("threads", THREADS)
def test_reduce_max_min_nan(threads):
    x = randn(4, 40)
    x[1, 7] = np.nan
    x[2, :] = np.nan
    for op in ("ReduceMax", "ReduceMin"):
        for axes in ([0], [1]):
            check(op, {"x": x}, threads, opset=18, initializers={"a": np.array(axes)},
                  inputs=["x", "a"], exact=True)


def test_reduce_declines():
    f32, i64 = np.dtype(np.float32), np.dtype(np.int64)
    graph = Graph(nodes=[Node("ReduceSum", ["x", "a"], ["y"], name="n"),
                         Node("ReduceMean", ["i"], ["m"], name="m")],
                  inputs=["x", "a", "i"], outputs=["y", "m"],
                  types={"x": TensorType(f32, (2, 3)), "a": TensorType(i64, (1,)),
                         "y": TensorType(f32, (1, 3)), "i": TensorType(np.dtype(np.int32), (4,)),
                         "m": TensorType(np.dtype(np.int32), (1,))},
                  opsets={"": 18})
    assert "non-constant" in supports(graph.nodes[0], graph)
    assert "float" in supports(graph.nodes[1], graph)
    graph.constants["a"] = np.array([0], np.int64)
    assert supports(graph.nodes[0], graph) is None


@pytest.mark.parametrize("threads", THREADS)
@pytest.mark.parametrize("axis", [0, 1, 2, -1])
@pytest.mark.parametrize("keepdims", [0, 1])
@pytest.mark.parametrize("last", [0, 1])
def test_argmax(axis, keepdims, last, threads):
    x = RNG.integers(0, 5, (3, 6, 17)).astype(np.float32)  # many ties
    check("ArgMax", {"x": x}, threads, exact=True, axis=axis, keepdims=keepdims,
          select_last_index=last)
    xi = RNG.integers(-3, 3, (3, 6, 17)).astype(np.int32)
    check("ArgMax", {"x": xi}, threads, exact=True, axis=axis, keepdims=keepdims,
          select_last_index=last)


@pytest.mark.parametrize("threads", THREADS)
@pytest.mark.parametrize("last", [0, 1])
def test_argmax_nan(last, threads):
    x = randn(3, 9)
    x[0, 2] = x[0, 6] = np.nan
    x[1, 0] = np.nan
    check("ArgMax", {"x": x}, threads, exact=True, axis=1, select_last_index=last)


# -- softmax --------------------------------------------------------------------------------------

@pytest.mark.parametrize("threads", THREADS)
@pytest.mark.parametrize("op", ["Softmax", "LogSoftmax"])
@pytest.mark.parametrize("opset,axis", [(13, None), (13, 0), (13, 1), (13, -2), (11, None),
                                        (11, 0), (11, 2), (11, -1)])
def test_softmax(op, opset, axis, threads):
    x = randn(3, 5, 37) * 4
    attrs = {} if axis is None else {"axis": axis}
    check(op, {"x": x}, threads, opset=opset, **attrs)


@pytest.mark.parametrize("threads", THREADS)
@pytest.mark.parametrize("op", ["Softmax", "LogSoftmax"])
@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")  # the reference
def test_softmax_rows_with_infinities(op, threads):
    """Rows holding -inf (exp gives 0), +inf, and one all -inf (NaN, as the reference), in
    the vector part and the tail of 37-element rows."""
    x = randn(4, 37) * 4
    x[0, [3, 20, 36]] = -np.inf
    x[1, 17] = np.inf
    x[2, :] = -np.inf
    check(op, {"x": x}, threads)


@pytest.mark.parametrize("threads", THREADS)
@pytest.mark.parametrize("op", ["Softmax", "LogSoftmax"])
def test_softmax_large_inner_and_float64(op, threads):
    check(op, {"x": randn(2, 7, 1100) * 10}, threads, axis=1)
    check(op, {"x": randn(4, 1000) * 30}, threads)
    check(op, {"x": randn(3, 5, 6, dtype=np.float64)}, threads, axis=1, rtol=1e-12, atol=1e-14)


# -- normalizations -------------------------------------------------------------------------------

@pytest.mark.parametrize("threads", THREADS)
@pytest.mark.parametrize("shape", [(2, 3, 5, 7), (4, 6), (1, 4, 70), (1, 2, 3, 4, 5)])
def test_batchnorm(shape, threads):
    channels = shape[1]
    params = {"scale": positive(channels), "bias": randn(channels), "mean": randn(channels),
              "var": positive(channels)}
    check("BatchNormalization", {"x": randn(*shape)}, threads, initializers=params,
          inputs=["x", "scale", "bias", "mean", "var"], epsilon=1e-3, exact=True)


@pytest.mark.parametrize("threads", THREADS)
def test_batchnorm_runtime_params_and_relu(threads):
    feeds = {"x": randn(2, 3, 6, 6), "scale": positive(3), "bias": randn(3),
             "mean": randn(3), "var": positive(3)}
    nodes = [helper.make_node("BatchNormalization", ["x", "scale", "bias", "mean", "var"],
                              ["n"], name="bn"),
             helper.make_node("Relu", ["n"], ["y"], name="relu")]
    run_both(build(nodes, feeds, ["y"]), feeds, threads, exact=True)


@pytest.mark.parametrize("threads", THREADS)
@pytest.mark.parametrize("shape", [(2, 3, 5, 7), (1, 4, 70), (2, 2, 3, 4, 5), (3, 2, 1)])
def test_instancenorm(shape, threads):
    channels = shape[1]
    check("InstanceNormalization", {"x": randn(*shape) + 3}, threads,
          initializers={"s": positive(channels), "b": randn(channels)},
          inputs=["x", "s", "b"], epsilon=1e-4, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("threads", THREADS)
@pytest.mark.parametrize("axis", [-1, 1, 2, 0])
def test_layernorm(axis, threads):
    shape = (3, 4, 37)
    norm_shape = shape[axis:]
    init = {"s": positive(*norm_shape), "b": randn(*norm_shape)}
    check("LayerNormalization", {"x": randn(*shape) + 1}, threads, initializers=init,
          inputs=["x", "s", "b"], axis=axis, epsilon=1e-5, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("threads", THREADS)
def test_layernorm_stats_outputs_and_no_bias(threads):
    init = {"s": positive(40)}
    check("LayerNormalization", {"x": randn(6, 40)}, threads, initializers=init,
          inputs=["x", "s"], outputs=["y", "mean", "inv"], rtol=1e-4, atol=1e-5)
    check("LayerNormalization", {"x": randn(2, 3, 8)}, threads,
          initializers={"s": positive(1), "b": randn(1)}, inputs=["x", "s", "b"],
          rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("threads", THREADS)
@pytest.mark.parametrize("size", [1, 2, 3, 5])
def test_lrn(size, threads):
    check("LRN", {"x": randn(2, 6, 5, 7)}, threads, size=size, alpha=1e-3, beta=0.75,
          bias=2.0, rtol=1e-6)
    check("LRN", {"x": randn(1, 3, 9)}, threads, size=size, rtol=1e-6)


# -- fused epilogues ------------------------------------------------------------------------------

EPILOGUE_MODELS = [
    ("GlobalAveragePool", {}, (2, 8, 5, 5)),
    ("MaxPool", {"kernel_shape": [3, 3], "pads": [1, 1, 1, 1]}, (2, 8, 6, 21)),
    ("AveragePool", {"kernel_shape": [2, 2], "strides": [2, 2]}, (2, 8, 6, 20)),
    ("BatchNormalization", {}, (2, 8, 3, 3)),
    ("Softmax", {"axis": 1}, (2, 8, 3)),
    ("Softmax", {"axis": -1}, (2, 8, 40)),   # rows of two vectors and a tail
    ("ReduceMean", {"axes": [1], "keepdims": 1}, (2, 8, 3)),
    ("ReduceMax", {"axes": [2], "keepdims": 1}, (2, 8, 3)),
    ("LRN", {"size": 3}, (2, 8, 4)),
    ("InstanceNormalization", {}, (2, 8, 4)),
    ("LayerNormalization", {"axis": 1}, (2, 8, 4)),
]


@pytest.mark.parametrize("threads", THREADS)
@pytest.mark.parametrize("op,attrs,shape", EPILOGUE_MODELS)
def test_fused_epilogue(op, attrs, shape, threads):
    """head + Add(per-channel constant) + Mul(full-shape input) + Relu is one kernel and
    matches the reference."""
    channels = shape[1]
    init, head_inputs = {}, ["x"]
    if op == "BatchNormalization":
        init.update(scale=positive(channels), bias=randn(channels), mean=randn(channels),
                    var=positive(channels))
        head_inputs += ["scale", "bias", "mean", "var"]
    elif op == "InstanceNormalization":
        init.update(scale=positive(channels), bias=randn(channels))
        head_inputs += ["scale", "bias"]
    elif op == "LayerNormalization":
        init.update(scale=positive(*shape[1:]))
        head_inputs += ["scale"]
    head = helper.make_node(op, head_inputs, ["h"], name="head", **attrs)
    x = randn(*shape)
    inferred = build([head], {"x": x}, ["h"], init)
    out_shape = [d.dim_value for d in inferred.graph.output[0].type.tensor_type.shape.dim]
    init["c"] = randn(out_shape[1], *([1] * (len(out_shape) - 2)))
    feeds = {"x": x, "z": randn(*out_shape)}
    nodes = [head,
             helper.make_node("Add", ["c", "h"], ["a"], name="add"),
             helper.make_node("Mul", ["a", "z"], ["m"], name="mul"),
             helper.make_node("Relu", ["m"], ["y"], name="relu")]
    ours = run_both(build(nodes, feeds, ["y"], init), feeds, threads, rtol=1e-4, atol=1e-5)
    (part,) = ours.parts
    kernels = [s for s in part.payload.metadata["steps"] if s.startswith("k_")]
    assert len(kernels) == 1, kernels
