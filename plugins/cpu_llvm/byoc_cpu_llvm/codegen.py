"""Emitting kernels with llvmlite's IR builder: types, loops, vectors, math intrinsics.

The IR helpers every kernel shares live here, once: ``const`` (a constant of a value's type),
signed ``smin``/``smax``, ``splat``, the dtype tests ``is_float``/``is_signed``, and
``counted_loop``, the one loop skeleton (a header of phis, a body, an exit) that
:meth:`KernelBuilder.loop`, the GEMM driver's unit loop and the micro-kernels' k loops use.

Every kernel is a function ``void k(ptr buffers, i64 tid, i64 nthreads)``: ``buffers`` is the
kernel's own table of buffer pointers, ``tid`` and ``nthreads`` say which share of the work
this thread does. A kernel numbers the buffers it uses in the order it first asks for them
(:meth:`KernelBuilder.buffer`) and the program's entry point hands it their pointers in that
order (see :mod:`byoc_cpu_llvm.program`), so two layers of the same shapes emit the same
function text whichever partition slots they use, and share one function. Shapes are
constants baked into the IR, so LLVM sees fixed trip counts and strides.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Iterator, Sequence

import numpy as np
from llvmlite import ir

F16 = ir.HalfType()
F32 = ir.FloatType()
F64 = ir.DoubleType()
I1 = ir.IntType(1)
I8 = ir.IntType(8)
I16 = ir.IntType(16)
I32 = ir.IntType(32)
I64 = ir.IntType(64)
PTR = ir.PointerType()
VOID = ir.VoidType()
KERNEL_TYPE = ir.FunctionType(VOID, [PTR, I64, I64])

LLVM_TYPES = {
    np.dtype(np.float16): F16, np.dtype(np.float32): F32, np.dtype(np.float64): F64,
    np.dtype(np.bool_): I8,
    np.dtype(np.int8): I8, np.dtype(np.uint8): I8, np.dtype(np.int16): I16,
    np.dtype(np.uint16): I16, np.dtype(np.int32): I32, np.dtype(np.uint32): I32,
    np.dtype(np.int64): I64, np.dtype(np.uint64): I64,
}


def llvm_type(dtype: np.dtype) -> ir.Type:
    return LLVM_TYPES[np.dtype(dtype)]


def is_float(dtype) -> bool:
    return np.issubdtype(np.dtype(dtype), np.floating)


def is_signed(dtype) -> bool:
    return np.issubdtype(np.dtype(dtype), np.signedinteger)


def const_i64(value: int) -> ir.Constant:
    return ir.Constant(I64, int(value))


def const(value, like: ir.Value) -> ir.Value:
    """A constant of ``like``'s type (a splat when ``like`` is a vector)."""
    t = like.type
    if isinstance(t, ir.VectorType):
        return ir.Constant(t, [_scalar_const(value, t.element)] * t.count)
    return _scalar_const(value, t)


def _scalar_const(value, t: ir.Type) -> ir.Constant:
    if isinstance(t, ir.IntType):
        return ir.Constant(t, int(value))
    return ir.Constant(t, float(value))


def smin(b: ir.IRBuilder, x: ir.Value, y: ir.Value) -> ir.Value:
    """``min(x, y)`` of signed integers."""
    return b.select(b.icmp_signed("<", x, y), x, y)


def smax(b: ir.IRBuilder, x: ir.Value, y: ir.Value) -> ir.Value:
    """``max(x, y)`` of signed integers."""
    return b.select(b.icmp_signed(">", x, y), x, y)


def splat(b: ir.IRBuilder, value: ir.Value, lanes: int) -> ir.Value:
    """``<lanes x T>`` holding ``value`` in every lane."""
    undef = ir.Constant(ir.VectorType(value.type, lanes), ir.Undefined)
    first = b.insert_element(undef, value, ir.Constant(I32, 0))
    return b.shuffle_vector(first, undef, ir.Constant(ir.VectorType(I32, lanes), [0] * lanes))


@dataclass
class LoopState:
    """A loop being emitted by :func:`counted_loop`: ``index`` and ``carried`` are the
    header's phis; the body sets ``next_index`` (default ``index + step``) and
    ``next_carried`` (default: unchanged). After the loop the phis hold the final values."""

    index: ir.Value
    carried: list[ir.Value]
    next_index: ir.Value | None = None
    next_carried: list[ir.Value] = field(default_factory=list)


@contextlib.contextmanager
def counted_loop(b: ir.IRBuilder, start: ir.Value, stop: ir.Value, name: str, step: int = 1,
                 carried: Sequence[ir.Value] = ()) -> Iterator[LoopState]:
    """``for (i = start; i < stop; i = next)`` around the body (``i`` an i64), with
    loop-carried values that start as ``carried``; leaves ``b`` after the loop."""
    function = b.function
    pre = b.block
    header = function.append_basic_block(f"{name}.header")
    body = function.append_basic_block(f"{name}.body")
    done = function.append_basic_block(f"{name}.done")
    b.branch(header)
    b.position_at_end(header)
    index = b.phi(I64, name=name)
    index.add_incoming(start, pre)
    phis = []
    for number, initial in enumerate(carried):
        phi = b.phi(initial.type, name=f"{name}.carried{number}")
        phi.add_incoming(initial, pre)
        phis.append(phi)
    b.cbranch(b.icmp_signed("<", index, stop), body, done)
    b.position_at_end(body)
    state = LoopState(index, phis)
    yield state
    following = state.next_index
    if following is None:
        following = b.add(index, const_i64(step), name=f"{name}.next")
    index.add_incoming(following, b.block)
    for phi, value in zip(phis, state.next_carried or phis):
        phi.add_incoming(value, b.block)
    b.branch(header)
    b.position_at_end(done)


class KernelBuilder:
    """An IR builder positioned in a fresh kernel function, with loop and vector helpers."""

    def __init__(self, module: ir.Module, name: str) -> None:
        self.module = module
        self.function = ir.Function(module, KERNEL_TYPE, name)
        self.function.attributes.add("nounwind")
        self.buffers, self.tid, self.nthreads = self.function.args
        self.buffers.add_attribute("noalias")
        self.slots: list[int] = []  # the partition slots behind the kernel's own table
        self.b = ir.IRBuilder(self.function.append_basic_block("entry"))

    # -- buffers -----------------------------------------------------------------------------

    def buffer(self, index: int) -> ir.Value:
        """The pointer held in slot ``index`` of the partition's buffer table (read from the
        kernel's own table, where it is entry ``slots.index(index)``)."""
        if index not in self.slots:
            self.slots.append(index)
        own = const_i64(self.slots.index(index))
        slot = self.b.gep(self.buffers, [own], source_etype=PTR, inbounds=True)
        return self.b.load(slot, typ=PTR)

    def element(self, base: ir.Value, offset: ir.Value, elem: ir.Type) -> ir.Value:
        """Pointer to element ``offset`` of an array of ``elem`` at ``base``."""
        return self.b.gep(base, [offset], source_etype=elem, inbounds=True)

    def load(self, base: ir.Value, offset: ir.Value, elem: ir.Type) -> ir.Value:
        return self.b.load(self.element(base, offset, elem), typ=elem)

    def load_i64(self, base: ir.Value, offset: ir.Value, dtype: np.dtype) -> ir.Value:
        """Load an integer of ``dtype`` and widen it to i64 (sign- or zero-extended)."""
        value = self.load(base, offset, llvm_type(dtype))
        if np.issubdtype(np.dtype(dtype), np.signedinteger):
            return self.b.sext(value, I64)
        return self.b.zext(value, I64)

    def store(self, value: ir.Value, base: ir.Value, offset: ir.Value) -> None:
        self.b.store(value, self.element(base, offset, value.type))

    # -- loops -------------------------------------------------------------------------------

    @contextlib.contextmanager
    def loop(self, start, stop, step: int = 1, name: str = "i") -> Iterator[ir.Value]:
        """``for (i = start; i < stop; i += step)`` around the body; yields ``i`` (i64)."""
        start = const_i64(start) if isinstance(start, int) else start
        stop = const_i64(stop) if isinstance(stop, int) else stop
        with counted_loop(self.b, start, stop, name, step) as state:
            yield state.index

    def thread_share(self, total: int) -> tuple[ir.Value, ir.Value]:
        """This thread's half-open slice ``[begin, end)`` of ``range(total)``, split evenly."""
        b = self.b
        total_v = const_i64(total)
        begin = b.sdiv(b.mul(total_v, self.tid), self.nthreads)
        end = b.sdiv(b.mul(total_v, b.add(self.tid, const_i64(1))), self.nthreads)
        return begin, end

    def finish(self) -> ir.Function:
        self.b.ret_void()
        return self.function

    def entry_alloca(self, typ: ir.Type, name: str = "") -> ir.Value:
        """Stack space for a ``typ``, allocated in the entry block (once per call, wherever
        the builder is: an ``alloca`` inside a loop would grow the stack every iteration)."""
        entry = self.function.entry_basic_block
        if self.b.block is entry:
            return self.b.alloca(typ, name=name)
        builder = ir.IRBuilder(entry)  # (self.b is elsewhere: inserting here cannot shift it)
        builder.position_at_start(entry)
        return builder.alloca(typ, name=name)

    # -- math --------------------------------------------------------------------------------

    def intrinsic(self, name: str, ret: ir.Type, args: Sequence[ir.Value]) -> ir.Value:
        """Call LLVM intrinsic ``name`` overloaded on ``ret`` (e.g. llvm.fma.v16f32)."""
        suffix = _type_suffix(ret)
        full = f"{name}.{suffix}"
        fn = self.module.globals.get(full)
        if fn is None:
            fn = ir.Function(self.module, ir.FunctionType(ret, [a.type for a in args]), full)
        return self.b.call(fn, args)

    def libm(self, name: str, arg: ir.Value) -> ir.Value:
        """Call a C math function on a float (``expf``, ``tanhf``, ``erff``...)."""
        fn = self.module.globals.get(name)
        if fn is None:
            fn = ir.Function(self.module, ir.FunctionType(arg.type, [arg.type]), name)
        return self.b.call(fn, [arg])

    def fma(self, a: ir.Value, b: ir.Value, c: ir.Value) -> ir.Value:
        """``a * b + c``, fused."""
        return self.intrinsic("llvm.fma", a.type, [a, b, c])

    def splat(self, value: ir.Value, lanes: int) -> ir.Value:
        """``<lanes x T>`` holding ``value`` in every lane."""
        return splat(self.b, value, lanes)


def _type_suffix(t: ir.Type) -> str:
    if isinstance(t, ir.VectorType):
        return f"v{t.count}{_type_suffix(t.element)}"
    if t == F16:
        return "f16"
    if t == F32:
        return "f32"
    if t == F64:
        return "f64"
    if isinstance(t, ir.IntType):
        return f"i{t.width}"
    raise ValueError(f"no intrinsic suffix for {t}")
