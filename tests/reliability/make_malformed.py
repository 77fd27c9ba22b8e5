"""A corpus of broken ONNX inputs, written on demand into a folder.

Each case is a file that byoc must refuse with a ByocError whose message names what is wrong.
The files are built here from a seed, never checked in, so the corpus is the same on every run
and every machine. ``python -m tests.reliability.make_malformed FOLDER`` writes it for a look.
"""

from __future__ import annotations

import io
import sys
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 17
SEED = 20240611


@dataclass(frozen=True)
class Case:
    """One broken input: its file name (relative to the corpus folder), the kind of damage, the
    fragments the error message must contain, and the --input-shape arguments it is given
    (cases about binding symbolic dimensions)."""

    file: str
    category: str
    fragments: tuple[str, ...]
    input_shapes: tuple[str, ...] = ()


def _vi(name: str, elem_type: int, shape) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, elem_type, shape)


def _model(nodes, inputs, outputs, initializers=(), opsets=None, value_info=()) -> onnx.ModelProto:
    """A model built without onnx's checks, so that it can be as broken as a case needs."""
    graph = helper.make_graph(nodes, "malformed", [_vi(*i) for i in inputs],
                              [_vi(*o) for o in outputs], list(initializers),
                              value_info=list(value_info))
    opsets = opsets if opsets is not None else {"": OPSET}
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid(d, v)
                                                    for d, v in opsets.items()])
    model.ir_version = 8
    return model


def _tensor(name: str, array) -> onnx.TensorProto:
    return numpy_helper.from_array(np.asarray(array), name)


def _valid_model() -> onnx.ModelProto:
    """A small well-formed model (MatMul + Add + Relu) whose bytes the truncation cases cut."""
    rng = np.random.default_rng(SEED)
    return _model(
        [helper.make_node("MatMul", ["x", "w"], ["h"], name="matmul"),
         helper.make_node("Add", ["h", "b"], ["z"], name="add"),
         helper.make_node("Relu", ["z"], ["y"], name="relu")],
        [("x", TensorProto.FLOAT, [2, 8])], [("y", TensorProto.FLOAT, [2, 4])],
        [_tensor("w", rng.standard_normal((8, 4)).astype(np.float32)),
         _tensor("b", rng.standard_normal(4).astype(np.float32))])


def _raw_tensor(name: str, dims, raw: bytes) -> onnx.TensorProto:
    """A float tensor whose raw bytes need not fit its shape (onnx.helper would refuse)."""
    tensor = TensorProto(name=name, data_type=TensorProto.FLOAT, dims=list(dims))
    tensor.raw_data = raw
    return tensor


def _unary(op: str, node: str, shape=(2, 3), dtype=TensorProto.FLOAT, **attrs) -> onnx.ModelProto:
    return _model([helper.make_node(op, ["x"], ["y"], name=node, **attrs)],
                  [("x", dtype, list(shape))], [("y", dtype, ["d"] * len(shape))])


def _external(location: str) -> onnx.ModelProto:
    """A model whose weight 'w' says its data lives in the file ``location``."""
    weight = _tensor("w", np.ones((2, 3), np.float32))
    weight.ClearField("raw_data")
    weight.data_location = TensorProto.EXTERNAL
    for key, value in (("location", location), ("offset", "0"), ("length", "24")):
        entry = weight.external_data.add()
        entry.key, entry.value = key, value
    return _model([helper.make_node("Add", ["x", "w"], ["y"], name="add_w")],
                  [("x", TensorProto.FLOAT, [2, 3])], [("y", TensorProto.FLOAT, [2, 3])],
                  [weight])


def _binary_cases(valid: bytes) -> dict[str, tuple[bytes, tuple[str, ...]]]:
    """Files that are not an ONNX protobuf at all; the message must name the file."""
    rng = np.random.default_rng(SEED)
    cases: dict[str, tuple[bytes, tuple[str, ...]]] = {}
    for fraction in (0.02, 0.1, 0.25, 0.5, 0.75, 0.9):
        cut = max(1, int(len(valid) * fraction))
        cases[f"truncated_at_{cut}.onnx"] = (valid[:cut], (f"truncated_at_{cut}.onnx",))
    cases["truncated_last_byte.onnx"] = (valid[:-1], ("truncated_last_byte.onnx",))
    for size in (16, 256, 4096):
        name = f"random_bytes_{size}.onnx"
        cases[name] = (rng.bytes(size), (name,))
    cases["empty.onnx"] = (b"", ("empty.onnx", "empty"))
    cases["text.onnx"] = (b"This is not a model.\nJust some text, 42 lines of it.\n" * 42,
                          ("text.onnx",))
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("model.onnx", valid)
    cases["zipped.onnx"] = (buffer.getvalue(), ("zipped.onnx",))
    cases["flipped_bytes.onnx"] = (bytes(b ^ 0xFF for b in valid), ("flipped_bytes.onnx",))
    return cases


def _model_cases() -> list[tuple[Case, onnx.ModelProto]]:
    f32, i64 = TensorProto.FLOAT, TensorProto.INT64
    cases: list[tuple[Case, onnx.ModelProto]] = []

    def case(category: str, name: str, fragments: tuple[str, ...],
             input_shapes: tuple[str, ...] = ()) -> Callable:
        def register(build: Callable[[], onnx.ModelProto]):
            cases.append((Case(name, category, fragments, input_shapes), build()))
            return build
        return register

    @case("graph structure", "missing_initializer.onnx", ("mul_w", "'w'"))
    def _():
        return _model([helper.make_node("Mul", ["x", "w"], ["y"], name="mul_w")],
                      [("x", f32, [2, 3])], [("y", f32, [2, 3])])

    @case("graph structure", "used_before_defined.onnx", ("relu_first", "'h'"))
    def _():
        return _model([helper.make_node("Relu", ["h"], ["y"], name="relu_first"),
                       helper.make_node("Neg", ["x"], ["h"], name="neg_second")],
                      [("x", f32, [2, 3])], [("y", f32, [2, 3])])

    @case("graph structure", "cycle.onnx", ("'b'",))
    def _():
        return _model([helper.make_node("Add", ["x", "b"], ["a"], name="cycle_a"),
                       helper.make_node("Relu", ["a"], ["b"], name="cycle_b")],
                      [("x", f32, [2, 3])], [("b", f32, [2, 3])])

    @case("graph structure", "self_loop.onnx", ("'a'",))
    def _():
        return _model([helper.make_node("Add", ["x", "a"], ["a"], name="self_loop")],
                      [("x", f32, [2, 3])], [("a", f32, [2, 3])])

    @case("graph structure", "two_definitions.onnx", ("'y'",))
    def _():
        return _model([helper.make_node("Relu", ["x"], ["y"], name="first_def"),
                       helper.make_node("Neg", ["x"], ["y"], name="second_def")],
                      [("x", f32, [2, 3])], [("y", f32, [2, 3])])

    @case("graph structure", "output_redefines_input.onnx", ("'x'",))
    def _():
        return _model([helper.make_node("Relu", ["x"], ["x"], name="redefine_x")],
                      [("x", f32, [2, 3])], [("x", f32, [2, 3])])

    @case("dtypes", "conv_on_int64.onnx", ("conv_int", "Conv"))
    def _():
        return _model([helper.make_node("Conv", ["x", "w"], ["y"], name="conv_int")],
                      [("x", i64, [1, 1, 4, 4])], [("y", i64, ["n", "c", "h", "w"])],
                      [_tensor("w", np.ones((1, 1, 3, 3), np.int64))])

    @case("dtypes", "add_mixed_dtypes.onnx", ("add_mixed", "Add"))
    def _():
        return _model([helper.make_node("Add", ["x", "c"], ["y"], name="add_mixed")],
                      [("x", f32, [2, 3])], [("y", f32, ["a", "b"])],
                      [_tensor("c", np.ones((2, 3), np.int64))])

    @case("shapes", "matmul_3x4_by_5x6.onnx", ("mm_bad", "MatMul"))
    def _():
        return _model([helper.make_node("MatMul", ["x", "w"], ["y"], name="mm_bad")],
                      [("x", f32, [3, 4])], [("y", f32, ["a", "b"])],
                      [_tensor("w", np.ones((5, 6), np.float32))])

    @case("shapes", "add_not_broadcastable.onnx", ("add_bcast", "Add"))
    def _():
        return _model([helper.make_node("Add", ["x", "c"], ["y"], name="add_bcast")],
                      [("x", f32, [2, 3])], [("y", f32, ["a", "b"])],
                      [_tensor("c", np.ones((4,), np.float32))])

    @case("shapes", "declared_output_shape_wrong.onnx", ("'y'", "[7,7]"))
    def _():
        return _model([helper.make_node("Relu", ["x"], ["y"], name="relu_decl")],
                      [("x", f32, [2, 3])], [("y", f32, [7, 7])])

    @case("dtypes", "declared_output_dtype_wrong.onnx", ("'y'", "INT32"))
    def _():
        return _model([helper.make_node("Relu", ["x"], ["y"], name="relu_dtype")],
                      [("x", f32, [2, 3])], [("y", TensorProto.INT32, [2, 3])])

    @case("ops and opsets", "unknown_op.onnx", ("FrobnicateTensor",))
    def _():
        return _unary("FrobnicateTensor", "frob")

    @case("ops and opsets", "unknown_domain.onnx", ("com.example.unknown", "Frob"))
    def _():
        model = _unary("Frob", "frob_custom")
        model.graph.node[0].domain = "com.example.unknown"
        model.opset_import.append(helper.make_opsetid("com.example.unknown", 1))
        return model

    @case("ops and opsets", "unknown_domain_not_imported.onnx", ("com.example.missing",))
    def _():
        model = _unary("Frob", "frob_missing")
        model.graph.node[0].domain = "com.example.missing"
        return model

    @case("ops and opsets", "opset_0.onnx", ("opset 0",))
    def _():
        return _model([helper.make_node("Relu", ["x"], ["y"], name="relu")],
                      [("x", f32, [2, 3])], [("y", f32, [2, 3])], opsets={"": 0})

    @case("ops and opsets", "opset_999.onnx", ("opset 999",))
    def _():
        return _model([helper.make_node("Relu", ["x"], ["y"], name="relu")],
                      [("x", f32, [2, 3])], [("y", f32, [2, 3])], opsets={"": 999})

    @case("ops and opsets", "opset_upgrade_fails.onnx",
          ("bn_stats", "BatchNormalization", "opset 7", "from opset 8 to 9", "re-export"))
    def _():
        # A non-spatial BatchNormalization-7 giving its training statistics has no opset 9
        # form that onnx's version converter knows.
        model = _model([helper.make_node("BatchNormalization", ["x", "s", "b", "m", "v"],
                                         ["y", "mean", "var", "saved_mean", "saved_var"],
                                         name="bn_stats", spatial=0)],
                       [("x", f32, [1, 2, 3, 3])], [("y", f32, [1, 2, 3, 3])],
                       [_tensor(n, np.ones((2, 3, 3), np.float32)) for n in "sbmv"],
                       opsets={"": 7})
        model.ir_version = 3
        return model

    @case("dtypes", "input_without_type.onnx", ("'x'", "no type"))
    def _():
        model = _unary("Relu", "relu_no_type")
        model.graph.input[0].ClearField("type")
        return model

    @case("ops and opsets", "no_opset_import.onnx", ("opset",))
    def _():
        return _model([helper.make_node("Relu", ["x"], ["y"], name="relu")],
                      [("x", f32, [2, 3])], [("y", f32, [2, 3])], opsets={})

    @case("symbolic dims", "unbound_symbolic_dim.onnx",
          ("'x'", "'batch' (dim 0)", "--input-shape x=1x3"))
    def _():
        return _unary("Relu", "relu_sym", shape=("batch", 3))

    @case("symbolic dims", "unknown_rank_input.onnx", ("'x'", "shape"))
    def _():
        return _model([helper.make_node("Relu", ["x"], ["y"], name="relu_rank")],
                      [("x", f32, None)], [("y", f32, ["a", "b"])])

    # Zero-sized tensors are legal ONNX; these cases are broken because an op cannot use them.
    @case("shapes", "zero_sized_kernel.onnx", ("conv_zero_kernel", "kernel_shape"))
    def _():
        return _model([helper.make_node("Conv", ["x", "w"], ["y"], name="conv_zero_kernel")],
                      [("x", f32, [1, 1, 4, 4])], [("y", f32, ["n", "c", "h", "w"])],
                      [_tensor("w", np.ones((1, 1, 0, 3), np.float32))])

    @case("shapes", "zero_height_conv_input.onnx", ("conv_zero_height", "'y'", "negative"))
    def _():
        return _model([helper.make_node("Conv", ["x", "w"], ["y"], name="conv_zero_height")],
                      [("x", f32, [1, 1, 0, 4])], [("y", f32, ["n", "c", "h", "w"])],
                      [_tensor("w", np.ones((1, 1, 3, 3), np.float32))])

    @case("shapes", "zero_sized_pool_kernel.onnx", ("pool_zero_kernel", "kernel_shape"))
    def _():
        return _model([helper.make_node("MaxPool", ["x"], ["y"], name="pool_zero_kernel",
                                        kernel_shape=[0, 0])],
                      [("x", f32, [1, 1, 4, 4])], [("y", f32, ["n", "c", "h", "w"])])

    @case("shapes", "negative_dim.onnx", ("'x'", "-4"))
    def _():
        return _unary("Relu", "relu_negative", shape=(-4, 3))

    @case("huge sizes", "huge_input.onnx", ("'x'", "1099511627776"))
    def _():
        return _unary("Relu", "relu_huge", shape=(1 << 20, 1 << 20))

    @case("huge sizes", "constant_of_shape_huge.onnx", ("fill_huge", "ConstantOfShape"))
    def _():
        return _model([helper.make_node("ConstantOfShape", ["shape"], ["big"], name="fill_huge"),
                       helper.make_node("Add", ["big", "x"], ["y"], name="add_big")],
                      [("x", f32, [1])], [("y", f32, ["a", "b"])],
                      [_tensor("shape", np.array([1 << 20, 1 << 20], np.int64))])

    @case("huge sizes", "expand_huge.onnx", ("expand_huge", "Expand"))
    def _():
        return _model([helper.make_node("Expand", ["x", "shape"], ["y"], name="expand_huge")],
                      [("x", f32, [1, 1])], [("y", f32, ["a", "b"])],
                      [_tensor("shape", np.array([1 << 21, 1 << 21], np.int64))])

    @case("huge sizes", "huge_initializer_claim.onnx", ("'w'",))
    def _():
        weight = _raw_tensor("w", [1 << 20, 1 << 20], b"\0" * 16)
        return _model([helper.make_node("Add", ["x", "w"], ["y"], name="add_w")],
                      [("x", f32, [1])], [("y", f32, ["a", "b"])], [weight])

    @case("graph structure", "empty_op_type.onnx", ("nameless_op",))
    def _():
        return _unary("", "nameless_op")

    @case("graph structure", "no_graph_outputs.onnx", ("output",))
    def _():
        return _model([helper.make_node("Relu", ["x"], ["y"], name="relu_unused")],
                      [("x", f32, [2, 3])], [])

    @case("graph structure", "output_never_produced.onnx", ("'ghost'",))
    def _():
        return _model([helper.make_node("Relu", ["x"], ["y"], name="relu")],
                      [("x", f32, [2, 3])], [("ghost", f32, [2, 3])])

    @case("tensor data", "raw_data_too_short.onnx", ("'w'",))
    def _():
        weight = _raw_tensor("w", [2, 3], b"\0" * 10)
        return _model([helper.make_node("Add", ["x", "w"], ["y"], name="add_w")],
                      [("x", f32, [2, 3])], [("y", f32, [2, 3])], [weight])

    @case("tensor data", "raw_data_too_long.onnx", ("'w'",))
    def _():
        weight = _raw_tensor("w", [2, 3], b"\0" * 100)
        return _model([helper.make_node("Add", ["x", "w"], ["y"], name="add_w")],
                      [("x", f32, [2, 3])], [("y", f32, [2, 3])], [weight])

    @case("tensor data", "float_data_count_wrong.onnx", ("'w'",))
    def _():
        weight = TensorProto(name="w", data_type=f32, dims=[2, 3], float_data=[1.0, 2.0])
        return _model([helper.make_node("Add", ["x", "w"], ["y"], name="add_w")],
                      [("x", f32, [2, 3])], [("y", f32, [2, 3])], [weight])

    @case("tensor data", "initializer_undefined_dtype.onnx", ("'w'",))
    def _():
        weight = helper.make_tensor("w", f32, [2], vals=[1.0, 2.0])
        weight.data_type = TensorProto.UNDEFINED
        return _model([helper.make_node("Add", ["x", "w"], ["y"], name="add_w")],
                      [("x", f32, [2])], [("y", f32, [2])], [weight])

    @case("external data", "external_data_missing.onnx",
          ("'w'", "no_such_weights.bin", "not found"))
    def _():
        return _external("no_such_weights.bin")

    @case("external data", "external_data_parent_dir.onnx", ("'w'", "../outside.bin", "outside"))
    def _():
        return _external("../outside.bin")

    @case("external data", "external_data_absolute.onnx", ("'w'", "/etc/hostname", "absolute"))
    def _():
        return _external("/etc/hostname")

    @case("shapes", "reshape_bad_count.onnx", ("reshape_bad", "Reshape"))
    def _():
        return _model([helper.make_node("Reshape", ["x", "shape"], ["y"], name="reshape_bad")],
                      [("x", f32, [2, 3])], [("y", f32, ["a", "b"])],
                      [_tensor("shape", np.array([4, 4], np.int64))])

    @case("shapes", "gather_index_out_of_range.onnx", ("gather_oob", "Gather"))
    def _():
        return _model([helper.make_node("Shape", ["x"], ["s"], name="shape_of_x"),
                       helper.make_node("Gather", ["s", "i"], ["n"], name="gather_oob", axis=0),
                       helper.make_node("Reshape", ["x", "n"], ["y"], name="reshape_n")],
                      [("x", f32, [2, 3])], [("y", f32, ["a"])],
                      [_tensor("i", np.array([7], np.int64))])

    @case("node attributes and arity", "missing_required_attribute.onnx", ("cast_no_to", "Cast"))
    def _():
        return _unary("Cast", "cast_no_to")

    @case("node attributes and arity", "attribute_wrong_type.onnx", ("softmax_bad_axis", "Softmax"))
    def _():
        model = _unary("Softmax", "softmax_bad_axis")
        model.graph.node[0].attribute.append(helper.make_attribute("axis", "last"))
        return model

    @case("node attributes and arity", "too_many_inputs.onnx", ("relu_three", "Relu"))
    def _():
        return _model([helper.make_node("Relu", ["x", "x", "x"], ["y"], name="relu_three")],
                      [("x", f32, [2, 3])], [("y", f32, [2, 3])])

    @case("dtypes", "input_not_tensor.onnx", ("'x'",))
    def _():
        model = _unary("Relu", "relu_seq")
        model.graph.input[0].type.CopyFrom(helper.make_sequence_type_proto(
            helper.make_tensor_type_proto(f32, [2, 3])))
        return model

    @case("ops and opsets", "control_flow_subgraph.onnx", ("if_node",))
    def _():
        branch = helper.make_graph([helper.make_node("Identity", ["x"], ["t"])], "branch", [],
                                   [_vi("t", f32, [2, 3])])
        return _model([helper.make_node("If", ["cond"], ["y"], name="if_node",
                                        then_branch=branch, else_branch=branch)],
                      [("x", f32, [2, 3]), ("cond", TensorProto.BOOL, [])],
                      [("y", f32, [2, 3])])

    @case("dtypes", "complex_input.onnx", ("'x'", "COMPLEX64"))
    def _():
        return _unary("Identity", "identity_complex", dtype=TensorProto.COMPLEX64)

    @case("dtypes", "matmul_int8_by_float.onnx", ("mm_mixed", "MatMul", "int8"))
    def _():
        return _model([helper.make_node("MatMul", ["x", "w"], ["y"], name="mm_mixed")],
                      [("x", TensorProto.INT8, [2, 3])], [("y", f32, ["a", "b"])],
                      [_tensor("w", np.ones((3, 4), np.float32))])

    @case("dtypes", "input_without_element_type.onnx", ("'x'", "no element type"))
    def _():
        return _unary("Relu", "relu_untyped", dtype=TensorProto.UNDEFINED)

    @case("shapes", "conv_group_does_not_divide.onnx", ("conv_group", "group 2", "3 input "))
    def _():
        return _model([helper.make_node("Conv", ["x", "w"], ["y"], name="conv_group", group=2)],
                      [("x", f32, [1, 3, 4, 4])], [("y", f32, ["n", "c", "h", "w"])],
                      [_tensor("w", np.ones((2, 3, 3, 3), np.float32))])

    @case("shapes", "conv_weight_channels_wrong.onnx", ("conv_channels", "[2, 5, 3, 3]"))
    def _():
        return _model([helper.make_node("Conv", ["x", "w"], ["y"], name="conv_channels")],
                      [("x", f32, [1, 3, 4, 4])], [("y", f32, ["n", "c", "h", "w"])],
                      [_tensor("w", np.ones((2, 5, 3, 3), np.float32))])

    @case("shapes", "conv_bias_length_wrong.onnx", ("conv_bias", "bias", "[7]"))
    def _():
        return _model([helper.make_node("Conv", ["x", "w", "b"], ["y"], name="conv_bias")],
                      [("x", f32, [1, 3, 4, 4])], [("y", f32, ["n", "c", "h", "w"])],
                      [_tensor("w", np.ones((2, 3, 3, 3), np.float32)),
                       _tensor("b", np.ones(7, np.float32))])

    @case("shapes", "quantize_scale_length_wrong.onnx", ("quant_scale", "y_scale", "[4]"))
    def _():
        return _model([helper.make_node("QuantizeLinear", ["x", "s", "z"], ["y"],
                                        name="quant_scale")],
                      [("x", f32, [2, 3])], [("y", TensorProto.INT8, ["a", "b"])],
                      [_tensor("s", np.ones(4, np.float32)), _tensor("z", np.int8(0))])

    @case("shapes", "concat_axis_out_of_range.onnx", ("concat_axis", "Concat", "axis"))
    def _():
        return _model([helper.make_node("Concat", ["x", "x"], ["y"], name="concat_axis",
                                        axis=5)],
                      [("x", f32, [2, 3])], [("y", f32, ["a", "b"])])

    @case("shapes", "split_sizes_wrong.onnx", ("split_sizes", "Split"))
    def _():
        return _model([helper.make_node("Split", ["x", "sizes"], ["a", "b"], name="split_sizes",
                                        axis=1)],
                      [("x", f32, [2, 3])], [("a", f32, ["p", "q"]), ("b", f32, ["r", "s"])],
                      [_tensor("sizes", np.array([2, 2], np.int64))])

    @case("ops and opsets", "ml_domain_only.onnx", ("ai.onnx.ml 3", "no ai.onnx opset"))
    def _():
        return _model([helper.make_node("Normalizer", ["x"], ["y"], name="normalize",
                                        domain="ai.onnx.ml")],
                      [("x", f32, [2, 3])], [("y", f32, [2, 3])], opsets={"ai.onnx.ml": 3})

    @case("ops and opsets", "ml_op_with_ai_onnx.onnx", ("scaler", "ai.onnx.ml::Scaler"))
    def _():
        return _model([helper.make_node("Scaler", ["x"], ["y"], name="scaler",
                                        domain="ai.onnx.ml", scale=[2.0])],
                      [("x", f32, [2, 3])], [("y", f32, [2, 3])],
                      opsets={"": OPSET, "ai.onnx.ml": 3})

    @case("ops and opsets", "ir_version_too_new.onnx", ("ir_version 99",))
    def _():
        model = _unary("Relu", "relu_ir")
        model.ir_version = 99
        return model

    @case("huge sizes", "reshape_to_huge.onnx", ("reshape_huge", "Reshape", "GiB"))
    def _():
        return _model([helper.make_node("Reshape", ["x", "shape"], ["y"], name="reshape_huge")],
                      [("x", f32, [2, 3])], [("y", f32, ["a", "b"])],
                      [_tensor("shape", np.array([1 << 20, 1 << 20], np.int64))])

    @case("huge sizes", "range_huge.onnx", ("range_huge", "Range", "GiB"))
    def _():
        return _model([helper.make_node("Range", ["start", "limit", "delta"], ["r"],
                                        name="range_huge"),
                       helper.make_node("Add", ["r", "x"], ["y"], name="add_range")],
                      [("x", f32, [1])], [("y", f32, ["a"])],
                      [_tensor("start", np.float32(0)), _tensor("limit", np.float32(1e12)),
                       _tensor("delta", np.float32(1))])

    @case("huge sizes", "tile_constant_huge.onnx", ("tile_huge", "Tile", "GiB"))
    def _():
        return _model([helper.make_node("Tile", ["c", "repeats"], ["t"], name="tile_huge"),
                       helper.make_node("Add", ["t", "x"], ["y"], name="add_tile")],
                      [("x", f32, [1])], [("y", f32, ["a", "b"])],
                      [_tensor("c", np.ones((2, 3), np.float32)),
                       _tensor("repeats", np.array([1 << 20, 1 << 20], np.int64))])

    @case("huge sizes", "pad_huge.onnx", ("pad_huge", "Pad", "GiB"))
    def _():
        return _model([helper.make_node("Pad", ["x", "pads"], ["y"], name="pad_huge")],
                      [("x", f32, [2, 3])], [("y", f32, ["a", "b"])],
                      [_tensor("pads", np.array([0, 0, 1 << 20, 1 << 20], np.int64))])

    @case("huge sizes", "input_dims_overflow_int64.onnx", ("'x'", "GiB"))
    def _():
        return _unary("Relu", "relu_overflow", shape=(1 << 62, 1 << 62))

    @case("tensor data", "constant_attribute_too_short.onnx", ("const_short", "raw_data"))
    def _():
        value = _raw_tensor("v", [2, 3], b"\0" * 5)
        return _model([helper.make_node("Constant", [], ["c"], name="const_short", value=value),
                       helper.make_node("Add", ["c", "x"], ["y"], name="add_c")],
                      [("x", f32, [2, 3])], [("y", f32, ["a", "b"])])

    @case("node attributes and arity", "constant_without_value.onnx", ("const_empty", "value"))
    def _():
        return _model([helper.make_node("Constant", [], ["c"], name="const_empty"),
                       helper.make_node("Add", ["c", "x"], ["y"], name="add_c")],
                      [("x", f32, [2, 3])], [("y", f32, ["a", "b"])])

    @case("node attributes and arity", "cast_to_invalid_type.onnx", ("cast_bad", "Cast"))
    def _():
        return _unary("Cast", "cast_bad", to=999)

    @case("node attributes and arity", "transpose_repeated_axis.onnx", ("transpose_bad", "perm"))
    def _():
        return _unary("Transpose", "transpose_bad", perm=[0, 0])

    @case("node attributes and arity", "attribute_twice.onnx", ("softmax_twice", "'axis'"))
    def _():
        model = _unary("Softmax", "softmax_twice", axis=1)
        model.graph.node[0].attribute.append(helper.make_attribute("axis", 0))
        return model

    # The same model, given wrong --input-shape bindings.
    def symbolic() -> onnx.ModelProto:
        return _model([helper.make_node("Add", ["x", "z"], ["y"], name="add_sym")],
                      [("x", f32, ["batch", 3]), ("z", f32, ["batch", 3])],
                      [("y", f32, ["batch", 3])])

    @case("symbolic dims", "bound_wrong_rank.onnx", ("'x'", "2x3x4"),
          ("x=2x3x4", "z=2x3"))
    def _():
        return symbolic()

    @case("symbolic dims", "bound_against_fixed_dim.onnx", ("'x'", "2x5"), ("x=2x5", "z=2x3"))
    def _():
        return symbolic()

    @case("symbolic dims", "bound_inconsistently.onnx", ("add_sym", "Add"),
          ("x=2x3", "z=4x3"))
    def _():
        return symbolic()

    @case("symbolic dims", "bound_unknown_input.onnx", ("nope", "--input-shape"),
          ("x=2x3", "z=2x3", "nope=1"))
    def _():
        return symbolic()

    @case("symbolic dims", "bound_one_of_two.onnx", ("'z'", "--input-shape"), ("x=2x3",))
    def _():
        return symbolic()

    @case("symbolic dims", "bound_huge.onnx", ("'x'", "GiB"),
          ("x=1099511627776x3", "z=1099511627776x3"))
    def _():
        return symbolic()

    @case("symbolic dims", "bound_negative.onnx", ("x=-2x3", "negative"), ("x=-2x3", "z=2x3"))
    def _():
        return symbolic()

    @case("symbolic dims", "bound_not_a_number.onnx", ("x=twox3",), ("x=twox3", "z=2x3"))
    def _():
        return symbolic()

    return cases


def _all_cases() -> list[tuple[Case, bytes]]:
    built = [(Case(name, "unreadable file", fragments), data) for name, (data, fragments)
             in _binary_cases(_valid_model().SerializeToString()).items()]
    built += [(case, model.SerializeToString()) for case, model in _model_cases()]
    return built


def corpus_cases() -> list[Case]:
    """The cases write_corpus writes, without writing anything (for test parametrization)."""
    return [case for case, _ in _all_cases()]


def write_corpus(folder) -> list[Case]:
    """Write every broken input into ``folder`` and return the cases, in a fixed order."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    found = []
    for case, data in _all_cases():
        (folder / case.file).write_bytes(data)
        found.append(case)
    # A real file just outside the corpus folder, so that '../outside.bin' would resolve.
    (folder.parent / "outside.bin").write_bytes(np.ones(6, np.float32).tobytes())
    return found


if __name__ == "__main__":
    written = write_corpus(sys.argv[1] if len(sys.argv) > 1 else "malformed_models")
    for case in written:
        print(f"{case.category:28} {case.file} {' '.join(case.input_shapes)}")
    categories = sorted({case.category for case in written})
    print(f"{len(written)} cases in {len(categories)} categories")
