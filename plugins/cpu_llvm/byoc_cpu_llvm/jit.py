"""Compiling LLVM IR to machine code for the host, with an on-disk object cache.

A program's IR text holds several modules (the entry point's, then the kernels', separated
by :data:`~byoc_cpu_llvm.program.MODULE_SEPARATOR`). ``compile_ir`` parses, verifies and
optimizes each module and emits an object file for it (:mod:`.compile_worker`); a large
program's modules compile at the same time on the machine's cores, in this process and in
worker processes (llvmlite lets one thread at a time into LLVM). Objects are cached under
``$BYOC_CACHE_DIR`` (default ``~/.cache/byoc``) keyed by the sha256 of the module's text, the
host CPU and features, the llvmlite version and the optimization settings, so compiling the
same partition again only reads files, and a model that changed in one layer compiles only
the modules that changed. ``LoadedObject`` links a program's objects into one MCJIT engine
and hands out function addresses.

The optimizer runs LLVM's O2 pipeline with both vectorizers and without loop unrolling: the
kernels unroll their hot loops themselves (the register-blocked micro-kernels), and LLVM
unrolling the others made ResNet-50's and MobileNet's code 1.5-2x larger and their compile
1.5-3.5x slower for no run-time gain we could measure (O3 instead of O2 likewise).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

import llvmlite.binding as llvm

from byoc.errors import PluginError
from byoc_cpu_llvm import cache_budget
from byoc_cpu_llvm.compile_worker import (
    LENGTH,
    OK,
    InvalidIR,
    emit_object,
    read_exactly,
)
from byoc_cpu_llvm.program import MODULE_SEPARATOR
from byoc_cpu_llvm.target import RELOCATION, host_target, new_target_machine


def cache_dir() -> Path:
    root = os.environ.get("BYOC_CACHE_DIR") or Path.home() / ".cache" / "byoc"
    return Path(root) / "cpu_llvm"


# The optimizer's settings (see the module docstring); part of every object's cache key.
SPEED_LEVEL = 2
VECTORIZE = True
UNROLL_LOOPS = False
OPTIMIZATION = f"O{SPEED_LEVEL} vectorize={VECTORIZE} unroll={UNROLL_LOOPS} reloc={RELOCATION}"


def object_key(ir_text: str) -> str:
    digest = hashlib.sha256(ir_text.encode())
    digest.update(host_target().key.encode())
    digest.update(OPTIMIZATION.encode())
    return digest.hexdigest()


def compile_ir(ir_text: str) -> list[bytes]:
    """Machine code (an object file) for each module of ``ir_text``: from the cache where it
    is there, the others compiled (:func:`compile_modules`) and cached."""
    modules = ir_text.split(MODULE_SEPARATOR)
    paths = [cache_dir() / f"{object_key(module)}.o" for module in modules]
    objects: list[bytes | None] = [_read(path) for path in paths]
    missing = [i for i, obj in enumerate(objects) if obj is None]
    for i, obj in zip(missing, compile_modules([modules[i] for i in missing])):
        objects[i] = obj
        _write(paths[i], obj)
    return objects


def _read(path: Path) -> bytes | None:
    with contextlib.suppress(OSError):
        obj = path.read_bytes()
        cache_budget.used(path)
        return obj
    return None


def _write(path: Path, obj: bytes) -> None:
    """Cache ``obj`` (a read-only or full cache only costs the next compile its time), then
    keep the objects under ``BYOC_OBJECT_CACHE_BYTES`` (default 1 GiB)."""
    with contextlib.suppress(OSError):
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path.parent, delete=False) as tmp:
            tmp.write(obj)
        os.replace(tmp.name, path)
        cache_budget.stored(path.parent, _is_object, len(obj), cache_budget.limit_from_env(
            "BYOC_OBJECT_CACHE_BYTES", OBJECT_CACHE_BYTES))


OBJECT_CACHE_BYTES = 1 << 30


def _is_object(path: Path) -> bool:
    return path.suffix == ".o"


# Modules of fewer characters in all (about a second of LLVM's time) compile in this process:
# a worker process takes ~0.1 s to start.
PARALLEL_MIN_CHARS = 400_000


def compile_modules(texts: list[str]) -> list[bytes]:
    """The object file of each module: in this process and, when there is enough to do and
    more than one core, in worker processes at the same time (:mod:`.compile_worker`), each
    taking the largest module left."""
    workers = min(len(texts), _cores())
    if workers < 2 or sum(len(text) for text in texts) < PARALLEL_MIN_CHARS:
        return [_compile(text) for text in texts]
    objects: list[bytes | None] = [None] * len(texts)
    queue = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
    lock = threading.Lock()

    def take() -> int | None:
        with lock:
            return queue.pop(0) if queue else None

    def in_worker() -> None:
        with _Worker() as worker:
            while (i := take()) is not None:
                objects[i] = worker.compile(texts[i]) if worker.alive else None

    helpers = [threading.Thread(target=in_worker, daemon=True) for _ in range(workers - 1)]
    for helper in helpers:
        helper.start()
    while (i := take()) is not None:
        objects[i] = _compile(texts[i])
    for helper in helpers:
        helper.join()
    # What a worker could not compile (it died, or LLVM refused the IR) is compiled here,
    # where a refusal raises its PluginError.
    return [obj if obj is not None else _compile(text) for obj, text in zip(objects, texts)]


def _cores() -> int:
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


class _Worker:
    """A compile worker process (:mod:`.compile_worker`) with this process's settings and
    this copy of byoc_cpu_llvm."""

    def __init__(self) -> None:
        package_root = str(Path(__file__).resolve().parent.parent)
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(
            [package_root, *filter(None, [os.environ.get("PYTHONPATH")])])
        try:
            self._process = subprocess.Popen(
                [sys.executable, "-m", "byoc_cpu_llvm.compile_worker", str(SPEED_LEVEL),
                 str(int(VECTORIZE)), str(int(UNROLL_LOOPS))],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                env=env)
            self.alive = True
        except OSError:
            self._process, self.alive = None, False

    def compile(self, text: str) -> bytes | None:
        """The object file, or None (the worker died, or LLVM refused the IR)."""
        try:
            data = text.encode()
            self._process.stdin.write(LENGTH.pack(len(data)) + data)
            self._process.stdin.flush()
            answer = read_exactly(self._process.stdout, 1 + LENGTH.size)
            body = answer and read_exactly(self._process.stdout,
                                           LENGTH.unpack(answer[1:])[0])
        except OSError:
            body = None
        if body is None:
            self.alive = False
            return None
        return body if answer[0] == OK else None

    def __enter__(self) -> "_Worker":
        return self

    def __exit__(self, *exc) -> None:
        if self._process is None:
            return
        with contextlib.suppress(OSError):
            self._process.stdin.close()
        try:
            self._process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()


def _compile(ir_text: str) -> bytes:
    try:
        return emit_object(ir_text, SPEED_LEVEL, VECTORIZE, UNROLL_LOOPS)
    except InvalidIR as exc:
        raise PluginError(f"cpu_llvm generated invalid LLVM IR: {exc}") from exc


class LoadedObject:
    """A program's objects linked into the process (their calls to one another resolved);
    keeps its engine alive."""

    def __init__(self, objects: list[bytes]) -> None:
        host = host_target()
        empty = llvm.parse_assembly(f'target triple = "{host.triple}"\n')
        self._engine = llvm.create_mcjit_compiler(empty, new_target_machine())
        self._objects = [llvm.ObjectFileRef.from_data(obj) for obj in objects]
        for obj in self._objects:
            self._engine.add_object_file(obj)
        self._engine.finalize_object()

    def address(self, name: str) -> int:
        address = self._engine.get_function_address(name)
        if not address:
            raise PluginError(f"cpu_llvm: the compiled code has no function {name!r}")
        return address
