"""Names plugins were told to import keep working from their old place for a release, with a
DeprecationWarning that says where they went."""

from __future__ import annotations

import importlib

import pytest

from byoc.core import integer_layers


@pytest.mark.parametrize("name", ["IntegerLayer", "integer_plans", "activation_range"])
def test_a_moved_name_warns_and_is_the_same_object(name):
    old = importlib.import_module("byoc.core.interpreter.integer_groups")
    with pytest.warns(DeprecationWarning, match=f"moved to byoc.core.integer_layers.{name}"):
        value = getattr(old, name)
    assert value is getattr(integer_layers, name)


def test_from_import_of_a_moved_name_warns():
    with pytest.warns(DeprecationWarning, match="integer_layers.integer_plans"):
        from byoc.core.interpreter.integer_groups import integer_plans  # noqa: F401


def test_a_name_that_never_was_there_is_an_attribute_error():
    old = importlib.import_module("byoc.core.interpreter.integer_groups")
    with pytest.raises(AttributeError, match="no attribute 'integer_plan'"):
        old.integer_plan  # noqa: B018
