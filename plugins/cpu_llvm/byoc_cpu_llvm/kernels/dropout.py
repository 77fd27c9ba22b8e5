"""Dropout where it cannot simply alias its input: with its mask output, or in training mode
with a drop ratio of 0. As the reference, it is then the identity: the output is a copy of
the input and the mask is all kept (bool from opset 10, the input's dtype before).

Declined: a node whose training flag is not a constant false while its ratio is not a constant
0. It may drop elements at random, which the reference computes (from the node's seed).
"""

from __future__ import annotations

import numpy as np
from llvmlite import ir

from byoc.core.ir import Graph, Node
from byoc_cpu_llvm.codegen import LLVM_TYPES, const
from byoc_cpu_llvm.kernels import lowering
from byoc_cpu_llvm.kernels.strided_copy import int_type_of


def _optional(node: Node, index: int) -> str:
    return node.inputs[index] if len(node.inputs) > index else ""


def _drop_ratio(node: Node, graph: Graph) -> float | None:
    """The constant drop ratio (the input's, else the attribute's, default 0.5), or None
    when it is only known at run time."""
    name = _optional(node, 1)
    if not name:
        return float(node.attrs.get("ratio", 0.5))
    if not graph.is_constant(name):
        return None
    return float(np.asarray(graph.constants[name]).reshape(-1)[0])


RANDOM_DROPS = ("Dropout that may run in training mode drops elements at random; cpu_llvm "
                "copies inference-mode Dropout only and leaves random draws to the reference")


def _training_state(node: Node, graph: Graph) -> bool | None:
    """Whether the node is in training mode: True/False when constant, None at run time."""
    training = _optional(node, 2)
    if not training:
        return False
    if not graph.is_constant(training):
        return None
    return bool(np.asarray(graph.constants[training]).reshape(-1)[0])


def check_dropout(node: Node, graph: Graph) -> str | None:
    if _training_state(node, graph) is not False and _drop_ratio(node, graph) != 0:
        return RANDOM_DROPS
    dtype = graph.types[node.inputs[0]].dtype
    if dtype not in LLVM_TYPES:
        return f"cpu_llvm Dropout does not handle {dtype}"
    return None


@lowering("Dropout", check=check_dropout)
def lower_dropout(program, group) -> None:
    node = group.head
    graph = program.graph
    x_type = graph.types[node.inputs[0]]
    bits = int_type_of(x_type.dtype)  # copies the bits as they are
    x_slot = program.value(node.inputs[0])
    y_slot = program.value(node.outputs[0]) if node.outputs[0] else None
    mask = node.outputs[1] if len(node.outputs) > 1 and node.outputs[1] else ""
    mask_slot = program.value(mask) if mask else None
    if mask:
        mask_dtype = graph.types[mask].dtype
        mask_type = LLVM_TYPES[mask_dtype]
        one = const(1, ir.Constant(mask_type, None))  # 1, 1.0 or true

    kb = program.kernel(node.name or "dropout")
    x = kb.buffer(x_slot)
    y = kb.buffer(y_slot) if y_slot is not None else None
    mask_base = kb.buffer(mask_slot) if mask_slot is not None else None
    begin, end = kb.thread_share(x_type.size)
    with kb.loop(begin, end) as i:
        if y is not None:
            kb.store(kb.load(x, i, bits), y, i)
        if mask_base is not None:
            kb.store(one, mask_base, i)
    kb.finish()


__all__ = ["check_dropout", "lower_dropout"]
