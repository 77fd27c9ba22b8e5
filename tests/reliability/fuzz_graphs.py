"""Random ONNX graphs and compile settings for the differential fuzz tests.

Two hypothesis strategies build whole models:

- :func:`float_graphs`: float32 DAGs of elementwise ops (with broadcasting), MatMul/Gemm,
  Conv and pooling, data movement (Reshape, Flatten, Transpose, Concat, Slice, Unsqueeze),
  Softmax and reductions. Only smooth ops are drawn: an op such as Floor or Greater turns a
  last-bit float difference into a different result, which would make the float tolerance
  meaningless.
- :func:`qdq_graphs`: int8/uint8 networks in onnxruntime's QDQ form (the shape
  ``byoc.testing.qdq_layer_model`` builds for one layer): Conv, depthwise Conv, Gemm, MatMul,
  Add, pooling and Flatten layers with fused Relu/Clip, joined as chains and diamonds, with
  DequantizeLinear nodes sometimes shared between consumers. These give vta_sim and
  npu_example work.

:func:`fuzz_cases` pairs a model with random compile settings (plugins and their order,
default plugins, minimum partition size, pins). A :class:`FuzzCase` round-trips through a
single ``.onnx`` file: the settings and the input seed sit in the model's metadata, so a saved
failure replays on its own (:func:`save_case`, :func:`load_case`).

Array contents come from a numpy generator seeded by one drawn integer, so hypothesis shrinks
the structure (ops, shapes, attributes) and the settings, not thousands of weights.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import onnx
from hypothesis import strategies as st
from onnx import TensorProto, helper, numpy_helper

OPSET = 17
ACCELERATORS = ("cpu_llvm", "vta_sim", "npu_example")
HOST = "reference"
PLACEMENTS = ("cost", "priority")
METADATA_KEY = "byoc.fuzz"


@dataclass
class FuzzCase:
    """A model and how to compile and feed it."""

    model: onnx.ModelProto
    plugins: tuple[str, ...] = ()
    default_plugins: tuple[str, ...] | None = None
    min_partition_size: int = 1
    pins: dict[str, str] = field(default_factory=dict)
    input_seed: int = 0
    placement: str = "cost"

    def compile_options(self) -> dict:
        return dict(plugins=list(self.plugins), default_plugins=self.default_plugins,
                    min_partition_size=self.min_partition_size, pins=dict(self.pins),
                    placement=self.placement)

    def inputs(self) -> dict[str, np.ndarray]:
        """Float inputs drawn from ``input_seed``: normal values scaled by 2, so QDQ inputs
        use most of the int8 range and saturate now and then."""
        rng = np.random.default_rng(self.input_seed)
        feeds = {}
        for value in self.model.graph.input:
            dims = [d.dim_value for d in value.type.tensor_type.shape.dim]
            feeds[value.name] = (rng.standard_normal(dims) * 2).astype(np.float32)
        return feeds

    def describe(self) -> str:
        ops = [n.op_type for n in self.model.graph.node]
        return (f"{len(ops)} nodes ({', '.join(ops)}); plugins={list(self.plugins)}, "
                f"default_plugins={self.default_plugins}, "
                f"min_partition_size={self.min_partition_size}, pins={self.pins}, "
                f"placement={self.placement}")


def case_bytes(case: FuzzCase) -> bytes:
    """The case as one serialized ONNX model, its settings in the metadata."""
    model = onnx.ModelProto()
    model.CopyFrom(case.model)
    del model.metadata_props[:]
    settings = {"plugins": list(case.plugins),
                "default_plugins": (None if case.default_plugins is None
                                    else list(case.default_plugins)),
                "min_partition_size": case.min_partition_size, "pins": case.pins,
                "input_seed": case.input_seed, "placement": case.placement}
    helper.set_model_props(model, {METADATA_KEY: json.dumps(settings, sort_keys=True)})
    return model.SerializeToString(deterministic=True)


def case_file_name(case: FuzzCase) -> str:
    """``<hash>.onnx``: the first 12 hex digits of the sha256 of the case's bytes."""
    return f"{hashlib.sha256(case_bytes(case)).hexdigest()[:12]}.onnx"


def save_case(case: FuzzCase, folder: Path) -> Path:
    """Write the case to ``folder/<hash>.onnx`` and return the path."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / case_file_name(case)
    path.write_bytes(case_bytes(case))
    return path


def load_case(path: Path) -> FuzzCase:
    model = onnx.load(str(path))
    props = {p.key: p.value for p in model.metadata_props}
    if METADATA_KEY not in props:
        raise ValueError(f"{path}: no {METADATA_KEY!r} metadata; not a saved fuzz case")
    settings = json.loads(props[METADATA_KEY])
    default = settings["default_plugins"]
    return FuzzCase(model, tuple(settings["plugins"]),
                    None if default is None else tuple(default),
                    settings["min_partition_size"], dict(settings["pins"]),
                    settings["input_seed"],
                    # cases saved before placement by cost were found placing by priority
                    settings.get("placement", "priority"))


class _Builder:
    """Nodes, initializers and the static type of every value, as a model grows."""

    def __init__(self, seed: int):
        self.rng = np.random.default_rng(seed)
        self.nodes: list[onnx.NodeProto] = []
        self.inits: dict[str, np.ndarray] = {}
        self.types: dict[str, onnx.TypeProto] = {}
        self.inputs: list[str] = []
        self._count = 0

    def fresh(self, stem: str) -> str:
        self._count += 1
        return f"{stem}{self._count}"

    def input(self, shape: Sequence[int]) -> str:
        name = self.fresh("x")
        self.inputs.append(name)
        self.types[name] = helper.make_tensor_type_proto(TensorProto.FLOAT, list(shape))
        return name

    def const(self, array: np.ndarray, stem: str = "c") -> str:
        name = self.fresh(stem)
        array = np.asarray(array)
        self.inits[name] = array
        self.types[name] = helper.make_tensor_type_proto(
            helper.np_dtype_to_tensor_dtype(array.dtype), list(array.shape))
        return name

    def node(self, op: str, inputs: Sequence[str], **attrs) -> str:
        """Add one node; its output type comes from onnx's own shape inference."""
        output = self.fresh("v")
        node = helper.make_node(op, list(inputs), [output], name=f"n{self._count}_{op}",
                                **attrs)
        known = [i for i in inputs if i]
        data = {i: numpy_helper.from_array(self.inits[i], i) for i in known if i in self.inits}
        inferred = onnx.shape_inference.infer_node_outputs(
            onnx.defs.get_schema(op, OPSET), node, {i: self.types[i] for i in known}, data,
            opset_imports=[helper.make_opsetid("", OPSET)])
        self.types[output] = inferred[output]
        self.nodes.append(node)
        return output

    def shape(self, value: str) -> tuple[int, ...]:
        return tuple(d.dim_value for d in self.types[value].tensor_type.shape.dim)

    def elem_type(self, value: str) -> int:
        return self.types[value].tensor_type.elem_type

    def model(self, outputs: Sequence[str]) -> onnx.ModelProto:
        graph = helper.make_graph(
            self.nodes, "fuzz",
            [helper.make_value_info(n, self.types[n]) for n in self.inputs],
            [helper.make_value_info(n, self.types[n]) for n in outputs],
            initializer=[numpy_helper.from_array(a, n) for n, a in self.inits.items()])
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
        model.ir_version = 8
        onnx.checker.check_model(model, full_check=True)
        return model


def _pick_outputs(draw, builder: _Builder, last: str, values: list[str]) -> list[str]:
    """The last value, and now and then an intermediate one (a partition boundary that is
    also a graph output)."""
    extra = [v for v in values if v != last and v not in builder.inputs]
    chosen = draw(st.lists(st.sampled_from(extra), unique=True, max_size=2)) if extra else []
    return [last, *chosen]


# --- float graphs ------------------------------------------------------------------------

UNARY = ("Relu", "Abs", "Neg", "Sigmoid", "Tanh", "Softsign", "Sin", "Cos", "Erf", "Elu",
         "LeakyRelu", "HardSigmoid", "Softplus", "Identity")
BINARY = ("Add", "Sub", "Mul", "Max", "Min")


def _broadcast_shape(draw, shape: tuple[int, ...]) -> tuple[int, ...]:
    """A shape that broadcasts against ``shape`` without changing it: a suffix of its dims,
    some of them 1."""
    rank = draw(st.integers(0, len(shape)))
    return tuple(draw(st.sampled_from((d, 1))) for d in shape[len(shape) - rank:])


def _float_step(draw, b: _Builder, values: list[str]) -> str:
    x = draw(st.sampled_from(values[-3:]) | st.sampled_from(values))
    shape = b.shape(x)
    rank = len(shape)
    kinds = ["unary", "binary", "div", "concat", "slice", "transpose", "reshape", "softmax",
             "reduce", "unsqueeze"]
    if rank >= 2:
        kinds += ["matmul", "flatten"]
    if rank == 2:
        kinds += ["gemm"]
    if rank == 4:
        kinds += ["conv", "pool", "global_pool"]
    kind = draw(st.sampled_from(kinds))
    rng = b.rng
    if kind == "unary":
        op = draw(st.sampled_from(UNARY))
        attrs = {"alpha": 0.1} if op in ("LeakyRelu", "Elu") else {}
        return b.node(op, [x], **attrs)
    if kind == "binary":
        op = draw(st.sampled_from(BINARY))
        partners = [v for v in values if len(b.shape(v)) <= rank
                    and all(p in (1, s) for p, s in zip(b.shape(v)[::-1], shape[::-1]))]
        if partners and draw(st.booleans()):
            other = draw(st.sampled_from(partners))
        else:
            other = b.const(rng.standard_normal(_broadcast_shape(draw, shape))
                            .astype(np.float32))
        operands = [x, other] if draw(st.booleans()) else [other, x]
        return b.node(op, operands)
    if kind == "div":
        divisor = rng.uniform(0.5, 2.0, _broadcast_shape(draw, shape)) * rng.choice([-1, 1])
        return b.node("Div", [x, b.const(divisor.astype(np.float32))])
    if kind == "concat":
        axis = draw(st.integers(-rank, rank - 1))
        same = [v for v in values if b.shape(v) == shape]
        if draw(st.booleans()):
            other = draw(st.sampled_from(same))
        else:
            extra = list(shape)
            extra[axis] = draw(st.integers(1, 3))
            other = b.const(rng.standard_normal(extra).astype(np.float32))
        return b.node("Concat", [x, other] if draw(st.booleans()) else [other, x], axis=axis)
    if kind == "slice":
        axis = draw(st.integers(0, rank - 1))
        size = shape[axis]
        start = draw(st.integers(0, size - 1))
        end = draw(st.integers(start + 1, size))
        step = draw(st.sampled_from((1, 1, 2)))
        ends = [end] if step > 0 else [start]
        return b.node("Slice", [x, b.const(np.array([start], np.int64)),
                                b.const(np.array(ends, np.int64)),
                                b.const(np.array([axis], np.int64)),
                                b.const(np.array([step], np.int64))])
    if kind == "transpose":
        return b.node("Transpose", [x], perm=list(draw(st.permutations(range(rank)))))
    if kind == "reshape":
        split = draw(st.integers(0, rank))
        target = [math.prod(shape[:split]), math.prod(shape[split:])]
        if draw(st.booleans()):
            target[draw(st.integers(0, 1))] = -1
        return b.node("Reshape", [x, b.const(np.array(target, np.int64))])
    if kind == "flatten":
        return b.node("Flatten", [x], axis=draw(st.integers(0, rank)))
    if kind == "unsqueeze":
        axis = draw(st.integers(0, rank))
        return b.node("Unsqueeze", [x, b.const(np.array([axis], np.int64))])
    if kind == "softmax":
        op = draw(st.sampled_from(("Softmax", "LogSoftmax")))
        return b.node(op, [x], axis=draw(st.integers(-rank, rank - 1)))
    if kind == "reduce":
        op = draw(st.sampled_from(("ReduceSum", "ReduceMean", "ReduceMax", "ReduceMin")))
        axes = sorted(draw(st.sets(st.integers(0, rank - 1), min_size=1, max_size=rank)))
        keepdims = draw(st.sampled_from((0, 1)))
        if keepdims == 0 and len(axes) == rank:
            keepdims = 1  # a scalar would end the graph's interesting part
        if op == "ReduceSum":
            return b.node(op, [x, b.const(np.array(axes, np.int64))], keepdims=keepdims)
        return b.node(op, [x], axes=axes, keepdims=keepdims)
    if kind == "matmul":
        n = draw(st.integers(1, 6))
        weight = rng.standard_normal((shape[-1], n)).astype(np.float32)
        return b.node("MatMul", [x, b.const(weight)])
    if kind == "gemm":
        trans_a, trans_b = draw(st.booleans()), draw(st.booleans())
        m, k = shape[::-1] if trans_a else shape
        n = draw(st.integers(1, 6))
        weight = rng.standard_normal((n, k) if trans_b else (k, n)).astype(np.float32)
        inputs = [x, b.const(weight)]
        bias_shape = draw(st.sampled_from((None, (), (n,), (1, n), (m, 1), (m, n))))
        if bias_shape is not None:
            inputs.append(b.const(rng.standard_normal(bias_shape).astype(np.float32)))
        alpha = draw(st.sampled_from((1.0, 0.5)))
        return b.node("Gemm", inputs, transA=int(trans_a), transB=int(trans_b), alpha=alpha,
                      beta=draw(st.sampled_from((1.0, 2.0))))
    if kind == "conv":
        channels, height, width = shape[1:]
        kernel = draw(st.integers(1, min(3, height, width)))
        pad = draw(st.integers(0, kernel - 1))
        depthwise = channels > 1 and draw(st.booleans())
        filters = channels * draw(st.integers(1, 2)) if depthwise else draw(st.integers(1, 6))
        group = channels if depthwise else 1
        weight = rng.standard_normal((filters, channels // group, kernel, kernel))
        inputs = [x, b.const(weight.astype(np.float32) / kernel)]
        if draw(st.booleans()):
            inputs.append(b.const(rng.standard_normal(filters).astype(np.float32)))
        return b.node("Conv", inputs, kernel_shape=[kernel, kernel], pads=[pad] * 4,
                      strides=[draw(st.integers(1, 2))] * 2, group=group)
    if kind == "pool":
        height, width = shape[2:]
        kernel = draw(st.integers(1, min(3, height, width)))
        pad = draw(st.integers(0, kernel - 1))
        op = draw(st.sampled_from(("MaxPool", "AveragePool")))
        attrs = dict(kernel_shape=[kernel, kernel], pads=[pad] * 4,
                     strides=[draw(st.integers(1, 2))] * 2)
        if op == "AveragePool":
            attrs["count_include_pad"] = draw(st.sampled_from((0, 1)))
        return b.node(op, [x], **attrs)
    assert kind == "global_pool"
    return b.node(draw(st.sampled_from(("GlobalAveragePool", "GlobalMaxPool"))), [x])


@st.composite
def float_graphs(draw, max_ops: int = 8) -> onnx.ModelProto:
    """A float32 model of 1 to ``max_ops`` random ops on one or two inputs."""
    b = _Builder(draw(st.integers(0, 2**32 - 1)))
    rank = draw(st.sampled_from((1, 2, 3, 4, 4)))
    dims = [draw(st.integers(1, 6)) for _ in range(rank)]
    if rank == 4:
        dims = [1, draw(st.integers(1, 4)), draw(st.integers(3, 7)), draw(st.integers(3, 7))]
    values = [b.input(dims)]
    if draw(st.booleans()):
        values.append(b.input(_broadcast_shape(draw, tuple(dims)) or (1,)))
    for _ in range(draw(st.integers(1, max_ops))):
        values.append(_float_step(draw, b, values))
    return b.model(_pick_outputs(draw, b, values[-1], values))


# --- int8 QDQ graphs ---------------------------------------------------------------------

@dataclass
class _Quantized:
    """A quantized value: its name, shape, scale and zero point (as initializer names)."""

    name: str
    shape: tuple[int, ...]
    scale: float
    scale_name: str
    zero_name: str


class _QdqBuilder(_Builder):
    def __init__(self, seed: int, dtype: np.dtype, share_dequantize: bool):
        super().__init__(seed)
        self.dtype = dtype
        self.share_dequantize = share_dequantize
        self._dequantized: dict[str, str] = {}

    def quant_params(self, scale: float, zero: int | None = None) -> tuple[str, str]:
        if zero is None:
            zero = int(self.rng.integers(-8, 9)) + (128 if self.dtype == np.uint8 else 0)
        return (self.const(np.float32(scale), "s"), self.const(np.array(zero, self.dtype), "z"))

    def dequantize(self, q: _Quantized) -> str:
        """A DequantizeLinear of ``q``: one per consumer, or one shared by all."""
        if self.share_dequantize and q.name in self._dequantized:
            return self._dequantized[q.name]
        value = self.node("DequantizeLinear", [q.name, q.scale_name, q.zero_name])
        self._dequantized[q.name] = value
        return value

    def quantize(self, value: str, scale: float, zero: int | None = None) -> _Quantized:
        scale = float(np.float32(scale))
        scale_name, zero_name = self.quant_params(scale, zero)
        q = self.node("QuantizeLinear", [value, scale_name, zero_name])
        return _Quantized(q, self.shape(q), scale, scale_name, zero_name)

    def quantize_like(self, value: str, like: _Quantized) -> _Quantized:
        """QuantizeLinear with the scale and zero point of ``like`` (the same initializers)."""
        q = self.node("QuantizeLinear", [value, like.scale_name, like.zero_name])
        return _Quantized(q, self.shape(q), like.scale, like.scale_name, like.zero_name)

    def activation(self, draw, value: str) -> str:
        kind = draw(st.sampled_from((None, None, "Relu", "Clip")))
        if kind == "Relu":
            return self.node("Relu", [value])
        if kind == "Clip":
            return self.node("Clip", [value, self.const(np.float32(0.0)),
                                      self.const(np.float32(draw(st.sampled_from((6.0, 3.0)))))])
        return value

    def layer(self, draw, op: str, q: _Quantized, weight: np.ndarray, reduction: int,
              bias_channels: int | None, weight_axis: int, **attrs) -> _Quantized:
        """DequantizeLinear -> op with int8 weights (per-tensor or per-channel scales) and
        an optional int32 bias -> [Relu/Clip] -> QuantizeLinear, as qdq_layer_model."""
        channels = weight.shape[weight_axis]
        per_channel = draw(st.booleans())
        w_scales = (self.rng.uniform(0.005, 0.02, channels) if per_channel
                    else np.array(0.01)).astype(np.float32)
        wd = self.node("DequantizeLinear", [self.const(weight.astype(np.int8), "w"),
                                            self.const(w_scales, "ws"),
                                            self.const(np.zeros(w_scales.shape, np.int8), "wz")],
                       axis=weight_axis)
        inputs = [self.dequantize(q), wd]
        if bias_channels is not None and draw(st.booleans()):
            bias = self.rng.integers(-2000, 2000, bias_channels).astype(np.int32)
            bias_scales = (np.float32(q.scale) * w_scales).astype(np.float32)
            inputs.append(self.node("DequantizeLinear",
                                    [self.const(bias, "b"), self.const(bias_scales, "bs"),
                                     self.const(np.zeros(bias_scales.shape, np.int32), "bz")],
                                    axis=0))
        acc = self.activation(draw, self.node(op, inputs, **attrs))
        factor = draw(st.sampled_from((0.5, 1.0, 2.0)))
        return self.quantize(acc, q.scale * 0.4 * math.sqrt(reduction) * factor)


def _qdq_step(draw, b: _QdqBuilder, values: list[_Quantized]) -> _Quantized:
    q = draw(st.sampled_from(values[-2:]) | st.sampled_from(values))
    rng = b.rng
    rank = len(q.shape)
    kinds = ["add", "relu"]
    if rank == 4:
        kinds += ["conv", "conv", "depthwise", "pool", "flatten"]
    else:
        kinds += ["gemm", "gemm", "matmul"]
    kind = draw(st.sampled_from(kinds))
    if kind == "add":
        same = [v for v in values if v.shape == q.shape]
        other = draw(st.sampled_from(same))
        operands = [b.dequantize(q), b.dequantize(other)]
        total = b.activation(draw, b.node("Add", operands))
        return b.quantize(total, max(q.scale, other.scale) * draw(st.sampled_from((1.0, 1.5))))
    if kind == "relu":
        return b.quantize(b.activation(draw, b.node("Relu", [b.dequantize(q)])), q.scale)
    if kind in ("conv", "depthwise"):
        channels, height, width = q.shape[1:]
        kernel = draw(st.integers(1, min(3, height, width)))
        pad = draw(st.integers(0, kernel - 1)) if kernel > 1 else 0
        stride = draw(st.sampled_from((1, 1, 2)))
        if kind == "depthwise":
            group, filters = channels, channels
        else:
            group, filters = 1, draw(st.sampled_from((channels, channels, 4, 8, 16)))
        weight = rng.integers(-128, 128, (filters, channels // group, kernel, kernel))
        return b.layer(draw, "Conv", q, weight, channels // group * kernel * kernel, filters, 0,
                       kernel_shape=[kernel, kernel], pads=[pad] * 4, strides=[stride] * 2,
                       group=group)
    if kind == "pool":
        op = draw(st.sampled_from(("MaxPool", "AveragePool", "GlobalAveragePool")))
        height, width = q.shape[2:]
        attrs = {}
        if op != "GlobalAveragePool":
            kernel = draw(st.integers(1, min(3, height, width)))
            attrs = dict(kernel_shape=[kernel, kernel], strides=[draw(st.integers(1, 2))] * 2,
                         pads=[draw(st.integers(0, kernel - 1))] * 4)
        pooled = b.node(op, [b.dequantize(q)], **attrs)
        if op == "MaxPool":  # a max keeps its input's scale and zero point
            return b.quantize_like(pooled, q)
        return b.quantize(pooled, q.scale * draw(st.sampled_from((1.0, 0.8))))
    if kind == "flatten":
        return b.quantize_like(b.node("Flatten", [b.dequantize(q)]), q)
    m, k = q.shape
    n = draw(st.sampled_from((4, 8, 16, 10)))
    if kind == "matmul":
        weight = rng.integers(-128, 128, (k, n))
        return b.layer(draw, "MatMul", q, weight, k, None, 1)
    trans_b = draw(st.booleans())
    weight = rng.integers(-128, 128, (n, k) if trans_b else (k, n))
    return b.layer(draw, "Gemm", q, weight, k, n, 0 if trans_b else 1, transB=int(trans_b))


@st.composite
def qdq_graphs(draw, max_layers: int = 5) -> onnx.ModelProto:
    """An int8 (or uint8) QDQ network of 1 to ``max_layers`` layers on a float input that it
    quantizes first; its outputs are the last quantized value, its dequantized float and now
    and then an intermediate one."""
    dtype = np.dtype(draw(st.sampled_from(("int8", "uint8"))))
    b = _QdqBuilder(draw(st.integers(0, 2**32 - 1)), dtype, draw(st.booleans()))
    if draw(st.integers(0, 3)):
        shape = (1, draw(st.sampled_from((1, 3, 4, 8, 16))), draw(st.integers(3, 8)),
                 draw(st.integers(3, 8)))
    else:
        shape = (draw(st.integers(1, 4)), draw(st.sampled_from((4, 8, 16, 33))))
    values = [b.quantize(b.input(shape), 0.05)]
    for _ in range(draw(st.integers(1, max_layers))):
        values.append(_qdq_step(draw, b, values))
    last = values[-1]
    out = b.node("DequantizeLinear", [last.name, last.scale_name, last.zero_name])
    names = [v.name for v in values]
    extra = draw(st.lists(st.sampled_from(names[:-1]), unique=True, max_size=1))
    return b.model([last.name, out, *extra])


# --- compile settings --------------------------------------------------------------------

@st.composite
def fuzz_cases(draw, models: st.SearchStrategy) -> FuzzCase:
    """A model with random plugins (any subset of the accelerators, in any order), default
    plugins (cpu_llvm after them, or none so the reference host runs the rest), minimum
    partition size, pins (by op type or node name, to a plugin in play or the host) and
    placement (by cost, which often leaves the accelerators little, or by priority, which
    gives them all they take)."""
    model = draw(models)
    order = draw(st.permutations(ACCELERATORS))
    plugins = tuple(order[:draw(st.sampled_from((0, 1, 1, 2, 2, 3)))])
    default_plugins = draw(st.sampled_from((None, ())))
    in_play = [*plugins, HOST]
    if default_plugins is None and "cpu_llvm" not in plugins:
        in_play.append("cpu_llvm")
    keys = sorted({n.op_type for n in model.graph.node} | {n.name for n in model.graph.node})
    pins = draw(st.dictionaries(st.sampled_from(keys), st.sampled_from(in_play), max_size=2))
    return FuzzCase(model, plugins, default_plugins,
                    draw(st.sampled_from((1, 1, 1, 2, 3, 5))), pins,
                    draw(st.integers(0, 2**32 - 1)), draw(st.sampled_from(PLACEMENTS)))
