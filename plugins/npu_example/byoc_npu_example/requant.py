"""The NPU's requantize-and-activate unit: int32 accumulators to int8/uint8 outputs.

This function is the unit's definition. The simulator's CONV2D and DEPTHWISE_CONV2D use it,
and the unit's RTL is tested against it. It is byoc's requantization
(:func:`byoc.quantization.requantize`), which the reference gives a quantized layer
(:class:`byoc.core.integer_layers.IntegerLayer`)::

    y = clamp(round_half_even(float32(acc) * multiplier) + zero_point, qmin, qmax)

``float32(acc)`` rounds the int32 accumulator to the nearest float32 (ties to even), the
product is one float32 multiplication, and the clamp folds the output type's saturation and
a fused Relu or Clip (their bounds, quantized) into one range.
"""

from __future__ import annotations

import numpy as np

from byoc import quantization

OUTPUT_TYPES = (np.dtype(np.int8), np.dtype(np.uint8))


def requantize(acc: np.ndarray, multiplier: np.ndarray, zero_point: int, qmin: int, qmax: int,
               out_dtype) -> np.ndarray:
    """Requantize int32 accumulators ``acc`` (channels on the last axis) by ``multiplier``
    (float32: one value, or one per channel) to ``out_dtype`` (int8 or uint8), clamped to
    ``[qmin, qmax]``, which must lie within ``out_dtype``."""
    out_dtype = np.dtype(out_dtype)
    if out_dtype not in OUTPUT_TYPES:
        raise ValueError(f"the requantize unit writes int8 or uint8, not {out_dtype}")
    info = np.iinfo(out_dtype)
    if not info.min <= qmin <= qmax <= info.max:
        raise ValueError(f"clamp range [{qmin}, {qmax}] is not within {out_dtype}")
    acc = np.asarray(acc)
    if acc.dtype != np.int32:
        raise ValueError(f"accumulators are int32, not {acc.dtype}")
    return quantization.requantize(acc, multiplier, zero_point, out_dtype, (qmin, qmax))
