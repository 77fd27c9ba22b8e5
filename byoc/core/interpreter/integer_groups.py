"""Quantized integer layers evaluated as the integer operations they stand for.

:mod:`byoc.core.integer_layers` finds the layers and says why they are evaluated in integers;
:func:`integer_evaluator` gives each one the semantics of QLinearConv / QLinearMatMul: an exact
integer accumulation, then a requantization by the float32 multiplier.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from byoc.core import integer_layers
from byoc.core.interpreter.ops_conv import integer_correlate
from byoc.core.interpreter.ops_linalg import integer_matmul
from byoc.deprecation import moved_names
from byoc.quantization import along_axis, requantize

Env = dict[str, np.ndarray]

# Plugins were told to import the integer layers from here before they moved (byoc 0.1).
__getattr__ = moved_names(__name__, dict.fromkeys(
    ("IntegerLayer", "IntegerGroup", "plan_integer_groups", "integer_plans", "integer_layer",
     "qlinear_layer", "activation_range"), "byoc.core.integer_layers"), since="0.2")


def integer_evaluator(layer: integer_layers.IntegerLayer) -> Callable[[Env], np.ndarray]:
    """``evaluate(env)``: the layer's quantized output from the values in ``env``."""
    def finish(acc: np.ndarray, out_axis: int) -> np.ndarray:
        if layer.bias is not None:
            acc = acc + along_axis(layer.bias, out_axis, acc.ndim)
        y = requantize(acc, along_axis(layer.multiplier, out_axis, acc.ndim),
                       np.asarray(layer.y_zero), layer.y_dtype)
        return np.clip(y, layer.out_min, layer.out_max).astype(layer.y_dtype)

    x_zero = np.asarray(layer.x_zero, dtype=layer.x_dtype)
    if layer.kind == "conv":
        attrs = layer.attrs

        def evaluate(env: Env) -> np.ndarray:
            acc = integer_correlate(env[layer.x], x_zero, layer.weight, layer.w_zero,
                                    attrs["group"] or 1, attrs["kernel_shape"],
                                    attrs["auto_pad"] or "NOTSET", attrs["dilations"],
                                    attrs["pads"], attrs["strides"], "Conv")
            return finish(acc, 1)
        return evaluate

    def evaluate(env: Env) -> np.ndarray:
        # A per-channel zero point is one value per column of the (transposed) weight.
        acc = integer_matmul(env[layer.x], x_zero, layer.weight, layer.w_zero)
        return finish(acc.astype(np.int64), -1)
    return evaluate
