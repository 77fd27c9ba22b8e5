"""Every model of the real-world-shaped corpus (zoo_forms.py) runs on onnxruntime, which is the
premise, and byoc agrees with onnxruntime on it within 1e-4 relative: on the reference
interpreter alone and with the default plugins (cpu_llvm, the reference taking what it
declines). The corpus keeps every form issue 17 names; the CLI shows and runs a few of the
models."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

import byoc
from byoc.testing import compile_reference
from real_models import zoo_forms
from real_models.checks import assert_matches_onnxruntime

MODEL_NAMES = list(zoo_forms.MODELS)


def declared_dims(value) -> list[int] | None:
    """A declared output's dims, or None when its shape is missing or not fully static."""
    tensor_type = value.type.tensor_type
    if not value.type.HasField("tensor_type") or not tensor_type.HasField("shape"):
        return None
    dims = [d.dim_value if d.HasField("dim_value") else None for d in tensor_type.shape.dim]
    return None if None in dims else dims


def test_corpus_holds_every_form_of_issue_17(corpus):
    models = {name: corpus.model(name) for name in MODEL_NAMES}
    graphs = [model.graph for model in models.values()]

    def initializers_listed_as_inputs(graph) -> bool:
        inputs = {value.name for value in graph.input}
        return all(tensor.name in inputs for tensor in graph.initializer)

    def attributes(graph, op_type: str) -> list[dict]:
        return [{a.name: a for a in node.attribute} for node in graph.node
                if node.op_type == op_type]

    assert any(model.ir_version == 3 and not initializers_listed_as_inputs(model.graph)
               for model in models.values())
    assert any(model.ir_version >= 4 and initializers_listed_as_inputs(model.graph)
               and model.graph.initializer for model in models.values())
    default_opsets = {opset.version for model in models.values() for opset in model.opset_import
                      if opset.domain == ""}
    assert {7, 8, 9, 10, 11, 12, 13} <= default_opsets
    assert any(len(model.opset_import) > 1 for model in models.values())
    inputs = [value for graph in graphs for value in graph.input]
    assert any(dim.dim_param for value in inputs for dim in value.type.tensor_type.shape.dim)
    outputs = [value for graph in graphs for value in graph.output]
    assert any(not value.type.HasField("tensor_type") for value in outputs)
    assert any(value.type.HasField("tensor_type")
               and not value.type.tensor_type.HasField("shape") for value in outputs)
    dropouts = [node for graph in graphs for node in graph.node if node.op_type == "Dropout"]
    assert any(len(node.output) == 2 and len(node.input) == 1 for node in dropouts)
    assert any(len(node.output) == 2 and len(node.input) == 3 for node in dropouts)
    assert any(node.op_type == "Constant" for graph in graphs for node in graph.node)
    op_types = {node.op_type for graph in graphs for node in graph.node}
    assert {"LRN", "Dropout", "GlobalAveragePool", "Upsample", "Sum", "Max", "Concat", "Flatten",
            "Erf", "Where", "Expand", "LayerNormalization", "ReduceMean", "Pow", "Sqrt",
            "Tanh", "Split", "Range", "InstanceNormalization", "LSTM", "TopK",
            "NonMaxSuppression", "ImageScaler"} <= op_types
    assert any("ceil_mode" in a for graph in graphs for a in attributes(graph, "MaxPool"))
    assert any(a.get("auto_pad") and a["auto_pad"].s == b"SAME_UPPER"
               for graph in graphs for a in attributes(graph, "Conv"))
    assert any(not node.name for graph in graphs for node in graph.node)
    assert any(node.doc_string for graph in graphs for node in graph.node)
    assert any(model.metadata_props for model in models.values())


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_onnxruntime_runs_the_model(corpus, name):
    outputs = corpus.onnxruntime_outputs(name)
    declared = corpus.model(name).graph.output
    assert list(outputs) == [value.name for value in declared]
    for value in declared:
        dims = declared_dims(value)
        assert dims is None or list(outputs[value.name].shape) == dims, value.name
        assert np.isfinite(outputs[value.name]).all(), value.name


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_reference_matches_onnxruntime(corpus, name):
    model = corpus.model(name)
    as_built = model.SerializeToString()
    compiled = compile_reference(model, input_shapes=corpus.input_shapes(name))
    assert model.SerializeToString() == as_built, "byoc changed the caller's model"
    assert_matches_onnxruntime(compiled.run(corpus.feeds(name)),
                               corpus.onnxruntime_outputs(name), f"{name} on the reference")


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_default_plugins_match_onnxruntime(corpus, name):
    compiled = byoc.compile(corpus.model(name), input_shapes=corpus.input_shapes(name))
    assert "cpu_llvm" in {part.plugin for part in compiled.parts}, \
        f"{name}: cpu_llvm took no partition, so this only repeats the reference's test"
    assert_matches_onnxruntime(compiled.run(corpus.feeds(name)),
                               corpus.onnxruntime_outputs(name), f"{name} on the default plugins")


def test_initializers_listed_as_inputs_are_constants_when_not_fed(corpus):
    # IR 4 models list their weights among the inputs too; byoc must not ask for them.
    name = "vgg16_pytorch"
    model = corpus.model(name)
    initializers = {tensor.name for tensor in model.graph.initializer}
    assert initializers <= {value.name for value in model.graph.input}
    assert compile_reference(model).graph.inputs == ["input.1"]


def test_detector_runs_its_value_dependent_tail_after_the_static_graph(corpus):
    # The NonMaxSuppression's selected boxes depend on the scores' values: it and the Gathers
    # of the selected boxes form the dynamic tail; the TopK, whose k is a constant, and the
    # whole backbone stay static, on cpu_llvm.
    name = "detector_pytorch"
    compiled = byoc.compile(corpus.model(name), input_shapes=corpus.input_shapes(name))
    assert [root.op_type for root in compiled.tail.roots] == ["NonMaxSuppression"]
    assert [node.op_type for node in compiled.tail.nodes] == ["NonMaxSuppression", "Gather",
                                                              "Gather"]
    assert compiled.outputs["detections"] is None
    assert compiled.outputs["top_scores"].shape == (1, 10)
    assert {e.plugin for e in compiled.plan.explanations.values()} == {"cpu_llvm"}
    with pytest.raises(byoc.ByocError, match="'NonMaxSuppression_14'.*depends on the values"):
        byoc.compile(corpus.model(name), dynamic_tail=False)


def byoc_cli(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "byoc", *map(str, args)],
                          capture_output=True, text=True, timeout=300)


def assert_clean_exit(result: subprocess.CompletedProcess) -> None:
    assert "Traceback" not in result.stderr, result.stderr
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("name", ["alexnet_caffe2", "opset7_forms_cntk", "gpt2_pytorch",
                                  "detector_pytorch"])
def test_cli_runs_the_model_with_seeded_inputs(corpus, name):
    model = corpus.model(name)
    result = byoc_cli("run", corpus.path(name), "--seed", "0")
    assert_clean_exit(result)
    for value in model.graph.output:
        assert f"output {value.name}: " in result.stdout


@pytest.mark.parametrize("name", ["googlenet_caffe2", "vgg19_keras", "tiny_yolov2_winmltools"])
def test_cli_shows_the_model(corpus, name):
    model = corpus.model(name)
    result = byoc_cli("show", corpus.path(name))
    assert_clean_exit(result)
    assert result.stdout.startswith(f"graph {model.graph.name} ")
    for value in model.graph.output:
        assert f"%{value.name}: " in result.stdout
