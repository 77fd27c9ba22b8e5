"""The partitioner: overlaps, pins, acyclic merging, minimum size and explanations."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from byoc.core.ir import Graph, Node, TensorType
from byoc.errors import ByocError
from byoc.partition.partitioner import PluginClaims, partition_graph
from byoc.partition.patterns import make_elementwise_pattern, make_op_pattern

T = TensorType(np.float32, (2,))


def build(node_specs, inputs=("x",), outputs=None, constants=None):
    """``node_specs`` are (name, op_type, inputs); node ``n`` defines value ``n``. Graph
    outputs default to the values nothing reads."""
    constants = {k: np.asarray(v, np.float32) for k, v in (constants or {}).items()}
    nodes = [Node(op, list(ins), [name], name=name) for name, op, ins in node_specs]
    read = {v for n in nodes for v in n.inputs}
    if outputs is None:
        outputs = [n.outputs[0] for n in nodes if n.outputs[0] not in read]
    types = {v: T for v in [*inputs, *(n.outputs[0] for n in nodes)]}
    types.update({k: TensorType.of(v) for k, v in constants.items()})
    return Graph("g", nodes, list(inputs), list(outputs), types, constants)


def claims(plugin, priority, *patterns, cost=None):
    return PluginClaims(plugin, priority, list(patterns), cost)


def ops(plugin, priority, *op_types, cost=None):
    return claims(plugin, priority, *(make_op_pattern(f"{plugin}.{t.lower()}", t)
                                      for t in op_types), cost=cost)


def layout(plan):
    return [(p.plugin, [n.name for n in p.nodes]) for p in plan.partitions]


def assert_consistent(graph, plan):
    """Every node in one partition, the partition graph acyclic and its edges well formed."""
    names = [n.name for p in plan.partitions for n in p.nodes]
    assert sorted(names) == sorted(n.name for n in graph.nodes)
    plan.check_acyclic()
    produced = {}
    for i, partition in enumerate(plan.partitions):
        for value in partition.outputs:
            produced[value] = i
    for i, partition in enumerate(plan.partitions):
        for value in partition.inputs:
            assert value not in graph.constants
            assert value in graph.inputs or produced.get(value, i) < i, (value, partition.name)
        for value in partition.outputs:
            assert any(v == value for n in partition.nodes for v in n.outputs)
    for value in graph.outputs:
        assert value in graph.inputs or value in produced
    assert set(plan.explanations) == {n.name for n in graph.nodes}
    for node in graph.nodes:
        explanation = plan.explanations[node.name]
        assert explanation.plugin == plan.partition_of(node.name).plugin
        assert all(explanation.reasons.values())


def diamond():
    # a feeds both b and d; b feeds d. a and d are claimed, b is not.
    return build([("a", "Relu", ["x"]), ("b", "Mul", ["a", "c"]), ("d", "Add", ["a", "b"])],
                 constants={"c": [2.0, 2.0]})


def test_diamond_is_split_instead_of_merged_into_a_cycle():
    graph = diamond()
    plan = partition_graph(graph, [ops("npu", 0, "Relu", "Add")])
    assert layout(plan) == [("npu", ["a"]), ("cpu", ["b"]), ("npu", ["d"])]
    assert [p.name for p in plan.partitions] == ["p0_npu", "p1_cpu", "p2_npu"]
    plan.check_acyclic()
    assert_consistent(graph, plan)
    first, middle, last = plan.partitions
    assert (first.inputs, first.outputs) == (["x"], ["a"])
    assert (middle.inputs, middle.outputs) == (["a"], ["b"])  # the constant c is no input
    assert (last.inputs, last.outputs) == (["a", "b"], ["d"])
    assert set(middle.types) == {"a", "c", "b"}


def test_diamond_merges_when_the_middle_is_claimed_too():
    graph = diamond()
    plan = partition_graph(graph, [ops("npu", 0, "Relu", "Add", "Mul")])
    assert layout(plan) == [("npu", ["a", "b", "d"])]
    assert (plan.partitions[0].inputs, plan.partitions[0].outputs) == (["x"], ["d"])


def test_check_acyclic_rejects_an_out_of_order_plan():
    plan = partition_graph(diamond(), [ops("npu", 0, "Relu", "Add")])
    plan.partitions.reverse()
    with pytest.raises(ByocError, match="cyclic or out of order"):
        plan.check_acyclic()


@pytest.mark.parametrize("npu_priority,dsp_priority,winner,loser", [
    (0, 1, "npu", "dsp"), (1, 0, "dsp", "npu")])
def test_priority_decides_between_plugins(npu_priority, dsp_priority, winner, loser):
    graph = build([("r", "Relu", ["x"])])
    plan = partition_graph(graph, [ops("npu", npu_priority, "Relu"),
                                   ops("dsp", dsp_priority, "Relu")])
    assert layout(plan) == [(winner, ["r"])]
    assert plan.patterns["r"] == f"{winner}.relu"
    assert plan.explanations["r"].reasons[loser] == [
        f"overlap: taken by {winner}.relu (rule: priority)"]


def test_priority_beats_a_larger_pattern():
    graph = build([("s", "Add", ["x", "x"]), ("r", "Relu", ["s"])])
    plan = partition_graph(graph, [
        ops("npu", 0, "Relu"),
        claims("dsp", 1, make_elementwise_pattern("dsp.add_relu", "Add", activation="relu"))])
    assert layout(plan) == [("cpu", ["s"]), ("npu", ["r"])]
    assert plan.explanations["s"].reasons["dsp"] == [
        "overlap: dsp.add_relu needs node 'r', taken by npu.relu (rule: priority)"]


def test_larger_pattern_wins_within_a_plugin():
    graph = build([("s", "Add", ["x", "x"]), ("r", "Relu", ["s"])])
    npu = claims("npu", 0, make_op_pattern("npu.relu", "Relu"), make_op_pattern("npu.add", "Add"),
                 make_elementwise_pattern("npu.add_relu", "Add", activation="relu"))
    plan = partition_graph(graph, [npu])
    assert layout(plan) == [("npu", ["s", "r"])]
    assert plan.patterns == {"s": "npu.add_relu", "r": "npu.add_relu"}


@pytest.mark.parametrize("costs,expected", [
    ({"npu.relu_a": 2.0, "npu.relu_b": 1.0}, "npu.relu_b"),
    ({"npu.relu_a": 1.0, "npu.relu_b": 2.0}, "npu.relu_a"),
    ({"npu.relu_a": None, "npu.relu_b": 5.0}, "npu.relu_b"),
    ({"npu.relu_a": None, "npu.relu_b": None}, "npu.relu_a"),
])
def test_cost_breaks_ties_between_equal_sized_patterns(costs, expected):
    graph = build([("r", "Relu", ["x"])])
    npu = claims("npu", 0, make_op_pattern("npu.relu_a", "Relu"),
                 make_op_pattern("npu.relu_b", "Relu"),
                 cost=lambda pattern, nodes: costs[pattern])
    assert partition_graph(graph, [npu]).patterns["r"] == expected


def test_cost_rule_is_named_when_it_decides_between_plugins_of_equal_rank():
    graph = build([("r", "Relu", ["x"])])
    plan = partition_graph(graph, [ops("npu", 0, "Relu", cost=lambda p, n: 3.0),
                                   ops("dsp", 0, "Relu", cost=lambda p, n: 1.0)])
    assert layout(plan) == [("dsp", ["r"])]
    assert plan.explanations["r"].reasons["npu"] == ["overlap: taken by dsp.relu (rule: cost)"]


def chain():
    return build([("r1", "Relu", ["x"]), ("r2", "Relu", ["r1"]), ("r3", "Relu", ["r2"])])


def test_pin_by_node_name_to_host():
    graph = chain()
    plan = partition_graph(graph, [ops("npu", 0, "Relu")], pins={"r2": "cpu"})
    assert layout(plan) == [("npu", ["r1"]), ("cpu", ["r2"]), ("npu", ["r3"])]
    assert plan.explanations["r2"].reasons["npu"] == ["pinned to cpu"]
    assert plan.explanations["r2"].pattern is None


def test_pin_by_op_type_overrides_priority():
    graph = build([("r", "Relu", ["x"]), ("m", "Mul", ["r", "r"])])
    plan = partition_graph(graph, [ops("npu", 0, "Relu", "Mul"), ops("dsp", 1, "Relu")],
                           pins={"Relu": "dsp"})
    assert layout(plan) == [("dsp", ["r"]), ("npu", ["m"])]
    assert plan.explanations["r"].reasons["npu"] == ["pinned to dsp"]


def test_node_name_pin_wins_over_op_type_pin():
    plan = partition_graph(chain(), [ops("npu", 0, "Relu"), ops("dsp", 1, "Relu")],
                           pins={"Relu": "dsp", "r3": "npu"})
    assert layout(plan) == [("dsp", ["r1", "r2"]), ("npu", ["r3"])]


def test_pin_to_a_plugin_without_a_match_leaves_the_node_on_the_host():
    plan = partition_graph(chain(), [ops("npu", 0, "Relu"), ops("dsp", 1, "Mul")],
                           pins={"r1": "dsp"})
    assert layout(plan) == [("cpu", ["r1"]), ("npu", ["r2", "r3"])]
    assert plan.explanations["r1"].reasons["dsp"] == ["no dsp pattern matches this Relu node"]


def test_pin_to_an_unknown_plugin_is_an_error():
    with pytest.raises(ByocError, match="pin 'r1' -> 'gpu': no such plugin"):
        partition_graph(chain(), [ops("npu", 0, "Relu")], pins={"r1": "gpu"})


def test_pin_naming_nothing_in_the_graph_has_no_effect():
    plan = partition_graph(chain(), [ops("npu", 0, "Relu")], pins={"Softmax": "cpu"})
    assert layout(plan) == [("npu", ["r1", "r2", "r3"])]


def test_an_excluded_plugin_leaves_the_node_to_the_next_plugin_and_says_why():
    graph = chain()
    why = "plugin 'npu' could not compile partition 'p0_npu': no registers left"
    plan = partition_graph(graph, [ops("npu", 0, "Relu"), ops("dsp", 1, "Relu")],
                           exclusions={"r2": {"npu": why}})
    assert layout(plan) == [("npu", ["r1"]), ("dsp", ["r2"]), ("npu", ["r3"])]
    assert plan.explanations["r2"].reasons["npu"] == [why]
    assert plan.explanations["r2"].pattern == "dsp.relu"


def test_an_exclusion_drops_the_whole_candidate_naming_the_excluded_node():
    graph = build([("a", "Add", ["x", "x"]), ("r", "Relu", ["a"])])
    add_relu = claims("npu", 0, make_elementwise_pattern("npu.add_relu", "Add",
                                                         activation="relu"))
    plan = partition_graph(graph, [add_relu], exclusions={"r": {"npu": "it failed"}})
    assert layout(plan) == [("cpu", ["a", "r"])]
    assert plan.explanations["a"].reasons["npu"] == ["npu.add_relu dropped: node 'r': it failed"]


def test_excluding_the_host_is_an_error():
    with pytest.raises(ByocError, match="host \\(cpu\\) cannot be excluded .* r1"):
        partition_graph(chain(), [ops("npu", 0, "Relu")], exclusions={"r1": {"cpu": "no"}})


def test_min_partition_size_sends_small_regions_to_host():
    graph = build([("r1", "Relu", ["x"]), ("m", "Mul", ["r1", "r1"]),
                   ("r2", "Relu", ["m"]), ("r3", "Relu", ["r2"])])
    plan = partition_graph(graph, [ops("npu", 0, "Relu")], min_partition_size=2)
    assert layout(plan) == [("cpu", ["r1", "m"]), ("npu", ["r2", "r3"])]
    assert plan.explanations["r1"].plugin == "cpu"
    assert plan.explanations["r1"].pattern is None
    assert plan.explanations["r1"].reasons["npu"] == ["partition too small (1 < 2)"]
    assert_consistent(graph, plan)


def test_every_node_is_explained_with_declines():
    graph = build([("a", "Add", ["x", "x"]), ("r", "Relu", ["a"]), ("m", "Mul", ["a", "r"])])
    wants_relu_after_add = make_elementwise_pattern("dsp.add_relu", "Add", activation="relu")
    plan = partition_graph(graph, [ops("npu", 0, "Mul"), claims("dsp", 1, wants_relu_after_add)])
    assert_consistent(graph, plan)
    assert layout(plan) == [("cpu", ["a", "r"]), ("npu", ["m"])]
    reasons = plan.explanations["r"].reasons
    assert reasons["npu"] == ["no npu pattern matches this Relu node"]
    assert len(reasons["dsp"]) == 1 and reasons["dsp"][0].startswith("dsp.add_relu: ")
    assert "escapes the match" in reasons["dsp"][0]
    assert "dsp" in plan.explanations["m"].reasons
    assert "m (Mul) -> npu (npu.mul)" in str(plan.explanations["m"])


# -- property test -----------------------------------------------------------------------------

OPS = ["Add", "Relu", "Mul"]


@st.composite
def random_cases(draw):
    count = draw(st.integers(1, 9))
    values, specs = ["x", "y", "c"], []
    for i in range(count):
        op = draw(st.sampled_from(OPS))
        arity = 1 if op == "Relu" else 2
        ins = [draw(st.sampled_from(values)) for _ in range(arity)]
        if all(v == "c" for v in ins):
            ins[0] = "x"
        specs.append((f"n{i}", op, ins))
        values.append(f"n{i}")
    graph = build(specs, inputs=("x", "y"), constants={"c": [1.0, 3.0]})
    extra_outputs = draw(st.lists(st.sampled_from(values[3:]), max_size=2, unique=True))
    graph.outputs = list(dict.fromkeys(graph.outputs + extra_outputs))
    plugin_claims = []
    for priority, plugin in enumerate(draw(st.permutations(["npu", "dsp"]))):
        patterns = [make_op_pattern(f"{plugin}.{t.lower()}", t)
                    for t in draw(st.lists(st.sampled_from(OPS), unique=True))]
        if draw(st.booleans()):
            patterns.append(make_elementwise_pattern(f"{plugin}.fused", ("Add", "Mul"),
                                                     activation="relu"))
        plugin_claims.append(PluginClaims(plugin, priority, patterns))
    pins = {}
    if draw(st.booleans()):
        pins[draw(st.sampled_from([name for name, _, _ in specs] + OPS))] = draw(
            st.sampled_from(["npu", "dsp", "cpu"]))
    return graph, plugin_claims, draw(st.integers(1, 3)), pins


@settings(max_examples=100, deadline=None)
@given(random_cases())
def test_random_graphs_partition_consistently(case):
    graph, plugin_claims, min_size, pins = case
    plan = partition_graph(graph, plugin_claims, min_partition_size=min_size, pins=pins)
    assert_consistent(graph, plan)
    for partition in plan.partitions:
        if partition.plugin != "cpu":
            assert len(partition.nodes) >= min_size
        for node in partition.nodes:
            pinned = pins.get(node.name, pins.get(node.op_type))
            assert pinned is None or partition.plugin in (pinned, "cpu")
        partition.subgraph(graph.constants)  # each partition can be cut out and verified


def test_sibling_regions_of_one_plugin_merge_when_no_path_joins_them():
    # Two branches read x and meet in a host Add: like a residual block's conv and shortcut.
    graph = build([("left", "Relu", ["x"]), ("right", "Relu", ["x"]),
                   ("join", "Add", ["left", "right"])])
    plan = partition_graph(graph, [ops("npu", 0, "Relu")])
    assert layout(plan) == [("npu", ["left", "right"]), ("cpu", ["join"])]
    assert_consistent(graph, plan)


def test_siblings_stay_apart_when_one_reaches_the_other():
    # left feeds mid (host) which feeds right: merging left and right would make a cycle.
    graph = build([("left", "Relu", ["x"]), ("mid", "Mul", ["left", "c"]),
                   ("right", "Relu", ["mid"]), ("join", "Add", ["left", "right"])],
                  constants={"c": [2.0, 2.0]})
    plan = partition_graph(graph, [ops("npu", 0, "Relu")])
    assert layout(plan) == [("npu", ["left"]), ("cpu", ["mid"]), ("npu", ["right"]),
                            ("cpu", ["join"])]
    assert_consistent(graph, plan)
