"""Differential fuzzing of partitioning and compilation against the reference interpreter.

Hypothesis draws random float graphs and random int8 QDQ networks (tests/reliability/
fuzz_graphs.py) with random plugin selections, orders, default plugins, minimum partition
sizes and pins, compiles each and checks the properties of tests/reliability/
fuzz_properties.py: every node in exactly one partition, an acyclic partition graph in
topological order, non-host nodes matched by their plugin's own patterns, pins and minimum
size respected, no fallback to the host, and outputs equal to the reference.

Reproducible: the runs are seeded (``BYOC_FUZZ_SEED``, printed with every failure) and use no
example database. A failing case is shrunk by hypothesis; the minimal one is written to
tests/reliability/regressions/<hash>.onnx (or ``$BYOC_FUZZ_REGRESSIONS``) with its compile
settings in the model's metadata, and test_fuzz_regressions.py replays it from then on.

Measured on a 2-core machine with an empty cpu_llvm object cache: the default run is
``FLOAT_CASES + QDQ_CASES`` (1,400) cases, plus the smoke tests, in about two and a half
minutes; docs/reliability.md has the figures.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, note, seed, settings

from byoc.core.interpreter.base import lookup
from tests.reliability.fuzz_graphs import (
    FuzzCase,
    case_file_name,
    float_graphs,
    fuzz_cases,
    load_case,
    qdq_graphs,
    save_case,
)
from tests.reliability.fuzz_properties import PropertyFailure, check_case

SEED = int(os.environ.get("BYOC_FUZZ_SEED", "20240607"))
REGRESSIONS = Path(os.environ.get("BYOC_FUZZ_REGRESSIONS",
                                  Path(__file__).parent / "regressions"))
FLOAT_CASES = 600
QDQ_CASES = 800
SMOKE_CASES = 15


def fuzz_settings(cases: int):
    return settings(max_examples=cases, database=None, deadline=None,
                    report_multiple_bugs=False, print_blob=True,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


class _Saver:
    """Writes each failing case of one test to the regressions folder, deleting the file of
    the previous failure it wrote in this run: hypothesis replays the shrunk case last, so the
    file left behind is the minimal one. A file that was there before is never deleted.

    Passing cases are counted by hypothesis events (``--hypothesis-show-statistics``): which
    plugins ran partitions and how many partitions there were."""

    def __init__(self, folder: Path | None = None) -> None:
        self.folder = folder
        self.written: Path | None = None  # the last failure this run wrote

    def check(self, case: FuzzCase) -> None:
        try:
            compiled = check_case(case)
        except Exception:
            folder = self.folder or REGRESSIONS
            path = folder / case_file_name(case)
            kept = path.exists() and path != self.written  # saved before: never deleted
            save_case(case, folder)
            if self.written is not None and self.written != path:
                self.written.unlink(missing_ok=True)
            self.written = None if kept else path
            message = (f"fuzz seed {SEED} (set BYOC_FUZZ_SEED to change it); case: "
                       f"{case.describe()}; saved as {path}, which "
                       f"test_fuzz_regressions.py replays")
            note(message)
            print(message)
            raise
        for plugin in sorted({part.plugin for part in compiled.parts}):
            event(f"ran partitions on {plugin}")
        count = len(compiled.parts)
        event(f"partitions: {count if count < 4 else '4 or more'}")


@seed(SEED)
@fuzz_settings(SMOKE_CASES)
@given(fuzz_cases(float_graphs()))
def test_float_graphs_smoke(case):
    _SMOKE_FLOAT.check(case)


@seed(SEED)
@fuzz_settings(SMOKE_CASES)
@given(fuzz_cases(qdq_graphs()))
def test_qdq_graphs_smoke(case):
    _SMOKE_QDQ.check(case)


@pytest.mark.slow
@seed(SEED + 1)
@fuzz_settings(FLOAT_CASES)
@given(fuzz_cases(float_graphs()))
def test_float_graphs(case):
    _FLOAT.check(case)


@pytest.mark.slow
@seed(SEED + 1)
@fuzz_settings(QDQ_CASES)
@given(fuzz_cases(qdq_graphs()))
def test_qdq_graphs(case):
    _QDQ.check(case)


_SMOKE_FLOAT, _SMOKE_QDQ, _FLOAT, _QDQ = _Saver(), _Saver(), _Saver(), _Saver()


def test_a_planted_bug_is_found_shrunk_saved_and_replayed(tmp_path, monkeypatch):
    """The whole loop on a bug planted in the reference's Relu (negative inputs leak through
    at 1/8): the QDQ fuzzer finds it, hypothesis shrinks it, the minimal model is saved with
    its settings, and replaying the file fails with the bug and passes without it."""
    saver = _Saver(tmp_path)

    @seed(SEED)
    @fuzz_settings(200)
    @given(fuzz_cases(qdq_graphs()))
    def fuzz(case):
        saver.check(case)

    relu = lookup("", "Relu")
    monkeypatch.setattr(relu, "apply", lambda self, x: np.where(x > 0, x, x / np.float32(8)))
    with pytest.raises(PropertyFailure):
        fuzz()
    (saved,) = tmp_path.glob("*.onnx")  # only the minimal case is left
    case = load_case(saved)
    ops = [n.op_type for n in case.model.graph.node]
    assert "Relu" in ops and len(ops) <= 8, ops
    with pytest.raises(PropertyFailure):
        check_case(case)
    monkeypatch.undo()
    check_case(case)
