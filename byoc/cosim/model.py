"""A Verilated design in this process: its ports, host memories, clock and waveform trace.

The design is pyverilator's model (``CosimModel.sim``) plus the harness compiled into the
same library (:mod:`byoc.cosim.harness`). Ports are read and written through pyverilator;
host memories, the clock loop of :meth:`CosimModel.run` and VCD dumps go straight to the
harness through ctypes.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import weakref
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import NamedTuple

import numpy as np
from pyverilator import PyVerilator

from byoc.cosim.harness import FAULTS_KEPT, READ, SLOTS
from byoc.errors import CosimError


class WatchdogError(CosimError):
    """The design did not raise its done output within the cycle limit."""


class MemoryFault(NamedTuple):
    """A DPI access that fell outside the array attached to a slot, or to an empty slot."""

    slot: int
    kind: str  # "read" or "write"
    address: int  # the byte address the design asked for


def check_ports(top: str, inputs: dict[str, int], outputs: dict[str, int], clock: str,
                done: str) -> None:
    """Raise CosimError unless ``clock`` is a 1-bit input and ``done`` a 1-bit output of top."""
    for name, direction, ports in ((clock, "input", inputs), (done, "output", outputs)):
        if ports.get(name) != 1:
            listed = ", ".join(f"{port} ({width}-bit)" for port, width in ports.items())
            raise CosimError(f"Co-simulation of {top!r}: {name!r} must be a 1-bit {direction} "
                             f"of the top module; its {direction}s are: {listed or 'none'}.")


class CosimModel:
    """A design loaded from a library that :func:`byoc.cosim.build_model` built."""

    def __init__(self, library: os.PathLike | str, *, top: str, clock: str, done: str):
        self.top = top
        self.clock = clock
        self.done = done
        self.library = Path(library)
        self._lib = ctypes.CDLL(str(self.library))
        _declare_harness(self._lib)
        self._state = self._lib.byoc_cosim_state_new()
        weakref.finalize(self, self._lib.byoc_cosim_state_free, self._state)
        self._memories: list[np.ndarray | None] = [None] * SLOTS
        self._cycles = 0
        self._time = ctypes.c_uint64(0)
        self._trace = None
        # pyverilator evaluates the design while it sets every input to 0; DPI accesses made
        # then already belong to this model.
        self._activate()
        self.sim = PyVerilator(str(self.library))
        self.inputs = dict(self.sim.inputs)
        self.outputs = dict(self.sim.outputs)
        check_ports(top, self.inputs, self.outputs, clock, done)

    def __repr__(self) -> str:
        return f"<CosimModel {self.top} ({self.library}), {self._cycles} cycles>"

    @property
    def cycles(self) -> int:
        """Clock cycles run since construction, by :meth:`step` and :meth:`run` together."""
        return self._cycles

    def __getitem__(self, port: str) -> int:
        if port not in self.inputs and port not in self.outputs:
            raise CosimError(f"{self.top} has no port {port!r}; its ports are: "
                             f"{', '.join([*self.inputs, *self.outputs])}.")
        return int(self.sim[port])

    def __setitem__(self, port: str, value: int) -> None:
        """Write a top-level input and evaluate the design."""
        width = self.inputs.get(port)
        if width is None:
            raise CosimError(f"{self.top} has no input {port!r}; its inputs are: "
                             f"{', '.join(self.inputs)}.")
        value = int(value)
        if not 0 <= value < 1 << width:
            raise CosimError(f"{self.top}: {value} does not fit the {width}-bit input {port!r}.")
        self._activate()
        self.sim[port] = value

    def attach_memory(self, slot: int, array: np.ndarray) -> None:
        """Back DPI memory ``slot`` with ``array``, which the design then reads and writes in place.

        The model keeps a reference to the array until another one is attached to the slot.
        """
        if not 0 <= slot < SLOTS:
            raise CosimError(f"{self.top}: memory slot {slot} does not exist; slots are "
                             f"0..{SLOTS - 1}.")
        if not (isinstance(array, np.ndarray) and array.dtype == np.uint8 and array.ndim == 1
                and array.flags.c_contiguous and array.flags.writeable):
            raise CosimError(f"{self.top}: memory slot {slot} needs a 1-D, C-contiguous, "
                             f"writeable numpy uint8 array; got {_describe_array(array)}.")
        self._memories[slot] = array
        self._lib.byoc_cosim_attach(self._state, slot, array.ctypes.data, array.size)

    def step(self, cycles: int = 1) -> None:
        """Run clock cycles one edge at a time from Python (slow; meant for resets and pokes)."""
        self._activate()
        for _ in range(cycles):
            for level in (0, 1):
                self.sim[self.clock] = level
                self._time.value += 5
                if self._trace is not None:
                    self._lib.byoc_cosim_dump(self._trace, self._time.value)
            self._cycles += 1

    def run(self, max_cycles: int, describe: Callable[[CosimModel], str] | None = None) -> int:
        """Run the clock in C++ until the done output reads 1 after a rising edge.

        Returns the cycles run (0 if done was already 1). Raises WatchdogError after
        ``max_cycles`` cycles without done; ``describe(model)``, when given, is appended to
        its message to say what the design was doing.
        """
        cycles, done = self._run(max_cycles)
        if not done:
            message = (f"{self.top}: the cycle limit of {max_cycles} was reached before "
                       f"{self.done} went high ({self._cycles} cycles since the model was "
                       f"loaded).")
            if describe is not None:
                message += f" {describe(self)}"
            raise WatchdogError(message)
        return cycles

    def advance(self, cycles: int) -> int:
        """Run the clock in C++ for ``cycles`` cycles, or fewer if the done output reads 1
        after a rising edge first; returns the cycles run."""
        return self._run(cycles)[0]

    def _run(self, max_cycles: int) -> tuple[int, bool]:
        if max_cycles < 0:
            raise CosimError(f"{self.top}: a cycle count must not be negative, got "
                             f"{max_cycles}.")
        reached_done = ctypes.c_int32(0)
        cycles = self._lib.byoc_cosim_run(self.sim.model, self._state, self._trace,
                                          ctypes.byref(self._time), max_cycles,
                                          ctypes.byref(reached_done))
        self._cycles += cycles
        return cycles, bool(reached_done.value)

    @contextlib.contextmanager
    def trace(self, path: os.PathLike | str, *, origin: int = 0) -> Iterator[Path]:
        """Dump every clock edge to the VCD file ``path`` while the block runs.

        The rising edge of cycle n (counted like :attr:`cycles`) is at time 10 * (n -
        ``origin``): by default timestamps continue across traces from the model's loading;
        a trace opened in the middle of a run with ``origin`` set to the run's first cycle is
        timed from it. The file starts with every signal's value at the moment it is opened.
        """
        if not 0 <= origin <= self._cycles:
            raise CosimError(f"{self.top}: a trace's origin must be a cycle already run "
                             f"(0..{self._cycles}), got {origin}.")
        if self.sim.vcd_trace is not None:
            raise CosimError(f"{self.top} is already tracing to {self.sim.vcd_filename}; one "
                             f"trace at a time.")
        path = Path(path)
        # Verilator quietly writes nothing when it cannot open the file; find out first.
        try:
            path.open("wb").close()
        except OSError as error:
            raise CosimError(f"{self.top}: cannot write the trace file {path}: "
                             f"{error.strerror}.") from None
        self._trace = self._lib.start_vcd_trace(self.sim.model, os.fsencode(path))
        # pyverilator's own bookkeeping, so its tracing calls see this trace as active and do
        # not dump on their own.
        self.sim.vcd_trace = self._trace
        self.sim.vcd_filename = str(path)
        self.sim.auto_tracing_mode = None
        # The time is only ever read by dumps: shifted while this trace is open.
        self._time.value -= 10 * origin
        self._lib.byoc_cosim_dump(self._trace, self._time.value)
        try:
            yield path
        finally:
            self._time.value += 10 * origin
            self._lib.byoc_cosim_trace_close(self._trace)
            self._trace = None
            self.sim.vcd_trace = None

    def memory_faults(self) -> list[MemoryFault]:
        """The first out-of-range DPI accesses since the last clear (at most 16 are kept)."""
        faults = []
        slot, kind, address = ctypes.c_int32(), ctypes.c_int32(), ctypes.c_uint64()
        for index in range(min(self.memory_fault_count, FAULTS_KEPT)):
            self._lib.byoc_cosim_fault(self._state, index, ctypes.byref(slot),
                                       ctypes.byref(kind), ctypes.byref(address))
            faults.append(MemoryFault(slot.value, "read" if kind.value == READ else "write",
                                      address.value))
        return faults

    @property
    def memory_fault_count(self) -> int:
        """How many out-of-range DPI accesses happened since the last clear, all counted."""
        return self._lib.byoc_cosim_fault_count(self._state)

    def clear_memory_faults(self) -> None:
        self._lib.byoc_cosim_clear_faults(self._state)

    def take_log(self) -> np.ndarray:
        """The words the design appended to its event log (DPI ``byoc_log64``) since the
        last take, as uint64, in order; the log is emptied."""
        words = np.empty(self._lib.byoc_cosim_log_size(self._state), dtype=np.uint64)
        self._lib.byoc_cosim_log_take(self._state, words.ctypes.data, words.size)
        return words

    def _activate(self) -> None:
        self._lib.byoc_cosim_activate(self._state)


def _describe_array(array) -> str:
    if not isinstance(array, np.ndarray):
        return type(array).__name__
    flags = [flag for flag, present in (("non-contiguous", not array.flags.c_contiguous),
                                        ("read-only", not array.flags.writeable)) if present]
    return " ".join([*flags, f"{array.ndim}-D {array.dtype} array"])


def _declare_harness(lib: ctypes.CDLL) -> None:
    pointer, u64, i32 = ctypes.c_void_p, ctypes.c_uint64, ctypes.c_int32
    signatures = {
        "byoc_cosim_state_new": ([], pointer),
        "byoc_cosim_state_free": ([pointer], None),
        "byoc_cosim_activate": ([pointer], None),
        "byoc_cosim_attach": ([pointer, ctypes.c_int, pointer, u64], None),
        "byoc_cosim_fault_count": ([pointer], u64),
        "byoc_cosim_fault": ([pointer, ctypes.c_int, ctypes.POINTER(i32), ctypes.POINTER(i32),
                              ctypes.POINTER(u64)], None),
        "byoc_cosim_clear_faults": ([pointer], None),
        "byoc_cosim_log_size": ([pointer], u64),
        "byoc_cosim_log_take": ([pointer, pointer, u64], None),
        "byoc_cosim_dump": ([pointer, u64], None),
        "byoc_cosim_trace_close": ([pointer], None),
        "byoc_cosim_run": ([pointer, pointer, pointer, ctypes.POINTER(u64), u64,
                            ctypes.POINTER(i32)], u64),
        # pyverilator's wrapper: opens a VCD file on the model and returns its handle.
        "start_vcd_trace": ([pointer, ctypes.c_char_p], pointer),
    }
    for name, (argtypes, restype) in signatures.items():
        function = getattr(lib, name)
        function.argtypes = argtypes
        function.restype = restype
