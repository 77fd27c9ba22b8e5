"""Float32 depthwise convolutions (one input channel per group) against the reference
interpreter: the register-tiled kernel's tile edges, padding, strides, dilations and channel
multipliers, and the row kernel it leaves the largest kernels to; threads 1 and 2."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import helper
from test_conv_gemm import check, make_model, out_size, rand

CASES = [
    # n, c, h, w, multiplier, kernel (kh, kw), stride (sh, sw), pads, dilation (dh, dw)
    (1, 8, 112, 112, 1, (3, 3), (1, 1), (1, 1, 1, 1), (1, 1)),    # 7 vectors a row
    (1, 5, 56, 56, 1, (3, 3), (2, 2), (0, 0, 1, 1), (1, 1)),      # MobileNet's stride 2
    (2, 7, 13, 37, 1, (3, 3), (1, 1), (1, 1, 1, 1), (1, 1)),      # odd rows, row tails
    (1, 6, 7, 7, 1, (3, 3), (1, 1), (1, 1, 1, 1), (1, 1)),        # one vector, masked
    (1, 3, 15, 50, 1, (3, 3), (2, 2), (1, 1, 1, 1), (1, 1)),      # stride 2, odd width
    (1, 4, 19, 70, 1, (3, 5), (3, 3), (2, 1, 0, 2), (1, 1)),      # stride 3, uneven pads
    (1, 4, 20, 40, 1, (3, 3), (1, 2), (2, 2, 2, 2), (2, 2)),      # dilation
    (1, 4, 11, 33, 2, (3, 3), (1, 1), (1, 1, 1, 1), (1, 1)),      # channel multiplier 2
    (2, 3, 9, 20, 3, (5, 5), (2, 1), (2, 2, 2, 2), (1, 1)),       # multiplier 3
    (1, 5, 30, 30, 1, (7, 7), (1, 1), (3, 3, 3, 3), (1, 1)),      # 49 taps unrolled
    (1, 2, 1, 9, 1, (1, 3), (1, 1), (0, 1, 0, 1), (1, 1)),        # a single row
    (1, 3, 24, 24, 1, (9, 9), (1, 1), (4, 4, 4, 4), (1, 1)),      # 81 taps: the row kernel
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: "-".join(map(str, c)))
@pytest.mark.parametrize("epilogue", ["bias_clip", "plain", "residual"])
def test_depthwise(case, epilogue):
    n, c, h, w, mult, (kh, kw), (sh, sw), pads, (dh, dw) = case
    rng = np.random.default_rng(h * w + c)
    m = c * mult
    oh = out_size(h + pads[0] + pads[2] - 2 * pads[0], kh, sh, pads[0], dh)
    ow = out_size(w + pads[1] + pads[3] - 2 * pads[1], kw, sw, pads[1], dw)
    init = {"w": rand(rng, m, 1, kh, kw)}
    feeds = {"x": rand(rng, n, c, h, w)}
    inputs = ["x", "w"]
    if epilogue == "bias_clip":
        init.update(b=rand(rng, m), lo=np.float32(-0.5), hi=np.float32(1.5))
        inputs.append("b")
    nodes = [helper.make_node("Conv", inputs, ["c"], group=c, kernel_shape=[kh, kw],
                              strides=[sh, sw], pads=list(pads), dilations=[dh, dw])]
    graph_inputs = [("x", [n, c, h, w])]
    if epilogue == "bias_clip":     # per-channel operands: applied in registers
        nodes.append(helper.make_node("Clip", ["c", "lo", "hi"], ["y"]))
    elif epilogue == "residual":    # a per-position operand: applied to the stored plane
        graph_inputs.append(("r", [n, m, oh, ow]))
        feeds["r"] = rand(rng, n, m, oh, ow)
        nodes.append(helper.make_node("Add", ["c", "r"], ["y"]))
    else:
        nodes.append(helper.make_node("Identity", ["c"], ["y"]))
    check(make_model(nodes, graph_inputs, [("y", [n, m, oh, ow])], init), feeds)
