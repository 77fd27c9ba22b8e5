"""Optimizing an LLVM module and emitting its object file, in this process or in a worker.

llvmlite serializes every call into LLVM behind one lock, so threads cannot compile two
modules at once; :mod:`.jit` compiles a large program's modules in worker processes instead.
A worker is this module run as ``python -m byoc_cpu_llvm.compile_worker SPEED VECTORIZE
UNROLL`` (the optimizer's settings, as :mod:`.jit` has them). It reads requests on stdin and
answers each on stdout, until stdin closes:

- request: the IR text's length in bytes (8 bytes, little-endian), then the text (UTF-8);
- answer: a status byte (0: an object file follows; 1: LLVM refused the IR, its message
  follows), the length of what follows (8 bytes, little-endian), then that.

It imports llvmlite and the host's target description, nothing of byoc, so it starts fast.
"""

from __future__ import annotations

import struct
import sys
from typing import BinaryIO

import llvmlite.binding as llvm

from byoc_cpu_llvm.target import host_target, new_target_machine

LENGTH = struct.Struct("<Q")
OK, INVALID_IR = 0, 1


class InvalidIR(Exception):
    """LLVM refused a module's IR (the message is LLVM's)."""


def emit_object(ir_text: str, speed_level: int, vectorize: bool, unroll: bool) -> bytes:
    """The object file of ``ir_text`` for this host, optimized with LLVM's pipeline at
    ``speed_level`` (``vectorize``: both vectorizers; ``unroll``: loop unrolling)."""
    host = host_target()
    context = llvm.create_context()
    try:
        module = llvm.parse_assembly(ir_text, context=context)
        module.verify()
    except RuntimeError as exc:
        raise InvalidIR(str(exc)) from exc
    module.triple = host.triple
    machine = new_target_machine()
    module.data_layout = str(machine.target_data)
    tuning = llvm.create_pipeline_tuning_options(speed_level=speed_level)
    tuning.loop_vectorization = vectorize
    tuning.slp_vectorization = vectorize
    tuning.loop_unrolling = unroll
    builder = llvm.create_pass_builder(machine, tuning)
    builder.getModulePassManager().run(module, builder)
    return machine.emit_object(module)


def read_exactly(stream: BinaryIO, size: int) -> bytes | None:
    """``size`` bytes from ``stream``, or None if it ends first."""
    chunks, left = [], size
    while left:
        chunk = stream.read(left)
        if not chunk:
            return None
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def serve(requests: BinaryIO, answers: BinaryIO, speed_level: int, vectorize: bool,
          unroll: bool) -> None:
    """Answer requests until ``requests`` ends."""
    while (header := read_exactly(requests, LENGTH.size)) is not None:
        text = read_exactly(requests, LENGTH.unpack(header)[0])
        if text is None:
            return
        try:
            status, body = OK, emit_object(text.decode(), speed_level, vectorize, unroll)
        except InvalidIR as exc:
            status, body = INVALID_IR, str(exc).encode()
        answers.write(bytes([status]) + LENGTH.pack(len(body)) + body)
        answers.flush()


if __name__ == "__main__":
    speed, vectorize, unroll = sys.argv[1:4]
    serve(sys.stdin.buffer, sys.stdout.buffer, int(speed), vectorize == "1", unroll == "1")
