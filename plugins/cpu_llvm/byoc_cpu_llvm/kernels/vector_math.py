"""Vectorized float32 exp, sigmoid, tanh and erf for kernels whose time goes into them (the
softmax of Attention, the gates of recurrent layers, GELU written with Erf): polynomial
approximations to about 1-2 ulp (erf: within 4.5e-7 of the exact value, about 7 ulp near
+-1), where the libm calls of :mod:`~byoc_cpu_llvm.kernels.scalar_ops` would run one lane at
a time."""

from __future__ import annotations

from llvmlite import ir

from byoc_cpu_llvm.codegen import I32, KernelBuilder, const

# Cephes' expf: exp(r) on |r| <= ln2 / 2 as 1 + r + r^2 * P(r).
_EXP_POLYNOMIAL = (1.9875691500e-4, 1.3981999507e-3, 8.3334519073e-3, 4.1665795894e-2,
                   1.6666665459e-1, 5.0000001201e-1)
# Cephes' tanhf for |x| < 0.625: x + x^3 * P(x^2).
_TANH_POLYNOMIAL = (-5.70498872745e-3, 2.06390887954e-2, -5.37397155531e-2,
                    1.33314422036e-1, -3.33332819422e-1)
_EXP_LOWEST, _EXP_HIGHEST = -87.33654, 88.37626   # log(FLT_MIN), log(FLT_MAX)
# erf(x) on |x| <= 4 as x * P(x^2) / Q(x^2), the rational approximation of Eigen's and XLA's
# float erf (beyond 4, erf is +-1 in float32). Highest degree first.
_ERF_NUMERATOR = (-2.72614225801306e-10, 2.77068142495902e-08, -2.10102402082508e-06,
                  -5.69250639462346e-05, -7.34990630326855e-04, -2.95459980854025e-03,
                  -1.60960333262415e-02)
_ERF_DENOMINATOR = (-1.45660718464996e-05, -2.13374055278905e-04, -1.68282697438203e-03,
                    -7.37332916720468e-03, -1.42647390514189e-02)


def _polynomial(b: ir.IRBuilder, x: ir.Value, coefficients) -> ir.Value:
    result = const(coefficients[0], x)
    for coefficient in coefficients[1:]:
        result = b.fadd(b.fmul(result, x), const(coefficient, x))
    return result


def vector_exp(kb: KernelBuilder, x: ir.Value) -> ir.Value:
    """``exp(x)``: ``x = n ln2 + r`` (ln2 split in two so ``r`` stays exact), ``exp(r)`` by
    its polynomial, times ``2^n`` built in the exponent bits. Inputs below log(FLT_MIN)
    (-inf included) give 0, above log(FLT_MAX) the largest float."""
    b = kb.b
    clamped = kb.intrinsic("llvm.minnum", x.type, [
        kb.intrinsic("llvm.maxnum", x.type, [x, const(_EXP_LOWEST, x)]),
        const(_EXP_HIGHEST, x)])
    n = kb.intrinsic("llvm.floor", x.type, [
        b.fadd(b.fmul(clamped, const(1.44269504088896341, x)), const(0.5, x))])
    r = b.fsub(b.fsub(clamped, b.fmul(n, const(0.693359375, x))),
               b.fmul(n, const(-2.12194440e-4, x)))
    exp_r = b.fadd(b.fadd(b.fmul(_polynomial(b, r, _EXP_POLYNOMIAL), b.fmul(r, r)), r),
                   const(1.0, r))
    ints = ir.VectorType(I32, x.type.count)
    exponent = b.shl(b.add(b.fptosi(n, ints), ir.Constant(ints, [127] * x.type.count)),
                     ir.Constant(ints, [23] * x.type.count))
    result = b.fmul(exp_r, b.bitcast(exponent, x.type))
    return b.select(b.fcmp_ordered("<", x, const(_EXP_LOWEST, x)), const(0.0, x), result)


def vector_sigmoid(kb: KernelBuilder, x: ir.Value) -> ir.Value:
    """``1 / (1 + exp(-x))``."""
    one = const(1.0, x)
    return kb.b.fdiv(one, kb.b.fadd(one, vector_exp(kb, kb.b.fneg(x))))


def vector_tanh(kb: KernelBuilder, x: ir.Value) -> ir.Value:
    """``tanh(x)``: the odd polynomial near 0, else ``1 - 2 / (exp(2|x|) + 1)`` with x's
    sign (which cannot overflow, and keeps its relative precision away from 0)."""
    b = kb.b
    magnitude = kb.intrinsic("llvm.fabs", x.type, [x])
    square = b.fmul(x, x)
    near_zero = b.fadd(x, b.fmul(b.fmul(_polynomial(b, square, _TANH_POLYNOMIAL), square), x))
    one = const(1.0, x)
    far = b.fsub(one, b.fdiv(const(2.0, x),
                             b.fadd(vector_exp(kb, b.fadd(magnitude, magnitude)), one)))
    far = kb.intrinsic("llvm.copysign", x.type, [far, x])
    return b.select(b.fcmp_ordered("<", magnitude, const(0.625, x)), near_zero, far)


def vector_erf(kb: KernelBuilder, x: ir.Value) -> ir.Value:
    """``erf(x)``: ``x`` clamped to [-4, 4] (so +-inf give +-1), then the rational
    approximation; a NaN stays NaN."""
    b = kb.b
    clamped = kb.intrinsic("llvm.minnum", x.type, [
        kb.intrinsic("llvm.maxnum", x.type, [x, const(-4.0, x)]), const(4.0, x)])
    square = b.fmul(clamped, clamped)
    numerator = b.fmul(clamped, _polynomial(b, square, _ERF_NUMERATOR))
    result = b.fdiv(numerator, _polynomial(b, square, _ERF_DENOMINATOR))
    return b.select(b.fcmp_unordered("uno", x, x), x, result)


__all__ = ["vector_erf", "vector_exp", "vector_sigmoid", "vector_tanh"]
