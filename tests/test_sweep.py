"""``byoc sweep`` from Python: the grid, the rows and their columns (scripts rely on them), the
files, resuming, and points that fail as data; on a local Ray with two workers."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from byoc.errors import ByocError, InputError, PluginError
from byoc.plugins.api import HardwareFigures
from byoc.plugins.manager import default_manager
from byoc.report.sweep import FIGURES, pareto_front, summary_lines
from byoc.sweep import (
    GridAxis,
    SweepSettings,
    _totals,
    check_grid,
    grid_points,
    parse_grid,
    point_name,
    run_sweep,
)
from byoc.testing import qdq_cnn

ray = pytest.importorskip("ray")

GRID = ["vta_sim.mem_port_bits=64,128,100"]     # 100: not a whole number of bytes, refused
COLUMNS = ["vta_sim.mem_port_bits", "cycles", "gemm_utilisation", "dram_bytes", "sram_bytes",
           "correct", "rtl_equal", "seconds", "error"]
SIM = SweepSettings(("vta_sim",), {}, "sim", 0)


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
             configure_logging=False)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("sweep-model") / "small_int8.onnx"
    path.write_bytes(qdq_cnn(8, 16, [(16, 3, 1), (16, 1, 1)]).SerializeToString())
    return path


@pytest.fixture(scope="module")
def swept(local_ray, model_path, tmp_path_factory):
    out = tmp_path_factory.mktemp("sweep") / "out"
    return out, run_sweep(model_path, parse_grid(GRID), SIM, out, progress=None)


# -- the grid --------------------------------------------------------------------------------


def test_grid_is_every_combination_in_the_order_given():
    axes = parse_grid(["vta_sim.block_out=16,32", " vta_sim.inp_depth = 1024, 2048 "])
    assert axes == [GridAxis("vta_sim.block_out", ("16", "32")),
                    GridAxis("vta_sim.inp_depth", ("1024", "2048"))]
    assert grid_points(axes) == [
        {"vta_sim.block_out": "16", "vta_sim.inp_depth": "1024"},
        {"vta_sim.block_out": "16", "vta_sim.inp_depth": "2048"},
        {"vta_sim.block_out": "32", "vta_sim.inp_depth": "1024"},
        {"vta_sim.block_out": "32", "vta_sim.inp_depth": "2048"}]


@pytest.mark.parametrize("specs, says", [
    ([], "at least one --grid"),
    (["vta_sim.block_out"], "expected PLUGIN.NAME=V1,V2"),
    (["block_out=16,32"], "expected PLUGIN.NAME=V1,V2"),
    (["vta_sim.block_out=16,,32"], "none empty"),
    (["vta_sim.block_out=16,16"], "given twice"),
    (["vta_sim.block_out=16", "vta_sim.block_out=32"], "vta_sim.block_out is given twice"),
])
def test_a_malformed_grid_says_what_to_write(specs, says):
    with pytest.raises(InputError, match=says):
        parse_grid(specs)


def test_point_names_are_file_names_and_tell_points_apart():
    one = point_name({"vta_sim.config": "configs/a b.yaml", "vta_sim.block_out": "16"})
    other = point_name({"vta_sim.config": "configs/a_b.yaml", "vta_sim.block_out": "16"})
    assert "/" not in one and " " not in one and one.startswith("config=configs-a-b.yaml_")
    assert one != other


@pytest.mark.parametrize("grid, settings, says", [
    (["vta_sim.block_ot=16"], SIM, "has no option 'block_ot' .*did you mean 'block_out'"),
    (["vta.block_out=16"], SIM, "no plugin named 'vta' .*did you mean 'vta_sim'"),
    (["vta_sim.target=sim,rtl"], SIM, "set by --target"),
    (["vta_sim.block_out=16"], SweepSettings(("vta_sim",), {"vta_sim": {"block_out": "8"}}),
     "both to --grid and to --plugin-option"),
    (["cpu_llvm.threads=1"], SweepSettings(("cpu_llvm",), {}, "rtl"),
     "--target rtl runs vta_sim's partitions"),
])
def test_a_grid_the_plugins_cannot_take_is_refused_before_anything_runs(grid, settings, says):
    with pytest.raises(ByocError, match=says):
        check_grid(default_manager(), parse_grid(grid), settings)


def test_a_value_is_not_checked_before_the_sweep_it_is_the_points_error():
    check_grid(default_manager(), parse_grid(["vta_sim.block_out=12,abc"]), SIM)


# -- figures -----------------------------------------------------------------------------------


def test_a_points_figures_add_up_its_partitions():
    figures = [HardwareFigures(100, 80, 1000, 4096, True), HardwareFigures(300, 120, 24, 8192,
                                                                           None)]
    assert _totals(figures, "rtl") == {"cycles": 400, "gemm_utilisation": 0.5,
                                       "dram_bytes": 1024, "sram_bytes": 8192,
                                       "rtl_equal": True}
    assert _totals(figures, "sim")["rtl_equal"] is None
    assert _totals([*figures, HardwareFigures(1, 1, 1, 1, False)], "rtl")["rtl_equal"] is False
    assert _totals([HardwareFigures(0, 0, 0, 16)], "sim")["gemm_utilisation"] is None


def test_the_pareto_front_is_the_points_nothing_beats_on_both():
    points = [(4, 10), (2, 30), (4, 8), (8, 8), (1, 50), (2, 40), (16, 2)]
    assert pareto_front(points) == [4, 1, 2, 6]
    assert pareto_front([(1, 1), (1, 1)]) == [0]
    assert pareto_front([]) == []


# -- a sweep on Ray ----------------------------------------------------------------------------


def test_every_point_gets_a_row_with_the_columns_in_order(swept):
    out, outcome = swept
    assert (outcome.ran, outcome.skipped) == (3, 0)
    assert [list(row) for row in outcome.rows] == [COLUMNS] * 3
    good, bad = outcome.rows[:2], outcome.rows[2]
    assert [row["vta_sim.mem_port_bits"] for row in outcome.rows] == [64, 128, 100]
    for row in good:
        assert not row["error"], row
        assert row["cycles"] > 0 and row["dram_bytes"] > 0 and row["sram_bytes"] > 0
        assert 0 < row["gemm_utilisation"] <= 1
        assert row["correct"] is True and row["rtl_equal"] is None and row["seconds"] > 0
    assert good[0]["cycles"] > good[1]["cycles"], "a narrower memory port takes longer"
    assert "mem_port_bits=100 is not a whole number of bytes" in bad["error"]
    assert all(bad[name] is None for name in FIGURES[:6])


def test_results_csv_and_json_hold_the_rows(swept):
    out, outcome = swept
    with open(out / "results.csv", newline="") as f:
        table = list(csv.reader(f))
    assert table[0] == COLUMNS and len(table) == 4
    assert table[1][COLUMNS.index("correct")] == "true"
    assert table[1][COLUMNS.index("rtl_equal")] == ""
    assert table[3][COLUMNS.index("cycles")] == "" and "mem_port_bits=100" in table[3][-1]

    def no_constants(name):
        raise AssertionError(f"results.json holds {name}: not strict JSON")

    rows = json.loads((out / "results.json").read_text(), parse_constant=no_constants)
    assert rows == outcome.rows
    assert isinstance(rows[0]["cycles"], int) and isinstance(rows[0]["correct"], bool)
    assert rows[0]["rtl_equal"] is None and rows[2]["cycles"] is None


def test_the_pareto_plot_is_a_png(swept):
    out, _ = swept
    assert (out / "pareto.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_sweep_resumes_running_only_the_points_not_in_its_folder(swept, model_path):
    out, first = swept
    again = run_sweep(model_path, parse_grid(GRID), SIM, out, progress=None)
    assert (again.ran, again.skipped) == (0, 3)
    assert again.rows == first.rows
    (out / "points" / f"{point_name({'vta_sim.mem_port_bits': '128'})}.json").unlink()
    third = run_sweep(model_path, parse_grid(GRID), SIM, out, progress=None)
    assert (third.ran, third.skipped) == (1, 2)
    assert [row["cycles"] for row in third.rows] == [row["cycles"] for row in first.rows]


def test_a_folder_of_another_sweep_is_refused(swept, model_path):
    out, _ = swept
    with pytest.raises(InputError, match="seed was 0, now 1"):
        run_sweep(model_path, parse_grid(GRID), SweepSettings(("vta_sim",), {}, "sim", 1), out,
                  progress=None)


def test_the_progress_line_counts_points(local_ray, model_path, tmp_path):
    import io

    stream = io.StringIO()
    run_sweep(model_path, parse_grid(["vta_sim.mem_port_bits=64,100"]), SIM, tmp_path,
              progress=stream)
    lines = stream.getvalue().splitlines()
    assert lines[0] == "sweep: 2 point(s) to run on a local Ray (2 CPUs)"
    assert lines[1].startswith("sweep: [>" + " " * 19 + "] 0/2 points, 0 skipped, 0 failed")
    assert lines[-1].startswith("sweep: [" + "=" * 20 + "] 2/2 points, 0 skipped, "
                                "1 failed, 0:")


def test_the_progress_bar_fills_with_the_points_done():
    import io

    from byoc.sweep import _Progress

    stream = io.StringIO()
    bar = _Progress(stream, total=8, skipped=2)
    bar.add(failed=True)
    assert stream.getvalue().splitlines() == [
        "sweep: [=====>              ] 2/8 points, 2 skipped, 0 failed, 0:00 elapsed",
        "sweep: [=======>            ] 3/8 points, 2 skipped, 1 failed, 0:00 elapsed"]


@pytest.mark.slow
def test_on_the_rtl_every_point_says_whether_it_equals_the_simulator(local_ray, model_path,
                                                                      tmp_path):
    settings = SweepSettings(("vta_sim",), {}, "rtl", 0)
    outcome = run_sweep(model_path, parse_grid(["vta_sim.mem_latency=32"]), settings, tmp_path,
                        progress=None)
    (row,) = outcome.rows
    assert not row["error"], row
    assert row["rtl_equal"] is True and row["correct"] is True and row["cycles"] > 0


def test_an_unknown_option_names_the_closest_before_ray_starts(model_path, tmp_path):
    with pytest.raises(PluginError, match="did you mean 'mem_port_bits'"):
        run_sweep(model_path, parse_grid(["vta_sim.mem_port_bit=64"]), SIM, tmp_path,
                  progress=None)


def test_a_dequantized_output_is_correct_within_one_quantization_step():
    import byoc
    from byoc.sweep import _in_steps
    from byoc.verify import Tolerance, compare

    graph = byoc.import_model(qdq_cnn(8, 16, [(16, 1, 1)]))
    (output,) = graph.outputs
    step = float(graph.constants["s1"])
    want = np.arange(-4, 4, dtype=np.float32) * np.float32(step)

    def correct(got):
        return compare(output, *_in_steps(graph, output, got, want), Tolerance()).ok

    assert correct(want + np.float32(step))
    assert not correct(want + np.float32(2 * step))


def test_the_summary_table_marks_the_pareto_front_and_shows_no_figures_for_a_failed_point():
    rows = [
        {"k": 1, "cycles": 100, "gemm_utilisation": 0.5, "dram_bytes": 2048,
         "sram_bytes": 4096, "correct": True, "rtl_equal": None, "error": None},
        {"k": 2, "cycles": 80, "gemm_utilisation": 0.25, "dram_bytes": 1024,
         "sram_bytes": 8192, "correct": False, "rtl_equal": True, "error": None},
        {"k": 3, "cycles": 120, "gemm_utilisation": 0.5, "dram_bytes": 1024,
         "sram_bytes": 8192, "correct": True, "rtl_equal": False, "error": None},
        {"k": 4, "cycles": None, "gemm_utilisation": None, "dram_bytes": None,
         "sram_bytes": None, "correct": None, "rtl_equal": None, "error": "does not compile"},
    ]
    lines = [line.split() for line in summary_lines(["k"], rows)]
    assert lines[1:] == [["1", "100", "50.0%", "2", "4", "yes", "-", "*"],
                         ["2", "80", "25.0%", "1", "8", "NO", "yes", "*"],
                         ["3", "120", "50.0%", "1", "8", "yes", "NO"],
                         ["4", "-", "-", "-", "-", "-", "-"]]
