"""Winograd F(4x4, 3x3) convolutions against the reference interpreter: tile rows wider than
a vector, sizes that are not whole tiles, uneven padding, batches, channel counts that are
not whole micro-tiles or one K block, the epilogues, and layers sharing the workspace;
threads 1 and 2. The transforms round differently from the direct sum, so the bound is the
benchmark's: 1e-4 of the output's largest value."""

from __future__ import annotations

import re

import numpy as np
import pytest
from cpu_llvm_checks import compile_alone
from onnx import helper
from test_conv_gemm import make_model, rand
from test_conv_narrow import conv_model

from byoc.testing import compile_reference
from byoc_cpu_llvm.kernels.winograd import A_T, B_T, G, transform_weights

BOUND = 1e-4

CASES = [
    # n, c, h, w, m, pads (top, left, bottom, right)
    (1, 16, 24, 24, 16, (1, 1, 1, 1)),       # the smallest layer taken: 6 x 6 tiles
    (2, 17, 26, 30, 33, (1, 1, 1, 1)),       # batch 2, partial tiles, odd channels
    (1, 24, 23, 70, 40, (0, 2, 1, 0)),       # uneven pads, tile rows of two vector chunks
    (1, 32, 40, 40, 20, (2, 2, 2, 2)),       # output larger than the input
    (1, 64, 9, 140, 48, (1, 1, 1, 1)),       # three chunks a tile row, three tile rows
    (1, 300, 24, 24, 24, (1, 1, 1, 1)),      # 300 input channels: two K blocks
]


def winograd_kernels(compiled) -> list[str]:
    """The steps of the compiled program that run a Winograd kernel (identical kernels are
    one function called by several steps)."""
    return [step for part in compiled.parts for step in part.payload.metadata["steps"]
            if re.fullmatch(r"k_\w+_wg_(in|gemm|out)", step)]


def assert_close(model, feeds, winograd_layers):
    expected = compile_reference(model).run(feeds)
    for threads in (1, 2):
        compiled = compile_alone(model, threads)
        assert len(winograd_kernels(compiled)) == 3 * winograd_layers
        got = compiled.run(feeds)
        for name, value in expected.items():
            error = np.abs(got[name].astype(np.float64) - value).max()
            assert error <= BOUND * np.abs(value).max(), (name, threads, error)


@pytest.mark.parametrize("case", CASES, ids=lambda c: "-".join(map(str, c[:5])))
@pytest.mark.parametrize("epilogue", ["bias_relu", "plain", "residual"])
def test_winograd_conv(case, epilogue):
    n, c, h, w, m, pads = case
    model, feeds = conv_model((n, c, h, w, m, 3, 1, pads), epilogue,
                              np.random.default_rng(h * w + c))
    assert_close(model, feeds, winograd_layers=1)


def test_layers_of_different_sizes_share_the_workspace():
    """A small Winograd layer, a larger one, then the small one's shape again (the workspace
    grows to the largest and each layer finds its data where it left it)."""
    rng = np.random.default_rng(7)
    init = {"w1": rand(rng, 32, 16, 3, 3) / 12, "w2": rand(rng, 16, 32, 3, 3) / 17,
            "w3": rand(rng, 16, 16, 3, 3) / 12}
    nodes = [helper.make_node("Conv", ["x", "w1"], ["a"], pads=[1] * 4),
             helper.make_node("Relu", ["a"], ["ar"]),
             helper.make_node("Conv", ["ar", "w2"], ["b"], pads=[1] * 4),
             helper.make_node("Conv", ["b", "w3"], ["y"], pads=[1] * 4)]
    model = make_model(nodes, [("x", [1, 16, 36, 36])], [("y", [1, 16, 36, 36])], init)
    assert_close(model, {"x": rand(rng, 1, 16, 36, 36)}, winograd_layers=3)


@pytest.mark.parametrize("size, taken", [(24, True), (20, False)])
def test_small_layers_keep_the_direct_path(size, taken):
    """24 x 24 outputs make 36 tiles, the fewest that take the Winograd path; 20 x 20 (25
    tiles) stays on the direct GEMM path, which is faster there."""
    rng = np.random.default_rng(size)
    model = make_model([helper.make_node("Conv", ["x", "w"], ["y"], pads=[1] * 4)],
                       [("x", [1, 16, size, size])], [("y", [1, 16, size, size])],
                       {"w": rand(rng, 16, 16, 3, 3)})
    assert bool(winograd_kernels(compile_alone(model, 1))) is taken


def test_the_transforms_compute_a_correlation():
    """The matrices, in float64: A^T [(G g G^T) * (B^T d B)] A is the 3x3 correlation of a
    6x6 window d with g, and transform_weights lays U out by point, output, input channel."""
    rng = np.random.default_rng(0)
    d, g = rng.standard_normal((6, 6)), rng.standard_normal((3, 3))
    y = A_T @ ((G @ g @ G.T) * (B_T @ d @ B_T.T)) @ A_T.T
    direct = np.array([[np.sum(d[i:i + 3, j:j + 3] * g) for j in range(4)] for i in range(4)])
    np.testing.assert_allclose(y, direct, rtol=0, atol=1e-12)
    weights = rng.standard_normal((5, 3, 3, 3)).astype(np.float32)
    u = transform_weights(weights)
    assert u.shape == (36, 5, 3) and u.dtype == np.float32
    np.testing.assert_allclose(u[:, 4, 2].reshape(6, 6), G @ weights[4, 2] @ G.T, rtol=1e-6)


@pytest.mark.parametrize("alphas, out_kernels", [((0.1, 0.1), 1), ((0.1, 0.2), 2)])
def test_layers_of_one_shape_share_kernels_but_not_constants(alphas, out_kernels):
    """Two layers of one shape, each with its own weights and bias, then LeakyRelu: their
    kernels are built once and run on each layer's buffers; an epilogue constant that differs
    (alpha) gives the second layer an output kernel of its own. Both stay right."""
    rng = np.random.default_rng(3)
    init = {"w1": rand(rng, 16, 16, 3, 3) / 12, "b1": rand(rng, 16),
            "w2": rand(rng, 16, 16, 3, 3) / 12, "b2": rand(rng, 16)}
    nodes = [helper.make_node("Conv", ["x", "w1", "b1"], ["a"], pads=[1] * 4),
             helper.make_node("LeakyRelu", ["a"], ["ar"], alpha=alphas[0]),
             helper.make_node("Conv", ["ar", "w2", "b2"], ["c"], pads=[1] * 4),
             helper.make_node("LeakyRelu", ["c"], ["y"], alpha=alphas[1])]
    model = make_model(nodes, [("x", [1, 16, 28, 28])], [("y", [1, 16, 28, 28])], init)
    assert_close(model, {"x": rand(rng, 1, 16, 28, 28)}, winograd_layers=2)
    steps = winograd_kernels(compile_alone(model, 1))
    for kind, distinct in (("in", 1), ("gemm", 1), ("out", out_kernels)):
        assert len({s for s in steps if s.endswith("_wg_" + kind)}) == distinct, steps
