"""The accelerator's RTL (hw/vta) under Verilator: a drop-in for the functional simulator.

:class:`RtlSimulator` has the :class:`~byoc_vta_sim.sim.Simulator` interface: ``run(stream,
dram)`` executes an instruction stream against a numpy DRAM image, modified in place, and
returns the run's counters under the simulator's names (plus the RTL's cycle, busy and stall
counters). Underneath, :func:`byoc.cosim.build_model` Verilates hw/vta/sim/vta_shell.v with
the configuration's generated include (cached on disk), the DRAM image is handed to the
design's DPI memory, and the clock runs in C++ until the core raises done.

The stream is checked first with the validator (:func:`byoc_vta_sim.validate.validate_stream`):
the RTL relies on the rules the validator enforces (the accumulator hazard rule above all)
and would silently compute something else on a stream that breaks them.

Memory map of a run: the caller's DRAM image from byte 0, then the instruction stream at the
next 64-byte boundary, then one memory beat of zeros (a row's last beat may read past it).
The image is copied in, and its bytes copied back after the run.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from byoc.cosim import (
    CosimError,
    CosimModel,
    ProfileRun,
    WatchdogError,
    build_model,
    locate_rtl,
)
from byoc.cosim.build import default_cache_dir
from byoc_vta_sim.config import DEFAULT_CONFIG, VtaConfig, rtl_refusals
from byoc_vta_sim.isa import (
    QUEUE_NAMES,
    TOKEN_QUEUES,
    AluInsn,
    GemmInsn,
    Insn,
    MemInsn,
    Module,
)
from byoc_vta_sim.sim import (
    COUNTER_NAMES,
    MAX_UOPS,
    SimulationError,
    _check_dram,
    _encoded_instructions,
    check_work,
    describe,
)
from byoc_vta_sim.validate import StreamError, validate_stream

# Register map (hw/vta/vta_regs.v).
REG_CTRL, REG_INSN_ADDR, REG_INSN_COUNT = 0, 1, 2
COUNTER_REGISTERS = {
    "cycles": 3, "gemm_busy": 4, "alu_busy": 5, "gemm_uops": 6, "alu_uops": 7,
    "stall_l2c": 8, "stall_c2l": 9, "stall_c2s": 10, "stall_s2c": 11,
    "bytes_loaded_uop": 12, "bytes_loaded_wgt": 13, "bytes_loaded_inp": 14,
    "bytes_loaded_acc": 15, "bytes_stored_out": 16,
    "insns_load": 17, "insns_compute": 18, "insns_store": 19,
}
REG_FETCH_STATUS, REG_TOKENS = 20, 24
REG_MODULE_STATUS = {Module.LOAD: 21, Module.COMPUTE: 22, Module.STORE: 23}
RTL_COUNTER_NAMES = tuple(name for name in COUNTER_REGISTERS if name not in COUNTER_NAMES)

STREAM_ALIGN = 64
RESET_CYCLES = 4


def rtl_dir() -> Path:
    """The accelerator's RTL: ``$BYOC_VTA_RTL`` when set, else the copy of hw/vta an
    installed wheel carries (byoc_vta_sim/rtl), else hw/vta of the checkout (editable
    install); :mod:`byoc.cosim.locate` explains the order."""
    return locate_rtl("vta_sim", package_dir=Path(__file__).parent, design="vta",
                      required="vta_core.v", env="BYOC_VTA_RTL")


def rtl_sources(root: Path | None = None) -> list[Path]:
    """Every Verilog file of the design and its simulation shell."""
    root = root or rtl_dir()
    return sorted(root.glob("*.v")) + sorted((root / "sim").glob("*.v"))


def check_supported(config: VtaConfig) -> None:
    """Refuse configurations the RTL's packing logic does not implement (the rules are
    :func:`byoc_vta_sim.config.rtl_refusals`, which the plugin's compile options follow too)."""
    problems = rtl_refusals(config)
    if problems:
        raise CosimError("vta_sim: the RTL cannot be built for this configuration: "
                         + "; ".join(problems))


def config_include(config: VtaConfig, cache_dir: Path | None = None) -> Path:
    """A folder holding vta_config.vh for ``config`` (written once per distinct header)."""
    header = config.verilog_header()
    key = hashlib.sha256(header.encode()).hexdigest()[:16]
    root = Path(cache_dir) if cache_dir else default_cache_dir()
    folder = root / "vta-config" / key
    target = folder / "vta_config.vh"
    if not target.is_file() or target.read_text() != header:
        folder.mkdir(parents=True, exist_ok=True)
        partial = folder / f".vta_config.vh.{os.getpid()}"
        partial.write_text(header)
        partial.replace(target)
    return folder


def build_rtl(config: VtaConfig = DEFAULT_CONFIG, *, cache_dir: Path | None = None,
              write_monitor: bool = False) -> CosimModel:
    """The Verilated accelerator for ``config`` (built once per design and configuration).

    ``write_monitor`` builds it with the simulation-only monitor that logs every buffer and
    DRAM write with its instruction (hw/vta/sim/vta_write_monitor.v): a build of its own,
    cached beside the plain one, which keeps the speed of runs that do not ask for it.
    Both are profile-guided builds whose workload is :mod:`byoc_vta_sim.rtl_workload`."""
    check_supported(config)
    root = rtl_dir()
    include = config_include(config, cache_dir)
    return build_model("vta_shell", rtl_sources(root), include_dirs=[include, root, root / "sim"],
                       defines={"VTA_WRITE_MONITOR": None} if write_monitor else None,
                       clock="clk", done="o_done",
                       cache_dir=Path(cache_dir) if cache_dir else None,
                       profile=ProfileRun("byoc_vta_sim.rtl_workload:run",
                                          json.dumps(config.to_dict(), sort_keys=True)))


class RtlSimulator:
    """The accelerator's RTL with the functional simulator's ``run(stream, dram)``."""

    def __init__(self, config: VtaConfig = DEFAULT_CONFIG, *, cache_dir: Path | None = None,
                 model: CosimModel | None = None, max_uops: int = MAX_UOPS,
                 write_monitor: bool = False):
        self.config = config
        self.max_uops = max_uops
        self.write_monitor = write_monitor
        self.model = model if model is not None else build_rtl(
            config, cache_dir=cache_dir, write_monitor=write_monitor)
        self.counters: dict[str, int] = dict.fromkeys(COUNTER_NAMES + RTL_COUNTER_NAMES, 0)
        self.started_at = 0     # the model's cycle count when the last run's core started
        self._insns: list[Insn] = []

    # -- running -----------------------------------------------------------------------------

    def run(self, stream: bytes | Sequence[Insn], dram: np.ndarray, *,
            max_cycles: int | None = None, trace: os.PathLike | str | None = None,
            window: tuple[int, int] | None = None) -> dict[str, int]:
        """Run the stream to FINISH on the RTL against ``dram`` (1-D uint8, modified in
        place); return this run's counters. ``trace`` writes a VCD of the whole run, or with
        ``window=(first, stop)`` of the run's cycles first..stop-1 only, counted from the
        core's start (:attr:`started_at`), as the VCD's timestamps are (10 per cycle)."""
        model = self.model
        whole = trace is not None and window is None
        with model.trace(trace) if whole else contextlib.nullcontext():
            insns, memory = self.start(stream, dram)
            limit = max_cycles if max_cycles is not None else self.cycle_limit(insns)
            try:
                if window is not None and trace is not None:
                    limit -= self._run_window(trace, window, limit)
                model.run(limit, describe=self.describe_state)
            except WatchdogError as err:
                raise SimulationError(f"vta_sim RTL: {err}") from None
        if model.memory_fault_count:
            raise SimulationError(f"vta_sim RTL: the design accessed memory outside the DRAM "
                                  f"image: {model.memory_faults()[:4]}")
        dram[...] = memory[:dram.size]
        counters = {name: model_register(model, index)
                    for name, index in COUNTER_REGISTERS.items()}
        for name in self.counters:
            self.counters[name] += counters[name]
        return counters

    def start(self, stream: bytes | Sequence[Insn], dram: np.ndarray
              ) -> tuple[list[Insn], np.ndarray]:
        """Check the stream, place it and ``dram`` in the design's memory, reset the core
        and start it; the caller clocks it (:meth:`run` does, from C++). Returns the decoded
        stream and the memory image the design works on."""
        insns, code = _encoded_instructions(stream)
        _check_dram(dram)
        check_work(insns, self.max_uops, "RTL driver")
        try:
            validate_stream(insns, self.config, dram)
        except StreamError as err:
            raise SimulationError(f"vta_sim RTL: the stream breaks a rule the hardware relies "
                                  f"on: {err}") from None
        self._insns = insns
        memory, stream_at = self._memory_image(code, dram)
        model = self.model
        model.attach_memory(0, memory)
        model.clear_memory_faults()
        model["i_reg_we"] = 0
        model["rst"] = 1
        model.step(RESET_CYCLES)
        model["rst"] = 0
        write_register(model, REG_INSN_ADDR, stream_at)
        write_register(model, REG_INSN_COUNT, len(insns))
        write_register(model, REG_CTRL, 1)
        self.started_at = model.cycles
        return insns, memory

    def _run_window(self, trace: os.PathLike | str, window: tuple[int, int], limit: int) -> int:
        """Clock the started core to the window, tracing only within it; the cycles run."""
        first, stop = window
        if not 0 <= first <= stop:
            raise SimulationError(f"vta_sim RTL: a trace window runs from a cycle to a later "
                                  f"one, not {first}..{stop}")
        ran = self.model.advance(min(first, limit))
        with self.model.trace(trace, origin=self.started_at):
            ran += self.model.advance(min(stop, limit) - ran)
        return ran

    def _memory_image(self, stream: bytes, dram: np.ndarray) -> tuple[np.ndarray, int]:
        code = np.frombuffer(stream, dtype=np.uint8)
        stream_at = -(-dram.size // STREAM_ALIGN) * STREAM_ALIGN
        # a row's last beat may reach past its data: one beat of slack after the stream
        memory = np.zeros(stream_at + code.size + self.config.mem_port_bytes, dtype=np.uint8)
        memory[:dram.size] = dram
        memory[stream_at:stream_at + code.size] = code
        return memory, stream_at

    def cycle_limit(self, insns: list[Insn]) -> int:
        """A watchdog limit no legal run of ``insns`` reaches: every micro-op, DMA beat and
        buffer element taken serially, each instruction paying the memory latency, times 4."""
        cfg = self.config
        work = 0
        for insn in insns:
            if isinstance(insn, (GemmInsn, AluInsn)):
                work += (insn.uop_end - insn.uop_bgn) * insn.iter_out * insn.iter_in
            elif isinstance(insn, MemInsn):
                elements = max(insn.sram_elements, insn.y_size * insn.x_size)
                work += elements * (1 + cfg.wgt_elem_bytes // cfg.mem_port_bytes)
            work += cfg.mem_latency + 16
        return 4 * work + 10_000

    # -- the watchdog's report ---------------------------------------------------------------

    def describe_state(self, model: CosimModel) -> str:
        """What every module is doing, named by instruction, from the status registers."""
        insns = self._insns
        lines = []
        tokens = model_register(model, REG_TOKENS)
        held = {name: (tokens >> (16 * position)) & 0xFFFF
                for position, name in enumerate(("L2C", "C2L", "C2S", "S2C"))}
        for module, register in REG_MODULE_STATUS.items():
            status = model_register(model, register)
            index, state = status & 0xFFFFFFFF, (status >> 32) & 3
            if state == 0:
                lines.append(f"the {module.label} module is empty")
                continue
            name = (f"instruction {index} ({describe(insns[index])})" if index < len(insns)
                    else f"instruction {index}")
            if state == 1:
                missing = [TOKEN_QUEUES[module][flag] for bit, flag in ((34, "pop_prev"),
                                                                         (35, "pop_next"))
                           if status >> bit & 1]
                lines.append(f"{name} in the {module.label} module waits for a "
                             f"{' and a '.join(f'{q} ({QUEUE_NAMES[q]})' for q in missing)} "
                             f"token")
            else:
                lines.append(f"{name} in the {module.label} module is running")
        fetch = model_register(model, REG_FETCH_STATUS)
        routed = fetch & 0xFFFFFFFF
        if fetch >> 32 & 1:
            lines.append(f"fetch waits at instruction {routed} because the "
                         f"{Module((fetch >> 33) & 3).label} queue is full")
        else:
            lines.append(f"fetch has routed {routed} of {len(insns)} instructions")
        lines.append("tokens held: " + ", ".join(f"{q} {n}" for q, n in held.items()))
        return "; ".join(lines) + "."


def write_register(model: CosimModel, index: int, value: int) -> None:
    """One register write through the shell's register port (one clock cycle)."""
    model["i_reg_addr"] = index
    model["i_reg_wdata"] = value
    model["i_reg_we"] = 1
    model.step(1)
    model["i_reg_we"] = 0


def model_register(model: CosimModel, index: int) -> int:
    model["i_reg_addr"] = index
    return model["o_reg_rdata"]


__all__ = ["COUNTER_REGISTERS", "RtlSimulator", "build_rtl", "check_supported",
           "rtl_dir", "rtl_sources"]
