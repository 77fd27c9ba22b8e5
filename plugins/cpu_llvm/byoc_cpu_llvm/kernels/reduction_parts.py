"""What the kernels that reduce along rows are built from (the reductions of :mod:`.reduce`,
pooling, softmax, the normalizations, cumulative sums, TopK, gather, attention): dtype
classes, accumulator variables, vector loads and stores, the combining step, identity and
horizontal step of each reduction kind, index arithmetic, and the fused elementwise epilogue
applied to a reduction's results.
"""

from __future__ import annotations

import numpy as np
from llvmlite import ir

from byoc.core.ir import Graph, Node
from byoc_cpu_llvm.codegen import (
    F32,
    F64,
    I32,
    KernelBuilder,
    const,
    const_i64,
    is_float,
    is_signed,
    llvm_type,
    smin,
)
from byoc_cpu_llvm.kernels.elementwise import strides_for
from byoc_cpu_llvm.kernels.scalar_ops import EMITTERS
from byoc_cpu_llvm.target import host_target

FLOATS = {np.dtype(np.float32), np.dtype(np.float64)}
INTS = {np.dtype(t) for t in (np.int8, np.uint8, np.int16, np.uint16, np.int32, np.uint32,
                              np.int64, np.uint64)}
CHUNK = 512  # elements of the kept inner dim one work item covers


def lanes_for(dtype: np.dtype) -> int:
    """How many values of ``dtype`` fill one host vector register."""
    return max(1, host_target().vector_bits // (8 * np.dtype(dtype).itemsize))


class Var:
    """A mutable value (an ``alloca`` in the entry block, promoted to registers by LLVM)."""

    def __init__(self, kb: KernelBuilder, typ: ir.Type, init: ir.Value | None = None,
                 name: str = "v") -> None:
        self.kb, self.typ = kb, typ
        self.ptr = kb.entry_alloca(typ, name=name)
        if init is not None:
            self.set(init)

    def get(self) -> ir.Value:
        return self.kb.b.load(self.ptr, typ=self.typ)

    def set(self, value: ir.Value) -> None:
        self.kb.b.store(value, self.ptr)


def vload(kb: KernelBuilder, base: ir.Value, offset: ir.Value, elem: ir.Type,
          lanes: int) -> ir.Value:
    """``lanes`` consecutive values from element ``offset`` (a scalar when ``lanes`` is 1)."""
    ptr = kb.element(base, offset, elem)
    if lanes == 1:
        return kb.b.load(ptr, typ=elem)
    return kb.b.load(ptr, typ=ir.VectorType(elem, lanes), align=elem_bytes(elem))


def vstore(kb: KernelBuilder, value: ir.Value, base: ir.Value, offset: ir.Value) -> None:
    elem = value.type.element if isinstance(value.type, ir.VectorType) else value.type
    ptr = kb.element(base, offset, elem)
    if isinstance(value.type, ir.VectorType):
        kb.b.store(value, ptr, align=elem_bytes(elem))
    else:
        kb.b.store(value, ptr)


def elem_bytes(elem: ir.Type) -> int:
    if elem == F32:
        return 4
    if elem == F64:
        return 8
    return elem.width // 8


def strided_vload(kb: KernelBuilder, base: ir.Value, offset: ir.Value, elem: ir.Type,
                  lanes: int, stride: int) -> ir.Value:
    """``lanes`` values ``stride`` apart from element ``offset``: one contiguous load of the
    span they cover, then a shuffle picking every ``stride``-th value (no over-read)."""
    if lanes == 1 or stride == 1:
        return vload(kb, base, offset, elem, lanes)
    span = vload(kb, base, offset, elem, (lanes - 1) * stride + 1)
    mask = ir.Constant(ir.VectorType(I32, lanes), [i * stride for i in range(lanes)])
    return kb.b.shuffle_vector(span, ir.Constant(span.type, ir.Undefined), mask)


def splat(kb: KernelBuilder, value: ir.Value, lanes: int) -> ir.Value:
    return value if lanes == 1 else kb.splat(value, lanes)


def greater(kb: KernelBuilder, a: ir.Value, b: ir.Value, dtype) -> ir.Value:
    """``a > b`` (false when either is NaN)."""
    if is_float(dtype):
        return kb.b.fcmp_ordered(">", a, b)
    return kb.b.icmp_signed(">", a, b) if is_signed(dtype) else kb.b.icmp_unsigned(">", a, b)


def combine(kb: KernelBuilder, kind: str, acc: ir.Value, x: ir.Value, dtype) -> ir.Value:
    """One step of a reduction: ``sum``, ``prod``, ``sumsq`` (acc + x*x), ``l1`` (acc + |x|,
    integers wrapping as numpy's abs does), or NaN-propagating ``max``/``min`` (as numpy's
    max and min)."""
    b = kb.b
    f = is_float(dtype)
    if kind == "sum":
        return b.fadd(acc, x, flags=("reassoc",)) if f else b.add(acc, x)
    if kind == "sumsq":
        return b.fadd(acc, b.fmul(x, x), flags=("reassoc",)) if f else b.add(acc, b.mul(x, x))
    if kind == "l1":
        if f:
            return b.fadd(acc, kb.intrinsic("llvm.fabs", x.type, [x]), flags=("reassoc",))
        if is_signed(dtype):
            x = b.select(b.icmp_signed("<", x, const(0, x)), b.neg(x), x)
        return b.add(acc, x)
    if kind == "prod":
        return b.fmul(acc, x, flags=("reassoc",)) if f else b.mul(acc, x)
    if f:
        # Take x when it beats acc or is NaN, unless acc already is NaN.
        beats = b.fcmp_unordered(">" if kind == "max" else "<", x, acc)
        take = b.and_(beats, b.fcmp_ordered("ord", acc, acc))
        return b.select(take, x, acc)
    if kind == "max":
        return b.select(greater(kb, x, acc, dtype), x, acc)
    return b.select(greater(kb, acc, x, dtype), x, acc)


def merging(kind: str) -> str:
    """How partial results of a ``kind`` reduction combine: sums of squares or of absolute
    values add up."""
    return "sum" if kind in ("sumsq", "l1") else kind


def identity(kind: str, dtype) -> float | int:
    dtype = np.dtype(dtype)
    if merging(kind) == "sum":
        return 0
    if kind == "prod":
        return 1
    if is_float(dtype):
        return -np.inf if kind == "max" else np.inf
    info = np.iinfo(dtype)
    value = int(info.min if kind == "max" else info.max)
    # LLVM integer constants are written signed (two's complement).
    bits = 8 * dtype.itemsize
    return value - (1 << bits) if value >= 1 << (bits - 1) else value


def horizontal(kb: KernelBuilder, kind: str, vec: ir.Value, dtype) -> ir.Value:
    """Reduce the lanes of ``vec`` to one value."""
    if not isinstance(vec.type, ir.VectorType):
        return vec
    acc = kb.b.extract_element(vec, ir.Constant(I32, 0))
    for lane in range(1, vec.type.count):
        acc = combine(kb, merging(kind), acc,
                      kb.b.extract_element(vec, ir.Constant(I32, lane)), dtype)
    return acc


def reduce_run(kb: KernelBuilder, kind: str, base: ir.Value, start: ir.Value, length: int,
               dtype, vec_acc: Var | None, scalar_acc: Var, acc_dtype=None) -> None:
    """Fold ``length`` contiguous values from ``start`` into the accumulators: whole vectors
    into ``vec_acc`` (when given), the rest into ``scalar_acc``. With ``acc_dtype`` (a wider
    float than ``dtype``) each value is widened before it is folded in."""
    elem = llvm_type(dtype)
    acc_dtype = np.dtype(acc_dtype or dtype)
    b = kb.b

    def widened(x: ir.Value, lanes: int) -> ir.Value:
        if acc_dtype == np.dtype(dtype):
            return x
        wide = llvm_type(acc_dtype)
        return b.fpext(x, ir.VectorType(wide, lanes) if lanes > 1 else wide)

    done = 0
    if vec_acc is not None:
        lanes = vec_acc.typ.count
        whole = length // lanes * lanes
        if whole:
            with kb.loop(0, whole, lanes, name="v") as i:
                x = widened(vload(kb, base, b.add(start, i), elem, lanes), lanes)
                vec_acc.set(combine(kb, kind, vec_acc.get(), x, acc_dtype))
        done = whole
    if done < length:
        with kb.loop(done, length, name="s") as i:
            x = widened(kb.load(base, b.add(start, i), elem), 1)
            scalar_acc.set(combine(kb, kind, scalar_acc.get(), x, acc_dtype))


def unravel(kb: KernelBuilder, index: ir.Value, sizes: list[int]) -> list[ir.Value]:
    """The coordinates of ``index`` in a row-major array of ``sizes``."""
    coords = []
    for size in reversed(sizes):
        coords.append(kb.b.urem(index, const_i64(size)) if size != 1 else const_i64(0))
        index = kb.b.udiv(index, const_i64(size)) if size != 1 else index
    return coords[::-1]


def dot(kb: KernelBuilder, coords: list[ir.Value], strides: list[int]) -> ir.Value:
    offset = const_i64(0)
    for coord, stride in zip(coords, strides):
        if stride:
            offset = kb.b.add(offset, kb.b.mul(coord, const_i64(stride)))
    return offset


def _is_running(group, node: Node, value: str) -> bool:
    position = group.nodes.index(node)
    return position > 0 and value == group.nodes[position - 1].outputs[0]


class Epilogue:
    """The elementwise nodes fused after a group's head, applied to each result before it is
    stored. Their other operands broadcast to the output's shape; a vector result holds
    consecutive elements of one innermost row."""

    def __init__(self, program, group, shape: tuple[int, ...]) -> None:
        self.group, self.graph = group, program.graph
        self.shape = tuple(shape) or (1,)
        self.operands: dict[str, tuple[int, list[int]]] = {}
        for node in group.epilogue:
            for value in node.present_inputs:
                if value not in self.operands and not _is_running(group, node, value):
                    vshape = self.graph.types[value].shape
                    self.operands[value] = (program.value(value), strides_for(vshape,
                                                                              self.shape))
        self.bases: dict[str, ir.Value] = {}

    def bind(self, kb: KernelBuilder) -> None:
        """Load the operands' buffer pointers (call right after the kernel is made)."""
        self.bases = {value: kb.buffer(slot) for value, (slot, _) in self.operands.items()}

    def apply(self, kb: KernelBuilder, result: ir.Value, flat: ir.Value) -> ir.Value:
        """``result`` (element ``flat`` of the head's output, or lanes from there) after the
        epilogue."""
        if not self.group.epilogue:
            return result
        lanes = result.type.count if isinstance(result.type, ir.VectorType) else 1
        contiguous = strides_for(self.shape, self.shape)
        coords = None
        loaded = {}
        for value, (_, strides) in self.operands.items():
            elem = llvm_type(self.graph.types[value].dtype)
            if strides == contiguous:
                offset = flat
            elif not any(strides):
                offset = const_i64(0)
            else:
                if coords is None:
                    coords = unravel(kb, flat, list(self.shape))
                offset = dot(kb, coords, strides)
            if strides[-1]:
                loaded[value] = vload(kb, self.bases[value], offset, elem, lanes)
            else:
                loaded[value] = splat(kb, kb.load(self.bases[value], offset, elem), lanes)
        for node in self.group.epilogue:
            args = [result if _is_running(self.group, node, v) else loaded[v]
                    for v in node.present_inputs]
            dtypes = [self.graph.types[v].dtype for v in node.present_inputs]
            result = EMITTERS[node.op_type](kb, node.op_type, args, node.attrs, dtypes,
                                            self.graph.types[node.outputs[0]].dtype)
        return result


def chunk_bounds(b: ir.IRBuilder, item: ir.Value, chunks: int, chunk: int,
                 size: int) -> tuple[ir.Value, ir.Value]:
    """The elements ``[lo, hi)`` of work item ``item``'s chunk, when each row of ``size``
    elements is cut into ``chunks`` chunks of ``chunk`` and the items run row by row."""
    lo = b.mul(b.urem(item, const_i64(chunks)), const_i64(chunk))
    return lo, smin(b, b.add(lo, const_i64(chunk)), const_i64(size))


def epilogue_kernel(program, group) -> tuple[KernelBuilder, Epilogue, ir.Value, ir.Value]:
    """A new kernel for a group that reads its head's first input and stores the group's
    output through the fused epilogue: ``(kb, epilogue, src, dst)``."""
    node = group.head
    epilogue = Epilogue(program, group, program.graph.types[group.output].shape)
    in_slot, out_slot = program.value(node.inputs[0]), program.value(group.output)
    kb = program.kernel(node.name or node.op_type)
    epilogue.bind(kb)
    return kb, epilogue, kb.buffer(in_slot), kb.buffer(out_slot)


def head_dtype(node: Node, graph: Graph) -> np.dtype:
    return graph.types[node.inputs[0]].dtype


def empty_dims(node: Node, graph: Graph) -> str | None:
    for value in node.present_inputs[:1] + node.outputs[:1]:
        if 0 in graph.types[value].shape:
            return f"{node.op_type} on an empty tensor is not supported by cpu_llvm"
    return None
