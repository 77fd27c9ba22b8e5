"""Concatenation by placement: producers write into the Concat's output, which copies only
what is not placed there, and every result stays the reference's."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto, helper

import byoc
from byoc.testing import compile_reference, make_model

F = TensorProto.FLOAT


def compiled_and_checked(model, feeds, threads=1):
    """Compile for cpu_llvm, compare every output with the reference, return the buffers and
    steps of its partitions."""
    compiled = byoc.compile(model, plugins=["cpu_llvm"], plugin_options={
        "cpu_llvm": {"threads": threads, "min_work_per_thread": 0}})
    ours = compiled.run(feeds)
    reference = compile_reference(model).run(feeds)
    assert ours.keys() == reference.keys()
    for name, expected in reference.items():
        scale = max(1.0, float(np.abs(expected).max()))  # Winograd: error relative to the max
        np.testing.assert_allclose(ours[name], expected, rtol=1e-5, atol=1e-5 * scale,
                                   err_msg=name)
    metas = [part.payload.metadata for part in compiled.parts]
    return {"buffers": [b for m in metas for b in m["buffers"]],
            "steps": [s for m in metas for s in m["steps"]]}


def buffers(meta) -> dict[str, dict]:
    return {b["name"]: b for b in meta["buffers"]}


def concat_steps(meta) -> list[str]:
    return [s for s in meta["steps"] if "Concat" in s]


def conv(nodes, weights, rng, x, c_in, c_out, name, kernel=3):
    weights[f"{name}_w"] = (rng.standard_normal((c_out, c_in, kernel, kernel)) * 0.3
                            ).astype(np.float32)
    nodes.append(helper.make_node("Conv", [x, f"{name}_w"], [f"{name}_c"],
                                  pads=[kernel // 2] * 4))
    nodes.append(helper.make_node("Relu", [f"{name}_c"], [name]))
    return name


def dense_block(layers: int, every_output: bool, size: int = 9, growth: int = 5):
    """DenseNet's block in the two forms exporters write: each layer concatenating the last
    Concat and its own output (``x_k = Concat(x_(k-1), y_k)``), or all outputs so far
    (torchvision: ``Concat(x_0, y_1, ..., y_k)``). ``x_0`` is the model's input."""
    rng = np.random.default_rng(0)
    nodes, weights = [], {}
    channels, x, outputs = 6, "x", ["x"]
    for k in range(1, layers + 1):
        y = conv(nodes, weights, rng, x, channels, growth, f"y{k}")
        outputs.append(y)
        x = f"cat{k}"
        nodes.append(helper.make_node("Concat", outputs if every_output else [f"cat{k - 1}"
                                      if k > 1 else "x", y], [x], axis=1))
        channels += growth
    head = conv(nodes, weights, rng, x, channels, 4, "head", kernel=1)
    model = make_model(nodes, [("x", F, [1, 6, size, size])], [(head, F, [1, 4, size, size])],
                       weights)
    feeds = {"x": rng.standard_normal((1, 6, size, size)).astype(np.float32)}
    return model, feeds


@pytest.mark.parametrize("threads", [1, 2])
def test_chained_dense_block_writes_in_place_and_copies_nothing(threads):
    model, feeds = dense_block(4, every_output=False)
    meta = compiled_and_checked(model, feeds, threads)
    slots = buffers(meta)
    # Only x (the model's input) is copied, by the first Concat; every y_k and every earlier
    # Concat lives in the last Concat's buffer.
    assert len(concat_steps(meta)) == 1
    for k in range(1, 5):
        assert slots[f"y{k}"]["kind"] == "alias"
    for k in range(1, 4):
        assert slots[f"cat{k}"]["kind"] == "alias"
    assert slots["cat4"]["kind"] == "temp"


@pytest.mark.parametrize("threads", [1, 2])
def test_all_outputs_dense_block_views_earlier_concats_of_the_last(threads):
    model, feeds = dense_block(4, every_output=True)
    meta = compiled_and_checked(model, feeds, threads)
    slots = buffers(meta)
    for k in range(1, 4):
        assert slots[f"cat{k}"]["kind"] == "alias" and slots[f"cat{k}"]["offset"] == 0
    for k in range(1, 5):
        assert slots[f"y{k}"]["kind"] == "alias"
    # each Concat copies x, the only input not placed; none copies a y_k
    assert len(concat_steps(meta)) == 4


def producers_model():
    """A Concat whose inputs come from kernels of every placeable kind, in an order where each
    is written after its right-hand neighbour and before its left-hand one: a kernel writing
    past either end of its chunk overwrites a neighbour already written (odd sizes everywhere,
    partial tiles and vectors). The 3x3 convolution is large enough for Winograd."""
    rng = np.random.default_rng(3)
    c, h, w = 16, 25, 23
    weights = {
        "w_gemm": (rng.standard_normal((7, c, 1, 1)) * 0.3).astype(np.float32),
        "w_wino": (rng.standard_normal((17, c, 3, 3)) * 0.1).astype(np.float32),
        "w_dw": (rng.standard_normal((c, 1, 3, 3)) * 0.3).astype(np.float32),
        "scale": rng.uniform(0.5, 1.5, c).astype(np.float32),
        "bias": rng.standard_normal(c).astype(np.float32),
        "mean": rng.standard_normal(c).astype(np.float32),
        "var": rng.uniform(0.5, 1.5, c).astype(np.float32),
        "lo": np.float32(-0.5), "hi": np.float32(0.5),
    }
    producers = [
        helper.make_node("Clip", ["x", "lo", "hi"], ["p_clip"]),
        helper.make_node("Sigmoid", ["x"], ["p_sigmoid"]),
        helper.make_node("Add", ["x", "x"], ["p_add"]),
        helper.make_node("BatchNormalization", ["x", "scale", "bias", "mean", "var"], ["p_bn"]),
        helper.make_node("AveragePool", ["x"], ["p_avg"], kernel_shape=[3, 3], pads=[1] * 4),
        helper.make_node("MaxPool", ["x"], ["p_pool"], kernel_shape=[3, 3], pads=[1] * 4),
        helper.make_node("Conv", ["x", "w_dw"], ["p_dw"], pads=[1] * 4, group=c),
        helper.make_node("Conv", ["x", "w_wino"], ["p_wino"], pads=[1] * 4),
        helper.make_node("Conv", ["x", "w_gemm"], ["p_gemm"]),
    ]
    names = [node.output[0] for node in producers][::-1]
    channels = 7 + 17 + c * 7
    nodes = [*producers, helper.make_node("Concat", names, ["y"], axis=1)]
    model = make_model(nodes, [("x", F, [1, c, h, w])], [("y", F, [1, channels, h, w])],
                       weights)
    return model, names, {"x": rng.standard_normal((1, c, h, w)).astype(np.float32)}


@pytest.mark.parametrize("threads", [1, 2])
def test_producers_of_every_kind_stay_inside_their_chunks(threads):
    model, names, feeds = producers_model()
    meta = compiled_and_checked(model, feeds, threads)
    slots = buffers(meta)
    assert [slots[v]["kind"] for v in names] == ["alias"] * len(names)
    assert concat_steps(meta) == []
    assert any("_wg_" in step for step in meta["steps"])


def test_products_and_global_pools_concatenated():
    """MatMul and Gemm results and global pools, each placed; a Concat whose inputs are a run
    in the middle of a later one's is a view of that run."""
    rng = np.random.default_rng(4)
    weights = {f"w{i}": rng.standard_normal((9, 13)).astype(np.float32) for i in range(2)}
    weights["g"] = rng.standard_normal((9, 11)).astype(np.float32)
    nodes = [helper.make_node("MatMul", ["x", "w0"], ["a"]),
             helper.make_node("MatMul", ["x", "w1"], ["b"]),
             helper.make_node("Concat", ["b", "a", "x2"], ["y"], axis=1),
             helper.make_node("Gemm", ["v", "g"], ["ga"]),
             helper.make_node("Gemm", ["v", "g"], ["gb"], alpha=2.0),
             helper.make_node("Concat", ["ga", "gb"], ["mid"], axis=1),
             helper.make_node("Relu", ["mid"], ["mid_relu"]),
             helper.make_node("Concat", ["v", "ga", "gb"], ["z"], axis=1),
             helper.make_node("GlobalAveragePool", ["im"], ["gap"]),
             helper.make_node("GlobalMaxPool", ["im"], ["gmp"]),
             helper.make_node("Concat", ["gmp", "gap"], ["pools"], axis=1)]
    model = make_model(nodes, [("x", F, [1, 7, 9]), ("x2", F, [1, 3, 13]), ("v", F, [1, 9]),
                               ("im", F, [1, 5, 6, 7])],
                       [("y", F, [1, 17, 13]), ("mid_relu", F, [1, 22]), ("z", F, [1, 31]),
                        ("pools", F, [1, 10, 1, 1])], weights)
    feeds = {"x": rng.standard_normal((1, 7, 9)).astype(np.float32),
             "x2": rng.standard_normal((1, 3, 13)).astype(np.float32),
             "v": rng.standard_normal((1, 9)).astype(np.float32),
             "im": rng.standard_normal((1, 5, 6, 7)).astype(np.float32)}
    meta = compiled_and_checked(model, feeds)
    slots = buffers(meta)
    assert slots["a"]["kind"] == slots["b"]["kind"] == "alias"
    assert (slots["b"]["offset"], slots["a"]["offset"]) == (0, 7 * 13)
    assert (slots["ga"]["offset"], slots["gb"]["offset"]) == (9, 20)
    assert slots["mid"]["kind"] == "alias" and slots["mid"]["offset"] == 9
    assert slots["gmp"]["kind"] == slots["gap"]["kind"] == "alias"


def test_values_that_must_keep_their_buffers_are_copied():
    """A batch of two (chunks not contiguous), a value concatenated twice, and a value that is
    also a model output: each is copied, and all results are right."""
    rng = np.random.default_rng(5)
    w = (rng.standard_normal((3, 4, 1, 1)) * 0.3).astype(np.float32)
    nodes = [helper.make_node("Conv", ["x", "w"], ["a"]),
             helper.make_node("Relu", ["x"], ["r"]),
             helper.make_node("Concat", ["a", "r", "a"], ["twice"], axis=1),
             helper.make_node("Conv", ["xb", "w"], ["ab"]),
             helper.make_node("Concat", ["ab", "xb"], ["batched"], axis=1),
             helper.make_node("Sigmoid", ["x"], ["s"]),
             helper.make_node("Concat", ["s", "x"], ["with_output"], axis=1)]
    model = make_model(
        nodes, [("x", F, [1, 4, 5, 5]), ("xb", F, [2, 4, 5, 5])],
        [("twice", F, [1, 10, 5, 5]), ("batched", F, [2, 7, 5, 5]),
         ("with_output", F, [1, 8, 5, 5]), ("s", F, [1, 4, 5, 5])], {"w": w})
    feeds = {"x": rng.standard_normal((1, 4, 5, 5)).astype(np.float32),
             "xb": rng.standard_normal((2, 4, 5, 5)).astype(np.float32)}
    meta = compiled_and_checked(model, feeds)
    slots = buffers(meta)
    assert slots["a"]["kind"] == "temp"       # twice in one Concat
    assert slots["ab"]["kind"] == "temp"      # batch of two
    assert slots["s"]["kind"] == "output"     # a model output
    assert slots["r"]["kind"] == "alias"      # the one that can be placed is
