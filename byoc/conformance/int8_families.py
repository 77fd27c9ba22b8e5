"""Int8 model builders of the conformance kit: the QLinear ops.

QDQ layers need no family of their own: the kit builds them from the pattern's structure
around the float op inside (:mod:`byoc.conformance.composite`).
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
    conv_channels,
    nodes_model,
    register,
    window_geometry,
)

INT8 = ("uint8", "int8")


def _weights(shape, rng: np.random.Generator) -> np.ndarray:
    return rng.integers(-128, 128, shape).astype(np.int8)


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


__all__ = ["INT8", "QLinear"]
