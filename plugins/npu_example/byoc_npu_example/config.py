"""What the NPU can do, in one place: the limits the pattern checks enforce, the command
encoder's field widths rely on, and the weight packer pads to."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class NpuConfig:
    max_kernel: int = 7          # kernel height and width, 1..max_kernel
    max_stride: int = 2          # strides, 1..max_stride
    max_pad: int = 3             # padding on each side, 0..max_pad
    max_channels: int = 2048     # input and output channels of a layer
    max_dim: int = 0xFFFF        # any tensor dimension (u16 descriptor fields)
    channel_block: int = 8       # weights, biases and multipliers are padded to this
    alignment: int = 16          # of every DRAM buffer and constant
    # Timing, which the simulator counts cycles with (sim.command_cycles): a command takes
    # the longer of its arithmetic and its DRAM traffic, plus a fixed start-up.
    macs_per_cycle: int = 256    # the MAC array: 16 x 16 int8 multiply-accumulates
    vector_lanes: int = 16       # the vector unit: output elements per cycle (POOL, ADD)
    dram_bytes_per_cycle: int = 16   # one 128-bit DRAM beat per cycle
    command_cycles: int = 32     # fetching and decoding a command, filling the pipeline
    clock_hz: int = 500_000_000  # an edge NPU's clock (the example's; no silicon behind it)


CONFIG = NpuConfig()
