"""Benchmark byoc's host backend (cpu_llvm) against onnxruntime on the example zoo.

For each model and thread count, in one process on the same machine:

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
- compile times of ``--compile-model`` (resnet50): cold, with ``BYOC_CACHE_DIR`` an empty
  directory, and cached, compiling again with the same directory.

Partitions left to the reference interpreter run numpy, whose OpenBLAS thread count is set to
the same N (through OpenBLAS's own set_num_threads) so that they do not use more cores than
onnxruntime may.

    python benchmarks/cpu_llvm.py [--models mlp,cnn,...] [--threads 1,2] [--runs 10]
                                  [--out benchmarks/RESULTS.md]
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
import onnxruntime as ort
from results_file import write_section

import byoc
from byoc.core.flops import graph_flops
from byoc.pipeline import FallbackWarning

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_MODELS = ("mlp", "cnn", "resnet18", "transformer", "cnn_int8", "resnet18_int8", "resnet50",
                  "vgg19")
PLUGIN = "cpu_llvm"
HOST = "reference"
PEAK_SIZE = 2048
MAX_REL_DIFF = 1e-3  # a larger difference from onnxruntime is flagged with (!) in the table


# Models and FLOPs

def load_zoo():
    from byoc import model_zoo

    return model_zoo


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


def time_alternating(first: Callable[[], object], second: Callable[[], object],
                     warmup: int, runs: int, block: int = 5,
                     settle: float = 0.2) -> tuple[float, float]:
    """Median seconds of ``first`` and of ``second``, timed in alternating blocks of
    ``block`` runs (each block after one untimed run), with a pause of ``settle`` seconds
    between blocks. Blocks rather than single alternating runs because onnxruntime's worker
    threads keep spinning for a while after each run: right after an onnxruntime run they
    occupy the cores byoc's threads would use (and the pause lets them go idle)."""
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

@dataclass
class Result:
    model: str
    threads: int
    flops: int
    byoc_s: float
    ort_s: float
    ops: dict[str, Counter]
    fallbacks: list[str]
    max_rel_diff: float
    error: str = ""  # set when byoc or onnxruntime failed; the timings are then meaningless

    def nodes(self, plugin: str) -> int:
        return sum(self.ops.get(plugin, Counter()).values())


@dataclass
class Run:
    threads: list[int]
    peaks: dict[int, float] = field(default_factory=dict)
    results: list[Result] = field(default_factory=list)
    compile_times: dict[str, float] = field(default_factory=dict)
    compile_model: str = ""
    compile_error: str = ""
    seconds: float = 0.0
    load_averages: list[tuple[float, float, float]] = field(default_factory=list)


def measure_model(name: str, path: Path, flops: int, threads: int, feeds: dict[str, np.ndarray],
                  warmup: int, runs: int) -> Result:
    compiled, fallbacks = compile_byoc(path, threads)
    session = ort_session(path, threads)
    (output_name,) = compiled.outputs
    expected = session.run(None, feeds)[0]
    actual = compiled.run(feeds)[output_name]
    max_rel_diff = float(np.abs(actual - expected).max() / max(np.abs(expected).max(), 1e-30))
    byoc_s, ort_s = time_alternating(lambda: compiled.run(feeds),
                                     lambda: session.run(None, feeds), warmup, runs)
    return Result(name, threads, flops, byoc_s, ort_s, ops_by_plugin(compiled), fallbacks,
                  max_rel_diff)


def measure_or_report(name: str, path: Path, flops: int, threads: int, warmup: int,
                       runs: int, feeds: dict[str, np.ndarray]) -> Result:
    """measure_model, or a Result carrying the error if byoc or onnxruntime fails, so that one
    broken kernel does not cost the rest of the table."""
    try:
        return measure_model(name, path, flops, threads, feeds, warmup, runs)
    except Exception as exc:  # noqa: BLE001 - any failure is reported in the table
        return Result(name, threads, flops, float("nan"), float("nan"), {}, [], float("nan"),
                      error=f"{type(exc).__name__}: {exc}")


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


def measure_compile_times(path: Path, threads: int) -> dict[str, float]:
    """Seconds to compile cold (empty BYOC_CACHE_DIR) and cached (the same directory again)."""
    times = {}
    with fresh_object_cache():
        for label in ("cold", "cached"):
            start = time.perf_counter()
            compile_byoc(path, threads)
            times[label] = time.perf_counter() - start
    return times


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


def results_table(results: list[Result], peak: float) -> list[str]:
    lines = [
        ("| model | MFLOP | byoc ms | ORT ms | byoc/ORT | GFLOP/s byoc / ORT "
         "| % of peak byoc / ORT | nodes cpu_llvm / reference | fallbacks | max rel. diff |"),
        "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for r in results:
        if r.error:
            message = " ".join(r.error.split())[:300].replace("|", "\\|")
            lines.append(f"| {r.model} | {fmt(r.flops / 1e6)} | failed: {message} "
                         "| | | | | | | |")
            continue
        byoc_rate, ort_rate = r.flops / r.byoc_s / 1e9, r.flops / r.ort_s / 1e9
        lines.append(
            f"| {r.model} | {fmt(r.flops / 1e6)} | {fmt(r.byoc_s * 1e3)} | {fmt(r.ort_s * 1e3)} "
            f"| {r.byoc_s / r.ort_s:.2f} | {fmt(byoc_rate)} / {fmt(ort_rate)} "
            f"| {fmt(100 * byoc_rate / peak)} / {fmt(100 * ort_rate / peak)} "
            f"| {r.nodes(PLUGIN)} / {r.nodes(HOST)} | {len(r.fallbacks)} "
            f"| {r.max_rel_diff:.1e}{' (!)' if r.max_rel_diff > MAX_REL_DIFF else ''} |")
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
         "alternating blocks of 5 runs with a 0.2 s pause between blocks (onnxruntime's "
         "worker threads spin for a while after each run and would otherwise take byoc's "
         "cores); onnxruntime is the CPUExecutionProvider with all graph optimizations, "
         "intra_op_num_threads = threads, inter_op_num_threads = 1. byoc/ORT > 1 means byoc "
         "is slower."),
        ("MFLOP: 2 * MACs of Conv, Gemm and MatMul in byoc's optimized IR. % of peak is of "
         "the numpy peak at the same thread count."),
        ("nodes cpu_llvm / reference: nodes of byoc's optimized graph run by each plugin; the "
         "reference (numpy) interpreter takes what cpu_llvm does not claim, and fallbacks "
         "counts cpu_llvm partitions that failed to compile and ran on the reference instead. "
         f"Reference partitions run with numpy's OpenBLAS limited to the same thread count{blas}."),
        ("max rel. diff: max |byoc - ORT| / max |ORT| over the output, on the seed-0 input; "
         f"(!) marks one above {MAX_REL_DIFF:g}."),
        (f"Load average (1, 5, 15 min) at the start and end of the run: {loads} (on "
         f"{os.cpu_count()} logical CPUs; other work on the machine slows the multi-thread "
         "runs most)."),
    ]
    return (["# cpu_llvm vs onnxruntime", "", "Produced by:", "", f"    {command}", ""]
            + [f"- {note}" for note in notes])


def render(run: Run, command: str) -> str:
    lines = header(run, command)
    for threads in run.threads:
        peak = run.peaks[threads]
        lines += ["", f"## {plural(threads)} (numpy peak {peak:.0f} GFLOP/s)", ""]
        lines += results_table([r for r in run.results if r.threads == threads], peak)
    if run.compile_error:
        lines += ["", f"## Compile time of {run.compile_model}", "",
                  f"Compiling failed: {run.compile_error}"]
    if run.compile_times:
        lines += ["", f"## Compile time of {run.compile_model}", "",
                  "| BYOC_CACHE_DIR | seconds |", "|---|--:|",
                  f"| empty (cold) | {run.compile_times['cold']:.2f} |",
                  f"| same again (cached) | {run.compile_times['cached']:.2f} |"]
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
                        help="comma-separated zoo models (default: %(default)s)")
    parser.add_argument("--threads", default="1,2",
                        help="comma-separated thread counts (default: %(default)s)")
    parser.add_argument("--runs", type=int, default=10, help="timed runs each (default: 10)")
    parser.add_argument("--warmup", type=int, default=3, help="warm-up runs each (default: 3)")
    parser.add_argument("--compile-model", default="resnet50",
                        help="model whose cold and cached compile times are measured; "
                             "'' for none (default: %(default)s)")
    parser.add_argument("--zoo-dir", type=Path, default=ROOT / "examples" / "build",
                        help="where the zoo models are, or are built (default: %(default)s)")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "RESULTS.md",
                        help="markdown file whose cpu_llvm section to write (default: "
                             "%(default)s)")
    args = parser.parse_args(argv)
    args.models = [name for name in args.models.split(",") if name]
    args.threads = [int(n) for n in args.threads.split(",") if n]
    if args.runs < 1 or args.warmup < 0 or not args.threads or min(args.threads) < 1:
        parser.error("--runs must be >= 1, --warmup >= 0 and --threads positive integers")
    return args


def command_line(argv: list[str] | None) -> str:
    argv = sys.argv[1:] if argv is None else argv
    return shlex.join(["python", "benchmarks/cpu_llvm.py", *argv])


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    started = time.perf_counter()
    zoo = load_zoo()
    unknown = [name for name in args.models if name not in zoo.MODELS]
    if unknown:
        sys.exit(f"unknown model(s) {', '.join(unknown)}; the zoo has {', '.join(zoo.MODELS)}")
    paths = {name: zoo.build(name, args.zoo_dir) for name in args.models}
    flops = {name: graph_flops(byoc.import_model(path, optimize_graph=True))
             for name, path in paths.items()}
    run = Run(threads=args.threads, load_averages=[os.getloadavg()])
    # Compiles for the latency runs use a private object cache, leaving the user's alone.
    with fresh_object_cache():
        for threads in args.threads:
            set_blas_threads(threads)
            peak_before = numpy_peak_gflops()
            log(f"{plural(threads)}: numpy peak {peak_before:.0f} GFLOP/s")
            for name, path in paths.items():
                result = measure_or_report(name, path, flops[name], threads, args.warmup,
                                           args.runs, zoo.sample_inputs(path))
                if result.error:
                    log(f"  {name}: FAILED {result.error}")
                    run.results.append(result)
                    continue
                log(f"  {name}: byoc {result.byoc_s * 1e3:.3g} ms, ORT {result.ort_s * 1e3:.3g}"
                    f" ms, nodes {PLUGIN} {result.nodes(PLUGIN)} / {HOST} {result.nodes(HOST)}")
                run.results.append(result)
            peak_after = numpy_peak_gflops()
            log(f"{plural(threads)}: numpy peak {peak_after:.0f} GFLOP/s after the models")
            run.peaks[threads] = max(peak_before, peak_after)
        if args.compile_model:
            path = zoo.build(args.compile_model, args.zoo_dir)
            run.compile_model = args.compile_model
            try:
                run.compile_times = measure_compile_times(path, max(args.threads))
            except Exception as exc:  # noqa: BLE001 - reported in RESULTS.md
                run.compile_error = f"{type(exc).__name__}: {exc}"
            log(f"{args.compile_model} compile: {run.compile_times or run.compile_error}")
    run.load_averages.append(os.getloadavg())
    run.seconds = time.perf_counter() - started
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_section("cpu_llvm", render(run, command_line(argv)), args.out)
    log(f"wrote {args.out} ({run.seconds:.0f} s)")


if __name__ == "__main__":
    main()
