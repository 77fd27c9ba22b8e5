"""Model builders of the conformance kit, one family per kind of op.

A family knows how to build a small ONNX model around one node of its ops (the *target*) from
a few named parameters: a dtype, a rank, a kernel size, a broadcast form. Each parameter has
``default`` values (used when a plugin declares nothing about it) and ``probes`` (every value
the kit may try; those a plugin's limits leave out are expected to be declined). A family is
a subclass of :class:`Family` registered with :func:`register`; int8 families live in
:mod:`byoc.conformance.int8_families`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import onnx
from onnx import helper, numpy_helper

from byoc.core.dtypes import to_onnx

FAMILIES: dict[str, "Family"] = {}


def register(cls: type["Family"]) -> type["Family"]:
    """Class decorator: make the family available by its ``name``."""
    FAMILIES[cls.name] = cls()
    return cls


def family_of_op(op_type: str) -> "Family | None":
    """The family whose single-op models have ``op_type`` as their target, if any."""
    return next((f for f in FAMILIES.values() if op_type in f.ops), None)


@dataclass(frozen=True)
class Param:
    """A builder parameter: the values taken when a plugin says nothing about it, and every
    value the kit can build (a plugin's limits may name others; builders take any value of
    the parameter's kind)."""

    default: tuple
    probes: tuple


@dataclass
class Built:
    """A model the kit compiles: ``inputs`` are its run-time inputs and ``target`` the name
    of the node the pattern under test must take (or decline). ``steps`` gives, for outputs
    that are quantized (or dequantized from a quantized value), the size of one
    quantization step."""

    model: onnx.ModelProto
    inputs: dict[str, np.ndarray]
    target: str
    steps: dict[str, float] = field(default_factory=dict)
    # For a pattern's composite: every node the pattern must claim (the target is its root).
    composite: list[str] = field(default_factory=list)


class Unbuildable(Exception):
    """These parameter values make no valid model for this op (e.g. depthwise with one
    channel); the kit leaves the case out."""


class Family(ABC):
    """Builds models of one node of ``ops`` (a composite pattern's other ops are built around
    it from the pattern's structure: :mod:`byoc.conformance.composite`)."""

    name: ClassVar[str]
    ops: ClassVar[tuple[str, ...]]
    params: ClassVar[dict[str, Param]]
    rtol: ClassVar[float] = 1e-5
    atol: ClassVar[float] = 1e-6

    def param_table(self, op: str) -> dict[str, Param]:
        """The parameters of models built for ``op`` (the same for every op of most
        families)."""
        return self.params

    def relevant(self, op: str) -> tuple[str, ...]:
        """The parameters that change the model built for ``op``."""
        return tuple(self.param_table(op))

    @abstractmethod
    def build(self, op: str, values: dict[str, Any], rng: np.random.Generator) -> Built:
        """A model of one ``op`` node built from ``values`` (one value per parameter)."""


# -- helpers -----------------------------------------------------------------------------------

FLOATS = ("float32", "float64", "float16")
INTEGERS = ("int32", "int64", "int8", "uint8")


def random_array(dtype: str, shape, rng: np.random.Generator, *,
                 positive: bool = False, nonzero: bool = False) -> np.ndarray:
    """Seeded data of ``dtype``: normal floats (or in [0.5, 2] when ``positive``), small
    integers (never zero when ``nonzero``), or random booleans."""
    dt = np.dtype(dtype)
    shape = tuple(shape)
    if dt == np.bool_:
        return rng.random(shape) < 0.5
    if dt.kind == "f":
        data = rng.uniform(0.5, 2.0, shape) if positive else rng.standard_normal(shape)
        return data.astype(dt)
    low = 1 if positive or dt.kind == "u" else -20
    data = rng.integers(low, 21, shape)
    if nonzero:
        data[data == 0] = 1
    return data.astype(dt)


def random_shape(rank: int, rng: np.random.Generator, low: int = 1, high: int = 6) -> tuple:
    return tuple(int(d) for d in rng.integers(low, high + 1, rank))


def nodes_model(nodes: list[onnx.NodeProto], inputs: dict[str, np.ndarray],
                outputs: list[str], constants: dict[str, np.ndarray] | None = None,
                opset: int = 17) -> onnx.ModelProto:
    """A model of ``nodes`` reading ``inputs`` (typed like the arrays) and ``constants``;
    the outputs' types are left to shape inference."""
    graph = helper.make_graph(
        nodes, "conformance",
        [helper.make_tensor_value_info(n, to_onnx(a.dtype), list(a.shape))
         for n, a in inputs.items()],
        [helper.make_empty_tensor_value_info(o) for o in outputs],
        initializer=[numpy_helper.from_array(np.asarray(a), n)
                     for n, a in (constants or {}).items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    return onnx.shape_inference.infer_shapes(model, strict_mode=True)


def single_node_model(node: onnx.NodeProto, inputs: dict[str, np.ndarray],
                      outputs: list[str], constants: dict[str, np.ndarray] | None = None,
                      opset: int = 17) -> onnx.ModelProto:
    return nodes_model([node], inputs, outputs, constants, opset)


# -- float elementwise -------------------------------------------------------------------------

_POSITIVE_ONLY = {"Log", "Sqrt", "Reciprocal", "Pow"}


@register
class Unary(Family):
    """One elementwise op of one input: y = op(x)."""

    name = "unary"
    ops = ("Abs", "Ceil", "Cos", "Elu", "Erf", "Exp", "Floor", "Gelu", "HardSigmoid",
           "HardSwish", "LeakyRelu", "Log", "Neg", "Reciprocal", "Relu", "Round", "Selu",
           "Sigmoid", "Sign", "Sin", "Softplus", "Softsign", "Sqrt", "Tanh")
    params = {"dtype": Param(("float32",), FLOATS),
              "rank": Param((1, 2, 3, 4), (1, 2, 3, 4, 5))}

    def build(self, op, values, rng):
        x = random_array(values["dtype"], random_shape(values["rank"], rng), rng,
                         positive=op in _POSITIVE_ONLY)
        opset = 20 if op == "Gelu" else 17
        node = helper.make_node(op, ["x"], ["y"], name="target")
        return Built(single_node_model(node, {"x": x}, ["y"], opset=opset), {"x": x}, "target")


_FLOAT_ONLY = {"Mean", "PRelu", "Sum"}
_COMPARISONS = {"Equal", "Greater", "Less", "GreaterOrEqual", "LessOrEqual"}


def broadcast_shapes(form: str, rank: int, rng: np.random.Generator) -> tuple[tuple, tuple]:
    """Operand shapes for a broadcast ``form``: "none" (equal), "scalar" (b is a scalar),
    "trailing" (b has the last dim of a) or "both" (a is [..., d, 1], b is [1, e])."""
    shape = random_shape(rank, rng, low=2)
    if form == "none":
        return shape, shape
    if form == "scalar":
        return shape, ()
    if form == "trailing" and rank >= 2:
        return shape, shape[-1:]
    if form == "both" and rank >= 2:
        return shape[:-1] + (1,), (1, shape[-1])
    raise Unbuildable(f"broadcast {form!r} at rank {rank}")


@register
class Binary(Family):
    """One elementwise op of two inputs, with broadcasting; the second operand is a
    run-time input or a constant."""

    name = "binary"
    ops = ("Add", "Sub", "Mul", "Div", "Max", "Min", "Pow", "Sum", "Mean", "PRelu",
           *sorted(_COMPARISONS))
    params = {"dtype": Param(("float32",), FLOATS + INTEGERS),
              "rank": Param((1, 2, 4), (1, 2, 3, 4, 5)),
              "broadcast": Param(("none", "scalar", "trailing", "both"),
                                 ("none", "scalar", "trailing", "both")),
              "operand": Param(("input", "constant"), ("input", "constant")),
              "batch": Param((1, 2), (1, 2))}

    def build(self, op, values, rng):
        dtype = values["dtype"]
        if op in _FLOAT_ONLY and dtype not in FLOATS:
            raise Unbuildable(f"{op} is defined for floats only")
        if op == "Pow" and dtype in ("int8", "uint8"):
            raise Unbuildable("Pow is not defined for 8-bit integers")
        if op == "PRelu" and values["broadcast"] == "both":
            raise Unbuildable("PRelu broadcasts its slope one way only")
        a_shape, b_shape = broadcast_shapes(values["broadcast"], values["rank"], rng)
        batch = values.get("batch", 1)
        if len(a_shape) < 3 and batch != 1:
            raise Unbuildable("the batch is a parameter of images (rank 3 and more)")
        if len(a_shape) >= 3:  # images: the batch is a parameter (accelerators run one)
            if len(b_shape) == len(a_shape) and b_shape[0] == a_shape[0]:
                b_shape = (batch,) + b_shape[1:]
            a_shape = (batch,) + a_shape[1:]
        positive = op in _POSITIVE_ONLY
        a = random_array(dtype, a_shape, rng, positive=positive)
        b = random_array(dtype, b_shape, rng, nonzero=op == "Div")
        if op == "Pow":
            b = (np.abs(b) % 3).astype(b.dtype) if dtype not in FLOATS else b
        if op in _COMPARISONS and dtype in FLOATS:
            b.flat[: b.size // 2] = a.flat[: b.size // 2]  # some ties, so Equal says yes
        node = helper.make_node(op, ["a", "b"], ["y"], name="target")
        if values["operand"] == "constant":
            model = single_node_model(node, {"a": a}, ["y"], constants={"b": b})
            return Built(model, {"a": a}, "target")
        return Built(single_node_model(node, {"a": a, "b": b}, ["y"]), {"a": a, "b": b},
                     "target")


@register
class Logical(Family):
    """And, Or, Xor (with broadcasting) and Not on booleans."""

    name = "logical"
    ops = ("And", "Or", "Xor", "Not")
    params = {"rank": Param((1, 2, 4), (1, 2, 3, 4, 5)),
              "broadcast": Param(("none", "trailing"), ("none", "scalar", "trailing", "both"))}

    def relevant(self, op):
        return ("rank",) if op == "Not" else tuple(self.params)

    def build(self, op, values, rng):
        if op == "Not":
            x = random_array("bool", random_shape(values["rank"], rng), rng)
            node = helper.make_node(op, ["a"], ["y"], name="target")
            return Built(single_node_model(node, {"a": x}, ["y"]), {"a": x}, "target")
        a_shape, b_shape = broadcast_shapes(values["broadcast"], values["rank"], rng)
        inputs = {"a": random_array("bool", a_shape, rng), "b": random_array("bool", b_shape, rng)}
        node = helper.make_node(op, ["a", "b"], ["y"], name="target")
        return Built(single_node_model(node, inputs, ["y"]), inputs, "target")


# -- float convolution, matrix products, pooling -----------------------------------------------


def window_geometry(values: dict[str, Any]) -> tuple[int, int, int, int]:
    """(kernel, stride, pad, size) with the input size grown until the window fits."""
    kernel, stride, pad = values["kernel"], values["stride"], values["pad"]
    extent = (kernel - 1) * values.get("dilation", 1) + 1
    size = max(values["size"], extent - 2 * pad)
    return kernel, stride, pad, size


def conv_channels(values: dict[str, Any]) -> tuple[int, int, int]:
    """(group, in channels, out channels) made consistent: channels are rounded up to a
    multiple of the group, and a depthwise conv has one filter per channel."""
    channels, filters, group = values["channels"], values["filters"], values["group"]
    if group == "depthwise":
        if channels < 2:
            raise Unbuildable("a depthwise convolution of one channel is a plain one")
        return channels, channels, channels
    round_up = -(-channels // group) * group, -(-filters // group) * group
    return group, *round_up


@register
class Conv(Family):
    """A float Conv with constant weights and an optional constant bias."""

    name = "conv"
    ops = ("Conv",)
    params = {"dtype": Param(("float32",), FLOATS),
              "spatial": Param((2,), (1, 2, 3)),
              "kernel": Param((3, 1, 5), (1, 2, 3, 5, 7)),
              "stride": Param((1, 2), (1, 2, 3)),
              "pad": Param((1, 0), (0, 1, 2)),
              "dilation": Param((1, 2), (1, 2)),
              "group": Param((1, 2, "depthwise"), (1, 2, "depthwise")),
              "channels": Param((3, 1, 8), (1, 3, 8, 16)),
              "filters": Param((4, 8), (1, 4, 8, 16)),
              "size": Param((7, 10), (5, 7, 10, 14)),
              "bias": Param((True, False), (True, False))}
    rtol, atol = 1e-4, 1e-4

    def build(self, op, values, rng):
        spatial = values["spatial"]
        if spatial == 3:  # keep 3-D volumes small
            values = {**values, "size": min(values["size"], 6)}
        kernel, stride, pad, size = window_geometry(values)
        group, channels, filters = conv_channels(values)
        dtype = values["dtype"]
        x = random_array(dtype, (1, channels) + (size,) * spatial, rng)
        constants = {"w": random_array(dtype, (filters, channels // group) + (kernel,) * spatial,
                                       rng)}
        names = ["x", "w"]
        if values["bias"]:
            constants["b"] = random_array(dtype, (filters,), rng)
            names.append("b")
        node = helper.make_node("Conv", names, ["y"], name="target",
                                kernel_shape=[kernel] * spatial, strides=[stride] * spatial,
                                pads=[pad] * (2 * spatial),
                                dilations=[values["dilation"]] * spatial, group=group)
        return Built(single_node_model(node, {"x": x}, ["y"], constants), {"x": x}, "target")


@register
class MatrixProduct(Family):
    """Gemm (with transB and a bias) and MatMul (with batch dims); the second operand is a
    constant or a run-time input."""

    name = "matmul"
    ops = ("MatMul", "Gemm")
    params = {"dtype": Param(("float32",), FLOATS + ("int32", "int64")),
              "m": Param((3, 1, 17), (1, 3, 17)),
              "k": Param((8, 1, 33), (1, 8, 33)),
              "n": Param((5, 1, 16), (1, 5, 16)),
              "batch": Param((0, 1, 2), (0, 1, 2)),
              "trans_b": Param((0, 1), (0, 1)),
              "bias": Param(("vector", "none", "scalar"), ("none", "vector", "scalar")),
              "weights": Param(("constant", "input"), ("constant", "input"))}
    rtol, atol = 1e-4, 1e-4

    def relevant(self, op):
        skip = {"MatMul": {"trans_b", "bias"}, "Gemm": {"batch"}}[op]
        return tuple(p for p in self.params if p not in skip)

    def build(self, op, values, rng):
        dtype, m, k, n = values["dtype"], values["m"], values["k"], values["n"]
        if op == "Gemm" and dtype not in FLOATS + ("int32", "int64"):
            raise Unbuildable(f"Gemm of {dtype}")
        batch = random_shape(values["batch"], rng, high=3) if op == "MatMul" else ()
        a = random_array(dtype, batch + (m, k), rng)
        trans_b = op == "Gemm" and values["trans_b"]
        b = random_array(dtype, (n, k) if trans_b else (k, n), rng)
        names, constants, attrs = ["a", "b"], {}, {}
        if op == "Gemm":
            attrs["transB"] = int(trans_b)
            if values["bias"] != "none":
                shape = (n,) if values["bias"] == "vector" else ()
                constants["c"] = random_array(dtype, shape, rng)
                names.append("c")
        inputs = {"a": a}
        if values["weights"] == "constant":
            constants["b"] = b
        else:
            inputs["b"] = b
        node = helper.make_node(op, names, ["y"], name="target", **attrs)
        model = single_node_model(node, inputs, ["y"], constants)
        return Built(model, inputs, "target")


@register
class Pool(Family):
    """MaxPool and AveragePool windows, and the global poolings."""

    name = "pool"
    ops = ("MaxPool", "AveragePool", "GlobalMaxPool", "GlobalAveragePool")
    params = {"dtype": Param(("float32",), FLOATS),
              "spatial": Param((2,), (1, 2, 3)),
              "kernel": Param((2, 3, 1), (1, 2, 3, 5)),
              "stride": Param((2, 1), (1, 2, 3)),
              "pad": Param((0, 1), (0, 1, 2)),
              "ceil_mode": Param((0,), (0, 1)),
              "channels": Param((3, 1, 8), (1, 3, 8, 16)),
              "size": Param((8, 5), (5, 8, 13))}
    rtol, atol = 1e-5, 1e-5

    def relevant(self, op):
        if op.startswith("Global"):
            return ("dtype", "spatial", "channels", "size")
        return tuple(self.params)

    def build(self, op, values, rng):
        spatial, size, attrs = values["spatial"], values["size"], {}
        if not op.startswith("Global"):
            kernel, stride, pad, size = window_geometry(values)
            if pad >= kernel:
                raise Unbuildable("a pooling pad must be smaller than the window")
            attrs = dict(kernel_shape=[kernel] * spatial, strides=[stride] * spatial,
                         pads=[pad] * (2 * spatial), ceil_mode=values["ceil_mode"])
        x = random_array(values["dtype"], (1, values["channels"]) + (size,) * spatial, rng)
        node = helper.make_node(op, ["x"], ["y"], name="target", **attrs)
        return Built(single_node_model(node, {"x": x}, ["y"]), {"x": x}, "target")
