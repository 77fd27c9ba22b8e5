"""Running one conformance case: compile with the plugin, check the plan, compare outputs."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from byoc.conformance.cases import ACCEPT, DECLINE, Case
from byoc.conformance.families import Built
from byoc.errors import ByocError
from byoc.partition.patterns import find_matches
from byoc.plugins.manager import PluginManager, default_manager


class ConformanceFailure(Exception):
    """A plugin broke the conformance contract; the message names the pattern and case."""


class NotApplicable(Exception):
    """The case cannot say anything about the pattern (e.g. byoc's passes removed the
    target node before partitioning)."""


def run_case(case: Case, built: Built | None = None,
             manager: PluginManager | None = None) -> str:
    """Run ``case``; return what happened ("taken" or "declined: <reasons>"). Raises
    ConformanceFailure when the plugin breaks the contract, NotApplicable when the case
    does not reach the pattern."""
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
        compiled = _compile(case, lambda: byoc.compile(
            built.model, plugins=[case.plugin], default_plugins=(), manager=manager))
    for warning in caught:
        if issubclass(warning.category, FallbackWarning):
            raise ConformanceFailure(f"{case.describe()}: a partition the plugin took fell back "
                                     f"to the host: {warning.message}")
    outcome = _check_plan(case, compiled, built.target, manager or default_manager())
    got = _run(case, compiled, built.inputs, "the plugin's compiled model")
    want = reference.run(built.inputs)
    for name, expected in want.items():
        _compare(case, name, got.get(name), expected, built.steps.get(name))
    return outcome


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


def _check_plan(case: Case, compiled, target: str, manager: PluginManager) -> str:
    plan = compiled.plan
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
        return "taken"
    reasons = _decline_reasons(case, compiled, explanation, manager)
    if case.expect == ACCEPT:
        where = (f"{explanation.plugin} ({explanation.pattern})" if explanation.pattern
                 else explanation.plugin)
        raise ConformanceFailure(
            f"{case.describe()}: the pattern did not take a case inside its declared limits; "
            f"the {case.op} node went to {where}. Reasons given: {'; '.join(reasons)}")
    return "declined: " + "; ".join(reasons)


def _decline_reasons(case: Case, compiled, explanation, manager: PluginManager) -> list[str]:
    """Why the pattern left the target node: the plan's reasons for the plugin (when the
    plugin did not take the node at all) and the pattern's own declines in the graph (a QDQ
    pattern declines at its QuantizeLinear, not at the layer; roots before the target say
    nothing about it). Empty or missing reasons are a failure."""
    patterns = [p for p in manager.call(case.plugin, "byoc_partition_patterns") or []
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
