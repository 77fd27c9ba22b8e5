"""onnx's node test corpus, run on a plugin selection and summed up per op type.

The corpus (the node tests shipped in the installed onnx wheel) holds, for each ONNX op, small
models with inputs and expected outputs. This module runs every case through byoc's ONNX
backend (:mod:`byoc.backend`) on the given plugins and says, for every op type byoc supports,
how many of the cases that use it pass, and why each of the others does not.

A case counts for every op type it uses; cases using an op byoc does not support at all count
for none (they are outside what `byoc ops` lists). A case byoc cannot run for another reason
(an element type or opset it does not import, a training-mode case it skips) counts as not
passing, with that reason: the rate is honest about what a user of the op meets.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Iterable, Mapping, Sequence

PASS, FAIL, NOT_RUN, ERRATUM = "pass", "fail", "not run", "erratum"


@dataclass(frozen=True)
class CaseResult:
    """The outcome of one corpus case: ``status`` is PASS, FAIL, NOT_RUN or ERRATUM (the
    case's expected output contradicts the specification), ``reason`` says why it did not
    pass, ``hosts`` names the plugins that ran its nodes."""

    name: str
    ops: frozenset[str]
    status: str
    reason: str = ""
    hosts: frozenset[str] = frozenset()


@dataclass
class OpSummary:
    """The cases of one op type: how many passed, the others with their reasons, and the
    errata (left out of the rate)."""

    op_type: str
    passed: int = 0
    others: list[CaseResult] = field(default_factory=list)
    errata: list[CaseResult] = field(default_factory=list)

    @property
    def total(self) -> int:
        return self.passed + len(self.others)

    @property
    def rate(self) -> float:
        return self.passed / self.total if self.total else 1.0


def load_cases() -> list:
    """Every case of onnx's node test corpus, sorted by name."""
    from onnx.backend.test.loader import load_model_tests

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # onnx's corpus generators warn about overflows
        return sorted(load_model_tests(kind="node"), key=lambda c: c.name)


def case_ops(case) -> frozenset[str]:
    return frozenset(node.op_type for node in case.model.graph.node)


def supported_op_types() -> set[str]:
    from byoc.core.interpreter import registered_ops

    return {op for domain, op in registered_ops() if not domain}


def run_case(case, plugins: Sequence[str]) -> CaseResult:
    """Run one case on ``plugins`` (an empty selection: the reference interpreter alone)."""
    from onnx.backend.test.runner import Runner, _normalize_tensor

    from byoc.backend import ByocBackend
    from byoc.errors import ByocError
    from byoc.testing import CORPUS_ERRATA, CORPUS_SKIPS, out_of_corpus_scope

    ops = case_ops(case)
    if case.name in CORPUS_ERRATA:
        return CaseResult(case.name, ops, ERRATUM, CORPUS_ERRATA[case.name])
    if case.name in CORPUS_SKIPS:
        return CaseResult(case.name, ops, NOT_RUN, CORPUS_SKIPS[case.name])
    reason = out_of_corpus_scope(case)
    if reason is not None:
        return CaseResult(case.name, ops, NOT_RUN, reason)
    options = {"plugins": list(plugins)} if plugins else {"default_plugins": ()}
    hosts: set[str] = set()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            rep = ByocBackend.prepare(case.model, **options)
            for inputs, expected in case.data_sets:
                outputs = rep.run([_normalize_tensor(x) for x in inputs])
                for compiled in rep.compiled_models():
                    hosts |= {e.plugin for e in compiled.plan.explanations.values()}
                Runner.assert_similar_outputs([_normalize_tensor(e) for e in expected],
                                              list(outputs), rtol=case.rtol, atol=case.atol)
    except ByocError as exc:
        return CaseResult(case.name, ops, FAIL, f"{type(exc).__name__}: {_first_line(exc)}",
                          frozenset(hosts))
    except AssertionError as exc:
        return CaseResult(case.name, ops, FAIL, f"outputs differ: {_first_line(exc)}",
                          frozenset(hosts))
    except Exception as exc:  # a bug in byoc: reported as a failure of this case
        return CaseResult(case.name, ops, FAIL,
                          f"internal error {type(exc).__name__}: {_first_line(exc)}",
                          frozenset(hosts))
    return CaseResult(case.name, ops, PASS, "", frozenset(hosts))


def summarize(results: Iterable[CaseResult], op_types: Iterable[str]) -> dict[str, OpSummary]:
    """Per op type of ``op_types``: the results of the cases that use it, leaving out cases
    that also use an op outside ``op_types``."""
    listed = set(op_types)
    summaries = {op: OpSummary(op) for op in sorted(listed)}
    for result in results:
        if not result.ops <= listed:
            continue
        for op in result.ops:
            if result.status == PASS:
                summaries[op].passed += 1
            elif result.status == ERRATUM:
                summaries[op].errata.append(result)
            else:
                summaries[op].others.append(result)
    return summaries


def format_report(title: str, summaries: Mapping[str, OpSummary], minimum_rate: float) -> str:
    """A table of the op types below ``minimum_rate``, then every case that did not pass with
    its reason."""
    results = {r.name: r for s in summaries.values() for r in s.others}
    passed = sum(s.passed for s in summaries.values())
    total = sum(s.total for s in summaries.values())
    lines = [f"{title}: {len(summaries)} op types, {passed} of {total} (op, case) pairs pass"]
    low = [s for s in summaries.values() if s.rate < minimum_rate]
    if low:
        lines.append(f"op types below {minimum_rate:.0%}:")
        lines += [f"  {s.op_type}: {s.passed}/{s.total}" for s in low]
    if results:
        lines.append(f"cases that do not pass ({len(results)}):")
        lines += [f"  {name} [{r.status}]: {r.reason}" for name, r in sorted(results.items())]
    errata = {r.name: r for s in summaries.values() for r in s.errata}
    if errata:
        lines.append(f"errata, left out of the rates ({len(errata)}):")
        lines += [f"  {name}: {r.reason}" for name, r in sorted(errata.items())]
    return "\n".join(lines)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


__all__ = ["CaseResult", "ERRATUM", "FAIL", "NOT_RUN", "OpSummary", "PASS", "format_report",
           "load_cases", "run_case", "summarize", "supported_op_types"]
