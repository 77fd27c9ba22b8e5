"""byoc example plugin for a layer-level int8 NPU.

The NPU runs whole quantized layers, one command each, over tensors in its DRAM: the host
hands it a command stream (:mod:`byoc_npu_example.command_stream`, the format), a blob of packed
weights and the addresses of its inputs and outputs. The software side is split in the
roles every byoc backend has:

- :mod:`~byoc_npu_example.layers`: which QDQ groups the NPU runs, and why it declines others;
- :mod:`~byoc_npu_example.lower`: a partition's layers to commands, descriptors and constants;
- :mod:`~byoc_npu_example.sim`: the simulator, the living spec of every command, with the
  requantize unit in :mod:`~byoc_npu_example.requant`;
- :mod:`~byoc_npu_example.runtime` and :mod:`~byoc_npu_example.plugin`: the byoc hooks.
"""

__version__ = "0.1.0"
