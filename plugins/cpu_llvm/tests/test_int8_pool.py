"""DequantizeLinear -> MaxPool -> QuantizeLinear with one scale and zero point runs on
cpu_llvm as a MaxPool on the quantized values, bit-exact with the reference's float pool."""

from __future__ import annotations

import numpy as np
import pytest
from cpu_llvm_checks import exact_with_lowering_count
from onnx import TensorProto as T
from onnx import helper

from byoc.testing import compile_reference, make_model

TT = {np.dtype(np.uint8): T.UINT8, np.dtype(np.int8): T.INT8}
CASES = {  # attrs, input shape
    "3x3 stride 2 pad 1 (ResNet's stem)": ({"kernel_shape": [3, 3], "strides": [2, 2],
                                           "pads": [1, 1, 1, 1]}, [2, 3, 13, 11]),
    "2x2 stride 2 ceil_mode": ({"kernel_shape": [2, 2], "strides": [2, 2], "ceil_mode": 1},
                               [1, 5, 9, 7]),
    "asymmetric pads, dilation": ({"kernel_shape": [3, 2], "pads": [0, 1, 2, 0],
                                   "dilations": [2, 1]}, [1, 2, 7, 37]),
    "1-D": ({"kernel_shape": [4], "strides": [3], "pads": [2, 1]}, [2, 3, 19]),
}


def pool_model(dtype, attrs, x_shape, out_scale=0.05, out_zero=None):
    """x -> QuantizeLinear -> DequantizeLinear -> MaxPool -> QuantizeLinear -> y (the
    quantized output), the input's zero point in the middle of the range."""
    dtype = np.dtype(dtype)
    zero = 128 if dtype == np.uint8 else -3
    init = {"s": np.float32(0.05), "z": np.array(zero, dtype),
            "os": np.float32(out_scale), "oz": np.array(zero if out_zero is None else out_zero,
                                                        dtype)}
    nodes = [helper.make_node("QuantizeLinear", ["x", "s", "z"], ["xq"]),
             helper.make_node("DequantizeLinear", ["xq", "s", "z"], ["xd"]),
             helper.make_node("MaxPool", ["xd"], ["p"], name="pool", **attrs),
             helper.make_node("QuantizeLinear", ["p", "os", "oz"], ["y"])]
    reference = compile_reference(make_model(nodes, [("x", T.FLOAT, x_shape)],
                                             [("y", TT[dtype], None)], init, opset=13))
    y_shape = list(reference.run({"x": np.zeros(x_shape, np.float32)})["y"].shape)
    return make_model(nodes, [("x", T.FLOAT, x_shape)], [("y", TT[dtype], y_shape)], init,
                      opset=13)


def run_exact(model, x_shape, monkeypatch) -> float:
    """Bit-exact with the reference at 1 and 2 threads; quantized pools per compile."""
    # Most windows hold values on both sides of the zero point, some only below it (where a
    # padding of the zero point would win), and both ends of the range saturate.
    x = np.random.default_rng(0).uniform(-8, 8, x_shape).astype(np.float32)
    return exact_with_lowering_count(model, {"x": x}, monkeypatch, "lower_qdq_pool")


@pytest.mark.parametrize("dtype", [np.uint8, np.int8])
@pytest.mark.parametrize("case", list(CASES))
def test_quantized_max_pool_is_exact(dtype, case, monkeypatch):
    attrs, x_shape = CASES[case]
    assert run_exact(pool_model(dtype, attrs, x_shape), x_shape, monkeypatch) == 1


@pytest.mark.parametrize("out_scale,out_zero", [(0.07, None), (0.05, 5)])
def test_other_output_scale_or_zero_point_keeps_the_float_pool(out_scale, out_zero,
                                                               monkeypatch):
    attrs, x_shape = CASES["3x3 stride 2 pad 1 (ResNet's stem)"]
    model = pool_model(np.uint8, attrs, x_shape, out_scale, out_zero)
    assert run_exact(model, x_shape, monkeypatch) == 0
