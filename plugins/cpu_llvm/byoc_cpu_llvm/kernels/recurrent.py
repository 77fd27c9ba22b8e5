"""RNN, GRU and LSTM layers: the input projection of every time step as one blocked GEMM,
then the recurrence.

Kernel 1 computes ``X W^T`` for all time steps and directions at once (``[seq * batch,
input] x [input, gates * hidden]`` per direction; W and R are packed at compile time when
they are constants, else by a kernel of their own first). Kernel 2 runs the time loop.
Batch entries and directions are independent, so threads split the (direction, batch
entry) pairs and each runs the whole loop for its share without waiting for the others; per
step it packs its rows of the hidden state and multiplies them by the packed ``R^T`` with
the GEMM micro-kernel, then applies the gates a vector of hidden units at a time (sigmoid
and tanh vectorized). GRU's default form (reset gate before the recurrent product of the
hidden gate) takes a second product per step, of ``reset * H``.

Why one module above 600 lines: RNN, GRU and LSTM are one lowering; the layer description,
the input projection and the recurrence (``Recurrence``, ``GateReader``) only make sense
together, and the cell types differ only inside the recurrence.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
from llvmlite import ir

from byoc.core.interpreter import lookup
from byoc.core.interpreter.ops_recurrent import activation_parameters
from byoc.core.ir import Graph, Node, TensorType
from byoc_cpu_llvm.codegen import F32, I32, KernelBuilder, const_i64, smax, smin
from byoc_cpu_llvm.kernels import lowering
from byoc_cpu_llvm.kernels.epilogue import Epilogue
from byoc_cpu_llvm.kernels.gemm_driver import (
    NRV,
    GemmPlan,
    a_scratch_size,
    choose_mr,
    emit_gemm,
    k_block,
    lanes,
    pack_a_runtime,
    pack_b,
    panel_width,
)
from byoc_cpu_llvm.kernels.microkernel import call_ukernel, lane_mask, masked_load, masked_store
from byoc_cpu_llvm.kernels.scalar_ops import EMITTERS
from byoc_cpu_llvm.kernels.vector_math import vector_sigmoid, vector_tanh

F32_DTYPE = np.dtype(np.float32)
# The recurrent activations cpu_llvm emits, by their ONNX names in lower case, as the
# elementwise op that computes each.
KERNEL_ACTIVATIONS = {"sigmoid": "Sigmoid", "tanh": "Tanh", "relu": "Relu",
                      "leakyrelu": "LeakyRelu", "hardsigmoid": "HardSigmoid", "elu": "Elu",
                      "softsign": "Softsign", "softplus": "Softplus"}
# The two activations that dominate: computed a vector at a time, not through libm per lane.
VECTOR_ACTIVATIONS = {"sigmoid": vector_sigmoid, "tanh": vector_tanh}
GATES = {"RNN": 1, "GRU": 3, "LSTM": 4}
# Inputs by position: X, W, R, B, sequence_lens, initial_h, initial_c, P.
SEQUENCE_LENS = 4


def _input(node: Node, position: int) -> str | None:
    return node.inputs[position] if len(node.inputs) > position and node.inputs[position] \
        else None


def _directions(node: Node) -> int:
    return 2 if node.attrs.get("direction", "forward") == "bidirectional" else 1


def _activations(node: Node) -> list[tuple[str, float | None, float | None]]:
    defaults = lookup("", node.op_type).default_activations
    names = node.attrs.get("activations") or list(defaults) * _directions(node)
    return activation_parameters(node.op_type, list(names),
                                 list(node.attrs.get("activation_alpha") or []),
                                 list(node.attrs.get("activation_beta") or []))


def check_recurrent(node: Node, graph: Graph) -> str | None:
    op = node.op_type
    for position, value in enumerate(node.inputs):
        if value and position != SEQUENCE_LENS and graph.types[value].dtype != F32_DTYPE:
            return f"cpu_llvm {op} handles float32 only"
    try:
        activations = _activations(node)
    except ValueError as error:
        return str(error)
    unsupported = sorted({name for name, _, _ in activations} - set(KERNEL_ACTIVATIONS))
    if unsupported:
        return (f"cpu_llvm {op} does not emit the activation(s) {', '.join(unsupported)}; it "
                f"has {', '.join(sorted(KERNEL_ACTIVATIONS))}")
    if any(graph.types[o].size == 0 for o in node.outputs if o):
        return f"cpu_llvm {op} does not take empty tensors"
    return None


@dataclass
class Layer:
    """The dims and attributes of one recurrent node."""

    op: str
    seq: int
    batch: int
    input_size: int
    hidden: int
    directions: int
    gates: int
    layout: int
    reverse_only: bool
    clip: float | None
    linear_before_reset: bool
    input_forget: bool

    @classmethod
    def of(cls, node: Node, graph: Graph) -> "Layer":
        x_shape = graph.types[node.inputs[0]].shape
        layout = int(node.attrs.get("layout", 0))
        seq, batch = (x_shape[1], x_shape[0]) if layout else (x_shape[0], x_shape[1])
        gates = GATES[node.op_type]
        hidden = graph.types[node.inputs[1]].shape[1] // gates
        clip = node.attrs.get("clip")
        return cls(node.op_type, seq, batch, x_shape[2], hidden, _directions(node), gates,
                   layout, node.attrs.get("direction", "forward") == "reverse",
                   None if clip is None else float(clip),
                   bool(node.attrs.get("linear_before_reset", 0)),
                   bool(node.attrs.get("input_forget", 0)))

    @property
    def width(self) -> int:
        """The gate pre-activations of one step and one batch entry."""
        return self.gates * self.hidden


@lowering("RNN", "GRU", "LSTM", check=check_recurrent)
def lower_recurrent(program, group) -> None:
    node = group.head
    graph = program.graph
    layer = Layer.of(node, graph)
    tag = node.name or node.op_type
    projected = program.temp(f"{tag}__xw", TensorType(
        F32_DTYPE, (layer.directions, layer.seq * layer.batch, layer.width)))
    _emit_input_projection(program, layer, node.inputs[0],
                           packed_transposed(program, layer, node.inputs[1], 0, layer.width,
                                             f"{tag}__w"), projected, tag)

    # GRU's default form multiplies reset * H by the hidden gate's R: a product of its own.
    split_hidden_gate = layer.op == "GRU" and not layer.linear_before_reset
    recurrent_products = ([(0, 2 * layer.hidden), (2 * layer.hidden, 3 * layer.hidden)]
                          if split_hidden_gate else [(0, layer.width)])
    packed_r = [packed_transposed(program, layer, node.inputs[2], start, stop,
                                  f"{tag}__r{start}")
                for start, stop in recurrent_products]
    slots = {"xw": projected}
    for key, position in (("bias", 3), ("lengths", SEQUENCE_LENS), ("initial_h", 5),
                          ("initial_c", 6), ("peepholes", 7)):
        value = _input(node, position)
        if value and not (key in ("initial_c", "peepholes") and layer.op != "LSTM"):
            slots[key] = program.value(value)
    for key, position in (("y", 0), ("y_h", 1), ("y_c", 2)):
        if len(node.outputs) > position and node.outputs[position]:
            slots[key] = program.value(node.outputs[position])
    mr = choose_mr(layer.batch)
    scratch = scratch_sizes(layer, mr)
    for key, size in scratch.items():
        slots[key] = program.scratch(f"{tag}__{key}", F32_DTYPE, size)
    fault = None
    if "lengths" in slots:
        fault = program.fault(f"{layer.op} node {node.name!r}: sequence_lens must lie in "
                              f"[0, {layer.seq}]")
    kb = program.kernel(f"{tag}_recurrence")
    Recurrence(kb, layer, slots, scratch, packed_r, recurrent_products, mr, _activations(node),
               fault).emit()
    kb.finish()


def packed_transposed(program, layer: Layer, name: str, start: int, stop: int,
                      key: str) -> int:
    """The slot of rows [start, stop) of each direction's W or R (``name``), transposed and
    packed in micro-kernel panels: packed at compile time when the weights are constant,
    else by a kernel of its own at run time."""
    nr = panel_width()
    graph = program.graph
    if graph.is_constant(name):
        weights = np.asarray(graph.constants[name], np.float32)[:, start:stop]
        return program.constant(key, pack_b(weights.swapaxes(1, 2), nr))
    directions, _, k = graph.types[name].shape
    n = stop - start
    panels = -(-n // nr)
    slot = program.temp(key, TensorType(F32_DTYPE, (directions, panels, k, nr)))
    source = program.value(name)
    kb = program.kernel(f"{key}_pack")
    b = kb.b
    weights, packed = kb.buffer(source), kb.buffer(slot)
    # Packed element (d, panel, kk, lane) is W[d, start + panel * NR + lane, kk].
    begin, end = kb.thread_share(directions * panels * k)
    with kb.loop(begin, end, name="packed_row") as packed_row, \
            kb.loop(0, nr, name="lane") as lane:
        d_panel, kk = b.sdiv(packed_row, const_i64(k)), b.srem(packed_row, const_i64(k))
        direction, panel = b.sdiv(d_panel, const_i64(panels)), b.srem(d_panel, const_i64(panels))
        column = b.add(b.mul(panel, const_i64(nr)), lane)
        inside = b.icmp_signed("<", column, const_i64(n))
        row = b.add(b.mul(direction, const_i64(layer.gates * layer.hidden)),
                    b.add(const_i64(start), b.select(inside, column, const_i64(0))))
        value = kb.load(weights, b.add(b.mul(row, const_i64(k)), kk), F32)
        kb.store(b.select(inside, value, ir.Constant(F32, 0.0)), packed,
                 b.add(b.mul(packed_row, const_i64(nr)), lane))
    kb.finish()
    return slot


def scratch_sizes(layer: Layer, mr: int) -> dict[str, int]:
    """Floats per thread of the recurrence's scratch buffers: the state (H, then C), the
    packed rows of H, the recurrent products of a step, and GRU's ``reset * H``."""
    return {"state": 2 * layer.batch * layer.hidden,
            "sliver": -(-layer.batch // mr) * mr * layer.hidden,
            "gates": layer.batch * layer.width, "hidden_gate": layer.batch * layer.hidden}


def _emit_input_projection(program, layer: Layer, x_name: str, w_slot: int, out_slot: int,
                           tag: str) -> None:
    """``xw[d] = X W[d]^T`` for every direction, X seen as [seq * batch, input] rows (W
    packed by :func:`packed_transposed`)."""
    nr = panel_width()
    rows, n, k = layer.seq * layer.batch, layer.width, layer.input_size
    mr = choose_mr(rows)
    panels = -(-n // nr)
    x_slot = program.value(x_name)
    a_scratch = program.scratch(f"{tag}__xpack", F32_DTYPE, a_scratch_size(rows, mr, k))
    kb = program.kernel(f"{tag}_input_projection")
    x, packed_w, out = kb.buffer(x_slot), kb.buffer(w_slot), kb.buffer(out_slot)
    b = kb.b

    def a_prepare(kb_, direction, k0, kc, mt0, mt1, dest, kcm):
        pack_a_runtime(kb_, lambda i, kk: kb.element(x, b.add(b.mul(i, const_i64(k)), kk),
                                                     F32), rows, mr, k0, kc, mt0, mt1, dest,
                       kcm)

    def b_const(kb_, direction, panel, k0):
        offset = b.add(b.mul(b.add(b.mul(direction, const_i64(panels)), panel),
                             const_i64(k * nr)), b.mul(k0, const_i64(nr)))
        return kb.element(packed_w, offset, F32)

    def c_info(kb_, direction):
        return kb.element(out, b.mul(direction, const_i64(rows * n)), F32), {}, const_i64(0)

    plan = GemmPlan(m=rows, n=n, k=k, batches=layer.directions, mr=mr, a_ptr=None,
                    c_info=c_info, epilogue=Epilogue((layer.directions, rows, n), 1, [2]),
                    b_const=b_const, a_prepare=a_prepare, a_scratch=a_scratch)
    emit_gemm(program, kb, plan, out)
    kb.finish()


class Recurrence:
    """Emits the time loop of one recurrent node for this thread's (direction, batch entry)
    pairs. ``slots`` maps buffer roles to slots; ``scratch`` gives the floats per thread of
    the scratch ones (:func:`scratch_sizes`)."""

    def __init__(self, kb: KernelBuilder, layer: Layer, slots: dict[str, int],
                 scratch: dict[str, int], packed_r: list[int], products: list[tuple[int, int]],
                 mr: int, activations, fault) -> None:
        self.kb, self.b, self.layer, self.mr = kb, kb.b, layer, mr
        self.products = products
        self.fault = fault
        self.ptr = {key: kb.buffer(slot) for key, slot in slots.items()}
        self.packed_r = [kb.buffer(slot) for slot in packed_r]
        for key, size in scratch.items():
            self.ptr[key] = kb.element(self.ptr[key], kb.b.mul(kb.tid, const_i64(size)), F32)
        self.cell_state = kb.element(self.ptr["state"], const_i64(layer.batch * layer.hidden),
                                     F32)
        self.activations = activations
        # The direction being emitted (a loop variable of the kernel), and the lanes of the
        # current vector of hidden units.
        self.direction: ir.Value | None = None
        self.within: ir.Value | None = None
        self.width = lanes()
        self.vector = ir.VectorType(F32, self.width)

    # -- small helpers ----------------------------------------------------------------------

    def c(self, value: int) -> ir.Value:
        return const_i64(value)

    def const(self, value: float) -> ir.Constant:
        return ir.Constant(self.vector, [value] * self.width)

    def load_at(self, base: ir.Value, offset: ir.Value) -> ir.Value:
        """The vector of values from ``base[offset]`` on (lanes past the hidden size read
        as zeros)."""
        return masked_load(self.b, self.kb.module, self.kb.element(base, offset, F32),
                           self.within, self.vector)

    def store_at(self, value: ir.Value, base: ir.Value, offset: ir.Value) -> None:
        masked_store(self.b, self.kb.module, value, self.kb.element(base, offset, F32),
                     self.within)

    def load(self, key: str, offset: ir.Value) -> ir.Value:
        return self.load_at(self.ptr[key], offset)

    def store(self, value: ir.Value, key: str, offset: ir.Value) -> None:
        self.store_at(value, self.ptr[key], offset)

    @contextlib.contextmanager
    def hidden_chunks(self) -> Iterator[ir.Value]:
        """Loop over the hidden units a vector at a time; yields the first unit and sets
        the lane mask the loads and stores use."""
        hidden = self.layer.hidden
        with self.kb.loop(0, -(-hidden // self.width), name="chunk") as chunk:
            first = self.b.mul(chunk, self.c(self.width))
            self.within = lane_mask(self.b, self.b.sub(self.c(hidden), first), self.width)
            yield first

    def activate(self, index: int, x: ir.Value) -> ir.Value:
        """Activation function ``index`` (f, g, h) of the current direction applied to x;
        each direction names its own functions."""
        per_direction = len(self.activations) // self.layer.directions
        forward = self.emit_activation(self.activations[index], x)
        if self.layer.directions == 1 or \
                self.activations[index] == self.activations[per_direction + index]:
            return forward
        backward = self.emit_activation(self.activations[per_direction + index], x)
        return self.b.select(self.b.icmp_signed("==", self.direction, self.c(1)), backward,
                             forward)

    def emit_activation(self, activation, x: ir.Value) -> ir.Value:
        name, alpha, beta = activation
        if name in VECTOR_ACTIVATIONS:
            return VECTOR_ACTIVATIONS[name](self.kb, x)
        attrs = {key: value for key, value in (("alpha", alpha), ("beta", beta))
                 if value is not None}
        op = KERNEL_ACTIVATIONS[name]
        return EMITTERS[op](self.kb, op, [x], attrs, [F32_DTYPE], F32_DTYPE)

    def clipped(self, x: ir.Value) -> ir.Value:
        if self.layer.clip is None:
            return x
        clip = self.layer.clip
        x = self.kb.intrinsic("llvm.maxnum", self.vector, [x, self.const(-clip)])
        return self.kb.intrinsic("llvm.minnum", self.vector, [x, self.const(clip)])

    def state_offset(self, direction: ir.Value, row: ir.Value, j: ir.Value) -> ir.Value:
        """Offset of (direction, batch entry, j) in initial_h, initial_c, Y_h and Y_c."""
        b, layer = self.b, self.layer
        if layer.layout:
            outer = b.add(b.mul(row, self.c(layer.directions)), direction)
        else:
            outer = b.add(b.mul(direction, self.c(layer.batch)), row)
        return b.add(b.mul(outer, self.c(layer.hidden)), j)

    def y_offset(self, step: ir.Value, direction: ir.Value, row: ir.Value,
                 j: ir.Value) -> ir.Value:
        b, layer = self.b, self.layer
        if layer.layout:
            outer = b.add(b.mul(b.add(b.mul(row, self.c(layer.seq)), step),
                                self.c(layer.directions)), direction)
        else:
            outer = b.add(b.mul(b.add(b.mul(step, self.c(layer.directions)), direction),
                                self.c(layer.batch)), row)
        return b.add(b.mul(outer, self.c(layer.hidden)), j)

    # -- the kernel -------------------------------------------------------------------------

    def emit(self) -> None:
        kb, b, layer = self.kb, self.b, self.layer
        begin, end = kb.thread_share(layer.directions * layer.batch)
        with kb.loop(0, layer.directions, name="dir") as direction:
            first = b.mul(direction, self.c(layer.batch))
            lo = b.sub(smax(b, begin, first), first)
            hi = b.sub(smin(b, end, b.add(first, self.c(layer.batch))), first)
            with b.if_then(b.icmp_signed("<", lo, hi)):
                self.emit_direction(direction, lo, hi)

    def emit_direction(self, direction: ir.Value, lo: ir.Value, hi: ir.Value) -> None:
        kb, b, layer = self.kb, self.b, self.layer
        self.direction = direction
        hidden = layer.hidden
        reverse = (b.icmp_signed("==", direction, self.c(1)) if layer.directions == 2
                   else ir.Constant(ir.IntType(1), int(layer.reverse_only)))
        with kb.loop(lo, hi, name="init_row") as row, self.hidden_chunks() as j:
            at = b.add(b.mul(row, self.c(hidden)), j)
            for key, target in (("initial_h", self.ptr["state"]),
                                ("initial_c", self.cell_state)):
                value = (self.load(key, self.state_offset(direction, row, j)) if key in self.ptr
                         else self.const(0.0))
                self.store_at(value, target, at)
            if "lengths" in self.ptr and "y" in self.ptr:
                # Entries shorter than the sequence leave zeros in Y past their length.
                with kb.loop(0, layer.seq, name="init_t") as t:
                    self.store(self.const(0.0), "y", self.y_offset(t, direction, row, j))
        with kb.loop(0, layer.seq, name="t") as t:
            self.emit_step(t, direction, reverse, lo, hi)
        with kb.loop(lo, hi, name="final_row") as row, self.hidden_chunks() as j:
            at = b.add(b.mul(row, self.c(hidden)), j)
            for key, source in (("y_h", self.ptr["state"]), ("y_c", self.cell_state)):
                if key in self.ptr:
                    self.store(self.load_at(source, at), key,
                               self.state_offset(direction, row, j))

    def length(self, row: ir.Value) -> ir.Value:
        """The sequence length of batch entry ``row`` (clamped to [0, seq]; a length outside
        sets the run-time fault)."""
        kb, b = self.kb, self.b
        if "lengths" not in self.ptr:
            return self.c(self.layer.seq)
        length = b.sext(kb.load(self.ptr["lengths"], row, I32), ir.IntType(64))
        bad = b.or_(b.icmp_signed("<", length, self.c(0)),
                    b.icmp_signed(">", length, self.c(self.layer.seq)))
        with b.if_then(bad):
            status, code = self.fault
            kb.store(ir.Constant(I32, code), kb.buffer(status), self.c(0))
        return smin(b, smax(b, length, self.c(0)), self.c(self.layer.seq))

    def entry_step(self, row, t, direction, reverse) -> tuple[ir.Value, ir.Value, ir.Value]:
        """For batch entry ``row`` at loop step ``t``: whether the entry is still running,
        the time step it reads (reversed, an entry steps from its own last element down),
        and that step's row of the input projection."""
        b, layer = self.b, self.layer
        length = self.length(row)
        active = b.icmp_signed("<", t, length)
        step = smax(b, b.select(reverse, b.sub(b.sub(length, self.c(1)), t), t), self.c(0))
        x_row = (b.add(b.mul(row, self.c(layer.seq)), step) if layer.layout
                 else b.add(b.mul(step, self.c(layer.batch)), row))
        return active, step, b.add(b.mul(direction, self.c(layer.seq * layer.batch)), x_row)

    def emit_step(self, t, direction, reverse, lo, hi) -> None:
        kb, b, layer = self.kb, self.b, self.layer
        hidden = layer.hidden
        self.pack_rows(self.ptr["state"], lo, hi)
        start, stop = self.products[0]
        self.multiply(0, direction, lo, hi, self.ptr["gates"], stop - start, layer.width)
        with kb.loop(lo, hi, name="row") as row:
            active, step, xw_row = self.entry_step(row, t, direction, reverse)
            with self.hidden_chunks() as j:
                gate = GateReader(self, direction, row, xw_row, j)
                state_at = b.add(b.mul(row, self.c(hidden)), j)
                if layer.op == "GRU" and not layer.linear_before_reset:
                    # First pass: z (kept in place of its recurrent product) and reset * H,
                    # packed next for the hidden gate's product.
                    z = self.activate(0, self.clipped(gate.pre(0)))
                    reset = self.activate(0, self.clipped(gate.pre(1)))
                    self.store(z, "gates", gate.at(0))
                    h = self.load_at(self.ptr["state"], state_at)
                    self.store(b.fmul(reset, h), "hidden_gate", state_at)
                else:
                    with b.if_then(active):
                        self.emit_cell(gate, state_at, row, direction, step)
        if layer.op == "GRU" and not layer.linear_before_reset:
            self.pack_rows(self.ptr["hidden_gate"], lo, hi)
            start, stop = self.products[1]
            self.multiply(1, direction, lo, hi, self.ptr["hidden_gate"], stop - start, hidden)
            with kb.loop(lo, hi, name="row2") as row:
                active, step, xw_row = self.entry_step(row, t, direction, reverse)
                with self.hidden_chunks() as j, b.if_then(active):
                    gate = GateReader(self, direction, row, xw_row, j)
                    state_at = b.add(b.mul(row, self.c(hidden)), j)
                    candidate = self.activate(1, self.clipped(
                        b.fadd(b.fadd(gate.projected(2), gate.bias(2)),
                               self.load("hidden_gate", state_at))))
                    z = self.load("gates", gate.at(0))
                    self.finish_gru(z, candidate, state_at, row, direction, step, j)

    def emit_cell(self, gate: "GateReader", state_at, row, direction, step) -> None:
        """The gates of one vector of hidden units of an active entry, its new state and its Y."""
        b, layer = self.b, self.layer
        if layer.op == "RNN":
            h = self.activate(0, self.clipped(gate.pre(0)))
            self.store_at(h, self.ptr["state"], state_at)
            self.write_y(h, row, step, direction, gate.j)
        elif layer.op == "GRU":
            z = self.activate(0, self.clipped(gate.pre(0)))
            reset = self.activate(0, self.clipped(gate.pre(1)))
            recurrent_h = b.fadd(gate.recurrent(2), gate.recurrent_bias(2))
            candidate = self.activate(1, self.clipped(
                b.fadd(b.fadd(gate.projected(2), gate.input_bias(2)),
                       b.fmul(reset, recurrent_h))))
            self.finish_gru(z, candidate, state_at, row, direction, step, gate.j)
        else:
            c_prev = self.load_at(self.cell_state, state_at)
            i_gate = self.activate(0, self.clipped(gate.peephole(gate.pre(0), 0, c_prev)))
            if layer.input_forget:
                f_gate = b.fsub(self.const(1.0), i_gate)
            else:
                f_gate = self.activate(0, self.clipped(gate.peephole(gate.pre(2), 2, c_prev)))
            candidate = self.activate(1, self.clipped(gate.pre(3)))
            cell = b.fadd(b.fmul(f_gate, c_prev), b.fmul(i_gate, candidate))
            o_gate = self.activate(0, self.clipped(gate.peephole(gate.pre(1), 1, cell)))
            h = b.fmul(o_gate, self.activate(2, cell))
            self.store_at(cell, self.cell_state, state_at)
            self.store_at(h, self.ptr["state"], state_at)
            self.write_y(h, row, step, direction, gate.j)

    def finish_gru(self, z, candidate, state_at, row, direction, step, j) -> None:
        """``H = (1 - z) * candidate + z * H``, and its Y."""
        b = self.b
        h_prev = self.load_at(self.ptr["state"], state_at)
        h = b.fadd(b.fmul(b.fsub(self.const(1.0), z), candidate), b.fmul(z, h_prev))
        self.store_at(h, self.ptr["state"], state_at)
        self.write_y(h, row, step, direction, j)

    def write_y(self, h, row, step, direction, j) -> None:
        if "y" in self.ptr:
            self.store(h, "y", self.y_offset(step, direction, row, j))

    def pack_rows(self, source: ir.Value, lo: ir.Value, hi: ir.Value) -> None:
        """Rows [lo, hi) of a [batch, hidden] array as slivers of MR rows (``hidden``
        groups of MR values) for the micro-kernel; rows past ``hi`` are zeros."""
        kb, b, mr, hidden = self.kb, self.b, self.mr, self.layer.hidden
        rows = b.sub(hi, lo)
        tiles = b.sdiv(b.add(rows, self.c(mr - 1)), self.c(mr))
        with kb.loop(self.c(0), b.mul(tiles, self.c(mr)), name="pack_i") as i, \
                kb.loop(0, hidden, name="pack_k") as kk:
            inside = b.icmp_signed("<", i, rows)
            source_row = b.add(lo, b.select(inside, i, self.c(0)))
            value = kb.load(source, b.add(b.mul(source_row, self.c(hidden)), kk), F32)
            tile, lane = b.sdiv(i, self.c(mr)), b.srem(i, self.c(mr))
            offset = b.add(b.mul(b.add(b.mul(tile, self.c(hidden)), kk), self.c(mr)), lane)
            kb.store(b.select(inside, value, ir.Constant(F32, 0.0)), self.ptr["sliver"], offset)

    def multiply(self, product: int, direction, lo, hi, out: ir.Value, n: int,
                 ldc: int) -> None:
        """``out[lo:hi, :n] = H_packed @ R_product^T`` with the micro-kernel, tile by tile."""
        kb, b = self.kb, self.b
        nr = panel_width()
        k = self.layer.hidden
        kc_max = k_block(k)
        panels = -(-n // nr)
        rows = b.sub(hi, lo)
        tiles = b.sdiv(b.add(rows, self.c(self.mr - 1)), self.c(self.mr))
        with kb.loop(0, panels, name="panel") as panel, \
                kb.loop(0, -(-k // kc_max), name="kblock") as kblock, \
                kb.loop(self.c(0), tiles, name="tile") as tile:
            k0 = b.mul(kblock, self.c(kc_max))
            kc = smin(b, self.c(kc_max), b.sub(self.c(k), k0))
            sliver = kb.element(self.ptr["sliver"],
                                b.add(b.mul(tile, self.c(k * self.mr)),
                                      b.mul(k0, self.c(self.mr))), F32)
            weights = kb.element(
                self.packed_r[product],
                b.add(b.mul(b.add(b.mul(direction, self.c(panels)), panel), self.c(k * nr)),
                      b.mul(k0, self.c(nr))), F32)
            first_row = b.add(lo, b.mul(tile, self.c(self.mr)))
            col = b.mul(panel, self.c(nr))
            target = kb.element(out, b.add(b.mul(first_row, self.c(ldc)), col), F32)
            call_ukernel(kb, self.mr, NRV, lanes(),
                         [sliver, weights, nr, target, ldc, kc,
                          b.zext(b.icmp_signed(">", kblock, self.c(0)), ir.IntType(64)),
                          smin(b, self.c(self.mr), b.sub(rows, b.mul(tile, self.c(self.mr)))),
                          smin(b, self.c(nr), b.sub(self.c(n), col))])


class GateReader:
    """The pieces of gate ``g``'s pre-activation for one (entry, j) of a step."""

    def __init__(self, recurrence: Recurrence, direction, row, xw_row, j) -> None:
        self.r, self.b, self.j = recurrence, recurrence.b, j
        layer = recurrence.layer
        self.gate_width = layer.width
        self.hidden = layer.hidden
        self.direction, self.row, self.xw_row = direction, row, xw_row

    def column(self, gate: int) -> ir.Value:
        return self.b.add(self.r.c(gate * self.hidden), self.j)

    def at(self, gate: int) -> ir.Value:
        """Offset of the gate's element in this entry's row of the step's products."""
        return self.b.add(self.b.mul(self.row, self.r.c(self.gate_width)), self.column(gate))

    def projected(self, gate: int) -> ir.Value:
        offset = self.b.add(self.b.mul(self.xw_row, self.r.c(self.gate_width)), self.column(gate))
        return self.r.load("xw", offset)

    def input_bias(self, gate: int) -> ir.Value:
        """Wb of the gate (B holds Wb then Rb for each direction)."""
        if "bias" not in self.r.ptr:
            return self.r.const(0.0)
        offset = self.b.add(self.b.mul(self.direction, self.r.c(2 * self.gate_width)),
                            self.column(gate))
        return self.r.load("bias", offset)

    def recurrent_bias(self, gate: int) -> ir.Value:
        """Rb of the gate."""
        if "bias" not in self.r.ptr:
            return self.r.const(0.0)
        offset = self.b.add(self.b.mul(self.direction, self.r.c(2 * self.gate_width)),
                            self.b.add(self.r.c(self.gate_width), self.column(gate)))
        return self.r.load("bias", offset)

    def bias(self, gate: int) -> ir.Value:
        """Wb + Rb of the gate."""
        return self.b.fadd(self.input_bias(gate), self.recurrent_bias(gate))

    def peephole(self, pre: ir.Value, index: int, cell: ir.Value) -> ir.Value:
        """``pre + P[index] * cell``, for peephole ``index`` (i, o, f) when P is given."""
        if "peepholes" not in self.r.ptr:
            return pre
        offset = self.b.add(self.b.mul(self.direction, self.r.c(3 * self.hidden)),
                            self.b.add(self.r.c(index * self.hidden), self.j))
        return self.b.fadd(pre, self.b.fmul(self.r.load("peepholes", offset), cell))

    def recurrent(self, gate: int) -> ir.Value:
        return self.r.load("gates", self.at(gate))

    def pre(self, gate: int) -> ir.Value:
        """``X W^T + H R^T + biases`` of the gate."""
        return self.b.fadd(self.b.fadd(self.projected(gate), self.recurrent(gate)),
                           self.bias(gate))
