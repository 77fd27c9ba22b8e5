"""Elementwise math, activations, comparisons and logic."""

from __future__ import annotations

import math
from abc import abstractmethod

import numpy as np

from byoc.core.interpreter.base import OpImpl, register

_erf = np.frompyfunc(math.erf, 1, 1)


def erf(x: np.ndarray) -> np.ndarray:
    """Error function evaluated in double precision, returned in ``x``'s dtype."""
    return _erf(x.astype(np.float64)).astype(x.dtype)


class Unary(OpImpl):
    """An op ``y = f(x)`` that keeps the dtype of ``x``."""

    def run(self, x, **attrs):
        return np.asarray(self.apply(x, **attrs)).astype(x.dtype, copy=False)

    @abstractmethod
    def apply(self, x, **attrs):
        """Implemented by each subclass."""


def _unary(op_type: str, formula):
    cls = type(op_type, (Unary,), {"apply": lambda self, x: formula(x),
                                    "__doc__": f"{op_type}, elementwise."})
    return register(op_type)(cls)


for _name, _formula in {
    "Abs": np.abs, "Neg": np.negative, "Sqrt": np.sqrt, "Exp": np.exp, "Log": np.log,
    "Reciprocal": np.reciprocal, "Tanh": np.tanh, "Floor": np.floor, "Ceil": np.ceil,
    "Sin": np.sin, "Cos": np.cos, "Sign": np.sign, "Erf": erf, "Round": np.round,
    "Relu": lambda x: np.maximum(x, 0),
    "Sigmoid": lambda x: 1 / (1 + np.exp(-x)),
    "Softplus": lambda x: np.logaddexp(0, x),
    "Softsign": lambda x: x / (1 + np.abs(x)),
    "HardSwish": lambda x: x * np.clip(x / 6 + 0.5, 0, 1),
}.items():
    _unary(_name, _formula)


@register("LeakyRelu")
class LeakyRelu(Unary):
    def apply(self, x, alpha=0.01):
        return np.where(x >= 0, x, x * np.asarray(alpha, x.dtype))


@register("Elu")
class Elu(Unary):
    def apply(self, x, alpha=1.0):
        return np.where(x > 0, x, alpha * (np.exp(np.minimum(x, 0)) - 1))


@register("Selu")
class Selu(Unary):
    def apply(self, x, alpha=1.67326319217681884765625, gamma=1.05070102214813232421875):
        return gamma * np.where(x > 0, x, alpha * (np.exp(np.minimum(x, 0)) - 1))


@register("HardSigmoid")
class HardSigmoid(Unary):
    def apply(self, x, alpha=0.2, beta=0.5):
        return np.clip(alpha * x + beta, 0, 1)


@register("Gelu")
class Gelu(Unary):
    def apply(self, x, approximate="none"):
        if approximate == "tanh":
            return 0.5 * x * (1 + np.tanh(np.sqrt(2 / np.pi) * (x + 0.044715 * x ** 3)))
        return 0.5 * x * (1 + erf(x / np.asarray(np.sqrt(2), x.dtype)))


@register("PRelu")
class PRelu(OpImpl):
    def run(self, x, slope):
        return np.where(x >= 0, x, x * slope).astype(x.dtype)


@register("Clip")
class Clip(OpImpl):
    """Clip; opsets before 11 give ``min``/``max`` as attributes, later ones as inputs."""

    def run(self, x, low=None, high=None, min=None, max=None):
        low = min if low is None else low
        high = max if high is None else high
        y = x
        if low is not None:
            y = np.maximum(y, np.asarray(low, x.dtype))
        if high is not None:
            y = np.minimum(y, np.asarray(high, x.dtype))
        return y.astype(x.dtype, copy=False)


def _binary(op_type: str, formula):
    cls = type(op_type, (OpImpl,), {"run": lambda self, a, b: np.asarray(formula(a, b)),
                                    "__doc__": f"{op_type}, with numpy broadcasting."})
    return register(op_type)(cls)


def _divide(a, b):
    if np.issubdtype(a.dtype, np.integer):
        return np.trunc(a.astype(np.float64) / b).astype(a.dtype)
    return (a / b).astype(a.dtype)


def _power(a, b):
    if np.issubdtype(a.dtype, np.integer):
        return np.power(a.astype(np.int64), b.astype(np.int64)).astype(a.dtype)
    return np.power(a, b.astype(a.dtype)).astype(a.dtype)


for _name, _formula in {
    "Add": lambda a, b: (a + b).astype(a.dtype), "Sub": lambda a, b: (a - b).astype(a.dtype),
    "Mul": lambda a, b: (a * b).astype(a.dtype), "Div": _divide, "Pow": _power,
    "Equal": np.equal, "Less": np.less, "Greater": np.greater,
    "LessOrEqual": np.less_equal, "GreaterOrEqual": np.greater_equal,
    "And": np.logical_and, "Or": np.logical_or, "Xor": np.logical_xor,
}.items():
    _binary(_name, _formula)


@register("Not")
class Not(OpImpl):
    def run(self, x):
        return np.logical_not(x)


class Variadic(OpImpl):
    """An op folding any number of broadcast inputs."""

    def run(self, *xs):
        return self.combine(list(xs)).astype(xs[0].dtype)


@register("Min")
class Min(Variadic):
    def combine(self, xs):
        return np.minimum.reduce(np.broadcast_arrays(*xs)) if len(xs) > 1 else xs[0]


@register("Max")
class Max(Variadic):
    def combine(self, xs):
        return np.maximum.reduce(np.broadcast_arrays(*xs)) if len(xs) > 1 else xs[0]


@register("Sum")
class Sum(Variadic):
    def combine(self, xs):
        total = xs[0]
        for x in xs[1:]:
            total = total + x
        return np.asarray(total)


@register("Mean")
class Mean(Variadic):
    def combine(self, xs):
        total = xs[0]
        for x in xs[1:]:
            total = total + x
        return np.asarray(total / np.asarray(len(xs), xs[0].dtype))


@register("Where")
class Where(OpImpl):
    def run(self, condition, x, y):
        return np.where(condition, x, y).astype(x.dtype)
