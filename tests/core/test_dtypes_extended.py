"""Element types beyond numpy's own: bfloat16, the float8 formats, float4e2m1, float8e8m0,
4- and 2-bit integers and strings. Their mapping to ONNX, import as inputs, outputs,
initializers and Constant values, Cast/CastLike, QuantizeLinear/DequantizeLinear with them,
BatchNormalization's training outputs and artifacts; against onnxruntime where it computes
them, against the ONNX specification's tables where it does not."""

from __future__ import annotations

import io

import ml_dtypes
import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto as T
from onnx import helper, numpy_helper

import byoc
from byoc import artifact
from byoc.core import dtypes
from byoc.core.importer import import_model
from byoc.core.integer_layers import plan_integer_groups
from byoc.errors import ByocError
from byoc.testing import compile_reference

NEW_TYPES = [T.BFLOAT16, T.FLOAT8E4M3FN, T.FLOAT8E4M3FNUZ, T.FLOAT8E5M2, T.FLOAT8E5M2FNUZ,
             T.FLOAT8E8M0, T.FLOAT4E2M1, T.INT4, T.UINT4, T.INT2, T.UINT2, T.STRING]
NUMERIC_NEW_TYPES = [t for t in NEW_TYPES if t != T.STRING]
FLOAT8 = [T.FLOAT8E4M3FN, T.FLOAT8E4M3FNUZ, T.FLOAT8E5M2, T.FLOAT8E5M2FNUZ]
SOURCES = {T.FLOAT: np.float32, T.FLOAT16: np.float16, T.DOUBLE: np.float64}
# Values that reach every rounding and range case of the narrow types.
SPECIALS = [0.3, -0.3, 1.0, 7.6, -9.5, 0.375, 1000.0, -1000.0, 1e6, -1e6, 1e-7, -1e-7, 0.0,
            -0.0, np.inf, -np.inf, np.nan, 240.0, 448.0, 464.0, 57344.0]


def name_of(onnx_type: int) -> str:
    return dtypes.onnx_type_name(onnx_type)


def model_of(nodes, inputs, outputs, initializers=(), opset=25) -> onnx.ModelProto:
    """``inputs``/``outputs`` are (name, ONNX type, shape); ``initializers`` TensorProtos."""
    graph = helper.make_graph(
        nodes, "dtypes", [helper.make_tensor_value_info(n, t, s) for n, t, s in inputs],
        [helper.make_tensor_value_info(n, t, s) for n, t, s in outputs],
        initializer=list(initializers))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 11
    onnx.checker.check_model(model)
    return model


def run_onnxruntime(model: onnx.ModelProto, feeds: dict) -> dict[str, np.ndarray]:
    session = ort.InferenceSession(model.SerializeToString(),
                                   providers=["CPUExecutionProvider"])
    names = [o.name for o in model.graph.output]
    return dict(zip(names, session.run(None, feeds)))


def sample(dtype: np.dtype, shape=(2, 3)) -> np.ndarray:
    """Distinct values of ``dtype`` (strings included)."""
    count = int(np.prod(shape))
    if dtype == dtypes.STRING:
        values = np.empty(count, object)
        values[:] = [f"s{i}" * i for i in range(count)]
        return values.reshape(shape)
    base = np.arange(count, dtype=np.float32) - count // 2
    if dtypes.is_float(dtype):
        base = base / 2
    if dtype == dtypes.FLOAT8E8M0:
        base = 2.0 ** base
    low, high = dtypes.integer_range(dtype) if dtypes.is_integer(dtype) else (-np.inf, np.inf)
    return np.clip(base, low, high).astype(dtype).reshape(shape)


def same_bits(a: np.ndarray, b: np.ndarray) -> bool:
    if a.dtype != b.dtype or a.shape != b.shape:
        return False
    if a.dtype == dtypes.STRING:
        return a.tolist() == b.tolist()
    return a.tobytes() == b.tobytes()


def same_floats(a: np.ndarray, b: np.ndarray) -> bool:
    """Equal values, NaN equal to NaN, -0 different from +0."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return bool(np.all((a == b) & (np.signbit(a) == np.signbit(b))
                       | (np.isnan(a) & np.isnan(b))))


# -- the dtype mapping ----------------------------------------------------------------------

@pytest.mark.parametrize("onnx_type", NEW_TYPES, ids=name_of)
def test_each_type_maps_to_the_numpy_dtype_onnx_uses(onnx_type):
    dtype = dtypes.to_numpy(onnx_type)
    assert dtype == np.dtype(helper.tensor_dtype_to_np_dtype(onnx_type))
    assert dtypes.to_onnx(dtype) == onnx_type
    assert dtypes.from_name(dtype.name) == dtype


def test_float_and_integer_predicates_know_the_ml_dtypes_types():
    assert all(dtypes.is_float(t) for t in (ml_dtypes.bfloat16, ml_dtypes.float8_e5m2,
                                            ml_dtypes.float4_e2m1fn, np.float16))
    assert all(dtypes.is_integer(t) for t in (ml_dtypes.int4, ml_dtypes.uint2, np.int64))
    assert not any(dtypes.is_float(t) or dtypes.is_integer(t)
                   for t in (np.bool_, dtypes.STRING))
    assert dtypes.integer_range(ml_dtypes.int4) == (-8, 7)
    assert dtypes.integer_range(ml_dtypes.uint2) == (0, 3)


# -- import ---------------------------------------------------------------------------------

@pytest.mark.parametrize("onnx_type", NEW_TYPES, ids=name_of)
def test_inputs_outputs_initializers_and_constants_of_each_type_import_exactly(onnx_type):
    dtype = dtypes.to_numpy(onnx_type)
    fed, held, constant = sample(dtype), sample(dtype, (3,)), sample(dtype, (5,))[::-1].copy()
    nodes = [helper.make_node("Identity", ["x"], ["x_out"]),
             helper.make_node("Identity", ["held"], ["held_out"]),
             helper.make_node("Constant", [], ["constant_out"],
                              value=numpy_helper.from_array(constant, "constant"))]
    model = model_of(nodes, [("x", onnx_type, [2, 3])],
                     [("x_out", onnx_type, [2, 3]), ("held_out", onnx_type, [3]),
                      ("constant_out", onnx_type, [5])],
                     [numpy_helper.from_array(held, "held")])
    got = compile_reference(model).run({"x": fed})
    assert same_bits(got["x_out"], fed)
    assert same_bits(got["held_out"], held)
    assert same_bits(got["constant_out"], constant)


@pytest.mark.parametrize("onnx_type", [T.INT4, T.UINT4, T.INT2, T.UINT2], ids=name_of)
def test_packed_initializers_in_int32_data_import(onnx_type):
    """4- and 2-bit values written by helper.make_tensor without raw_data share an
    int32_data entry; an odd count leaves the last entry half used."""
    dtype = dtypes.to_numpy(onnx_type)
    values = sample(dtype, (5,))
    tensor = helper.make_tensor("held", onnx_type, [5], values.astype(np.int32).tolist())
    assert not tensor.raw_data and len(tensor.int32_data) < 5
    model = model_of([helper.make_node("Identity", ["held"], ["y"])], [], [("y", onnx_type, [5])],
                     [tensor])
    assert same_bits(compile_reference(model).run({})["y"], values)


# -- Cast and CastLike ----------------------------------------------------------------------

def cast_round_trip(source: int, target: int, values, saturate: int | None):
    """A model casting ``values`` (of ONNX type ``source``) to ``target`` and back to FLOAT,
    so onnxruntime's Python API, which cannot return every type, can be compared."""
    attrs = {} if saturate is None else {"saturate": saturate}
    model = model_of([helper.make_node("Cast", ["x"], ["narrow"], to=target, **attrs),
                      helper.make_node("Cast", ["narrow"], ["y"], to=T.FLOAT)],
                     [("x", source, [len(values)])], [("y", T.FLOAT, [len(values)])])
    return model, {"x": np.array(values, SOURCES[source])}


@pytest.mark.parametrize("saturate", [1, 0])
@pytest.mark.parametrize("source", list(SOURCES), ids=name_of)
@pytest.mark.parametrize("target", FLOAT8, ids=name_of)
def test_cast_to_float8_rounds_and_saturates_as_onnxruntime(target, source, saturate):
    with np.errstate(over="ignore"):
        model, feeds = cast_round_trip(source, target, SPECIALS, saturate)
    expected = run_onnxruntime(model, feeds)["y"]
    assert same_floats(compile_reference(model).run(feeds)["y"], expected)


@pytest.mark.parametrize("target, saturated, overflowed", [
    (T.FLOAT8E4M3FN, 448.0, np.nan), (T.FLOAT8E4M3FNUZ, 240.0, np.nan),
    (T.FLOAT8E5M2, 57344.0, np.inf), (T.FLOAT8E5M2FNUZ, 57344.0, np.nan)], ids=name_of)
def test_float8_out_of_range_follows_the_specification_table(target, saturated, overflowed):
    # 61440 is half-way between float8e5m2's largest value and the next power of two: it
    # rounds to even, beyond the range (onnxruntime makes it NaN rather than infinity).
    values = [np.inf, 1e9, 61440.0, -np.inf, -1e9, np.nan, -0.0]
    fnuz = target in (T.FLOAT8E4M3FNUZ, T.FLOAT8E5M2FNUZ)
    for saturate, big in ((1, saturated), (0, overflowed)):
        model, feeds = cast_round_trip(T.FLOAT, target, values, saturate)
        got = compile_reference(model).run(feeds)["y"]
        assert same_floats(got, [big, big, big, -big, -big, np.nan, 0.0 if fnuz else -0.0])


@pytest.mark.parametrize("source", list(SOURCES), ids=name_of)
def test_cast_to_bfloat16_rounds_to_nearest_even_as_onnxruntime(source):
    rng = np.random.default_rng(0)
    values = list(rng.standard_normal(64) * 100) + [np.inf, -np.inf, np.nan, 1e6, -0.0]
    with np.errstate(over="ignore"):
        model, feeds = cast_round_trip(source, T.BFLOAT16, values, None)
    assert same_floats(compile_reference(model).run(feeds)["y"],
                       run_onnxruntime(model, feeds)["y"])


@pytest.mark.parametrize("target", [T.INT4, T.UINT4, T.INT2, T.UINT2], ids=name_of)
def test_narrow_integers_take_whole_numbers_in_range_as_onnxruntime(target):
    low, high = dtypes.integer_range(dtypes.to_numpy(target))
    model, feeds = cast_round_trip(T.FLOAT, target, list(range(low, high + 1)), None)
    assert same_floats(compile_reference(model).run(feeds)["y"],
                       run_onnxruntime(model, feeds)["y"])


def test_integers_cast_to_int4_keep_their_low_bits():
    model = model_of([helper.make_node("Cast", ["x"], ["narrow"], to=T.INT4),
                      helper.make_node("Cast", ["narrow"], ["y"], to=T.INT32)],
                     [("x", T.INT32, [5])], [("y", T.INT32, [5])])
    x = np.array([7, 8, -9, 200, -56], np.int32)
    expected = (x + 8) % 16 - 8  # two's complement in 4 bits
    np.testing.assert_array_equal(compile_reference(model).run({"x": x})["y"], expected)
    np.testing.assert_array_equal(run_onnxruntime(model, {"x": x})["y"], expected)


@pytest.mark.parametrize("round_mode, expected", [
    ("up", [0.5, 0.5, 0.5, 2.0 ** 20, 8.0]),
    ("down", [0.25, 0.25, 0.25, 2.0 ** 19, 4.0]),
    ("nearest", [0.25, 0.5, 0.25, 2.0 ** 20, 8.0])])
def test_cast_to_float8e8m0_rounds_as_round_mode_says(round_mode, expected):
    values = [0.3, 0.375, 0.374, 1e6, 7.6]  # 0.375 is half-way between 0.25 and 0.5
    model = model_of([helper.make_node("Cast", ["x"], ["e8m0"], to=T.FLOAT8E8M0,
                                       round_mode=round_mode),
                      helper.make_node("Cast", ["e8m0"], ["y"], to=T.FLOAT)],
                     [("x", T.FLOAT, [5])], [("y", T.FLOAT, [5])])
    feeds = {"x": np.array(values, np.float32)}
    got = compile_reference(model).run(feeds)["y"]
    assert same_floats(got, expected)
    if round_mode == "up":
        assert same_floats(got, run_onnxruntime(model, feeds)["y"])


@pytest.mark.parametrize("saturate", [1, 0])
def test_float8e8m0_out_of_range_saturates_or_is_nan_as_onnxruntime(saturate):
    smallest, largest = 2.0 ** -127, 2.0 ** 127
    model, feeds = cast_round_trip(T.FLOAT, T.FLOAT8E8M0,
                                   [0.0, -0.0, -3.0, np.inf, 1e-45, np.nan], saturate)
    got = compile_reference(model).run(feeds)["y"]
    expected = ([smallest, smallest, smallest, largest, smallest, np.nan] if saturate
                else [np.nan] * 6)
    assert same_floats(got, expected)
    assert same_floats(got, run_onnxruntime(model, feeds)["y"])


def test_float4e2m1_casts_as_ml_dtypes_converts():
    values = np.array([0.25, 0.3, 1.25, 2.5, 5.0, 7.0, -3.5, -100.0, 0.0], np.float32)
    model, feeds = cast_round_trip(T.FLOAT, T.FLOAT4E2M1, values, None)
    expected = values.astype(ml_dtypes.float4_e2m1fn).astype(np.float32)
    assert same_floats(compile_reference(model).run(feeds)["y"], expected)
    assert same_floats(expected, [0.0, 0.5, 1.0, 2.0, 4.0, 6.0, -4.0, -6.0, 0.0])


@pytest.mark.parametrize("source", [T.FLOAT, T.DOUBLE, T.FLOAT16, T.INT64, T.BOOL],
                         ids=name_of)
def test_numbers_print_as_onnxruntime_prints_them(source):
    values = {T.BOOL: [True, False, True],
              T.INT64: [-5, 2 ** 62, 0]}.get(source, [0.1, 1e-5, 1e20, 3.0, np.nan, np.inf,
                                                      -np.inf, -0.0, 314.15926, 1 / 3])
    dtype = dtypes.to_numpy(source)
    model = model_of([helper.make_node("Cast", ["x"], ["y"], to=T.STRING)],
                     [("x", source, [len(values)])], [("y", T.STRING, [len(values)])])
    feeds = {"x": np.array(values, dtype)}
    got = compile_reference(model).run(feeds)["y"]
    assert got.dtype == dtypes.STRING
    assert got.tolist() == run_onnxruntime(model, feeds)["y"].tolist()


def test_strings_parse_as_the_specification_says():
    texts = ["3.14", "1e-5", "1E8", " -2.5 ", "+INF", "inf", "-Inf", "NaN", "100", ".5"]
    strings = np.array(texts, object)
    model = model_of([helper.make_node("Cast", ["s"], ["f"], to=T.FLOAT),
                      helper.make_node("Cast", ["s"], ["d"], to=T.DOUBLE)],
                     [("s", T.STRING, [len(texts)])],
                     [("f", T.FLOAT, [len(texts)]), ("d", T.DOUBLE, [len(texts)])])
    got = compile_reference(model).run({"s": strings})
    expected = run_onnxruntime(model, {"s": strings})
    assert same_floats(got["f"], expected["f"]) and got["f"].dtype == np.float32
    assert same_floats(got["d"], expected["d"])
    assert same_floats(got["d"], [3.14, 1e-5, 1e8, -2.5, np.inf, np.inf, -np.inf, np.nan,
                                  100, 0.5])


def test_strings_parse_to_integers_exactly_and_truncate_decimals():
    texts = ["9007199254740993", "-12", "100.7", "7"]
    model = model_of([helper.make_node("Cast", ["s"], ["i"], to=T.INT64),
                      helper.make_node("Cast", ["s"], ["n"], to=T.INT4)],
                     [("s", T.STRING, [4])], [("i", T.INT64, [4]), ("n", T.INT4, [4])])
    got = compile_reference(model).run({"s": np.array(texts, object)})
    np.testing.assert_array_equal(got["i"], [9007199254740993, -12, 100, 7])
    np.testing.assert_array_equal(got["n"].astype(np.int8), [1, 4, 4, 7])  # low 4 bits


def test_a_string_that_spells_no_number_names_itself():
    model = model_of([helper.make_node("Cast", ["s"], ["f"], to=T.FLOAT, name="parse")],
                     [("s", T.STRING, [2])], [("f", T.FLOAT, [2])])
    with pytest.raises(ByocError, match=r"parse.*'hello'.*decimal numbers"):
        compile_reference(model).run({"s": np.array(["1", "hello"], object)})


@pytest.mark.parametrize("target", [T.BFLOAT16, T.FLOAT8E4M3FN, T.FLOAT8E5M2, T.INT4],
                         ids=name_of)
def test_castlike_casts_to_the_second_inputs_type_as_onnxruntime(target):
    like = numpy_helper.from_array(np.zeros(1, dtypes.to_numpy(target)), "like")
    model = model_of([helper.make_node("CastLike", ["x", "like"], ["narrow"]),
                      helper.make_node("Cast", ["narrow"], ["y"], to=T.FLOAT)],
                     [("x", T.FLOAT, [6])], [("y", T.FLOAT, [6])], [like])
    # int4 takes values in its range only: out of range ONNX leaves undefined.
    big = 1000.0 if target != T.INT4 else 7.0
    feeds = {"x": np.array([0.3, -2.0, 5.0, big, -7.0, 3.0], np.float32)}
    assert same_floats(compile_reference(model).run(feeds)["y"],
                       run_onnxruntime(model, feeds)["y"])


# -- QuantizeLinear and DequantizeLinear ----------------------------------------------------

def quantize_model(zero_type: int, x_shape, scale, zero, axis=None, block_size=None,
                   output_dtype=None, saturate=None, opset=21):
    """x -> QuantizeLinear -> DequantizeLinear -> y (float), with constant parameters."""
    attrs = {k: v for k, v in (("axis", axis), ("block_size", block_size),
                               ("saturate", saturate)) if v is not None}
    q_attrs = dict(attrs, **({"output_dtype": output_dtype} if output_dtype else {}))
    dq_attrs = {k: v for k, v in attrs.items() if k != "saturate"}
    inputs = ["x", "scale", "zero"] if zero is not None else ["x", "scale"]
    initializers = [numpy_helper.from_array(np.asarray(scale, np.float32), "scale")]
    if zero is not None:
        initializers.append(numpy_helper.from_array(
            np.asarray(zero).astype(dtypes.to_numpy(zero_type)), "zero"))
    nodes = [helper.make_node("QuantizeLinear", inputs, ["q"], **q_attrs),
             helper.make_node("DequantizeLinear", ["q"] + inputs[1:], ["y"], **dq_attrs)]
    return model_of(nodes, [("x", T.FLOAT, list(x_shape))], [("y", T.FLOAT, list(x_shape))],
                    initializers, opset=opset)


QUANTIZE_FORMS = {
    "per_tensor_int16": dict(zero_type=T.INT16, x_shape=[2, 6], scale=0.01, zero=-300),
    "per_tensor_uint16": dict(zero_type=T.UINT16, x_shape=[2, 6], scale=0.01, zero=30000),
    "per_axis_negative_axis_int4": dict(zero_type=T.INT4, x_shape=[2, 3, 4],
                                        scale=[0.5, 0.25, 1.0], zero=[1, -2, 0], axis=-2),
    "per_axis_uint4": dict(zero_type=T.UINT4, x_shape=[3, 4], scale=[0.5, 0.25, 1.0, 2.0],
                           zero=[1, 2, 8, 15], axis=1),
    "blocked_negative_axis_int4": dict(zero_type=T.INT4, x_shape=[2, 7],
                                       scale=[[0.5, 0.25], [1.0, 0.125]],
                                       zero=[[1, -1], [0, 3]], axis=-1, block_size=4),
    "blocked_axis0_uint8": dict(zero_type=T.UINT8, x_shape=[5, 2],
                                scale=[[0.1, 0.2], [0.3, 0.4]], zero=[[128, 100], [0, 255]],
                                axis=0, block_size=3),
    "blocked_int8_no_zero_point": dict(zero_type=T.INT8, x_shape=[2, 4], scale=[[0.1, 0.2]] * 2,
                                       zero=None, axis=1, block_size=2,
                                       output_dtype=T.INT8),
    "float8_e4m3fn_saturating": dict(zero_type=T.FLOAT8E4M3FN, x_shape=[2, 6], scale=0.5,
                                     zero=0.0),
    "float8_e5m2_not_saturating": dict(zero_type=T.FLOAT8E5M2, x_shape=[2, 6], scale=0.5,
                                       zero=0.0, saturate=0),
    "float8_e4m3fn_per_axis": dict(zero_type=T.FLOAT8E4M3FN, x_shape=[2, 6], scale=[0.5, 2.0],
                                   zero=[0.0, 0.0], axis=0),
}


@pytest.mark.parametrize("form", list(QUANTIZE_FORMS))
def test_quantize_dequantize_forms_match_onnxruntime(form):
    spec = QUANTIZE_FORMS[form]
    model = quantize_model(**spec)
    rng = np.random.default_rng(1)
    x = (rng.standard_normal(spec["x_shape"]) * 4).astype(np.float32)
    x.flat[:4] = [1e6, -1e6, 0.75, -0.25]  # saturation and half-way cases
    got = compile_reference(model).run({"x": x})["y"]
    assert same_floats(got, run_onnxruntime(model, {"x": x})["y"])


def test_float8_quantization_without_saturate_overflows_to_infinity():
    model = quantize_model(T.FLOAT8E5M2, [3], scale=1.0, zero=0.0, saturate=0)
    got = compile_reference(model).run({"x": np.array([1e9, -1e9, 3.0], np.float32)})["y"]
    assert same_floats(got, [np.inf, -np.inf, 3.0])


def test_int2_quantization_saturates_to_its_range():
    model = quantize_model(T.INT2, [4], scale=1.0, zero=0, opset=25)
    got = compile_reference(model).run({"x": np.array([5.0, -5.0, 0.5, 1.5], np.float32)})
    # 5 and -5 saturate; 0.5 rounds to even (0); 1.5 rounds to 2, which saturates.
    np.testing.assert_array_equal(got["y"], [1.0, -2.0, 0.0, 1.0])


def test_dequantize_with_a_bfloat16_scale_outputs_bfloat16():
    scale = numpy_helper.from_array(np.array(0.5, ml_dtypes.bfloat16), "scale")
    model = model_of([helper.make_node("DequantizeLinear", ["q", "scale"], ["y"])],
                     [("q", T.INT4, [4])], [("y", T.BFLOAT16, [4])], [scale], opset=21)
    got = compile_reference(model).run({"q": np.array([-8, -1, 0, 7], ml_dtypes.int4)})["y"]
    assert got.dtype == ml_dtypes.bfloat16
    assert same_floats(got.astype(np.float32), [-4.0, -0.5, 0.0, 3.5])


def test_dequantize_with_a_float8e8m0_scale_and_output_dtype():
    scale = numpy_helper.from_array(np.array([0.25, 4.0], ml_dtypes.float8_e8m0fnu), "scale")
    model = model_of([helper.make_node("DequantizeLinear", ["q", "scale"], ["y"], axis=0,
                                       output_dtype=T.FLOAT)],
                     [("q", T.FLOAT4E2M1, [2, 2])], [("y", T.FLOAT, [2, 2])], [scale])
    q = np.array([[1.5, -6.0], [0.5, 3.0]], ml_dtypes.float4_e2m1fn)
    got = compile_reference(model).run({"q": q})["y"]
    assert same_floats(got, [[0.375, -1.5], [2.0, 12.0]])


def qdq_matmul_model(weight_zero_type: int, block_size: int | None) -> onnx.ModelProto:
    """uint8 x -> DequantizeLinear -> MatMul with a DequantizeLinear'd constant weight (of
    ``weight_zero_type``, blocked when ``block_size``) -> QuantizeLinear -> Dequantize."""
    rng = np.random.default_rng(2)
    weight = rng.integers(-7, 8, (8, 4)).astype(dtypes.to_numpy(weight_zero_type))
    if block_size:
        # Blocks along the output channels: the axis a per-channel scale would have.
        w_scale = rng.uniform(0.01, 0.05, (8, 4 // block_size)).astype(np.float32)
        w_zero = np.zeros(w_scale.shape, weight.dtype)
        w_attrs = {"axis": 1, "block_size": block_size}
    else:
        w_scale = rng.uniform(0.01, 0.05, 4).astype(np.float32)
        w_zero = np.zeros(4, weight.dtype)
        w_attrs = {"axis": 1}
    initializers = {"xs": np.float32(0.05), "xz": np.uint8(128), "w": weight, "ws": w_scale,
                    "wz": w_zero, "ys": np.float32(0.1), "yz": np.uint8(120)}
    nodes = [helper.make_node("DequantizeLinear", ["x", "xs", "xz"], ["xd"]),
             helper.make_node("DequantizeLinear", ["w", "ws", "wz"], ["wd"], **w_attrs),
             helper.make_node("MatMul", ["xd", "wd"], ["acc"]),
             helper.make_node("QuantizeLinear", ["acc", "ys", "yz"], ["q"]),
             helper.make_node("DequantizeLinear", ["q", "ys", "yz"], ["y"])]
    return model_of(nodes, [("x", T.UINT8, [3, 8])], [("y", T.FLOAT, [3, 4])],
                    [numpy_helper.from_array(np.asarray(a), n) for n, a in initializers.items()],
                    opset=21)


@pytest.mark.parametrize("weight_type, block_size", [(T.INT8, 4), (T.INT4, None), (T.INT4, 2)],
                         ids=["blocked_int8", "per_axis_int4", "blocked_int4"])
def test_groups_the_integer_path_does_not_handle_keep_float_semantics(weight_type, block_size):
    model = qdq_matmul_model(weight_type, block_size)
    compiled = compile_reference(model)
    assert not plan_integer_groups(import_model(model))
    x = np.random.default_rng(3).integers(0, 256, (3, 8)).astype(np.uint8)
    assert same_floats(compiled.run({"x": x})["y"], run_onnxruntime(model, {"x": x})["y"])


def test_int8_per_channel_groups_still_run_as_integer_operations():
    assert plan_integer_groups(import_model(qdq_matmul_model(T.INT8, None)))


# -- BatchNormalization in training mode ----------------------------------------------------

@pytest.mark.parametrize("opset, outputs, attrs", [
    (15, ["y", "running_mean", "running_var"], {"training_mode": 1}),
    (14, ["y", "running_mean", "running_var"], {"training_mode": 1}),
    (9, ["y", "mean", "var", "saved_mean", "saved_inv_std"], {})],
    ids=["opset15", "opset14", "opset9_statistics_outputs"])
def test_batchnorm_training_outputs_match_onnxruntime(opset, outputs, attrs):
    rng = np.random.default_rng(4)
    x = rng.standard_normal((2, 3, 4, 5)).astype(np.float32) * 3 + 1
    params = {"scale": rng.standard_normal(3), "bias": rng.standard_normal(3),
              "mean": rng.standard_normal(3), "var": rng.uniform(0.5, 2, 3)}
    node = helper.make_node("BatchNormalization", ["x", "s", "b", "m", "v"], outputs, momentum=0.8,
                            epsilon=1e-3, **attrs)
    model = model_of([node], [("x", T.FLOAT, [2, 3, 4, 5])],
                     [(outputs[0], T.FLOAT, [2, 3, 4, 5])] + [(o, T.FLOAT, [3])
                                                              for o in outputs[1:]],
                     [numpy_helper.from_array(np.asarray(v, np.float32), n)
                      for n, v in zip("sbmv", params.values())], opset=opset)
    got = compile_reference(model).run({"x": x})
    expected = run_onnxruntime(model, {"x": x})
    for name in outputs:
        np.testing.assert_allclose(got[name], expected[name], rtol=1e-5, atol=1e-6,
                                   err_msg=name)
    np.testing.assert_allclose(got[outputs[1]], params["mean"] * 0.8
                               + x.mean(axis=(0, 2, 3)) * 0.2, rtol=1e-5)


def test_batchnorm_in_inference_mode_uses_the_given_statistics():
    x = np.arange(12, dtype=np.float32).reshape(1, 3, 2, 2)
    params = {"scale": [1, 2, 3], "bias": [0, 0, 1], "mean": [1, 1, 1], "var": [4, 4, 4]}
    node = helper.make_node("BatchNormalization", ["x", *params], ["y"], epsilon=0.0)
    model = model_of([node], [("x", T.FLOAT, [1, 3, 2, 2])], [("y", T.FLOAT, [1, 3, 2, 2])],
                     [numpy_helper.from_array(np.asarray(v, np.float32), n)
                      for n, v in params.items()], opset=15)
    expected = (x - 1) / 2 * np.array([1, 2, 3], np.float32).reshape(3, 1, 1) \
        + np.array([0, 0, 1], np.float32).reshape(3, 1, 1)
    np.testing.assert_allclose(compile_reference(model).run({"x": x})["y"], expected)


# -- artifacts ------------------------------------------------------------------------------

@pytest.mark.parametrize("onnx_type", NEW_TYPES, ids=name_of)
def test_artifacts_keep_values_of_each_type_exactly(tmp_path, onnx_type):
    dtype = dtypes.to_numpy(onnx_type)
    fed, held, fill = sample(dtype, (1, 3)), sample(dtype, (2, 3)), sample(dtype, (3,))[0]
    # The padding value travels in the payload of the partition computing the Pad; the
    # Identity's result is folded into a constant output, stored on its own.
    nodes = [helper.make_node("Pad", ["x", "pads", "fill"], ["padded"]),
             helper.make_node("Identity", ["held"], ["held_out"])]
    model = model_of(nodes, [("x", onnx_type, [1, 3])],
                     [("padded", onnx_type, [3, 3]), ("held_out", onnx_type, [2, 3])],
                     [numpy_helper.from_array(held, "held"),
                      numpy_helper.from_array(np.array(fill, dtype), "fill"),
                      numpy_helper.from_array(np.array([1, 0, 1, 0], np.int64), "pads")])
    byoc.compile(model).save(tmp_path / "model.byoc")
    got = byoc.load(tmp_path / "model.byoc").run({"x": fed})
    assert same_bits(got["padded"], np.concatenate([[[fill] * 3], fed, [[fill] * 3]]))
    assert same_bits(got["held_out"], held)


@pytest.mark.parametrize("array", [
    np.array(["", "a\x00", "\x00b", "naïve ✓", "$", "x$"], object),
    np.empty((0, 2), object),
    np.array([1.5, -0.0, np.nan], ml_dtypes.bfloat16),
    np.array([[-8, 7]], ml_dtypes.int4),
    np.array([0.5, 2.0 ** 100], ml_dtypes.float8_e8m0fnu),
    np.array(3, ml_dtypes.float8_e5m2fnuz)], ids=lambda a: f"{a.dtype.name}{list(a.shape)}")
def test_array_entries_round_trip_bit_for_bit_without_pickle(array):
    data = artifact.array_bytes(array)
    assert np.load(io.BytesIO(data), allow_pickle=False).dtype != object
    assert same_bits(artifact.array_from_bytes(data, "entry"), array)


def test_object_arrays_of_anything_but_strings_are_refused():
    with pytest.raises(ByocError, match="only strings"):
        artifact.array_bytes(np.array([1, "a"], object))
