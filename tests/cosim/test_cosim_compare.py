"""compare_memories: the first differing byte, the count, and regions."""

from __future__ import annotations

import numpy as np
import pytest

from byoc.cosim import CosimError, MemoryMismatch, compare_memories


def images():
    expected = np.arange(64, dtype=np.uint8)
    actual = expected.copy()
    actual[[10, 11, 40]] = [0xAA, 0xBB, 0xCC]
    return expected, actual


def test_equal_images_compare_to_none():
    expected, _ = images()
    assert compare_memories(expected, expected.copy()) is None


def test_the_first_difference_and_the_count_are_reported():
    expected, actual = images()

    mismatch = compare_memories(expected, actual)

    assert mismatch == MemoryMismatch(first=10, count=3, expected=10, actual=0xAA)
    assert str(mismatch) == "3 bytes differ; the first at 0xa: expected 0x0a, got 0xaa"


def test_only_the_regions_are_compared():
    expected, actual = images()

    assert compare_memories(expected, actual, regions=[(0, 10), (12, 40)]) is None
    mismatch = compare_memories(expected, actual, regions=[(30, 64), (11, 12), (0, 20)])
    assert (mismatch.first, mismatch.count, mismatch.actual) == (10, 3, 0xAA)
    assert compare_memories(expected, actual, regions=[(35, 64)]).first == 40


def test_mismatched_images_and_regions_are_refused():
    expected, actual = images()
    with pytest.raises(CosimError, match="equal size; expected has 64 bytes, actual 63"):
        compare_memories(expected, actual[:63])
    with pytest.raises(CosimError, match="uint8 arrays; actual is int16"):
        compare_memories(expected, actual.astype(np.int16))
    with pytest.raises(CosimError, match=r"region \(60, 70\) is not inside"):
        compare_memories(expected, actual, regions=[(60, 70)])
