"""The reference host plugin: runs partitions on byoc's numpy reference interpreter.

It claims no patterns: as the host it takes whatever no accelerator plugin takes. It is a
plugin like any other, published through byoc's own entry point in the group ``byoc.plugins``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

import byoc
from byoc.core.interpreter import Interpreter
from byoc.core.ir import Graph
from byoc.plugins import hookimpl
from byoc.plugins.api import Partition, PartitionSignature, Payload, PluginInfo
from byoc.plugins.graph_payload import graph_from_payload, graph_to_payload

NAME = "reference"


@hookimpl
def byoc_plugin_info() -> PluginInfo:
    return PluginInfo(name=NAME, version=byoc.__version__,
                      device="host CPU (numpy reference interpreter)",
                      description="byoc's reference interpreter as a host backend")


@hookimpl
def byoc_lower_partition(partition: Partition, graph: Graph,
                         constants: dict[str, np.ndarray]) -> Graph:
    return partition.subgraph(constants)


@hookimpl
def byoc_codegen_partition(partition: Partition, lowered: Any) -> Payload:
    return graph_to_payload(lowered)


class InterpreterRuntime:
    """Runs one partition's subgraph on the reference interpreter."""

    def __init__(self, graph: Graph) -> None:
        self._interpreter = Interpreter(graph)

    def run(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return self._interpreter.run(inputs)


@hookimpl
def byoc_runtime_create(payload: Payload, partition: PartitionSignature) -> InterpreterRuntime:
    return InterpreterRuntime(graph_from_payload(payload))
