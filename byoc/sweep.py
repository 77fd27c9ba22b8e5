"""``byoc sweep``: compile and run a model at every point of a grid of plugin options, as Ray
tasks, and tabulate what each point asks of the hardware (docs/sweep.md).

A grid key is a plugin option, ``PLUGIN.NAME`` as ``--plugin-option`` takes it
(``vta_sim.block_out``); the grid is every combination of the values given, in the order
given (the last key varies fastest). Each point is one Ray task: it compiles the model with
the point's options (and the fixed ones) for the plugins, runs it once on random inputs drawn
from ``seed``, asks every partition's plugin for its :class:`~byoc.plugins.api.HardwareFigures`
(the hook ``byoc_hardware_figures``) and compares the outputs with the reference
interpreter's. ``target="rtl"`` runs vta_sim's partitions with ``vta_sim.target=cosim``: on
the RTL and the functional simulator both, compared byte for byte after every run.

Each finished point is written at once to ``DIR/points/<point>.json``, so a sweep that is
stopped resumes where it was: a point with a file is skipped. ``DIR/sweep.json`` records what
the points were computed with (model, plugins, fixed options, target, seed, grid keys); a
later sweep into the same DIR must use the same, or it is refused. At the end
:mod:`byoc.report.sweep` writes results.csv, results.json and pareto.png from the rows of
every point of the grid.

A point is data, never a crash of the sweep: a configuration a plugin refuses, a failed run,
an RTL that departs from the simulator all give the point's row an ``error`` (and no
figures). What the user got wrong before anything runs (the grid's syntax, an unknown plugin
or option, a missing model file, Ray missing or out of reach) is a ByocError.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import os
import re
import socket
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence, TextIO

from byoc.errors import ByocError, CosimError, InputError, PluginError
from byoc.plugins.api import HardwareFigures, runtime_counters
from byoc.plugins.manager import PluginManager, default_manager
from byoc.plugins.options import check_plugin_options
from byoc.report.sweep import FIGURES, write_atomically, write_results

TARGETS = ("sim", "rtl")
TARGET_PLUGIN = "vta_sim"
"""The plugin ``--target`` sets ``target`` of: sim runs it on its functional simulator, rtl
on its RTL and simulator both (its target ``cosim``)."""
REACH_SECONDS = 5.0
"""How long a Ray cluster's address gets to accept a connection before the sweep gives up."""
PLACEMENT = "priority"
"""Each node to the first plugin given that takes it: the accelerator takes all it can at
every point, so that points differ by their hardware and not by where the estimator put
the work."""


@dataclass(frozen=True)
class GridAxis:
    """One ``--grid KEY=V1,V2,...``: a plugin option and the values it takes in the sweep."""

    key: str
    values: tuple[str, ...]

    @property
    def plugin(self) -> str:
        return self.key.partition(".")[0]

    @property
    def option(self) -> str:
        return self.key.partition(".")[2]


@dataclass(frozen=True)
class SweepSettings:
    """What every point shares; recorded in DIR/sweep.json."""

    plugins: tuple[str, ...]
    fixed_options: Mapping[str, Mapping[str, str]]
    target: str = "sim"
    seed: int = 0

    def options_at(self, point: Mapping[str, str]) -> dict[str, dict[str, str]]:
        """The plugin options of ``point`` (grid key -> value) with the fixed ones and the
        target's."""
        options = {plugin: dict(values) for plugin, values in self.fixed_options.items()}
        for key, value in point.items():
            plugin, _, name = key.partition(".")
            options.setdefault(plugin, {})[name] = value
        if TARGET_PLUGIN in self.plugins:
            options.setdefault(TARGET_PLUGIN, {})["target"] = \
                "cosim" if self.target == "rtl" else "sim"
        return options


@dataclass
class SweepOutcome:
    """A finished sweep: a row per point of the grid in order, how many points ran now and
    how many were skipped (their row was in DIR already), and the files written."""

    rows: list[dict[str, Any]]
    ran: int
    skipped: int
    files: list[Path] = field(default_factory=list)

    @property
    def failed(self) -> list[dict[str, Any]]:
        return [row for row in self.rows if row["error"]]


def parse_grid(specs: Sequence[str]) -> list[GridAxis]:
    """``["vta_sim.block_out=16,32"]`` -> ``[GridAxis("vta_sim.block_out", ("16", "32"))]``."""
    if not specs:
        raise InputError("a sweep needs at least one --grid PLUGIN.NAME=V1,V2,..., e.g. "
                         "--grid vta_sim.block_out=16,32")
    axes = []
    for spec in specs:
        key, sep, text = spec.partition("=")
        plugin, dot, name = key.strip().partition(".")
        values = tuple(value.strip() for value in text.split(","))
        if not sep or not dot or not plugin or not name or not all(values):
            raise InputError(f"--grid {spec!r}: expected PLUGIN.NAME=V1,V2,... with at least one "
                             f"value and none empty, e.g. vta_sim.block_out=16,32")
        if len(set(values)) != len(values):
            raise InputError(f"--grid {spec!r}: a value is given twice; give each once")
        axes.append(GridAxis(key.strip(), values))
    keys = [axis.key for axis in axes]
    twice = sorted({key for key in keys if keys.count(key) > 1})
    if twice:
        raise InputError(f"--grid {', '.join(twice)} is given twice; give each key once, with "
                         f"all its values: KEY=V1,V2,...")
    return axes


def grid_points(axes: Sequence[GridAxis]) -> list[dict[str, str]]:
    """Every combination of the axes' values, the last axis varying fastest."""
    return [dict(zip((axis.key for axis in axes), values))
            for values in itertools.product(*(axis.values for axis in axes))]


def point_name(point: Mapping[str, str]) -> str:
    """The file name (without .json) of ``point``'s row: readable, and unique by a digest of
    the exact values."""
    readable = "_".join(f"{key.rpartition('.')[2]}={value}" for key, value in point.items())
    readable = re.sub(r"[^A-Za-z0-9.=_-]+", "-", readable)[:80]
    digest = hashlib.sha256(json.dumps(list(point.items())).encode()).hexdigest()[:10]
    return f"{readable}.{digest}"


def check_grid(manager: PluginManager, axes: Sequence[GridAxis],
               settings: SweepSettings) -> None:
    """A ByocError before anything runs for a grid key naming no plugin, or no option of its
    plugin (naming the closest), for a key given both to the grid and as a fixed option, and
    for a target the plugins cannot have. Values are not checked here: a value its plugin
    refuses is that point's error."""
    for axis in axes:
        declared = manager.get(axis.plugin).options
        if declared is not None and axis.option not in {option.name for option in declared}:
            # checks names before values: raises the unknown option's error, naming the closest
            check_plugin_options(manager, {axis.plugin: {axis.option: None}})
        if axis.option in settings.fixed_options.get(axis.plugin, {}):
            raise InputError(f"{axis.key} is given both to --grid and to --plugin-option; "
                             f"give it once")
        if axis.key == f"{TARGET_PLUGIN}.target":
            raise InputError(f"{axis.key} is set by --target ({'|'.join(TARGETS)}); drop it "
                             f"from the grid")
    if settings.target == "rtl" and TARGET_PLUGIN not in settings.plugins:
        raise InputError(f"--target rtl runs {TARGET_PLUGIN}'s partitions on its RTL; add "
                         f"{TARGET_PLUGIN} to --plugins")
    check_plugin_options(manager, settings.fixed_options)


def typed_values(manager: PluginManager, point: Mapping[str, str]) -> dict[str, Any]:
    """The point's values converted to their options' types (32, not "32"), for the
    results; a value its option refuses stays as given."""
    typed = dict(point)
    for key, value in point.items():
        plugin, _, name = key.partition(".")
        try:
            converted = check_plugin_options(manager, {plugin: {name: value}})[plugin][name]
        except PluginError:
            continue
        if _plain(converted):
            typed[key] = converted
    return typed


def _plain(value: Any) -> bool:
    return value is None or isinstance(value, (str, int, bool)) or \
        (isinstance(value, float) and math.isfinite(value))


# -- one point (a Ray task) ------------------------------------------------------------------


def run_point(model: bytes, options: Mapping[str, Mapping[str, str]], settings: SweepSettings,
              manager: PluginManager | None = None) -> dict[str, Any]:
    """Compile ``model`` with ``options``, run it once, and return the point's FIGURES."""
    import byoc
    from byoc.inputs import random_inputs
    from byoc.testing import compile_reference
    from byoc.verify import Tolerance, compare

    manager = manager or default_manager()
    began = time.perf_counter()
    row: dict[str, Any] = dict.fromkeys(FIGURES)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")     # a point's notes are its row, not the log's
        try:
            compiled = byoc.compile(model, plugins=list(settings.plugins),
                                    plugin_options=options, placement=PLACEMENT, strict=True,
                                    manager=manager)
        except ByocError as exc:
            return _failed(row, f"does not compile: {exc}", began)
        inputs = random_inputs(compiled.inputs, settings.seed)
        try:
            outputs = compiled.run(inputs)
        except ByocError as exc:
            if settings.target == "rtl" and isinstance(exc, CosimError):
                row["rtl_equal"] = False
            return _failed(row, f"the run failed: {exc}", began)
        figures = [found for part in compiled.parts
                   if (found := manager.call(part.plugin, "byoc_hardware_figures",
                                             payload=part.payload,
                                             counters=runtime_counters(part.runtime)))]
        reference = compile_reference(model).run(inputs)
    row["correct"] = all(compare(name, *_in_steps(compiled.graph, name, outputs[name],
                                                  reference[name]), Tolerance()).ok
                         for name in compiled.outputs)
    row.update(_totals(figures, settings.target))
    if not figures:
        row["error"] = (f"no partition reported hardware figures: none of the plugins "
                        f"{', '.join(settings.plugins)} took a node of the model, or they "
                        f"report none (the hook byoc_hardware_figures)")
    row["seconds"] = round(time.perf_counter() - began, 3)
    return row


def _in_steps(graph, name: str, got, want) -> tuple:
    """``got`` and ``want`` as the integers they dequantize, when ``name`` is the output of a
    DequantizeLinear by one scale: a quantized model's float output is judged in quantization
    steps, as its integers are. Else as they are."""
    import numpy as np

    producer = graph.producers().get(name)
    if producer is None or producer.op_type != "DequantizeLinear":
        return got, want
    scale = graph.constants.get(producer.inputs[1])
    if scale is None or np.size(scale) != 1 or not float(scale) > 0:
        return got, want
    return tuple(np.rint(np.asarray(value, np.float64) / float(scale)).astype(np.int64)
                 for value in (got, want))


def _totals(figures: Sequence[HardwareFigures], target: str) -> dict[str, Any]:
    if not figures:
        return {}
    cycles = sum(f.cycles for f in figures)
    compared = [f.device_equal for f in figures if f.device_equal is not None]
    return {"cycles": cycles,
            "gemm_utilisation": round(sum(f.ideal_cycles for f in figures) / cycles, 6)
            if cycles else None,
            "dram_bytes": sum(f.dram_bytes for f in figures),
            "sram_bytes": max(f.sram_bytes for f in figures),
            "rtl_equal": all(compared) if target == "rtl" and compared else None}


def _failed(row: dict[str, Any], error: str, began: float) -> dict[str, Any]:
    row["error"] = error
    row["seconds"] = round(time.perf_counter() - began, 3)
    return row


# -- the sweep ---------------------------------------------------------------------------------


def run_sweep(model: str | Path, axes: Sequence[GridAxis], settings: SweepSettings,
              out_dir: str | Path, *, ray_address: str | None = None,
              workers: int | None = None, progress: TextIO | None = sys.stderr
              ) -> SweepOutcome:
    """Run every point of ``axes`` not yet in ``out_dir`` as a Ray task and write the results
    (see the module docstring). Ray is started locally with ``workers`` CPUs (default: all of
    this machine's) and shut down after, or joined at ``ray_address``; a Ray this process
    has started already is used as it is. ``progress`` gets a progress line (None: none)."""
    path = Path(model)
    try:
        model_bytes = path.read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read the model {model}: {exc.strerror}") from None
    manager = default_manager()
    check_grid(manager, axes, settings)
    out = Path(out_dir)
    _claim(out, _record(path, model_bytes, axes, settings))
    points = grid_points(axes)
    rows = {point_name(p): _stored_row(out, p) for p in points}
    todo = [p for p in points if rows[point_name(p)] is None]
    if not todo:
        bar = _Progress(progress, len(points), len(points))
    else:
        with _ray(ray_address, workers) as ray:
            if progress is not None:
                cpus = int(ray.cluster_resources().get("CPU", 0))
                where = (f"the Ray cluster at {ray.get_runtime_context().gcs_address}"
                         if ray_address else "a local Ray")
                print(f"sweep: {len(todo)} point(s) to run on {where} ({cpus} CPUs)",
                      file=progress)
            bar = _Progress(progress, len(points), len(points) - len(todo))
            task = ray.remote(run_point)
            model_ref = ray.put(model_bytes)
            waiting = {task.remote(model_ref, settings.options_at(p), settings): p
                       for p in todo}
            while waiting:
                done, _ = ray.wait(list(waiting), num_returns=1)
                point = waiting.pop(done[0])
                row = {**typed_values(manager, point), **_result(ray, done[0])}
                rows[point_name(point)] = row
                if not row.get("crashed"):
                    _store_row(out, point, row)
                bar.add(failed=bool(row["error"]))
    bar.close()
    table = [{key: value for key, value in rows[point_name(p)].items() if key != "crashed"}
             for p in points]
    files = write_results(out, [axis.key for axis in axes], table, path.stem)
    return SweepOutcome(table, len(todo), len(points) - len(todo), files)


def _result(ray, ref) -> dict[str, Any]:
    """A task's row; a task that crashed (a bug, a worker that died) gives a row saying so,
    kept out of DIR/points so that the next sweep runs the point again."""
    try:
        return ray.get(ref)
    except Exception as exc:    # the task's own failures are rows; this is Ray's or a bug
        row = dict.fromkeys(FIGURES)
        row["error"] = f"the task crashed ({type(exc).__name__}): {str(exc)[-500:]}"
        row["crashed"] = True
        return row


def _record(path: Path, model_bytes: bytes, axes: Sequence[GridAxis],
            settings: SweepSettings) -> dict[str, Any]:
    return {"model": path.name, "model_sha256": hashlib.sha256(model_bytes).hexdigest(),
            "plugins": list(settings.plugins),
            "fixed_options": {p: dict(v) for p, v in settings.fixed_options.items()},
            "target": settings.target, "seed": settings.seed,
            "grid_keys": [axis.key for axis in axes]}


def _claim(out: Path, record: dict[str, Any]) -> None:
    """Make ``out`` this sweep's folder: write its record, or check the one there matches."""
    recorded = out / "sweep.json"
    try:
        (out / "points").mkdir(parents=True, exist_ok=True)
        before = json.loads(recorded.read_text()) if recorded.is_file() else None
    except (OSError, ValueError) as exc:
        raise InputError(f"--out {out}: cannot use it as the sweep's folder: {exc}") from None
    if before is None:
        write_atomically(recorded, (json.dumps(record, indent=1) + "\n").encode())
        return
    differ = [key for key in record if before.get(key) != record[key]]
    if differ:
        raise InputError(
            f"--out {out} holds a sweep of other settings ({', '.join(differ)} differ: "
            + "; ".join(f"{key} was {before.get(key)!r}, now {record[key]!r}" for key in differ)
            + "); give another --out folder, or delete this one to start afresh")


def _stored_row(out: Path, point: Mapping[str, str]) -> dict[str, Any] | None:
    """The row of ``point`` a previous sweep wrote, or None (an unreadable file is run
    again)."""
    try:
        stored = json.loads((out / "points" / f"{point_name(point)}.json").read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(stored, dict) or stored.get("point") != dict(point) \
            or not isinstance(stored.get("row"), dict):
        return None
    return stored["row"]


def _store_row(out: Path, point: Mapping[str, str], row: Mapping[str, Any]) -> None:
    text = json.dumps({"point": dict(point), "row": dict(row)}, indent=1, allow_nan=False)
    write_atomically(out / "points" / f"{point_name(point)}.json", (text + "\n").encode())


class _ray:
    """Ray for the sweep's tasks, imported when needed: ``with _ray(address, workers) as
    ray``. Started here (and shut down after) unless this process has started it."""

    def __init__(self, address: str | None, workers: int | None) -> None:
        self.address, self.workers, self.started = address, workers, False

    def __enter__(self):
        try:
            import ray
        except ImportError:
            raise InputError("byoc sweep runs its points on Ray, which is not installed: "
                             "pip install 'byoc[sweep]'") from None
        if ray.is_initialized():
            return ray
        if self.address:
            _check_reachable(self.address)
        settings = {"address": self.address} if self.address else \
            {"num_cpus": self.workers or os.cpu_count() or 1, "include_dashboard": False}
        try:
            ray.init(**settings, log_to_driver=False, configure_logging=False)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            where = f"the Ray cluster at {self.address}" if self.address else "a local Ray"
            hint = ""
            if self.address and os.environ.get("RAY_AUTH_MODE") != "token":
                hint = (" If the cluster uses token authentication (Ray 2.59 and later start "
                        "clusters with it), set RAY_AUTH_MODE=token and give this process the "
                        "cluster's token (~/.ray/auth_token or RAY_AUTH_TOKEN).")
            raise InputError(f"cannot start or reach {where}: {exc}. For a cluster, start it "
                             f"with `ray start --head` and give its address (ray start prints "
                             f"it) to --ray-address; see docs/sweep.md.{hint}") from None
        self.started = True
        return ray

    def __exit__(self, *exc_info) -> None:
        if self.started:
            import ray

            ray.shutdown()


def _check_reachable(address: str) -> None:
    """An InputError at once for a HOST:PORT nothing answers at: Ray would retry for ever."""
    if address == "auto" or "://" in address:
        return
    host, colon, port = address.rpartition(":")
    if not colon or not host or not port.isdigit():
        raise InputError(f"--ray-address {address!r}: expected HOST:PORT (the address `ray "
                         f"start --head` prints, e.g. 10.0.0.5:6379) or auto")
    try:
        socket.create_connection((host, int(port)), timeout=REACH_SECONDS).close()
    except OSError as exc:
        raise InputError(f"cannot reach the Ray cluster at {address}: {exc.strerror or exc}. "
                         f"Start it with `ray start --head` on its head node and give the "
                         f"address that prints; see docs/sweep.md") from None


class _Progress:
    """``sweep: [========>           ] 5/12 points, 2 skipped, 1 failed, 0:42 elapsed`` on
    one line of ``stream`` (rewritten in place on a terminal, a line per point otherwise)."""

    WIDTH = 20

    def __init__(self, stream: TextIO | None, total: int, skipped: int) -> None:
        self.stream, self.total, self.skipped = stream, total, skipped
        self.done, self.failed = skipped, 0
        self.began = time.monotonic()
        self.live = stream is not None and stream.isatty()
        self._show()

    def add(self, failed: bool) -> None:
        self.done += 1
        self.failed += failed
        self._show()

    def close(self) -> None:
        if self.live:
            self.stream.write("\n")
            self.stream.flush()

    def _show(self) -> None:
        if self.stream is None:
            return
        elapsed = int(time.monotonic() - self.began)
        filled = self.WIDTH * self.done // self.total if self.total else self.WIDTH
        head = ">" if filled < self.WIDTH else ""
        bar = ("=" * filled + head).ljust(self.WIDTH)[:self.WIDTH]
        line = (f"sweep: [{bar}] {self.done}/{self.total} points, {self.skipped} skipped, "
                f"{self.failed} failed, {elapsed // 60}:{elapsed % 60:02d} elapsed")
        self.stream.write(f"\r{line}" if self.live else f"{line}\n")
        self.stream.flush()


__all__ = ["GridAxis", "SweepOutcome", "SweepSettings", "check_grid", "grid_points",
           "parse_grid", "point_name", "run_point", "run_sweep"]
