"""Elementwise operators as IR: ``y = f(x, ...)`` on one value or a vector of values.

Each emitter takes the kernel builder, the op type, the operand values (LLVM scalars or
vectors of one element type), the node's attributes and the numpy dtypes of operands and
result, and returns the result value. They are the building blocks of the fused elementwise
kernels and of the epilogues of Conv and Gemm.

Why one module above 600 lines: it is the table of emitters, one short function per op
registered by ``@emitter``, read like a list; the helpers they share (float16 computed
through float32, constants of an operand's type, lane-wise libm calls) sit at its top.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
from llvmlite import ir

from byoc_cpu_llvm.codegen import KernelBuilder, const, is_float, is_signed, llvm_type
from byoc_cpu_llvm.kernels.vector_math import vector_erf, vector_exp

Emitter = Callable[[KernelBuilder, str, list[ir.Value], dict, list[np.dtype], np.dtype],
                   ir.Value]
EMITTERS: dict[str, Emitter] = {}


# Ops whose emitters take float16 operands as they are: conversions, and comparisons with a
# threshold that the reference rounds to the input's type first.
_OWN_HALF_HANDLING = {"Cast", "CastLike", "ThresholdedRelu"}
# Inputs an op reads only the element type of, never the values (the elementwise kernel
# passes None for them).
TYPE_ONLY_INPUTS = {"CastLike": (1,)}
# Ops whose float32 emitters compute a whole vector at once (with vector_math) where a scalar
# loop would call libm once per element, which LLVM cannot vectorize (GELU written with Erf
# took 16% of a BERT layer's time that way).
VECTOR_MATH_OPS = {"Mish", "Swish", "Erf", "Gelu"}


def emitter(*op_types: str):
    def register(fn: Emitter) -> Emitter:
        for op in op_types:
            EMITTERS[op] = fn if op in _OWN_HALF_HANDLING else _half_via_float(fn)
        return fn
    return register


F16_DTYPE = np.dtype(np.float16)
F32_DTYPE = np.dtype(np.float32)


def _half_via_float(fn: Emitter) -> Emitter:
    """``fn`` with float16 operands and results computed as numpy does: each float16 operand
    widened to float32, the op evaluated in float32, the result rounded once to float16."""
    def emit(kb, op, args, attrs, dtypes, out):
        if F16_DTYPE not in dtypes and out != F16_DTYPE:
            return fn(kb, op, args, attrs, dtypes, out)
        wide_args = [kb.b.fpext(a, _like(a, ir.FloatType())) if d == F16_DTYPE else a
                     for a, d in zip(args, dtypes)]
        wide_dtypes = [F32_DTYPE if d == F16_DTYPE else d for d in dtypes]
        if out != F16_DTYPE:
            return fn(kb, op, wide_args, attrs, wide_dtypes, out)
        result = fn(kb, op, wide_args, attrs, wide_dtypes, F32_DTYPE)
        return kb.b.fptrunc(result, _like(result, ir.HalfType()))
    return emit


def lanewise(kb: KernelBuilder, fn: Callable[[ir.Value], ir.Value], x: ir.Value) -> ir.Value:
    """Apply a scalar-only operation (a libm call) to each lane of a vector."""
    if not isinstance(x.type, ir.VectorType):
        return fn(x)
    out = ir.Constant(x.type, ir.Undefined)
    for lane in range(x.type.count):
        index = ir.Constant(ir.IntType(32), lane)
        out = kb.b.insert_element(out, fn(kb.b.extract_element(x, index)), index)
    return out


def libm(name: str) -> Callable[[KernelBuilder, ir.Value], ir.Value]:
    def call(kb: KernelBuilder, x: ir.Value) -> ir.Value:
        return lanewise(kb, lambda v: kb.libm(name + ("f" if v.type == ir.FloatType() else ""),
                                              v), x)
    return call


exp, log, tanh, erf = libm("exp"), libm("log"), libm("tanh"), libm("erf")
expm1 = libm("expm1")


# log(FLT_MAX): exp overflows to inf beyond it.
_EXP_OVERFLOWS_ABOVE = 88.72283935546875


def fast_exp(kb: KernelBuilder, x: ir.Value) -> ir.Value:
    """``exp(x)``: vectorized (to 1-2 ulp) for a vector of float32, else libm's. Either way
    a NaN stays NaN and an overflow is inf, as in numpy (vector_exp alone clamps both)."""
    if not (isinstance(x.type, ir.VectorType) and x.type.element == ir.FloatType()):
        return exp(kb, x)
    b = kb.b
    result = select(kb, b.fcmp_ordered(">", x, const(_EXP_OVERFLOWS_ABOVE, x)),
                    const(np.inf, x), vector_exp(kb, x))
    return select(kb, b.fcmp_unordered("uno", x, x), x, result)


def fmax(kb, a, b):
    return kb.intrinsic("llvm.maxnum", a.type, [a, b])


def fmin(kb, a, b):
    return kb.intrinsic("llvm.minnum", a.type, [a, b])


def select(kb, cond, a, b):
    return kb.b.select(cond, a, b)


# -- arithmetic ------------------------------------------------------------------------------

@emitter("Add", "Sub", "Mul", "Div")
def _arith(kb, op, args, attrs, dtypes, out):
    a, b = args
    f = is_float(out)
    if op == "Add":
        return kb.b.fadd(a, b) if f else kb.b.add(a, b)
    if op == "Sub":
        return kb.b.fsub(a, b) if f else kb.b.sub(a, b)
    if op == "Mul":
        return kb.b.fmul(a, b) if f else kb.b.mul(a, b)
    if f:
        return kb.b.fdiv(a, b)
    return kb.b.sdiv(a, b) if is_signed(out) else kb.b.udiv(a, b)


@emitter("Relu")
def _relu(kb, op, args, attrs, dtypes, out):
    (x,) = args
    if is_float(out):
        return fmax(kb, x, const(0.0, x))
    return select(kb, kb.b.icmp_signed(">", x, const(0, x)), x, const(0, x))


@emitter("LeakyRelu")
def _leaky(kb, op, args, attrs, dtypes, out):
    (x,) = args
    neg = kb.b.fmul(x, const(attrs.get("alpha", 0.01), x))
    return select(kb, kb.b.fcmp_ordered(">=", x, const(0.0, x)), x, neg)


@emitter("Clip")
def _clip(kb, op, args, attrs, dtypes, out):
    x, low, high = (args + [None, None])[:3]
    low = low if low is not None else (const(attrs["min"], x) if "min" in attrs else None)
    high = high if high is not None else (const(attrs["max"], x) if "max" in attrs else None)
    if is_float(out):
        y = fmax(kb, x, low) if low is not None else x
        return fmin(kb, y, high) if high is not None else y
    y = x
    if low is not None:
        y = select(kb, kb.b.icmp_signed("<", y, low), low, y)
    if high is not None:
        y = select(kb, kb.b.icmp_signed(">", y, high), high, y)
    return y


@emitter("Sigmoid")
def _sigmoid(kb, op, args, attrs, dtypes, out):
    (x,) = args
    one = const(1.0, x)
    return kb.b.fdiv(one, kb.b.fadd(one, exp(kb, kb.b.fneg(x))))


def fast_erf(kb: KernelBuilder, x: ir.Value) -> ir.Value:
    """``erf(x)``: vectorized (within 4.5e-7) for a vector of float32, else libm's."""
    if isinstance(x.type, ir.VectorType) and x.type.element == ir.FloatType():
        return vector_erf(kb, x)
    return erf(kb, x)


# Ops that are one libm call per lane (Erf vectorized where it can be).
_LIBM_OPS = {"Tanh": tanh, "Exp": exp, "Log": log, "Erf": fast_erf}


@emitter(*_LIBM_OPS)
def _libm_op(kb, op, args, attrs, dtypes, out):
    return _LIBM_OPS[op](kb, args[0])


@emitter("Sqrt")
def _sqrt(kb, op, args, attrs, dtypes, out):
    return kb.intrinsic("llvm.sqrt", args[0].type, [args[0]])


@emitter("Abs")
def _abs(kb, op, args, attrs, dtypes, out):
    (x,) = args
    if is_float(out):
        return kb.intrinsic("llvm.fabs", x.type, [x])
    if not is_signed(out):
        return x
    return select(kb, kb.b.icmp_signed("<", x, const(0, x)), kb.b.neg(x), x)


@emitter("Neg")
def _neg(kb, op, args, attrs, dtypes, out):
    (x,) = args
    return kb.b.fneg(x) if is_float(out) else kb.b.neg(x)


@emitter("Reciprocal")
def _reciprocal(kb, op, args, attrs, dtypes, out):
    return kb.b.fdiv(const(1.0, args[0]), args[0])


@emitter("Pow")
def _pow(kb, op, args, attrs, dtypes, out):
    """As the reference: a float base takes the exponent converted to its dtype; an integer
    base and the exponent (a float one truncated) are raised in int64, wrapping, and the
    result is truncated to the base's dtype."""
    base, exponent = args
    if is_float(out):
        exponent = _convert(kb, exponent, dtypes[1], out)
        return kb.intrinsic("llvm.pow", base.type, [base, exponent])
    wide = np.dtype(np.int64)
    power = _int_power(kb, _convert(kb, base, dtypes[0], wide),
                       _convert(kb, exponent, dtypes[1], wide))
    return _convert(kb, power, wide, out)


def _convert(kb, x, src: np.dtype, dst: np.dtype) -> ir.Value:
    """``x`` of dtype ``src`` as numpy's ``astype(dst)`` (floats to integers truncate)."""
    return _cast(kb, "Cast", [x], {}, [np.dtype(src)], np.dtype(dst))


def _int_power(kb, base, exponent) -> ir.Value:
    """``base ** exponent`` in int64 with wraparound, by squaring over all 64 exponent bits
    (branch-free, so it works on vectors too). A negative exponent, which numpy refuses,
    counts as its two's-complement bits."""
    b = kb.b
    result = const(1, base)
    for bit in range(64):
        odd = b.icmp_unsigned("!=", b.and_(exponent, const(1, exponent)), const(0, exponent))
        result = select(kb, odd, b.mul(result, base), result)
        if bit < 63:
            base = b.mul(base, base)
            exponent = b.lshr(exponent, const(1, exponent))
    return result


@emitter("HardSigmoid")
def _hard_sigmoid(kb, op, args, attrs, dtypes, out):
    (x,) = args
    y = kb.b.fadd(kb.b.fmul(x, const(attrs.get("alpha", 0.2), x)), const(attrs.get("beta", 0.5),
                                                                         x))
    return fmin(kb, fmax(kb, y, const(0.0, x)), const(1.0, x))


@emitter("HardSwish")
def _hard_swish(kb, op, args, attrs, dtypes, out):
    (x,) = args
    gate = kb.b.fadd(kb.b.fmul(x, const(1.0 / 6.0, x)), const(0.5, x))
    gate = fmin(kb, fmax(kb, gate, const(0.0, x)), const(1.0, x))
    return kb.b.fmul(x, gate)


@emitter("Softplus")
def _softplus(kb, op, args, attrs, dtypes, out):
    (x,) = args
    # log(1 + exp(x)) = max(x, 0) + log(1 + exp(-|x|)), which cannot overflow.
    magnitude = kb.intrinsic("llvm.fabs", x.type, [x])
    tail = log(kb, kb.b.fadd(const(1.0, x), exp(kb, kb.b.fneg(magnitude))))
    return kb.b.fadd(fmax(kb, x, const(0.0, x)), tail)


def _elu_core(kb, x, alpha):
    negative = kb.b.fmul(const(alpha, x), kb.b.fsub(exp(kb, fmin(kb, x, const(0.0, x))),
                                                     const(1.0, x)))
    return select(kb, kb.b.fcmp_ordered(">", x, const(0.0, x)), x, negative)


@emitter("Elu")
def _elu(kb, op, args, attrs, dtypes, out):
    return _elu_core(kb, args[0], attrs.get("alpha", 1.0))


@emitter("Selu")
def _selu(kb, op, args, attrs, dtypes, out):
    x = args[0]
    core = _elu_core(kb, x, attrs.get("alpha", 1.67326319217681884765625))
    return kb.b.fmul(core, const(attrs.get("gamma", 1.05070102214813232421875), x))


@emitter("Gelu")
def _gelu(kb, op, args, attrs, dtypes, out):
    (x,) = args
    half = kb.b.fmul(x, const(0.5, x))
    if attrs.get("approximate", "none") == "tanh":
        cube = kb.b.fmul(kb.b.fmul(x, x), x)
        inner = kb.b.fmul(const(np.sqrt(2 / np.pi), x),
                          kb.b.fadd(x, kb.b.fmul(const(0.044715, x), cube)))
        return kb.b.fmul(half, kb.b.fadd(const(1.0, x), tanh(kb, inner)))
    scaled = kb.b.fmul(x, const(1 / np.sqrt(2), x))
    return kb.b.fmul(half, kb.b.fadd(const(1.0, x), fast_erf(kb, scaled)))


@emitter("PRelu")
def _prelu(kb, op, args, attrs, dtypes, out):
    x, slope = args
    return select(kb, kb.b.fcmp_ordered(">=", x, const(0.0, x)), x, kb.b.fmul(x, slope))


@emitter("Min", "Max", "Sum", "Mean")
def _variadic(kb, op, args, attrs, dtypes, out):
    f = is_float(out)
    acc = args[0]
    for other in args[1:]:
        if op == "Min":
            acc = fmin(kb, acc, other) if f else select(
                kb, kb.b.icmp_signed("<", other, acc) if is_signed(out)
                else kb.b.icmp_unsigned("<", other, acc), other, acc)
        elif op == "Max":
            acc = fmax(kb, acc, other) if f else select(
                kb, kb.b.icmp_signed(">", other, acc) if is_signed(out)
                else kb.b.icmp_unsigned(">", other, acc), other, acc)
        else:
            acc = kb.b.fadd(acc, other) if f else kb.b.add(acc, other)
    if op == "Mean":
        acc = kb.b.fdiv(acc, const(float(len(args)), acc))
    return acc


# -- comparisons and logic (bool is stored as one byte, 0 or 1) ------------------------------

_PREDICATES = {"Equal": "==", "Less": "<", "Greater": ">", "LessOrEqual": "<=",
               "GreaterOrEqual": ">="}


@emitter(*_PREDICATES)
def _compare(kb, op, args, attrs, dtypes, out):
    a, b = args
    predicate = _PREDICATES[op]
    if is_float(dtypes[0]):
        flag = kb.b.fcmp_ordered(predicate, a, b)
    elif is_signed(dtypes[0]):
        flag = kb.b.icmp_signed(predicate, a, b)
    else:
        flag = kb.b.icmp_unsigned(predicate, a, b)
    return kb.b.zext(flag, _like(flag, llvm_type(np.dtype(bool))))


def _truth(kb, x):
    return kb.b.icmp_unsigned("!=", x, const(0, x))


@emitter("Not")
def _not(kb, op, args, attrs, dtypes, out):
    flag = kb.b.not_(_truth(kb, args[0]))
    return kb.b.zext(flag, args[0].type)


@emitter("And", "Or", "Xor")
def _logic(kb, op, args, attrs, dtypes, out):
    a, b = (_truth(kb, v) for v in args)
    op = {"And": kb.b.and_, "Or": kb.b.or_, "Xor": kb.b.xor}[op]
    return kb.b.zext(op(a, b), args[0].type)


@emitter("Where")
def _where(kb, op, args, attrs, dtypes, out):
    condition, a, b = args
    return select(kb, _truth(kb, condition), a, b)


@emitter("Cast")
def _cast(kb, op, args, attrs, dtypes, out):
    (x,) = args
    src, dst = dtypes[0], out
    target = _like(x, llvm_type(dst))
    if dst == np.bool_:
        flag = (kb.b.fcmp_unordered("!=", x, const(0.0, x)) if is_float(src)
                else kb.b.icmp_unsigned("!=", x, const(0, x)))
        return kb.b.zext(flag, target)
    if is_float(src) and is_float(dst):
        if src.itemsize == dst.itemsize:
            return x
        return kb.b.fpext(x, target) if dst.itemsize > src.itemsize else kb.b.fptrunc(x, target)
    if is_float(src):
        return kb.b.fptosi(x, target) if is_signed(dst) else kb.b.fptoui(x, target)
    if is_float(dst):
        return kb.b.sitofp(x, target) if is_signed(src) else kb.b.uitofp(x, target)
    if dst.itemsize == src.itemsize:
        return x
    if dst.itemsize < src.itemsize:
        return kb.b.trunc(x, target)
    return kb.b.sext(x, target) if is_signed(src) else kb.b.zext(x, target)


def _like(value: ir.Value, element: ir.Type) -> ir.Type:
    """``element``, or a vector of it as wide as ``value``."""
    if isinstance(value.type, ir.VectorType):
        return ir.VectorType(element, value.type.count)
    return element


__all__ = ["EMITTERS", "const", "emitter"]


# -- rounding, sign, trigonometry, softsign ---------------------------------------------------

_ROUNDING = {"Floor": "llvm.floor", "Ceil": "llvm.ceil", "Round": "llvm.roundeven"}


@emitter(*_ROUNDING)
def _rounding(kb, op, args, attrs, dtypes, out):
    (x,) = args
    if not is_float(out):
        return x
    # Round is numpy's round: halves go to the even neighbour.
    return kb.intrinsic(_ROUNDING[op], x.type, [x])


@emitter("Sign")
def _sign(kb, op, args, attrs, dtypes, out):
    (x,) = args
    one, zero = const(1, x), const(0, x)
    if is_float(out):
        # numpy: 1 above zero, -1 below, +0 for either zero, NaN stays NaN.
        minus = const(-1.0, x)
        y = select(kb, kb.b.fcmp_unordered("uno", x, x), x, zero)
        y = select(kb, kb.b.fcmp_ordered("<", x, zero), minus, y)
        return select(kb, kb.b.fcmp_ordered(">", x, zero), one, y)
    if not is_signed(out):
        return select(kb, kb.b.icmp_unsigned("!=", x, zero), one, zero)
    y = select(kb, kb.b.icmp_signed("<", x, zero), const(-1, x), zero)
    return select(kb, kb.b.icmp_signed(">", x, zero), one, y)


def _in_double(kb, name, x):
    """libm's double ``name`` of each lane, rounded back to float32 when ``x`` is float32:
    correctly rounded in practice (numpy's own float32 sin/cos are not, so float32 results
    may differ from the reference in the last bit)."""
    def one(v):
        if v.type == ir.DoubleType():
            return kb.libm(name, v)
        return kb.b.fptrunc(kb.libm(name, kb.b.fpext(v, ir.DoubleType())), v.type)
    return lanewise(kb, one, x)


def _via_double(kb, fn, x, dtype):
    """``fn`` on integer ``x`` computed in float64 and truncated back, as numpy does."""
    wide = ir.DoubleType() if not isinstance(x.type, ir.VectorType) else \
        ir.VectorType(ir.DoubleType(), x.type.count)
    signed = is_signed(dtype)
    value = kb.b.sitofp(x, wide) if signed else kb.b.uitofp(x, wide)
    value = fn(value)
    return kb.b.fptosi(value, x.type) if signed else kb.b.fptoui(value, x.type)


@emitter("Sin", "Cos")
def _trig(kb, op, args, attrs, dtypes, out):
    if not is_float(out):
        return _via_double(kb, lambda v: _in_double(kb, op.lower(), v), args[0], out)
    return _in_double(kb, op.lower(), args[0])


def _softsign_float(kb, x):
    magnitude = kb.intrinsic("llvm.fabs", x.type, [x])
    return kb.b.fdiv(x, kb.b.fadd(const(1.0, x), magnitude))


@emitter("Softsign")
def _softsign(kb, op, args, attrs, dtypes, out):
    if not is_float(out):
        return _via_double(kb, lambda v: _softsign_float(kb, v), args[0], out)
    return _softsign_float(kb, args[0])


# -- inverse trigonometry and hyperbolic functions (float only in ONNX) ------------------------

@emitter("Tan", "Asin", "Acos", "Atan", "Sinh", "Cosh", "Asinh", "Acosh", "Atanh")
def _more_trig(kb, op, args, attrs, dtypes, out):
    return _in_double(kb, op.lower(), args[0])


# -- activations added with opsets 10-22 ---------------------------------------------------------

@emitter("Celu")
def _celu(kb, op, args, attrs, dtypes, out):
    """``max(0, x) + min(0, alpha * expm1(x / alpha))``: one of the two terms is always 0 (the
    second has the sign of x whatever alpha's sign), so a select gives the sum exactly, and
    a NaN reaches the result through the second term."""
    (x,) = args
    alpha = const(attrs.get("alpha", 1.0), x)
    negative = kb.b.fmul(alpha, expm1(kb, kb.b.fdiv(x, alpha)))
    return select(kb, kb.b.fcmp_ordered(">", x, const(0.0, x)), x, negative)


@emitter("ThresholdedRelu")
def _thresholded_relu(kb, op, args, attrs, dtypes, out):
    """``x`` where ``x > alpha``, else 0, comparing with alpha rounded to x's type (float16
    included) as the reference does."""
    (x,) = args
    alpha = np.asarray(attrs.get("alpha", 1.0), dtypes[0]).item()
    return select(kb, kb.b.fcmp_ordered(">", x, const(alpha, x)), x, const(0.0, x))


# Above this, tanh(softplus(x)) is 1 in float64 (and float32): Mish is x itself.
_MISH_IDENTITY_FROM = 40.0


@emitter("Mish")
def _mish(kb, op, args, attrs, dtypes, out):
    """``x * tanh(softplus(x))``, as ``x * n / (n + 2)`` with ``n = e^x (e^x + 2)`` (the
    identity ``tanh(log(1 + e^x)) = ((1 + e^x)^2 - 1) / ((1 + e^x)^2 + 1)``): one exp instead
    of exp, log and tanh, and vectorizable. Large x, where n would overflow, gives x."""
    (x,) = args
    b = kb.b
    e = fast_exp(kb, x)
    n = b.fmul(e, b.fadd(e, const(2.0, x)))
    mish = b.fmul(x, b.fdiv(n, b.fadd(n, const(2.0, x))))
    return select(kb, b.fcmp_ordered(">", x, const(_MISH_IDENTITY_FROM, x)), x, mish)


@emitter("Swish")
def _swish(kb, op, args, attrs, dtypes, out):
    """``x * sigmoid(alpha * x)``, the sigmoid as ``1 / (1 + exp(-(alpha * x)))``."""
    (x,) = args
    b = kb.b
    scaled = b.fmul(const(attrs.get("alpha", 1.0), x), x)
    one = const(1.0, x)
    return b.fmul(x, b.fdiv(one, b.fadd(one, fast_exp(kb, b.fneg(scaled)))))


def _shrink_float(kb, x, bias: float, lambd: float):
    """``x + bias`` below ``-lambd``, else ``x - bias`` above ``lambd``, else 0 (NaN too)."""
    b = kb.b
    above = select(kb, b.fcmp_ordered(">", x, const(lambd, x)),
                   b.fsub(x, const(bias, x)), const(0.0, x))
    return select(kb, b.fcmp_ordered("<", x, const(-lambd, x)), b.fadd(x, const(bias, x)),
                  above)


@emitter("Shrink")
def _shrink(kb, op, args, attrs, dtypes, out):
    bias, lambd = attrs.get("bias", 0.0), attrs.get("lambd", 0.5)
    if not is_float(out):
        return _via_double(kb, lambda v: _shrink_float(kb, v, bias, lambd), args[0], out)
    return _shrink_float(kb, args[0], bias, lambd)


# -- IsNaN, IsInf, Mod -------------------------------------------------------------------------

def _as_bool(kb, flag: ir.Value) -> ir.Value:
    return kb.b.zext(flag, _like(flag, llvm_type(np.dtype(bool))))


@emitter("IsNaN")
def _is_nan(kb, op, args, attrs, dtypes, out):
    (x,) = args
    return _as_bool(kb, kb.b.fcmp_unordered("uno", x, x))


@emitter("IsInf")
def _is_inf(kb, op, args, attrs, dtypes, out):
    (x,) = args
    b = kb.b
    detected = [value for value, attr in ((np.inf, "detect_positive"),
                                          (-np.inf, "detect_negative")) if attrs.get(attr, 1)]
    if not detected:
        return ir.Constant(_like(x, llvm_type(np.dtype(bool))), None)
    flags = [b.fcmp_ordered("==", x, const(value, x)) for value in detected]
    return _as_bool(kb, flags[0] if len(flags) == 1 else b.or_(*flags))


@emitter("Mod")
def _mod(kb, op, args, attrs, dtypes, out):
    """``fmod=1``: the remainder of the quotient truncated (C's fmod, LLVM's rem);
    ``fmod=0``: of the quotient rounded down, so a nonzero result takes the divisor's sign
    (numpy's remainder, whose zero results take the divisor's sign too). Integer division by
    zero gives 0, as in numpy."""
    a, d = args
    b = kb.b
    if is_float(out):
        r = b.frem(a, d)
        if attrs.get("fmod", 0):
            return r
        zero = const(0.0, r)
        signs_differ = b.xor(b.fcmp_ordered("<", r, zero), b.fcmp_ordered("<", d, zero))
        adjusted = select(kb, b.and_(b.fcmp_ordered("!=", r, zero), signs_differ),
                          b.fadd(r, d), r)
        signed_zero = kb.intrinsic("llvm.copysign", r.type, [zero, d])
        return select(kb, b.fcmp_ordered("==", r, zero), signed_zero, adjusted)
    zero, one = const(0, d), const(1, d)
    by_zero = b.icmp_unsigned("==", d, zero)
    if not is_signed(out):
        return select(kb, by_zero, zero, b.urem(a, select(kb, by_zero, one, d)))
    # Dividing by -1 could trap (INT_MIN / -1 overflows); its remainder is 0, as by 1.
    trivial = b.or_(by_zero, b.icmp_signed("==", d, const(-1, d)))
    r = select(kb, by_zero, zero, b.srem(a, select(kb, trivial, one, d)))
    if attrs.get("fmod", 0):
        return r
    signs_differ = b.xor(b.icmp_signed("<", r, zero), b.icmp_signed("<", d, zero))
    return select(kb, b.and_(b.icmp_signed("!=", r, zero), signs_differ), b.add(r, d), r)


# -- bitwise logic and shifts (integer types only) ---------------------------------------------

@emitter("BitwiseAnd", "BitwiseOr", "BitwiseXor")
def _bitwise(kb, op, args, attrs, dtypes, out):
    a, c = args
    return {"BitwiseAnd": kb.b.and_, "BitwiseOr": kb.b.or_, "BitwiseXor": kb.b.xor}[op](a, c)


@emitter("BitwiseNot")
def _bitwise_not(kb, op, args, attrs, dtypes, out):
    return kb.b.not_(args[0])


@emitter("BitShift")
def _bit_shift(kb, op, args, attrs, dtypes, out):
    """As the reference: a shift by a negative amount or by the type's width or more (which
    LLVM leaves undefined) gives the fill, -1 for a right shift of a negative value, else 0."""
    x, amount = args
    b = kb.b
    width = const(8 * np.dtype(out).itemsize, amount)
    signed = is_signed(out)
    beyond = b.icmp_unsigned(">=", amount, width)  # a negative amount is a huge unsigned one
    amount = select(kb, beyond, const(0, amount), amount)
    fill = const(0, x)
    if attrs.get("direction") == "LEFT":
        shifted = b.shl(x, amount)
    elif signed:
        shifted = b.ashr(x, amount)
        fill = select(kb, b.icmp_signed("<", x, const(0, x)), const(-1, x), fill)
    else:
        shifted = b.lshr(x, amount)
    return select(kb, beyond, fill, shifted)


@emitter("CastLike")
def _cast_like(kb, op, args, attrs, dtypes, out):
    """Cast to the type of the second input (whose values are not read)."""
    return _cast(kb, "Cast", args[:1], attrs, dtypes[:1], out)
