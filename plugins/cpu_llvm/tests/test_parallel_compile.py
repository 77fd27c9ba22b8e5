"""A large program's modules compile at the same time, in this process and in worker
processes, to the same objects as one by one; a worker that fails costs only time."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto, helper

import byoc
from byoc.errors import PluginError
from byoc.testing import compile_reference, make_model
from byoc_cpu_llvm import jit, program
from byoc_cpu_llvm.program import MODULE_SEPARATOR

SHAPE = [1, 8, 12, 12]


@pytest.fixture
def parallel(tmp_path, monkeypatch):
    """An empty object cache; every program takes the parallel path, one kernel per module."""
    monkeypatch.setenv("BYOC_CACHE_DIR", str(tmp_path))
    monkeypatch.setenv("BYOC_LOWERING_CACHE", "0")
    monkeypatch.setattr(jit, "PARALLEL_MIN_CHARS", 0)
    monkeypatch.setattr(jit, "_cores", lambda: 3)
    monkeypatch.setattr(program, "MODULE_INSTRUCTIONS", 1)


def layers():
    """Convolutions of different shapes and activations: several distinct kernels."""
    rng = np.random.default_rng(0)
    nodes, weights, x, channels = [], {}, "x", 8
    for i, (out, activation) in enumerate([(16, "Relu"), (8, "Sigmoid"), (12, "Tanh")]):
        weights[f"w{i}"] = rng.standard_normal((out, channels, 3, 3)).astype(np.float32) * 0.2
        nodes += [helper.make_node("Conv", [x, f"w{i}"], [f"c{i}"], pads=[1] * 4),
                  helper.make_node(activation, [f"c{i}"], [f"a{i}"])]
        x, channels = f"a{i}", out
    return make_model(nodes, [("x", TensorProto.FLOAT, SHAPE)],
                      [(x, TensorProto.FLOAT, [1, 12, 12, 12])], weights)


def feeds():
    return {"x": np.random.default_rng(1).standard_normal(SHAPE).astype(np.float32)}


def modules_of(compiled) -> list[str]:
    (part,) = compiled.parts
    return part.payload.data.decode().split(MODULE_SEPARATOR)


def test_modules_compiled_in_workers_are_the_objects_compiled_one_by_one(parallel):
    compiled = byoc.compile(layers(), plugins=["cpu_llvm"])
    texts = modules_of(compiled)
    assert len(texts) >= 4
    assert jit.compile_modules(texts) == [jit._compile(text) for text in texts]
    expected = compile_reference(layers()).run(feeds())
    (name,) = expected
    np.testing.assert_allclose(compiled.run(feeds())[name], expected[name], rtol=1e-4,
                               atol=1e-5)


def test_the_workers_did_the_work_they_took(parallel, monkeypatch):
    """With the modules compiled in this process counted, the workers compiled the rest."""
    texts = modules_of(byoc.compile(layers(), plugins=["cpu_llvm"]))
    here = []
    real = jit._compile
    monkeypatch.setattr(jit, "_compile", lambda text: here.append(text) or real(text))
    objects = jit.compile_modules(texts)
    assert all(objects) and 0 < len(here) < len(texts)


def test_workers_that_cannot_start_leave_the_work_to_this_process(parallel, monkeypatch):
    def no_process(*args, **kwargs):
        raise OSError("no processes left")

    monkeypatch.setattr(jit.subprocess, "Popen", no_process)
    compiled = byoc.compile(layers(), plugins=["cpu_llvm"])
    expected = compile_reference(layers()).run(feeds())
    (name,) = expected
    np.testing.assert_allclose(compiled.run(feeds())[name], expected[name], rtol=1e-4,
                               atol=1e-5)


def test_ir_that_llvm_refuses_in_a_worker_is_a_plugin_error_with_its_message(parallel):
    texts = modules_of(byoc.compile(layers(), plugins=["cpu_llvm"]))
    broken = texts[-1].replace("ret void", "ret i32 0", 1)
    with pytest.raises(PluginError, match="invalid LLVM IR"):
        jit.compile_modules([*texts[:-1], broken])
