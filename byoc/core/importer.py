"""Importing ONNX models into the graph IR.

The importer reads a model (file, bytes or ModelProto), checks it with onnx's checker, binds
symbolic input dimensions from the caller, turns initializers and Constant nodes into
constants, and gives every value a static type. Types come from onnx's per-node shape
inference (``onnx.shape_inference.infer_node_outputs``) fed with the values of constant
inputs, so shape subgraphs (Shape -> Gather -> Concat -> Reshape) resolve; where inference
leaves a shape open and the node's inputs are all known, the node is evaluated on the
reference interpreter to learn it. Every inferred type is checked: it must be fully static,
and agree with whatever the model itself declares.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import onnx
from google.protobuf.message import DecodeError
from onnx import numpy_helper, shape_inference

from byoc.core import dtypes
from byoc.core.interpreter import evaluate_node, lookup
from byoc.core.ir import Graph, Node, TensorType
from byoc.errors import (ByocError, ModelImportError, ShapeInferenceError, UnsupportedOpError)

MIN_OPSET = 9
MAX_OPSET = onnx.defs.onnx_opset_version()
SUPPORTED_DOMAINS = ("", "ai.onnx")
# Values up to this many elements are computed during import when their inputs are known,
# so that later shape inference can see them (shape tensors, small index arrays).
KNOWN_VALUE_LIMIT = 1 << 16
# No single value may be larger than this. The check runs on declared and inferred types,
# before anything is allocated, so a model claiming a terabyte tensor fails fast instead of
# exhausting memory.
MAX_VALUE_BYTES = 1 << 34

ModelSource = str | os.PathLike | bytes | onnx.ModelProto


def import_model(source: ModelSource,
                 input_shapes: Mapping[str, Sequence[int]] | None = None,
                 constant_inputs: Mapping[str, np.ndarray] | None = None) -> Graph:
    """Import an ONNX model into a typed :class:`Graph`.

    ``input_shapes`` binds graph inputs with symbolic or unknown dimensions to concrete
    shapes (``{"input": (1, 3, 224, 224)}``). ``constant_inputs`` freezes graph inputs to
    given values, which then become constants (for inputs such as a target shape that decide
    other values' shapes). Raises ModelImportError (or a subclass) naming
    the file, node, op and opset when the model is malformed or unsupported.
    """
    model, origin = _read(source)
    try:
        return _Importer(model, origin, dict(input_shapes or {}),
                         dict(constant_inputs or {})).run()
    except ByocError:
        raise
    except (ValueError, TypeError, KeyError, IndexError, onnx.checker.ValidationError,
            onnx.shape_inference.InferenceError) as exc:
        raise ModelImportError(f"{origin}: could not import the model: {exc}") from exc


def _read(source: ModelSource) -> tuple[onnx.ModelProto, str]:
    if isinstance(source, onnx.ModelProto):
        return source, f"model {source.graph.name!r}"
    if isinstance(source, (bytes, bytearray)):
        try:
            return onnx.load_from_string(bytes(source)), "model bytes"
        except (DecodeError, RuntimeError, ValueError) as exc:
            raise ModelImportError(f"the bytes given are not an ONNX model ({exc})") from exc
    path = Path(source)
    if not path.is_file():
        raise ModelImportError(f"{path}: no such model file")
    if path.stat().st_size == 0:
        raise ModelImportError(f"{path}: the file is empty, not an ONNX model; export or copy "
                               f"the model again")
    try:
        model = onnx.load(str(path), load_external_data=False)
    except (DecodeError, RuntimeError, ValueError, OSError) as exc:
        raise ModelImportError(f"{path}: not a readable ONNX model ({exc}); check that the "
                               f"file is an ONNX protobuf and not truncated") from None
    _check_external_locations(model, path)
    try:
        onnx.external_data_helper.load_external_data_for_model(model, str(path.parent))
    except (OSError, ValueError, onnx.checker.ValidationError) as exc:
        raise ModelImportError(f"{path}: the model's external data could not be loaded "
                               f"({exc}); keep the data files next to the model") from None
    return model, str(path)


def _check_external_locations(model: onnx.ModelProto, path: Path) -> None:
    """Refuse external data that is missing or lies outside the model's folder.

    onnx checks this too, but its messages do not say which tensor is affected; and a model
    must never make byoc read files elsewhere on the machine (absolute paths, '..')."""
    folder = path.parent.resolve()
    for tensor in onnx.external_data_helper._get_all_tensors(model):
        if tensor.data_location != onnx.TensorProto.EXTERNAL:
            continue
        location = next((e.value for e in tensor.external_data if e.key == "location"), "")
        where = f"{path}: tensor {tensor.name!r} keeps its data in {location!r}"
        if not location:
            raise ModelImportError(f"{where}, but names no file")
        if os.path.isabs(location) or Path(location).is_absolute():
            raise ModelImportError(f"{where}, an absolute path; external data must be a "
                                   f"relative path inside the model's folder")
        target = (folder / location).resolve()
        if not target.is_relative_to(folder):
            raise ModelImportError(f"{where}, which is outside the model's folder {folder}; "
                                   f"keep the data files next to the model")
        if not target.is_file():
            raise ModelImportError(f"{where}, which was not found in {folder}; copy the data "
                                   f"file next to the model")


class _Importer:
    def __init__(self, model: onnx.ModelProto, origin: str, input_shapes: dict,
                 constant_inputs: dict) -> None:
        self.model = model
        self.origin = origin
        self.input_shapes = input_shapes
        self.constant_inputs = constant_inputs
        self.graph = Graph(name=model.graph.name or "graph")
        # Arrays of values known at import time: constants plus small computed values.
        self.known: dict[str, np.ndarray] = {}
        self.declared: dict[str, onnx.TypeProto] = {}

    def run(self) -> Graph:
        self._check_opsets()
        self._check_structure()
        self._check_model()
        g = self.model.graph
        for vi in list(g.value_info) + list(g.output):
            self.declared[vi.name] = vi.type
        for init in g.initializer:
            self._add_constant(init.name, self._to_array(init, f"initializer {init.name!r}"))
        if g.sparse_initializer:
            raise ModelImportError(f"{self.origin}: sparse initializers are not supported")
        self._bind_inputs()
        names = _NodeNamer()
        for proto in g.node:
            self._import_node(proto, names.name_for(proto))
        for out in g.output:
            if out.name not in self.graph.types:
                raise ModelImportError(f"{self.origin}: graph output {out.name!r} is not "
                                       f"produced by any node, input or initializer")
            self._check_declared(out.name, f"graph output {out.name!r}")
            self.graph.outputs.append(out.name)
        return self.graph

    # -- model-level checks --------------------------------------------------------------------

    def _check_opsets(self) -> None:
        for opset in self.model.opset_import:
            domain = opset.domain
            if domain in SUPPORTED_DOMAINS:
                if not MIN_OPSET <= opset.version <= MAX_OPSET:
                    raise ModelImportError(
                        f"{self.origin}: imports opset {opset.version} of ai.onnx; byoc supports "
                        f"opsets {MIN_OPSET} to {MAX_OPSET} (convert the model with "
                        f"onnx.version_converter)")
                self.graph.opsets[""] = opset.version
            else:
                self.graph.opsets[domain] = opset.version
        if "" not in self.graph.opsets:
            imported = ", ".join(f"{d} {v}" for d, v in self.graph.opsets.items()) or "none"
            raise ModelImportError(f"{self.origin}: the model imports no ai.onnx opset (its "
                                   f"opset_import lists: {imported}); byoc runs ai.onnx "
                                   f"models, so add the ai.onnx opset the graph was built "
                                   f"for")

    def _check_structure(self) -> None:
        """Checks that onnx's checker also makes, done first because its messages do not
        name the value or node at fault."""
        g = self.model.graph
        if not g.output:
            raise ModelImportError(f"{self.origin}: the graph declares no outputs, so there "
                                   f"is nothing to compute; list the results in graph.output")
        for kind, infos in (("input", g.input), ("output", g.output)):
            for vi in infos:
                if not vi.type.HasField("tensor_type"):
                    raise ModelImportError(f"{self.origin}: graph {kind} {vi.name!r} is not a "
                                           f"tensor; byoc supports tensor inputs and outputs "
                                           f"only")
                if not vi.type.tensor_type.HasField("shape"):
                    raise ModelImportError(f"{self.origin}: graph {kind} {vi.name!r} declares "
                                           f"no shape, not even its rank; re-export the model "
                                           f"with shapes on its inputs and outputs")
        for i, proto in enumerate(g.node):
            if not proto.op_type:
                raise ModelImportError(f"{self.origin}: node {proto.name or f'#{i}'!r} has an "
                                       f"empty op_type")
        for init in g.initializer:
            self._check_tensor_data(init, f"initializer {init.name!r}")

    def _check_tensor_data(self, tensor: onnx.TensorProto, what: str) -> None:
        dtype = dtypes.to_numpy(tensor.data_type)
        if dtype is None:
            raise ModelImportError(f"{self.origin}: {what} has element type "
                                   f"{dtypes.onnx_type_name(tensor.data_type)}, which byoc "
                                   f"does not support")
        self._check_size(TensorType(dtype, tuple(tensor.dims)), what)
        if any(d < 0 for d in tensor.dims):
            raise ModelImportError(f"{self.origin}: {what} has a negative dimension in "
                                   f"{list(tensor.dims)}")
        if tensor.data_location == onnx.TensorProto.EXTERNAL:
            return
        count = _count(tensor.dims)
        if tensor.HasField("raw_data"):
            expected = count * np.dtype(dtype).itemsize
            if dtype.kind in "bifuc" and len(tensor.raw_data) != expected:
                raise ModelImportError(
                    f"{self.origin}: {what} has shape {list(tensor.dims)} of {dtype}, which "
                    f"takes {expected} bytes, but its raw_data holds {len(tensor.raw_data)}")
            return
        field = onnx.helper.tensor_dtype_to_field(tensor.data_type)
        held = len(getattr(tensor, field))
        if dtype.kind == "c":
            held //= 2
        if held != count:
            raise ModelImportError(f"{self.origin}: {what} has shape {list(tensor.dims)} "
                                   f"({count} elements) but holds {held} values")

    def _check_size(self, ttype: TensorType, what: str) -> None:
        count = _count(ttype.shape)
        size = count * np.dtype(ttype.dtype).itemsize
        if size > MAX_VALUE_BYTES:
            raise ModelImportError(
                f"{self.origin}: {what} would have {count} elements of {ttype.dtype} "
                f"({size / 2**30:.0f} GiB); byoc refuses values over "
                f"{MAX_VALUE_BYTES // 2**30} GiB")

    def _check_model(self) -> None:
        try:
            onnx.checker.check_model(self.model)
        except onnx.checker.ValidationError as exc:
            # The checker's message spreads one sentence over several lines.
            message = " ".join(str(exc).split())
            raise ModelImportError(f"{self.origin}: the ONNX checker rejects the model: "
                                   f"{message}; fix the model where the checker points (run "
                                   f"onnx.checker.check_model on it to see the same)") from None

    # -- values --------------------------------------------------------------------------------

    def _to_array(self, tensor: onnx.TensorProto, what: str) -> np.ndarray:
        if dtypes.to_numpy(tensor.data_type) is None:
            raise ModelImportError(f"{self.origin}: {what} has element type "
                                   f"{dtypes.onnx_type_name(tensor.data_type)}, which byoc "
                                   f"does not support")
        if tensor.data_location == onnx.TensorProto.EXTERNAL:
            raise ModelImportError(f"{self.origin}: {what} keeps its data in an external file "
                                   f"that was not loaded; load the model from its file path")
        self._check_tensor_data(tensor, what)
        try:
            return numpy_helper.to_array(tensor)
        except (ValueError, TypeError) as exc:
            raise ModelImportError(f"{self.origin}: {what} cannot be read: {exc}") from None

    def _add_constant(self, name: str, array: np.ndarray) -> None:
        array = np.require(array, requirements="C")
        self.graph.constants[name] = array
        self.graph.types[name] = TensorType.of(array)
        self.known[name] = array

    def _bind_inputs(self) -> None:
        g = self.model.graph
        real_inputs = [vi for vi in g.input if vi.name not in self.graph.constants]
        for given, what in ((self.input_shapes, "--input-shape"),
                            (self.constant_inputs, "constant_inputs")):
            unknown = set(given) - {vi.name for vi in real_inputs}
            if unknown:
                raise ModelImportError(
                    f"{self.origin}: {what} names {', '.join(sorted(unknown))}, but the "
                    f"model's inputs are {', '.join(vi.name for vi in real_inputs)}")
        for vi in real_inputs:
            if vi.name in self.constant_inputs:
                value = np.asarray(self.constant_inputs[vi.name])
                self.input_shapes.setdefault(vi.name, value.shape)
                ttype = self._bind_input(vi)
                if ttype != TensorType.of(value):
                    raise ModelImportError(f"{self.origin}: constant for input {vi.name!r} is "
                                           f"{TensorType.of(value)}, the input is {ttype}")
                self._add_constant(vi.name, value)
                continue
            ttype = self._bind_input(vi)
            self.graph.inputs.append(vi.name)
            self.graph.types[vi.name] = ttype

    def _bind_input(self, vi: onnx.ValueInfoProto) -> TensorType:
        if not vi.type.HasField("tensor_type"):
            raise ModelImportError(f"{self.origin}: input {vi.name!r} is not a tensor")
        tt = vi.type.tensor_type
        dtype = dtypes.to_numpy(tt.elem_type)
        if dtype is None:
            raise ModelImportError(f"{self.origin}: input {vi.name!r} has element type "
                                   f"{dtypes.onnx_type_name(tt.elem_type)}, which byoc does "
                                   f"not support")
        dims = [d.dim_value if d.HasField("dim_value") else (d.dim_param or "?")
                for d in tt.shape.dim] if tt.HasField("shape") else None
        bound = self.input_shapes.get(vi.name)
        if bound is not None:
            bound = tuple(int(d) for d in bound)
            if dims is not None and (len(dims) != len(bound) or any(
                    isinstance(d, int) and d != b for d, b in zip(dims, bound))):
                raise ModelImportError(
                    f"{self.origin}: input {vi.name!r} has shape {_dims_text(dims)}; the "
                    f"given shape {'x'.join(map(str, bound))} does not fit it")
            return self._checked_input_type(vi.name, TensorType(dtype, bound))
        if dims is None or any(not isinstance(d, int) for d in dims):
            example = "x".join(str(d) if isinstance(d, int) else "N" for d in dims or ["N"])
            raise ShapeInferenceError(
                f"{self.origin}: input {vi.name!r} has shape {_dims_text(dims)} with unbound "
                f"dimensions; give a concrete shape, e.g. --input-shape {vi.name}={example}")
        return self._checked_input_type(vi.name, TensorType(dtype, tuple(dims)))

    def _checked_input_type(self, name: str, ttype: TensorType) -> TensorType:
        shape = list(ttype.shape)
        if any(d < 0 for d in shape):
            raise ModelImportError(f"{self.origin}: input {name!r} has a negative dimension "
                                   f"in {shape}; dimensions must be 0 or more")
        self._check_size(ttype, f"input {name!r}")
        return ttype

    # -- nodes ---------------------------------------------------------------------------------

    def _import_node(self, proto: onnx.NodeProto, name: str) -> None:
        domain = "" if proto.domain in SUPPORTED_DOMAINS else proto.domain
        opset = self.graph.opsets.get(domain)
        label = f"node {name!r} ({proto.domain or 'ai.onnx'}::{proto.op_type}, opset {opset})"
        if proto.op_type == "Constant" and domain == "":
            node = Node("Constant", [], list(proto.output), _attributes(proto, label), name)
            (value,) = self._evaluate_with(node, [], opset)
            self._add_constant(proto.output[0], value)
            return
        if lookup(domain, proto.op_type) is None:
            raise UnsupportedOpError(
                f"{self.origin}: {label} is not supported by byoc. Supported ops are listed "
                f"by `byoc ops`; replace the op or implement it in a plugin")
        for value in proto.input:
            if value and value not in self.graph.types:
                raise ModelImportError(f"{self.origin}: {label} reads {value!r}, which is not "
                                       f"defined before it (missing initializer or input, or "
                                       f"nodes out of order)")
        node = Node(proto.op_type, list(proto.input), list(proto.output),
                    _attributes(proto, label), name, domain)
        types = self._infer(proto, node, label, opset)
        for out, ttype in zip(node.outputs, types):
            if out:
                if out in self.graph.types:
                    raise ModelImportError(f"{self.origin}: {label} defines {out!r}, which is "
                                           f"already defined")
                self.graph.types[out] = ttype
                self._check_declared(out, f"output {out!r} of {label}")
        self.graph.nodes.append(node)

    def _infer(self, proto: onnx.NodeProto, node: Node, label: str,
               opset: int) -> list[TensorType]:
        inferred = self._onnx_infer(proto, label, opset)
        for out, ttype in inferred.items():
            if any(d < 0 for d in ttype.shape):
                raise ShapeInferenceError(
                    f"{self.origin}: {label}: output {out!r} would have shape "
                    f"{list(ttype.shape)}, with a negative dimension; the node's inputs are "
                    f"too small for its attributes")
            self._check_size(ttype, f"output {out!r} of {label}")
        if node.op_type == "Reshape" and proto.output[0] in inferred:
            self._check_reshape_count(proto, inferred[proto.output[0]], label)
        self._check_op_constraints(node, label, opset)
        inputs_known = all(not v or v in self.known for v in proto.input)
        computed = None
        if inputs_known and self._cheap_to_evaluate(proto):
            computed = self._evaluate(node, opset)
        if node.op_type == "Shape" and not computed:
            computed = self._evaluate_shape(node, opset)
        types: list[TensorType] = []
        for i, out in enumerate(proto.output):
            if not out:
                types.append(None)
                continue
            ttype = inferred.get(out)
            if computed is not None:
                actual = TensorType.of(computed[i])
                if ttype is not None and ttype != actual:
                    raise ShapeInferenceError(
                        f"{self.origin}: {label} output {out!r}: onnx infers {ttype}, but "
                        f"evaluating the node gives {actual}")
                ttype = actual
                if computed[i].size <= KNOWN_VALUE_LIMIT:
                    self.known[out] = computed[i]
            if ttype is None:
                raise ShapeInferenceError(
                    f"{self.origin}: {label}: the shape of output {out!r} cannot be determined "
                    f"statically (it depends on runtime values); byoc needs static shapes")
            types.append(ttype)
        return types

    def _check_reshape_count(self, proto: onnx.NodeProto, result: TensorType,
                             label: str) -> None:
        # onnx's inference takes the target shape as given, so a Reshape that changes the
        # number of elements would otherwise only fail when the model runs.
        source = self.graph.types[proto.input[0]]
        if _count(source.shape) != _count(result.shape):
            raise ShapeInferenceError(
                f"{self.origin}: {label} reshapes {proto.input[0]!r} of shape "
                f"{list(source.shape)} ({_count(source.shape)} elements) to "
                f"{list(result.shape)} ({_count(result.shape)} elements)")

    def _check_op_constraints(self, node: Node, label: str, opset: int) -> None:
        # Constraints ONNX inference leaves out (a Conv weight that does not fit its input's
        # channels...) would otherwise surface only when the model runs, or not at all on a
        # backend that trusts the shapes.
        impl = lookup(node.domain, node.op_type)(node, [None] * len(node.outputs), opset)
        inputs = [None if not v else self.known.get(v, _stand_in(self.graph.types[v]))
                  for v in node.inputs]
        try:
            impl.check(*inputs, **node.attrs)
        except (ValueError, TypeError) as exc:
            raise ShapeInferenceError(f"{self.origin}: {label} cannot run on its inputs: "
                                      f"{exc}; fix the model's weights or attributes") from None

    def _cheap_to_evaluate(self, proto: onnx.NodeProto) -> bool:
        return all(not v or self.known[v].size <= KNOWN_VALUE_LIMIT for v in proto.input)

    def _evaluate(self, node: Node, opset: int) -> list[np.ndarray]:
        return self._evaluate_with(node, [self.known[v] if v else None for v in node.inputs],
                                   opset)

    def _evaluate_with(self, node: Node, inputs: list, opset: int) -> list[np.ndarray]:
        try:
            return evaluate_node(node, inputs, opset=opset)
        except ByocError as exc:
            raise ModelImportError(f"{self.origin}: {exc}") from None

    def _evaluate_shape(self, node: Node, opset: int) -> list[np.ndarray]:
        # Shape reads only its input's shape.
        return self._evaluate_with(node, [_stand_in(self.graph.types[node.inputs[0]])], opset)

    def _onnx_infer(self, proto: onnx.NodeProto, label: str,
                    opset: int) -> dict[str, TensorType]:
        try:
            schema = onnx.defs.get_schema(proto.op_type, opset, proto.domain)
        except onnx.defs.SchemaError:
            raise UnsupportedOpError(f"{self.origin}: {label}: ONNX defines no such op at this "
                                     f"opset") from None
        input_types = {}
        input_data = {}
        for value in proto.input:
            if not value:
                continue
            ttype = self.graph.types[value]
            input_types[value] = onnx.helper.make_tensor_type_proto(
                dtypes.to_onnx(ttype.dtype), list(ttype.shape))
            if value in self.known and self.known[value].size <= KNOWN_VALUE_LIMIT:
                input_data[value] = numpy_helper.from_array(self.known[value], value)
        try:
            result = shape_inference.infer_node_outputs(
                schema, proto, input_types, input_data,
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

    def _check_declared(self, value: str, what: str) -> None:
        declared = self.declared.get(value)
        if declared is None or not declared.HasField("tensor_type"):
            return
        actual = self.graph.types[value]
        tt = declared.tensor_type
        if tt.elem_type and dtypes.to_numpy(tt.elem_type) != actual.dtype:
            raise ShapeInferenceError(
                f"{self.origin}: {what} is declared as "
                f"{dtypes.onnx_type_name(tt.elem_type)} but computes {actual.dtype}")
        if tt.HasField("shape"):
            dims = [d.dim_value if d.HasField("dim_value") else None for d in tt.shape.dim]
            if len(dims) != actual.rank or any(d is not None and d != a
                                               for d, a in zip(dims, actual.shape)):
                raise ShapeInferenceError(
                    f"{self.origin}: {what} is declared with shape {_dims_text(dims)} but "
                    f"computes {list(actual.shape)}")


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


def _stand_in(ttype: TensorType) -> np.ndarray:
    """A zero-strided view with the shape and dtype of ``ttype``, for code that reads only
    those: it costs one element whatever the shape."""
    return np.broadcast_to(np.zeros((), ttype.dtype), ttype.shape)


def _attributes(proto: onnx.NodeProto, label: str) -> dict:
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


def _count(shape) -> int:
    count = 1
    for d in shape:
        count *= int(d)
    return count


def _dims_text(dims) -> str:
    return "[" + ",".join(str(d) if d is not None else "?" for d in (dims or [])) + "]"


class _NodeNamer:
    """Gives nameless nodes a name from their op type and keeps names unique."""

    def __init__(self) -> None:
        self.used: set[str] = set()

    def name_for(self, proto: onnx.NodeProto) -> str:
        base = proto.name or f"{proto.op_type}_{len(self.used)}"
        name, i = base, 1
        while name in self.used:
            name, i = f"{base}_{i}", i + 1
        self.used.add(name)
        return name
