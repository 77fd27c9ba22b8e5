"""Plain-text tables for the command line: the partition summary and the run profile."""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING, Sequence

from byoc.core.dynamic_tail import TAIL_HOST

if TYPE_CHECKING:
    from byoc.compiled import CompiledModel, PartitionProfile


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(str(cell)) for cell in column) for column in zip(headers, *rows)]
    lines = ["  ".join(str(h).ljust(w) for h, w in zip(headers, widths)).rstrip()]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(str(c).ljust(w) for c, w in zip(row, widths)).rstrip() for row in rows]
    return "\n".join(lines)


def format_summary(model: CompiledModel) -> str:
    """One row per partition: plugin, node and op counts, boundary tensors; then the
    estimated totals of the chosen, priority and host-only placements (a model compiled
    in this process); a dynamic tail last, with the nodes that start it and why."""
    rows = []
    for part in model.parts:
        ops = ", ".join(f"{op} {n}" for op, n in part.ops.items())
        rows.append([part.signature.name, part.plugin, str(sum(part.ops.values())), ops,
                     _boundary(part.signature.inputs), _boundary(part.signature.outputs)])
    by_plugin: dict[str, int] = {}
    for part in model.parts:
        by_plugin[part.plugin] = by_plugin.get(part.plugin, 0) + sum(part.ops.values())
    total = sum(by_plugin.values())
    shares = ", ".join(f"{plugin} {n}/{total} nodes" for plugin, n in by_plugin.items())
    count = f"{len(model.parts)} partition{'s' if len(model.parts) != 1 else ''}"
    header = f"{model.name}: {count} ({shares})"
    tail = model.tail
    if tail is not None:
        tail_ops = Counter(node.op_type for node in tail.nodes)
        rows.append(["dynamic_tail", TAIL_HOST, str(len(tail.nodes)),
                     ", ".join(f"{op} {n}" for op, n in tail_ops.items()),
                     _shorten(", ".join(tail.inputs)), _shorten(", ".join(tail.outputs))])
    text = header + "\n" + table(["partition", "plugin", "nodes", "ops", "inputs", "outputs"],
                                 rows)
    layouts = model.layout_plan()
    if layouts.conversions or layouts.kept:
        lines = [f"  {c}" for c in layouts.conversions]
        lines += [f"  {c.value}: stays {c.source} ({c.producer} -> {', '.join(c.consumers)}; "
                  f"the conversions back and forth cancel)" for c in layouts.kept]
        text += ("\nlayout conversions at partition boundaries:\n" + "\n".join(lines))
    placement = model.plan.placement if model.plan is not None else None
    if placement is not None:
        text += f"\n{placement.summary()}"
    if tail is not None:
        text += f"\ndynamic tail ({TAIL_HOST}): {tail.describe()}"
    return text


def format_profile(profile: Sequence[PartitionProfile]) -> str:
    """The totals of a profiled run, one row per partition (plugin, host time, share, the
    device's cycles where it counts them, and the compile-time estimate of both), then every
    partition's counters with what each counts and its unit, as the plugin explains them."""
    busy = sum(p.seconds for p in profile)
    wall = max((p.start + p.seconds for p in profile), default=0.0)
    count = f"{len(profile)} partition{'s' if len(profile) != 1 else ''}"
    lines = [f"total: {wall * 1e3:.3f} ms wall time (partitions and the conversions between "
             f"them), {busy * 1e3:.3f} ms host time in {count}"]
    cycles_by_plugin: dict[str, int] = {}
    for p in profile:
        if p.cycles is not None:
            cycles_by_plugin[p.plugin] = cycles_by_plugin.get(p.plugin, 0) + p.cycles
    if cycles_by_plugin:
        lines.append("device cycles: " + ", ".join(f"{plugin} {cycles:,}" for plugin, cycles
                                                    in cycles_by_plugin.items()))
    rows = [[p.partition, p.plugin, f"{p.seconds * 1e3:.3f}",
             f"{100 * p.seconds / (busy or 1.0):.1f}%",
             f"{p.cycles:,}" if p.cycles is not None else "-",
             _estimated_cycles(p), f"{p.estimate.seconds * 1e3:.3f}" if p.estimate else "-"]
            for p in profile]
    lines.append(table(["partition", "plugin", "host ms", "share", "device cycles",
                        "estimated cycles", "estimated ms"], rows))
    if any(p.estimate for p in profile):
        lines.append("(estimated: by placement when the model was compiled; an accelerator's "
                     "estimated ms is its device time at its clock plus moving its tensors, "
                     "not the host time its simulation takes)")
    counted = [p for p in profile if p.counters]
    if counted:
        lines.append("counters (totals over the runtime's runs so far):")
    for p in counted:
        lines.append(f"  {p.partition} ({p.plugin}):")
        values = {name: f"{value:,}" for name, value in p.counters.items()}
        name_width = max(len(name) for name in values)
        value_width = max(len(text) for text in values.values())
        lines += [f"    {name.ljust(name_width)}  {text.rjust(value_width)}  "
                  f"{p.counter_help.get(name, 'not explained by the plugin')}"
                  for name, text in values.items()]
    return "\n".join(lines)


def _estimated_cycles(p: PartitionProfile) -> str:
    """The compile-time estimate of the partition's device cycles, with how far the run's
    count is from it."""
    if p.estimate is None or p.estimate.cycles is None:
        return "-"
    if not p.cycles:
        return f"{p.estimate.cycles:,}"
    return f"{p.estimate.cycles:,} ({100 * (p.estimate.cycles - p.cycles) / p.cycles:+.1f}%)"


def _boundary(values) -> str:
    return _shorten(", ".join(f"{name}:{ttype}" for name, ttype in values.items()))


def _shorten(text: str) -> str:
    return text if len(text) <= 60 else text[:57] + "..."
