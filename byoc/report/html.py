"""A self-contained HTML report of a partition plan: summary, legend and the graph as SVG.

The page has no external resources: its stylesheet and script are package data
(``static/report.css``, ``static/report.js``) embedded in every page. The graph is laid out by
Graphviz (``dot -Tsvg``) when it is on PATH and by :mod:`byoc.report.graph_drawing` otherwise (or
when dot fails). Either way every node is an SVG group
``<g id="node-<index>" class="node part-<k>">`` whose ``<title>`` is its explanation (shown on
hover); clicking it fills the side panel from a JSON block, through ``textContent`` only, so
names are never parsed as HTML.
"""

from __future__ import annotations

import html
import json
import re
import shutil
import subprocess
import zlib
from collections import Counter
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Iterable

import byoc
from byoc.core.ir import Graph, Node
from byoc.errors import ByocError
from byoc.layouts import LayoutPlan
from byoc.partition.partitioner import NodeExplanation, PartitionPlan
from byoc.plugins.api import Partition
from byoc.report import graph_drawing as layered

PALETTE = ("#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#edc948", "#b07aa1",
           "#ff9da7", "#9c755f")
HOST_COLOUR = "#9aa0a6"
DOT_TIMEOUT_SECONDS = 20.0

NODE_HEIGHT = 38.0
TERMINAL_HEIGHT = 26.0
BAND_PAD = 8.0
LABEL_PAD = 16.0
MAX_LABEL_CHARS = 34


def write_html_report(path: str | Path, graph: Graph, plan: PartitionPlan, title: str,
                      summary: dict | None = None, *, use_graphviz: bool = True,
                      layouts: LayoutPlan | None = None) -> None:
    """Write the report of ``plan`` over ``graph`` to ``path`` as one HTML file.

    ``summary`` holds extra facts shown as key/value rows under the title (e.g. the plugins
    asked, the target). The graph is drawn with Graphviz when ``use_graphviz`` is true and
    ``dot`` is on PATH, falling back to the built-in layout if dot fails. ``layouts`` (from
    :meth:`byoc.compiled.CompiledModel.layout_plan`) adds the table of layout conversions.
    """
    Path(path).write_text(render_html_report(graph, plan, title, summary,
                                             use_graphviz=use_graphviz, layouts=layouts),
                          encoding="utf-8")


def render_html_report(graph: Graph, plan: PartitionPlan, title: str,
                       summary: dict | None = None, *, use_graphviz: bool = True,
                       layouts: LayoutPlan | None = None) -> str:
    """The report's HTML text (see :func:`write_html_report`)."""
    view = _View.of(graph, plan)
    svg, engine = None, "built-in layered layout"
    if use_graphviz and shutil.which("dot"):
        svg = _graphviz_svg(view)
        if svg is not None:
            engine = "Graphviz dot"
    if svg is None:
        svg = _builtin_svg(view)
    facts = dict(summary or {})
    if plan.placement is not None:
        facts["estimated time"] = plan.placement.summary().removeprefix("estimated time: ")
    return _page(view, title, facts, svg, engine, layouts)


def plugin_colours(plugins: Iterable[str], host: str | None) -> dict[str, str]:
    """A colour per plugin: grey for the host; for the others a palette entry chosen by a
    hash of the name (stable across runs), moved to the next free entry on a collision."""
    colours = {}
    used: set[str] = set()
    for plugin in sorted(set(plugins)):
        if plugin == host:
            colours[plugin] = HOST_COLOUR
            continue
        start = zlib.crc32(plugin.encode("utf-8")) % len(PALETTE)
        choices = [PALETTE[(start + k) % len(PALETTE)] for k in range(len(PALETTE))]
        colours[plugin] = next((c for c in choices if c not in used), choices[0])
        used.add(colours[plugin])
    return colours


def host_plugin(plan: PartitionPlan) -> str | None:
    """The plugin that took nodes without a pattern (the partitioner's host), if any."""
    for partition in plan.partitions:
        if all(plan.patterns.get(node.name) is None for node in partition.nodes):
            return partition.plugin
    return None


@dataclass
class _View:
    """Everything the drawing needs, looked up once."""

    graph: Graph
    plan: PartitionPlan
    host: str | None
    colours: dict[str, str]
    part_index: dict[str, int]
    partition_of: dict[str, Partition]
    explanations: dict[str, NodeExplanation]

    @classmethod
    def of(cls, graph: Graph, plan: PartitionPlan) -> "_View":
        partition_of = {n.name: p for p in plan.partitions for n in p.nodes}
        missing = [n.name for n in graph.nodes
                   if n.name not in partition_of or n.name not in plan.explanations]
        if missing:
            raise ByocError(f"the partition plan does not cover node(s) "
                            f"{', '.join(repr(m) for m in missing[:5])} of graph "
                            f"{graph.name!r}; make the plan from this graph")
        plugins = [p.plugin for p in plan.partitions]
        plugins += [name for e in plan.explanations.values() for name in e.reasons]
        host = host_plugin(plan)
        return cls(graph, plan, host, plugin_colours(plugins, host),
                   {p.name: i for i, p in enumerate(plan.partitions)}, partition_of,
                   plan.explanations)

    def node_colour(self, node: Node) -> str:
        return self.colours[self.partition_of[node.name].plugin]

    def node_title(self, node: Node) -> str:
        return f"{self.explanations[node.name]}\npartition {self.partition_of[node.name].name}"

    def node_classes(self, node: Node) -> str:
        return f"node part-{self.part_index[self.partition_of[node.name].name]}"

    def value_text(self, value: str) -> str:
        return f"{value}: {self.graph.types[value]}" if value in self.graph.types else value


# -- built-in layout ---------------------------------------------------------------------------


def _builtin_svg(view: _View) -> str:
    graph = view.graph
    dag = layered.graph_dag(graph)
    sizes = {layered.node_key(i): (_node_width(n), NODE_HEIGHT) for i, n in enumerate(graph.nodes)}
    for key in dag.vertices:
        if not key.startswith("node:"):
            sizes[key] = (_text_width(_short(key.split(":", 1)[1]), 6.6) + 28, TERMINAL_HEIGHT)
    drawing = layered.layered_layout(dag, sizes)
    width, height = drawing.width, drawing.height + LABEL_PAD
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" class="graph" width="{width:.0f}" '
           f'height="{height:.0f}" viewBox="0 {-LABEL_PAD:.0f} {width:.0f} {height:.0f}">',
           _SVG_DEFS]
    out += _bands(view, drawing)
    part_of_key = {layered.node_key(i): view.partition_of[n.name].name
                   for i, n in enumerate(graph.nodes)}
    for route in drawing.routes:
        crossing = part_of_key.get(route.source) != part_of_key.get(route.target)
        classes = "edge boundary" if crossing else "edge"
        title = "\n".join(view.value_text(v) for v in route.values)
        out.append(f'<path class="{classes}" d="{_curve(route.points)}" fill="none" '
                   f'stroke="#8b949e" marker-end="url(#arrow)"><title>{_esc(title)}</title></path>')
    for i, node in enumerate(graph.nodes):
        place = drawing.placements[layered.node_key(i)]
        colour = view.node_colour(node)
        ink = _ink_for(colour)
        out.append(
            f'<g id="node-{i}" class="{view.node_classes(node)}" '
            f'data-node="{_esc(node.name)}"><title>{_esc(view.node_title(node))}</title>'
            f'<rect x="{place.left:.1f}" y="{place.top:.1f}" width="{place.width:.1f}" '
            f'height="{place.height:.1f}" rx="6" fill="{colour}"/>'
            f'<text x="{place.x:.1f}" y="{place.y - 3:.1f}" class="op" fill="{ink}">'
            f'{_esc(_short(node.op_type))}</text>'
            f'<text x="{place.x:.1f}" y="{place.y + 12:.1f}" class="name" fill="{ink}">'
            f'{_esc(_short(node.name))}</text></g>')
    for key, place in drawing.placements.items():
        if key.startswith("node:"):
            continue
        role, value = key.split(":", 1)
        title = f"graph {role} {view.value_text(value)}"
        out.append(
            f'<g class="terminal {role}"><title>{_esc(title)}</title>'
            f'<ellipse cx="{place.x:.1f}" cy="{place.y:.1f}" rx="{place.width / 2:.1f}" '
            f'ry="{place.height / 2:.1f}"/><text x="{place.x:.1f}" y="{place.y + 4:.1f}">'
            f'{_esc(_short(value))}</text></g>')
    out.append("</svg>")
    return "\n".join(out)


def _bands(view: _View, drawing: layered.Layout) -> list[str]:
    """A tinted band behind each partition: one rectangle per run of its nodes in a row,
    stretched down to the next row where the partition continues below, and its name."""
    part_of = {layered.node_key(i): view.partition_of[n.name]
               for i, n in enumerate(view.graph.nodes)}
    runs: dict[str, list[list[layered.Placement]]] = {}
    for row in drawing.layers:
        current: list[layered.Placement] = []
        current_part = None
        for key in row + [""]:
            part = part_of.get(key)
            if current and (part is None or part.name != current_part):
                runs.setdefault(current_part, []).append(current)
                current = []
            if part is not None:
                current_part = part.name
                current.append(drawing.placements[key])
    out = []
    for partition in view.plan.partitions:
        colour = view.colours[partition.plugin]
        part_runs = runs.get(partition.name, [])
        for k, run in enumerate(part_runs):
            left = min(p.left for p in run) - BAND_PAD
            right = max(p.right for p in run) + BAND_PAD
            top = min(p.top for p in run) - (LABEL_PAD if k == 0 else BAND_PAD)
            bottom = max(p.bottom for p in run) + BAND_PAD
            below = [q for other in part_runs for q in other
                     if q.layer == run[0].layer + 1 and q.right > left and q.left < right]
            if below:
                bottom = min(q.top for q in below) - BAND_PAD
            out.append(f'<rect class="band part-{view.part_index[partition.name]}" '
                       f'x="{left:.1f}" y="{top:.1f}" width="{right - left:.1f}" '
                       f'height="{bottom - top:.1f}" rx="10" fill="{colour}" fill-opacity="0.13" '
                       f'stroke="{colour}" stroke-opacity="0.55"/>')
            if k == 0:
                out.append(f'<text class="band-label" x="{left + 6:.1f}" y="{top + 11:.1f}" '
                           f'fill="{_darker(colour)}">{_esc(partition.name)}</text>')
    return out


def _curve(points: tuple[tuple[float, float], ...]) -> str:
    (x, y), parts = points[0], [f"M{points[0][0]:.1f},{points[0][1]:.1f}"]
    for nx, ny in points[1:]:
        mid = (y + ny) / 2
        parts.append(f"C{x:.1f},{mid:.1f} {nx:.1f},{mid:.1f} {nx:.1f},{ny:.1f}")
        x, y = nx, ny
    return " ".join(parts)


def _node_width(node: Node) -> float:
    return max(64.0, _text_width(_short(node.op_type), 7.4),
               _text_width(_short(node.name), 6.4)) + 20


def _text_width(text: str, char_width: float) -> float:
    return len(text) * char_width


def _short(text: str) -> str:
    """A label that fits a box: long names keep their start and, mostly, their end."""
    if len(text) <= MAX_LABEL_CHARS:
        return text
    return text[:12] + "…" + text[-(MAX_LABEL_CHARS - 13):]


# -- Graphviz ------------------------------------------------------------------------------------


def _graphviz_svg(view: _View) -> str | None:
    """The graph drawn by ``dot -Tsvg``, with the titles replaced by explanations; None when
    dot fails in any way (the caller then uses the built-in layout)."""
    dot_text, titles = _dot_source(view)
    try:
        result = subprocess.run(["dot", "-Tsvg"], input=dot_text.encode("utf-8"),
                                capture_output=True, timeout=DOT_TIMEOUT_SECONDS, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    text = result.stdout.decode("utf-8", errors="replace")
    start = text.find("<svg")
    if result.returncode != 0 or start < 0 or "</svg>" not in text:
        return None

    def retitle(match: re.Match) -> str:
        replacement = titles.get(html.unescape(match.group(1)))
        return match.group(0) if replacement is None else f"<title>{_esc(replacement)}</title>"

    svg = re.sub(r"<title>([^<]*)</title>", retitle, text[start:])
    return svg.replace("<svg", '<svg class="graph"', 1)


def _dot_source(view: _View) -> tuple[str, dict[str, str]]:
    """DOT text for the graph, and the title to put on each dot id."""
    graph = view.graph
    dag = layered.graph_dag(graph)
    dot_id = {key: f"v{i}" for i, key in enumerate(dag.vertices)}
    titles: dict[str, str] = {}
    lines = ['digraph byoc {',
             '  graph [rankdir=TB, nodesep=0.3, ranksep=0.45, bgcolor="transparent", '
             'fontname="Helvetica", fontsize=10];',
             '  node [shape=box, style="rounded,filled", penwidth=0, fontname="Helvetica", '
             'fontsize=11, margin="0.12,0.05"];',
             '  edge [color="#8b949e", arrowsize=0.7];']
    members: dict[str, list[int]] = {}
    for i, node in enumerate(graph.nodes):
        members.setdefault(view.partition_of[node.name].name, []).append(i)
    for k, partition in enumerate(view.plan.partitions):
        colour = view.colours[partition.plugin]
        titles[f"cluster_{k}"] = f"partition {partition.name} ({partition.plugin})"
        lines.append(f'  subgraph cluster_{k} {{ id="band-{k}"; class="band part-{k}"; '
                     f'style="rounded,filled"; color="{colour}"; fillcolor="{colour}26"; '
                     f'fontcolor="{_darker(colour)}"; label=<{_esc_dot_html(partition.name)}>;')
        for i in members.get(partition.name, []):
            node = graph.nodes[i]
            key = dot_id[layered.node_key(i)]
            titles[key] = view.node_title(node)
            label = (f'<<B>{_esc_dot_html(_short(node.op_type))}</B><BR/>'
                     f'<FONT POINT-SIZE="9">{_esc_dot_html(_short(node.name))}</FONT>>')
            lines.append(f'    {key} [id="node-{i}", class="{view.node_classes(node)}", '
                         f'label={label}, fillcolor="{view.node_colour(node)}", '
                         f'fontcolor="{_ink_for(view.node_colour(node))}"];')
        lines.append("  }")
    for key in dag.vertices:
        if key.startswith("node:"):
            continue
        role, value = key.split(":", 1)
        titles[dot_id[key]] = f"graph {role} {view.value_text(value)}"
        lines.append(f'  {dot_id[key]} [class="terminal {role}", shape=ellipse, style=filled, '
                     f'fillcolor="#eef1f4", fontsize=10, label=<{_esc_dot_html(_short(value))}>];')
    for (source, target), values in dag.edges.items():
        titles[f"{dot_id[source]}->{dot_id[target]}"] = "\n".join(
            view.value_text(v) for v in values)
        lines.append(f"  {dot_id[source]} -> {dot_id[target]};")
    lines.append("}")
    return "\n".join(lines), titles


def _esc_dot_html(text: str) -> str:
    return html.escape(text, quote=False)


# -- the page ----------------------------------------------------------------------------------


def _page(view: _View, title: str, summary: dict, svg: str, engine: str,
          layouts: LayoutPlan | None) -> str:
    graph, plan = view.graph, view.plan
    node_counts = Counter(p.plugin for p in plan.partitions for _ in p.nodes)
    part_counts = Counter(p.plugin for p in plan.partitions)
    legend = "".join(
        f'<li><span class="swatch" style="background:{colour}"></span>{_esc(plugin)}'
        f'{" (host)" if plugin == view.host else ""}'
        f'<span class="muted"> · {node_counts[plugin]} nodes, {part_counts[plugin]} '
        f'partitions</span></li>'
        for plugin, colour in view.colours.items())
    facts = {"model": graph.name, "nodes": len(graph.nodes),
             "partitions": len(plan.partitions), **summary}
    fact_rows = "".join(f"<tr><th>{_esc(str(k))}</th><td>{_esc(_plain(v))}</td></tr>"
                        for k, v in facts.items())
    return _PAGE.format(
        title=_esc(title), model=_esc(graph.name), facts=fact_rows, legend=legend,
        partitions="".join(_partition_row(view, p) for p in plan.partitions),
        layouts=_layout_section(layouts), svg=svg, data=_script_json(_node_data(view)),
        engine=_esc(engine), version=_esc(byoc.__version__), style=_static_text("report.css"),
        script=_static_text("report.js"))


def _layout_section(layouts: LayoutPlan | None) -> str:
    """The layout conversions at partition boundaries, and the values that cross in a
    plugin's layout with none (back-to-back conversions cancelled)."""
    if layouts is None or not (layouts.conversions or layouts.kept):
        return ""
    rows = "".join(
        f"<tr><td><code>{_esc(c.value)}</code></td><td>{_esc(c.producer)}</td>"
        f"<td>{_esc(', '.join(c.consumers))}</td><td>{_esc(c.source)} → {_esc(c.target)}</td>"
        f"</tr>" for c in layouts.conversions)
    rows += "".join(
        f"<tr><td><code>{_esc(c.value)}</code></td><td>{_esc(c.producer)}</td>"
        f"<td>{_esc(', '.join(c.consumers))}</td><td>stays {_esc(c.source)} "
        f"<span class='muted'>(conversions cancel)</span></td></tr>" for c in layouts.kept)
    return ("<h2>Layout conversions</h2><table class=\"parts\"><thead><tr><th>value</th>"
            "<th>from</th><th>to</th><th>layout</th></tr></thead>"
            f"<tbody>{rows}</tbody></table>")


def _partition_row(view: _View, partition: Partition) -> str:
    colour = view.colours[partition.plugin]
    ops = ", ".join(f"{op} ×{n}" for op, n in Counter(n.op_type for n in partition.nodes).items())

    def values(names: list[str]) -> str:
        return "<br>".join(f"<code>{_esc(v)}</code> <span class='muted'>"
                           f"{_esc(str(partition.types[v]) if v in partition.types else '?')}"
                           f"</span>" for v in names) or "<span class='muted'>—</span>"

    return (f'<tr data-part="part-{view.part_index[partition.name]}">'
            f'<td>{_esc(partition.name)}</td>'
            f'<td><span class="swatch" style="background:{colour}"></span>'
            f'{_esc(partition.plugin)}</td><td class="num">{len(partition.nodes)}</td>'
            f'<td>{_esc(ops)}</td><td>{values(partition.inputs)}</td>'
            f'<td>{values(partition.outputs)}</td></tr>')


def _node_data(view: _View) -> dict[str, Any]:
    data = {}
    for i, node in enumerate(view.graph.nodes):
        explanation = view.explanations[node.name]
        partition = view.partition_of[node.name]
        data[f"node-{i}"] = {
            "node": node.name, "op": node.op_type, "plugin": explanation.plugin,
            "colour": view.colours[explanation.plugin], "pattern": explanation.pattern,
            "partition": partition.name,
            "inputs": [view.value_text(v) for v in node.present_inputs],
            "outputs": [view.value_text(v) for v in node.outputs if v],
            "reasons": explanation.reasons,
        }
    return data


def _script_json(data: Any) -> str:
    """JSON safe inside a <script> element: no <, > or & survives as such."""
    return (json.dumps(data, ensure_ascii=False).replace("<", "\\u003c")
            .replace(">", "\\u003e").replace("&", "\\u0026"))


def _static_text(name: str) -> str:
    """A file of the page's stylesheet or script, shipped as package data in ``static/``."""
    return resources.files("byoc.report").joinpath("static", name).read_text(encoding="utf-8")


def _plain(value: Any) -> str:
    if isinstance(value, (list, tuple, set)):
        return ", ".join(str(v) for v in value)
    return str(value)


def _esc(text: str) -> str:
    return html.escape(text, quote=True)


def _ink_for(colour: str) -> str:
    """Dark or white text, whichever contrasts more with ``colour`` (WCAG luminance)."""
    def channel(c: int) -> float:
        c = c / 255
        return c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4

    r, g, b = (int(colour[i:i + 2], 16) for i in (1, 3, 5))
    lum = 0.2126 * channel(r) + 0.7152 * channel(g) + 0.0722 * channel(b)
    return "#ffffff" if 1.05 / (lum + 0.05) > (lum + 0.05) / 0.0616 else "#1f2328"


def _darker(colour: str) -> str:
    r, g, b = (int(colour[i:i + 2], 16) * 0.6 for i in (1, 3, 5))
    return f"#{int(r):02x}{int(g):02x}{int(b):02x}"


_SVG_DEFS = ('<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" '
             'markerHeight="7" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" '
             'fill="#8b949e"/></marker></defs>')

_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>
{style}</style>
</head>
<body>
<header>
<h1>{title}</h1>
<div class="muted">Partition plan of model <strong>{model}</strong></div>
<table class="facts">{facts}</table>
<h2>Plugins</h2>
<ul class="legend">{legend}</ul>
<h2>Partitions</h2>
<table class="parts">
<thead><tr><th>partition</th><th>plugin</th><th>nodes</th><th>ops</th><th>inputs</th>
<th>outputs</th></tr></thead>
<tbody>{partitions}</tbody>
</table>
{layouts}
</header>
<main>
<div id="canvas">
{svg}
</div>
<aside id="panel"><h2>Node details</h2>
<p class="muted">Hover a node for its explanation; click it to show it here.</p></aside>
</main>
<footer>Made by byoc {version} · layout: {engine}</footer>
<script type="application/json" id="node-data">{data}</script>
<script>
{script}</script>
</body>
</html>
"""
