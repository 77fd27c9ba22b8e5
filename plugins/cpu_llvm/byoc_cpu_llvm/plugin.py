"""The cpu_llvm plugin's hooks: patterns, lowering, codegen and runtime."""

from __future__ import annotations

from typing import Any

import numpy as np

from byoc.core.interpreter import registered_ops
from byoc.core.ir import Graph
from byoc.errors import PluginError
from byoc.partition.patterns import Accept, Decline, make_op_pattern
from byoc.plugins import hookimpl
from byoc.plugins.api import Partition, PartitionSignature, Payload, PluginInfo
from byoc_cpu_llvm import __version__
from byoc_cpu_llvm.jit import compile_ir
from byoc_cpu_llvm.kernels import supports
from byoc_cpu_llvm.lower import ALIASING_OPS, alias_refusal, lower_partition
from byoc_cpu_llvm.runtime import CpuRuntime, check_signature_types
from byoc_cpu_llvm.target import host_target

NAME = "cpu_llvm"


@hookimpl
def byoc_plugin_info() -> PluginInfo:
    host = host_target()
    return PluginInfo(name=NAME, version=__version__,
                      device=f"host CPU ({host.cpu}, {host.vector_bits}-bit vectors)",
                      description="LLVM IR generated with llvmlite, JIT-compiled for this CPU")


def _check(match, graph: Graph):
    node = match.root
    if node.op_type in ALIASING_OPS:
        reason = alias_refusal(node, graph)
    else:
        reason = supports(node, graph)
    return Accept() if reason is None else Decline(reason)


@hookimpl
def byoc_partition_patterns() -> list:
    """One pattern per ONNX op byoc supports; the check declines what has no kernel yet."""
    ops = sorted(op for domain, op in registered_ops() if not domain)
    return [make_op_pattern(f"{NAME}.{op.lower()}", op, check=_check) for op in ops]


@hookimpl
def byoc_lower_partition(partition: Partition, graph: Graph,
                         constants: dict[str, np.ndarray]) -> Any:
    return lower_partition(partition, graph, constants)


@hookimpl
def byoc_codegen_partition(partition: Partition, lowered: Any) -> Payload:
    ir_text, meta, arrays = lowered
    compile_ir(ir_text)  # compile now: errors surface at compile time, and the cache fills
    return Payload(ir_text.encode(), meta, arrays)


OPTIONS = {"threads": "worker threads per partition (default: all cores)"}


@hookimpl
def byoc_runtime_create(payload: Payload, partition: PartitionSignature,
                        options: dict[str, Any]) -> CpuRuntime:
    unknown = sorted(set(options) - set(OPTIONS))
    if unknown:
        known = "; ".join(f"{k}: {v}" for k, v in OPTIONS.items())
        raise PluginError(f"cpu_llvm has no option {', '.join(unknown)}; its options are: "
                          f"{known}")
    threads = options.get("threads")
    try:
        threads = None if threads is None else int(threads)
    except ValueError:
        threads = 0
    if threads is not None and threads < 1:
        raise PluginError(f"cpu_llvm option threads={options['threads']!r}: give a positive "
                          f"number of threads")
    check_signature_types(partition, payload.metadata["buffers"])
    return CpuRuntime(payload, partition, threads)
