"""A profiled run as a Chrome trace (the JSON trace event format Perfetto and chrome://tracing
open): ``byoc run --profile --trace FILE.json``.

The file is one JSON object ``{"traceEvents": [...]}``. Times are microseconds from the start
of the run. Process 1, "host", has one thread, "partitions", with one complete event (``"ph":
"X"``) per partition run: its wall time on the host, and in ``args`` its ``plugin``, the
ONNX ``nodes`` it runs (``[]`` when the artifact does not record them) and the device's
``cycles`` for the run (null where the device counts none). Process 2, "devices", has one
thread per plugin whose runtime reports a :class:`byoc.plugins.api.DeviceTrace`, with one
complete event per layer or command: it starts with its partition's host event, offset by its
start cycle, and lasts its cycles at the clock the plugin states (the thread's name gives the
clock and where it comes from; ``args`` holds the cycles themselves). The device's time is
not the host's: a simulator takes far longer on the host than the device it simulates would.
Metadata events (``"ph": "M"``) name the processes and threads.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from byoc.errors import InputError

if TYPE_CHECKING:
    from byoc.compiled import PartitionProfile

HOST_PID, DEVICE_PID = 1, 2
PARTITION_TID = 1


def chrome_trace(profiles: Sequence[PartitionProfile], model: str) -> dict[str, Any]:
    """The trace of one profiled run of ``model`` (:meth:`byoc.CompiledModel.profile`)."""
    events = [_metadata("process_name", HOST_PID, 0, f"host: byoc run {model}"),
              _metadata("thread_name", HOST_PID, PARTITION_TID, "partitions")]
    device_tids: dict[str, int] = {}
    for profile in profiles:
        start = profile.start * 1e6
        events.append({
            "name": profile.partition, "cat": "partition", "ph": "X", "ts": start,
            "dur": profile.seconds * 1e6, "pid": HOST_PID, "tid": PARTITION_TID,
            "args": {"plugin": profile.plugin, "nodes": list(profile.nodes or []),
                     "cycles": profile.cycles}})
        device = profile.device
        if device is None:
            continue
        if profile.plugin not in device_tids:
            tid = device_tids[profile.plugin] = len(device_tids) + 1
            if tid == 1:
                events.append(_metadata("process_name", DEVICE_PID, 0, "devices"))
            events.append(_metadata("thread_name", DEVICE_PID, tid,
                                    f"{profile.plugin} at {device.clock_hz / 1e6:g} MHz "
                                    f"({device.clock})"))
        microseconds_per_cycle = 1e6 / device.clock_hz
        for event in device.events:
            events.append({
                "name": event.name, "cat": "device", "ph": "X",
                "ts": start + event.start_cycle * microseconds_per_cycle,
                "dur": event.cycles * microseconds_per_cycle, "pid": DEVICE_PID,
                "tid": device_tids[profile.plugin],
                "args": {"partition": profile.partition, "nodes": list(event.nodes),
                         "cycles": event.cycles, "start_cycle": event.start_cycle,
                         "clock_hz": device.clock_hz}})
    return {"traceEvents": events}


def check_writable(path: str | os.PathLike) -> None:
    """Refuse, before a run, a trace path whose folder is missing or not writable."""
    folder = Path(path).parent
    if not folder.is_dir():
        raise InputError(f"cannot write the trace to {path}: the folder {folder} does not "
                         f"exist; create it or give another path")
    if not os.access(folder, os.W_OK) or Path(path).is_dir() or (
            Path(path).exists() and not os.access(path, os.W_OK)):
        raise InputError(f"cannot write the trace to {path}: it is a folder or not writable; "
                         f"give a writable file path")


def write_chrome_trace(path: str | os.PathLike, profiles: Sequence[PartitionProfile],
                       model: str) -> None:
    """Write :func:`chrome_trace` to ``path``; InputError naming the path if that fails."""
    try:
        with open(path, "w", encoding="utf-8") as file:
            json.dump(chrome_trace(profiles, model), file)
    except OSError as exc:
        raise InputError(f"cannot write the trace to {path}: {exc.strerror}; give a "
                         f"writable file path") from None


def _metadata(kind: str, pid: int, tid: int, name: str) -> dict[str, Any]:
    return {"name": kind, "ph": "M", "pid": pid, "tid": tid, "args": {"name": name}}
