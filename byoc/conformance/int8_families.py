"""Int8 model builders of the conformance kit: QDQ layers and QLinear ops.

QDQ families are *composite*: the kit picks one for a pattern rooted at a QuantizeLinear by
the op its matcher reaches (Conv, MatMul/Gemm, Add). Their models take a float input,
quantize it on the host and return both the int8 result and its dequantized float, as an
int8 layer of an exported network does. The target is the layer's op node.
"""

from __future__ import annotations

import math

import numpy as np
from onnx import helper

from byoc.conformance.families import (
    Built,
    Family,
    Param,
    Unbuildable,
    broadcast_shapes,
    conv_channels,
    nodes_model,
    register,
    window_geometry,
)
from byoc.testing import qdq_layer_model

INT8 = ("uint8", "int8")

_LAYER_PARAMS = {"x_dtype": Param(INT8, INT8),
                 "bias": Param((True, False), (True, False)),
                 "activation": Param((None, "Relu"), (None, "Relu")),
                 "per_channel": Param((False, True), (False, True))}


def _weights(shape, rng: np.random.Generator) -> np.ndarray:
    return rng.integers(-128, 128, shape).astype(np.int8)


def _w_scales(per_channel: bool, filters: int, rng: np.random.Generator):
    return rng.uniform(0.005, 0.02, filters).astype(np.float32) if per_channel else 0.01


def _layer(op: str, x_shape, weight, reduction: int, values, rng, attrs=None) -> Built:
    """A QDQ layer whose output scale keeps typical results inside the int8 range."""
    filters = weight.shape[0] if op == "Conv" or (op == "Gemm" and attrs.get("transB")) \
        else weight.shape[1]
    bias = rng.integers(-2000, 2000, filters).astype(np.int32) if values["bias"] else None
    y_scale = float(np.float32(0.02 * math.sqrt(reduction)))
    model = qdq_layer_model(op, x_shape, weight, attrs=attrs, x_dtype=values["x_dtype"],
                            y_scale=y_scale,
                            w_scales=_w_scales(values["per_channel"], filters, rng),
                            bias=bias, activation=values["activation"])
    x = rng.standard_normal(x_shape).astype(np.float32)
    return Built(model, {"x": x}, "layer", {"y": 1.0, "out": y_scale})


@register
class QdqConv(Family):
    """DequantizeLinear -> Conv (int8 weights, int32 bias) -> [Relu] -> QuantizeLinear."""

    name = "qdq_conv"
    ops = ("Conv",)
    composite = True
    params = {"kernel": Param((3, 1, 5), (1, 2, 3, 5, 7)),
              "stride": Param((1, 2), (1, 2, 3)),
              "pad": Param((1, 0), (0, 1, 2)),
              "dilation": Param((1,), (1, 2)),
              "group": Param((1,), (1, 2, "depthwise")),
              "channels": Param((3, 16), (1, 3, 8, 16, 32)),
              "filters": Param((8, 16), (1, 8, 16, 32)),
              "size": Param((7, 10), (5, 7, 10, 14)),
              **_LAYER_PARAMS}

    def build(self, op, values, rng):
        kernel, stride, pad, size = window_geometry(values)
        group, channels, filters = conv_channels(values)
        weight = _weights((filters, channels // group, kernel, kernel), rng)
        attrs = dict(kernel_shape=[kernel, kernel], strides=[stride, stride], pads=[pad] * 4,
                     dilations=[values["dilation"]] * 2, group=group)
        return _layer("Conv", (1, channels, size, size), weight,
                      channels // group * kernel * kernel, values, rng, attrs)


@register
class QdqMatMul(Family):
    """DequantizeLinear -> MatMul or Gemm (int8 weights; Gemm with an int32 bias) ->
    [Relu] -> QuantizeLinear."""

    name = "qdq_matmul"
    ops = ("MatMul", "Gemm")
    composite = True
    params = {"m": Param((1, 4), (1, 4, 17)),
              "k": Param((16, 8, 33), (8, 16, 33)),
              "n": Param((16, 5), (5, 16, 40)),
              "trans_b": Param((0, 1), (0, 1)),
              **_LAYER_PARAMS}

    def relevant(self, op):
        if op == "MatMul":
            return tuple(p for p in self.params if p not in ("trans_b", "bias"))
        return tuple(self.params)

    def build(self, op, values, rng):
        m, k, n = values["m"], values["k"], values["n"]
        trans_b = op == "Gemm" and values["trans_b"]
        weight = _weights((n, k) if trans_b else (k, n), rng)
        if op == "MatMul":
            values = {**values, "bias": False}
        attrs = {"transB": 1} if trans_b else {}
        return _layer(op, (m, k), weight, k, values, rng, attrs)


@register
class QdqAdd(Family):
    """DequantizeLinear(a), DequantizeLinear(b) -> Add -> [Relu] -> QuantizeLinear, both
    operands run-time values with their own scales."""

    name = "qdq_add"
    ops = ("Add",)
    composite = True
    params = {"dtype": Param(INT8, INT8),
              "rank": Param((4, 2), (2, 3, 4)),
              "broadcast": Param(("none",), ("none", "trailing")),
              "activation": Param((None, "Relu"), (None, "Relu"))}

    def build(self, op, values, rng):
        dtype = np.dtype(values["dtype"])
        zero = np.array(128 if dtype == np.uint8 else 0, dtype)
        a_shape, b_shape = broadcast_shapes(values["broadcast"], values["rank"], rng)
        if len(a_shape) >= 3:  # one image, as accelerators run them
            b_shape = (1,) + b_shape[1:] if len(b_shape) == len(a_shape) else b_shape
            a_shape = (1,) + a_shape[1:]
        constants = {"as": np.float32(0.04), "bs": np.float32(0.07), "ys": np.float32(0.09),
                     "z": zero, "yz": np.array(3, dtype)}
        last = "sum"
        nodes = [helper.make_node("QuantizeLinear", ["a", "as", "z"], ["qa"]),
                 helper.make_node("QuantizeLinear", ["b", "bs", "z"], ["qb"]),
                 helper.make_node("DequantizeLinear", ["qa", "as", "z"], ["da"]),
                 helper.make_node("DequantizeLinear", ["qb", "bs", "z"], ["db"]),
                 helper.make_node("Add", ["da", "db"], ["sum"], name="layer")]
        if values["activation"]:
            nodes.append(helper.make_node(values["activation"], ["sum"], ["act"]))
            last = "act"
        nodes += [helper.make_node("QuantizeLinear", [last, "ys", "yz"], ["y"], name="quantize"),
                  helper.make_node("DequantizeLinear", ["y", "ys", "yz"], ["out"])]
        inputs = {"a": rng.standard_normal(a_shape).astype(np.float32) * 3,
                  "b": rng.standard_normal(b_shape).astype(np.float32) * 3}
        return Built(nodes_model(nodes, inputs, ["y", "out"], constants, opset=13), inputs,
                     "layer", {"y": 1.0, "out": float(constants["ys"])})


@register
class QdqWindow(Family):
    """DequantizeLinear -> MaxPool, AveragePool, GlobalAveragePool or Flatten ->
    QuantizeLinear, on one image."""

    name = "qdq_window"
    ops = ("MaxPool", "AveragePool", "GlobalAveragePool", "GlobalMaxPool", "Flatten")
    composite = True
    params = {"dtype": Param(INT8, INT8),
              "kernel": Param((2, 3), (1, 2, 3, 5)),
              "stride": Param((2, 1), (1, 2, 3)),
              "pad": Param((0, 1), (0, 1)),
              "ceil_mode": Param((0,), (0, 1)),
              "channels": Param((8, 3), (1, 3, 8, 16)),
              "size": Param((8, 5), (5, 8, 13))}

    def relevant(self, op):
        if op in ("MaxPool", "AveragePool"):
            return tuple(self.params)
        return ("dtype", "channels", "size")

    def build(self, op, values, rng):
        dtype = np.dtype(values["dtype"])
        size, attrs = values["size"], {}
        if op in ("MaxPool", "AveragePool"):
            kernel, stride, pad, size = window_geometry(values)
            if pad >= kernel:
                raise Unbuildable("a pooling pad must be smaller than the window")
            attrs = dict(kernel_shape=[kernel] * 2, strides=[stride] * 2, pads=[pad] * 4,
                         ceil_mode=values["ceil_mode"])
        zero = np.array(128 if dtype == np.uint8 else 0, dtype)
        same = op in ("MaxPool", "GlobalMaxPool", "Flatten")  # these keep the input's scale
        constants = {"xs": np.float32(0.05), "z": zero,
                     "ys": np.float32(0.05 if same else 0.04), "yz": zero}
        nodes = [helper.make_node("QuantizeLinear", ["x", "xs", "z"], ["xq"]),
                 helper.make_node("DequantizeLinear", ["xq", "xs", "z"], ["xd"]),
                 helper.make_node(op, ["xd"], ["r"], name="layer", **attrs),
                 helper.make_node("QuantizeLinear", ["r", "ys", "yz"], ["y"], name="quantize"),
                 helper.make_node("DequantizeLinear", ["y", "ys", "yz"], ["out"])]
        x = (rng.standard_normal((1, values["channels"], size, size)) * 3).astype(np.float32)
        return Built(nodes_model(nodes, {"x": x}, ["y", "out"], constants, opset=13), {"x": x},
                     "layer", {"y": 1.0, "out": float(constants["ys"])})


@register
class QLinear(Family):
    """QLinearConv (constant int8 weights, optional int32 bias) and QLinearMatMul (constant
    second operand) on an int8 run-time input."""

    name = "qlinear"
    ops = ("QLinearConv", "QLinearMatMul")
    params = {"x_dtype": Param(INT8, INT8),
              "kernel": Param((3, 1), (1, 3, 5)),
              "stride": Param((1, 2), (1, 2)),
              "pad": Param((1, 0), (0, 1)),
              "group": Param((1,), (1, 2)),
              "channels": Param((4, 16), (4, 16)),
              "filters": Param((8, 16), (8, 16)),
              "size": Param((6, 9), (6, 9)),
              "bias": Param((True, False), (True, False)),
              "m": Param((4, 1), (1, 4)),
              "k": Param((16, 8), (8, 16)),
              "n": Param((16, 5), (5, 16))}

    def relevant(self, op):
        matmul = ("x_dtype", "m", "k", "n")
        return matmul if op == "QLinearMatMul" else tuple(p for p in self.params
                                                           if p not in matmul[1:])

    def build(self, op, values, rng):
        dtype = np.dtype(values["x_dtype"])
        zero = np.array(128 if dtype == np.uint8 else 0, dtype)
        constants = {"xs": np.float32(0.05), "xz": zero, "ws": np.float32(0.01),
                     "wz": np.array(0, np.int8), "yz": np.array(5, dtype)}
        names = ["x", "xs", "xz", "w", "ws", "wz", "ys", "yz"]
        attrs = {}
        if op == "QLinearConv":
            kernel, stride, pad, size = window_geometry({**values, "dilation": 1})
            group, channels, filters = conv_channels(values)
            x_shape = (1, channels, size, size)
            constants["w"] = _weights((filters, channels // group, kernel, kernel), rng)
            reduction = channels // group * kernel * kernel
            attrs = dict(kernel_shape=[kernel, kernel], strides=[stride, stride],
                         pads=[pad] * 4, group=group)
            if values["bias"]:
                constants["b"] = rng.integers(-2000, 2000, filters).astype(np.int32)
                names.append("b")
        else:
            x_shape = (values["m"], values["k"])
            constants["w"] = _weights((values["k"], values["n"]), rng)
            reduction = values["k"]
        constants["ys"] = np.float32(0.02 * math.sqrt(reduction) * 0.5)
        if dtype.kind not in "iu":
            raise Unbuildable(f"QLinear ops take int8 or uint8, not {dtype}")
        x = rng.integers(np.iinfo(dtype).min, np.iinfo(dtype).max + 1, x_shape).astype(dtype)
        node = helper.make_node(op, names, ["y"], name="target", **attrs)
        return Built(nodes_model([node], {"x": x}, ["y"], constants), {"x": x}, "target",
                     {"y": 1.0})


__all__ = ["INT8", "QLinear", "QdqAdd", "QdqConv", "QdqMatMul", "QdqWindow"]
