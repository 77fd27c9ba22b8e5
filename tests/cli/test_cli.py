"""The command line, run as a user runs it: a subprocess, checking output and exit codes."""

import os
import re
import subprocess
import sys
import zipfile

import numpy as np
import pytest
from conftest import make_model
from onnx import TensorProto, helper

import byoc
from byoc.cli import EXIT_BROKEN_PIPE, main
from byoc.inputs import parse_shape_bindings


def byoc_cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "byoc.cli", *map(str, args)],
                          capture_output=True, text=True, cwd=cwd, timeout=120)


def assert_user_error(result, *fragments):
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith("byoc: error: ")
    assert result.stdout == ""
    for fragment in fragments:
        assert fragment in result.stderr.replace("\n  ", " ")


@pytest.fixture
def model_file(tmp_path, conv_bn_relu_model):
    path = tmp_path / "model.onnx"
    path.write_bytes(conv_bn_relu_model.SerializeToString())
    return path


def test_version_and_help():
    result = byoc_cli("--version")
    assert result.returncode == 0 and result.stdout.strip() == f"byoc {byoc.__version__}"
    for command in ([], ["show"], ["run"], ["compile"], ["ops"]):
        result = byoc_cli(*command, "--help")
        assert result.returncode == 0 and "usage: byoc" in result.stdout


def test_show_prints_the_graph(model_file):
    result = byoc_cli("show", model_file)
    assert result.returncode == 0, result.stderr
    assert "BatchNormalization" in result.stdout
    assert "%y: float32[1,4,8,8]" in result.stdout
    optimized = byoc_cli("show", model_file, "--optimize")
    assert "BatchNormalization" not in optimized.stdout and "Conv(" in optimized.stdout


def test_run_with_input_file_matches_the_api(model_file, tmp_path):
    x = np.random.default_rng(5).standard_normal((1, 3, 8, 8)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    out = tmp_path / "out.npz"
    result = byoc_cli("run", model_file, "--input", f"x={tmp_path / 'x.npy'}", "--output", out)
    assert result.returncode == 0, result.stderr
    assert "output y: float32[1,4,8,8]" in result.stdout
    expected = byoc.compile(model_file).run({"x": x})["y"]
    np.testing.assert_array_equal(np.load(out)["y"], expected)


def test_compile_then_run_artifact_gives_the_same_outputs(model_file, tmp_path):
    artifact = tmp_path / "m.byoc"
    assert byoc_cli("compile", model_file, "-o", artifact).returncode == 0
    direct = byoc_cli("run", model_file, "--seed", "3", "--output", tmp_path / "a.npz")
    loaded = byoc_cli("run", artifact, "--seed", "3", "--output", tmp_path / "b.npz")
    assert direct.returncode == 0 and loaded.returncode == 0, loaded.stderr
    np.testing.assert_array_equal(np.load(tmp_path / "a.npz")["y"],
                                  np.load(tmp_path / "b.npz")["y"])


def test_unsupported_op_is_one_paragraph(tmp_path):
    # Bernoulli draws at random, which an inference compiler's reference cannot reproduce.
    model = make_model([helper.make_node("Bernoulli", ["x"], ["y"], name="coin")],
                       [("x", TensorProto.FLOAT, [3, 3])], [("y", TensorProto.FLOAT, [3, 3])])
    path = tmp_path / "coin.onnx"
    path.write_bytes(model.SerializeToString())
    assert_user_error(byoc_cli("show", path), "node 'coin' (ai.onnx::Bernoulli, opset 17)",
                      str(path))


def test_malformed_model_is_one_paragraph(tmp_path, model_file):
    truncated = tmp_path / "cut.onnx"
    truncated.write_bytes(model_file.read_bytes()[:100])
    assert_user_error(byoc_cli("run", truncated), "cut.onnx")
    assert_user_error(byoc_cli("show", tmp_path / "nothing.onnx"), "no such model file")


def test_wrong_inputs_are_user_errors(model_file, tmp_path):
    np.save(tmp_path / "bad.npy", np.zeros((1, 3, 4, 4), np.float32))
    assert_user_error(byoc_cli("run", model_file, "--input", f"x={tmp_path / 'bad.npy'}"),
                      "input 'x' has shape [1, 3, 4, 4], the model expects [1, 3, 8, 8]")
    np.save(tmp_path / "f64.npy", np.zeros((1, 3, 8, 8)))
    assert_user_error(byoc_cli("run", model_file, "--input", f"x={tmp_path / 'f64.npy'}"),
                      "dtype float64")
    assert_user_error(byoc_cli("run", model_file, "--input", "x=missing.npy"), "no such file")
    assert_user_error(byoc_cli("run", model_file, "--input-shape", "x=1xA"), "--input-shape")


def test_tampered_artifact_is_refused(model_file, tmp_path):
    artifact = tmp_path / "m.byoc"
    assert byoc_cli("compile", model_file, "-o", artifact).returncode == 0
    tampered = tmp_path / "t.byoc"
    with zipfile.ZipFile(artifact) as src, zipfile.ZipFile(tampered, "w") as dst:
        for info in src.infolist():
            data = src.read(info)
            if info.filename.startswith("weights/"):
                data = data[:-1] + bytes([data[-1] ^ 1])
            dst.writestr(info, data)
    assert_user_error(byoc_cli("run", tampered), "checksum mismatch")


def test_npz_inputs_and_symbolic_dims_bound_on_the_command_line(tmp_path):
    model = make_model([helper.make_node("Relu", ["x"], ["y"])],
                       [("x", TensorProto.FLOAT, ["batch", 4])],
                       [("y", TensorProto.FLOAT, ["batch", 4])])
    path = tmp_path / "dyn.onnx"
    path.write_bytes(model.SerializeToString())
    assert_user_error(byoc_cli("run", path), "--input-shape x=1x4")
    np.savez(tmp_path / "in.npz", x=np.array([[-1, 2, -3, 4]] * 3, np.float32))
    result = byoc_cli("run", path, "--input-shape", "x=3x4", "--input", tmp_path / "in.npz",
                      "--output", tmp_path / "out.npz")
    assert result.returncode == 0, result.stderr
    np.testing.assert_array_equal(np.load(tmp_path / "out.npz")["y"], [[0, 2, 0, 4]] * 3)


@pytest.mark.parametrize("args, unbuffered", [
    pytest.param(["ops"], False, id="more-than-a-pipe-buffer-breaks-while-printing"),
    pytest.param(["--version"], False, id="argparse-prints-and-exits"),
    pytest.param(["show", "MODEL"], False, id="a-few-lines-written-by-the-last-flush"),
    pytest.param(["show", "MODEL"], True, id="unbuffered-written-while-printing"),
])
def test_output_into_a_closed_pipe_ends_quietly(args, unbuffered, model_file):
    """`byoc ops | head -1`: the reader went away; no error, status 141 like a shell's."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}
    if unbuffered:
        env["PYTHONUNBUFFERED"] = "1"
    read_end, write_end = os.pipe()
    os.close(read_end)  # closed before byoc starts: its first write to stdout fails
    try:
        result = subprocess.run([sys.executable, "-m", "byoc.cli",
                                 *[str(model_file) if a == "MODEL" else a for a in args]],
                                stdout=write_end, stderr=subprocess.PIPE, text=True, env=env,
                                timeout=120)
    finally:
        os.close(write_end)
    assert (result.returncode, result.stderr) == (EXIT_BROKEN_PIPE, "")


@pytest.mark.parametrize("command", ["show", "run", "compile"])
def test_input_shape_help_shows_an_example_the_parser_accepts(command, capsys):
    with pytest.raises(SystemExit):
        main([command, "--help"])
    text = " ".join(capsys.readouterr().out.split())
    example = re.search(r"--input-shape NAME=DxDx\.\.\. [^-]*e\.g\. (\S+)", text).group(1)
    assert parse_shape_bindings([example]) == {"input": (1, 3, 224, 224)}
