"""Running a compiled partition on the simulator.

The payload holds the command stream (``data``), the constants blob
(``arrays["constants"]``) and, in ``metadata``, which descriptor holds each partition input
and output. A run writes the inputs into DRAM (NHWC), runs the commands, and reads the
outputs back.

A partition compiled on byoc verify's debug request also has ``metadata["taps"]``: a run
then returns, besides the outputs, the value of each op node a command tapped
(:mod:`byoc_npu_example.lower`), read back from its tap descriptor: a MAC command's int32
accumulators times their ``scales`` (``x_scale * w_scale`` per output channel), rounded once
to float32, or a vector command's float32 results as they are; 4-D values in NHWC.

Profiles and traces: :meth:`NpuRuntime.counters` are the simulator's, :data:`COUNTER_HELP`
says what each counts, and :meth:`NpuRuntime.device_trace` gives the last run's cycles
command by command (each command runs one layer, named after its ONNX node in
``metadata["commands"]``).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from byoc.errors import PluginError, PluginOptionError
from byoc.plugins.api import DeviceEvent, DeviceTrace, PartitionSignature, Payload
from byoc_npu_example.command_stream import FormatError, Opcode, decode
from byoc_npu_example.config import CONFIG
from byoc_npu_example.sim import Simulator, dequantize, quantize

COUNTER_HELP = {
    "runs": "runs of the partition, runs",
    "cycles": "NPU clock cycles, as the simulator's timing counts them (sim.command_cycles), "
              "cycles",
    "commands": "commands run, commands",
    **{f"commands_{opcode.name.lower()}": f"{opcode.name} commands run, commands"
       for opcode in Opcode},
    "macs": "int8 multiply-accumulates of the MAC array, MACs",
    "bytes_read": "input tensor bytes read from DRAM (constants not counted), bytes",
    "bytes_written": "output tensor bytes written to DRAM, bytes",
    "bytes_tapped": "debug tap bytes written to DRAM (byoc verify's request), bytes",
}
"""What each counter of :meth:`NpuRuntime.counters` counts, and its unit."""


def graph_layout_values(signature: PartitionSignature) -> set[str]:
    """The 4-D boundary values byoc hands over in the graph's NCHW layout, which the runtime
    transposes to and from the NPU's NHWC itself.

    byoc converts the boundary values of a plugin that prefers NHWC and says so in
    ``PartitionSignature.layouts``; a byoc without that feature passes every value as NCHW.
    Once every supported byoc converts, this function and its two uses can go.
    """
    layouts = getattr(signature, "layouts", {})
    return {name for name, ttype in [*signature.inputs.items(), *signature.outputs.items()]
            if len(ttype.shape) == 4 and layouts.get(name) != "NHWC"}


class NpuRuntime:
    """One partition's command stream on its own simulated NPU; counters add up over runs."""

    def __init__(self, payload: Payload, signature: PartitionSignature) -> None:
        try:
            program = decode(payload.data)
        except FormatError as err:
            raise PluginError(f"npu_example payload of partition {signature.name!r}: "
                              f"{err}") from None
        self.signature = signature
        self.simulator = Simulator(program, payload.arrays["constants"])
        self.inputs = {spec["name"]: spec for spec in payload.metadata["inputs"]}
        self.outputs = {spec["name"]: spec for spec in payload.metadata["outputs"]}
        missing = [v for v in signature.inputs if v not in self.inputs] + \
                  [v for v in signature.outputs if v not in self.outputs]
        if missing:
            raise PluginError(f"npu_example payload of partition {signature.name!r} has no "
                              f"tensor for {', '.join(missing)}; recompile the model")
        self.nchw = graph_layout_values(signature)
        self.command_nodes = [spec["node"] for spec in payload.metadata.get("commands", [])]
        self.taps = payload.metadata.get("taps", [])
        self.runs = 0

    def run(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        sim = self.simulator
        for name in self.signature.inputs:
            spec = self.inputs[name]
            desc = sim.program.tensors[spec["tensor"]]
            values = np.asarray(inputs[name])
            if name in self.nchw:
                values = values.transpose(0, 2, 3, 1)
            if spec["dequantized"]:
                # Exact: every dequantized step divides back to the nearest integer.
                values = quantize(values, desc)
            sim.write(spec["tensor"], values.reshape(desc.shape))
        sim.run()
        self.runs += 1
        outputs = {}
        for name, ttype in self.signature.outputs.items():
            spec = self.outputs[name]
            desc = sim.program.tensors[spec["tensor"]]
            values = sim.tensor(spec["tensor"]).copy()
            if spec["dequantized"]:
                values = dequantize(values, desc)
            if name in self.nchw:
                values = np.ascontiguousarray(values.transpose(0, 3, 1, 2))
            outputs[name] = values.reshape(ttype.shape)
        for tap in self.taps:
            outputs[tap["name"]] = self._tapped_value(tap)
        return outputs

    def _tapped_value(self, tap: dict) -> np.ndarray:
        """The float32 value of the op node ``tap`` holds, from its descriptor."""
        values = self.simulator.tensor(tap["tensor"])
        if "scales" in tap:
            values = values.astype(np.float64) * np.asarray(tap["scales"], np.float64)
        return values.astype(np.float32).reshape(tap["shape"])

    def counters(self) -> dict[str, int]:
        return {"runs": self.runs, **self.simulator.counters}

    def counter_help(self) -> dict[str, str]:
        return {name: COUNTER_HELP[name] for name in self.counters()}

    def device_trace(self) -> DeviceTrace | None:
        """The last run's cycles, one event per command (the simulator runs them in turn)."""
        cycles = self.simulator.command_cycles
        if not cycles:
            return None
        events, start = [], 0
        for index, (command, length) in enumerate(zip(self.simulator.program.commands,
                                                      cycles)):
            node = self.command_nodes[index] if index < len(self.command_nodes) else None
            events.append(DeviceEvent(node or f"{command.opcode.name} {index}",
                                      (node,) if node else (), start, length))
            start += length
        return DeviceTrace(start, events, CONFIG.clock_hz,
                           "clock_hz of npu_example's configuration")


def create_runtime(payload: Payload, signature: PartitionSignature,
                   options: dict[str, Any]) -> NpuRuntime:
    if options:
        raise PluginOptionError(f"npu_example has no run-time options; got "
                          f"{', '.join(sorted(options))}")
    return NpuRuntime(payload, signature)
