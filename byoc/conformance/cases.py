"""From a plugin's patterns and declared limits to the conformance cases the kit runs.

Which family builds a pattern's models comes from the op types its matcher can reach: a
pattern rooted at QuantizeLinear is a QDQ layer of the Conv, MatMul/Gemm, Add, pooling or
Flatten inside it;
otherwise each root op type goes to the family that builds it (a Conv -> Add -> Relu pattern
is built as a Conv), and an op type no family builds goes to onnx's node test corpus.

For each (family, op) the cases are:

- ``base``: every parameter at its first accepted value;
- one case per other accepted value of each parameter, the rest at the base;
- ``mix0``..: a few seeded combinations of accepted values;
- ``outside``: for each parameter the plugin's limits name, each probe value they leave out.

With a :class:`~byoc.plugins.api.PatternLimits` for the pattern, accepted cases must be taken
and outside cases declined. Without one, only the base case of a built family must be taken;
the others (and every corpus case) may go either way, but what is taken must be right and what
is declined must say why.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field
from typing import Any, Iterable

import numpy as np

from byoc.conformance import corpus, int8_families  # noqa: F401  (they register families)
from byoc.conformance.families import FAMILIES, Built, Family, family_of_op
from byoc.errors import PluginError
from byoc.partition.matchers import Alt, Matcher, OpMatcher, Optional
from byoc.partition.patterns import Pattern
from byoc.plugins.api import PatternLimits

ACCEPT, DECLINE, EITHER = "accept", "decline", "either"
MIXES = 3
SAMPLES = 4

_QDQ_FAMILIES = (("Conv", "qdq_conv"), ("MatMul", "qdq_matmul"), ("Gemm", "qdq_matmul"),
                 ("Add", "qdq_add"), ("MaxPool", "qdq_window"), ("AveragePool", "qdq_window"),
                 ("GlobalAveragePool", "qdq_window"), ("GlobalMaxPool", "qdq_window"),
                 ("Flatten", "qdq_window"))


@dataclass
class Case:
    """One model to compile with the plugin: ``expect`` is what the pattern must do with its
    target node (accept, decline, or either as long as it is right and explained)."""

    plugin: str
    pattern: str
    family: Family
    op: str
    values: dict[str, Any]
    expect: str
    name: str
    rtol: float
    atol: float
    quantized_steps: int = 0
    varied: dict[str, Any] = field(default_factory=dict)

    @property
    def label(self) -> str:
        return f"{self.pattern}[{self.name}]"

    def describe(self) -> str:
        values = ", ".join(f"{k}={v}" for k, v in self.values.items())
        return f"pattern {self.pattern!r}, case {self.name!r} ({self.op}: {values})"

    def build(self) -> Built:
        """The case's model, with inputs seeded by the pattern and case names."""
        rng = np.random.default_rng(zlib.crc32(self.label.encode()))
        return self.family.build(self.op, dict(self.values), rng)


def matcher_ops(matcher: Matcher) -> set[str]:
    """Every op type a matcher can reach, its root included."""
    if isinstance(matcher, OpMatcher):
        return set(matcher.op_types).union(*(matcher_ops(m) for m in matcher.inputs))
    if isinstance(matcher, Alt):
        return set().union(*(matcher_ops(m) for m in matcher.options))
    if isinstance(matcher, Optional):
        return matcher_ops(matcher.op)
    return set()


def families_of(pattern: Pattern, family: str | None = None) -> list[tuple[Family, list[str]]]:
    """The families that build models for ``pattern``, each with the ops it builds."""
    reached = matcher_ops(pattern.root)
    roots = pattern.root.root_types()
    if family is not None:
        if family not in FAMILIES:
            raise PluginError(f"PatternLimits for {pattern.name!r} names the family {family!r}; "
                              f"the kit has {', '.join(sorted(FAMILIES))}")
        chosen = FAMILIES[family]
        ops = sorted(reached & set(chosen.ops)) or sorted(roots)
        return [(chosen, ops)]
    if roots == {"QuantizeLinear"}:
        for op, name in _QDQ_FAMILIES:
            if op in reached:
                qdq = FAMILIES[name]
                return [(qdq, sorted(reached & set(qdq.ops)))]
    main = [op for op in reached if (f := family_of_op(op)) and f.name in
            ("conv", "matmul", "pool", "qlinear")]
    ops = main or sorted(roots)
    grouped: dict[str, tuple[Family, list[str]]] = {}
    for op in sorted(ops):
        chosen = family_of_op(op) or FAMILIES["onnx_node_tests"]
        grouped.setdefault(chosen.name, (chosen, []))[1].append(op)
    return list(grouped.values())


def _sample(values: Iterable) -> list:
    """Up to SAMPLES values: the first, the last and evenly spaced ones between."""
    values = list(values)
    if len(values) <= SAMPLES:
        return values
    picks = np.linspace(0, len(values) - 1, SAMPLES).round().astype(int)
    return [values[i] for i in sorted(set(picks))]


def pattern_cases(plugin: str, pattern: Pattern, limits: PatternLimits | None) -> list[Case]:
    """The cases for one pattern (empty when its limits skip it)."""
    if limits is not None and limits.skip:
        return []
    families = families_of(pattern, limits.family if limits else None)
    declared = dict(limits.accepts) if limits else {}
    known = {p for f, ops in families for op in ops for p in f.param_table(op)}
    unknown = sorted(set(declared) - known)
    if unknown:
        raise PluginError(f"PatternLimits for {pattern.name!r} names {', '.join(unknown)}, "
                          f"which the kit's builders for it do not take; they take "
                          f"{', '.join(sorted(known)) or 'no parameters'}")
    cases: list[Case] = []
    for family, ops in families:
        for op in ops:
            cases += _op_cases(plugin, pattern.name, family, op, declared, limits)
    return cases


def _op_cases(plugin: str, pattern: str, family: Family, op: str, declared: dict,
              limits: PatternLimits | None) -> list[Case]:
    table = family.param_table(op)
    if family.name == "onnx_node_tests" and not table:
        raise PluginError(
            f"the conformance kit cannot build a model for pattern {pattern!r}: no family of "
            f"the kit builds {op} and onnx's node corpus has no case of it (a plugin's own "
            f"op, or an op byoc does not support); give the pattern PatternLimits(skip=...) "
            f"with the reason, and check it with the plugin's own tests")
    relevant = [p for p in family.relevant(op) if p in table]
    accepted = {p: _sample(declared[p]) if p in declared else list(table[p].default)
                for p in relevant}
    base = {p: values[0] for p, values in accepted.items()}
    corpus_family = family.name == "onnx_node_tests"
    in_limits = EITHER if limits is None and corpus_family else ACCEPT
    others = EITHER if limits is None else ACCEPT
    rtol = limits.rtol if limits and limits.rtol is not None else family.rtol
    atol = limits.atol if limits and limits.atol is not None else family.atol
    cases: dict[tuple, Case] = {}

    def add(name: str, varied: dict, expect: str) -> None:
        values = {**base, **varied}
        key = tuple(sorted((p, repr(v)) for p, v in values.items()))
        if key not in cases:
            cases[key] = Case(plugin, pattern, family, op, values, expect, f"{op}-{name}",
                              rtol, atol, limits.quantized_steps if limits else 0, varied)

    add("base", {}, in_limits)
    for param, values in accepted.items():
        for value in values[1:]:
            add(f"{param}={value}", {param: value}, others)
    rng = np.random.default_rng(zlib.crc32(f"{pattern}/{op}".encode()))
    if sum(len(v) > 1 for v in accepted.values()) > 2:
        for i in range(MIXES):
            mix = {p: v[rng.integers(len(v))] for p, v in accepted.items()}
            add(f"mix{i}", mix, others)
    for param in relevant:
        if param in declared and not corpus_family:
            for value in table[param].probes:
                if value not in list(declared[param]):
                    add(f"outside-{param}={value}", {param: value}, DECLINE)
    return list(cases.values())
