"""ONNX's node test corpus through byoc.backend on the reference interpreter (plugins have
their own corpus tests).

Every case whose ops byoc supports runs, except the skips, each with its reason, and must
pass. Every op type `byoc ops` lists passes at least 95% of the cases that use it, and the
count of passing cases has a floor that only rises. Each case runs once: its result
(:func:`byoc.conformance.corpus_results.run_case`, which compares outputs with onnx's runner)
is kept for the per-op rates and the floor. On failure (and with ``-s`` always) the per-op
report lists the op types below the rate and every case that did not pass, with its reason.
"""

from __future__ import annotations

import functools
import unittest

import onnx.backend.test
import pytest

from byoc.backend import ByocBackend
from byoc.conformance.corpus_results import (
    PASS,
    CaseResult,
    format_report,
    load_cases,
    run_case,
    summarize,
    supported_op_types,
)
from byoc.testing import CORPUS_ERRATA, CORPUS_SKIPS, in_node_corpus_scope

MINIMUM_RATE = 0.95
FLOOR = 1626  # cases that pass on the reference; only ever rises

# Cases byoc does not run or whose expected outputs are wrong, with the reason for each.
SKIPS: dict[str, str] = {**CORPUS_SKIPS, **CORPUS_ERRATA}

CASES = {case.name: case for case in load_cases()}
IN_SCOPE = [name for name, case in CASES.items() if in_node_corpus_scope(case)]
RUN = [name for name in IN_SCOPE if name not in SKIPS]


@functools.cache
def reference_result(name: str) -> CaseResult:
    return run_case(CASES[name], ())


@pytest.mark.parametrize("name", RUN)
def test_case_passes_on_the_reference(name):
    result = reference_result(name)
    assert result.status == PASS, f"{name} [{result.status}]: {result.reason}"


def test_every_skip_names_an_in_scope_case_and_gives_a_reason():
    stale = sorted(set(SKIPS) - set(IN_SCOPE))
    assert not stale, f"skips for cases that are not in scope: {stale}"
    assert all(reason.strip() for reason in SKIPS.values())


def test_every_listed_op_passes_its_corpus_cases_on_the_reference():
    summaries = summarize(map(reference_result, CASES), supported_op_types())
    report = format_report("reference", summaries, MINIMUM_RATE)
    print(report)
    low = [op for op, s in summaries.items() if s.rate < MINIMUM_RATE]
    assert not low, report


def test_reference_passing_floor():
    passed = sum(reference_result(name).status == PASS for name in CASES)
    assert passed >= FLOOR, (f"{passed} corpus cases pass on the reference; the floor is "
                             f"{FLOOR}. Do not skip more cases than before.")


class ReferenceBackend(ByocBackend):
    """byoc's ONNX backend on the reference interpreter alone (no default plugins)."""

    @classmethod
    def prepare(cls, model, device="CPU", **kwargs):
        return super().prepare(model, device, default_plugins=(), **kwargs)


RUNNER_SAMPLE = ("test_relu", "test_conv_with_strides_padding", "test_gemm_default_matrix_bias")


def test_onnx_backend_test_runner_drives_byoc():
    """onnx's own runner (``BackendTest``, which also asks for a device) runs byoc.backend; a
    few cases show it, since the runs above already cover every case."""
    backend_test = onnx.backend.test.BackendTest(ReferenceBackend, __name__)
    for name in RUNNER_SAMPLE:
        backend_test.include(f"^{name}_cpu$")
    result = unittest.TestResult()
    backend_test.test_suite.run(result)
    assert result.wasSuccessful(), result.failures + result.errors
    assert result.testsRun - len(result.skipped) == len(RUNNER_SAMPLE)
