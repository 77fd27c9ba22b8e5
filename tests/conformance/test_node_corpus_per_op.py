"""Every op type `byoc ops` lists passes at least 95% of the onnx node-corpus cases that use it,
on the reference interpreter; the count of passing cases has a floor that only rises.

On failure (and with ``-s`` always) the report lists the op types below the rate and every case
that did not pass, with its reason.
"""

from __future__ import annotations

import pytest

from byoc.conformance.corpus_results import (PASS, format_report, load_cases, run_case,
                                             summarize, supported_op_types)

MINIMUM_RATE = 0.95
FLOOR = 1626  # passing cases on the reference; only ever rises


@pytest.fixture(scope="module")
def reference_results():
    return [run_case(case, ()) for case in load_cases()]


def test_every_listed_op_passes_its_corpus_cases_on_the_reference(reference_results):
    summaries = summarize(reference_results, supported_op_types())
    report = format_report("reference", summaries, MINIMUM_RATE)
    print(report)
    low = [op for op, s in summaries.items() if s.rate < MINIMUM_RATE]
    assert not low, report


def test_reference_passing_floor(reference_results):
    passed = sum(r.status == PASS for r in reference_results)
    assert passed >= FLOOR, (f"{passed} corpus cases pass on the reference; the floor is "
                             f"{FLOOR}")
