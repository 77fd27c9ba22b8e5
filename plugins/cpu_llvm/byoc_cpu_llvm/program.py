"""A partition as LLVM modules: its buffer table, its kernels, and the entry point.

The compiled form of a partition is a list of buffers and a list of kernels. Buffer 0 is the
barrier state; the others hold the partition's inputs, outputs, intermediate values,
constants (as the kernels want them laid out, e.g. pre-packed weights) and per-thread scratch
space. Some buffers alias another (a Reshape shares its input's memory). The entry point
``byoc_run(buffers, tid, nthreads)``, in a module of its own, is run by every thread: it calls
the kernels in order, each doing its share of the work, with a barrier after each. The
kernels fill further modules, a few thousand instructions each, which LLVM compiles at the
same time and which are linked together when the program is loaded.

Each kernel reads its buffers from a table of its own, filled by the entry point from the
partition's table just before the call (see :class:`~byoc_cpu_llvm.codegen.KernelBuilder`).
Kernels whose text is the same but for their name, and whose module's tables and helper
functions they read are the same too (ResNet-50 repeats each of its bottleneck blocks'
convolutions up to five times), are one function in the program, called once per step: LLVM
optimizes and compiles each distinct kernel once. A lowering that can name everything its
kernel's code depends on (a *signature*) builds it once per program
(:meth:`ProgramBuilder.shared_kernel`): later steps of the same signature call the first
kernel on their own buffers, and neither build nor render its IR again.

A kernel that meets input it cannot handle at run time (a value only known then) stores a
fault code in the status buffer; the runtime raises the fault's message after the run.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Hashable
from dataclasses import asdict, dataclass

import numpy as np
from llvmlite import ir

from byoc.core.ir import Graph, TensorType
from byoc_cpu_llvm.codegen import I64, KERNEL_TYPE, PTR, KernelBuilder, const_i64
from byoc_cpu_llvm.target import host_target

ENTRY = "byoc_run"
# Between two modules in a program's IR text (an LLVM comment line).
MODULE_SEPARATOR = "\n; ---- byoc_cpu_llvm: next module ----\n"
# Kernels fill a module up to about this many instructions (before optimization) before the
# next starts a new one. Modules compile in parallel, each costing ~8 ms more than its
# instructions: about 2,000 instructions take LLVM ~0.4 s, and DenseNet-121's kernels make ~25
# modules.
MODULE_INSTRUCTIONS = 2000
BARRIER_SLOT = 0
# A waiting thread spins this many times before it starts yielding its core.
SPINS_BEFORE_YIELD = 4000


@dataclass
class BufferSpec:
    """One slot of the buffer table. ``kind`` is input, output, temp, constant, scratch,
    barrier or status; ``alias`` names the slot whose memory this one shares, from ``offset``
    (in elements of that slot); scratch buffers hold ``elements`` per thread."""

    name: str
    dtype: str
    shape: list[int]
    kind: str
    alias: int | None = None
    offset: int = 0     # elements into the aliased slot's memory where this one starts

    @property
    def elements(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64))


@dataclass
class RepeatedKernel:
    """A step that calls an earlier step's kernel on other buffers (its ``slots``)."""

    kernel: KernelBuilder
    slots: list[int]


class ProgramBuilder:
    """Collects buffers and kernels while a partition is lowered."""

    def __init__(self, name: str, graph: Graph, inputs: list[str], outputs: list[str]) -> None:
        self.graph = graph
        self.module = ir.Module(name=name)
        self.module.triple = host_target().triple
        self.buffers: list[BufferSpec] = [BufferSpec("barrier", "int64", [2], "barrier")]
        self.slots: dict[str, int] = {}
        self.arrays: dict[str, np.ndarray] = {}
        self.steps: list[KernelBuilder | RepeatedKernel] = []
        self._built: list[KernelBuilder] = []  # the steps whose kernels were built
        self._by_signature: dict[Hashable, tuple[KernelBuilder, list[int]]] = {}
        self._module_instructions = 0  # in the kernels of the last kernel's module
        self.faults: list[str] = []
        self._names: set[str] = set()
        for value in inputs:
            self._add(value, graph.types[value], "input")
        for value in outputs:
            self._add(value, graph.types[value], "output")

    def _add(self, name: str, ttype: TensorType, kind: str, alias: int | None = None,
             offset: int = 0) -> int:
        self.buffers.append(BufferSpec(name, ttype.dtype.name, list(ttype.shape), kind, alias,
                                       int(offset)))
        self.slots[name] = len(self.buffers) - 1
        return self.slots[name]

    def value(self, name: str) -> int:
        """The slot of a graph value: a partition input or output, a constant of the graph
        (stored as it is), or an intermediate value (a temp buffer, made on first use)."""
        if name in self.slots:
            return self.slots[name]
        if self.graph.is_constant(name):
            return self.constant(name, self.graph.constants[name])
        return self._add(name, self.graph.types[name], "temp")

    def constant(self, key: str, array: np.ndarray) -> int:
        """A slot holding ``array`` (e.g. weights packed the way a kernel reads them)."""
        if key in self.slots:
            return self.slots[key]
        array = np.ascontiguousarray(array)
        self.arrays[key] = array
        return self._add(key, TensorType.of(array), "constant")

    def temp(self, key: str, ttype: TensorType) -> int:
        """A buffer for a kernel's intermediate results (not a graph value)."""
        return self._add(key, ttype, "temp")

    def workspace(self, key: str, dtype: np.dtype, elements: int) -> int:
        """A temp buffer that the kernels asking for ``key`` share, as large as the largest
        request: for intermediate results that do not outlive a layer (its kernels run one
        after another, so two layers never use it at once)."""
        if key in self.slots:
            spec = self.buffers[self.slots[key]]
            spec.shape = [max(spec.shape[0], int(elements))]
            return self.slots[key]
        return self._add(key, TensorType(np.dtype(dtype), (int(elements),)), "temp")

    def scratch(self, key: str, dtype: np.dtype, elements: int) -> int:
        """A per-thread scratch buffer of ``elements`` values; a kernel's thread ``tid``
        uses elements ``[tid * elements, (tid + 1) * elements)``."""
        return self._add(key, TensorType(np.dtype(dtype), (int(elements),)), "scratch")

    def fault(self, message: str) -> tuple[int, int]:
        """(status slot, code) for a run-time fault: a kernel that stores ``code`` (an int32)
        into the status buffer makes the run fail with ``message``."""
        if "status" not in self.slots:
            self._add("status", TensorType(np.dtype(np.int32), (1,)), "status")
        self.faults.append(message)
        return self.slots["status"], len(self.faults)

    def alias(self, name: str, of: str) -> None:
        """Let value ``name`` share the memory of value ``of`` (same bytes, other shape).
        A partition output cannot alias (it has its own buffer): use :meth:`copy`."""
        self._add(name, self.graph.types[name], "alias", alias=self.value(of))

    def place(self, name: str, into: str, offset: int) -> bool:
        """Let value ``name`` live inside value ``into``, from element ``offset`` (a Concat's
        input in the Concat's output); False, and nothing done, when ``name`` already has a
        slot."""
        if name in self.slots:
            return False
        self._add(name, self.graph.types[name], "alias", alias=self.value(into), offset=offset)
        return True

    def home(self, name: str) -> tuple[int, int]:
        """(slot that owns the memory, element offset in it) of value ``name``."""
        slot, offset = self.value(name), 0
        while self.buffers[slot].kind == "alias":
            offset += self.buffers[slot].offset
            slot = self.buffers[slot].alias
        return slot, offset

    def copy(self, name: str, of: str) -> None:
        """A step copying the bytes of value ``of`` into value ``name``."""
        kernel = self._copy_kernel(self.value(of), self.value(name))
        self.steps.append(kernel)
        self._built.append(kernel)

    def kernel(self, hint: str) -> KernelBuilder:
        """A new kernel function, run as the next step of the program."""
        kernel = KernelBuilder(self._kernel_module(), self._unique(hint))
        self.steps.append(kernel)
        self._built.append(kernel)
        return kernel

    def shared_kernel(self, hint: str, signature: Hashable, slots: list[int],
                      build: Callable[[KernelBuilder], None]) -> None:
        """The next step runs the kernel ``build`` fills (``build(kb)``, without calling
        ``kb.finish``), on buffers among ``slots``. ``signature`` must name everything the
        kernel's code depends on but those buffers: a step of a signature seen before calls
        the earlier kernel on its own ``slots`` (position for position), with nothing built.
        A kernel that reads a buffer outside ``slots``, or ``slots`` naming one buffer twice,
        is built and never shared."""
        shareable = signature is not None and len(set(slots)) == len(slots)
        known = self._by_signature.get(signature) if shareable else None
        if known is not None:
            kernel, positions = known
            self.steps.append(RepeatedKernel(kernel, [slots[i] for i in positions]))
            return
        kernel = self.kernel(hint)
        build(kernel)
        kernel.finish()
        if shareable and set(kernel.slots) <= set(slots):
            self._by_signature[signature] = (kernel, [slots.index(s) for s in kernel.slots])

    def _kernel_module(self) -> ir.Module:
        """The module for the next kernel: the last kernel's, or a new one once that holds
        :data:`MODULE_INSTRUCTIONS` (counted when the next kernel starts, the last being
        built by then)."""
        if self._built:
            last = self._built[-1]
            self._module_instructions += sum(len(b.instructions) for b in last.function.blocks)
            if self._module_instructions < MODULE_INSTRUCTIONS:
                return last.module
        self._module_instructions = 0
        module = ir.Module(name="kernels")
        module.triple = host_target().triple
        return module

    def _unique(self, hint: str) -> str:
        base = "k_" + "".join(ch if ch.isalnum() else "_" for ch in hint)
        name, i = base, 1
        while name in self._names:
            name, i = f"{base}_{i}", i + 1
        self._names.add(name)
        return name

    def _copy_kernel(self, src: int, dst: int) -> KernelBuilder:
        spec = self.buffers[src]
        nbytes = spec.elements * np.dtype(spec.dtype).itemsize
        k = KernelBuilder(self._kernel_module(), self._unique(f"copy_{spec.name}"))
        begin, end = k.thread_share(nbytes)
        with k.loop(begin, end) as i:
            byte = k.load(k.buffer(src), i, ir.IntType(8))
            k.store(byte, k.buffer(dst), i)
        k.finish()
        return k

    def finish(self) -> tuple[str, dict]:
        """The program's IR text and the metadata the runtime needs to run it. The text holds
        several modules, separated by :data:`MODULE_SEPARATOR`: the entry point's, then the
        kernels' (kernels fill a module up to :data:`MODULE_INSTRUCTIONS`), which LLVM
        optimizes and compiles in parallel (:func:`byoc_cpu_llvm.jit.compile_ir`)."""
        texts, calls = self._share_identical_kernels()
        self._emit_entry(calls)
        meta = {"entry": ENTRY, "buffers": [asdict(b) for b in self.buffers],
                "steps": [function.name for function, _ in calls], "faults": list(self.faults)}
        return MODULE_SEPARATOR.join([str(self.module), *self._kernel_modules(texts)]), meta

    def _share_identical_kernels(self) -> tuple[dict[str, str],
                                                list[tuple[ir.Function, list[int]]]]:
        """The text of each distinct kernel by name, and each step as (the entry module's
        declaration of the kernel it calls, the partition slots of that call's table). A
        kernel whose text is an earlier one's but for its name is left out: its step calls
        the earlier kernel on its own buffers."""
        first: dict[str, ir.Function] = {}
        texts, calls = {}, []
        rendered: dict[tuple[int, str], str] = {}
        declared: dict[int, ir.Function] = {}  # by id of a built kernel
        for kernel in self.steps:
            if isinstance(kernel, RepeatedKernel):
                calls.append((declared[id(kernel.kernel)], kernel.slots))
                continue
            function = kernel.function
            text = str(function)
            anonymous = "\n".join([text.replace(function.get_reference(), "@", 1),
                                   *_definitions_read(kernel.module, text, function.name,
                                                      rendered)])
            if anonymous not in first:
                first[anonymous] = ir.Function(self.module, KERNEL_TYPE, function.name)
                texts[function.name] = text
            declared[id(kernel)] = first[anonymous]
            calls.append((first[anonymous], kernel.slots))
        return texts, calls

    def _kernel_modules(self, texts: dict[str, str]) -> list[str]:
        """The text of each kernel module, with the distinct kernels it holds. The kernels'
        text is rendered once, by :meth:`_share_identical_kernels`: each module is rendered
        without them, and they follow it (LLVM takes a module's definitions in any order).
        What else a module defines (tables, helper functions) is private to it: modules
        define helpers of the same name."""
        modules: dict[int, tuple[ir.Module, list[str]]] = {}
        for kernel in self._built:
            module, kept = modules.setdefault(id(kernel.module), (kernel.module, []))
            del module.globals[kernel.function.name]
            if kernel.function.name in texts:
                kept.append(texts[kernel.function.name])
        result = []
        for module, kept in modules.values():
            if not kept:
                continue  # only kernels identical to earlier ones
            for value in module.global_values:
                if _defined(value):
                    value.linkage = "private"
            result.append("\n".join([str(module), *kept]))
        return result

    def _emit_entry(self, calls: list[tuple[ir.Function, list[int]]]) -> None:
        barrier = _emit_barrier(self.module)
        entry = ir.Function(self.module, KERNEL_TYPE, ENTRY)
        buffers, tid, nthreads = entry.args
        b = ir.IRBuilder(entry.append_basic_block("entry"))
        state = b.load(b.gep(buffers, [const_i64(BARRIER_SLOT)], source_etype=PTR), typ=PTR)
        widest = max((len(slots) for _, slots in calls), default=0)
        table = b.alloca(PTR, size=const_i64(max(1, widest)), name="table")
        for kernel, slots in calls:
            for position, slot in enumerate(slots):
                pointer = b.load(b.gep(buffers, [const_i64(slot)], source_etype=PTR), typ=PTR)
                b.store(pointer, b.gep(table, [const_i64(position)], source_etype=PTR))
            b.call(kernel, [table, tid, nthreads])
            b.call(barrier, [state, nthreads])
        b.ret_void()


_REFERENCE = re.compile(r'@"((?:[^"\\]|\\.)*)"')


def _definitions_read(module: ir.Module, text: str, own: str,
                      rendered: dict[tuple[int, str], str]) -> list[str]:
    """The text of what ``module`` defines that ``text`` (a kernel's, named ``own``) reads,
    directly or through what it reads: its tables and helper functions. Two kernels are the
    same only when these are too, since kernel modules define helpers of the same name
    (``rendered`` keeps each definition's text, by module and name, rendered once)."""
    found, seen, pending = [], {own}, [text]
    while pending:
        for name in _REFERENCE.findall(pending.pop()):
            value = module.globals.get(name)
            if name in seen or value is None or not _defined(value):
                continue
            seen.add(name)
            key = (id(module), name)
            if key not in rendered:
                rendered[key] = str(value)
            found.append(rendered[key])
            pending.append(rendered[key])
    return found


def _defined(value: ir.GlobalValue) -> bool:
    """Whether a module defines ``value`` (a function with a body, a variable with a value)
    rather than declaring it."""
    if isinstance(value, ir.Function):
        return not value.is_declaration
    return getattr(value, "initializer", None) is not None


def _emit_barrier(module: ir.Module) -> ir.Function:
    """``barrier(state, nthreads)``: a spin barrier over ``state`` = {count, generation}. The
    last thread to arrive resets the count and bumps the generation; the others wait until
    the generation changes, spinning (with ``pause``) for a while and then yielding the CPU
    (``sched_yield``) so a waiting thread never starves the one it waits for on a busy
    machine."""
    fn = ir.Function(module, ir.FunctionType(ir.VoidType(), [PTR, I64]), "byoc_barrier")
    fn.attributes.add("noinline")
    state, nthreads = fn.args
    entry, body, last, spin, relax, done = (
        fn.append_basic_block(name) for name in ("entry", "body", "last", "spin", "relax", "done"))
    b = ir.IRBuilder(entry)
    count_ptr = state
    gen_ptr = b.gep(state, [const_i64(1)], source_etype=I64)
    b.cbranch(b.icmp_signed("<=", nthreads, const_i64(1)), done, body)
    b.position_at_end(body)
    generation = b.load_atomic(gen_ptr, "acquire", 8, typ=I64)
    arrived = b.add(b.atomic_rmw("add", count_ptr, const_i64(1), "acq_rel"), const_i64(1))
    b.cbranch(b.icmp_signed("==", arrived, nthreads), last, spin)
    b.position_at_end(last)
    b.atomic_rmw("xchg", count_ptr, const_i64(0), "monotonic")  # (store_atomic needs typed ptrs)
    b.atomic_rmw("add", gen_ptr, const_i64(1), "release")
    b.branch(done)
    b.position_at_end(spin)
    spins = b.phi(I64, name="spins")
    spins.add_incoming(const_i64(0), body)
    now = b.load_atomic(gen_ptr, "acquire", 8, typ=I64)
    b.cbranch(b.icmp_signed("!=", now, generation), done, relax)
    b.position_at_end(relax)
    if module.triple.startswith(("x86_64", "i686")):
        pause = ir.Function(module, ir.FunctionType(ir.VoidType(), []), "llvm.x86.sse2.pause")
        b.call(pause, [])
    yield_ = ir.Function(module, ir.FunctionType(ir.IntType(32), []), "sched_yield")
    with b.if_then(b.icmp_signed(">=", spins, const_i64(SPINS_BEFORE_YIELD))):
        b.call(yield_, [])
    spins.add_incoming(b.add(spins, const_i64(1)), b.block)
    b.branch(spin)
    b.position_at_end(done)
    b.ret_void()
    return fn
