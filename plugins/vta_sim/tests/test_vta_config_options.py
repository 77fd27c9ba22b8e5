"""The hardware configuration as a compile option: ``--plugin-option vta_sim.config=FILE``
and one option per parameter. Each configuration reaches the generator, the simulator, the
estimates and the RTL, is recorded in the artifact, and a configuration vta_sim cannot build
is refused naming the parameter and the rule."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
import warnings

import numpy as np
import pytest
import yaml

import byoc
from byoc.errors import PluginOptionError, PluginOptionWarning
from byoc.plugins.api import runtime_counters
from byoc.plugins.manager import default_manager
from byoc.testing import qdq_cnn, verify
from byoc_vta_sim.config import DEFAULT_CONFIG, config_from_dict
from byoc_vta_sim.isa import decode_stream
from byoc_vta_sim.validate import validate_stream

# A 3x3 layer, a 1x1 stride-2 layer and a 3x3 layer with channel counts that are not
# multiples of any block size, on an odd image width.
LAYERS = [(40, 3, 1), (24, 1, 2), (36, 3, 1)]


@pytest.fixture(scope="module")
def model():
    return qdq_cnn(14, 20, LAYERS)


def compile_for(model, target="sim", **parameters):
    options = {"target": target, **parameters}
    return byoc.compile(model, plugins=["vta_sim"], placement="priority",
                        plugin_options={"vta_sim": options})


def vta_part(compiled):
    (part,) = [p for p in compiled.parts if p.plugin == "vta_sim"]
    return part


CONFIGS = {
    "8x8 GEMM": dict(block_in=8, block_out=8),
    "32x32 GEMM": dict(block_in=32, block_out=32),
    "small buffers": dict(inp_depth=256, wgt_depth=64, acc_depth=256, uop_depth=1024),
    "64-bit port, long latency": dict(mem_port_bits=64, mem_latency=100),
    "512-bit port, no latency": dict(mem_port_bits=512, mem_latency=0),
    "2-deep instruction queues": dict(insn_queue_depth=2),
}


@pytest.mark.parametrize("variant", CONFIGS)
def test_each_configuration_compiles_runs_and_is_recorded(model, variant):
    parameters = CONFIGS[variant]
    compiled = compile_for(model, **parameters)
    payload = vta_part(compiled).payload
    config = dataclasses.replace(DEFAULT_CONFIG, **parameters)
    assert config_from_dict(payload.metadata["config"]) == config
    assert payload.metadata["config_source"] == {"file": None, "overrides": parameters}
    # the stream addresses the buffers of this configuration, and only them
    validate_stream(decode_stream(payload.data), config, payload.arrays["dram"])
    assert vta_part(compiled).payload.metadata["layers"], "every layer runs on vta_sim"
    assert verify(model, plugins=["vta_sim"], placement="priority",
                  plugin_options={"vta_sim": parameters}).ok


def test_the_configuration_changes_the_code_and_its_time(model):
    default = vta_part(compile_for(model)).payload
    # (the timing model does not model the instruction queues filling up: see timing.py)
    for parameters in (p for p in CONFIGS.values() if "insn_queue_depth" not in p):
        other = vta_part(compile_for(model, **parameters)).payload
        assert other.data != default.data or \
            other.metadata["estimated_cycles"] != default.metadata["estimated_cycles"], \
            parameters
    narrow = vta_part(compile_for(model, block_in=8, block_out=8)).payload
    wide = vta_part(compile_for(model, block_in=32, block_out=32)).payload
    assert narrow.metadata["estimated_cycles"] > default.metadata["estimated_cycles"] \
        > wide.metadata["estimated_cycles"]
    slow = vta_part(compile_for(model, mem_port_bits=64, mem_latency=100)).payload
    assert slow.metadata["estimated_cycles"] > default.metadata["estimated_cycles"]


def test_a_configuration_file_and_overrides(model, tmp_path):
    path = tmp_path / "edge.yaml"
    path.write_text(yaml.safe_dump({**DEFAULT_CONFIG.to_dict(), "block_in": 8, "block_out": 8,
                                    "wgt_depth": 256}))
    compiled = compile_for(model, config=str(path), mem_latency=7)
    payload = vta_part(compiled).payload
    config = config_from_dict(payload.metadata["config"])
    assert (config.block_in, config.wgt_depth, config.mem_latency) == (8, 256, 7)
    assert payload.metadata["config_source"] == {"file": str(path),
                                                 "overrides": {"mem_latency": 7}}
    # the file is read at each compile: an edit is seen
    path.write_text(yaml.safe_dump({**DEFAULT_CONFIG.to_dict(), "block_in": 32,
                                    "block_out": 32}))
    again = vta_part(compile_for(model, config=str(path))).payload
    assert config_from_dict(again.metadata["config"]).block_in == 32


def test_the_artifact_keeps_its_configuration(model, tmp_path):
    compiled = compile_for(model, block_in=8, block_out=8, acc_depth=512)
    inputs = {"x": np.random.default_rng(1).standard_normal((1, 20, 14, 14), np.float32)}
    expected = compiled.run(inputs)
    path = tmp_path / "m.byoc"
    compiled.save(path)
    loaded = byoc.load(path)
    runtime = vta_part(loaded).runtime
    assert (runtime.config.block_in, runtime.config.acc_depth) == (8, 512)
    for name, value in loaded.run(inputs).items():
        np.testing.assert_array_equal(value, expected[name])
    with pytest.warns(PluginOptionWarning, match="block_in"):
        byoc.load(path, plugin_options={"vta_sim": {"block_in": 16}})


@pytest.mark.parametrize("parameters,message", [
    (dict(block_in=12, block_out=12), "block_in=12: must be a power of two"),
    (dict(block_in=8), "block_in=8, block_out=16: must be equal"),
    (dict(block_in=128, block_out=128), "block_in=128: must be 4 to 64"),
    (dict(batch=2), "batch=2: must be 1"),
    (dict(acc_depth=4096), "acc_depth=4096 is more than the instruction encoding can address"),
    (dict(mem_port_bits=32), "mem_port_bits=32: must be at least 64"),
    (dict(mem_port_bits=96), "mem_port_bits=96: must be a power of two"),
    (dict(inp_depth=0), "inp_depth must be a whole number >= 1"),
    (dict(mem_latency=-1), "mem_latency must be a whole number >= 0"),
    (dict(inp_bits=4), "only int8 inputs and weights"),
    (dict(config="/nonexistent/vta.yaml"), "cannot read vta_sim configuration"),
])
def test_an_invalid_configuration_is_refused_naming_the_parameter_and_rule(model, parameters,
                                                                        message):
    with pytest.raises(PluginOptionError, match=message):
        compile_for(model, **parameters)


def test_a_malformed_configuration_file_names_the_file_and_key(model, tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump({**DEFAULT_CONFIG.to_dict(), "colour": 3}))
    with pytest.raises(PluginOptionError, match=r"bad.yaml.*unknown colour"):
        compile_for(model, config=str(path))
    path.write_text("block_in: [")
    with pytest.raises(PluginOptionError, match="is not valid YAML"):
        compile_for(model, config=str(path))


def test_the_command_line_refuses_an_invalid_configuration(model, tmp_path):
    import onnx

    onnx.save(model, tmp_path / "m.onnx")
    result = subprocess.run(
        [sys.executable, "-m", "byoc", "compile", str(tmp_path / "m.onnx"), "--plugins",
         "vta_sim", "--placement", "priority", "--plugin-option", "vta_sim.block_out=24",
         "-o", str(tmp_path / "m.byoc")], capture_output=True, text=True)
    assert result.returncode != 0
    assert "block_out=24: must be a power of two" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "m.byoc").exists()


def test_estimates_and_transfers_follow_the_configuration(model):
    manager = default_manager()

    def transfer(**parameters):
        return manager.call("vta_sim", "byoc_estimate_transfer",
                            options={"target": "sim", "config": None,
                                     **{k: None for k in DEFAULT_CONFIG.to_dict()},
                                     **parameters})

    assert transfer().bandwidth == DEFAULT_CONFIG.dram_bytes_per_second
    assert transfer(mem_port_bits=512).bandwidth == 4 * DEFAULT_CONFIG.dram_bytes_per_second
    assert transfer(mem_latency=64).latency == 2 * transfer().latency
    with pytest.raises(PluginOptionError, match="block_in=3"):
        transfer(block_in=3, block_out=3)

    def vta_seconds(**parameters):
        placement = byoc.estimate_model(model, plugins=["vta_sim"], placement="priority",
                                        plugin_options={"vta_sim": parameters})
        return sum(p.seconds for p in placement.partitions if p.plugin == "vta_sim")

    assert vta_seconds(block_in=8, block_out=8) > vta_seconds() > \
        vta_seconds(block_in=32, block_out=32)


def test_hardware_figures_of_a_configuration(model):
    inputs = {"x": np.random.default_rng(2).standard_normal((1, 20, 14, 14), np.float32)}
    figures = {}
    for block in (8, 16):
        compiled = compile_for(model, block_in=block, block_out=block)
        compiled.run(inputs)
        compiled.run(inputs)
        part = vta_part(compiled)
        counters = runtime_counters(part.runtime)
        figures[block] = default_manager().call("vta_sim", "byoc_hardware_figures",
                                                payload=part.payload, counters=counters)
        assert figures[block].cycles == counters["estimated_cycles"]   # two runs
        assert figures[block].cycles == 2 * part.payload.metadata["estimated_cycles"]
        assert figures[block].dram_bytes == sum(
            v for k, v in counters.items() if k.startswith(("bytes_loaded", "bytes_stored")))
        assert figures[block].device_equal is None
    # two runs of: 3x3 20 -> 40 on 14x14, 1x1 stride 2 40 -> 24, 3x3 24 -> 36 on 7x7
    macs = 2 * (14 * 14 * 40 * 20 * 9 + 7 * 7 * 24 * 40 + 7 * 7 * 36 * 24 * 9)
    assert figures[8].ideal_cycles == -(-macs // 64)
    assert figures[16].ideal_cycles == -(-macs // 256)
    assert figures[8].sram_bytes < figures[16].sram_bytes == DEFAULT_CONFIG.sram_bytes
    assert 0 < figures[16].utilisation <= 1


RTL_CONFIGS = {
    "8x8 GEMM, 64-bit port": dict(block_in=8, block_out=8, mem_port_bits=64),
    "32x32 GEMM": dict(block_in=32, block_out=32),
    "small buffers, 256-bit port, latency 3": dict(inp_depth=256, wgt_depth=64, acc_depth=256,
                                                   uop_depth=1024, mem_port_bits=256,
                                                   mem_latency=3),
}


@pytest.mark.slow
@pytest.mark.parametrize("variant", RTL_CONFIGS)
def test_the_rtl_of_each_configuration_matches_the_simulator(model, variant):
    """The RTL is built for the compile's configuration (a Verilog include generated for it,
    the build cached by its hash) and every run's DRAM equals the simulator's byte for byte
    (target cosim compares them after each run and fails otherwise)."""
    parameters = RTL_CONFIGS[variant]
    compiled = compile_for(model, target="cosim", **parameters)
    inputs = {"x": np.random.default_rng(3).standard_normal((1, 20, 14, 14), np.float32)}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        outputs = compiled.run(inputs)
    part = vta_part(compiled)
    rtl_config = part.runtime.rtl.config
    assert rtl_config == dataclasses.replace(DEFAULT_CONFIG, **parameters)
    counters = runtime_counters(part.runtime)
    assert counters["rtl_runs_equal"] == counters["runs"] == 1
    figures = default_manager().call("vta_sim", "byoc_hardware_figures",
                                     payload=part.payload, counters=counters)
    assert figures.device_equal is True and figures.cycles == counters["rtl_cycles"]
    reference = byoc.compile(model, plugins=["reference"]).run(inputs)
    for name, value in outputs.items():
        np.testing.assert_array_equal(value, reference[name])
