"""Quantized groups run as integer operations, bit-exact with onnxruntime's fused kernels."""

import numpy as np
import onnxruntime as ort
import pytest
from conftest import make_model
from onnx import TensorProto, helper

import byoc
from byoc.core.integer_layers import plan_integer_groups
from byoc.core.interpreter import Interpreter


def qdq_model(op, activation="Relu", bias_scale_factor=1.0, seed=0):
    """QuantizeLinear(x) -> DQ -> op(DQ(w), DQ(bias)) -> activation -> QuantizeLinear."""
    rng = np.random.default_rng(seed)
    x_scale, y_scale = np.float32(0.05), np.float32(0.11)
    if op == "Conv":
        w = rng.integers(-127, 128, (8, 4, 3, 3)).astype(np.int8)
        x_shape, y_shape, attrs, axis = [1, 4, 9, 9], [1, 8, 9, 9], {"pads": [1, 1, 1, 1]}, 0
    else:  # Gemm with transB, weights per output channel on axis 0
        w = rng.integers(-127, 128, (6, 16)).astype(np.int8)
        x_shape, y_shape, attrs, axis = [3, 16], [3, 6], {"transB": 1}, 0
    w_scale = rng.uniform(0.005, 0.02, w.shape[0]).astype(np.float32)
    init = {
        "xs": x_scale, "xz": np.uint8(128), "ys": y_scale, "yz": np.uint8(3),
        "w": w, "ws": w_scale, "wz": np.zeros(w.shape[0], np.int8),
        "b": rng.integers(-2000, 2000, w.shape[0]).astype(np.int32),
        "bs": (x_scale * w_scale * np.float32(bias_scale_factor)).astype(np.float32),
        "bz": np.zeros(w.shape[0], np.int32),
    }
    nodes = [
        helper.make_node("QuantizeLinear", ["x", "xs", "xz"], ["xq"]),
        helper.make_node("DequantizeLinear", ["xq", "xs", "xz"], ["xd"]),
        helper.make_node("DequantizeLinear", ["w", "ws", "wz"], ["wd"], axis=axis),
        helper.make_node("DequantizeLinear", ["b", "bs", "bz"], ["bd"], axis=0),
        helper.make_node(op, ["xd", "wd", "bd"], ["acc"], name="layer", **attrs),
    ]
    last = "acc"
    if activation:
        nodes.append(helper.make_node(activation, ["acc"], ["act"]))
        last = "act"
    nodes.append(helper.make_node("QuantizeLinear", [last, "ys", "yz"], ["y"], name="quant"))
    return make_model(nodes, [("x", TensorProto.FLOAT, x_shape)],
                      [("y", TensorProto.UINT8, y_shape)], init, opset=13)


@pytest.mark.parametrize("op", ["Conv", "Gemm"])
@pytest.mark.parametrize("seed", range(4))
def test_group_is_bit_exact_with_onnxruntime(op, seed):
    model = qdq_model(op, seed=seed)
    graph = byoc.import_model(model)
    assert list(plan_integer_groups(graph)) == ["quant"]
    x_shape = [d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim]
    x = np.random.default_rng(100 + seed).uniform(-6, 6, x_shape).astype(np.float32)
    ours = Interpreter(graph).run({"x": x})["y"]
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    np.testing.assert_array_equal(ours, session.run(None, {"x": x})[0])


def test_groups_outside_the_integer_form_keep_float_semantics():
    assert not plan_integer_groups(byoc.import_model(qdq_model("Conv", activation="Sigmoid")))
    assert not plan_integer_groups(byoc.import_model(qdq_model("Conv", bias_scale_factor=2.0)))
    assert list(plan_integer_groups(byoc.import_model(qdq_model("Conv", activation=None))))


def test_plans_are_given_without_walking_the_graph_while_it_is_held_unchanged():
    """Placement asks for the plans at every pattern check and estimate; inside ``unchanged``
    they come without the walk over the graph that checks it has not changed, and outside a
    changed graph gets new ones."""
    from byoc.core import integer_layers

    class CountedWalks(list):
        walks = 0

        def __iter__(self):
            CountedWalks.walks += 1
            return super().__iter__()

    graph = byoc.import_model(qdq_model("Conv"))
    graph.nodes = CountedWalks(graph.nodes)
    with integer_layers.unchanged(graph):
        plans = integer_layers.integer_plans(graph)
        walks = CountedWalks.walks
        for _ in range(5):
            assert integer_layers.integer_plans(graph) is plans
        assert CountedWalks.walks == walks
    assert list(plans) == ["quant"]
    integer_layers.integer_plans(graph)
    assert CountedWalks.walks > walks  # checked again outside
    quant = next(n for n in graph.nodes if n.name == "quant")
    graph.nodes.remove(quant)
    graph.outputs = [quant.inputs[0]]
    assert integer_layers.integer_plans(graph) == {}
