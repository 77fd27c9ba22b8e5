"""Fused elementwise kernels: a head op and its epilogue evaluated per element in one loop.

Operands broadcast numpy-style: each operand is addressed with its own strides over the
output's dims (0 along broadcast dims). Threads split the rows (all dims but the last); the
innermost loop runs over the last dim with constant strides, which LLVM vectorizes.
"""

from __future__ import annotations

import numpy as np

from byoc.core.ir import Graph, Node
from byoc_cpu_llvm.codegen import const_i64, llvm_type
from byoc_cpu_llvm.kernels import lowering
from byoc_cpu_llvm.kernels.scalar_ops import EMITTERS
from byoc_cpu_llvm.target import host_target

_FLOAT_ONLY = {"Sigmoid", "Tanh", "Exp", "Log", "Erf", "Sqrt", "Reciprocal",
               "HardSigmoid", "HardSwish", "Softplus", "Elu", "Selu", "Gelu", "PRelu",
               "LeakyRelu"}
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
        for value in node.present_inputs:
            if value not in operands and not _is_running(group, node, value):
                vtype = graph.types[value]
                operands[value] = (program.value(value), strides_for(vtype.shape, shape))
    out_slot = program.value(out_name)

    kb = program.kernel(group.head.name or group.head.op_type)
    bases = {value: kb.buffer(slot) for value, (slot, _) in operands.items()}
    out_base = kb.buffer(out_slot)
    begin, end = kb.thread_share(rows)
    b = kb.b
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
        with kb.loop(0, inner, name="col") as col:
            loaded = {}
            for value, (_, strides) in operands.items():
                offset = row_offsets[value]
                if strides[-1]:
                    offset = b.add(offset, b.mul(col, const_i64(strides[-1])))
                loaded[value] = kb.load(bases[value], offset,
                                        llvm_type(graph.types[value].dtype))
            result = None
            for node in group.nodes:
                # Omitted optional inputs (Clip without min) stay in place as None.
                args = [None if not v else result if _is_running(group, node, v)
                        else loaded[v] for v in node.inputs]
                dtypes = [graph.types[v].dtype if v else None for v in node.inputs]
                result = EMITTERS[node.op_type](kb, node.op_type, args, node.attrs, dtypes,
                                                graph.types[node.outputs[0]].dtype)
            kb.store(result, out_base, b.add(b.mul(row, const_i64(inner)), col))
    kb.finish()


def _is_running(group, node: Node, value: str) -> bool:
    """Whether ``value`` is the group's running result as read by epilogue ``node``."""
    position = group.nodes.index(node)
    return position > 0 and value == group.nodes[position - 1].outputs[0]


__all__ = ["lower_elementwise", "strides_for"]
