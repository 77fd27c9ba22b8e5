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

This module binds the inputs and imports node after node; the rest lives by concept:
:mod:`byoc.core.import_reading` (reading the file, model-level checks, onnx's checker),
:mod:`byoc.core.import_types` (each node's output types), :mod:`byoc.core.import_tail` (the
dynamic-tail split) and :mod:`byoc.core.import_messages` (the longer error wording).
"""

from __future__ import annotations

from typing import Collection, Mapping, Sequence

import numpy as np
import onnx

from byoc.core import dtypes
from byoc.core.dynamic_tail import DynamicTail, TailRoot
from byoc.core.experimental_ops import holds_experimental_ops, rewrite_experimental_ops
from byoc.core.import_messages import declared_dims, dims_text, unbound_dims_message, why_not_static
from byoc.core.import_reading import (
    MAX_OPSET,
    MIN_OPSET,
    SUPPORTED_DOMAINS,
    ModelSource,
    check_size,
    check_structure,
    check_with_onnx_checker,
    checked_opsets,
    read_model,
    tensor_to_array,
)
from byoc.core.import_tail import TailSplit, unknown_size_deciders
from byoc.core.import_types import NodeTyping, node_attributes
from byoc.core.interpreter import lookup
from byoc.core.ir import Graph, Node, TensorType
from byoc.core.opset_upgrade import NATIVE_MIN_OPSET, ai_onnx_opset, upgrade
from byoc.errors import ByocError, ModelImportError, ShapeInferenceError, UnsupportedOpError

__all__ = ["MAX_OPSET", "MIN_OPSET", "ModelSource", "import_model", "import_with_tail"]


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
    model, origin, serialized = read_model(source)
    importer = _Importer(model, origin, dict(input_shapes or {}), dict(constant_inputs or {}),
                         set(fed_inputs), with_tail, serialized)
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


class _Importer:
    def __init__(self, model: onnx.ModelProto, origin: str, input_shapes: dict,
                 constant_inputs: dict, fed_inputs: set[str], with_tail: bool,
                 serialized: bytes | None = None) -> None:
        self.model = model
        # The protobuf bytes self.model was read from, for onnx's checker; None once it is
        # rewritten or checked.
        self.serialized = serialized
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
        self.with_tail = with_tail
        self.tail = TailSplit()
        self.typing: NodeTyping | None = None

    def run(self) -> tuple[Graph, DynamicTail | None]:
        self.graph.opsets.update(checked_opsets(self.model, self.origin))
        if holds_experimental_ops(self.model, ai_onnx_opset(self.model)):
            self.model = rewrite_experimental_ops(self.model)
            self.serialized = None
        check_structure(self.model, self.origin)
        check_with_onnx_checker(self.model, self.origin, self.serialized)
        self.serialized = None
        self._upgrade_old_opset()
        self.typing = NodeTyping(self.model, self.origin, self.graph, self.known)
        g = self.model.graph
        for vi in list(g.value_info) + list(g.output):
            self.declared[vi.name] = vi.type
        for init in g.initializer:
            self._add_constant(init.name, tensor_to_array(init, f"initializer {init.name!r}",
                                                          self.origin))
        if g.sparse_initializer:
            raise ModelImportError(f"{self.origin}: sparse initializers are not supported")
        self._bind_inputs()
        names = _NodeNamer()
        for proto in g.node:
            self._import_node(proto, names.name_for(proto))
        for out in g.output:
            if out.name in self.tail.values:
                continue
            if out.name not in self.graph.types:
                raise ModelImportError(f"{self.origin}: graph output {out.name!r} is not "
                                       f"produced by any node, input or initializer")
            self._check_declared(out.name, f"graph output {out.name!r}")
            self.graph.outputs.append(out.name)
        return self.graph, self.tail.finish(self.graph, self.known,
                                            [out.name for out in g.output])

    def _upgrade_old_opset(self) -> None:
        opset = ai_onnx_opset(self.model)
        if opset >= NATIVE_MIN_OPSET:
            return
        self.model = upgrade(self.model, self.origin)
        self.upgraded_from = opset
        self.graph.opsets[""] = ai_onnx_opset(self.model)

    # -- values --------------------------------------------------------------------------------

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
            raise ShapeInferenceError(f"{self.origin}: {unbound_dims_message(unbound)}")

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
        dims = declared_dims(tt)
        bound = self.input_shapes.get(vi.name)
        if bound is not None:
            bound = tuple(int(d) for d in bound)
            if dims is not None and (len(dims) != len(bound) or any(
                    isinstance(d, int) and d != b for d, b in zip(dims, bound))):
                raise ModelImportError(
                    f"{self.origin}: input {vi.name!r} has shape {dims_text(dims)}; the "
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
        check_size(ttype, f"input {name!r}", self.origin)
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
            node = Node("Constant", [], list(proto.output), node_attributes(proto, label), name)
            (value,) = self.typing.evaluate_with(node, [], opset)
            self._add_constant(proto.output[0], value)
            return
        if domain and lookup(domain, proto.op_type) is None:
            self._require_plugin_op(domain, proto.op_type, label)
        if lookup(domain, proto.op_type) is None:
            raise UnsupportedOpError(
                f"{self.origin}: {label} is not supported by byoc. Supported ops are listed "
                f"by `byoc ops`; replace the op or implement it in a plugin")
        for value in proto.input:
            if value and value not in self.graph.types and value not in self.tail.values:
                raise ModelImportError(f"{self.origin}: {label} reads {value!r}, which is not "
                                       f"defined before it (missing initializer or input, or "
                                       f"nodes out of order)")
        node = Node(proto.op_type, list(proto.input), list(proto.output),
                    node_attributes(proto, label), name, domain)
        if any(value in self.tail.values for value in node.inputs):
            self.tail.add(node, self.graph, f"{self.origin}: {label}")
            return
        types = self.typing.infer(proto, node, label, opset)
        unsized = [out for out, ttype in zip(node.outputs, types) if out and ttype is None]
        if unsized:
            deciding = unknown_size_deciders(self.typing, proto, node, label, opset)
            if not self.with_tail:
                why = why_not_static(unsized[0], deciding, self.graph.inputs)
                raise ShapeInferenceError(f"{self.origin}: {label}: {why}")
            self.tail.roots.append(TailRoot(name, proto.op_type,
                                            tuple(formal for _, formal in deciding)))
            self.tail.add(node, self.graph, f"{self.origin}: {label}")
            return
        for out, ttype in zip(node.outputs, types):
            if out:
                if out in self.graph.types:
                    raise ModelImportError(f"{self.origin}: {label} defines {out!r}, which is "
                                           f"already defined")
                self.graph.types[out] = ttype
                self._check_declared(out, f"output {out!r} of {label}")
        self.graph.nodes.append(node)

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
                    f"{self.origin}: {what} is declared with shape {dims_text(dims)} but "
                    f"computes {list(actual.shape)}")



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
