"""Bitwise logic and shifts on integer tensors."""

from __future__ import annotations

import numpy as np

from byoc.core.interpreter.base import OpImpl, register


def _register_binary(op_type: str, formula) -> None:
    cls = type(op_type, (OpImpl,), {"run": lambda self, a, b: formula(a, b),
                                    "__doc__": f"{op_type}, with numpy broadcasting."})
    register(op_type)(cls)


for _name, _formula in {
    "BitwiseAnd": np.bitwise_and, "BitwiseOr": np.bitwise_or, "BitwiseXor": np.bitwise_xor,
}.items():
    _register_binary(_name, _formula)


@register("BitwiseNot")
class BitwiseNot(OpImpl):
    def run(self, x):
        return np.invert(x)


@register("BitShift")
class BitShift(OpImpl):
    """Shift ``x`` by ``y`` bits (numpy broadcasting), as opset 28 defines it for every
    integer type (opset 11 has only the unsigned ones, where both definitions agree).

    A left shift drops the bits pushed out of the top, the sign bit included; a right shift
    of a signed value copies the sign bit in. A shift by a negative amount or by the width
    of the type or more leaves only the fill: -1 for a right shift of a negative value, 0
    otherwise (C leaves such shifts undefined, so they are never handed to numpy).
    """

    DIRECTIONS = ("LEFT", "RIGHT")

    def check(self, x, y, direction=None):
        if direction not in self.DIRECTIONS:
            raise ValueError(f"BitShift's direction attribute must be LEFT or RIGHT; got "
                             f"{direction!r}")

    def run(self, x, y, direction=None):
        self.check(x, y, direction)
        width = x.dtype.itemsize * 8
        unsigned = np.dtype(f"u{x.dtype.itemsize}")
        beyond = (y < 0) | (y >= width)
        amount = np.where(beyond, 0, y).astype(unsigned)
        if direction == "LEFT":
            # Shifted as unsigned, where dropping the top bits is defined, then reinterpreted.
            shifted = np.left_shift(x.astype(unsigned), amount).astype(x.dtype)
            fill = np.zeros((), x.dtype)
        else:
            shifted = np.right_shift(x, amount.astype(x.dtype))
            fill = np.where(x < 0, -1, 0).astype(x.dtype)
        return np.where(beyond, fill, shifted).astype(x.dtype, copy=False)
