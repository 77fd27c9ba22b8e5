"""The static type of every node output, as the importer infers and checks it.

Types come from onnx's per-node shape inference (``onnx.shape_inference.infer_node_outputs``)
fed with the values of constant inputs, so shape subgraphs (Shape -> Gather -> Concat ->
Reshape) resolve; ops plugins declare (``byoc_import_custom_ops``) bring their own shape
function. Where inference leaves a shape open and the node's inputs are all known, the node is
evaluated on the reference interpreter to learn it, and otherwise the op's own
``OpImpl.infer_types`` may give it (Dropout's mask). Small computed values are remembered, so
that later nodes' inference can see them. Every type is checked: no negative dimension, no
value over the size limit, the element counts of a Reshape, and the constraints onnx's
inference leaves out (``OpImpl.check``).
"""

from __future__ import annotations

from typing import Mapping

import numpy as np
import onnx
from onnx import numpy_helper, shape_inference

from byoc.core import dtypes
from byoc.core.import_reading import check_size, element_count
from byoc.core.interpreter import evaluate_node, lookup
from byoc.core.interpreter.base import declared_op
from byoc.core.ir import Graph, Node, TensorType
from byoc.errors import ByocError, ModelImportError, ShapeInferenceError, UnsupportedOpError

# Values up to this many elements are computed during import when their inputs are known,
# so that later shape inference can see them (shape tensors, small index arrays).
KNOWN_VALUE_LIMIT = 1 << 16
# onnx's shape inference is handed non-integer known values up to this many elements.
SHAPE_DATA_FLOAT_LIMIT = 16


class NodeTyping:
    """Infers the types of one model's nodes, one node at a time in topological order.

    It reads the types of ``graph`` (the graph being imported) and ``known`` (arrays of the
    values known at import: constants plus small computed values), and adds to ``known`` the
    small values it computes. ``origin`` names the model in errors.
    """

    def __init__(self, model: onnx.ModelProto, origin: str, graph: Graph,
                 known: dict[str, np.ndarray]) -> None:
        self.model = model
        self.origin = origin
        self.graph = graph
        self.known = known

    def infer(self, proto: onnx.NodeProto, node: Node, label: str,
              opset: int) -> list[TensorType | None]:
        """The static type of each output (None for an omitted one, and for one whose shape
        cannot be determined at import)."""
        inferred = (self._declared_infer(proto, label, opset)
                    if declared_op(node.domain, node.op_type)
                    else self.onnx_infer(proto, label, opset))
        for out, ttype in inferred.items():
            if any(d < 0 for d in ttype.shape):
                raise ShapeInferenceError(
                    f"{self.origin}: {label}: output {out!r} would have shape "
                    f"{list(ttype.shape)}, with a negative dimension; the node's inputs are "
                    f"too small for its attributes")
            check_size(ttype, f"output {out!r} of {label}", self.origin)
        if node.op_type == "Reshape" and proto.output[0] in inferred:
            self._check_reshape_count(proto, inferred[proto.output[0]], label)
        self._check_op_constraints(node, label, opset)
        inputs_known = all(not v or v in self.known for v in proto.input)
        computed = None
        if inputs_known and self._cheap_to_evaluate(proto):
            computed = self._evaluate(node, opset)
        if node.op_type == "Shape" and not computed:
            computed = self._evaluate_shape(node, opset)
        own_types = [None] * len(proto.output)
        if computed is None and any(out and out not in inferred for out in proto.output):
            own_types = (self._own_infer(node, opset)
                         or self._sized_by_known_values(node, opset) or own_types)
        types: list[TensorType] = []
        for i, out in enumerate(proto.output):
            if not out:
                types.append(None)
                continue
            ttype = inferred.get(out) or own_types[i]
            if computed is not None:
                actual = TensorType.of(computed[i])
                if ttype is not None and ttype != actual:
                    raise ShapeInferenceError(
                        f"{self.origin}: {label} output {out!r}: onnx infers {ttype}, but "
                        f"evaluating the node gives {actual}")
                ttype = actual
                if computed[i].size <= KNOWN_VALUE_LIMIT:
                    self.known[out] = computed[i]
            types.append(ttype)
        return types

    def evaluate_with(self, node: Node, inputs: list, opset: int) -> list[np.ndarray]:
        """The node's outputs on the reference interpreter, fed ``inputs``."""
        try:
            return evaluate_node(node, inputs, opset=opset)
        except ByocError as exc:
            raise ModelImportError(f"{self.origin}: {exc}") from None

    def onnx_infer(self, proto: onnx.NodeProto, label: str, opset: int,
                   assumed: Mapping[str, np.ndarray] | None = None) -> dict[str, TensorType]:
        """onnx's static output types of the node, fed with the values known at import and
        those ``assumed`` for others."""
        try:
            schema = onnx.defs.get_schema(proto.op_type, opset, proto.domain)
        except onnx.defs.SchemaError:
            raise UnsupportedOpError(f"{self.origin}: {label}: ONNX defines no such op at this "
                                     f"opset") from None
        if schema.deprecated:
            # onnx infers nothing for a deprecated schema; the op's own inference
            # (OpImpl.infer_types) or evaluating the node gives the types.
            return {}
        input_types = {}
        input_data = {}
        for value in proto.input:
            if not value:
                continue
            ttype = self.graph.types[value]
            input_types[value] = onnx.helper.make_tensor_type_proto(
                dtypes.to_onnx(ttype.dtype), list(ttype.shape))
            if value in self.known and may_decide_shapes(self.known[value]):
                input_data[value] = numpy_helper.from_array(self.known[value], value)
            elif assumed and value in assumed:
                input_data[value] = numpy_helper.from_array(assumed[value], value)
        try:
            result = shape_inference.infer_node_outputs(
                schema, _with_default_attributes(proto, schema), input_types, input_data,
                opset_imports=list(self.model.opset_import), ir_version=self.model.ir_version)
        except (onnx.shape_inference.InferenceError, onnx.checker.ValidationError,
                RuntimeError) as exc:
            message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ShapeInferenceError(f"{self.origin}: {label} is inconsistent with its "
                                      f"inputs: {message}; check the node's input shapes, "
                                      f"dtypes and attributes against the op's ONNX "
                                      f"specification") from None
        types = {}
        for out, type_proto in result.items():
            ttype = _static_type(type_proto)
            if ttype is not None:
                types[out] = ttype
        return types

    # -- outputs whose size depends on values (NonZero, Compress, Unique...) -----------------

    def size_deciding_inputs(self, node: Node, opset: int) -> list[tuple[str, str, bool]]:
        """(value, ONNX input name, whether its values decide the output size) per input of
        a node whose OpImpl names such inputs in ``output_size_depends_on``; [] otherwise."""
        deciding = lookup(node.domain, node.op_type).output_size_depends_on
        if not deciding:
            return []
        formal = [p.name for p in onnx.defs.get_schema(node.op_type, opset, node.domain).inputs]
        return [(value, name, name in deciding) for value, name in zip(node.inputs, formal)]

    def _sized_by_known_values(self, node: Node, opset: int) -> list[TensorType] | None:
        """The output types of such a node when the inputs that decide its output size are
        known but others are not (Compress with a constant condition): the node is evaluated
        with shape-only stand-ins for the others, and only the result's types are kept."""
        inputs = self.size_deciding_inputs(node, opset)
        if not inputs or any(value and decides and value not in self.known
                             for value, _, decides in inputs):
            return None
        arrays = []
        for value, _, _ in inputs:
            if not value:
                arrays.append(None)
            elif value in self.known:
                arrays.append(self.known[value])
            else:
                arrays.append(stand_in(self.graph.types[value]))
        return [TensorType.of(a) for a in self.evaluate_with(node, arrays, opset)]

    # -- checks onnx's inference leaves out ----------------------------------------------------

    def _check_reshape_count(self, proto: onnx.NodeProto, result: TensorType,
                             label: str) -> None:
        # onnx's inference takes the target shape as given, so a Reshape that changes the
        # number of elements would otherwise only fail when the model runs.
        source = self.graph.types[proto.input[0]]
        if element_count(source.shape) != element_count(result.shape):
            raise ShapeInferenceError(
                f"{self.origin}: {label} reshapes {proto.input[0]!r} of shape "
                f"{list(source.shape)} ({element_count(source.shape)} elements) to "
                f"{list(result.shape)} ({element_count(result.shape)} elements)")

    def _check_op_constraints(self, node: Node, label: str, opset: int) -> None:
        # Constraints ONNX inference leaves out (a Conv weight that does not fit its input's
        # channels...) would otherwise surface only when the model runs, or not at all on a
        # backend that trusts the shapes.
        impl = lookup(node.domain, node.op_type)(node, [None] * len(node.outputs), opset)
        inputs = [None if not v else self.known.get(v, stand_in(self.graph.types[v]))
                  for v in node.inputs]
        try:
            impl.check(*inputs, **node.attrs)
        except (ValueError, TypeError) as exc:
            raise ShapeInferenceError(f"{self.origin}: {label} cannot run on its inputs: "
                                      f"{exc}; fix the model's weights or attributes") from None

    # -- other sources of types ----------------------------------------------------------------

    def _own_infer(self, node: Node, opset: int) -> list[TensorType | None] | None:
        """The op's own types for outputs onnx's inference leaves open (OpImpl.infer_types)."""
        impl = lookup(node.domain, node.op_type)(node, [None] * len(node.outputs), opset)
        return impl.infer_types([self.graph.types[v] if v else None for v in node.inputs],
                                **node.attrs)

    def _cheap_to_evaluate(self, proto: onnx.NodeProto) -> bool:
        return all(not v or self.known[v].size <= KNOWN_VALUE_LIMIT for v in proto.input)

    def _evaluate(self, node: Node, opset: int) -> list[np.ndarray]:
        return self.evaluate_with(node, [self.known[v] if v else None for v in node.inputs],
                                  opset)

    def _evaluate_shape(self, node: Node, opset: int) -> list[np.ndarray]:
        # Shape reads only its input's shape.
        return self.evaluate_with(node, [stand_in(self.graph.types[node.inputs[0]])], opset)

    def _declared_infer(self, proto: onnx.NodeProto, label: str,
                        opset: int | None) -> dict[str, TensorType]:
        """The types of an op a plugin declares, from its shape function."""
        declared = declared_op(proto.domain, proto.op_type)
        inputs = [self.graph.types[v] if v else None for v in proto.input]
        values = [self.known.get(v) if v else None for v in proto.input]
        types = declared.infer_types(f"{self.origin}: {label}", opset, inputs, values,
                                     node_attributes(proto, label), len(proto.output))
        return {out: ttype for out, ttype in zip(proto.output, types) if out}


def node_attributes(proto: onnx.NodeProto, label: str) -> dict:
    """The node's attributes as Python values: strings decoded, tensors as arrays."""
    attrs = {}
    for attr in proto.attribute:
        if attr.ref_attr_name:
            raise ModelImportError(f"{label}: attribute references are not supported")
        if attr.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS):
            raise UnsupportedOpError(f"{label}: control flow with subgraphs is not supported")
        value = onnx.helper.get_attribute_value(attr)
        if isinstance(value, bytes):
            value = value.decode("utf-8")
        elif isinstance(value, onnx.TensorProto):
            value = numpy_helper.to_array(value)
        elif isinstance(value, list):
            value = [v.decode("utf-8") if isinstance(v, bytes) else v for v in value]
        attrs[attr.name] = value
    return attrs


def may_decide_shapes(value: np.ndarray) -> bool:
    """Whether onnx's inference may need ``value`` itself to compute output shapes: integer
    values (shapes, axes, pads, sizes, k...) and short vectors (Resize and Upsample scales,
    Range bounds, OneHot depth). Handing it weights too would only cost their serialization."""
    if value.dtype.kind in "iub":
        return value.size <= KNOWN_VALUE_LIMIT
    return value.size <= SHAPE_DATA_FLOAT_LIMIT


def stand_in(ttype: TensorType) -> np.ndarray:
    """A zero-strided view with the shape and dtype of ``ttype``, for code that reads only
    those: it costs one element whatever the shape."""
    return np.broadcast_to(np.zeros((), ttype.dtype), ttype.shape)


def _with_default_attributes(proto: onnx.NodeProto,
                             schema: onnx.defs.OpSchema) -> onnx.NodeProto:
    """``proto`` with every attribute it omits set to its schema default. Some of onnx's
    inference functions assume another default than their schema states (STFT's onesided
    defaults to 1, its inference reads an absent one as 0)."""
    present = {attr.name for attr in proto.attribute}
    missing = [attr.default_value for name, attr in schema.attributes.items()
               if name not in present
               and attr.default_value.type != onnx.AttributeProto.UNDEFINED]
    if not missing:
        return proto
    filled = onnx.NodeProto()
    filled.CopyFrom(proto)
    filled.attribute.extend(missing)
    return filled


def _static_type(type_proto: onnx.TypeProto) -> TensorType | None:
    if not type_proto.HasField("tensor_type"):
        return None
    tt = type_proto.tensor_type
    dtype = dtypes.to_numpy(tt.elem_type)
    if dtype is None or not tt.HasField("shape"):
        return None
    dims = []
    for d in tt.shape.dim:
        if not d.HasField("dim_value"):
            return None
        dims.append(d.dim_value)
    return TensorType(dtype, tuple(dims))
