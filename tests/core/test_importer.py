import numpy as np
import onnx
import pytest
from conftest import make_model
from onnx import TensorProto, helper

import byoc
from byoc.core import importer
from byoc.core.importer import import_model
from byoc.errors import ModelImportError, ShapeInferenceError, UnsupportedOpError


def reshape_by_shape_subgraph_model():
    """y = Reshape(x, Concat(Gather(Shape(x), 0), [-1])) : the exporter idiom for flatten."""
    nodes = [
        helper.make_node("Shape", ["x"], ["s"]),
        helper.make_node("Gather", ["s", "zero"], ["n"], axis=0),
        helper.make_node("Unsqueeze", ["n", "axes"], ["n1"]),
        helper.make_node("Concat", ["n1", "minus_one"], ["shape"], axis=0),
        helper.make_node("Reshape", ["x", "shape"], ["y"]),
    ]
    init = {"zero": np.array(0, np.int64), "axes": np.array([0], np.int64),
            "minus_one": np.array([-1], np.int64)}
    return make_model(nodes, [("x", TensorProto.FLOAT, ["N", 3, 4])],
                      [("y", TensorProto.FLOAT, ["N", 12])], init)


def test_symbolic_dims_bind_and_shape_subgraphs_resolve():
    graph = byoc.import_model(reshape_by_shape_subgraph_model(), {"x": (5, 3, 4)})
    assert graph.types["y"].shape == (5, 12)
    assert graph.types["shape"].shape == (2,)


def test_unbound_symbolic_dim_names_input_and_fix():
    with pytest.raises(ShapeInferenceError, match=r"input 'x' \[N,3,4\]: 'N' \(dim 0\).*"
                                                  r"--input-shape x=1x3x4 "):
        byoc.import_model(reshape_by_shape_subgraph_model())


def test_unbound_dims_of_every_input_are_named_at_once_with_a_consistent_example():
    model = make_model([helper.make_node("Add", ["ids", "mask"], ["sum"]),
                        helper.make_node("Relu", ["image"], ["act"])],
                       [("ids", TensorProto.FLOAT, ["batch", "sequence"]),
                        ("mask", TensorProto.FLOAT, ["batch", "sequence"]),
                        ("image", TensorProto.FLOAT, ["N", 3, "height", "width"])],
                       [("sum", TensorProto.FLOAT, ["batch", "sequence"]),
                        ("act", TensorProto.FLOAT, ["N", 3, "height", "width"])])
    with pytest.raises(ShapeInferenceError) as caught:
        byoc.import_model(model)
    message = str(caught.value)
    for fragment in ("input 'ids' [batch,sequence]: 'batch' (dim 0), 'sequence' (dim 1)",
                     "input 'mask'", "input 'image' [N,3,height,width]",
                     "--input-shape ids=1x128 --input-shape mask=1x128 "
                     "--input-shape image=1x3x224x224",
                     "input_shapes={'ids': (1, 128), 'mask': (1, 128), "
                     "'image': (1, 3, 224, 224)}"):
        assert fragment in message
    # The example is one that works.
    byoc.import_model(model, {"ids": (1, 128), "mask": (1, 128), "image": (1, 3, 224, 224)})


def test_binding_that_contradicts_static_dims_is_refused():
    with pytest.raises(ModelImportError, match="does not fit"):
        byoc.import_model(reshape_by_shape_subgraph_model(), {"x": (5, 4, 3)})


def test_binding_for_unknown_input_is_refused():
    with pytest.raises(ModelImportError, match="--input-shape names nope"):
        byoc.import_model(reshape_by_shape_subgraph_model(), {"x": (1, 3, 4), "nope": (1,)})


def initializer_listed_as_input_model():
    return make_model([helper.make_node("Add", ["x", "c"], ["y"])],
                      [("x", TensorProto.FLOAT, [2]), ("c", TensorProto.FLOAT, [2])],
                      [("y", TensorProto.FLOAT, [2])], {"c": np.array([1, 2], np.float32)})


def test_initializer_that_is_also_an_input_is_a_constant_unless_fed():
    graph = byoc.import_model(initializer_listed_as_input_model())
    assert graph.inputs == ["x"]
    np.testing.assert_array_equal(graph.constants["c"], [1, 2])
    fed = import_model(initializer_listed_as_input_model(), fed_inputs={"x", "c"})
    assert fed.inputs == ["x", "c"] and "c" not in fed.constants
    assert fed.types["c"] == graph.types["c"]


def test_feeding_a_name_the_model_does_not_have_lists_what_can_be_fed():
    with pytest.raises(ModelImportError, match=r"input 'nope' is given.*are x, c"):
        import_model(initializer_listed_as_input_model(), fed_inputs={"nope"})


def test_constant_node_becomes_a_constant():
    model = make_model(
        [helper.make_node("Constant", [], ["c"],
                          value=onnx.numpy_helper.from_array(np.array([3.0], np.float32))),
         helper.make_node("Mul", ["x", "c"], ["y"])],
        [("x", TensorProto.FLOAT, [2])], [("y", TensorProto.FLOAT, [2])])
    graph = byoc.import_model(model)
    assert [n.op_type for n in graph.nodes] == ["Mul"]
    np.testing.assert_array_equal(graph.constants["c"], [3.0])


def unsupported_op_model(monkeypatch):
    """A one-node model of an op byoc is made not to implement (whichever ops it gains)."""
    implemented = importer.lookup
    monkeypatch.setattr(importer, "lookup",
                        lambda domain, op: None if op == "Hardmax" else implemented(domain, op))
    return make_model([helper.make_node("Hardmax", ["x"], ["y"], name="hardmax0")],
                      [("x", TensorProto.FLOAT, [3, 3])], [("y", TensorProto.FLOAT, [3, 3])])


def test_unsupported_op_names_node_op_domain_and_opset(monkeypatch):
    with pytest.raises(UnsupportedOpError,
                       match=r"node 'hardmax0' \(ai.onnx::Hardmax, opset 17\)"):
        byoc.import_model(unsupported_op_model(monkeypatch))


def test_custom_domain_op_is_unsupported():
    node = helper.make_node("Frobnicate", ["x"], ["y"], name="f", domain="com.acme")
    model = make_model([node], [("x", TensorProto.FLOAT, [3])], [("y", TensorProto.FLOAT, [3])])
    model.opset_import.append(helper.make_opsetid("com.acme", 1))
    with pytest.raises(UnsupportedOpError, match=r"com.acme::Frobnicate"):
        byoc.import_model(model)


@pytest.mark.parametrize("opset", [0, 99])
def test_opset_out_of_range(opset):
    model = make_model([helper.make_node("Relu", ["x"], ["y"])],
                       [("x", TensorProto.FLOAT, [3])], [("y", TensorProto.FLOAT, [3])])
    model.opset_import[0].version = opset
    with pytest.raises(ModelImportError, match=f"opset {opset} of ai.onnx, which does not "
                                               f"exist.*byoc supports opsets 1 to"):
        byoc.import_model(model)


def test_old_opset_is_upgraded_and_its_nodes_say_so(monkeypatch):
    model = unsupported_op_model(monkeypatch)
    model.opset_import[0].version = 8
    model.ir_version = 3
    with pytest.raises(UnsupportedOpError, match=r"node 'hardmax0' \(ai.onnx::Hardmax, "
                                                 r"opset 9, upgraded from opset 8\)"):
        byoc.import_model(model)


def test_missing_input_definition_names_the_node():
    model = make_model([helper.make_node("Add", ["x", "w"], ["y"], name="add")],
                       [("x", TensorProto.FLOAT, [3])], [("y", TensorProto.FLOAT, [3])])
    with pytest.raises(ModelImportError, match="checker rejects"):
        byoc.import_model(model)


def _as_source(model: onnx.ModelProto, form: str, tmp_path):
    if form == "bytes":
        return model.SerializeToString()
    if form == "file":
        onnx.save(model, tmp_path / "model.onnx")
        return tmp_path / "model.onnx"
    return model


@pytest.mark.parametrize("form", ["ModelProto", "bytes", "file"])
def test_the_checker_sees_the_model_alike_from_every_source(form, tmp_path):
    """From a file or bytes, onnx's checker reads the bytes given when it can: the model must
    import, or be refused, as the same ModelProto would be."""
    missing = make_model([helper.make_node("Add", ["x", "w"], ["y"], name="add")],
                         [("x", TensorProto.FLOAT, [3])], [("y", TensorProto.FLOAT, [3])])
    with pytest.raises(ModelImportError) as from_proto:
        byoc.import_model(missing)
    with pytest.raises(ModelImportError) as from_form:
        byoc.import_model(_as_source(missing, form, tmp_path))
    assert "checker rejects" in str(from_form.value)
    assert str(from_form.value).split(": ", 1)[1] == str(from_proto.value).split(": ", 1)[1]
    # An output without a shape, which the checker demands, is filled in for it: the bytes
    # read are then not what it is given.
    unshaped = make_model([helper.make_node("Relu", ["x"], ["y"])],
                          [("x", TensorProto.FLOAT, [3])], [("y", TensorProto.FLOAT, None)])
    graph = byoc.import_model(_as_source(unshaped, form, tmp_path))
    assert graph.types["y"].shape == (3,)


def test_declared_output_shape_that_disagrees_is_reported():
    model = make_model([helper.make_node("Relu", ["x"], ["y"], name="r")],
                       [("x", TensorProto.FLOAT, [3])], [("y", TensorProto.FLOAT, [4])])
    with pytest.raises(ShapeInferenceError, match=r"declared with shape \[4\] but computes"):
        byoc.import_model(model)


def test_inconsistent_input_shapes_are_reported():
    model = make_model([helper.make_node("MatMul", ["a", "b"], ["y"], name="mm")],
                       [("a", TensorProto.FLOAT, [2, 3]), ("b", TensorProto.FLOAT, [4, 5])],
                       [("y", TensorProto.FLOAT, [2, 5])])
    with pytest.raises(ShapeInferenceError, match=r"node 'mm' \(ai.onnx::MatMul"):
        byoc.import_model(model)


def test_files_that_are_not_models(tmp_path):
    with pytest.raises(ModelImportError, match="no such model file"):
        byoc.import_model(tmp_path / "missing.onnx")
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"\x08\x07garbage that is not protobuf" * 3)
    with pytest.raises(ModelImportError, match="junk.onnx"):
        byoc.import_model(junk)
    good = make_model([helper.make_node("Relu", ["x"], ["y"])],
                      [("x", TensorProto.FLOAT, [3])], [("y", TensorProto.FLOAT, [3])])
    truncated = tmp_path / "truncated.onnx"
    truncated.write_bytes(good.SerializeToString()[:-7])
    with pytest.raises(ModelImportError, match="truncated.onnx"):
        byoc.import_model(truncated)
