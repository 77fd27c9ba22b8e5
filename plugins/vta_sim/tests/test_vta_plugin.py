"""vta_sim as a byoc plugin: what it claims and declines (with reasons), QLinear forms, the
payload and the profile counters, artifacts, and the int8 example models."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

import byoc
from byoc.testing import compile_reference, make_model, qdq_layer_model, zoo_module
from byoc_vta_sim.config import DEFAULT_CONFIG
from byoc_vta_sim.isa import decode_stream
from byoc_vta_sim.validate import validate_stream


def conv_weights(out_c=16, in_c=16, k=3, seed=0):
    return np.random.default_rng(seed).integers(-127, 128, (out_c, in_c, k, k)).astype(np.int8)


def reasons_for(model, node="quantize"):
    compiled = byoc.compile(model, plugins=["vta_sim"], placement="priority")
    explanation = compiled.plan.explanations[node]
    return explanation.plugin, " ".join(explanation.reasons.get("vta_sim", []))


@pytest.mark.parametrize("options,reason", [
    (dict(attrs={"pads": [1, 1, 1, 1], "group": 2}, weight=conv_weights(16, 8)),
     "grouped convolution (group=2)"),
    (dict(activation="Sigmoid"), "not Conv"),
    (dict(w_scales=np.float32(1e-3), y_scale=1e-14), "shift"),
])
def test_declines_name_the_reason(options, reason):
    weight = options.pop("weight", conv_weights())
    options.setdefault("attrs", {"pads": [1, 1, 1, 1]})
    model = qdq_layer_model("Conv", [1, 16, 8, 8], weight, **options)
    plugin, reasons = reasons_for(model)
    assert plugin != "vta_sim"
    assert reason in reasons, reasons


def test_asymmetric_weights_are_declined():
    model = qdq_layer_model("Conv", [1, 16, 8, 8], conv_weights(), attrs={"pads": [1] * 4})
    for init in model.graph.initializer:
        if init.name == "wz":
            init.CopyFrom(onnx.numpy_helper.from_array(np.array(3, np.int8), "wz"))
    plugin, reasons = reasons_for(model)
    assert plugin != "vta_sim" and "nonzero zero point" in reasons


def test_qlinearconv_and_qlinearmatmul_are_claimed():
    rng = np.random.default_rng(2)
    w = conv_weights(24, 8, 3)
    m = rng.integers(-127, 128, (24, 10)).astype(np.int8)
    init = {"xs": np.float32(0.04), "xz": np.uint8(120), "ws": rng.uniform(0.002, 0.01, 24)
            .astype(np.float32), "wz": np.zeros(24, np.int8), "w": w,
            "ys": np.float32(0.2), "yz": np.uint8(100), "b": rng.integers(-500, 500, 24)
            .astype(np.int32), "ms": np.float32(0.01), "mz": np.int8(0), "m": m,
            "zs": np.float32(0.3), "zz": np.uint8(128)}
    nodes = [helper.make_node("QLinearConv", ["x", "xs", "xz", "w", "ws", "wz", "ys", "yz", "b"],
                              ["y"], name="conv", pads=[1, 1, 1, 1]),
             helper.make_node("Transpose", ["y"], ["t"], perm=[0, 2, 3, 1], name="nhwc"),
             helper.make_node("QLinearMatMul", ["t", "ys", "yz", "m", "ms", "mz", "zs", "zz"],
                              ["z"], name="fc")]
    model = make_model(nodes, [("x", TensorProto.UINT8, [1, 8, 6, 6])],
                       [("z", TensorProto.UINT8, [1, 6, 6, 10])], init, opset=13)
    x = rng.integers(0, 256, (1, 8, 6, 6)).astype(np.uint8)
    compiled = byoc.compile(model, plugins=["vta_sim"], placement="priority")
    assert compiled.plan.partition_of("conv").plugin == "vta_sim"
    assert compiled.plan.partition_of("fc").plugin == "vta_sim"
    ours, expected = compiled.run({"x": x})["z"], compile_reference(model).run({"x": x})["z"]
    diff = np.abs(ours.astype(int) - expected.astype(int))
    assert diff.max() <= 1 and (diff == 0).mean() >= 0.99


def test_payload_profile_and_artifact_round_trip(tmp_path):
    model = qdq_layer_model("Conv", [1, 16, 8, 8], conv_weights(32), attrs={"pads": [1] * 4},
                            activation="Relu")
    x = np.random.default_rng(4).uniform(-6, 6, (1, 16, 8, 8)).astype(np.float32)
    compiled = byoc.compile(model, plugins=["vta_sim"], placement="priority")
    part = next(p for p in compiled.parts if p.plugin == "vta_sim")
    meta = part.payload.metadata
    assert meta["instructions"] == len(part.payload.data) // 16 > 10
    assert meta["estimated_cycles"] >= 64 * 32 * 16 * 9 // 256
    first = compiled.run({"x": x})
    path = tmp_path / "layer.byoc"
    compiled.save(path)
    loaded = byoc.compiled.load(path)
    second = loaded.run({"x": x})
    for name in first:
        np.testing.assert_array_equal(first[name], second[name])
    _, profiles = loaded.profile({"x": x})
    counters = next(p.counters for p in profiles if p.plugin == "vta_sim")
    # Counters add up over the loaded model's two runs. Per run: 32 output channels (2
    # blocks) x 64 pixels x 1 input block x 9 taps (the first tap's products overwrite: no
    # reset); no ALU pass (the STOREs requantize); 2 x 64 int8 output elements of 16 bytes.
    assert counters["gemm_uops"] == 2 * (2 * 64 * 9)
    assert counters["alu_uops"] == 0
    assert counters["bytes_stored_out"] == 2 * (2 * 64 * 16)
    assert counters["insns_compute"] > 0 and counters["estimated_cycles"] > 0


def zoo_model(name, tmp_path):
    return onnx.load(str(zoo_module().build(name, tmp_path)))


def input_for(model, seed=0):
    value = model.graph.input[0]
    shape = [d.dim_value or 1 for d in value.type.tensor_type.shape.dim]
    return {value.name: np.random.default_rng(seed).uniform(-2, 2, shape).astype(np.float32)}


def int8_layer_nodes(model):
    return [n.name for n in model.graph.node if n.op_type in ("Conv", "Gemm", "MatMul", "Add")]


def quantized_outputs(graph_nodes):
    return [n.output[0] for n in graph_nodes if n.op_type == "QuantizeLinear"]


@pytest.mark.parametrize("name", ["cnn_int8", pytest.param("resnet18_int8",
                                                           marks=pytest.mark.slow)])
def test_int8_zoo_models_run_on_vta_sim(tmp_path, name):
    """Every int8 conv/matmul group on vta_sim; every quantized value within one step of the
    reference everywhere and equal on >= 99.9%; within one step of onnxruntime on >= 99%."""
    import onnxruntime as ort

    model = zoo_model(name, tmp_path)
    feeds = input_for(model)
    # Every quantized value is a model output, so differences are counted per layer.
    probe = onnx.shape_inference.infer_shapes(model)
    quantized = quantized_outputs(model.graph.node)
    existing = {o.name for o in probe.graph.output}
    typed = {v.name: v for v in probe.graph.value_info}
    probe.graph.output.extend(typed[v] for v in quantized if v not in existing)
    compiled = byoc.compile(model, plugins=["vta_sim"], placement="priority")
    for node in int8_layer_nodes(model):
        assert compiled.plan.partition_of(node).plugin == "vta_sim", node
    # Every generated stream passes the validator (tokens, buffers, the accumulator hazard).
    for part in compiled.parts:
        if part.plugin == "vta_sim":
            validate_stream(decode_stream(part.payload.data), DEFAULT_CONFIG,
                            part.payload.arrays["dram"])
    report = byoc.compile(probe, plugins=["vta_sim"], placement="priority")
    ours = report.run(feeds)
    expected = compile_reference(probe).run(feeds)
    session = ort.InferenceSession(probe.SerializeToString(), providers=["CPUExecutionProvider"])
    ort_values = dict(zip([o.name for o in session.get_outputs()], session.run(None, feeds)))
    def steps(a, b, value):
        scale = None
        if a.dtype == np.float32:   # a dequantized model output: compare in steps
            scale = output_scales[value]
            return np.rint(np.abs(a - b) / scale).astype(int)
        return np.abs(a.astype(int) - b.astype(int))

    output_scales = {o: scale_of(model, o) for o in [v.name for v in model.graph.output]}
    for value in output_scales:
        diff, vs_ort = steps(ours[value], expected[value], value), \
            steps(ours[value], ort_values[value], value)
        assert diff.max() <= 1 and (diff == 0).mean() >= 0.999, value
        assert (vs_ort <= 1).mean() >= 0.99, value
    total = equal = near_ort = 0
    for value in quantized:
        diff = steps(ours[value], expected[value], value)
        total += diff.size
        equal += int((diff == 0).sum())
        near_ort += int((steps(ours[value], ort_values[value], value) <= 1).sum())
    print(f"{name}: {equal} of {total} quantized elements equal the reference, "
          f"{near_ort} within one step of onnxruntime")
    assert equal / total >= 0.999
    assert near_ort / total >= 0.99


def scale_of(model, output):
    """The scale of the DequantizeLinear producing a model output."""
    producer = next(n for n in model.graph.node if output in n.output)
    assert producer.op_type == "DequantizeLinear", output
    init = {i.name: i for i in model.graph.initializer}
    return float(onnx.numpy_helper.to_array(init[producer.input[1]]))
