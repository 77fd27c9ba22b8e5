"""Benchmark byoc's host backend (cpu_llvm) against onnxruntime on issue 22's corpus.

The models are those of ``corpus.py`` (classic architectures with random weights, and two
int8 QDQ models), or any of them and of byoc's model zoo named with ``--models``. For each
model and thread count, in one process on the same machine:

- latency of ``byoc.compile(model, plugins=["cpu_llvm"], plugin_options={"cpu_llvm":
  {"threads": N}})`` and of an onnxruntime CPUExecutionProvider session (all graph
  optimizations, ``intra_op_num_threads=N``, ``inter_op_num_threads=1``): warm-up runs, then
  ``--runs`` runs of each, byoc and onnxruntime timed in alternating blocks so that a noisy
  shared machine slows both alike (blocks, with a pause between them, because onnxruntime's
  worker threads spin after each run and would take byoc's cores); the median is reported;
- the model's FLOPs (2 * MACs of Conv, Gemm and MatMul in byoc's optimized IR), the achieved
  GFLOP/s of both, and their fraction of the machine's fp32 peak, measured in the same run as
  the GFLOP/s of a numpy float32 2048x2048 matmul (median of 5) at the same thread count;
- how many nodes ran on each plugin, so that nodes cpu_llvm does not take (or fails to
  compile, a FallbackWarning) and leaves to the reference interpreter show in the table;
- accuracy: for a float model max |byoc - ORT| / max |ORT|; for an int8 one whether byoc's
  output equals the reference interpreter's (``byoc.testing.compile_reference``) bit for bit,
  and how many steps of the output's quantization scale it is off if not;
- each model's compile time, at the first thread count: cold, with ``BYOC_CACHE_DIR`` an empty
  directory, and cached, compiling again with the same directory, each the median of
  ``COMPILE_RUNS`` (the later thread counts compile with the run's own cache);
- a summary per thread count against issue 22's goals: median byoc/ORT at most 0.9, no model
  above 1.2, int8 models at most 1.0, and compiling in at most 2 s cold and 0.3 s cached for
  every model of ResNet-50's size or smaller (FLOPs and weights), DenseNet-121 included.

Partitions left to the reference interpreter run numpy, whose OpenBLAS thread count is set to
the same N (through OpenBLAS's own set_num_threads) so that they do not use more cores than
onnxruntime may.

    python benchmarks/cpu_llvm.py [--models resnet50,squeezenet,...] [--threads 1,2]
                                  [--runs 10] [--out benchmarks/RESULTS.md]
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import importlib.metadata
import os
import platform
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from corpus import BUILDERS, is_int8
from corpus import MODELS as CORPUS
from corpus import build as build_model
from results_file import write_section

import byoc
from byoc.core.flops import graph_flops
from byoc.model_zoo import sample_inputs
from byoc.pipeline import FallbackWarning
from byoc.testing import compile_reference

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_MODELS = tuple(CORPUS)
PLUGIN = "cpu_llvm"
HOST = "reference"
PEAK_SIZE = 2048
MAX_REL_DIFF = 1e-4  # a larger difference from onnxruntime is flagged with (!) in the table

# Issue 22's goals.
GOAL_MEDIAN_RATIO = 0.9
GOAL_MAX_RATIO = 1.2
GOAL_INT8_RATIO = 1.0
GOAL_COLD_S = 2.0
GOAL_CACHED_S = 0.3
SIZE_LIMIT_MODEL = "resnet50"  # the compile goals hold for models no larger than this one
ALWAYS_SIZE_LIMITED = ("densenet121",)  # ... and for these ("DenseNet-121 included")


# Models

@dataclass(frozen=True)
class Model:
    name: str
    path: Path
    flops: int  # 2 * MACs of Conv, Gemm and MatMul in byoc's optimized IR
    weights: int  # elements of the ONNX initializers

    @classmethod
    def load(cls, name: str, models_dir: Path) -> Model:
        path = build_model(name, models_dir)
        weights = sum(int(np.prod(tensor.dims)) for tensor in onnx.load(path).graph.initializer)
        return cls(name, path, graph_flops(byoc.import_model(path, optimize_graph=True)), weights)

    def within(self, limit: Model) -> bool:
        """Whether the compile-time goals apply: no larger than ``limit`` in FLOPs and weights."""
        return (self.name in ALWAYS_SIZE_LIMITED
                or (self.flops <= limit.flops and self.weights <= limit.weights))


def int8_output_step(path: Path) -> float | None:
    """The scale of the DequantizeLinear that makes an int8 model's output (one step of it), or
    None if the output has no such producer with a constant scalar scale."""
    model = onnx.load(path)
    output = model.graph.output[0].name
    initializers = {tensor.name: tensor for tensor in model.graph.initializer}
    for node in model.graph.node:
        if output in node.output and node.op_type == "DequantizeLinear":
            scale = initializers.get(node.input[1])
            if scale is not None and not scale.dims:
                return float(onnx.numpy_helper.to_array(scale))
    return None


# Threads and peak

def _openblas_set_num_threads() -> Callable[[int], None] | None:
    """OpenBLAS's set_num_threads from the library numpy loaded, or None if not found."""
    with open("/proc/self/maps") as maps:
        libraries = sorted({line.split()[-1] for line in maps if "openblas" in line.lower()})
    for library in libraries:
        lib = ctypes.CDLL(library)
        for symbol in ("scipy_openblas_set_num_threads64_", "scipy_openblas_set_num_threads",
                       "openblas_set_num_threads64_", "openblas_set_num_threads"):
            if hasattr(lib, symbol):
                return getattr(lib, symbol)
    return None


SET_BLAS_THREADS = _openblas_set_num_threads()


def set_blas_threads(threads: int) -> None:
    if SET_BLAS_THREADS is not None:
        SET_BLAS_THREADS(threads)


def numpy_peak_gflops(repeats: int = 5) -> float:
    """GFLOP/s of a float32 PEAK_SIZE^2 matmul, median of ``repeats`` after one warm-up."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((PEAK_SIZE, PEAK_SIZE), dtype=np.float32)
    b = rng.standard_normal((PEAK_SIZE, PEAK_SIZE), dtype=np.float32)
    a @ b
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        a @ b
        times.append(time.perf_counter() - start)
    return 2 * PEAK_SIZE ** 3 / statistics.median(times) / 1e9


# Sessions

def compile_byoc(path: Path, threads: int) -> tuple[byoc.CompiledModel, list[str]]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", FallbackWarning)
        model = byoc.compile(path, plugins=[PLUGIN], plugin_options={PLUGIN: {"threads": threads}})
    fallbacks = [str(w.message) for w in caught if issubclass(w.category, FallbackWarning)]
    return model, fallbacks


def ort_session(path: Path, threads: int) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def ops_by_plugin(model: byoc.CompiledModel) -> dict[str, Counter]:
    ops: dict[str, Counter] = {}
    for part in model.parts:
        ops.setdefault(part.plugin, Counter()).update(part.ops)
    return ops


SETTLE_S = 0.02
"""The pause between blocks of timed runs. Long enough for onnxruntime's worker threads to
stop spinning after its last run (with no pause they take byoc's cores: MobileNetV2-int8 at 2
threads 7.2 ms instead of 2.3 ms). Not longer: on this 2-core KVM guest, a processor left idle
for 0.2 s comes back slowly, and for the next several runs a thread on it is late to every
barrier, which slows byoc's statically split kernels (ShuffleNet at 2 threads 6.3 ms instead
of 2.6 ms, onnxruntime 2.5 ms either way; ResNet-50 alike either way)."""


def time_alternating(first: Callable[[], object], second: Callable[[], object],
                     warmup: int, runs: int, block: int = 5,
                     settle: float = SETTLE_S) -> tuple[float, float]:
    """Median seconds of ``first`` and of ``second``, timed in alternating blocks of
    ``block`` runs (each block after one untimed run), with a pause of ``settle`` seconds
    between blocks (:data:`SETTLE_S`). Blocks rather than single alternating runs because
    onnxruntime's worker threads keep spinning for a while after each run: right after an
    onnxruntime run they occupy the cores byoc's threads would use (and the pause lets them
    go idle)."""
    for _ in range(warmup):
        first()
        second()
    times: dict[int, list[float]] = {0: [], 1: []}
    round_ = 0
    while min(len(t) for t in times.values()) < runs:
        order = ((0, first), (1, second)) if round_ % 2 == 0 else ((1, second), (0, first))
        for which, fn in order:
            time.sleep(settle)
            fn()
            for _ in range(min(block, runs - len(times[which]))):
                start = time.perf_counter()
                fn()
                times[which].append(time.perf_counter() - start)
        round_ += 1
    return statistics.median(times[0]), statistics.median(times[1])


# Measurements

@dataclass(frozen=True)
class Accuracy:
    """How far byoc's output is from the peer's: onnxruntime's for a float model (relative to
    its largest magnitude), the reference interpreter's for an int8 one (in steps of the
    output's quantization scale, ``step``; bit-exact when ``max_abs_diff`` is 0)."""

    max_abs_diff: float
    max_rel_diff: float
    int8: bool
    step: float | None = None

    @property
    def ok(self) -> bool:
        return self.max_abs_diff == 0 if self.int8 else self.max_rel_diff <= MAX_REL_DIFF

    def text(self) -> str:
        if not self.int8:
            return f"{self.max_rel_diff:.1e}{'' if self.ok else ' (!)'}"
        if self.ok:
            return "bit-exact"
        off = (f"{self.max_abs_diff / self.step:.3g} steps" if self.step
               else f"max abs. diff {self.max_abs_diff:.3g}")
        return f"NOT bit-exact: {off} (!)"


@dataclass
class Result:
    model: str
    threads: int
    flops: int
    byoc_s: float
    ort_s: float
    ops: dict[str, Counter]
    fallbacks: list[str]
    accuracy: Accuracy | None
    compile_s: tuple[float, float] | None = None  # cold, cached; at the first thread count
    error: str = ""  # set when byoc or onnxruntime failed; the timings are then meaningless

    def nodes(self, plugin: str) -> int:
        return sum(self.ops.get(plugin, Counter()).values())

    @property
    def ratio(self) -> float:
        return self.byoc_s / self.ort_s


@dataclass
class Run:
    threads: list[int]
    peaks: dict[int, float] = field(default_factory=dict)
    results: list[Result] = field(default_factory=list)
    models: dict[str, Model] = field(default_factory=dict)
    size_limit: Model | None = None  # the compile goals apply to models no larger than it

    @property
    def size_limited(self) -> set[str]:
        return {name for name, model in self.models.items() if model.within(self.size_limit)}
    seconds: float = 0.0
    load_averages: list[tuple[float, float, float]] = field(default_factory=list)


def compare(actual: np.ndarray, expected: np.ndarray, int8: bool,
            step: float | None) -> Accuracy:
    max_abs_diff = float(np.abs(actual.astype(np.float64) - expected).max())
    return Accuracy(max_abs_diff, max_abs_diff / max(float(np.abs(expected).max()), 1e-30),
                    int8, step)


def reference_output(path: Path, feeds: dict[str, np.ndarray]) -> np.ndarray:
    """The output of byoc's reference interpreter, the oracle of the int8 models."""
    compiled = compile_reference(path)
    (output_name,) = compiled.outputs
    return compiled.run(feeds)[output_name]


def measure_model(model: Model, threads: int, feeds: dict[str, np.ndarray], warmup: int,
                  runs: int, time_compile: bool, reference: np.ndarray | None) -> Result:
    """One model at one thread count; ``reference`` is the expected output of an int8 model
    (None for a float one, which is compared with onnxruntime)."""
    compile_s = None
    if time_compile:
        compiled, fallbacks, compile_s = compile_cold_and_cached(model.path, threads)
    else:
        compiled, fallbacks = compile_byoc(model.path, threads)
    session = ort_session(model.path, threads)
    (output_name,) = compiled.outputs
    actual = compiled.run(feeds)[output_name]
    if reference is None:
        accuracy = compare(actual, session.run(None, feeds)[0], int8=False, step=None)
    else:
        accuracy = compare(actual, reference, int8=True, step=int8_output_step(model.path))
    byoc_s, ort_s = time_alternating(lambda: compiled.run(feeds),
                                     lambda: session.run(None, feeds), warmup, runs)
    return Result(model.name, threads, model.flops, byoc_s, ort_s, ops_by_plugin(compiled),
                  fallbacks, accuracy, compile_s)


def measure_or_report(model: Model, threads: int, feeds: dict[str, np.ndarray], warmup: int,
                      runs: int, time_compile: bool, reference: np.ndarray | None) -> Result:
    """measure_model, or a Result carrying the error if byoc or onnxruntime fails, so that one
    broken kernel does not cost the rest of the table."""
    try:
        return measure_model(model, threads, feeds, warmup, runs, time_compile, reference)
    except Exception as exc:  # noqa: BLE001 - any failure is reported in the table
        return Result(model.name, threads, model.flops, float("nan"), float("nan"), {}, [],
                      None, error=f"{type(exc).__name__}: {exc}")


@contextlib.contextmanager
def fresh_object_cache() -> Iterator[None]:
    """Point BYOC_CACHE_DIR at a new empty directory for the duration, then restore it."""
    previous = os.environ.get("BYOC_CACHE_DIR")
    try:
        with tempfile.TemporaryDirectory(prefix="byoc-bench-cache-") as cache:
            os.environ["BYOC_CACHE_DIR"] = cache
            yield
    finally:
        if previous is None:
            os.environ.pop("BYOC_CACHE_DIR", None)
        else:
            os.environ["BYOC_CACHE_DIR"] = previous


COMPILE_RUNS = 3
"""Cold compiles, and cached compiles, timed per model (the medians are reported)."""


def compile_cold_and_cached(path: Path, threads: int
                            ) -> tuple[byoc.CompiledModel, list[str], tuple[float, float]]:
    """Compile cold (each time with an empty BYOC_CACHE_DIR), then cached (with the last
    cold compile's directory): the last compile's model and fallbacks, and the median
    seconds of the cold and of the cached compiles."""
    cold, cached = [], []
    for run in range(COMPILE_RUNS):
        with fresh_object_cache():
            start = time.perf_counter()
            compiled, fallbacks = compile_byoc(path, threads)
            cold.append(time.perf_counter() - start)
            if run == COMPILE_RUNS - 1:
                for _ in range(COMPILE_RUNS):
                    start = time.perf_counter()
                    compiled, fallbacks = compile_byoc(path, threads)
                    cached.append(time.perf_counter() - start)
    return compiled, fallbacks, (statistics.median(cold), statistics.median(cached))


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# Report

def machine() -> str:
    try:
        lscpu = dict(line.split(":", 1) for line in
                     subprocess.run(["lscpu"], capture_output=True, text=True,
                                    check=False).stdout.splitlines()
                     if ":" in line)
        lscpu = {key.strip(): value.strip() for key, value in lscpu.items()}
    except OSError:
        lscpu = {}
    cpu = lscpu.get("Model name") or platform.processor() or "unknown CPU"
    try:
        cores = int(lscpu["Core(s) per socket"]) * int(lscpu.get("Socket(s)", "1"))
        core_text = f"{cores} cores"
    except (KeyError, ValueError):
        core_text = "cores unknown"
    hypervisor = lscpu.get("Hypervisor vendor")
    virtual = f", {hypervisor} guest" if hypervisor else ""
    return f"{cpu}, {core_text}, {os.cpu_count()} logical CPUs{virtual}"


def versions() -> str:
    names = {"byoc": "byoc", "byoc-cpu-llvm": "byoc-cpu-llvm", "onnxruntime": "onnxruntime",
             "numpy": "numpy", "llvmlite": "llvmlite"}
    parts = []
    for label, dist in names.items():
        try:
            parts.append(f"{label} {importlib.metadata.version(dist)}")
        except importlib.metadata.PackageNotFoundError:
            pass
    return ", ".join(parts)


def ops_text(counter: Counter) -> str:
    return ", ".join(f"{op} {count}" for op, count in sorted(counter.items()))


def fmt(x: float) -> str:
    """Three significant digits, without scientific notation from 100 up."""
    return f"{x:,.0f}" if abs(x) >= 100 else f"{x:.3g}"


def one_line(message: str, limit: int = 300) -> str:
    return " ".join(message.split())[:limit].replace("|", "\\|")


def results_table(results: list[Result], peak: float) -> list[str]:
    lines = [
        ("| model | MFLOP | byoc ms | ORT ms | byoc/ORT | GFLOP/s byoc / ORT "
         "| % of peak byoc / ORT | nodes cpu_llvm / reference | fallbacks | accuracy |"),
        "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for r in results:
        if r.error:
            lines.append(f"| {r.model} | {fmt(r.flops / 1e6)} | failed: {one_line(r.error)} "
                         "| | | | | | | |")
            continue
        byoc_rate, ort_rate = r.flops / r.byoc_s / 1e9, r.flops / r.ort_s / 1e9
        lines.append(
            f"| {r.model} | {fmt(r.flops / 1e6)} | {fmt(r.byoc_s * 1e3)} | {fmt(r.ort_s * 1e3)} "
            f"| {r.ratio:.2f} | {fmt(byoc_rate)} / {fmt(ort_rate)} "
            f"| {fmt(100 * byoc_rate / peak)} / {fmt(100 * ort_rate / peak)} "
            f"| {r.nodes(PLUGIN)} / {r.nodes(HOST)} | {len(r.fallbacks)} "
            f"| {r.accuracy.text()} |")
    return lines


def verdict(ok: bool) -> str:
    return "pass" if ok else "FAIL"


def goals(results: list[Result], size_limited: set[str]) -> list[str]:
    """Issue 22's goal lines for one thread count's results; a failed model fails them all."""
    measured = [r for r in results if not r.error]
    if not measured:
        return ["- no model ran: FAIL"]
    failed = [r.model for r in results if r.error]
    complete = not failed
    ratios = sorted(measured, key=lambda r: r.ratio)
    median = statistics.median(r.ratio for r in measured)
    worst = ratios[-1]
    lines = [
        f"- median byoc/ORT {median:.2f} over {len(measured)} models (goal <= "
        f"{GOAL_MEDIAN_RATIO}): {verdict(complete and median <= GOAL_MEDIAN_RATIO)}",
        f"- max byoc/ORT {worst.ratio:.2f} ({worst.model}) (goal: no model above "
        f"{GOAL_MAX_RATIO}): {verdict(complete and worst.ratio <= GOAL_MAX_RATIO)}",
    ]
    int8 = [r for r in ratios if r.accuracy.int8]
    if int8:
        lines.append(
            f"- int8: median byoc/ORT {statistics.median(r.ratio for r in int8):.2f}, max "
            f"{int8[-1].ratio:.2f} ({int8[-1].model}) (goal: each <= {GOAL_INT8_RATIO}): "
            f"{verdict(complete and int8[-1].ratio <= GOAL_INT8_RATIO)}")
    timed = [r for r in measured if r.compile_s and r.model in size_limited]
    if timed:
        cold = max(timed, key=lambda r: r.compile_s[0])
        cached = max(timed, key=lambda r: r.compile_s[1])
        lines.append(
            f"- compile, {len(timed)} models of ResNet-50's size or smaller: slowest cold "
            f"{cold.compile_s[0]:.2f} s ({cold.model}) (goal <= {GOAL_COLD_S:g} s): "
            f"{verdict(complete and cold.compile_s[0] <= GOAL_COLD_S)}; slowest cached "
            f"{cached.compile_s[1]:.2f} s ({cached.model}) (goal <= {GOAL_CACHED_S:g} s): "
            f"{verdict(complete and cached.compile_s[1] <= GOAL_CACHED_S)}")
    inaccurate = [r.model for r in measured if not r.accuracy.ok]
    lines.append(f"- accuracy (fp32 within {MAX_REL_DIFF:g} of ORT, int8 bit-exact with the "
                 f"reference): {verdict(complete and not inaccurate)}"
                 + (f" ({', '.join(inaccurate)} off)" if inaccurate else ""))
    if failed:
        lines.append(f"- failed in byoc or onnxruntime: {', '.join(failed)}: FAIL")
    return lines


def compile_table(run: Run) -> list[str]:
    lines = ["| model | MFLOP | weights (M) | cold s | cached s | goal applies |",
             "|---|--:|--:|--:|--:|---|"]
    for r in run.results:
        if r.compile_s:
            lines.append(f"| {r.model} | {fmt(r.flops / 1e6)} "
                         f"| {fmt(run.models[r.model].weights / 1e6)} "
                         f"| {r.compile_s[0]:.2f} | {r.compile_s[1]:.2f} "
                         f"| {'yes' if r.model in run.size_limited else 'no'} |")
    return lines


def plural(threads: int) -> str:
    return f"{threads} thread{'s' * (threads > 1)}"


def header(run: Run, command: str) -> list[str]:
    peaks = ", ".join(f"{peak:.0f} GFLOP/s at {plural(threads)}"
                      for threads, peak in run.peaks.items())
    blas = ("" if SET_BLAS_THREADS else
            " (NOT in this run: OpenBLAS's set_num_threads was not found)")
    loads = "; ".join(", ".join(f"{x:.2f}" for x in load) for load in run.load_averages)
    notes = [
        f"Machine: {machine()}",
        (f"Date: {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC; the whole run (building "
         f"missing models included) took {run.seconds:.0f} s"),
        f"Versions: Python {platform.python_version()}, {versions()}",
        ("fp32 peak: numpy float32 2048x2048 matmul, median of 5, measured in this run before "
         "and after each thread count's models (the higher of the two counts, so that a "
         f"moment of load on the machine does not lower it): {peaks}"),
        ("Latency: median of the timed runs after the warm-up, byoc and onnxruntime timed in "
         f"alternating blocks of 5 runs with a {SETTLE_S * 1e3:.0f} ms pause between blocks "
         "(onnxruntime's worker threads spin for a while after each run and would otherwise "
         "take byoc's cores; a longer pause leaves this virtual machine's processors idle, "
         "and they come back slowly: see SETTLE_S in the script); onnxruntime is the "
         "CPUExecutionProvider with all graph optimizations, "
         "intra_op_num_threads = threads, inter_op_num_threads = 1. byoc/ORT > 1 means byoc "
         "is slower."),
        ("MFLOP: 2 * MACs of Conv, Gemm and MatMul in byoc's optimized IR. % of peak is of "
         "the numpy peak at the same thread count."),
        ("nodes cpu_llvm / reference: nodes of byoc's optimized graph run by each plugin; the "
         "reference (numpy) interpreter takes what cpu_llvm does not claim, and fallbacks "
         "counts cpu_llvm partitions that failed to compile and ran on the reference instead. "
         f"Reference partitions run with numpy's OpenBLAS limited to the same thread count{blas}."),
        ("accuracy, on the seed-0 input: for a float model max |byoc - ORT| / max |ORT| over "
         f"the output, (!) marking one above {MAX_REL_DIFF:g}; for an int8 model whether the "
         "output equals byoc's reference interpreter's (byoc.testing.compile_reference) bit "
         "for bit, or how many steps of the output's quantization scale it is off."),
        ("Compile: byoc.compile of the model for cpu_llvm, at the first thread count, with "
         "BYOC_CACHE_DIR an empty directory (cold), then again with the same directory "
         f"(cached), the median of {COMPILE_RUNS} of each (each cold compile with a new "
         "empty directory), in this process (after the models before it: llvmlite is initialised). "
         "Whatever the thread count, a compile uses every core: LLVM compiles a large "
         "partition's modules at the same time in worker processes; the cached compile reads "
         "the lowering and the objects back (cpu_llvm's caches). The compile goals apply to "
         "the models with no more FLOPs and no more weights than "
         f"{SIZE_LIMIT_MODEL}, and to {', '.join(ALWAYS_SIZE_LIMITED)}."),
        ("Goals (issue 22), per thread count: median byoc/ORT <= "
         f"{GOAL_MEDIAN_RATIO}, no model above {GOAL_MAX_RATIO}, each int8 model <= "
         f"{GOAL_INT8_RATIO}, compile <= {GOAL_COLD_S:g} s cold and {GOAL_CACHED_S:g} s "
         "cached; a model that failed fails every goal of its thread count."),
        (f"Load average (1, 5, 15 min) at the start and end of the run: {loads} (on "
         f"{os.cpu_count()} logical CPUs; other work on the machine slows the multi-thread "
         "runs most)."),
    ]
    return (["# cpu_llvm vs onnxruntime", "", "Produced by:", "", f"    {command}", ""]
            + [f"- {note}" for note in notes])


def render(run: Run, command: str) -> str:
    lines = header(run, command)
    for threads in run.threads:
        results = [r for r in run.results if r.threads == threads]
        lines += ["", f"## {plural(threads)}: goals", ""] + goals(results, run.size_limited)
    for threads in run.threads:
        peak = run.peaks[threads]
        lines += ["", f"## {plural(threads)} (numpy peak {peak:.0f} GFLOP/s)", ""]
        lines += results_table([r for r in run.results if r.threads == threads], peak)
    lines += ["", f"## Compile time (at {plural(run.threads[0])})", ""] + compile_table(run)
    lines += ["", "## Ops per plugin", "", "| model | cpu_llvm | reference |", "|---|---|---|"]
    seen = set()
    for r in run.results:
        if r.model not in seen and not r.error:
            seen.add(r.model)
            lines.append(f"| {r.model} | {ops_text(r.ops.get(PLUGIN, Counter()))} "
                         f"| {ops_text(r.ops.get(HOST, Counter()))} |")
    fallbacks = {message for r in run.results for message in r.fallbacks}
    if fallbacks:
        lines += ["", "## Fallbacks", ""] + [f"- {' '.join(message.split())[:500]}"
                                             for message in sorted(fallbacks)]
    return "\n".join(lines) + "\n"


# Main

def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default=",".join(DEFAULT_MODELS),
                        help="comma-separated corpus or zoo models (default: the corpus, "
                             "%(default)s)")
    parser.add_argument("--threads", default="1,2",
                        help="comma-separated thread counts (default: %(default)s)")
    parser.add_argument("--runs", type=int, default=10, help="timed runs each (default: 10)")
    parser.add_argument("--warmup", type=int, default=3, help="warm-up runs each (default: 3)")
    parser.add_argument("--models-dir", type=Path, default=ROOT / "examples" / "build",
                        help="where the models are, or are built (default: %(default)s)")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "RESULTS.md",
                        help="markdown file whose cpu_llvm section to write (default: "
                             "%(default)s)")
    args = parser.parse_args(argv)
    args.models = [name for name in args.models.split(",") if name]
    args.threads = [int(n) for n in args.threads.split(",") if n]
    if args.runs < 1 or args.warmup < 0 or not args.threads or min(args.threads) < 1:
        parser.error("--runs must be >= 1, --warmup >= 0 and --threads positive integers")
    unknown = [name for name in args.models if name not in BUILDERS]
    if unknown or not args.models:
        parser.error(f"unknown model(s) {', '.join(unknown) or '(none given)'}; choose from "
                     f"{', '.join(BUILDERS)}")
    return args


def command_line(argv: list[str] | None) -> str:
    argv = sys.argv[1:] if argv is None else argv
    return shlex.join(["python", "benchmarks/cpu_llvm.py", *argv])


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    started = time.perf_counter()
    run = Run(threads=args.threads, load_averages=[os.getloadavg()])
    for name in dict.fromkeys([*args.models, SIZE_LIMIT_MODEL]):
        run.models[name] = Model.load(name, args.models_dir)
    run.size_limit = run.models[SIZE_LIMIT_MODEL]
    if SIZE_LIMIT_MODEL not in args.models:
        del run.models[SIZE_LIMIT_MODEL]
    feeds = {name: sample_inputs(model.path) for name, model in run.models.items()}
    references = {name: reference_output(model.path, feeds[name])
                  for name, model in run.models.items() if is_int8(name)}

    # Compiles for the latency runs use a private object cache, leaving the user's alone.
    with fresh_object_cache():
        for threads in args.threads:
            set_blas_threads(threads)
            peak_before = numpy_peak_gflops()
            log(f"{plural(threads)}: numpy peak {peak_before:.0f} GFLOP/s")
            for name, model in run.models.items():
                result = measure_or_report(model, threads, feeds[name], args.warmup, args.runs,
                                           threads == args.threads[0], references.get(name))
                run.results.append(result)
                if result.error:
                    log(f"  {name}: FAILED {result.error}")
                    continue
                compiled = (f", compile {result.compile_s[0]:.2f} s cold / "
                            f"{result.compile_s[1]:.2f} s cached" if result.compile_s else "")
                log(f"  {name}: byoc {result.byoc_s * 1e3:.3g} ms, ORT {result.ort_s * 1e3:.3g}"
                    f" ms ({result.ratio:.2f}), {result.accuracy.text()}{compiled}")
            peak_after = numpy_peak_gflops()
            log(f"{plural(threads)}: numpy peak {peak_after:.0f} GFLOP/s after the models")
            run.peaks[threads] = max(peak_before, peak_after)
    run.load_averages.append(os.getloadavg())
    run.seconds = time.perf_counter() - started
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_section("cpu_llvm", render(run, command_line(argv)), args.out)
    log(f"wrote {args.out} ({run.seconds:.0f} s)")


if __name__ == "__main__":
    main()
