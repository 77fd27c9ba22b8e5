import numpy as np
import pytest

from byoc.core.ir import Graph, Node, TensorType
from byoc.core.printer import format_graph
from byoc.core.verify import verify
from byoc.errors import VerificationError

F32 = np.dtype(np.float32)


def small_graph() -> Graph:
    g = Graph(name="g", inputs=["x"], outputs=["z"], opsets={"": 17})
    g.types.update({"x": TensorType(F32, (2, 3)), "y": TensorType(F32, (2, 3)),
                    "z": TensorType(F32, (2, 3))})
    g.add_constant("c", np.ones((2, 3), np.float32))
    g.nodes = [Node("Relu", ["x"], ["y"], name="relu"),
               Node("Add", ["y", "c"], ["z"], name="add")]
    return g


def test_valid_graph_verifies_and_prints():
    g = small_graph()
    verify(g)
    text = format_graph(g)
    assert "%z = Add(%y, %c) : float32[2,3]" in text
    assert "%x: float32[2,3]" in text


def test_value_defined_twice_is_reported():
    g = small_graph()
    g.nodes[1].outputs = ["y"]
    with pytest.raises(VerificationError, match="'y' is defined twice"):
        verify(g)


def test_use_before_definition_is_reported():
    g = small_graph()
    g.nodes.reverse()
    with pytest.raises(VerificationError, match="reads 'y' before it is defined"):
        verify(g)


def test_dangling_use_and_missing_output_are_reported():
    g = small_graph()
    g.nodes[1].inputs = ["y", "nowhere"]
    g.outputs.append("ghost")
    with pytest.raises(VerificationError) as info:
        verify(g)
    assert "'nowhere' which is never defined" in str(info.value)
    assert "graph output 'ghost' is never defined" in str(info.value)


def test_constant_with_wrong_type_is_reported():
    g = small_graph()
    g.types["c"] = TensorType(F32, (3, 2))
    with pytest.raises(VerificationError, match="constant 'c' holds float32\\[2,3\\]"):
        verify(g)


def test_topological_sort_restores_order_and_detects_cycles():
    g = small_graph()
    g.nodes.reverse()
    g.topological_sort()
    assert [n.name for n in g.nodes] == ["relu", "add"]
    verify(g)
    g.nodes[0].inputs = ["z"]  # relu reads add's output: a cycle
    with pytest.raises(VerificationError, match="cycle"):
        g.topological_sort()


def test_rewriting_helpers():
    g = small_graph()
    relu = g.node_by_name("relu")
    assert g.fresh_name("y") == "y_1"
    g.types["y2"] = TensorType(F32, (2, 3))
    g.insert_after(relu, Node("Neg", ["y"], ["y2"], name="neg"))
    g.replace_all_uses("y", "y2")
    g.nodes[1].inputs = ["y"]  # the new node keeps reading relu's output
    verify(g)
    assert [n.name for n in g.consumers()["y2"]] == ["add"]
    assert g.producers()["y2"].name == "neg"
    g.outputs = ["y2"]
    g.remove_node(g.node_by_name("add"))
    g.prune_constants()
    assert "c" not in g.constants and "z" not in g.types
    verify(g)
