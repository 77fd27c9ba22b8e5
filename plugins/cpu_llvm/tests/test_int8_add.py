"""DequantizeLinear(a), DequantizeLinear(b) -> Add -> [Relu] -> QuantizeLinear (the residual
Add of onnxruntime's QDQ models) runs on cpu_llvm as one kernel on the quantized values,
bit-exact with the reference's float32 evaluation: every pair of codes, rounding ties,
saturation, sizes that are not a multiple of the vector width, 1 and 2 threads."""

from __future__ import annotations

import numpy as np
import pytest
from cpu_llvm_checks import exact_with_lowering_count
from onnx import TensorProto as T
from onnx import helper

from byoc.core.importer import import_model
from byoc.core.qdq import find_qdq_groups
from byoc.testing import compile_reference, make_model
from byoc_cpu_llvm.kernels import LOWERINGS
from byoc_cpu_llvm.qdq_groups import qdq_add_refusal

TT = {np.dtype(np.uint8): T.UINT8, np.dtype(np.int8): T.INT8}


def add_model(dtype, shape, scales, zeros, relu=False, b_shape=None):
    """a, b (quantized inputs) -> DequantizeLinear each -> Add -> [Relu] -> QuantizeLinear
    -> y; ``scales`` and ``zeros`` are those of a, b and y."""
    dtype = np.dtype(dtype)
    b_shape = shape if b_shape is None else b_shape
    init = {}
    for name, scale, zero in zip("aby", scales, zeros):
        init[f"{name}_s"] = np.float32(scale)
        init[f"{name}_z"] = np.array(zero, dtype)
    nodes = [helper.make_node("DequantizeLinear", ["a", "a_s", "a_z"], ["ad"]),
             helper.make_node("DequantizeLinear", ["b", "b_s", "b_z"], ["bd"]),
             helper.make_node("Add", ["ad", "bd"], ["sum"], name="add")]
    if relu:
        nodes.append(helper.make_node("Relu", ["sum"], ["pos"]))
    nodes.append(helper.make_node("QuantizeLinear", [nodes[-1].output[0], "y_s", "y_z"],
                                  ["y"]))
    return make_model(nodes, [("a", TT[dtype], shape), ("b", TT[dtype], b_shape)],
                      [("y", TT[dtype], shape)], init, opset=13)


def run_exact(model, feeds, monkeypatch) -> float:
    """Bit-exact with the reference at 1 and 2 threads; quantized-add kernels per compile."""
    return exact_with_lowering_count(model, feeds, monkeypatch, "lower_qdq_add")


def every_code_pair(dtype) -> dict[str, np.ndarray]:
    """a and b holding each of the 65536 pairs of codes once."""
    info = np.iinfo(dtype)
    codes = np.arange(info.min, info.max + 1).astype(dtype)
    a, b = np.meshgrid(codes, codes, indexing="ij")
    return {"a": a.reshape(1, 256, 16, 16), "b": b.reshape(1, 256, 16, 16)}


# Scales (found by search) for which rounding the sum otherwise changes some codes that do not
# saturate: an FMA of one product and the other (about 40 of the 65536 pairs), or multiplying
# by the reciprocal of the output scale instead of dividing (28). About a third of the pairs
# saturate at each end.
SCALES = (0.0418, 0.0235, 0.012)


def codes_by_reciprocal(dtype, zeros) -> np.ndarray:
    """The output codes of every pair when the division by the output scale is a product by
    its reciprocal (the kernel must not do that)."""
    pairs = every_code_pair(dtype)
    a_scale, b_scale, y_scale = (np.float32(s) for s in SCALES)
    total = ((pairs["a"].astype(np.float32) - zeros[0]) * a_scale
             + (pairs["b"].astype(np.float32) - zeros[1]) * b_scale)
    steps = np.rint(total * (np.float32(1) / y_scale)) + zeros[2]
    info = np.iinfo(dtype)
    return np.clip(steps, info.min, info.max).astype(dtype)


@pytest.mark.parametrize("relu", [False, True], ids=["add", "add_relu"])
@pytest.mark.parametrize("dtype", [np.uint8, np.int8])
def test_every_pair_of_codes_is_exact(dtype, relu, monkeypatch):
    zeros = (131, 120, 125) if dtype == np.uint8 else (3, -8, -2)
    plain = add_model(dtype, [1, 256, 16, 16], SCALES, zeros)
    expected = compile_reference(plain).run(every_code_pair(dtype))["y"]
    assert np.any(codes_by_reciprocal(dtype, zeros) != expected)  # the scales tell apart
    model = add_model(dtype, [1, 256, 16, 16], SCALES, zeros, relu)
    assert run_exact(model, every_code_pair(dtype), monkeypatch) == 1


@pytest.mark.parametrize("dtype", [np.uint8, np.int8])
def test_rounding_ties_go_to_even(dtype, monkeypatch):
    # With scales 0.5, 0.25 and 1 every sum is exact and a quarter of them end in .5: rounding
    # them half away from zero, or truncating, changes half of those.
    zeros = (128, 128, 128) if dtype == np.uint8 else (0, 0, 0)
    model = add_model(dtype, [1, 256, 16, 16], (0.5, 0.25, 1.0), zeros)
    assert run_exact(model, every_code_pair(dtype), monkeypatch) == 1


@pytest.mark.parametrize("relu", [False, True], ids=["add", "add_relu"])
@pytest.mark.parametrize("dtype", [np.uint8, np.int8])
@pytest.mark.parametrize("shape", [[1, 3, 7, 5], [2, 64, 9, 9], [1, 17]])
def test_odd_sizes_are_exact(dtype, shape, relu, monkeypatch):
    # 105, 10368 and 17 elements: a tail after the last whole vector, a single short tail.
    info = np.iinfo(dtype)
    rng = np.random.default_rng(sum(shape))
    feeds = {name: rng.integers(info.min, info.max + 1, shape).astype(dtype) for name in "ab"}
    zeros = (100, 140, 128) if dtype == np.uint8 else (-20, 9, 0)
    model = add_model(dtype, shape, (0.021, 0.017, 0.029), zeros, relu)
    assert run_exact(model, feeds, monkeypatch) == 1


def test_broadcast_add_is_declined_and_still_exact(monkeypatch):
    # A per-channel b: not the residual case, so the float kernels run it, as before.
    shape, b_shape = [1, 8, 5, 5], [8, 1, 1]
    model = add_model(np.uint8, shape, (0.03, 0.05, 0.04), (128, 100, 120), b_shape=b_shape)
    graph = import_model(model)
    (group,) = find_qdq_groups(graph, ops=("Add",))
    assert "one shape" in qdq_add_refusal(graph, group)
    rng = np.random.default_rng(1)
    feeds = {"a": rng.integers(0, 256, shape).astype(np.uint8),
             "b": rng.integers(0, 256, b_shape).astype(np.uint8)}
    assert run_exact(model, feeds, monkeypatch) == 0


def test_residual_block_leaves_no_float_dequantize(monkeypatch):
    # As in the int8 ResNet of the benchmark corpus: the DequantizeLinear of the block input
    # feeds both the Conv (an integer kernel) and the residual Add, so once both run on the
    # quantized values no DequantizeLinear runs at all.
    shape = [1, 8, 9, 9]
    rng = np.random.default_rng(2)
    init = {"x_s": np.float32(0.031), "x_z": np.uint8(0), "w": ints(rng, np.int8, [8, 8, 3, 3]),
            "w_s": np.float32(0.011), "w_z": np.int8(0), "c_s": np.float32(0.027),
            "c_z": np.uint8(0), "y_s": np.float32(0.044), "y_z": np.uint8(0)}
    nodes = [helper.make_node("DequantizeLinear", ["x", "x_s", "x_z"], ["xd"]),
             helper.make_node("DequantizeLinear", ["w", "w_s", "w_z"], ["wd"]),
             helper.make_node("Conv", ["xd", "wd"], ["c"], pads=[1, 1, 1, 1]),
             helper.make_node("QuantizeLinear", ["c", "c_s", "c_z"], ["cq"]),
             helper.make_node("DequantizeLinear", ["cq", "c_s", "c_z"], ["cd"]),
             helper.make_node("Add", ["cd", "xd"], ["sum"], name="residual"),
             helper.make_node("QuantizeLinear", ["sum", "y_s", "y_z"], ["y"])]
    model = make_model(nodes, [("x", T.UINT8, shape)], [("y", T.UINT8, shape)], init,
                       opset=13)
    dequantized = []
    emit = LOWERINGS["DequantizeLinear"]
    monkeypatch.setitem(LOWERINGS, "DequantizeLinear",
                        lambda program, group: dequantized.append(group) or emit(program, group))
    assert run_exact(model, {"x": ints(rng, np.uint8, shape)}, monkeypatch) == 1
    assert dequantized == []


def ints(rng, dtype, shape):
    info = np.iinfo(dtype)
    return rng.integers(info.min, int(info.max) + 1, shape).astype(dtype)
