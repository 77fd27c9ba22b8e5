"""Recognising quantized groups: DequantizeLinear -> op -> [activation] -> QuantizeLinear.

onnxruntime's QDQ quantizer writes an int8 layer as float ops wrapped in DequantizeLinear on
each input and QuantizeLinear on the output. Accelerator plugins claim such a group as one
integer operation; these helpers find the groups so the pattern language can build on them.
"""

from __future__ import annotations

from dataclasses import dataclass

from byoc.core.ir import Graph, Node

QUANTIZABLE_OPS = ("Conv", "MatMul", "Gemm", "Add")
FUSABLE_ACTIVATIONS = ("Relu", "Clip")


@dataclass
class QdqGroup:
    """One int8 layer in QDQ form."""

    op: Node
    dequantize: list[Node | None]   # per op input: the DequantizeLinear feeding it, or None
    activation: Node | None         # a Relu/Clip between the op and the QuantizeLinear
    quantize: Node                  # the QuantizeLinear of the result

    @property
    def nodes(self) -> list[Node]:
        """Every node of the group, in topological order."""
        head = [dq for dq in self.dequantize if dq is not None]
        tail = [self.activation] if self.activation is not None else []
        return head + [self.op] + tail + [self.quantize]


def find_qdq_groups(graph: Graph, ops: tuple[str, ...] = QUANTIZABLE_OPS) -> list[QdqGroup]:
    """Every QDQ group around an op in ``ops`` whose data inputs all come from
    DequantizeLinear and whose result (possibly through one activation) is only quantized.

    A DequantizeLinear that also feeds nodes outside the group still counts as the group's
    input; callers that claim it must check its other readers.
    """
    producers = graph.producers()
    consumers = graph.consumers()
    groups = []
    for node in graph.nodes:
        if node.op_type not in ops or node.domain:
            continue
        data_inputs = node.inputs[:2]
        dequantize = [_producer_of_type(producers, v, "DequantizeLinear") for v in node.inputs]
        if any(dequantize[i] is None for i in range(len(data_inputs))):
            continue
        value = node.outputs[0]
        activation = _sole_reader(graph, consumers, value)
        if activation is not None and activation.op_type in FUSABLE_ACTIVATIONS:
            value = activation.outputs[0]
        else:
            activation = None
        quantize = _sole_reader(graph, consumers, value)
        if quantize is None or quantize.op_type != "QuantizeLinear":
            continue
        groups.append(QdqGroup(node, dequantize, activation, quantize))
    return groups


def _producer_of_type(producers: dict[str, Node], value: str, op_type: str) -> Node | None:
    node = producers.get(value) if value else None
    return node if node is not None and node.op_type == op_type else None


def _sole_reader(graph: Graph, consumers: dict[str, list[Node]], value: str) -> Node | None:
    readers = consumers.get(value, [])
    if len(readers) != 1 or value in graph.outputs:
        return None
    return readers[0]
