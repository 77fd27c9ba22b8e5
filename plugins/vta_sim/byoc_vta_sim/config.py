"""The accelerator's hardware parameters, loaded from one YAML file.

:data:`DEFAULT_CONFIG_PATH` (vta_default.yaml) is VTA's 1x16x16 int8/int32 configuration.
Everything that depends on the hardware reads a :class:`VtaConfig`: the instruction encoder
checks buffer indices against its depths, the generator tiles to them, the simulator sizes
its buffers from them, and :meth:`VtaConfig.verilog_header` writes the same numbers as a
Verilog include for the RTL.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import yaml

from byoc.errors import PluginError
from byoc_vta_sim.isa import GemmInsn, Uop, field_of, verilog_defines

DEFAULT_CONFIG_PATH = Path(__file__).with_name("vta_default.yaml")

# The instruction encoding is VTA's, with fixed field widths (see isa.py): a buffer deeper
# than the field that indexes it can address cannot be used.
MAX_DEPTH = {"uop_depth": 1 << field_of(GemmInsn, "uop_bgn").width,
             "inp_depth": 1 << field_of(Uop, "src").width,
             "wgt_depth": 1 << field_of(Uop, "wgt").width,
             "acc_depth": 1 << field_of(Uop, "dst").width}


class ConfigError(PluginError):
    """A hardware configuration file is missing, malformed or describes unsupported hardware."""


@dataclass(frozen=True)
class VtaConfig:
    """One accelerator configuration. Depths count elements of each buffer (see the YAML)."""

    batch: int
    block_in: int
    block_out: int
    inp_bits: int
    wgt_bits: int
    acc_bits: int
    uop_depth: int
    inp_depth: int
    wgt_depth: int
    acc_depth: int
    mem_port_bits: int
    mem_latency: int
    insn_queue_depth: int
    clock_hz: int

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            least = 0 if f.name == "mem_latency" else 1
            if type(value) is not int or value < least:
                raise ConfigError(f"vta_sim configuration: {f.name} must be a whole number "
                                  f">= {least}, not {value!r}")
        if (self.inp_bits, self.wgt_bits, self.acc_bits) != (8, 8, 32):
            raise ConfigError("vta_sim configuration: only int8 inputs and weights with int32 "
                              f"accumulators are supported (got inp_bits={self.inp_bits}, "
                              f"wgt_bits={self.wgt_bits}, acc_bits={self.acc_bits})")
        for name, limit in MAX_DEPTH.items():
            if getattr(self, name) > limit:
                raise ConfigError(f"vta_sim configuration: {name}={getattr(self, name)} is more "
                                  f"than the instruction encoding can address ({limit})")
        if self.mem_port_bits % 8:
            raise ConfigError(f"vta_sim configuration: mem_port_bits={self.mem_port_bits} is "
                              f"not a whole number of bytes")

    # -- element sizes in bytes, per memory type ------------------------------------------

    @property
    def inp_elem_bytes(self) -> int:
        return self.batch * self.block_in * self.inp_bits // 8

    @property
    def wgt_elem_bytes(self) -> int:
        return self.block_out * self.block_in * self.wgt_bits // 8

    @property
    def acc_elem_bytes(self) -> int:
        return self.batch * self.block_out * self.acc_bits // 8

    @property
    def out_elem_bytes(self) -> int:
        """STORE writes the low ``inp_bits`` of each accumulator lane."""
        return self.batch * self.block_out * self.inp_bits // 8

    uop_elem_bytes = 4

    @property
    def mem_port_bytes(self) -> int:
        return self.mem_port_bits // 8

    @property
    def dram_bytes_per_second(self) -> int:
        """The memory port's peak: one beat of ``mem_port_bits`` per clock cycle."""
        return self.mem_port_bytes * self.clock_hz

    @property
    def dram_align(self) -> int:
        """The byte alignment of DRAM regions: a multiple of every element size (instructions
        address DRAM in elements of their memory type) and of 256."""
        return math.lcm(256, self.inp_elem_bytes, self.wgt_elem_bytes, self.acc_elem_bytes,
                        self.out_elem_bytes, self.uop_elem_bytes)

    @property
    def sram_bytes(self) -> int:
        """The bytes of the on-chip buffers (micro-ops, inputs, weights, accumulators)."""
        return (self.uop_depth * self.uop_elem_bytes + self.inp_depth * self.inp_elem_bytes
                + self.wgt_depth * self.wgt_elem_bytes + self.acc_depth * self.acc_elem_bytes)

    @property
    def macs_per_cycle(self) -> int:
        return self.batch * self.block_in * self.block_out

    def to_dict(self) -> dict[str, int]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def verilog_header(self) -> str:
        """The configuration, and the instruction encoding's field positions, as Verilog
        ``define``s: the RTL's one parameter include (hw/vta/generated/vta_config.vh)."""
        lines = ["// Generated from the vta_sim configuration by byoc_vta_sim.config; do not "
                 "edit.", "`ifndef VTA_CONFIG_VH", "`define VTA_CONFIG_VH"]
        values = {**self.to_dict(), "inp_elem_bytes": self.inp_elem_bytes,
                  "wgt_elem_bytes": self.wgt_elem_bytes, "acc_elem_bytes": self.acc_elem_bytes,
                  "out_elem_bytes": self.out_elem_bytes}
        for name, value in values.items():
            lines.append(f"`define VTA_{name.upper()} {value}")
        for name in MAX_DEPTH:
            depth = getattr(self, name)
            lines.append(f"`define VTA_LOG_{name.upper()} {max(1, (depth - 1).bit_length())}")
        lines += verilog_defines()
        lines.append("`endif")
        return "\n".join(lines) + "\n"


PARAMETERS = tuple(f.name for f in fields(VtaConfig))
"""The hardware parameters, in the order of the YAML file; each is also a compile option
(``--plugin-option vta_sim.block_out=32``) that overrides the configuration file's value."""


def rtl_refusals(config: VtaConfig) -> list[str]:
    """Why the RTL (hw/vta) cannot be built for ``config`` (empty when it can), each naming
    the parameter and the rule."""
    def power_of_two(value: int) -> bool:
        return value & (value - 1) == 0

    problems = [f"{name}={getattr(config, name)}: must be a power of two (the RTL packs "
                f"elements into memory beats by shifts)"
                for name in ("batch", "block_in", "block_out", "mem_port_bits")
                if not power_of_two(getattr(config, name))]
    if config.mem_port_bits < 64:
        problems.append(f"mem_port_bits={config.mem_port_bits}: must be at least 64 (the "
                        f"simulated DRAM moves 64-bit words)")
    return problems


def compile_refusals(config: VtaConfig) -> list[str]:
    """Why the plugin cannot compile for ``config``, beyond what :class:`VtaConfig` itself
    checks (empty when it can): each names the parameter and the rule. A configuration the
    plugin compiles for is one its RTL builds for (:func:`rtl_refusals`), so that every
    stream it generates can also run on the RTL and be checked against the simulator."""
    problems = rtl_refusals(config)
    for name in ("block_in", "block_out"):
        if not 4 <= getattr(config, name) <= 64:
            problems.append(f"{name}={getattr(config, name)}: must be 4 to 64 (the sizes the "
                            f"instruction generator and the RTL are tested at are 8, 16 and 32)")
    if config.batch != 1:
        problems.append(f"batch={config.batch}: must be 1 (the instruction generator tiles "
                        f"one image at a time)")
    if config.block_in != config.block_out:
        problems.append(f"block_in={config.block_in}, block_out={config.block_out}: must be "
                        f"equal (the generator stores a layer's output in the blocks the next "
                        f"layer loads)")
    return problems


def configured(path: str | Path | None, overrides: dict[str, int | None]) -> VtaConfig:
    """The configuration a compile asks for: the YAML file at ``path`` (the default one when
    None) with each parameter of ``overrides`` that is not None replacing the file's value.
    A ConfigError names the parameter and the rule it breaks."""
    base = load_config(path)
    unknown = sorted(set(overrides) - set(PARAMETERS))
    if unknown:
        raise ConfigError(f"vta_sim configuration: unknown parameter(s) {', '.join(unknown)} "
                          f"(parameters: {', '.join(PARAMETERS)})")
    given = {name: value for name, value in overrides.items() if value is not None}
    config = config_from_dict({**base.to_dict(), **given},
                              f"configuration {path or DEFAULT_CONFIG_PATH.name}"
                              + (f" with {_assignments(given)}" if given else ""))
    problems = compile_refusals(config)
    if problems:
        raise ConfigError(f"vta_sim cannot compile for this configuration: {'; '.join(problems)}")
    return config


def _assignments(values: dict[str, int]) -> str:
    return ", ".join(f"{name}={value}" for name, value in values.items())


def load_config(path: str | Path | None = None) -> VtaConfig:
    """Read a configuration YAML file (the default one when ``path`` is None)."""
    path = Path(path) if path is not None else DEFAULT_CONFIG_PATH
    try:
        data: Any = yaml.safe_load(path.read_text())
    except OSError as err:
        raise ConfigError(f"cannot read vta_sim configuration {path}: {err.strerror}") from None
    except yaml.YAMLError as err:
        raise ConfigError(f"vta_sim configuration {path} is not valid YAML: {err}") from None
    return config_from_dict(data, str(path))


# Parameters added after artifacts were first saved, with the value the hardware had before
# they were stated: an older artifact's configuration (in its payload metadata) lacks them.
ADDED_LATER = {"clock_hz": 100_000_000}


def config_from_dict(data: Any, source: str = "configuration") -> VtaConfig:
    """Build a configuration from a mapping, naming any missing or unknown key (a parameter
    of ADDED_LATER that is missing takes its value there)."""
    if not isinstance(data, dict):
        raise ConfigError(f"vta_sim {source} must be a mapping of parameter names to values")
    data = {**ADDED_LATER, **data}
    names = [f.name for f in fields(VtaConfig)]
    missing = [n for n in names if n not in data]
    unknown = sorted(str(k) for k in data if k not in names)
    if missing or unknown:
        parts = ([f"missing {', '.join(missing)}"] if missing else []) + \
                ([f"unknown {', '.join(unknown)}"] if unknown else [])
        raise ConfigError(f"vta_sim {source}: {'; '.join(parts)} (parameters: "
                          f"{', '.join(names)})")
    try:
        return VtaConfig(**{n: data[n] for n in names})
    except ConfigError as err:
        raise ConfigError(str(err).replace("vta_sim configuration", f"vta_sim {source}", 1)) \
            from None


DEFAULT_CONFIG = load_config()
