"""The plugin API: pluggy hook specifications and plugin discovery (entry point group
``byoc.plugins``).

A plugin implements hooks of :mod:`byoc.plugins.hookspecs`, each marked with :data:`hookimpl`::

    from byoc.plugins import PluginInfo, hookimpl

    @hookimpl
    def byoc_plugin_info():
        return PluginInfo(name="npu", version="0.1.0", device="NPU v2", description="...")
"""

from byoc.plugins.api import (
    CustomOp,
    Partition,
    PartitionSignature,
    Payload,
    PluginInfo,
    Runtime,
    runtime_counters,
)
from byoc.plugins.hookspecs import hookimpl, hookspec
from byoc.plugins.manager import ENTRY_POINT_GROUP, LoadedPlugin, PluginManager

__all__ = [
    "CustomOp", "ENTRY_POINT_GROUP", "LoadedPlugin", "Partition", "PartitionSignature", "Payload",
    "PluginInfo", "PluginManager", "Runtime", "hookimpl", "hookspec", "runtime_counters",
]
