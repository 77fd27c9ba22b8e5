"""The experimental ops of opsets 1 to 9, rewritten as the standard ops they stand for.

Early exporters (WinMLTools' Tiny YOLOv2, Caffe2 and CNTK converters) wrote ops that ONNX
listed as experimental and dropped in opset 10: ImageScaler, Scale, Affine, ScaledTanh,
ParametricSoftplus, Crop, and ThresholdedRelu before it became standard. onnx no longer has
schemas for them, so neither its checker nor its version converter accepts such a model,
while onnxruntime still runs it. Each is a line of arithmetic or a slice: it is replaced by the
equivalent opset-9 ops before anything else looks at the model. The rewritten nodes keep the
original node's name as a prefix, so errors and reports still point at it.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import helper, numpy_helper

# The last opset in which these ops existed; newer models never hold them.
LAST_EXPERIMENTAL_OPSET = 9
_REWRITTEN = ("ImageScaler", "Scale", "Affine", "ScaledTanh", "ParametricSoftplus", "Crop",
              "ThresholdedRelu")


def holds_experimental_ops(model: onnx.ModelProto, opset: int | None) -> bool:
    return opset is not None and opset <= LAST_EXPERIMENTAL_OPSET and any(
        n.op_type in _REWRITTEN and n.domain in ("", "ai.onnx") for n in model.graph.node)


def rewrite_experimental_ops(model: onnx.ModelProto) -> onnx.ModelProto:
    """A copy of ``model`` with its experimental ops replaced by standard ones."""
    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    nodes = []
    for i, node in enumerate(copy.graph.node):
        if node.op_type not in _REWRITTEN or node.domain not in ("", "ai.onnx"):
            nodes.append(node)
            continue
        rewrite = _Rewrite(node, node.name or f"{node.op_type}_{i}", copy.graph)
        nodes += getattr(rewrite, node.op_type)()
    del copy.graph.node[:]
    copy.graph.node.extend(nodes)
    return copy


class _Rewrite:
    """The standard nodes for one experimental node; one method per op, named after it."""

    def __init__(self, node: onnx.NodeProto, name: str, graph: onnx.GraphProto) -> None:
        self.node = node
        self.name = name
        self.graph = graph
        self.attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        self.x = node.input[0]
        self.y = node.output[0]

    def _constant(self, suffix: str, value) -> str:
        name = f"{self.name}/{suffix}"
        self.graph.initializer.append(numpy_helper.from_array(
            np.asarray(value, np.float32), name))
        return name

    def _node(self, op: str, inputs: list[str], output: str | None = None, **attrs):
        output = output or f"{self.name}/{op.lower()}"
        return helper.make_node(op, inputs, [output], f"{self.name}/{op}", **attrs)

    def ImageScaler(self):
        """``y = scale * x + bias[c]`` over an NCHW image."""
        scale = self._constant("scale", self.attrs.get("scale", 1.0))
        bias = np.asarray(self.attrs.get("bias", [0.0]), np.float32).reshape(1, -1, 1, 1)
        scaled = self._node("Mul", [self.x, scale])
        return [scaled, self._node("Add", [scaled.output[0], self._constant("bias", bias)],
                                   self.y)]

    def Scale(self):
        """``y = scale * x``."""
        return [self._node("Mul", [self.x, self._constant("scale",
                                                          self.attrs.get("scale", 1.0))],
                           self.y)]

    def Affine(self):
        """``y = alpha * x + beta``."""
        scaled = self._node("Mul", [self.x, self._constant("alpha",
                                                           self.attrs.get("alpha", 1.0))])
        return [scaled, self._node("Add", [scaled.output[0],
                                           self._constant("beta", self.attrs.get("beta", 0.0))],
                                   self.y)]

    def ScaledTanh(self):
        """``y = alpha * tanh(beta * x)``."""
        inner = self._node("Mul", [self.x, self._constant("beta", self.attrs.get("beta", 1.0))])
        tanh = self._node("Tanh", [inner.output[0]])
        return [inner, tanh, self._node("Mul", [tanh.output[0], self._constant(
            "alpha", self.attrs.get("alpha", 1.0))], self.y)]

    def ParametricSoftplus(self):
        """``y = alpha * ln(exp(beta * x) + 1)``."""
        inner = self._node("Mul", [self.x, self._constant("beta", self.attrs.get("beta", 1.0))])
        softplus = self._node("Softplus", [inner.output[0]])
        return [inner, softplus, self._node("Mul", [softplus.output[0], self._constant(
            "alpha", self.attrs.get("alpha", 1.0))], self.y)]

    def ThresholdedRelu(self):
        """``y = x if x > alpha else 0`` (experimental before opset 10)."""
        above = self._node("Greater", [self.x, self._constant(
            "alpha", self.attrs.get("alpha", 1.0))])
        # Where came in opset 9; the experimental ops were float32 only.
        kept = self._node("Cast", [above.output[0]], to=onnx.TensorProto.FLOAT)
        return [above, kept, self._node("Mul", [self.x, kept.output[0]], self.y)]

    def Crop(self):
        """An NCHW crop: ``border`` = (left, top, right, bottom) pixels cut from the sides,
        or with ``scale`` = (height, width), that window from (top, left)."""
        border = list(self.attrs.get("border", [0, 0, 0, 0]))
        if len(border) != 4:
            raise ValueError(f"Crop node {self.name!r} has border {border}; it takes four "
                             f"values (left, top, right, bottom)")
        left, top, right, bottom = border
        if "scale" in self.attrs:
            height, width = self.attrs["scale"]
            ends = [top + height, left + width]
        else:
            # A negative end counts from the far side; 0 pixels cut means the whole extent.
            limit = np.iinfo(np.int64).max
            ends = [-bottom if bottom else limit, -right if right else limit]
        return [self._node("Slice", [self.x], self.y, axes=[2, 3], starts=[top, left],
                           ends=ends)]
