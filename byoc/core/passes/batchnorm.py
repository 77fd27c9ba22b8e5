"""Folding inference-mode BatchNormalization into the Conv or Gemm that feeds it."""

from __future__ import annotations

import numpy as np

from byoc.core.ir import Graph, Node


def fold_batchnorm(graph: Graph) -> int:
    """Rewrite ``BN(Conv(x, W, b))`` as ``Conv(x, W', b')`` and likewise for Gemm.

    With ``f = scale / sqrt(var + eps)``: ``W' = W * f`` per output channel and
    ``b' = (b - mean) * f + bias``. Applies only when the producer's sole reader is the BN,
    its weights and the BN parameters are constants, and the BN has no training outputs.
    """
    producers = graph.producers()
    consumers = graph.consumers()
    folded = 0
    for bn in list(graph.nodes):
        if bn.op_type != "BatchNormalization" or bn.domain or len(bn.present_inputs) != 5:
            continue
        if len([o for o in bn.outputs if o]) != 1 or bn.attrs.get("training_mode", 0):
            continue
        producer = producers.get(bn.inputs[0])
        if producer is None or producer.domain or bn.inputs[0] in graph.outputs:
            continue
        if len(consumers.get(bn.inputs[0], [])) != 1:
            continue
        if not all(graph.is_constant(v) for v in bn.inputs[1:]):
            continue
        scale, bias, mean, var = (graph.constants[v].astype(np.float64) for v in bn.inputs[1:])
        factor = scale / np.sqrt(var + bn.attrs.get("epsilon", 1e-5))
        shift = bias - mean * factor
        fold_into = _FOLDERS.get(producer.op_type)
        if fold_into is None or not fold_into(graph, producer, factor, shift):
            continue
        out, out_type = bn.outputs[0], graph.types[bn.outputs[0]]
        graph.remove_node(bn)
        graph.types.pop(producer.outputs[0])
        producer.outputs[0] = out
        graph.types[out] = out_type
        folded += 1
    return folded


def _constant_weight_and_bias(graph: Graph, node: Node):
    """``node``'s weight (input 1) and bias (input 2, None when omitted) when both are
    constants, else None: only constants can absorb the normalization."""
    def constant(index: int):
        if index >= len(node.inputs) or not node.inputs[index]:
            return None
        name = node.inputs[index]
        return graph.constants[name] if graph.is_constant(name) else False

    weight, bias = constant(1), constant(2)
    if weight is None or weight is False or bias is False:
        return None
    return weight, bias


def _replace_weight_and_bias(graph: Graph, node: Node, weight: np.ndarray,
                             bias: np.ndarray) -> None:
    node.inputs = [node.inputs[0], graph.add_constant(f"{node.name}.weight_bn", weight),
                   graph.add_constant(f"{node.name}.bias_bn", bias)]


def _scaled(weight: np.ndarray, factor: np.ndarray) -> np.ndarray:
    """``weight * factor`` computed in float64 and rounded once to ``weight``'s dtype, as
    ``(weight.astype(np.float64) * factor).astype(weight.dtype)`` but without float64 copies
    of the weight (ResNet-50's are 200 MB, most of the pass's time)."""
    shape = np.broadcast_shapes(weight.shape, factor.shape)
    return np.multiply(weight, factor, out=np.empty(shape, weight.dtype), dtype=np.float64,
                       casting="unsafe")


def _fold_into_conv(graph: Graph, conv: Node, factor: np.ndarray, shift: np.ndarray) -> bool:
    constants = _constant_weight_and_bias(graph, conv)
    if constants is None:
        return False
    weight, bias = constants
    dtype = weight.dtype
    new_weight = _scaled(weight, factor.reshape((-1,) + (1,) * (weight.ndim - 1)))
    old_bias = np.zeros(weight.shape[0]) if bias is None else bias.astype(np.float64)
    new_bias = (old_bias * factor + shift).astype(dtype)
    _replace_weight_and_bias(graph, conv, new_weight, new_bias)
    return True


def _fold_into_gemm(graph: Graph, gemm: Node, factor: np.ndarray, shift: np.ndarray) -> bool:
    constants = _constant_weight_and_bias(graph, gemm)
    if constants is None:
        return False
    weight, bias = constants
    dtype = weight.dtype
    new_weight = _scaled(weight, factor[:, None] if gemm.attrs.get("transB", 0)
                         else factor[None, :])
    beta = gemm.attrs.get("beta", 1.0)
    old_bias = 0.0 if bias is None else beta * bias.astype(np.float64)
    new_bias = np.asarray(old_bias * factor + shift).astype(dtype)
    _replace_weight_and_bias(graph, gemm, new_weight, new_bias)
    gemm.attrs["beta"] = 1.0
    return True


_FOLDERS = {"Conv": _fold_into_conv, "Gemm": _fold_into_gemm}
