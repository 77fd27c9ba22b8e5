"""The fallback family: cases of onnx's node test corpus.

For an op no family of :mod:`byoc.conformance.families` builds, the kit takes the single-node
models of onnx's own node test corpus (the part within byoc's scope, see
:func:`byoc.testing.node_corpus`, less the cases it skips or holds errata for) with the inputs
onnx generated for them; inputs after the first become constants. The one parameter is
``case``, the corpus test name; by default a few cases per op are tried.
"""

from __future__ import annotations

import functools
import warnings

import numpy as np
import onnx
from onnx import numpy_helper

from byoc.conformance.families import Built, Family, Param, register

CASES_PER_OP = 3


@functools.lru_cache(maxsize=1)
def _cases_by_op() -> dict[str, list]:
    from byoc.testing import CORPUS_ERRATA, CORPUS_SKIPS, node_corpus

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # onnx's corpus generators warn about overflows
        cases = node_corpus()
    by_op: dict[str, list] = {}
    for case in cases:
        nodes = case.model.graph.node
        if len(nodes) == 1 and "_expanded" not in case.name and \
                case.name not in CORPUS_SKIPS and case.name not in CORPUS_ERRATA:
            by_op.setdefault(nodes[0].op_type, []).append(case)
    return by_op


@register
class NodeCorpus(Family):
    """One-node models of onnx's node test corpus, with their first set of inputs."""

    name = "onnx_node_tests"
    ops = ()
    params = {}
    rtol, atol = 1e-5, 1e-5

    def param_table(self, op):
        names = tuple(c.name for c in _cases_by_op().get(op, []))
        if not names:
            return {}
        step = max(1, len(names) // CASES_PER_OP)
        return {"case": Param(names[::step][:CASES_PER_OP], names)}

    def build(self, op, values, rng):
        case = next(c for c in _cases_by_op()[op] if c.name == values["case"])
        model = onnx.ModelProto()
        model.CopyFrom(case.model)
        model.graph.node[0].name = "target"
        arrays = [numpy_helper.to_array(a) if isinstance(a, onnx.TensorProto) else np.asarray(a)
                  for a in case.data_sets[0][0]]
        names = [value.name for value in model.graph.input]
        # Inputs after the first become constants, so shapes, axes and pads given as inputs
        # are known when byoc infers static shapes.
        del model.graph.input[1:]
        model.graph.initializer.extend(numpy_helper.from_array(a, n)
                                       for n, a in zip(names[1:], arrays[1:]))
        inputs = {names[0]: arrays[0]}
        return Built(model, inputs, "target")
