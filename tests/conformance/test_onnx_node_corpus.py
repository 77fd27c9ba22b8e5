"""ONNX's node test corpus, driven by onnx's own backend test runner through byoc.backend,
on the reference interpreter (plugins have their own corpus tests).

Every case whose ops byoc supports runs, except the skips below, each with its reason. The
floor is the number of corpus cases that must run and pass; it only ever rises.
"""

from __future__ import annotations

import onnx.backend.test

from byoc.backend import ByocBackend
from byoc.testing import CORPUS_ERRATA, CORPUS_SKIPS, node_corpus

FLOOR = 1626

# Cases byoc does not run or whose expected outputs are wrong, with the reason for each.
SKIPS: dict[str, str] = {**CORPUS_SKIPS, **CORPUS_ERRATA}

IN_SCOPE = [case.name for case in node_corpus()]
RUN = [name for name in IN_SCOPE if name not in SKIPS]

class ReferenceBackend(ByocBackend):
    """byoc's ONNX backend on the reference interpreter alone (no default plugins)."""

    @classmethod
    def prepare(cls, model, device="CPU", **kwargs):
        return super().prepare(model, device, default_plugins=(), **kwargs)


backend_test = onnx.backend.test.BackendTest(ReferenceBackend, __name__)
for _name in RUN:
    backend_test.include(f"^{_name}_cpu$")
globals().update(backend_test.test_cases)

def test_every_skip_names_an_in_scope_case_and_gives_a_reason():
    stale = sorted(set(SKIPS) - set(IN_SCOPE))
    assert not stale, f"skips for cases that are not in scope: {stale}"
    assert all(reason.strip() for reason in SKIPS.values())

def test_passing_floor():
    assert len(RUN) >= FLOOR, (f"only {len(RUN)} node-corpus cases run; the floor is {FLOOR}. "
                               f"Do not skip more cases than before.")
