"""Ops that generate values: Shape, ConstantOfShape, Range.

They normally fold away at compile time (static shapes make Shape and ConstantOfShape
constants; Range of constant inputs is a constant), but they are lowered anyway: Shape writes
its dims, ConstantOfShape fills its output with its one value, Range computes
``start + i * delta`` in its dtype, with start and delta read at run time.
"""

from __future__ import annotations

import numpy as np
from llvmlite import ir

from byoc.core.ir import Graph, Node
from byoc_cpu_llvm.codegen import I64, LLVM_TYPES, const_i64, llvm_type
from byoc_cpu_llvm.kernels import lowering
from byoc_cpu_llvm.kernels.strided_copy import bit_pattern, global_table, int_type_of, movable


def _shape_values(node: Node, graph: Graph) -> list[int]:
    shape = graph.types[node.inputs[0]].shape
    start, end = node.attrs.get("start", 0), node.attrs.get("end")
    return list(shape[start:end])


def _check_shape(node: Node, graph: Graph) -> str | None:
    if graph.types[node.outputs[0]].shape != (len(_shape_values(node, graph)),):
        return "cpu_llvm: the Shape output's type differs from the dims it selects"
    return None


@lowering("Shape", check=_check_shape)
def lower_shape(program, group) -> None:
    node = group.head
    values = _shape_values(node, program.graph)
    dst = program.value(node.outputs[0])
    kb = program.kernel(node.name or node.op_type)
    if values:
        table = global_table(kb, values)
        begin, end = kb.thread_share(len(values))
        base = kb.buffer(dst)
        with kb.loop(begin, end) as i:
            kb.store(kb.load(table, i, I64), base, i)
    kb.finish()


def _fill_value(node: Node, graph: Graph):
    out = graph.types[node.outputs[0]]
    value = node.attrs.get("value")
    fill = np.zeros(1, np.float32) if value is None else np.asarray(value).reshape(-1)
    if fill.dtype != out.dtype:
        raise ValueError(f"the value is {fill.dtype}, the output {out.dtype}")
    return fill[0]


def _check_constant_of_shape(node: Node, graph: Graph) -> str | None:
    out = graph.types[node.outputs[0]]
    if not movable(out.dtype):
        return f"cpu_llvm does not fill {out.dtype} tensors"
    try:
        _fill_value(node, graph)
    except ValueError as error:
        return f"cpu_llvm cannot lower this ConstantOfShape: {error}"
    return None


@lowering("ConstantOfShape", check=_check_constant_of_shape)
def lower_constant_of_shape(program, group) -> None:
    node, graph = group.head, program.graph
    out = graph.types[node.outputs[0]]
    fill = ir.Constant(int_type_of(out.dtype), bit_pattern(_fill_value(node, graph), out.dtype))
    dst = program.value(node.outputs[0])
    kb = program.kernel(node.name or node.op_type)
    begin, end = kb.thread_share(out.size)
    base = kb.buffer(dst)
    with kb.loop(begin, end) as i:
        kb.store(fill, base, i)
    kb.finish()


def _check_range(node: Node, graph: Graph) -> str | None:
    dtype = graph.types[node.outputs[0]].dtype
    if dtype not in LLVM_TYPES or dtype == np.bool_:
        return f"cpu_llvm has no Range kernel for {dtype}"
    if any(graph.types[v].dtype != dtype for v in node.inputs[:3]):
        return "cpu_llvm: Range inputs of different dtypes"
    return None


@lowering("Range", check=_check_range)
def lower_range(program, group) -> None:
    node, graph = group.head, program.graph
    out = graph.types[node.outputs[0]]
    elem = llvm_type(out.dtype)
    is_float = np.issubdtype(out.dtype, np.floating)
    start_slot, delta_slot = program.value(node.inputs[0]), program.value(node.inputs[2])
    dst = program.value(node.outputs[0])
    kb = program.kernel(node.name or node.op_type)
    b = kb.b
    start = kb.load(kb.buffer(start_slot), const_i64(0), elem)
    delta = kb.load(kb.buffer(delta_slot), const_i64(0), elem)
    base = kb.buffer(dst)
    begin, end = kb.thread_share(out.size)
    with kb.loop(begin, end) as i:
        if is_float:
            # As the reference: arange in the dtype, times delta, plus start (no fma).
            value = b.fadd(start, b.fmul(b.sitofp(i, elem), delta))
        else:
            step = i if elem.width == 64 else b.trunc(i, elem)
            value = b.add(start, b.mul(step, delta))
        kb.store(value, base, i)
    kb.finish()


__all__ = ["lower_constant_of_shape", "lower_range", "lower_shape"]
