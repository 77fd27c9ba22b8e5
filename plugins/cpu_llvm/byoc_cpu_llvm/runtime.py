"""Running a compiled partition: buffers, pointer table, and the threads that call it."""

from __future__ import annotations

import ctypes
import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from byoc.core.ir import TensorType
from byoc.errors import ExecutionError, PluginError
from byoc.plugins.api import PartitionSignature, Payload
from byoc_cpu_llvm.jit import LoadedObject, compile_ir

_ENTRY_TYPE = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_int64, ctypes.c_int64)
# Each thread a partition uses must have this much work per run (see lower.estimated_work;
# about 0.1 ms on one core): below it, waking a thread costs more than it saves.
MIN_WORK_PER_EXTRA_THREAD = 20_000_000


def default_threads() -> int:
    """All cores this process may run on, unless BYOC_THREADS says otherwise."""
    configured = os.environ.get("BYOC_THREADS")
    if configured:
        return max(1, int(configured))
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


class CpuRuntime:
    """Runs one partition's machine code. Buffers are allocated once; inputs are passed by
    pointer (no copy); outputs are copied out so later runs cannot overwrite them."""

    def __init__(self, payload: Payload, signature: PartitionSignature,
                 threads: int | None = None,
                 min_work_per_thread: int = MIN_WORK_PER_EXTRA_THREAD) -> None:
        meta = payload.metadata
        self.signature = signature
        self.threads = threads or default_threads()
        if min_work_per_thread:
            work = int(meta.get("work", min_work_per_thread))
            self.threads = max(1, min(self.threads, work // min_work_per_thread))
        self._object = LoadedObject(compile_ir(payload.data.decode()))
        self._entry = _ENTRY_TYPE(self._object.address(meta["entry"]))
        self._specs = meta["buffers"]
        self._table = (ctypes.c_void_p * len(self._specs))()
        self._arrays: list[np.ndarray | None] = [None] * len(self._specs)
        self._inputs: dict[str, int] = {}
        self._outputs: dict[str, int] = {}
        for slot, spec in enumerate(self._specs):
            kind, dtype = spec["kind"], np.dtype(spec["dtype"])
            if kind == "input":
                self._inputs[spec["name"]] = slot
            elif kind == "constant":
                self._keep(slot, np.ascontiguousarray(payload.arrays[spec["name"]]))
            elif kind == "scratch":
                self._keep(slot, np.zeros(_elements(spec) * self.threads, dtype))
            elif kind in ("temp", "output", "barrier", "status"):
                self._keep(slot, np.zeros(spec["shape"], dtype))
            if kind == "output":
                self._outputs[spec["name"]] = slot
        self._aliases = _alias_order(self._specs)
        self._faults = meta.get("faults", [])
        self._status = next((self._arrays[slot] for slot, spec in enumerate(self._specs)
                             if spec["kind"] == "status"), None)
        self._pool = ThreadPoolExecutor(self.threads - 1) if self.threads > 1 else None
        self._run_count = 0

    def _keep(self, slot: int, array: np.ndarray) -> None:
        self._arrays[slot] = array
        self._table[slot] = array.ctypes.data

    def run(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        held = []
        for name, slot in self._inputs.items():
            array = np.ascontiguousarray(inputs[name])
            held.append(array)
            self._table[slot] = array.ctypes.data
        for slot, target, nbytes in self._aliases:
            self._table[slot] = self._table[target] + nbytes
        self._arrays[0][:] = 0  # barrier state
        if self._status is not None:
            self._status[:] = 0
        table = ctypes.addressof(self._table)
        if self._pool is None:
            self._entry(table, 0, 1)
        else:
            futures = [self._pool.submit(self._entry, table, tid, self.threads)
                       for tid in range(1, self.threads)]
            self._entry(table, 0, self.threads)
            for future in futures:
                future.result()
        self._run_count += 1
        if self._status is not None and self._status[0]:
            raise ExecutionError(f"{self.signature.name}: {self._faults[self._status[0] - 1]}")
        return {name: self._arrays[slot].copy() for name, slot in self._outputs.items()}

    def counters(self) -> dict[str, int]:
        return {"runs": self._run_count, "threads": self.threads}

    def counter_help(self) -> dict[str, str]:
        return {"runs": "times this partition's compiled code ran (count)",
                "threads": "threads that split the partition's work (count)"}

    def __del__(self) -> None:
        if getattr(self, "_pool", None) is not None:
            self._pool.shutdown(wait=False)


def _alias_order(specs: list[dict]) -> list[tuple[int, int, int]]:
    """(slot, aliased slot, byte offset) of each alias, in slot order: an alias is added after
    the slot it aliases (ProgramBuilder makes that slot first), so a chain of views (a DenseNet
    block's Concats) resolves in one pass."""
    return [(slot, spec["alias"],
             spec.get("offset", 0) * np.dtype(specs[spec["alias"]]["dtype"]).itemsize)
            for slot, spec in enumerate(specs) if spec["kind"] == "alias"]


def _elements(spec: dict) -> int:
    return int(np.prod(spec["shape"], dtype=np.int64))


def check_signature_types(signature: PartitionSignature, buffers: list[dict]) -> None:
    """The payload's input and output buffers must match the partition's signature."""
    declared = {b["name"]: TensorType(np.dtype(b["dtype"]), tuple(b["shape"]))
                for b in buffers if b["kind"] in ("input", "output")}
    for name, ttype in {**signature.inputs, **signature.outputs}.items():
        if declared.get(name) != ttype:
            raise PluginError(f"cpu_llvm payload for {signature.name!r} declares "
                              f"{declared.get(name)} for {name!r}, the signature says {ttype}")
