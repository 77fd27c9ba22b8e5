"""``byoc estimate`` and ``--placement``: the estimate without running anything, its JSON
schema (scripts rely on it), and placement by cost or priority on every command that
compiles a model."""

from __future__ import annotations

import json
import subprocess
import sys

import onnx
import pytest

import byoc
from byoc.report.estimate import ESTIMATE_SCHEMA


def byoc_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "byoc", *map(str, args)],
                          capture_output=True, text=True)


def check_schema(value, schema, where="$"):
    """``value`` has exactly the keys of ``schema``, each of the type it names; a tuple of
    schemas other than ``(int, None)`` allows any of them (None: null)."""
    if isinstance(schema, tuple) and schema != (int, None):
        if value is None and None in schema:
            return
        for option in schema:
            if option is not None:
                check_schema(value, option, where)
        return
    if isinstance(schema, dict):
        assert isinstance(value, dict) and set(value) == set(schema), (where, value)
        for key, inner in schema.items():
            check_schema(value[key], inner, f"{where}.{key}")
    elif isinstance(schema, list):
        assert isinstance(value, list), where
        for i, item in enumerate(value):
            check_schema(item, schema[0], f"{where}[{i}]")
    elif schema == (int, None):
        assert value is None or (isinstance(value, int) and not isinstance(value, bool)), where
    elif schema is float:
        assert isinstance(value, float), where
    else:
        assert isinstance(value, schema), where
        assert schema is bool or not isinstance(value, bool), where


def onnx_node_names(path) -> set[str]:
    return {node.name for node in onnx.load(str(path)).graph.node}


@pytest.mark.parametrize("placement", ["cost", "priority"])
def test_estimate_json_follows_the_schema(zoo_dir, tmp_path, placement):
    model = zoo_dir / "cnn_int8.onnx"
    out = tmp_path / "estimate.json"
    result = byoc_cli("estimate", model, "--plugins", "vta_sim", "--json", out,
                      "--placement", placement)
    assert result.returncode == 0, result.stderr
    found = json.loads(out.read_text())
    check_schema(found, ESTIMATE_SCHEMA)
    assert set(found) == {"total_seconds", "placements", "partitions"}
    placements = found["placements"]
    assert found["total_seconds"] == placements["chosen"] > 0
    assert placements[placement if placement == "priority" else "chosen"] == \
        found["total_seconds"]
    assert placements["chosen"] <= placements["priority"] + 1e-15
    assert sum(p["seconds"] for p in found["partitions"]) == \
        pytest.approx(found["total_seconds"])
    # every ONNX node of the model once, by its name in the file
    names = [n for p in found["partitions"] for n in p["nodes"]]
    assert sorted(names) == sorted(onnx_node_names(model))
    for partition in found["partitions"]:
        assert partition["name"].endswith(partition["plugin"])
        assert (partition["cycles"] is None) == (partition["plugin"] != "vta_sim")
    if placement == "priority":   # vta_sim takes the convolutions, counted in cycles
        vta = [p for p in found["partitions"] if p["plugin"] == "vta_sim"]
        assert vta and all(p["cycles"] > 0 and p["bytes_in"] > 0 for p in vta)


def test_estimate_text_shows_partitions_matches_transfers_and_three_totals(zoo_dir):
    result = byoc_cli("estimate", zoo_dir / "cnn_int8.onnx", "--plugins", "vta_sim",
                      "--placement", "priority")
    assert result.returncode == 0, result.stderr
    text = result.stdout
    assert "nothing compiled or run" in text
    assert "p1_vta_sim on vta_sim:" in text and "cycles" in text
    assert "conv1/Conv" in text and "(vta_sim.qdq_conv)" in text
    assert "transfer in " in text and "transfer out" in text
    assert "timing model of the generated instruction stream" in text
    total = text.strip().splitlines()[-1]
    assert total.startswith("total: ") and "by priority" in total and "host plugins alone" \
        in total


def test_estimate_matches_what_compile_places(zoo_dir):
    """The estimate partitions the model as compile does, by cost and by priority."""
    model = zoo_dir / "mobilenet_int8.onnx"
    for placement in ("cost", "priority"):
        estimate = byoc.estimate_model(model, plugins=["npu_example"], placement=placement)
        compiled = byoc.compile(model, plugins=["npu_example"], placement=placement)
        assert [(p.name, p.plugin, p.nodes) for p in estimate.partitions] == \
            [(p.name, p.plugin, [n.name for n in p.nodes]) for p in compiled.plan.partitions]
        assert compiled.plan.placement.chosen == pytest.approx(estimate.chosen)
    # the NPU is estimated faster than the host plugins here, so cost keeps it
    assert "npu_example" in {p.plugin for p in estimate.partitions}
    assert estimate.chosen < estimate.host_only


def test_placement_is_accepted_by_compile_and_run(zoo_dir, tmp_path):
    model = zoo_dir / "cnn_int8.onnx"
    out = tmp_path / "m.byoc"
    compiled = byoc_cli("compile", model, "--plugins", "vta_sim", "--placement", "priority",
                        "-o", out, "--explain")
    assert compiled.returncode == 0, compiled.stderr
    assert "vta_sim" in compiled.stdout.split("wrote")[0].rsplit("estimated time", 1)[0]
    assert "(priority placement)" in compiled.stdout
    ran = byoc_cli("run", model, "--plugins", "vta_sim", "--placement", "cost")
    assert ran.returncode == 0, ran.stderr
    refused = byoc_cli("run", out, "--placement", "priority")
    assert refused.returncode == 1 and "--placement" in refused.stderr
    assert "Traceback" not in refused.stderr


def test_bad_placement_and_json_path_are_clear_errors(zoo_dir, tmp_path):
    model = zoo_dir / "cnn_int8.onnx"
    wrong = byoc_cli("estimate", model, "--placement", "fastest")
    assert wrong.returncode == 2 and "invalid choice: 'fastest'" in wrong.stderr
    unwritable = byoc_cli("estimate", model, "--json", tmp_path / "no" / "such" / "e.json")
    assert unwritable.returncode == 1 and "cannot write the estimate" in unwritable.stderr
    assert "Traceback" not in unwritable.stderr
    missing = byoc_cli("estimate", tmp_path / "absent.onnx")
    assert missing.returncode == 1 and "absent.onnx" in missing.stderr
    with pytest.raises(byoc.ByocError, match="placement must be one of cost, priority"):
        byoc.compile(model, placement="fastest")


def test_explanation_summary_and_report_show_the_three_totals(zoo_dir):
    from byoc.report import format_explanation
    from byoc.report.html import render_html_report
    from byoc.summary import format_summary

    model = byoc.compile(zoo_dir / "cnn_int8.onnx", plugins=["vta_sim"], placement="priority")
    totals = model.plan.placement.summary()
    assert "(priority placement)" in totals and "by priority" in totals \
        and "on the host plugins alone" in totals
    assert format_explanation(model, width=1000).endswith(totals)
    assert format_summary(model).endswith(totals)
    html = render_html_report(model.graph, model.plan, "cnn", use_graphviz=False)
    assert "estimated time" in html and "by priority" in html
