"""`byoc plugins`, `byoc compile --plugins ...` and `byoc run --profile` as a user runs them,
with the test plugins installed the way pip installs an entry point (a .dist-info folder)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import onnx
import pytest

TOY_PLUGINS = Path(__file__).resolve().parents[1] / "plugins" / "toy_plugins.py"


@pytest.fixture(scope="module")
def plugin_env(tmp_path_factory):
    """An environment whose Python path holds the toy plugins as an installed distribution."""
    site = tmp_path_factory.mktemp("site")
    shutil.copy(TOY_PLUGINS, site / "byoc_toy_plugins.py")
    dist = site / "byoc_toy_plugins-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: byoc-toy-plugins\n"
                                   "Version: 1.0\n")
    (dist / "entry_points.txt").write_text("[byoc.plugins]\n"
                                           "convfuse = byoc_toy_plugins:ConvFuse\n"
                                           "adder = byoc_toy_plugins:Adder\n")
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(site), env.get("PYTHONPATH", "")])
    return env


def byoc_cli(env, *args):
    return subprocess.run([sys.executable, "-m", "byoc", *map(str, args)], capture_output=True,
                          text=True, env=env, timeout=300)


def test_plugins_lists_installed_plugins_with_patterns(plugin_env):
    result = byoc_cli(plugin_env, "plugins")
    assert result.returncode == 0, result.stderr
    assert "convfuse 1.0.0 (from byoc-toy-plugins 1.0)" in result.stdout
    assert "convfuse.conv_bias_relu" in result.stdout and "adder.add" in result.stdout
    assert "reference" in result.stdout


def test_compile_report_emit_onnx_and_profiled_run(plugin_env, zoo_dir, tmp_path):
    out, report, partitioned = tmp_path / "r.byoc", tmp_path / "r.html", tmp_path / "p.onnx"
    result = byoc_cli(plugin_env, "compile", zoo_dir / "resnet18.onnx", "--plugins",
                      "convfuse,adder", "-o", out, "--report", report, "--emit-onnx",
                      partitioned)
    assert result.returncode == 0, result.stderr
    assert "partition" in result.stdout and "convfuse" in result.stdout
    assert "Conv 20" not in result.stdout  # convs are split over several convfuse partitions
    assert "<svg" in report.read_text()
    model = onnx.load(partitioned)
    onnx.checker.check_model(model)
    # cpu_llvm, the default host backend, takes what the two test plugins leave.
    assert {n.op_type for n in model.graph.node} == {"convfuse", "adder", "cpu_llvm"}
    run = byoc_cli(plugin_env, "run", out, "--profile")
    assert run.returncode == 0, run.stderr
    assert "output output: float32[1,1000]" in run.stdout
    # convfuse's runtime counters, one line each: name, value, explanation
    assert re.search(r"^\s+steps\s+\d+\s", run.stdout, re.M), run.stdout


def test_plugin_errors_are_one_paragraph(plugin_env, zoo_dir, tmp_path):
    result = byoc_cli(plugin_env, "compile", zoo_dir / "cnn.onnx", "--plugins", "nope")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    message = result.stderr.replace("\n  ", " ")
    assert "no plugin named 'nope'; installed plugins: adder, convfuse, " in message
    assert "reference" in message
    strict = byoc_cli(plugin_env, "compile", zoo_dir / "cnn.onnx", "--plugins", "convfuse",
                      "--strict", "--min-partition-size", "5", "-o", tmp_path / "x.byoc")
    assert strict.returncode == 1 and "Traceback" not in strict.stderr
    assert "--strict" in strict.stderr and "partition too small" in strict.stderr
