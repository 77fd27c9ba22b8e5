"""The compile pipeline: import -> core passes -> partition -> lower and codegen per partition.

Plugins are called only through their hooks (:mod:`byoc.plugins.hookspecs`). The reference
host plugin is always present, as the last resort: it takes every node no selected plugin
(the host-role plugins such as cpu_llvm included) takes. When a plugin fails to lower a
partition, generate code for it or create its runtime, that plugin is excluded from the
partition's nodes and the graph is partitioned again, so those nodes go where the partitioner
sends them next (another plugin, cpu_llvm, the reference for what cpu_llvm declines) and
neighbouring host partitions merge. Such a fallback is a warning naming the plugin, the
partition, the error and where the nodes went; under ``strict`` it is an error naming them,
and so is a node that a selected plugin's pattern reached but that ends up on the host anyway.
A plugin that fails while partitioning (its patterns hook, its cost hook or a pattern check
raises or returns nonsense) is taken to decline, with one warning naming the plugin and the
pattern; under ``strict`` that is an error too. Failures at run time are
:class:`~byoc.compiled.CompiledModel`'s to handle: a partition whose runtime fails is compiled
again by the first host plugin (cpu_llvm) that takes all of it, else by the reference.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import numbers
import warnings
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

from byoc.compiled import (
    CompiledModel,
    CompiledPartition,
    CompileSource,
    FallbackWarning,
    HostFallback,
    ModelSignature,
)
from byoc.core.dynamic_tail import DynamicTail
from byoc.core.integer_layers import unchanged
from byoc.core.ir import Graph, Node
from byoc.core.passes import optimize
from byoc.errors import ByocError, InputError, PluginError, PluginOptionError
from byoc.estimate import Estimator
from byoc.layouts import GRAPH_LAYOUT, applies, check_layout, signature_in_layout
from byoc.partition.partitioner import (
    PartitionPlan,
    PartitionProblem,
    PluginClaims,
    partition_graph,
)
from byoc.partition.patterns import Match, Pattern
from byoc.partition.placement import PLACEMENTS, place_by_cost, price_priority
from byoc.plugins.api import Partition, Payload
from byoc.plugins.manager import PluginManager, default_manager
from byoc.plugins.options import check_plugin_options, stage_options, warn_unused

HOST_PLUGIN = "reference"


@dataclass
class CompileOptions:
    """What ``byoc.compile`` and ``byoc compile`` let a user choose."""

    plugins: Sequence[str] = ()
    strict: bool = False
    min_partition_size: int = 1
    pins: Mapping[str, str] = field(default_factory=dict)
    host: str = HOST_PLUGIN
    plugin_options: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    default_plugins: Sequence[str] | None = None  # None: installed_hosts(manager)
    placement: str = "cost"  # or "priority": see byoc.partition.placement


def compile_graph(graph: Graph, options: CompileOptions,
                  manager: PluginManager | None = None,
                  tail: DynamicTail | None = None) -> CompiledModel:
    """Optimize ``graph`` in place, partition it and compile every partition. The options
    given to plugins are checked first, and each plugin's lowering and runtime get those of
    their stage (:mod:`byoc.plugins.options`). The model's dynamic ``tail``, if it has one,
    runs after the partitions (plugins never see it)."""
    manager = manager or default_manager()
    options = dataclasses.replace(
        options, plugin_options=check_plugin_options(manager, options.plugin_options))
    check_placement(options.placement)
    plugins = _selected(options, manager)
    problem, estimator, plan, fallbacks = _plan(graph, options, manager, plugins)
    plan, parts, failures = _compile_all(manager, graph, problem, estimator, options, plan)
    for partition, error in failures:
        message = (f"plugin {partition.plugin!r} could not compile partition "
                   f"{partition.name!r} ({len(partition.nodes)} nodes); its nodes run on "
                   f"{_where_nodes_went(partition.nodes, plan)} instead. The error: {error}")
        warnings.warn(message, FallbackWarning, stacklevel=2)
        fallbacks.append(message)
    warn_unused(options.plugin_options, {part.plugin for part in parts}, stacklevel=2)
    hosts = [name for name in plugins if manager.get(name).info.role == "host"]

    def host_part(name: str) -> CompiledPartition:
        partition = next(p for p in plan.partitions if p.name == name)
        return _compile_on_a_host(manager, partition, graph, options, hosts)

    return CompiledModel(ModelSignature.of(graph), parts, tail,
                         source=CompileSource(graph, plan, functools.partial(
                             _compile_partition, manager, graph=graph, options=options)),
                         fallback=HostFallback(options.host, host_part, options.strict, fallbacks))


def plan_graph(graph: Graph, options: CompileOptions,
               manager: PluginManager | None = None) -> PartitionPlan:
    """Optimize ``graph`` in place and partition it as :func:`compile_graph` would, without
    compiling anything: the plan, with its estimated totals in ``plan.placement`` (what
    ``byoc estimate`` shows)."""
    manager = manager or default_manager()
    options = dataclasses.replace(
        options, plugin_options=check_plugin_options(manager, options.plugin_options))
    check_placement(options.placement)
    return _plan(graph, options, manager, _selected(options, manager))[2]


def _plan(graph: Graph, options: CompileOptions, manager: PluginManager, plugins: list[str]
          ) -> tuple[PartitionProblem, Estimator, PartitionPlan, list[str]]:
    """Optimize ``graph`` and place its nodes: the problem, the estimates, the plan and the
    partitioning faults (warned, or an error under strict)."""
    optimize(graph)
    faults: list[str] = []  # plugin hooks that failed while partitioning
    claims = []
    for priority, name in enumerate(plugins):
        compile_options = stage_options(manager.get(name),
                                        options.plugin_options.get(name, {}), "compile")
        claims.append(PluginClaims(name, priority,
                                   _patterns_of(manager, name, compile_options, faults),
                                   _cost_function(manager, name, graph, compile_options,
                                                  faults)))
    with unchanged(graph):  # plugins must not modify the graph they are shown
        problem = PartitionProblem(graph, claims, host=options.host,
                                   min_partition_size=options.min_partition_size,
                                   pins=dict(options.pins))
        estimator = Estimator(manager, graph, options.plugin_options)
        plan = place(problem, estimator, options.placement)
    fallbacks = _partitioning_faults(faults + plan.check_failures + estimator.faults,
                                     options.strict)
    if options.strict:
        _check_strict(plan, options.host)
    return problem, estimator, plan, fallbacks


def check_placement(placement: str) -> None:
    if placement not in PLACEMENTS:
        raise InputError(f"placement must be one of {', '.join(PLACEMENTS)}, not "
                         f"{placement!r}: 'cost' minimises the estimated time, transfers "
                         f"included; 'priority' gives each node to the first plugin given "
                         f"that takes it")


def place(problem: PartitionProblem, estimator: Estimator, placement: str,
          exclusions: Mapping[str, Mapping[str, str]] | None = None) -> PartitionPlan:
    """The plan of ``problem`` by ``placement`` (``"cost"`` or ``"priority"``), with its
    estimated totals in ``plan.placement``."""
    if placement == "cost":
        return place_by_cost(problem, estimator, exclusions)[0]
    plan = problem.plan(exclusions)
    price_priority(problem, estimator, plan, exclusions)
    return plan


def _compile_all(manager: PluginManager, graph: Graph, problem: PartitionProblem,
                 estimator: Estimator, options: CompileOptions, plan: PartitionPlan
                 ) -> tuple[PartitionPlan, list[CompiledPartition], list[tuple[Partition, str]]]:
    """Compile every partition of ``plan``. A plugin that cannot compile a partition (outside
    strict, where that is an error) is excluded from the partition's nodes and the graph is
    partitioned again, so they go where the partitioner sends them next: another selected
    plugin, the host plugins (cpu_llvm) or the reference, and neighbouring host partitions
    merge. Each round excludes a plugin from nodes it was not excluded from, so the rounds
    end. A partition that comes back unchanged (same name, plugin, nodes and boundary) keeps
    what it compiled to. Returns the final plan, its compiled partitions and each failure
    (the partition as it was, the error)."""
    exclusions: dict[str, dict[str, str]] = {}
    compiled: dict[tuple, CompiledPartition] = {}
    failures: list[tuple[Partition, str]] = []
    while True:
        parts, failed = [], []
        for partition in plan.partitions:
            key = (partition.name, partition.plugin, tuple(n.name for n in partition.nodes),
                   tuple(partition.inputs), tuple(partition.outputs))
            if key not in compiled:
                try:
                    compiled[key] = _compile_partition(manager, partition, graph, options)
                except ByocError as exc:
                    if partition.plugin == options.host or isinstance(exc, PluginOptionError):
                        raise
                    if options.strict:
                        raise PluginError(
                            f"--strict: plugin {partition.plugin!r} could not compile "
                            f"partition {partition.name!r} ({len(partition.nodes)} nodes): "
                            f"{exc}. Fix or report the plugin, or drop --strict to run its "
                            f"nodes on the other plugins or the host") from exc
                    failed.append((partition, str(exc)))
                    continue
            parts.append(compiled[key])
        if not failed:
            return plan, parts, failures
        for partition, error in failed:
            if any(partition.plugin in exclusions.get(n.name, {}) for n in partition.nodes):
                raise ByocError(f"internal error: the partitioner gave plugin "
                                f"{partition.plugin!r} nodes it was excluded from (partition "
                                f"{partition.name!r}); please report it to byoc's authors")
            why = (f"plugin {partition.plugin!r} could not compile partition "
                   f"{partition.name!r}: {error}")
            for node in partition.nodes:
                exclusions.setdefault(node.name, {})[partition.plugin] = why
        failures += failed
        plan = place(problem, estimator, options.placement, exclusions)


def _where_nodes_went(nodes: list[Node], plan: PartitionPlan) -> str:
    """Which plugins and partitions of ``plan`` hold ``nodes``: "cpu_llvm (partition
    'p0_cpu_llvm', 2 nodes) and reference (partition 'p1_reference', 1 node)"."""
    counts: dict[str, int] = {}
    for node in nodes:
        name = plan.partition_of(node.name).name
        counts[name] = counts.get(name, 0) + 1
    plugin = {p.name: p.plugin for p in plan.partitions}
    places = [f"{plugin[name]} (partition {name!r}, {count} node{'s' * (count > 1)})"
              for name, count in counts.items()]
    return places[0] if len(places) == 1 else f"{', '.join(places[:-1])} and {places[-1]}"


def _compile_on_a_host(manager: PluginManager, partition: Partition, graph: Graph,
                       options: CompileOptions, hosts: list[str]) -> CompiledPartition:
    """``partition`` (whose runtime failed) compiled by the first host plugin of ``hosts``
    other than its own whose patterns take all of its nodes and that compiles it, else by
    the reference host (``options.host``). The partition goes with the new plugin's own
    matches (none for the reference)."""
    for host in hosts:
        if host == partition.plugin:
            continue
        matches = _whole_matches(manager, host, partition, graph, options)
        if matches is not None:
            try:
                return _compile_partition(
                    manager, dataclasses.replace(partition, plugin=host, matches=matches),
                    graph, options)
            except ByocError:
                continue  # the next host, and the reference last
    return _compile_partition(
        manager, dataclasses.replace(partition, plugin=options.host, matches=[]), graph, options)


def _whole_matches(manager: PluginManager, plugin: str, partition: Partition, graph: Graph,
                   options: CompileOptions) -> list[Match] | None:
    """The matches with which ``plugin``'s patterns take every node of ``partition`` as one
    partition of its own (partitioning the partition's subgraph between that plugin and the
    host), on the graph's own nodes; None when they do not take it whole."""
    try:
        compile_options = stage_options(manager.get(plugin),
                                        options.plugin_options.get(plugin, {}), "compile")
        claims = [PluginClaims(plugin, 0, _patterns_of(manager, plugin, compile_options, []))]
        plan = partition_graph(partition.subgraph(graph.constants), claims, host=options.host)
    except ByocError:
        return None
    if [p.plugin for p in plan.partitions] != [plugin]:
        return None
    own = {n.name: n for n in graph.nodes}

    def on_graph(match: Match) -> Match:
        return dataclasses.replace(
            match, root=own[match.root.name], nodes=[own[n.name] for n in match.nodes],
            captured={k: own[n.name] for k, n in match.captured.items()},
            shared=[own[n.name] for n in match.shared])
    return [on_graph(m) for m in plan.partitions[0].matches]


def _partitioning_faults(faults: list[str], strict: bool) -> list[str]:
    """Plugin hooks that failed while partitioning (patterns, costs, pattern checks) were
    taken as declines or unknown costs: an error under strict, else one warning (returned for
    CompiledModel.fallbacks)."""
    if not faults:
        return []
    shown = _first_few(faults)
    if strict:
        raise PluginError(f"--strict: {len(faults)} plugin fault(s) while partitioning: "
                          f"{shown}. Fix or report the plugin, or drop --strict to let "
                          f"those nodes go to another plugin or the host")
    message = (f"{len(faults)} plugin fault(s) while partitioning, taken as declines: "
               f"{shown}")
    warnings.warn(message, FallbackWarning, stacklevel=4)
    return [message]


def installed_hosts(manager: PluginManager) -> list[str]:
    """The plugins that follow the selected ones, at the lowest priority: every registered
    plugin whose ``PluginInfo.role`` is ``"host"``, in alphabetical order of name (so the
    order does not depend on the order in which plugins were installed or registered)."""
    return sorted(p.name for p in manager.plugins() if p.info.role == "host")


def _selected(options: CompileOptions, manager: PluginManager) -> list[str]:
    """The plugins in priority order: the user's, then the default ones (without the host)."""
    names = []
    for name in options.plugins:
        manager.get(name)  # a PluginError listing the installed plugins if unknown
        if name not in names and name != options.host:
            names.append(name)
    if options.default_plugins is None:
        defaults = installed_hosts(manager)
    else:
        defaults = list(options.default_plugins)
        for name in defaults:
            manager.get(name)
    names += [name for name in defaults if name not in names and name != options.host]
    manager.get(options.host)
    return names


def _patterns_of(manager: PluginManager, plugin: str, options: dict[str, Any],
                 faults: list[str]) -> list[Pattern]:
    """The plugin's patterns for its compile-stage ``options``; if its hook fails or returns
    something else than a list of Patterns, the fault is recorded and the plugin claims
    nothing. An option value the plugin refuses is the user's error and is raised."""
    try:
        patterns = manager.call(plugin, "byoc_partition_patterns", options=options)
    except PluginOptionError:
        raise
    except ByocError as exc:
        faults.append(f"plugin {plugin!r} claims nothing: byoc_partition_patterns failed "
                      f"({exc})")
        return []
    if patterns is None:
        return []
    if not isinstance(patterns, (list, tuple)) or \
            not all(isinstance(p, Pattern) for p in patterns):
        faults.append(f"plugin {plugin!r} claims nothing: byoc_partition_patterns returned "
                      f"{patterns!r:.80}, expected a list of byoc.partition.patterns.Pattern")
        return []
    return list(patterns)


def _cost_function(manager: PluginManager, plugin: str, graph: Graph, options: dict[str, Any],
                   faults: list[str]):
    """The plugin's cost hook for the partitioner, with its compile-stage ``options``. A cost
    hook that fails, or returns something else than a finite number or None, gives an
    unknown cost (the fault is recorded once per pattern)."""
    failed: set[str] = set()

    def cost(pattern_name: str, nodes: list[Node]) -> float | None:
        try:
            value = manager.call(plugin, "byoc_partition_cost", pattern_name=pattern_name,
                                 nodes=nodes, graph=graph, options=options)
            if value is None or (isinstance(value, numbers.Real) and not isinstance(value, bool)
                                 and math.isfinite(value)):
                return value
            raise PluginError(f"byoc_partition_cost returned {value!r:.60}, expected a finite "
                              f"number or None")
        except ByocError as exc:
            if pattern_name not in failed:
                failed.add(pattern_name)
                faults.append(f"plugin {plugin!r}, pattern {pattern_name!r}: its cost is taken "
                              f"as unknown ({exc})")
            return None
    return cost


def _compile_partition(manager: PluginManager, partition: Partition, graph: Graph,
                       options: CompileOptions) -> CompiledPartition:
    plugin = manager.get(partition.plugin)
    given = options.plugin_options.get(partition.plugin, {})
    lowered = manager.call(partition.plugin, "byoc_lower_partition", partition=partition,
                           graph=graph, constants=graph.constants,
                           options=stage_options(plugin, given, "compile"))
    if lowered is None:
        raise PluginError(f"plugin {partition.plugin!r}: byoc_lower_partition returned nothing "
                          f"for partition {partition.name!r}")
    payload = manager.call(partition.plugin, "byoc_codegen_partition", partition=partition,
                           lowered=lowered)
    if not isinstance(payload, Payload):
        raise PluginError(f"plugin {partition.plugin!r}: byoc_codegen_partition returned "
                          f"{type(payload).__name__} for partition {partition.name!r}, "
                          f"expected a byoc.plugins.api.Payload")
    # Checked again: the plugin may have changed its fields after building it.
    payload = dataclasses.replace(payload)
    layout = check_layout(plugin.info.preferred_layout, partition.plugin)
    signature = signature_in_layout(partition.signature(), layout)
    if partition.debug_outputs:     # verify's debug request: held like outputs
        signature.layouts.update(
            (value, layout) for value in partition.debug_outputs
            if layout != GRAPH_LAYOUT and applies(partition.types[value], layout))
    runtime = manager.call(partition.plugin, "byoc_runtime_create", payload=payload,
                           partition=signature, options=stage_options(plugin, given, "run"))
    if runtime is None or not callable(getattr(runtime, "run", None)):
        raise PluginError(f"plugin {partition.plugin!r}: byoc_runtime_create gave no runtime "
                          f"with a run() method for partition {partition.name!r}")
    ops: dict[str, int] = {}
    for node in partition.nodes:
        ops[node.op_type] = ops.get(node.op_type, 0) + 1
    return CompiledPartition(signature, partition.plugin, plugin.info.version, payload, runtime,
                             dict(sorted(ops.items())))


def _first_few(lines: list[str], shown: int = 5) -> str:
    """The first ``shown`` lines joined with "; ", and how many more there are."""
    more = f" (and {len(lines) - shown} more)" if len(lines) > shown else ""
    return "; ".join(lines[:shown]) + more


def _check_strict(plan: PartitionPlan, host: str) -> None:
    stranded = [e for e in plan.explanations.values()
                if e.plugin == host and e.considered_by]
    if stranded:
        lines = _first_few([f"node {e.node!r} ({e.op}): " + " / ".join(
            f"{p}: {', '.join(e.reasons.get(p, []))}" for p in e.considered_by)
            for e in stranded])
        raise ByocError(f"--strict: {len(stranded)} node(s) a selected plugin matched would run "
                        f"on the host: {lines}. Drop --strict to allow the fallback, or "
                        f"change the model or the plugin")
