"""Checking a compiled model against the reference interpreter, partition by partition.

Each partition runs on its plugin with the **reference interpreter's values as its inputs**,
so an error made upstream does not spread downstream: a partition is judged on what it
computes itself. Its outputs are compared with the reference's values of the same tensors
(converted back to the graph's layout first), and so are the model's outputs end to end.

Per output, and per partition the worst of its outputs:

- ``max_abs_err``: the largest absolute difference;
- ``steps``: for an integer (quantized) output, the same in quantization steps (one step is
  one unit of the integer), else None;
- ``snr_db``: ``10 log10(sum(ref^2) / sum(err^2))``, infinite when nothing differs;
- ``cosine``: the cosine similarity of the two as vectors (1.0 when both are zero).

Tolerances (:class:`Tolerance`): a float output passes when ``max_abs_err <= atol + rtol *
max|ref|`` (defaults ``rtol=1e-4``, ``atol=0``: 1e-4 relative to the largest reference
magnitude); an integer output when it is off by at most ``max_lsb`` steps (default 1).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Mapping

import numpy as np

from byoc.compiled import CompiledModel, CompiledPartition, run_partition
from byoc.core.interpreter.runner import Interpreter
from byoc.errors import ByocError, InputError
from byoc.layouts import GRAPH_LAYOUT, LayoutEnv, convert


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
        return max((o.max_abs_err for o in self.outputs), default=0.0)

    @property
    def snr_db(self) -> float:
        return min((o.snr_db for o in self.outputs), default=math.inf)


@dataclass
class Verification:
    """Every partition checked, in the compiled model's order, and the model's outputs."""

    partitions: list[PartitionCheck]
    outputs: list[OutputCheck]

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


def verify_compiled(model: CompiledModel, inputs: Mapping[str, np.ndarray],
                    tolerance: Tolerance | None = None) -> Verification:
    """Check every partition of ``model`` (compiled in this process: it needs the optimized
    graph) on ``inputs``, and the model's outputs end to end."""
    tolerance = tolerance or Tolerance()
    if model.graph is None:
        raise InputError(f"model {model.name!r} was loaded from a .byoc artifact, which keeps "
                         f"no graph to compute reference values from; verify its ONNX model")
    values = Interpreter(model.graph).values(inputs)
    checks = [_check_partition(part, values, tolerance) for part in model.parts]
    got = model.run(inputs)
    outputs = [compare(name, got[name], values[name], tolerance)
               for name in model.graph.outputs if name in got]
    return Verification(checks, outputs)


def _check_partition(part: CompiledPartition, values: Mapping[str, np.ndarray],
                     tolerance: Tolerance) -> PartitionCheck:
    check = PartitionCheck(part.signature.name, part.plugin, list(part.nodes or []))
    missing = [name for name in part.signature.inputs if name not in values]
    if missing:
        check.error = (f"the reference computes no value for input(s) {', '.join(missing)} "
                       f"(inside a quantized layer it evaluates as a whole)")
        return check
    env = LayoutEnv()
    for name in part.signature.inputs:
        env.put(name, values[name])
    try:
        results = run_partition(part, env)
    except ByocError as exc:
        check.error = str(exc)
        return check
    layouts = part.signature.layouts
    for name, array in results.items():
        layout = layouts.get(name, GRAPH_LAYOUT)
        if array.ndim == 4 and layout != GRAPH_LAYOUT:
            array = convert(array, layout, GRAPH_LAYOUT)
        if name not in values:
            check.outputs.append(OutputCheck(name, math.inf, None, -math.inf, 0.0, False,
                                             "the reference computes no such value"))
            continue
        check.outputs.append(compare(name, array, values[name], tolerance))
    return check
