"""Broken ONNX inputs are refused with a ByocError that says what is wrong, through the Python
API, the CLI in-process, and the real `python -m byoc` entry point.

The corpus is built by make_malformed.py into a temporary folder; nothing binary is checked in.
"""

from __future__ import annotations

import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

import byoc
import byoc.cli
from byoc.errors import ByocError
from tests.reliability.make_malformed import Case, _unary, corpus_cases, write_corpus

CASES = corpus_cases()
ENTRY_POINT_TIMEOUT = 60


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("malformed") / "corpus"
    written = write_corpus(folder)
    assert written == CASES
    return folder


def _assert_refused(case: Case, path: Path, error: BaseException) -> None:
    assert isinstance(error, ByocError), f"{case.file}: {type(error).__name__}: {error}"
    message = str(error)
    missing = [f for f in case.fragments if f not in message]
    assert not missing, f"{case.file}: message lacks {missing}: {message}"


def test_corpus_is_large_enough():
    assert len(CASES) >= 40
    assert len({c.file for c in CASES}) == len(CASES)


def test_corpus_is_deterministic(tmp_path):
    first, second = tmp_path / "a" / "corpus", tmp_path / "b" / "corpus"
    write_corpus(first)
    write_corpus(second)
    for case in CASES:
        assert (first / case.file).read_bytes() == (second / case.file).read_bytes(), case.file


def test_zero_sized_input_is_not_malformed():
    # The corpus refuses ops that cannot use an empty tensor, never empty tensors as such:
    # ONNX allows them and its conformance tests use them.
    model = _unary("Relu", "relu_empty", shape=(0, 3))
    compiled = byoc.compile(model, default_plugins=())
    assert compiled.run({"x": np.zeros((0, 3), np.float32)})["y"].shape == (0, 3)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.file)
def test_import_model_refuses_with_a_clear_message(corpus, case):
    path = corpus / case.file
    with pytest.raises(BaseException) as caught:
        byoc.import_model(path)
    _assert_refused(case, path, caught.value)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.file)
def test_compile_refuses_with_a_clear_message(corpus, case):
    path = corpus / case.file
    with pytest.raises(BaseException) as caught:
        byoc.compile(path)
    _assert_refused(case, path, caught.value)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.file)
def test_cli_prints_one_error_paragraph(corpus, case, capsys):
    path = corpus / case.file
    status = byoc.cli.main(["compile", str(path)])
    out, err = capsys.readouterr()
    assert status == 1, (status, err)
    assert err.startswith("byoc: error: "), err
    assert err.count("byoc: error:") == 1, err
    assert "\n\n" not in err.strip(), err
    assert "Traceback" not in out + err
    assert not path.with_suffix(".byoc").exists()


def _show(path: Path) -> tuple[Path, int | None, str]:
    env = {**os.environ, "PYTHONFAULTHANDLER": "1"}
    env.pop("BYOC_DEBUG", None)
    try:
        done = subprocess.run([sys.executable, "-m", "byoc", "show", str(path)],
                              check=False, capture_output=True, text=True,
                              timeout=ENTRY_POINT_TIMEOUT, env=env)
    except subprocess.TimeoutExpired:
        return path, None, f"no answer within {ENTRY_POINT_TIMEOUT} s"
    return path, done.returncode, done.stdout + done.stderr


def test_entry_point_never_tracebacks_or_hangs(corpus):
    with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:
        results = list(pool.map(_show, [corpus / c.file for c in CASES]))
    bad = [f"{path.name}: status {status}: {output.strip()[:300]}"
           for path, status, output in results
           if status != 1 or "Traceback" in output or not output.startswith("byoc: error: ")]
    assert not bad, "\n".join(bad)
