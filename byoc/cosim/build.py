"""Verilating a design into a shared library, once per distinct input, in an on-disk cache.

pyverilator runs Verilator and writes its port wrapper (``gen_only``); the harness from
:mod:`byoc.cosim.harness` is added to the same Verilator command line, and make compiles all of
it into one library. A build lives in ``<cache>/<top>-<key>``, where the key is a sha256 of
everything that shapes the library (see :func:`build_key`). Builds happen in a temporary
directory beside it that is renamed into place when complete, so a directory with that name is
always a finished build, and of two processes building the same key the slower one just uses
the winner's.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterable, Mapping
from importlib import metadata
from pathlib import Path

from byoc.cosim.harness import HARNESS_VERSION, harness_source
from byoc.cosim.model import CosimModel, check_ports
from byoc.errors import CosimError

DEFAULT_VERILATOR_ARGS = ("-O3", "--x-assign", "fast", "--x-initial", "fast")
# The model's code is compiled for this machine's processor (-march=native), so the cache key
# holds what the compiler makes of that: a cache shared by different machines keeps a build per
# kind of processor. Calls inside the library bind to its own functions (no PLT, no
# interposition). Against -O2 alone, the VTA shell runs about 14% more cycles per second.
COMPILER = "g++"  # what verilated.mk compiles with
MAKE_ARGS = ("OPT_FAST=-O3 -march=native -fno-semantic-interposition", "OPT_SLOW=-O2",
             "OPT_GLOBAL=-O2", "LDFLAGS=-fPIC -shared -Wl,-Bsymbolic")
INCLUDE_SUFFIXES = (".v", ".sv", ".vh", ".svh")
LOG_LINES_SHOWN = 30
MARKER = "build.json"

# PyVerilator.build prints Verilator's output to the process's own stdout; run in a child
# process, that output lands in the build log instead.
_GENERATE = """\
import json, subprocess, sys
from pyverilator import PyVerilator
try:
    PyVerilator.build(**json.loads(sys.argv[1]), gen_only=True)
except subprocess.CalledProcessError as error:
    sys.exit(error.returncode)
"""


def find_verilator() -> str:
    """The path of the ``verilator`` executable on PATH."""
    path = shutil.which("verilator")
    if path is None:
        raise CosimError(
            "Verilator is not installed: there is no `verilator` on PATH, and co-simulation "
            "compiles Verilog with it. Install it with `sudo apt-get install -y verilator` "
            "(./dev setup does this).")
    return path


def default_cache_dir() -> Path:
    root = os.environ.get("BYOC_CACHE_DIR") or Path.home() / ".cache" / "byoc"
    return Path(root) / "cosim"


def build_model(top: str, sources: Iterable[os.PathLike | str],
                include_dirs: Iterable[os.PathLike | str] = (),
                defines: Mapping[str, object] | None = None, clock: str = "clk",
                done: str = "o_done", cache_dir: os.PathLike | str | None = None,
                verilator_args: Iterable[str] = ()) -> CosimModel:
    """Verilate ``top`` from ``sources`` (or reuse the cached build) and load it.

    ``f"{top}.v"`` or ``f"{top}.sv"`` must be among ``sources``; every source is compiled.
    ``include_dirs`` are passed as ``-I`` and ``-y``, ``defines`` as ``+define+NAME=value``
    (a value of None defines the bare name). ``clock`` must be a 1-bit input and ``done`` a
    1-bit output of ``top``.
    """
    sources = [_existing(Path(source), "source file", top) for source in sources]
    top_file = _top_file(top, sources)
    include_dirs = [_existing(Path(directory), "include directory", top)
                    for directory in include_dirs]
    define_args = _define_args(defines or {}, top)
    verilator_args = [str(arg) for arg in verilator_args]
    verilator = find_verilator()
    key = build_key(top=top, sources=sources, include_dirs=include_dirs, define_args=define_args,
                    clock=clock, done=done, verilator_args=verilator_args,
                    verilator_version=_verilator_version(verilator),
                    compiler_target=native_target())
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    build_dir = cache / f"{top}-{key[:16]}"
    if not is_complete(build_dir):
        args = [*DEFAULT_VERILATOR_ARGS, "--top-module", top]
        for directory in include_dirs:
            args += [f"-I{directory}", "-y", str(directory)]
        args += verilator_args
        args += [str(source) for source in sources if source != top_file]
        _build(build_dir, top=top, top_file=top_file, args=args, define_args=define_args,
               clock=clock, done=done, key=key)
    return CosimModel(build_dir / f"V{top}", top=top, clock=clock, done=done)


def build_key(*, top: str, sources: list[Path], include_dirs: list[Path], define_args: list[str],
              clock: str, done: str, verilator_args: list[str], verilator_version: str,
              compiler_target: str) -> str:
    """sha256 of every input that shapes the built library, as hex."""
    settings = {
        "top": top, "clock": clock, "done": done, "defines": define_args,
        "verilator_args": [*DEFAULT_VERILATOR_ARGS, *verilator_args], "make_args": MAKE_ARGS,
        "verilator": verilator_version, "compiler_target": compiler_target,
        "harness": HARNESS_VERSION,
        "pyverilator": metadata.version("pyverilator-mm"),
    }
    digest = hashlib.sha256(json.dumps(settings, sort_keys=True).encode())
    for source in sources:
        _hash_file(digest, source.name, source)
    for index, directory in enumerate(include_dirs):
        for path in sorted(directory.rglob("*")):
            if path.suffix in INCLUDE_SUFFIXES and path.is_file():
                _hash_file(digest, f"{index}/{path.relative_to(directory)}", path)
    return digest.hexdigest()


def is_complete(build_dir: Path) -> bool:
    """Whether ``build_dir`` holds a finished build (its marker is written last)."""
    return (build_dir / MARKER).is_file()


def _hash_file(digest, name: str, path: Path) -> None:
    data = path.read_bytes()
    digest.update(f"{name}\0{len(data)}\0".encode())
    digest.update(data)


def _existing(path: Path, what: str, top: str) -> Path:
    if not path.exists():
        raise CosimError(f"Co-simulation of {top!r}: the {what} {path} does not exist.")
    return path.resolve()


def _top_file(top: str, sources: list[Path]) -> Path:
    for source in sources:
        if source.name in (f"{top}.v", f"{top}.sv"):
            return source
    names = ", ".join(source.name for source in sources) or "none"
    raise CosimError(f"Co-simulation of {top!r} needs {top}.v or {top}.sv among the sources "
                     f"(the top module is named after its file); sources given: {names}.")


def _define_args(defines: Mapping[str, object], top: str) -> list[str]:
    args = []
    for name, value in sorted(defines.items()):
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
            raise CosimError(f"Co-simulation of {top!r}: {name!r} is not a Verilog macro name.")
        args.append(name if value is None else f"{name}={value}")
    return args


@functools.cache
def native_target() -> str:
    """What ``-march=native`` selects on this machine: the compiler's list of its target
    options and their values (empty when the compiler cannot be run; the build then fails
    with its own message)."""
    try:
        result = subprocess.run([COMPILER, "-march=native", "-Q", "--help=target"],
                                capture_output=True, text=True, check=False)
    except OSError:
        return ""
    return result.stdout


@functools.cache
def _verilator_version(verilator: str) -> str:
    result = subprocess.run([verilator, "--version"], capture_output=True, text=True,
                            check=False)
    return result.stdout.strip()


def _build(build_dir: Path, *, top: str, top_file: Path, args: list[str],
           define_args: list[str], clock: str, done: str, key: str) -> None:
    build_dir.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{build_dir.name}.", dir=build_dir.parent))
    log_path = work / "build.log"
    # A failed build leaves only its log behind, here.
    failed_log = build_dir.parent / f"{build_dir.name}.failed.log"
    try:
        harness = work / "byoc_cosim_harness.cpp"
        harness.write_text(harness_source(top, clock, done))
        spec = {"top_verilog_file": str(top_file), "build_dir": str(work),
                "verilog_defines": define_args, "args": [*args, str(harness)]}
        with open(log_path, "w") as log:
            _run([sys.executable, "-c", _GENERATE, json.dumps(spec)], log,
                 f"Verilating {top!r}", failed_log, shown=f"PyVerilator.build(**{spec})")
            inputs, outputs = _ports(work / f"V{top}.h")
            check_ports(top, inputs, outputs, clock, done)
            _run(["make", "-C", str(work), "-f", f"V{top}.mk", f"-j{_jobs()}", *MAKE_ARGS],
                 log, f"Compiling the Verilated {top!r}", failed_log)
        (work / MARKER).write_text(json.dumps(
            {"top": top, "key": key, "top_file": str(top_file), "verilator_args": args,
             "defines": define_args}, indent=1))
    except BaseException:
        if log_path.exists():
            shutil.move(log_path, failed_log)
        shutil.rmtree(work, ignore_errors=True)
        raise
    failed_log.unlink(missing_ok=True)
    if build_dir.exists() and not is_complete(build_dir):
        shutil.rmtree(build_dir, ignore_errors=True)
    try:
        os.rename(work, build_dir)
    except OSError:
        # Another process finished the same build first; its result is as good as ours.
        shutil.rmtree(work, ignore_errors=True)
        if not is_complete(build_dir):
            raise CosimError(f"Co-simulation of {top!r}: could not move the build into "
                             f"{build_dir}.") from None


def _run(command: list[str], log, stage: str, failed_log: Path, shown: str | None = None) -> None:
    """Run one build stage with its output appended to ``log``; CosimError when it fails.

    The log starts the stage with ``shown``, or else the command line.
    """
    log.write(f"$ {shown or ' '.join(command)}\n")
    log.flush()
    try:
        result = subprocess.run(command, stdout=log, stderr=subprocess.STDOUT, check=False)
    except FileNotFoundError as error:
        raise CosimError(f"{stage} failed: cannot run {command[0]!r} ({error}).") from None
    if result.returncode != 0:
        tail = _tail(Path(log.name), LOG_LINES_SHOWN)
        raise CosimError(f"{stage} failed (exit status {result.returncode}). The last lines "
                         f"of its output:\n{tail}\nFull log: {failed_log}")


def _tail(path: Path, lines: int) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def _ports(header: Path) -> tuple[dict[str, int], dict[str, int]]:
    """Top-level inputs and outputs (name -> width) declared in the Verilated class header."""
    ports: dict[str, dict[str, int]] = {"IN": {}, "OUT": {}}
    pattern = re.compile(r"VL_(IN|OUT)\w*\(&?(\w+),(\d+),(\d+)")
    for match in pattern.finditer(header.read_text()):
        direction, name, msb, lsb = match.groups()
        ports[direction][name] = int(msb) - int(lsb) + 1
    return ports["IN"], ports["OUT"]


def _jobs() -> int:
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1
