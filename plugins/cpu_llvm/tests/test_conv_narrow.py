"""Convolutions with few output positions and large weights, computed with the output
channels in the vector lanes (:mod:`byoc_cpu_llvm.kernels.conv_narrow`), against the
reference interpreter: 1x1 and 3x3, strides, uneven padding, a batch, channel counts that are
not whole panels, and the epilogues; threads 1 and 2."""

from __future__ import annotations

import numpy as np
import pytest
from cpu_llvm_checks import compile_alone
from onnx import helper
from test_conv_gemm import check, make_model, out_size, rand

CASES = [
    # n, c, h, w, m, kernel, stride, pads (top, left, bottom, right)
    (1, 512, 7, 7, 512, 1, 1, (0, 0, 0, 0)),      # ResNet-50's 7x7 1x1: input rows as they are
    (2, 128, 7, 7, 256, 3, 1, (1, 1, 1, 1)),      # a batch, 3x3 with padding
    (1, 256, 13, 15, 520, 3, 2, (0, 1, 1, 0)),    # stride 2, uneven pads, 520 = 16 panels + 8
    (1, 1024, 14, 14, 300, 1, 2, (0, 0, 0, 0)),   # strided 1x1 (ResNet's downsample)
    (1, 512, 1, 53, 512, 1, 1, (0, 0, 0, 0)),     # 53 positions: a last tile of 5 of 8
    (1, 160, 5, 11, 512, 3, 1, (1, 1, 1, 1)),     # 55 positions, 3x3: a tile past the end
]


def narrow_steps(model) -> list[str]:
    compiled = compile_alone(model, 1)
    return [s for part in compiled.parts for s in part.payload.metadata["steps"]
            if "_narrow" in s]


def conv_model(case, epilogue, rng):
    n, c, h, w, m, k, s, pads = case
    oh = out_size(h + pads[0] + pads[2] - 2 * pads[0], k, s, pads[0], 1)
    ow = out_size(w + pads[1] + pads[3] - 2 * pads[1], k, s, pads[1], 1)
    init = {"w": rand(rng, m, c, k, k) / np.float32(np.sqrt(c * k * k))}
    feeds = {"x": rand(rng, n, c, h, w)}
    inputs, graph_inputs = ["x", "w"], [("x", [n, c, h, w])]
    if epilogue == "bias_relu":
        init["b"] = rand(rng, m)
        inputs.append("b")
    nodes = [helper.make_node("Conv", inputs, ["c"], kernel_shape=[k, k], strides=[s, s],
                              pads=list(pads))]
    if epilogue == "bias_relu":
        nodes.append(helper.make_node("Relu", ["c"], ["y"]))
    elif epilogue == "residual":
        graph_inputs.append(("r", [n, m, oh, ow]))
        feeds["r"] = rand(rng, n, m, oh, ow)
        nodes.append(helper.make_node("Add", ["c", "r"], ["y"]))
    else:
        nodes.append(helper.make_node("Identity", ["c"], ["y"]))
    return make_model(nodes, graph_inputs, [("y", [n, m, oh, ow])], init), feeds


@pytest.mark.parametrize("case", CASES, ids=lambda c: "-".join(map(str, c[:7])))
@pytest.mark.parametrize("epilogue", ["bias_relu", "plain", "residual"])
def test_narrow_conv(case, epilogue):
    model, feeds = conv_model(case, epilogue, np.random.default_rng(sum(case[:7])))
    assert narrow_steps(model), "the layer did not take the narrow path"
    check(model, feeds)


def test_small_weights_keep_the_gemm_path():
    """DenseNet's 7x7 growth layer (128 -> 32 channels, 147 KB of weights) stays in cache:
    the GEMM path is faster there."""
    model, _ = conv_model((1, 128, 7, 7, 32, 3, 1, (1, 1, 1, 1)), "plain",
                          np.random.default_rng(0))
    assert not narrow_steps(model)


def test_layers_of_one_shape_share_the_kernels():
    """Two 512 -> 512 1x1 layers at 7x7, each with its own weights and bias: one product
    kernel and one write-out kernel, run on each layer's buffers."""
    rng = np.random.default_rng(5)
    init = {}
    nodes, x = [], "x"
    for i in range(2):
        init[f"w{i}"] = rand(rng, 512, 512, 1, 1) / np.float32(np.sqrt(512))
        init[f"b{i}"] = rand(rng, 512)
        nodes += [helper.make_node("Conv", [x, f"w{i}", f"b{i}"], [f"c{i}"]),
                  helper.make_node("Relu", [f"c{i}"], [f"r{i}"])]
        x = f"r{i}"
    model = make_model(nodes, [("x", [1, 512, 7, 7])], [(x, [1, 512, 7, 7])], init)
    steps = narrow_steps(model)
    assert len(steps) == 4 and len(set(steps)) == 2, steps
    check(model, {"x": rand(rng, 1, 512, 7, 7)})
