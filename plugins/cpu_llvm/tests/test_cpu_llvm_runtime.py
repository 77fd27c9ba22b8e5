"""cpu_llvm's machinery: fused elementwise kernels, threads, the object cache, artifacts."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto, helper

import byoc
from byoc.errors import ByocError
from byoc.testing import compile_reference, make_model
from byoc_cpu_llvm import jit


def chain_model():
    """Add (broadcast) -> Relu -> Mul by a per-row constant -> Sigmoid -> Reshape, plus a
    comparison producing bool: one fused kernel, one alias copy, one bool kernel."""
    nodes = [helper.make_node("Add", ["x", "y"], ["a"]), helper.make_node("Relu", ["a"], ["r"]),
             helper.make_node("Mul", ["r", "c"], ["m"]), helper.make_node("Sigmoid", ["m"], ["s"]),
             helper.make_node("Reshape", ["s", "shape"], ["o"]),
             helper.make_node("Less", ["x", "y"], ["lt"])]
    return make_model(nodes, [("x", TensorProto.FLOAT, [2, 3, 37]),
                              ("y", TensorProto.FLOAT, [37])],
                      [("o", TensorProto.FLOAT, [6, 37]), ("lt", TensorProto.BOOL, [2, 3, 37])],
                      {"c": np.linspace(-2, 2, 3, dtype=np.float32).reshape(3, 1),
                       "shape": np.array([6, 37], np.int64)})


def feeds(seed=0):
    rng = np.random.default_rng(seed)
    return {"x": rng.standard_normal((2, 3, 37)).astype(np.float32),
            "y": rng.standard_normal(37).astype(np.float32)}


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("BYOC_CACHE_DIR", str(tmp_path))
    return tmp_path / "cpu_llvm"


@pytest.mark.parametrize("threads", [1, 2, 3])
def test_fused_chain_matches_the_reference(cache, threads):
    model = chain_model()
    compiled = byoc.compile(model, plugins=["cpu_llvm"],
                            plugin_options={"cpu_llvm": {"threads": threads,
                                                        "min_work_per_thread": 0}})
    assert {p.plugin for p in compiled.parts} == {"cpu_llvm"}
    assert all(p.runtime.counters()["threads"] == threads for p in compiled.parts)
    reference = compile_reference(model).run(feeds())
    ours = compiled.run(feeds())
    np.testing.assert_allclose(ours["o"], reference["o"], rtol=1e-6, atol=1e-7)
    np.testing.assert_array_equal(ours["lt"], reference["lt"])


def test_second_compile_reads_the_object_cache(cache, monkeypatch):
    byoc.compile(chain_model(), plugins=["cpu_llvm"])
    objects = sorted(cache.glob("*.o"))
    assert objects, "compiling should have filled the cache"

    def no_llvm(ir_text):
        raise AssertionError("LLVM ran although the object was cached")

    monkeypatch.setattr(jit, "_compile", no_llvm)
    again = byoc.compile(chain_model(), plugins=["cpu_llvm"])
    np.testing.assert_array_equal(again.run(feeds())["lt"], compile_reference(chain_model()).run(
        feeds())["lt"])
    assert sorted(cache.glob("*.o")) == objects


def test_artifact_round_trip(cache, tmp_path):
    compiled = byoc.compile(chain_model(), plugins=["cpu_llvm"])
    compiled.save(tmp_path / "m.byoc")
    loaded = byoc.load(tmp_path / "m.byoc",
                       plugin_options={"cpu_llvm": {"threads": 2, "min_work_per_thread": 0}})
    for key, value in compiled.run(feeds(3)).items():
        np.testing.assert_array_equal(loaded.run(feeds(3))[key], value)


@pytest.mark.parametrize("options, message", [
    ({"threads": 0}, "whole number of at least 1"),
    ({"threads": "many"}, "cpu_llvm.threads='many' is not valid: give a whole number"),
    ({"min_work_per_thread": -1}, "at least 0"),
    ({"thread": 2}, r"no option 'thread' \(did you mean 'threads'\?\)"),
])
def test_bad_options_are_refused_by_name(cache, options, message):
    with pytest.raises(ByocError, match=message):
        byoc.compile(chain_model(), plugins=["cpu_llvm"], plugin_options={"cpu_llvm": options},
                     strict=True)


def test_small_partitions_stay_on_one_thread_unless_told(cache):
    model = chain_model()
    small = byoc.compile(model, plugins=["cpu_llvm"],
                         plugin_options={"cpu_llvm": {"threads": 2}})
    assert all(p.runtime.counters()["threads"] == 1 for p in small.parts)
    forced = byoc.compile(model, plugins=["cpu_llvm"],
                          plugin_options={"cpu_llvm": {"threads": 2, "min_work_per_thread": 0}})
    assert all(p.runtime.counters()["threads"] == 2 for p in forced.parts)
