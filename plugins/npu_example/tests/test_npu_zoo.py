"""The int8 example models on npu_example: what the partition plan takes and leaves, every
quantized value equal to the reference, and the artifact round trip."""

from __future__ import annotations

import numpy as np
import onnx
import pytest

import byoc
from byoc.plugins.api import PartitionSignature
from byoc.testing import compile_reference, zoo_module
from byoc_npu_example.command_stream import decode

INT8_MODELS = ["cnn_int8", "mobilenet_int8", pytest.param("resnet18_int8",
                                                           marks=pytest.mark.slow)]


@pytest.fixture(scope="module")
def zoo_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("npu_zoo")


def zoo_model(name, zoo_dir) -> onnx.ModelProto:
    return onnx.load(zoo_module().build(name, zoo_dir))


def with_quantized_outputs(model: onnx.ModelProto) -> onnx.ModelProto:
    """The model with every QuantizeLinear output as a graph output, so that every layer's
    int8 result is compared."""
    probe = onnx.shape_inference.infer_shapes(model)
    typed = {v.name: v for v in probe.graph.value_info}
    probe.graph.output.extend(typed[n.output[0]] for n in model.graph.node
                              if n.op_type == "QuantizeLinear")
    return probe


@pytest.mark.parametrize("name", INT8_MODELS)
def test_int8_zoo_model_runs_on_the_npu_equal_to_the_reference(zoo_dir, name):
    model = zoo_model(name, zoo_dir)
    compiled = byoc.compile(model, plugins=["npu_example"], placement="priority")
    # One NPU partition takes everything between the input's QuantizeLinear and the
    # output's DequantizeLinear, which stay on the host (float in, float out).
    plan = compiled.plan
    host = sorted(n.op_type for n in model.graph.node
                  if plan.partition_of(n.name).plugin != "npu_example")
    assert host == ["DequantizeLinear", "QuantizeLinear"]
    assert [p.plugin for p in compiled.parts].count("npu_example") == 1
    patterns = {e.pattern for e in plan.explanations.values() if e.plugin == "npu_example"}
    expected_patterns = {"npu_example.qdq_conv2d", "npu_example.qdq_fully_connected",
                         "npu_example.qdq_pool", "npu_example.qdq_flatten"}
    if name == "mobilenet_int8":
        expected_patterns = expected_patterns - {"npu_example.qdq_conv2d"} | \
            {"npu_example.qdq_depthwise_conv2d"}
    assert expected_patterns <= patterns

    probe = with_quantized_outputs(model)
    quantized = [o.name for o in probe.graph.output if o.name != "output"]
    ours_model = byoc.compile(probe, plugins=["npu_example"], placement="priority")
    reference = compile_reference(probe)
    for seed in (0, 1):
        feeds = zoo_module().sample_inputs(model, seed)
        ours, expected = ours_model.run(feeds), reference.run(feeds)
        total = sum(expected[v].size for v in quantized)
        equal = sum(int((ours[v] == expected[v]).sum()) for v in quantized)
        print(f"{name} seed {seed}: {equal} of {total} quantized values equal the reference")
        assert equal == total
        np.testing.assert_array_equal(ours["output"], expected["output"])


def test_mobilenet_declines_nothing_it_is_offered(zoo_dir):
    compiled = byoc.compile(zoo_model("mobilenet_int8", zoo_dir), plugins=["npu_example"],
                            placement="priority")
    counts = {}
    for explanation in compiled.plan.explanations.values():
        if explanation.plugin == "npu_example":
            counts[explanation.op] = counts.get(explanation.op, 0) + 1
    assert counts["Conv"] == 11 and counts["Gemm"] == 1 and counts["GlobalAveragePool"] == 1
    part = next(p for p in compiled.parts if p.plugin == "npu_example")
    commands = [c["command"] for c in part.payload.metadata["commands"]]
    assert commands.count("DEPTHWISE_CONV2D") == 5
    assert commands.count("CONV2D") == 6 + 1          # the stem, 5 pointwise, the classifier
    assert commands.count("POOL") == 1


def test_artifact_round_trip_and_profile(zoo_dir, tmp_path):
    model = zoo_model("cnn_int8", zoo_dir)
    feeds = zoo_module().sample_inputs(model)
    compiled = byoc.compile(model, plugins=["npu_example"], placement="priority")
    first = compiled.run(feeds)
    path = tmp_path / "cnn.byoc"
    compiled.save(path)
    loaded = byoc.load(path)
    np.testing.assert_array_equal(loaded.run(feeds)["output"], first["output"])
    part = next(p for p in loaded.parts if p.plugin == "npu_example")
    program = decode(part.payload.data)
    assert len(program.commands) == len(part.payload.metadata["commands"]) == 7
    assert part.payload.arrays["constants"].dtype == np.uint8
    _, profiles = loaded.profile(feeds)
    counters = next(p.counters for p in profiles if p.plugin == "npu_example")
    assert counters["runs"] == 2 and counters["commands_conv2d"] == 2 * 4
    assert counters["macs"] > 0 and counters["bytes_written"] > 0


def test_runtime_transposes_nchw_boundaries_itself(zoo_dir):
    """A signature without layouts (a byoc that does not convert, or an artifact written
    before it did) hands 4-D values over as NCHW; the runtime transposes them."""
    model = zoo_model("cnn_int8", zoo_dir)
    compiled = byoc.compile(model, plugins=["npu_example"], placement="priority")
    part = next(p for p in compiled.parts if p.plugin == "npu_example")
    signature = part.signature
    (name, nhwc), = signature.inputs.items()
    assert signature.layouts.get(name) == "NHWC"
    nchw_type = type(nhwc)(nhwc.dtype, (nhwc.shape[0], nhwc.shape[3], *nhwc.shape[1:3]))
    graph_layout = PartitionSignature(signature.name, {name: nchw_type},
                                      dict(signature.outputs))
    plugin = byoc.plugins.manager.default_manager()
    runtime = plugin.call("npu_example", "byoc_runtime_create", payload=part.payload,
                          partition=graph_layout, options={})
    x = np.random.default_rng(0).integers(0, 256, nchw_type.shape).astype(np.uint8)
    expected = part.runtime.run({name: x.transpose(0, 2, 3, 1)})
    for output, values in runtime.run({name: x}).items():
        np.testing.assert_array_equal(values, expected[output])


def test_unknown_run_time_options_are_refused(zoo_dir):
    from byoc_npu_example.runtime import create_runtime

    compiled = byoc.compile(zoo_model("cnn_int8", zoo_dir), plugins=["npu_example"],
                            placement="priority")
    part = next(p for p in compiled.parts if p.plugin == "npu_example")
    with pytest.raises(byoc.errors.PluginError, match="npu_example has no run-time options; "
                                                      "got speed"):
        create_runtime(part.payload, part.signature, {"speed": "2"})
