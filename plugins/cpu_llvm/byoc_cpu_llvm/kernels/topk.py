"""TopK: the k best elements along an axis, best first, with their int64 indices.

The order is the reference's: by value (NaN counts as greater than every number), and of
equal values the lower index first. Threads split the rows along the axis (``outer x inner``
of them, each strided by ``inner``). A row keeps its k best in a binary heap whose root is
the worst of them, in per-thread scratch: the first k elements are heapified, each later
element that beats the root replaces it, and the heap is finally emptied worst first into
the output from its end. That is ``O(n log k)`` per row, and a single comparison for the
elements that do not make it.
"""

from __future__ import annotations

import numpy as np
from llvmlite import ir

from byoc.core.interpreter.ops_shape import normalize_axis
from byoc.core.ir import Graph, Node
from byoc_cpu_llvm.codegen import I64, PTR, VOID, const_i64, is_float, is_signed, llvm_type
from byoc_cpu_llvm.kernels import lowering
from byoc_cpu_llvm.kernels.reduction_parts import FLOATS, INTS, empty_dims


def _layout(node: Node, graph: Graph) -> tuple[int, int, int, int]:
    """``(outer, length, inner, k)`` around the axis; k is the output's length there."""
    shape = graph.types[node.inputs[0]].shape
    axis = normalize_axis(node.attrs.get("axis", -1), len(shape))
    k = graph.types[node.outputs[0]].shape[axis]
    return (int(np.prod(shape[:axis], dtype=np.int64)), shape[axis],
            int(np.prod(shape[axis + 1:], dtype=np.int64)), k)


def check_topk(node: Node, graph: Graph) -> str | None:
    dtype = graph.types[node.inputs[0]].dtype
    if dtype not in FLOATS | INTS:
        return f"cpu_llvm TopK does not handle {dtype}"
    if not graph.types[node.inputs[0]].shape:
        return "TopK needs an input of rank 1 or more"
    try:
        _layout(node, graph)
    except ValueError as error:
        return str(error)
    return empty_dims(node, graph)


def _emit_ranking(builder: ir.IRBuilder, dtype, largest: bool):
    """``worse(value_a, index_a, value_b, index_b)``: whether a ranks after b."""

    def less(a, b):
        if not is_float(dtype):
            return (builder.icmp_signed("<", a, b) if is_signed(dtype)
                    else builder.icmp_unsigned("<", a, b))
        # NaN is greater than every number.
        return builder.or_(builder.fcmp_ordered("<", a, b),
                           builder.and_(builder.fcmp_unordered("uno", b, b),
                                        builder.fcmp_ordered("ord", a, a)))

    def equal(a, b):
        if not is_float(dtype):
            return builder.icmp_signed("==", a, b)
        return builder.or_(builder.fcmp_ordered("==", a, b),
                           builder.and_(builder.fcmp_unordered("uno", a, a),
                                        builder.fcmp_unordered("uno", b, b)))

    def worse(value_a, index_a, value_b, index_b):
        beaten = less(value_a, value_b) if largest else less(value_b, value_a)
        later = builder.and_(equal(value_a, value_b),
                             builder.icmp_signed(">", index_a, index_b))
        return builder.or_(beaten, later)

    return worse


def _emit_sift_down(module: ir.Module, dtype, largest: bool) -> ir.Function:
    """``sift(values, indices, size, position)``: move the entry at ``position`` of a heap of
    ``size`` entries (the worst at the root) down until both its children rank after it."""
    elem = llvm_type(dtype)
    fn = ir.Function(module, ir.FunctionType(VOID, [PTR, PTR, I64, I64]),
                     module.get_unique_name("topk_sift"))
    fn.linkage = "internal"
    values, indices, size, start = fn.args
    entry, header, pick, compare, move, done = (
        fn.append_basic_block(name) for name in ("entry", "header", "pick", "compare", "move",
                                                 "done"))
    b = ir.IRBuilder(entry)
    worse = _emit_ranking(b, dtype, largest)

    def load(base, at, typ):
        return b.load(b.gep(base, [at], source_etype=typ, inbounds=True), typ=typ)

    def store(value, base, at):
        b.store(value, b.gep(base, [at], source_etype=value.type, inbounds=True))

    item_value, item_index = load(values, start, elem), load(indices, start, I64)
    b.branch(header)
    b.position_at_end(header)
    position = b.phi(I64, name="position")
    position.add_incoming(start, entry)
    child = b.add(b.mul(position, const_i64(2)), const_i64(1))
    b.cbranch(b.icmp_signed("<", child, size), pick, done)
    b.position_at_end(pick)
    right = b.add(child, const_i64(1))
    right_exists = b.icmp_signed("<", right, size)
    right_at = b.select(right_exists, right, child)  # never read past the heap
    right_worse = b.and_(right_exists, worse(load(values, right_at, elem),
                                             load(indices, right_at, I64),
                                             load(values, child, elem),
                                             load(indices, child, I64)))
    worst_child = b.select(right_worse, right, child)
    b.branch(compare)
    b.position_at_end(compare)
    child_value, child_index = load(values, worst_child, elem), load(indices, worst_child, I64)
    b.cbranch(worse(child_value, child_index, item_value, item_index), move, done)
    b.position_at_end(move)
    store(child_value, values, position)
    store(child_index, indices, position)
    position.add_incoming(worst_child, move)
    b.branch(header)
    b.position_at_end(done)
    store(item_value, values, position)
    store(item_index, indices, position)
    b.ret_void()
    return fn


@lowering("TopK", check=check_topk)
def lower_topk(program, group) -> None:
    graph = program.graph
    node = group.head
    dtype = graph.types[node.inputs[0]].dtype
    elem = llvm_type(dtype)
    outer, length, inner, k = _layout(node, graph)
    largest = bool(node.attrs.get("largest", 1))
    heap_values = program.scratch(f"{node.outputs[0]}.topk_values", dtype, k)
    heap_indices = program.scratch(f"{node.outputs[0]}.topk_indices", np.int64, k)
    src_slot = program.value(node.inputs[0])
    out_slots = [program.value(o) if o else None for o in node.outputs[:2]]
    kb = program.kernel(node.name or node.op_type)
    sift = _emit_sift_down(kb.module, dtype, largest)
    src = kb.buffer(src_slot)
    outputs = [kb.buffer(slot) if slot is not None else None for slot in out_slots]
    b = kb.b
    values = kb.element(kb.buffer(heap_values), b.mul(kb.tid, const_i64(k)), elem)
    indices = kb.element(kb.buffer(heap_indices), b.mul(kb.tid, const_i64(k)), I64)
    worse = _emit_ranking(b, dtype, largest)
    begin, end = kb.thread_share(outer * inner)
    with kb.loop(begin, end, name="row") as row:
        within = b.urem(row, const_i64(inner))
        base = b.add(b.mul(b.udiv(row, const_i64(inner)), const_i64(length * inner)), within)
        out_base = b.add(b.mul(b.udiv(row, const_i64(inner)), const_i64(k * inner)), within)
        with kb.loop(0, k, name="fill") as j:
            kb.store(kb.load(src, b.add(base, b.mul(j, const_i64(inner))), elem), values, j)
            kb.store(j, indices, j)
        with kb.loop(0, k // 2, name="heapify") as step:
            b.call(sift, [values, indices, const_i64(k), b.sub(const_i64(k // 2 - 1), step)])
        with kb.loop(k, length, name="scan") as j:
            x = kb.load(src, b.add(base, b.mul(j, const_i64(inner))), elem)
            root_value, root_index = kb.load(values, const_i64(0), elem), \
                kb.load(indices, const_i64(0), I64)
            with b.if_then(worse(root_value, root_index, x, j)):
                kb.store(x, values, const_i64(0))
                kb.store(j, indices, const_i64(0))
                b.call(sift, [values, indices, const_i64(k), const_i64(0)])
        with kb.loop(0, k, name="drain") as step:
            remaining = b.sub(const_i64(k - 1), step)
            at = b.add(out_base, b.mul(remaining, const_i64(inner)))
            for output, heap, typ in zip(outputs, (values, indices), (elem, I64)):
                if output is not None:
                    kb.store(kb.load(heap, const_i64(0), typ), output, at)
                kb.store(kb.load(heap, remaining, typ), heap, const_i64(0))
            b.call(sift, [values, indices, remaining, const_i64(0)])
    kb.finish()


__all__ = ["lower_topk"]
