"""The pattern language: matchers, the interior-value guard, checks and shared constructors."""

import numpy as np
import pytest
from conftest import make_model
from onnx import TensorProto, helper

import byoc
from byoc.errors import ByocError
from byoc.partition.int8_patterns import make_qdq_pattern, make_qlinear_pattern
from byoc.partition.patterns import (
    Accept,
    Decline,
    Declined,
    Match,
    Pattern,
    alt,
    const,
    find_matches,
    make_conv_pattern,
    make_elementwise_pattern,
    make_op_pattern,
    match_at,
    op,
    optional,
    wildcard,
)

F = TensorProto.FLOAT


def conv_graph(bias=False, relu=False, extra_reader=None, group=1, weight_input=False):
    """x -> Conv -> [Add b] -> [Relu] -> y; ``extra_reader`` names a value also fed to Sigmoid."""
    rng = np.random.default_rng(0)
    init = {"w": rng.standard_normal((4, 3, 3, 3)).astype(np.float32),
            "b": rng.standard_normal((1, 4, 1, 1)).astype(np.float32)}
    inputs = [("x", F, [1, 3, 8, 8])]
    if weight_input:
        inputs.append(("w", F, [4, 3, 3, 3]))
        del init["w"]
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], name="conv", pads=[1, 1, 1, 1],
                              group=group)]
    last = "c"
    if bias:
        nodes.append(helper.make_node("Add", ["b", last], ["a"], name="add"))
        last = "a"
    if relu:
        nodes.append(helper.make_node("Relu", [last], ["r"], name="relu"))
        last = "r"
    outputs = [(last, F, [1, 4, 8, 8])]
    if extra_reader:
        nodes.append(helper.make_node("Sigmoid", [extra_reader], ["s"], name="sig"))
        outputs.append(("s", F, [1, 4, 8, 8]))
    return byoc.import_model(make_model(nodes, inputs, outputs, init))


def names(nodes):
    return [n.name for n in nodes]


def at(graph, pattern, node_name):
    return match_at(pattern, graph.node_by_name(node_name), graph)


OPTIONAL_CONV = make_conv_pattern("npu.conv2d", with_bias="optional", activation="optional")


@pytest.mark.parametrize("bias,relu,root,expected", [
    (False, False, "conv", ["conv"]),
    (True, False, "add", ["conv", "add"]),
    (False, True, "relu", ["conv", "relu"]),
    (True, True, "relu", ["conv", "add", "relu"]),
])
def test_optional_conv_pattern_matches_each_variant(bias, relu, root, expected):
    graph = conv_graph(bias, relu)
    match = at(graph, OPTIONAL_CONV, root)
    assert isinstance(match, Match), match
    assert names(match.nodes) == expected
    assert match.root.name == root and match.outputs == graph.outputs
    assert match.inputs[0] == "x" and "w" in match.inputs
    assert ("b" in match.inputs) == bias
    assert match.captured["conv"].name == "conv"
    assert ("bias_add" in match.captured) == bias and ("activation" in match.captured) == relu


def test_required_parts_are_required():
    pattern = make_conv_pattern("npu.conv2d_bias_relu", with_bias=True, activation="relu")
    assert isinstance(at(conv_graph(True, True), pattern, "relu"), Match)
    declined = at(conv_graph(False, True), pattern, "relu")
    assert isinstance(declined, Declined) and "is not Add" in declined.reason


def test_attribute_constraint_rejects_with_reason():
    pattern = Pattern("npu.conv_plain", op("Conv", wildcard(), const(), attrs={"group": 1}))
    assert isinstance(at(conv_graph(), pattern, "conv"), Match)
    graph = conv_graph()
    graph.node_by_name("conv").attrs["group"] = 2
    declined = at(graph, pattern, "conv")
    assert isinstance(declined, Declined)
    assert "group=2, expected 1" in declined.reason and "'conv'" in declined.reason
    odd = Pattern("npu.conv_pads", op("Conv", wildcard(), const(),
                                      attrs={"pads": lambda p: p is not None and max(p) > 1}))
    assert "attribute pads=[1, 1, 1, 1] is refused" in at(conv_graph(), odd, "conv").reason


def test_dtype_rank_and_shape_constraints_reject_with_reason():
    graph = conv_graph()
    half = Pattern("npu.conv_fp16", op("Conv", wildcard(), const(), dtype="float16"))
    assert "output dtype float32, expected float16" in at(graph, half, "conv").reason
    rank3 = Pattern("npu.conv1d", op("Conv", wildcard(), const(), rank=3))
    assert "output rank 4, expected 3" in at(graph, rank3, "conv").reason
    wide = Pattern("npu.conv_wide", op("Conv", wildcard(), const(), shape=lambda s: s[1] >= 8))
    assert "output shape [1, 4, 8, 8] is refused" in at(graph, wide, "conv").reason
    ok = Pattern("npu.conv_ok", op("Conv", wildcard(), const(dtype="float32"), dtype="float32",
                                   rank=(4, 5), shape=lambda s: s[1] == 4))
    assert isinstance(at(graph, ok, "conv"), Match)


def test_guard_refuses_interior_value_with_outside_reader():
    graph = conv_graph(bias=True, relu=True, extra_reader="c")
    declined = at(graph, OPTIONAL_CONV, "relu")
    assert isinstance(declined, Declined)
    assert "interior value" in declined.reason and "'c'" in declined.reason
    assert "Sigmoid node 'sig'" in declined.reason
    # rooted where the shared value is the output, the match is fine
    assert names(at(graph, OPTIONAL_CONV, "conv").nodes) == ["conv"]


def test_guard_refuses_interior_graph_output():
    graph = conv_graph(relu=True)
    graph.outputs.append("c")
    declined = at(graph, OPTIONAL_CONV, "relu")
    assert isinstance(declined, Declined) and "'c' is a graph output" in declined.reason


def test_alternatives_first_match_wins():
    graph = conv_graph(relu=True)
    act = op(("Relu", "Sigmoid"), alt(op("MatMul", wildcard(), wildcard(), label="mm"),
                                      op("Conv", wildcard(), const(), label="conv")))
    match = at(graph, Pattern("npu.act", act), "relu")
    assert isinstance(match, Match) and "conv" in match.captured and "mm" not in match.captured
    none = at(graph, Pattern("npu.act_mm", op("Relu", alt(op("MatMul", wildcard(), wildcard()),
                                                         op("Gemm", wildcard(), wildcard())))),
              "relu")
    assert "no alternative matched" in none.reason and "is not MatMul" in none.reason
    assert "is not Gemm" in none.reason


def test_const_rejects_non_constant_weight():
    graph = conv_graph(weight_input=True)
    declined = at(graph, OPTIONAL_CONV, "conv")
    assert isinstance(declined, Declined)
    assert "'w' must be a graph constant" in declined.reason
    assert isinstance(at(graph, Pattern("npu.conv_any", op("Conv", wildcard(), wildcard())),
                         "conv"), Match)


def test_optional_needs_a_through_input():
    with pytest.raises(ByocError):
        optional(op("Relu"))


@pytest.mark.parametrize("name", ["conv", "npu", "NPU.conv", "npu.conv.relu", "npu.", ".conv",
                                  "npu.conv-relu", ""])
def test_pattern_name_must_be_plugin_dot_variant(name):
    with pytest.raises(ByocError, match="plugin.op_variant"):
        Pattern(name, op("Conv"))


def test_root_must_be_an_op():
    with pytest.raises(ByocError, match="root"):
        Pattern("npu.anything", wildcard())


def test_check_verdicts_and_find_matches_declines():
    graph = conv_graph(bias=True, relu=True)

    def small_only(match, graph):
        out = graph.type_of(match.captured["conv"].outputs[0])
        if out.shape[1] > 2:
            return Decline(f"{out.shape[1]} output channels; the NPU has 2")
        return Accept()

    patterns = [make_conv_pattern("npu.conv2d", with_bias="optional", activation="optional",
                                  check=small_only),
                make_op_pattern("dsp.relu", "Relu")]
    results = {r.node.name: r for r in find_matches(graph, patterns)}
    assert set(results) == {"conv", "add", "relu"}  # every node a conv pattern can root at
    for name in ("conv", "add", "relu"):
        assert [d.pattern for d in results[name].declines] == ["npu.conv2d"]
        assert "4 output channels; the NPU has 2" in results[name].declines[0].reason
    assert [m.pattern for m in results["relu"].matches] == ["dsp.relu"]
    assert results["relu"].matches[0].inputs == ["a"]


def test_find_matches_returns_overlapping_matches_at_each_root():
    graph = conv_graph(bias=True, relu=True)
    results = {r.node.name: r for r in find_matches(graph, [OPTIONAL_CONV])}
    assert names(results["relu"].matches[0].nodes) == ["conv", "add", "relu"]
    assert names(results["add"].matches[0].nodes) == ["conv", "add"]
    assert names(results["conv"].matches[0].nodes) == ["conv"]


def test_find_matches_explains_guard_refusal():
    graph = conv_graph(bias=True, relu=True, extra_reader="a")
    relu = next(r for r in find_matches(graph, [OPTIONAL_CONV]) if r.node.name == "relu")
    assert not relu.matches and "also read by Sigmoid node 'sig'" in relu.declines[0].reason


def test_a_check_without_a_verdict_is_a_failed_check():
    pattern = make_op_pattern("npu.conv", "Conv", check=lambda m, g: True)
    (result,) = find_matches(conv_graph(), [pattern])
    (declined,) = result.declines
    assert declined.check_failed and not result.matches
    assert declined.reason == "the check returned True instead of Accept() or Decline(reason)"
    with pytest.raises(ByocError):
        Decline("")


def test_elementwise_pattern():
    nodes = [helper.make_node("Mul", ["x", "y"], ["m"], name="mul"),
             helper.make_node("Relu", ["m"], ["r"], name="relu")]
    graph = byoc.import_model(make_model(nodes, [("x", F, [2, 3]), ("y", F, [2, 3])],
                                         [("r", F, [2, 3])]))
    pattern = make_elementwise_pattern("dsp.mul_relu", ("Mul",), activation="relu")
    match = at(graph, pattern, "relu")
    assert names(match.nodes) == ["mul", "relu"] and match.inputs == ["x", "y"]
    assert "is not Relu" in at(graph, pattern, "mul").reason


# -- int8 ----------------------------------------------------------------------------------------


def qdq_conv_graph(activation="Relu", share_input_dq=False, bias=True):
    """QuantizeLinear(x) -> DQ -> Conv(DQ(w), DQ(b)) -> [activation] -> QuantizeLinear."""
    rng = np.random.default_rng(0)
    init = {"xs": np.float32(0.05), "xz": np.uint8(128), "ys": np.float32(0.1),
            "yz": np.uint8(3), "w": rng.integers(-127, 128, (8, 4, 3, 3)).astype(np.int8),
            "ws": np.full(8, 0.01, np.float32), "wz": np.zeros(8, np.int8),
            "b": np.zeros(8, np.int32), "bs": np.full(8, 0.0005, np.float32),
            "bz": np.zeros(8, np.int32)}
    nodes = [helper.make_node("QuantizeLinear", ["x", "xs", "xz"], ["xq"], name="q_in"),
             helper.make_node("DequantizeLinear", ["xq", "xs", "xz"], ["xd"], name="dq_x"),
             helper.make_node("DequantizeLinear", ["w", "ws", "wz"], ["wd"], name="dq_w", axis=0),
             helper.make_node("DequantizeLinear", ["b", "bs", "bz"], ["bd"], name="dq_b", axis=0),
             helper.make_node("Conv", ["xd", "wd", "bd"] if bias else ["xd", "wd"], ["acc"],
                              name="conv", pads=[1, 1, 1, 1])]
    last = "acc"
    if activation:
        nodes.append(helper.make_node(activation, ["acc"], ["act"], name="act"))
        last = "act"
    nodes.append(helper.make_node("QuantizeLinear", [last, "ys", "yz"], ["y"], name="quant"))
    outputs = [("y", TensorProto.UINT8, [1, 8, 9, 9])]
    if share_input_dq:
        nodes.append(helper.make_node("Sigmoid", ["xd"], ["s"], name="sig"))
        outputs.append(("s", F, [1, 4, 9, 9]))
    return byoc.import_model(make_model(nodes, [("x", F, [1, 4, 9, 9])], outputs, init, opset=13))


QDQ = make_qdq_pattern("npu.qconv")


@pytest.mark.parametrize("activation", ["Relu", None])
def test_qdq_pattern_claims_the_group(activation):
    graph = qdq_conv_graph(activation)
    match = at(graph, QDQ, "quant")
    assert isinstance(match, Match), match
    expected = ["dq_x", "dq_w", "dq_b", "conv"] + (["act"] if activation else []) + ["quant"]
    assert names(match.nodes) == expected and not match.shared
    assert match.inputs[0] == "xq" and match.bound["input"] == "xq"
    assert match.bound["weight"] == "w" and match.bound["bias"] == "b"
    assert match.outputs == ["y"] and match.captured["op"].name == "conv"
    # the QuantizeLinear is the root: find_matches reports it there and nowhere else
    assert [r.node.name for r in find_matches(graph, [QDQ])] == ["q_in", "quant"]


def test_qdq_pattern_without_bias():
    match = at(qdq_conv_graph(bias=False), QDQ, "quant")
    assert names(match.nodes) == ["dq_x", "dq_w", "conv", "act", "quant"]


def test_qdq_pattern_shares_an_input_dequantize_read_elsewhere():
    graph = qdq_conv_graph(share_input_dq=True)
    match = at(graph, QDQ, "quant")
    assert isinstance(match, Match), match
    assert names(match.shared) == ["dq_x"]
    assert names(match.nodes) == ["dq_w", "dq_b", "conv", "act", "quant"]
    assert match.inputs[0] == "xq"


def test_qdq_pattern_declines_unfusable_activation():
    declined = at(qdq_conv_graph("Sigmoid"), QDQ, "quant")
    assert isinstance(declined, Declined) and "Sigmoid node 'act'" in declined.reason


def test_qdq_pattern_refuses_interior_float_read_outside():
    graph = qdq_conv_graph()
    graph.outputs.append("acc")
    declined = at(graph, QDQ, "quant")
    assert isinstance(declined, Declined) and "'acc' is a graph output" in declined.reason


def test_qlinear_pattern():
    rng = np.random.default_rng(1)
    init = {"xs": np.float32(0.05), "xz": np.uint8(128), "w": rng.integers(
        -127, 128, (8, 4, 3, 3)).astype(np.int8), "ws": np.float32(0.01), "wz": np.int8(0),
            "ys": np.float32(0.1), "yz": np.uint8(3)}
    nodes = [helper.make_node("QLinearConv", ["x", "xs", "xz", "w", "ws", "wz", "ys", "yz"],
                              ["y"], name="qconv", pads=[1, 1, 1, 1])]
    model = make_model(nodes, [("x", TensorProto.UINT8, [1, 4, 9, 9])],
                       [("y", TensorProto.UINT8, [1, 8, 9, 9])], init)
    graph = byoc.import_model(model)
    match = at(graph, make_qlinear_pattern("npu.qlinear"), "qconv")
    assert isinstance(match, Match) and names(match.nodes) == ["qconv"]
    assert match.bound == {"input": "x", "weight": "w"}
    graph.constants.pop("w")
    graph.inputs.append("w")
    declined = at(graph, make_qlinear_pattern("npu.qlinear"), "qconv")
    assert isinstance(declined, Declined) and "'w' must be a graph constant" in declined.reason


def test_optional_activation_over_a_leaf_at_the_root():
    graph = conv_graph(relu=True)
    pattern = Pattern("dsp.maybe_relu", optional(op("Relu", wildcard())))
    assert names(at(graph, pattern, "relu").nodes) == ["relu"]
    assert [r.node.name for r in find_matches(graph, [pattern])] == ["relu"]


def test_guard_refuses_a_match_reading_its_own_interior_value():
    nodes = [helper.make_node("Relu", ["x"], ["r"], name="relu"),
             helper.make_node("Add", ["r", "r"], ["y"], name="add")]
    graph = byoc.import_model(make_model(nodes, [("x", F, [2])], [("y", F, [2])]))
    pattern = Pattern("dsp.relu_add", op("Add", op("Relu", wildcard()), wildcard()))
    declined = at(graph, pattern, "add")
    assert isinstance(declined, Declined) and "produced inside it" in declined.reason
