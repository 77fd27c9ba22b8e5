"""ONNX's node test corpus on cpu_llvm.

Every case is compiled with cpu_llvm, which takes what it has kernels for; the reference host
runs what it declines (with the reason its check gives). A case passes when its outputs match
the corpus. Every op type `byoc ops` lists must pass at least 95% of the cases that use it, and
no case may fail outright. Two floors only rise: the cases that pass, and the cases cpu_llvm
runs entirely by itself.
"""

from __future__ import annotations

import pytest

from byoc.conformance.corpus_results import (
    FAIL,
    PASS,
    format_report,
    load_cases,
    run_case,
    summarize,
    supported_op_types,
)

MINIMUM_RATE = 0.95
PASSED_FLOOR = 1626  # cases whose outputs match; only ever rises
CLAIMED_FLOOR = 1229  # cases whose every node ran on cpu_llvm; only ever rises


@pytest.fixture(scope="module")
def cpu_llvm_results():
    return [run_case(case, ["cpu_llvm"]) for case in load_cases()]


def test_every_listed_op_passes_its_corpus_cases_on_cpu_llvm(cpu_llvm_results):
    summaries = summarize(cpu_llvm_results, supported_op_types())
    report = format_report("cpu_llvm", summaries, MINIMUM_RATE)
    print(report)
    failures = [r for r in cpu_llvm_results if r.status == FAIL]
    assert not failures, report
    low = [op for op, s in summaries.items() if s.rate < MINIMUM_RATE]
    assert not low, report


def test_cpu_llvm_floors(cpu_llvm_results):
    passed = [r for r in cpu_llvm_results if r.status == PASS]
    claimed = [r for r in passed if r.hosts == {"cpu_llvm"}]
    print(f"cpu_llvm node corpus: {len(passed)} pass, {len(claimed)} of them entirely on "
          f"cpu_llvm")
    assert len(passed) >= PASSED_FLOOR, f"{len(passed)} cases pass; the floor is {PASSED_FLOOR}"
    assert len(claimed) >= CLAIMED_FLOOR, (f"{len(claimed)} cases run entirely on cpu_llvm; "
                                           f"the floor is {CLAIMED_FLOOR}")
