"""The cpu_llvm plugin's hooks: patterns, lowering, codegen and runtime."""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from byoc.core.integer_layers import integer_plans
from byoc.core.interpreter import registered_ops
from byoc.core.ir import Graph, Node
from byoc.errors import PluginOptionError
from byoc.partition.int8_patterns import make_qdq_pattern
from byoc.partition.patterns import Accept, Decline, make_op_pattern
from byoc.plugins import hookimpl
from byoc.plugins.api import (
    Estimate,
    Partition,
    PartitionSignature,
    PatternLimits,
    Payload,
    PluginInfo,
    PluginOption,
    Transfer,
)
from byoc_cpu_llvm import __version__, lowering_cache
from byoc_cpu_llvm.codegen import LLVM_TYPES
from byoc_cpu_llvm.jit import compile_ir
from byoc_cpu_llvm.kernels import LOWERINGS, supports
from byoc_cpu_llvm.lower import ALIASING_OPS, alias_refusal, lower_partition
from byoc_cpu_llvm.qdq_groups import integer_group_refusal, qdq_refusal
from byoc_cpu_llvm.roofline import estimate, machine_peaks
from byoc_cpu_llvm.runtime import (
    MIN_WORK_PER_EXTRA_THREAD,
    CpuRuntime,
    check_signature_types,
)
from byoc_cpu_llvm.target import host_target

NAME = "cpu_llvm"


@hookimpl
def byoc_plugin_info() -> PluginInfo:
    host = host_target()
    return PluginInfo(name=NAME, version=__version__,
                      device=f"host CPU ({host.cpu}, {host.vector_bits}-bit vectors)",
                      description="LLVM IR generated with llvmlite, JIT-compiled for this CPU",
                      role="host")


def _check(match, graph: Graph):
    node = match.root
    reason = _dtype_refusal(node, graph)
    if reason is not None:
        return Decline(reason)
    if node.op_type in ALIASING_OPS:
        reason = alias_refusal(node, graph)
        if reason is not None and node.op_type == "Dropout":
            reason = supports(node, graph)  # a kernel copies it (and writes its mask)
    else:
        reason = supports(node, graph) or integer_group_refusal(node, graph)
    return Accept() if reason is None else Decline(reason)


def _dtype_refusal(node: Node, graph: Graph) -> str | None:
    """Why cpu_llvm cannot compute ``node`` when one of its inputs or outputs has an element
    type without an LLVM type here (bfloat16, float8, 4-bit integers, strings...)."""
    for role, names in (("input", node.inputs), ("output", node.outputs)):
        for name in names:
            if name and graph.types[name].dtype not in LLVM_TYPES:
                return (f"cpu_llvm has no LLVM type for element type "
                        f"{graph.types[name].dtype.name} ({role} {name!r})")
    return None


def _check_qdq(match, graph: Graph):
    """Take exactly the QDQ groups the reference evaluates as integer operations (see
    byoc.core.integer_layers) and that the integer kernels handle."""
    plan = integer_plans(graph).get(match.captured["quantize"].name)
    if plan is None or plan.group.op is not match.captured["op"]:
        return Decline("the reference gives this group float semantics (it is not in the "
                       "integer form: per-tensor input/output, constant weights, int32 bias "
                       "with scale x_scale * w_scale, Relu, Clip with constant bounds or no "
                       "activation)")
    reason = qdq_refusal(graph, plan)
    return Accept() if reason is None else Decline(reason)


@hookimpl
def byoc_partition_patterns() -> list:
    """One pattern per ONNX op byoc supports; the check declines what has no kernel yet."""
    ops = sorted(op for domain, op in registered_ops() if not domain)
    # Int8 layers in QDQ form, as one integer kernel each (larger matches win over the
    # single-op patterns).
    qdq = [make_qdq_pattern(f"{NAME}.qdq_conv", ("Conv",), check=_check_qdq),
           make_qdq_pattern(f"{NAME}.qdq_matmul", ("MatMul", "Gemm"), check=_check_qdq)]
    return qdq + [make_op_pattern(f"{NAME}.{op.lower()}", op, check=_check) for op in ops]


@hookimpl
def byoc_estimate_match(nodes: list[Node], graph: Graph) -> Estimate:
    """A roofline of this machine as cpu_llvm's kernels run on it (:mod:`.roofline`)."""
    return estimate(nodes, graph, machine_peaks())


@hookimpl
def byoc_estimate_transfer() -> Transfer:
    """cpu_llvm works in host memory: its partitions read and write the tensors in place.
    Each run of a partition costs its launch, measured with the roofline (:mod:`.roofline`):
    the call from Python and copying the outputs out."""
    return Transfer.free(launch=machine_peaks().launch_seconds)


def _without_kernel() -> list[str]:
    """The ops byoc supports that cpu_llvm has no kernel for (their patterns decline all)."""
    return sorted(op for domain, op in registered_ops()
                  if not domain and op not in LOWERINGS and op not in ALIASING_OPS
                  and op not in _FOLDED)


@hookimpl
def byoc_lower_partition(partition: Partition, graph: Graph,
                         constants: dict[str, np.ndarray]) -> Any:
    """The partition lowered (:mod:`.lower`), or its lowering from an earlier compile
    (:mod:`.lowering_cache`)."""
    key = lowering_cache.lowering_key(partition, graph, constants) \
        if lowering_cache.enabled() and lowering_cache.worth_keying(partition) else None
    cached = lowering_cache.load(key) if key else None
    if cached is not None:
        return cached
    start = time.perf_counter()
    lowered = lower_partition(partition, graph, constants)
    if key and lowering_cache.worth_storing(time.perf_counter() - start):
        lowering_cache.store(key, lowered)
    return lowered


@hookimpl
def byoc_codegen_partition(partition: Partition, lowered: Any) -> Payload:
    ir_text, meta, arrays = lowered
    compile_ir(ir_text)  # compile now: errors surface at compile time, and the cache fills
    return Payload(ir_text.encode(), meta, arrays)


OPTIONS = (
    PluginOption("threads", int, None, "at most this many threads per partition (not set: "
                 "all cores, or BYOC_THREADS)"),
    PluginOption("min_work_per_thread", int, MIN_WORK_PER_EXTRA_THREAD,
                 "operations per run each thread must have before a partition uses it (0 "
                 "always uses every thread)"),
)


@hookimpl
def byoc_plugin_options() -> list[PluginOption]:
    return list(OPTIONS)


@hookimpl
def byoc_runtime_create(payload: Payload, partition: PartitionSignature,
                        options: dict[str, Any]) -> CpuRuntime:
    unknown = sorted(set(options) - {option.name for option in OPTIONS})
    if unknown:
        known = "; ".join(f"{option.name}: {option.help}" for option in OPTIONS)
        raise PluginOptionError(f"cpu_llvm has no option {', '.join(unknown)}; its options are: "
                          f"{known}")
    threads = _integer_option(options, "threads", minimum=1)
    min_work = _integer_option(options, "min_work_per_thread", minimum=0)
    check_signature_types(partition, payload.metadata["buffers"])
    return CpuRuntime(payload, partition, threads,
                      MIN_WORK_PER_EXTRA_THREAD if min_work is None else min_work)


def _integer_option(options: dict[str, Any], name: str, minimum: int) -> int | None:
    if options.get(name) is None:
        return None
    try:
        value = int(options[name])
    except (TypeError, ValueError):
        value = minimum - 1
    if value < minimum:
        raise PluginOptionError(f"cpu_llvm option {name}={options[name]!r}: give a whole number of "
                          f"at least {minimum}")
    return value


# Ops byoc folds into constants before partitioning when shapes are static, as the kit's
# models always are: no plugin ever sees them there.
_FOLDED = ("Constant", "ConstantOfShape", "Range", "Shape")


@hookimpl
def byoc_conformance_limits() -> list[PatternLimits]:
    """Every kernel takes float32; the elementwise ones every float and integer type,
    MatMul every float type, Conv and Gemm float32 only, the pooling ones float32 and
    float64."""
    floats = ("float32", "float64", "float16")
    numbers = floats + ("int32", "int64", "int8", "uint8")
    by_op = {
        **{op: {"dtype": floats} for op in (
            "Abs", "Ceil", "Cos", "Elu", "Erf", "Exp", "Floor", "Gelu", "HardSigmoid",
            "HardSwish", "LeakyRelu", "Log", "Neg", "Reciprocal", "Relu", "Round", "Selu",
            "Sigmoid", "Sign", "Sin", "Softplus", "Softsign", "Sqrt", "Tanh")},
        **{op: {"dtype": numbers} for op in (
            "Add", "Sub", "Mul", "Div", "Max", "Min", "Pow", "Sum", "Mean", "PRelu", "Equal",
            "Greater", "GreaterOrEqual", "Less", "LessOrEqual")},
        **{op: {"dtype": ("float32",)} for op in ("Conv", "Gemm")},
        "MatMul": {"dtype": floats},
        **{op: {"dtype": ("float32", "float64")} for op in (
            "MaxPool", "AveragePool", "GlobalMaxPool", "GlobalAveragePool")},
    }
    limits = [PatternLimits(f"{NAME}.{op.lower()}", accepts=accepts)
              for op, accepts in by_op.items()]
    limits += [PatternLimits(f"{NAME}.{op.lower()}", skip=f"byoc folds {op} into a constant "
                                                           f"before partitioning")
               for op in _FOLDED]
    limits += [PatternLimits(f"{NAME}.{op.lower()}", skip=f"cpu_llvm has no kernel for {op}: "
                                                           f"it declines every such node")
               for op in _without_kernel()]
    return limits + [PatternLimits(f"{NAME}.qdq_conv", accepts={"group": (1, 2, "depthwise"),
                                                                "dilation": (1, 2)}),
                     PatternLimits(f"{NAME}.qdq_matmul", accepts={"trans_b": (0, 1)})]
