"""The accelerator's hardware parameters, loaded from one YAML file.

:data:`DEFAULT_CONFIG_PATH` (vta_default.yaml) is VTA's 1x16x16 int8/int32 configuration.
Everything that depends on the hardware reads a :class:`VtaConfig`: the instruction encoder
checks buffer indices against its depths, the generator tiles to them, the simulator sizes
its buffers from them, and :meth:`VtaConfig.verilog_header` writes the same numbers as a
Verilog include for the RTL.
"""

from __future__ import annotations

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
            if type(value) is not int or value < (0 if f.name == "mem_latency" else 1):
                raise ConfigError(f"vta_sim configuration: {f.name} must be a positive whole "
                                  f"number, not {value!r}")
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
    return VtaConfig(**{n: data[n] for n in names})


DEFAULT_CONFIG = load_config()
