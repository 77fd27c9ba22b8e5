"""cpu_llvm declines every node with an input or output of an element type it has no LLVM
type for (bfloat16, float8, 4-bit integers, strings...): the reference computes those nodes,
the partition report says why, and the model computes what the reference alone computes."""

from __future__ import annotations

import ml_dtypes
import numpy as np
import pytest
from onnx import TensorProto as T
from onnx import helper, numpy_helper

import byoc
from byoc.core.dtypes import onnx_type_name, to_numpy
from byoc.report.html import render_html_report
from byoc.testing import compile_reference, make_model


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("BYOC_CACHE_DIR", str(tmp_path))


def narrowing_model(narrow_type: int):
    """x -> Relu -> Cast to ``narrow_type`` -> Cast back to float -> Sigmoid -> y."""
    nodes = [helper.make_node("Relu", ["x"], ["relu"], name="relu"),
             helper.make_node("Cast", ["relu"], ["narrow"], to=narrow_type, name="to_narrow"),
             helper.make_node("Cast", ["narrow"], ["wide"], to=T.FLOAT, name="to_float"),
             helper.make_node("Sigmoid", ["wide"], ["y"], name="sigmoid")]
    model = make_model(nodes, [("x", T.FLOAT, [4, 8])], [("y", T.FLOAT, [4, 8])], opset=21)
    model.ir_version = 10
    return model


@pytest.mark.parametrize("narrow_type", [T.BFLOAT16, T.FLOAT8E4M3FN, T.FLOAT8E5M2FNUZ,
                                         T.INT4, T.UINT4, T.STRING], ids=onnx_type_name)
def test_nodes_of_types_without_an_llvm_type_go_to_the_reference_with_the_reason(
        narrow_type):
    model = narrowing_model(narrow_type)
    compiled = byoc.compile(model)
    explanations = compiled.plan.explanations
    assert explanations["relu"].plugin == explanations["sigmoid"].plugin == "cpu_llvm"
    type_name = to_numpy(narrow_type).name
    for cast, role in (("to_narrow", "output"), ("to_float", "input")):
        assert explanations[cast].plugin == "reference"
        assert explanations[cast].reasons["cpu_llvm"] == [
            f"cpu_llvm.cast: cpu_llvm has no LLVM type for element type {type_name} "
            f"({role} 'narrow')"]
    report = render_html_report(compiled.graph, compiled.plan, "dtypes", use_graphviz=False)
    assert f"cpu_llvm has no LLVM type for element type {type_name}" in report
    x = np.random.default_rng(0).uniform(-3, 12, (4, 8)).astype(np.float32)
    np.testing.assert_allclose(compiled.run({"x": x})["y"],
                               compile_reference(model).run({"x": x})["y"], rtol=1e-6)


def test_int4_weights_are_dequantized_on_the_reference_and_multiplied_on_cpu_llvm():
    nodes = [helper.make_node("DequantizeLinear", ["w", "ws"], ["wd"], axis=0, block_size=2,
                              name="dequantize"),
             helper.make_node("MatMul", ["x", "wd"], ["y"], name="matmul")]
    model = make_model(nodes, [("x", T.FLOAT, [3, 4]), ("w", T.INT4, [4, 4])],
                       [("y", T.FLOAT, [3, 4])], opset=21)
    model.graph.initializer.append(numpy_helper.from_array(
        np.array([[0.5, 0.25, 1, 2], [1, 1, 0.5, 0.125]], np.float32), "ws"))
    model.ir_version = 10
    compiled = byoc.compile(model)
    explanations = compiled.plan.explanations
    assert explanations["matmul"].plugin == "cpu_llvm"
    assert explanations["dequantize"].plugin == "reference"
    assert ("cpu_llvm.dequantizelinear: cpu_llvm has no LLVM type for element type int4 "
            "(input 'w')") in explanations["dequantize"].reasons["cpu_llvm"]
    feeds = {"x": np.random.default_rng(1).standard_normal((3, 4)).astype(np.float32),
             "w": np.arange(-8, 8).reshape(4, 4).astype(ml_dtypes.int4)}
    np.testing.assert_allclose(compiled.run(feeds)["y"],
                               compile_reference(model).run(feeds)["y"], rtol=1e-6)
