"""Conv, Gemm and MatMul kernels of cpu_llvm against the reference interpreter."""

from __future__ import annotations

import numpy as np
import pytest
from cpu_llvm_checks import compile_alone
from onnx import TensorProto, helper, numpy_helper

from byoc.testing import compile_reference

THREADS = (1, 2)


def make_model(nodes, inputs, outputs, initializers=None):
    graph = helper.make_graph(
        nodes, "test",
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, s) for n, s in inputs],
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, s) for n, s in outputs],
        initializer=[numpy_helper.from_array(np.asarray(a, np.float32), n)
                     for n, a in (initializers or {}).items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


def check(model, feeds, rtol=1e-4):
    reference = compile_reference(model).run(feeds)
    for threads in THREADS:
        ours = compile_alone(model, threads).run(feeds)
        for name, expected in reference.items():
            scale = max(1.0, float(np.abs(expected).max()))
            np.testing.assert_allclose(ours[name], expected, rtol=rtol, atol=rtol * scale,
                                       err_msg=f"{name} with {threads} threads")


def rand(rng, *shape):
    return rng.standard_normal(shape).astype(np.float32)


def add_b(value, const_b, init, inputs, feeds):
    """Make the product's operand ``b`` a constant of ``value`` (``const_b``) or an input
    fed with it."""
    if const_b:
        init["b"] = value
    else:
        inputs.append(("b", list(value.shape)))
        feeds["b"] = value


def out_size(size, k, s, p, d):
    return (size + 2 * p - d * (k - 1) - 1) // s + 1


CONV_CASES = [
    # n, c, h, w, m, k, stride, pad, dilation, group
    (1, 3, 8, 8, 4, 3, 1, 1, 1, 1),
    (1, 16, 9, 7, 20, 3, 2, 1, 1, 1),
    (2, 8, 10, 10, 16, 1, 1, 0, 1, 1),
    (1, 17, 13, 11, 33, 1, 1, 0, 1, 1),
    (1, 24, 12, 12, 40, 1, 2, 0, 1, 1),
    (1, 32, 14, 14, 32, 3, 1, 1, 1, 32),
    (2, 16, 11, 9, 32, 3, 2, 1, 1, 16),
    (1, 12, 11, 11, 18, 3, 1, 2, 2, 3),
    (1, 16, 15, 15, 24, 5, 2, 2, 1, 1),
    (1, 3, 30, 30, 64, 7, 2, 3, 1, 1),
    (1, 64, 7, 7, 70, 3, 1, 1, 1, 1),
    (1, 300, 6, 6, 9, 3, 1, 0, 1, 1),
    (2, 4, 5, 37, 5, 3, 1, 1, 1, 1),
    (1, 8, 40, 40, 16, 3, 1, 1, 1, 2),
]


@pytest.mark.parametrize("case", CONV_CASES, ids=lambda c: "x".join(map(str, c)))
@pytest.mark.parametrize("epilogue", ["bias_relu", "plain", "residual"])
def test_conv(case, epilogue):
    n, c, h, w, m, k, s, p, d, g = case
    rng = np.random.default_rng(sum(case))
    oh, ow = out_size(h, k, s, p, d), out_size(w, k, s, p, d)
    init = {"w": rand(rng, m, c // g, k, k)}
    inputs = ["x", "w"]
    graph_inputs = [("x", [n, c, h, w])]
    feeds = {"x": rand(rng, n, c, h, w)}
    if epilogue != "plain":
        init["b"] = rand(rng, m)
        inputs.append("b")
    nodes = [helper.make_node("Conv", inputs, ["c"], pads=[p] * 4, strides=[s, s],
                              dilations=[d, d], group=g)]
    if epilogue == "bias_relu":
        nodes.append(helper.make_node("Relu", ["c"], ["y"]))
    elif epilogue == "residual":
        graph_inputs.append(("r", [n, m, oh, ow]))
        feeds["r"] = rand(rng, n, m, oh, ow)
        nodes += [helper.make_node("Add", ["c", "r"], ["a"]),
                  helper.make_node("Relu", ["a"], ["y"])]
    else:
        nodes.append(helper.make_node("Identity", ["c"], ["y"]))
    check(make_model(nodes, graph_inputs, [("y", [n, m, oh, ow])], init), feeds)


SHIFTED_CASES = [
    # x shape, w shape, attributes: stride 1 and as many output as input columns, so the
    # columns are packed as shifted views of the input with padding masks
    ((1, 5, 9, 13), (6, 5, 3, 3), {"pads": [0, 1, 2, 1]}),
    ((1, 4, 7, 10), (7, 4, 2, 4), {"auto_pad": "SAME_UPPER"}),
    ((2, 3, 6, 11), (5, 3, 4, 2), {"auto_pad": "SAME_LOWER"}),
    ((1, 6, 12, 9), (8, 6, 3, 3), {"pads": [3, 2, 1, 2], "dilations": [3, 2]}),
    ((1, 2, 5, 4), (4, 2, 5, 1), {"pads": [1, 0, 3, 0]}),
    ((1, 40, 23, 29), (9, 40, 3, 3), {"pads": [1, 1, 1, 1]}),  # K blocks, N blocks, tails
]


@pytest.mark.parametrize("x_shape, w_shape, attrs", SHIFTED_CASES,
                         ids=lambda v: "x".join(map(str, v)) if isinstance(v, tuple) else None)
def test_conv_same_width_padding(x_shape, w_shape, attrs):
    rng = np.random.default_rng(len(SHIFTED_CASES) + x_shape[1])
    reference = compile_reference(make_model(
        [helper.make_node("Conv", ["x", "w"], ["y"], **attrs)], [("x", list(x_shape))],
        [("y", None)], {"w": rand(rng, *w_shape)}))
    feeds = {"x": rand(rng, *x_shape)}
    y_shape = list(reference.run(feeds)["y"].shape)
    assert y_shape[3] == x_shape[3], "the case must keep the width (the shifted packing)"
    model = make_model([helper.make_node("Conv", ["x", "w"], ["c"], **attrs),
                        helper.make_node("Relu", ["c"], ["y"])],
                       [("x", list(x_shape))], [("y", y_shape)], {"w": rand(rng, *w_shape)})
    check(model, feeds)


@pytest.mark.parametrize("operand", ["channel", "scalar", "column", "row_of_plane",
                                     "batch_channel"])
def test_conv_epilogue_operand_layouts(operand):
    """Per-channel, scalar and per-position operands are applied as vectors; others (a
    broadcast along part of the spatial axes) take the element-by-element path."""
    rng = np.random.default_rng(7)
    n, c, h, m = 2, 8, 9, 12
    shapes = {"channel": [1, m, 1, 1], "scalar": [], "column": [1, 1, h, h],
              "row_of_plane": [1, 1, 1, h], "batch_channel": [n, m, 1, 1]}
    init = {"w": rand(rng, m, c, 3, 3), "o": rand(rng, *shapes[operand])}
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], pads=[1] * 4),
             helper.make_node("Mul", ["c", "o"], ["t"]),
             helper.make_node("Clip", ["t", "lo", "hi"], ["y"])]
    init["lo"] = np.float32(-0.5)
    init["hi"] = np.float32(2.0)
    check(make_model(nodes, [("x", [n, c, h, h])], [("y", [n, m, h, h])], init),
          {"x": rand(rng, n, c, h, h)})


GEMM_CASES = [
    # m, k, n, transA, transB, alpha, beta, c shape
    (1, 64, 10, 0, 1, 1.0, 1.0, "row"),
    (5, 37, 33, 0, 0, 1.0, 1.0, "full"),
    (17, 20, 50, 1, 0, 0.5, 2.0, "column"),
    (3, 300, 70, 1, 1, 1.0, 0.0, "full"),
    (40, 9, 3, 0, 1, 2.0, 1.0, "scalar"),
    (2, 513, 40, 0, 0, 1.0, 1.0, None),
]


@pytest.mark.parametrize("case", GEMM_CASES, ids=lambda c: "_".join(map(str, c)))
@pytest.mark.parametrize("const_b", [True, False])
def test_gemm(case, const_b):
    m, k, n, ta, tb, alpha, beta, c_kind = case
    rng = np.random.default_rng(m * 100 + k)
    a_shape = [k, m] if ta else [m, k]
    b_shape = [n, k] if tb else [k, n]
    init, inputs, feeds = {}, [("a", a_shape)], {"a": rand(rng, *a_shape)}
    add_b(rand(rng, *b_shape), const_b, init, inputs, feeds)
    names = ["a", "b"]
    if c_kind:
        c_shape = {"row": [n], "full": [m, n], "column": [m, 1], "scalar": []}[c_kind]
        init["c"] = rand(rng, *c_shape)
        names.append("c")
    nodes = [helper.make_node("Gemm", names, ["g"], alpha=alpha, beta=beta, transA=ta,
                              transB=tb),
             helper.make_node("Relu", ["g"], ["y"])]
    check(make_model(nodes, inputs, [("y", [m, n])], init), feeds)


MATMUL_CASES = [
    ([7, 19], [19, 45], True),
    ([7, 19], [19, 45], False),
    ([2, 3, 9, 16], [16, 33], True),
    ([2, 3, 9, 16], [16, 33], False),
    ([2, 1, 5, 8], [3, 8, 20], False),
    ([4, 6, 12], [4, 12, 6], True),
    ([12], [12, 40], True),
    ([3, 5, 12], [12], False),
    ([64, 128], [128, 64], True),
]


@pytest.mark.parametrize("case", MATMUL_CASES, ids=lambda c: f"{c[0]}x{c[1]}_{c[2]}")
@pytest.mark.parametrize("epilogue", ["plain", "bias_relu", "residual"])
def test_matmul(case, epilogue):
    a_shape, b_shape, const_b = case
    rng = np.random.default_rng(len(a_shape) * 10 + len(b_shape))
    out_shape = list(np.matmul(np.zeros(a_shape), np.zeros(b_shape)).shape)
    init, inputs = {}, [("a", a_shape)]
    feeds = {"a": rand(rng, *a_shape)}
    add_b(rand(rng, *b_shape), const_b, init, inputs, feeds)
    nodes = [helper.make_node("MatMul", ["a", "b"], ["p"])]
    if epilogue == "plain":
        nodes.append(helper.make_node("Identity", ["p"], ["y"]))
    elif epilogue == "bias_relu":
        init["bias"] = rand(rng, out_shape[-1])
        nodes += [helper.make_node("Add", ["p", "bias"], ["q"]),
                  helper.make_node("Relu", ["q"], ["y"])]
    else:
        inputs.append(("r", out_shape))
        feeds["r"] = rand(rng, *out_shape)
        nodes.append(helper.make_node("Add", ["r", "p"], ["y"]))
    check(make_model(nodes, inputs, [("y", out_shape)], init), feeds)


def test_conv_chain_with_gemm_head():
    """A small CNN: conv stack, a residual block, flatten and a fully connected layer."""
    rng = np.random.default_rng(3)
    init = {"w1": rand(rng, 16, 3, 3, 3), "b1": rand(rng, 16), "w2": rand(rng, 16, 16, 3, 3),
            "b2": rand(rng, 16), "fc": rand(rng, 10, 16 * 8 * 8), "fcb": rand(rng, 10)}
    nodes = [
        helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], pads=[1] * 4, strides=[2, 2]),
        helper.make_node("Relu", ["c1"], ["r1"]),
        helper.make_node("Conv", ["r1", "w2", "b2"], ["c2"], pads=[1] * 4),
        helper.make_node("Add", ["c2", "r1"], ["s"]),
        helper.make_node("Relu", ["s"], ["r2"]),
        helper.make_node("Flatten", ["r2"], ["f"]),
        helper.make_node("Gemm", ["f", "fc", "fcb"], ["y"], transB=1),
    ]
    check(make_model(nodes, [("x", [1, 3, 16, 16])], [("y", [1, 10])], init),
          {"x": rand(rng, 1, 3, 16, 16)})
