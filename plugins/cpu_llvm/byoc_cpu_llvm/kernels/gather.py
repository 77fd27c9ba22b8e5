"""Gathering by run-time indices: GatherElements and GatherND.

Both walk their output row by row (threads split the flat range of output elements) and
move values as integers of their width, so every dtype of 1, 2, 4 or 8 bytes is supported
and float bits are kept exactly. Each index is read as it is needed; a negative one counts
from the end of its axis. An index outside its axis is an error in the reference, so the
kernel raises a run-time fault naming the node (and reads element 0 instead of memory
outside the data).
"""

from __future__ import annotations

import math

import numpy as np
from llvmlite import ir

from byoc.core.interpreter.ops_shape import normalize_axis
from byoc.core.ir import Graph, Node
from byoc_cpu_llvm.codegen import I32, KernelBuilder, const_i64
from byoc_cpu_llvm.kernels import lowering
from byoc_cpu_llvm.kernels.reduction_parts import dot, empty_dims
from byoc_cpu_llvm.kernels.strided_copy import contiguous_strides, int_type_of, iterate, movable

INDEX_DTYPES = (np.dtype(np.int32), np.dtype(np.int64))


class IndexReader:
    """Reads run-time indices into an axis and turns them into checked positions."""

    def __init__(self, program, kb: KernelBuilder, node: Node, indices: str) -> None:
        self.kb = kb
        self.dtype = program.graph.types[indices].dtype
        self.base = kb.buffer(program.value(indices))
        slot, self.code = program.fault(
            f"node {node.name or node.op_type!r} ({node.op_type}): an index of {indices!r} is "
            f"outside the axis it indexes; the reference names the bad index")
        self.status = kb.buffer(slot)

    def position(self, at: ir.Value, length: int) -> ir.Value:
        """Index number ``at`` as a position in ``[0, length)``; out of range, a fault and 0."""
        b = self.kb.b
        raw = self.kb.load_i64(self.base, at, self.dtype)
        length_v = const_i64(length)
        value = b.select(b.icmp_signed("<", raw, const_i64(0)), b.add(raw, length_v), raw)
        outside = b.icmp_unsigned(">=", value, length_v)  # negative values wrap to huge ones
        with b.if_then(outside, likely=False):
            self.kb.store(ir.Constant(I32, self.code), self.status, const_i64(0))
        return b.select(outside, const_i64(0), value)


def _gather_kernel(program, node: Node):
    """The kernel of a gather ``node``: ``(kb, reader, src, dst, elem)``, its index reader,
    the data and output buffers and the integer type the values move as."""
    elem = int_type_of(program.graph.types[node.inputs[0]].dtype)
    src_slot, dst_slot = program.value(node.inputs[0]), program.value(node.outputs[0])
    kb = program.kernel(node.name or node.op_type)
    reader = IndexReader(program, kb, node, node.inputs[1])
    return kb, reader, kb.buffer(src_slot), kb.buffer(dst_slot), elem


def _checked_dtypes(node: Node, graph: Graph) -> str | None:
    data, indices = (graph.types[v] for v in node.inputs[:2])
    if not movable(data.dtype):
        return f"cpu_llvm does not move {data.dtype} values"
    if indices.dtype not in INDEX_DTYPES:
        return f"cpu_llvm {node.op_type} reads int32 or int64 indices, not {indices.dtype}"
    return empty_dims(node, graph)


# -- GatherElements ------------------------------------------------------------------------------

def check_gather_elements(node: Node, graph: Graph) -> str | None:
    reason = _checked_dtypes(node, graph)
    if reason:
        return reason
    rank = len(graph.types[node.inputs[0]].shape)
    if rank == 0 or not -rank <= node.attrs.get("axis", 0) < rank:
        return f"GatherElements axis {node.attrs.get('axis', 0)} is out of range for rank {rank}"
    return None


@lowering("GatherElements", check=check_gather_elements)
def lower_gather_elements(program, group) -> None:
    """Output element ``c`` reads the data at ``c`` with its ``axis`` coordinate replaced by
    the index at ``c`` (the output has the indices' shape)."""
    node, graph = group.head, program.graph
    data, indices = (graph.types[v] for v in node.inputs[:2])
    axis = normalize_axis(node.attrs.get("axis", 0), len(data.shape))
    shape = list(indices.shape)
    data_strides = contiguous_strides(data.shape)
    out_strides = contiguous_strides(shape)
    # The axis coordinate's contribution comes from the index, not the coordinate.
    coordinate_strides = [0 if d == axis else s for d, s in enumerate(data_strides)]
    kb, reader, src, dst, elem = _gather_kernel(program, node)
    b = kb.b

    def row(coords):
        return (dot(kb, coords, coordinate_strides[:-1]), dot(kb, coords, out_strides[:-1]))

    def column(state, col):
        source, flat = state
        at = b.add(flat, col)
        position = reader.position(at, data.shape[axis])
        source = b.add(source, b.mul(position, const_i64(data_strides[axis])))
        if coordinate_strides[-1]:
            source = b.add(source, b.mul(col, const_i64(coordinate_strides[-1])))
        kb.store(kb.load(src, source, elem), dst, at)

    iterate(kb, shape, row, column)
    kb.finish()


# -- GatherND ------------------------------------------------------------------------------------

def _gather_nd_layout(node: Node, graph: Graph) -> tuple[int, int, int, int]:
    """``(batches, tuples, depth, slice)``: each of ``batches * tuples`` index tuples of
    ``depth`` values selects a contiguous slice of ``slice`` elements of its batch."""
    data, indices = (graph.types[v] for v in node.inputs[:2])
    batch_dims = node.attrs.get("batch_dims", 0)
    depth = indices.shape[-1]
    return (math.prod(data.shape[:batch_dims]), math.prod(indices.shape[batch_dims:-1]),
            depth, math.prod(data.shape[batch_dims + depth:]))


def check_gather_nd(node: Node, graph: Graph) -> str | None:
    reason = _checked_dtypes(node, graph)
    if reason:
        return reason
    data, indices = (graph.types[v] for v in node.inputs[:2])
    batch_dims = node.attrs.get("batch_dims", 0)
    if not data.shape or not indices.shape or not 0 <= batch_dims < min(len(data.shape),
                                                                        len(indices.shape)):
        return "GatherND needs data and indices of rank 1 or more and batch_dims below both"
    if indices.shape[-1] > len(data.shape) - batch_dims:
        return "GatherND index tuples are longer than the data's dims after the batch dims"
    return None


@lowering("GatherND", check=check_gather_nd)
def lower_gather_nd(program, group) -> None:
    """The output is ``batches * tuples`` rows of ``slice`` elements; a row reads its index
    tuple once and then copies a contiguous slice."""
    node, graph = group.head, program.graph
    data = graph.types[node.inputs[0]]
    batch_dims = node.attrs.get("batch_dims", 0)
    batches, tuples, depth, span = _gather_nd_layout(node, graph)
    data_strides = contiguous_strides(data.shape)
    batch_stride = math.prod(data.shape[batch_dims:])
    kb, reader, src, dst, elem = _gather_kernel(program, node)
    b = kb.b

    def row(coords):
        (pair,) = coords
        source = b.mul(b.udiv(pair, const_i64(tuples)), const_i64(batch_stride))
        for k in range(depth):
            at = b.add(b.mul(pair, const_i64(depth)), const_i64(k))
            position = reader.position(at, data.shape[batch_dims + k])
            source = b.add(source, b.mul(position, const_i64(data_strides[batch_dims + k])))
        return source, b.mul(pair, const_i64(span))

    def column(state, col):
        source, target = state
        kb.store(kb.load(src, b.add(source, col), elem), dst, b.add(target, col))

    iterate(kb, [batches * tuples, span], row, column)
    kb.finish()


__all__ = ["lower_gather_elements", "lower_gather_nd"]
