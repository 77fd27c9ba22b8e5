"""Upgrading models written for opsets older than the oldest one byoc implements.

The reference interpreter implements every op from opset ``NATIVE_MIN_OPSET`` on. Models of
older opsets (Clip-6 and Pad-2 with their bounds as attributes, Upsample-7, Slice-1,
BatchNormalization-7, Unsqueeze-1, And/Or/Xor with broadcast attributes...) are rewritten to
that opset by onnx's version converter first, which knows how most ops changed. Where it
does not, or gets it wrong, the model is prepared for it here: non-spatial
BatchNormalization becomes the arithmetic it stands for, opset 1-6 binary ops take numpy
broadcasting (the converter misaligns B given an ``axis``, and has no adapter at all for the
logical and comparison ops), and Upsample-1's ``'bilinear'`` mode takes its later name.
The conversion copies the whole model (a DenseNet-121 takes about as long as importing it),
so only old models go through it.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import helper, numpy_helper, shape_inference, version_converter

from byoc.errors import ModelImportError

NATIVE_MIN_OPSET = 9
# The oldest opset whose upgrade byoc's tests check, op by op (onnx's corpus holds opset 7
# and 8 cases; the zoo-form models are opsets 7 and 8). Older models are upgraded too where
# the converter can, and refused naming the node where it cannot.
CHECKED_UPGRADE_OPSET = 7
# Binary ops whose opset 1-6 forms broadcast only when asked to, by their ``broadcast`` and
# ``axis`` attributes.
_LEGACY_BROADCAST_OPS = ("Add", "Sub", "Mul", "Div", "Pow", "And", "Or", "Xor", "Equal",
                         "Greater", "Less")
# Of those, the ones onnx's converter has no adapter for (it refuses And-1 -> And-7, though
# only the broadcasting changed). Their nodes are moved to this domain, which the converter
# leaves alone, and moved back, in their opset 7 form, once it is done.
_UNADAPTED_OPS = ("And", "Or", "Xor", "Equal", "Greater", "Less")
_SET_ASIDE_DOMAIN = "byoc.opset_upgrade.set_aside"


def ai_onnx_opset(model: onnx.ModelProto) -> int | None:
    """The ai.onnx opset the model imports, or None when it imports none."""
    return next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), None)


def with_initializers_as_inputs(model: onnx.ModelProto) -> onnx.ModelProto:
    """A copy of ``model`` whose graph lists every initializer among its inputs.

    IR version 3 required that listing; exporters of the time still left it out at times,
    and both onnx's checker and its version converter look for every initializer among the
    graph inputs. Under IR 3 an initializer stays a constant whether listed or not.
    """
    listed = {vi.name for vi in model.graph.input}
    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    for init in model.graph.initializer:
        if init.name not in listed:
            copy.graph.input.append(helper.make_tensor_value_info(
                init.name, init.data_type, list(init.dims)))
    return copy


def upgrade(model: onnx.ModelProto, origin: str) -> onnx.ModelProto:
    """``model`` rewritten to opset ``NATIVE_MIN_OPSET`` when it imports an older ai.onnx
    opset, else ``model`` itself. ModelImportError naming the node, its op and opset and the
    conversion step that failed when onnx's converter cannot upgrade it."""
    opset = ai_onnx_opset(model)
    if opset is None or opset >= NATIVE_MIN_OPSET:
        return model
    prepared = with_initializers_as_inputs(model)
    _rewrite_non_spatial_batch_norms(prepared)
    if opset < 7:
        _adopt_numpy_broadcasting(prepared)
        _rename_bilinear_upsampling(prepared)
    try:
        converted = version_converter.convert_version(prepared, NATIVE_MIN_OPSET)
    except (RuntimeError, ValueError, onnx.checker.ValidationError) as exc:
        raise _conversion_error(prepared, origin, opset, exc) from None
    _restore_set_aside(converted)
    # Initializers listed for the converter's sake only are no graph inputs of the model
    # (from IR 4 on, that would make them overridable).
    listed = {vi.name for vi in model.graph.input}
    kept = [vi for vi in converted.graph.input if vi.name in listed]
    del converted.graph.input[:]
    converted.graph.input.extend(kept)
    return converted


def _adopt_numpy_broadcasting(model: onnx.ModelProto) -> None:
    """Put the binary ops of an opset 1-6 model in their opset 7 form, where every input
    broadcasts numpy-style, and set aside those onnx's converter cannot adapt.

    ``broadcast=1`` without ``axis`` aligned B with A's trailing dimensions, as numpy does.
    With ``axis``, B's dimensions start at that axis of A, so B gets trailing 1s appended
    up to A's last dimension. (onnx's converter appends as many 1s as A has more dimensions
    than B, which is wrong unless B ends at A's last dimension, so it is done here.)
    """
    ranks = None
    nodes = []
    for node in model.graph.node:
        if node.op_type not in _LEGACY_BROADCAST_OPS or node.domain not in ("", "ai.onnx"):
            nodes.append(node)
            continue
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        if attrs.get("broadcast") == 1 and "axis" in attrs:
            ranks = ranks if ranks is not None else _inferred_ranks(model)
            a, b = node.input[0], node.input[1]
            if a not in ranks or b not in ranks:
                nodes.append(node)  # left to the converter, which names it if it fails
                continue
            axis = attrs["axis"] % ranks[a] if ranks[a] else 0
            trailing = ranks[a] - axis - ranks[b]
            if trailing > 0:
                aligned = f"{b}/aligned_for_{node.output[0]}"
                nodes.append(helper.make_node(
                    "Unsqueeze", [b], [aligned], aligned,
                    axes=list(range(ranks[b], ranks[b] + trailing))))
                node.input[1] = aligned
        kept = [a for a in node.attribute if a.name not in ("broadcast", "axis")]
        del node.attribute[:]
        node.attribute.extend(kept)
        if node.op_type in _UNADAPTED_OPS:
            node.domain = _SET_ASIDE_DOMAIN
        nodes.append(node)
    del model.graph.node[:]
    model.graph.node.extend(nodes)
    if any(node.domain == _SET_ASIDE_DOMAIN for node in nodes):
        model.opset_import.append(helper.make_opsetid(_SET_ASIDE_DOMAIN, 1))


def _rename_bilinear_upsampling(model: onnx.ModelProto) -> None:
    """Upsample-1's ``mode='bilinear'`` is called ``'linear'`` from Upsample-7 on, and onnx's
    converter keeps the old name."""
    for node in model.graph.node:
        if node.op_type == "Upsample" and node.domain in ("", "ai.onnx"):
            for attr in node.attribute:
                if attr.name == "mode" and attr.s == b"bilinear":
                    attr.s = b"linear"


def _restore_set_aside(model: onnx.ModelProto) -> None:
    for node in model.graph.node:
        if node.domain == _SET_ASIDE_DOMAIN:
            node.domain = ""
    kept = [o for o in model.opset_import if o.domain != _SET_ASIDE_DOMAIN]
    del model.opset_import[:]
    model.opset_import.extend(kept)


def _inferred_value_infos(model: onnx.ModelProto) -> dict[str, onnx.ValueInfoProto]:
    """Every value's type as far as onnx's shape inference finds it (initializers included,
    as graph inputs); none when inference fails on the model."""
    try:
        graph = shape_inference.infer_shapes(with_initializers_as_inputs(model)).graph
    except (shape_inference.InferenceError, onnx.checker.ValidationError, RuntimeError):
        return {}
    return {vi.name: vi for vi in list(graph.input) + list(graph.value_info)
            + list(graph.output)}


def _inferred_ranks(model: onnx.ModelProto) -> dict[str, int]:
    """The rank of every value whose rank onnx's shape inference finds."""
    return {name: len(vi.type.tensor_type.shape.dim)
            for name, vi in _inferred_value_infos(model).items()
            if vi.type.tensor_type.HasField("shape")}


def _rewrite_non_spatial_batch_norms(model: onnx.ModelProto) -> None:
    """Replace BatchNormalization nodes with ``spatial=0`` by the arithmetic they stand for.

    Before opset 9, ``spatial=0`` gave every activation its own statistics (scale, bias, mean
    and variance of shape C x D1 x ... x Dn); opset 9 dropped the attribute, and onnx's
    converter refuses such nodes. Y = (X - mean) * scale / sqrt(var + epsilon) + B, with the
    parameters aligned to X's trailing dimensions, is the same computation in ops every opset
    has (written in their opset 7 form, with numpy broadcasting).
    """
    nodes = []
    for index, node in enumerate(model.graph.node):
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        if node.op_type != "BatchNormalization" or node.domain not in ("", "ai.onnx") \
                or attrs.get("spatial", 1) != 0:
            nodes.append(node)
            continue
        if len([out for out in node.output if out]) > 1:
            nodes.append(node)  # training outputs: left to the converter, which names it
            continue
        x, scale, bias, mean, var = node.input[:5]
        stem = f"{node.name or f'BatchNormalization_{index}'}/non_spatial"
        epsilon = f"{stem}/epsilon"
        model.graph.initializer.append(numpy_helper.from_array(
            np.array([attrs.get("epsilon", 1e-5)], _element_dtype(model, var)), epsilon))
        model.graph.input.append(helper.make_tensor_value_info(
            epsilon, model.graph.initializer[-1].data_type, [1]))
        steps = [("Sub", [x, mean], "centered"), ("Add", [var, epsilon], "var_eps"),
                 ("Sqrt", [f"{stem}/var_eps"], "std"),
                 ("Div", [scale, f"{stem}/std"], "multiplier"),
                 ("Mul", [f"{stem}/centered", f"{stem}/multiplier"], "scaled")]
        for op, inputs, out in steps:
            nodes.append(helper.make_node(op, inputs, [f"{stem}/{out}"], f"{stem}/{out}"))
        nodes.append(helper.make_node("Add", [f"{stem}/scaled", bias], [node.output[0]],
                                      node.name or stem))
    del model.graph.node[:]
    model.graph.node.extend(nodes)


def _element_dtype(model: onnx.ModelProto, name: str) -> np.dtype:
    """The numpy dtype of a graph input or initializer (float32 when the model does not
    say)."""
    for vi in model.graph.input:
        if vi.name == name and vi.type.tensor_type.elem_type:
            return helper.tensor_dtype_to_np_dtype(vi.type.tensor_type.elem_type)
    return np.dtype(np.float32)


def _conversion_error(model: onnx.ModelProto, origin: str, opset: int,
                      exc: Exception) -> ModelImportError:
    reason = _first_line(exc)
    advice = (f"re-export the model at opset {NATIVE_MIN_OPSET} or newer, or replace that "
              f"node with ops of opset {NATIVE_MIN_OPSET}")
    value_infos = _inferred_value_infos(model)
    for index, node in enumerate(model.graph.node):
        failed_step = _failing_step(model, node, opset, value_infos)
        if failed_step is not None:
            step, step_reason = failed_step
            name = repr(node.name) if node.name else f"#{index} (unnamed)"
            return ModelImportError(
                f"{origin}: node {name} ({node.op_type}, opset {opset}) cannot be upgraded: "
                f"byoc runs opsets below {NATIVE_MIN_OPSET} by converting them with "
                f"onnx.version_converter, which fails converting {node.op_type} from opset "
                f"{step - 1} to {step}: {step_reason}; {advice}")
    return ModelImportError(
        f"{origin}: the model imports opset {opset}, which byoc runs by converting it to opset "
        f"{NATIVE_MIN_OPSET} with onnx.version_converter, and the conversion fails: {reason}; "
        f"re-export the model at opset {NATIVE_MIN_OPSET} or newer")


def _failing_step(model: onnx.ModelProto, node: onnx.NodeProto, opset: int,
                  value_infos: dict[str, onnx.ValueInfoProto]) -> tuple[int, str] | None:
    """The first opset (and the converter's reason) to which ``node`` alone, in a one-node
    model with its inputs typed as in the whole model, cannot be converted; None when it
    converts all the way. Used only once the whole model has failed, to say where."""
    single = _single_node_model(model, node, value_infos)
    for target in range(opset + 1, NATIVE_MIN_OPSET + 1):
        try:
            version_converter.convert_version(single, target)
        except (RuntimeError, ValueError, onnx.checker.ValidationError) as exc:
            return target, _first_line(exc)
    return None


def _single_node_model(model: onnx.ModelProto, node: onnx.NodeProto,
                       value_infos: dict[str, onnx.ValueInfoProto]) -> onnx.ModelProto:
    def typed(name: str) -> onnx.ValueInfoProto:
        return value_infos.get(name) or helper.make_empty_tensor_value_info(name)

    initializers = {init.name: init for init in model.graph.initializer}
    graph = helper.make_graph(
        [node], "single_node", [typed(name) for name in dict.fromkeys(node.input) if name],
        [typed(name) for name in node.output if name],
        [initializers[name] for name in dict.fromkeys(node.input) if name in initializers])
    single = helper.make_model(graph, opset_imports=list(model.opset_import))
    single.ir_version = model.ir_version
    return single


def _first_line(exc: Exception) -> str:
    """The converter's message without the C++ source location of its assertions."""
    lines = str(exc).strip().splitlines()
    if not lines:
        return type(exc).__name__
    return lines[0].split(" failed: ", 1)[-1]
