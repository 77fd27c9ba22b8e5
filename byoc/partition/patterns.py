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

from abc import ABC, abstractmethod

import re
from dataclasses import dataclass, field
from typing import Any, Callable, Union

import numpy as np

from byoc.core.ir import Graph, Node
from byoc.errors import ByocError

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

# -- matchers ----------------------------------------------------------------------------------


class _State:
    """What a (partial) match has bound so far; copied before trying an alternative."""

    def __init__(self, graph: Graph, producers: dict[str, Node], consumers: dict[str, list[Node]]):
        self.graph, self.producers, self.consumers = graph, producers, consumers
        self.nodes: dict[int, Node] = {}
        self.shareable: set[int] = set()
        self.inputs: list[str] = []
        self.captured: dict[str, Node] = {}
        self.bound: dict[str, str] = {}

    def snapshot(self) -> tuple:
        return (dict(self.nodes), set(self.shareable), list(self.inputs), dict(self.captured),
                dict(self.bound))

    def restore(self, snap: tuple) -> None:
        self.nodes, self.shareable, self.inputs, self.captured, self.bound = (
            dict(snap[0]), set(snap[1]), list(snap[2]), dict(snap[3]), dict(snap[4]))

    def bind_input(self, value: str, label: str | None) -> None:
        if value not in self.inputs:
            self.inputs.append(value)
        if label:
            self.bound[label] = value


def _node_name(node: Node) -> str:
    return f"{node.op_type} node {node.name!r}"


class Matcher(ABC):
    """Base class. ``match_value`` returns None on success or the reason it failed."""

    @abstractmethod
    def match_value(self, value: str, st: _State) -> str | None:
        """None when ``value`` matches, else why not."""

    def match_node(self, node: Node, st: _State) -> str | None:
        """Match with ``node`` as the root; only op-like matchers can be roots."""
        raise ByocError(f"{type(self).__name__} cannot be the root of a pattern")

    def root_types(self) -> frozenset[str]:
        """The op types a root node of this matcher can have."""
        raise ByocError(f"{type(self).__name__} cannot be the root of a pattern")


@dataclass(eq=False)
class Wildcard(Matcher):
    label: str | None = None

    def match_value(self, value, st):
        if not value:
            return "an omitted optional input cannot be a pattern input"
        st.bind_input(value, self.label)
        return None


@dataclass(eq=False)
class Const(Matcher):
    dtype: Any = None
    label: str | None = None

    def match_value(self, value, st):
        if value not in st.graph.constants:
            return f"value {value!r} must be a graph constant but is computed at run time"
        if self.dtype is not None:
            actual = st.graph.constants[value].dtype
            if actual not in _dtypes(self.dtype):
                return f"constant {value!r} has dtype {actual}, expected {_fmt(self.dtype)}"
        st.bind_input(value, self.label)
        return None


@dataclass(eq=False)
class OpMatcher(Matcher):
    op_types: tuple[str, ...]
    inputs: tuple[Matcher, ...] = ()
    attrs: dict[str, Any] = field(default_factory=dict)
    dtype: Any = None
    rank: Any = None
    shape: Callable[[tuple[int, ...]], bool] | None = None
    min_inputs: int | None = None
    commutative: bool = False
    label: str | None = None
    shareable: bool = False

    def __post_init__(self) -> None:
        if self.min_inputs is None:
            self.min_inputs = len(self.inputs)
        if self.commutative and len(self.inputs) != 2:
            raise ByocError("commutative op matchers need exactly two input matchers")
        if self.shareable and not all(isinstance(m, (Wildcard, Const)) for m in self.inputs):
            raise ByocError("a shareable op matcher may only read wildcard() or const() inputs")

    def root_types(self):
        return frozenset(self.op_types)

    def match_value(self, value, st):
        node = st.producers.get(value) if value else None
        if node is None:
            kind = "a graph constant" if value in st.graph.constants else "a graph input"
            return f"value {value!r} is {kind}, expected the output of {_fmt(self.op_types)}"
        if node.outputs[0] != value:
            return f"value {value!r} is not the first output of {_node_name(node)}"
        return self.match_node(node, st)

    def match_node(self, node, st):
        if node.op_type not in self.op_types or node.domain:
            return f"{_node_name(node)} is not {_fmt(self.op_types)}"
        reason = self._check_node(node, st.graph)
        if reason:
            return f"{_node_name(node)}: {reason}"
        if self.inputs:
            reason = self._match_inputs(node, st)
            if reason:
                return reason
        else:  # no input matchers: any inputs, each becomes a pattern input
            for value in node.present_inputs:
                st.bind_input(value, None)
        st.nodes[id(node)] = node
        if self.shareable:
            st.shareable.add(id(node))
        if self.label:
            st.captured[self.label] = node
        return None

    def _check_node(self, node: Node, graph: Graph) -> str | None:
        for key, expected in self.attrs.items():
            actual = node.attrs.get(key)
            if callable(expected):
                if not expected(actual):
                    return f"attribute {key}={_fmt(actual)} is refused by the pattern"
            elif not _attr_equal(actual, expected):
                return f"attribute {key}={_fmt(actual)}, expected {_fmt(expected)}"
        ty = graph.types.get(node.outputs[0])
        if ty is None:
            return None if self.dtype is self.rank is self.shape is None else "output has no type"
        if self.dtype is not None and ty.dtype not in _dtypes(self.dtype):
            return f"output dtype {ty.dtype}, expected {_fmt(self.dtype)}"
        if self.rank is not None:
            ranks = self.rank if isinstance(self.rank, tuple) else (self.rank,)
            if ty.rank not in ranks:
                return f"output rank {ty.rank}, expected {_fmt(self.rank)}"
        if self.shape is not None and not self.shape(ty.shape):
            return f"output shape {list(ty.shape)} is refused by the pattern"
        return None

    def _match_inputs(self, node: Node, st: _State) -> str | None:
        given = list(node.inputs)
        while given and not given[-1]:
            given.pop()
        if not self.min_inputs <= len(given) <= len(self.inputs) or "" in given:
            want = (f"{self.min_inputs}" if self.min_inputs == len(self.inputs)
                    else f"{self.min_inputs} to {len(self.inputs)}")
            return f"{_node_name(node)} has {len(node.present_inputs)} inputs, expected {want}"
        orders = [given]
        if self.commutative and len(given) == 2:
            orders.append(given[::-1])
        reasons = []
        snap = st.snapshot()
        for order in orders:
            st.restore(snap)
            for i, (value, matcher) in enumerate(zip(order, self.inputs)):
                reason = matcher.match_value(value, st)
                if reason:
                    reasons.append(f"{_node_name(node)} input {i}: {reason}")
                    break
            else:
                return None
        st.restore(snap)
        return "; ".join(dict.fromkeys(reasons))


@dataclass(eq=False)
class Alt(Matcher):
    options: tuple[Matcher, ...]

    def root_types(self):
        return frozenset().union(*(m.root_types() for m in self.options))

    def match_value(self, value, st):
        return self._first(lambda m: m.match_value(value, st), st)

    def match_node(self, node, st):
        return self._first(lambda m: m.match_node(node, st), st)

    def _first(self, attempt, st):
        snap, reasons = st.snapshot(), []
        for matcher in self.options:
            reason = attempt(matcher)
            if reason is None:
                return None
            reasons.append(reason)
            st.restore(snap)
        return "no alternative matched: " + " | ".join(reasons)


@dataclass(eq=False)
class Optional(Matcher):
    op: OpMatcher
    through: int = 0

    def __post_init__(self) -> None:
        if not isinstance(self.op, OpMatcher) or self.through >= len(self.op.inputs):
            raise ByocError("optional() takes an op(...) matcher with an input at `through`")

    @property
    def absent(self) -> Matcher:
        return self.op.inputs[self.through]

    def root_types(self):
        leaf = isinstance(self.absent, (Wildcard, Const))
        return self.op.root_types() | (frozenset() if leaf else self.absent.root_types())

    def match_value(self, value, st):
        node = st.producers.get(value) if value else None
        return self._either(lambda m: m.match_value(value, st), node, st)

    def match_node(self, node, st):
        if isinstance(self.absent, (Wildcard, Const)):  # a root node cannot be "absent"
            return self.op.match_node(node, st)
        return self._either(lambda m: m.match_node(node, st), node, st)

    def _either(self, attempt, node, st):
        snap = st.snapshot()
        present = attempt(self.op)
        if present is None:
            return None
        st.restore(snap)
        absent = attempt(self.absent)
        if absent is None:
            return None
        st.restore(snap)
        # Explain the failure of the branch the graph was taking: the op's when it is there.
        there = node is not None and node.op_type in self.op.op_types and not node.domain
        return present if there else absent


def op(op_type: str | tuple[str, ...], *inputs: Matcher, attrs: dict[str, Any] | None = None,
       dtype: Any = None, rank: int | tuple[int, ...] | None = None,
       shape: Callable[[tuple[int, ...]], bool] | None = None, min_inputs: int | None = None,
       commutative: bool = False, label: str | None = None, shareable: bool = False) -> OpMatcher:
    """Match a node of ``op_type`` (a name or a tuple of alternatives) in the default domain.

    With input matchers, the node's inputs are matched by position; it may omit trailing
    inputs down to ``min_inputs`` (default: all). Without input matchers, any inputs are
    accepted and become pattern inputs. ``attrs`` values are exact (lists compare
    element-wise) or callables given the attribute value (None when absent). ``dtype``,
    ``rank`` and ``shape`` constrain the node's first output. ``commutative`` tries both orders
    of a two-input node. ``label`` captures the node in ``Match.captured``. A ``shareable``
    node whose output is also read outside the match is duplicated into the match instead of
    refusing it (see ``Match.shared``); it may only read wildcard()/const() inputs.
    """
    types = (op_type,) if isinstance(op_type, str) else tuple(op_type)
    return OpMatcher(types, tuple(inputs), dict(attrs or {}), dtype, rank, shape, min_inputs,
                     commutative, label, shareable)


def wildcard(label: str | None = None) -> Wildcard:
    """Any value; bound as a pattern input (``Match.bound[label]`` when labelled)."""
    return Wildcard(label)


def const(dtype: Any = None, label: str | None = None) -> Const:
    """A value that is a graph constant (optionally of ``dtype``); bound as a pattern input."""
    return Const(dtype, label)


def alt(*options: Matcher) -> Alt:
    """The first of ``options`` that matches."""
    if len(options) < 2:
        raise ByocError("alt() needs at least two alternatives")
    return Alt(tuple(options))


def optional(op_matcher: OpMatcher, through: int = 0) -> Optional:
    """``op_matcher`` if its node is there, else its input matcher at ``through`` alone."""
    return Optional(op_matcher, through)


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


@dataclass
class MatchResult:
    """Everything find_matches learned at one root node."""

    node: Node
    matches: list[Match] = field(default_factory=list)
    declines: list[Declined] = field(default_factory=list)


def match_at(pattern: Pattern, node: Node, graph: Graph,
             producers: dict[str, Node] | None = None,
             consumers: dict[str, list[Node]] | None = None) -> Match | Declined:
    """Match ``pattern`` with ``node`` as its root, then apply the guard and the check."""
    st = _State(graph, producers if producers is not None else graph.producers(),
                consumers if consumers is not None else graph.consumers())
    reason = pattern.root.match_node(node, st)
    if reason:
        return Declined(pattern.name, reason)
    order = {id(n): i for i, n in enumerate(graph.nodes)}
    claimed, shared = [], []
    for key, n in sorted(st.nodes.items(), key=lambda item: order[item[0]]):
        outside = key != id(node) and _outside_readers(n, st)
        (shared if outside and key in st.shareable else claimed).append(n)
    match = Match(pattern.name, node, claimed, st.inputs, [o for o in node.outputs if o],
                  st.captured, st.bound, shared)
    reason = _guard(match, st)
    if reason:
        return Declined(pattern.name, reason)
    if pattern.check is not None:
        verdict = pattern.check(match, graph)
        if not isinstance(verdict, (Accept, Decline)):
            raise ByocError(f"check of pattern {pattern.name!r} returned {verdict!r}; it must "
                            f"return Accept() or Decline(reason)")
        if isinstance(verdict, Decline):
            return Declined(pattern.name, verdict.reason)
    return match


def _outside_readers(node: Node, st: _State, inside: set[int] | None = None) -> list[str]:
    """Why ``node``'s outputs escape ``inside`` (default: every matched node): outside
    readers or graph outputs."""
    inside = set(st.nodes) if inside is None else inside
    escapes = []
    for value in filter(None, node.outputs):
        if value in st.graph.outputs:
            escapes.append(f"{value!r} is a graph output")
        for reader in st.consumers.get(value, []):
            if id(reader) not in inside:
                escapes.append(f"{value!r} is also read by {_node_name(reader)}")
    return escapes


def _guard(match: Match, st: _State) -> str | None:
    """Refuse a match whose interior values are seen outside it, or that reads its own
    interior values as inputs (the subgraph could not be cut out)."""
    claimed = {id(n) for n in match.nodes}
    produced = {v: n for n in match.nodes for v in n.outputs if v}
    for value in match.inputs:
        if value in produced:
            return (f"input {value!r} of the match is produced inside it by "
                    f"{_node_name(produced[value])}")
    for node in match.nodes:
        if node is not match.root:
            escapes = _outside_readers(node, st, claimed)
            if escapes:
                return (f"interior value of {_node_name(node)} escapes the match: "
                        + "; ".join(escapes))
    return None


def find_matches(graph: Graph, patterns: list[Pattern]) -> list[MatchResult]:
    """Try every pattern at every node (as the root) and return one MatchResult per node that
    a pattern could be rooted at, in graph order.

    A pattern records a decline at a node only when the node's op type is one its root can
    have (a Conv pattern says nothing about a Softmax). Overlapping matches are all returned.
    """
    producers, consumers = graph.producers(), graph.consumers()
    roots = [(p, p.root.root_types()) for p in patterns]
    results = []
    for node in graph.nodes:
        result = MatchResult(node)
        for pattern, types in roots:
            if node.op_type not in types or node.domain:
                continue
            outcome = match_at(pattern, node, graph, producers, consumers)
            (result.declines if isinstance(outcome, Declined) else result.matches).append(outcome)
        if result.matches or result.declines:
            results.append(result)
    return results


# -- shared constructors -----------------------------------------------------------------------

Activation = Union[None, str, tuple]


def with_activation(inner: Matcher, activation: Activation) -> Matcher:
    """Wrap ``inner`` in an activation: None (none), "optional" (an optional Relu), an op name
    ("relu"/"Relu", "Clip") or a tuple of op names (one of them, required)."""
    if activation is None:
        return inner
    if activation == "optional":
        return optional(op("Relu", inner, label="activation"))
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


def _dtypes(spec: Any) -> list[np.dtype]:
    return [np.dtype(d) for d in (spec if isinstance(spec, (tuple, list)) else (spec,))]


def _attr_equal(actual: Any, expected: Any) -> bool:
    if actual is None:
        return expected is None
    if isinstance(actual, (list, tuple, np.ndarray)) or isinstance(expected, (list, tuple)):
        return np.array_equal(np.asarray(actual), np.asarray(expected))
    return actual == expected


def _fmt(value: Any) -> str:
    if isinstance(value, tuple) and len(value) == 1:
        value = value[0]
    if isinstance(value, tuple):
        return " or ".join(str(v) for v in value)
    if isinstance(value, np.ndarray):
        return str(value.tolist())
    return str(value)
