"""Importing ONNX models into the graph IR.

The importer reads a model (file, bytes or ModelProto), checks it with onnx's checker,
upgrades models of opsets older than byoc implements with onnx's version converter
(:mod:`byoc.core.opset_upgrade`), binds symbolic input dimensions from the caller, turns
initializers and Constant nodes into constants, and gives every value a static type. Types
come from onnx's per-node shape inference (``onnx.shape_inference.infer_node_outputs``) fed
with the values of constant inputs, so shape subgraphs (Shape -> Gather -> Concat -> Reshape)
resolve; where inference leaves a shape open and the node's inputs are all known, the node is
evaluated on the reference interpreter to learn it, and otherwise the op's own
``OpImpl.infer_types`` may give it (Dropout's mask). Every inferred type is checked: it
must be fully static, and agree with whatever the model itself declares; what the model
leaves undeclared (graph outputs without a shape or element type, as older exporters wrote
them) is simply inferred.

Initializers are constants. From IR version 4 on, an initializer also listed among the graph
inputs is a default the user may override: it stays a constant unless the caller names it
in ``fed_inputs``, which makes it a real input of the imported graph. Under IR version 3
every initializer had to be listed as an input, so there the listing means nothing and
initializers are always constants (as in onnxruntime).

A node whose output size depends on the values of inputs not known at import (NonZero,
NonMaxSuppression, TopK with a runtime K...) cannot be typed. :func:`import_model` refuses it,
naming the node and those inputs. :func:`import_with_tail` instead sets it apart, with every
node that reads a value whose shape is therefore unknown, as the model's dynamic tail
(:mod:`byoc.core.dynamic_tail`), which runs eagerly on the reference interpreter after the
static graph; the nodes that do not depend on it are imported statically as always.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Collection, Mapping, Sequence

import numpy as np
import onnx
from google.protobuf.message import DecodeError
from onnx import numpy_helper, shape_inference

from byoc.core import dtypes
from byoc.core.dynamic_tail import DynamicTail, TailRoot
from byoc.core.interpreter import evaluate_node, lookup
from byoc.core.interpreter.base import declared_op
from byoc.core.ir import Graph, Node, TensorType
from byoc.core.experimental_ops import holds_experimental_ops, rewrite_experimental_ops
from byoc.core.opset_upgrade import (NATIVE_MIN_OPSET, ai_onnx_opset, upgrade,
                                     with_initializers_as_inputs)
from byoc.errors import (ByocError, ModelImportError, ShapeInferenceError, UnsupportedOpError)

# The oldest ai.onnx opset a model may import; models older than NATIVE_MIN_OPSET are
# upgraded to it on import.
MIN_OPSET = 1
MAX_OPSET = onnx.defs.onnx_opset_version()
SUPPORTED_DOMAINS = ("", "ai.onnx")
# Values up to this many elements are computed during import when their inputs are known,
# so that later shape inference can see them (shape tensors, small index arrays).
KNOWN_VALUE_LIMIT = 1 << 16
# onnx's shape inference is handed non-integer known values up to this many elements.
SHAPE_DATA_FLOAT_LIMIT = 16
# No single value may be larger than this. The check runs on declared and inferred types,
# before anything is allocated, so a model claiming a terabyte tensor fails fast instead of
# exhausting memory.
MAX_VALUE_BYTES = 1 << 34

ModelSource = str | os.PathLike | bytes | onnx.ModelProto


def import_model(source: ModelSource,
                 input_shapes: Mapping[str, Sequence[int]] | None = None,
                 constant_inputs: Mapping[str, np.ndarray] | None = None,
                 fed_inputs: Collection[str] = ()) -> Graph:
    """Import an ONNX model into a typed :class:`Graph`.

    ``input_shapes`` binds graph inputs with symbolic or unknown dimensions to concrete
    shapes (``{"input": (1, 3, 224, 224)}``). ``constant_inputs`` freezes graph inputs to
    given values, which then become constants (for inputs such as a target shape that decide
    other values' shapes). ``fed_inputs`` names the inputs the caller will feed: graph inputs
    (named or not, they are fed) and initializers the model also lists as graph inputs
    (IR version 4 and later), which become real inputs instead of constants. Raises
    ModelImportError (or a subclass) naming the file, node, op and opset when the model is
    malformed or unsupported, and a ShapeInferenceError naming the node and the inputs to
    make constant when the size of an output depends on values not known at import.
    """
    graph, _ = _import(source, input_shapes, constant_inputs, fed_inputs, with_tail=False)
    return graph


def import_with_tail(source: ModelSource,
                     input_shapes: Mapping[str, Sequence[int]] | None = None,
                     constant_inputs: Mapping[str, np.ndarray] | None = None,
                     fed_inputs: Collection[str] = ()) -> tuple[Graph, DynamicTail | None]:
    """:func:`import_model`, except that nodes whose output sizes are decided by values
    known only at run time, and the nodes that depend on them, become the returned dynamic
    tail instead of an error (None when the model has none). The static graph's outputs are
    then its share of the model's outputs followed by the values the tail reads from it."""
    return _import(source, input_shapes, constant_inputs, fed_inputs, with_tail=True)


def _import(source: ModelSource, input_shapes: Mapping[str, Sequence[int]] | None,
            constant_inputs: Mapping[str, np.ndarray] | None, fed_inputs: Collection[str],
            with_tail: bool) -> tuple[Graph, DynamicTail | None]:
    model, origin = _read(source)
    importer = _Importer(model, origin, dict(input_shapes or {}), dict(constant_inputs or {}),
                         set(fed_inputs), with_tail)
    try:
        return importer.run()
    except ByocError:
        raise
    except (ValueError, TypeError, KeyError, IndexError, onnx.checker.ValidationError,
            onnx.shape_inference.InferenceError) as exc:
        raise ModelImportError(
            f"{origin}: could not import {importer.at}: {exc}; check it against the ONNX "
            f"specification of its op (onnx.checker.check_model(model, full_check=True) "
            f"gives onnx's view), and if onnxruntime runs the model, report this to byoc") \
            from exc


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
                 constant_inputs: dict, fed_inputs: set[str], with_tail: bool) -> None:
        self.model = model
        self.origin = origin
        self.input_shapes = input_shapes
        self.constant_inputs = constant_inputs
        self.fed_inputs = fed_inputs
        # The ai.onnx opset the model was written for, when older than byoc implements.
        self.upgraded_from: int | None = None
        # What is being imported, for errors nothing more specific explains.
        self.at = "the model"
        self.graph = Graph(name=model.graph.name or "graph")
        # Arrays of values known at import time: constants plus small computed values.
        self.known: dict[str, np.ndarray] = {}
        self.declared: dict[str, onnx.TypeProto] = {}
        # The dynamic tail, when allowed: its nodes, the nodes starting it, and the values
        # they define (whose shapes are known only at run time).
        self.with_tail = with_tail
        self.tail_nodes: list[Node] = []
        self.tail_roots: list[TailRoot] = []
        self.tail_values: set[str] = set()

    def run(self) -> tuple[Graph, DynamicTail | None]:
        self._check_opsets()
        if holds_experimental_ops(self.model, ai_onnx_opset(self.model)):
            self.model = rewrite_experimental_ops(self.model)
        self._check_structure()
        self._check_model()
        self._upgrade_old_opset()
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
            if out.name in self.tail_values:
                continue
            if out.name not in self.graph.types:
                raise ModelImportError(f"{self.origin}: graph output {out.name!r} is not "
                                       f"produced by any node, input or initializer")
            self._check_declared(out.name, f"graph output {out.name!r}")
            self.graph.outputs.append(out.name)
        return self.graph, self._finish_tail([out.name for out in g.output])

    # -- model-level checks --------------------------------------------------------------------

    def _check_opsets(self) -> None:
        for opset in self.model.opset_import:
            domain = opset.domain
            if domain in SUPPORTED_DOMAINS:
                if not MIN_OPSET <= opset.version <= MAX_OPSET:
                    raise ModelImportError(
                        f"{self.origin}: imports opset {opset.version} of ai.onnx, which does "
                        f"not exist in the installed onnx; byoc supports opsets {MIN_OPSET} to "
                        f"{MAX_OPSET}: set the model's ai.onnx opset_import to the opset its "
                        f"nodes were written for")
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
                if vi.type.WhichOneof("value") is None:
                    if kind == "output":
                        continue  # an output may leave its type out entirely: it is inferred
                    raise ModelImportError(f"{self.origin}: graph input {vi.name!r} declares "
                                           f"no type; declare it as a tensor with its element "
                                           f"type and shape")
                if not vi.type.HasField("tensor_type"):
                    raise ModelImportError(f"{self.origin}: graph {kind} {vi.name!r} is not a "
                                           f"tensor; byoc supports tensor inputs and outputs "
                                           f"only")
        for i, proto in enumerate(g.node):
            if not proto.op_type:
                raise ModelImportError(f"{self.origin}: node {proto.name or f'#{i}'!r} has an "
                                       f"empty op_type")
        # The only check of the initializers' data: _to_array trusts it.
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
        if held != dtypes.stored_entries(tensor.data_type, count):
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
            onnx.checker.check_model(self._as_the_checker_wants())
        except onnx.checker.ValidationError as exc:
            # The checker's message spreads one sentence over several lines.
            message = " ".join(str(exc).split())
            raise ModelImportError(f"{self.origin}: the ONNX checker rejects the model: "
                                   f"{message}; fix the model where the checker points (run "
                                   f"onnx.checker.check_model on it to see the same)") from None

    def _as_the_checker_wants(self) -> onnx.ModelProto:
        """The model with what onnx's checker demands, but onnxruntime does without, filled
        in: under IR version 3 every initializer listed among the graph inputs; an element
        type and a shape on every graph output (byoc infers them) and a shape on every graph
        input (bound by --input-shape, or refused naming the input).

        The filled-in types are placeholders the checker only sees exist: it does no
        inference (that is the importer's own, which checks the real types)."""
        model = self.model
        if model.ir_version < 4:
            model = with_initializers_as_inputs(model)
        model = _deprecated_nodes_set_aside(model)
        g = model.graph
        undeclared = [vi for vi in g.output if not vi.type.tensor_type.elem_type
                      or not vi.type.tensor_type.HasField("shape")]
        undeclared += [vi for vi in g.input if vi.type.HasField("tensor_type")
                       and not vi.type.tensor_type.HasField("shape")]
        if undeclared:
            if model is self.model:
                model = onnx.ModelProto()
                model.CopyFrom(self.model)
            names = {vi.name for vi in undeclared}
            for vi in list(model.graph.output) + list(model.graph.input):
                if vi.name in names:
                    tensor_type = vi.type.tensor_type
                    tensor_type.elem_type = tensor_type.elem_type or onnx.TensorProto.FLOAT
                    tensor_type.shape.SetInParent()
        return model

    def _upgrade_old_opset(self) -> None:
        opset = ai_onnx_opset(self.model)
        if opset >= NATIVE_MIN_OPSET:
            return
        self.model = upgrade(self.model, self.origin)
        self.upgraded_from = opset
        self.graph.opsets[""] = ai_onnx_opset(self.model)

    # -- values --------------------------------------------------------------------------------

    def _to_array(self, tensor: onnx.TensorProto, what: str) -> np.ndarray:
        if dtypes.to_numpy(tensor.data_type) is None:
            raise ModelImportError(f"{self.origin}: {what} has element type "
                                   f"{dtypes.onnx_type_name(tensor.data_type)}, which byoc "
                                   f"does not support")
        if tensor.data_location == onnx.TensorProto.EXTERNAL:
            raise ModelImportError(f"{self.origin}: {what} keeps its data in an external file "
                                   f"that was not loaded; load the model from its file path")
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
        fed_initializers = self._fed_initializers()
        for name in fed_initializers:
            del self.graph.constants[name], self.known[name]
            self.input_shapes.setdefault(name, self.graph.types[name].shape)
        real_inputs = [vi for vi in g.input if vi.name not in self.graph.constants]
        for given, what in ((self.input_shapes, "--input-shape"),
                            (self.constant_inputs, "constant_inputs")):
            unknown = set(given) - {vi.name for vi in real_inputs}
            if unknown:
                raise ModelImportError(
                    f"{self.origin}: {what} names {', '.join(sorted(unknown))}, but the "
                    f"model's inputs are {', '.join(vi.name for vi in real_inputs)}")
        unbound = []
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
            if ttype is None:
                unbound.append(vi)
                continue
            if vi.name in fed_initializers and ttype != self.graph.types[vi.name]:
                raise ModelImportError(
                    f"{self.origin}: initializer {vi.name!r} is {self.graph.types[vi.name]}, "
                    f"but the graph input of that name declares {ttype}; make the two agree")
            self.graph.inputs.append(vi.name)
            self.graph.types[vi.name] = ttype
        if unbound:
            raise ShapeInferenceError(f"{self.origin}: {_unbound_dims_message(unbound)}")

    def _fed_initializers(self) -> set[str]:
        """The names in ``fed_inputs`` that are initializers the model lets users override
        (listed among its graph inputs, IR version 4 or later); ModelImportError for a name
        that is neither such an initializer nor a graph input."""
        g = self.model.graph
        inputs = {vi.name for vi in g.input}
        initializers = {init.name for init in g.initializer}
        overridable = inputs & initializers if self.model.ir_version >= 4 else set()
        unknown = sorted(self.fed_inputs - inputs - initializers)
        if unknown:
            choices = sorted(inputs - initializers) + sorted(overridable)
            raise ModelImportError(
                f"{self.origin}: input {', '.join(map(repr, unknown))} is given, but the model "
                f"has no input or initializer of that name; the inputs it can be given are "
                f"{', '.join(choices) or 'none'}")
        constant = sorted(self.fed_inputs & initializers - overridable)
        if constant:
            why = ("under IR version 3 every initializer is a constant"
                   if self.model.ir_version < 4 else
                   "it is not listed among the graph inputs, so the model makes it a constant")
            raise ModelImportError(
                f"{self.origin}: initializer {', '.join(map(repr, constant))} is given as an "
                f"input, but {why}; to let users override it, list it in graph.input (with "
                f"ir_version 4 or later)")
        return self.fed_inputs & overridable

    def _bind_input(self, vi: onnx.ValueInfoProto) -> TensorType | None:
        """The input's static type: its declared shape, or the shape bound to it. None when
        dimensions stay unbound (the caller reports every such input at once)."""
        if not vi.type.HasField("tensor_type"):
            raise ModelImportError(f"{self.origin}: input {vi.name!r} is not a tensor")
        tt = vi.type.tensor_type
        dtype = dtypes.to_numpy(tt.elem_type)
        if dtype is None:
            declared = (f"element type {dtypes.onnx_type_name(tt.elem_type)}, which byoc does "
                        f"not support" if tt.elem_type else "no element type")
            raise ModelImportError(f"{self.origin}: input {vi.name!r} declares {declared}; "
                                   f"declare one byoc supports (`byoc ops` lists the ops, "
                                   f"which take float, integer and bool tensors)")
        dims = _declared_dims(tt)
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
            return None
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
        upgraded = (f", upgraded from opset {self.upgraded_from}"
                    if self.upgraded_from and not domain else "")
        label = (f"node {name!r} ({proto.domain or 'ai.onnx'}::{proto.op_type}, opset "
                 f"{opset}{upgraded})")
        self.at = label
        if proto.op_type == "Constant" and domain == "":
            node = Node("Constant", [], list(proto.output), _attributes(proto, label), name)
            (value,) = self._evaluate_with(node, [], opset)
            self._add_constant(proto.output[0], value)
            return
        if domain and lookup(domain, proto.op_type) is None:
            self._require_plugin_op(domain, proto.op_type, label)
        if lookup(domain, proto.op_type) is None:
            raise UnsupportedOpError(
                f"{self.origin}: {label} is not supported by byoc. Supported ops are listed "
                f"by `byoc ops`; replace the op or implement it in a plugin")
        for value in proto.input:
            if value and value not in self.graph.types and value not in self.tail_values:
                raise ModelImportError(f"{self.origin}: {label} reads {value!r}, which is not "
                                       f"defined before it (missing initializer or input, or "
                                       f"nodes out of order)")
        node = Node(proto.op_type, list(proto.input), list(proto.output),
                    _attributes(proto, label), name, domain)
        if any(value in self.tail_values for value in node.inputs):
            self._add_to_tail(node, label)
            return
        types = self._infer(proto, node, label, opset)
        unsized = [out for out, ttype in zip(node.outputs, types) if out and ttype is None]
        if unsized:
            deciding = self._unknown_size_deciders(proto, node, label, opset)
            if not self.with_tail:
                raise ShapeInferenceError(f"{self.origin}: {label}: "
                                          f"{self._why_not_static(unsized[0], deciding)}")
            self.tail_roots.append(TailRoot(name, proto.op_type,
                                            tuple(formal for _, formal in deciding)))
            self._add_to_tail(node, label)
            return
        for out, ttype in zip(node.outputs, types):
            if out:
                if out in self.graph.types:
                    raise ModelImportError(f"{self.origin}: {label} defines {out!r}, which is "
                                           f"already defined")
                self.graph.types[out] = ttype
                self._check_declared(out, f"output {out!r} of {label}")
        self.graph.nodes.append(node)

    def _infer(self, proto: onnx.NodeProto, node: Node, label: str,
               opset: int) -> list[TensorType | None]:
        """The static type of each output (None for an omitted one, and for one whose shape
        cannot be determined at import)."""
        inferred = (self._declared_infer(proto, label, opset)
                    if declared_op(node.domain, node.op_type)
                    else self._onnx_infer(proto, label, opset))
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

    # -- outputs whose size depends on values (NonZero, Compress, Unique...) -----------------

    def _size_deciding_inputs(self, node: Node, opset: int) -> list[tuple[str, str, bool]]:
        """(value, ONNX input name, whether its values decide the output size) per input of
        a node whose OpImpl names such inputs in ``output_size_depends_on``; [] otherwise."""
        deciding = getattr(lookup(node.domain, node.op_type), "output_size_depends_on", ())
        if not deciding:
            return []
        formal = [p.name for p in onnx.defs.get_schema(node.op_type, opset, node.domain).inputs]
        return [(value, name, name in deciding) for value, name in zip(node.inputs, formal)]

    def _sized_by_known_values(self, node: Node, opset: int) -> list[TensorType] | None:
        """The output types of such a node when the inputs that decide its output size are
        known but others are not (Compress with a constant condition): the node is evaluated
        with shape-only stand-ins for the others, and only the result's types are kept."""
        inputs = self._size_deciding_inputs(node, opset)
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
                arrays.append(_stand_in(self.graph.types[value]))
        return [TensorType.of(a) for a in self._evaluate_with(node, arrays, opset)]

    def _unknown_size_deciders(self, proto: onnx.NodeProto, node: Node, label: str,
                               opset: int) -> list[tuple[str, str]]:
        """(value, ONNX input name) of each input not known at import whose values decide
        the node's output shapes: those its OpImpl names in ``output_size_depends_on``, else
        those onnx's inference shows to decide them; [] when neither tells."""
        declared = self._size_deciding_inputs(node, opset)
        if declared:
            return [(value, name) for value, name, decides in declared
                    if value and decides and value not in self.known]
        return self._probed_size_deciders(proto, label, opset)

    def _probed_size_deciders(self, proto: onnx.NodeProto, label: str,
                              opset: int) -> list[tuple[str, str]]:
        """The unknown inputs onnx's inference needs the values of to give every output a
        static shape (TopK's K, Reshape's shape, Range's bounds): with ones assumed for every
        unknown input that could decide a shape, the outputs must become static, and without
        one of them they must not."""
        candidates = {value: np.ones(self.graph.types[value].shape, self.graph.types[value].dtype)
                      for value in dict.fromkeys(proto.input)
                      if value and value not in self.known
                      and _may_decide_shapes(_stand_in(self.graph.types[value]))}

        def static_given(values: list[str]) -> bool:
            try:
                types = self._onnx_infer(proto, label, opset,
                                         {value: candidates[value] for value in values})
            except ShapeInferenceError:
                return False
            return all(not out or out in types for out in proto.output)

        if not candidates or not static_given(list(candidates)):
            return []
        formal = [p.name for p in onnx.defs.get_schema(proto.op_type, opset, proto.domain).inputs]
        names = {value: formal[min(i, len(formal) - 1)] for i, value in enumerate(proto.input)}
        return [(value, names[value]) for value in candidates
                if not static_given([other for other in candidates if other != value])]

    def _why_not_static(self, out: str, deciding: list[tuple[str, str]]) -> str:
        """Why an output has no static shape, for a static-only import: the inputs whose
        values decide its size (see _unknown_size_deciders) and what to do."""
        tail_hint = ("let byoc run this node, and those that depend on it, eagerly on the "
                     "reference interpreter after the static graph: the dynamic tail of "
                     "byoc.compile (on unless dynamic_tail=False; `byoc compile` and `byoc "
                     "run` without --no-dynamic-tail)")
        if not deciding:
            return (f"the shape of output {out!r} cannot be determined statically (it depends "
                    f"on runtime values), and byoc compiles static shapes; {tail_hint}")
        listed = ", ".join(f"{value!r} ({name})" for value, name in deciding)
        graph_inputs = [value for value, _ in deciding if value in self.graph.inputs]
        it = "it" if len(deciding) == 1 else "them"
        fixes = ["make it a constant (an initializer or a Constant node)" if it == "it" else
                 "make them constants (initializers or Constant nodes)"]
        if graph_inputs:
            example = ", ".join(f"{v!r}: value" for v in graph_inputs)
            fixes.append(f"freeze the graph input{'s' if len(graph_inputs) > 1 else ''} "
                         f"when compiling, with "
                         f"byoc.compile(..., constant_inputs={{{example}}})")
        if len(graph_inputs) < len(deciding):
            fixes.append(f"compute {it} from constants only, so byoc evaluates {it} at import")
        fixes.append(tail_hint)
        return (f"the size of output {out!r} depends on the values of "
                f"input{'s' if len(deciding) > 1 else ''} {listed}, which are not known at "
                f"import, and byoc compiles static shapes; {', or '.join(fixes)}")

    # -- the dynamic tail ----------------------------------------------------------------------

    def _add_to_tail(self, node: Node, label: str) -> None:
        for out in node.outputs:
            if out in self.graph.types or out in self.tail_values:
                raise ModelImportError(f"{self.origin}: {label} defines {out!r}, which is "
                                       f"already defined")
        self.tail_nodes.append(node)
        self.tail_values.update(out for out in node.outputs if out)

    def _finish_tail(self, model_outputs: list[str]) -> DynamicTail | None:
        """The tail of the imported nodes, reading constants and values known at import as
        its own constants, and the rest from the model's inputs and the static graph, which
        outputs them for it."""
        if not self.tail_nodes:
            return None
        read = dict.fromkeys(value for node in self.tail_nodes for value in node.present_inputs
                             if value not in self.tail_values)
        constants = {value: self.known[value] for value in read if value in self.known}
        inputs = [value for value in read if value not in constants]
        self.graph.outputs += [value for value in inputs if value not in self.graph.inputs
                               and value not in self.graph.outputs]
        return DynamicTail(self.tail_nodes, dict(self.graph.opsets), inputs, constants,
                           [out for out in model_outputs if out in self.tail_values],
                           model_outputs, self.tail_roots)

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

    def _own_infer(self, node: Node, opset: int) -> list[TensorType | None] | None:
        """The op's own types for outputs onnx's inference leaves open (OpImpl.infer_types)."""
        impl = lookup(node.domain, node.op_type)(node, [None] * len(node.outputs), opset)
        return impl.infer_types([self.graph.types[v] if v else None for v in node.inputs],
                                **node.attrs)

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

    def _onnx_infer(self, proto: onnx.NodeProto, label: str, opset: int,
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
            if value in self.known and _may_decide_shapes(self.known[value]):
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

    # -- ops plugins declare (the byoc_import_custom_ops hook) ---------------------------------

    def _require_plugin_op(self, domain: str, op_type: str, label: str) -> None:
        """Load every installed plugin (their declared ops count whether or not they are
        selected, so `byoc show` imports what `byoc compile` does) and refuse an op of a custom
        domain none of them declares."""
        from byoc.plugins.manager import default_manager

        default_manager()
        if lookup(domain, op_type) is None:
            raise UnsupportedOpError(
                f"{self.origin}: {label}: {domain}::{op_type} is an op of domain {domain} that "
                f"no installed plugin declares; install the plugin that provides it, or "
                f"implement the byoc_import_custom_ops hook (docs/writing-a-plugin.md)")

    def _declared_infer(self, proto: onnx.NodeProto, label: str,
                        opset: int | None) -> dict[str, TensorType]:
        declared = declared_op(proto.domain, proto.op_type)
        inputs = [self.graph.types[v] if v else None for v in proto.input]
        values = [self.known.get(v) if v else None for v in proto.input]
        node_attributes = _attributes(proto, label)
        types = declared.infer_types(f"{self.origin}: {label}", opset, inputs, values,
                                     node_attributes, len(proto.output))
        return {out: ttype for out, ttype in zip(proto.output, types) if out}

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


def _may_decide_shapes(value: np.ndarray) -> bool:
    """Whether onnx's inference may need ``value`` itself to compute output shapes: integer
    values (shapes, axes, pads, sizes, k...) and short vectors (Resize and Upsample scales,
    Range bounds, OneHot depth). Handing it weights too would only cost their serialization."""
    if value.dtype.kind in "iub":
        return value.size <= KNOWN_VALUE_LIMIT
    return value.size <= SHAPE_DATA_FLOAT_LIMIT


# The checker refuses ops deprecated at the model's opset (GroupNormalization-18, Upsample-10)
# that onnxruntime still runs; their nodes are shown to it in this domain, which it does not
# check. The importer still infers and checks them against their own schema.
_UNCHECKED_DOMAIN = "byoc.importer.deprecated"


def _deprecated_nodes_set_aside(model: onnx.ModelProto) -> onnx.ModelProto:
    """``model``, or a copy whose nodes of deprecated ai.onnx ops are in _UNCHECKED_DOMAIN."""
    opset = ai_onnx_opset(model)
    deprecated = set()
    for node in model.graph.node:
        if node.domain not in SUPPORTED_DOMAINS or node.op_type in deprecated:
            continue
        try:
            if onnx.defs.get_schema(node.op_type, opset or 1, "").deprecated:
                deprecated.add(node.op_type)
        except onnx.defs.SchemaError:
            continue
    if not deprecated:
        return model
    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    for node in copy.graph.node:
        if node.domain in SUPPORTED_DOMAINS and node.op_type in deprecated:
            node.domain = _UNCHECKED_DOMAIN
    copy.opset_import.append(onnx.helper.make_opsetid(_UNCHECKED_DOMAIN, 1))
    return copy


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


def _declared_dims(tensor_type: onnx.TypeProto.Tensor) -> list[int | str] | None:
    """Declared dims: sizes as ints, symbolic ones by name ('?' when unnamed); None when the
    type declares no shape (not even a rank)."""
    if not tensor_type.HasField("shape"):
        return None
    return [d.dim_value if d.HasField("dim_value") else (d.dim_param or "?")
            for d in tensor_type.shape.dim]


def _unbound_dims_message(inputs: list[onnx.ValueInfoProto]) -> str:
    """Every unbound dimension of every input, and an --input-shape example for each input
    built from plausible sizes (the same size wherever a symbolic name recurs)."""
    chosen: dict[str, int] = {}
    described, flags, python = [], [], []
    for vi in inputs:
        dims = _declared_dims(vi.type.tensor_type)
        if dims is None:
            described.append(f"input {vi.name!r} declares no shape, not even its rank")
            example = [1, 3, 224, 224]
        else:
            symbolic = [f"{d!r} (dim {i})" if d != "?" else f"an unnamed dim (dim {i})"
                        for i, d in enumerate(dims) if not isinstance(d, int)]
            described.append(f"input {vi.name!r} {_dims_text(dims)}: {', '.join(symbolic)}")
            example = [d if isinstance(d, int) else _example_size(d, i, len(dims), chosen)
                       for i, d in enumerate(dims)]
        flags.append(f"--input-shape {vi.name}={'x'.join(map(str, example))}")
        python.append(f"{vi.name!r}: ({', '.join(map(str, example))}{',' * (len(example) == 1)})")
    return (f"byoc compiles for static shapes, and nothing binds these input dimensions: "
            f"{'; '.join(described)}. Give each such input its concrete shape, e.g. "
            f"{' '.join(flags)} (in Python: input_shapes={{{', '.join(python)}}}); those "
            f"sizes are examples, use the ones your data has")


# Plausible sizes for symbolic dims, by what their names say, for the examples of
# _unbound_dims_message.
_EXAMPLE_SIZES = (("batch", 1), ("seq", 128), ("len", 128), ("token", 128), ("time", 128),
                  ("height", 224), ("width", 224), ("channel", 3))


def _example_size(dim: str, position: int, rank: int, chosen: dict[str, int]) -> int:
    if dim != "?" and dim in chosen:
        return chosen[dim]
    name = dim.lower()
    size = next((size for word, size in _EXAMPLE_SIZES if word in name), None)
    if size is None:
        if position == 0 or name == "n":
            size = 1
        elif rank == 4 and position >= 2 or name in ("h", "w"):
            size = 224
        else:
            size = 16
    if dim != "?":
        chosen[dim] = size
    return size


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
