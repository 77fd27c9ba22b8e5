"""Epilogues of matrix-product kernels: bias, scaling and the fused elementwise nodes, applied
to a tile of results while it is still in cache.

The output of a Conv, Gemm or MatMul is seen as *batch* axes, one *row* axis (output channels
or the rows of a matrix product) and *column* axes (the spatial positions, or the columns),
flattened so that a tile is ``rows x cols`` elements ``ldc`` apart. Each operand of the
epilogue is addressed with its own element strides over the output's axes (0 along broadcast
axes). An operand whose column strides are all zero (per row, per channel, or a scalar) is
broadcast from one value per row; one whose column strides are the output's (same shape as
the output, or per column) is loaded as vectors. Any other layout makes the whole epilogue
use a scalar pass that indexes every element (still on the tile, in the same kernel).

An epilogue's :meth:`~Epilogue.signature` names what its code depends on (each step's
operation and constants, each operand's layout), so that kernels can be shared between layers
(:meth:`~byoc_cpu_llvm.program.ProgramBuilder.shared_kernel`).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass

import numpy as np
from llvmlite import ir

from byoc_cpu_llvm.codegen import F32, KernelBuilder, const, const_i64, llvm_type, splat
from byoc_cpu_llvm.kernels.elementwise import strides_for
from byoc_cpu_llvm.kernels.microkernel import (
    lane_mask,
    masked_load,
    masked_store,
)
from byoc_cpu_llvm.kernels.scalar_ops import EMITTERS

# A step maps the running value and its operands' values to the new running value.
StepFn = Callable[[KernelBuilder, list[ir.Value]], ir.Value]


@dataclass
class Operand:
    name: str
    slot: int
    dtype: np.dtype
    strides: list[int]      # element strides over the output's axes
    kind: str = "generic"   # "row" (broadcast along the columns), "vector", or "generic"


@dataclass
class Step:
    fn: StepFn
    args: list[str | None]  # operand names; None is the running value


class Epilogue:
    """The steps applied to a head's results, and how to load their operands."""

    def __init__(self, out_shape: Sequence[int], row_axis: int, col_axes: Sequence[int]):
        self.out_shape = tuple(out_shape)
        self.rank = len(self.out_shape)
        self.row_axis = row_axis % self.rank
        self.col_axes = [a % self.rank for a in col_axes]
        self.batch_axes = [a for a in range(self.rank)
                           if a != self.row_axis and a not in self.col_axes]
        self.col_dims = [self.out_shape[a] for a in self.col_axes]
        self.operands: dict[str, Operand] = {}
        self.steps: list[Step] = []
        self.bases: dict[str, ir.Value] = {}

    # -- building ----------------------------------------------------------------------------

    def operand(self, program, name: str, strides: list[int] | None = None) -> str:
        """Register graph value ``name`` as an operand (numpy-broadcast unless ``strides``)."""
        if name not in self.operands:
            vtype = program.graph.types[name]
            if strides is None:
                strides = strides_for(vtype.shape, self.out_shape)
            col_strides = [strides[a] for a in self.col_axes]
            contiguous = strides_for(self.col_dims, self.col_dims)
            if all(s == 0 for s in col_strides):
                kind = "row"
            elif col_strides == contiguous:
                kind = "vector"
            else:
                kind = "generic"
            self.operands[name] = Operand(name, program.value(name), vtype.dtype, strides,
                                          kind)
        return name

    def add_step(self, fn: StepFn, args: list[str | None]) -> None:
        self.steps.append(Step(fn, args))

    def signature(self) -> Hashable | None:
        """Everything the emitted code depends on but the operands' buffers: the output's
        shape, each operand's layout and dtype, each step's operation with its constants
        (the ``signature`` its step function carries) and which operands it reads; None when
        a step function carries none. Operands are named by their position in
        :meth:`operand_slots`."""
        positions = {name: i for i, name in enumerate(self.operands)}
        steps = []
        for step in self.steps:
            key = getattr(step.fn, "signature", None)
            if key is None:
                return None
            steps.append((key, tuple(None if a is None else positions[a] for a in step.args)))
        operands = tuple((op.kind, tuple(op.strides), np.dtype(op.dtype).str)
                         for op in self.operands.values())
        return (self.out_shape, self.row_axis, tuple(self.col_axes), operands, tuple(steps))

    def operand_slots(self) -> list[int]:
        """The operands' buffer slots, in the order :meth:`bind` reads them."""
        return [op.slot for op in self.operands.values()]

    def add_nodes(self, program, group) -> None:
        """The group's epilogue nodes, each an EMITTERS step."""
        graph = program.graph
        previous = group.head.outputs[0]
        for node in group.epilogue:
            names = [None if v == previous else self.operand(program, v)
                     for v in node.present_inputs]
            dtypes = [graph.types[v].dtype for v in node.present_inputs]
            out_dtype = graph.types[node.outputs[0]].dtype
            self.add_step(_node_step(node.op_type, dict(node.attrs), dtypes, out_dtype), names)
            previous = node.outputs[0]

    @property
    def empty(self) -> bool:
        return not self.steps

    @property
    def vectorized(self) -> bool:
        return all(op.kind != "generic" for op in self.operands.values())

    # -- emitting ----------------------------------------------------------------------------

    def bind(self, kb: KernelBuilder) -> None:
        """Load the operands' base pointers (once, at the top of the kernel)."""
        self.bases = {name: kb.buffer(op.slot) for name, op in self.operands.items()}

    def apply_tile(self, kb: KernelBuilder, out: ir.Value, batch: dict[int, ir.Value],
                   row0: ir.Value, rows: ir.Value, col0: ir.Value, cols: ir.Value,
                   lanes: int, width: int) -> None:
        """Apply the steps in place to the ``rows x cols`` tile of ``out`` whose first element
        has global row ``row0`` and flattened column ``col0`` (``batch`` gives the batch axes'
        coordinates). ``width`` (a multiple of ``lanes``) bounds ``cols``."""
        if self.empty:
            return
        b = kb.b
        batch_out = self._batch_offset(kb, batch, self._out_strides())
        batch_ops = {name: self._batch_offset(kb, batch, op.strides)
                     for name, op in self.operands.items()}
        out_strides = self._out_strides()
        with kb.loop(const_i64(0), rows, name="epi_r") as r:
            row = b.add(row0, r)
            out_row = b.add(batch_out, b.mul(row, const_i64(out_strides[self.row_axis])))
            op_row = {name: b.add(batch_ops[name],
                                  b.mul(row, const_i64(op.strides[self.row_axis])))
                      for name, op in self.operands.items()}
            if self.vectorized:
                self._vector_row(kb, out, out_row, op_row, col0, cols, lanes, width)
            else:
                self._scalar_row(kb, out, out_row, op_row, col0, cols)

    def _out_strides(self) -> list[int]:
        return strides_for(self.out_shape, self.out_shape)

    def _batch_offset(self, kb: KernelBuilder, batch: dict[int, ir.Value],
                      strides: list[int]) -> ir.Value:
        offset = const_i64(0)
        for axis, coord in batch.items():
            if strides[axis]:
                offset = kb.b.add(offset, kb.b.mul(coord, const_i64(strides[axis])))
        return offset

    def _row_scalars(self, kb, op_row, lanes) -> dict[str, ir.Value]:
        """The per-row operands of one output row, splat to vectors."""
        return {name: splat(kb.b, kb.load(self.bases[name], op_row[name], llvm_type(op.dtype)),
                            lanes)
                for name, op in self.operands.items() if op.kind == "row"}

    def _vector_operands(self, kb, op_row, start, lanes, mask=None) -> dict[str, ir.Value]:
        """The vector operands at flattened column ``start`` of one output row (``mask``ed
        lanes only, when given)."""
        loaded = {}
        for name, op in self.operands.items():
            if op.kind == "vector":
                vt = ir.VectorType(llvm_type(op.dtype), lanes)
                ptr = kb.element(self.bases[name], kb.b.add(op_row[name], start),
                                 llvm_type(op.dtype))
                loaded[name] = (kb.b.load(ptr, typ=vt, align=1) if mask is None else
                                masked_load(kb.b, kb.module, ptr, mask, vt))
        return loaded

    def _operand_rows(self, kb, batch, row) -> dict[str, ir.Value]:
        """Each operand's element offset of output row ``row`` (flattened column 0)."""
        b = kb.b
        return {name: b.add(self._batch_offset(kb, batch, op.strides),
                            b.mul(row, const_i64(op.strides[self.row_axis])))
                for name, op in self.operands.items()}

    def apply_registers(self, kb: KernelBuilder, batch: dict[int, ir.Value], row0: ir.Value,
                        col0: ir.Value, values: list[ir.Value], rows: int,
                        lanes: int) -> list[ir.Value]:
        """The steps applied to a whole tile held in registers: ``values[i * n + v]`` (n
        vectors a row) is output row ``row0 + i`` from flattened column ``col0 + v * lanes``,
        every lane inside the output. Only for a :attr:`vectorized` epilogue."""
        b = kb.b
        vectors = len(values) // rows
        result = []
        for i in range(rows):
            op_row = self._operand_rows(kb, batch, b.add(row0, const_i64(i)))
            scalars = self._row_scalars(kb, op_row, lanes)
            for v in range(vectors):
                loaded = {**scalars, **self._vector_operands(
                    kb, op_row, b.add(col0, const_i64(v * lanes)), lanes)}
                result.append(self.run_steps(kb, values[i * vectors + v], loaded))
        return result

    def _vector_row(self, kb, out, out_row, op_row, col0, cols, lanes, width) -> None:
        b = kb.b
        vt = ir.VectorType(F32, lanes)
        scalars = self._row_scalars(kb, op_row, lanes)
        for v in range(width // lanes):
            start = b.add(col0, const_i64(v * lanes))
            mask = lane_mask(b, b.sub(cols, const_i64(v * lanes)), lanes)
            ptr = kb.element(out, b.add(out_row, start), F32)
            running = masked_load(b, kb.module, ptr, mask, vt)
            loaded = {**scalars, **self._vector_operands(kb, op_row, start, lanes, mask)}
            running = self.run_steps(kb, running, loaded)
            masked_store(b, kb.module, running, ptr, mask)

    def _scalar_row(self, kb, out, out_row, op_row, col0, cols) -> None:
        b = kb.b
        with kb.loop(const_i64(0), cols, name="epi_c") as q:
            col = b.add(col0, q)
            offsets = dict(op_row)
            remainder = col
            for axis in reversed(self.col_axes):
                dim = const_i64(self.out_shape[axis])
                coord = b.srem(remainder, dim)
                remainder = b.sdiv(remainder, dim)
                for name, op in self.operands.items():
                    if op.strides[axis]:
                        offsets[name] = b.add(offsets[name],
                                              b.mul(coord, const_i64(op.strides[axis])))
            ptr = kb.element(out, b.add(out_row, col), F32)
            running = b.load(ptr, typ=F32)
            loaded = {name: kb.load(self.bases[name], offsets[name], llvm_type(op.dtype))
                      for name, op in self.operands.items()}
            b.store(self.run_steps(kb, running, loaded), ptr)

    def run_steps(self, kb, running, loaded) -> ir.Value:
        for step in self.steps:
            args = [running if name is None else loaded[name] for name in step.args]
            running = step.fn(kb, args)
        return running


def _node_step(op_type: str, attrs: dict, dtypes, out_dtype) -> StepFn:
    emit = EMITTERS[op_type]

    def step(kb, args):
        return emit(kb, op_type, args, attrs, dtypes, out_dtype)
    attributes = _hashable(attrs)
    if attributes is not None:  # else kernels with this step are never shared
        step.signature = ("node", op_type, attributes, tuple(np.dtype(d).str for d in dtypes),
                          np.dtype(out_dtype).str)
    return step


def scale_step(factor: float) -> StepFn:
    def step(kb, args):
        return kb.b.fmul(args[0], const(factor, args[0]))
    step.signature = ("scale", float(factor))
    return step


def add_scaled_step(factor: float) -> StepFn:
    """``running + factor * operand``."""
    def step(kb, args):
        other = args[1] if factor == 1.0 else kb.b.fmul(args[1], const(factor, args[1]))
        return kb.b.fadd(args[0], other)
    step.signature = ("add_scaled", float(factor))
    return step


def _hashable(value) -> Hashable | None:
    """``value`` (a node attribute: numbers, strings, bytes, lists, arrays, dicts of them) as
    a hashable value that tells apart any two different ones (arrays by dtype, shape and
    bytes; a list from a tuple); None when it holds anything else."""
    if isinstance(value, dict):
        items = [(k, _hashable(v)) for k, v in sorted(value.items())]
        return None if any(v is None for _, v in items) else ("dict", tuple(items))
    if isinstance(value, np.ndarray):
        return ("array", value.dtype.str, value.shape, value.tobytes())
    if isinstance(value, (list, tuple)):
        items = [_hashable(v) for v in value]
        return None if any(v is None for v in items) else (type(value).__name__, tuple(items))
    if isinstance(value, np.generic):
        return (type(value).__name__, value.item())
    if isinstance(value, (bool, int, float, str, bytes, type(None))):
        return (type(value).__name__, value)
    return None


__all__ = ["Epilogue", "Operand", "Step", "add_scaled_step", "scale_step"]
