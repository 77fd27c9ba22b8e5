"""Models of a pattern's realizations: the anchor op from its family, every other op from the
pattern's own tree.

A realization (:mod:`byoc.conformance.structure`) is a tree of ops. One of them, the *anchor*,
is built by a family of :mod:`byoc.conformance.families` from the case's parameters (the
Conv of a Conv -> Add -> Relu, the Add of Add -> Relu, the Conv inside a QDQ group): the kit's
shapes, attributes and data come from there. The rest is completed around it:

- below the anchor, an op producing one of its inputs is built to produce the family's array
  for that input: a DequantizeLinear quantizes it (an activation to ``x_dtype`` with a zero
  point in the middle of its range, a weight to symmetric int8 per tensor or, with
  ``per_channel``, per output channel, a bias to int32 at the input scale times the weight
  scale, as exporters write QDQ layers); an op of one input passes it through;
- above the anchor, each op on the way to the root reads the value below it and gets its other
  inputs made to fit it: a constant per-channel operand for a binary op, Clip's bounds 0 and
  6, QuantizeLinear's scale and zero point from the range of the value it quantizes (found
  by running the reference interpreter on the model built so far).

A ``wildcard`` becomes a model input and a ``const`` an initializer, whatever the family did
with that input. Every node is named, so the kit can check that the pattern claims them all.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import onnx
from onnx import helper, numpy_helper

from byoc.conformance.families import Built, Family, Param, Unbuildable, family_of_op, nodes_model
from byoc.conformance.structure import Leaf, Part, Realization
from byoc.errors import PluginError, ShapeInferenceError
from byoc.partition.matchers import Wildcard

# Families whose op is the heart of a composite; any other family's op anchors only when the
# realization has none of these (Add -> Relu is anchored at the Add, the deepest).
MAIN_FAMILIES = ("conv", "matmul", "pool", "qlinear")
QUANTIZED_INPUT_PARAMS = {"x_dtype": Param(("uint8", "int8"), ("uint8", "int8"))}
QUANTIZED_WEIGHT_PARAMS = {"per_channel": Param((False, True), (False, True))}
_WEIGHT_OPS = ("Conv", "ConvTranspose", "MatMul", "Gemm")
_BINARY = ("Add", "Sub", "Mul", "Div", "Max", "Min", "Pow", "PRelu", "Sum", "Mean", "Equal",
           "Greater", "Less", "GreaterOrEqual", "LessOrEqual", "And", "Or", "Xor", "BitShift")


def anchor_of(realization: Realization) -> Part:
    """The op a family builds: the deepest one of a main family on the path that follows each
    op's first input down from the root, else the deepest op any family builds."""
    chain, part = [], realization.root
    while True:
        chain.append(part)
        if part.free or not part.inputs or not isinstance(part.inputs[0], Part):
            break
        part = part.inputs[0]
    buildable = [p for p in chain if family_of_op(p.op_type)]
    main = [p for p in buildable if family_of_op(p.op_type).name in MAIN_FAMILIES]
    if main or buildable:
        return (main or buildable)[-1]
    raise PluginError(
        f"the conformance kit cannot build the composite {realization.describe()}: no family "
        f"of the kit builds any of {', '.join(p.op_type for p in chain)} on its main path; give "
        f"the pattern PatternLimits(skip=...) with the reason, and test it in the plugin's own "
        f"tests")


def fixed_params(family: Family, anchor: Part) -> dict[str, Any]:
    """Family parameters the realization decides (which inputs the anchor has, and whether
    they are constants), so they are not varied as parameters."""
    if anchor.free:
        return {}
    fixed: dict[str, Any] = {}
    count, op = len(anchor.inputs), anchor.op_type
    if family.name == "conv":
        fixed["bias"] = count > 2
    elif family.name == "matmul":
        if op == "Gemm":
            fixed["bias"] = "vector" if count > 2 else "none"
        fixed["weights"] = "input" if _is_input(anchor.inputs[1]) else "constant"
    elif family.name == "binary" and count > 1:
        fixed["operand"] = "input" if _is_input(anchor.inputs[1]) else "constant"
    elif family.name == "qlinear" and op == "QLinearConv":
        fixed["bias"] = count > 8
    if any(isinstance(c, Part) and c.op_type == "DequantizeLinear" for c in anchor.inputs):
        fixed["dtype"] = "float32"
    return fixed


def extra_params(realization: Realization) -> dict[str, Param]:
    """The parameters of the ops built around the anchor: ``x_dtype`` for quantized
    activations, ``per_channel`` for quantized weights."""
    anchor = anchor_of(realization)
    params: dict[str, Param] = {}
    for part in realization.root.parts():
        if part.op_type != "DequantizeLinear" or part.free or not isinstance(part.inputs[0], Leaf):
            continue
        role = _role(anchor, part)
        if role == "weight":
            params.update(QUANTIZED_WEIGHT_PARAMS)
        elif role == "activation":
            params.update(QUANTIZED_INPUT_PARAMS)
    if realization.root.op_type == "QuantizeLinear":
        params.update(QUANTIZED_INPUT_PARAMS)
    return params


def _is_input(child: Part | Leaf) -> bool:
    return isinstance(child, Leaf) and not child.constant


def _role(anchor: Part, part: Part) -> str:
    """What a DequantizeLinear feeding the anchor dequantizes: its weight, bias or an
    activation."""
    for index, child in enumerate(anchor.inputs):
        if child is part and anchor.op_type in _WEIGHT_OPS and index in (1, 2):
            return "weight" if index == 1 else "bias"
    return "activation"


def build(realization: Realization, family: Family, values: dict[str, Any],
          rng: np.random.Generator) -> Built:
    """The model of ``realization`` for a case's ``values`` (family parameters, the extra
    parameters and the structural ones): its target is the root, its ``composite`` every
    node the pattern must claim."""
    anchor = anchor_of(realization)
    family_values = {**{k: v for k, v in values.items() if k in family.param_table(
        anchor.op_type)}, **fixed_params(family, anchor)}
    built = family.build(anchor.op_type, family_values, rng)
    return _Composer(realization, values, rng).compose(anchor, built)


@dataclass
class _Quantized:
    scale: np.ndarray
    zero_point: np.ndarray


@dataclass
class _Composer:
    realization: Realization
    values: dict[str, Any]
    rng: np.random.Generator
    nodes: list[onnx.NodeProto] = field(default_factory=list)
    inputs: dict[str, np.ndarray] = field(default_factory=dict)
    constants: dict[str, np.ndarray] = field(default_factory=dict)
    quantized: dict[str, _Quantized] = field(default_factory=dict)
    opset: int = 17
    anchor: Part | None = None
    anchor_inputs: list[str] = field(default_factory=list)   # as they are built, in order
    pending: _Quantized | None = None   # a QuantizeLinear's, between its scale and zero point

    # -- the whole model -----------------------------------------------------------------------

    def compose(self, anchor: Part, built: Built) -> Built:
        self.anchor = anchor
        self.opset = max(self.opset, *(o.version for o in built.model.opset_import
                                       if o.domain in ("", "ai.onnx")))
        value = self._anchor_node(anchor, built)
        for part, index in reversed(self._path_to(anchor)):
            value = self._wrap(part, index, value)
        root = self.nodes[-1]
        quantized = root.op_type == "QuantizeLinear"   # its output is an integer type
        model = self._model([value])
        return Built(model, dict(self.inputs), root.name, {value: 1.0} if quantized else {},
                     composite=[n.name for n in self.nodes])

    def _path_to(self, anchor: Part) -> list[tuple[Part, int]]:
        """(op, index of the input leading to the anchor) from the root down."""
        path, part = [], self.realization.root
        while part is not anchor:
            index = next(i for i, c in enumerate(part.inputs) if isinstance(c, Part)
                         and any(p is anchor for p in c.parts()))
            path.append((part, index))
            part = part.inputs[index]
        return path

    def _model(self, outputs: list[str]) -> onnx.ModelProto:
        try:
            return nodes_model(list(self.nodes), self.inputs, outputs, self.constants,
                               self.opset)
        except onnx.shape_inference.InferenceError as exc:  # e.g. Relu of uint8
            raise Unbuildable(f"the composite {self.realization.describe()} is not a valid "
                              f"model for these values: {exc}") from exc

    def _name(self, base: str) -> str:
        taken = {n.name for n in self.nodes} | {o for n in self.nodes for o in n.output} | \
            set(self.inputs) | set(self.constants)
        index = 0
        while f"{base}_{index}" in taken:
            index += 1
        return f"{base}_{index}"

    def _emit(self, op_type: str, inputs: list[str], **attrs) -> str:
        name = self._name(op_type.lower())
        output = f"{name}_out"
        self.nodes.append(helper.make_node(op_type, inputs, [output], name=name, **attrs))
        return output

    def _leaf(self, leaf: Leaf, array: np.ndarray, base: str) -> str:
        name = self._name(base)
        (self.constants if leaf.constant else self.inputs)[name] = np.asarray(array)
        return name

    def _evaluate(self, value: str) -> np.ndarray:
        """The reference interpreter's value of ``value`` in the model built so far."""
        from byoc.testing import compile_reference

        try:
            return compile_reference(self._model([value])).run(self.inputs)[value]
        except ShapeInferenceError as exc:
            raise Unbuildable(f"the composite {self.realization.describe()} is not a valid "
                              f"model for these values: {exc}") from exc

    # -- the anchor ----------------------------------------------------------------------------

    def _anchor_node(self, anchor: Part, built: Built) -> str:
        graph = built.model.graph
        if len(graph.node) != 1:
            raise PluginError(f"the conformance kit's family for {anchor.op_type} builds "
                              f"{len(graph.node)} nodes; a composite's anchor must be one")
        node = graph.node[0]
        arrays = {**{t.name: numpy_helper.to_array(t) for t in graph.initializer},
                  **built.inputs}
        given = list(node.input)
        names = self.anchor_inputs
        if anchor.free:
            for value in given:
                if value:
                    table = self.inputs if value in built.inputs else self.constants
                    table[value] = arrays[value]
                names.append(value)
        else:
            if len(given) < len(anchor.inputs) or any(not v for v in given[:len(anchor.inputs)]):
                raise PluginError(f"the conformance kit's {anchor.op_type} builder gave "
                                  f"{len(given)} inputs; the pattern's realization has "
                                  f"{len(anchor.inputs)}")
            for index, child in enumerate(anchor.inputs):
                names.append(self._input(child, arrays[given[index]], anchor, index))
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        attrs.update(self._attributes(anchor, None))
        return self._emit(anchor.op_type, names, **attrs)

    # -- below the anchor: produce a given array -----------------------------------------------

    def _input(self, child: Part | Leaf, array: np.ndarray, reader: Part, index: int) -> str:
        if isinstance(child, Leaf):
            return self._leaf(child, array, f"{reader.op_type.lower()}_in{index}")
        return self._produce(child, array, reader, index)

    def _produce(self, part: Part, array: np.ndarray, reader: Part, index: int) -> str:
        """Nodes of ``part`` whose output approximates ``array`` (same shape and dtype)."""
        if part.op_type == "DequantizeLinear" and not part.free:
            return self._dequantize(part, np.asarray(array), reader, index)
        if part.free or len(part.inputs) == 1:
            source = part.inputs[0] if part.inputs else Leaf(_RUNTIME)
            value = self._input(source, array, part, 0)
            return self._emit(part.op_type, [value], **self._attributes(part, array.shape))
        raise PluginError(f"the conformance kit cannot build {part.describe()} as input "
                          f"{index} of {reader.op_type}: it builds DequantizeLinear and ops of "
                          f"one input there; give the pattern PatternLimits(skip=...) with "
                          f"the reason")

    def _dequantize(self, part: Part, array: np.ndarray, reader: Part, index: int) -> str:
        role = _role(reader, part) if reader is self.anchor else "activation"
        axis = None
        if role == "weight":
            axis = 1 if reader.op_type == "MatMul" or (
                reader.op_type == "Gemm" and not self._trans_b()) else 0
            per_channel = bool(self.values.get("per_channel", False))
            quant = _weight_quantization(array, axis if per_channel else None)
            if not per_channel:
                axis = None
        elif role == "bias":
            activation, weight = (self.quantized.get(v) for v in self.anchor_inputs[:2])
            if activation is None or weight is None:
                raise PluginError("the conformance kit quantizes a bias at the input scale "
                                  "times the weight scale; this composite has no quantized "
                                  "input and weight before it")
            scale = (activation.scale * weight.scale).astype(np.float32)
            quant = _Quantized(scale, np.zeros(scale.shape, np.int32))
            axis = 0 if scale.ndim else None
        else:
            dtype = np.dtype(self.values.get("x_dtype", "uint8"))
            quant = _range_quantization(array, dtype, has_zero_point=len(part.inputs) > 2)
        steps = np.round(array / _broadcast(quant.scale, axis, array.ndim))
        info = np.iinfo(quant.zero_point.dtype)
        q = np.clip(steps + _broadcast(quant.zero_point, axis, array.ndim), info.min, info.max)
        q = q.astype(quant.zero_point.dtype)
        names = [self._input(part.inputs[0], q, part, 0),
                 self._scalar_leaf(part, 1, quant.scale)]
        if len(part.inputs) > 2:
            names.append(self._scalar_leaf(part, 2, quant.zero_point))
        attrs = self._attributes(part, array.shape)
        if axis is not None:
            attrs["axis"] = axis
        output = self._emit("DequantizeLinear", names, **attrs)
        self.quantized[output] = quant
        return output

    def _trans_b(self) -> bool:
        return bool(self.values.get("trans_b", 0))

    def _scalar_leaf(self, part: Part, index: int, array: np.ndarray) -> str:
        child = part.inputs[index]
        if isinstance(child, Part):
            raise PluginError(f"the conformance kit gives {part.op_type}'s input {index} as a "
                              f"constant or an input, not as {child.describe()}")
        return self._leaf(child, array, f"{part.op_type.lower()}_in{index}")

    # -- above the anchor: read the value below, complete the rest -----------------------------

    def _wrap(self, part: Part, through: int, value: str) -> str:
        below = self._evaluate(value)
        names = []
        for index, child in enumerate(part.inputs or (Leaf(_RUNTIME),)):
            if index == through:
                names.append(value)
                continue
            array = self._operand(part, index, below, value)
            names.append(self._input(child, array, part, index))
        attrs = self._attributes(part, below.shape)
        output = self._emit(part.op_type, names, **attrs)
        if part.op_type == "QuantizeLinear":
            self.quantized[output] = self.pending
        return output

    def _operand(self, part: Part, index: int, below: np.ndarray, value: str) -> np.ndarray:
        op = part.op_type
        if op == "Clip":
            return np.array(0.0 if index == 1 else 6.0, below.dtype)
        if op == "QuantizeLinear":
            if index == 1:
                dtype = np.dtype(self.values.get("x_dtype", "uint8")) if len(part.inputs) > 2 \
                    else np.dtype(np.uint8)
                self.pending = _range_quantization(below, dtype, len(part.inputs) > 2)
                return self.pending.scale
            return self.pending.zero_point
        if op == "DequantizeLinear":
            quant = self.quantized.get(value) or _Quantized(np.float32(1.0),
                                                            np.zeros((), below.dtype))
            return quant.scale if index == 1 else quant.zero_point
        if op in _BINARY:
            child = part.inputs[index]
            per_channel = isinstance(child, Leaf) and child.constant and below.ndim >= 2
            shape = ((below.shape[1],) + (1,) * (below.ndim - 2) if below.ndim >= 3 else
                     below.shape[-1:]) if per_channel else below.shape
            data = self.rng.standard_normal(shape) if below.dtype.kind == "f" else \
                self.rng.integers(1, 5, shape)
            if op in ("Div", "Pow"):
                data = np.abs(data) + 0.5 if below.dtype.kind == "f" else data
            return np.asarray(data).astype(below.dtype)
        if op == "Reshape":
            return np.array([below.shape[0], -1], np.int64)
        if op == "Concat":
            return self.rng.standard_normal(below.shape).astype(below.dtype)
        raise PluginError(f"the conformance kit cannot build input {index} of {op} in the "
                          f"composite {self.realization.describe()}; give the pattern "
                          f"PatternLimits(skip=...) with the reason")

    def _attributes(self, part: Part, shape: tuple | None) -> dict[str, Any]:
        """The attributes the pattern asks of ``part``: exact values as given, callables
        satisfied by the op's default (absent) or a usual value; required ones filled."""
        attrs: dict[str, Any] = {}
        defaults = _REQUIRED.get(part.op_type, lambda s: {})(shape or ())
        for key, wanted in part.matcher.attrs.items():
            if not callable(wanted):
                if wanted is not None:
                    attrs[key] = wanted
                continue
            for candidate in (None, defaults.get(key), *_USUAL.get(key, ())):
                if wanted(candidate):
                    if candidate is not None:
                        attrs[key] = candidate
                    break
            else:
                raise Unbuildable(f"no value of {part.op_type}'s attribute {key} the kit tries "
                                  f"satisfies the pattern")
        if shape is not None:
            attrs = {**defaults, **attrs}
        return attrs


_RUNTIME = Leaf(Wildcard())   # the input of an op the pattern leaves free


def _broadcast(values: np.ndarray, axis: int | None, rank: int) -> np.ndarray:
    values = np.asarray(values)
    if axis is None or values.ndim == 0:
        return values
    shape = [1] * rank
    shape[axis] = values.size
    return values.reshape(shape)


def _range_quantization(array: np.ndarray, dtype: np.dtype, has_zero_point: bool) -> _Quantized:
    """Scale and zero point that map ``array``'s range onto most of ``dtype``'s (with no zero
    point the zero point is 0, so the range is what remains on the dtype's side of 0), as an
    exporter calibrating on this data would choose them."""
    info = np.iinfo(dtype)
    low, high = float(np.min(array, initial=0.0)), float(np.max(array, initial=0.0))
    if not has_zero_point:
        extent = max(abs(low) if info.min < 0 else 0.0, high, 1e-3)
        scale = np.float32(extent / (info.max - 5))
        return _Quantized(scale, np.zeros((), dtype))
    scale = np.float32(max(high - low, 1e-3) / (info.max - info.min - 10))
    zero = int(np.clip(round(info.min + 5 - low / float(scale)), info.min, info.max))
    return _Quantized(scale, np.array(zero, dtype))


def _weight_quantization(array: np.ndarray, axis: int | None) -> _Quantized:
    """Symmetric int8: one scale, or one per slice along ``axis``."""
    if axis is None:
        scale = np.float32(max(float(np.max(np.abs(array))), 1e-3) / 127)
        return _Quantized(scale, np.zeros((), np.int8))
    other = tuple(i for i in range(array.ndim) if i != axis)
    extent = np.maximum(np.max(np.abs(array), axis=other), 1e-3)
    scale = (extent / 127).astype(np.float32)
    return _Quantized(scale, np.zeros(scale.shape, np.int8))


_REQUIRED: dict[str, Callable[[tuple], dict[str, Any]]] = {
    "MaxPool": lambda shape: {"kernel_shape": [2] * max(len(shape) - 2, 1)},
    "AveragePool": lambda shape: {"kernel_shape": [2] * max(len(shape) - 2, 1)},
    "LpPool": lambda shape: {"kernel_shape": [2] * max(len(shape) - 2, 1)},
    "Concat": lambda shape: {"axis": 1 if len(shape) > 1 else 0},
}
_USUAL = {"alpha": (0.01, 0.2, 1.0), "axis": (1, -1, 0), "group": (1,), "transB": (0, 1),
          "kernel_shape": ([3, 3], [1, 1]), "strides": ([1, 1], [2, 2])}


__all__ = ["MAIN_FAMILIES", "anchor_of", "build", "extra_params", "fixed_params"]
