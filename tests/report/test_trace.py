"""``byoc run --profile`` and ``--trace``: the Chrome trace's schema, the profile's totals and
explained counters, and the command line's refusals. The plugins' device traces are tested
with the plugins (test_vta_trace.py, test_npu_trace.py)."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

import byoc
from byoc.compiled import PartitionProfile
from byoc.errors import PluginError
from byoc.plugins.api import DeviceEvent, DeviceTrace
from byoc.report.trace import chrome_trace
from byoc.summary import format_profile

DEVICE = DeviceTrace(300, [DeviceEvent("conv1", ["conv1"], 0, 200),
                           DeviceEvent("conv2", ["conv2"], 200, 100)], 100e6, "assumed")
PROFILES = [
    PartitionProfile("p0_cpu_llvm", "cpu_llvm", 0.002, {"runs": 1}, ["q"], 0.0),
    PartitionProfile("p1_vta_sim", "vta_sim", 0.010, {"cycles": 300},
                     ["conv1", "conv2"], 0.003, {"cycles": "clock cycles, cycles"}, DEVICE),
]


def test_the_trace_is_chrome_trace_json_in_microseconds():
    trace = json.loads(json.dumps(chrome_trace(PROFILES, "m")))
    assert set(trace) == {"traceEvents"}
    events = trace["traceEvents"]
    for event in events:
        assert event["ph"] in ("X", "M") and {"name", "pid", "tid", "args"} <= set(event)
    names = {(e["pid"], e["tid"]): e["args"]["name"] for e in events
             if e["ph"] == "M" and e["name"] == "thread_name"}
    host, device = (e for e in events if e["ph"] == "X" and e["name"] == "p1_vta_sim"), \
        [e for e in events if e["ph"] == "X" and e.get("cat") == "device"]
    host = next(host)
    assert names[(host["pid"], host["tid"])] == "partitions"
    assert host["ts"] == pytest.approx(3000) and host["dur"] == pytest.approx(10000)
    assert host["args"] == {"plugin": "vta_sim", "nodes": ["conv1", "conv2"], "cycles": 300}
    first_partition = next(e for e in events if e["name"] == "p0_cpu_llvm")
    assert first_partition["args"]["cycles"] is None
    # 200 cycles at 100 MHz are 2 us, starting with the partition; the next layer follows.
    assert [(e["name"], e["ts"], e["dur"], e["args"]["cycles"]) for e in device] == [
        ("conv1", pytest.approx(3000), pytest.approx(2), 200),
        ("conv2", pytest.approx(3002), pytest.approx(1), 100)]
    assert names[(device[0]["pid"], device[0]["tid"])] == "vta_sim at 100 MHz (assumed)"


def test_the_profile_shows_totals_cycles_and_every_counter_explained():
    text = format_profile(PROFILES)
    assert "total: 13.000 ms wall time" in text and "12.000 ms host time in 2 partitions" in text
    assert "device cycles: vta_sim 300" in text
    assert "cycles  300  clock cycles, cycles" in text
    assert "runs  1  not explained by the plugin" in text


@pytest.mark.parametrize("trace, problem", [
    ({"cycles": -1, "events": [], "clock_hz": 1e6, "clock": ""}, "whole number"),
    ({"cycles": 10, "events": [], "clock_hz": 0, "clock": ""}, "clock frequency"),
    ({"cycles": 10, "events": [DeviceEvent("a", (), 5, 6)], "clock_hz": 1e6, "clock": ""},
     "ends at cycle 11, after the run's 10 cycles"),
])
def test_a_device_trace_that_makes_no_sense_is_refused(trace, problem):
    with pytest.raises(PluginError, match=problem):
        DeviceTrace(**trace)


def byoc_cli(*args):
    return subprocess.run([sys.executable, "-m", "byoc.cli", *map(str, args)],
                          capture_output=True, text=True, timeout=120)


@pytest.fixture
def artifact(tmp_path, conv_bn_relu_model):
    path = tmp_path / "model.byoc"
    byoc.compile(conv_bn_relu_model).save(path)
    return path


def test_run_writes_a_trace_json_load_reads(artifact, tmp_path):
    ran = byoc_cli("run", artifact, "--trace", tmp_path / "run.json")
    assert ran.returncode == 0 and "Traceback" not in ran.stderr, ran.stderr
    with open(tmp_path / "run.json") as file:
        events = json.load(file)["traceEvents"]
    partitions = [e for e in events if e.get("cat") == "partition"]
    assert partitions and all(e["ph"] == "X" and e["dur"] >= 0 for e in partitions)
    # The optimized graph's nodes: the BatchNormalization is folded into the Conv.
    assert sorted(n for e in partitions for n in e["args"]["nodes"]) == ["conv", "relu"]


@pytest.mark.parametrize("where", ["missing/run.json", "."])
def test_an_unwritable_trace_path_is_refused_before_the_run(artifact, tmp_path, where):
    ran = byoc_cli("run", artifact, "--trace", tmp_path / where)
    assert ran.returncode == 1 and "Traceback" not in ran.stderr
    assert ran.stderr.startswith("byoc: error: cannot write the trace to")
    assert ran.stdout == ""


def test_an_artifact_saved_without_node_names_profiles_with_none(artifact, tmp_path):
    import zipfile

    import yaml

    from byoc import artifact as artifact_file

    manifest, entries = artifact_file.read(artifact)
    for partition in manifest["partitions"]:
        del partition["nodes"]
    old = tmp_path / "old.byoc"
    artifact_file.write(old, {k: v for k, v in manifest.items()
                              if k not in ("format_version", "byoc_version", "checksums")},
                        entries)
    assert "nodes" not in yaml.safe_load(zipfile.ZipFile(old).read("manifest.yaml"))[
        "partitions"][0]
    model = byoc.load(old)
    _, profiles = model.profile({"x": np.zeros((1, 3, 8, 8), np.float32)})
    assert [p.nodes for p in profiles] == [None] * len(profiles)
