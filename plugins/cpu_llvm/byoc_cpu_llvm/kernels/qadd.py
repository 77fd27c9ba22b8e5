"""DequantizeLinear(a), DequantizeLinear(b) -> Add -> [Relu] -> QuantizeLinear as one kernel:
it reads the two int8/uint8 tensors and writes the quantized sum, bit-exact with the
reference, which evaluates the chain in float32.

Per element the kernel does the reference's float32 operations in the reference's order:
``(a - a_zero) * a_scale + (b - b_zero) * b_scale``, divided by ``y_scale``, rounded half to
even, plus ``y_zero``, saturated. The differences are exact (small integers held exactly in
float32), each product and the sum are single float32 operations (never fused into an FMA),
and adding the zero point and clamping in float32 is exact as in
:mod:`~byoc_cpu_llvm.kernels.quant`. A Relu between the Add and the QuantizeLinear is a clamp
at ``y_zero``: quantization is increasing for a positive ``y_scale`` and quantizes 0 to
``y_zero``, so ``quantize(max(s, 0)) == max(quantize(s), y_zero)``.

The scales and zero points live in a constant buffer rather than in the code, so every Add of
one shape and dtypes shares one function. Threads split the tensor in whole vectors of the
host's float width; the last thread also does the elements after the last whole vector.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from llvmlite import ir

from byoc_cpu_llvm.codegen import F32, I32, const, const_i64, is_signed, llvm_type
from byoc_cpu_llvm.target import host_target


@dataclass(frozen=True)
class QuantizedTensor:
    """A graph value of an integer type and the per-tensor float32 scale and zero point that
    (de)quantize it."""

    value: str
    scale: np.float32
    zero: int


def lower_quantized_add(program, tag: str, a: QuantizedTensor, b: QuantizedTensor,
                        y: QuantizedTensor, relu: bool) -> None:
    """Emit the kernel writing ``quantize(dequantize(a) + dequantize(b))`` (of the Relu of the
    sum when ``relu``) to ``y.value``; the three values have the same shape."""
    graph = program.graph
    dtypes = [graph.types[t.value].dtype for t in (a, b, y)]
    size = graph.types[y.value].size
    lanes = host_target().float_lanes
    params = np.array([a.scale, b.scale, y.scale, a.zero, b.zero, y.zero], np.float32)
    slots = [program.value(a.value), program.value(b.value), program.value(y.value),
             program.constant(f"{tag}__qadd_params", params)]

    kb = program.kernel(tag)
    builder = kb.b
    a_base, b_base, y_base, param_base = (kb.buffer(slot) for slot in slots)
    loaded = [kb.load(param_base, const_i64(i), F32) for i in range(len(params))]
    a_scale, b_scale, y_scale, a_zero, b_zero, y_zero = loaded
    low, high = (float(v) for v in (np.iinfo(dtypes[2]).min, np.iinfo(dtypes[2]).max))

    def elements(offset: ir.Value, width: int) -> None:
        """Compute and store ``width`` elements from ``offset`` (one vector, or a scalar)."""
        def spread(value):
            return value if width == 1 else kb.splat(value, width)

        def dequantized(base, dtype, scale, zero):
            elem = llvm_type(dtype)
            kind = elem if width == 1 else ir.VectorType(elem, width)
            code = builder.load(kb.element(base, offset, elem), typ=kind, align=1)
            wide = F32 if width == 1 else ir.VectorType(F32, width)
            real = (builder.sitofp if is_signed(dtype) else builder.uitofp)(code, wide)
            return builder.fmul(builder.fsub(real, spread(zero)), spread(scale))

        total = builder.fadd(dequantized(a_base, dtypes[0], a_scale, a_zero),
                             dequantized(b_base, dtypes[1], b_scale, b_zero))
        steps = builder.fdiv(total, spread(y_scale))
        value = builder.fadd(kb.intrinsic("llvm.roundeven", steps.type, [steps]),
                             spread(y_zero))
        floor = const(low, value)
        if relu:
            floor = kb.intrinsic("llvm.maxnum", value.type, [floor, spread(y_zero)])
        value = kb.intrinsic("llvm.maxnum", value.type, [value, floor])
        value = kb.intrinsic("llvm.minnum", value.type, [value, const(high, value)])
        wide_int = I32 if width == 1 else ir.VectorType(I32, width)
        out = llvm_type(dtypes[2])
        code = builder.trunc(builder.fptosi(value, wide_int),
                             out if width == 1 else ir.VectorType(out, width))
        builder.store(code, kb.element(y_base, offset, out), align=1)

    vectors = size // lanes
    begin, end = kb.thread_share(vectors)
    with kb.loop(begin, end, name="vector") as index:
        elements(builder.mul(index, const_i64(lanes)), lanes)
    if vectors * lanes < size:
        last = builder.icmp_signed("==", kb.tid, builder.sub(kb.nthreads, const_i64(1)))
        with builder.if_then(last):
            with kb.loop(vectors * lanes, size, name="tail") as offset:
                elements(offset, 1)
    kb.finish()


__all__ = ["QuantizedTensor", "lower_quantized_add"]
