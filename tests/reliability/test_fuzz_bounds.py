"""The bounds property 7 holds a partition of vta_sim layers to (fuzz_properties.py,
stepped_bounds), on the saved case where three chained convolutions run in one partition and
the second layer's declared step grows to two steps after the third."""

from __future__ import annotations

import numpy as np
import pytest

from tests.reliability.fuzz_graphs import load_case
from tests.reliability.fuzz_properties import (
    PropertyFailure,
    compare_bounds,
    compile_case,
    reference_values,
    stepped_bounds,
)
from tests.reliability.test_fuzz_partition import REGRESSIONS

CHAIN = REGRESSIONS / "d2c8fa58e428.onnx"  # v13, v31, v40: the three layers' outputs


@pytest.fixture(scope="module")
def chain():
    case = load_case(CHAIN)
    compiled = compile_case(case)
    env = reference_values(compiled.graph, case.inputs())
    partition = next(p for p in compiled.plan.partitions if p.plugin == "vta_sim")
    return compiled, partition, env


def test_a_layer_fed_exact_inputs_may_be_off_by_its_declared_step_only(chain):
    compiled, partition, env = chain
    lo, hi = stepped_bounds(compiled, partition, env)["v13"]
    want = env["v13"].astype(np.int64)
    info = np.iinfo(env["v13"].dtype)
    np.testing.assert_array_equal(lo, np.maximum(want - 1, info.min))
    np.testing.assert_array_equal(hi, np.minimum(want + 1, info.max))


def test_bounds_follow_a_step_through_the_next_layers(chain):
    compiled, partition, env = chain
    bounds = stepped_bounds(compiled, partition, env)
    lo, hi = bounds["v40"]
    assert np.all(lo <= env["v40"]) and np.all(env["v40"] <= hi)
    assert np.any(hi.astype(np.int64) - lo > 2)  # wider than the last layer's own step
    part = next(p for p in compiled.parts if p.signature.name == partition.name)
    got = part.runtime.run({v: env[v] for v in part.signature.inputs})["v40"]
    assert np.any(got != env["v40"])  # vta_sim is off here, within the bounds
    compare_bounds("v40", got, env["v40"], bounds["v40"], compiled, "vta_sim")
    beyond = hi.astype(np.int64) + 1
    outside = np.where(beyond <= np.iinfo(np.int8).max, beyond, lo.astype(np.int64) - 1)
    with pytest.raises(PropertyFailure, match="outside its bounds in 112 of 112"):
        compare_bounds("v40", outside.astype(np.int8), env["v40"], bounds["v40"], compiled,
                       "vta_sim")
