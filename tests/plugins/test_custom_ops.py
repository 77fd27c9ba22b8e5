"""Ops of a plugin's own domain (the byoc_import_custom_ops hook): a model holding the toy
vendor's com.mychip::BiasGelu imports, runs on the reference, compiles with and without the
vendor's plugin selected, and every way of getting the declaration wrong is a clear error."""

from __future__ import annotations

import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper
from plugins.toy_plugins import BIAS_GELU, BiasGelu, Vendor

import byoc
from byoc.cli import main
from byoc.core.interpreter import lookup
from byoc.core.ir import Graph, Node, TensorType
from byoc.errors import PluginError, ShapeInferenceError, UnsupportedOpError
from byoc.partition.patterns import Pattern, find_matches, make_op_pattern, op, wildcard
from byoc.plugins import CustomOp, PluginInfo, hookimpl
from byoc.plugins.manager import PluginManager, default_manager
from byoc.testing import compile_reference, make_model

TOY_PLUGINS = Path(__file__).resolve().parent / "toy_plugins.py"
WIDTH = 16


@pytest.fixture
def vendor():
    """The vendor plugin registered for one test (and withdrawn after it)."""
    manager = default_manager()
    name = manager.register(Vendor()).name
    yield manager
    manager.unregister(name)


def vendor_model(approximate="none", domain_version=1, bias_shape=(WIDTH,)):
    """x[2,16] -> MatMul -> com.mychip::BiasGelu(bias) -> Relu: the vendor op between two of
    ONNX's, reading a run-time value and a constant."""
    rng = np.random.default_rng(7)
    nodes = [helper.make_node("MatMul", ["x", "w"], ["h"]),
             helper.make_node("BiasGelu", ["h", "bias"], ["g"], domain="com.mychip",
                              approximate=approximate),
             helper.make_node("Relu", ["g"], ["y"])]
    model = make_model(nodes, [("x", TensorProto.FLOAT, [2, WIDTH])],
                       [("y", TensorProto.FLOAT, [2, WIDTH])],
                       {"w": rng.standard_normal((WIDTH, WIDTH)).astype(np.float32),
                        "bias": rng.standard_normal(bias_shape).astype(np.float32)})
    model.opset_import.append(helper.make_opsetid("com.mychip", domain_version))
    return model


def expected_output(model, x, approximate):
    """The model's output computed with numpy from its weights, independently of the
    plugin's implementation."""
    w, bias = (numpy_helper.to_array(t) for t in model.graph.initializer)
    z = (x.astype(np.float64) @ w) + bias
    if approximate == "tanh":
        gelu = 0.5 * z * (1 + np.tanh(math.sqrt(2 / math.pi) * (z + 0.044715 * z ** 3)))
    else:
        gelu = 0.5 * z * (1 + np.vectorize(math.erf)(z / math.sqrt(2)))
    return np.maximum(gelu, 0).astype(np.float32)


def feeds():
    return {"x": np.random.default_rng(0).standard_normal((2, WIDTH)).astype(np.float32)}


# -- the op imports and runs -------------------------------------------------------------------


@pytest.mark.parametrize("approximate", ["none", "tanh"])
def test_vendor_op_runs_on_the_reference_as_numpy_computes_it(vendor, approximate):
    model = vendor_model(approximate)
    graph = byoc.import_model(model)
    gelu = graph.node_by_name("BiasGelu_1")
    assert (gelu.domain, gelu.op_type) == ("com.mychip", "BiasGelu")
    assert graph.types["g"] == TensorType(np.float32, (2, WIDTH))
    outputs = compile_reference(model).run(feeds())
    np.testing.assert_allclose(outputs["y"], expected_output(model, feeds()["x"], approximate),
                               rtol=1e-5, atol=1e-6)


def test_vendor_op_matches_onnxruntime_on_the_onnx_ops_it_fuses(vendor):
    model = vendor_model()
    fused = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["h"]),
         helper.make_node("Add", ["h", "bias"], ["z"]),
         helper.make_node("Gelu", ["z"], ["g"]), helper.make_node("Relu", ["g"], ["y"])],
        "fused", list(model.graph.input), list(model.graph.output),
        initializer=list(model.graph.initializer))
    onnx_model = helper.make_model(fused, opset_imports=[helper.make_opsetid("", 20)])
    onnx_model.ir_version = 9
    session = ort.InferenceSession(onnx_model.SerializeToString(),
                                   providers=["CPUExecutionProvider"])
    (expected,) = session.run(None, feeds())
    np.testing.assert_allclose(compile_reference(model).run(feeds())["y"], expected,
                               rtol=1e-5, atol=1e-6)


def test_the_declaring_plugin_claims_its_op_when_selected(vendor, tmp_path):
    model = byoc.compile(vendor_model(), plugins=["vendor"])
    placed = {n: e.plugin for n, e in model.plan.explanations.items()}
    assert placed["BiasGelu_1"] == "vendor"
    assert placed["MatMul_0"] == placed["Relu_2"] == "cpu_llvm"
    expected = compile_reference(vendor_model()).run(feeds())["y"]
    np.testing.assert_allclose(model.run(feeds())["y"], expected, rtol=1e-6, atol=1e-6)
    model.save(tmp_path / "vendor.byoc")
    np.testing.assert_allclose(byoc.load(tmp_path / "vendor.byoc").run(feeds())["y"], expected,
                               rtol=1e-6, atol=1e-6)


def test_unselected_the_op_runs_on_the_reference_host(vendor):
    model = byoc.compile(vendor_model())
    assert model.plan.explanations["BiasGelu_1"].plugin == "reference"
    # cpu_llvm takes the MatMul and Relu, and sums in another order than the reference.
    np.testing.assert_allclose(model.run(feeds())["y"],
                               compile_reference(vendor_model()).run(feeds())["y"], rtol=1e-6,
                               atol=1e-6)


def test_a_node_of_constants_is_evaluated_at_import(vendor):
    # Both inputs of the vendor op are constants: the importer evaluates the node, which
    # checks the declared type against the value the implementation computes.
    w = np.linspace(-2, 2, 4 * WIDTH, dtype=np.float32).reshape(4, WIDTH)
    bias = np.ones(WIDTH, np.float32)
    model = make_model(
        [helper.make_node("BiasGelu", ["w", "bias"], ["g"], domain="com.mychip"),
         helper.make_node("Add", ["x", "g"], ["y"])],
        [("x", TensorProto.FLOAT, [4, WIDTH])], [("y", TensorProto.FLOAT, [4, WIDTH])],
        {"w": w, "bias": bias})
    model.opset_import.append(helper.make_opsetid("com.mychip", 1))
    assert byoc.import_model(model).types["g"] == TensorType(np.float32, (4, WIDTH))
    x = np.zeros((4, WIDTH), np.float32)
    z = (w + bias).astype(np.float64)
    expected = 0.5 * z * (1 + np.vectorize(math.erf)(z / math.sqrt(2)))
    np.testing.assert_allclose(compile_reference(model).run({"x": x})["y"], expected,
                               rtol=1e-6)


def test_patterns_tell_a_vendor_op_from_the_onnx_op_of_the_same_name():
    graph = Graph(nodes=[Node("Gelu", ["x"], ["y"], name="vendor_gelu", domain="com.mychip"),
                         Node("Gelu", ["y"], ["z"], name="onnx_gelu")],
                  inputs=["x"], outputs=["z"],
                  types={v: TensorType(np.float32, (2, 4)) for v in "xyz"})
    patterns = [make_op_pattern("p.onnx_gelu", "Gelu"),
                make_op_pattern("p.vendor_gelu", "com.mychip::Gelu"),
                Pattern("p.vendor_then_onnx",
                        op("Gelu", op("com.mychip::Gelu", wildcard())))]
    found = {r.node.name: sorted(m.pattern for m in r.matches)
             for r in find_matches(graph, patterns)}
    assert found == {"vendor_gelu": ["p.vendor_gelu"],
                     "onnx_gelu": ["p.onnx_gelu", "p.vendor_then_onnx"]}


# -- without the plugin, or with a wrong model ----------------------------------------------------


def test_without_a_declaring_plugin_the_error_names_domain_op_and_hook():
    assert lookup("com.mychip", "BiasGelu") is None
    with pytest.raises(UnsupportedOpError) as error:
        byoc.import_model(vendor_model())
    message = str(error.value)
    assert ("node 'BiasGelu_1' (com.mychip::BiasGelu, opset 1): com.mychip::BiasGelu is an op "
            "of domain com.mychip that no installed plugin declares") in message
    assert "byoc_import_custom_ops hook (docs/writing-a-plugin.md)" in message


def test_unregistering_the_plugin_withdraws_its_op():
    manager = default_manager()
    manager.register(Vendor())
    assert lookup("com.mychip", "BiasGelu") is BiasGelu
    manager.unregister("vendor")
    assert lookup("com.mychip", "BiasGelu") is None


def test_a_domain_version_the_op_is_not_declared_for_is_refused(vendor):
    with pytest.raises(UnsupportedOpError, match=r"plugin 'vendor' \(from registered "
                       r"in-process\) declares com.mychip::BiasGelu for version\(s\) 1 of "
                       r"domain com.mychip, not 2"):
        byoc.import_model(vendor_model(domain_version=2))


def test_inputs_the_shape_function_refuses_name_the_node(vendor):
    with pytest.raises(ShapeInferenceError, match=r"node 'BiasGelu_1' .* does not fit the op "
                       r"com.mychip::BiasGelu of plugin 'vendor'.*the bias must have shape "
                       r"\[16\]"):
        byoc.import_model(vendor_model(bias_shape=(3,)))


def test_attributes_the_implementation_refuses_name_the_node(vendor):
    with pytest.raises(ShapeInferenceError, match="approximate must be 'none' or 'tanh'"):
        byoc.import_model(vendor_model(approximate="cubic"))


# -- declarations that are wrong -------------------------------------------------------------------


def declaring(name, *custom_ops):
    """A plugin named ``name`` that declares ``custom_ops``."""

    class Declaring:
        @hookimpl
        def byoc_plugin_info(self):
            return PluginInfo(name=name, version="0.1", device="test", description="")

        @hookimpl
        def byoc_import_custom_ops(self):
            return list(custom_ops)

    return Declaring()


def bias_gelu_with(infer_types):
    return CustomOp("com.mychip", "BiasGelu", BiasGelu, infer_types)


@pytest.mark.parametrize("infer_types, complaint", [
    (lambda input_types: input_types[0], "returned TensorType(dtype=dtype('float32')"),
    (lambda input_types: [input_types[0]] * 2, "which has 1 output(s); it must return a list "
                                               "of 1 byoc.core.ir.TensorType"),
    (lambda input_types: [(np.float32, (2, 16))], "returned [(<class 'numpy.float32'>"),
    (lambda input_types: input_types[5], "failed in the infer_types of its op "
                                         "com.mychip::BiasGelu for"),
])
def test_a_wrong_shape_function_is_a_plugin_error_naming_plugin_and_op(infer_types, complaint):
    manager = PluginManager()
    manager.register(declaring("badshapes", bias_gelu_with(infer_types)))
    try:
        with pytest.raises(PluginError) as error:
            byoc.import_model(vendor_model())
    finally:
        manager.unregister("badshapes")
    message = str(error.value)
    assert message.startswith("plugin 'badshapes' (from registered in-process)")
    assert "com.mychip::BiasGelu" in message and complaint in message


def test_a_shape_function_may_take_any_of_its_arguments():
    seen = {}

    def infer_types(output_count, opset, input_values, attributes, input_types):
        seen.update(count=output_count, opset=opset, attributes=attributes,
                    bias_known=input_values[1] is not None, x_known=input_values[0] is not None)
        return [input_types[0]]

    manager = PluginManager()
    manager.register(declaring("allargs", bias_gelu_with(infer_types)))
    try:
        byoc.import_model(vendor_model("tanh"))
    finally:
        manager.unregister("allargs")
    assert seen == {"count": 1, "opset": 1, "attributes": {"approximate": "tanh"},
                    "bias_known": True, "x_known": False}


def test_two_plugins_declaring_one_op_is_an_error_naming_both(vendor):
    rival = declaring("rival", BIAS_GELU)
    with pytest.raises(PluginError) as error:
        PluginManager().register(rival)
    assert str(error.value) == (
        "two plugins declare the op com.mychip::BiasGelu: plugin 'vendor' (from registered "
        "in-process) and plugin 'rival' (from registered in-process); uninstall one of them "
        "(or have one rename its domain)")
    # The rival was not registered, and the vendor's declaration still holds.
    assert lookup("com.mychip", "BiasGelu") is BiasGelu
    byoc.import_model(vendor_model())


def test_a_failed_registration_declares_none_of_the_plugins_ops(vendor):
    other = CustomOp("com.mychip", "Other", BiasGelu, lambda input_types: input_types[:1])
    with pytest.raises(PluginError, match="two plugins declare the op com.mychip::BiasGelu"):
        PluginManager().register(declaring("rival", other, BIAS_GELU))
    assert lookup("com.mychip", "Other") is None


def test_one_plugin_declaring_an_op_twice_is_refused():
    with pytest.raises(PluginError, match=r"plugin 'twice' \(from registered in-process\) "
                       r"declares com.mychip::BiasGelu more than once"):
        PluginManager().register(declaring("twice", BIAS_GELU, BIAS_GELU))
    assert lookup("com.mychip", "BiasGelu") is None


def test_the_hook_must_return_custom_ops():
    with pytest.raises(PluginError, match=r"byoc_import_custom_ops returned \['BiasGelu'\], "
                       r"expected a list of byoc.plugins.api.CustomOp; expected signature: "
                       r"byoc_import_custom_ops\(\) -> list\[CustomOp\]"):
        PluginManager().register(declaring("strings", "BiasGelu"))


@pytest.mark.parametrize("fields, complaint", [
    ({"domain": ""}, "needs a domain of its own"),
    ({"domain": "ai.onnx"}, "needs a domain of its own"),
    ({"op_type": "Bias Gelu"}, "must be an identifier"),
    ({"implementation": lambda x: x}, "must be a subclass of byoc.core.interpreter.OpImpl"),
    ({"infer_types": [TensorType(np.float32, (1,))]}, "infer_types must be callable"),
    ({"infer_types": lambda shapes: shapes}, "infer_types takes shapes, which byoc does not "
                                             "pass"),
    ({"opsets": ()}, "opsets must be a non-empty sequence"),
    ({"opsets": (0,)}, "opsets must be a non-empty sequence"),
])
def test_a_malformed_custom_op_is_refused_where_it_is_built(fields, complaint):
    arguments = {"domain": "com.mychip", "op_type": "BiasGelu", "implementation": BiasGelu,
                 "infer_types": lambda input_types: input_types[:1], **fields}
    with pytest.raises(PluginError, match="CustomOp ") as error:
        CustomOp(**arguments)
    assert complaint in str(error.value)


# -- the command line --------------------------------------------------------------------------


def test_cli_in_process_shows_compiles_and_lists_the_op(vendor, tmp_path, capsys):
    path = tmp_path / "vendor.onnx"
    path.write_bytes(vendor_model().SerializeToString())
    assert main(["show", str(path)]) == 0
    assert "com.mychip::BiasGelu" in capsys.readouterr().out
    assert main(["compile", str(path), "--plugins", "vendor", "-o",
                 str(tmp_path / "v.byoc")]) == 0
    assert "vendor" in capsys.readouterr().out
    assert main(["ops"]) == 0
    listed = capsys.readouterr().out
    assert ("com.mychip::BiasGelu  domain versions 1  (declared by plugin 'vendor' (from "
            "registered in-process): Gelu(X + bias), the bias along X's last axis)") in listed


@pytest.fixture(scope="module")
def vendor_env(tmp_path_factory):
    """An environment whose Python path holds the vendor plugin as an installed
    distribution, the way pip installs an entry point."""
    site = tmp_path_factory.mktemp("site")
    shutil.copy(TOY_PLUGINS, site / "byoc_vendor.py")
    dist = site / "byoc_vendor-2.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: byoc-vendor\nVersion: 2.0\n")
    (dist / "entry_points.txt").write_text("[byoc.plugins]\nvendor = byoc_vendor:Vendor\n")
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(site), env.get("PYTHONPATH", "")])
    return env


def byoc_cli(*args, env=None):
    return subprocess.run([sys.executable, "-m", "byoc", *map(str, args)], capture_output=True,
                          text=True, env=env, timeout=300)


def test_cli_with_the_plugin_installed_shows_compiles_and_runs(vendor_env, tmp_path):
    path, artifact = tmp_path / "vendor.onnx", tmp_path / "vendor.byoc"
    path.write_bytes(vendor_model().SerializeToString())
    show = byoc_cli("show", path, env=vendor_env)
    assert show.returncode == 0, show.stderr
    assert "com.mychip::BiasGelu" in show.stdout
    compiled = byoc_cli("compile", path, "-o", artifact, env=vendor_env)
    assert compiled.returncode == 0, compiled.stderr
    run = byoc_cli("run", artifact, env=vendor_env)
    assert run.returncode == 0, run.stderr
    assert "output y: float32[2,16]" in run.stdout


def test_cli_without_the_plugin_fails_in_one_paragraph(tmp_path):
    path = tmp_path / "vendor.onnx"
    path.write_bytes(vendor_model().SerializeToString())
    for command in ("show", "compile"):
        result = byoc_cli(command, path)
        assert result.returncode == 1 and "Traceback" not in result.stderr
        message = result.stderr.replace("\n  ", " ")
        assert message.startswith("byoc: error: ")
        assert ("com.mychip::BiasGelu is an op of domain com.mychip that no installed plugin "
                "declares; install the plugin that provides it, or implement the "
                "byoc_import_custom_ops hook (docs/writing-a-plugin.md)") in message
