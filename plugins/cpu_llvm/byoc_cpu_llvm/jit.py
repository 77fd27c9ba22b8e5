"""Compiling LLVM IR to machine code for the host, with an on-disk object cache.

``compile_ir`` parses, verifies and optimizes a module and emits an object file; objects are
cached under ``$BYOC_CACHE_DIR`` (default ``~/.cache/byoc``) keyed by the sha256 of the IR
text, the host CPU and features, the llvmlite version and the optimization settings, so
compiling the same partition again only reads a file. ``LoadedObject`` links an object into
an MCJIT engine and hands out function addresses.

The optimizer runs LLVM's O2 pipeline with both vectorizers and without loop unrolling: the
kernels unroll their hot loops themselves (the register-blocked micro-kernels), and LLVM
unrolling the others made ResNet-50's and MobileNet's code 1.5-2x larger and their compile
1.5-3.5x slower for no run-time gain we could measure (O3 instead of O2 likewise).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from pathlib import Path

import llvmlite.binding as llvm

from byoc.errors import PluginError
from byoc_cpu_llvm.target import host_target, new_target_machine, target_machine


def cache_dir() -> Path:
    root = os.environ.get("BYOC_CACHE_DIR") or Path.home() / ".cache" / "byoc"
    return Path(root) / "cpu_llvm"


# The optimizer's settings (see the module docstring); part of every object's cache key.
SPEED_LEVEL = 2
VECTORIZE = True
UNROLL_LOOPS = False
OPTIMIZATION = f"O{SPEED_LEVEL} vectorize={VECTORIZE} unroll={UNROLL_LOOPS}"


def object_key(ir_text: str) -> str:
    digest = hashlib.sha256(ir_text.encode())
    digest.update(host_target().key.encode())
    digest.update(OPTIMIZATION.encode())
    return digest.hexdigest()


def compile_ir(ir_text: str) -> bytes:
    """Machine code (an object file) for ``ir_text``, from the cache when it is there."""
    path = cache_dir() / f"{object_key(ir_text)}.o"
    if path.is_file():
        with contextlib.suppress(OSError):
            return path.read_bytes()
    obj = _compile(ir_text)
    # A read-only or full cache only costs the next compile its time.
    with contextlib.suppress(OSError):
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path.parent, delete=False) as tmp:
            tmp.write(obj)
        os.replace(tmp.name, path)
    return obj


def _compile(ir_text: str) -> bytes:
    host = host_target()
    try:
        module = llvm.parse_assembly(ir_text)
        module.verify()
    except RuntimeError as exc:
        raise PluginError(f"cpu_llvm generated invalid LLVM IR: {exc}") from exc
    module.triple = host.triple
    machine = target_machine()
    module.data_layout = str(machine.target_data)
    tuning = llvm.create_pipeline_tuning_options(speed_level=SPEED_LEVEL)
    tuning.loop_vectorization = VECTORIZE
    tuning.slp_vectorization = VECTORIZE
    tuning.loop_unrolling = UNROLL_LOOPS
    builder = llvm.create_pass_builder(machine, tuning)
    builder.getModulePassManager().run(module, builder)
    return machine.emit_object(module)


class LoadedObject:
    """Machine code linked into the process; keeps its engine alive."""

    def __init__(self, obj: bytes) -> None:
        host = host_target()
        empty = llvm.parse_assembly(f'target triple = "{host.triple}"\n')
        self._engine = llvm.create_mcjit_compiler(empty, new_target_machine())
        self._object = llvm.ObjectFileRef.from_data(obj)
        self._engine.add_object_file(self._object)
        self._engine.finalize_object()

    def address(self, name: str) -> int:
        address = self._engine.get_function_address(name)
        if not address:
            raise PluginError(f"cpu_llvm: the compiled code has no function {name!r}")
        return address
