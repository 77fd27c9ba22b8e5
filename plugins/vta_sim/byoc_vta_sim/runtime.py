"""Running a compiled partition on the functional simulator, the RTL, or both.

The run-time option ``target`` picks the machine: ``sim`` (the functional simulator, the
default), ``rtl`` (the Verilated RTL of hw/vta, :mod:`byoc_vta_sim.rtl`) or ``cosim`` (both,
every run compared byte for byte, :mod:`byoc_vta_sim.cosim`); on the command line,
``--plugin-option vta_sim.target=rtl``.

The payload holds the instruction stream (``data``), the DRAM image (``arrays["dram"]``:
weights, parameters, micro-ops and every activation region) and where each partition input
and output lives in it (``metadata``). A run writes the inputs into their regions in the
accelerator's layout, runs the stream to FINISH, and reads the outputs back.

Profiles and traces: :meth:`VtaRuntime.counters` are the simulator's (or the RTL's)
counters, :data:`COUNTER_HELP` says what each counts, and :meth:`VtaRuntime.device_trace`
gives the last run's cycles layer by layer, the layers being the generator's (``metadata
["layers"]``, each a run of consecutive instructions of the stream).

A partition compiled on byoc verify's debug request also has ``metadata["taps"]``: per
tapped layer, the DRAM offset of the four byte planes its second pass stores the int32
accumulator in (:mod:`byoc_vta_sim.generator`), the plane's layout, and the scales that turn
it into the float value of the layer's op node. :meth:`VtaRuntime.run` then returns those
values too, reassembled from the planes and dequantized, in the graph's shape (vta_sim holds
values in the graph's NCHW layout). They are read from the DRAM the stream wrote, on every
target alike.

When a run on the RTL gives wrong outputs, :meth:`VtaRuntime.device_difference` names the
first instruction whose writes differ from the functional simulator's, with a waveform
around it (:mod:`byoc_vta_sim.first_difference`).
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np

from byoc.errors import PluginError, PluginOptionError
from byoc.plugins.api import (
    DeviceDifference,
    DeviceEvent,
    DeviceTrace,
    PartitionSignature,
    Payload,
)
from byoc.quantization import quantize
from byoc_vta_sim.config import VtaConfig, config_from_dict
from byoc_vta_sim.dram_layout import ActivationLayout
from byoc_vta_sim.isa import FinishInsn, decode_stream
from byoc_vta_sim.sim import COUNTER_HELP as SIMULATOR_COUNTER_HELP
from byoc_vta_sim.sim import Simulator
from byoc_vta_sim.timing import estimate_stream

TARGETS = ("sim", "rtl", "cosim")

COUNTER_HELP = {
    **SIMULATOR_COUNTER_HELP,
    # The RTL's own counters (hw/vta/vta_regs.v), on target=rtl.
    "cycles": "clock cycles of the RTL from start to done, cycles",
    "gemm_busy": "cycles the compute module ran a GEMM (pipeline fill included), cycles",
    "alu_busy": "cycles the compute module ran an ALU instruction, cycles",
    "stall_l2c": "cycles the compute module's head instruction waited for a load->compute "
                 "token, cycles",
    "stall_c2l": "cycles the load module's head instruction waited for a compute->load "
                 "token, cycles",
    "stall_c2s": "cycles the store module's head instruction waited for a compute->store "
                 "token, cycles",
    "stall_s2c": "cycles the compute module's head instruction waited for a store->compute "
                 "token, cycles",
    # The runtime's.
    "runs": "runs of the partition since its runtime was created, runs",
    "estimated_cycles": "clock cycles the timing model (byoc_vta_sim.timing) predicts for "
                        "the stream, times the runs, cycles",
    "rtl_cycles": "clock cycles the RTL took (target=cosim), cycles",
    "rtl_runs_equal": "runs in which the RTL's DRAM and counters matched the simulator's "
                      "(target=cosim), runs",
}
"""What each counter of :meth:`VtaRuntime.counters` counts, and its unit."""


@functools.lru_cache(maxsize=None)
def shared_rtl(config: VtaConfig, write_monitor: bool = False):
    """One RTL model per configuration and process (and one with the write monitor), shared
    by every partition."""
    from byoc_vta_sim.rtl import RtlSimulator

    return RtlSimulator(config, write_monitor=write_monitor)


class VtaRuntime:
    """One partition's stream on one simulator (or the RTL); counters add up over runs."""

    def __init__(self, payload: Payload, signature: PartitionSignature,
                 target: str = "sim") -> None:
        meta = payload.metadata
        self.signature = signature
        self.config = config_from_dict(meta["config"], "configuration in the artifact")
        self.insns = decode_stream(payload.data)
        self.dram = np.array(payload.arrays["dram"], dtype=np.uint8)
        self.regions = {name: (r["offset"], ActivationLayout(**r["layout"]), r["kind"],
                               r["shift"])
                        for name, r in meta["regions"].items()}
        # A float input (a DequantizeLinear output) is quantized back into its int8 value.
        self.dequantized = meta.get("dequantized_inputs", {})
        missing = [v for v in [*signature.inputs, *signature.outputs]
                   if v not in self.regions and v not in self.dequantized]
        if missing:
            raise PluginError(f"vta_sim payload of partition {signature.name!r} has no DRAM "
                              f"region for {', '.join(missing)}; recompile the model")
        self.target = target
        self.simulator = Simulator(self.config)
        self.rtl = shared_rtl(self.config) if target in ("rtl", "cosim") else None
        self.rtl_counters: dict[str, int] = {}
        self.runs_compared = 0      # cosim runs whose DRAM and counters the RTL matched
        self.taps = meta.get("taps", [])
        self.estimated_cycles = int(meta.get("estimated_cycles", 0))
        self.layers = [(layer["layer"], layer["instructions"])
                       for layer in meta.get("layers", [])]
        self._layer_ends: list[int] | None = None
        self.last_rtl_cycles = 0
        self.runs = 0

    def run(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        self.dram = self.input_image(inputs)
        self._execute()
        self.runs += 1
        outputs = {}
        for name, out_type in self.signature.outputs.items():
            offset, layout, kind, shift = self.regions[name]
            size = layout.elements * layout.block
            image = self.dram[offset:offset + size].view(np.int8).reshape(-1, layout.block)
            values = layout.unpack(image, shift, out_type.dtype)
            outputs[name] = _from_image(values, kind, out_type.shape)
        for tap in self.taps:
            outputs[tap["name"]] = self._tapped_value(tap)
        return outputs

    def _tapped_value(self, tap: dict) -> np.ndarray:
        """The float32 value of the op node ``tap`` holds: the int32 accumulator from its
        four byte planes (least significant first), times ``x_scale * w_scale`` of each
        channel, rounded once."""
        layout = ActivationLayout(**tap["layout"])
        size = layout.elements * layout.block
        accumulator = np.zeros((layout.batch, layout.channels, layout.height, layout.width),
                               np.uint32)
        for plane in range(4):
            start = tap["offset"] + plane * size
            image = self.dram[start:start + size].reshape(-1, layout.block)
            accumulator |= layout.unpack(image, 0, np.uint8).astype(np.uint32) << (8 * plane)
        scales = np.asarray(tap["scales"], np.float64)[None, :, None, None]
        values = (accumulator.view(np.int32) * scales).astype(np.float32)
        return _from_image(values, tap["kind"], tuple(tap["shape"]))

    def device_difference(self, inputs: dict[str, np.ndarray], folder: str
                          ) -> DeviceDifference | None:
        """On the RTL (target rtl or cosim): the first instruction of the stream whose writes
        differ from the functional simulator's when run on ``inputs`` (both from zeroed
        buffers), with a VCD around it written into ``folder``; None when all agree, and
        always on target sim. Nothing of the runtime's state changes."""
        if self.rtl is None:
            return None
        from byoc_vta_sim.first_difference import locate_first_difference

        return locate_first_difference(self.insns, self.input_image(inputs), self.config,
                                       shared_rtl(self.config, write_monitor=True),
                                       folder=folder)

    def input_image(self, inputs: dict[str, np.ndarray]) -> np.ndarray:
        """The DRAM image a run on ``inputs`` starts from: a copy of the current one with
        every partition input in its region, in the accelerator's layout."""
        dram = self.dram.copy()
        for name in self.signature.inputs:
            data = np.asarray(inputs[name])
            if name in self.dequantized:
                name, data = self._quantize(name, data)
            offset, layout, kind, shift = self.regions[name]
            image = layout.pack(_as_image(data, kind, layout), shift)
            raw = image.view(np.uint8).ravel()
            dram[offset:offset + raw.size] = raw
        return dram

    def _execute(self) -> None:
        if self.rtl is None:
            self.simulator.run(self.insns, self.dram)
            return
        if self.target == "cosim":
            from byoc_vta_sim.cosim import cosimulate

            result = cosimulate(self.insns, self.dram, self.simulator, self.rtl)
            self.dram[...] = result.dram
            self.runs_compared += 1
            counters = result.rtl_counters
        else:
            counters = self.rtl.run(self.insns, self.dram)
        for name, value in counters.items():
            self.rtl_counters[name] = self.rtl_counters.get(name, 0) + value
        self.last_rtl_cycles = counters["cycles"]

    def _quantize(self, name: str, data: np.ndarray) -> tuple[str, np.ndarray]:
        spec = self.dequantized[name]
        target = spec["quantized"]
        dtype = np.uint8 if self.regions[target][3] else np.int8
        return target, quantize(data, spec["scale"], spec["zero"], dtype)

    def counters(self) -> dict[str, int]:
        counters = self.rtl_counters if self.target == "rtl" else self.simulator.counters
        counters = {**counters, "runs": self.runs,
                    "estimated_cycles": self.estimated_cycles * self.runs}
        if self.target == "cosim":
            counters["rtl_cycles"] = self.rtl_counters.get("cycles", 0)
            counters["rtl_runs_equal"] = self.runs_compared
        return counters

    def counter_help(self) -> dict[str, str]:
        return {name: COUNTER_HELP[name] for name in self.counters()}

    def device_trace(self) -> DeviceTrace | None:
        """The last run's cycles, one event per layer. On the RTL (rtl, cosim) the total is
        its cycle counter's; the functional simulator keeps no time, so on it the total is
        the timing model's estimate of the stream. The core counts cycles for a whole run
        only: the boundaries between layers are where the timing model ends each layer's
        last instruction, scaled to that total."""
        if not self.runs:
            return None
        total = self.estimated_cycles if self.rtl is None else self.last_rtl_cycles
        ends = self._estimated_layer_ends()
        scale = total / ends[-1] if ends[-1] else 0.0
        bounds = [0] + [round(end * scale) for end in ends[:-1]] + [total]
        events = [DeviceEvent(name, (name,), start, end - start)
                  for (name, _), start, end in zip(self.layers, bounds, bounds[1:])]
        return DeviceTrace(total, events, self.config.clock_hz,
                           "clock_hz of vta_sim's configuration")

    def _estimated_layer_ends(self) -> list[int]:
        """The timing model's cycle at which each layer's last instruction ends (the stream
        up to it, ended by FINISH); computed once, at the first trace."""
        if self._layer_ends is None:
            ends, count = [], 0
            for _, instructions in self.layers[:-1]:
                count += instructions
                prefix = [*self.insns[:count], FinishInsn()]
                ends.append(estimate_stream(prefix, self.config)["cycles"])
            ends.append(estimate_stream(self.insns, self.config)["cycles"])
            self._layer_ends = ends
        return self._layer_ends


def _as_image(data: np.ndarray, kind: str, layout: ActivationLayout) -> np.ndarray:
    if kind == "matmul":   # rows x K as a 1 x K x 1 x rows image
        return data.reshape(-1, layout.channels).T.reshape(1, layout.channels, 1, -1)
    return data


def _from_image(values: np.ndarray, kind: str, shape: tuple[int, ...]) -> np.ndarray:
    if kind == "matmul":
        return np.ascontiguousarray(values.reshape(values.shape[1], -1).T).reshape(shape)
    return values.reshape(shape)


def create_runtime(payload: Payload, signature: PartitionSignature,
                   options: dict[str, Any]) -> VtaRuntime:
    unknown = sorted(set(options) - {"target"})
    if unknown:
        raise PluginOptionError(f"vta_sim has no run-time option {', '.join(unknown)}; its "
                                f"option is target={'|'.join(TARGETS)}")
    target = str(options.get("target", "sim"))
    if target not in TARGETS:
        raise PluginOptionError(f"vta_sim: target={target!r} is not one of "
                                f"{', '.join(TARGETS)} (sim: functional simulator, rtl: the "
                                f"Verilated RTL, cosim: both, compared)")
    return VtaRuntime(payload, signature, target)
