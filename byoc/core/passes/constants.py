"""Constant folding: nodes whose inputs are all known become constants."""

from __future__ import annotations

import numpy as np

from byoc.core.interpreter import evaluate_node
from byoc.core.ir import Graph

# Quantize/Dequantize of constant weights stay as nodes: together with the op they feed they
# form the int8 groups that accelerator plugins claim.
NEVER_FOLDED = frozenset({"QuantizeLinear", "DequantizeLinear"})
# Folding may not create constants much larger than what it removes (Expand, Tile,
# ConstantOfShape of big shapes stay nodes).
MAX_GROWTH_ELEMENTS = 1 << 16


def fold_constants(graph: Graph) -> int:
    """Replace every foldable node by constants; Shape of a static value always folds."""
    folded = 0
    for node in list(graph.nodes):
        if node.domain or node.op_type in NEVER_FOLDED:
            continue
        if node.op_type == "Shape":
            inputs = [np.broadcast_to(np.zeros((), graph.types[node.inputs[0]].dtype),
                                      graph.types[node.inputs[0]].shape)]
        elif all(not v or graph.is_constant(v) for v in node.inputs):
            inputs = [graph.constants[v] if v else None for v in node.inputs]
        else:
            continue
        out_types = [graph.types.get(o) for o in node.outputs]
        in_size = sum(a.size for a in inputs if a is not None and node.op_type != "Shape")
        out_size = sum(t.size for t in out_types if t is not None)
        if out_size > in_size + MAX_GROWTH_ELEMENTS:
            continue
        values = evaluate_node(node, inputs, out_types, graph.opsets.get(node.domain, 0))
        graph.replace_with_constant(node, values)
        folded += 1
    return folded
