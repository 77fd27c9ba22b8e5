"""Co-simulation: a plugin's own Verilog RTL, Verilated and run in the loop from Python.

:func:`build_model` Verilates a design (cached on disk) and loads it as a :class:`CosimModel`:
write and read its top-level ports, back its DPI memory imports with numpy arrays, run its
clock from C++ until a done output goes high, and dump waveforms. :func:`compare_memories`
checks what the RTL wrote against a reference. docs/cosim.md is the manual.
"""

from byoc.cosim.build import ProfileRun, build_model, find_verilator
from byoc.cosim.compare import MemoryMismatch, compare_memories
from byoc.cosim.locate import locate_rtl
from byoc.cosim.model import CosimModel, MemoryFault, WatchdogError
from byoc.errors import CosimError

__all__ = ["CosimError", "CosimModel", "MemoryFault", "MemoryMismatch", "ProfileRun",
           "WatchdogError", "build_model", "compare_memories", "find_verilator", "locate_rtl"]
