"""The pattern language: matchers over the graph IR, patterns, and the shared constructors.

A matcher is anchored at a node (the *root*: the LAST node of the subgraph, e.g. the Relu of
conv+add+relu) and walks producers from there:

- ``op(op_type, *inputs, attrs=, dtype=, rank=, shape=, min_inputs=, commutative=, label=,
  shareable=)`` matches a node; its input matchers match the node's inputs by position.
- ``wildcard()`` matches any value and binds it as a pattern input.
- ``const(dtype=None)`` matches a value that is a graph constant, also bound as an input.
- ``alt(m1, m2, ...)`` tries alternatives in order; the first that matches wins.
- ``optional(op_matcher, through=0)`` matches the op when it is there; when it is not, the
  input matcher at position ``through`` stands in for it (``optional(op("Relu", conv))``
  matches ``conv`` or ``relu(conv)``).

A :class:`Pattern` is data: a name ``plugin.op_variant``, a root matcher and an optional check.
When ``check`` is None the matcher's constraints are the whole rule (there is deliberately no
"always accept" check: a check that always says yes is a bug). :func:`find_matches` tries each
pattern at each node, applies the interior-value guard and the check, and records why a pattern
declined a node. Priority between overlapping matches is the partitioner's business.
The int8 constructors (QDQ groups, QLinear ops) live in :mod:`byoc.partition.int8_patterns`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Callable, Union

from byoc.core.ir import Graph, Node
from byoc.errors import ByocError
from byoc.partition.matchers import (
    Alt,
    Const,
    Matcher,
    MatchState,
    OpMatcher,
    Optional,
    Wildcard,
    alt,
    const,
    node_label,
    op,
    optional,
    qualified_op_type,
    wildcard,
)

# -- check results -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Accept:
    """A check's verdict that the plugin takes the match."""

    ok = True
    reason = ""


@dataclass(frozen=True)
class Decline:
    """A check's verdict that the plugin does not take the match, and why."""

    reason: str
    ok = False

    def __post_init__(self) -> None:
        if not isinstance(self.reason, str) or not self.reason.strip():
            raise ByocError("Decline needs a non-empty reason saying why the match is refused")


CheckResult = Union[Accept, Decline]

# -- patterns and matching ---------------------------------------------------------------------

_NAME = re.compile(r"^[a-z][a-z0-9_]*\.[a-z][a-z0-9_]*$")


@dataclass
class Pattern:
    """What a plugin claims: ``name`` is ``plugin.op_variant`` (lower-case, one dot).

    ``check(match, graph)`` returns Accept() or Decline(reason). When ``check`` is None the
    matcher's constraints are the whole rule.
    """

    name: str
    root: Matcher
    check: Callable[["Match", Graph], CheckResult] | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not _NAME.match(self.name):
            raise ByocError(f"pattern name {self.name!r} must be 'plugin.op_variant': lower-case "
                            f"letters, digits and '_', with one '.' (e.g. 'npu.conv2d_relu')")
        if not isinstance(self.root, Matcher):
            raise ByocError(f"pattern {self.name!r}: root must be a matcher built with op(...)")
        self.root.root_types()  # raises when the root is a wildcard() or const()

    @property
    def plugin(self) -> str:
        return self.name.split(".", 1)[0]


@dataclass
class Match:
    """A subgraph a pattern matched and accepted.

    ``nodes`` are the nodes the match claims, in graph order. ``shared`` are nodes the match
    reads through (duplicated into it) that stay in the graph for their other readers.
    ``inputs`` are the values bound by wildcard()/const(), in matching order; ``outputs`` are
    the root node's outputs. ``captured``/``bound`` hold labelled nodes/values.
    """

    pattern: str
    root: Node
    nodes: list[Node]
    inputs: list[str]
    outputs: list[str]
    captured: dict[str, Node] = field(default_factory=dict)
    bound: dict[str, str] = field(default_factory=dict)
    shared: list[Node] = field(default_factory=list)


@dataclass(frozen=True)
class Declined:
    """A pattern that did not take a root node, and why."""

    pattern: str
    reason: str
    # The check raised or returned neither Accept nor Decline: a bug in the plugin, which the
    # partitioner reports and strict refuses.
    check_failed: bool = False
    # The nodes the pattern matched before its guard or check declined (empty when the
    # matcher itself did not match), so each of them can be told why.
    nodes: tuple[Node, ...] = ()


@dataclass
class MatchResult:
    """Everything find_matches learned at one root node."""

    node: Node
    matches: list[Match] = field(default_factory=list)
    declines: list[Declined] = field(default_factory=list)


def match_at(pattern: Pattern, node: Node, graph: Graph,
             producers: dict[str, Node] | None = None,
             consumers: dict[str, list[Node]] | None = None,
             order: dict[int, int] | None = None) -> Match | Declined:
    """Match ``pattern`` with ``node`` as its root, then apply the guard and the check.
    ``producers``, ``consumers`` and ``order`` (each node's position, by ``id``) are the
    graph's, computed here unless the caller has them (:func:`find_matches` computes them
    once for every node)."""
    st = MatchState(graph, producers if producers is not None else graph.producers(),
                consumers if consumers is not None else graph.consumers())
    reason = pattern.root.match_node(node, st)
    if reason:
        return Declined(pattern.name, reason)
    if order is None:
        order = _node_order(graph)
    claimed, shared = [], []
    for key, n in sorted(st.nodes.items(), key=lambda item: order[item[0]]):
        outside = key != id(node) and _outside_readers(n, st)
        (shared if outside and key in st.shareable else claimed).append(n)
    match = Match(pattern.name, node, claimed, st.inputs, [o for o in node.outputs if o],
                  st.captured, st.bound, shared)
    matched = tuple(claimed)
    reason = _guard(match, st)
    if reason:
        return Declined(pattern.name, reason, nodes=matched)
    if pattern.check is not None:
        try:
            verdict = pattern.check(match, graph)
        except Exception as exc:  # a plugin bug must not stop partitioning: decline instead
            return Declined(pattern.name, f"the check raised {type(exc).__name__}: {exc}",
                            check_failed=True, nodes=matched)
        if not isinstance(verdict, (Accept, Decline)):
            return Declined(pattern.name, f"the check returned {verdict!r:.60} instead of "
                                          f"Accept() or Decline(reason)", check_failed=True,
                            nodes=matched)
        if isinstance(verdict, Decline):
            return Declined(pattern.name, verdict.reason, nodes=matched)
    return match


def _node_order(graph: Graph) -> dict[int, int]:
    """The position of each node of ``graph`` in its node list, by ``id``."""
    return {id(n): i for i, n in enumerate(graph.nodes)}


def _outside_readers(node: Node, st: MatchState, inside: set[int] | None = None) -> list[str]:
    """Why ``node``'s outputs escape ``inside`` (default: every matched node): outside
    readers or graph outputs."""
    inside = set(st.nodes) if inside is None else inside
    escapes = []
    for value in filter(None, node.outputs):
        if value in st.graph.outputs:
            escapes.append(f"{value!r} is a graph output")
        for reader in st.consumers.get(value, []):
            if id(reader) not in inside:
                escapes.append(f"{value!r} is also read by {node_label(reader)}")
    return escapes


def _guard(match: Match, st: MatchState) -> str | None:
    """Refuse a match whose interior values are seen outside it, or that reads its own
    interior values as inputs (the subgraph could not be cut out)."""
    claimed = {id(n) for n in match.nodes}
    produced = {v: n for n in match.nodes for v in n.outputs if v}
    for value in match.inputs:
        if value in produced:
            return (f"input {value!r} of the match is produced inside it by "
                    f"{node_label(produced[value])}")
    for node in match.nodes:
        if node is not match.root:
            escapes = _outside_readers(node, st, claimed)
            if escapes:
                return (f"interior value of {node_label(node)} escapes the match: "
                        + "; ".join(escapes))
    return None


def find_matches(graph: Graph, patterns: list[Pattern]) -> list[MatchResult]:
    """Try every pattern at every node (as the root) and return one MatchResult per node that
    a pattern could be rooted at, in graph order.

    A pattern records a decline at a node only when the node's op type is one its root can
    have (a Conv pattern says nothing about a Softmax). Overlapping matches are all returned.
    """
    producers, consumers, order = graph.producers(), graph.consumers(), _node_order(graph)
    roots = [(p, p.root.root_types()) for p in patterns]
    results = []
    for node in graph.nodes:
        result = MatchResult(node)
        for pattern, types in roots:
            if qualified_op_type(node) not in types:
                continue
            outcome = match_at(pattern, node, graph, producers, consumers, order)
            (result.declines if isinstance(outcome, Declined) else result.matches).append(outcome)
        if result.matches or result.declines:
            results.append(result)
    return results


# -- shared constructors -----------------------------------------------------------------------

Activation = Union[None, str, tuple]


def with_activation(inner: Matcher, activation: Activation) -> Matcher:
    """Wrap ``inner`` in an activation: None (none), "optional" (an optional Relu or Clip), an
    op name ("relu"/"Relu", "Clip") or a tuple of op names (one of them, required). Clip's
    bounds, when given as inputs, must be constants."""
    if activation is None:
        return inner
    if activation == "optional":
        return optional(op(("Relu", "Clip"), inner, const(), const(), min_inputs=1,
                           label="activation"))
    names = (activation,) if isinstance(activation, str) else tuple(activation)
    types = tuple("Relu" if a == "relu" else a for a in names)
    return op(types, inner, const(), const(), min_inputs=1, label="activation") \
        if "Clip" in types else op(types, inner, label="activation")


def make_op_pattern(name: str, op_type: str | tuple[str, ...],
                    check: Callable | None = None, **constraints: Any) -> Pattern:
    """A single op with any inputs (``constraints`` go to :func:`op`)."""
    return Pattern(name, op(op_type, label="op", **constraints), check)


def make_elementwise_pattern(name: str, op_types: str | tuple[str, ...] = ("Add", "Mul", "Sub"),
                             activation: Activation = None,
                             check: Callable | None = None) -> Pattern:
    """An elementwise op (any inputs) followed by an activation (see with_activation)."""
    return Pattern(name, with_activation(op(op_types, label="op"), activation), check)


def make_conv_pattern(name: str, with_bias: bool | str = False, activation: Activation = None,
                      check: Callable | None = None) -> Pattern:
    """Conv (data input, constant weights, optional constant bias input) -> [Add of a
    constant bias] -> [activation]. ``with_bias`` is True, False or "optional"; the Add may
    read the conv on either side. Captures "conv", "bias_add" and "activation"."""
    conv = op("Conv", wildcard("data"), const(label="weight"), const(label="conv_bias"),
              min_inputs=2, label="conv")
    if with_bias:
        add = op("Add", conv, const(label="bias"), commutative=True, label="bias_add")
        if with_bias == "optional":
            conv = optional(add)
        elif with_bias is True:
            conv = add
        else:
            raise ByocError(f"with_bias must be True, False or 'optional', not {with_bias!r}")
    return Pattern(name, with_activation(conv, activation), check)



__all__ = [
    # matchers, re-exported so a plugin imports the whole language from one module
    "Alt", "Const", "Matcher", "OpMatcher", "Optional", "Wildcard",
    "alt", "const", "op", "optional", "wildcard",
    # patterns and matching
    "Accept", "CheckResult", "Decline", "Declined", "Match", "MatchResult", "Pattern",
    "find_matches", "match_at",
    # shared constructors
    "Activation", "make_conv_pattern", "make_elementwise_pattern", "make_op_pattern",
    "with_activation",
]
