"""Placement by estimated cost: which plugin runs what, chosen to minimise the model's
estimated time, transfers included.

The partitioner (:mod:`byoc.partition.partitioner`) places by priority: among overlapping
matches the first plugin given wins, whatever it costs. Placement by cost keeps its rules
(pins, exclusions, acyclic regions, quantized layers kept whole) and only chooses which
candidate matches it may use, from estimates (:mod:`byoc.estimate`).

**Pricing a plan** (:func:`price_plan`). A partition costs what its plugin is estimated to take
for each of its matches (a node a host takes without a pattern is priced on its own), plus
the plugin's launch cost of one partition run, plus moving each value it reads from outside
and each value it gives out to or from its plugin's device (both from the plugin's
:class:`~byoc.plugins.api.Transfer`; moving is free for a host plugin, which works in host
memory). Partitions run one after another, so the model's estimate is their sum.

**The search** (:func:`place_by_cost`), a bounded local search in the manner of Collage:

1. Two plans are priced first: *priority* (nothing dropped) and *host-only* (every candidate
   of an accelerator dropped: what the host plugins alone are estimated to take).
2. From each of them, the search tries moves, in this order, and takes the first that lowers
   the estimated total: move a whole accelerator partition off its plugin (drop every match
   it holds), move one of its matches off, bring back the dropped matches of one partition of
   the priority plan together, bring back one dropped match. A dropped match's
   nodes go to whichever plugin ranks next for them (another accelerator, a host plugin, the
   reference), under the partitioner's rules. After a move the moves are listed again; the
   search ends when none helps or after :data:`MAX_PLANS` plan totals (most from a cache).
3. The cheaper of the two end points is chosen. Every step lowers the total, so the choice is
   never estimated slower than priority or host-only placement.

Only matches the plugin prices with a model of its own are moved: a plugin without an
estimate (byoc's fallback model prices it, pessimistically) keeps what priority gives it, so
a new plugin is not pushed off the model because it cannot yet say what it costs; its matches
are dropped only in the host-only total. The guarantee of step 3 holds against a host-only
plan of the priced matches, which is the host-only total whenever every match is priced.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from byoc.core.ir import Node
from byoc.estimate import value_bytes
from byoc.partition.partitioner import PartitionPlan, PartitionProblem
from byoc.plugins.api import Estimate, Partition, Transfer

PLACEMENTS = ("cost", "priority")
"""The values of ``--placement`` and of ``byoc.compile(placement=...)``."""

MAX_PLANS = 400
"""How many plan totals the search asks for at most (a new plan is a run of the partitioner's
rules 2-7; one seen before comes from a cache)."""

_BETTER = 1e-12
"""A move must lower the estimated total by more than this many seconds (rounding noise)."""


class CostModel(Protocol):
    """What placement asks of the estimates (:class:`byoc.estimate.Estimator` answers)."""

    def match(self, plugin: str, pattern: str | None, nodes: list[Node]) -> Estimate:
        """The estimate of ``nodes`` (one match of ``pattern``, or None for a node a host
        takes without a pattern) on ``plugin``."""

    def priced(self, plugin: str, pattern: str | None, nodes: list[Node]) -> bool:
        """Whether :meth:`match` comes from the plugin's own model (not byoc's fallback)."""

    def transfer(self, plugin: str) -> Transfer:
        """What moving a tensor to or from ``plugin``'s device costs."""

    def is_host(self, plugin: str) -> bool:
        """Whether ``plugin`` is a host plugin (works in host memory)."""


@dataclass
class Priced:
    """One estimated piece of a partition: a match, or a node a host took without one."""

    nodes: list[str]
    pattern: str | None
    estimate: Estimate


@dataclass
class Crossing:
    """A value crossing a partition's boundary: into it (``"in"``) or out of it."""

    value: str
    direction: str
    bytes: int
    seconds: float


@dataclass
class PartitionCost:
    """A partition's estimate: ``seconds`` on its device (its pieces, and the plugin's
    launch cost of one partition run), ``transfer_seconds`` for its crossings, ``cycles``
    where its plugin counts them for every piece (else None)."""

    name: str
    plugin: str
    nodes: list[str]
    pieces: list[Priced]
    crossings: list[Crossing]
    launch_seconds: float = 0.0

    @property
    def seconds(self) -> float:
        """The device's time: the matches' estimates and the partition's launch."""
        return sum(p.estimate.seconds for p in self.pieces) + self.launch_seconds

    @property
    def transfer_seconds(self) -> float:
        return sum(c.seconds for c in self.crossings)

    @property
    def total_seconds(self) -> float:
        return self.seconds + self.transfer_seconds

    @property
    def cycles(self) -> int | None:
        counts = [p.estimate.cycles for p in self.pieces]
        return None if not counts or None in counts else sum(counts)

    @property
    def bytes_in(self) -> int:
        return sum(c.bytes for c in self.crossings if c.direction == "in")

    @property
    def bytes_out(self) -> int:
        return sum(c.bytes for c in self.crossings if c.direction == "out")


@dataclass
class Placement:
    """What placement found: the mode (``"cost"`` or ``"priority"``), the estimated totals of
    the chosen, priority and host-only plans in seconds, the chosen plan's partitions priced,
    and how many plans the search priced (``searched_all`` is False when it stopped at
    :data:`MAX_PLANS`). A partition's seconds include moving its inputs in and its outputs
    out, so the partitions add up to ``chosen``."""

    mode: str
    chosen: float
    priority: float
    host_only: float
    partitions: list[PartitionCost] = field(default_factory=list)
    plans_priced: int = 0
    searched_all: bool = True
    # Nodes of the model's dynamic tail: they run eagerly after the partitions, unestimated.
    not_estimated: list[str] = field(default_factory=list)

    def summary(self) -> str:
        """Three totals on one line, e.g. for --explain and the report."""
        return (f"estimated time: {_us(self.chosen)} chosen ({self.mode} placement), "
                f"{_us(self.priority)} by priority, {_us(self.host_only)} on the host "
                f"plugins alone")


def format_microseconds(seconds: float) -> str:
    """``0.0001234`` -> ``"123.4 us"``."""
    return f"{seconds * 1e6:,.1f} us"


_us = format_microseconds


class _Pricer:
    """Prices plans of one problem, caching each match's and each node's estimate and each
    set of dropped candidates' total."""

    def __init__(self, problem: PartitionProblem, model: CostModel):
        self.problem, self.model = problem, model
        self.totals: dict[frozenset[int], float] = {}
        self.asked = 0    # totals asked for, the search's budget (MAX_PLANS)
        self.plans: dict[frozenset[int], PartitionPlan] = {}
        self._pieces: dict[tuple, Priced] = {}

    def plan(self, dropped: dict[int, str], exclusions) -> PartitionPlan:
        key = frozenset(dropped)
        if key not in self.plans:
            plan = self.problem.plan(exclusions, dropped)
            self.plans[key] = plan
            self.totals[key] = sum(p.total_seconds for p in price_plan(plan, self.problem,
                                                                       self.model, self))
        return self.plans[key]

    def total(self, dropped: dict[int, str], exclusions) -> float:
        self.asked += 1
        self.plan(dropped, exclusions)
        return self.totals[frozenset(dropped)]

    def piece(self, plugin: str, pattern: str | None, nodes: list[Node]) -> Priced:
        key = (plugin, pattern, tuple(id(n) for n in nodes))
        if key not in self._pieces:
            self._pieces[key] = Priced([n.name for n in nodes], pattern,
                                       self.model.match(plugin, pattern, nodes))
        return self._pieces[key]


def price_plan(plan: PartitionPlan, problem: PartitionProblem, model: CostModel,
               pricer: _Pricer | None = None) -> list[PartitionCost]:
    """Each partition of ``plan`` (a plan of ``problem``) priced (see the module docstring)."""
    pricer = pricer or _Pricer(problem, model)
    graph = problem.graph
    priced = []
    for partition in plan.partitions:
        pieces, covered = [], set()
        for number in plan.candidates.get(partition.name, []):
            candidate = problem.candidates[number]
            pieces.append(pricer.piece(partition.plugin, candidate.pattern, candidate.nodes))
            covered.update(id(n) for n in candidate.nodes)
        pieces += [pricer.piece(partition.plugin, None, [n]) for n in partition.nodes
                   if id(n) not in covered]
        priced.append(PartitionCost(partition.name, partition.plugin,
                                    [n.name for n in partition.nodes], pieces,
                                    _crossings(partition, graph, model),
                                    model.transfer(partition.plugin).launch))
    return priced


def _crossings(partition: Partition, graph, model: CostModel) -> list[Crossing]:
    transfer = model.transfer(partition.plugin)
    crossings = []
    for direction, values in (("in", partition.inputs), ("out", partition.outputs)):
        for value in values:
            size = value_bytes(graph, value)
            crossings.append(Crossing(value, direction, size, transfer.seconds(size)))
    return crossings


def place_by_cost(problem: PartitionProblem, model: CostModel,
                  exclusions=None) -> tuple[PartitionPlan, Placement]:
    """The plan of ``problem`` with the lowest estimated total the search finds (see the
    module docstring), and its :class:`Placement`."""
    pricer = _Pricer(problem, model)
    accelerator = _accelerator_candidates(problem, model)
    movable = {i for i in accelerator if model.priced(
        problem.candidates[i].plugin, problem.candidates[i].pattern, problem.candidates[i].nodes)}
    host_why = "placement by estimated cost: the host plugins alone"
    priority = pricer.total({}, exclusions)
    host_only = pricer.total(dict.fromkeys(accelerator, host_why), exclusions)

    first = pricer.plan({}, exclusions)
    groups = [[i for i in first.candidates.get(p.name, []) if i in movable]
              for p in first.partitions]
    ends = []
    for start in ({}, {i: host_why for i in movable}):
        ends.append(_descend(pricer, dict(start), movable, groups, exclusions))
    dropped = min(ends, key=lambda d: (pricer.total(d, exclusions), len(d)))
    searched_all = pricer.asked < MAX_PLANS
    dropped = _final_reasons(pricer, dropped, exclusions)
    # With nothing dropped there are no reasons to rewrite: the priced plan is the final one.
    plan = pricer.plan(dropped, exclusions) if not dropped else problem.plan(exclusions, dropped)
    placement = Placement("cost", pricer.total(dropped, exclusions), priority, host_only,
                          price_plan(plan, problem, model, pricer), len(pricer.plans),
                          searched_all)
    plan.placement = placement
    return plan, placement


def price_priority(problem: PartitionProblem, model: CostModel, plan: PartitionPlan,
                   exclusions=None) -> Placement:
    """The :class:`Placement` of ``plan``, the priority plan of ``problem``, with the
    host-only total next to it."""
    pricer = _Pricer(problem, model)
    host_only = dict.fromkeys(_accelerator_candidates(problem, model), "host-only placement")
    partitions = price_plan(plan, problem, model, pricer)
    total = sum(p.total_seconds for p in partitions)
    placement = Placement("priority", total, total, pricer.total(host_only, exclusions),
                          partitions, 2)
    plan.placement = placement
    return placement


def _accelerator_candidates(problem: PartitionProblem, model: CostModel) -> list[int]:
    """The indices of the candidates of plugins that are not hosts: what host-only
    placement drops."""
    return [i for i, c in enumerate(problem.candidates) if not model.is_host(c.plugin)]


def _descend(pricer: _Pricer, dropped: dict[int, str], movable: set[int],
             groups: list[list[int]], exclusions) -> dict[int, str]:
    """First-improvement local search from ``dropped`` (see the module docstring)."""
    current = pricer.total(dropped, exclusions)
    while pricer.asked < MAX_PLANS:
        for move in _moves(pricer.plan(dropped, exclusions), dropped, movable, groups):
            if pricer.asked >= MAX_PLANS:
                break
            total = pricer.total(move, exclusions)
            if total < current - _BETTER:
                dropped, current = move, total
                break
        else:
            break
    return dropped


def _moves(plan: PartitionPlan, dropped: dict[int, str], movable: set[int],
           groups: list[list[int]]):
    """The moves from ``dropped`` in the order the module docstring gives; ``groups`` are
    the movable matches of each partition of the priority plan."""
    why = "placement by estimated cost"
    held = [[i for i in plan.candidates.get(p.name, []) if i in movable]
            for p in plan.partitions]
    for numbers in held:
        if numbers:
            yield {**dropped, **dict.fromkeys(numbers, why)}
    for numbers in held:
        if len(numbers) > 1:
            for number in numbers:
                yield {**dropped, number: why}
    for group in groups:
        back = [number for number in group if number in dropped]
        if len(back) > 1:
            yield {k: v for k, v in dropped.items() if k not in back}
    for number in sorted(dropped):
        yield {k: v for k, v in dropped.items() if k != number}


def _final_reasons(pricer: _Pricer, dropped: dict[int, str], exclusions) -> dict[int, str]:
    """``dropped`` with each reason saying what keeping that match would have cost."""
    without = pricer.total(dropped, exclusions)
    explained = {}
    for number in dropped:
        kept = {k: v for k, v in dropped.items() if k != number}
        if pricer.asked < MAX_PLANS or frozenset(kept) in pricer.totals:
            with_it = pricer.total(kept, exclusions)
            explained[number] = (f"placement by estimated cost: the model is estimated at "
                                 f"{_us(without)} without this match, {_us(with_it)} with it")
        else:
            explained[number] = (f"placement by estimated cost: the model is estimated at "
                                 f"{_us(without)} without this match")
    return explained
