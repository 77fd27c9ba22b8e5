"""Compiling a model again takes its partitions' lowering from the cache, and the cache never
hands one model another's lowering."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

import byoc
from byoc.testing import compile_reference, make_model, qdq_cnn
from byoc_cpu_llvm import lowering_cache
from byoc_cpu_llvm import plugin as cpu_plugin
from byoc_cpu_llvm.kernels import int8_product

SHAPE = [1, 8, 10, 10]


@pytest.fixture
def lowered(tmp_path, monkeypatch):
    """An empty cache; counts the lowerings done (not taken from the cache)."""
    monkeypatch.setenv("BYOC_CACHE_DIR", str(tmp_path))
    monkeypatch.delenv("BYOC_LOWERING_CACHE", raising=False)
    monkeypatch.delenv("BYOC_LOWERING_CACHE_BYTES", raising=False)
    monkeypatch.setattr(lowering_cache, "MIN_LOWERING_SECONDS", 0.0)  # these models are tiny
    monkeypatch.setattr(lowering_cache, "MIN_NODES", 1)
    calls = []
    real = cpu_plugin.lower_partition

    def counted(partition, graph, constants):
        calls.append(partition.name)
        return real(partition, graph, constants)

    monkeypatch.setattr(cpu_plugin, "lower_partition", counted)
    return calls


def conv_model(seed: int = 0, stride: int = 1):
    """Conv 3x3 -> Relu -> Conv 1x1, weights drawn from ``seed``."""
    rng = np.random.default_rng(seed)
    weights = {"w0": rng.standard_normal((8, 8, 3, 3)).astype(np.float32) * 0.2,
               "w1": rng.standard_normal((4, 8, 1, 1)).astype(np.float32) * 0.2}
    out = [1, 4, 10 // stride, 10 // stride]
    nodes = [helper.make_node("Conv", ["x", "w0"], ["c"], pads=[1] * 4, strides=[stride] * 2),
             helper.make_node("Relu", ["c"], ["r"]),
             helper.make_node("Conv", ["r", "w1"], ["y"])]
    return make_model(nodes, [("x", TensorProto.FLOAT, SHAPE)], [("y", TensorProto.FLOAT, out)],
                      weights)


def feeds(seed: int = 1) -> dict[str, np.ndarray]:
    return {"x": np.random.default_rng(seed).standard_normal(SHAPE).astype(np.float32)}


def run(model, inputs):
    return byoc.compile(model, plugins=["cpu_llvm"]).run(inputs)


def assert_close_to_reference(model, inputs, got):
    expected = compile_reference(model).run(inputs)
    for name, value in expected.items():
        np.testing.assert_allclose(got[name], value, rtol=1e-5, atol=1e-5, err_msg=name)


def entries(tmp_path) -> list:
    root = tmp_path / "cpu_llvm" / "lowered"
    return sorted(p.name for p in root.iterdir() if not p.name.startswith(".")) \
        if root.is_dir() else []


def test_a_second_compile_takes_the_lowering_from_the_cache_bit_exact(lowered, tmp_path):
    model = conv_model()
    first = byoc.compile(model, plugins=["cpu_llvm"])
    assert len(lowered) == 1 and len(entries(tmp_path)) == 1
    second = byoc.compile(model, plugins=["cpu_llvm"])
    assert len(lowered) == 1, "the second compile lowered the partition again"
    (a,), (b,) = first.parts, second.parts
    assert a.payload.data == b.payload.data and a.payload.metadata == b.payload.metadata
    assert a.payload.arrays.keys() == b.payload.arrays.keys()
    for name, array in a.payload.arrays.items():
        assert array.dtype == b.payload.arrays[name].dtype, name
        np.testing.assert_array_equal(array, b.payload.arrays[name], err_msg=name)
    for name, value in first.run(feeds()).items():
        np.testing.assert_array_equal(second.run(feeds())[name], value, err_msg=name)


def test_other_weights_or_attributes_are_lowered_anew_and_stay_right(lowered, tmp_path):
    base = run(conv_model(seed=0), feeds())
    for variant in (conv_model(seed=5), conv_model(seed=0, stride=2)):
        got = run(variant, feeds())
        assert_close_to_reference(variant, feeds(), got)
    assert len(lowered) == 3 and len(entries(tmp_path)) == 3
    np.testing.assert_array_equal(run(conv_model(seed=0), feeds())["y"], base["y"])
    assert len(lowered) == 3


def test_one_changed_weight_is_another_key(lowered):
    model = conv_model()
    changed = conv_model()
    w0 = numpy_helper.to_array(changed.graph.initializer[0]).copy()
    w0.flat[17] += 1.0
    changed.graph.initializer[0].CopyFrom(numpy_helper.from_array(w0, "w0"))
    run(model, feeds())
    got = run(changed, feeds())
    assert len(lowered) == 2
    assert_close_to_reference(changed, feeds(), got)


def test_an_int8_model_cached_stays_bit_exact_with_the_reference(lowered):
    model = qdq_cnn(12, 8, [(16, 3, 1), (16, 1, 2)])
    x = {"x": np.random.default_rng(2).uniform(-3, 3, (1, 8, 12, 12)).astype(np.float32)}
    expected = compile_reference(model).run(x)
    for _ in range(2):
        got = run(model, x)
        for name, value in expected.items():
            np.testing.assert_array_equal(got[name], value, err_msg=name)
    assert len(lowered) == 1


def test_a_kernel_setting_flipped_in_the_process_is_another_key(lowered, monkeypatch):
    model = qdq_cnn(12, 8, [(16, 3, 1)])
    run(model, {"x": np.zeros((1, 8, 12, 12), np.float32)})
    monkeypatch.setattr(int8_product, "USE_VNNI", not int8_product.USE_VNNI)
    run(model, {"x": np.zeros((1, 8, 12, 12), np.float32)})
    assert len(lowered) == 2


def test_an_unreadable_entry_is_lowered_again_and_replaced(lowered, tmp_path):
    model = conv_model()
    expected = run(model, feeds())
    (key,) = entries(tmp_path)
    for array in (tmp_path / "cpu_llvm" / "lowered" / key).glob("*.npy"):
        array.write_bytes(array.read_bytes()[:40])
    got = run(model, feeds())
    assert len(lowered) == 2
    np.testing.assert_array_equal(got["y"], expected["y"])
    run(model, feeds())
    assert len(lowered) == 2, "the entry was not rewritten"


def test_the_least_recently_used_entries_go_beyond_the_size_limit(lowered, tmp_path,
                                                                  monkeypatch):
    run(conv_model(seed=0), feeds())
    folder = tmp_path / "cpu_llvm" / "lowered" / entries(tmp_path)[0]
    one = sum(p.stat().st_size for p in folder.iterdir())
    monkeypatch.setenv("BYOC_LOWERING_CACHE_BYTES", str(int(2.5 * one)))
    run(conv_model(seed=1), feeds())
    run(conv_model(seed=0), feeds())  # a hit: seed 0 is now the most recently used
    assert len(lowered) == 2
    run(conv_model(seed=2), feeds())
    assert len(entries(tmp_path)) == 2
    run(conv_model(seed=0), feeds())
    assert len(lowered) == 3, "the entry used last was evicted"
    run(conv_model(seed=1), feeds())
    assert len(lowered) == 4, "the least recently used entry was kept"


def test_a_lowering_done_in_milliseconds_is_not_stored(lowered, tmp_path, monkeypatch):
    """The test suite alone compiles thousands of small models: their entries would cost
    more than lowering them again."""
    monkeypatch.setattr(lowering_cache, "MIN_LOWERING_SECONDS", 10.0)
    run(conv_model(), feeds())
    run(conv_model(), feeds())
    assert len(lowered) == 2 and entries(tmp_path) == []


def test_a_partition_of_a_few_nodes_is_not_looked_up(lowered, tmp_path, monkeypatch):
    monkeypatch.setattr(lowering_cache, "MIN_NODES", 4)
    keyed = []
    real = lowering_cache.lowering_key
    monkeypatch.setattr(lowering_cache, "lowering_key", lambda *a: keyed.append(1) or real(*a))
    run(conv_model(), feeds())  # three nodes
    assert keyed == [] and entries(tmp_path) == []


def test_the_cache_can_be_switched_off(lowered, tmp_path, monkeypatch):
    monkeypatch.setenv("BYOC_LOWERING_CACHE", "0")
    run(conv_model(), feeds())
    run(conv_model(), feeds())
    assert len(lowered) == 2 and entries(tmp_path) == []


def test_an_empty_constant_is_keyed_and_cached(lowered, tmp_path):
    """ONNX models carry empty initializers (an unused optional input, a zero-length state)."""
    nodes = [helper.make_node("Concat", ["x", "empty"], ["y"], axis=3)]
    model = make_model(nodes, [("x", TensorProto.FLOAT, SHAPE)],
                       [("y", TensorProto.FLOAT, SHAPE)],
                       {"empty": np.zeros((1, 8, 10, 0), np.float32)})
    for _ in range(2):
        compiled = byoc.compile(model, plugins=["cpu_llvm"])
        assert [part.plugin for part in compiled.parts] == ["cpu_llvm"]
        np.testing.assert_array_equal(compiled.run(feeds())["y"], feeds()["x"])
    assert len(lowered) == 1 and len(entries(tmp_path)) == 1


def test_what_would_not_read_back_as_written_is_not_stored(lowered, tmp_path):
    """numpy's format keeps ml_dtypes' bfloat16 as raw bytes, and JSON turns tuples into
    lists: such a lowering is done again each time rather than read back changed."""
    ml_dtypes = pytest.importorskip("ml_dtypes")
    meta = {"entry": "byoc_run", "steps": []}
    lowering_cache.store("a" * 64, ("", meta, {"w": np.ones(3, ml_dtypes.bfloat16)}))
    lowering_cache.store("b" * 64, ("", {**meta, "shape": (1, 2)}, {}))
    lowering_cache.store("c" * 64, ("", meta, {"w": np.ones(3, np.float32)}))
    assert entries(tmp_path) == ["c" * 64]
    ir_text, read, arrays = lowering_cache.load("c" * 64)
    assert read == meta and arrays["w"].dtype == np.float32


def test_a_graph_the_key_cannot_write_down_has_no_key():
    graph = byoc.import_model(conv_model())
    graph.nodes[0].attrs["strange"] = object()
    assert lowering_cache.lowering_key(_whole(graph), graph, graph.constants) is None


def test_a_node_outside_the_partition_is_part_of_the_key():
    """A lowering may read the graph around its partition (a QDQ layer reads the
    DequantizeLinear in front of it), so the whole graph is in the key."""
    graph = byoc.import_model(conv_model())
    first = _whole(graph, nodes=graph.nodes[:1])
    key = lowering_cache.lowering_key(first, graph, graph.constants)
    assert lowering_cache.lowering_key(first, graph, graph.constants) == key
    graph.nodes[-1].attrs["strides"] = [2, 2]
    assert lowering_cache.lowering_key(first, graph, graph.constants) != key


def _whole(graph, nodes=None):
    from byoc.plugins.api import Partition

    return Partition(name="p0", plugin="cpu_llvm", nodes=list(nodes or graph.nodes),
                     inputs=list(graph.inputs), outputs=list(graph.outputs),
                     types=dict(graph.types), opsets=dict(graph.opsets))
