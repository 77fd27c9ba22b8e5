"""The dynamic tail: nodes whose output sizes depend on runtime values (NonMaxSuppression,
NonZero, TopK with a runtime K, Unique) and the nodes depending on them run eagerly on the
reference interpreter after the static graph, which the plugins compile as before. Each model
is compared with onnxruntime on inputs that give different output sizes, on the reference alone
and with the default plugins; then artifacts, the command line and the static-only refusal."""

from __future__ import annotations

import subprocess
import sys
import zipfile

import numpy as np
import onnxruntime as ort
import pytest
import yaml
from onnx import TensorProto, helper

import byoc
from byoc import artifact
from byoc.core.dynamic_tail import TAIL_HOST
from byoc.errors import ArtifactError, ShapeInferenceError
from byoc.summary import format_profile, format_summary
from byoc.testing import compile_reference, make_model

FLOAT, INT64, BOOL = TensorProto.FLOAT, TensorProto.INT64, TensorProto.BOOL
BOXES = 36  # a 6x6 grid, one anchor per cell
CLASSES = 2
NMS_WHY = ("from node 'nms' (NonMaxSuppression: output size depends on the values of boxes, "
           "scores)")


def detector_model() -> tuple:
    """A small one-stage detector: a Conv backbone, box and score heads, NonMaxSuppression
    and a Gather of the selected boxes. The score statistics are computed after the
    NonMaxSuppression in node order but do not depend on it, so they stay static."""
    rng = np.random.default_rng(7)
    weights = {
        "w_backbone": rng.standard_normal((8, 3, 3, 3)).astype(np.float32) * 0.3,
        "w_boxes": rng.standard_normal((4, 8, 1, 1)).astype(np.float32) * 0.2,
        "w_scores": rng.standard_normal((CLASSES, 8, 1, 1)).astype(np.float32) * 0.5,
        "boxes_shape": np.array([1, 4, BOXES], np.int64),
        "scores_shape": np.array([1, CLASSES, BOXES], np.int64),
        "anchors": _anchors(),
        "max_boxes": np.array([8], np.int64),
        "iou": np.array([0.3], np.float32),
        "score_min": np.array([0.6], np.float32),
        "box_column": np.array(2, np.int64),
    }
    nodes = [
        helper.make_node("Conv", ["image", "w_backbone"], ["conv"], name="backbone",
                         pads=[1, 1, 1, 1], strides=[2, 2]),
        helper.make_node("Relu", ["conv"], ["features"], name="relu"),
        helper.make_node("Conv", ["features", "w_boxes"], ["deltas_map"], name="box_head"),
        helper.make_node("Reshape", ["deltas_map", "boxes_shape"], ["deltas_t"]),
        helper.make_node("Transpose", ["deltas_t"], ["deltas"], perm=[0, 2, 1]),
        helper.make_node("Add", ["anchors", "deltas"], ["boxes"], name="decode"),
        helper.make_node("Conv", ["features", "w_scores"], ["logits_map"], name="score_head"),
        helper.make_node("Reshape", ["logits_map", "scores_shape"], ["logits"]),
        helper.make_node("Sigmoid", ["logits"], ["scores"]),
        helper.make_node("NonMaxSuppression",
                         ["boxes", "scores", "max_boxes", "iou", "score_min"], ["selected"],
                         name="nms", center_point_box=1),
        helper.make_node("ReduceMax", ["scores"], ["best_scores"], name="best", axes=[1],
                         keepdims=0),
        helper.make_node("Gather", ["selected", "box_column"], ["box_index"], name="column",
                         axis=1),
        helper.make_node("Squeeze", ["boxes"], ["all_boxes"], name="squeeze", axes=[0]),
        helper.make_node("Gather", ["all_boxes", "box_index"], ["detections"], name="pick",
                         axis=0),
    ]
    model = make_model(nodes, [("image", FLOAT, [1, 3, 12, 12])],
                       [("detections", FLOAT, ["n", 4]), ("best_scores", FLOAT, [1, BOXES]),
                        ("selected", INT64, ["n", 3])],
                       weights, opset=11, name="detector")
    feeds = [{"image": np.random.default_rng(seed).standard_normal((1, 3, 12, 12))
              .astype(np.float32) * scale} for seed, scale in ((0, 1.0), (1, 3.0), (2, 0.3))]
    return model, feeds


def _anchors() -> np.ndarray:
    centres = (np.arange(6) + 0.5) / 6
    cy, cx = np.meshgrid(centres, centres, indexing="ij")
    sizes = np.full(BOXES, 0.3)
    return np.stack([cx.ravel(), cy.ravel(), sizes, sizes], 1)[None].astype(np.float32)


def nonzero_model():
    nodes = [helper.make_node("Greater", ["x", "zero"], ["positive"]),
             helper.make_node("NonZero", ["positive"], ["where"], name="nonzero"),
             helper.make_node("Gather", ["where", "first"], ["rows"], axis=0),
             helper.make_node("Gather", ["x", "rows"], ["picked"], name="pick", axis=0),
             helper.make_node("Abs", ["x"], ["size"], name="abs")]
    model = make_model(nodes, [("x", FLOAT, [5, 3])],
                       [("picked", FLOAT, None), ("size", FLOAT, [5, 3])],
                       {"zero": np.array(0.5, np.float32), "first": np.array(0, np.int64)},
                       opset=13)
    feeds = [{"x": np.random.default_rng(seed).standard_normal((5, 3)).astype(np.float32)
              + shift} for seed, shift in ((0, 0.0), (1, -1.0), (2, 1.0))]
    return model, feeds


def topk_model():
    nodes = [helper.make_node("Relu", ["x"], ["r"]),
             helper.make_node("TopK", ["r", "k"], ["values", "indices"], name="topk", axis=1),
             helper.make_node("Mul", ["values", "two"], ["doubled"], name="double")]
    model = make_model(nodes, [("x", FLOAT, [2, 9]), ("k", INT64, [1])],
                       [("doubled", FLOAT, None), ("indices", INT64, None)],
                       {"two": np.array(2.0, np.float32)}, opset=11)
    x = np.random.default_rng(0).standard_normal((2, 9)).astype(np.float32)
    feeds = [{"x": x, "k": np.array([k], np.int64)} for k in (1, 4, 9)]
    return model, feeds


def unique_model():
    nodes = [helper.make_node("Add", ["x", "one"], ["shifted"]),
             helper.make_node("Unique", ["shifted"], ["y", "first", "inverse", "counts"],
                              name="unique", sorted=1),
             helper.make_node("Mul", ["y", "counts"], ["weighted"], name="weigh")]
    model = make_model(nodes, [("x", INT64, [10])],
                       [("weighted", INT64, None), ("first", INT64, None),
                        ("inverse", INT64, None), ("counts", INT64, None)],
                       {"one": np.array(1, np.int64)}, opset=11)
    feeds = [{"x": np.random.default_rng(seed).integers(0, high, 10)}
             for seed, high in ((0, 2), (1, 5), (2, 100))]
    return model, feeds


MODELS = {"detector": detector_model, "nonzero": nonzero_model, "topk": topk_model,
          "unique": unique_model}
# The node starting each model's tail, and the tail's size.
TAIL_STARTS = {"detector": ("nms", 3), "nonzero": ("nonzero", 3), "topk": ("topk", 2),
               "unique": ("unique", 2)}


def onnxruntime_outputs(model, feeds) -> dict[str, np.ndarray]:
    session = ort.InferenceSession(model.SerializeToString(),
                                   providers=["CPUExecutionProvider"])
    names = [output.name for output in session.get_outputs()]
    return dict(zip(names, session.run(None, feeds)))


def assert_same(ours: dict[str, np.ndarray], theirs: dict[str, np.ndarray]) -> None:
    assert list(ours) == list(theirs)
    for name, expected in theirs.items():
        assert (ours[name].dtype, ours[name].shape) == (expected.dtype, expected.shape), name
        np.testing.assert_allclose(ours[name], expected, rtol=1e-5, atol=1e-6, err_msg=name)


@pytest.mark.parametrize("name", MODELS)
@pytest.mark.parametrize("plugins", ["reference", "default"])
def test_matches_onnxruntime_with_run_dependent_output_sizes(name, plugins):
    model, feeds = MODELS[name]()
    compiled = compile_reference(model) if plugins == "reference" else byoc.compile(model)
    first, size = TAIL_STARTS[name]
    assert [root.node for root in compiled.tail.roots] == [first]
    assert len(compiled.tail.nodes) == size
    shapes = set()
    for inputs in feeds:
        expected = onnxruntime_outputs(model, inputs)
        assert_same(compiled.run(inputs), expected)
        shapes.add(tuple(expected[compiled.tail.outputs[0]].shape))
    assert len(shapes) == len(feeds), f"the inputs should give different sizes: {shapes}"


def test_the_plugins_compile_the_static_part_and_never_see_the_tail():
    model, feeds = detector_model()
    compiled = byoc.compile(model)
    assert {part.plugin for part in compiled.parts} == {"cpu_llvm"}
    tail_nodes = {node.name for node in compiled.tail.nodes}
    assert tail_nodes == {"nms", "column", "pick"}
    assert not tail_nodes & set(compiled.plan.explanations)
    # best_scores comes after the NonMaxSuppression in node order but does not depend on it.
    assert "best" in compiled.plan.explanations
    assert compiled.outputs["best_scores"].shape == (1, BOXES)
    assert compiled.outputs["detections"] is None and compiled.outputs["selected"] is None
    # The static graph hands the tail what it reads; the constants it reads are its own.
    assert compiled.tail.inputs == ["boxes", "scores", "all_boxes"]
    assert set(compiled.graph.outputs) == {"best_scores", "boxes", "scores", "all_boxes"}
    assert {"max_boxes", "iou", "score_min", "box_column"} <= set(compiled.tail.constants)
    outputs, profile = compiled.profile(feeds[0])
    assert [p.plugin for p in profile] == ["cpu_llvm", TAIL_HOST]
    assert "dynamic_tail" in format_profile(profile)
    assert_same(outputs, onnxruntime_outputs(model, feeds[0]))


def test_summary_names_the_tail_its_start_and_why():
    model, _ = detector_model()
    summary = format_summary(byoc.compile(model))
    assert summary.splitlines()[-1] == f"dynamic tail ({TAIL_HOST}): 3 nodes, {NMS_WHY}"
    tail_row = next(line for line in summary.splitlines() if line.startswith("dynamic_tail"))
    assert "NonMaxSuppression 1, Gather 2" in tail_row


def test_a_runtime_k_is_named_as_what_decides_the_size():
    model, _ = topk_model()
    assert compile_reference(model).tail.describe() == (
        "2 nodes, from node 'topk' (TopK: output size depends on the values of K)")


def test_a_model_without_value_dependent_sizes_has_no_tail():
    model, _ = nonzero_model()
    constant_x = {"x": np.arange(15, dtype=np.float32).reshape(5, 3) - 7}
    compiled = compile_reference(model, constant_inputs=constant_x)
    assert compiled.tail is None
    rows = np.nonzero(constant_x["x"] > 0.5)[0]
    assert compiled.outputs["picked"].shape == (len(rows), 3)
    np.testing.assert_array_equal(compiled.run({})["picked"], constant_x["x"][rows])


@pytest.mark.parametrize("name", MODELS)
def test_static_only_compilation_refuses_with_the_clear_message(name):
    model, _ = MODELS[name]()
    with pytest.raises(ShapeInferenceError) as refused:
        byoc.compile(model, dynamic_tail=False)
    message = str(refused.value)
    first, _ = TAIL_STARTS[name]
    assert f"node {first!r}" in message
    assert "which are not known at import, and byoc compiles static shapes" in message
    assert "dynamic_tail=False" in message
    with pytest.raises(ShapeInferenceError):
        byoc.import_model(model)


@pytest.mark.parametrize("name", ["detector", "unique"])
def test_artifact_round_trip(tmp_path, name):
    model, feeds = MODELS[name]()
    compiled = byoc.compile(model)
    compiled.save(tmp_path / "model.byoc")
    loaded = byoc.load(tmp_path / "model.byoc")
    # Format 2: a byoc that predates tails refuses the artifact instead of running it
    # without its tail.
    assert artifact.read(tmp_path / "model.byoc")[0]["format_version"] == 2
    assert list(loaded.outputs) == list(compiled.outputs)
    assert loaded.tail.describe() == compiled.tail.describe()
    # the same partitions and tail; the placement's totals are the compiling process's only
    # (an artifact keeps each partition's estimate, not the plans it was chosen against)
    assert format_summary(loaded) == "\n".join(
        line for line in format_summary(compiled).splitlines()
        if not line.startswith("estimated time: "))
    for inputs in feeds:
        assert_same(loaded.run(inputs), onnxruntime_outputs(model, inputs))


def rewrite_manifest(path, change) -> None:
    with zipfile.ZipFile(path) as archive:
        entries = {info.filename: archive.read(info) for info in archive.infolist()}
    manifest = yaml.safe_load(entries["manifest.yaml"])
    change(manifest)
    entries["manifest.yaml"] = yaml.safe_dump(manifest, sort_keys=False).encode()
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in entries.items():
            archive.writestr(name, data)


def test_an_edited_tail_is_refused_on_load(tmp_path):
    model, _ = detector_model()
    path = tmp_path / "model.byoc"
    byoc.compile(model).save(path)

    def unknown_op(manifest):
        manifest["dynamic_tail"]["graph"]["nodes"][0]["op_type"] = "Explode"

    def read_elsewhere(manifest):
        manifest["dynamic_tail"]["graph"]["nodes"][-1]["inputs"][0] = "elsewhere"

    def feed_unknown(manifest):
        manifest["dynamic_tail"]["graph"]["inputs"].append("secret")

    for change, fragment in ((unknown_op, ("'nms' (ai.onnx::Explode), which the reference "
                                           "interpreter does not implement")),
                             (read_elsewhere, "reads 'elsewhere', defined nowhere before it"),
                             (feed_unknown, "reads 'secret', which are neither inputs")):
        byoc.compile(model).save(path)
        rewrite_manifest(path, change)
        with pytest.raises(ArtifactError, match="compile the model again") as refused:
            byoc.load(path)
        assert fragment in str(refused.value)


def byoc_cli(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "byoc", *map(str, args)],
                          capture_output=True, text=True, timeout=300)


def test_cli_compiles_runs_and_shows_a_model_with_a_tail(tmp_path):
    model, feeds = detector_model()
    onnx_path, artifact = tmp_path / "detector.onnx", tmp_path / "detector.byoc"
    onnx_path.write_bytes(model.SerializeToString())
    np.save(tmp_path / "image.npy", feeds[1]["image"])

    compiled = byoc_cli("compile", onnx_path, "-o", artifact, "--report", tmp_path / "r.html")
    assert "Traceback" not in compiled.stderr and compiled.returncode == 0, compiled.stderr
    assert f"dynamic tail ({TAIL_HOST}): 3 nodes, {NMS_WHY}" in compiled.stdout
    assert "dynamic tail (reference, eager)" in (tmp_path / "r.html").read_text()

    ran = byoc_cli("run", artifact, "--input", f"image={tmp_path / 'image.npy'}", "--output",
                   tmp_path / "out.npz", "--profile")
    assert "Traceback" not in ran.stderr and ran.returncode == 0, ran.stderr
    assert "dynamic_tail" in ran.stdout
    with np.load(tmp_path / "out.npz") as written:
        assert_same({name: written[name] for name in written.files},
                    onnxruntime_outputs(model, feeds[1]))

    shown = byoc_cli("show", onnx_path)
    assert "Traceback" not in shown.stderr and shown.returncode == 0, shown.stderr
    assert f"dynamic tail ({TAIL_HOST}): 3 nodes, {NMS_WHY}" in shown.stdout
    assert "%detections = Gather(%all_boxes, %box_index) {axis=0} : ?  # pick" in shown.stdout


@pytest.mark.parametrize("command", ["compile", "run", "show"])
def test_cli_static_only_option_refuses_with_the_clear_message(tmp_path, command):
    model, _ = detector_model()
    onnx_path = tmp_path / "detector.onnx"
    onnx_path.write_bytes(model.SerializeToString())
    refused = byoc_cli(command, onnx_path, "--no-dynamic-tail")
    assert refused.returncode == 1 and "Traceback" not in refused.stderr, refused.stderr
    message = refused.stderr.replace("\n  ", " ")
    assert message.startswith("byoc: error: ")
    assert ("node 'nms' (ai.onnx::NonMaxSuppression, opset 11): the size of output 'selected' "
            "depends on the values of inputs 'boxes' (boxes), 'scores' (scores)") in message
