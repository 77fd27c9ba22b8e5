"""A BatchNormalization [+ Relu] read only by a 1x1 convolution (DenseNet's pre-activation)
runs inside the convolution, which normalizes its input as it packs it: no kernel writes the
normalized copy, and the results stay the reference's."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto, helper

import byoc
from byoc.testing import compile_reference, make_model

F = TensorProto.FLOAT


def bn_conv_model(channels: int, out_channels: int = 12, size: int = 7, batch: int = 1,
                  relu: bool = True, kernel: int = 1, layers: int = 1, extra_reader=False):
    """``layers`` times: BatchNormalization, [Relu], Conv (with bias) and Relu, each layer
    with its own parameters, the convolutions keeping ``channels``; then a last 1x1 to
    ``out_channels``."""
    rng = np.random.default_rng(channels + layers)
    nodes, weights, x = [], {}, "x"
    outputs = []
    for i in range(layers + 1):
        c_out = out_channels if i == layers else channels
        k = 1 if i == layers else kernel
        weights.update({
            f"s{i}": rng.uniform(0.5, 1.5, channels).astype(np.float32),
            f"b{i}": rng.standard_normal(channels).astype(np.float32),
            f"m{i}": rng.standard_normal(channels).astype(np.float32),
            f"v{i}": rng.uniform(0.5, 2.0, channels).astype(np.float32),
            f"w{i}": (rng.standard_normal((c_out, channels, k, k)) / np.sqrt(channels * k * k)
                      ).astype(np.float32),
            f"cb{i}": rng.standard_normal(c_out).astype(np.float32),
        })
        nodes.append(helper.make_node("BatchNormalization",
                                      [x, f"s{i}", f"b{i}", f"m{i}", f"v{i}"], [f"n{i}"]))
        normalized = f"n{i}"
        if relu:
            nodes.append(helper.make_node("Relu", [normalized], [f"r{i}"]))
            normalized = f"r{i}"
        if extra_reader and i == 0:
            nodes.append(helper.make_node("Sigmoid", [normalized], ["side"]))
            outputs.append(("side", F, [batch, channels, size, size]))
        nodes.append(helper.make_node("Conv", [normalized, f"w{i}", f"cb{i}"], [f"c{i}"],
                                      pads=[k // 2] * 4))
        nodes.append(helper.make_node("Relu", [f"c{i}"], [f"y{i}"]))
        x = f"y{i}"
    outputs.insert(0, (x, F, [batch, out_channels, size, size]))
    model = make_model(nodes, [("x", F, [batch, channels, size, size])], outputs, weights)
    feeds = {"x": rng.standard_normal((batch, channels, size, size)).astype(np.float32)}
    return model, feeds


def check(model, feeds, threads: int = 1) -> list[str]:
    """Compare with the reference; return the program's steps."""
    compiled = byoc.compile(model, plugins=["cpu_llvm"], plugin_options={
        "cpu_llvm": {"threads": threads, "min_work_per_thread": 0}})
    ours, reference = compiled.run(feeds), compile_reference(model).run(feeds)
    for name, expected in reference.items():
        np.testing.assert_allclose(ours[name], expected, rtol=2e-5,
                                   atol=2e-5 * np.abs(expected).max(), err_msg=name)
    (part,) = compiled.parts
    return part.payload.metadata["steps"]


def batchnorm_steps(steps: list[str]) -> int:
    return sum("BatchNormalization" in step for step in steps)


@pytest.mark.parametrize("relu", [True, False])
@pytest.mark.parametrize("threads", [1, 2])
def test_batchnorm_runs_inside_the_pointwise_convolution(relu, threads):
    model, feeds = bn_conv_model(20, relu=relu)
    assert batchnorm_steps(check(model, feeds, threads)) == 0


def test_channels_past_one_k_block_take_their_own_scale():
    """300 input channels: two K blocks, the second's channels 150 on."""
    model, feeds = bn_conv_model(300, size=6)
    assert batchnorm_steps(check(model, feeds)) == 0


def test_batch_of_two():
    model, feeds = bn_conv_model(24, batch=2)
    assert batchnorm_steps(check(model, feeds)) == 0


def test_layers_sharing_a_kernel_keep_their_own_normalization():
    """Three layers of one geometry share the convolution kernel; each normalizes with its
    own BatchNormalization's parameters."""
    model, feeds = bn_conv_model(16, out_channels=16, layers=2)
    steps = check(model, feeds)
    assert batchnorm_steps(steps) == 0
    assert len(set(steps)) < len(steps)


@pytest.mark.parametrize("case", ["3x3 convolution", "second reader"])
def test_batchnorm_stays_a_kernel_where_it_cannot_be_a_prologue(case):
    if case == "3x3 convolution":
        model, feeds = bn_conv_model(16, kernel=3)
        expected = 1   # only the last 1x1 takes its BatchNormalization
    else:
        model, feeds = bn_conv_model(16, extra_reader=True)
        expected = 1   # the first is read by Sigmoid too
    assert batchnorm_steps(check(model, feeds)) == expected


def test_convolutions_with_and_without_prologue_do_not_share_a_kernel():
    """Two 1x1 convolutions of one geometry and epilogue, the first reading the model's input
    as it is, the second a normalized value: the second must not run the first's kernel."""
    rng = np.random.default_rng(7)
    c = 16
    weights = {
        "w0": (rng.standard_normal((c, c, 1, 1)) * 0.3).astype(np.float32),
        "w1": (rng.standard_normal((c, c, 1, 1)) * 0.3).astype(np.float32),
        "s": rng.uniform(0.5, 1.5, c).astype(np.float32),
        "b": rng.standard_normal(c).astype(np.float32),
        "m": rng.standard_normal(c).astype(np.float32),
        "v": rng.uniform(0.5, 2.0, c).astype(np.float32),
    }
    nodes = [helper.make_node("Conv", ["x", "w0"], ["c0"]),
             helper.make_node("Relu", ["c0"], ["y0"]),
             helper.make_node("BatchNormalization", ["y0", "s", "b", "m", "v"], ["n"]),
             helper.make_node("Relu", ["n"], ["r"]),
             helper.make_node("Conv", ["r", "w1"], ["c1"]),
             helper.make_node("Relu", ["c1"], ["y1"])]
    model = make_model(nodes, [("x", F, [1, c, 9, 9])], [("y1", F, [1, c, 9, 9])], weights)
    feeds = {"x": rng.standard_normal((1, c, 9, 9)).astype(np.float32)}
    steps = check(model, feeds)
    assert batchnorm_steps(steps) == 0 and len(set(steps)) == 2
