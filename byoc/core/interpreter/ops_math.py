"""Trigonometric and hyperbolic functions, Mod, and the IsNaN/IsInf tests."""

from __future__ import annotations

import numpy as np

from byoc.core.interpreter.base import OpImpl, register
from byoc.core.interpreter.ops_elementwise import Unary


def _register_unary(op_type: str, formula) -> None:
    cls = type(op_type, (Unary,), {"apply": lambda self, x: formula(x),
                                    "__doc__": f"{op_type}, elementwise."})
    register(op_type)(cls)


for _name, _formula in {
    "Tan": np.tan, "Asin": np.arcsin, "Acos": np.arccos, "Atan": np.arctan,
    "Sinh": np.sinh, "Cosh": np.cosh, "Asinh": np.arcsinh, "Acosh": np.arccosh,
    "Atanh": np.arctanh,
}.items():
    _register_unary(_name, _formula)


@register("Mod")
class Mod(OpImpl):
    """Mod with numpy broadcasting. ``fmod=0`` rounds the quotient down (the result takes the
    sign of ``B``, as Python's ``%``); ``fmod=1`` truncates it (the sign of ``A``, as C's
    ``fmod``). Integer division by zero gives 0, float gives NaN.

    Floats need ``fmod=1`` before opset 28; opset 28 defines ``fmod=0`` for them too, with
    the special cases of IEEE ``remainder`` rounded down, which numpy's ``remainder`` has.
    """

    def check(self, a, b, fmod=0):
        if fmod not in (0, 1):
            raise ValueError(f"Mod's fmod attribute must be 0 or 1; got {fmod}")
        if a.dtype.kind == "f" and not fmod and self.opset < 28:
            raise ValueError(f"Mod of {a.dtype} inputs needs fmod=1 before opset 28 (the model "
                             f"imports opset {self.opset}); set fmod=1 or convert the model "
                             f"to opset 28")

    def run(self, a, b, fmod=0):
        with np.errstate(divide="ignore", invalid="ignore"):
            result = np.fmod(a, b) if fmod else np.remainder(a, b)
        return result.astype(a.dtype, copy=False)


@register("IsNaN")
class IsNaN(OpImpl):
    def run(self, x):
        return np.isnan(x)


@register("IsInf")
class IsInf(OpImpl):
    """True where ``x`` is an infinity of a sign the attributes ask to detect."""

    def run(self, x, detect_negative=1, detect_positive=1):
        return (np.isneginf(x) & bool(detect_negative)) | (np.isposinf(x) & bool(detect_positive))
