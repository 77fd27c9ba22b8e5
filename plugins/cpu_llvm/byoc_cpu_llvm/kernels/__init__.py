"""Lowerings from fused node groups to kernels, one module per op family, keyed by op type.

A lowering is ``lower(program, group)``: it emits the group's kernel into the program
(declaring the buffers it reads and writes) and returns nothing. ``supports(node, graph)``
returns None when a node can be lowered, or the reason it cannot.

The modules without a lowering hold what several families share: ``gemm_driver`` and
``microkernel`` (blocked float32 products), ``int8_product`` (exact integer products),
``reduction_parts`` (row reductions), ``strided_copy`` (data movement), ``epilogue`` and
``scalar_ops`` (fused elementwise steps), ``vector_math`` (vectorized exp and tanh).
"""

from __future__ import annotations

import importlib
import pkgutil
from typing import Callable

from byoc.core.ir import Graph, Node

Lowering = Callable[..., None]
Check = Callable[[Node, Graph], "str | None"]
LOWERINGS: dict[str, Lowering] = {}
CHECKS: dict[str, Check] = {}
# Heads whose kernels apply a fused elementwise epilogue to their results.
ACCEPTS_EPILOGUE: set[str] = set()


def lowering(*op_types: str, check: Check | None = None, epilogue: bool = False):
    """Register ``lower(program, group)`` for groups headed by ``op_types``; ``check``
    tells for one node whether the lowering handles it (None) or why not; ``epilogue`` says
    the kernel applies the group's elementwise epilogue (so fusion may give it one)."""
    def register(fn: Lowering) -> Lowering:
        for op in op_types:
            if op in LOWERINGS:
                raise RuntimeError(f"cpu_llvm: two lowerings for {op}")
            LOWERINGS[op] = fn
            if check is not None:
                CHECKS[op] = check
            if epilogue:
                ACCEPTS_EPILOGUE.add(op)
        return fn
    return register


def supports(node: Node, graph: Graph) -> str | None:
    if node.domain or node.op_type not in LOWERINGS:
        return f"cpu_llvm has no kernel for {node.domain or 'ai.onnx'}::{node.op_type} yet"
    check = CHECKS.get(node.op_type)
    return check(node, graph) if check else None


def _import_families() -> None:
    for module in pkgutil.iter_modules(__path__):
        if module.name != "scalar_ops":
            importlib.import_module(f"{__name__}.{module.name}")


_import_families()
