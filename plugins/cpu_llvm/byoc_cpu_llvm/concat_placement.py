"""Concatenation by placement: producers write straight into the Concat's output.

A Concat whose output has only unit dimensions before its axis (NCHW at batch 1 along the
channels) is a row of contiguous chunks, one per input. An input computed in the partition by a
kernel that writes exactly its own elements can live in its chunk: its buffer becomes a view of
the Concat's output at the chunk's offset, its producer writes it there, and the Concat copies
nothing for it. Placement nests: DenseNet's ``x_k = Concat(x_(k-1), y_k)`` places each ``x_(k-1)``
in ``x_k``, so a dense block's outputs all share the block's last buffer and its layers never
copy. A Concat whose inputs are a run of a later Concat's inputs (torchvision's DenseNet
concatenates all earlier outputs at every layer) is itself a view of that run, and copies only
what is not placed there already.

Every buffer of the program is its own memory, so a chunk is written only by its value's
producer (or by the Concat's copy of an input that is not placed), and the chunks of distinct
values never overlap.
"""

from __future__ import annotations

from collections import Counter

import numpy as np

from byoc.core.ir import Graph, Node
from byoc_cpu_llvm.fusion import Group

# Kernels whose writes stay inside their output (every edge store masked): a value they make
# may be placed in a Concat's output.
PLACEABLE_HEADS = {
    "Conv", "MaxPool", "AveragePool", "GlobalAveragePool", "GlobalMaxPool", "BatchNormalization",
    "Concat",
    "Gemm", "MatMul", "Relu", "Add", "Mul", "Sigmoid", "Clip", "LeakyRelu",
}


def place_concat_inputs(program, groups: list[Group], graph: Graph,
                        partition_values: set[str]) -> None:
    """Make the eligible Concat inputs (and Concat outputs) views of Concat outputs.
    ``partition_values`` are the partition's inputs and outputs (they keep their buffers)."""
    producer = {group.output: group for group in groups}
    concats = [g.head for g in groups if g.head.op_type == "Concat" and not g.epilogue
               and not g.head.domain]
    placed: set[str] = set()
    done: list[tuple[Node, list[tuple[str, int]]]] = []
    for node in reversed(concats):
        out = node.outputs[0]
        chunks = _chunks(node, graph)
        if chunks is None:
            continue
        if out not in placed and out not in partition_values:
            run = _run_in(chunks, done)
            if run is not None:
                into, offset = run
                if program.place(out, into, offset):
                    placed.add(out)
        times = Counter(value for value, _ in chunks)
        for value, offset in chunks:
            group = producer.get(value)
            if (value in placed or value in partition_values or group is None
                    or group.head.op_type not in PLACEABLE_HEADS or times[value] != 1
                    or graph.types[value].dtype != graph.types[out].dtype):
                continue
            if program.place(value, out, offset):
                placed.add(value)
        done.append((node, chunks))


def _chunks(node: Node, graph: Graph) -> list[tuple[str, int]] | None:
    """(input, element offset in the output) per input, or None when the chunks are not
    contiguous."""
    out = graph.types[node.outputs[0]]
    axis = node.attrs["axis"] % out.rank
    if any(d != 1 for d in out.shape[:axis]) or "" in node.inputs:
        return None
    inner = int(np.prod(out.shape[axis + 1:], dtype=np.int64))
    chunks, start = [], 0
    for value in node.inputs:
        chunks.append((value, start * inner))
        start += graph.types[value].shape[axis]
    return chunks


def _run_in(chunks: list[tuple[str, int]],
            done: list[tuple[Node, list[tuple[str, int]]]]) -> tuple[str, int] | None:
    """(a later Concat's output, offset) when ``chunks``' inputs are a run of its inputs."""
    values = [v for v, _ in chunks]
    for later, later_chunks in done:
        names = [v for v, _ in later_chunks]
        for i in range(len(names) - len(values) + 1):
            if names[i:i + len(values)] == values:
                return later.outputs[0], later_chunks[i][1]
    return None
