"""Helpers for tests of byoc and of plugin packages."""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import onnx
from onnx import helper, numpy_helper

ValueSpec = tuple[str, int, Sequence]


def compile_reference(model, **options):
    """``byoc.compile`` on the reference interpreter alone: the oracle to compare plugins
    with (no default plugins, no accelerators)."""
    import byoc

    return byoc.compile(model, default_plugins=(), **options)


def make_model(nodes: Sequence[onnx.NodeProto], inputs: Sequence[ValueSpec],
               outputs: Sequence[ValueSpec],
               initializers: Mapping[str, np.ndarray] | None = None, opset: int = 17,
               name: str = "test") -> onnx.ModelProto:
    """A checked-in-memory ONNX model. ``inputs``/``outputs`` are (name, elem_type, shape)
    with dims as ints or symbolic names; ``initializers`` maps names to arrays."""
    graph = helper.make_graph(
        nodes, name,
        [helper.make_tensor_value_info(n, t, s) for n, t, s in inputs],
        [helper.make_tensor_value_info(n, t, s) for n, t, s in outputs],
        initializer=[numpy_helper.from_array(np.asarray(a), n)
                     for n, a in (initializers or {}).items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    return model


_TRAINING_BN = "BatchNormalization in training mode updates statistics; byoc compiles inference"
_TRAINING_DROPOUT = ("Dropout in training mode drops elements at random; a reference for "
                     "inference cannot reproduce onnx's random mask")
# Corpus cases in scope by their ops that test training behaviour, with the reason each is
# skipped.
TRAINING_MODE_CASES: dict[str, str] = {
    "test_batchnorm_epsilon_training_mode": _TRAINING_BN,
    "test_batchnorm_example_training_mode": _TRAINING_BN,
    "test_training_dropout": _TRAINING_DROPOUT,
    "test_training_dropout_default": _TRAINING_DROPOUT,
    "test_training_dropout_default_mask": _TRAINING_DROPOUT,
    "test_training_dropout_mask": _TRAINING_DROPOUT,
}


def in_node_corpus_scope(case) -> bool:
    """Whether a case of onnx's node test corpus is within byoc's scope: byoc supports its
    opset, every op it uses and every element type it reads, writes or casts to."""
    from byoc.core import dtypes
    from byoc.core.importer import MIN_OPSET
    from byoc.core.interpreter import registered_ops

    supported = {op for domain, op in registered_ops() if domain == ""}
    graph = case.model.graph
    opset = next((o.version for o in case.model.opset_import if o.domain in ("", "ai.onnx")), 0)
    element_types = [v.type.tensor_type.elem_type if v.type.HasField("tensor_type") else -1
                     for v in list(graph.input) + list(graph.output)]
    element_types += [a.i for n in graph.node for a in n.attribute if a.name == "to"]
    return (MIN_OPSET <= opset
            and all(n.domain in ("", "ai.onnx") and n.op_type in supported for n in graph.node)
            and all(dtypes.to_numpy(t) is not None for t in element_types))


def node_corpus() -> list:
    """The cases of onnx's node test corpus within byoc's scope, sorted by name."""
    from onnx.backend.test.loader import load_model_tests

    return sorted((c for c in load_model_tests(kind="node") if in_node_corpus_scope(c)),
                  key=lambda c: c.name)
