"""byoc compile --with-vectors N, run as a user runs it: the artifact carries N reference
vectors, the summary says how many and how much room they take, and byoc verify checks the
artifact on them without the ONNX model."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

import byoc
from byoc.vectors import stored_size


def byoc_cli(*args):
    return subprocess.run([sys.executable, "-m", "byoc.cli", *map(str, args)],
                          capture_output=True, text=True, timeout=300)


@pytest.fixture
def model_file(tmp_path, conv_bn_relu_model):
    path = tmp_path / "model.onnx"
    path.write_bytes(conv_bn_relu_model.SerializeToString())
    return path


def test_compile_stores_the_vectors_and_says_so(model_file, tmp_path):
    out = tmp_path / "model.byoc"
    result = byoc_cli("compile", model_file, "-o", out, "--with-vectors", 3,
                      "--vectors-seed", 7)
    assert result.returncode == 0, result.stderr
    said = re.search(r"with 3 reference vectors \(seeds 7\.\.9\), ([\d.]+) KiB in the "
                     r"artifact", result.stdout)
    assert said, result.stdout
    assert float(said.group(1)) == round(stored_size(out) / 1024, 1) > 0
    assert [v.seed for v in byoc.load(out).vectors] == [7, 8, 9]


def test_without_the_flag_or_with_zero_nothing_is_stored(model_file, tmp_path):
    for flags in ([], ["--with-vectors", "0"]):
        out = tmp_path / "model.byoc"
        result = byoc_cli("compile", model_file, "-o", out, *flags)
        assert result.returncode == 0, result.stderr
        assert "reference vector" not in result.stdout
        assert byoc.load(out).vectors is None


@pytest.mark.parametrize("flag", ["--with-vectors", "--vectors-seed"])
def test_a_negative_number_is_a_user_error(model_file, tmp_path, flag):
    out = tmp_path / "model.byoc"
    result = byoc_cli("compile", model_file, "-o", out, flag, -1)
    assert result.returncode == 1
    assert result.stderr.startswith("byoc: error: ") and "Traceback" not in result.stderr
    assert flag in result.stderr and "-1" in result.stderr
    assert not out.exists()


def test_the_artifact_verifies_on_its_vectors_without_the_onnx_model(model_file, tmp_path):
    out = tmp_path / "model.byoc"
    assert byoc_cli("compile", model_file, "-o", out, "--with-vectors", 2).returncode == 0
    model_file.unlink()
    result = byoc_cli("verify", out)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 reference vector" in result.stdout
