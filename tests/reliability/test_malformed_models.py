"""Broken ONNX inputs are refused with a ByocError that says what is wrong, through the Python
API, the CLI in-process, and the real `python -m byoc` entry point.

The corpus is built by make_malformed.py into a temporary folder; nothing binary is checked in.
Every case runs under a time limit and, in-process, with its Python allocations measured, so a
model that makes byoc hang or allocate the size it claims fails here instead of exhausting the
machine.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import tracemalloc
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

import byoc
import byoc.cli
from byoc.errors import ByocError
from byoc.inputs import parse_shape_bindings
from tests.reliability.make_malformed import Case, _unary, corpus_cases, write_corpus

CASES = corpus_cases()
# Refusing a broken model takes well under a second; this only catches hangs.
CASE_SECONDS = 10
# Through the real entry point, one process per case: each must answer within the time byoc
# takes to start on this machine (measured, so a loaded machine does not fail the test) plus
# CASE_SECONDS.
# Peak of Python-tracked allocations (numpy included) while refusing one case.
CASE_PEAK_BYTES = 64 << 20
# Address space of each entry-point process: enough for Python, onnx and numpy, far less than
# any of the huge tensors the corpus claims.
ENTRY_POINT_ADDRESS_SPACE = 4 << 30


@pytest.fixture(scope="session")
def corpus(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("malformed") / "corpus"
    written = write_corpus(folder)
    assert written == CASES
    return folder


@contextlib.contextmanager
def _time_limit(case: Case):
    """Fail the case instead of hanging when it takes longer than CASE_SECONDS."""
    def expire(signum, frame):
        raise TimeoutError(f"{case.file}: not refused within {CASE_SECONDS} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.alarm(CASE_SECONDS)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def _refusal(case: Case, call) -> BaseException:
    """Run ``call`` under the time limit and allocation tracking; return what it raised."""
    tracemalloc.start()
    try:
        with _time_limit(case):
            call()
    except BaseException as exc:  # every kind is reported, a raw one as a failure
        error = exc
    else:
        error = None
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    assert error is not None, f"{case.file}: accepted without an error"
    assert peak < CASE_PEAK_BYTES, f"{case.file}: allocated {peak} bytes before refusing"
    return error


def _assert_refused(case: Case, error: BaseException) -> None:
    assert isinstance(error, ByocError), f"{case.file}: {type(error).__name__}: {error}"
    message = str(error)
    missing = [f for f in case.fragments if f not in message]
    assert not missing, f"{case.file}: message lacks {missing}: {message}"


def _shape_arguments(case: Case) -> list[str]:
    return [arg for spec in case.input_shapes for arg in ("--input-shape", spec)]


def test_corpus_is_large_enough():
    categories = {c.category for c in CASES}
    print(f"malformed-model corpus: {len(CASES)} cases in {len(categories)} categories")
    assert len(CASES) >= 40
    assert len(categories) >= 8
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
    error = _refusal(case, lambda: byoc.import_model(
        path, parse_shape_bindings(case.input_shapes)))
    _assert_refused(case, error)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.file)
def test_compile_refuses_with_a_clear_message(corpus, case):
    path = corpus / case.file
    error = _refusal(case, lambda: byoc.compile(
        path, input_shapes=parse_shape_bindings(case.input_shapes)))
    _assert_refused(case, error)


@pytest.mark.parametrize("command", ["compile", "show"])
@pytest.mark.parametrize("case", CASES, ids=lambda c: c.file)
def test_cli_prints_one_error_paragraph(corpus, case, command, capsys):
    path = corpus / case.file
    with _time_limit(case):
        status = byoc.cli.main([command, str(path), *_shape_arguments(case)])
    out, err = capsys.readouterr()
    assert status == 1, (status, err)
    assert err.startswith("byoc: error: "), err
    assert err.count("byoc: error:") == 1, err
    assert "\n\n" not in err.strip(), err
    assert "Traceback" not in out + err
    missing = [f for f in case.fragments if f not in " ".join(err.split())]
    assert not missing, f"{case.file}: message lacks {missing}: {err}"
    assert not path.with_suffix(".byoc").exists()


def _limit_address_space() -> None:
    import resource

    resource.setrlimit(resource.RLIMIT_AS, (ENTRY_POINT_ADDRESS_SPACE,
                                            ENTRY_POINT_ADDRESS_SPACE))


def _start_seconds() -> float:
    """How long ``python -m byoc --version`` takes here (the slower of two runs)."""
    times = []
    for _ in range(2):
        start = time.monotonic()
        subprocess.run([sys.executable, "-m", "byoc", "--version"], check=True,
                       capture_output=True)
        times.append(time.monotonic() - start)
    return max(times)


def _show(path: Path, case: Case, seconds: float) -> tuple[str, int | None, str]:
    env = {**os.environ, "PYTHONFAULTHANDLER": "1"}
    env.pop("BYOC_DEBUG", None)
    try:
        done = subprocess.run([sys.executable, "-m", "byoc", "show", str(path),
                               *_shape_arguments(case)],
                              check=False, capture_output=True, text=True, env=env,
                              timeout=seconds,
                              preexec_fn=_limit_address_space)
    except subprocess.TimeoutExpired:
        return case.file, None, f"no answer within {seconds:.0f} s"
    return case.file, done.returncode, done.stdout + done.stderr


@pytest.mark.skipif(sys.platform != "linux", reason="limits the address space with setrlimit")
def test_entry_point_never_tracebacks_hangs_or_overallocates(corpus):
    workers = min(8, os.cpu_count() or 1)
    # Processes share the cores: each may wait for the others' starts too.
    seconds = _start_seconds() * workers + CASE_SECONDS
    with ThreadPoolExecutor(max_workers=workers) as pool:
        results = list(pool.map(lambda c: _show(corpus / c.file, c, seconds), CASES))
    bad = [f"{file}: status {status}: {output.strip()[:300]}"
           for file, status, output in results
           if status != 1 or "Traceback" in output or not output.startswith("byoc: error: ")
           or output.count("byoc: error:") != 1]
    assert not bad, "\n".join(bad)
