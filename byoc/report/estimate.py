"""``byoc estimate``: what a model is estimated to take, as text for a terminal and as JSON.

The JSON is a fixed schema that scripts rely on; :data:`ESTIMATE_SCHEMA` names its keys and
the tests pin it::

    {"total_seconds": float,
     "placements": {"chosen": float, "priority": float, "host_only": float},
     "partitions": [{"name": str, "plugin": str, "nodes": [ONNX node names],
                     "cycles": int or null, "seconds": float,
                     "bytes_in": int, "bytes_out": int}]}

A partition's ``seconds`` include moving its inputs to its plugin's device and its outputs
back (zero for a host plugin), so the partitions add up to ``total_seconds``, the chosen
placement's total. ``cycles`` are the device's clock cycles where its plugin counts them for
every match (accelerators), else null.
"""

from __future__ import annotations

import json
from pathlib import Path

from byoc.errors import InputError
from byoc.partition.placement import PartitionCost, Placement
from byoc.partition.placement import format_microseconds as _us

ESTIMATE_SCHEMA = {
    "total_seconds": float,
    "placements": {"chosen": float, "priority": float, "host_only": float},
    "partitions": [{"name": str, "plugin": str, "nodes": [str], "cycles": (int, None),
                    "seconds": float, "bytes_in": int, "bytes_out": int}],
}
"""The keys of ``byoc estimate --json`` and the type of each value."""


def estimate_json(placement: Placement) -> dict:
    """``placement`` in the schema of this module's docstring."""
    return {
        "total_seconds": placement.chosen,
        "placements": {"chosen": placement.chosen, "priority": placement.priority,
                       "host_only": placement.host_only},
        "partitions": [{"name": p.name, "plugin": p.plugin, "nodes": list(p.nodes),
                        "cycles": p.cycles, "seconds": p.total_seconds,
                        "bytes_in": p.bytes_in, "bytes_out": p.bytes_out}
                       for p in placement.partitions],
    }


def write_estimate_json(path: str | Path, placement: Placement) -> None:
    try:
        Path(path).write_text(json.dumps(estimate_json(placement), indent=1) + "\n")
    except OSError as exc:
        raise InputError(f"cannot write the estimate to {path}: {exc.strerror}") from None


def format_estimate(placement: Placement, title: str) -> str:
    """Per partition its plugin, cycles, seconds on the device and for transfers, bytes in
    and out; under it each match (or node a host takes alone) with its ONNX nodes, its
    estimate and its bytes in and out, then each value crossing the boundary of a device (a
    host plugin moves nothing); then the three totals."""
    lines = [f"estimate of {title} ({placement.mode} placement; nothing compiled or run)"]
    for partition in placement.partitions:
        lines.append("")
        lines.append(_partition_line(partition))
        for piece in partition.pieces:
            cycles = "" if piece.estimate.cycles is None else f", {piece.estimate.cycles:,} cycles"
            pattern = piece.pattern or "no pattern"
            lines.append(f"  {_us(piece.estimate.seconds)}{cycles}, "
                         f"{piece.estimate.bytes_in:,} B in, {piece.estimate.bytes_out:,} B "
                         f"out  {', '.join(piece.nodes)} ({pattern})")
        for crossing in partition.crossings:
            if crossing.seconds == 0:   # a host plugin works in host memory
                continue
            lines.append(f"  transfer {crossing.direction:<3} {crossing.value}: "
                         f"{crossing.bytes:,} bytes, {_us(crossing.seconds)}")
        if partition.pieces:
            lines.append(f"  basis: {_bases(partition)}")
    lines.append("")
    lines.append(f"total: {_us(placement.chosen)} ({placement.mode} placement); "
                 f"by priority {_us(placement.priority)}; on the host plugins alone "
                 f"{_us(placement.host_only)}")
    if placement.mode == "cost":
        count = placement.plans_priced
        lines.append(f"placement priced {count} plan{'s' * (count != 1)}"
                     + ("" if placement.searched_all else
                        " and stopped at its limit: a cheaper plan may exist"))
    if placement.not_estimated:
        lines.append(f"not estimated: the dynamic tail's {len(placement.not_estimated)} "
                     f"node(s), run on the host after the partitions: "
                     f"{', '.join(placement.not_estimated)}")
    return "\n".join(lines)


def _partition_line(partition: PartitionCost) -> str:
    cycles = "" if partition.cycles is None else f", {partition.cycles:,} cycles"
    launch = (f" with {_us(partition.launch_seconds)} to launch"
              if partition.launch_seconds else "")
    return (f"{partition.name} on {partition.plugin}: {_us(partition.total_seconds)} "
            f"({_us(partition.seconds)} on the device{cycles}{launch}, "
            f"{_us(partition.transfer_seconds)} moving {partition.bytes_in:,} bytes in and "
            f"{partition.bytes_out:,} bytes out), {len(partition.nodes)} node"
            f"{'s' * (len(partition.nodes) != 1)}")


def _bases(partition: PartitionCost) -> str:
    """The distinct models behind the partition's pieces."""
    return "; ".join(dict.fromkeys(p.estimate.basis for p in partition.pieces if
                                   p.estimate.basis)) or "not given"

