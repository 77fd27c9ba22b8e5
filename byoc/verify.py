"""Checking a compiled model against the reference interpreter, and finding where it first
goes wrong (``byoc verify``).

**Partition by partition.** Each partition runs on its plugin with the **reference
interpreter's values as its inputs**, so an error made upstream does not spread downstream: a
partition is judged on what it computes itself. Its outputs are compared with the reference's
values of the same tensors (converted back to the graph's layout first), and so are the
model's outputs end to end. Per output, and per partition the worst of its outputs:

- ``max_abs_err``: the largest absolute difference;
- ``steps``: for an integer (quantized) output, the same in quantization steps (one step is
  one unit of the integer), else None;
- ``snr_db``: ``10 log10(sum(ref^2) / sum(err^2))``, infinite when nothing differs;
- ``cosine``: the cosine similarity of the two as vectors (1.0 when both are zero).

Tolerances (:class:`Tolerance`): a float output passes when ``max_abs_err <= atol + rtol *
max|ref|`` (defaults ``rtol=1e-4``, ``atol=0``: 1e-4 relative to the largest reference
magnitude); an integer output when it is off by at most ``max_lsb`` steps (default 1).

**First divergence.** The first failing partition in topological order is narrowed down to
the smallest piece that fails on its own: its pattern matches (and the nodes a host took
without a pattern) are recompiled, on the same plugin with the same options, in halves, then
quarters..., each half fed the reference's values, down to a single match. Inside that match
the plugin is asked for the match's inner values (the *debug request*,
:attr:`byoc.plugins.api.Partition.debug_outputs`); those it returns are compared with the
reference's values of the same nodes (evaluated in float as the graph writes them, since the
reference computes a quantized layer as a whole in integers). The node named is the first whose
own output is seen to be wrong; ``nodes`` lists it with the unobserved nodes before it back to
the last output seen right (a plugin that honours no debug request gets the match's output node
named, and the whole match listed). For a runtime that can check its device model against a
golden model (vta_sim on the RTL), the failing partition is also run on both to name the first
instruction whose effect differs (:func:`byoc.plugins.api.runtime_device_difference`).
"""

from __future__ import annotations

import math
import os
import sys
import tempfile
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np

from byoc.compiled import CompiledModel, CompiledPartition, run_partition
from byoc.core.interpreter.runner import Interpreter
from byoc.core.ir import Graph, Node
from byoc.errors import ByocError, InputError
from byoc.layouts import GRAPH_LAYOUT, LayoutEnv, convert
from byoc.partition.partitioner import make_partition
from byoc.plugins.api import DeviceDifference, Partition, runtime_device_difference

# JSON has no infinity: an infinite figure (an exact match's SNR) is written as the largest
# double, which compares like infinity in every script that reads it.
JSON_INFINITY = sys.float_info.max


@dataclass(frozen=True)
class Tolerance:
    """How far an output may be from the reference (see the module docstring)."""

    rtol: float = 1e-4
    atol: float = 0.0
    max_lsb: int = 1

    def __post_init__(self) -> None:
        for name in ("rtol", "atol", "max_lsb"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) \
                    or not math.isfinite(value) or value < 0:
                raise InputError(f"tolerance {name} must be a finite number >= 0, not {value!r}")
        if self.max_lsb != int(self.max_lsb):
            raise InputError(f"tolerance max_lsb counts whole quantization steps, not "
                             f"{self.max_lsb!r}")


@dataclass
class OutputCheck:
    """One output compared with the reference."""

    value: str
    max_abs_err: float
    steps: int | None
    snr_db: float
    cosine: float
    ok: bool
    problem: str = ""   # set when the output could not be compared (shape, dtype, missing)


@dataclass
class PartitionCheck:
    """One partition run on the reference's inputs; ``error`` when its runtime failed."""

    name: str
    plugin: str
    nodes: list[str]
    outputs: list[OutputCheck] = field(default_factory=list)
    error: str = ""

    @property
    def ok(self) -> bool:
        return not self.error and all(o.ok for o in self.outputs)

    @property
    def max_abs_err(self) -> float:
        if self.error:
            return math.inf
        return max((o.max_abs_err for o in self.outputs), default=0.0)

    @property
    def steps(self) -> int | None:
        steps = [o.steps for o in self.outputs if o.steps is not None]
        return max(steps) if steps else None

    @property
    def snr_db(self) -> float:
        if self.error:
            return -math.inf
        return min((o.snr_db for o in self.outputs), default=math.inf)

    @property
    def cosine(self) -> float:
        if self.error:
            return 0.0
        return min((o.cosine for o in self.outputs), default=1.0)


@dataclass
class Divergence:
    """Where the first failing partition first goes wrong (see the module docstring).

    ``node`` is the first node seen to output a wrong value, ``nodes`` the failing piece (that
    node and the unobserved ones before it), ``pattern`` the pattern of the match holding it
    ("" for a node a host took without one), ``detail`` what was wrong, ``device`` where the
    device model first departed from its golden model (vta_sim on the RTL), and
    ``narrowed`` how the piece was found."""

    partition: str
    plugin: str
    pattern: str
    node: str
    op_type: str
    nodes: list[str]
    detail: str = ""
    device: DeviceDifference | None = None
    narrowed: list[str] = field(default_factory=list)


@dataclass
class Verification:
    """Every partition checked, in the compiled model's order, the model's outputs end to end,
    and the first divergence (None when every partition passes)."""

    partitions: list[PartitionCheck]
    outputs: list[OutputCheck]
    tolerance: Tolerance = field(default_factory=Tolerance)
    first_divergence: Divergence | None = None
    inputs: str = ""        # where the inputs came from ("seed 0", "3 bundled vectors", files)

    @property
    def outputs_ok(self) -> bool:
        return all(o.ok for o in self.outputs)

    @property
    def ok(self) -> bool:
        return self.outputs_ok and all(p.ok for p in self.partitions)

    @property
    def first_failure(self) -> PartitionCheck | None:
        """The first failing partition in topological order."""
        return next((p for p in self.partitions if not p.ok), None)

    def to_json(self) -> dict[str, Any]:
        """The fixed schema of ``byoc verify --json``: {"ok", "outputs_ok", "partitions":
        [{"name", "plugin", "nodes", "max_abs_err", "snr_db", "ok"}], "first_divergence": null
        or {"partition", "plugin", "pattern", "node", "op_type", "nodes"}}; infinite figures
        as :data:`JSON_INFINITY`."""
        divergence = self.first_divergence
        return {
            "ok": self.ok,
            "outputs_ok": self.outputs_ok,
            "partitions": [{"name": p.name, "plugin": p.plugin, "nodes": list(p.nodes),
                            "max_abs_err": _finite(p.max_abs_err), "snr_db": _finite(p.snr_db),
                            "ok": p.ok} for p in self.partitions],
            "first_divergence": None if divergence is None else {
                "partition": divergence.partition, "plugin": divergence.plugin,
                "pattern": divergence.pattern, "node": divergence.node,
                "op_type": divergence.op_type, "nodes": list(divergence.nodes)},
        }


def _finite(value: float) -> float:
    if math.isnan(value):
        return JSON_INFINITY
    return max(-JSON_INFINITY, min(JSON_INFINITY, float(value)))


# -- comparing --------------------------------------------------------------------------------


def compare(value: str, got: np.ndarray, want: np.ndarray, tolerance: Tolerance) -> OutputCheck:
    """``got`` against the reference ``want`` (see the module docstring)."""
    got, want = np.asarray(got), np.asarray(want)
    if got.shape != want.shape:
        return OutputCheck(value, math.inf, None, -math.inf, 0.0, False,
                           f"shape {got.shape}, the reference's {want.shape}")
    if got.dtype != want.dtype:
        return OutputCheck(value, math.inf, None, -math.inf, 0.0, False,
                           f"dtype {got.dtype}, the reference's {want.dtype}")
    ref, ours = want.astype(np.float64), got.astype(np.float64)
    finite = np.isfinite(ref)
    with np.errstate(invalid="ignore"):     # inf - inf: equal specials are no error
        err = ours - ref
    same_special = (ours == ref) | (np.isnan(ref) & np.isnan(ours))
    err = np.where(same_special & ~finite, 0.0, err)
    max_abs = float(np.max(np.abs(err))) if err.size else 0.0
    if math.isnan(max_abs):
        max_abs = math.inf
    signal, noise = float(np.sum(ref[finite] ** 2)), float(np.sum(err ** 2))
    snr = math.inf if noise == 0 else (-math.inf if signal == 0 or not math.isfinite(noise)
                                       else 10 * math.log10(signal / noise))
    cosine = _cosine(ours.ravel(), ref.ravel())
    if np.issubdtype(want.dtype, np.integer) or want.dtype == np.bool_:
        steps = int(max_abs) if math.isfinite(max_abs) else None
        ok = steps is not None and steps <= tolerance.max_lsb
    else:
        steps = None
        scale = float(np.max(np.abs(ref[finite]))) if finite.any() else 0.0
        ok = max_abs <= tolerance.atol + tolerance.rtol * scale
    return OutputCheck(value, max_abs, steps, snr, cosine, ok)


def _cosine(a: np.ndarray, b: np.ndarray) -> float:
    keep = np.isfinite(a) & np.isfinite(b)
    a, b = a[keep], b[keep]
    norms = float(np.linalg.norm(a) * np.linalg.norm(b))
    if norms == 0:
        return 1.0 if not a.any() and not b.any() else 0.0
    return float(np.dot(a, b) / norms)


# -- checking a compiled model ----------------------------------------------------------------


class _Reference:
    """The reference's values of one set of inputs: the interpreter's (quantized layers in
    integers), and, when first asked, every value in float as the graph writes it."""

    def __init__(self, graph: Graph | None, values: Mapping[str, np.ndarray],
                 inputs: Mapping[str, np.ndarray]) -> None:
        self.graph, self.values, self.inputs = graph, values, inputs
        self._floats: Mapping[str, np.ndarray] | None = None

    def get(self, name: str) -> np.ndarray | None:
        if name in self.values:
            return self.values[name]
        if self.graph is None:
            return None
        if self._floats is None:
            self._floats = Interpreter(self.graph, integer_groups=False).values(self.inputs)
        return self._floats.get(name)


def verify_compiled(model: CompiledModel, inputs: Mapping[str, np.ndarray] | None = None,
                    tolerance: Tolerance | None = None, *, narrow: bool = True,
                    waveforms: str | None = None, seed: int = 0) -> Verification:
    """Check every partition of ``model`` on ``inputs``, and its outputs end to end; find the
    first divergence (``narrow``; see the module docstring). Waveforms of a device model that
    departs from its golden model go under ``waveforms`` (a new temporary folder when None).

    A model compiled in this process is checked on ``inputs`` (random ones drawn with
    ``seed`` when None). A loaded artifact keeps no graph: it is checked on the reference
    vectors it bundles (``byoc compile --with-vectors N``), and its first failing partition
    is named but not narrowed (that needs the ONNX model's graph)."""
    tolerance = tolerance or Tolerance()
    if model.graph is None:
        return _verify_artifact(model, inputs, tolerance)
    source = "given inputs"
    if inputs is None:
        from byoc.inputs import random_inputs

        inputs, source = random_inputs(model.inputs, seed), f"random inputs, seed {seed}"
    reference = _Reference(model.graph, Interpreter(model.graph).values(inputs), inputs)
    checks = [_check_partition(part, reference, tolerance) for part in model.parts]
    outputs = _check_outputs(model, inputs, reference.values, tolerance)
    found = Verification(checks, outputs, tolerance, inputs=source)
    failing = found.first_failure
    if failing is not None and narrow:
        found.first_divergence = _diverge(model, failing, reference, tolerance, waveforms)
    return found


def _verify_artifact(model: CompiledModel, inputs: Mapping[str, np.ndarray] | None,
                     tolerance: Tolerance) -> Verification:
    vectors = getattr(model, "vectors", None)
    if inputs is not None or not vectors:
        raise InputError(f"model {model.name!r} was loaded from a .byoc artifact, which keeps no "
                         f"graph to compute reference values from"
                         + ("" if vectors else " and bundles no reference vectors")
                         + "; verify its ONNX model, or compile it with --with-vectors N to "
                           "bundle reference inputs and outputs in the artifact")
    runs = []
    for vector in vectors:
        reference = _Reference(None, vector.values, vector.inputs)
        checks = [_check_partition(part, reference, tolerance) for part in model.parts]
        try:
            got = _run_as_compiled(model, vector.inputs)
            outputs = [compare(name, got[name], vector.outputs[name], tolerance)
                       for name in model.outputs]
        except ByocError as exc:
            outputs = [OutputCheck(name, math.inf, None, -math.inf, 0.0, False,
                                   f"no value: the model's run failed: {exc}")
                       for name in model.outputs]
        runs.append((checks, outputs))
    checks = [_worst_partition([run[0][i] for run in runs]) for i in range(len(model.parts))]
    outputs = [_worst_output([run[1][i] for run in runs]) for i in range(len(runs[0][1]))]
    found = Verification(checks, outputs, tolerance,
                         inputs=f"{len(vectors)} reference vector(s) bundled in the artifact")
    failing = found.first_failure
    if failing is not None:
        part = next(p for p in model.parts if p.signature.name == failing.name)
        last = failing.nodes[-1] if failing.nodes else ""
        found.first_divergence = Divergence(
            failing.name, failing.plugin, "", last, "", list(failing.nodes),
            _what_failed(failing) + "; not narrowed further: the artifact keeps no graph to "
            "recompile pieces from (verify the ONNX model for the node)",
            _device_difference(part, _Reference(None, vectors[0].values, vectors[0].inputs),
                               None))
    return found


def _worst_partition(checks: list[PartitionCheck]) -> PartitionCheck:
    """One partition's checks over several vectors, as one: the worst of each output."""
    first = checks[0]
    error = next((c.error for c in checks if c.error), "")
    outputs = [_worst_output([c.outputs[i] for c in checks if i < len(c.outputs)])
               for i in range(max(len(c.outputs) for c in checks))]
    return PartitionCheck(first.name, first.plugin, first.nodes, outputs, error)


def _worst_output(checks: list[OutputCheck]) -> OutputCheck:
    failing = [c for c in checks if not c.ok]
    worst = max(failing or checks, key=lambda c: c.max_abs_err)
    return OutputCheck(worst.value, max(c.max_abs_err for c in checks),
                       max((c.steps for c in checks if c.steps is not None), default=None),
                       min(c.snr_db for c in checks), min(c.cosine for c in checks),
                       all(c.ok for c in checks), worst.problem)


def _check_outputs(model: CompiledModel, inputs: Mapping[str, np.ndarray],
                   values: Mapping[str, np.ndarray], tolerance: Tolerance) -> list[OutputCheck]:
    want = dict(values)
    if model.tail is not None:
        want.update(model.tail.run({name: values[name] for name in model.tail.inputs}))
    try:
        got = _run_as_compiled(model, inputs)
    except ByocError as exc:
        return [OutputCheck(name, math.inf, None, -math.inf, 0.0, False,
                            f"no value: the model's run failed: {exc}") for name in model.outputs]
    return [compare(name, got[name], want[name], tolerance) for name in model.outputs]


def _run_as_compiled(model: CompiledModel, inputs: Mapping[str, np.ndarray]
                     ) -> dict[str, np.ndarray]:
    """The model's outputs with every partition on its own plugin: a runtime that fails is
    an error here, not moved to the host (which would leave the model changed and checked
    on something else than what was compiled)."""
    strict, model.strict = model.strict, True
    try:
        return model.run(inputs)
    finally:
        model.strict = strict


def _check_partition(part: CompiledPartition, reference: _Reference, tolerance: Tolerance,
                     debug: Sequence[str] = ()) -> PartitionCheck:
    """Run ``part`` on the reference's values of its inputs and compare what it returns (its
    outputs, and those of the ``debug`` values it returns) with the reference."""
    check = PartitionCheck(part.signature.name, part.plugin, list(part.nodes or []))
    env = _feeds(part, reference)
    if isinstance(env, str):
        check.error = env
        return check
    try:
        results = run_partition(part, env, extra=debug)
    except ByocError as exc:
        check.error = str(exc)
        return check
    layouts = part.signature.layouts
    for name, array in results.items():
        layout = layouts.get(name, GRAPH_LAYOUT)
        if np.ndim(array) == 4 and layout != GRAPH_LAYOUT:
            array = convert(array, layout, GRAPH_LAYOUT)
        want = reference.get(name)
        if want is None:
            check.outputs.append(OutputCheck(name, math.inf, None, -math.inf, 0.0, False,
                                             "the reference computes no such value"))
            continue
        check.outputs.append(compare(name, array, want, tolerance))
    return check


def _feeds(part: CompiledPartition, reference: _Reference) -> LayoutEnv | str:
    env = LayoutEnv()
    missing = []
    for name in part.signature.inputs:
        value = reference.get(name)
        if value is None:
            missing.append(name)
        else:
            env.put(name, value)
    if missing:
        return (f"the reference vectors hold no value for input(s) {', '.join(missing)}; "
                f"compile the artifact again with --with-vectors")
    return env


def _what_failed(check: PartitionCheck) -> str:
    if check.error:
        return f"it failed: {check.error}"
    bad = next(o for o in check.outputs if not o.ok)
    if bad.problem:
        return f"output {bad.value!r} has {bad.problem}"
    off = (f"{bad.steps} quantization step(s)" if bad.steps is not None
           else f"{bad.max_abs_err:.4g} (max abs)")
    return f"output {bad.value!r} is off by {off}, SNR {bad.snr_db:.1f} dB"


def _device_difference(part: CompiledPartition, reference: _Reference,
                       waveforms: str | None) -> DeviceDifference | None:
    """Where ``part``'s device model departs from its golden model on the reference's inputs
    (None for a runtime that cannot tell, or when they agree)."""
    if not callable(getattr(part.runtime, "device_difference", None)):
        return None
    env = _feeds(part, reference)
    if isinstance(env, str):
        return None
    layouts = part.signature.layouts
    feeds = {name: env.get(name, layouts.get(name, GRAPH_LAYOUT))
             for name in part.signature.inputs}
    folder = waveforms or tempfile.mkdtemp(prefix="byoc-verify-")
    try:
        return runtime_device_difference(part.runtime, feeds, folder)
    except ByocError as exc:
        return DeviceDifference(-1, f"the device's own check failed: {exc}")


# -- narrowing the first failing partition ---------------------------------------------------


@dataclass
class _Piece:
    """A pattern match of a partition (or a node a host took without a pattern)."""

    nodes: list[Node]
    pattern: str


def _diverge(model: CompiledModel, failing: PartitionCheck, reference: _Reference,
             tolerance: Tolerance, waveforms: str | None) -> Divergence:
    partition = next(p for p in model.plan.partitions if p.name == failing.name)
    part = next(p for p in model.parts if p.signature.name == failing.name)
    device = _device_difference(part, reference, waveforms)
    narrower = _Narrower(model, partition, reference, tolerance)
    pieces, check, narrowed = narrower.smallest_failing(failing)
    nodes = [n for piece in pieces for n in piece.nodes]
    observed = {o.value: o for o in check.outputs}
    if len(pieces) == 1 and len(nodes) > 1 and not check.error:
        inner = narrower.inner_values(pieces[0])
        if inner is not None:
            seen = {o.value for o in check.outputs}
            honoured = [o for o in inner.outputs if o.value not in seen]
            observed.update((o.value, o) for o in honoured)
            narrowed.append(f"plugin returned {len(honoured)} inner value(s) of the match"
                            if honoured else "the plugin returned no inner value of the match")
    node, span = _first_wrong_node(sorted(nodes, key=narrower.position), observed)
    pattern = next((p.pattern for p in pieces if any(n is node for n in p.nodes)), "")
    bad = next((observed[o] for o in node.outputs if o in observed and not observed[o].ok),
               None)
    detail = _what_failed(PartitionCheck(failing.name, failing.plugin, [], [bad])) \
        if bad is not None else _what_failed(check)
    return Divergence(failing.name, failing.plugin, pattern, node.name, node.op_type,
                      [n.name for n in span], detail, device, narrowed)


def _first_wrong_node(nodes: list[Node], observed: Mapping[str, OutputCheck]
                      ) -> tuple[Node, list[Node]]:
    """The first node with an output seen wrong, and the nodes since the last output seen
    right (the last node and all of them when nothing is seen wrong, e.g. the run failed)."""
    since: list[Node] = []
    for node in nodes:
        since.append(node)
        seen = [observed[o] for o in node.outputs if o in observed]
        if any(not o.ok for o in seen):
            return node, since
        if seen:
            since = []
    return nodes[-1], since or nodes


class _Narrower:
    """Recompiles pieces of one partition and checks them on the reference's values."""

    def __init__(self, model: CompiledModel, partition: Partition, reference: _Reference,
                 tolerance: Tolerance) -> None:
        self.model, self.partition = model, partition
        self.reference, self.tolerance = reference, tolerance
        self.index = {id(n): i for i, n in enumerate(model.graph.nodes)}
        self.compiled = 0

    def position(self, node: Node) -> int:
        return self.index[id(node)]

    def pieces(self) -> list[_Piece]:
        """The partition's matches and unmatched nodes, in topological order."""
        inside = {id(n) for n in self.partition.nodes}
        pieces, claimed = [], set()
        for match in self.partition.matches:
            nodes = sorted((n for n in match.nodes if id(n) in inside and id(n) not in claimed),
                           key=self.position)
            if nodes:
                claimed.update(id(n) for n in nodes)
                pieces.append(_Piece(nodes, match.pattern))
        pieces += [_Piece([n], "") for n in self.partition.nodes if id(n) not in claimed]
        # by each piece's last node (its root): a piece feeding another comes before it
        return sorted(pieces, key=lambda p: self.position(p.nodes[-1]))

    def smallest_failing(self, failing: PartitionCheck
                         ) -> tuple[list[_Piece], PartitionCheck, list[str]]:
        """The smallest run of pieces that fails on its own: halves of the partition's
        pieces, taking the first failing half, until one piece is left or neither half fails
        alone (they fail only together)."""
        group, check = self.pieces(), failing
        narrowed = [f"partition {failing.name!r}: {len(group)} piece(s)"]
        while len(group) > 1:
            half = len(group) // 2
            for candidate in (group[:half], group[half:]):
                found = self.check(candidate)
                if found is not None and not found.ok:
                    group, check = candidate, found
                    narrowed.append(f"{len(candidate)} piece(s) "
                                    f"({_span(candidate)}) fail on their own")
                    break
            else:
                narrowed.append(f"neither half of {_span(group)} fails on its own: "
                                f"the piece is the {len(group)} of them together")
                break
        return group, check, narrowed

    def check(self, pieces: list[_Piece], debug: bool = False) -> PartitionCheck | None:
        """``pieces`` compiled as one partition and checked; None when the plugin does not
        compile them on their own."""
        if self.model.compile_partition is None:
            return None
        nodes = [n for piece in pieces for n in piece.nodes]
        piece = make_partition(self.model.graph, f"{self.partition.name}.piece",
                               self.partition.plugin, nodes, self.index)
        keep = {id(n) for n in nodes}
        piece.matches = [m for m in self.partition.matches
                         if any(id(n) in keep for n in m.nodes)]
        if debug:
            piece.debug_outputs = debug_request(piece)
        try:
            compiled = self.model.compile_partition(piece)
        except ByocError:
            return None
        self.compiled += 1
        compiled.nodes = [n.name for n in piece.nodes]
        return _check_partition(compiled, self.reference, self.tolerance, piece.debug_outputs)

    def inner_values(self, piece: _Piece) -> PartitionCheck | None:
        """The match recompiled with the debug request; None when it does not compile so."""
        return self.check([piece], debug=True)


def debug_request(partition: Partition) -> list[str]:
    """What verify asks a plugin for inside a partition (``Partition.debug_outputs``): every
    value its nodes define that it does not output, in topological order."""
    return [value for node in partition.nodes for value in node.outputs
            if value and value not in partition.outputs]


def _span(pieces: list[_Piece]) -> str:
    """The pieces named by their first and last output nodes."""
    first, last = pieces[0].nodes[-1].name, pieces[-1].nodes[-1].name
    return first if first == last else f"{first} .. {last}"


def verify(model: Any, inputs: Mapping[str, np.ndarray] | None = None, *,
           plugins: Sequence[str] = (), tolerance: Tolerance | None = None, seed: int = 0,
           waveforms: str | None = None, narrow: bool = True, **compile_options: Any
           ) -> Verification:
    """Compile ``model`` (an ONNX path, bytes or ModelProto) for ``plugins`` with
    ``compile_options`` (those of :func:`byoc.compile`: plugin_options, placement, pins...) and
    check it (:func:`verify_compiled`); a :class:`~byoc.compiled.CompiledModel` or the path
    of a .byoc artifact is checked as it is."""
    import byoc

    compiled_already = isinstance(model, CompiledModel) or (
        isinstance(model, (str, os.PathLike)) and str(model).endswith(".byoc"))
    ignored = sorted(set(compile_options) - {"plugin_options"}) + (["plugins"] if plugins else [])
    if compiled_already and (ignored or isinstance(model, CompiledModel)
                             and "plugin_options" in compile_options):
        raise InputError(f"a model compiled already is verified as compiled: "
                         f"{', '.join(ignored or ['plugin_options'])} apply to an ONNX model")
    if isinstance(model, CompiledModel):
        compiled = model
    elif compiled_already:
        compiled = byoc.load(model, plugin_options=compile_options.get("plugin_options"))
    else:
        compiled = byoc.compile(model, plugins=plugins, **compile_options)
    return verify_compiled(compiled, inputs, tolerance, narrow=narrow, waveforms=waveforms,
                           seed=seed)


__all__ = ["Divergence", "OutputCheck", "PartitionCheck", "Tolerance", "Verification",
           "compare", "debug_request", "verify", "verify_compiled"]
