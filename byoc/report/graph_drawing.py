"""A built-in layered (Sugiyama-style) layout for drawing a graph top to bottom.

Used when Graphviz is not installed. The steps, in order:

1. **Vertices.** :func:`graph_dag` turns a :class:`~byoc.core.ir.Graph` into a DAG whose
   vertices are the graph's (non-constant) inputs, its nodes and its outputs, with an edge
   wherever a value flows (constants are weights, not drawn).
2. **Layers.** Longest path from the inputs: a vertex sits one layer below its lowest
   predecessor. A node that reads only constants is pulled down to just above its first
   consumer, so it does not float at the top with a long edge.
3. **Dummies.** An edge spanning several layers gets one small dummy vertex per layer it
   crosses, so it is routed around the boxes instead of through them.
4. **Order.** Layers start in graph order; barycenter sweeps (down, then up) reorder each layer
   by the mean position of its neighbours in the layer before, keeping the ordering with the
   fewest edge crossings seen.
5. **Coordinates.** Rows are stacked with a fixed gap. In each row, boxes are placed at the
   mean x of their neighbours, pushed right to keep them apart, then the row is shifted so
   the boxes sit on average where they want to be; a few down and up passes straighten
   chains.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from byoc.core.ir import Graph

ROW_GAP = 36.0
COLUMN_GAP = 28.0
DUMMY_GAP = 10.0
DUMMY_WIDTH = 6.0
MARGIN = 24.0
ORDER_SWEEPS = 4
PLACEMENT_PASSES = 4


def node_key(index: int) -> str:
    """The vertex key of the graph's node at ``index``."""
    return f"node:{index}"


def input_key(value: str) -> str:
    return f"input:{value}"


def output_key(value: str) -> str:
    return f"output:{value}"


@dataclass
class Dag:
    """Vertices in a topological order and the edges between them, each edge with the names
    of the values it carries."""

    vertices: list[str]
    edges: dict[tuple[str, str], list[str]] = field(default_factory=dict)


@dataclass(frozen=True)
class Placement:
    """Where a vertex is drawn: its centre, size and layer (0 at the top)."""

    x: float
    y: float
    width: float
    height: float
    layer: int

    @property
    def top(self) -> float:
        return self.y - self.height / 2

    @property
    def bottom(self) -> float:
        return self.y + self.height / 2

    @property
    def left(self) -> float:
        return self.x - self.width / 2

    @property
    def right(self) -> float:
        return self.x + self.width / 2


@dataclass(frozen=True)
class Route:
    """An edge as drawn: from the bottom of ``source`` through its dummies to the top of
    ``target``."""

    source: str
    target: str
    values: tuple[str, ...]
    points: tuple[tuple[float, float], ...]


@dataclass
class Layout:
    """Placed vertices (dummies excluded), routed edges, the rows in left-to-right order
    (real vertices only) and the drawing's size."""

    placements: dict[str, Placement]
    routes: list[Route]
    layers: list[list[str]]
    width: float
    height: float


def graph_dag(graph: Graph) -> Dag:
    """The drawable DAG of ``graph``: graph inputs, nodes and graph outputs, with value edges."""
    constants = set(graph.constants)
    vertices = [input_key(v) for v in dict.fromkeys(graph.inputs) if v not in constants]
    source_of = {v: input_key(v) for v in graph.inputs if v not in constants}
    edges: dict[tuple[str, str], list[str]] = {}
    for i, node in enumerate(graph.nodes):
        key = node_key(i)
        vertices.append(key)
        for value in dict.fromkeys(node.present_inputs):
            if value in source_of:
                edges.setdefault((source_of[value], key), []).append(value)
        for value in node.outputs:
            if value:
                source_of[value] = key
    for value in dict.fromkeys(graph.outputs):
        vertices.append(output_key(value))
        if value in source_of:
            edges.setdefault((source_of[value], output_key(value)), []).append(value)
    return Dag(vertices, edges)


def layered_layout(dag: Dag, sizes: dict[str, tuple[float, float]]) -> Layout:
    """Lay ``dag`` out top to bottom; ``sizes`` gives each vertex's (width, height)."""
    layer = _assign_layers(dag)
    preds, succs, sizes, layer, chains = _insert_dummies(dag, layer, sizes)
    rows = _order_rows(dag.vertices, layer, preds, succs)
    x, y, width, height = _coordinates(rows, preds, succs, sizes)
    real = set(dag.vertices)
    placements = {v: Placement(x[v], y[v], sizes[v][0], sizes[v][1], layer[v])
                  for v in dag.vertices}
    routes = []
    for (source, target), values in dag.edges.items():
        start = (x[source], placements[source].bottom)
        end = (x[target], placements[target].top)
        middle = tuple((x[d], y[d]) for d in chains[(source, target)])
        routes.append(Route(source, target, tuple(values), (start, *middle, end)))
    layers = [[v for v in row if v in real] for row in rows]
    return Layout(placements, routes, layers, width, height)


def _assign_layers(dag: Dag) -> dict[str, int]:
    preds: dict[str, list[str]] = {v: [] for v in dag.vertices}
    succs: dict[str, list[str]] = {v: [] for v in dag.vertices}
    for source, target in dag.edges:
        preds[target].append(source)
        succs[source].append(target)
    layer: dict[str, int] = {}
    for vertex in dag.vertices:
        layer[vertex] = 1 + max((layer[p] for p in preds[vertex]), default=-1)
    for vertex in reversed(dag.vertices):
        if vertex.startswith("node:") and not preds[vertex] and succs[vertex]:
            layer[vertex] = min(layer[s] for s in succs[vertex]) - 1
    return layer


def _insert_dummies(dag: Dag, layer: dict[str, int], sizes: dict[str, tuple[float, float]]):
    """Split long edges; returns the split graph's neighbours, sizes, layers and, per
    original edge, its dummy chain."""
    layer = dict(layer)
    sizes = dict(sizes)
    preds: dict[str, list[str]] = {v: [] for v in dag.vertices}
    succs: dict[str, list[str]] = {v: [] for v in dag.vertices}
    chains: dict[tuple[str, str], list[str]] = {}
    for source, target in dag.edges:
        chain = []
        previous = source
        for k in range(layer[source] + 1, layer[target]):
            dummy = f"~{source}->{target}#{k}"
            layer[dummy] = k
            sizes[dummy] = (DUMMY_WIDTH, 0.0)
            preds[dummy], succs[dummy] = [], []
            succs[previous].append(dummy)
            preds[dummy].append(previous)
            chain.append(dummy)
            previous = dummy
        succs[previous].append(target)
        preds[target].append(previous)
        chains[(source, target)] = chain
    return preds, succs, sizes, layer, chains


def _order_rows(vertices: list[str], layer: dict[str, int], preds: dict[str, list[str]],
                succs: dict[str, list[str]]) -> list[list[str]]:
    rank = {v: i for i, v in enumerate(vertices)}
    rows: list[list[str]] = [[] for _ in range(max(layer.values(), default=-1) + 1)]
    for vertex in vertices:
        rows[layer[vertex]].append(vertex)
    # dummies first appear right after the vertex their chain starts from
    for i in range(1, len(rows)):
        position = {v: p for p, v in enumerate(rows[i - 1])}
        dummies = [v for v in layer if v.startswith("~") and layer[v] == i]
        rows[i] = _sort_by_barycenter(rows[i] + dummies, preds, position, rank)
    best, best_crossings = [list(r) for r in rows], _crossings(rows, succs)
    for _ in range(ORDER_SWEEPS):
        for i in range(1, len(rows)):
            position = {v: p for p, v in enumerate(rows[i - 1])}
            rows[i] = _sort_by_barycenter(rows[i], preds, position, rank)
        for i in range(len(rows) - 2, -1, -1):
            position = {v: p for p, v in enumerate(rows[i + 1])}
            rows[i] = _sort_by_barycenter(rows[i], succs, position, rank)
        crossings = _crossings(rows, succs)
        if crossings < best_crossings:
            best, best_crossings = [list(r) for r in rows], crossings
    return best


def _sort_by_barycenter(row: list[str], neighbours: dict[str, list[str]],
                        position: dict[str, int], rank: dict[str, int]) -> list[str]:
    current = {v: p for p, v in enumerate(row)}

    def key(vertex: str) -> tuple[float, int, int]:
        around = [position[n] for n in neighbours[vertex] if n in position]
        center = sum(around) / len(around) if around else float(current[vertex])
        return center, current[vertex], rank.get(vertex, len(rank))

    return sorted(row, key=key)


def _crossings(rows: list[list[str]], succs: dict[str, list[str]]) -> int:
    total = 0
    for upper, lower in zip(rows, rows[1:]):
        below = {v: p for p, v in enumerate(lower)}
        pairs = sorted((p, below[s]) for p, v in enumerate(upper) for s in succs[v]
                       if s in below)
        total += sum(1 for i, (a1, b1) in enumerate(pairs) for a2, b2 in pairs[i + 1:]
                     if a1 < a2 and b1 > b2)
    return total


def _coordinates(rows: list[list[str]], preds: dict[str, list[str]],
                 succs: dict[str, list[str]], sizes: dict[str, tuple[float, float]]):
    y: dict[str, float] = {}
    top = MARGIN
    for row in rows:
        row_height = max((sizes[v][1] for v in row), default=0.0)
        for vertex in row:
            y[vertex] = top + row_height / 2
        top += row_height + ROW_GAP

    x: dict[str, float] = {}
    for row in rows:
        _place_row(row, {}, sizes, x)
    for _ in range(PLACEMENT_PASSES):
        for row in rows[1:]:
            _place_row(row, preds, sizes, x)
        for row in reversed(rows[:-1]):
            _place_row(row, succs, sizes, x)
    left = min((x[v] - sizes[v][0] / 2 for v in x), default=0.0)
    for vertex in x:
        x[vertex] += MARGIN - left
    width = max((x[v] + sizes[v][0] / 2 for v in x), default=0.0) + MARGIN
    height = top - ROW_GAP + MARGIN if rows else 2 * MARGIN
    return x, y, width, height


def _place_row(row: list[str], neighbours: dict[str, list[str]],
               sizes: dict[str, tuple[float, float]], x: dict[str, float]) -> None:
    """Put each vertex of ``row`` at the mean x of its placed neighbours, keeping order and
    spacing, then shift the row so the displacement averages out."""
    desired = []
    for vertex in row:
        around = [x[n] for n in neighbours.get(vertex, []) if n in x]
        desired.append(sum(around) / len(around) if around else x.get(vertex))
    placed: list[float] = []
    for i, vertex in enumerate(row):
        want = desired[i]
        if i == 0:
            placed.append(want if want is not None else 0.0)
            continue
        previous = row[i - 1]
        gap = DUMMY_GAP if previous.startswith("~") or vertex.startswith("~") else COLUMN_GAP
        least = placed[-1] + (sizes[previous][0] + sizes[vertex][0]) / 2 + gap
        placed.append(max(want, least) if want is not None else least)
    shifts = [d - p for d, p in zip(desired, placed) if d is not None]
    shift = sum(shifts) / len(shifts) if shifts else 0.0
    for vertex, position in zip(row, placed):
        x[vertex] = position + shift
