"""ONNX's node test corpus, driven by onnx's own backend test runner through byoc.backend.

Every case whose ops byoc supports runs, except the skips below, each with its reason. The
floor is the number of corpus cases that must run and pass; it only ever rises.
"""

from __future__ import annotations

import onnx.backend.test
from onnx.backend.test.loader import load_model_tests

from byoc.backend import ByocBackend
from byoc.core import dtypes
from byoc.core.importer import MIN_OPSET
from byoc.core.interpreter import registered_ops

FLOOR = 699

_TRAINING_BN = "BatchNormalization in training mode updates statistics; byoc compiles inference"
_TRAINING_DROPOUT = ("Dropout in training mode drops elements at random; a reference for "
                     "inference cannot reproduce onnx's random mask")
SKIPS: dict[str, str] = {
    "test_batchnorm_epsilon_training_mode": _TRAINING_BN,
    "test_batchnorm_example_training_mode": _TRAINING_BN,
    "test_training_dropout": _TRAINING_DROPOUT,
    "test_training_dropout_default": _TRAINING_DROPOUT,
    "test_training_dropout_default_mask": _TRAINING_DROPOUT,
    "test_training_dropout_mask": _TRAINING_DROPOUT,
}


def _in_scope(case) -> bool:
    """A case is in scope when byoc supports its opset, every op it uses and every element
    type it reads, writes or casts to."""
    supported = {op for domain, op in registered_ops() if domain == ""}
    graph = case.model.graph
    opset = next((o.version for o in case.model.opset_import if o.domain in ("", "ai.onnx")), 0)
    element_types = [v.type.tensor_type.elem_type if v.type.HasField("tensor_type") else -1
                     for v in list(graph.input) + list(graph.output)]
    element_types += [a.i for n in graph.node for a in n.attribute if a.name == "to"]
    return (MIN_OPSET <= opset
            and all(n.domain in ("", "ai.onnx") and n.op_type in supported for n in graph.node)
            and all(dtypes.to_numpy(t) is not None for t in element_types))


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
