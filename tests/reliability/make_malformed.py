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
    """One broken input: its file name (relative to the corpus folder) and the fragments the
    error message must contain."""

    file: str
    fragments: tuple[str, ...]


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
    rng = np.random.default_rng(SEED)
    cases: dict[str, tuple[bytes, tuple[str, ...]]] = {}
    for fraction in (0.02, 0.1, 0.25, 0.5, 0.75, 0.9):
        cut = max(1, int(len(valid) * fraction))
        cases[f"truncated_at_{cut}.onnx"] = (valid[:cut], (f"truncated_at_{cut}.onnx",))
    cases["truncated_last_byte.onnx"] = (valid[:-1], ("truncated_last_byte.onnx",))
    for i, size in enumerate((16, 256, 4096)):
        name = f"random_bytes_{size}.onnx"
        cases[name] = (rng.bytes(size), (name,))
    cases["empty.onnx"] = (b"", ("empty.onnx",))
    cases["text.onnx"] = (b"This is not a model.\nJust some text, 42 lines of it.\n" * 42,
                          ("text.onnx",))
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("model.onnx", valid)
    cases["zipped.onnx"] = (buffer.getvalue(), ("zipped.onnx",))
    cases["flipped_bytes.onnx"] = (bytes(b ^ 0xFF for b in valid), ("flipped_bytes.onnx",))
    return cases


def _model_cases() -> dict[str, tuple[onnx.ModelProto, tuple[str, ...]]]:
    f32, i64 = TensorProto.FLOAT, TensorProto.INT64
    cases: dict[str, tuple[onnx.ModelProto, tuple[str, ...]]] = {}

    def case(name: str, fragments: tuple[str, ...]) -> Callable:
        def register(build: Callable[[], onnx.ModelProto]):
            cases[name] = (build(), fragments)
            return build
        return register

    @case("missing_initializer.onnx", ("mul_w", "'w'"))
    def _():
        return _model([helper.make_node("Mul", ["x", "w"], ["y"], name="mul_w")],
                      [("x", f32, [2, 3])], [("y", f32, [2, 3])])

    @case("used_before_defined.onnx", ("relu_first", "'h'"))
    def _():
        return _model([helper.make_node("Relu", ["h"], ["y"], name="relu_first"),
                       helper.make_node("Neg", ["x"], ["h"], name="neg_second")],
                      [("x", f32, [2, 3])], [("y", f32, [2, 3])])

    @case("cycle.onnx", ("'b'",))
    def _():
        return _model([helper.make_node("Add", ["x", "b"], ["a"], name="cycle_a"),
                       helper.make_node("Relu", ["a"], ["b"], name="cycle_b")],
                      [("x", f32, [2, 3])], [("b", f32, [2, 3])])

    @case("self_loop.onnx", ("'a'",))
    def _():
        return _model([helper.make_node("Add", ["x", "a"], ["a"], name="self_loop")],
                      [("x", f32, [2, 3])], [("a", f32, [2, 3])])

    @case("two_definitions.onnx", ("'y'",))
    def _():
        return _model([helper.make_node("Relu", ["x"], ["y"], name="first_def"),
                       helper.make_node("Neg", ["x"], ["y"], name="second_def")],
                      [("x", f32, [2, 3])], [("y", f32, [2, 3])])

    @case("output_redefines_input.onnx", ("'x'",))
    def _():
        return _model([helper.make_node("Relu", ["x"], ["x"], name="redefine_x")],
                      [("x", f32, [2, 3])], [("x", f32, [2, 3])])

    @case("conv_on_int64.onnx", ("conv_int", "Conv"))
    def _():
        return _model([helper.make_node("Conv", ["x", "w"], ["y"], name="conv_int")],
                      [("x", i64, [1, 1, 4, 4])], [("y", i64, ["n", "c", "h", "w"])],
                      [_tensor("w", np.ones((1, 1, 3, 3), np.int64))])

    @case("add_mixed_dtypes.onnx", ("add_mixed", "Add"))
    def _():
        return _model([helper.make_node("Add", ["x", "c"], ["y"], name="add_mixed")],
                      [("x", f32, [2, 3])], [("y", f32, ["a", "b"])],
                      [_tensor("c", np.ones((2, 3), np.int64))])

    @case("matmul_3x4_by_5x6.onnx", ("mm_bad", "MatMul"))
    def _():
        return _model([helper.make_node("MatMul", ["x", "w"], ["y"], name="mm_bad")],
                      [("x", f32, [3, 4])], [("y", f32, ["a", "b"])],
                      [_tensor("w", np.ones((5, 6), np.float32))])

    @case("add_not_broadcastable.onnx", ("add_bcast", "Add"))
    def _():
        return _model([helper.make_node("Add", ["x", "c"], ["y"], name="add_bcast")],
                      [("x", f32, [2, 3])], [("y", f32, ["a", "b"])],
                      [_tensor("c", np.ones((4,), np.float32))])

    @case("declared_output_shape_wrong.onnx", ("'y'", "[7,7]"))
    def _():
        return _model([helper.make_node("Relu", ["x"], ["y"], name="relu_decl")],
                      [("x", f32, [2, 3])], [("y", f32, [7, 7])])

    @case("declared_output_dtype_wrong.onnx", ("'y'", "INT32"))
    def _():
        return _model([helper.make_node("Relu", ["x"], ["y"], name="relu_dtype")],
                      [("x", f32, [2, 3])], [("y", TensorProto.INT32, [2, 3])])

    @case("unknown_op.onnx", ("FrobnicateTensor",))
    def _():
        return _unary("FrobnicateTensor", "frob")

    @case("unknown_domain.onnx", ("com.example.unknown", "Frob"))
    def _():
        model = _unary("Frob", "frob_custom")
        model.graph.node[0].domain = "com.example.unknown"
        model.opset_import.append(helper.make_opsetid("com.example.unknown", 1))
        return model

    @case("unknown_domain_not_imported.onnx", ("com.example.missing",))
    def _():
        model = _unary("Frob", "frob_missing")
        model.graph.node[0].domain = "com.example.missing"
        return model

    @case("opset_0.onnx", ("opset 0",))
    def _():
        return _model([helper.make_node("Relu", ["x"], ["y"], name="relu")],
                      [("x", f32, [2, 3])], [("y", f32, [2, 3])], opsets={"": 0})

    @case("opset_999.onnx", ("opset 999",))
    def _():
        return _model([helper.make_node("Relu", ["x"], ["y"], name="relu")],
                      [("x", f32, [2, 3])], [("y", f32, [2, 3])], opsets={"": 999})

    @case("no_opset_import.onnx", ("opset",))
    def _():
        return _model([helper.make_node("Relu", ["x"], ["y"], name="relu")],
                      [("x", f32, [2, 3])], [("y", f32, [2, 3])], opsets={})

    @case("unbound_symbolic_dim.onnx", ("'x'", "--input-shape"))
    def _():
        return _unary("Relu", "relu_sym", shape=("batch", 3))

    @case("unknown_rank_input.onnx", ("'x'", "shape"))
    def _():
        return _model([helper.make_node("Relu", ["x"], ["y"], name="relu_rank")],
                      [("x", f32, None)], [("y", f32, ["a", "b"])])

    # Zero-sized tensors are legal ONNX; these cases are broken because an op cannot use them.
    @case("zero_sized_kernel.onnx", ("conv_zero_kernel", "kernel_shape"))
    def _():
        return _model([helper.make_node("Conv", ["x", "w"], ["y"], name="conv_zero_kernel")],
                      [("x", f32, [1, 1, 4, 4])], [("y", f32, ["n", "c", "h", "w"])],
                      [_tensor("w", np.ones((1, 1, 0, 3), np.float32))])

    @case("zero_height_conv_input.onnx", ("conv_zero_height", "'y'", "negative"))
    def _():
        return _model([helper.make_node("Conv", ["x", "w"], ["y"], name="conv_zero_height")],
                      [("x", f32, [1, 1, 0, 4])], [("y", f32, ["n", "c", "h", "w"])],
                      [_tensor("w", np.ones((1, 1, 3, 3), np.float32))])

    @case("zero_sized_pool_kernel.onnx", ("pool_zero_kernel", "kernel_shape"))
    def _():
        return _model([helper.make_node("MaxPool", ["x"], ["y"], name="pool_zero_kernel",
                                        kernel_shape=[0, 0])],
                      [("x", f32, [1, 1, 4, 4])], [("y", f32, ["n", "c", "h", "w"])])

    @case("negative_dim.onnx", ("'x'", "-4"))
    def _():
        return _unary("Relu", "relu_negative", shape=(-4, 3))

    @case("huge_input.onnx", ("'x'", "1099511627776"))
    def _():
        return _unary("Relu", "relu_huge", shape=(1 << 20, 1 << 20))

    @case("constant_of_shape_huge.onnx", ("fill_huge", "ConstantOfShape"))
    def _():
        return _model([helper.make_node("ConstantOfShape", ["shape"], ["big"], name="fill_huge"),
                       helper.make_node("Add", ["big", "x"], ["y"], name="add_big")],
                      [("x", f32, [1])], [("y", f32, ["a", "b"])],
                      [_tensor("shape", np.array([1 << 20, 1 << 20], np.int64))])

    @case("expand_huge.onnx", ("expand_huge", "Expand"))
    def _():
        return _model([helper.make_node("Expand", ["x", "shape"], ["y"], name="expand_huge")],
                      [("x", f32, [1, 1])], [("y", f32, ["a", "b"])],
                      [_tensor("shape", np.array([1 << 21, 1 << 21], np.int64))])

    @case("huge_initializer_claim.onnx", ("'w'",))
    def _():
        weight = _raw_tensor("w", [1 << 20, 1 << 20], b"\0" * 16)
        return _model([helper.make_node("Add", ["x", "w"], ["y"], name="add_w")],
                      [("x", f32, [1])], [("y", f32, ["a", "b"])], [weight])

    @case("empty_op_type.onnx", ("nameless_op",))
    def _():
        return _unary("", "nameless_op")

    @case("no_graph_outputs.onnx", ("output",))
    def _():
        return _model([helper.make_node("Relu", ["x"], ["y"], name="relu_unused")],
                      [("x", f32, [2, 3])], [])

    @case("output_never_produced.onnx", ("'ghost'",))
    def _():
        return _model([helper.make_node("Relu", ["x"], ["y"], name="relu")],
                      [("x", f32, [2, 3])], [("ghost", f32, [2, 3])])

    @case("raw_data_too_short.onnx", ("'w'",))
    def _():
        weight = _raw_tensor("w", [2, 3], b"\0" * 10)
        return _model([helper.make_node("Add", ["x", "w"], ["y"], name="add_w")],
                      [("x", f32, [2, 3])], [("y", f32, [2, 3])], [weight])

    @case("raw_data_too_long.onnx", ("'w'",))
    def _():
        weight = _raw_tensor("w", [2, 3], b"\0" * 100)
        return _model([helper.make_node("Add", ["x", "w"], ["y"], name="add_w")],
                      [("x", f32, [2, 3])], [("y", f32, [2, 3])], [weight])

    @case("float_data_count_wrong.onnx", ("'w'",))
    def _():
        weight = TensorProto(name="w", data_type=f32, dims=[2, 3], float_data=[1.0, 2.0])
        return _model([helper.make_node("Add", ["x", "w"], ["y"], name="add_w")],
                      [("x", f32, [2, 3])], [("y", f32, [2, 3])], [weight])

    @case("initializer_undefined_dtype.onnx", ("'w'",))
    def _():
        weight = helper.make_tensor("w", f32, [2], vals=[1.0, 2.0])
        weight.data_type = TensorProto.UNDEFINED
        return _model([helper.make_node("Add", ["x", "w"], ["y"], name="add_w")],
                      [("x", f32, [2])], [("y", f32, [2])], [weight])

    @case("external_data_missing.onnx", ("'w'", "no_such_weights.bin", "not found"))
    def _():
        return _external("no_such_weights.bin")

    @case("external_data_parent_dir.onnx", ("'w'", "../outside.bin", "outside"))
    def _():
        return _external("../outside.bin")

    @case("external_data_absolute.onnx", ("'w'", "/etc/hostname", "absolute"))
    def _():
        return _external("/etc/hostname")

    @case("reshape_bad_count.onnx", ("reshape_bad", "Reshape"))
    def _():
        return _model([helper.make_node("Reshape", ["x", "shape"], ["y"], name="reshape_bad")],
                      [("x", f32, [2, 3])], [("y", f32, ["a", "b"])],
                      [_tensor("shape", np.array([4, 4], np.int64))])

    @case("gather_index_out_of_range.onnx", ("gather_oob", "Gather"))
    def _():
        return _model([helper.make_node("Shape", ["x"], ["s"], name="shape_of_x"),
                       helper.make_node("Gather", ["s", "i"], ["n"], name="gather_oob", axis=0),
                       helper.make_node("Reshape", ["x", "n"], ["y"], name="reshape_n")],
                      [("x", f32, [2, 3])], [("y", f32, ["a"])],
                      [_tensor("i", np.array([7], np.int64))])

    @case("missing_required_attribute.onnx", ("cast_no_to", "Cast"))
    def _():
        return _unary("Cast", "cast_no_to")

    @case("attribute_wrong_type.onnx", ("softmax_bad_axis", "Softmax"))
    def _():
        model = _unary("Softmax", "softmax_bad_axis")
        model.graph.node[0].attribute.append(helper.make_attribute("axis", "last"))
        return model

    @case("too_many_inputs.onnx", ("relu_three", "Relu"))
    def _():
        return _model([helper.make_node("Relu", ["x", "x", "x"], ["y"], name="relu_three")],
                      [("x", f32, [2, 3])], [("y", f32, [2, 3])])

    @case("input_not_tensor.onnx", ("'x'",))
    def _():
        model = _unary("Relu", "relu_seq")
        model.graph.input[0].type.CopyFrom(helper.make_sequence_type_proto(
            helper.make_tensor_type_proto(f32, [2, 3])))
        return model

    @case("control_flow_subgraph.onnx", ("if_node",))
    def _():
        branch = helper.make_graph([helper.make_node("Identity", ["x"], ["t"])], "branch", [],
                                   [_vi("t", f32, [2, 3])])
        return _model([helper.make_node("If", ["cond"], ["y"], name="if_node",
                                        then_branch=branch, else_branch=branch)],
                      [("x", f32, [2, 3]), ("cond", TensorProto.BOOL, [])],
                      [("y", f32, [2, 3])])

    @case("string_input.onnx", ("'x'", "STRING"))
    def _():
        return _unary("Identity", "identity_str", dtype=TensorProto.STRING)

    return cases


def _all_cases() -> list[tuple[Case, bytes]]:
    built = [(Case(name, fragments), data) for name, (data, fragments)
             in _binary_cases(_valid_model().SerializeToString()).items()]
    built += [(Case(name, fragments), model.SerializeToString()) for name, (model, fragments)
              in _model_cases().items()]
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
    for written in write_corpus(sys.argv[1] if len(sys.argv) > 1 else "malformed_models"):
        print(written.file)
