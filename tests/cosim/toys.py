"""The toy designs under rtl/ and the steps that drive them, shared by the cosim tests."""

from __future__ import annotations

import ctypes
from pathlib import Path

import numpy as np

from byoc.cosim import CosimModel, build_model

RTL = Path(__file__).parent / "rtl"
COPIER = RTL / "byte_copier.v"
COUNTER = RTL / "cycle_counter.v"
BYTES_PER_CYCLE = 4  # byte_copier's default


def build_copier(cache_dir: Path, sources=(COPIER,), **options) -> CosimModel:
    return build_model("byte_copier", list(sources), clock="i_clk", done="o_done",
                       cache_dir=cache_dir, **options)


def build_counter(cache_dir: Path) -> CosimModel:
    return build_model("cycle_counter", [COUNTER], clock="i_clk", done="o_done",
                       cache_dir=cache_dir)


def reset(model: CosimModel) -> None:
    model["i_rst"] = 1
    model.step(2)
    model["i_rst"] = 0


def start_copy(model: CosimModel, length: int) -> None:
    """One cycle with i_start high: the copier latches the length and starts copying."""
    model["i_length"] = length
    model["i_start"] = 1
    model.step()
    model["i_start"] = 0


def dpi_functions(model: CosimModel):
    """The library's DPI memory functions, callable from the test as the RTL calls them."""
    lib = ctypes.CDLL(str(model.library))
    read64, write64 = lib.byoc_mem_read64, lib.byoc_mem_write64
    read64.argtypes = [ctypes.c_int, ctypes.c_longlong]
    read64.restype = ctypes.c_longlong
    write64.argtypes = [ctypes.c_int, ctypes.c_longlong, ctypes.c_longlong, ctypes.c_char]
    write64.restype = None
    # DPI calls reach the memories of the model that last evaluated the design.
    model._activate()

    def read(slot: int, address: int) -> int:
        return read64(slot, address) & (1 << 64) - 1

    def write(slot: int, address: int, data: int, strobe: int) -> None:
        write64(slot, address, ctypes.c_longlong(data - (1 << 64) if data >> 63 else data),
                bytes([strobe]))

    return read, write


def copy_workload(model: CosimModel, argument: str) -> None:
    """A profile-guided build's workload (byoc.cosim.ProfileRun): the copier copies
    ``argument`` bytes."""
    length = int(argument)
    model.attach_memory(0, np.arange(length, dtype=np.uint8))
    model.attach_memory(1, np.zeros(length, dtype=np.uint8))
    reset(model)
    start_copy(model, length)
    model.run(10 * length)


def broken_workload(model: CosimModel, argument: str) -> None:
    raise RuntimeError(f"the workload broke ({argument})")
