"""Models written the way real exporters wrote them import, and compute what onnxruntime does.

Each form here is one onnxruntime accepts and byoc once refused: graph outputs whose types
were left undeclared, IR version 3 initializers missing from the graph inputs, initializers
that are overridable inputs, Dropout in all its opset forms, and models of opsets 1 to 8,
which are upgraded with onnx's version converter. Results are compared with onnxruntime on
the reference interpreter and on the default plugins (cpu_llvm).
"""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import onnx
import onnxruntime
import pytest
from onnx import TensorProto, helper, numpy_helper

import byoc
import byoc.backend
from byoc.core.importer import import_model
from byoc.core.ir import TensorType
from byoc.core.opset_upgrade import NATIVE_MIN_OPSET, upgrade
from byoc.errors import ModelImportError, ShapeInferenceError
from byoc.testing import compile_reference

F = TensorProto.FLOAT
RTOL = 1e-4


def old_model(nodes, inputs, outputs, initializers=(), opset=8, ir_version=3,
              initializers_as_inputs=False):
    """A model as an exporter of its time wrote it: by default IR 3, initializers absent
    from the graph inputs, and no onnx check on the way."""
    initializers = [numpy_helper.from_array(np.asarray(a), n)
                    for n, a in dict(initializers).items()]
    graph_inputs = [helper.make_tensor_value_info(*i) for i in inputs]
    if initializers_as_inputs:
        graph_inputs += [helper.make_tensor_value_info(t.name, t.data_type, list(t.dims))
                         for t in initializers]
    graph = helper.make_graph(nodes, "old_export", graph_inputs,
                              [o if isinstance(o, onnx.ValueInfoProto)
                               else helper.make_tensor_value_info(*o) for o in outputs],
                              initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = ir_version
    return model


def onnxruntime_outputs(model, feeds):
    session = onnxruntime.InferenceSession(model.SerializeToString(),
                                           providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(None, feeds)))


def assert_like_onnxruntime(model, feeds, expected=None, **compile_options):
    """byoc's outputs on the reference and on the default plugins equal onnxruntime's
    (or ``expected``) within RTOL."""
    expected = expected if expected is not None else onnxruntime_outputs(model, feeds)
    for compiled in (compile_reference(model, **compile_options),
                     byoc.compile(model, **compile_options)):
        outputs = compiled.run(feeds)
        assert set(outputs) == set(expected)
        for name, value in expected.items():
            assert outputs[name].dtype == value.dtype, name
            np.testing.assert_allclose(outputs[name], value, rtol=RTOL, atol=1e-6,
                                       err_msg=name)


def random(shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


# -- 1. graph outputs whose type is left undeclared ----------------------------------------------

def _undeclared(form: str) -> onnx.ValueInfoProto:
    if form == "no shape":
        return helper.make_tensor_value_info("debug", F, None)
    if form == "rank only":
        return helper.make_tensor_value_info("debug", F, ["a", "b", "c", "d"])
    if form == "no element type":
        return helper.make_tensor_value_info("debug", TensorProto.UNDEFINED, None)
    return onnx.ValueInfoProto(name="debug")  # no type at all


def conv_with_debug_output(form: str):
    """A conv layer whose intermediate result a tool appended as an output for debugging."""
    nodes = [helper.make_node("Conv", ["x", "w"], ["debug"], pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["debug"], ["y"])]
    return old_model(nodes, [("x", F, [1, 2, 5, 5])],
                     [("y", F, None), _undeclared(form)], {"w": random((3, 2, 3, 3), 1)},
                     opset=13, ir_version=8, initializers_as_inputs=False)


@pytest.mark.parametrize("form", ["no shape", "rank only", "no element type", "no type"])
def test_graph_outputs_without_declared_types_are_inferred(form):
    model = conv_with_debug_output(form)
    graph = import_model(model)
    assert graph.types["debug"] == graph.types["y"] == TensorType(
        np.dtype(np.float32), (1, 3, 5, 5))
    feeds = {"x": random((1, 2, 5, 5))}
    # onnxruntime refuses an element type of 0 (UNDEFINED); the model declaring only no shape
    # computes the same.
    expected = onnxruntime_outputs(conv_with_debug_output("no shape"), feeds)
    assert_like_onnxruntime(model, feeds, expected)


def test_declared_output_rank_that_contradicts_the_computed_one_is_still_an_error():
    model = conv_with_debug_output("no shape")
    model.graph.output[1].CopyFrom(helper.make_tensor_value_info("debug", F, ["a", "b"]))
    with pytest.raises(ShapeInferenceError, match=r"'debug'.*declared with shape "
                                                       r"\[\?,\?\] but computes \[1, 3, 5, 5\]"):
        import_model(model)


# -- 2. IR 3 initializers, and overridable initializers from IR 4 on -----------------------------

def test_ir3_initializers_missing_from_the_graph_inputs_are_constants():
    model = old_model([helper.make_node("Gemm", ["x", "w", "b"], ["y"], transB=1)],
                      [("x", F, [2, 4])], [("y", F, [2, 3])],
                      {"w": random((3, 4), 1), "b": random((3,), 2)}, opset=8)
    with pytest.raises(onnx.checker.ValidationError, match="not in graph input"):
        onnx.checker.check_model(model)  # what byoc used to take as fatal
    graph = import_model(model)
    assert graph.inputs == ["x"] and {"w", "b"} <= set(graph.constants)
    assert_like_onnxruntime(model, {"x": random((2, 4))})


def test_ir3_initializers_are_constants_even_when_listed_as_inputs():
    model = old_model([helper.make_node("Add", ["x", "c"], ["y"])], [("x", F, [3])],
                      [("y", F, [3])], {"c": np.ones(3, np.float32)}, opset=8,
                      initializers_as_inputs=True)
    assert import_model(model).inputs == ["x"]
    with pytest.raises(ModelImportError, match="'c'.*under IR version 3 every initializer "
                                               "is a constant"):
        import_model(model, fed_inputs={"x", "c"})


def overridable_weight_model():
    """y = x * (w * 2) + b: w and b are initializers listed as graph inputs (IR 8), so they
    are defaults a user may override; ``scale`` is an initializer only, a constant."""
    nodes = [helper.make_node("Mul", ["w", "two"], ["w2"]),
             helper.make_node("Mul", ["x", "w2"], ["xw"]),
             helper.make_node("Add", ["xw", "b"], ["y"])]
    model = old_model(nodes, [("x", F, [2, 3])], [("y", F, [2, 3])],
                      {"w": random((3,), 1), "b": random((3,), 2)}, opset=17, ir_version=8,
                      initializers_as_inputs=True)
    model.graph.initializer.append(numpy_helper.from_array(np.float32(2), "two"))
    return model


def test_overridable_initializers_not_fed_are_constants_and_fold():
    compiled = compile_reference(overridable_weight_model())
    assert list(compiled.inputs) == ["x"]
    # w * 2 folded into one constant: only the Mul with x and the Add are left.
    assert sorted(n.op_type for n in compiled.graph.nodes) == ["Add", "Mul"]
    assert_like_onnxruntime(overridable_weight_model(), {"x": random((2, 3))})


def test_fed_overridable_initializers_are_real_inputs():
    model = overridable_weight_model()
    feeds = {"x": random((2, 3)), "w": random((3,), 7)}
    compiled = compile_reference(model, fed_inputs=feeds)
    assert list(compiled.inputs) == ["x", "w"]
    assert_like_onnxruntime(model, feeds, fed_inputs=feeds)
    with pytest.raises(ModelImportError, match="'two' is given as an input, but it is not "
                                               "listed among the graph inputs"):
        import_model(model, fed_inputs={"two"})


def test_backend_overrides_initializers_given_by_name():
    model = overridable_weight_model()
    rep = byoc.backend.ByocBackend.prepare(model, default_plugins=())
    x, w = random((2, 3)), random((3,), 7)
    np.testing.assert_allclose(rep.run({"x": x, "w": w})[0],
                               onnxruntime_outputs(model, {"x": x, "w": w})["y"], rtol=RTOL)
    np.testing.assert_allclose(rep.run([x])[0], onnxruntime_outputs(model, {"x": x})["y"],
                               rtol=RTOL)


def test_cli_run_feeds_an_overridable_initializer(tmp_path):
    model = overridable_weight_model()
    onnx.save(model, tmp_path / "model.onnx")
    x, w = random((2, 3)), random((3,), 7)
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "w.npy", w)
    for given, feeds in (([], {"x": x}), (["--input", f"w={tmp_path / 'w.npy'}"],
                                          {"x": x, "w": w})):
        done = subprocess.run(
            [sys.executable, "-m", "byoc", "run", str(tmp_path / "model.onnx"),
             "--input", f"x={tmp_path / 'x.npy'}", *given, "--output",
             str(tmp_path / "out.npz")], capture_output=True, text=True, check=False)
        assert done.returncode == 0, done.stderr
        np.testing.assert_allclose(np.load(tmp_path / "out.npz")["y"],
                                   onnxruntime_outputs(model, feeds)["y"], rtol=RTOL)


# -- 3. Dropout in every opset form ---------------------------------------------------------------

DROPOUT_FORMS = [
    # (opset, node attributes, extra inputs: name -> value, or None for a graph input)
    (1, {"is_test": 1}, {}),
    (6, {"is_test": 1}, {}),
    (7, {"ratio": 0.3}, {}),
    (9, {}, {}),
    (10, {"ratio": 0.2}, {}),
    (12, {}, {"ratio": np.float32(0.4)}),
    (13, {}, {"ratio": np.float32(0.4), "training_mode": np.array(False)}),
    (22, {}, {"ratio": np.float32(0.1), "training_mode": None}),
]


@pytest.mark.parametrize("with_mask", [False, True], ids=["output", "mask"])
@pytest.mark.parametrize("opset,attrs,extra", DROPOUT_FORMS,
                         ids=[f"opset{form[0]}" for form in DROPOUT_FORMS])
def test_dropout_is_the_identity_with_an_all_true_mask(opset, attrs, extra, with_mask):
    mask_type = TensorProto.BOOL if opset >= 10 else F
    nodes = [helper.make_node("Dropout", ["h", *extra], ["d", "mask"][:1 + with_mask], **attrs),
             helper.make_node("Relu", ["d"], ["y"])]
    nodes.insert(0, helper.make_node("Sigmoid", ["x"], ["h"]))
    inputs = [("x", F, [2, 3, 4])] + [(name, TensorProto.BOOL, []) for name, value in
                                      extra.items() if value is None]
    outputs = [("y", F, None)] + [("mask", mask_type, None)] * with_mask
    model = old_model(nodes, inputs, outputs,
                      {n: v for n, v in extra.items() if v is not None}, opset=opset,
                      ir_version=3 if opset < 9 else 8)
    x = random((2, 3, 4))
    feeds = {"x": x, **{n: np.array(False) for n, v in extra.items() if v is None}}
    expected = {"y": np.maximum(1 / (1 + np.exp(-x)), 0).astype(np.float32)}
    if with_mask:
        expected["mask"] = np.ones((2, 3, 4), bool if opset >= 10 else np.float32)
    if opset >= 7:  # onnxruntime runs opset 7 and later
        ort = onnxruntime_outputs(model, feeds)
        np.testing.assert_allclose(ort["y"], expected["y"], rtol=RTOL)
        # onnxruntime's inference kernels give an all-false mask, against the ONNX
        # specification (the mask is true where an element is kept) and onnx's own test
        # cases; byoc follows those. The type is the same.
        if with_mask:
            assert (ort["mask"].dtype, ort["mask"].shape) == (expected["mask"].dtype, x.shape)
    assert_like_onnxruntime(model, feeds, expected)


# -- 4. opsets 1 to 8 ---------------------------------------------------------------------------

X4 = ("x", F, [1, 2, 4, 4])
C2 = random((2,), 5)
BN_PARAMETERS = {"s": random((2,), 1), "b": random((2,), 2), "m": random((2,), 3),
                 "v": np.abs(random((2,), 4)) + 0.5}
NON_SPATIAL_BN_PARAMETERS = {"s": random((2, 4, 4), 1), "b": random((2, 4, 4), 2),
                             "m": random((2, 4, 4), 3), "v": np.abs(random((2, 4, 4), 4)) + 0.5}

def doubled_linearly(x):
    """x's last two axes upsampled 2x by linear interpolation on asymmetric coordinates
    (output i reads input i / 2, clamped at the border), as Upsample's linear mode does."""
    for axis in (2, 3):
        size = x.shape[axis]
        x = np.apply_along_axis(lambda v, size=size: np.interp(np.arange(2 * size) / 2,
                                                                np.arange(size), v), axis, x)
    return x


# name: (opset, node, initializers, the result in numpy for opsets onnxruntime does not run
# (before 7); from opset 7 on onnxruntime gives it)
OLD_OP_MODELS = {
    "Clip-6 attribute bounds": (
        6, helper.make_node("Clip", ["x"], ["y"], min=-0.5, max=0.7), {},
        lambda x: np.clip(x, -0.5, 0.7)),
    "Pad-2 attribute pads": (
        2, helper.make_node("Pad", ["x"], ["y"], pads=[0, 0, 1, 2, 0, 0, 2, 1], value=1.5), {},
        lambda x: np.pad(x, [(0, 0), (0, 0), (1, 2), (2, 1)], constant_values=1.5)),
    "Slice-1 attribute bounds": (
        1, helper.make_node("Slice", ["x"], ["y"], starts=[1, 0], ends=[3, -1], axes=[2, 3]),
        {}, lambda x: x[:, :, 1:3, 0:-1]),
    "Unsqueeze-1 attribute axes": (
        1, helper.make_node("Unsqueeze", ["x"], ["y"], axes=[0, 3]), {},
        lambda x: x.reshape(1, 1, 2, 1, 4, 4)),
    "Reshape-1 attribute shape": (
        1, helper.make_node("Reshape", ["x"], ["y"], shape=[2, -1]), {},
        lambda x: x.reshape(2, -1)),
    "Add-6 broadcast from axis 1": (
        6, helper.make_node("Add", ["x", "c"], ["y"], broadcast=1, axis=1), {"c": C2},
        lambda x: x + C2[:, None, None]),
    "Mul-1 broadcast of the trailing dims": (
        1, helper.make_node("Mul", ["x", "c"], ["y"], broadcast=1), {"c": C2[:1]},
        lambda x: x * C2[:1]),
    "Upsample-1 bilinear": (
        1, helper.make_node("Upsample", ["x"], ["y"], width_scale=2.0, height_scale=2.0,
                            mode="bilinear"), {}, doubled_linearly),
    "Upsample-7 attribute scales": (
        7, helper.make_node("Upsample", ["x"], ["y"], scales=[1.0, 1.0, 2.0, 3.0]), {}, None),
    "BatchNormalization-7 spatial": (
        7, helper.make_node("BatchNormalization", ["x", "s", "b", "m", "v"], ["y"], spatial=1,
                            epsilon=1e-3), BN_PARAMETERS, None),
    "BatchNormalization-7 non-spatial": (
        7, helper.make_node("BatchNormalization", ["x", "s", "b", "m", "v"], ["y"], spatial=0),
        NON_SPATIAL_BN_PARAMETERS, None),
    "BatchNormalization-8 non-spatial": (
        8, helper.make_node("BatchNormalization", ["x", "s", "b", "m", "v"], ["y"], spatial=0),
        NON_SPATIAL_BN_PARAMETERS, None),
}


@pytest.mark.parametrize("name", list(OLD_OP_MODELS))
def test_old_opset_ops_are_upgraded_and_compute_like_onnxruntime(name):
    opset, node, initializers, in_numpy = OLD_OP_MODELS[name]
    model = old_model([node], [X4], [("y", F, None)], initializers, opset=opset)
    assert import_model(model).opsets[""] == NATIVE_MIN_OPSET
    x = random((1, 2, 4, 4))
    expected = {"y": in_numpy(x).astype(np.float32)} if in_numpy else None
    assert_like_onnxruntime(model, {"x": x}, expected)


LOGICAL_FORMS = {
    # name: (opset, B's shape, attributes, B as numpy broadcasts it against A [2, 3, 4])
    "opset 7": (7, [4], {}, lambda b: b),
    "opset 1 trailing": (1, [3, 4], {"broadcast": 1}, lambda b: b),
    "opset 1 from axis 0": (1, [2], {"broadcast": 1, "axis": 0}, lambda b: b[:, None, None]),
}


@pytest.mark.parametrize("op", ["And", "Or", "Xor"])
@pytest.mark.parametrize("form", list(LOGICAL_FORMS))
def test_old_logical_ops_with_broadcasting(op, form):
    opset, b_shape, attrs, aligned = LOGICAL_FORMS[form]
    model = old_model([helper.make_node(op, ["a", "b"], ["y"], **attrs)],
                      [("a", TensorProto.BOOL, [2, 3, 4]), ("b", TensorProto.BOOL, b_shape)],
                      [("y", TensorProto.BOOL, [2, 3, 4])], opset=opset)
    rng = np.random.default_rng(3)
    a, b = rng.random((2, 3, 4)) > 0.5, rng.random(b_shape) > 0.5
    expected = {"y": {"And": np.logical_and, "Or": np.logical_or,
                      "Xor": np.logical_xor}[op](a, aligned(b))}
    assert_like_onnxruntime(model, {"a": a, "b": b}, expected)


@pytest.mark.parametrize("op", ["Greater", "Less", "Equal"])
def test_old_comparisons_with_broadcasting_from_an_axis(op):
    dtype = TensorProto.INT32 if op == "Equal" else F  # Equal-1 compares integers only
    model = old_model([helper.make_node(op, ["a", "b"], ["y"], broadcast=1, axis=1)],
                      [("a", dtype, [2, 3, 4]), ("b", dtype, [3])],
                      [("y", TensorProto.BOOL, [2, 3, 4])], opset=1)
    rng = np.random.default_rng(4)
    a, b = rng.integers(0, 3, (2, 3, 4)), rng.integers(0, 3, 3)
    if dtype == F:
        a, b = a.astype(np.float32), b.astype(np.float32)
    else:
        a, b = a.astype(np.int32), b.astype(np.int32)
    compare = {"Greater": np.greater, "Less": np.less, "Equal": np.equal}[op]
    assert_like_onnxruntime(model, {"a": a, "b": b}, {"y": compare(a, b[:, None])})


def old_alexnet_style_export():
    """An AlexNet-style classifier as exported at opset 7 with IR 3: Conv/BatchNormalization
    (spatial)/Relu/LRN/MaxPool, Dropout with its mask, Reshape by attribute (opset 1 form
    upgraded), Gemm and Softmax; initializers not among the graph inputs; the outputs'
    shapes not declared."""
    w = {"c1_w": random((8, 3, 3, 3), 1) * 0.3, "c1_b": random((8,), 2),
         "bn_s": random((8,), 3), "bn_b": random((8,), 4), "bn_m": random((8,), 5),
         "bn_v": np.abs(random((8,), 6)) + 0.5, "shape": np.array([1, -1], np.int64),
         "fc_w": random((10, 8 * 4 * 4), 7) * 0.1, "fc_b": random((10,), 8)}
    nodes = [
        helper.make_node("Conv", ["x", "c1_w", "c1_b"], ["c1"], pads=[1, 1, 1, 1]),
        helper.make_node("BatchNormalization", ["c1", "bn_s", "bn_b", "bn_m", "bn_v"], ["bn"],
                         spatial=1),
        helper.make_node("Relu", ["bn"], ["r1"]),
        helper.make_node("LRN", ["r1"], ["n1"], size=3),
        helper.make_node("MaxPool", ["n1"], ["p1"], kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("Dropout", ["p1"], ["d1", "d1_mask"], ratio=0.5),
        helper.make_node("Reshape", ["d1", "shape"], ["flat"]),
        helper.make_node("Gemm", ["flat", "fc_w", "fc_b"], ["logits"], transB=1),
        helper.make_node("Softmax", ["logits"], ["prob"]),
    ]
    return old_model(nodes, [("x", F, [1, 3, 8, 8])],
                     [("prob", F, None), ("d1_mask", F, None)], w, opset=7)


def test_old_classic_cnn_export_runs_like_onnxruntime():
    model = old_alexnet_style_export()
    feeds = {"x": random((1, 3, 8, 8))}
    expected = onnxruntime_outputs(model, feeds)
    expected["d1_mask"] = np.ones_like(expected["d1_mask"])  # see the Dropout test
    assert_like_onnxruntime(model, feeds, expected)


def test_upgrade_keeps_which_initializers_are_overridable():
    """The converter needs every initializer listed as an input; an IR 4 model's unlisted
    ones stay constants all the same."""
    model = old_model([helper.make_node("Add", ["x", "c"], ["y"]),
                       helper.make_node("Mul", ["y", "d"], ["z"])],
                      [("x", F, [3]), ("d", F, [3])], [("z", F, None)],
                      {"c": np.ones(3, np.float32), "d": np.ones(3, np.float32)}, opset=8,
                      ir_version=4)
    assert import_model(model).inputs == ["x"]
    assert import_model(model, fed_inputs={"d"}).inputs == ["x", "d"]
    with pytest.raises(ModelImportError, match="'c' is given as an input, but it is not "
                                               "listed among the graph inputs"):
        import_model(model, fed_inputs={"c"})


def test_models_of_native_opsets_do_not_go_through_the_converter():
    model = overridable_weight_model()
    assert upgrade(model, "test") is model


# -- 6. what still fails says where and what to do, also on the command line ---------------------

def unconvertible_model():
    """A non-spatial BatchNormalization-7 asked for its training statistics: onnx's
    converter has no opset 9 form for it."""
    bn = helper.make_node("BatchNormalization", ["h", "s", "b", "m", "v"],
                          ["y", "mean", "var", "saved_mean", "saved_var"], name="bn_stats",
                          spatial=0)
    return old_model([helper.make_node("Relu", ["x"], ["h"], name="relu"), bn],
                     [X4], [("y", F, None)],
                     {n: np.ones((2, 4, 4), np.float32) for n in "sbmv"}, opset=7)


def test_converter_failure_names_node_op_opset_and_step():
    with pytest.raises(ModelImportError) as caught:
        import_model(unconvertible_model())
    message = str(caught.value)
    for fragment in ("node 'bn_stats' (BatchNormalization, opset 7)",
                     "converting BatchNormalization from opset 8 to 9",
                     "Attribute spatial must have value 1", "re-export the model at opset 9"):
        assert fragment in message


def unbound_inputs_model():
    return old_model([helper.make_node("Add", ["ids", "mask"], ["y"])],
                     [("ids", F, ["batch", "seq"]), ("mask", F, ["batch", "seq"])],
                     [("y", F, None)], opset=13, ir_version=8)


@pytest.mark.parametrize("model,command,fragments", [
    (unconvertible_model, "show", ("bn_stats", "BatchNormalization", "opset 7", "8 to 9")),
    (unconvertible_model, "compile", ("bn_stats", "BatchNormalization", "opset 7", "8 to 9")),
    (unbound_inputs_model, "compile", ("'batch' (dim 0), 'seq' (dim 1)",
                                       "--input-shape ids=1x128 --input-shape mask=1x128")),
], ids=["unconvertible-show", "unconvertible-compile", "unbound-compile"])
def test_cli_refusals_are_one_paragraph_without_traceback(tmp_path, model, command, fragments):
    path = tmp_path / "model.onnx"
    onnx.save(model(), path)
    done = subprocess.run([sys.executable, "-m", "byoc", command, str(path)],
                          capture_output=True, text=True, check=False, cwd=tmp_path)
    assert done.returncode == 1
    assert done.stderr.startswith("byoc: error: ") and "Traceback" not in done.stderr
    message = " ".join(done.stderr.split())
    assert all(fragment in message for fragment in fragments), message


# -- experimental ops of opsets 1-9 and deprecated ops ------------------------------------------

EXPERIMENTAL_OPS = {
    "ImageScaler": dict(scale=0.5, bias=[1.0, 2.0, 3.0]),
    "Scale": dict(scale=2.5),
    "Affine": dict(alpha=2.0, beta=-1.0),
    "ScaledTanh": dict(alpha=1.5, beta=0.5),
    "ParametricSoftplus": dict(alpha=1.5, beta=0.5),
    "ThresholdedRelu": dict(alpha=0.3),
    "Crop": dict(border=[1, 2, 1, 0]),
    "Crop/window": dict(border=[1, 1, 0, 0], scale=[3, 4]),
}


@pytest.mark.parametrize("opset", [7, 8, 9])
@pytest.mark.parametrize("name", list(EXPERIMENTAL_OPS))
def test_experimental_ops_onnxruntime_still_runs_are_imported(name, opset):
    """onnx dropped these ops' schemas, so its checker and converter refuse them; byoc
    rewrites them into the standard ops they stand for."""
    op = name.split("/")[0]
    node = helper.make_node(op, ["x"], ["y"], name="legacy", **EXPERIMENTAL_OPS[name])
    model = old_model([node], [("x", F, [1, 3, 5, 6])], [("y", F, None)], opset=opset)
    assert_like_onnxruntime(model, {"x": random((1, 3, 5, 6))})
    assert any(n.name.startswith("legacy/") for n in import_model(model).nodes)


def test_deprecated_op_onnxruntime_runs_is_imported():
    """GroupNormalization-18 (deprecated by its opset-21 form) fails onnx's checker."""
    model = old_model([helper.make_node("GroupNormalization", ["x", "s", "b"], ["y"],
                                        num_groups=2)],
                      [("x", F, [2, 4, 3, 3])], [("y", F, [2, 4, 3, 3])],
                      {"s": np.array([1.0, 2.0], np.float32),
                       "b": np.array([0.5, -1.0], np.float32)}, opset=18, ir_version=8)
    assert_like_onnxruntime(model, {"x": random((2, 4, 3, 3))})
