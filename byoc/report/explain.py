"""``byoc compile --explain``: where each node runs and why the other plugins did not take it,
as plain text for a terminal.

One block per node of the optimized graph, in graph order, then the estimated totals of the
chosen, priority and host-only placements, then the dynamic tail if the model has one::

    layer (Conv) -> vta_sim (vta_sim.qdq_conv) in p1_vta_sim
      not cpu_llvm: overlap: taken by vta_sim.qdq_conv (rule: priority)

Every selected plugin that did not take the node gets one line, wrapped to the width. So that
a 200-node model stays readable, a plugin's repeated reasons are shown once, each reason is
cut to a few lines' worth and only the first few are shown, followed by how many more there
are; no plugin is ever left out. The reasons come from the partition plan
(:class:`~byoc.partition.partitioner.NodeExplanation`), the same ones the HTML report shows.
"""

from __future__ import annotations

import textwrap
from typing import TYPE_CHECKING

from byoc.core.dynamic_tail import TAIL_HOST
from byoc.errors import InputError

if TYPE_CHECKING:
    from byoc.compiled import CompiledModel
    from byoc.partition.partitioner import NodeExplanation

REASONS_SHOWN = 3
REASON_CHARS = 160


def format_explanation(model: CompiledModel, width: int = 100) -> str:
    """The explanation of every node of ``model``, compiled in this process (a model loaded
    from a .byoc artifact keeps no partition plan: InputError)."""
    if model.plan is None or model.graph is None:
        raise InputError(f"model {model.name!r} was loaded from a .byoc artifact, which keeps no "
                         f"partition plan to explain; compile the ONNX model with --explain")
    partition_of = {node.name: p.name for p in model.plan.partitions for node in p.nodes}
    lines = ["where each node runs, in graph order ('not P:' says why plugin P did not take "
             "it):"]
    for node in model.graph.nodes:
        explanation = model.plan.explanations[node.name]
        lines.append(_node_line(explanation, partition_of[node.name], width))
        lines += [_reasons_line(plugin, reasons, width)
                  for plugin, reasons in explanation.reasons.items()]
    if model.plan.placement is not None:
        lines.append(_wrap(model.plan.placement.summary(), width, indent="", more="  "))
    if model.tail is not None:
        lines.append(_wrap(f"dynamic tail ({TAIL_HOST}), after the partitions: "
                           f"{model.tail.describe()}", width, indent="", more="    "))
        lines += [f"{node.name} ({node.op_type}) -> {TAIL_HOST} (dynamic tail)"
                  for node in model.tail.nodes]
    return "\n".join(lines)


def _node_line(explanation: NodeExplanation, partition: str, width: int) -> str:
    pattern = explanation.pattern or "no pattern: the host takes what no plugin takes"
    return _wrap(f"{explanation.node} ({explanation.op}) -> {explanation.plugin} ({pattern}) "
                 f"in {partition}", width, indent="", more="    ")


def _reasons_line(plugin: str, reasons: list[str], width: int) -> str:
    unique = list(dict.fromkeys(reasons))
    shown = [textwrap.shorten(reason, REASON_CHARS, placeholder=" [...]")
             for reason in unique[:REASONS_SHOWN]]
    if len(unique) > REASONS_SHOWN:
        shown.append(f"and {len(unique) - REASONS_SHOWN} more")
    return _wrap("; ".join(shown), width, indent=f"  not {plugin}: ", more="      ")


def _wrap(text: str, width: int, indent: str, more: str) -> str:
    """``text`` wrapped to ``width``, names never broken (a line may run longer only for a
    name longer than the width)."""
    return textwrap.fill(text, width, initial_indent=indent, subsequent_indent=more,
                         break_long_words=False, break_on_hyphens=False)
