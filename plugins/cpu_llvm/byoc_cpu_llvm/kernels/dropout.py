"""Dropout where it cannot simply alias its input: with its mask output, or in training mode
with a drop ratio of 0. As the reference, it is then the identity: the output is a copy of
the input and the mask is all kept (bool from opset 10, the input's dtype before).

Training mode with a non-zero ratio drops at random, which the reference refuses. When the
training flag or the ratio is only known at run time, the kernel checks them and the run fails
with the reference's message if they ask for random drops.

Declined: a constant training flag that is on with a constant non-zero ratio.
"""

from __future__ import annotations

import numpy as np
from llvmlite import ir

from byoc.core.ir import Graph, Node
from byoc_cpu_llvm.codegen import I1, I8, I32, LLVM_TYPES, const_i64
from byoc_cpu_llvm.kernels import lowering
from byoc_cpu_llvm.kernels.scalar_ops import const


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


RANDOM_DROPS = ("Dropout in training mode drops elements at random; byoc runs inference only "
                "(set training_mode to false or the ratio to 0)")


def _training_state(node: Node, graph: Graph) -> bool | None:
    """Whether the node is in training mode: True/False when constant, None at run time."""
    training = _optional(node, 2)
    if not training:
        return False
    if not graph.is_constant(training):
        return None
    return bool(np.asarray(graph.constants[training]).reshape(-1)[0])


def check_dropout(node: Node, graph: Graph) -> str | None:
    ratio = _drop_ratio(node, graph)
    if _training_state(node, graph) and ratio is not None and ratio > 0:
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
    bits = ir.IntType(8 * x_type.dtype.itemsize)  # copies the bits as they are
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
    training = _training_state(node, graph)
    ratio = _drop_ratio(node, graph)
    if training is not False and (ratio is None or ratio > 0):
        _emit_random_drop_check(program, kb, node, training, ratio)
    begin, end = kb.thread_share(x_type.size)
    with kb.loop(begin, end) as i:
        if y is not None:
            kb.store(kb.load(x, i, bits), y, i)
        if mask_base is not None:
            kb.store(one, mask_base, i)
    kb.finish()


def _emit_random_drop_check(program, kb, node: Node, training: bool | None,
                            ratio: float | None) -> None:
    """Set the run's fault status when the run-time flag and ratio ask for random drops."""
    graph = program.graph
    bld = kb.b
    if training is None:
        flag = kb.load(kb.buffer(program.value(node.inputs[2])), const_i64(0), I8)
        on = bld.icmp_unsigned("!=", flag, ir.Constant(I8, 0))
    else:
        on = ir.Constant(I1, 1)
    if ratio is None:
        name = node.inputs[1]
        value = kb.load(kb.buffer(program.value(name)), const_i64(0),
                        LLVM_TYPES[graph.types[name].dtype])
        positive = bld.fcmp_ordered(">", value, ir.Constant(value.type, 0.0))
    else:
        positive = ir.Constant(I1, 1)
    slot, code = program.fault(f"node {node.name or node.op_type!r}: {RANDOM_DROPS}")
    with bld.if_then(bld.and_(on, positive)):
        kb.store(ir.Constant(I32, code), kb.buffer(slot), const_i64(0))


__all__ = ["check_dropout", "lower_dropout"]
