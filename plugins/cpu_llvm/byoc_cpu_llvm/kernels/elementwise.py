"""Fused elementwise kernels: a head op and its epilogue evaluated per element in one loop.

Operands broadcast numpy-style: each operand is addressed with its own strides over the
output's dims (0 along broadcast dims). Threads split the rows (all dims but the last); the
innermost loop runs over the last dim with constant strides, which LLVM vectorizes. Groups
holding an op computed with vector math (Mish, Swish, Erf, Gelu: a libm call per element
would keep LLVM from vectorizing) are emitted on explicit float vectors, with a scalar tail.
"""

from __future__ import annotations

import numpy as np
from llvmlite import ir

from byoc.core.ir import Graph, Node
from byoc_cpu_llvm.codegen import const_i64, llvm_type
from byoc_cpu_llvm.kernels import lowering
from byoc_cpu_llvm.kernels.scalar_ops import EMITTERS, TYPE_ONLY_INPUTS, VECTOR_MATH_OPS
from byoc_cpu_llvm.target import host_target

_FLOAT_ONLY = {"Sigmoid", "Tanh", "Exp", "Log", "Erf", "Sqrt", "Reciprocal",
               "HardSigmoid", "HardSwish", "Softplus", "Elu", "Selu", "Gelu", "PRelu",
               "LeakyRelu", "Celu", "ThresholdedRelu", "Mish", "Swish", "IsNaN", "IsInf",
               "Tan", "Asin", "Acos", "Atan", "Sinh", "Cosh", "Asinh", "Acosh", "Atanh"}
_INTEGER_ONLY = {"BitShift", "BitwiseAnd", "BitwiseOr", "BitwiseXor", "BitwiseNot"}
_SUPPORTED_DTYPES = {np.dtype(t) for t in (np.float32, np.float64, np.int8, np.uint8,
                                           np.int16, np.uint16, np.int32, np.uint32,
                                           np.int64, np.uint64, np.bool_)}


_FLOAT16 = np.dtype(np.float16)


def half_supported() -> bool:
    """Whether the host converts float16 in hardware (x86 F16C, or any AArch64): otherwise
    LLVM would call runtime helpers the JIT may not resolve."""
    host = host_target()
    return host.has("f16c") or host.triple.startswith(("aarch64", "arm64"))


def check(node: Node, graph: Graph) -> str | None:
    dtypes = [graph.types[v].dtype for v in node.present_inputs + node.outputs[:1]]
    for dtype in dtypes:
        if dtype == _FLOAT16 and not half_supported():
            return "cpu_llvm handles float16 only on CPUs with float16 conversions (F16C)"
        if dtype not in _SUPPORTED_DTYPES and dtype != _FLOAT16:
            return f"cpu_llvm elementwise kernels do not handle {dtype}"
    if node.op_type in _FLOAT_ONLY and not np.issubdtype(dtypes[0], np.floating):
        return f"{node.op_type} on {dtypes[0]} is not supported by cpu_llvm"
    if node.op_type in _INTEGER_ONLY and not np.issubdtype(dtypes[0], np.integer):
        return f"{node.op_type} on {dtypes[0]} is not supported by cpu_llvm (integers only)"
    return _attribute_refusal(node)


def _attribute_refusal(node: Node) -> str | None:
    """Why an attribute value makes the node invalid (the reference refuses it too)."""
    if node.op_type == "Mod" and node.attrs.get("fmod", 0) not in (0, 1):
        return f"Mod's fmod attribute must be 0 or 1; node {node.name!r} has {node.attrs['fmod']}"
    if node.op_type == "BitShift" and node.attrs.get("direction") not in ("LEFT", "RIGHT"):
        return (f"BitShift's direction attribute must be LEFT or RIGHT; node {node.name!r} "
                f"has {node.attrs.get('direction')!r}")
    return None


def strides_for(shape: tuple[int, ...], out_shape: tuple[int, ...]) -> list[int]:
    """Element strides of an operand of ``shape`` over the dims of ``out_shape``."""
    padded = (1,) * (len(out_shape) - len(shape)) + tuple(shape)
    strides, step = [], 1
    for dim in reversed(padded):
        strides.append(step if dim != 1 else 0)
        step *= dim
    return strides[::-1]


@lowering(*EMITTERS, check=check, epilogue=True)
def lower_elementwise(program, group) -> None:
    graph = program.graph
    out_name = group.output
    out_type = graph.types[out_name]
    shape = out_type.shape or (1,)
    inner = shape[-1]
    rows = int(np.prod(shape[:-1], dtype=np.int64))
    operands: dict[str, tuple[int, list[int]]] = {}
    for node in group.nodes:
        for value in _read_inputs(node):
            if value not in operands and not _is_running(group, node, value):
                vtype = graph.types[value]
                operands[value] = (program.value(value), strides_for(vtype.shape, shape))
    out_slot = program.value(out_name)
    # Ops computed by vector math take explicit vectors; the others are left to LLVM's loop
    # vectorizer, which handles any mix of dtypes.
    lanes = host_target().float_lanes
    explicit = any(n.op_type in VECTOR_MATH_OPS for n in group.nodes) and inner >= lanes

    kb = program.kernel(group.head.name or group.head.op_type)
    bases = {value: kb.buffer(slot) for value, (slot, _) in operands.items()}
    out_base = kb.buffer(out_slot)
    begin, end = kb.thread_share(rows)
    b = kb.b

    def columns(start: int, stop: int, step: int, row, row_offsets) -> None:
        """Results ``[start, stop)`` of the row, ``step`` at a time (a vector when > 1)."""
        with kb.loop(start, stop, step, name="col") as col:
            loaded = {}
            for value, (_, strides) in operands.items():
                dtype = graph.types[value].dtype
                offset = row_offsets[value]
                if strides[-1]:  # (operand strides along the last dim are 1 or 0)
                    loaded[value] = _load(kb, bases[value], b.add(offset, col), dtype, step)
                else:
                    scalar = kb.load(bases[value], offset, llvm_type(dtype))
                    loaded[value] = scalar if step == 1 else kb.splat(scalar, step)
            result = None
            for node in group.nodes:
                # Omitted optional inputs (Clip without min) and inputs whose values the op
                # does not read (CastLike's) stay in place as None.
                read = set(_read_inputs(node))
                args = [None if v not in read else result if _is_running(group, node, v)
                        else loaded[v] for v in node.inputs]
                dtypes = [graph.types[v].dtype if v else None for v in node.inputs]
                result = EMITTERS[node.op_type](kb, node.op_type, args, node.attrs, dtypes,
                                                graph.types[node.outputs[0]].dtype)
            ptr = kb.element(out_base, b.add(b.mul(row, const_i64(inner)), col),
                             llvm_type(out_type.dtype))
            b.store(result, ptr, align=out_type.dtype.itemsize)

    with kb.loop(begin, end, name="row") as row:
        # Split the row index into the output's leading dims, then into operand offsets.
        row_offsets = {value: const_i64(0) for value in operands}
        remainder = row
        for axis in range(len(shape) - 2, -1, -1):
            dim = const_i64(shape[axis])
            coordinate = b.srem(remainder, dim)
            remainder = b.sdiv(remainder, dim)
            for value, (_, strides) in operands.items():
                if strides[axis]:
                    row_offsets[value] = b.add(row_offsets[value],
                                               b.mul(coordinate, const_i64(strides[axis])))
        whole = inner // lanes * lanes if explicit else 0
        if whole:
            columns(0, whole, lanes, row, row_offsets)
        if whole < inner:
            columns(whole, inner, 1, row, row_offsets)
    kb.finish()


def _read_inputs(node: Node) -> list[str]:
    """The inputs whose values ``node`` reads (not omitted, not read for their type only)."""
    type_only = TYPE_ONLY_INPUTS.get(node.op_type, ())
    return [v for i, v in enumerate(node.inputs) if v and i not in type_only]


def _load(kb, base: ir.Value, offset: ir.Value, dtype: np.dtype, lanes: int) -> ir.Value:
    """``lanes`` consecutive values from element ``offset`` (a scalar when ``lanes`` is 1)."""
    elem = llvm_type(dtype)
    ptr = kb.element(base, offset, elem)
    if lanes == 1:
        return kb.b.load(ptr, typ=elem)
    return kb.b.load(ptr, typ=ir.VectorType(elem, lanes), align=dtype.itemsize)


def _is_running(group, node: Node, value: str) -> bool:
    """Whether ``value`` is the group's running result as read by epilogue ``node``."""
    position = group.nodes.index(node)
    return position > 0 and value == group.nodes[position - 1].outputs[0]


__all__ = ["lower_elementwise", "strides_for"]
