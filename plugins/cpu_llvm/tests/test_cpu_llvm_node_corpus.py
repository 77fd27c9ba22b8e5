"""ONNX's node test corpus on cpu_llvm.

Every in-scope case (but the training-mode ones the reference skips too) is compiled with
cpu_llvm. A case counts as passing when every node ran
on cpu_llvm and the outputs match the corpus; a case where cpu_llvm declines a node (with the
reason its check gives) runs on the reference instead and does not count; a case cpu_llvm
claims entirely but gets wrong is a failure. The floor on passing cases only rises.
"""

from __future__ import annotations

from onnx.backend.test.runner import Runner, _normalize_tensor

from byoc.backend import ByocBackend
from byoc.errors import ByocError
from byoc.testing import TRAINING_MODE_CASES, node_corpus

FLOOR = 699


def run_case(case) -> tuple[str, str]:
    """("pass" | "declined" | "fail", detail) for one corpus case."""
    rep = ByocBackend.prepare(case.model, plugins=["cpu_llvm"])
    for inputs, expected in case.data_sets:
        try:
            outputs = rep.run([_normalize_tensor(x) for x in inputs])
        except ByocError as exc:
            return "fail", f"{type(exc).__name__}: {exc}"
        compiled = rep.compiled or next(iter(rep._specialized.values()))[0]
        elsewhere = [e for e in compiled.plan.explanations.values() if e.plugin != "cpu_llvm"]
        if elsewhere or compiled.fallbacks:
            reasons = {r for e in elsewhere for r in e.reasons.get("cpu_llvm", [])}
            return "declined", "; ".join(sorted(reasons | set(compiled.fallbacks)))
        try:
            Runner.assert_similar_outputs([_normalize_tensor(e) for e in expected],
                                          list(outputs), rtol=case.rtol, atol=case.atol)
        except AssertionError as exc:
            return "fail", str(exc).strip().splitlines()[0]
    return "pass", ""


def test_node_corpus_on_cpu_llvm():
    results = {case.name: run_case(case) for case in node_corpus()
               if case.name not in TRAINING_MODE_CASES}
    failures = {name: detail for name, (kind, detail) in results.items() if kind == "fail"}
    passed = sum(kind == "pass" for kind, _ in results.values())
    declined = sum(kind == "declined" for kind, _ in results.values())
    print(f"cpu_llvm node corpus: {passed} pass, {declined} declined, {len(failures)} fail")
    assert not failures, "\n".join(f"{n}: {d}" for n, d in sorted(failures.items()))
    assert passed >= FLOOR, f"{passed} corpus cases pass on cpu_llvm; the floor is {FLOOR}"
