"""Shared constructors for int8 patterns: QDQ groups and QLinear operators.

A QDQ group (see :mod:`byoc.core.qdq`) is DequantizeLinear on each input -> op -> [Relu] ->
QuantizeLinear, rooted at the QuantizeLinear. How its DequantizeLinear nodes are claimed:

- weights and bias: DequantizeLinear of graph constants. They belong to the match.
- the activation input: DequantizeLinear of a run-time value. It belongs to the match when its
  only reader is the op. When other nodes read it too, it is *shared*: it stays in the graph
  for them, is listed in ``Match.shared`` (the plugin computes it again inside the composite),
  and the match is not refused. Either way the match input is the quantized value the
  DequantizeLinear reads, never the dequantized float, so a plugin always sees int8 data.

The same sharing applies to a weight DequantizeLinear read by two layers (tied weights).
"""

from __future__ import annotations

from typing import Callable

from byoc.partition.patterns import Activation, Pattern, alt, const, op, wildcard, with_activation


def _dequantize(data, label: str):
    return op("DequantizeLinear", data, const(), const(), min_inputs=2, label=label,
              shareable=True)


def make_qdq_pattern(name: str, op_types: tuple[str, ...] = ("Conv", "MatMul", "Gemm"),
                     activation: Activation = "optional",
                     check: Callable | None = None) -> Pattern:
    """DequantizeLinear(s) -> op -> [activation] -> QuantizeLinear as one match.

    The op's first input is a DequantizeLinear of any value (bound as ``bound["input"]``), its
    second a DequantizeLinear of constant weights, its optional third a DequantizeLinear of a
    constant bias. Scales and zero points are constants. Captures "input_dq", "weight_dq",
    "bias_dq" (when present), "op", "activation" (when present) and "quantize".
    """
    layer = op(op_types,
               _dequantize(wildcard("input"), "input_dq"),
               _dequantize(const(label="weight"), "weight_dq"),
               _dequantize(const(label="bias"), "bias_dq"),
               min_inputs=2, label="op")
    body = with_activation(layer, activation)
    root = op("QuantizeLinear", body, const(label="output_scale"),
              const(label="output_zero_point"), min_inputs=2, label="quantize")
    return Pattern(name, root, check)


def make_qdq_elementwise_pattern(name: str, op_types: tuple[str, ...] = ("Add",),
                                 activation: Activation = "optional",
                                 check: Callable | None = None) -> Pattern:
    """DequantizeLinear(a), DequantizeLinear(b) -> op -> [activation] -> QuantizeLinear, both
    operands run-time values (bound as ``bound["a"]`` and ``bound["b"]``). Captures "a_dq",
    "b_dq", "op", "activation" (when present) and "quantize"."""
    layer = op(op_types, _dequantize(wildcard("a"), "a_dq"), _dequantize(wildcard("b"), "b_dq"),
               label="op")
    root = op("QuantizeLinear", with_activation(layer, activation), const(label="output_scale"),
              const(label="output_zero_point"), min_inputs=2, label="quantize")
    return Pattern(name, root, check)


def make_qlinear_pattern(name: str, op_types: tuple[str, ...] = ("QLinearConv", "QLinearMatMul"),
                         check: Callable | None = None,
                         constant_weights: bool = False) -> Pattern:
    """A QLinearConv / QLinearMatMul whose scales and zero points are constants.

    The data input may be a run-time value; QLinearConv's weights (and bias) must be constants,
    QLinearMatMul's second operand may be either, or only a constant with
    ``constant_weights``. Captures "op"; binds "input" and "weight".
    """
    def qlinear(types, weight):
        return op(types, wildcard("input"), const(), const(), weight, const(), const(),
                  const(), const(), const(label="bias"), min_inputs=8, label="op")

    conv = tuple(t for t in op_types if t == "QLinearConv")
    other = tuple(t for t in op_types if t != "QLinearConv")
    options = ([qlinear(conv, const(label="weight"))] if conv else []) + \
              ([qlinear(other, const(label="weight") if constant_weights else wildcard("weight"))]
               if other else [])
    return Pattern(name, options[0] if len(options) == 1 else alt(*options), check)


__all__ = ["make_qdq_elementwise_pattern", "make_qdq_pattern", "make_qlinear_pattern"]
