"""Setting a model's dynamic tail apart while importing it (:mod:`byoc.core.dynamic_tail`).

A node whose output size depends on values not known at import starts the tail (a
:class:`~byoc.core.dynamic_tail.TailRoot`, with the inputs whose values decide the size:
:func:`unknown_size_deciders`); every node reading a value the tail defines joins it.
:class:`TailSplit` collects them in import order and, at the end, makes the
:class:`~byoc.core.dynamic_tail.DynamicTail` and the static graph outputs it reads.
"""

from __future__ import annotations

import numpy as np
import onnx

from byoc.core.dynamic_tail import DynamicTail, TailRoot
from byoc.core.import_types import NodeTyping, may_decide_shapes, stand_in
from byoc.core.ir import Graph, Node
from byoc.errors import ModelImportError, ShapeInferenceError


class TailSplit:
    """The dynamic tail of a model being imported: its nodes, the nodes starting it, and the
    values they define (whose shapes are known only at run time)."""

    def __init__(self) -> None:
        self.nodes: list[Node] = []
        self.roots: list[TailRoot] = []
        self.values: set[str] = set()

    def add(self, node: Node, graph: Graph, where: str) -> None:
        """Add ``node`` (``where`` names it, with the model, in errors)."""
        for out in node.outputs:
            if out in graph.types or out in self.values:
                raise ModelImportError(f"{where} defines {out!r}, which is already defined")
        self.nodes.append(node)
        self.values.update(out for out in node.outputs if out)

    def finish(self, graph: Graph, known: dict[str, np.ndarray],
               model_outputs: list[str]) -> DynamicTail | None:
        """The tail of the imported nodes, reading constants and values known at import as
        its own constants, and the rest from the model's inputs and the static ``graph``,
        which outputs them for it."""
        if not self.nodes:
            return None
        read = dict.fromkeys(value for node in self.nodes for value in node.present_inputs
                             if value not in self.values)
        constants = {value: known[value] for value in read if value in known}
        inputs = [value for value in read if value not in constants]
        graph.outputs += [value for value in inputs if value not in graph.inputs
                          and value not in graph.outputs]
        return DynamicTail(self.nodes, dict(graph.opsets), inputs, constants,
                           [out for out in model_outputs if out in self.values],
                           model_outputs, self.roots)


def unknown_size_deciders(typing: NodeTyping, proto: onnx.NodeProto, node: Node, label: str,
                          opset: int) -> list[tuple[str, str]]:
    """(value, ONNX input name) of each input not known at import whose values decide the
    node's output shapes: those its OpImpl names in ``output_size_depends_on``, else those
    onnx's inference shows to decide them; [] when neither tells."""
    declared = typing.size_deciding_inputs(node, opset)
    if declared:
        return [(value, name) for value, name, decides in declared
                if value and decides and value not in typing.known]
    return _probed_size_deciders(typing, proto, label, opset)


def _probed_size_deciders(typing: NodeTyping, proto: onnx.NodeProto, label: str,
                          opset: int) -> list[tuple[str, str]]:
    """The unknown inputs onnx's inference needs the values of to give every output a static
    shape (TopK's K, Reshape's shape, Range's bounds): with ones assumed for every unknown
    input that could decide a shape, the outputs must become static, and without one of them
    they must not."""
    types = typing.graph.types
    candidates = {value: np.ones(types[value].shape, types[value].dtype)
                  for value in dict.fromkeys(proto.input)
                  if value and value not in typing.known
                  and may_decide_shapes(stand_in(types[value]))}

    def static_given(values: list[str]) -> bool:
        try:
            inferred = typing.onnx_infer(proto, label, opset,
                                         {value: candidates[value] for value in values})
        except ShapeInferenceError:
            return False
        return all(not out or out in inferred for out in proto.output)

    if not candidates or not static_given(list(candidates)):
        return []
    formal = [p.name for p in onnx.defs.get_schema(proto.op_type, opset, proto.domain).inputs]
    names = {value: formal[min(i, len(formal) - 1)] for i, value in enumerate(proto.input)}
    return [(value, names[value]) for value in candidates
            if not static_given([other for other in candidates if other != value])]
