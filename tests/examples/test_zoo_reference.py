"""Every example model imports, verifies, prints and runs on the reference interpreter, and
agrees with onnxruntime: fp32 models within 1e-4 relative error, int8 models exactly on at
least 99% of output elements and within one quantization step everywhere."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
from conftest import zoo

import byoc
from byoc.core.printer import format_graph
from byoc.core.verify import verify
from byoc.testing import compile_reference

FP32_MODELS = ["mlp", "cnn", "resnet18", "mobilenet", "transformer"]
INT8_MODELS = ["cnn_int8", "resnet18_int8", "mobilenet_int8"]
# Share of int8 output elements that must equal onnxruntime exactly (the bar; with
# quantized groups evaluated as integer operations the zoo models agree on all of them).
EXACT_SHARE = 0.99


def reference_and_ort(zoo_dir, name, seed=0):
    path = zoo_dir / f"{name}.onnx"
    feeds = zoo.sample_inputs(path, seed=seed)
    compiled = compile_reference(path)
    ours = compiled.run(feeds)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    theirs = dict(zip([o.name for o in session.get_outputs()], session.run(None, feeds)))
    return compiled, ours, theirs


@pytest.mark.parametrize("name", FP32_MODELS + INT8_MODELS)
def test_imports_verifies_and_prints(zoo_dir, name):
    graph = byoc.import_model(zoo_dir / f"{name}.onnx")
    verify(graph)
    text = format_graph(graph)
    assert text.startswith(f"graph {name} ")
    assert all(f"# {node.name}" in text for node in graph.nodes)


@pytest.mark.parametrize("name", FP32_MODELS)
def test_fp32_model_matches_onnxruntime(zoo_dir, name):
    _, ours, theirs = reference_and_ort(zoo_dir, name)
    assert ours.keys() == theirs.keys()
    for key, expected in theirs.items():
        error = np.abs(ours[key] - expected).max() / np.abs(expected).max()
        assert error <= 1e-4, f"{name}:{key} relative error {error:.2e}"


@pytest.mark.parametrize("name", INT8_MODELS)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_int8_model_matches_onnxruntime_within_one_step(zoo_dir, name, seed):
    compiled, ours, theirs = reference_and_ort(zoo_dir, name, seed)
    graph = compiled.graph
    (output,) = graph.outputs
    dequantize = graph.producers()[output]
    assert dequantize.op_type == "DequantizeLinear"
    step = graph.constants[dequantize.inputs[1]]
    steps = np.abs(ours[output] - theirs[output]) / step
    assert steps.max() <= 1 + 1e-4, f"{name}: {steps.max():.3f} steps off"
    assert np.mean(steps < 1e-3) >= EXACT_SHARE


def test_int8_groups_survive_the_core_passes(zoo_dir):
    from byoc.core.qdq import find_qdq_groups

    graph = compile_reference(zoo_dir / "resnet18_int8.onnx").graph
    convs = [n for n in graph.nodes if n.op_type == "Conv"]
    grouped = {g.op.name for g in find_qdq_groups(graph)}
    assert len(convs) == 20 and all(c.name in grouped for c in convs)
