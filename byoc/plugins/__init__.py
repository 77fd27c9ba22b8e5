"""The plugin API: pluggy hook specifications and plugin discovery (entry point group
``byoc.plugins``).

A plugin implements hooks of :mod:`byoc.plugins.hookspecs`, each marked with :data:`hookimpl`::

    from byoc.plugins import PluginInfo, hookimpl

    @hookimpl
    def byoc_plugin_info():
        return PluginInfo(name="npu", version="0.1.0", device="NPU v2", description="...")

It also gives plugins the core types the hooks hand them or ask of them: the graph IR
(:class:`Graph`, :class:`Node`, :class:`TensorType`) and :class:`OpImpl`, the base class of an
op's reference semantics (for ops a plugin declares with ``byoc_import_custom_ops``).
"""

from byoc.core.interpreter.base import OpImpl
from byoc.core.ir import Graph, Node, TensorType
from byoc.plugins.api import (
    CustomOp,
    Partition,
    PartitionSignature,
    Payload,
    PluginInfo,
    PluginOption,
    Runtime,
    runtime_counters,
)
from byoc.plugins.hookspecs import hookimpl, hookspec
from byoc.plugins.manager import ENTRY_POINT_GROUP, LoadedPlugin, PluginManager

__all__ = [
    "CustomOp", "ENTRY_POINT_GROUP", "Graph", "LoadedPlugin", "Node", "OpImpl", "Partition",
    "PartitionSignature", "Payload", "PluginInfo", "PluginManager", "PluginOption", "Runtime",
    "TensorType", "hookimpl", "hookspec", "runtime_counters",
]
