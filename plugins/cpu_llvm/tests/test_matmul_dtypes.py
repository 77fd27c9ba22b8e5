"""float16 and float64 MatMul on cpu_llvm (float64-accumulated dot products) against the
reference interpreter."""

from __future__ import annotations

import numpy as np
import pytest
from cpu_llvm_checks import compile_alone
from onnx import TensorProto, helper

from byoc.testing import compile_reference, make_model

THREADS = (1, 2)
DTYPES = {np.float16: (TensorProto.FLOAT16, 1e-3), np.float64: (TensorProto.DOUBLE, 1e-12)}
SHAPES = [
    ((5, 7), (7, 3)),            # 2-D
    ((4, 1, 3, 6), (2, 6, 5)),   # batched, batch dims broadcast both ways
    ((2, 3, 4), (4, 5)),         # batched A, shared 2-D B
    ((6,), (6, 4)),              # 1-D x 2-D
    ((3, 6), (6,)),              # 2-D x 1-D
    ((2, 3, 6), (6,)),           # batched x 1-D
]


def _model(a_shape, b_shape, elem, out_shape, epilogue=None):
    nodes = [helper.make_node("MatMul", ["a", "b"], ["y" if epilogue is None else "t"])]
    inputs = [("a", elem, list(a_shape)), ("b", elem, list(b_shape))]
    if epilogue is not None:
        bias_shape = epilogue
        nodes += [helper.make_node("Add", ["t", "bias"], ["u"]),
                  helper.make_node("Relu", ["u"], ["y"])]
        inputs.append(("bias", elem, list(bias_shape)))
    return make_model(nodes, inputs, [("y", elem, list(out_shape))], opset=17)


def _check(model, feeds, rtol):
    reference = compile_reference(model).run(feeds)
    for threads in THREADS:
        ours = compile_alone(model, threads).run(feeds)
        for name, expected in reference.items():
            assert ours[name].dtype == expected.dtype
            scale = max(1.0, float(np.abs(expected.astype(np.float64)).max()))
            np.testing.assert_allclose(ours[name], expected, rtol=rtol, atol=rtol * scale,
                                       err_msg=f"{name} with {threads} threads")


@pytest.mark.parametrize("dtype", list(DTYPES), ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("a_shape,b_shape", SHAPES, ids=str)
def test_matmul_dtype(dtype, a_shape, b_shape):
    elem, rtol = DTYPES[dtype]
    rng = np.random.default_rng(0)
    out_shape = np.matmul(np.zeros(a_shape), np.zeros(b_shape)).shape
    feeds = {"a": rng.standard_normal(a_shape).astype(dtype),
             "b": rng.standard_normal(b_shape).astype(dtype)}
    _check(_model(a_shape, b_shape, elem, out_shape), feeds, rtol)


@pytest.mark.parametrize("dtype", list(DTYPES), ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("a_shape,b_shape,bias_shape", [
    ((5, 7), (7, 3), (3,)),
    ((4, 1, 3, 6), (2, 6, 5), (2, 3, 1)),
    ((6,), (6, 4), (4,)),
    ((3, 6), (6,), (3,)),
], ids=str)
def test_matmul_dtype_epilogue(dtype, a_shape, b_shape, bias_shape):
    elem, rtol = DTYPES[dtype]
    rng = np.random.default_rng(1)
    out_shape = np.matmul(np.zeros(a_shape), np.zeros(b_shape)).shape
    feeds = {"a": rng.standard_normal(a_shape).astype(dtype),
             "b": rng.standard_normal(b_shape).astype(dtype),
             "bias": rng.standard_normal(bias_shape).astype(dtype)}
    _check(_model(a_shape, b_shape, elem, out_shape, bias_shape), feeds, rtol)


@pytest.mark.parametrize("dtype", list(DTYPES), ids=lambda d: np.dtype(d).name)
def test_matmul_dtype_constant_b(dtype):
    elem, rtol = DTYPES[dtype]
    rng = np.random.default_rng(2)
    weight = rng.standard_normal((2, 6, 5)).astype(dtype)
    model = make_model([helper.make_node("MatMul", ["a", "w"], ["y"])],
                       [("a", elem, [3, 1, 4, 6])], [("y", elem, [3, 2, 4, 5])],
                       initializers={"w": weight}, opset=17)
    _check(model, {"a": rng.standard_normal((3, 1, 4, 6)).astype(dtype)}, rtol)
