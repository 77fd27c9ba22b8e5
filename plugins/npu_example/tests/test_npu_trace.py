"""npu_example's device trace: one event per command, named after its layer's ONNX node,
whose cycles are the simulator's and add up to its cycle counter."""

from __future__ import annotations

import numpy as np
import pytest

import byoc
from byoc.report.trace import chrome_trace
from byoc.testing import qdq_layer_model
from byoc_npu_example.command_stream import Opcode
from byoc_npu_example.config import CONFIG
from byoc_npu_example.sim import command_cycles


def test_commands_add_up_to_the_simulators_cycles():
    weight = np.random.default_rng(0).integers(-60, 60, (24, 16, 3, 3)).astype(np.int8)
    model = qdq_layer_model("Conv", [1, 16, 10, 10], weight, attrs={"pads": [1] * 4},
                            activation="Relu")
    compiled = byoc.compile(model, plugins=["npu_example"], placement="priority")
    feeds = {"x": np.random.default_rng(1).uniform(-3, 3, (1, 16, 10, 10)).astype(np.float32)}
    _, profiles = compiled.profile(feeds)
    (profile,) = [p for p in profiles if p.plugin == "npu_example"]
    device = profile.device
    (event,) = device.events
    assert event.name == next(n.name for n in model.graph.node if n.op_type == "Conv")
    assert event.nodes == (event.name,) and event.start_cycle == 0
    # 100 pixels x 24 channels x 144 taps of MACs on 256 a cycle outweigh the DRAM traffic.
    assert event.cycles == CONFIG.command_cycles + -(-100 * 24 * 144 // CONFIG.macs_per_cycle)
    assert device.cycles == profile.counters["cycles"] == event.cycles
    assert profile.counter_help["cycles"].endswith("cycles")
    events = chrome_trace(profiles, compiled.name)["traceEvents"]
    partition = next(e for e in events if e.get("args", {}).get("plugin") == "npu_example")
    assert partition["args"]["cycles"] == device.cycles
    (layer,) = [e for e in events if e.get("cat") == "device"]
    assert layer["dur"] == pytest.approx(event.cycles / CONFIG.clock_hz * 1e6)


@pytest.mark.parametrize("opcode, work, cycles", [
    (Opcode.CONV2D, {"macs": 2560, "bytes_read": 16, "bytes_written": 16}, 10),
    (Opcode.POOL, {"bytes_read": 1600, "bytes_written": 160}, 110),     # DRAM-bound
    (Opcode.ELTWISE_ADD, {"bytes_read": 32, "bytes_written": 320}, 22),  # vector-bound
])
def test_a_command_takes_the_longer_of_its_arithmetic_and_its_traffic(opcode, work, cycles):
    from collections import Counter

    assert command_cycles(Counter(work), opcode) == CONFIG.command_cycles + cycles
