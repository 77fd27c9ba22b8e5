"""An int8 zoo CNN as users make one, with onnxruntime's quantize_static (QDQ), on the
accelerator plugins: every convolution runs on the accelerator, and the outputs stay within
one quantization step of onnxruntime's."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

import byoc
from real_models import zoo_forms
from real_models.checks import run_onnxruntime

PARENT = "squeezenet1_1_pytorch"
ACCELERATORS = ["vta_sim", "npu_example"]


@pytest.fixture(scope="module")
def int8_model(corpus) -> onnx.ModelProto:
    return zoo_forms.quantized_qdq(corpus.model(PARENT))


def quantization_step(model: onnx.ModelProto, output: str) -> float:
    """The scale of the DequantizeLinear that produces the float ``output``."""
    (producer,) = [node for node in model.graph.node if output in node.output]
    assert producer.op_type == "DequantizeLinear", f"{output} comes from {producer.op_type}"
    initializers = {tensor.name: tensor for tensor in model.graph.initializer}
    return float(numpy_helper.to_array(initializers[producer.input[1]]))


def test_int8_model_is_qdq_and_runs_on_onnxruntime(int8_model, corpus):
    dequantized = {node.output[0] for node in int8_model.graph.node
                   if node.op_type == "DequantizeLinear"}
    convs = [node for node in int8_model.graph.node if node.op_type == "Conv"]
    assert len(convs) == sum(node.op_type == "Conv" for node in corpus.model(PARENT).graph.node)
    assert all(set(conv.input) <= dequantized for conv in convs)
    (output,) = run_onnxruntime(int8_model, zoo_forms.feeds_for(int8_model)).values()
    assert output.shape == (1, 10) and np.isfinite(output).all()


@pytest.mark.parametrize("plugin", ACCELERATORS)
def test_accelerator_matches_onnxruntime_within_one_step(int8_model, plugin):
    # by priority: the accelerator takes every layer it can (by cost, the host may be faster)
    compiled = byoc.compile(int8_model, plugins=[plugin], placement="priority")
    placed = {e.plugin for e in compiled.plan.explanations.values() if e.op == "Conv"}
    assert placed == {plugin}, f"convolutions ran on {sorted(placed)}"
    (output,) = [value.name for value in int8_model.graph.output]
    step = quantization_step(int8_model, output)
    for seed in (0, 1):
        feeds = zoo_forms.feeds_for(int8_model, seed)
        theirs = run_onnxruntime(int8_model, feeds)[output]
        steps = np.abs(compiled.run(feeds)[output] - theirs) / step
        assert steps.max() <= 1 + 1e-4, f"{plugin}, seed {seed}: {steps.max():.3f} steps off"
