"""Matchers of the pattern language: the pieces a pattern's root matcher is built from.

See :mod:`byoc.partition.patterns` for the language as a whole. Each matcher matches a value
(or, for op matchers, the node producing it) against the graph, recording what it binds in a
:class:`MatchState`; a failed match returns the reason, which becomes a pattern's decline.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from byoc.core.ir import Graph, Node
from byoc.errors import ByocError

# -- matchers ----------------------------------------------------------------------------------


class MatchState:
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


def node_label(node: Node) -> str:
    return f"{qualified_op_type(node)} node {node.name!r}"


def qualified_op_type(node: Node) -> str:
    """How patterns name a node's op: ``Conv`` for ONNX's ops, ``com.mychip::FusedGelu`` for
    an op of another domain (one a plugin declares)."""
    return f"{node.domain}::{node.op_type}" if node.domain else node.op_type


class Matcher(ABC):
    """Base class. ``match_value`` returns None on success or the reason it failed."""

    @abstractmethod
    def match_value(self, value: str, st: MatchState) -> str | None:
        """None when ``value`` matches, else why not."""

    def match_node(self, node: Node, st: MatchState) -> str | None:
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
            return f"value {value!r} is not the first output of {node_label(node)}"
        return self.match_node(node, st)

    def match_node(self, node, st):
        if qualified_op_type(node) not in self.op_types:
            return f"{node_label(node)} is not {_fmt(self.op_types)}"
        reason = self._check_node(node, st.graph)
        if reason:
            return f"{node_label(node)}: {reason}"
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

    def _match_inputs(self, node: Node, st: MatchState) -> str | None:
        given = list(node.inputs)
        while given and not given[-1]:
            given.pop()
        if not self.min_inputs <= len(given) <= len(self.inputs) or "" in given:
            want = (f"{self.min_inputs}" if self.min_inputs == len(self.inputs)
                    else f"{self.min_inputs} to {len(self.inputs)}")
            return f"{node_label(node)} has {len(node.present_inputs)} inputs, expected {want}"
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
                    reasons.append(f"{node_label(node)} input {i}: {reason}")
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
        there = node is not None and qualified_op_type(node) in self.op.op_types
        return present if there else absent


def op(op_type: str | tuple[str, ...], *inputs: Matcher, attrs: dict[str, Any] | None = None,
       dtype: Any = None, rank: int | tuple[int, ...] | None = None,
       shape: Callable[[tuple[int, ...]], bool] | None = None, min_inputs: int | None = None,
       commutative: bool = False, label: str | None = None, shareable: bool = False) -> OpMatcher:
    """Match a node of ``op_type`` (a name or a tuple of alternatives): an ONNX op by its name
    (``"Conv"``), an op of another domain by its qualified name (``"com.mychip::FusedGelu"``).

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
