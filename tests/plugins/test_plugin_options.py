"""Declared plugin options (``byoc_plugin_options``): what users give is checked against what
each plugin declares, converted to its type, filled with defaults and split by stage."""

from __future__ import annotations

import resource
import subprocess
import sys
import warnings

import numpy as np
import pytest
from conftest import make_model
from onnx import TensorProto, helper

import byoc
from byoc.cli import main
from byoc.errors import PluginError, PluginOptionError, PluginOptionWarning
from byoc.partition.patterns import make_op_pattern
from byoc.plugins import PluginInfo, PluginManager, hookimpl
from byoc.plugins.api import Payload, PluginOption
from byoc.plugins.manager import default_manager

OPTED_OPTIONS = [
    PluginOption("fast", bool, False, "skip the exact rounding"),
    PluginOption("gain", float, 1.0, "multiply the outputs by this"),
    PluginOption("mode", ("exact", "approx"), "exact", "how to compute"),
    PluginOption("unroll", int, 1, "loop unrolling of the generated code", stage="compile"),
]


class ReluRuntime:
    def __init__(self, partition, gain=1.0):
        (self.input,), (self.output,) = partition.inputs, partition.outputs
        self.gain = gain

    def run(self, inputs):
        return {self.output: np.maximum(inputs[self.input], 0) * np.float32(self.gain)}


class Legacy:
    """Claims Relu and declares no options hook, as plugins written before it did."""

    name = "legacy"

    def __init__(self):
        self.runtime_options = []

    @hookimpl
    def byoc_plugin_info(self):
        return PluginInfo(name=self.name, version="1.0", device="toy", description="relu")

    @hookimpl
    def byoc_partition_patterns(self):
        return [make_op_pattern(f"{self.name}.relu", "Relu")]

    @hookimpl
    def byoc_lower_partition(self, partition):
        return "relu"

    @hookimpl
    def byoc_codegen_partition(self, partition, lowered):
        return Payload(b"relu")

    @hookimpl
    def byoc_runtime_create(self, payload, partition, options):
        self.runtime_options.append(options)
        return ReluRuntime(partition)


class Opted(Legacy):
    """Legacy with declared options: a compile-stage one (stored in the payload) and run ones."""

    name = "opted"

    def __init__(self):
        super().__init__()
        self.lowering_options = []

    @hookimpl
    def byoc_plugin_options(self):
        return OPTED_OPTIONS

    @hookimpl
    def byoc_lower_partition(self, partition, options):
        self.lowering_options.append(options)
        return options["unroll"]

    @hookimpl
    def byoc_codegen_partition(self, partition, lowered):
        return Payload(b"relu", {"unroll": lowered})

    @hookimpl
    def byoc_runtime_create(self, payload, partition, options):
        self.runtime_options.append(options)
        return ReluRuntime(partition, options["gain"])


@pytest.fixture
def toys():
    manager = default_manager()
    opted, legacy = Opted(), Legacy()
    names = [manager.register(plugin).name for plugin in (opted, legacy)]
    yield opted, legacy
    for name in names:
        manager.unregister(name)


@pytest.fixture
def relu_model():
    return make_model([helper.make_node("Relu", ["x"], ["y"], name="relu")],
                      [("x", TensorProto.FLOAT, [2, 3])], [("y", TensorProto.FLOAT, [2, 3])])


def compile_on(plugin, model, **options):
    return byoc.compile(model, plugins=[plugin], default_plugins=(), plugin_options=options)


# -- names ----------------------------------------------------------------------------------


def test_a_misspelt_plugin_name_is_an_error_naming_the_closest(toys, relu_model):
    with pytest.raises(PluginError, match=r"options given for plugin 'opetd': no plugin named "
                                          r"'opetd' \(did you mean 'opted'\?\); installed "
                                          r"plugins: .*legacy, .*opted"):
        compile_on("opted", relu_model, opetd={"gain": "2"})


def test_a_misspelt_option_is_an_error_naming_the_closest_and_listing_them(toys, relu_model):
    with pytest.raises(PluginError, match=r"plugin 'opted' has no option 'gian' \(did you mean "
                                          r"'gain'\?\); its options are fast \(bool\), gain "
                                          r"\(float\), mode \(exact\|approx\), unroll \(int\)"):
        compile_on("opted", relu_model, opted={"gian": "2"})


def test_a_plugin_declaring_no_options_refuses_any(relu_model):
    with pytest.raises(PluginError, match="plugin 'npu_example' takes no options, so "
                                          "npu_example.layers is not one"):
        compile_on("npu_example", relu_model, npu_example={"layers": "4"})


# -- values ---------------------------------------------------------------------------------


@pytest.mark.parametrize("key, value, allowed", [
    ("fast", "yes", "true/false/1/0"),
    ("fast", 2, "true/false/1/0"),
    ("unroll", "2.5", "a whole number"),
    ("unroll", True, "a whole number"),
    ("unroll", 2.5, "a whole number"),
    ("gain", "twice", "a number"),
    ("mode", "fastest", "one of exact, approx"),
])
def test_a_bad_value_names_the_option_the_value_and_what_it_takes(toys, relu_model, key, value,
                                                                  allowed):
    with pytest.raises(PluginError, match=rf"plugin option opted\.{key}={value!r} is not "
                                          rf"valid: give {allowed}"):
        compile_on("opted", relu_model, opted={key: value})


def test_defaults_reach_each_stage_and_given_values_arrive_typed(toys, relu_model):
    opted, _ = toys
    compile_on("opted", relu_model)
    assert opted.lowering_options == [{"unroll": 1}]
    assert opted.runtime_options == [{"fast": False, "gain": 1.0, "mode": "exact"}]

    model = compile_on("opted", relu_model, opted={"fast": "TRUE", "gain": "2",
                                                   "mode": "approx", "unroll": "4"})
    assert opted.lowering_options[-1] == {"unroll": 4}
    assert opted.runtime_options[-1] == {"fast": True, "gain": 2.0, "mode": "approx"}
    assert model.parts[0].payload.metadata == {"unroll": 4}
    x = np.array([[-1, 2, 3], [4, -5, 6]], np.float32)
    np.testing.assert_array_equal(model.run({"x": x})["y"], np.maximum(x, 0) * 2)


def test_a_plugin_without_the_options_hook_gets_its_strings_as_given(toys, relu_model):
    _, legacy = toys
    compile_on("legacy", relu_model, legacy={"anything": "7", "Other-Key": "x"})
    assert legacy.runtime_options == [{"anything": "7", "Other-Key": "x"}]


# -- options that do nothing ----------------------------------------------------------------


def test_options_for_an_installed_plugin_without_a_partition_are_a_warning(toys, relu_model):
    with pytest.warns(PluginOptionWarning, match=r"the option\(s\) vta_sim.target do nothing: "
                                                 r"plugin 'vta_sim' runs no partition of this "
                                                 r"model \(its partitions run on opted\)"):
        compile_on("opted", relu_model, vta_sim={"target": "rtl"})
    with warnings.catch_warnings():
        warnings.simplefilter("error", PluginOptionWarning)
        compile_on("opted", relu_model, opted={"gain": "2"})


def test_loading_an_artifact_checks_options_and_fixes_compile_stage_ones(toys, relu_model,
                                                                         tmp_path):
    opted, _ = toys
    path = tmp_path / "relu.byoc"
    compile_on("opted", relu_model, opted={"unroll": 3}).save(path)
    with pytest.raises(PluginError, match=r"options given for plugin 'opte': no plugin named "
                                          r"'opte' \(did you mean 'opted'\?\)"):
        byoc.load(path, plugin_options={"opte": {"gain": "2"}})
    with pytest.raises(PluginError, match="has no option 'gian'"):
        byoc.load(path, plugin_options={"opted": {"gian": "2"}})

    with pytest.warns(PluginOptionWarning, match=rf"compile-stage option\(s\) opted.unroll "
                                                 rf"cannot change the compiled artifact "
                                                 rf"{path}; compile the model again"):
        loaded = byoc.load(path, plugin_options={"opted": {"unroll": "8", "gain": "3"}})
    assert opted.runtime_options[-1] == {"fast": False, "gain": 3.0, "mode": "exact"}
    assert loaded.parts[0].payload.metadata == {"unroll": 3}
    with pytest.warns(PluginOptionWarning) as caught:
        byoc.load(path, plugin_options={"npu_example": {}, "vta_sim": {"target": "sim"}})
    assert [str(w.message).split(":")[0] for w in caught] == ["the option(s) vta_sim.target do "
                                                              "nothing"]


# -- declarations ---------------------------------------------------------------------------


@pytest.mark.parametrize("declare, message", [
    (lambda: PluginOption("2fast", bool, False, "h"), "not an identifier"),
    (lambda: PluginOption("fast", list, [], "h"), "type must be bool, int, float, str"),
    (lambda: PluginOption("mode", ("a", "a"), "a", "h"), "distinct, non-empty strings"),
    (lambda: PluginOption("mode", ("a", "b"), "c", "h"), "default 'c' is not a value"),
    (lambda: PluginOption("n", int, "3", "h"), "default '3' is not a value of its type"),
    (lambda: PluginOption("n", int, 3, " "), "help must be a line"),
    (lambda: PluginOption("n", int, 3, "h", stage="load"), "stage must be one of compile, run"),
])
def test_a_malformed_declaration_is_refused(declare, message):
    with pytest.raises(PluginError, match=message):
        declare()


def test_a_plugin_declaring_an_option_twice_or_a_non_option_is_refused_at_registration():
    class Twice(Legacy):
        @hookimpl
        def byoc_plugin_options(self):
            return [PluginOption("n", int, 1, "h"), PluginOption("n", int, 2, "h")]

    class NotOptions(Legacy):
        @hookimpl
        def byoc_plugin_options(self):
            return {"n": 1}

    with pytest.raises(PluginError, match="declares n more than once in byoc_plugin_options"):
        PluginManager().register(Twice())
    with pytest.raises(PluginError, match="expected a list of byoc.plugins.api.PluginOption"):
        PluginManager().register(NotOptions())


# -- command line ---------------------------------------------------------------------------


def test_plugins_command_lists_each_plugins_options(capsys):
    assert main(["plugins"]) == 0
    out = capsys.readouterr().out
    vta = out[out.index("vta_sim "):]
    assert "target: sim|rtl|cosim, default sim, run stage; what runs the instruction" in vta
    assert "min_work_per_thread: int, default 20000000, run stage" in out
    assert "threads: int, not set, run stage" in out
    npu = out[out.index("npu_example "):]
    assert npu.split("\n  options:")[1].startswith("     (none)")


def test_cli_misspelt_option_is_a_user_error_without_traceback(relu_model, tmp_path):
    path = tmp_path / "relu.onnx"
    path.write_bytes(relu_model.SerializeToString())
    result = subprocess.run([sys.executable, "-m", "byoc", "run", str(path), "--plugin-option",
                             "vta_sim.targt=rtl"], capture_output=True, text=True, timeout=300)
    assert result.returncode == 1, result.stderr
    assert result.stderr.startswith("byoc: error: ") and "Traceback" not in result.stderr
    assert "has no option 'targt' (did you mean 'target'?)" in " ".join(result.stderr.split())


def test_cli_prints_an_option_that_does_nothing_as_a_warning(toys, relu_model, tmp_path,
                                                             capsys):
    path = tmp_path / "relu.onnx"
    path.write_bytes(relu_model.SerializeToString())
    assert main(["run", str(path), "--plugins", "opted", "--plugin-option",
                 "vta_sim.target=rtl"]) == 0
    err = " ".join(capsys.readouterr().err.split())
    assert err.startswith("byoc: warning: the option(s) vta_sim.target do nothing")


def test_cli_passes_other_warnings_on_once_and_ends():
    """The printer of byoc's warnings passes a plugin's or numpy's warning on once; it used to
    record its own re-raised warning, forever (a hang while memory grew), so the check runs in
    a child process with a time and memory limit."""
    code = ("import warnings\nfrom byoc.cli import _warnings_printed\n"
            "with _warnings_printed():\n"
            "    warnings.warn('overflow encountered in exp', RuntimeWarning)\n"
            "print('ended')\n")

    def limit_memory():
        resource.setrlimit(resource.RLIMIT_AS, (4 << 30, 4 << 30))

    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=30, preexec_fn=limit_memory)
    assert result.returncode == 0 and result.stdout == "ended\n", result.stderr[-500:]
    assert result.stderr.count("RuntimeWarning: overflow encountered in exp") == 1


class RefusesGain(Opted):
    """Refuses a negative gain when its runtime is created: a value beyond the option's type."""

    name = "refuses"

    @hookimpl
    def byoc_runtime_create(self, payload, partition, options):
        if options["gain"] < 0:
            raise PluginOptionError(f"refuses.gain={options['gain']}: give a positive gain")
        return ReluRuntime(partition, options["gain"])


def test_a_value_the_plugin_refuses_is_the_users_error_not_a_fallback(relu_model):
    manager = default_manager()
    manager.register(RefusesGain())
    try:
        assert compile_on("refuses", relu_model, refuses={"gain": 2.0}).plan.partitions[0] \
            .plugin == "refuses"
        with warnings.catch_warnings():
            warnings.simplefilter("error")   # a fallback would warn; it must not happen at all
            with pytest.raises(PluginOptionError, match="give a positive gain"):
                compile_on("refuses", relu_model, refuses={"gain": -1.0})
    finally:
        manager.unregister("refuses")
