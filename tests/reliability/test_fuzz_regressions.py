"""Replays every case the partition fuzz tests saved in regressions/ through the same
properties (:func:`tests.reliability.fuzz_properties.check_case`), with the compile settings
and input seed stored in the model's metadata. An empty folder means nothing to replay."""

from __future__ import annotations

import pytest

from tests.reliability.fuzz_graphs import load_case
from tests.reliability.fuzz_properties import check_case
from tests.reliability.test_fuzz_partition import REGRESSIONS


@pytest.mark.parametrize("path", sorted(REGRESSIONS.glob("*.onnx")), ids=lambda p: p.stem)
def test_saved_fuzz_case(path):
    check_case(load_case(path))
