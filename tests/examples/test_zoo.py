"""The example model zoo (examples/zoo.py): valid, runnable, quantized as promised, reproducible."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from conftest import ZOO_PATH, zoo
from onnx import numpy_helper

OUTPUT_SHAPES = {
    "mlp": (1, 10),
    "cnn": (1, 10),
    "resnet18": (1, 1000),
    "mobilenet": (1, 10),
    "transformer": (1, 16, 64),
    "cnn_int8": (1, 10),
    "resnet18_int8": (1, 1000),
    "mobilenet_int8": (1, 10),
    "resnet50": (1, 1000),
    "vgg19": (1, 1000),
}
INT8_MODELS = [name for name, builder in zoo.MODELS.items() if isinstance(builder, zoo.Int8Variant)]


def load(zoo_dir: Path, name: str) -> onnx.ModelProto:
    return onnx.load(zoo_dir / f"{name}.onnx")


def run(path: Path, inputs: dict[str, np.ndarray]) -> np.ndarray:
    session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    (output,) = session.run(None, inputs)
    return output


def test_every_model_has_an_expected_output_shape():
    assert set(OUTPUT_SHAPES) == set(zoo.MODELS)


def test_default_models_are_all_but_the_benchmark_size_ones():
    assert set(zoo.BENCHMARK_MODELS) <= set(zoo.MODELS)
    assert set(zoo.DEFAULT_MODELS) == set(zoo.MODELS) - set(zoo.BENCHMARK_MODELS)


def test_resnet50_graph_is_resnet50_v1(monkeypatch):
    # All-zero weights skip the random draws: the graph, checked and shape-inferred by
    # GraphBuilder.model, is what is tested here, in about a second.
    def zeros(self, name, shape, *args, **kwargs):
        return self.constant(name, np.zeros(shape, np.float32))

    monkeypatch.setattr(zoo.GraphBuilder, "normal", zeros)
    monkeypatch.setattr(zoo.GraphBuilder, "uniform", zeros)
    model = zoo.resnet50()
    ops = [node.op_type for node in model.graph.node]
    assert (ops.count("Conv"), ops.count("BatchNormalization"), ops.count("Add")) == (53, 53, 16)
    assert ops.count("Gemm") == 1
    inferred = onnx.shape_inference.infer_shapes(model, strict_mode=True)
    dims = [dim.dim_value for dim in inferred.graph.output[0].type.tensor_type.shape.dim]
    assert tuple(dims) == OUTPUT_SHAPES["resnet50"]
    parameters = sum(int(np.prod(tensor.dims)) for tensor in model.graph.initializer
                     if "running" not in tensor.name)
    assert parameters == 25_557_032  # ResNet-50's parameter count, BN scale and bias included


@pytest.mark.parametrize("name", zoo.DEFAULT_MODELS)
def test_model_is_valid_opset17_named_after_itself(zoo_dir, name):
    model = load(zoo_dir, name)
    onnx.checker.check_model(model, full_check=True)
    assert model.graph.name == name
    assert [(opset.domain, opset.version) for opset in model.opset_import] == [("", 17)]
    assert [value.name for value in model.graph.input] == ["input"]


@pytest.mark.parametrize("name", zoo.DEFAULT_MODELS)
def test_model_runs_on_onnxruntime(zoo_dir, name):
    path = zoo_dir / f"{name}.onnx"
    output = run(path, zoo.sample_inputs(path))
    assert output.shape == OUTPUT_SHAPES[name]
    assert output.dtype == np.float32
    assert np.isfinite(output).all()


def test_resnet18_activations_neither_explode_nor_vanish(zoo_dir):
    path = zoo_dir / "resnet18.onnx"
    assert 1e-2 < run(path, zoo.sample_inputs(path)).std() < 1e2


def test_transformer_reshapes_to_a_shape_computed_from_shape(zoo_dir):
    graph = load(zoo_dir, "transformer").graph
    producers = {output: node for node in graph.node for output in node.output}

    def ancestor_ops(value: str) -> set[str]:
        node = producers.get(value)
        if node is None:
            return set()
        return {node.op_type}.union(*(ancestor_ops(name) for name in node.input))

    shape_ops = [ancestor_ops(node.input[1]) for node in graph.node if node.op_type == "Reshape"]
    assert any({"Shape", "Gather", "Concat"} <= ops for ops in shape_ops)


@pytest.mark.parametrize("name", INT8_MODELS)
def test_int8_model_is_qdq_with_per_channel_int8_weights(zoo_dir, name):
    graph = load(zoo_dir, name).graph
    initializers = {tensor.name: numpy_helper.to_array(tensor) for tensor in graph.initializer}
    dequantize_of = {node.output[0]: node for node in graph.node
                     if node.op_type == "DequantizeLinear"}
    op_types = {node.op_type for node in graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= op_types
    assert "BatchNormalization" not in op_types, "BatchNormalization should be folded into Conv"

    weighted = [node for node in graph.node if node.op_type in ("Conv", "Gemm")]
    assert weighted
    for node in weighted:
        dequantize = dequantize_of[node.input[1]]
        weight, scale, zero_point = (initializers[tensor] for tensor in dequantize.input)
        axis = next(attr.i for attr in dequantize.attribute if attr.name == "axis")
        assert weight.dtype == np.int8, node.name
        assert scale.shape == (weight.shape[axis],) and weight.shape[axis] > 1, node.name
        assert not zero_point.any(), f"{node.name}: int8 weights should be symmetric"


@pytest.mark.parametrize("name", INT8_MODELS)
def test_int8_model_stays_close_to_its_float_parent(zoo_dir, name):
    parent = zoo.MODELS[name].parent
    inputs = zoo.sample_inputs(zoo_dir / f"{parent}.onnx")
    expected = run(zoo_dir / f"{parent}.onnx", inputs)
    actual = run(zoo_dir / f"{name}.onnx", inputs)
    assert np.linalg.norm(actual - expected) / np.linalg.norm(expected) < 0.05


@pytest.mark.parametrize("name", INT8_MODELS)
def test_build_is_byte_identical_across_runs(zoo_dir, tmp_path, name):
    rebuilt = zoo.build(name, tmp_path)
    assert rebuilt.read_bytes() == (zoo_dir / f"{name}.onnx").read_bytes()


def test_script_in_a_fresh_process_rebuilds_the_same_bytes(zoo_dir, tmp_path):
    # A different hash seed reorders sets and dicts keyed by str, should anything depend on that.
    result = subprocess.run(
        [sys.executable, str(ZOO_PATH), "--out", str(tmp_path), "--only", "cnn_int8"],
        capture_output=True, text=True, check=True,
        env={**os.environ, "PYTHONHASHSEED": "12345"})
    written = [line.split()[0] for line in result.stdout.splitlines()]
    assert written == [str(tmp_path / "cnn.onnx"), str(tmp_path / "cnn_int8.onnx")]
    for name in ("cnn", "cnn_int8"):
        assert (tmp_path / f"{name}.onnx").read_bytes() == (zoo_dir / f"{name}.onnx").read_bytes()


def test_script_rejects_an_unknown_model_name(tmp_path):
    result = subprocess.run(
        [sys.executable, str(ZOO_PATH), "--out", str(tmp_path), "--only", "mlp,alexnet"],
        capture_output=True, text=True)
    assert result.returncode == 2
    assert "alexnet" in result.stderr and "resnet18" in result.stderr
    assert not list(tmp_path.iterdir())


def test_build_keeps_an_existing_file(tmp_path):
    path = zoo.build("mlp", tmp_path)
    written_at = path.stat().st_mtime_ns
    assert zoo.build("mlp", tmp_path) == path
    assert path.stat().st_mtime_ns == written_at


def test_build_rejects_an_unknown_name(tmp_path):
    with pytest.raises(ValueError, match="alexnet.*mlp, cnn"):
        zoo.build("alexnet", tmp_path)


def test_sample_inputs_follow_the_signature_and_the_seed(zoo_dir):
    path = zoo_dir / "transformer.onnx"
    inputs = zoo.sample_inputs(path)
    assert list(inputs) == ["input"]
    assert inputs["input"].shape == (1, 16, 64) and inputs["input"].dtype == np.float32
    np.testing.assert_array_equal(zoo.sample_inputs(onnx.load(path))["input"], inputs["input"])
    assert not np.array_equal(zoo.sample_inputs(path, seed=1)["input"], inputs["input"])


def test_sample_inputs_refuse_a_symbolic_dimension():
    model = zoo.mlp()
    model.graph.input[0].type.tensor_type.shape.dim[0].dim_param = "batch"
    with pytest.raises(ValueError, match="'input'.*'batch'"):
        zoo.sample_inputs(model)
