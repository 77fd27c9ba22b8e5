"""The real-world-shaped model corpus, built once per test session."""

from __future__ import annotations

import pytest

from real_models.checks import Corpus


@pytest.fixture(scope="session")
def corpus(tmp_path_factory) -> Corpus:
    return Corpus(tmp_path_factory.mktemp("real_models"))
