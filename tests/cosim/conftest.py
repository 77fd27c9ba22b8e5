"""Fixtures of the co-simulation tests: one build cache per session, fresh toy models."""

from __future__ import annotations

import pytest

from cosim.toys import build_copier, build_counter, reset


@pytest.fixture(scope="session")
def cosim_cache(tmp_path_factory):
    """A build cache shared by the session's tests, so each toy is Verilated once."""
    return tmp_path_factory.mktemp("cosim_cache")


@pytest.fixture
def copier(cosim_cache):
    """A byte_copier just out of reset, with no memories attached."""
    model = build_copier(cosim_cache)
    reset(model)
    return model


@pytest.fixture
def counter(cosim_cache):
    """A cycle_counter just out of reset."""
    model = build_counter(cosim_cache)
    reset(model)
    return model
