"""Replays every case the partition fuzz tests saved in regressions/ through the same
properties (:func:`tests.reliability.fuzz_properties.check_case`), with the compile settings
and input seed stored in the model's metadata. An empty folder means nothing to replay.

A saved case that fails because of a known bug outside the tests is listed in
``KNOWN_BUG_CASES`` (file stem -> name in ``fuzz_properties.KNOWN_BUGS``) and expected to
fail until the bug is fixed; strictly, so the entry has to go when the fix lands."""

from __future__ import annotations

import pytest

from tests.reliability.fuzz_graphs import load_case
from tests.reliability.fuzz_properties import KNOWN_BUGS, check_case
from tests.reliability.test_fuzz_partition import REGRESSIONS

KNOWN_BUG_CASES: dict[str, str] = {}


def _cases():
    for path in sorted(REGRESSIONS.glob("*.onnx")):
        bug = KNOWN_BUG_CASES.get(path.stem)
        marks = ([pytest.mark.xfail(reason=f"{bug}: {KNOWN_BUGS[bug][1]}", strict=True)]
                 if bug else [])
        yield pytest.param(path, id=path.stem, marks=marks)


@pytest.mark.parametrize("path", list(_cases()))
def test_saved_fuzz_case(path):
    check_case(load_case(path))


def test_every_known_bug_case_is_saved():
    saved = {path.stem for path in REGRESSIONS.glob("*.onnx")}
    assert set(KNOWN_BUG_CASES) <= saved, sorted(set(KNOWN_BUG_CASES) - saved)
