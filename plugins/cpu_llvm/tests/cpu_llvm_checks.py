"""Checks shared by cpu_llvm's test modules."""

from __future__ import annotations

import numpy as np

import byoc
from byoc.testing import compile_reference


def compile_alone(model, threads):
    """``model`` compiled for cpu_llvm alone on ``threads``; every node must be taken."""
    compiled = byoc.compile(model, plugins=["cpu_llvm"], plugin_options={
        "cpu_llvm": {"threads": threads, "min_work_per_thread": 0}})
    assert compiled.parts and all(p.plugin == "cpu_llvm" for p in compiled.parts), \
        [(p.plugin, p.ops) for p in compiled.parts]
    return compiled


def run_both(model, feeds, threads, rtol=0.0, atol=0.0):
    """Compile ``model`` for cpu_llvm alone (every node must be taken) on ``threads``, run it
    and the reference on ``feeds``, and compare (:func:`assert_outputs_match`). Returns
    cpu_llvm's outputs."""
    ours = compile_alone(model, threads)
    expected = compile_reference(model).run(feeds)
    got = ours.run(feeds)
    assert_outputs_match(got, expected, rtol, atol)
    return got


def assert_outputs_match(got, expected, rtol=0.0, atol=0.0):
    """The same outputs, dtypes and shapes, values within ``rtol``/``atol`` (exactly equal
    when both are 0)."""
    assert expected.keys() == got.keys()
    for key in expected:
        assert got[key].dtype == expected[key].dtype, key
        assert got[key].shape == expected[key].shape, key
        if rtol or atol:
            np.testing.assert_allclose(got[key].astype(np.float64),
                                       expected[key].astype(np.float64), rtol=rtol, atol=atol,
                                       err_msg=key)
        else:
            np.testing.assert_array_equal(got[key], expected[key], err_msg=key)
    return got


def exact_with_lowering_count(model, feeds, monkeypatch, lowering: str) -> float:
    """Run ``model`` on cpu_llvm alone with 1 and 2 threads and check each output equals the
    reference's bit for bit; returns how many times cpu_llvm's ``lower.<lowering>`` (an
    integer-chain lowering such as ``lower_qdq_pool``) was called per compile, so that a test
    also shows the chain's kernel was used."""
    from byoc_cpu_llvm import lower

    calls = []
    emit = getattr(lower, lowering)

    def counted(program, chain):
        calls.append(chain)
        emit(program, chain)

    monkeypatch.setattr(lower, lowering, counted)
    monkeypatch.setenv("BYOC_LOWERING_CACHE", "0")  # lower every time, so the count is seen
    expected = compile_reference(model).run(feeds)
    for threads in (1, 2):
        got = compile_alone(model, threads).run(feeds)
        for name, value in expected.items():
            assert got[name].dtype == value.dtype, name
            np.testing.assert_array_equal(got[name], value, err_msg=f"{name}, {threads} threads")
    return len(calls) / 2

