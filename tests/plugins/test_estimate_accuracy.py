"""How close each accelerator plugin's estimate comes to what its device does, per
partition of int8 CNNs of varied shapes (residual Adds, pools left to the host, odd image
sizes, channel counts that are not multiples of 16, strides 1 and 2, kernels 1 to 5). A
partition's estimate is the sum of its matches' (as placement and ``byoc estimate`` add
them): vta_sim's within 5% of the RTL's cycles, npu_example's within 10% of its
simulator's."""

from __future__ import annotations

import functools

import onnx
import pytest
from plugins.int8_models import (
    CNNS,
    RESIDUAL_CNNS,
    compiled_with_estimates,
    residual_cnn,
)

from byoc.testing import qdq_cnn, zoo_module


@functools.cache
def model(name: str, tmp_dir: str) -> onnx.ModelProto:
    if name in CNNS:
        return qdq_cnn(*CNNS[name])
    if name in RESIDUAL_CNNS:
        return residual_cnn(*RESIDUAL_CNNS[name])
    return onnx.load(zoo_module().build(name, tmp_dir))


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    folder = str(tmp_path_factory.mktemp("accuracy"))
    return lambda name: model(name, folder)


def misses(rows, counter: str, tolerance: float) -> list[str]:
    """The partitions whose summed estimate is off the device's ``counter`` by more than
    ``tolerance``, described."""
    out = []
    for partition, estimates, counters in rows:
        estimated, measured = sum(e.cycles for e in estimates), counters[counter]
        if abs(estimated - measured) > tolerance * measured:
            out.append(f"{partition.name} ({', '.join(m.pattern for m in partition.matches)}):"
                       f" estimate {estimated}, device {measured}")
    return out


@pytest.mark.slow
@pytest.mark.cosim
@pytest.mark.parametrize("name", [*CNNS, *RESIDUAL_CNNS, "cnn_int8"])
def test_vta_sim_estimate_is_within_5_percent_of_the_rtl_cycles(name, models):
    rows = compiled_with_estimates(models(name), "vta_sim",
                                   plugin_options={"vta_sim": {"target": "rtl"}})
    patterns = {m.pattern for partition, _, _ in rows for m in partition.matches}
    if name in RESIDUAL_CNNS:
        assert "vta_sim.qdq_add" in patterns      # the residual Adds are on the accelerator
    assert misses(rows, "cycles", 0.05) == []


@pytest.mark.parametrize("name", ["odd15", "res15", "mobilenet_int8"])
def test_npu_example_estimate_is_within_10_percent_of_its_simulator(name, models):
    rows = compiled_with_estimates(models(name), "npu_example")
    assert misses(rows, "cycles", 0.10) == []
