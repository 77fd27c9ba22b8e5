"""The benchmark corpus (benchmarks/corpus.py) and the goal lines of benchmarks/cpu_llvm.py.

Every corpus model must be a valid ONNX model that byoc runs as onnxruntime does (fp32) or as
byoc's reference interpreter does (int8); the models are the real architectures at their real
input sizes, so only the quickest to compile run here unmarked, the rest are marked slow.
"""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest

import byoc
from byoc import model_zoo
from byoc.testing import compile_reference

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import corpus  # noqa: E402
import cpu_llvm  # noqa: E402

# The corpus's own builders (the zoo's are tested with the zoo), the slow-to-build ones slow.
OWN_BUILDERS = [name for name, builder in corpus.MODELS.items()
                if not isinstance(builder, model_zoo.Int8Variant)
                and builder not in model_zoo.MODELS.values()]
BIG_WEIGHTS = {"alexnet", "zfnet"}  # some 240 MB of classifier weights each
QUICK_TO_COMPILE = {"squeezenet", "bert_layer"}


def marked(names, fast):
    return [pytest.param(name, marks=() if name in fast else pytest.mark.slow)
            for name in names]


@pytest.mark.parametrize("name", marked(OWN_BUILDERS, set(OWN_BUILDERS) - BIG_WEIGHTS))
def test_corpus_builder_makes_a_valid_model_of_the_stated_shape(name):
    model = corpus.MODELS[name]()  # GraphBuilder.model runs onnx.checker with full_check
    onnx.checker.check_model(model, full_check=True)
    assert [opset.version for opset in model.opset_import] == [model_zoo.OPSET]
    inferred = onnx.shape_inference.infer_shapes(model, strict_mode=True)
    assert inferred.graph.output[0].type.tensor_type.shape.dim[0].dim_value == 1


@pytest.fixture(scope="module")
def corpus_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("corpus")


@pytest.mark.parametrize("name", marked(corpus.MODELS, QUICK_TO_COMPILE))
def test_byoc_runs_corpus_model_like_its_peer(name, corpus_dir):
    path = corpus.build(name, corpus_dir)
    feeds = model_zoo.sample_inputs(path)
    compiled = byoc.compile(path, plugins=["cpu_llvm"])
    (output,) = compiled.outputs
    actual = compiled.run(feeds)[output]
    if corpus.is_int8(name):
        np.testing.assert_array_equal(actual, compile_reference(path).run(feeds)[output])
        return
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    expected = session.run(None, feeds)[0]
    assert np.abs(actual - expected).max() <= 1e-4 * np.abs(expected).max()
    assert all(part.plugin == "cpu_llvm" for part in compiled.parts)


def test_build_reuses_the_file_and_refuses_an_unknown_name(tmp_path):
    path = corpus.build("squeezenet", tmp_path)
    built = path.stat().st_mtime_ns
    assert corpus.build("squeezenet", tmp_path).stat().st_mtime_ns == built
    with pytest.raises(ValueError, match="no zoo model named 'squeezenet2'.*densenet121"):
        corpus.build("squeezenet2", tmp_path)


def test_shufflenet_shuffles_channels_with_split_and_reshape_transpose():
    nodes = corpus.shufflenet_v2().graph.node
    ops = Counter(node.op_type for node in nodes)
    assert ops["Split"] == 13 and ops["Transpose"] == 16 and ops["Reshape"] == 32
    # [1, 2, c/2, h, w] -> [1, c/2, 2, h, w]: channel i of one half lands next to channel i
    # of the other
    perms = {tuple(node.attribute[0].ints) for node in nodes if node.op_type == "Transpose"}
    assert perms == {(0, 2, 1, 3, 4)}


# Goal lines of benchmarks/cpu_llvm.py

def result(model, ratio, int8=False, compile_s=(1.0, 0.1), threads=1, exact=True):
    accuracy = cpu_llvm.Accuracy(0.0 if exact else 0.5, 0.0 if exact else 0.1, int8, 0.25)
    return cpu_llvm.Result(model, threads, 10**9, ratio * 1e-3, 1e-3, {}, [], accuracy,
                           compile_s)


def verdicts(lines):
    return [line.rsplit(": ", 1)[-1] for line in lines]


def test_goals_pass_when_every_goal_holds():
    results = [result("a", 0.8), result("b", 0.85), result("c", 1.1),
               result("q", 0.95, int8=True)]
    lines = cpu_llvm.goals(results, size_limited={"a", "b", "c", "q"})
    assert lines[0].startswith("- median byoc/ORT 0.90 over 4 models")
    assert verdicts(lines) == ["pass", "pass", "pass", "pass", "pass"]


@pytest.mark.parametrize("broken, failing_line", [
    (result("c", 1.25), 1),  # one model above 1.2
    (result("q", 1.05, int8=True), 2),  # an int8 model above 1.0
    (result("c", 1.0, compile_s=(2.5, 0.1)), 3),  # a slow cold compile
    (result("c", 1.0, compile_s=(1.0, 0.4)), 3),  # a slow cached compile
    (result("q", 0.9, int8=True, exact=False), 4),  # an int8 model not bit-exact
])
def test_goals_fail_naming_what_broke(broken, failing_line):
    results = [result("a", 0.5), result("b", 0.5), broken]
    if not broken.accuracy.int8:
        results.append(result("q", 0.5, int8=True))
    lines = cpu_llvm.goals(results, size_limited={"a", "b", "c", "q"})
    assert "FAIL" in lines[failing_line], lines
    assert broken.model in lines[failing_line], lines
    assert sum("FAIL" in line for line in lines) == 1, lines


def test_goals_leave_big_models_out_of_the_compile_goal_and_fail_on_a_crash():
    results = [result("vgg19", 0.5, compile_s=(30.0, 3.0)), result("a", 0.5)]
    assert "FAIL" not in "".join(cpu_llvm.goals(results, size_limited={"a"}))
    crashed = cpu_llvm.Result("b", 1, 10**9, float("nan"), float("nan"), {}, [], None,
                              error="RuntimeError: boom")
    lines = cpu_llvm.goals([*results, crashed], size_limited={"a"})
    assert lines[-1] == "- failed in byoc or onnxruntime: b: FAIL"
    assert all("FAIL" in line for line in lines)


def test_accuracy_text_flags_drift():
    assert cpu_llvm.Accuracy(1e-7, 2e-7, int8=False).text() == "2.0e-07"
    assert cpu_llvm.Accuracy(1.0, 2e-4, int8=False).text() == "2.0e-04 (!)"
    assert cpu_llvm.Accuracy(0.0, 0.0, int8=True, step=0.1).text() == "bit-exact"
    assert cpu_llvm.Accuracy(0.2, 0.01, int8=True, step=0.1).text() == \
        "NOT bit-exact: 2 steps (!)"
