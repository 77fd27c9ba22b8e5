"""Reference vectors in artifacts: what byoc.compile(with_vectors=N) stores is every value
byoc verify needs to check each partition without the ONNX model, it survives a save and a
load bit for bit, and a damaged vectors entry is refused naming it."""

from __future__ import annotations

import zipfile

import numpy as np
import pytest
import yaml
from onnx import TensorProto, helper

import byoc
from byoc import artifact
from byoc.compiled import run_partition
from byoc.errors import ArtifactError, InputError
from byoc.inputs import random_inputs
from byoc.layouts import LayoutEnv
from byoc.plugins.manager import PluginManager
from byoc.testing import compile_reference, make_model, zoo_module
from byoc.vectors import ENTRY_PREFIX, make_vectors, stored_size

SEED = 3


@pytest.fixture(scope="module")
def cnn_int8_file(tmp_path_factory):
    return zoo_module().build("cnn_int8", tmp_path_factory.mktemp("zoo"))


@pytest.fixture(scope="module")
def on_vta(cnn_int8_file):
    return byoc.compile(cnn_int8_file, plugins=["vta_sim"], placement="priority",
                        with_vectors=2, vectors_seed=SEED)


@pytest.fixture(scope="module")
def saved(on_vta, tmp_path_factory):
    path = tmp_path_factory.mktemp("artifact") / "cnn_int8.byoc"
    on_vta.save(path)
    return path


def assert_same_arrays(ours: dict[str, np.ndarray], theirs: dict[str, np.ndarray]) -> None:
    assert list(ours) == list(theirs)
    for name, array in ours.items():
        assert theirs[name].dtype == array.dtype, name
        assert np.array_equal(theirs[name], array), name


def test_vectors_hold_every_partition_boundary_value_and_the_onnx_models_outputs(
        on_vta, cnn_int8_file):
    reference = compile_reference(cnn_int8_file)
    assert [v.seed for v in on_vta.vectors] == [SEED, SEED + 1]
    for vector in on_vta.vectors:
        assert_same_arrays(random_inputs(on_vta.inputs, vector.seed), vector.inputs)
        assert set(vector.values) == {name for part in on_vta.parts for name in
                                      [*part.signature.inputs, *part.signature.outputs]}
        assert len(vector.values) == len(on_vta.parts) + 1   # the input, each part's output
        assert_same_arrays(reference.run(vector.inputs), vector.outputs)


def test_each_partition_fed_its_stored_inputs_gives_its_stored_outputs(on_vta):
    """The stored boundary values are the reference's, in the graph's types: vta_sim and
    cpu_llvm compute this model's integer layers exactly, partition by partition."""
    vector = on_vta.vectors[0]
    for part in on_vta.parts:
        env = LayoutEnv()
        for name in part.signature.inputs:
            env.put(name, vector.values[name])
        assert_same_arrays(run_partition(part, env),
                           {name: vector.values[name] for name in part.signature.outputs})


def test_a_saved_artifact_loads_its_vectors_bit_for_bit(on_vta, saved):
    manager = PluginManager()
    manager.load_entry_points()
    loaded = byoc.load(saved, manager)
    assert len(loaded.vectors) == len(on_vta.vectors)
    for ours, theirs in zip(on_vta.vectors, loaded.vectors):
        assert theirs.seed == ours.seed
        assert_same_arrays(ours.inputs, theirs.inputs)
        assert_same_arrays(ours.values, theirs.values)
        assert_same_arrays(ours.outputs, theirs.outputs)
    manifest, entries = artifact.read(saved)
    # every array once per vector, though a model input is also a boundary value
    assert len([e for e in entries if e.startswith(ENTRY_PREFIX)]) == \
        2 * len(on_vta.vectors[0].values)
    # no new format: byoc versions before vectors load the artifact and ignore them
    assert manifest["format_version"] == artifact.OLDEST_FORMAT_VERSION
    assert 0 < stored_size(saved) < sum(v.nbytes for v in on_vta.vectors)


def test_without_vectors_nothing_is_stored_and_the_artifact_loads(tmp_path,
                                                                  conv_bn_relu_model):
    compiled = byoc.compile(conv_bn_relu_model, with_vectors=0)
    assert compiled.vectors is None
    compiled.save(tmp_path / "plain.byoc")
    manifest, entries = artifact.read(tmp_path / "plain.byoc")
    assert "vectors" not in manifest
    assert not [name for name in entries if name.startswith(ENTRY_PREFIX)]
    assert stored_size(tmp_path / "plain.byoc") == 0
    assert byoc.load(tmp_path / "plain.byoc").vectors is None


def test_values_a_plugin_holds_in_its_own_layout_load_in_the_graphs(cnn_int8_file, tmp_path):
    """npu_example reads its input NHWC: the vector keeps the graph's NCHW value, and the
    load checks it against the partition's NHWC type as that layout sees it."""
    compiled = byoc.compile(cnn_int8_file, plugins=["npu_example"], placement="priority",
                            with_vectors=1)
    nhwc = {name for part in compiled.parts for name in part.signature.layouts}
    assert nhwc
    compiled.save(tmp_path / "npu.byoc")
    loaded = byoc.load(tmp_path / "npu.byoc")
    for name in nhwc:
        assert loaded.vectors[0].values[name].shape == compiled.graph.types[name].shape


def tail_model():
    """A NonZero whose output size depends on the input: the model's 'rows' come from the
    dynamic tail, 'size' from a partition."""
    nodes = [helper.make_node("Greater", ["x", "zero"], ["positive"]),
             helper.make_node("NonZero", ["positive"], ["rows"], name="nonzero"),
             helper.make_node("Abs", ["x"], ["size"], name="abs")]
    return make_model(nodes, [("x", TensorProto.FLOAT, [4, 3])],
                      [("rows", TensorProto.INT64, None), ("size", TensorProto.FLOAT, [4, 3])],
                      {"zero": np.array(0.5, np.float32)}, opset=13)


def test_a_dynamic_tails_outputs_are_the_tails_run_on_the_reference(tmp_path):
    compiled = byoc.compile(tail_model(), with_vectors=3)
    assert compiled.tail is not None
    reference = compile_reference(tail_model())
    shapes = set()
    for vector in compiled.vectors:
        assert_same_arrays(reference.run(vector.inputs), vector.outputs)
        shapes.add(vector.outputs["rows"].shape)
    assert len(shapes) > 1     # each vector's tail output has the size its run gives it
    compiled.save(tmp_path / "tail.byoc")
    for ours, theirs in zip(compiled.vectors, byoc.load(tmp_path / "tail.byoc").vectors):
        assert_same_arrays(ours.outputs, theirs.outputs)


@pytest.mark.parametrize("count, seed", [(-1, 0), (True, 0), (1.5, 0), (1, -2)])
def test_a_bad_count_or_seed_is_refused_before_compiling(conv_bn_relu_model, count, seed):
    with pytest.raises(InputError, match=r"must be a whole number >= 0") as refused:
        byoc.compile(conv_bn_relu_model, plugins=["no_such_plugin"], with_vectors=count,
                     vectors_seed=seed)
    assert ("--with-vectors" if seed == 0 else "--vectors-seed") in str(refused.value)


def test_a_loaded_artifact_has_no_graph_to_draw_vectors_from(saved):
    with pytest.raises(InputError, match=r"loaded from a \.byoc artifact.*--with-vectors N"):
        make_vectors(byoc.load(saved), 1)


# -- damaged vectors entries -------------------------------------------------------------------

def rewrite(src, dst, change) -> None:
    """Copy the artifact at ``src`` to ``dst`` with ``change(manifest, entries)`` applied and
    the checksums written again, as an editor who knew the format would."""
    with zipfile.ZipFile(src) as archive:
        entries = {info.filename: archive.read(info) for info in archive.infolist()}
    manifest = yaml.safe_load(entries.pop(artifact.MANIFEST))
    for key in ("files", "format_version"):
        manifest.pop(key)
    change(manifest, entries)
    artifact.write(dst, manifest, entries)


def first_values(manifest):
    return manifest["vectors"][0]["values"]


def replace_array(name, convert):
    def change(manifest, entries):
        file = first_values(manifest)[name]
        entries[file] = artifact.array_bytes(convert(artifact.array_from_bytes(entries[file],
                                                                               file)))
    return change


def drop_entry(manifest, entries):
    del entries[first_values(manifest)["pool1/MaxPool_QuantizeLinear_Output"]]


def drop_input(manifest, entries):
    del first_values(manifest)["input"]


def add_unknown(manifest, entries):
    first_values(manifest)["nowhere"] = first_values(manifest)["input"]


def set_seed(seed):
    def change(manifest, entries):
        manifest["vectors"][0]["seed"] = seed
    return change


def not_a_list(manifest, entries):
    manifest["vectors"] = {"seed": 0}


DAMAGE = {
    "wrong dtype": (replace_array("conv1/Relu_QuantizeLinear_Output",
                                  lambda a: a.astype(np.int8)),
                    r"vectors\[0\]\.values\.conv1/Relu_QuantizeLinear_Output.*int8\[1,16,32,32\]"
                    r".*partition 'p1_vta_sim' has the value as uint8\[1,16,32,32\]"),
    "wrong shape": (replace_array("output", lambda a: a[:, :5]),
                    r"vectors\[0\]\.values\.output.*float32\[1,5\].*as float32\[1,10\]"),
    "a model input's wrong shape": (replace_array("input", lambda a: a[:, :1]),
                                    r"vectors\[0\]\.values\.input.*the model has"),
    "missing file": (drop_entry, r"vectors\[0\]\.values\.pool1/MaxPool_QuantizeLinear_Output.*"
                                 r"names 'vectors/0/\d+\.npy', which the artifact does not "
                                 r"contain"),
    "no model input": (drop_input, r"vectors\[0\]\.values.*lacks the model's 'input'"),
    "an unknown value": (add_unknown, r"vectors\[0\]\.values.*'nowhere'.*no inputs, outputs"),
    "negative seed": (set_seed(-1), r"vectors\[0\]\.seed.*must be >= 0"),
    "seed of the wrong type": (set_seed("zero"), r"vectors\[0\]\.seed.*must be a int"),
    "not a list": (not_a_list, r"'vectors' must be a list"),
}


@pytest.mark.parametrize("damage", DAMAGE)
def test_a_damaged_vectors_entry_is_refused_naming_it(saved, tmp_path, damage):
    change, message = DAMAGE[damage]
    rewrite(saved, tmp_path / "damaged.byoc", change)
    with pytest.raises(ArtifactError, match=message) as refused:
        byoc.load(tmp_path / "damaged.byoc")
    assert "compile the model again" in str(refused.value)


def test_an_array_that_is_no_npy_file_is_refused_naming_its_entry(saved, tmp_path):
    def garble(manifest, entries):
        entries[first_values(manifest)["input"]] = b"not an array"

    rewrite(saved, tmp_path / "damaged.byoc", garble)
    with pytest.raises(ArtifactError, match=r"'vectors/0/\d+\.npy' is not a valid \.npy"):
        byoc.load(tmp_path / "damaged.byoc")
