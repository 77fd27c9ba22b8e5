"""The NPU's cost estimates, from its layer model, before anything is lowered.

Each layer the NPU runs is one command, so a match (one QDQ group) costs what its command
will: :func:`byoc_npu_example.sim.command_cycles`, the simulator's own timing, applied to the
work the layer does as the graph gives it (its MACs, the int8 bytes of its input tensors and
of its output tensor) rather than as the simulator counts it while running. A Flatten, which
moves no byte, and a shared DequantizeLinear run no command and cost nothing. Seconds are
cycles at the configuration's ``clock_hz``; tensors move to and from the NPU's DRAM at
``dram_bytes_per_cycle`` (:func:`transfer`).
"""

from __future__ import annotations

from collections import Counter

import numpy as np

from byoc.core.flops import node_macs
from byoc.core.ir import Graph, Node
from byoc.estimate import boundary_bytes
from byoc.plugins.api import Estimate, Transfer
from byoc_npu_example.command_stream import Opcode
from byoc_npu_example.config import CONFIG
from byoc_npu_example.layers import (
    ConvLayer,
    FlattenLayer,
    Layer,
    PoolLayer,
    npu_layer,
    qdq_groups,
)
from byoc_npu_example.sim import command_cycles


def estimate(nodes: list[Node], graph: Graph) -> Estimate | None:
    """The cycles and seconds of the commands ``nodes`` lower to, or None when they hold a
    group the NPU does not run."""
    inside = {id(n) for n in nodes}
    cycles = 0
    for group in qdq_groups(graph).values():
        if id(group.op) not in inside:
            continue
        layer = npu_layer(group, graph, CONFIG)
        if isinstance(layer, str):
            return None
        cycles += layer_cycles(layer, graph)
    bytes_in, bytes_out = boundary_bytes(nodes, graph)
    return Estimate(cycles / CONFIG.clock_hz, cycles, bytes_in, bytes_out,
                    f"npu_example layer model (the simulator's command timing) at "
                    f"{CONFIG.clock_hz / 1e6:g} MHz")


def layer_cycles(layer: Layer, graph: Graph) -> int:
    """The cycles of the one command ``layer`` is (0 for a Flatten, which is none)."""
    if isinstance(layer, FlattenLayer):
        return 0
    if isinstance(layer, ConvLayer):
        opcode = Opcode.DEPTHWISE_CONV2D if layer.depthwise else Opcode.CONV2D
        reads = [layer.x.value]
        work = Counter(macs=node_macs(layer.group.op, graph))
    elif isinstance(layer, PoolLayer):
        opcode, reads, work = Opcode.POOL, [layer.x.value], Counter()
    else:   # an AddLayer
        opcode, reads, work = Opcode.ELTWISE_ADD, [layer.a.value, layer.b.value], Counter()
    work["bytes_read"] = sum(_elements(graph, v) for v in reads)
    work["bytes_written"] = _elements(graph, layer.y.value)
    return command_cycles(work, opcode)


def _elements(graph: Graph, value: str) -> int:
    """The bytes of an int8 tensor: its element count."""
    return int(np.prod(graph.types[value].shape, dtype=np.int64))


def transfer() -> Transfer:
    """Tensors cross into and out of the NPU's DRAM at one beat per cycle, after a command's
    start-up."""
    return Transfer(bandwidth=CONFIG.dram_bytes_per_cycle * CONFIG.clock_hz,
                    latency=CONFIG.command_cycles / CONFIG.clock_hz)
