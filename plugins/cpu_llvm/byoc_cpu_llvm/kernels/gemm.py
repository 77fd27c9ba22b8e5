"""Gemm and MatMul (and Einsum's matrix products, :mod:`.einsum`): float32 on the blocked
driver of :mod:`.gemm_driver`, float16 and float64 as plain dot products accumulated in
float64.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from llvmlite import ir

from byoc.core.ir import Graph, Node
from byoc_cpu_llvm.codegen import F32, F64, const_i64, llvm_type
from byoc_cpu_llvm.kernels import lowering
from byoc_cpu_llvm.kernels.elementwise import half_supported, strides_for
from byoc_cpu_llvm.kernels.epilogue import Epilogue, add_scaled_step, scale_step
from byoc_cpu_llvm.kernels.gemm_driver import (
    GemmPlan,
    a_scratch_size,
    b_scratch_size,
    choose_mr,
    emit_gemm,
    pack_a,
    pack_a_runtime,
    pack_b,
    pack_rows,
    pack_rows_strided,
    panel_width,
)


@dataclass(frozen=True)
class MatrixProduct:
    """``C[batch..., m, n] = A[..., m, k] @ B[..., k, n]`` over the graph values ``a`` and
    ``b``. Each operand has its own batch dims (``a_batch``, ``b_batch``; None: ``batch``),
    broadcast against ``batch``, and is stored transposed when its ``trans`` flag is set."""

    a: str
    b: str
    batch: tuple[int, ...]
    m: int
    n: int
    k: int
    trans_a: bool = False
    trans_b: bool = False
    a_batch: tuple[int, ...] | None = None
    b_batch: tuple[int, ...] | None = None

    @property
    def operand_batches(self) -> tuple[tuple[int, ...], tuple[int, ...]]:
        return (self.batch if self.a_batch is None else tuple(self.a_batch),
                self.batch if self.b_batch is None else tuple(self.b_batch))

    @property
    def a_shape(self) -> tuple[int, ...]:
        """The shape A is stored as: its batch dims, then its (maybe transposed) matrix."""
        return self.operand_batches[0] + ((self.k, self.m) if self.trans_a else (self.m, self.k))

    @property
    def b_shape(self) -> tuple[int, ...]:
        return self.operand_batches[1] + ((self.n, self.k) if self.trans_b else (self.k, self.n))


def _float32_only(node: Node, graph: Graph) -> str | None:
    for value in node.present_inputs + node.outputs[:1]:
        if graph.types[value].dtype != np.float32:
            return f"cpu_llvm {node.op_type} handles float32 only"
    return None


def check_gemm(node: Node, graph: Graph) -> str | None:
    reason = _float32_only(node, graph)
    if reason:
        return reason
    a, b = (graph.types[v].shape for v in node.inputs[:2])
    if len(a) != 2 or len(b) != 2:
        return "Gemm takes 2-D A and B"
    return None


_WIDE_MATMUL = {np.dtype(np.float16), np.dtype(np.float64)}


def _matmul_dtype(node: Node, graph: Graph) -> np.dtype | None:
    """The common dtype of MatMul's operands and result, or None when they differ."""
    dtypes = {np.dtype(graph.types[v].dtype) for v in node.present_inputs + node.outputs[:1]}
    return dtypes.pop() if len(dtypes) == 1 else None


def check_matmul(node: Node, graph: Graph) -> str | None:
    dtype = _matmul_dtype(node, graph)
    if dtype in _WIDE_MATMUL:
        if dtype == np.float16 and not half_supported():
            return "cpu_llvm handles float16 only on CPUs with float16 conversions (F16C)"
    else:
        reason = _float32_only(node, graph)
        if reason:
            return reason
    a, b = (graph.types[v].shape for v in node.inputs[:2])
    if len(a) < 1 or len(b) < 1:
        return "MatMul needs operands of rank 1 or more"
    return None


@lowering("Gemm", check=check_gemm, epilogue=True)
def lower_gemm(program, group) -> None:
    node = group.head
    graph = program.graph
    attrs = node.attrs
    alpha, beta = float(attrs.get("alpha", 1.0)), float(attrs.get("beta", 1.0))
    trans_a, trans_b = int(attrs.get("transA", 0)), int(attrs.get("transB", 0))
    a_name, b_name = node.inputs[:2]
    a_shape, b_shape = graph.types[a_name].shape, graph.types[b_name].shape
    m, k = (a_shape[1], a_shape[0]) if trans_a else a_shape
    n = b_shape[0] if trans_b else b_shape[1]
    out_shape = (m, n)
    epi = Epilogue(out_shape, 0, [1])
    if alpha != 1.0:
        epi.add_step(scale_step(alpha), [None])
    c_name = node.inputs[2] if len(node.inputs) > 2 and node.inputs[2] else None
    if c_name and beta != 0.0:
        epi.add_step(add_scaled_step(beta), [None, epi.operand(program, c_name)])
    epi.add_nodes(program, group)
    lower_product(program, group, epi, MatrixProduct(a_name, b_name, (), m, n, k,
                                                      bool(trans_a), bool(trans_b)))


@lowering("MatMul", check=check_matmul, epilogue=True)
def lower_matmul(program, group) -> None:
    node = group.head
    graph = program.graph
    a_name, b_name = node.inputs[:2]
    a_shape, b_shape = graph.types[a_name].shape, graph.types[b_name].shape
    out_shape = graph.types[node.outputs[0]].shape
    a2 = (1,) + tuple(a_shape) if len(a_shape) == 1 else tuple(a_shape)
    b2 = tuple(b_shape) + (1,) if len(b_shape) == 1 else tuple(b_shape)
    m, k = a2[-2:]
    n = b2[-1]
    batch = tuple(np.broadcast_shapes(a2[:-2], b2[:-2]))
    # The epilogue sees the output as [batch..., M, N] (1-D operands keep a unit axis).
    full_shape = batch + (m, n)
    epi = Epilogue(full_shape, -2, [-1])
    epi_shape_fix = _reshaped_operands(program, group, out_shape, len(a_shape), len(b_shape))
    for name, strides in epi_shape_fix.items():
        epi.operand(program, name, strides)
    epi.add_nodes(program, group)
    product = MatrixProduct(a_name, b_name, batch, m, n, k, a_batch=a2[:-2], b_batch=b2[:-2])
    if _matmul_dtype(node, graph) in _WIDE_MATMUL:
        lower_dot_product(program, group, epi, product)
        return
    lower_product(program, group, epi, product)


def lower_dot_product(program, group, epi: Epilogue, product: MatrixProduct) -> None:
    """A plain MatMul for float16 and float64: each output element is a dot product
    accumulated in float64 and rounded once to the output dtype (as the reference does), then
    put through the epilogue one element at a time. Threads split the output rows."""
    a_name, b_name, batch = product.a, product.b, product.batch
    m, n, k = product.m, product.n, product.k
    op_batches = product.operand_batches
    elem = llvm_type(program.graph.types[group.head.outputs[0]].dtype)
    batches = int(np.prod(batch, dtype=np.int64)) if batch else 1
    a_bstrides = _batch_strides(op_batches[0], batch, m * k)
    b_bstrides = _batch_strides(op_batches[1], batch, k * n)
    out_slot = program.value(group.output)
    a_slot, b_slot = program.value(a_name), program.value(b_name)
    kb = program.kernel(group.head.name or group.head.op_type)
    b = kb.b
    acc = b.alloca(F64, name="acc")
    out = kb.buffer(out_slot)
    a_base, b_base = kb.buffer(a_slot), kb.buffer(b_slot)
    epi.bind(kb)
    rank = len(batch) + 2

    def widen(value):
        return value if value.type == F64 else b.fpext(value, F64)

    begin, end = kb.thread_share(batches * m)
    with kb.loop(begin, end, name="row") as row:
        batch_idx = b.sdiv(row, const_i64(m))
        i = b.srem(row, const_i64(m))
        coords, rem = [], batch_idx
        for dim in reversed(batch):
            coords.append(b.srem(rem, const_i64(dim)))
            rem = b.sdiv(rem, const_i64(dim))
        coords = coords[::-1]

        def offset(strides):
            off = const_i64(0)
            for coord, stride in zip(coords, strides):
                if stride:
                    off = b.add(off, b.mul(coord, const_i64(stride)))
            return off

        a_row = b.add(offset(a_bstrides), b.mul(i, const_i64(k)))
        b_mat = offset(b_bstrides)
        op_row = {}
        for name, op in epi.operands.items():
            off = offset(op.strides[:rank - 2])
            if op.strides[rank - 2]:
                off = b.add(off, b.mul(i, const_i64(op.strides[rank - 2])))
            op_row[name] = off
        out_row = b.mul(row, const_i64(n))
        with kb.loop(const_i64(0), const_i64(n), name="col") as j:
            b.store(ir.Constant(F64, 0.0), acc)
            with kb.loop(const_i64(0), const_i64(k), name="dot") as kk:
                x = widen(kb.load(a_base, b.add(a_row, kk), elem))
                y = widen(kb.load(b_base, b.add(b_mat, b.add(b.mul(kk, const_i64(n)), j)),
                                  elem))
                b.store(b.fadd(b.load(acc, typ=F64), b.fmul(x, y)), acc)
            result = b.load(acc, typ=F64)
            if elem != F64:
                result = b.fptrunc(result, elem)
            if not epi.empty:
                loaded = {}
                for name, op in epi.operands.items():
                    off = op_row[name]
                    if op.strides[rank - 1]:
                        off = b.add(off, b.mul(j, const_i64(op.strides[rank - 1])))
                    loaded[name] = kb.load(epi.bases[name], off, llvm_type(op.dtype))
                result = epi.run_steps(kb, result, loaded)
            kb.store(result, out, b.add(out_row, j))
    kb.finish()


def _reshaped_operands(program, group, out_shape, a_rank, b_rank) -> dict[str, list[int]]:
    """Strides over [batch..., M, N] of epilogue operands broadcast against ``out_shape``,
    which lacks the M axis when A is 1-D and the N axis when B is 1-D."""
    if a_rank > 1 and b_rank > 1:
        return {}
    result = {}
    graph = program.graph
    produced = {n.outputs[0] for n in group.nodes}
    for node in group.epilogue:
        for value in node.present_inputs:
            if value in result or value in produced:
                continue
            strides = strides_for(graph.types[value].shape, out_shape)
            if b_rank == 1:
                strides = strides + [0]
            if a_rank == 1:
                strides = strides[:-1] + [0] + strides[-1:]
            result[value] = strides
    return result


def lower_product(program, group, epi: Epilogue, product: MatrixProduct) -> None:
    """A float32 ``product`` on the blocked driver, its epilogue ``epi`` applied per tile."""
    graph = program.graph
    nr = panel_width()
    a_name, b_name, batch = product.a, product.b, product.batch
    m, n, k = product.m, product.n, product.k
    trans_a, trans_b = product.trans_a, product.trans_b
    op_batches = product.operand_batches
    a_full, b_full = product.a_shape, product.b_shape
    batches = int(np.prod(batch, dtype=np.int64)) if batch else 1
    a_const = graph.is_constant(a_name)
    b_const = graph.is_constant(b_name)
    a_bstrides = _batch_strides(op_batches[0], batch, m * k)
    b_bstrides = _batch_strides(op_batches[1], batch, k * n)
    # Fold the batch into M when B is shared by every batch and A's batches are contiguous.
    fold = (batches > 1 and not any(b_bstrides) and not a_const
            and a_bstrides == _batch_strides(batch, batch, m * k))
    if fold:
        folded = _folded_epilogue(program, epi, batches * m, n)
        fold = folded is not None
        epi = folded if fold else epi
    rows_total = m * batches if fold else m
    mr = choose_mr(rows_total)
    mtiles = -(-rows_total // mr)
    out_slot = program.value(group.output)
    plan_batches = 1 if fold else batches
    packed = group.head.name or "gemm"  # the prefix of the packed constants' names
    a_slot = _operand_slot(program, a_name, a_full, trans_a, lambda arr: pack_a(arr, mr),
                           f"{packed}__{a_name}__apack")
    b_slot = _operand_slot(program, b_name, b_full, trans_b, lambda arr: pack_b(arr, nr),
                           f"{packed}__{b_name}__bpack")

    kb = program.kernel(group.head.name or group.head.op_type)
    b = kb.b
    out = kb.buffer(out_slot)
    a_base, b_base = kb.buffer(a_slot), kb.buffer(b_slot)

    def batch_offset(batch_idx, strides):
        off = const_i64(0)
        rem = batch_idx
        for dim, stride in zip(reversed(batch), reversed(strides)):
            coord = b.srem(rem, const_i64(dim))
            rem = b.sdiv(rem, const_i64(dim))
            if stride:
                off = b.add(off, b.mul(coord, const_i64(stride)))
        return off

    def batch_index(batch_idx, op_batch):
        """Index of the operand's own (broadcast) batch matrix."""
        return batch_offset(batch_idx, _batch_strides(op_batch, batch, 1))

    def a_elem(batch_idx):
        base_off = const_i64(0) if fold else batch_offset(batch_idx, a_bstrides)

        def elem(i, kk):
            if trans_a:
                off = b.add(b.mul(kk, const_i64(m)), i)
            else:
                off = b.add(b.mul(i, const_i64(k)), kk)
            return kb.element(a_base, b.add(base_off, off), F32)
        return elem

    def a_prepare(kb_, batch_idx, k0, kc, mt0, mt1, dest, kcm):
        pack_a_runtime(kb_, a_elem(batch_idx), rows_total, mr, k0, kc, mt0, mt1, dest, kcm)

    def a_ptr(kb_, batch_idx, mt, k0):
        mat = batch_index(batch_idx, op_batches[0])
        off = b.add(b.mul(b.add(b.mul(mat, const_i64(mtiles)), mt), const_i64(k * mr)),
                    b.mul(k0, const_i64(mr)))
        return kb.element(a_base, off, F32)

    def b_pack(kb_, batch_idx, k0, kc, col0, ncols, dest, stride):
        base_off = batch_offset(batch_idx, b_bstrides)
        if trans_b:
            def elem(kk, q):
                off = b.add(b.mul(b.add(col0, q), const_i64(k)), b.add(k0, kk))
                return kb.element(b_base, b.add(base_off, off), F32)
            pack_rows_strided(kb_, elem, kc, ncols, dest, stride)
        else:
            def row(kk):
                off = b.add(b.mul(b.add(k0, kk), const_i64(n)), col0)
                return kb.element(b_base, b.add(base_off, off), F32)
            pack_rows(kb_, row, kc, ncols, dest, stride)

    panels = -(-n // nr)

    def b_panel(kb_, batch_idx, panel, k0):
        mat = batch_index(batch_idx, op_batches[1])
        off = b.add(b.mul(b.add(b.mul(mat, const_i64(panels)), panel), const_i64(k * nr)),
                    b.mul(k0, const_i64(nr)))
        return kb.element(b_base, off, F32)

    def c_info(kb_, batch_idx):
        if fold:
            return out, {}, const_i64(0)
        coords, rem = {}, batch_idx
        for axis in range(len(batch) - 1, -1, -1):
            coords[axis] = b.srem(rem, const_i64(batch[axis]))
            rem = b.sdiv(rem, const_i64(batch[axis]))
        return kb.element(out, b.mul(batch_idx, const_i64(m * n)), F32), coords, const_i64(0)

    tag = group.head.name or group.head.op_type
    plan = GemmPlan(
        m=rows_total, n=n, k=k, batches=plan_batches, mr=mr, a_ptr=a_ptr, c_info=c_info,
        epilogue=epi,
        b_pack=None if b_const else b_pack, b_const=b_panel if b_const else None,
        a_prepare=None if a_const else a_prepare,
        a_scratch=None if a_const else program.scratch(f"{tag}__ascr", np.float32,
                                                       a_scratch_size(rows_total, mr, k)),
        b_scratch=None if b_const else program.scratch(f"{tag}__bscr", np.float32,
                                                       b_scratch_size(k)))
    emit_gemm(program, kb, plan, out)
    kb.finish()


def _operand_slot(program, name: str, shape: tuple[int, ...], transposed: bool,
                  pack: Callable[[np.ndarray], np.ndarray], key: str) -> int:
    """The slot of product operand ``name`` (stored as ``shape``): its value, or when it is
    a constant its float32 matrices in the product's orientation (each transposed back when
    it is stored ``transposed``) as ``pack`` lays them out, a constant named ``key``."""
    graph = program.graph
    if not graph.is_constant(name):
        return program.value(name)
    matrices = np.asarray(graph.constants[name], np.float32).reshape(shape)
    matrices = matrices.reshape(-1, *matrices.shape[-2:])
    return program.constant(key, pack(matrices.swapaxes(-1, -2) if transposed else matrices))


def _folded_epilogue(program, epi: Epilogue, rows: int, n: int) -> Epilogue | None:
    """``epi`` for an output seen as one [batch * M, N] matrix, or None when an operand's
    strides over the batch axes and M do not merge into one row stride."""
    folded = Epilogue((rows, n), 0, [1])
    shape = epi.out_shape
    for name, op in epi.operands.items():
        coords = np.indices(shape[:-1]).reshape(len(shape) - 1, -1)
        offsets = (coords * np.array(op.strides[:-1])[:, None]).sum(axis=0)
        stride = int(offsets[1] - offsets[0]) if offsets.size > 1 else 0
        if not np.array_equal(offsets, stride * np.arange(offsets.size)):
            return None
        folded.operand(program, name, [stride, op.strides[-1]])
    folded.steps = epi.steps
    return folded


def _batch_strides(op_batch, batch, matrix_elems: int) -> list[int]:
    """Element strides of an operand's batch matrices over the output's batch axes."""
    op_batch = tuple(op_batch)
    padded = (1,) * (len(batch) - len(op_batch)) + op_batch
    strides, step = [], matrix_elems
    for dim in reversed(padded):
        strides.append(step if dim != 1 else 0)
        step *= dim
    return strides[::-1]


__all__ = ["MatrixProduct", "lower_dot_product", "lower_product"]
