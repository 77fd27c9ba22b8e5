"""``byoc verify`` on the command line: the table, the exit status, the JSON of the fixed
schema (scripts rely on it), tolerances, inputs from files, and errors without tracebacks."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
from cli.test_estimate import check_schema
from faults import CHAIN, wrong_requantization_shift

from byoc.cli import main
from byoc.report.verify import VERIFY_SCHEMA
from byoc.testing import qdq_cnn


@pytest.fixture(scope="module")
def chain_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("verify") / "chain.onnx"
    onnx.save(qdq_cnn(*CHAIN), str(path))
    return path


def test_a_clean_model_exits_0_with_the_table_and_json(chain_file, tmp_path, capsys):
    out = tmp_path / "v.json"
    status = main(["verify", str(chain_file), "--plugins", "vta_sim", "--placement",
                   "priority", "--json", str(out)])
    text = capsys.readouterr().out
    assert status == 0, text
    assert "p1_vta_sim   vta_sim" in text and "verify: OK" in text
    data = json.loads(out.read_text())
    check_schema(data, VERIFY_SCHEMA)
    assert data["ok"] and data["outputs_ok"] and data["first_divergence"] is None
    assert [p["plugin"] for p in data["partitions"]] == ["cpu_llvm", "vta_sim", "cpu_llvm"]


def test_a_fault_exits_1_and_names_the_node(chain_file, tmp_path, capsys):
    out = tmp_path / "v.json"
    with wrong_requantization_shift("q2"):
        status = main(["verify", str(chain_file), "--plugins", "vta_sim", "--placement",
                       "priority", "--json", str(out)])
    text = capsys.readouterr().out
    assert status == 1
    assert "first divergence: node 'quantize2' (QuantizeLinear) in partition 'p1_vta_sim' " \
           "(plugin vta_sim, pattern vta_sim.qdq_conv)" in text
    assert "verify: FAILED (1 of 3 partitions" in text
    data = json.loads(out.read_text())
    check_schema(data, VERIFY_SCHEMA)
    assert not data["ok"] and [p["ok"] for p in data["partitions"]] == [True, False, True]
    assert data["first_divergence"]["node"] == "quantize2"
    assert data["first_divergence"]["partition"] == "p1_vta_sim"


def test_max_lsb_and_inputs_from_files(chain_file, tmp_path, capsys):
    """A shift one too large in the last layer is many steps off: a --max-lsb above that
    lets it pass. Inputs given in a file are used (and said so)."""
    x = np.random.default_rng(3).standard_normal((1, 21, 15, 15)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    args = ["verify", str(chain_file), "--plugins", "vta_sim", "--placement", "priority",
            "--input", f"x={tmp_path / 'x.npy'}"]
    with wrong_requantization_shift("q4"):
        assert main(args) == 1
        first = capsys.readouterr().out
        assert "inputs x from files" in first
        assert main([*args, "--max-lsb", "1000"]) == 1      # the float output end to end
        second = capsys.readouterr().out
    assert "p1_vta_sim   vta_sim" in second and "FAIL" in first
    vta_row = next(line for line in second.splitlines() if line.startswith("p1_vta_sim"))
    assert vta_row.endswith("ok")


@pytest.mark.parametrize("args, message", [
    (["--rtol", "-1"], "tolerance rtol must be a finite number >= 0"),
    (["--atol", "nan"], "tolerance atol must be a finite number >= 0"),
    (["--input", "x=missing.npy"], "missing.npy"),
])
def test_bad_arguments_are_clear_errors(chain_file, capsys, args, message):
    assert main(["verify", str(chain_file), *args]) == 1
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_an_artifact_without_vectors_is_refused_with_what_to_do(chain_file, tmp_path, capsys):
    artifact = tmp_path / "chain.byoc"
    assert main(["compile", str(chain_file), "-o", str(artifact)]) == 0
    capsys.readouterr()
    assert main(["verify", str(artifact)]) == 1
    err = capsys.readouterr().err
    assert "bundles no reference vectors" in err and "--with-vectors" in err
