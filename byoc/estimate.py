"""What a match of a plugin's pattern, and a tensor crossing a partition boundary, are
expected to cost, in seconds, before anything is compiled or run.

Each plugin estimates its own matches (``byoc_estimate_match``: vta_sim from a timing model of
the instruction stream it would generate, npu_example from its layer model, cpu_llvm from a
roofline of this machine) and declares what moving a tensor to and from its device costs
(``byoc_estimate_transfer``). This module asks them, checks what they return, and stands in
where a plugin has no model:

- a match without an estimate (the plugin has no hook, returns None, or fails) is priced by
  the **fallback model**, byoc's numpy reference interpreter as a fixed slow machine:
  :data:`FALLBACK_NODE_SECONDS` per node (the interpreter's dispatch, a few array
  allocations) plus ``2 * MACs`` at :data:`FALLBACK_FLOPS` per second plus every byte the
  nodes read and write at :data:`FALLBACK_BYTES_PER_SECOND`. The rates are round numbers of
  the order numpy reaches on one core for small int8 and float layers; the figure is
  meant to be pessimistic, so that a plugin with a model of its own is preferred to a guess;
- a ``"host"`` plugin without a transfer declaration moves nothing (it works in host
  memory); an accelerator without one is charged :data:`DEFAULT_TRANSFER`, a slow
  PCIe-class link.
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from byoc.core.flops import graph_flops
from byoc.core.ir import Graph, Node
from byoc.errors import ByocError, PluginError, PluginOptionError
from byoc.plugins.api import Estimate, Transfer
from byoc.plugins.manager import PluginManager
from byoc.plugins.options import all_options

FALLBACK_NODE_SECONDS = 20e-6
FALLBACK_FLOPS = 1e9
FALLBACK_BYTES_PER_SECOND = 1e9
FALLBACK_BASIS = "byoc's fallback model (numpy reference: 20 us per node, 1 GFLOP/s, 1 GB/s)"

DEFAULT_TRANSFER = Transfer(bandwidth=1e9, latency=10e-6)
"""What moving a tensor to or from an accelerator that declares nothing costs: 1 GB/s and
10 us per transfer."""


def value_bytes(graph: Graph, value: str) -> int:
    """The size in bytes of ``value`` (0 when its shape or type is unknown)."""
    ttype = graph.types.get(value)
    if ttype is None:
        return 0
    try:
        return int(np.prod(ttype.shape, dtype=np.int64)) * np.dtype(ttype.dtype).itemsize
    except TypeError:       # a symbolic dimension or a dtype numpy does not know
        return 0


def boundary_bytes(nodes: list[Node], graph: Graph) -> tuple[int, int]:
    """The bytes of the run-time values ``nodes`` read from outside them, and of the values
    they define that a node outside them reads or that are graph outputs (constants are not
    counted: they travel with the compiled code)."""
    defined = {out for n in nodes for out in n.outputs if out}
    inside = {id(n) for n in nodes}
    read = {v for n in nodes for v in n.present_inputs
            if v not in defined and not graph.is_constant(v)}
    # One pass over the nodes' inputs rather than graph.consumers(): placement asks this of
    # every candidate match, and building that map each time was most of placement's time.
    given = {v for v in defined if v in graph.outputs}
    given.update(v for n in graph.nodes if id(n) not in inside for v in n.inputs if v in defined)
    return (sum(value_bytes(graph, v) for v in read), sum(value_bytes(graph, v) for v in given))


def fallback_estimate(nodes: list[Node], graph: Graph, why: str = "") -> Estimate:
    """The fallback model's estimate of ``nodes`` (see the module docstring); ``why`` says
    why the plugin's own model is not used, and ends up in the basis."""
    touched = {v for n in nodes for v in [*n.present_inputs, *n.outputs] if v}
    seconds = (FALLBACK_NODE_SECONDS * len(nodes) + graph_flops(graph, nodes) / FALLBACK_FLOPS
               + sum(value_bytes(graph, v) for v in touched) / FALLBACK_BYTES_PER_SECOND)
    bytes_in, bytes_out = boundary_bytes(nodes, graph)
    basis = f"{FALLBACK_BASIS}; {why}" if why else FALLBACK_BASIS
    return Estimate(seconds, None, bytes_in, bytes_out, basis)


def estimate_match(manager: PluginManager, plugin: str, nodes: list[Node], graph: Graph, *,
                   pattern_name: str | None = None,
                   options: Mapping[str, Any] | None = None,
                   faults: list[str] | None = None) -> Estimate:
    """What running ``nodes`` (one match of ``plugin``'s pattern ``pattern_name``; None for
    nodes a host takes without a pattern) on ``plugin`` is expected to cost.

    The plugin's ``byoc_estimate_match`` gets ``options`` (the user's options for this
    plugin) completed with the defaults of every option it declares. Without an estimate
    from the plugin, the fallback model's (:func:`fallback_estimate`); a plugin whose hook
    fails or returns something else than an Estimate or None gets the fallback too, and the
    fault is appended to ``faults`` (an unknown option is an error, as everywhere).
    """
    return _estimate(manager, plugin, nodes, graph, pattern_name, options, faults)[0]


def _estimate(manager: PluginManager, plugin: str, nodes: list[Node], graph: Graph,
              pattern_name: str | None, options: Mapping[str, Any] | None,
              faults: list[str] | None) -> tuple[Estimate, bool]:
    """:func:`estimate_match`, and whether the estimate is the plugin's own."""
    values = all_options(manager.get(plugin), dict(options or {}))
    try:
        estimate = manager.call(plugin, "byoc_estimate_match", pattern_name=pattern_name,
                                nodes=nodes, graph=graph, options=values)
    except PluginOptionError:
        raise
    except ByocError as exc:
        fault = f"plugin {plugin!r}, pattern {pattern_name!r}: byoc_estimate_match failed ({exc})"
        return _fault(fault, faults, nodes, graph), False
    if estimate is None:
        return fallback_estimate(nodes, graph, f"{plugin} has no estimate for this match"), False
    if not isinstance(estimate, Estimate):
        fault = (f"plugin {plugin!r}, pattern {pattern_name!r}: byoc_estimate_match returned "
                 f"{estimate!r:.60}, expected a byoc.plugins.api.Estimate or None")
        return _fault(fault, faults, nodes, graph), False
    return estimate, True


def _fault(fault: str, faults: list[str] | None, nodes: list[Node], graph: Graph) -> Estimate:
    if faults is not None:
        faults.append(fault)
    return fallback_estimate(nodes, graph, fault)


class Estimator:
    """The estimates of one graph for placement (:class:`byoc.partition.placement.CostModel`):
    each match and transfer asked of its plugin once, with the user's ``plugin_options``;
    the faults of plugins whose estimate hooks failed collect in :attr:`faults`."""

    def __init__(self, manager: PluginManager, graph: Graph,
                 plugin_options: Mapping[str, Mapping[str, Any]] | None = None):
        self.manager, self.graph = manager, graph
        self.plugin_options = plugin_options or {}
        self.faults: list[str] = []
        self._matches: dict[tuple, tuple[Estimate, bool]] = {}
        self._transfers: dict[str, Transfer] = {}

    def _get(self, plugin: str, pattern: str | None, nodes: list[Node]) -> tuple[Estimate, bool]:
        key = (plugin, pattern, tuple(id(n) for n in nodes))
        if key not in self._matches:
            self._matches[key] = _estimate(self.manager, plugin, nodes, self.graph, pattern,
                                           self.plugin_options.get(plugin), self.faults)
        return self._matches[key]

    def match(self, plugin: str, pattern: str | None, nodes: list[Node]) -> Estimate:
        return self._get(plugin, pattern, nodes)[0]

    def priced(self, plugin: str, pattern: str | None, nodes: list[Node]) -> bool:
        return self._get(plugin, pattern, nodes)[1]

    def transfer(self, plugin: str) -> Transfer:
        """The plugin's declared transfer; when its hook fails, the default of its role and
        a fault."""
        if plugin not in self._transfers:
            try:
                self._transfers[plugin] = plugin_transfer(self.manager, plugin,
                                                          self.plugin_options.get(plugin))
            except PluginOptionError:
                raise
            except ByocError as exc:
                self.faults.append(f"plugin {plugin!r}: byoc_estimate_transfer failed, the "
                                   f"default for its role is used ({exc})")
                self._transfers[plugin] = (Transfer.free() if self.is_host(plugin)
                                           else DEFAULT_TRANSFER)
        return self._transfers[plugin]

    def is_host(self, plugin: str) -> bool:
        return self.manager.get(plugin).info.role == "host"


def plugin_transfer(manager: PluginManager, plugin: str,
                    options: Mapping[str, Any] | None = None) -> Transfer:
    """What ``plugin`` declares moving a tensor to or from its device costs, given the user's
    ``options`` for it, or the default for its role (see the module docstring). PluginError
    if the hook returns something else than a Transfer or None."""
    transfer = manager.call(plugin, "byoc_estimate_transfer",
                            options=all_options(manager.get(plugin), dict(options or {})))
    if transfer is None:
        return Transfer.free() if manager.get(plugin).info.role == "host" else DEFAULT_TRANSFER
    if not isinstance(transfer, Transfer):
        raise PluginError(f"plugin {plugin!r}: byoc_estimate_transfer returned "
                          f"{transfer!r:.60}, expected a byoc.plugins.api.Transfer or None")
    return transfer


def transfer_seconds(manager: PluginManager, plugin: str, nbytes: int) -> float:
    """The seconds moving ``nbytes`` to or from ``plugin``'s device takes."""
    return plugin_transfer(manager, plugin).seconds(nbytes)
