"""RotaryEmbedding, float32: each head's first ``rotary_embedding_dim`` features rotated in
pairs (the two halves, or neighbours when interleaved) by the angle of the token's position,
the rest copied.

Threads split the (batch, position, head) rows. A row's cos and sin come from the caches'
row of its position id, or from the caches' own (batch, position) row without ids; a
position id outside the caches stops the run with a fault, as the reference refuses it.
"""

from __future__ import annotations

import numpy as np
from llvmlite import ir

from byoc.core.interpreter.ops_attention import rotary_layout
from byoc.core.ir import Graph, Node
from byoc_cpu_llvm.codegen import F32, I32, const_i64, smax, smin
from byoc_cpu_llvm.kernels import lowering

F32_DTYPE = np.dtype(np.float32)
X, COS, SIN, POSITION_IDS = range(4)


def _layout(node: Node, graph: Graph):
    """((batch, seq, heads, head_size), rotated width), checked by the reference's rules on
    shape-only stand-ins."""
    stand_ins = [None if not v else np.broadcast_to(np.zeros((), graph.types[v].dtype),
                                                    graph.types[v].shape)
                 for v in node.inputs]
    stand_ins += [None] * (4 - len(stand_ins))
    attrs = node.attrs
    return rotary_layout(*stand_ins, attrs.get("rotary_embedding_dim", 0),
                         attrs.get("num_heads", 0))


def check_rotary(node: Node, graph: Graph) -> str | None:
    for position in (X, COS, SIN):
        if graph.types[node.inputs[position]].dtype != F32_DTYPE:
            return "cpu_llvm RotaryEmbedding handles float32 only"
    try:
        _layout(node, graph)
    except ValueError as error:
        return str(error)
    if graph.types[node.outputs[0]].size == 0:
        return "cpu_llvm RotaryEmbedding does not take empty tensors"
    return None


@lowering("RotaryEmbedding", check=check_rotary)
def lower_rotary(program, group) -> None:
    node = group.head
    graph = program.graph
    (batch, seq, heads, head_size), rotated = _layout(node, graph)
    half = rotated // 2
    interleaved = bool(node.attrs.get("interleaved", 0))
    four_d = len(graph.types[node.inputs[X]].shape) == 4
    ids = node.inputs[POSITION_IDS] if len(node.inputs) > POSITION_IDS else ""
    cache_rows = graph.types[node.inputs[COS]].shape[0]
    slots = {"x": program.value(node.inputs[X]), "cos": program.value(node.inputs[COS]),
             "sin": program.value(node.inputs[SIN]), "y": program.value(node.outputs[0])}
    if ids:
        slots["ids"] = program.value(ids)
        ids_dtype = graph.types[ids].dtype
        status, code = program.fault(f"RotaryEmbedding node {node.name!r}: position_ids must "
                                     f"lie in [0, {cache_rows})")
    kb = program.kernel(node.name or node.op_type)
    b = kb.b
    ptr = {key: kb.buffer(slot) for key, slot in slots.items()}
    c = const_i64
    begin, end = kb.thread_share(batch * seq * heads)
    with kb.loop(begin, end, name="row") as row:
        token, head = b.sdiv(row, c(heads)), b.srem(row, c(heads))
        n, s = b.sdiv(token, c(seq)), b.srem(token, c(seq))
        # 4-D inputs are (batch, heads, seq, size), 3-D ones (batch, seq, heads * size).
        if four_d:
            base = b.mul(b.add(b.mul(b.add(b.mul(n, c(heads)), head), c(seq)), s), c(head_size))
        else:
            base = b.mul(row, c(head_size))
        if ids:
            position = kb.load_i64(ptr["ids"], token, ids_dtype)
            outside = b.or_(b.icmp_signed("<", position, c(0)),
                            b.icmp_signed(">=", position, c(cache_rows)))
            with b.if_then(outside):
                kb.store(ir.Constant(I32, code), kb.buffer(status), c(0))
            cache_row = smin(b, smax(b, position, c(0)), c(cache_rows - 1))
        else:
            cache_row = token
        angles = b.mul(cache_row, c(half))
        with kb.loop(0, half, name="pair") as k:
            if interleaved:
                first_at = b.add(base, b.mul(k, c(2)))
                second_at = b.add(first_at, c(1))
            else:
                first_at = b.add(base, k)
                second_at = b.add(first_at, c(half))
            first, second = kb.load(ptr["x"], first_at, F32), kb.load(ptr["x"], second_at, F32)
            cos = kb.load(ptr["cos"], b.add(angles, k), F32)
            sin = kb.load(ptr["sin"], b.add(angles, k), F32)
            kb.store(b.fsub(b.fmul(first, cos), b.fmul(second, sin)), ptr["y"], first_at)
            kb.store(b.fadd(b.fmul(first, sin), b.fmul(second, cos)), ptr["y"], second_at)
        with kb.loop(rotated, head_size, name="copy") as k:
            at = b.add(base, k)
            kb.store(kb.load(ptr["x"], at, F32), ptr["y"], at)
    kb.finish()
