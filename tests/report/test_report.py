"""The plan's outputs: the HTML report, its built-in layout and the partitioned ONNX model."""

import html
import json
import re
import time

import numpy as np
import onnx
import pytest
from conftest import make_model
from onnx import TensorProto, helper

import byoc
from byoc.core import dtypes
from byoc.core.ir import Graph, Node, TensorType
from byoc.core.passes import optimize
from byoc.partition.partitioner import PluginClaims, partition_graph
from byoc.partition.patterns import make_conv_pattern, make_op_pattern
from byoc.report import (
    export_partitioned_onnx,
    graph_drawing,
    write_html_report,
    write_partitioned_onnx,
)
from byoc.report.html import HOST_COLOUR, PALETTE, plugin_colours, render_html_report

EVIL = '<script>alert("x")</script>&'


def claims(plugin, priority, *op_types):
    return PluginClaims(plugin, priority, [make_op_pattern(f"{plugin}.{t.lower()}", t)
                                           for t in op_types])


@pytest.fixture
def graph():
    """x -> conv -> c; c -> Relu (named EVIL) and Sigmoid; Add of both -> y."""
    rng = np.random.default_rng(0)
    nodes = [
        helper.make_node("Conv", ["x", "w", "b"], ["c"], name="conv", pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c"], ["r"], name=EVIL),
        helper.make_node("Sigmoid", ["c"], ["s"], name="sig"),
        helper.make_node("Add", ["r", "s"], ["y"], name="add"),
    ]
    model = make_model(nodes, [("x", TensorProto.FLOAT, [1, 3, 8, 8])],
                       [("y", TensorProto.FLOAT, [1, 4, 8, 8])],
                       {"w": rng.standard_normal((4, 3, 3, 3)).astype(np.float32),
                        "b": rng.standard_normal(4).astype(np.float32)})
    return byoc.import_model(model)


@pytest.fixture
def plan(graph):
    return partition_graph(graph, [claims("npu", 0, "Conv", "Relu"), claims("dsp", 1, "Add")])


def node_data(text):
    block = re.search(r'<script type="application/json" id="node-data">(.*?)</script>', text,
                      re.S)
    return json.loads(block.group(1))


# -- HTML --------------------------------------------------------------------------------------


def test_report_draws_every_node_with_its_explanation(tmp_path, graph, plan):
    path = tmp_path / "report.html"
    write_html_report(path, graph, plan, "Toy model", {"target": "npu + dsp"},
                      use_graphviz=False)
    text = path.read_text(encoding="utf-8")
    assert "<svg" in text and "</svg>" in text
    assert "built-in layered layout" in text
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", text)  # nothing external
    for i, node in enumerate(graph.nodes):
        assert text.count(f'id="node-{i}"') == 1
        assert f'data-node="{html.escape(node.name)}"' in text
    legend = re.search(r'<ul class="legend">(.*?)</ul>', text, re.S).group(1)
    for plugin in ("npu", "dsp", "cpu"):
        assert plugin in legend
    assert "cpu (host)" in legend
    assert html.escape("no npu pattern matches this Sigmoid node") in text
    assert html.escape(str(plan.explanations["sig"])) in text
    assert "npu + dsp" in text and "Toy model" in text


def test_report_escapes_names_everywhere(graph, plan):
    text = render_html_report(graph, plan, EVIL, {EVIL: EVIL}, use_graphviz=False)
    assert "<script>alert" not in text
    assert html.escape(EVIL) in text
    data = node_data(text)
    evil = next(d for d in data.values() if d["node"] == EVIL)
    assert evil["plugin"] == "npu" and evil["pattern"] == "npu.relu"
    assert evil["reasons"] == {"dsp": ["no dsp pattern matches this Relu node"]}


def test_side_panel_data_matches_the_plan(graph, plan):
    data = node_data(render_html_report(graph, plan, "t", use_graphviz=False))
    assert len(data) == len(graph.nodes)
    for i, node in enumerate(graph.nodes):
        explanation = plan.explanations[node.name]
        entry = data[f"node-{i}"]
        assert (entry["node"], entry["op"], entry["plugin"], entry["pattern"], entry["reasons"]) \
            == (node.name, node.op_type, explanation.plugin, explanation.pattern,
                explanation.reasons)
        assert entry["partition"] == plan.partition_of(node.name).name


def test_partition_table_lists_boundaries_with_types(graph, plan):
    text = render_html_report(graph, plan, "t", use_graphviz=False)
    for partition in plan.partitions:
        row = re.search(rf'<tr data-part="[^"]+"><td>{partition.name}</td>(.*?)</tr>', text,
                        re.S).group(1)
        assert f">{len(partition.nodes)}<" in row
        for value in [*partition.inputs, *partition.outputs]:
            assert f"<code>{html.escape(value)}</code>" in row
            assert str(partition.types[value]) in row


def test_plugin_colours_are_stable_distinct_and_grey_for_the_host():
    colours = plugin_colours(["npu", "dsp", "gpu", "cpu"], host="cpu")
    assert colours["cpu"] == HOST_COLOUR
    assert len({colours[p] for p in ("npu", "dsp", "gpu")}) == 3
    assert all(colours[p] in PALETTE for p in ("npu", "dsp", "gpu"))
    # the same plugins get the same colours whatever their order; a plugin keeps its colour
    # in other company as long as no other plugin hashes to the same palette entry
    assert plugin_colours(["cpu", "gpu", "dsp", "npu"], host="cpu") == colours
    assert plugin_colours(["gpu", "serv"], host=None)["gpu"] == colours["gpu"]
    # npu and dsp hash to the same entry: the second in name order moves to the next one
    assert colours["npu"] == PALETTE[(PALETTE.index(colours["dsp"]) + 1) % len(PALETTE)]


def test_report_uses_graphviz_when_dot_works(tmp_path, monkeypatch, graph, plan):
    fake = tmp_path / "dot"
    fake.write_text("#!/bin/sh\ncat > /dev/null\n"
                    "echo '<?xml version=\"1.0\"?><svg width=\"10pt\"><g id=\"node-0\" "
                    "class=\"node\"><title>v1</title><text>Conv</text></g></svg>'\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))
    text = render_html_report(graph, plan, "t")
    assert "layout: Graphviz dot" in text
    assert '<svg class="graph" width="10pt">' in text and "<?xml" not in text
    assert f"<title>{html.escape(str(plan.explanations['conv']))}" in text


def test_report_falls_back_when_dot_fails(tmp_path, monkeypatch, graph, plan):
    fake = tmp_path / "dot"
    fake.write_text("#!/bin/sh\necho 'Error: syntax error' >&2\nexit 1\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))
    text = render_html_report(graph, plan, "t")
    assert "layout: built-in layered layout" in text
    assert text.count('class="node ') == len(graph.nodes)


def test_report_rejects_a_plan_of_another_graph(graph, plan):
    other = byoc.import_model(make_model(
        [helper.make_node("Relu", ["x"], ["y"], name="lonely")],
        [("x", TensorProto.FLOAT, [2])], [("y", TensorProto.FLOAT, [2])]))
    with pytest.raises(byoc.ByocError, match="'lonely'"):
        render_html_report(other, plan, "t")


# -- layout ------------------------------------------------------------------------------------


def assert_layout_sound(drawing, dag):
    positions = [(p.x, p.y) for p in drawing.placements.values()]
    assert len(set(positions)) == len(positions)
    assert set(drawing.placements) == set(dag.vertices)
    for row in drawing.layers:
        boxes = sorted((drawing.placements[k] for k in row), key=lambda p: p.x)
        for left, right in zip(boxes, boxes[1:]):
            assert left.right < right.left
    for route in drawing.routes:
        source, target = drawing.placements[route.source], drawing.placements[route.target]
        assert source.layer < target.layer
        assert route.points[0] == (source.x, source.bottom)
        assert route.points[-1] == (target.x, target.top)
        assert len(route.points) == target.layer - source.layer + 1
        assert all(a[1] < b[1] for a, b in zip(route.points, route.points[1:]))
    for p in drawing.placements.values():
        assert 0 <= p.left and p.right <= drawing.width and 0 <= p.top
        assert p.bottom <= drawing.height


def test_layout_places_every_vertex_apart_with_edges_going_down(graph):
    dag = graph_drawing.graph_dag(graph)
    assert dag.vertices[0] == "input:x" and dag.vertices[-1] == "output:y"
    assert (graph_drawing.node_key(0), graph_drawing.node_key(1)) in dag.edges
    assert dag.edges[(graph_drawing.node_key(2), graph_drawing.node_key(3))] == ["s"]
    drawing = graph_drawing.layered_layout(dag, {v: (90.0, 30.0) for v in dag.vertices})
    assert_layout_sound(drawing, dag)
    assert sorted(drawing.layers[2]) == [graph_drawing.node_key(1), graph_drawing.node_key(2)]


def test_layout_routes_long_edges_through_their_layers():
    t = TensorType(np.float32, (2,))
    nodes = [Node("Relu", ["x"], ["a"], name="a"), Node("Relu", ["a"], ["b"], name="b"),
             Node("Relu", ["b"], ["c"], name="c"), Node("Add", ["a", "c"], ["d"], name="d"),
             Node("Neg", ["k"], ["e"], name="from_constant"),
             Node("Add", ["d", "e"], ["f"], name="f")]
    graph = Graph("g", nodes, ["x"], ["f"], {v: t for v in "xabcdefk"},
                  {"k": np.zeros(2, np.float32)})
    dag = graph_drawing.graph_dag(graph)
    drawing = graph_drawing.layered_layout(dag, {v: (70.0, 30.0) for v in dag.vertices})
    assert_layout_sound(drawing, dag)
    layer = {k: p.layer for k, p in drawing.placements.items()}
    # the node reading only a constant sits right above its consumer, not at the top
    assert layer[graph_drawing.node_key(4)] == layer[graph_drawing.node_key(5)] - 1
    skip = next(r for r in drawing.routes if r.target == graph_drawing.node_key(3)
                and r.source == graph_drawing.node_key(0))
    assert len(skip.points) == 4  # two dummies, beside b and c
    assert skip.points[1][0] != drawing.placements[graph_drawing.node_key(1)].x


# -- ONNX --------------------------------------------------------------------------------------


def elem_and_shape(value_info):
    tensor = value_info.type.tensor_type
    return tensor.elem_type, tuple(d.dim_value for d in tensor.shape.dim)


def test_partitioned_onnx_has_one_typed_node_per_partition(tmp_path, graph, plan):
    path = tmp_path / "plan.onnx"
    write_partitioned_onnx(path, graph, plan)
    model = onnx.load(str(path))
    onnx.checker.check_model(model, full_check=True)
    opsets = {o.domain: o.version for o in model.opset_import}
    assert opsets == {"": 17, "byoc.partition": 1}
    assert len(model.graph.node) == len(plan.partitions)
    assert not model.graph.initializer
    types = {vi.name: elem_and_shape(vi) for vi in [*model.graph.input, *model.graph.output,
                                                    *model.graph.value_info]}
    for node, partition in zip(model.graph.node, plan.partitions):
        assert (node.domain, node.op_type, node.name) == ("byoc.partition", partition.plugin,
                                                          partition.name)
        assert (list(node.input), list(node.output)) == (partition.inputs, partition.outputs)
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        assert attrs["plugin"] == partition.plugin.encode()
        assert attrs["nodes"] == len(partition.nodes)
        for value in [*partition.inputs, *partition.outputs]:
            t = partition.types[value]
            assert types[value] == (dtypes.to_onnx(t.dtype), t.shape)
    npu = next(n for n in model.graph.node if n.op_type == "npu")
    attrs = {a.name: helper.get_attribute_value(a) for a in npu.attribute}
    assert attrs["ops"] == b"Conv:1,Relu:1"
    assert attrs["patterns"] == [b"npu.conv", b"npu.relu"]
    cpu = next(n for n in model.graph.node if n.op_type == "cpu")
    assert [a for a in cpu.attribute if a.name == "patterns"][0].strings == []
    assert [i.name for i in model.graph.input] == ["x"]
    assert [o.name for o in model.graph.output] == ["y"]


def test_partitioned_onnx_keeps_outputs_that_are_inputs_or_constants():
    t = TensorType(np.float32, (2,))
    graph = Graph("g", [Node("Relu", ["x"], ["r"], name="relu")], ["x"], ["r", "x", "k"],
                  {"x": t, "r": t, "k": TensorType(np.int64, (3,))},
                  {"k": np.arange(3, dtype=np.int64)}, {"": 13})
    plan = partition_graph(graph, [claims("npu", 0, "Relu")])
    model = export_partitioned_onnx(graph, plan)
    onnx.checker.check_model(model, full_check=True)
    assert [o.name for o in model.graph.output] == ["r", "x", "k"]
    assert [i.name for i in model.graph.initializer] == ["k"]
    assert {o.domain: o.version for o in model.opset_import}[""] == 13
    assert elem_and_shape(model.graph.output[2]) == (TensorProto.INT64, (3,))


# -- the example ResNet-18 ---------------------------------------------------------------------


def test_resnet18_report_and_export(zoo_dir, tmp_path):
    graph = byoc.import_model(zoo_dir / "resnet18.onnx")
    optimize(graph)
    plan = partition_graph(graph, [
        PluginClaims("npu", 0, [make_conv_pattern("npu.conv_relu", activation="optional"),
                                make_op_pattern("npu.add", "Add")]),
        claims("dsp", 1, "Relu", "MaxPool", "GlobalAveragePool")])
    path = tmp_path / "resnet18.html"
    start = time.perf_counter()
    write_html_report(path, graph, plan, "ResNet-18", {"plugins": ["npu", "dsp"]})
    assert time.perf_counter() - start < 5.0
    text = path.read_text(encoding="utf-8")
    assert text.count('class="node ') >= len(graph.nodes)
    assert all(html.escape(n.name) in text for n in graph.nodes)

    dag = graph_drawing.graph_dag(graph)
    drawing = graph_drawing.layered_layout(dag, {v: (120.0, 38.0) for v in dag.vertices})
    assert_layout_sound(drawing, dag)
    assert max(len(row) for row in drawing.layers) <= 4  # a chain of blocks, drawn narrow

    model = export_partitioned_onnx(graph, plan)
    onnx.checker.check_model(model, full_check=True)
    assert [n.name for n in model.graph.node] == [p.name for p in plan.partitions]
