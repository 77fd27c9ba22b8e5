"""ONNX's node test corpus, driven by onnx's own backend test runner through byoc.backend.

Every case whose ops byoc supports runs, except the skips below, each with its reason. The
floor is the number of corpus cases that must run and pass; it only ever rises.
"""

from __future__ import annotations

import onnx.backend.test
from onnx.backend.test.loader import load_model_tests

from byoc.backend import ByocBackend
from byoc.core.interpreter import registered_ops

FLOOR = 0

SKIPS: dict[str, str] = {
}


def _in_scope(case) -> bool:
    supported = {op for domain, op in registered_ops() if domain == ""}
    nodes = case.model.graph.node
    return all(n.domain in ("", "ai.onnx") and n.op_type in supported for n in nodes)


CORPUS = load_model_tests(kind="node")
IN_SCOPE = sorted(case.name for case in CORPUS if _in_scope(case))
RUN = [name for name in IN_SCOPE if name not in SKIPS]

backend_test = onnx.backend.test.BackendTest(ByocBackend, __name__)
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
