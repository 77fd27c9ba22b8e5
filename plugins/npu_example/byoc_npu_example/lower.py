"""From a partition to what the NPU runs: commands, tensor descriptors and constants.

:func:`lower_partition` finds the partition's layers (:mod:`byoc_npu_example.layers`), packs
their weights, biases and multipliers into the constants blob, gives every int8 value a DRAM
buffer after the constants, and writes one command per layer (none for a Flatten, whose
output descriptor views its input's buffer).

A partition may also read the float output of a DequantizeLinear left outside it (another
plugin reads it too), or contain such a DequantizeLinear shared by several of its layers,
or one whose layers a pin or another plugin took, so that it only hands its float output
on (the int8 value comes in as a partition input).
Either way the NPU keeps the int8 value: the runtime quantizes such a float input back
(exact: ``round(float32(q - z) * s / s) == q - z`` for every int8 ``q``), and dequantizes a
float output with the reference's formula.

byoc verify's debug request (``partition.debug_outputs``) is honoured for what the NPU
really computes: the output of each layer's op node (Conv, Gemm/MatMul, the pools, Add),
which its command writes to a debug tap (:mod:`byoc_npu_example.command_stream`) placed after
every activation buffer; ``Lowered.taps`` says which value each tap holds and how the
runtime turns it into that value. A Relu or Clip output (folded into the requantize clamp)
and a DequantizeLinear output (the int8 input itself) have no tap, and are left out. Without
a request nothing changes: the stream, constants and metadata are those of an ordinary
compile.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np

from byoc.core.ir import Graph, Node
from byoc.errors import PluginError
from byoc.plugins.api import Partition
from byoc_npu_example.command_stream import (
    Conv2d,
    DepthwiseConv2d,
    EltwiseAdd,
    Pool,
    Program,
    TensorDesc,
)
from byoc_npu_example.config import CONFIG, NpuConfig
from byoc_npu_example.layers import (
    AddLayer,
    ConvLayer,
    FlattenLayer,
    Layer,
    PoolLayer,
    Quant,
    nhwc_shape,
    npu_layer,
    qdq_groups,
    quant_of,
)
from byoc_npu_example.sim import padded


@dataclass
class Lowered:
    """A partition ready for codegen. ``inputs`` and ``outputs`` say, per boundary value,
    which descriptor holds it and whether it crosses as float (``dequantized``). ``taps``
    (empty unless byoc verify asked) say, per debug tap, which op node's output ``name`` it
    holds, its descriptor ``tensor``, the ``shape`` the runtime returns it in (NHWC when
    4-D) and, for a MAC command's int32 accumulators, the float32 ``scales`` (one per
    output channel, ``x_scale * w_scale``) that dequantize them."""

    program: Program
    constants: np.ndarray
    inputs: list[dict] = field(default_factory=list)
    outputs: list[dict] = field(default_factory=list)
    layers: list[dict] = field(default_factory=list)
    taps: list[dict] = field(default_factory=list)


def partition_layers(partition: Partition, graph: Graph,
                     config: NpuConfig = CONFIG) -> tuple[list[Layer], dict[str, Quant]]:
    """The partition's layers in graph order, and the float values its own (shared)
    DequantizeLinear nodes compute, with the int8 value each dequantizes. Both come from the
    pattern matches that formed the partition: a layer pattern captures its QuantizeLinear,
    the shared-DequantizeLinear pattern its DequantizeLinear."""
    groups = qdq_groups(graph)
    layers: list[Layer] = []
    dequantized: dict[str, Quant] = {}
    covered: set[int] = set()
    for match in partition.matches:
        covered.update(id(n) for n in match.nodes)
        if "quantize" in match.captured:
            group = groups[match.captured["quantize"].name]
            layer = npu_layer(group, graph, config)
            if isinstance(layer, str):
                raise PluginError(f"npu_example cannot run node {group.op.name!r} "
                                  f"({group.op.op_type}): {layer}")
            layers.append(layer)
        # a layer's own input DequantizeLinear, and the shared-DequantizeLinear pattern's
        # node: the float values they compute, for readers in other partitions
        for node in match.nodes:
            quant = _shared_dequantize(node, graph)
            if quant is not None:
                dequantized[node.outputs[0]] = quant
    strays = [n for n in partition.nodes if id(n) not in covered]
    if strays:
        raise PluginError(f"npu_example: partition {partition.name!r} holds node "
                          f"{strays[0].name!r} ({strays[0].op_type}), which none of the "
                          f"pattern matches that formed it covers")
    order = {id(n): i for i, n in enumerate(graph.nodes)}
    layers.sort(key=lambda layer: order[id(layer.group.op)])
    return layers, dequantized


def _shared_dequantize(node: Node, graph: Graph) -> Quant | None:
    if node.op_type != "DequantizeLinear" or graph.is_constant(node.inputs[0]):
        return None
    quant = quant_of(node, graph)
    return quant if isinstance(quant, Quant) else None


def lower_partition(partition: Partition, graph: Graph, config: NpuConfig = CONFIG) -> Lowered:
    layers, dequantized = partition_layers(partition, graph, config)
    builder = _Builder(graph, config, set(partition.debug_outputs))
    produced = {}
    for layer in layers:
        produced[layer.y.value] = layer
        if isinstance(layer, FlattenLayer):
            builder.alias(layer.y.value, layer.x.value)

    inputs, written = [], set()
    for value in partition.inputs:
        if value in graph.types and graph.types[value].dtype in (np.int8, np.uint8):
            quant = next((q for q in [*(q for layer in layers for q in layer.inputs),
                                      *dequantized.values()] if q.value == value), None)
            is_float = False
        else:
            producer = graph.producers().get(value)
            quant = _shared_dequantize(producer, graph) if producer is not None else None
            is_float = True
        if quant is None:
            raise PluginError(f"npu_example: partition {partition.name!r} reads {value!r}, "
                              f"which is not the int8 input of one of its layers")
        inputs.append({"name": value, "tensor": builder.descriptor(quant),
                       "dequantized": is_float})
        written.add(builder.buffer_of(quant.value))

    for layer in layers:
        for quant in layer.inputs:
            if builder.buffer_of(quant.value) not in written:
                raise PluginError(f"npu_example: node {layer.group.op.name!r} reads "
                                  f"{quant.value!r}, which the partition neither receives "
                                  f"nor computes before it")
        written.add(builder.buffer_of(layer.y.value))
        builder.command(layer)

    outputs = []
    for value in partition.outputs:
        if value in produced:
            outputs.append({"name": value, "tensor": builder.descriptor(produced[value].y),
                            "dequantized": False})
        elif value in dequantized and builder.buffer_of(dequantized[value].value) in written:
            outputs.append({"name": value, "tensor": builder.descriptor(dequantized[value]),
                            "dequantized": True})
        else:
            raise PluginError(f"npu_example: partition {partition.name!r} must output "
                              f"{value!r}, which none of its layers computes")
    program, constants = builder.finish()
    return Lowered(program, constants, inputs, outputs, builder.summary, builder.taps)


class _Builder:
    """Collects constants, buffers, descriptors and commands; DRAM offsets of activation
    buffers are only known once every constant is packed, so descriptors name buffers until
    :meth:`finish` places them."""

    def __init__(self, graph: Graph, config: NpuConfig, debug_outputs: set[str]) -> None:
        self.graph, self.config = graph, config
        self.debug_outputs = debug_outputs
        self.constants = bytearray()
        self.aliases: dict[str, str] = {}
        self.buffers: dict[str, int] = {}          # buffer name -> size in bytes
        self.tap_buffers: dict[str, int] = {}      # the same for debug taps, placed last
        self.descriptors: dict[tuple, int] = {}    # (buffer, shape, dtype, zero, scale) -> index
        self.commands: list = []
        self.summary: list[dict] = []
        self.taps: list[dict] = []

    def alias(self, value: str, source: str) -> None:
        self.aliases[value] = self.buffer_of(source)

    def buffer_of(self, value: str) -> str:
        return self.aliases.get(value, value)

    def descriptor(self, quant: Quant) -> int:
        buffer = self.buffer_of(quant.value)
        shape = nhwc_shape(self.graph.types[quant.value].shape)
        size = int(np.prod(shape))
        if self.buffers.setdefault(buffer, size) != size:
            raise PluginError(f"npu_example: {quant.value!r} does not fill the buffer of "
                              f"{buffer!r} it views")
        key = (buffer, shape, np.dtype(quant.dtype).name, quant.zero_point,
               float(np.float32(quant.scale)))
        return self.descriptors.setdefault(key, len(self.descriptors))

    def constant(self, array: np.ndarray) -> int:
        offset = self._aligned(len(self.constants))
        self.constants.extend(bytes(offset - len(self.constants)))
        self.constants.extend(np.ascontiguousarray(array).tobytes())
        return offset

    def _aligned(self, size: int) -> int:
        return -(-size // self.config.alignment) * self.config.alignment

    def command(self, layer: Layer) -> None:
        out, first = self.descriptor(layer.y), self.descriptor(layer.inputs[0])
        if isinstance(layer, ConvLayer):
            weights, bias, multipliers = pack_conv(layer)
            cls = DepthwiseConv2d if layer.depthwise else Conv2d
            command = cls(out, first, layer.window, self.constant(weights), self.constant(bias),
                          self.constant(multipliers), layer.integer.out_min,
                          layer.integer.out_max)
        elif isinstance(layer, PoolLayer):
            command = Pool(out, first, layer.mode, layer.window, layer.qmin, layer.qmax)
        elif isinstance(layer, AddLayer):
            command = EltwiseAdd(out, first, self.descriptor(layer.b), layer.qmin, layer.qmax)
        else:
            return      # a Flatten: its output descriptor already views its input's bytes
        if layer.group.op.outputs[0] in self.debug_outputs:
            command = dataclasses.replace(command, tap=self.tap(layer))
        self.commands.append(command)
        self.summary.append({"command": command.opcode.name, "node": layer.group.op.name,
                             "output": layer.y.value})

    def tap(self, layer: Layer) -> int:
        """The descriptor of a debug tap for the output of the layer's op node, in a buffer
        of its own: int32 accumulators for a MAC command, float32 results for a vector one,
        in the layer output's N x H x W x C shape."""
        value, node = layer.group.op.outputs[0], layer.group.op
        shape = nhwc_shape(self.graph.types[layer.y.value].shape)
        dtype = np.dtype(np.int32 if isinstance(layer, ConvLayer) else np.float32)
        self.tap_buffers[value] = int(np.prod(shape)) * dtype.itemsize
        index = self.descriptors.setdefault((value, shape, dtype.name, 0, 1.0),
                                            len(self.descriptors))
        value_shape = self.graph.types[value].shape
        tap = {"name": value, "node": node.name, "tensor": index,
               "shape": list(shape if len(value_shape) == 4 else value_shape)}
        if isinstance(layer, ConvLayer):
            tap["scales"] = [float(s) for s in accumulator_scales(layer, self.graph)]
        self.taps.append(tap)
        return index

    def finish(self) -> tuple[Program, np.ndarray]:
        offsets, end = {}, self._aligned(len(self.constants))
        for buffer, size in [*self.buffers.items(), *self.tap_buffers.items()]:
            offsets[buffer] = end
            end = self._aligned(end + size)
        tensors = [None] * len(self.descriptors)
        for (buffer, shape, dtype, zero, scale), index in self.descriptors.items():
            tensors[index] = TensorDesc(offsets[buffer], shape, np.dtype(dtype), zero, scale)
        program = Program(tensors, self.commands, end)
        return program, np.frombuffer(bytes(self.constants), np.uint8).copy()


def pack_conv(layer: ConvLayer) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The layer's weights in the NPU's layout (O x kH x kW x I, or kH x kW x C for a
    depthwise conv; channels zero-padded to the block), its int32 bias and float32
    multipliers, one per padded output channel."""
    integer = layer.integer
    weight = np.asarray(integer.weight, np.int8)
    if integer.kind == "matmul":
        weight = weight.T[:, None, None, :]                   # K x N -> N x 1 x 1 x K
    else:
        weight = weight.transpose(0, 2, 3, 1)                 # OIHW -> OHWI
    out_c = weight.shape[0]
    if layer.depthwise:
        packed = np.zeros(weight.shape[1:3] + (padded(out_c),), np.int8)
        packed[:, :, :out_c] = weight[:, :, :, 0].transpose(1, 2, 0)
    else:
        packed = np.zeros((padded(out_c),) + weight.shape[1:3] + (padded(weight.shape[3]),),
                          np.int8)
        packed[:out_c, :, :, :weight.shape[3]] = weight
    bias = np.zeros(padded(out_c), np.int32)
    if integer.bias is not None:
        bias[:out_c] = np.broadcast_to(integer.bias, (out_c,))
    multipliers = np.zeros(padded(out_c), np.float32)
    multipliers[:out_c] = np.broadcast_to(np.asarray(integer.multiplier, np.float32).ravel(),
                                          (out_c,))
    return packed, bias, multipliers


def accumulator_scales(layer: ConvLayer, graph: Graph) -> np.ndarray:
    """The float32 value of one unit of each output channel's accumulator, ``x_scale *
    w_scale`` (the scale of the layer's int32 bias), one per output channel."""
    w_scale = graph.constants[layer.group.dequantize[1].inputs[1]]
    scales = np.float32(layer.x.scale) * np.asarray(w_scale, np.float32).ravel()
    return np.broadcast_to(scales, (layer.integer.out_channels,))
