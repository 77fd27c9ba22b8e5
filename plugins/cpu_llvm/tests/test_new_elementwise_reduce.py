"""cpu_llvm's kernels for the activations, math, bitwise and cast ops, the reductions, ArgMin,
CumSum/CumProd and Trilu that the reference gained with the real-model import work, against the
reference interpreter on 1 and 2 threads, with every node run on cpu_llvm: random shapes
(vector-wide rows and ragged tails), the dtypes each op allows, broadcasting, NaN and
infinities."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from cpu_llvm_checks import run_both
from onnx import TensorProto, helper

import byoc
from byoc.compiled import FallbackWarning
from byoc.core.dtypes import to_onnx
from byoc.core.ir import Graph, Node, TensorType
from byoc.errors import ByocError
from byoc.testing import make_model
from byoc_cpu_llvm.kernels import supports

THREADS = [1, 2]
RNG = np.random.default_rng(17)
SPECIAL = [np.nan, np.inf, -np.inf, 0.0, -0.0, 1e-30, 90.0, -90.0, 45.0, -45.0]
FLOATS = [np.float32, np.float64, np.float16]
INTEGERS = [np.int8, np.uint8, np.int16, np.uint16, np.int32, np.uint32, np.int64, np.uint64]


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("BYOC_CACHE_DIR", str(tmp_path))


def build(nodes, feeds, outputs=("y",), initializers=None, opset=18):
    """A model reading ``feeds`` (graph inputs); output types come from ONNX inference."""
    model = make_model(nodes, [(n, to_onnx(a.dtype), list(a.shape)) for n, a in feeds.items()],
                       [(o, TensorProto.UNDEFINED, None) for o in outputs], initializers,
                       opset=opset)
    return onnx.shape_inference.infer_shapes(model, strict_mode=True)


def tolerance(dtype) -> dict:
    """Exact for integers; a few float32 ulp (libm and vectorized exp differ from numpy's
    own in the last bits); float16 rounds once from float32, so may land one ulp off."""
    if np.dtype(dtype) == np.float16:
        return {"rtol": 1e-3, "atol": 1e-3}
    if np.issubdtype(dtype, np.floating):
        return {"rtol": 1e-5, "atol": 1e-6}
    return {}


def check(op, feeds, threads, initializers=None, inputs=None, opset=18, tol=None, **attrs):
    node = helper.make_node(op, list(inputs or feeds), ["y"], name="n", **attrs)
    model = build([node], feeds, initializers=initializers, opset=opset)
    first = next(iter(feeds.values()))
    with np.errstate(all="ignore"):
        return run_both(model, feeds, threads, **(tol or tolerance(first.dtype)))


def floats(shape, dtype, scale=4.0, special=True):
    """Normal values times ``scale``, the first row starting with NaN, infinities, zeros of
    both signs, a tiny value and values where exp overflows or underflows."""
    x = RNG.standard_normal(shape) * scale
    if special:
        flat = x.reshape(-1)
        flat[:len(SPECIAL)] = SPECIAL[:flat.size]
    with np.errstate(over="ignore"):
        return x.astype(dtype)


def integers(shape, dtype, low=None, high=None):
    info = np.iinfo(dtype)
    low = max(info.min, -1000) if low is None else low
    high = min(info.max, 1000) if high is None else high
    return RNG.integers(low, high, shape, dtype=dtype, endpoint=True)


# Rows both narrower and wider than a vector, with ragged tails.
SHAPES = [(3, 37), (2, 3, 5), (70,), (1, 16)]


# -- activations ----------------------------------------------------------------------------------

ACTIVATIONS = [("Mish", {}, 18), ("Swish", {}, 24), ("Swish", {"alpha": 0.37}, 24),
               ("Celu", {}, 28), ("Celu", {"alpha": 2.5}, 28), ("Celu", {"alpha": -0.5}, 28),
               ("ThresholdedRelu", {}, 18), ("ThresholdedRelu", {"alpha": 0.1}, 18),
               ("ThresholdedRelu", {"alpha": -2.0}, 18), ("Shrink", {}, 18),
               ("Shrink", {"bias": 1.5, "lambd": 1.5}, 18),
               ("Shrink", {"bias": 0.25, "lambd": -1.0}, 18)]


@pytest.mark.parametrize("threads", THREADS)
@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("op,attrs,opset", ACTIVATIONS)
def test_activations(op, attrs, opset, dtype, threads):
    for shape in SHAPES:
        check(op, {"x": floats(shape, dtype)}, threads, opset=opset, **attrs)


@pytest.mark.parametrize("threads", THREADS)
@pytest.mark.parametrize("dtype", [np.int8, np.uint8, np.int32, np.int64])
def test_shrink_integers(dtype, threads):
    """Integers compare and shift in float64 and are truncated back."""
    x = integers((4, 33), dtype, low=0 if dtype == np.uint8 else -9, high=9)
    check("Shrink", {"x": x}, threads, bias=1.5, lambd=1.5)
    check("Shrink", {"x": x}, threads, bias=-2.0, lambd=0.0)


@pytest.mark.parametrize("threads", THREADS)
@pytest.mark.parametrize("op", ["Mish", "Swish"])
def test_vector_math_activations_fuse_after_broadcast_add(op, threads):
    """Add (broadcast) -> op -> Mul: one fused kernel whose rows run as vectors plus a tail."""
    feeds = {"a": floats((3, 4, 45), np.float32), "b": floats((4, 1), np.float32, special=False),
             "c": floats((45,), np.float32, special=False)}
    nodes = [helper.make_node("Add", ["a", "b"], ["s"]),
             helper.make_node(op, ["s"], ["t"]),
             helper.make_node("Mul", ["t", "c"], ["y"])]
    with np.errstate(all="ignore"):
        run_both(build(nodes, feeds, opset=24), feeds, threads, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("threads", THREADS)
@pytest.mark.parametrize("op", ["Mish", "Swish", "Celu"])
def test_activation_as_conv_and_matmul_epilogue(op, threads):
    x = floats((1, 3, 9, 21), np.float32, scale=1.0, special=False)
    w = floats((8, 3, 3, 3), np.float32, scale=1.0, special=False)
    conv = [helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]),
            helper.make_node(op, ["c"], ["y"])]
    run_both(build(conv, {"x": x}, initializers={"w": w}, opset=24), {"x": x}, threads,
             rtol=1e-4, atol=1e-5)
    a = floats((5, 40), np.float32, scale=1.0, special=False)
    m = floats((40, 67), np.float32, scale=1.0, special=False)
    matmul = [helper.make_node("MatMul", ["a", "m"], ["p"]), helper.make_node(op, ["p"], ["y"])]
    run_both(build(matmul, {"a": a}, initializers={"m": m}, opset=24), {"a": a}, threads,
             rtol=1e-4, atol=1e-5)


# -- trigonometry, IsNaN, IsInf -------------------------------------------------------------------

TRIG = {"Tan": 3.0, "Atan": 10.0, "Sinh": 5.0, "Cosh": 5.0, "Asinh": 10.0,
        "Asin": 1.0, "Acos": 1.0, "Atanh": 1.0, "Acosh": 10.0}


@pytest.mark.parametrize("threads", THREADS)
@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("op", sorted(TRIG))
def test_trigonometry(op, dtype, threads):
    """Values in and out of each function's domain (out of it, NaN)."""
    x = RNG.uniform(-TRIG[op] * 1.2, TRIG[op] * 1.2, (3, 41))
    x[0, :4] = [np.nan, np.inf, -np.inf, 0.0]
    check(op, {"x": x.astype(dtype)}, threads)


@pytest.mark.parametrize("threads", THREADS)
@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("attrs", [{}, {"detect_negative": 0}, {"detect_positive": 0},
                                   {"detect_negative": 0, "detect_positive": 0}])
def test_isinf_isnan(attrs, dtype, threads):
    x = floats((5, 19), dtype)
    check("IsInf", {"x": x}, threads, opset=20, **attrs)  # (float16 from opset 20)
    check("IsNaN", {"x": x}, threads, opset=20)


# -- Mod ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("threads", THREADS)
@pytest.mark.parametrize("fmod", [0, 1])
@pytest.mark.parametrize("dtype", INTEGERS)
def test_mod_integers(dtype, fmod, threads):
    """Every sign combination, division by zero (0) and, for signed types, the lowest value
    divided by -1 (which traps in hardware division)."""
    a = integers((4, 6, 29), dtype)
    a.reshape(-1)[0] = np.iinfo(dtype).min
    b = integers((6, 1), dtype, low=None if np.issubdtype(dtype, np.signedinteger) else 0,
                 high=9)
    if np.issubdtype(dtype, np.signedinteger):
        b = np.where(np.abs(b) > 9, b % 9, b).astype(dtype)
        b[0, 0] = -1
    b[1, 0] = 0
    check("Mod", {"a": a, "b": b}, threads, fmod=fmod)


@pytest.mark.parametrize("threads", THREADS)
@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("fmod,opset", [(1, 18), (0, 28)])
def test_mod_floats(dtype, fmod, opset, threads):
    """fmod=1 truncates the quotient (C's fmod); fmod=0, defined for floats from opset 28,
    rounds it down (numpy's remainder: the divisor's sign, zeros and infinities included)."""
    a = floats((3, 40), dtype, scale=10.0)
    b = floats((40,), dtype, scale=3.0, special=False)
    b[:6] = [0.0, np.inf, -np.inf, -0.0, np.nan, -3.0]
    check("Mod", {"a": a, "b": b.astype(dtype)}, threads, fmod=fmod, opset=opset)


# -- bitwise --------------------------------------------------------------------------------------

@pytest.mark.parametrize("threads", THREADS)
@pytest.mark.parametrize("dtype", INTEGERS)
@pytest.mark.parametrize("op", ["BitwiseAnd", "BitwiseOr", "BitwiseXor"])
def test_bitwise_binary(op, dtype, threads):
    info = np.iinfo(dtype)
    a = integers((3, 5, 21), dtype, low=int(info.min), high=int(info.max))
    b = integers((5, 1), dtype, low=int(info.min), high=int(info.max))
    check(op, {"a": a, "b": b}, threads)
    check(op, {"b": b, "a": a}, threads)


@pytest.mark.parametrize("threads", THREADS)
@pytest.mark.parametrize("dtype", INTEGERS)
def test_bitwise_not(dtype, threads):
    info = np.iinfo(dtype)
    check("BitwiseNot", {"x": integers((4, 37), dtype, low=int(info.min), high=int(info.max))},
          threads)


@pytest.mark.parametrize("threads", THREADS)
@pytest.mark.parametrize("direction", ["LEFT", "RIGHT"])
@pytest.mark.parametrize("dtype,opset", [(np.uint8, 11), (np.uint32, 11), (np.uint64, 11),
                                         (np.int8, 28), (np.int16, 28), (np.int32, 28),
                                         (np.int64, 28)])
def test_bit_shift(dtype, opset, direction, threads):
    """Shifts by 0 to the width, past it, and (signed types) by negative amounts."""
    info = np.iinfo(dtype)
    width = 8 * np.dtype(dtype).itemsize
    x = integers((3, width + 12), dtype, low=int(info.min), high=int(info.max))
    amounts = np.arange(-6 if info.min < 0 else 0, width + 6)[:width + 12]
    amounts = np.resize(amounts, width + 12).astype(dtype)
    check("BitShift", {"x": x, "amounts": amounts}, threads, opset=opset, direction=direction)


# -- CastLike -------------------------------------------------------------------------------------

@pytest.mark.parametrize("threads", THREADS)
@pytest.mark.parametrize("src,dst", [(np.float32, np.int32), (np.int64, np.float32),
                                     (np.float32, np.float16), (np.float16, np.float64),
                                     (np.float64, np.bool_), (np.uint8, np.int64),
                                     (np.int32, np.int32)])
@pytest.mark.parametrize("like_shape", [(), (3,), (7, 2, 5)])
def test_castlike(src, dst, like_shape, threads):
    """The second input gives only the type: its shape need not broadcast to the first's."""
    x = floats((4, 19), src, scale=100.0, special=False) if np.issubdtype(src, np.floating) \
        else integers((4, 19), src)
    like = np.zeros(like_shape, dst)
    check("CastLike", {"x": x, "like": like}, threads)


# -- reductions -----------------------------------------------------------------------------------

REDUCE_AXES = [None, [0], [1], [-1], [0, 2], [1, 3], [2, 3], [0, 1, 2, 3]]
NEW_REDUCTIONS = ["ReduceL1", "ReduceSumSquare", "ReduceLogSum", "ReduceLogSumExp"]


@pytest.mark.parametrize("threads", THREADS)
@pytest.mark.parametrize("axes", REDUCE_AXES)
@pytest.mark.parametrize("keepdims", [0, 1])
@pytest.mark.parametrize("op", NEW_REDUCTIONS)
def test_reductions(op, axes, keepdims, threads):
    """Opset 18: axes as a constant input; float32 and float64."""
    for dtype in (np.float32, np.float64):
        x = floats((3, 4, 5, 37), dtype, scale=3.0, special=False)
        if op == "ReduceLogSum":
            x = np.abs(x)
        init = {} if axes is None else {"axes": np.array(axes, np.int64)}
        inputs = ["x"] + ([] if axes is None else ["axes"])
        check(op, {"x": x}, threads, initializers=init, inputs=inputs, keepdims=keepdims,
              tol={"rtol": 2e-5, "atol": 1e-5})


@pytest.mark.parametrize("threads", THREADS)
@pytest.mark.parametrize("op", NEW_REDUCTIONS)
def test_reductions_axes_attribute_and_noop(op, threads):
    """Opset 13: axes as an attribute; opset 18 with no axes and noop_with_empty_axes."""
    x = np.abs(floats((2, 6, 33), np.float32, special=False)) + 0.1
    check(op, {"x": x}, threads, opset=13, axes=[1])
    check(op, {"x": x}, threads, opset=13, axes=[0, 2], keepdims=0)
    check(op, {"x": x}, threads, opset=18, noop_with_empty_axes=1)
    check(op, {"x": x}, threads, opset=18, noop_with_empty_axes=0)


@pytest.mark.parametrize("threads", THREADS)
@pytest.mark.parametrize("dtype", [np.int32, np.int64, np.uint32, np.uint64])
@pytest.mark.parametrize("op", ["ReduceL1", "ReduceSumSquare"])
def test_integer_reductions_wrap(op, dtype, threads):
    """Integers accumulate in their own type and wrap, as the reference and onnxruntime."""
    info = np.iinfo(dtype)
    x = integers((3, 5, 40), dtype, low=int(info.min) // 2, high=int(info.max) // 2)
    for axes in ([2], [0, 1]):
        check(op, {"x": x}, threads, initializers={"axes": np.array(axes, np.int64)},
              inputs=["x", "axes"])


@pytest.mark.parametrize("threads", THREADS)
@pytest.mark.parametrize("axes", [[1], [0]])
def test_log_sum_exp_special_values(axes, threads):
    """Large values (no overflow: the largest is subtracted first), rows of -inf (-inf), an
    inf (inf) and a NaN (NaN)."""
    x = floats((4, 40), np.float32, scale=50.0, special=False)
    x[0, :] += 1000.0
    x[1, :] = -np.inf
    x[2, 5] = np.inf
    x[3, 7] = np.nan
    for dtype in (np.float32, np.float64):
        check("ReduceLogSumExp", {"x": x.astype(dtype)}, threads,
              initializers={"axes": np.array(axes, np.int64)}, inputs=["x", "axes"])


@pytest.mark.parametrize("threads", THREADS)
@pytest.mark.parametrize("op", NEW_REDUCTIONS)
def test_reductions_of_empty_tensors(op, threads):
    """Nothing to reduce: sums are 0, logarithms of them -inf."""
    x = np.zeros((3, 0, 4), np.float32)
    check(op, {"x": x}, threads, initializers={"axes": np.array([1], np.int64)},
          inputs=["x", "axes"])


@pytest.mark.parametrize("threads", THREADS)
def test_reduction_with_fused_epilogue(threads):
    """ReduceSumSquare -> Sqrt -> Add: the elementwise tail fuses into the reduction."""
    feeds = {"x": floats((6, 50), np.float32, special=False),
             "b": floats((1,), np.float32, special=False)}
    axes = {"axes": np.array([1], np.int64)}
    nodes = [helper.make_node("ReduceSumSquare", ["x", "axes"], ["s"], keepdims=1),
             helper.make_node("Sqrt", ["s"], ["r"]), helper.make_node("Add", ["r", "b"], ["y"])]
    run_both(build(nodes, feeds, initializers=axes), feeds, threads, rtol=1e-5, atol=1e-6)


# -- ArgMin ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("threads", THREADS)
@pytest.mark.parametrize("axis", [0, 1, 2, -1])
@pytest.mark.parametrize("keepdims", [0, 1])
@pytest.mark.parametrize("last", [0, 1])
def test_argmin(axis, keepdims, last, threads):
    x = RNG.integers(0, 5, (3, 6, 17))  # many ties
    for dtype in (np.float32, np.float64, np.int32, np.uint8, np.int64):
        check("ArgMin", {"x": x.astype(dtype)}, threads, axis=axis, keepdims=keepdims,
              select_last_index=last)


@pytest.mark.parametrize("threads", THREADS)
@pytest.mark.parametrize("last", [0, 1])
def test_argmin_nan(last, threads):
    """A NaN counts as the smallest (the first one, or the last), as in numpy."""
    x = floats((3, 9), np.float32, special=False)
    x[0, 2] = x[0, 6] = np.nan
    x[1, 0] = np.nan
    x[2, 4] = -np.inf
    check("ArgMin", {"x": x}, threads, axis=1, select_last_index=last)


# -- CumSum, CumProd ------------------------------------------------------------------------------

@pytest.mark.parametrize("threads", THREADS)
@pytest.mark.parametrize("exclusive", [0, 1])
@pytest.mark.parametrize("reverse", [0, 1])
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.float16, np.int32, np.int64,
                                   np.uint32, np.uint64])
def test_cumsum(dtype, exclusive, reverse, threads):
    """Every axis of a 3-D input, with a constant axis (exact: the same order of additions
    as numpy's) and with the axis read at run time."""
    x = (floats((3, 7, 600), dtype, scale=10.0, special=False)
         if np.issubdtype(dtype, np.floating) else integers((3, 7, 600), dtype))
    for axis in (0, 1, 2, -1):
        check("CumSum", {"x": x}, threads, initializers={"axis": np.array(axis, np.int64)},
              inputs=["x", "axis"], exclusive=exclusive, reverse=reverse, tol={})
    for axis in (0, -2, 2):
        check("CumSum", {"x": x, "axis": np.array(axis, np.int32)}, threads,
              exclusive=exclusive, reverse=reverse, tol={})


@pytest.mark.parametrize("threads", THREADS)
def test_cumsum_integers_wrap_and_special_floats(threads):
    x = integers((2, 50), np.int32, low=2**30, high=2**31 - 1)
    check("CumSum", {"x": x}, threads, initializers={"axis": np.array(1)},
          inputs=["x", "axis"], tol={})
    f = floats((4, 30), np.float32)
    check("CumSum", {"x": f}, threads, initializers={"axis": np.array([1])},
          inputs=["x", "axis"], tol={})


def test_cumsum_axis_out_of_range_at_run_time_is_a_fault_naming_the_node():
    """cpu_llvm's kernel faults, naming the node; the reference then refuses the axis too."""
    x = floats((3, 5), np.float32, special=False)
    node = helper.make_node("CumSum", ["x", "axis"], ["y"], name="running")
    model = build([node], {"x": x, "axis": np.array(0, np.int64)})
    compiled = byoc.compile(model, plugins=["cpu_llvm"])
    assert all(p.plugin == "cpu_llvm" for p in compiled.parts)
    fault = r"node 'running' \(CumSum\): its axis input 'axis' is outside \[-2, 1\]"
    with pytest.warns(FallbackWarning, match=fault), pytest.raises(ByocError):
        compiled.run({"x": x, "axis": np.array(2, np.int64)})


@pytest.mark.parametrize("threads", THREADS)
@pytest.mark.parametrize("dtype", [np.float32, np.int64])
def test_cumprod(dtype, threads):
    x = (RNG.uniform(0.8, 1.25, (4, 3, 30)).astype(dtype) if dtype == np.float32
         else integers((4, 3, 30), dtype, low=-3, high=3))
    for axis, exclusive, reverse in ((2, 0, 0), (0, 1, 0), (1, 1, 1), (-1, 0, 1)):
        check("CumProd", {"x": x}, threads, initializers={"axis": np.array(axis)},
              inputs=["x", "axis"], opset=26, exclusive=exclusive, reverse=reverse, tol={})


# -- Trilu ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("threads", THREADS)
@pytest.mark.parametrize("upper", [0, 1])
@pytest.mark.parametrize("dtype", [np.float32, np.float16, np.float64, np.int8, np.int64,
                                   np.bool_])
def test_trilu(dtype, upper, threads):
    x = (RNG.random((2, 3, 6, 9)) > 0.3 if dtype == np.bool_
         else floats((2, 3, 6, 9), dtype, special=False) if np.issubdtype(dtype, np.floating)
         else integers((2, 3, 6, 9), dtype))
    check("Trilu", {"x": x}, threads, opset=14, upper=upper, tol={})
    for k in (0, 2, -3, 20, -20, 2**62):
        check("Trilu", {"x": x}, threads, initializers={"k": np.array(k, np.int64)},
              inputs=["x", "k"], opset=14, upper=upper, tol={})
    check("Trilu", {"x": x, "k": np.array(-1, np.int64)}, threads, opset=14, upper=upper,
          tol={})


# -- declines -------------------------------------------------------------------------------------

def _graph(node: Node, types: dict, constants: dict | None = None, opset=18) -> Graph:
    graph = Graph(nodes=[node], inputs=[v for v in node.inputs if v], outputs=node.outputs,
                  types={k: TensorType(np.dtype(d), s) for k, (d, s) in types.items()},
                  opsets={"": opset})
    graph.constants.update(constants or {})
    return graph


def test_declines_name_what_is_missing():
    f32, i32 = np.float32, np.int32
    log_sum = Node("ReduceLogSum", ["x"], ["y"], name="n")
    graph = _graph(log_sum, {"x": (i32, (2, 3)), "y": (i32, (1, 1))})
    assert "float" in supports(log_sum, graph)
    mod = Node("Mod", ["a", "b"], ["y"], {"fmod": 2}, name="m")
    graph = _graph(mod, {"a": (i32, (4,)), "b": (i32, (4,)), "y": (i32, (4,))})
    assert "fmod" in supports(mod, graph) and "'m'" in supports(mod, graph)
    shift = Node("BitShift", ["a", "b"], ["y"], {"direction": "UP"}, name="s")
    graph = _graph(shift, {"a": (i32, (4,)), "b": (i32, (4,)), "y": (i32, (4,))})
    assert "LEFT or RIGHT" in supports(shift, graph)
    bitwise = Node("BitwiseAnd", ["a", "b"], ["y"], name="b")
    graph = _graph(bitwise, {"a": (f32, (4,)), "b": (f32, (4,)), "y": (f32, (4,))})
    assert "integers only" in supports(bitwise, graph)
    cumsum = Node("CumSum", ["x", "axis"], ["y"], name="c")
    types = {"x": (f32, (2, 3)), "axis": (np.int64, ()), "y": (f32, (2, 3))}
    assert supports(cumsum, _graph(cumsum, types)) is None  # a run-time axis is read then
    assert "out of range" in supports(cumsum, _graph(cumsum, types, {"axis": np.array(2)}))
    trilu = Node("Trilu", ["x"], ["y"], name="t")
    assert "rank 2" in supports(trilu, _graph(trilu, {"x": (f32, (5,)), "y": (f32, (5,))}))


@pytest.mark.parametrize("threads", THREADS)
@pytest.mark.parametrize("op, opset, bound", [("Erf", 18, 5e-7), ("Gelu", 20, 2e-6)])
def test_vectorized_erf_stays_within_its_bound(op, opset, bound, threads):
    """Erf and GELU run on float32 vectors (a rational approximation, not libm per element):
    within ``bound`` of the reference (GELU's is erf's, times |x| / 2 up to 4, where erf is
    close to -1 and GELU small) relative to max(1, |y|) over a dense grid through
    [-6, 6] (erf is +-1 in float32 beyond 4), NaN, infinities and zeros as the reference
    gives them, and tiny values to 1e-6 relative."""
    x = np.concatenate([np.linspace(-6, 6, 48_001), SPECIAL, [1e-38, -4.0, 4.0]])
    feeds = {"x": x.astype(np.float32)}
    model = build([helper.make_node(op, ["x"], ["y"])], feeds, opset=opset)
    got = run_both(model, feeds, threads, rtol=bound, atol=bound)["y"]
    expected = np.asarray(byoc.testing.compile_reference(model).run(feeds)["y"])
    tail = slice(-len(SPECIAL) - 3, None)
    exact = ~np.isfinite(expected[tail]) | (expected[tail] == 0)
    np.testing.assert_array_equal(got[tail][exact], expected[tail][exact])
    np.testing.assert_allclose(got[tail][~exact], expected[tail][~exact], rtol=1e-6)
