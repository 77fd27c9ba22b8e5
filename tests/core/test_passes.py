import numpy as np
import onnxruntime as ort
from conftest import make_model
from onnx import TensorProto, helper

import byoc
from byoc.core.interpreter import run_graph
from byoc.core.passes import eliminate_dead_code, fold_batchnorm, fold_constants, remove_identities
from byoc.core.qdq import find_qdq_groups
from byoc.core.verify import verify


def ort_run(model, feeds):
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return dict(zip([o.name for o in session.get_outputs()], session.run(None, feeds)))


def test_batchnorm_folds_into_conv_and_keeps_results(conv_bn_relu_model):
    graph = byoc.import_model(conv_bn_relu_model)
    x = np.random.default_rng(1).standard_normal((1, 3, 8, 8)).astype(np.float32)
    before = run_graph(graph, {"x": x})["y"]
    assert fold_batchnorm(graph) == 1
    eliminate_dead_code(graph)
    verify(graph)
    assert [n.op_type for n in graph.nodes] == ["Conv", "Relu"]
    after = run_graph(graph, {"x": x})["y"]
    np.testing.assert_allclose(after, before, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(after, ort_run(conv_bn_relu_model, {"x": x})["y"],
                               rtol=1e-4, atol=1e-5)


def test_batchnorm_folds_into_gemm():
    rng = np.random.default_rng(2)
    init = {"w": rng.standard_normal((8, 5)).astype(np.float32),
            "c": rng.standard_normal(5).astype(np.float32),
            "s": rng.uniform(0.5, 2, 5).astype(np.float32),
            "b": rng.standard_normal(5).astype(np.float32),
            "m": rng.standard_normal(5).astype(np.float32),
            "v": rng.uniform(0.5, 2, 5).astype(np.float32)}
    model = make_model(
        [helper.make_node("Gemm", ["x", "w", "c"], ["g"], beta=0.5, alpha=2.0),
         helper.make_node("BatchNormalization", ["g", "s", "b", "m", "v"], ["y"])],
        [("x", TensorProto.FLOAT, [3, 8])], [("y", TensorProto.FLOAT, [3, 5])], init)
    graph = byoc.import_model(model)
    x = rng.standard_normal((3, 8)).astype(np.float32)
    assert fold_batchnorm(graph) == 1
    verify(graph)
    np.testing.assert_allclose(run_graph(graph, {"x": x})["y"], ort_run(model, {"x": x})["y"],
                               rtol=1e-4, atol=1e-5)


def test_batchnorm_folded_weights_are_rounded_once_from_float64(conv_bn_relu_model):
    """The folded values are pinned: ``W * f`` and ``b * f + (bias - mean * f)`` in float64
    with ``f = scale / sqrt(var + eps)``, rounded once to float32 (a float32 product would
    round twice and differ in the last bit)."""
    graph = byoc.import_model(conv_bn_relu_model)
    c = {k: graph.constants[k].astype(np.float64)
         for k in ("w", "b", "scale", "bias", "mean", "var")}
    factor = c["scale"] / np.sqrt(c["var"] + 1e-5)
    assert fold_batchnorm(graph) == 1
    conv = graph.nodes[0]
    weight, bias = (graph.constants[v] for v in conv.inputs[1:])
    expected = (c["w"] * factor[:, None, None, None]).astype(np.float32)
    assert weight.dtype == np.float32 and weight.tobytes() == expected.tobytes()
    expected = (c["b"] * factor + (c["bias"] - c["mean"] * factor)).astype(np.float32)
    assert bias.tobytes() == expected.tobytes()


def test_batchnorm_is_not_folded_when_conv_output_has_other_readers(conv_bn_relu_model):
    graph = byoc.import_model(conv_bn_relu_model)
    graph.outputs.append("c")
    assert fold_batchnorm(graph) == 0


def test_shape_subgraph_folds_to_a_constant():
    nodes = [helper.make_node("Shape", ["x"], ["s"]),
             helper.make_node("Gather", ["s", "zero"], ["n"], axis=0),
             helper.make_node("Unsqueeze", ["n", "axes"], ["n1"]),
             helper.make_node("Concat", ["n1", "minus_one"], ["shape"], axis=0),
             helper.make_node("Reshape", ["x", "shape"], ["y"])]
    init = {"zero": np.array(0, np.int64), "axes": np.array([0], np.int64),
            "minus_one": np.array([-1], np.int64)}
    model = make_model(nodes, [("x", TensorProto.FLOAT, [2, 3, 4])],
                       [("y", TensorProto.FLOAT, [2, 12])], init)
    graph = byoc.import_model(model)
    assert fold_constants(graph) == 4
    eliminate_dead_code(graph)
    verify(graph)
    assert [n.op_type for n in graph.nodes] == ["Reshape"]
    np.testing.assert_array_equal(graph.constants[graph.nodes[0].inputs[1]], [2, -1])


def test_identity_and_dropout_are_removed_but_output_names_stay():
    nodes = [helper.make_node("Identity", ["x"], ["a"]),
             helper.make_node("Relu", ["a"], ["b"]),
             helper.make_node("Dropout", ["b"], ["c", "mask"]),
             helper.make_node("Identity", ["c"], ["y"])]
    model = make_model(nodes, [("x", TensorProto.FLOAT, [4])],
                       [("y", TensorProto.FLOAT, [4]), ("mask", TensorProto.BOOL, [4])])
    graph = byoc.import_model(model)
    assert remove_identities(graph) == 3
    verify(graph)
    assert [n.op_type for n in graph.nodes] == ["Relu"]
    assert graph.outputs == ["y", "mask"]
    out = run_graph(graph, {"x": np.array([-1, 2, -3, 4], np.float32)})
    np.testing.assert_array_equal(out["y"], [0, 2, 0, 4])
    assert out["mask"].all()


def test_dead_code_and_unused_constants_are_removed():
    nodes = [helper.make_node("Relu", ["x"], ["y"]),
             helper.make_node("Add", ["x", "c"], ["unused"])]
    model = make_model(nodes, [("x", TensorProto.FLOAT, [2])], [("y", TensorProto.FLOAT, [2])],
                       {"c": np.ones(2, np.float32)})
    graph = byoc.import_model(model)
    assert eliminate_dead_code(graph) == 2
    assert [n.op_type for n in graph.nodes] == ["Relu"] and not graph.constants


def test_qdq_groups_are_found():
    rng = np.random.default_rng(3)
    init = {"w": rng.integers(-127, 127, (4, 3, 1, 1)).astype(np.int8),
            "ws": np.full(4, 0.02, np.float32), "wz": np.zeros(4, np.int8),
            "s": np.array(0.05, np.float32), "z": np.array(0, np.int8)}
    nodes = [helper.make_node("QuantizeLinear", ["x", "s", "z"], ["xq"]),
             helper.make_node("DequantizeLinear", ["xq", "s", "z"], ["xd"]),
             helper.make_node("DequantizeLinear", ["w", "ws", "wz"], ["wd"], axis=0),
             helper.make_node("Conv", ["xd", "wd"], ["c"], name="conv"),
             helper.make_node("Relu", ["c"], ["r"]),
             helper.make_node("QuantizeLinear", ["r", "s", "z"], ["y"])]
    model = make_model(nodes, [("x", TensorProto.FLOAT, [1, 3, 4, 4])],
                       [("y", TensorProto.INT8, [1, 4, 4, 4])], init)
    graph = byoc.import_model(model)
    (group,) = find_qdq_groups(graph)
    assert group.op.name == "conv"
    assert [n.op_type for n in group.nodes] == ["DequantizeLinear", "DequantizeLinear", "Conv",
                                                 "Relu", "QuantizeLinear"]
