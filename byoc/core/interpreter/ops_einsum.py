"""Einsum: Einstein summation over any equation ONNX allows (ellipsis, repeated indices for
diagonals, implicit output)."""

from __future__ import annotations

import string
from dataclasses import dataclass

import numpy as np

from byoc.core.interpreter.base import OpImpl, accumulation_dtype, register

ELLIPSIS = "..."


@dataclass(frozen=True)
class EinsumEquation:
    """A parsed equation: one term of subscript letters per input (with ``...`` kept as one
    item) and the output term, made explicit when the equation leaves it implicit."""

    inputs: tuple[tuple[str, ...], ...]
    output: tuple[str, ...]

    def text(self) -> str:
        """The equation in explicit form, as numpy.einsum reads it."""
        return ",".join("".join(term) for term in self.inputs) + "->" + "".join(self.output)

    def letter_sizes(self, shapes: list[tuple[int, ...]]) -> dict[str, int]:
        """The size of every subscript letter, checked to agree across all its uses."""
        sizes: dict[str, int] = {}
        for position, (term, shape) in enumerate(zip(self.inputs, shapes)):
            for letter, size in zip(term_axes(term, len(shape)), shape):
                if letter == ELLIPSIS:
                    continue
                if sizes.setdefault(letter, size) != size:
                    raise ValueError(f"Einsum subscript {letter!r} is {sizes[letter]} long in "
                                     f"one use and {size} in input {position} (shape "
                                     f"{list(shape)}); every use of a letter must have the same "
                                     f"size")
        return sizes


def term_axes(term: tuple[str, ...], rank: int) -> list[str]:
    """One subscript per axis of an operand of ``rank`` dims: ``...`` stands for as many axes
    as the letters leave."""
    if ELLIPSIS not in term:
        return list(term)
    at = term.index(ELLIPSIS)
    covered = rank - (len(term) - 1)
    return list(term[:at]) + [ELLIPSIS] * covered + list(term[at + 1:])


def parse_term(text: str, equation: str) -> tuple[str, ...]:
    if text.count(ELLIPSIS) > 1 or text.replace(ELLIPSIS, "").count(".") > 0:
        raise ValueError(f"Einsum equation {equation!r}: term {text!r} may hold one '...' and "
                         f"no other '.'")
    head, dots, tail = text.partition(ELLIPSIS)
    letters = head + tail
    bad = [c for c in letters if c not in string.ascii_letters]
    if bad:
        raise ValueError(f"Einsum equation {equation!r}: {bad[0]!r} is not a subscript; use "
                         f"letters a-z, A-Z and '...'")
    return tuple(head) + ((ELLIPSIS,) if dots else ()) + tuple(tail)


def parse_equation(equation: str, n_inputs: int) -> EinsumEquation:
    """Parse an ONNX Einsum equation. Without ``->``, the output holds the broadcast
    ellipsis axes, then every letter used exactly once, in alphabetical order."""
    compact = equation.replace(" ", "")
    left, arrow, right = compact.partition("->")
    inputs = tuple(parse_term(text, equation) for text in left.split(","))
    if len(inputs) != n_inputs:
        raise ValueError(f"Einsum equation {equation!r} has {len(inputs)} input terms but the "
                         f"node has {n_inputs} inputs")
    used = [letter for term in inputs for letter in term if letter != ELLIPSIS]
    if arrow:
        output = parse_term(right, equation)
        for letter in output:
            if letter != ELLIPSIS and (letter not in used or output.count(letter) > 1):
                raise ValueError(f"Einsum equation {equation!r}: output subscript {letter!r} "
                                 f"must appear once in the output and in some input")
    else:
        has_ellipsis = any(ELLIPSIS in term for term in inputs)
        once = sorted(letter for letter in set(used) if used.count(letter) == 1)
        output = ((ELLIPSIS,) if has_ellipsis else ()) + tuple(once)
    return EinsumEquation(inputs, output)


def ellipsis_shape(equation: EinsumEquation, shapes: list[tuple[int, ...]]) -> tuple[int, ...]:
    """The broadcast shape of the axes ``...`` stands for, over all inputs."""
    covered = []
    for position, (term, shape) in enumerate(zip(equation.inputs, shapes)):
        letters = len(term) - (ELLIPSIS in term)
        if len(shape) < letters or (ELLIPSIS not in term and len(shape) != letters):
            raise ValueError(f"Einsum term {''.join(term)!r} does not fit input {position} of "
                             f"rank {len(shape)} (shape {list(shape)})")
        axes = term_axes(term, len(shape))
        covered.append(tuple(size for letter, size in zip(axes, shape) if letter == ELLIPSIS))
    try:
        return np.broadcast_shapes(*covered)
    except ValueError:
        raise ValueError(f"Einsum: the axes '...' stands for do not broadcast across the "
                         f"inputs ({', '.join(str(list(c)) for c in covered)})") from None


@register("Einsum")
class Einsum(OpImpl):
    """Einsum. Float products accumulate in float64 and round once.

    When the output term leaves out ``...`` although the inputs hold axes for it, those axes
    are summed like any other subscript missing from the output.
    """

    def check(self, *inputs, equation):
        parsed = parse_equation(equation, len(inputs))
        shapes = [x.shape for x in inputs]
        ellipsis_shape(parsed, shapes)
        parsed.letter_sizes(shapes)

    def run(self, *inputs, equation):
        parsed = parse_equation(equation, len(inputs))
        shapes = [x.shape for x in inputs]
        ellipsis_rank = len(ellipsis_shape(parsed, shapes))
        parsed.letter_sizes(shapes)
        summed_ellipsis = 0 if ELLIPSIS in parsed.output else ellipsis_rank
        if summed_ellipsis:
            parsed = EinsumEquation(parsed.inputs, (ELLIPSIS,) + parsed.output)
        dtype = accumulation_dtype(inputs[0].dtype)
        result = np.einsum(parsed.text(), *(x.astype(dtype) for x in inputs), optimize=True)
        result = np.asarray(result).sum(axis=tuple(range(summed_ellipsis)))
        return result.astype(inputs[0].dtype)
