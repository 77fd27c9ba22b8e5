"""cpu_llvm's float16 elementwise ops, mixed-dtype and integer Pow, reductions over empty
tensors, QuantizeLinear/DequantizeLinear with run-time parameters, and Dropout with a mask,
against the reference interpreter on 1 and 3 threads, with every node run on cpu_llvm."""

from __future__ import annotations

import numpy as np
import pytest
from cpu_llvm_checks import run_both
from onnx import helper

import byoc
from byoc.core.dtypes import to_onnx
from byoc.testing import make_model

THREADS = [1, 3]


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("BYOC_CACHE_DIR", str(tmp_path))


def model_of(nodes, feeds, outputs, initializers=None, opset=17):
    """``outputs`` maps names to (dtype, shape)."""
    return make_model(nodes, [(n, to_onnx(a.dtype), list(a.shape)) for n, a in feeds.items()],
                      [(n, to_onnx(d), list(s)) for n, (d, s) in outputs.items()],
                      initializers=initializers, opset=opset)


def declines(model, reason_part: str) -> None:
    compiled = byoc.compile(model, plugins=["cpu_llvm"])
    reasons = [r for e in compiled.plan.explanations.values()
               for r in e.reasons.get("cpu_llvm", [])]
    assert any(reason_part in r for r in reasons), reasons


# -- float16 ---------------------------------------------------------------------------------

RNG = np.random.default_rng(7)


def half(*shape, low=-4.0, high=4.0):
    return RNG.uniform(low, high, shape).astype(np.float16)


@pytest.mark.parametrize("threads", THREADS)
@pytest.mark.parametrize("op", ["Add", "Sub", "Mul", "Div", "Min", "Max"])
def test_float16_binary_exact(op, threads):
    feeds = {"a": half(3, 5, 7), "b": half(5, 1)}
    model = model_of([helper.make_node(op, ["a", "b"], ["y"])], feeds,
                     {"y": (np.float16, (3, 5, 7))})
    run_both(model, feeds, threads)


@pytest.mark.parametrize("threads", THREADS)
def test_float16_fused_chain_rounds_each_step(threads):
    # Add -> Mul -> Relu -> Sqrt fuse into one kernel; each step rounds to float16 as numpy.
    feeds = {"a": half(4, 33), "b": half(33), "c": half(4, 1)}
    nodes = [helper.make_node("Add", ["a", "b"], ["s"]),
             helper.make_node("Mul", ["s", "c"], ["m"]),
             helper.make_node("Relu", ["m"], ["r"]),
             helper.make_node("Sqrt", ["r"], ["y"])]
    model = model_of(nodes, feeds, {"y": (np.float16, (4, 33))})
    run_both(model, feeds, threads)


@pytest.mark.parametrize("threads", THREADS)
@pytest.mark.parametrize("op", ["Exp", "Tanh", "Sigmoid", "Abs", "Neg", "Floor", "Erf"])
def test_float16_unary(op, threads):
    feeds = {"x": half(6, 10, low=-3, high=3)}
    model = model_of([helper.make_node(op, ["x"], ["y"])], feeds,
                     {"y": (np.float16, (6, 10))})
    run_both(model, feeds, threads, rtol=1e-3, atol=1e-3)


@pytest.mark.parametrize("threads", THREADS)
def test_float16_compare_and_where(threads):
    feeds = {"a": half(5, 8), "b": half(5, 8)}
    nodes = [helper.make_node("Less", ["a", "b"], ["lt"]),
             helper.make_node("Where", ["lt", "a", "b"], ["y"])]
    model = model_of(nodes, feeds, {"lt": (np.bool_, (5, 8)), "y": (np.float16, (5, 8))})
    run_both(model, feeds, threads)


@pytest.mark.parametrize("threads", THREADS)
@pytest.mark.parametrize("src,dst", [(np.float32, np.float16), (np.float64, np.float16),
                                     (np.float16, np.float32), (np.float16, np.float64),
                                     (np.float16, np.int32), (np.int32, np.float16),
                                     (np.float16, np.bool_), (np.uint8, np.float16)])
def test_float16_cast(src, dst, threads):
    x = RNG.uniform(-70000, 70000, (4, 9))
    x[0, :5] = [np.nan, np.inf, -np.inf, 65520.0, 1e-8]  # overflow, ties, subnormals
    if np.issubdtype(src, np.integer):
        x = RNG.integers(0 if src == np.uint8 else -3000, 255 if src == np.uint8 else 3000,
                         (4, 9))
    elif np.dtype(src) == np.float16 and np.issubdtype(dst, np.integer):
        x = RNG.uniform(-1000, 1000, (4, 9))
    feeds = {"x": x.astype(src)}
    to = to_onnx(dst)
    model = model_of([helper.make_node("Cast", ["x"], ["y"], to=to)], feeds,
                     {"y": (dst, (4, 9))})
    with np.errstate(all="ignore"):
        run_both(model, feeds, threads)


# -- Pow ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("threads", THREADS)
@pytest.mark.parametrize("base,exponent", [(np.float32, np.int32), (np.float32, np.int64),
                                           (np.float32, np.uint64), (np.float64, np.float32),
                                           (np.float16, np.int8)])
def test_pow_float_base_other_exponent(base, exponent, threads):
    x = RNG.uniform(0.5, 3.0, (3, 10)).astype(base)
    e = RNG.integers(0, 6, (10,)).astype(exponent)
    feeds = {"x": x, "e": e}
    model = model_of([helper.make_node("Pow", ["x", "e"], ["y"])], feeds,
                     {"y": (base, (3, 10))}, opset=15)
    run_both(model, feeds, threads, rtol=2e-7 if base != np.float16 else 1e-3)


@pytest.mark.parametrize("threads", THREADS)
@pytest.mark.parametrize("base,exponent", [(np.int32, np.int32), (np.int64, np.int64),
                                           (np.int32, np.float32), (np.int64, np.float64),
                                           (np.int32, np.uint8), (np.int64, np.int32)])
def test_pow_integer_base_exact(base, exponent, threads):
    x = RNG.integers(-9 if np.dtype(base).kind == "i" else 0, 10, (4, 12)).astype(base)
    e = RNG.integers(0, 25, (4, 12))
    e = (e + 0.7).astype(exponent) if np.issubdtype(exponent, np.floating) else e.astype(exponent)
    x[0, :4] = [3, -2, 7, 10] if np.dtype(base).kind == "i" else [3, 2, 7, 10]
    e[0, :4] = [40, 63, 0, 19]  # wraps in int64, then truncates to the base's dtype
    feeds = {"x": x, "e": e}
    model = model_of([helper.make_node("Pow", ["x", "e"], ["y"])], feeds,
                     {"y": (base, (4, 12))}, opset=15)
    run_both(model, feeds, threads)


# -- reductions over empty tensors ----------------------------------------------------------

# Integer ReduceMean/ReduceL2 are left out: cpu_llvm declines them (the reference reduces
# them in float64).
EMPTY_REDUCTIONS = [(op, dtype) for op in ("ReduceSum", "ReduceMean", "ReduceMax", "ReduceMin",
                                           "ReduceProd", "ReduceL2")
                    for dtype in (np.float32, np.float64, np.int32, np.uint32)
                    if np.dtype(dtype).kind == "f" or op not in ("ReduceMean", "ReduceL2")]


@pytest.mark.parametrize("threads", THREADS)
@pytest.mark.parametrize("op,dtype", EMPTY_REDUCTIONS)
@pytest.mark.parametrize("shape,axes,keepdims", [((2, 0, 4), [1], 1), ((2, 0, 4), [1], 0),
                                                 ((0, 3), [0, 1], 0), ((2, 0, 4), [2], 1)])
def test_reduce_empty(op, dtype, shape, axes, keepdims, threads):
    feeds = {"x": np.zeros(shape, dtype)}
    out_shape = [1 if (d in axes) else n for d, n in enumerate(shape)
                 if keepdims or d not in axes]
    model = model_of([helper.make_node(op, ["x", "axes"], ["y"], keepdims=keepdims)], feeds,
                     {"y": (dtype, out_shape)},
                     initializers={"axes": np.array(axes, np.int64)}, opset=18)
    run_both(model, feeds, threads)


@pytest.mark.parametrize("threads", THREADS)
def test_reduce_empty_with_epilogue(threads):
    # ReduceSum -> Log fused: log(0) = -inf everywhere; ReduceMax -> Add of a broadcast bias.
    feeds = {"x": np.zeros((3, 0, 5), np.float32), "bias": np.arange(5, dtype=np.float32)}
    nodes = [helper.make_node("ReduceSum", ["x", "axes"], ["s"], keepdims=0),
             helper.make_node("Log", ["s"], ["y"]),
             helper.make_node("ReduceMin", ["x", "axes"], ["m"], keepdims=0),
             helper.make_node("Add", ["m", "bias"], ["z"])]
    model = model_of(nodes, feeds, {"y": (np.float32, (3, 5)), "z": (np.float32, (3, 5))},
                     initializers={"axes": np.array([1], np.int64)}, opset=18)
    with np.errstate(divide="ignore"):
        run_both(model, feeds, threads)


# -- QuantizeLinear / DequantizeLinear with run-time parameters ------------------------------

def _quant_case(shape, axis, block, param_shape, qtype):
    info = np.iinfo(qtype)
    x = RNG.uniform(-300, 300, shape).astype(np.float32)
    x.reshape(-1)[:3] = [0.5, 1.5, -2.5]  # ties round to even
    scale = RNG.uniform(0.05, 2.0, param_shape).astype(np.float32)
    zero = RNG.integers(max(info.min, -50), min(info.max, 50) + 1, param_shape).astype(qtype)
    attrs = {"axis": axis} if axis is not None else {}
    if block:
        attrs["block_size"] = block
    return x, scale, zero, attrs


QUANT_CASES = [((2, 7), None, 0, (), np.uint8), ((2, 7), None, 0, (), np.int16),
               ((2, 3, 4, 5), 1, 0, (3,), np.int8), ((2, 3, 4, 5), -1, 0, (5,), np.uint16),
               ((2, 6, 5), 1, 4, (2, 2, 5), np.int8), ((3, 8), -1, 3, (3, 3), np.uint8)]


@pytest.mark.parametrize("threads", THREADS)
@pytest.mark.parametrize("zero_at_run_time", [True, False])
@pytest.mark.parametrize("shape,axis,block,param_shape,qtype", QUANT_CASES)
def test_quantize_run_time_params(shape, axis, block, param_shape, qtype, zero_at_run_time,
                                  threads):
    x, scale, zero, attrs = _quant_case(shape, axis, block, param_shape, qtype)
    feeds = {"x": x, "scale": scale}
    inits = {}
    (feeds if zero_at_run_time else inits)["zero"] = zero
    node = helper.make_node("QuantizeLinear", ["x", "scale", "zero"], ["q"], **attrs)
    model = model_of([node], feeds, {"q": (qtype, shape)}, initializers=inits, opset=21)
    run_both(model, feeds, threads)


@pytest.mark.parametrize("threads", THREADS)
@pytest.mark.parametrize("shape,axis,block,param_shape,qtype",
                         QUANT_CASES + [((4, 3), 0, 0, (4,), np.int32)])
def test_dequantize_run_time_params(shape, axis, block, param_shape, qtype, threads):
    info = np.iinfo(qtype)
    _, scale, zero, attrs = _quant_case(shape, axis, block, param_shape, qtype)
    q = RNG.integers(info.min, int(info.max) + 1, shape, dtype=np.int64).astype(qtype)
    if qtype == np.int32:
        q.reshape(-1)[:2] = [info.min, info.max]
        zero = np.array([info.max, info.min, 0, 1], np.int32)  # x - zero needs 33 bits
    feeds = {"q": q, "scale": scale, "zero": zero}
    node = helper.make_node("DequantizeLinear", ["q", "scale", "zero"], ["y"], **attrs)
    model = model_of([node], feeds, {"y": (np.float32, shape)}, opset=21)
    run_both(model, feeds, threads)


@pytest.mark.parametrize("threads", THREADS)
def test_quantize_without_zero_point_then_dequantize(threads):
    feeds = {"x": RNG.uniform(-100, 100, (3, 17)).astype(np.float32),
             "scale": np.array(0.37, np.float32)}
    nodes = [helper.make_node("QuantizeLinear", ["x", "scale"], ["q"]),
             helper.make_node("DequantizeLinear", ["q", "scale"], ["y"])]
    model = model_of(nodes, feeds, {"q": (np.uint8, (3, 17)), "y": (np.float32, (3, 17))})
    run_both(model, feeds, threads)


def test_quantize_with_an_ill_fitting_scale_is_refused_at_import():
    """The importer checks quantization parameters now, so the model never reaches the
    plugin: the error names the node and the scale's shape."""
    feeds = {"x": np.zeros((2, 6), np.float32), "scale": np.ones((4,), np.float32)}
    node = helper.make_node("QuantizeLinear", ["x", "scale"], ["q"], axis=1)
    model = model_of([node], feeds, {"q": (np.uint8, (2, 6))}, opset=13)
    with pytest.raises(byoc.errors.ByocError, match="QuantizeLinear_0.*y_scale of shape \\[4\\] "
                                                    "fits neither per-tensor"):
        byoc.compile(model, plugins=["cpu_llvm"])


# -- Dropout with a mask or a zero ratio ---------------------------------------------------

@pytest.mark.parametrize("threads", THREADS)
@pytest.mark.parametrize("training", [None, False, True])
def test_dropout_mask_is_bool_and_all_kept(training, threads):
    feeds = {"x": RNG.uniform(-1, 1, (2, 9, 7)).astype(np.float32)}
    inits = {"ratio": np.array(0.0 if training else 0.5, np.float32)}
    inputs = ["x", "ratio"]
    if training is not None:
        inits["training"] = np.array(training)
        inputs.append("training")
    nodes = [helper.make_node("Dropout", inputs, ["d", "mask"]),
             helper.make_node("Relu", ["d"], ["y"])]  # the copy feeds another kernel
    model = model_of(nodes, feeds, {"y": (np.float32, (2, 9, 7)),
                                    "mask": (np.bool_, (2, 9, 7))},
                     initializers=inits, opset=13)
    got = run_both(model, feeds, threads)
    assert got["mask"].all()


@pytest.mark.parametrize("threads", THREADS)
def test_training_dropout_with_zero_ratio_is_identity(threads):
    feeds = {"x": RNG.uniform(-1, 1, (4, 6)).astype(np.float32),
             "training": np.array(True)}
    node = helper.make_node("Dropout", ["x", "ratio", "training"], ["y"])
    model = model_of([node], feeds, {"y": (np.float32, (4, 6))},
                     initializers={"ratio": np.array(0.0, np.float32)}, opset=13)
    run_both(model, feeds, threads)


def test_training_dropout_with_a_constant_nonzero_ratio_is_declined():
    feeds = {"x": np.zeros((4, 6), np.float32)}
    inits = {"training": np.array(True), "ratio": np.array(0.5, np.float32)}
    node = helper.make_node("Dropout", ["x", "ratio", "training"], ["y", "mask"])
    model = model_of([node], feeds, {"y": (np.float32, (4, 6)), "mask": (np.bool_, (4, 6))},
                     initializers=inits, opset=13)
    declines(model, "drops elements at random")


@pytest.mark.parametrize("ratio_dtype", [np.float32, np.float16, np.float64])
def test_dropout_with_run_time_flag_is_left_to_the_reference(ratio_dtype):
    """The flag and ratio are graph inputs: the node may drop at random, so cpu_llvm declines
    it and the reference draws the mask from the node's seed."""
    x = RNG.uniform(-1, 1, (4, 6)).astype(np.float32)
    feeds = {"x": x, "ratio": np.array(0.25, ratio_dtype), "training": np.array(True)}
    node = helper.make_node("Dropout", ["x", "ratio", "training"], ["y", "mask"], seed=3)
    model = model_of([node], feeds, {"y": (np.float32, (4, 6)), "mask": (np.bool_, (4, 6))},
                     opset=13)
    declines(model, "drops elements at random")
    compiled = byoc.compile(model, plugins=["cpu_llvm"])
    dropped = compiled.run(feeds)
    np.testing.assert_allclose(dropped["y"], x * dropped["mask"] / 0.75, rtol=1e-6)
    assert 0 < dropped["mask"].sum() < x.size
    np.testing.assert_array_equal(compiled.run(feeds)["mask"], dropped["mask"])  # seeded
    off = {**feeds, "training": np.array(False)}
    np.testing.assert_array_equal(compiled.run(off)["y"], x)
    assert compiled.run(off)["mask"].all()


# -- Pad with a run-time constant value ---------------------------------------------------------

@pytest.mark.parametrize("threads", THREADS)
@pytest.mark.parametrize("dtype", [np.float32, np.float16, np.int64, np.uint8, np.bool_])
@pytest.mark.parametrize("pads,axes", [([1, 0, 2, 3, 1, 0], None), ([2, -1], [-1]),
                                       ([0, 0, 0, 0, 0, 0], None)])
def test_pad_run_time_value(dtype, pads, axes, threads):
    x = RNG.integers(0, 2 if dtype == np.bool_ else 50, (2, 3, 4)).astype(dtype)
    feeds = {"x": x, "value": np.array(1 if dtype == np.bool_ else 7, dtype)}
    inputs = ["x", "pads", "value"] + (["axes"] if axes else [])
    inits = {"pads": np.array(pads, np.int64)}
    if axes:
        inits["axes"] = np.array(axes, np.int64)
    shape = list(x.shape)
    for i, axis in enumerate(axes or range(x.ndim)):
        shape[axis] += pads[i] + pads[len(pads) // 2 + i]
    model = model_of([helper.make_node("Pad", inputs, ["y"])], feeds,
                     {"y": (dtype, shape)}, initializers=inits, opset=18)
    run_both(model, feeds, threads)
