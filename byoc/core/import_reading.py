"""Reading an ONNX model, and the model-level checks made before any node is imported.

:func:`read_model` takes a file, bytes or a ModelProto and loads external data only from the
model's own folder. The checks refuse, with the value, node or tensor at fault named, what
onnx's checker would refuse with vaguer words (structure, tensor data, opsets), then run the
checker itself on the model as onnxruntime would accept it (:func:`check_with_onnx_checker`).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import onnx
from google.protobuf.message import DecodeError
from onnx import numpy_helper

from byoc.core import dtypes
from byoc.core.ir import TensorType
from byoc.core.opset_upgrade import ai_onnx_opset, with_initializers_as_inputs
from byoc.errors import ModelImportError

# The oldest ai.onnx opset a model may import; models older than NATIVE_MIN_OPSET
# (byoc.core.opset_upgrade) are upgraded to it on import.
MIN_OPSET = 1
MAX_OPSET = onnx.defs.onnx_opset_version()
SUPPORTED_DOMAINS = ("", "ai.onnx")
# No single value may be larger than this. The check runs on declared and inferred types,
# before anything is allocated, so a model claiming a terabyte tensor fails fast instead of
# exhausting memory.
MAX_VALUE_BYTES = 1 << 34

ModelSource = str | os.PathLike | bytes | onnx.ModelProto


def read_model(source: ModelSource) -> tuple[onnx.ModelProto, str, bytes | None]:
    """The model, how errors name it (its path, or what was given instead of a file), and
    the protobuf bytes it was parsed from when they hold all of it (None for a ModelProto, a
    text format or a model with external data): :func:`check_with_onnx_checker` reads them
    rather than serializing the model again."""
    if isinstance(source, onnx.ModelProto):
        return source, f"model {source.graph.name!r}", None
    if isinstance(source, (bytes, bytearray)):
        serialized = bytes(source)
        try:
            return onnx.load_from_string(serialized), "model bytes", serialized
        except (DecodeError, RuntimeError, ValueError) as exc:
            raise ModelImportError(f"the bytes given are not an ONNX model ({exc})") from exc
    path = Path(source)
    if not path.is_file():
        raise ModelImportError(f"{path}: no such model file")
    if path.stat().st_size == 0:
        raise ModelImportError(f"{path}: the file is empty, not an ONNX model; export or copy "
                               f"the model again")
    try:
        model, serialized = _load_file(str(path))
    except (DecodeError, RuntimeError, ValueError, OSError) as exc:
        raise ModelImportError(f"{path}: not a readable ONNX model ({exc}); check that the "
                               f"file is an ONNX protobuf and not truncated") from None
    if _check_external_locations(model, path):
        serialized = None
    try:
        onnx.external_data_helper.load_external_data_for_model(model, str(path.parent))
    except (OSError, ValueError, onnx.checker.ValidationError) as exc:
        raise ModelImportError(f"{path}: the model's external data could not be loaded "
                               f"({exc}); keep the data files next to the model") from None
    return model, str(path), serialized


def _load_file(path: str) -> tuple[onnx.ModelProto, bytes | None]:
    """``onnx.load(path, load_external_data=False)``, and the bytes read when they are
    protobuf (onnx reads a text format when the file's extension names one)."""
    with open(path, "rb") as file:
        content = file.read()
    extension = os.path.splitext(path)[1]
    fmt = onnx.serialization.registry.get_format_from_file_extension(extension) or "protobuf"
    model = onnx.serialization.registry.get(fmt).deserialize_proto(content, onnx.ModelProto())
    return model, content if fmt == "protobuf" else None


def _check_external_locations(model: onnx.ModelProto, path: Path) -> bool:
    """Refuse external data that is missing or lies outside the model's folder; whether the
    model keeps any data outside it.

    onnx checks this too, but its messages do not say which tensor is affected; and a model
    must never make byoc read files elsewhere on the machine (absolute paths, '..')."""
    folder = path.parent.resolve()
    external = False
    for tensor in onnx.external_data_helper._get_all_tensors(model):
        if tensor.data_location != onnx.TensorProto.EXTERNAL:
            continue
        external = True
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
    return external


def checked_opsets(model: onnx.ModelProto, origin: str) -> dict[str, int]:
    """The opset the model imports per domain ("" for ai.onnx), which must include an ai.onnx
    opset byoc supports."""
    opsets: dict[str, int] = {}
    for opset in model.opset_import:
        domain = opset.domain
        if domain in SUPPORTED_DOMAINS:
            if not MIN_OPSET <= opset.version <= MAX_OPSET:
                raise ModelImportError(
                    f"{origin}: imports opset {opset.version} of ai.onnx, which does "
                    f"not exist in the installed onnx; byoc supports opsets {MIN_OPSET} to "
                    f"{MAX_OPSET}: set the model's ai.onnx opset_import to the opset its "
                    f"nodes were written for")
            opsets[""] = opset.version
        else:
            opsets[domain] = opset.version
    if "" not in opsets:
        imported = ", ".join(f"{d} {v}" for d, v in opsets.items()) or "none"
        raise ModelImportError(f"{origin}: the model imports no ai.onnx opset (its "
                               f"opset_import lists: {imported}); byoc runs ai.onnx "
                               f"models, so add the ai.onnx opset the graph was built "
                               f"for")
    return opsets


def check_structure(model: onnx.ModelProto, origin: str) -> None:
    """Checks that onnx's checker also makes, done first because its messages do not name the
    value or node at fault."""
    g = model.graph
    if not g.output:
        raise ModelImportError(f"{origin}: the graph declares no outputs, so there "
                               f"is nothing to compute; list the results in graph.output")
    for kind, infos in (("input", g.input), ("output", g.output)):
        for vi in infos:
            if vi.type.WhichOneof("value") is None:
                if kind == "output":
                    continue  # an output may leave its type out entirely: it is inferred
                raise ModelImportError(f"{origin}: graph input {vi.name!r} declares "
                                       f"no type; declare it as a tensor with its element "
                                       f"type and shape")
            if not vi.type.HasField("tensor_type"):
                raise ModelImportError(f"{origin}: graph {kind} {vi.name!r} is not a "
                                       f"tensor; byoc supports tensor inputs and outputs "
                                       f"only")
    for i, proto in enumerate(g.node):
        if not proto.op_type:
            raise ModelImportError(f"{origin}: node {proto.name or f'#{i}'!r} has an "
                                   f"empty op_type")
    # The only check of the initializers' data: tensor_to_array trusts it.
    for init in g.initializer:
        _check_tensor_data(init, f"initializer {init.name!r}", origin)


def _check_tensor_data(tensor: onnx.TensorProto, what: str, origin: str) -> None:
    dtype = dtypes.to_numpy(tensor.data_type)
    if dtype is None:
        raise ModelImportError(f"{origin}: {what} has element type "
                               f"{dtypes.onnx_type_name(tensor.data_type)}, which byoc "
                               f"does not support")
    check_size(TensorType(dtype, tuple(tensor.dims)), what, origin)
    if any(d < 0 for d in tensor.dims):
        raise ModelImportError(f"{origin}: {what} has a negative dimension in "
                               f"{list(tensor.dims)}")
    if tensor.data_location == onnx.TensorProto.EXTERNAL:
        return
    count = element_count(tensor.dims)
    if tensor.HasField("raw_data"):
        expected = count * np.dtype(dtype).itemsize
        if dtype.kind in "bifuc" and len(tensor.raw_data) != expected:
            raise ModelImportError(
                f"{origin}: {what} has shape {list(tensor.dims)} of {dtype}, which "
                f"takes {expected} bytes, but its raw_data holds {len(tensor.raw_data)}")
        return
    field = onnx.helper.tensor_dtype_to_field(tensor.data_type)
    held = len(getattr(tensor, field))
    if dtype.kind == "c":
        held //= 2
    if held != dtypes.stored_entries(tensor.data_type, count):
        raise ModelImportError(f"{origin}: {what} has shape {list(tensor.dims)} "
                               f"({count} elements) but holds {held} values")


def check_size(ttype: TensorType, what: str, origin: str) -> None:
    """Refuse a value over MAX_VALUE_BYTES, before anything is allocated for it."""
    count = element_count(ttype.shape)
    size = count * np.dtype(ttype.dtype).itemsize
    if size > MAX_VALUE_BYTES:
        raise ModelImportError(
            f"{origin}: {what} would have {count} elements of {ttype.dtype} "
            f"({size / 2**30:.0f} GiB); byoc refuses values over "
            f"{MAX_VALUE_BYTES // 2**30} GiB")


def tensor_to_array(tensor: onnx.TensorProto, what: str, origin: str) -> np.ndarray:
    """The tensor's data (checked by :func:`check_structure`) as a numpy array."""
    if dtypes.to_numpy(tensor.data_type) is None:
        raise ModelImportError(f"{origin}: {what} has element type "
                               f"{dtypes.onnx_type_name(tensor.data_type)}, which byoc "
                               f"does not support")
    if tensor.data_location == onnx.TensorProto.EXTERNAL:
        raise ModelImportError(f"{origin}: {what} keeps its data in an external file "
                               f"that was not loaded; load the model from its file path")
    try:
        return numpy_helper.to_array(tensor)
    except (ValueError, TypeError) as exc:
        raise ModelImportError(f"{origin}: {what} cannot be read: {exc}") from None


def check_with_onnx_checker(model: onnx.ModelProto, origin: str,
                            serialized: bytes | None = None) -> None:
    """Run onnx's checker on ``model``, given as it wants it (:func:`_as_the_checker_wants`).
    ``serialized``, the protobuf bytes ``model`` was parsed from, spares serializing it again
    when the checker can have it unchanged (a third of ResNet-50's import)."""
    wanted = _as_the_checker_wants(model)
    try:
        onnx.checker.check_model(serialized if serialized is not None and wanted is model
                                 else wanted)
    except onnx.checker.ValidationError as exc:
        # The checker's message spreads one sentence over several lines.
        message = " ".join(str(exc).split())
        raise ModelImportError(f"{origin}: the ONNX checker rejects the model: "
                               f"{message}; fix the model where the checker points (run "
                               f"onnx.checker.check_model on it to see the same)") from None


def _as_the_checker_wants(original: onnx.ModelProto) -> onnx.ModelProto:
    """The model with what onnx's checker demands, but onnxruntime does without, filled in:
    under IR version 3 every initializer listed among the graph inputs; an element type and a
    shape on every graph output (byoc infers them) and a shape on every graph input (bound by
    --input-shape, or refused naming the input).

    The filled-in types are placeholders the checker only sees exist: it does no inference
    (that is the importer's own, which checks the real types)."""
    model = original
    if model.ir_version < 4:
        model = with_initializers_as_inputs(model)
    model = _deprecated_nodes_set_aside(model)
    g = model.graph
    undeclared = [vi for vi in g.output if not vi.type.tensor_type.elem_type
                  or not vi.type.tensor_type.HasField("shape")]
    undeclared += [vi for vi in g.input if vi.type.HasField("tensor_type")
                   and not vi.type.tensor_type.HasField("shape")]
    if undeclared:
        if model is original:
            model = onnx.ModelProto()
            model.CopyFrom(original)
        names = {vi.name for vi in undeclared}
        for vi in list(model.graph.output) + list(model.graph.input):
            if vi.name in names:
                tensor_type = vi.type.tensor_type
                tensor_type.elem_type = tensor_type.elem_type or onnx.TensorProto.FLOAT
                tensor_type.shape.SetInParent()
    return model


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


def element_count(shape) -> int:
    count = 1
    for d in shape:
        count *= int(d)
    return count
