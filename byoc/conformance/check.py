"""Running one conformance case: compile with the plugin, check the plan, compare outputs."""

from __future__ import annotations

import dataclasses
import warnings
from typing import Any

import numpy as np

from byoc.conformance.cases import ACCEPT, DECLINE, Case
from byoc.conformance.families import Built, Unbuildable
from byoc.errors import ByocError
from byoc.partition.patterns import find_matches
from byoc.plugins.manager import PluginManager, default_manager
from byoc.plugins.options import default_patterns


class ConformanceFailure(Exception):
    """A plugin broke the conformance contract; the message names the pattern and case."""


class NotApplicable(Exception):
    """The case cannot say anything about the pattern (e.g. byoc's passes removed the
    target node before partitioning)."""


def run_case(case: Case, built: Built | None = None,
             manager: PluginManager | None = None, localize: bool = True) -> str:
    """Run ``case``; return what happened ("taken" or "declined: <reasons>"). Raises
    ConformanceFailure when the plugin breaks the contract, NotApplicable when the case
    does not reach the pattern. When a composite's output is wrong and ``localize`` is set,
    the failure names the op that is wrong where the kit can tell."""
    import byoc
    from byoc.pipeline import FallbackWarning
    from byoc.testing import compile_reference

    built = built or case.build()
    try:
        reference = compile_reference(built.model)
    except ByocError as exc:
        raise NotApplicable(f"byoc cannot compile this model even on the reference "
                            f"interpreter: {exc}") from exc
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", FallbackWarning)
        # by priority: the kit checks what the plugin claims, wherever it is estimated fastest
        compiled = _compile(case, lambda: byoc.compile(
            built.model, plugins=[case.plugin], default_plugins=(), manager=manager,
            placement="priority"))
    for warning in caught:
        if issubclass(warning.category, FallbackWarning):
            raise ConformanceFailure(f"{case.describe()}: a partition the plugin took fell back "
                                     f"to the host: {warning.message}")
    outcome = _check_plan(case, compiled, built, manager or default_manager())
    got = _run(case, compiled, built.inputs, "the plugin's compiled model")
    want = reference.run(built.inputs)
    try:
        for name, expected in want.items():
            _compare(case, name, got.get(name), expected, built.steps.get(name))
    except ConformanceFailure as exc:
        if case.realization is None or not localize:
            raise
        where = _skipped_ops(case, built, got) or _wrong_op(case, manager)
        raise ConformanceFailure(f"{exc}; {where}") from None
    return outcome


def _skipped_ops(case: Case, built: Built, got: dict[str, np.ndarray]) -> str | None:
    """When the plugin's output equals the reference's value of an op inside the composite,
    the ops after that one are the ones it gets wrong (skipped or miscomputed)."""
    from byoc.core.importer import import_model
    from byoc.core.interpreter import Interpreter

    graph = import_model(built.model)
    values = Interpreter(graph).values(built.inputs)
    by_name = {n.name: n for n in graph.nodes}
    inside = [by_name[name] for name in built.composite if name in by_name]
    for output, array in got.items():
        array = np.asarray(array)
        for position in range(len(inside) - 2, -1, -1):
            node = inside[position]
            value = values.get(node.outputs[0])
            if value is None or value.shape != array.shape or value.dtype != array.dtype:
                continue
            if not np.any(outside_tolerance(array, value, case.rtol, case.atol)):
                after = ", ".join(f"{n.op_type} {n.name!r}" for n in inside[position + 1:])
                return (f"the output {output!r} equals the reference's value of {node.op_type} "
                        f"{node.name!r} inside the composite: what comes after it ({after}) is "
                        f"skipped or computed wrong")
    return None


def _wrong_op(case: Case, manager: PluginManager | None) -> str:
    """Which op of a composite computes wrong: the first optional op (from the root down)
    without which the same case matches the reference."""
    realization = case.realization
    # Optional ops (their op type) that are there, root first, then optional inputs (True):
    # an omitted input can hide a wrong op (no zero point makes a Relu a no-op), not the
    # other way round.
    present = {k: v for k, v in realization.choices if isinstance(v, str)}
    present.update((k, v) for k, v in realization.choices if v is True)
    for key, op_type in present.items():
        absent = None if isinstance(op_type, str) else False
        without = next((r for r in case.siblings if r.params.get(key, "") is absent and all(
            v == realization.params.get(k) for k, v in r.params.items() if k != key)), None)
        if without is None:
            continue
        values = {k: v for k, v in case.values.items() if k not in realization.params}
        neighbour = dataclasses.replace(case, realization=without,
                                        values={**values, **without.params})
        try:
            run_case(neighbour, manager=manager, localize=False)
        except (ConformanceFailure, NotApplicable, Unbuildable):
            continue
        part = f"op is the {op_type} ({key})" if isinstance(op_type, str) else \
            f"part is the optional input {key}"
        return f"the wrong {part}: the same case without it matches the reference"
    ops = " -> ".join(p.op_type for p in realization.root.parts())
    return (f"no optional op alone explains it, so the error is in the composite's fixed ops "
            f"({ops})")


def _compile(case: Case, compile_model) -> Any:
    try:
        return compile_model()
    except Exception as exc:
        raise ConformanceFailure(f"{case.describe()}: compiling failed: {type(exc).__name__}: "
                                 f"{exc}") from exc


def _run(case: Case, compiled, inputs: dict[str, np.ndarray], what: str):
    try:
        return compiled.run(inputs)
    except Exception as exc:
        raise ConformanceFailure(f"{case.describe()}: running {what} failed: "
                                 f"{type(exc).__name__}: {exc}") from exc


def _check_plan(case: Case, compiled, built: Built, manager: PluginManager) -> str:
    plan = compiled.plan
    target = built.target
    explanation = plan.explanations.get(target)
    if explanation is None:
        raise NotApplicable(f"byoc's passes removed the {case.op} node before partitioning, "
                            f"so no plugin ever sees it in this model")
    taken = plan.patterns.get(target) == case.pattern
    if taken:
        if case.expect == DECLINE:
            raise ConformanceFailure(
                f"{case.describe()}: the pattern took a case outside its declared limits "
                f"({_varied(case)}); decline it with a reason, or add the value to the "
                f"pattern's PatternLimits.accepts")
        _check_whole(case, plan, built)
        return "taken"
    reasons = _decline_reasons(case, compiled, explanation, manager)
    known = [r for r in reasons if r.startswith(f"{case.pattern}: ") and
             any(phrase in r for phrase in case.known_declines)]
    if case.expect == ACCEPT and known:
        return "declined, as the plugin's limits say it may: " + "; ".join(known)
    if case.expect == ACCEPT:
        where = (f"{explanation.plugin} ({explanation.pattern})" if explanation.pattern
                 else explanation.plugin)
        raise ConformanceFailure(
            f"{case.describe()}: the pattern did not take a case inside its declared limits; "
            f"the {case.op} node went to {where}. Reasons given: {'; '.join(reasons)}")
    return "declined: " + "; ".join(reasons)


def _check_whole(case: Case, plan, built: Built) -> None:
    """A composite is claimed whole: every node the kit built for it went to the pattern."""
    elsewhere = []
    for name in built.composite:
        explanation = plan.explanations.get(name)
        if explanation is None:
            raise NotApplicable(f"byoc's passes removed node {name!r} of the composite before "
                                f"partitioning, so the pattern never sees it whole")
        if plan.patterns.get(name) != case.pattern:
            where = (f"{explanation.plugin} ({explanation.pattern})" if explanation.pattern
                     else explanation.plugin)
            elsewhere.append(f"{name} ({explanation.op}) went to {where}")
    if elsewhere:
        raise ConformanceFailure(f"{case.describe()}: the pattern took the composite's root "
                                 f"but not all of it: {'; '.join(elsewhere)}")


def _decline_reasons(case: Case, compiled, explanation, manager: PluginManager) -> list[str]:
    """Why the pattern left the target node: the plan's reasons for the plugin (when the
    plugin did not take the node at all) and the pattern's own declines in the graph (a QDQ
    pattern declines at its QuantizeLinear, not at the layer; roots before the target say
    nothing about it). Empty or missing reasons are a failure."""
    patterns = [p for p in default_patterns(manager, case.plugin)
                if p.name == case.pattern]
    after = _downstream(compiled.graph, explanation.node)
    reasons = [f"{d.pattern}: {d.reason}" for result in find_matches(compiled.graph, patterns)
               if id(result.node) in after for d in result.declines]
    if explanation.plugin != case.plugin:
        planned = explanation.reasons.get(case.plugin, [])
        if not planned:
            reasons = []
        reasons += [r for r in planned if r not in reasons]
    if not reasons or not all(isinstance(r, str) and r.strip() for r in reasons):
        raise ConformanceFailure(f"{case.describe()}: the pattern declined the {case.op} node "
                                 f"without a reason (got {reasons!r}); every decline must say "
                                 f"why")
    return reasons


def _downstream(graph, node_name: str) -> set[int]:
    """The ids of the node named ``node_name`` and of every node reading from it."""
    consumers = graph.consumers()
    start = next(n for n in graph.nodes if n.name == node_name)
    seen, todo = {id(start)}, [start]
    while todo:
        for value in filter(None, todo.pop().outputs):
            for reader in consumers.get(value, []):
                if id(reader) not in seen:
                    seen.add(id(reader))
                    todo.append(reader)
    return seen


def _varied(case: Case) -> str:
    return ", ".join(f"{k}={v}" for k, v in case.varied.items()) or "the base values"


def outside_tolerance(got: np.ndarray, want: np.ndarray, rtol: float,
                      atol: float) -> np.ndarray:
    """Where float results miss ``|got - want| <= atol + rtol * |want|``; NaN matches NaN and
    equal infinities match."""
    a, b = got.astype(np.float64), want.astype(np.float64)
    with np.errstate(invalid="ignore"):  # inf - inf: equal infinities pass by a == b
        return ~((np.abs(a - b) <= atol + rtol * np.abs(b)) | (np.isnan(a) & np.isnan(b))
                 | (a == b))


def where_different(bad: np.ndarray, got: np.ndarray, want: np.ndarray, kind: str = "") -> str:
    """``N of M elements [kind]; first at (i, ...): got X, expected Y`` for a mask ``bad``."""
    index = tuple(int(i) for i in np.argwhere(bad)[0])
    kind = f" {kind}" if kind else ""
    return (f"{int(np.count_nonzero(bad))} of {bad.size} elements{kind}; first at {index}: "
            f"got {got[index]!r}, expected {want[index]!r}")


def _compare(case: Case, name: str, got: np.ndarray | None, want: np.ndarray,
             step: float | None) -> None:
    if got is None:
        raise ConformanceFailure(f"{case.describe()}: output {name!r} is missing")
    got, want = np.asarray(got), np.asarray(want)
    if got.dtype != want.dtype or got.shape != want.shape:
        raise ConformanceFailure(f"{case.describe()}: output {name!r} is "
                                 f"{got.dtype}{list(got.shape)}, the reference gives "
                                 f"{want.dtype}{list(want.shape)}")
    a, b = got.astype(np.float64), want.astype(np.float64)
    if step is not None and case.quantized_steps:
        bound = case.quantized_steps * step * (1 + 1e-6)
        bad = ~(np.abs(a - b) <= bound)
        kind = f"by more than {case.quantized_steps} quantization step(s) of {step:g}"
    elif want.dtype.kind in "fc":
        # No result is closer to the reference than its own rounding (float16 has 11 bits).
        eps = float(np.finfo(want.dtype).eps)
        rtol, atol = max(case.rtol, 2 * eps), max(case.atol, eps if eps > 1e-4 else 0.0)
        bad = outside_tolerance(a, b, rtol, atol)
        kind = f"beyond rtol={rtol:g}, atol={atol:g}"
    else:
        bad = got != want
        kind = "(integer and boolean outputs must be equal)"
    if np.any(bad):
        raise ConformanceFailure(
            f"{case.describe()}: output {name!r} differs from the reference interpreter in "
            f"{where_different(bad, got, want, kind)}")
