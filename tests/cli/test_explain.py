"""``byoc compile --explain`` and ``byoc run --explain``: per node, the plugin and pattern that
took it and, per other plugin, why it did not; readable in a terminal for large models."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from onnx import TensorProto, helper

import byoc
from byoc.core.dynamic_tail import TAIL_HOST
from byoc.report import format_explanation
from byoc.testing import make_model, qdq_layer_model

WEIGHT = np.random.default_rng(0).integers(-5, 5, (8, 4, 3, 3)).astype(np.int8)


def qdq_conv(y_scale: float = 0.11):
    """QuantizeLinear(x) -> one int8 QDQ Conv + Relu layer ('layer', 'activation', 'quantize')
    -> DequantizeLinear. vta_sim takes the layer unless its requantization needs a shift
    outside 0..63 (a huge ``y_scale``)."""
    return qdq_layer_model("Conv", [1, 4, 8, 8], WEIGHT, x_dtype=np.int8, activation="Relu",
                           bias=np.arange(8), attrs={"pads": [1, 1, 1, 1]}, y_scale=y_scale)


def blocks(text: str) -> dict[str, list[str]]:
    """Node name -> [its '->' line, then one line per other plugin], wrapped lines joined."""
    found: dict[str, list[str]] = {}
    lines: list[str] = []
    text = text.split("\nestimated time: ")[0]   # the placement's totals come last
    for line in text.splitlines()[1:]:
        if not line.startswith(" "):
            lines = found.setdefault(line.split(" (")[0], [])
            lines.append(line)
        elif line.startswith("  not "):
            lines.append(line.strip())
        else:
            lines[-1] += " " + line.strip()
    return found


def test_each_node_names_its_plugin_and_pattern_and_why_the_others_declined():
    model = byoc.compile(qdq_conv(), plugins=["vta_sim"], placement="priority")
    text = format_explanation(model)
    found = blocks(text)
    assert list(found) == [node.name for node in model.graph.nodes]  # graph order
    assert found["layer"] == [
        "layer (Conv) -> vta_sim (vta_sim.qdq_conv) in p1_vta_sim",
        "not cpu_llvm: overlap: taken by vta_sim.qdq_conv (rule: priority)"]
    taken_by, declined = found["QuantizeLinear_0"]
    assert taken_by == ("QuantizeLinear_0 (QuantizeLinear) -> cpu_llvm "
                        "(cpu_llvm.quantizelinear) in p0_cpu_llvm")
    assert declined.startswith("not vta_sim: vta_sim.qdq_conv: QuantizeLinear node "
                               "'QuantizeLinear_0' input 0: value 'x' is a graph input, "
                               "expected the output of Conv; vta_sim.qdq_matmul: ")


def test_a_declining_check_gives_its_reason():
    model = byoc.compile(qdq_conv(y_scale=1e9), plugins=["vta_sim"], placement="priority")
    taken_by, declined = blocks(format_explanation(model))["quantize"]
    assert taken_by.startswith("quantize (QuantizeLinear) -> cpu_llvm (cpu_llvm.qdq_conv) in ")
    assert declined.startswith("not vta_sim: vta_sim.qdq_conv: requantization multiplier ")
    assert "needs a shift of 65, outside MULSHR's 0..63" in declined


def test_long_reasons_are_wrapped_and_cut_but_no_plugin_is_dropped():
    model = byoc.compile(qdq_conv(), plugins=["vta_sim"], placement="priority")
    explanation = model.plan.explanations["layer"]
    many = [f"pattern {i}: " + "a long reason " * 30 for i in range(10)]
    long_name = "n" * 120  # names are never broken, even when longer than a line
    explanation.reasons = {"cpu_llvm": many + many,
                           "npu_example": [f"node {long_name} is too small"],
                           "a_plugin_" + "x" * 120: ["its name is longer than a line"]}
    text = format_explanation(model, width=100)
    assert all(len(line) <= 100 for line in text.splitlines()
               if "x" * 120 not in line and long_name not in line)
    lines = blocks(text)["layer"]
    assert [line.split(":")[0] for line in lines[1:]] == [
        "not cpu_llvm", "not npu_example", "not a_plugin_" + "x" * 120]
    assert lines[1].count("pattern ") == 3 and lines[1].endswith("[...]; and 7 more")
    assert len(lines[1]) < 600
    assert lines[2] == f"not npu_example: node {long_name} is too small"


def test_the_dynamic_tail_is_explained_after_the_partitions():
    model = make_model([helper.make_node("Relu", ["x"], ["r"], name="relu"),
                        helper.make_node("NonZero", ["r"], ["where"], name="nonzero")],
                       [("x", TensorProto.FLOAT, [2, 3])], [("where", TensorProto.INT64, None)])
    lines = format_explanation(byoc.compile(model)).replace("\n    ", " ").splitlines()
    assert lines[1].startswith("relu (Relu) -> cpu_llvm (cpu_llvm.relu)")
    assert lines[-2] == (f"dynamic tail ({TAIL_HOST}), after the partitions: 1 node, from node "
                         f"'nonzero' (NonZero: output size depends on the values of X)")
    assert lines[-1] == f"nonzero (NonZero) -> {TAIL_HOST} (dynamic tail)"


def test_a_loaded_artifact_has_nothing_to_explain(tmp_path):
    byoc.compile(qdq_conv(), plugins=["vta_sim"], placement="priority").save(tmp_path / "m.byoc")
    with pytest.raises(byoc.ByocError, match="keeps no partition plan"):
        format_explanation(byoc.load(tmp_path / "m.byoc"))


def byoc_cli(*args):
    return subprocess.run([sys.executable, "-m", "byoc.cli", *map(str, args)],
                          capture_output=True, text=True, timeout=300)


def test_compile_and_run_print_the_explanation(tmp_path):
    path = tmp_path / "qdq.onnx"
    path.write_bytes(qdq_conv(y_scale=1e9).SerializeToString())
    compiled = byoc_cli("compile", path, "--plugins", "vta_sim", "--explain", "-o",
                        tmp_path / "m.byoc")
    assert compiled.returncode == 0, compiled.stderr
    assert "layer (Conv) -> cpu_llvm (cpu_llvm.qdq_conv) in p0_cpu_llvm" in compiled.stdout
    assert "  not vta_sim: vta_sim.qdq_conv: requantization multiplier" in compiled.stdout
    assert compiled.stdout.index("not vta_sim") < compiled.stdout.index("1 partition (")
    assert (tmp_path / "m.byoc").exists()

    ran = byoc_cli("run", path, "--plugins", "vta_sim", "--explain")
    assert ran.returncode == 0, ran.stderr
    assert "  not vta_sim: vta_sim.qdq_conv: requantization multiplier" in ran.stdout
    assert "output out: float32[1,8,8,8]" in ran.stdout

    artifact = byoc_cli("run", tmp_path / "m.byoc", "--explain")
    assert artifact.returncode == 1 and "Traceback" not in artifact.stderr
    assert "--explain apply to ONNX models" in artifact.stderr.replace("\n  ", " ")
