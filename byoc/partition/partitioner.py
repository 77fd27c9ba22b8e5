"""The partitioner: assigns every node of a graph to one plugin, as acyclic regions.

:func:`partition_graph` is a pure function of its inputs: the graph, what each plugin claims
(:class:`PluginClaims`: its patterns, its priority and an optional cost function), the host
plugin's name, the minimum partition size, the pins and the exclusions. It calls no plugin
hooks.

The rules, all of them, in the order they are applied:

1. **Candidates.** :func:`~byoc.partition.patterns.find_matches` runs each plugin's patterns;
   every accepted match is a candidate (plugin, pattern, the nodes it claims). The reasons
   patterns declined a node are kept for the explanations. A check that raises, or returns
   neither Accept nor Decline, declines too, with a reason naming the plugin and the error,
   and is listed in ``PartitionPlan.check_failures`` so the pipeline can warn or, under
   strict, refuse.
2. **Pins.** ``pins`` maps a node name or an op type to a plugin name (a node name wins over an
   op type when both apply). A pinned node may only be taken by the plugin it is pinned to:
   candidates of any other plugin that contain it are dropped ("pinned to X"). Pinning to the
   host means no other plugin takes it. Pinning does not make a plugin claim a node its
   patterns do not match; such a node goes to the host. A pin naming no node or op type of
   this graph has no effect (one pin list may serve several models); a pin to a plugin that
   is neither the host nor in ``claims`` is an error.
   **Exclusions.** ``exclusions`` maps a node name to the plugins that may not take it, each
   with the reason (the pipeline excludes a plugin from the nodes of a partition it could not
   compile, and partitions again). Candidates of an excluded plugin that contain the node are
   dropped with that reason, so the node goes to the plugin that ranks next or to the host.
   The host cannot be excluded: it takes what every other plugin leaves.
3. **Overlaps.** A node belongs to one candidate at most. Candidates are ranked by, in order:
   (a) *priority*: the plugin's priority index, lower first (0 is the first plugin given);
   (b) *size*: more nodes first;
   (c) *cost*: lower cost first, from the plugin's cost function; a candidate whose cost is
   unknown (no cost function, or it returned None) ranks after one with a cost;
   (d) *graph order*: the candidate whose root comes first in the graph.
   Going down that ranking, a candidate is accepted when none of its nodes is taken yet;
   otherwise it is dropped ("overlap: taken by <pattern> (rule: <the first of priority, size,
   cost, graph order that told the two apart>)").
4. **Regions.** Each accepted candidate starts as one group; each node no candidate took is a
   group of its own for the host. Groups of the same plugin joined by a dataflow edge are
   merged, visiting edges in graph order, and so are groups of the same plugin that read
   from or feed the same group (siblings, such as the two branches of a residual block),
   until nothing changes; but only when the merge creates no cycle between groups: two
   groups may not merge when a path leaves one of them and reaches the other through a third
   group. Plugin groups are merged first, then host groups, with the same rule.
5. **Minimum size.** A non-host region with fewer than ``min_partition_size`` nodes goes back to
   the host ("partition too small (N < min)"), and host regions are merged again (rule 4).
6. **Quantized layers stay whole.** The reference evaluates DequantizeLinear ->
   Conv/MatMul/Gemm -> [Relu/Clip] -> QuantizeLinear as one integer operation, which exists
   only for the layer as a whole: split across partitions, each part would compute in float
   and could round one step away. A layer's nodes (see :func:`quantized_layers`) must end in
   one region. When rules 2-5 put them in several (a pin, two plugins taking different nodes
   of it, a region the minimum size returned to the host), every candidate holding one of
   them is dropped ("<pattern> dropped: quantized layer Q is kept whole on the host: ..."),
   the layer becomes one host group, and rules 3-6 run again until no layer is split.
7. **Output.** The regions become :class:`~byoc.plugins.api.Partition` objects named
   ``p<i>_<plugin>``, listed in a topological order of the partition graph (ties broken by
   the graph position of each region's first node), with nodes in graph order. A partition's
   inputs are the non-constant values it reads from outside; its outputs are the values it
   defines that are read outside it or are graph outputs. Every node gets a
   :class:`NodeExplanation` saying which plugin took it, with which pattern, and for every
   other plugin why that plugin did not take it.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

from byoc.core.integer_layers import integer_plans
from byoc.core.ir import Graph, Node
from byoc.errors import ByocError, describe_node
from byoc.partition.patterns import Match, Pattern, find_matches
from byoc.plugins.api import Partition

CostFunction = Callable[[str, list[Node]], "float | None"]


@dataclass
class PluginClaims:
    """What one plugin claims: its ``patterns``, its ``priority`` index (0 = highest, in the
    order the plugins were given) and an optional ``cost(pattern_name, nodes)`` that returns
    the estimated cost of running those nodes with that pattern, or None when unknown."""

    plugin: str
    priority: int
    patterns: list[Pattern]
    cost: CostFunction | None = None


@dataclass
class NodeExplanation:
    """Why a node ended up where it did: the plugin that took it, the pattern (None when the
    host took it without a pattern) and, per plugin that did not take it, the reasons."""

    node: str
    op: str
    plugin: str
    pattern: str | None
    reasons: dict[str, list[str]] = field(default_factory=dict)
    # Plugins whose patterns reached this node but did not end up taking it (a check or the
    # guard declined, a pin, an overlap, a partition too small): what --strict looks at.
    considered_by: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        taken = f"{self.plugin} ({self.pattern})" if self.pattern else self.plugin
        lines = [f"{self.node} ({self.op}) -> {taken}"]
        for plugin, reasons in self.reasons.items():
            lines.extend(f"  not {plugin}: {reason}" for reason in reasons)
        return "\n".join(lines)


@dataclass
class PartitionPlan:
    """The partitions in a topological order, with an explanation and the pattern (or None)
    for every node, both keyed by node name."""

    partitions: list[Partition]
    explanations: dict[str, NodeExplanation]
    patterns: dict[str, str | None]
    # One line per pattern check that raised, naming the plugin, the pattern, the node and
    # the error; each also counts as a decline.
    check_failures: list[str] = field(default_factory=list)
    # Partition name -> the indices in PartitionProblem.candidates of the matches it holds.
    candidates: dict[str, list[int]] = field(default_factory=dict, repr=False)
    # What placement by cost found (byoc.partition.placement.Placement); None until priced.
    placement: Any = None

    def partition_of(self, node_name: str) -> Partition:
        for partition in self.partitions:
            if any(node.name == node_name for node in partition.nodes):
                return partition
        raise KeyError(node_name)

    def edges(self) -> set[tuple[str, str]]:
        """(producer, consumer) pairs of partition names: the consumer reads an output of the
        producer."""
        producer = {value: p.name for p in self.partitions for value in p.outputs}
        return {(producer[value], p.name) for p in self.partitions for value in p.inputs
                if value in producer and producer[value] != p.name}

    def check_acyclic(self) -> None:
        """Raise ByocError when the partition graph has a cycle or is not listed in a
        topological order."""
        position = {p.name: i for i, p in enumerate(self.partitions)}
        backwards = sorted((a, b) for a, b in self.edges() if position[a] >= position[b])
        if backwards:
            listed = ", ".join(f"{a} -> {b}" for a, b in backwards)
            raise ByocError(f"partition graph is cyclic or out of order: {listed}")


@dataclass
class _Candidate:
    plugin: str
    priority: int
    pattern: str
    nodes: list[Node]
    root_index: int
    cost: float | None
    match: Match | None = None

    @property
    def rank(self) -> tuple:
        return (self.priority, -len(self.nodes), self.cost is None, self.cost or 0.0,
                self.root_index)


def _deciding_rule(winner: _Candidate, loser: _Candidate) -> str:
    """The first ranking rule (see the module docstring, rule 3) that tells the two apart."""
    if winner.priority != loser.priority:
        return "priority"
    if len(winner.nodes) != len(loser.nodes):
        return "size"
    if (winner.cost is None, winner.cost) != (loser.cost is None, loser.cost):
        return "cost"
    return "graph order"


def partition_graph(graph: Graph, claims: list[PluginClaims], host: str = "cpu",
                    min_partition_size: int = 1,
                    pins: dict[str, str] | None = None,
                    exclusions: Mapping[str, Mapping[str, str]] | None = None) -> PartitionPlan:
    """Assign every node of ``graph`` to a plugin and cut the graph into acyclic partitions,
    following the rules in this module's docstring. ``exclusions`` maps a node name to
    {plugin: why that plugin may not take it}."""
    return PartitionProblem(graph, claims, host, min_partition_size, pins).plan(exclusions)


class PartitionProblem:
    """The candidates of a graph (rules 1 and 2: every plugin's matches, pins applied), from
    which :meth:`plan` cuts partitions; placement by cost (:mod:`byoc.partition.placement`)
    asks for many plans of one problem, each with some candidates dropped."""

    def __init__(self, graph: Graph, claims: list[PluginClaims], host: str = "cpu",
                 min_partition_size: int = 1, pins: Mapping[str, str] | None = None):
        _validate(claims, host, min_partition_size, dict(pins or {}))
        self.graph, self.claims, self.host = graph, claims, host
        self.min_partition_size = min_partition_size
        self.index = {id(node): i for i, node in enumerate(graph.nodes)}
        self.reasons: dict[int, dict[str, list[str]]] = {id(n): {} for n in graph.nodes}
        self.check_failures: list[str] = []
        candidates = _collect_candidates(graph, claims, self.index, self._note,
                                         self.check_failures)
        self.candidates = _apply_pins(graph, candidates, dict(pins or {}), self._note)
        self.layers = quantized_layers(graph)

    def _note(self, node: Node, plugin: str, reason: str) -> None:
        self.reasons[id(node)].setdefault(plugin, []).append(reason)

    def plan(self, exclusions: Mapping[str, Mapping[str, str]] | None = None,
             dropped: Mapping[int, str] | None = None) -> PartitionPlan:
        """The partitions (rules 2-7) with ``exclusions`` ({node name: {plugin: why}}) and
        without the candidates ``dropped`` ({index in :attr:`candidates`: why}); every node
        of a dropped candidate is explained with that reason."""
        exclusions, dropped = exclusions or {}, dropped or {}
        _validate_exclusions(self.host, exclusions)
        graph = self.graph
        reasons = _copy_reasons(self.reasons)

        def note(node: Node, plugin: str, reason: str) -> None:
            reasons[id(node)].setdefault(plugin, []).append(reason)

        for number, why in dropped.items():
            candidate = self.candidates[number]
            for node in candidate.nodes:
                note(node, candidate.plugin, f"{candidate.pattern} dropped: {why}")
        candidates = [c for number, c in enumerate(self.candidates) if number not in dropped]
        candidates = _drop_barred(candidates, lambda node, plugin: exclusions.get(node.name, {})
                                  .get(plugin), note)
        before_layers = reasons   # each round below notes into a copy of it

        kept_whole: dict[int, str] = {}  # id(node) -> why its quantized layer runs on the host
        while True:
            reasons = _copy_reasons(before_layers)  # each round explains its own outcome
            owner = _resolve_overlaps(_drop_for_layers(candidates, kept_whole, note), note)
            groups = _regions(graph, owner, self.host, self.min_partition_size, self.layers,
                              note)
            split = _split_layers(self.layers, groups)
            if not split:
                break
            for layer, plugins in split:
                why = (f"quantized layer {layer[-1].name!r} is kept whole on the host: its "
                       f"nodes would run in different partitions ({', '.join(plugins)}), each "
                       f"part in float math instead of the one integer operation the layer "
                       f"stands for")
                kept_whole.update((id(n), why) for n in layer)

        partitions = [make_partition(graph, f"p{i}_{groups.plugin[gid]}", groups.plugin[gid],
                                      groups.members[gid], self.index)
                      for i, gid in enumerate(groups.topological_order())]
        taken = _attach_matches(partitions, owner)
        number = {id(c): i for i, c in enumerate(self.candidates)}
        patterns: dict[str, str | None] = {}
        explanations: dict[str, NodeExplanation] = {}
        plugin_of = {id(n): p.plugin for p in partitions for n in p.nodes}
        for node in graph.nodes:
            candidate = owner.get(id(node))
            patterns[node.name] = candidate.pattern if candidate else None
            assigned = plugin_of[id(node)]
            not_taken = {c.plugin: reasons[id(node)].get(c.plugin) or
                         [f"no {c.plugin} pattern matches this {node.op_type} node"]
                         for c in sorted(self.claims, key=lambda c: c.priority)
                         if c.plugin != assigned}
            explanations[node.name] = NodeExplanation(
                node.name, node.op_type, assigned, patterns[node.name], not_taken,
                [plugin for plugin in reasons[id(node)] if plugin != assigned])
        plan = PartitionPlan(partitions, explanations, patterns, list(self.check_failures),
                             {name: [number[id(c)] for c in cands]
                              for name, cands in taken.items()})
        _check_cover(graph, plan)
        plan.check_acyclic()
        return plan


def _attach_matches(partitions: list[Partition],
                    owner: dict[int, _Candidate]) -> dict[str, list[_Candidate]]:
    """Give each partition the matches that formed it, in the order of their roots; returns
    the candidates behind them by partition name."""
    taken_by: dict[str, list[_Candidate]] = {}
    for partition in partitions:
        taken: dict[int, _Candidate] = {}
        for node in partition.nodes:
            candidate = owner.get(id(node))
            if candidate is not None and candidate.plugin == partition.plugin \
                    and candidate.match is not None:
                taken.setdefault(id(candidate), candidate)
        ordered = sorted(taken.values(), key=lambda c: c.root_index)
        partition.matches = [c.match for c in ordered]
        taken_by[partition.name] = ordered
    return taken_by


def _copy_reasons(reasons: dict[int, dict[str, list[str]]]) -> dict[int, dict[str, list[str]]]:
    return {key: {plugin: list(r) for plugin, r in by.items()} for key, by in reasons.items()}


def quantized_layers(graph: Graph) -> list[list[Node]]:
    """The nodes of every quantized layer the reference evaluates as one integer operation
    (:mod:`byoc.core.integer_layers`) that must share a partition for that: the
    op, its activation and QuantizeLinear, and each of its DequantizeLinear nodes that only
    the op reads. A DequantizeLinear that other nodes read too may run elsewhere; whoever
    runs the layer quantizes its float output back, which is exact. Layers never share
    nodes, and each is cut out of the graph on its own without a cycle: only its
    QuantizeLinear's output is read outside it."""
    consumers = graph.consumers()
    layers = []
    for plan in integer_plans(graph).values():
        group = plan.group
        dequantize = {id(d): d for d in group.dequantize if d is not None}.values()
        own = [dq for dq in dequantize if dq.outputs[0] not in graph.outputs
               and all(r is group.op for r in consumers.get(dq.outputs[0], []))]
        layers.append([*own, *(n for n in (group.op, group.activation, group.quantize) if n)])
    return layers


def _drop_for_layers(candidates: list[_Candidate], kept_whole: dict[int, str],
                     note: Callable[[Node, str, str], None]) -> list[_Candidate]:
    """The candidates holding no node of a layer kept whole on the host (rule 6)."""
    kept = []
    for candidate in candidates:
        held = [n for n in candidate.nodes if id(n) in kept_whole]
        if not held:
            kept.append(candidate)
            continue
        for node in candidate.nodes:
            note(node, candidate.plugin, f"{candidate.pattern} dropped: {kept_whole[id(held[0])]}")
    return kept


def _resolve_overlaps(candidates: list[_Candidate],
                      note: Callable[[Node, str, str], None]) -> dict[int, _Candidate]:
    """Rule 3: id(node) -> the candidate that takes it."""
    owner: dict[int, _Candidate] = {}
    for candidate in sorted(candidates, key=lambda c: c.rank):
        blocking = [n for n in candidate.nodes if id(n) in owner]
        if not blocking:
            for node in candidate.nodes:
                owner[id(node)] = candidate
            continue
        for node in candidate.nodes:
            winner = owner.get(id(node)) or owner[id(blocking[0])]
            taken = f"taken by {winner.pattern} (rule: {_deciding_rule(winner, candidate)})"
            if id(node) in owner:
                note(node, candidate.plugin, f"overlap: {taken}")
            else:
                note(node, candidate.plugin, f"overlap: {candidate.pattern} needs node "
                                             f"{blocking[0].name!r}, {taken}")
    return owner


def _regions(graph: Graph, owner: dict[int, _Candidate], host: str, min_partition_size: int,
             layers: list[list[Node]], note: Callable[[Node, str, str], None]) -> _Groups:
    """Rules 4 and 5: the regions, with the nodes the minimum size returns to the host
    removed from ``owner``. A quantized layer no plugin took starts as one host group."""
    groups = _Groups(graph)
    whole_on_host = {id(n): layer for layer in layers
                     if not any(id(m) in owner for m in layer) for n in layer}
    placed: set[int] = set()
    for node in graph.nodes:
        if id(node) in placed:
            continue
        candidate = owner.get(id(node))
        if candidate is not None:
            members = candidate.nodes
            groups.add(candidate.plugin, members)
        else:
            members = whole_on_host.get(id(node), [node])
            groups.add(host, members)
        placed.update(id(n) for n in members)
    groups.merge_all(lambda plugin: plugin != host)
    groups.merge_all(lambda plugin: plugin == host)

    for gid in list(groups.members):
        size = len(groups.members[gid])
        if groups.plugin[gid] != host and size < min_partition_size:
            for node in groups.members[gid]:
                note(node, groups.plugin[gid],
                     f"partition too small ({size} < {min_partition_size})")
                owner.pop(id(node), None)
            groups.plugin[gid] = host
    groups.merge_all(lambda plugin: plugin == host)
    return groups


def _split_layers(layers: list[list[Node]],
                  groups: _Groups) -> list[tuple[list[Node], list[str]]]:
    """The quantized layers whose nodes are in more than one region, with the plugins of
    those regions."""
    split = []
    for layer in layers:
        regions = {groups.group_of[id(n)] for n in layer}
        if len(regions) > 1:
            split.append((layer, sorted({groups.plugin[g] for g in regions})))
    return split


def _validate(claims: list[PluginClaims], host: str, min_partition_size: int,
              pins: dict[str, str]) -> None:
    names = [c.plugin for c in claims]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ByocError(f"plugin(s) {', '.join(duplicates)} given more than once to the "
                        f"partitioner; give each plugin's claims once")
    if min_partition_size < 1:
        raise ByocError(f"min_partition_size must be at least 1, not {min_partition_size}")
    known = set(names) | {host}
    for key, plugin in pins.items():
        if plugin not in known:
            raise ByocError(f"pin {key!r} -> {plugin!r}: no such plugin; pin to one of "
                            f"{', '.join(sorted(known))}")


def _validate_exclusions(host: str, exclusions: Mapping[str, Mapping[str, str]]) -> None:
    excluding_host = sorted(node for node, plugins in exclusions.items() if host in plugins)
    if excluding_host:
        raise ByocError(f"the host ({host}) cannot be excluded from a node (it takes what every "
                        f"other plugin leaves), but it is from {', '.join(excluding_host)}")


def _collect_candidates(graph: Graph, claims: list[PluginClaims], index: dict[int, int],
                        note: Callable[[Node, str, str], None],
                        check_failures: list[str]) -> list[_Candidate]:
    candidates = []
    for claim in claims:
        for result in find_matches(graph, claim.patterns):
            for declined in result.declines:
                reason = declined.reason
                if declined.check_failed:
                    reason = (f"declined because plugin {claim.plugin!r} failed: {reason} (a "
                              f"bug in the plugin: report it to its authors)")
                    check_failures.append(f"plugin {claim.plugin!r}, pattern "
                                          f"{declined.pattern!r}, {describe_node(result.node)}: "
                                          f"{declined.reason}")
                note(result.node, claim.plugin, f"{declined.pattern}: {reason}")
                for inner in declined.nodes:   # the rest of what the pattern matched
                    if inner is not result.node:
                        note(inner, claim.plugin, f"{declined.pattern} (rooted at "
                                                  f"{describe_node(result.node)}): {reason}")
            for match in result.matches:
                cost = claim.cost(match.pattern, list(match.nodes)) if claim.cost else None
                candidates.append(_Candidate(claim.plugin, claim.priority, match.pattern,
                                             list(match.nodes), index[id(match.root)],
                                             None if cost is None else float(cost), match))
    return candidates


def _apply_pins(graph: Graph, candidates: list[_Candidate], pins: dict[str, str],
                note: Callable[[Node, str, str], None]) -> list[_Candidate]:
    pinned = {id(n): pins.get(n.name, pins.get(n.op_type)) for n in graph.nodes}

    def barred(node: Node, plugin: str) -> str | None:
        target = pinned[id(node)]
        return None if target is None or target == plugin else f"pinned to {target}"
    return _drop_barred(candidates, barred, note)


def _drop_barred(candidates: list[_Candidate], barred: Callable[[Node, str], str | None],
                 note: Callable[[Node, str, str], None]) -> list[_Candidate]:
    """The candidates none of whose nodes ``barred(node, plugin)`` gives a reason for; every
    node of a dropped candidate is explained (rule 2: pins and exclusions)."""
    kept = []
    for candidate in candidates:
        why = {id(n): barred(n, candidate.plugin) for n in candidate.nodes}
        conflicts = [n for n in candidate.nodes if why[id(n)]]
        if not conflicts:
            kept.append(candidate)
            continue
        first = conflicts[0]
        for node in candidate.nodes:
            note(node, candidate.plugin, why[id(node)] or
                 f"{candidate.pattern} dropped: node {first.name!r}: {why[id(first)]}")
    return kept


class _Groups:
    """Disjoint groups of nodes with a plugin each, and the dataflow edges between them."""

    def __init__(self, graph: Graph):
        self.graph = graph
        self.index = {id(n): i for i, n in enumerate(graph.nodes)}
        self.members: dict[int, list[Node]] = {}
        self.plugin: dict[int, str] = {}
        self.group_of: dict[int, int] = {}
        self._next_id = 0

    def add(self, plugin: str, nodes: list[Node]) -> None:
        gid, self._next_id = self._next_id, self._next_id + 1
        self.members[gid] = list(nodes)
        self.plugin[gid] = plugin
        for node in nodes:
            self.group_of[id(node)] = gid

    def successors(self) -> dict[int, set[int]]:
        producer = self.graph.producers()
        succ: dict[int, set[int]] = {gid: set() for gid in self.members}
        for node in self.graph.nodes:
            for value in node.present_inputs:
                if value in producer:
                    a, b = self.group_of[id(producer[value])], self.group_of[id(node)]
                    if a != b:
                        succ[a].add(b)
        return succ

    def merge_all(self, eligible: Callable[[str], bool]) -> None:
        """Merge same-plugin groups joined by an edge (rule 4) until nothing changes."""
        changed = True
        while changed:
            changed = False
            succ = self.successors()
            merged_into: dict[int, int] = {}
            for a, b in self._edges_in_graph_order(succ):
                while a in merged_into:
                    a = merged_into[a]
                while b in merged_into:
                    b = merged_into[b]
                if (a != b and b in succ[a] and self.plugin[a] == self.plugin[b]
                        and eligible(self.plugin[a])
                        and not self._path_through_third(succ, a, b)):
                    self._merge(succ, a, b)
                    merged_into[b] = a
                    changed = True
            changed = self._merge_siblings(succ, eligible) or changed

    def _merge_siblings(self, succ: dict[int, set[int]],
                        eligible: Callable[[str], bool]) -> bool:
        """Merge same-plugin groups that read from or feed the same group (e.g. the two convs
        of a residual block's main and shortcut branches) when neither reaches the other."""
        pred: dict[int, set[int]] = {gid: set() for gid in succ}
        for a, targets in succ.items():
            for b in targets:
                pred[b].add(a)
        first = {gid: min(self.index[id(n)] for n in nodes) for gid, nodes in self.members.items()}
        for hub in sorted(succ, key=first.get):
            for neighbours in (succ.get(hub, set()), pred.get(hub, set())):
                ordered = sorted(neighbours, key=first.get)
                for i, a in enumerate(ordered):
                    for b in ordered[i + 1:]:
                        if (self.plugin[a] == self.plugin[b] and eligible(self.plugin[a])
                                and not self._reaches(succ, [a], b)
                                and not self._reaches(succ, [b], a)):
                            self._merge(succ, a, b)
                            return True
        return False

    @staticmethod
    def _reaches(succ: dict[int, set[int]], starts: list[int], target: int) -> bool:
        """Whether ``target`` is reachable from any of ``starts`` (or is one of them)."""
        if target in starts:
            return True
        stack, seen = list(starts), set(starts)
        while stack:
            for nxt in succ[stack.pop()]:
                if nxt not in seen:
                    if nxt == target:
                        return True
                    seen.add(nxt)
                    stack.append(nxt)
        return False

    def _edges_in_graph_order(self, succ: dict[int, set[int]]) -> list[tuple[int, int]]:
        first = {gid: min(self.index[id(n)] for n in nodes) for gid, nodes in self.members.items()}
        return sorted(((a, b) for a in succ for b in succ[a]),
                      key=lambda edge: (first[edge[0]], first[edge[1]]))

    @classmethod
    def _path_through_third(cls, succ: dict[int, set[int]], a: int, b: int) -> bool:
        """Whether some path a -> k -> ... -> b with k != b exists (merging would then make
        the group a+b both before and after k)."""
        return cls._reaches(succ, [k for k in succ[a] if k != b], b)

    def _merge(self, succ: dict[int, set[int]], a: int, b: int) -> None:
        """Fold group b into group a, keeping ``succ`` up to date."""
        for targets in succ.values():
            if b in targets:
                targets.discard(b)
                targets.add(a)
        succ[a] |= succ.pop(b)
        succ[a].discard(a)
        for node in self.members[b]:
            self.group_of[id(node)] = a
        self.members[a] += self.members.pop(b)
        del self.plugin[b]

    def topological_order(self) -> list[int]:
        succ = self.successors()
        first = {gid: min(self.index[id(n)] for n in nodes) for gid, nodes in self.members.items()}
        indegree = {gid: 0 for gid in self.members}
        for targets in succ.values():
            for b in targets:
                indegree[b] += 1
        ready = [(first[g], g) for g, d in indegree.items() if d == 0]
        heapq.heapify(ready)
        order = []
        while ready:
            _, gid = heapq.heappop(ready)
            order.append(gid)
            for b in succ[gid]:
                indegree[b] -= 1
                if indegree[b] == 0:
                    heapq.heappush(ready, (first[b], b))
        if len(order) != len(self.members):
            stuck = sorted(n.name for g in self.members if g not in order
                           for n in self.members[g])
            raise ByocError(f"partitioning graph {self.graph.name!r} made a cycle between "
                            f"regions holding nodes {', '.join(stuck)}; a pattern claimed a "
                            f"subgraph that cannot be cut out on its own")
        return order


def make_partition(graph: Graph, name: str, plugin: str, nodes: list[Node],
                   index: dict[int, int]) -> Partition:
    """The partition of ``graph`` made of ``nodes`` (sorted by ``index``: node id to position
    in the graph): it reads what its nodes read from outside (constants aside) and outputs what
    is read outside it or is a graph output. Its ``matches`` are left to the caller."""
    nodes = sorted(nodes, key=lambda n: index[id(n)])
    inside = {id(n) for n in nodes}
    defined = [v for n in nodes for v in n.outputs if v]
    defined_set = set(defined)
    inputs = list(dict.fromkeys(v for n in nodes for v in n.present_inputs
                                if v not in defined_set and v not in graph.constants))
    read_outside = {v for n in graph.nodes if id(n) not in inside for v in n.present_inputs}
    outputs = [v for v in defined if v in read_outside or v in graph.outputs]
    used = dict.fromkeys([*(v for n in nodes for v in n.present_inputs), *defined])
    types = {v: graph.types[v] for v in used if v in graph.types}
    return Partition(name, plugin, nodes, inputs, outputs, types, dict(graph.opsets))


def _check_cover(graph: Graph, plan: PartitionPlan) -> None:
    counts: dict[int, int] = {}
    for partition in plan.partitions:
        for node in partition.nodes:
            counts[id(node)] = counts.get(id(node), 0) + 1
    wrong = [n.name for n in graph.nodes if counts.get(id(n)) != 1]
    if wrong or len(counts) != len(graph.nodes):
        raise ByocError(f"partitioning graph {graph.name!r} did not put every node in exactly "
                        f"one partition: {', '.join(wrong) or 'foreign nodes'}")
