"""Einsum whose equation is a (batched) matrix product: float32 on the blocked GEMM driver,
float16 and float64 (untransposed) as gemm's float64-accumulated dot products.

Subscripts fall in four groups: *batch* (in both operands and the output), *rows* (in A and
the output), *columns* (in B and the output) and *inner* (in both operands, summed). The
equation is a matrix product when each operand is its batch subscripts followed by its two
groups in either order (a transposed operand), and the output is the batch subscripts
followed by rows and columns in either order (rows after columns is the transposed product
``C^T = B^T A^T``, computed with the operands swapped). A group of several subscripts is
contiguous in memory, so it is one matrix dimension: ``bij,jk->bik`` is one [b*i, j] x [j, k]
product and ``bhqd,bhkd->bhqk`` is b*h products against a transposed B.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from byoc.core.interpreter.ops_einsum import ELLIPSIS, parse_equation, term_axes
from byoc.core.ir import Graph, Node
from byoc_cpu_llvm.kernels import lowering
from byoc_cpu_llvm.kernels.elementwise import half_supported
from byoc_cpu_llvm.kernels.epilogue import Epilogue
from byoc_cpu_llvm.kernels.gemm import MatrixProduct, lower_dot_product, lower_product

# Dtypes whose products are float64-accumulated dot products (gemm's plain MatMul for them),
# which read their operands untransposed.
DOT_PRODUCT_DTYPES = (np.dtype(np.float16), np.dtype(np.float64))


@dataclass(frozen=True)
class EinsumProduct(MatrixProduct):
    """An Einsum as ``C[batch, m, n] = A'[batch, m, k] @ B'[batch, k, n]``; ``a`` and ``b``
    name the graph values read as A and B (``swapped`` for a transposed output), each stored
    transposed when its ``trans`` flag is set."""

    swapped: bool = False


def _axes(node: Node, graph: Graph) -> tuple[list[list[str]], list[str], dict[str, int]]:
    """Each operand's and the output's subscripts, one per axis, with ``...`` replaced by a
    name per broadcast axis (``...0``, ``...1``), and every subscript's size."""
    shapes = [graph.types[v].shape for v in node.inputs]
    equation = parse_equation(node.attrs["equation"], len(node.inputs))
    out_rank = len(graph.types[node.outputs[0]].shape)
    terms = [term_axes(term, len(shape)) for term, shape in zip(equation.inputs, shapes)]
    terms.append(term_axes(equation.output, out_rank))
    named = []
    for term in terms:
        covered = term.count(ELLIPSIS)
        first = term.index(ELLIPSIS) if covered else 0
        # Broadcast axes are right-aligned: the last one is named the same in every term.
        named.append([f"{ELLIPSIS}{covered - 1 - (i - first)}" if s == ELLIPSIS else s
                      for i, s in enumerate(term)])
    sizes: dict[str, int] = {}
    for term, shape in zip(named, shapes + [graph.types[node.outputs[0]].shape]):
        for subscript, size in zip(term, shape):
            if sizes.setdefault(subscript, size) != size:
                sizes[subscript] = -1  # broadcast: a size-1 axis against a longer one
    return named[:-1], named[-1], sizes


def _split(term: list[str], first: list[str], second: list[str]) -> bool | None:
    """Whether ``term`` is ``first + second`` (False) or ``second + first`` (True), or None
    when it is neither."""
    if term == first + second:
        return False
    if term == second + first:
        return True
    return None


def matrix_product(node: Node, graph: Graph) -> EinsumProduct | str:
    """The Einsum as a matrix product, or why it is not one."""
    if len(node.inputs) != 2:
        return "cpu_llvm runs Einsum of two operands only"
    (a_terms, b_terms), out, sizes = _axes(node, graph)
    if any(size < 0 for size in sizes.values()):
        return "cpu_llvm Einsum does not broadcast size-1 axes"
    for term in (a_terms, b_terms):
        if len(set(term)) != len(term):
            return "cpu_llvm Einsum does not take diagonals (a subscript repeated in a term)"
    batch = [s for s in out if s in a_terms and s in b_terms]
    rows = [s for s in out if s in a_terms and s not in b_terms]
    cols = [s for s in out if s in b_terms and s not in a_terms]
    inner = [s for s in a_terms if s in b_terms and s not in out]
    if set(a_terms) | set(b_terms) != set(batch + rows + cols + inner):
        return "cpu_llvm Einsum does not sum an axis of one operand alone"
    n_batch = len(batch)
    if a_terms[:n_batch] != batch or b_terms[:n_batch] != batch or out[:n_batch] != batch:
        return ("cpu_llvm Einsum needs the batch subscripts first, in the same order, in both "
                "operands and the output")
    b_inner = [s for s in b_terms[n_batch:] if s in inner]
    if b_inner != [s for s in a_terms[n_batch:] if s in inner]:
        return "cpu_llvm Einsum needs the summed subscripts in the same order in both operands"
    trans_a = _split(a_terms[n_batch:], rows, inner)
    trans_b = _split(b_terms[n_batch:], inner, cols)
    swapped = _split(out[n_batch:], rows, cols)
    if trans_a is None or trans_b is None or swapped is None:
        return ("cpu_llvm Einsum needs each term to be its batch subscripts and then two "
                "contiguous groups (rows, columns or summed), as a matrix product has")
    if any(size == 0 for size in sizes.values()):
        return "cpu_llvm Einsum does not take empty tensors"

    def count(group):
        return int(np.prod([sizes[s] for s in group], dtype=np.int64))

    batch_shape = tuple(sizes[s] for s in batch)
    a, b = node.inputs
    if swapped:
        # C^T = B^T A^T: B read transposed is the new A, A read transposed the new B.
        return EinsumProduct(b, a, batch_shape, count(cols), count(rows), count(inner),
                             not trans_b, not trans_a, swapped=True)
    return EinsumProduct(a, b, batch_shape, count(rows), count(cols), count(inner),
                         trans_a, trans_b)


def _dtype(node: Node, graph: Graph) -> np.dtype | None:
    """The common dtype of the operands and the result, or None when they differ."""
    found = {np.dtype(graph.types[v].dtype) for v in node.present_inputs + node.outputs[:1]}
    return found.pop() if len(found) == 1 else None


def check_einsum(node: Node, graph: Graph) -> str | None:
    dtype = _dtype(node, graph)
    if dtype not in (np.float32, *DOT_PRODUCT_DTYPES):
        return "cpu_llvm Einsum handles float32, float16 and float64"
    if dtype == np.float16 and not half_supported():
        return "cpu_llvm handles float16 only on CPUs with float16 conversions (F16C)"
    product = matrix_product(node, graph)
    if isinstance(product, str):
        return product
    if dtype != np.float32 and (product.trans_a or product.trans_b or product.swapped):
        return (f"cpu_llvm Einsum in {dtype} takes untransposed products only "
                f"(subscripts in the order of A @ B)")
    return None


@lowering("Einsum", check=check_einsum)
def lower_einsum(program, group) -> None:
    product = matrix_product(group.head, program.graph)
    epilogue = Epilogue(product.batch + (product.m, product.n), -2, [-1])
    if _dtype(group.head, program.graph) in DOT_PRODUCT_DTYPES:
        lower_dot_product(program, group, epilogue, product)
        return
    lower_product(program, group, epilogue, product)


__all__ = ["lower_einsum", "matrix_product"]
