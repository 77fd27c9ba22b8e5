"""byoc verify's debug request on vta_sim: a partition compiled with
``Partition.debug_outputs`` returns, besides its outputs, the float value of each conv or
matrix layer's op node (Conv, Gemm), which a second pass of the layer stores as the int32
accumulator in four byte planes (ADD bias, then STORE and ALU SHR 8 in turn) and the runtime
dequantizes. Each tap must equal the reference interpreter's float value of that node within
verify's tolerance; the outputs must not change; the stream must keep the stream rules and
run bit-exactly on the RTL; an ordinary compile must give the payload it always gave. End to
end, verify then names the Conv of a layer whose GEMM is wrong, and still the QuantizeLinear
of a layer whose requantization is wrong."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

import byoc
from byoc.core.interpreter.runner import Interpreter
from byoc.testing import payload_digest, qdq_cnn, qdq_layer_model
from byoc.verify import debug_request
from byoc_vta_sim import plugin
from byoc_vta_sim.config import DEFAULT_CONFIG
from byoc_vta_sim.isa import decode_stream
from byoc_vta_sim.validate import validate_stream

RTOL = 1e-4     # byoc verify's default: relative to the largest reference magnitude


# Five int8 Conv + Relu layers taken as one partition (the chain byoc's verify tests use).
CHAIN = (15, 21, [(35, 3, 1), (7, 1, 1), (50, 3, 2), (33, 3, 1), (16, 1, 1)])


def weights(out_c, in_c, kernel=3, seed=0):
    shape = (out_c, in_c) + ((kernel, kernel) if kernel else ())
    return np.random.default_rng(seed).integers(-127, 128, shape).astype(np.int8)


LAYERS = {
    "conv_odd_channels": lambda: qdq_layer_model(
        "Conv", [1, 5, 9, 9], weights(7, 5), attrs={"pads": [1, 1, 1, 1]}, activation="Relu",
        bias=np.arange(7, dtype=np.int32) * 60 - 200, w_scales=np.linspace(0.004, 0.02, 7)),
    "conv_stride_2": lambda: qdq_layer_model(
        "Conv", [1, 19, 11, 11], weights(21, 19),
        attrs={"pads": [1, 1, 1, 1], "strides": [2, 2]},
        bias=np.arange(21, dtype=np.int32) * 30, w_scales=np.linspace(0.002, 0.01, 21)),
    "conv_1x1": lambda: qdq_layer_model(
        "Conv", [1, 21, 6, 6], weights(35, 21, kernel=1), x_dtype=np.int8,
        activation="Relu", bias=np.arange(35, dtype=np.int32) - 17, w_scales=0.006),
    "gemm": lambda: qdq_layer_model(
        "Gemm", [3, 40], weights(24, 40, kernel=0), attrs={"transB": 1},
        bias=np.arange(24, dtype=np.int32) * 7, w_scales=0.004, activation="Relu"),
    "chain": lambda: qdq_cnn(*CHAIN),
}


def vta_partition(model):
    """The model compiled for vta_sim, its optimized graph and the accelerator's partition."""
    compiled = byoc.compile(model, plugins=["vta_sim"], placement="priority")
    (partition,) = [p for p in compiled.plan.partitions if p.plugin == "vta_sim"]
    return compiled, compiled.graph, partition


def compile_partition(partition, graph, target="sim"):
    """The partition through vta_sim's hooks, as byoc compiles it: its payload and runtime."""
    lowered = plugin.byoc_lower_partition(partition=partition, graph=graph,
                                          constants=graph.constants, options={})
    payload = plugin.byoc_codegen_partition(partition=partition, lowered=lowered)
    return payload, plugin.byoc_runtime_create(payload=payload,
                                               partition=partition.signature(),
                                               options={"target": target})


def float_reference(graph, partition):
    """Random model inputs; the partition's inputs (the int8 values the accelerator reads)
    and every value on the reference's float path, which gives each op node's own output."""
    rng = np.random.default_rng(0)
    feeds = {name: rng.uniform(-6, 6, graph.types[name].shape).astype(np.float32)
             for name in graph.inputs}
    values = Interpreter(graph, integer_groups=False).values(feeds)
    return {name: values[name] for name in partition.inputs}, values


@pytest.mark.parametrize("layer", list(LAYERS))
def test_each_layer_returns_its_op_output_equal_to_the_reference_float_value(layer):
    _, graph, partition = vta_partition(LAYERS[layer]())
    inputs, reference = float_reference(graph, partition)
    _, ordinary = compile_partition(partition, graph)
    payload, runtime = compile_partition(
        dataclasses.replace(partition, debug_outputs=debug_request(partition)), graph)
    validate_stream(decode_stream(payload.data), DEFAULT_CONFIG, payload.arrays["dram"])
    results = runtime.run(inputs)

    ops = [m.captured["op"] for m in partition.matches]
    tapped = [op.outputs[0] for op in ops]
    assert set(results) == set(partition.outputs) | set(tapped), \
        "only the op nodes' outputs are tapped: no DequantizeLinear or Relu output"
    for value in tapped:
        expected = reference[value]
        assert (results[value].dtype, results[value].shape) == (np.float32, expected.shape)
        error = np.abs(results[value].astype(np.float64) - expected).max()
        assert error <= RTOL * np.abs(expected).max(), (layer, value, error)
    for name, values in ordinary.run(inputs).items():
        np.testing.assert_array_equal(results[name], values)
    assert [tap["node"] for tap in payload.metadata["taps"]] == [op.name for op in ops]


# sha256 prefixes of each ordinary payload (stream, metadata with the estimated cycles, DRAM
# image), taken with taps off (last refreshed when the STOREs took over the requantization
# and the first products started overwriting the accumulators): requesting taps elsewhere
# must not change an ordinary compile by a byte.
ORDINARY_PAYLOADS = {
    "conv_odd_channels": "ba8e05ee8ae188f6",
    "conv_stride_2": "39a0d263854d5795",
    "conv_1x1": "80d7729d86088d60",
    "gemm": "53af6bde4deb947b",
    "chain": "f67ce699778f6ff0",
}


@pytest.mark.parametrize("layer", list(LAYERS))
def test_an_ordinary_compile_gives_the_payload_it_gave_before_taps(layer):
    compiled, _, _ = vta_partition(LAYERS[layer]())
    (part,) = [p for p in compiled.parts if p.plugin == "vta_sim"]
    assert payload_digest(part.payload)[:16] == ORDINARY_PAYLOADS[layer]
    assert "taps" not in part.payload.metadata


def test_a_request_for_values_the_accelerator_never_computes_changes_nothing():
    """The DequantizeLinear outputs are the int8 input, the Relu output is folded into the
    requantization's clamp: neither exists on the accelerator, so asking for them gives the
    ordinary payload."""
    _, graph, partition = vta_partition(LAYERS["conv_odd_channels"]())
    (op,) = [m.captured["op"] for m in partition.matches]
    unreal = [v for v in debug_request(partition) if v != op.outputs[0]]
    assert len(unreal) == 4          # the input's, weights' and bias' dequantized, Relu's
    ordinary, _ = compile_partition(partition, graph)
    asked, runtime = compile_partition(dataclasses.replace(partition, debug_outputs=unreal),
                                       graph)
    assert payload_digest(asked) == payload_digest(ordinary)
    assert not runtime.taps


@pytest.mark.cosim
def test_the_tapped_stream_runs_bit_exactly_on_the_rtl():
    """The same debug stream on the Verilated RTL and on the functional simulator, compared
    byte for byte after the run: the taps come from the stream alone."""
    _, graph, partition = vta_partition(LAYERS["conv_stride_2"]())
    inputs, reference = float_reference(graph, partition)
    debug = dataclasses.replace(partition, debug_outputs=debug_request(partition))
    _, on_sim = compile_partition(debug, graph)
    _, on_both = compile_partition(debug, graph, target="cosim")
    expected, results = on_sim.run(inputs), on_both.run(inputs)
    assert on_both.counters()["rtl_runs_equal"] == 1
    assert set(results) == set(expected) == {"y", "acc"}
    for name, values in expected.items():
        np.testing.assert_array_equal(results[name], values)
