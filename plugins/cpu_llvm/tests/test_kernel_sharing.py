"""Compile time: identical layers share one kernel, and the object cache gives back what a cold
compile gave."""

from __future__ import annotations

import re

import numpy as np
import pytest
from onnx import TensorProto, helper

import byoc
from byoc.testing import compile_reference, make_model
from byoc_cpu_llvm import jit

SHAPE = [1, 8, 12, 12]


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("BYOC_CACHE_DIR", str(tmp_path))
    return tmp_path / "cpu_llvm"


def repeated_convs(layers: int = 3):
    """``layers`` 3x3 convolutions of the same shape, each with its own weights, then Relu."""
    rng = np.random.default_rng(0)
    nodes, weights, x = [], {}, "x"
    for i in range(layers):
        weights[f"w{i}"] = rng.standard_normal((8, 8, 3, 3)).astype(np.float32) * 0.2
        nodes += [helper.make_node("Conv", [x, f"w{i}"], [f"c{i}"], pads=[1] * 4),
                  helper.make_node("Relu", [f"c{i}"], [f"r{i}"])]
        x = f"r{i}"
    return make_model(nodes, [("x", TensorProto.FLOAT, SHAPE)], [(x, TensorProto.FLOAT, SHAPE)],
                      weights)


def two_leaky_relus():
    """LeakyRelu, Transpose, LeakyRelu, all of one shape: the two LeakyRelu kernels have the
    same structure and differ in one constant, alpha."""
    nodes = [helper.make_node("LeakyRelu", ["x"], ["a"], alpha=0.1),
             helper.make_node("Transpose", ["a"], ["t"], perm=[0, 1, 3, 2]),
             helper.make_node("LeakyRelu", ["t"], ["y"], alpha=0.5)]
    return make_model(nodes, [("x", TensorProto.FLOAT, SHAPE)],
                      [("y", TensorProto.FLOAT, SHAPE)])


def inputs(seed: int = 0) -> dict[str, np.ndarray]:
    return {"x": np.random.default_rng(seed).standard_normal(SHAPE).astype(np.float32)}


def defined_kernels(compiled) -> list[str]:
    (part,) = compiled.parts
    return re.findall(r'^define [^@]*@"(k_\w+)"', part.payload.data.decode(), re.MULTILINE)


@pytest.mark.parametrize("threads", [1, 2])
def test_identical_layers_share_one_kernel_and_stay_exact(cache, threads):
    model = repeated_convs()
    compiled = byoc.compile(model, plugins=["cpu_llvm"], plugin_options={
        "cpu_llvm": {"threads": threads, "min_work_per_thread": 0}})
    (part,) = compiled.parts
    steps = part.payload.metadata["steps"]
    assert len(steps) == 3 and len(set(steps)) == 1, steps
    assert defined_kernels(compiled) == [steps[0]]
    ours = compiled.run(inputs())
    reference = compile_reference(model).run(inputs())
    (name,) = reference
    scale = np.max(np.abs(reference[name]))
    np.testing.assert_allclose(ours[name], reference[name], rtol=0, atol=1e-5 * scale)


def test_layers_that_differ_in_a_constant_keep_their_own_kernels(cache):
    model = two_leaky_relus()
    compiled = byoc.compile(model, plugins=["cpu_llvm"])
    assert len(defined_kernels(compiled)) == 3
    reference = compile_reference(model).run(inputs())
    np.testing.assert_allclose(compiled.run(inputs())["y"], reference["y"], rtol=1e-6)


@pytest.mark.parametrize("alphas, distinct", [((0.1, 0.1), 1), ((0.1, 0.3), 2)])
def test_convolutions_built_once_per_signature_run_on_their_own_buffers(cache, alphas,
                                                                        distinct):
    """Two convolutions of one geometry, each with its own weights and bias, then LeakyRelu:
    the second reuses the first's kernel without building it (its signature is the same)
    unless alpha, a constant of the epilogue, differs. Either way each layer computes with its
    own weights and bias."""
    rng = np.random.default_rng(1)
    weights = {}
    nodes, x = [], "x"
    for i, alpha in enumerate(alphas):
        weights[f"w{i}"] = rng.standard_normal((8, 8, 3, 3)).astype(np.float32) * 0.2
        weights[f"b{i}"] = rng.standard_normal(8).astype(np.float32)
        nodes += [helper.make_node("Conv", [x, f"w{i}", f"b{i}"], [f"c{i}"], pads=[1] * 4),
                  helper.make_node("LeakyRelu", [f"c{i}"], [f"r{i}"], alpha=alpha)]
        x = f"r{i}"
    model = make_model(nodes, [("x", TensorProto.FLOAT, SHAPE)],
                       [(x, TensorProto.FLOAT, SHAPE)], weights)
    compiled = byoc.compile(model, plugins=["cpu_llvm"])
    (part,) = compiled.parts
    assert len(set(part.payload.metadata["steps"])) == distinct
    reference = compile_reference(model).run(inputs())
    np.testing.assert_allclose(compiled.run(inputs())[x], reference[x], rtol=1e-5, atol=1e-5)


def test_cached_compile_gives_bit_equal_outputs(cache, monkeypatch):
    model = repeated_convs()
    cold = byoc.compile(model, plugins=["cpu_llvm"]).run(inputs(1))

    def no_llvm(ir_text):
        raise AssertionError("LLVM ran although the object was cached")

    monkeypatch.setattr(jit, "_compile", no_llvm)
    cached = byoc.compile(model, plugins=["cpu_llvm"]).run(inputs(1))
    assert cached.keys() == cold.keys()
    for name, value in cold.items():
        np.testing.assert_array_equal(cached[name], value)


def test_object_key_separates_ir_and_optimization(monkeypatch):
    ir_text = 'define void @"f"() {\nentry:\n  ret void\n}\n'
    key = jit.object_key(ir_text)
    assert jit.object_key(ir_text.replace('"f"', '"g"')) != key
    monkeypatch.setattr(jit, "OPTIMIZATION", "O3 vectorize=True unroll=True")
    assert jit.object_key(ir_text) != key


def test_a_changed_layer_compiles_only_the_modules_that_changed(cache, monkeypatch):
    """Kernels are compiled in modules of their own, each with its own cached object:
    compiling a model again after one layer changed runs LLVM on that layer's module alone
    (with one kernel per module here; real models fill a module with a few thousand
    instructions)."""
    from byoc_cpu_llvm import program
    from byoc_cpu_llvm.program import MODULE_SEPARATOR

    monkeypatch.setattr(program, "MODULE_INSTRUCTIONS", 1)

    def modules(compiled) -> set[str]:
        (part,) = compiled.parts
        return set(part.payload.data.decode().split(MODULE_SEPARATOR))

    before = modules(byoc.compile(two_leaky_relus(), plugins=["cpu_llvm"]))
    assert len(before) == 4  # the entry point and three kernels
    compiled_now = []
    real = jit._compile
    monkeypatch.setattr(jit, "_compile", lambda text: compiled_now.append(text) or real(text))
    changed = two_leaky_relus()
    changed.graph.node[2].attribute[0].f = 0.25
    compiled = byoc.compile(changed, plugins=["cpu_llvm"])
    after = modules(compiled)
    assert sorted(compiled_now) == sorted(after - before) and len(compiled_now) == 1
    reference = compile_reference(changed).run(inputs())
    np.testing.assert_allclose(compiled.run(inputs())["y"], reference["y"], rtol=1e-6)


@pytest.mark.parametrize("per_module", [1, None])
def test_kernels_that_differ_only_in_their_tables_keep_their_own(cache, monkeypatch,
                                                                 per_module):
    """Two Resizes of one shape whose coordinate modes differ have the same code and
    different index and weight tables (module constants). In modules of their own, the
    tables may carry the same name: the kernels are still not shared."""
    from byoc_cpu_llvm import program

    if per_module:
        monkeypatch.setattr(program, "MODULE_INSTRUCTIONS", per_module)
    scales = np.array([1, 1, 2, 2], np.float32)
    nodes = [helper.make_node("Resize", ["x", "", "scales"], [f"y_{mode}"], mode="linear",
                              coordinate_transformation_mode=mode)
             for mode in ("asymmetric", "half_pixel")]
    nodes.append(helper.make_node("Sub", ["y_asymmetric", "y_half_pixel"], ["y"]))
    model = make_model(nodes, [("x", TensorProto.FLOAT, SHAPE)],
                       [("y", TensorProto.FLOAT, [1, 8, 24, 24])], {"scales": scales})
    compiled = byoc.compile(model, plugins=["cpu_llvm"])
    (part,) = compiled.parts
    assert part.plugin == "cpu_llvm"
    got, expected = compiled.run(inputs()), compile_reference(model).run(inputs())
    for name, value in expected.items():
        np.testing.assert_allclose(got[name], value, rtol=1e-5, atol=1e-6, err_msg=name)


def test_the_object_cache_keeps_under_its_limit_dropping_the_least_recently_used(
        cache, monkeypatch, tmp_path_factory):
    def objects(folder) -> dict[str, int]:
        return {path.name: path.stat().st_size for path in folder.glob("*.o")}

    from byoc_cpu_llvm import roofline

    roofline.machine_peaks()  # (measured on kernels of its own the first time)
    elsewhere = tmp_path_factory.mktemp("elsewhere")
    monkeypatch.setenv("BYOC_CACHE_DIR", str(elsewhere))
    byoc.compile(two_leaky_relus(), plugins=["cpu_llvm"])
    newer = objects(elsewhere / "cpu_llvm")
    monkeypatch.setenv("BYOC_CACHE_DIR", str(cache.parent))
    byoc.compile(repeated_convs(1), plugins=["cpu_llvm"])
    older = objects(cache)
    assert older and not set(older) & set(newer)
    monkeypatch.setenv("BYOC_OBJECT_CACHE_BYTES", str(sum(newer.values()) + 1))
    byoc.compile(two_leaky_relus(), plugins=["cpu_llvm"])
    assert objects(cache) == newer, "the least recently used objects are the ones to go"
    compiled = byoc.compile(two_leaky_relus(), plugins=["cpu_llvm"])  # from the cache
    assert objects(cache) == newer
    reference = compile_reference(two_leaky_relus()).run(inputs())
    np.testing.assert_allclose(compiled.run(inputs())["y"], reference["y"], rtol=1e-6)
