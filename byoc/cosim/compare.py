"""Comparing a memory image the RTL wrote with the one a reference model expects."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from byoc.errors import CosimError


@dataclass(frozen=True)
class MemoryMismatch:
    """Where two memory images differ: the first differing byte and how many bytes differ."""

    first: int
    count: int
    expected: int
    actual: int

    def __str__(self) -> str:
        plural = "byte differs" if self.count == 1 else "bytes differ"
        return (f"{self.count} {plural}; the first at 0x{self.first:x}: expected "
                f"0x{self.expected:02x}, got 0x{self.actual:02x}")


def compare_memories(expected: np.ndarray, actual: np.ndarray,
                     regions: Iterable[tuple[int, int]] | None = None) -> MemoryMismatch | None:
    """None when the uint8 images are equal, else the first difference.

    ``regions`` restricts the comparison to the byte ranges [start, stop); bytes outside all of
    them are ignored. By default every byte is compared.
    """
    for name, array in (("expected", expected), ("actual", actual)):
        if not isinstance(array, np.ndarray) or array.dtype != np.uint8:
            raise CosimError(f"compare_memories needs numpy uint8 arrays; {name} is "
                             f"{getattr(array, 'dtype', type(array).__name__)}.")
    if expected.size != actual.size:
        raise CosimError(f"compare_memories needs images of equal size; expected has "
                         f"{expected.size} bytes, actual {actual.size}.")
    expected, actual = expected.reshape(-1), actual.reshape(-1)
    differs = expected != actual
    if regions is not None:
        compared = np.zeros_like(differs)
        for start, stop in regions:
            if not 0 <= start <= stop <= expected.size:
                raise CosimError(f"compare_memories: region ({start}, {stop}) is not inside "
                                 f"the {expected.size}-byte images.")
            compared[start:stop] = True
        differs &= compared
    count = int(np.count_nonzero(differs))
    if count == 0:
        return None
    first = int(np.argmax(differs))
    return MemoryMismatch(first=first, count=count, expected=int(expected[first]),
                          actual=int(actual[first]))
