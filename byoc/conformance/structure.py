"""The shapes a pattern can match, read from its matcher tree.

A pattern's root matcher is a tree of ``op``, ``const``, ``wildcard``, ``optional`` and ``alt``
matchers (:mod:`byoc.partition.matchers`). Every way of resolving its choices — which op type
of a tuple, an optional op present or absent, how many of an op's trailing optional inputs are
given, which alternative of an ``alt`` — gives one concrete subgraph the pattern matches as a
whole: a :class:`Realization`. The conformance kit builds a model around each realization it
picks (:mod:`byoc.conformance.composite`) and checks that the pattern claims all of it.

Each choice is a *structural parameter*, named so that a plugin's
:class:`~byoc.plugins.api.PatternLimits` can restrict it like any builder parameter:

- an ``optional(op(...))`` is named by the op matcher's label (``activation`` for
  :func:`~byoc.partition.patterns.with_activation`) and takes the op type when present, None
  when absent;
- an op matcher with several op types and no label of its own under an optional is the same
  parameter; a labelled op matcher with several op types (``op(("Conv", "MatMul"),
  label="op")``) is named by its label;
- a trailing optional input is named by the label of the value it binds (``bias`` for the bias
  of :func:`~byoc.partition.int8_patterns.make_qdq_pattern`), else ``LABEL.INPUT`` with ONNX's
  name of the input (``quantize.y_zero_point``), and takes True (given) or False (omitted);
- an ``alt`` is named by its position (``alt1``, ...) and takes the index of the option.

How many inputs an op can have comes from onnx's operator schemas, so ``op(("Relu", "Clip"),
x, const(), const(), min_inputs=1)`` realizes a Relu of one input and a Clip of one to three.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any, Iterator

import onnx

from byoc.errors import PluginError
from byoc.partition.matchers import Alt, Const, Matcher, OpMatcher, Optional, Wildcard

MAX_REALIZATIONS = 4096   # enumerated before the kit picks the ones it builds


@dataclass(frozen=True)
class Leaf:
    """A value the pattern binds as an input: a run-time value (``wildcard``) or a graph
    constant (``const``)."""

    matcher: Wildcard | Const

    @property
    def constant(self) -> bool:
        return isinstance(self.matcher, Const)


@dataclass(frozen=True)
class Part:
    """One op of a realization. ``inputs`` holds, per input position the op is given, the
    Part producing it or the Leaf it binds; ``free`` means the matcher has no input matchers
    (any inputs: a model builder chooses them)."""

    op_type: str
    matcher: OpMatcher
    inputs: tuple[Part | Leaf, ...] = ()
    free: bool = False

    def parts(self) -> Iterator[Part]:
        """This part and every part below it, producers first."""
        for child in self.inputs:
            if isinstance(child, Part):
                yield from child.parts()
        yield self

    def describe(self) -> str:
        if self.free:
            return self.op_type
        args = ", ".join(c.describe() if isinstance(c, Part) else
                         ("const" if c.constant else "input") for c in self.inputs)
        return f"{self.op_type}({args})"


@dataclass(frozen=True)
class Realization:
    """One concrete subgraph a pattern matches: its root part and the value of every
    structural parameter that was decided on the way."""

    root: Part
    choices: tuple[tuple[str, Any], ...] = ()

    @property
    def params(self) -> dict[str, Any]:
        return dict(self.choices)

    def size(self) -> int:
        return sum(1 + len(p.inputs) for p in self.root.parts())

    def describe(self) -> str:
        return self.root.describe()


@dataclass
class _Names:
    """Structural parameter names, unique within one pattern."""

    taken: dict[int, str] = field(default_factory=dict)
    alts: int = 0

    def of(self, key: Any, wanted: str) -> str:
        if id(key) not in self.taken:
            name, n = wanted, 2
            while name in self.taken.values():
                name, n = f"{wanted}{n}", n + 1
            self.taken[id(key)] = name
        return self.taken[id(key)]


def realizations(matcher: Matcher) -> list[Realization]:
    """Every realization of ``matcher`` (at most MAX_REALIZATIONS; a larger tree is an error
    naming the bound: a pattern that matches that many shapes should declare limits)."""
    names = _Names()
    found = []
    for root, choices in _realize(matcher, names, None, root=True):
        found.append(Realization(root, tuple(choices)))
        if len(found) > MAX_REALIZATIONS:
            raise PluginError(f"the pattern matches more than {MAX_REALIZATIONS} different "
                              f"subgraph shapes; the conformance kit cannot enumerate them")
    return found


def _realize(matcher: Matcher, names: _Names, context: str | None,
             root: bool = False) -> Iterator[tuple[Part | Leaf, list]]:
    if isinstance(matcher, (Wildcard, Const)):
        yield Leaf(matcher), []
    elif isinstance(matcher, OpMatcher):
        yield from _realize_op(matcher, names, context)
    elif isinstance(matcher, Optional):
        name = names.of(matcher, matcher.op.label or context or "optional")
        for part, choices in _realize_op(matcher.op, names, name, typed=False):
            yield part, [(name, part.op_type), *choices]
        if not (root and isinstance(matcher.absent, (Wildcard, Const))):
            for part, choices in _realize(matcher.absent, names, context, root):
                yield part, [(name, None), *choices]
    elif isinstance(matcher, Alt):
        names.alts += 1
        name = names.of(matcher, f"alt{names.alts}")
        for index, option in enumerate(matcher.options):
            for part, choices in _realize(option, names, context, root):
                yield part, [(name, index), *choices]
    else:
        raise PluginError(f"the conformance kit does not know the matcher "
                          f"{type(matcher).__name__}")


def _realize_op(matcher: OpMatcher, names: _Names, context: str | None,
                typed: bool = True) -> Iterator[tuple[Part, list]]:
    label = matcher.label or context
    type_param = None
    if typed and len(matcher.op_types) > 1:
        type_param = names.of(matcher.op_types, label or "op_type")
    for op_type in matcher.op_types:
        choices = [(type_param, op_type)] if type_param else []
        if not matcher.inputs:
            yield Part(op_type, matcher, free=True), choices
            continue
        low, high = _arity(op_type, matcher)
        for count in range(high, low - 1, -1):
            given = [_realize(m, names, label) for m in matcher.inputs[:count]]
            optional = [(_input_param(matcher, op_type, i, label, names), i < count)
                        for i in range(low, high)]
            for combo in itertools.product(*[list(g) for g in given]):
                inputs = tuple(child for child, _ in combo)
                nested = [c for _, sub in combo for c in sub]
                yield Part(op_type, matcher, inputs), choices + optional + nested


def _arity(op_type: str, matcher: OpMatcher) -> tuple[int, int]:
    """How many inputs a realization of ``op_type`` may be given: the matcher's range, cut
    to what the op's ONNX schema allows (ops of other domains keep the matcher's range)."""
    low, high = matcher.min_inputs, len(matcher.inputs)
    if "::" not in op_type and onnx.defs.has(op_type):
        schema = onnx.defs.get_schema(op_type)
        low, high = max(low, schema.min_input), min(high, schema.max_input)
    if low > high:
        raise PluginError(f"op({op_type!r}) asks for at least {matcher.min_inputs} inputs, "
                          f"more than ONNX's {op_type} takes")
    return low, high


def _input_param(matcher: OpMatcher, op_type: str, index: int, label: str | None,
                 names: _Names) -> str:
    bound = _first_leaf_label(matcher.inputs[index])
    if bound:
        return names.of(matcher.inputs[index], bound)
    input_name = f"input{index}"
    if "::" not in op_type and onnx.defs.has(op_type):
        formal = onnx.defs.get_schema(op_type).inputs
        if index < len(formal):
            input_name = formal[index].name
    return names.of(matcher.inputs[index], f"{label or op_type.lower()}.{input_name}")


def _first_leaf_label(matcher: Matcher) -> str | None:
    """The label of the value an input binds: its own when it is a leaf, else that of the
    first labelled leaf below it (``bias`` in ``DequantizeLinear(const(label="bias"))``)."""
    if isinstance(matcher, (Wildcard, Const)):
        return matcher.label
    children: tuple = ()
    if isinstance(matcher, OpMatcher):
        children = matcher.inputs
    elif isinstance(matcher, Optional):
        children = (matcher.op,)
    elif isinstance(matcher, Alt):
        children = matcher.options
    return next(filter(None, (_first_leaf_label(c) for c in children)), None)


def pick(found: list[Realization], allowed: dict[str, list] | None = None
         ) -> tuple[Realization, list[Realization]]:
    """The base realization and one variation per other value of each structural parameter.

    The base is the fullest realization (most ops and inputs) whose values ``allowed``
    permits (a parameter it does not name may take any value); each variation takes one
    other value of one parameter and differs from the base in as few parameters as possible.
    Realizations with a value ``allowed`` leaves out are returned too, after the others, for
    the kit to expect a decline; each parameter value appears in at least one realization."""
    allowed = allowed or {}

    def inside(r: Realization) -> bool:
        return all(v in allowed[k] for k, v in r.choices if k in allowed)

    candidates = [r for r in found if inside(r)] or found
    base = max(candidates, key=lambda r: (r.size(), -found.index(r)))
    chosen = [base]
    covered = set(base.choices)
    ordered = sorted(found, key=lambda r: (not inside(r), _distance(r, base), found.index(r)))
    for realization in ordered:
        if any(choice not in covered for choice in realization.choices):
            chosen.append(realization)
            covered |= set(realization.choices)
    return base, chosen[1:]


def _distance(a: Realization, b: Realization) -> int:
    pa, pb = a.params, b.params
    return sum(pa.get(k) != pb.get(k) for k in set(pa) | set(pb))


def is_composite(found: list[Realization]) -> bool:
    """Whether the pattern matches more than one op in some realization."""
    return any(len(list(r.root.parts())) > 1 for r in found)


__all__ = ["Leaf", "Part", "Realization", "is_composite", "pick", "realizations"]
