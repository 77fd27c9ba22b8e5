"""byoc.verify: each partition on the reference's inputs, compared with the reference, so a
fault is found in the partition that makes it and nowhere downstream."""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import onnx
import pytest
from faults import (
    CHAIN,
    flipped_weight_channel,
    max_pool_averaging,
    wrong_requantization_shift,
)
from plugins.int8_models import RESIDUAL_CNNS, residual_cnn

import byoc
from byoc.errors import InputError
from byoc.testing import assert_verifies, qdq_cnn, zoo_module
from byoc.verify import JSON_INFINITY, Tolerance, compare, verify_compiled


@pytest.fixture(scope="module")
def cnn_int8(tmp_path_factory):
    path = zoo_module().build("cnn_int8", tmp_path_factory.mktemp("zoo"))
    model = onnx.load(str(path))
    return model, zoo_module().sample_inputs(model)


class Corrupting:
    """A runtime that runs the real one, then adds ``delta`` to every output."""

    def __init__(self, runtime, delta):
        self.runtime, self.delta = runtime, delta

    def run(self, inputs):
        return {name: (array + np.asarray(self.delta).astype(array.dtype)).astype(array.dtype)
                for name, array in self.runtime.run(inputs).items()}


def test_a_correct_model_verifies_clean_partition_by_partition(cnn_int8):
    model, inputs = cnn_int8
    compiled = byoc.compile(model, plugins=["vta_sim"], placement="priority")
    found = verify_compiled(compiled, inputs)
    assert found.ok and found.outputs_ok and found.first_failure is None
    assert [p.name for p in found.partitions] == [p.signature.name for p in compiled.parts]
    vta = [p for p in found.partitions if p.plugin == "vta_sim"]
    assert vta and all(o.steps == 0 and o.snr_db == math.inf for p in vta for o in p.outputs)


def test_a_fault_is_named_in_its_partition_only(cnn_int8):
    """One vta_sim partition off by two steps: it fails, the partitions after it (fed the
    reference's values) pass, and the model's output differs end to end."""
    model, inputs = cnn_int8
    compiled = byoc.compile(model, plugins=["vta_sim"], placement="priority")
    target = [p for p in compiled.parts if p.plugin == "vta_sim"][1]
    target.runtime = Corrupting(target.runtime, 2)
    found = verify_compiled(compiled, inputs)
    failing = [p.name for p in found.partitions if not p.ok]
    assert failing == [target.signature.name]
    assert found.first_failure.name == target.signature.name
    (output,) = found.first_failure.outputs
    assert output.steps == 2 and not output.ok and output.snr_db < math.inf
    assert not found.ok


def test_one_step_is_within_the_default_tolerance_and_max_lsb_tightens_it(cnn_int8):
    model, inputs = cnn_int8
    compiled = byoc.compile(model, plugins=["vta_sim"], placement="priority")
    target = next(p for p in compiled.parts if p.plugin == "vta_sim")
    target.runtime = Corrupting(target.runtime, 1)
    assert verify_compiled(compiled, inputs).partitions[1].ok
    strict = verify_compiled(compiled, inputs, Tolerance(max_lsb=0))
    assert strict.first_failure.name == target.signature.name


def test_float_outputs_are_judged_relative_to_the_largest_reference_magnitude():
    want = np.array([100.0, -50.0, 1.0], np.float32)
    assert compare("y", want + np.float32(0.009), want, Tolerance()).ok     # 9e-3 <= 1e-2
    off = compare("y", want + np.float32(0.02), want, Tolerance())
    assert not off.ok and off.max_abs_err == pytest.approx(0.02, rel=1e-3) and off.steps is None
    assert off.snr_db == pytest.approx(10 * math.log10(12501 / (3 * 0.02 ** 2)), rel=1e-3)
    assert compare("y", want + np.float32(0.02), want, Tolerance(atol=0.05)).ok


def test_shapes_dtypes_and_special_values_are_compared_honestly():
    want = np.array([1.0, np.nan, np.inf], np.float32)
    assert compare("y", want.copy(), want, Tolerance()).ok        # same NaN and inf: equal
    assert not compare("y", np.array([1.0, 0.0, np.inf], np.float32), want, Tolerance()).ok
    wrong_shape = compare("y", np.zeros(2, np.float32), np.zeros(3, np.float32), Tolerance())
    assert not wrong_shape.ok and "shape" in wrong_shape.problem
    wrong_type = compare("y", np.zeros(3, np.int8), np.zeros(3, np.uint8), Tolerance())
    assert not wrong_type.ok and "dtype" in wrong_type.problem
    zeros = compare("y", np.zeros(3, np.int8), np.zeros(3, np.int8), Tolerance())
    assert zeros.ok and zeros.cosine == 1.0 and zeros.snr_db == math.inf


def test_bad_tolerances_and_loaded_artifacts_are_refused(cnn_int8, tmp_path):
    with pytest.raises(InputError, match="rtol must be a finite number >= 0"):
        Tolerance(rtol=-1)
    model, inputs = cnn_int8
    byoc.compile(model).save(tmp_path / "m.byoc")
    with pytest.raises(InputError, match="keeps no graph"):
        verify_compiled(byoc.load(tmp_path / "m.byoc"), inputs)


@pytest.fixture(scope="module")
def chain():
    model = qdq_cnn(*CHAIN)
    rng = np.random.default_rng(1)
    return model, {"x": rng.standard_normal((1, 21, 15, 15)).astype(np.float32)}


@pytest.mark.parametrize("layer", [0, 2, 4])
def test_a_wrong_requantization_shift_is_narrowed_to_its_layer(chain, layer):
    """The fault sits in one layer of a five-layer vta_sim partition: the partition fails, and
    narrowing (recompiling halves of it on vta_sim) names that layer's QuantizeLinear, not
    the partition's last node."""
    model, inputs = chain
    with wrong_requantization_shift(f"q{layer}"):
        compiled = byoc.compile(model, plugins=["vta_sim"], placement="priority")
        found = verify_compiled(compiled, inputs)
    (vta,) = [p for p in found.partitions if p.plugin == "vta_sim"]
    assert not vta.ok and [p.name for p in found.partitions if not p.ok] == [vta.name]
    divergence = found.first_divergence
    assert (divergence.partition, divergence.plugin) == (vta.name, "vta_sim")
    assert (divergence.node, divergence.op_type) == (f"quantize{layer}", "QuantizeLinear")
    assert divergence.pattern == "vta_sim.qdq_conv"
    # vta_sim's accumulator tap shows the layer's Conv output right: the piece starts after it.
    assert divergence.nodes == [f"relu{layer}", f"quantize{layer}"]
    assert "off by" in divergence.detail and f"q{layer}" in divergence.detail


def test_a_correct_chain_verifies_clean_on_vta_sim_and_npu_example(chain):
    model, inputs = chain
    for plugin in ("vta_sim", "npu_example"):
        found = assert_verifies(model, inputs, plugins=[plugin], placement="priority")
        assert any(p.plugin == plugin for p in found.partitions)
        assert found.first_divergence is None


def test_the_json_has_the_fixed_schema(chain):
    model, inputs = chain
    with wrong_requantization_shift("q1"):
        found = byoc.testing.verify(model, inputs, plugins=["vta_sim"], placement="priority")
    data = json.loads(json.dumps(found.to_json(), allow_nan=False))
    assert set(data) == {"ok", "outputs_ok", "partitions", "first_divergence"}
    assert data["ok"] is False and data["outputs_ok"] is False
    for entry in data["partitions"]:
        assert set(entry) == {"name", "plugin", "nodes", "max_abs_err", "snr_db", "ok"}
        assert isinstance(entry["name"], str) and isinstance(entry["plugin"], str)
        assert all(isinstance(n, str) for n in entry["nodes"])
        assert type(entry["max_abs_err"]) is float and type(entry["snr_db"]) is float
        assert isinstance(entry["ok"], bool)
    clean = [e for e in data["partitions"] if e["ok"]]
    assert clean and all(e["snr_db"] == JSON_INFINITY for e in clean)
    listed = [n for e in data["partitions"] for n in e["nodes"]]
    assert len(listed) == len(set(listed))
    assert {f"{op}{i}" for op in ("conv", "relu", "quantize") for i in range(5)} <= set(listed)
    divergence = data["first_divergence"]
    assert set(divergence) == {"partition", "plugin", "pattern", "node", "op_type", "nodes"}
    assert divergence["node"] == "quantize1" and divergence["op_type"] == "QuantizeLinear"
    assert all(isinstance(n, str) for n in divergence["nodes"])


def test_assert_verifies_fails_with_the_report(chain):
    model, inputs = chain
    with wrong_requantization_shift("q3"), pytest.raises(AssertionError) as failure:
        assert_verifies(model, inputs, plugins=["vta_sim"], placement="priority")
    report = str(failure.value)
    assert "first divergence: node 'quantize3' (QuantizeLinear)" in report
    assert "verify: FAILED" in report


@pytest.mark.cosim
@pytest.mark.parametrize("target", ["rtl", "cosim"])
def test_a_correct_chain_verifies_clean_on_the_rtl(chain, target):
    """The five-layer partition on hw/vta under Verilator (alone, and compared with the
    functional simulator instruction stream by instruction stream)."""
    model, inputs = chain
    found = assert_verifies(model, inputs, plugins=["vta_sim"], placement="priority",
                            plugin_options={"vta_sim": {"target": target}})
    (vta,) = [p for p in found.partitions if p.plugin == "vta_sim"]
    assert vta.max_abs_err == 0 and vta.snr_db == math.inf


def test_a_wrong_op_inside_a_fused_npu_layer_is_named_through_its_debug_tap():
    """npu_example's POOL averages where it should take the max: the fused DequantizeLinear ->
    MaxPool -> QuantizeLinear layer is found among the 14 matches of a residual network's one
    NPU partition, and the pooled value the plugin exposes on the debug request names the
    MaxPool itself, not the QuantizeLinear that outputs the layer."""
    model = residual_cnn(*RESIDUAL_CNNS["res23_pool"])
    with max_pool_averaging():
        compiled = byoc.compile(model, plugins=["npu_example"], placement="priority")
        found = verify_compiled(compiled)
    (npu,) = [p for p in found.partitions if p.plugin == "npu_example"]
    assert not npu.ok and found.first_failure is npu
    divergence = found.first_divergence
    assert (divergence.node, divergence.op_type) == ("pool/MaxPool", "MaxPool")
    assert (divergence.partition, divergence.plugin, divergence.pattern) == (
        npu.name, "npu_example", "npu_example.qdq_pool")
    assert divergence.nodes[-1] == "pool/MaxPool" and len(divergence.nodes) <= 2
    assert "plugin returned 1 inner value(s)" in divergence.narrowed[-1]


def test_without_the_debug_request_the_layer_output_is_named(monkeypatch):
    """The same fault with the debug request ignored (a plugin that honours none): the
    narrowing still reaches the pool's match and names its QuantizeLinear, listing the whole
    match as the failing piece."""
    import byoc_npu_example.plugin as plugin

    model = residual_cnn(*RESIDUAL_CNNS["res23_pool"])
    real = plugin.lower_partition
    monkeypatch.setattr(plugin, "lower_partition", lambda partition, *args, **kw: real(
        dataclasses.replace(partition, debug_outputs=[]), *args, **kw))
    with max_pool_averaging():
        compiled = byoc.compile(model, plugins=["npu_example"], placement="priority")
        divergence = verify_compiled(compiled).first_divergence
    assert (divergence.node, divergence.op_type) == ("pool/MaxPool_QuantizeLinear",
                                                     "QuantizeLinear")
    assert "pool/MaxPool" in divergence.nodes
    assert "no inner value" in divergence.narrowed[-1]


def test_an_artifact_verifies_on_its_bundled_vectors_and_names_the_failing_partition(
        cnn_int8, tmp_path):
    """No ONNX model at hand: the artifact's vectors hold every partition's reference inputs
    and outputs, so each partition is still checked on its own; a partition that goes wrong
    on the device is named (not narrowed: the artifact keeps no graph to recompile from)."""
    model, _ = cnn_int8
    byoc.compile(model, plugins=["vta_sim"], placement="priority",
                 with_vectors=2).save(tmp_path / "m.byoc")
    clean = verify_compiled(byoc.load(tmp_path / "m.byoc"))
    assert clean.ok and "2 reference vector(s)" in clean.inputs
    assert len(clean.partitions) == 9 and clean.first_divergence is None
    loaded = byoc.load(tmp_path / "m.byoc")
    target = [p for p in loaded.parts if p.plugin == "vta_sim"][2]
    target.runtime = Corrupting(target.runtime, 3)
    found = verify_compiled(loaded)
    assert [p.name for p in found.partitions if not p.ok] == [target.signature.name]
    assert found.partitions[loaded.parts.index(target)].steps == 3
    divergence = found.first_divergence
    assert divergence.partition == target.signature.name and divergence.plugin == "vta_sim"
    assert divergence.nodes == target.nodes and divergence.node == target.nodes[-1]
    assert "not narrowed" in divergence.detail
    assert json.loads(json.dumps(found.to_json()))["first_divergence"]["pattern"] == ""


def test_a_model_with_a_dynamic_tail_verifies_its_tail_outputs_too():
    """NonZero's output size depends on the values: it runs after the partitions as the
    dynamic tail, and its output is compared end to end like the others."""
    from onnx import TensorProto, helper

    from byoc.testing import make_model

    model = make_model([helper.make_node("Relu", ["x"], ["r"], name="relu"),
                        helper.make_node("NonZero", ["r"], ["nz"], name="nonzero")],
                       [("x", TensorProto.FLOAT, [2, 5])],
                       [("r", TensorProto.FLOAT, [2, 5]), ("nz", TensorProto.INT64, None)])
    compiled = byoc.compile(model)
    assert compiled.tail is not None
    found = verify_compiled(compiled, seed=3)
    assert found.ok and [o.value for o in found.outputs] == ["r", "nz"]
    assert "seed 3" in found.inputs


def test_compile_options_for_a_compiled_model_are_refused(cnn_int8):
    model, inputs = cnn_int8
    compiled = byoc.compile(model)
    with pytest.raises(InputError, match="placement apply to an ONNX model"):
        byoc.testing.verify(compiled, inputs, placement="priority")
    assert byoc.testing.verify(compiled, inputs).ok


def test_a_wrong_gemm_is_named_at_its_conv(chain):
    """A fault in the GEMM's operands of one layer: vta_sim's accumulator tap (its answer to
    the debug request) is already wrong, so the Conv itself is named, not the QuantizeLinear
    that outputs the layer."""
    model, inputs = chain
    with flipped_weight_channel("conv2"):
        compiled = byoc.compile(model, plugins=["vta_sim"], placement="priority")
        divergence = verify_compiled(compiled, inputs).first_divergence
    assert (divergence.node, divergence.op_type) == ("conv2", "Conv")
    assert divergence.pattern == "vta_sim.qdq_conv" and divergence.nodes[-1] == "conv2"
    assert "'c2'" in divergence.detail
