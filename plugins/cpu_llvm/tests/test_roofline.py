"""cpu_llvm's roofline: how a match is priced, the launch it declares, and the cache of its
measured figures. Nothing here times anything (the benchmark benchmarks/placement.py compares
the estimates with measured time)."""

from __future__ import annotations

import json
import math
from dataclasses import asdict, replace

import numpy as np
import pytest
from onnx import TensorProto, helper

import byoc
from byoc.core.flops import graph_flops
from byoc.core.integer_layers import integer_plans
from byoc.testing import make_model, qdq_layer_model
from byoc_cpu_llvm import plugin, roofline
from byoc_cpu_llvm.roofline import Peaks, estimate

# Figures far apart, so that a match priced at the wrong one is off by orders of magnitude;
# bandwidth so high that moving bytes never bounds a match here.
PEAKS = Peaks(float_flops=1e11, int8_flops=4e11, grouped_float_flops=1e9,
              grouped_int8_flops=4e9, float_group_seconds=1e-7, int8_group_seconds=3e-7,
              bandwidth=1e30, kernel_seconds=1e-8, product_seconds=2e-6,
              launch_seconds=3e-6, cpu="test")


def float_conv(channels: int, group: int):
    weight = np.ones((channels, channels // group, 3, 3), np.float32)
    node = helper.make_node("Conv", ["x", "w"], ["y"], pads=[1] * 4, group=group)
    return byoc.import_model(make_model(
        [node], [("x", TensorProto.FLOAT, [1, channels, 8, 8])],
        [("y", TensorProto.FLOAT, [1, channels, 8, 8])], {"w": weight}))


def int8_conv_layer(channels: int, group: int):
    """An int8 QDQ convolution's graph and the nodes of its integer layer (one match)."""
    weight = np.ones((channels, channels // group, 3, 3), np.int8)
    graph = byoc.import_model(qdq_layer_model("Conv", [1, channels, 8, 8], weight,
                                              attrs={"pads": [1] * 4, "group": group}))
    (plan,) = integer_plans(graph).values()
    return graph, list(plan.layer.nodes)


def test_a_depthwise_conv_is_priced_per_group_and_at_the_grouped_rate():
    graph = float_conv(16, group=16)
    expected = (PEAKS.kernel_seconds + PEAKS.product_seconds + 16 * PEAKS.float_group_seconds
                + graph_flops(graph) / PEAKS.grouped_float_flops)
    priced = estimate(list(graph.nodes), graph, PEAKS)
    assert priced.seconds == pytest.approx(expected)
    assert "grouped float peak 1.0 GFLOP/s" in priced.basis


def test_a_dense_conv_is_priced_at_the_dense_rate():
    graph = float_conv(16, group=1)
    expected = (PEAKS.kernel_seconds + PEAKS.product_seconds
                + graph_flops(graph) / PEAKS.float_flops)
    assert estimate(list(graph.nodes), graph, PEAKS).seconds == pytest.approx(expected)


def test_an_int8_depthwise_layer_is_one_kernel_at_the_int8_grouped_figures():
    graph, layer = int8_conv_layer(16, group=16)
    expected = (PEAKS.kernel_seconds + PEAKS.product_seconds + 16 * PEAKS.int8_group_seconds
                + graph_flops(graph, layer) / PEAKS.grouped_int8_flops)
    assert estimate(layer, graph, PEAKS).seconds == pytest.approx(expected)


def test_an_elementwise_node_pays_a_kernel_and_no_product_set_up():
    node = helper.make_node("Relu", ["x"], ["y"])
    graph = byoc.import_model(make_model([node], [("x", TensorProto.FLOAT, [1, 16])],
                                         [("y", TensorProto.FLOAT, [1, 16])]))
    assert estimate(list(graph.nodes), graph, PEAKS).seconds == pytest.approx(
        PEAKS.kernel_seconds)


def test_two_grouped_convs_give_back_the_cost_per_group_and_the_rate_they_were_made_of():
    per_group, rate = 2e-7, 3e9

    def seconds(groups, flops):
        return groups, flops, groups * per_group + flops / rate

    solved = roofline._group_and_rate(seconds(128, 36_864), seconds(16, 903_168))
    assert solved == pytest.approx((per_group, rate))
    # noise that would make the cost per group negative: none, and the large conv's rate
    assert roofline._group_and_rate((128, 36_864, 1e-6), (16, 903_168, 3e-4)) == (
        0.0, pytest.approx(903_168 / 3e-4))


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """A fresh cache directory and no peaks in memory; measuring gives PEAKS and is
    counted."""
    monkeypatch.setenv("BYOC_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(roofline, "_PEAKS", {})
    measured = []
    monkeypatch.setattr(roofline, "measure_peaks", lambda: measured.append(1) or PEAKS)
    return roofline._cache_file(None), measured


def test_cpu_llvm_declares_its_measured_launch_and_moves_nothing(cache):
    transfer = plugin.byoc_estimate_transfer()
    assert transfer.launch == PEAKS.launch_seconds > 0
    assert (transfer.bandwidth, transfer.latency) == (math.inf, 0.0)


def test_the_peaks_are_measured_once_then_read_from_the_cache(cache, monkeypatch):
    path, measured = cache
    assert roofline.machine_peaks() == PEAKS and measured == [1]
    assert json.loads(path.read_text()) == asdict(PEAKS)
    monkeypatch.setattr(roofline, "_PEAKS", {})
    assert roofline.machine_peaks() == PEAKS and measured == [1]


@pytest.mark.parametrize("written", [
    {"float_flops": 1e11, "int8_flops": 1e11, "bandwidth": 1e10, "kernel_seconds": 6e-8,
     "cpu": "test"},                                   # an older byoc's file: figures missing
    {**asdict(PEAKS), "grouped_int8_flops": 0.0},      # a figure that is not a rate
    {**asdict(PEAKS), "launch_seconds": "3 us"},       # not a number
], ids=["missing figures", "zero rate", "not a number"])
def test_a_cached_file_without_every_valid_figure_is_measured_again(cache, written):
    path, measured = cache
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(written))
    assert roofline.machine_peaks() == PEAKS and measured == [1]
    assert json.loads(path.read_text()) == asdict(PEAKS)


def test_peaks_name_the_figure_that_is_wrong():
    with pytest.raises(ValueError, match="launch_seconds=-1.0: expected a finite number >= 0"):
        replace(PEAKS, launch_seconds=-1.0)


def test_the_figures_are_measured_once_per_process_wherever_the_cache_points(cache, tmp_path,
                                                                               monkeypatch):
    """Tests point BYOC_CACHE_DIR at a new directory for each test (the JIT's cache): the
    machine's figures stay in memory and are not measured again for each of them."""
    _, measured = cache
    assert roofline.machine_peaks() == PEAKS and measured == [1]
    monkeypatch.setenv("BYOC_CACHE_DIR", str(tmp_path / "elsewhere"))
    assert roofline.machine_peaks() == PEAKS and measured == [1]
