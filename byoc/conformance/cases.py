"""From a plugin's patterns and declared limits to the conformance cases the kit runs.

A pattern with structure (more than one op, or one op whose inputs it spells out) is built
from its own matcher tree (:mod:`byoc.conformance.structure`, :mod:`~byoc.conformance.composite`):
per anchor op (the op a family builds: the Conv of a QDQ Conv layer, the Add of Add -> Relu),
the case's parameters are the family's, those of the ops built around it (``x_dtype``,
``per_channel``) and the structural ones (``activation``, ``bias``, ...). A pattern of one op
with free inputs goes to the family that builds the op, or to onnx's node test corpus when
none does.

For each (family, op) the cases are:

- ``base``: every parameter at its first accepted value (and the fullest structure);
- one case per other accepted value of each parameter, the rest at the base;
- one case per other structure the pattern matches (each optional part absent, each other
  op type or alternative), at the base values and at a mix of accepted values;
- ``mix0``..: a few seeded combinations of accepted values;
- ``outside``: for each parameter the plugin's limits name, each probe value they leave out
  (and each structure with a value the limits leave out).

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

from byoc.conformance import composite, corpus, int8_families  # noqa: F401  (families)
from byoc.conformance.families import FAMILIES, Built, Family, Param, family_of_op
from byoc.conformance.structure import Realization, is_composite, pick, realizations
from byoc.errors import PluginError
from byoc.partition.matchers import Alt, Matcher, OpMatcher, Optional
from byoc.partition.patterns import Pattern
from byoc.plugins.api import PatternLimits

ACCEPT, DECLINE, EITHER = "accept", "decline", "either"
MIXES = 3
SAMPLES = 4

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
    # A composite pattern's case: the subgraph built, and the pattern's other realizations
    # (the kit builds a neighbour without one optional op to name the op that is wrong).
    realization: Realization | None = None
    siblings: list[Realization] = field(default_factory=list, repr=False)
    known_declines: tuple[str, ...] = ()   # PatternLimits.known_declines

    @property
    def label(self) -> str:
        return f"{self.pattern}[{self.name}]"

    def describe(self) -> str:
        values = ", ".join(f"{k}={v}" for k, v in self.values.items())
        what = self.realization.describe() if self.realization else self.op
        return f"pattern {self.pattern!r}, case {self.name!r} ({what}: {values})"

    def build(self) -> Built:
        """The case's model, with inputs seeded by the pattern and case names."""
        rng = np.random.default_rng(zlib.crc32(self.label.encode()))
        if self.realization is not None:
            return composite.build(self.realization, self.family, dict(self.values), rng)
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
    """The families that build models for a pattern of one op with free inputs (or for any
    pattern whose limits name a ``family``), each with the ops it builds."""
    roots = pattern.root.root_types()
    if family is not None:
        if family not in FAMILIES:
            raise PluginError(f"PatternLimits for {pattern.name!r} names the family {family!r}; "
                              f"the kit has {', '.join(sorted(FAMILIES))}")
        chosen = FAMILIES[family]
        return [(chosen, sorted(matcher_ops(pattern.root) & set(chosen.ops)) or sorted(roots))]
    grouped: dict[str, tuple[Family, list[str]]] = {}
    for op in sorted(roots):
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
    if limits is None or limits.family is None:
        found = realizations(pattern.root)
        # A single op whose inputs the pattern spells out is built from its structure too
        # when a family builds the op (which inputs are constants is the pattern's to say).
        if is_composite(found) or any(not r.root.free and family_of_op(r.root.op_type)
                                      for r in found):
            return _composite_cases(plugin, pattern.name, found, limits)
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
                              rtol, atol, limits.quantized_steps if limits else 0, varied,
                              known_declines=limits.known_declines if limits else ())

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


def _composite_cases(plugin: str, pattern: str, found: list[Realization],
                     limits: PatternLimits | None) -> list[Case]:
    """Cases of a pattern with structure: per anchor op, the fullest realization at the base
    values, each family or extra parameter varied from there, each other realization the
    structure picks at the base values, mixes, and the probes outside the declared limits."""
    declared = dict(limits.accepts) if limits else {}
    groups: dict[str, list[Realization]] = {}
    for realization in found:
        groups.setdefault(composite.anchor_of(realization).op_type, []).append(realization)
    known: set[str] = set()
    cases: list[Case] = []
    for op, group in groups.items():
        family = family_of_op(op)
        fixed = set().union(*(composite.fixed_params(family, composite.anchor_of(r))
                              for r in group))
        table: dict[str, Param] = {p: family.param_table(op)[p] for p in family.relevant(op)
                                   if p not in fixed}
        for realization in group:
            table.update(composite.extra_params(realization))
        structural = {k for r in group for k, _ in r.choices}
        known |= set(table) | structural
        allowed = {k: list(declared[k]) for k in structural if k in declared}
        base_realization, variations = pick(group, allowed)
        cases += _structure_cases(plugin, pattern, family, op, table, declared, limits,
                                  base_realization, variations, allowed, found)
    unknown = sorted(set(declared) - known)
    if unknown:
        raise PluginError(f"PatternLimits for {pattern!r} names {', '.join(unknown)}, which "
                          f"the kit's builders for it do not take; they take "
                          f"{', '.join(sorted(known)) or 'no parameters'}")
    return cases


def _structure_cases(plugin: str, pattern: str, family: Family, op: str,
                     table: dict[str, Param], declared: dict, limits: PatternLimits | None,
                     base_realization: Realization, variations: list[Realization],
                     allowed: dict[str, list], found: list[Realization]) -> list[Case]:
    accepted = {p: _sample(declared[p]) if p in declared else list(table[p].default)
                for p in table}
    base = {p: values[0] for p, values in accepted.items()}
    others = EITHER if limits is None else ACCEPT
    rtol = limits.rtol if limits and limits.rtol is not None else family.rtol
    atol = limits.atol if limits and limits.atol is not None else family.atol
    cases: dict[tuple, Case] = {}

    def add(name: str, realization: Realization, varied: dict, expect: str) -> None:
        values = {**base, **varied, **realization.params}
        key = (realization.describe(), tuple(sorted((p, repr(v)) for p, v in values.items())))
        if key not in cases:
            cases[key] = Case(plugin, pattern, family, op, values, expect, f"{op}-{name}",
                              rtol, atol, limits.quantized_steps if limits else 0,
                              {**varied, **_differences(realization, base_realization)},
                              realization, found,
                              known_declines=limits.known_declines if limits else ())

    add("base", base_realization, {}, ACCEPT)
    for param, values in accepted.items():
        for value in values[1:]:
            add(f"{param}={value}", base_realization, {param: value}, others)
    rng = np.random.default_rng(zlib.crc32(f"{pattern}/{op}".encode()))
    varied = sum(len(v) > 1 for v in accepted.values()) > 0
    for realization in variations:
        inside = all(v in allowed[k] for k, v in realization.choices if k in allowed)
        changed = _differences(realization, base_realization)
        label = ",".join(f"{k}={v}" for k, v in changed.items()) or realization.describe()
        add(label, realization, {}, others if inside else DECLINE)
        if varied:  # the same structure at other accepted values (the base may be tiny)
            mix = {p: v[rng.integers(len(v))] for p, v in accepted.items()}
            add(f"{label},mix", realization, mix, others if inside else DECLINE)
    if sum(len(v) > 1 for v in accepted.values()) > 2:
        for i in range(MIXES):
            mix = {p: v[rng.integers(len(v))] for p, v in accepted.items()}
            add(f"mix{i}", base_realization, mix, others)
    for param in table:
        if param in declared:
            for value in table[param].probes:
                if value not in list(declared[param]):
                    add(f"outside-{param}={value}", base_realization, {param: value}, DECLINE)
    return list(cases.values())


def _differences(realization: Realization, base: Realization) -> dict[str, Any]:
    """The structural parameters where ``realization`` differs from ``base``."""
    mine, theirs = realization.params, base.params
    return {k: v for k, v in mine.items() if theirs.get(k, object()) != v}
