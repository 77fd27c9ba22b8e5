"""Replays every case the partition fuzz tests saved in regressions/ through the same
properties (:func:`tests.reliability.fuzz_properties.check_case`), with the compile settings
and input seed stored in the model's metadata. The folder must hold at least one saved case:
an empty one would let the replay pass having checked nothing."""

from __future__ import annotations

import pytest

from tests.reliability.fuzz_graphs import load_case
from tests.reliability.fuzz_properties import check_case
from tests.reliability.test_fuzz_partition import REGRESSIONS

SAVED = sorted(REGRESSIONS.glob("*.onnx"))


def test_the_regressions_folder_holds_saved_cases():
    assert SAVED, (f"{REGRESSIONS} holds no saved fuzz case (*.onnx), so the replay checks "
                   f"nothing: restore the saved cases of tests/reliability/regressions/ from "
                   f"git, or point BYOC_FUZZ_REGRESSIONS at a folder that holds some")


@pytest.mark.parametrize("path", SAVED, ids=lambda p: p.stem)
def test_saved_fuzz_case(path):
    check_case(load_case(path))
