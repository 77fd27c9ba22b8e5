"""Attention (scaled dot-product, opsets 23 to 25), float32 or float16 (computed in float32,
rounded once on the way out): 3-D or 4-D Q, K, V, grouped kv
heads, a key/value cache (past_key/past_value in, present_key/present_value out) or
nonpad_kv_seqlen, a float or bool mask, causal, sliding windows, softcap, any scale, and
qk_matmul_output in every mode.

Threads split the (batch, query head) pairs. For each pair the kernel packs ``K^T`` and V
(the cache's keys, then the new ones) into micro-kernel panels in per-thread scratch, then
takes the queries MR rows at a time: ``Q * scale`` packed as a sliver, the scores ``Q K^T``
from the GEMM micro-kernel, then per row the softcap and the bias (mask, causal frontier,
window, padding) and a softmax whose exponentials are vectorized, written into the packed
layout of the next product, and ``P V`` from the micro-kernel again, stored into Y. Which
keys a query sees follows the reference exactly (offset-aligned causality and windows; a row
whose bias masks every key gives zeros).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import numpy as np
from llvmlite import ir

from byoc.core.interpreter.ops_attention import AttentionShapes
from byoc.core.ir import Graph, Node
from byoc_cpu_llvm.codegen import (
    F16,
    F32,
    I1,
    I8,
    I16,
    I32,
    I64,
    PTR,
    KernelBuilder,
    const_i64,
    smax,
    smin,
)
from byoc_cpu_llvm.kernels import lowering
from byoc_cpu_llvm.kernels.elementwise import half_supported, strides_for
from byoc_cpu_llvm.kernels.gemm_driver import NRV, choose_mr, k_block, lanes, panel_width
from byoc_cpu_llvm.kernels.microkernel import call_ukernel, lane_mask, masked_load, masked_store
from byoc_cpu_llvm.kernels.reduction_parts import Var
from byoc_cpu_llvm.kernels.vector_math import vector_exp, vector_tanh

F32_DTYPE = np.dtype(np.float32)
F16_DTYPE = np.dtype(np.float16)
# Inputs by position.
Q, K, V, MASK, PAST_KEY, PAST_VALUE, NONPAD = range(7)
# Outputs by position.
Y, PRESENT_KEY, PRESENT_VALUE, QK_OUTPUT = range(4)
QK_RAW, QK_SOFTCAPPED, QK_BIASED, QK_SOFTMAX = range(4)


def _present(values: list[str], position: int) -> str | None:
    return values[position] if len(values) > position and values[position] else None


def attention_shapes(node: Node, graph: Graph) -> AttentionShapes:
    """The node's dims, checked by the reference's own rules (on shape-only stand-ins)."""
    stand_ins = [None if not v else np.broadcast_to(np.zeros((), graph.types[v].dtype),
                                                    graph.types[v].shape)
                 for v in node.inputs]
    stand_ins += [None] * (7 - len(stand_ins))
    return AttentionShapes(*stand_ins, graph.opsets.get("", 0), node.attrs.get("q_num_heads"),
                           node.attrs.get("kv_num_heads"))


def check_attention(node: Node, graph: Graph) -> str | None:
    dtype = graph.types[node.inputs[Q]].dtype
    if dtype not in (F32_DTYPE, F16_DTYPE):
        return "cpu_llvm Attention handles float32 and float16"
    if dtype == F16_DTYPE and not half_supported():
        return "cpu_llvm handles float16 only on CPUs with float16 conversions (F16C)"
    for position in (K, V, PAST_KEY, PAST_VALUE):
        value = _present(node.inputs, position)
        if value and graph.types[value].dtype != dtype:
            return "cpu_llvm Attention needs Q, K, V and the cache in one dtype"
    try:
        dims = attention_shapes(node, graph)
    except ValueError as error:
        return str(error)
    mask = _present(node.inputs, MASK)
    if mask and graph.types[mask].dtype not in (dtype, np.dtype(np.bool_)):
        return f"cpu_llvm Attention takes a bool mask or one of Q's dtype ({dtype})"
    if node.attrs.get("qk_matmul_output_mode", 0) not in range(4):
        return "Attention qk_matmul_output_mode must be 0, 1, 2 or 3"
    if 0 in (dims.batch, dims.q_heads, dims.q_seq, dims.total_seq, dims.head_size,
             dims.v_head_size):
        return "cpu_llvm Attention does not take empty tensors"
    return None


class _Layout:
    """Element strides of a (batch, heads, seq, size) view of a 3-D or 4-D tensor (the last
    axis is contiguous)."""

    def __init__(self, three_d: bool, heads: int, seq: int, size: int) -> None:
        if three_d:
            self.batch, self.head, self.row = seq * heads * size, size, heads * size
        else:
            self.batch, self.head, self.row = heads * seq * size, seq * size, size

    def offset(self, b: ir.IRBuilder, batch, head, row) -> ir.Value:
        return b.add(b.add(b.mul(batch, const_i64(self.batch)),
                           b.mul(head, const_i64(self.head))),
                     b.mul(row, const_i64(self.row)))


class AttentionKernel:
    """Emits one Attention node's kernel."""

    def __init__(self, program, node: Node) -> None:
        graph = program.graph
        self.node, self.graph = node, graph
        self.dims = dims = attention_shapes(node, graph)
        attrs = node.attrs
        scale = attrs.get("scale")
        self.scale = float(1 / np.sqrt(dims.head_size) if scale is None else scale)
        self.causal = bool(attrs.get("is_causal", 0))
        self.softcap = float(attrs.get("softcap", 0.0))
        self.left_window = int(attrs.get("left_window_size", -1))
        self.right_window = int(attrs.get("right_window_size", -1))
        self.qk_mode = int(attrs.get("qk_matmul_output_mode", 0))
        self.nr = panel_width()
        self.mr = choose_mr(dims.q_seq)
        total = dims.total_seq
        key_panels = -(-total // self.nr)
        value_panels = -(-dims.v_head_size // self.nr)
        tag = node.name or "attention"
        self.half = graph.types[node.inputs[Q]].dtype == F16_DTYPE
        self.sizes = {"keys": key_panels * dims.head_size * self.nr,
                      "values": value_panels * total * self.nr,
                      "queries": dims.head_size * self.mr, "scores": self.mr * total,
                      "probabilities": total * self.mr}
        if self.half:
            # Y's rows of a query tile in float32, before they are rounded into Y.
            self.sizes["output"] = self.mr * dims.v_head_size
        self.scratch = {key: program.scratch(f"{tag}__{key}", F32_DTYPE, size)
                        for key, size in self.sizes.items()}
        self.slots = {}
        for key, position in (("q", Q), ("k", K), ("v", V), ("mask", MASK),
                              ("past_key", PAST_KEY), ("past_value", PAST_VALUE),
                              ("nonpad", NONPAD)):
            value = _present(node.inputs, position)
            if value:
                self.slots[key] = program.value(value)
        for key, position in (("y", Y), ("present_key", PRESENT_KEY),
                              ("present_value", PRESENT_VALUE), ("qk", QK_OUTPUT)):
            value = _present(node.outputs, position)
            if value:
                self.slots[key] = program.value(value)
        mask = _present(node.inputs, MASK)
        self.mask_type = graph.types[mask] if mask else None
        if mask:
            # Over (batch, q_heads, q_seq) the mask broadcasts; along the keys it may be
            # shorter than the cache (the keys past its end are masked out).
            shape = (1,) * (4 - len(self.mask_type.shape)) + tuple(self.mask_type.shape)
            self.mask_strides = [stride * shape[3] for stride in strides_for(shape[:3],
                                                                             shape[:3])] + [1]
        self.nonpad_dtype = graph.types[node.inputs[NONPAD]].dtype if "nonpad" in self.slots \
            else None
        self.kb = program.kernel(tag)

    # -- helpers -----------------------------------------------------------------------------

    def c(self, value: int) -> ir.Value:
        return const_i64(value)

    def element(self, key: str, offset: ir.Value) -> ir.Value:
        """Pointer to element ``offset`` of buffer ``key`` (a tensor of Q's dtype, or a
        float32 scratch buffer)."""
        half = self.half and key not in self.sizes
        return self.kb.element(self.ptr[key], offset, F16 if half else F32)

    def load(self, pointer: ir.Value, offset: ir.Value) -> ir.Value:
        """One value of Q's dtype, as float32."""
        if not self.half:
            return self.kb.load(pointer, offset, F32)
        return self.kb.b.fpext(self.kb.load(pointer, offset, F16), F32)

    def load_vector(self, pointer: ir.Value, mask: ir.Value) -> ir.Value:
        """The lanes ``mask`` sets of a vector of Q's dtype at ``pointer``, as float32."""
        b, width = self.kb.b, mask.type.count
        if not self.half:
            return masked_load(b, self.kb.module, pointer, mask, ir.VectorType(F32, width))
        # Masked loads are declared for integer lanes: the halves travel as their bits.
        bits = masked_load(b, self.kb.module, pointer, mask, ir.VectorType(I16, width))
        return b.fpext(b.bitcast(bits, ir.VectorType(F16, width)), ir.VectorType(F32, width))

    def store_vector(self, value: ir.Value, pointer: ir.Value, mask: ir.Value) -> None:
        """Store a float32 vector into a tensor of Q's dtype (rounded once for float16)."""
        b, width = self.kb.b, mask.type.count
        if self.half:
            value = b.bitcast(b.fptrunc(value, ir.VectorType(F16, width)),
                              ir.VectorType(I16, width))
        masked_store(b, self.kb.module, value, pointer, mask)

    def cache_row(self, which: str, layout: _Layout, batch, kv_head, position) -> ir.Value:
        """Pointer to the key (``which`` "k") or value ("v") at cache ``position``: the past
        cache's for the first ``past_seq`` positions, else the new K's or V's."""
        b, dims = self.kb.b, self.dims
        fresh = self.element(which, layout.offset(
            b, batch, kv_head, smax(b, b.sub(position, self.c(dims.past_seq)), self.c(0))))
        if not dims.past_seq:
            return fresh
        size = dims.head_size if which == "k" else dims.v_head_size
        past_index = b.add(b.mul(b.add(b.mul(batch, self.c(dims.kv_heads)), kv_head),
                                 self.c(dims.past_seq)),
                           smin(b, position, self.c(dims.past_seq - 1)))
        past = self.element(f"past_{'key' if which == 'k' else 'value'}",
                            b.mul(past_index, self.c(size)))
        return b.select(b.icmp_signed("<", position, self.c(dims.past_seq)), past, fresh)

    # -- the kernel -------------------------------------------------------------------------

    def emit(self) -> None:
        kb, dims = self.kb, self.dims
        b = kb.b
        self.ptr = {key: kb.buffer(slot) for key, slot in self.slots.items()}
        for key, slot in self.scratch.items():
            self.ptr[key] = kb.element(kb.buffer(slot), b.mul(kb.tid, self.c(self.sizes[key])),
                                       F32)
        self.q_layout = _Layout(dims.three_d, dims.q_heads, dims.q_seq, dims.head_size)
        kv_seq = dims.total_seq - dims.past_seq
        self.k_layout = _Layout(dims.three_d, dims.kv_heads, kv_seq, dims.head_size)
        self.v_layout = _Layout(dims.three_d, dims.kv_heads, kv_seq, dims.v_head_size)
        self.y_layout = _Layout(dims.three_d, dims.q_heads, dims.q_seq, dims.v_head_size)
        self.row_max = Var(kb, ir.VectorType(F32, lanes()), name="max")
        self.bias_max = Var(kb, ir.VectorType(F32, lanes()), name="bias_max")
        self.row_sum = Var(kb, ir.VectorType(F32, lanes()), name="sum")
        group = dims.q_heads // dims.kv_heads
        begin, end = kb.thread_share(dims.batch * dims.q_heads)
        with kb.loop(begin, end, name="pair") as pair:
            batch = b.sdiv(pair, self.c(dims.q_heads))
            head = b.srem(pair, self.c(dims.q_heads))
            kv_head = b.sdiv(head, self.c(group))
            self.pack_cache(batch, kv_head)
            if "present_key" in self.ptr or "present_value" in self.ptr:
                # The first query head of each kv head writes the cache out, once.
                with b.if_then(b.icmp_signed("==", b.srem(head, self.c(group)), self.c(0))):
                    self.write_present(batch, kv_head)
            with kb.loop(0, -(-dims.q_seq // self.mr), name="qtile") as tile:
                self.emit_query_tile(batch, head, b.mul(tile, self.c(self.mr)))
        kb.finish()

    def pack_cache(self, batch, kv_head) -> None:
        """``K^T`` ([head_size, total], panels of NR keys) and V ([total, v_head_size],
        panels of NR columns) of one kv head into scratch. Panel lanes past the last key or
        column are left as they are: the micro-kernel never stores what they give."""
        kb, dims, nr = self.kb, self.dims, self.nr
        b = kb.b
        width = lanes()
        total = dims.total_seq
        with kb.loop(0, total, name="position") as position:
            key = self.cache_row("k", self.k_layout, batch, kv_head, position)
            column = b.add(b.mul(b.sdiv(position, self.c(nr)), self.c(dims.head_size * nr)),
                           b.srem(position, self.c(nr)))
            with kb.loop(0, dims.head_size, name="key_d") as d:
                kb.store(self.load(key, d), self.ptr["keys"],
                         b.add(column, b.mul(d, self.c(nr))))
            value = self.cache_row("v", self.v_layout, batch, kv_head, position)
            with kb.loop(0, -(-dims.v_head_size // width), name="value_d") as chunk:
                first = b.mul(chunk, self.c(width))
                within = lane_mask(b, b.sub(self.c(dims.v_head_size), first), width)
                loaded = self.load_vector(kb.element(value, first, F16 if self.half else F32),
                                          within)
                panel, lane = b.sdiv(first, self.c(nr)), b.srem(first, self.c(nr))
                at = b.add(b.add(b.mul(panel, self.c(total * nr)), b.mul(position, self.c(nr))),
                           lane)
                b.store(loaded, self.element("values", at), align=4)

    def write_present(self, batch, kv_head) -> None:
        kb, dims = self.kb, self.dims
        b = kb.b
        for which, key, size, layout in (("k", "present_key", dims.head_size, self.k_layout),
                                         ("v", "present_value", dims.v_head_size,
                                          self.v_layout)):
            if key not in self.ptr:
                continue
            base = b.mul(b.add(b.mul(batch, self.c(dims.kv_heads)), kv_head),
                         self.c(dims.total_seq * size))
            with kb.loop(0, dims.total_seq, name=f"{key}_pos") as position:
                source = self.cache_row(which, layout, batch, kv_head, position)
                target = b.add(base, b.mul(position, self.c(size)))
                with kb.loop(0, size, name=f"{key}_d") as d:
                    elem = F16 if self.half else F32
                    kb.store(kb.load(source, d, elem), self.ptr[key], b.add(target, d))

    def emit_query_tile(self, batch, head, first) -> None:
        kb, dims, mr = self.kb, self.dims, self.mr
        b = kb.b
        rows = smin(b, self.c(mr), b.sub(self.c(dims.q_seq), first))
        with kb.loop(self.c(0), rows, name="qi") as i:
            query = self.element("q", self.q_layout.offset(b, batch, head, b.add(first, i)))
            with kb.loop(0, dims.head_size, name="qd") as d:
                kb.store(b.fmul(self.load(query, d), ir.Constant(F32, self.scale)),
                         self.ptr["queries"], b.add(b.mul(d, self.c(mr)), i))
        _product(kb, mr, self.ptr["queries"], self.ptr["keys"], dims.head_size, dims.total_seq,
                 self.ptr["scores"], dims.total_seq, rows, dims.head_size * self.nr)
        with kb.loop(self.c(0), rows, name="row") as i:
            self.emit_softmax_row(batch, head, b.add(first, i), i)
        y_at = self.y_layout.offset(b, batch, head, first)
        if not self.half:
            _product(kb, mr, self.ptr["probabilities"], self.ptr["values"], dims.total_seq,
                     dims.v_head_size, self.element("y", y_at), self.y_layout.row, rows,
                     dims.total_seq * self.nr)
            return
        _product(kb, mr, self.ptr["probabilities"], self.ptr["values"], dims.total_seq,
                 dims.v_head_size, self.ptr["output"], dims.v_head_size, rows,
                 dims.total_seq * self.nr)
        width = lanes()
        with kb.loop(self.c(0), rows, name="y_row") as i, \
                kb.loop(0, -(-dims.v_head_size // width), name="y_chunk") as chunk:
            first_column = b.mul(chunk, self.c(width))
            within = lane_mask(b, b.sub(self.c(dims.v_head_size), first_column), width)
            row = b.add(b.mul(i, self.c(dims.v_head_size)), first_column)
            value = masked_load(b, kb.module, self.element("output", row), within,
                                ir.VectorType(F32, width))
            self.store_vector(value, self.element(
                "y", b.add(y_at, b.add(b.mul(i, self.c(self.y_layout.row)), first_column))),
                within)

    def bias(self, batch, head, query, keys, within, offset) -> ir.Value:
        """The additive bias of ``query`` and a vector of ``keys`` (``within``: the lanes
        inside the row): the mask's value (or 0 / -inf for a bool mask, -inf past a short
        mask's end), -inf where causality, the window or the padding hides the key."""
        kb = self.kb
        b = kb.b
        width = keys.type.count
        vec = ir.VectorType(F32, width)
        minus_inf = ir.Constant(vec, [float("-inf")] * width)
        bias = ir.Constant(vec, [0.0] * width)

        def splat(value: int | ir.Value) -> ir.Value:
            return kb.splat(self.c(value) if isinstance(value, int) else value, width)

        if self.mask_type is not None:
            strides = self.mask_strides
            mask_length = self.mask_type.shape[-1]
            readable = b.and_(within, b.icmp_signed("<", keys, splat(mask_length)))
            row = b.add(b.add(b.mul(batch, self.c(strides[0])), b.mul(head, self.c(strides[1]))),
                        b.mul(query, self.c(strides[2])))
            first_key = b.extract_element(keys, ir.Constant(I32, 0))
            if self.mask_type.dtype == np.bool_:
                where = kb.element(self.ptr["mask"], b.add(row, first_key), I8)
                keep = b.icmp_signed("!=", masked_load(b, kb.module, where, readable,
                                                       ir.VectorType(I8, width)),
                                     ir.Constant(ir.VectorType(I8, width), [0] * width))
                bias = b.select(b.and_(readable, keep), bias, minus_inf)
            else:
                where = self.element("mask", b.add(row, first_key))
                bias = b.select(readable, self.load_vector(where, readable), minus_inf)
        if self.causal or self.left_window >= 0 or self.right_window >= 0 \
                or "nonpad" in self.ptr:
            hidden = ir.Constant(ir.VectorType(I1, width), [0] * width)
            # How far each key lies behind the query's absolute position.
            behind = b.sub(splat(b.add(query, offset)), keys)
            if self.causal:
                hidden = b.or_(hidden, b.icmp_signed("<", behind, splat(0)))
            if self.left_window >= 0:
                hidden = b.or_(hidden, b.icmp_signed(">", behind, splat(self.left_window)))
            if self.right_window >= 0:
                hidden = b.or_(hidden, b.icmp_signed("<", behind, splat(-self.right_window)))
            if "nonpad" in self.ptr:
                hidden = b.or_(hidden, b.icmp_signed(">=", keys, splat(self.nonpad_length(batch))))
            bias = b.select(hidden, minus_inf, bias)
        return bias

    def nonpad_length(self, batch) -> ir.Value:
        return self.kb.load_i64(self.ptr["nonpad"], batch, self.nonpad_dtype)

    def write_qk(self, value, batch, head, query, first_key, within) -> None:
        """Store a vector of qk_matmul_output values, keys from ``first_key`` on."""
        dims = self.dims
        b = self.kb.b
        row = b.add(b.mul(b.add(b.mul(batch, self.c(dims.q_heads)), head), self.c(dims.q_seq)),
                    query)
        where = self.element("qk", b.add(b.mul(row, self.c(dims.total_seq)), first_key))
        self.store_vector(value, where, within)

    @contextlib.contextmanager
    def row_chunks(self) -> Iterator[tuple[ir.Value, ir.Value, ir.Value]]:
        """Loop over a row of keys a vector at a time: yields the first key, the vector of
        keys and the mask of the lanes inside the row."""
        kb, width = self.kb, lanes()
        b = kb.b
        total = self.dims.total_seq
        iota = ir.Constant(ir.VectorType(I64, width), list(range(width)))
        with kb.loop(0, -(-total // width), name="chunk") as chunk:
            first = b.mul(chunk, self.c(width))
            yield first, b.add(kb.splat(first, width), iota), \
                lane_mask(b, b.sub(self.c(total), first), width)

    def emit_softmax_row(self, batch, head, query, i) -> None:
        """Bias and softmax of one query row of the scores, vectorized along the keys; the
        probabilities go to the packed sliver of the value product (column ``i``)."""
        kb, dims, mr = self.kb, self.dims, self.mr
        b = kb.b
        width = lanes()
        vec = ir.VectorType(F32, width)
        minus_inf = ir.Constant(vec, [float("-inf")] * width)
        wants_qk = "qk" in self.ptr
        if "nonpad" in self.ptr:
            offset = b.sub(self.nonpad_length(batch), self.c(dims.q_seq))
        else:
            offset = self.c(dims.past_seq)
        row = b.mul(i, self.c(dims.total_seq))
        self.row_max.set(minus_inf)
        self.bias_max.set(minus_inf)
        with self.row_chunks() as (first, keys, within):
            where = self.element("scores", b.add(row, first))
            score = masked_load(b, kb.module, where, within, vec)
            if wants_qk and self.qk_mode == QK_RAW:
                self.write_qk(score, batch, head, query, first, within)
            if self.softcap > 0:
                cap = ir.Constant(vec, [self.softcap] * width)
                score = b.fmul(cap, vector_tanh(kb, b.fdiv(score, cap)))
            if wants_qk and self.qk_mode == QK_SOFTCAPPED:
                self.write_qk(score, batch, head, query, first, within)
            bias = b.select(within, self.bias(batch, head, query, keys, within, offset),
                            minus_inf)
            score = b.fadd(score, bias)
            if wants_qk and self.qk_mode == QK_BIASED:
                self.write_qk(score, batch, head, query, first, within)
            masked_store(b, kb.module, score, where, within)
            self.bias_max.set(kb.intrinsic("llvm.maxnum", vec, [self.bias_max.get(), bias]))
            self.row_max.set(kb.intrinsic("llvm.maxnum", vec, [
                self.row_max.get(), b.select(within, score, minus_inf)]))
        # A row whose bias hides every key gives zeros, whatever its scores.
        masked_row = b.fcmp_ordered("==", _horizontal_max(kb, self.bias_max.get()),
                                    ir.Constant(F32, float("-inf")))
        row_max = _horizontal_max(kb, self.row_max.get())
        shift = b.select(b.fcmp_ordered("==", row_max, ir.Constant(F32, float("-inf"))),
                         ir.Constant(F32, 0.0), row_max)
        self.row_sum.set(ir.Constant(vec, [0.0] * width))
        with self.row_chunks() as (first, keys, within):
            where = self.element("scores", b.add(row, first))
            exps = vector_exp(kb, b.fsub(masked_load(b, kb.module, where, within, vec),
                                         kb.splat(shift, width)))
            exps = b.select(within, exps, ir.Constant(vec, [0.0] * width))
            masked_store(b, kb.module, exps, where, within)
            self.row_sum.set(b.fadd(self.row_sum.get(), exps))
        total_sum = self.row_sum.get()
        horizontal = b.extract_element(total_sum, ir.Constant(I32, 0))
        for lane in range(1, width):
            horizontal = b.fadd(horizontal, b.extract_element(total_sum, ir.Constant(I32, lane)))
        inverse = b.select(masked_row, ir.Constant(F32, 0.0),
                           b.fdiv(ir.Constant(F32, 1.0), horizontal))
        with self.row_chunks() as (first, keys, within):
            where = self.element("scores", b.add(row, first))
            probabilities = b.fmul(masked_load(b, kb.module, where, within, vec),
                                   kb.splat(inverse, width))
            if wants_qk and self.qk_mode == QK_SOFTMAX:
                self.write_qk(probabilities, batch, head, query, first, within)
            # Into column i of the sliver: one scatter, MR floats apart.
            column = b.add(b.mul(keys, kb.splat(self.c(mr), width)), kb.splat(i, width))
            scatter(kb, probabilities, self.ptr["probabilities"], column, within)


def scatter(kb: KernelBuilder, values: ir.Value, base: ir.Value, offsets: ir.Value,
            mask: ir.Value) -> None:
    """Store the lanes of float32 ``values`` at ``base[offsets]`` (the lanes ``mask`` sets)."""
    b = kb.b
    count = values.type.count
    addresses = b.add(kb.splat(b.ptrtoint(base, I64), count),
                      b.mul(offsets, ir.Constant(ir.VectorType(I64, count), [4] * count)))
    pointers = b.inttoptr(addresses, ir.VectorType(PTR, count))
    name = f"llvm.masked.scatter.v{count}f32.v{count}p0"
    fn = kb.module.globals.get(name) or ir.Function(kb.module, ir.FunctionType(
        ir.VoidType(), [values.type, pointers.type, I32, mask.type]), name)
    b.call(fn, [values, pointers, ir.Constant(I32, 4), mask])


def _horizontal_max(kb: KernelBuilder, vector: ir.Value) -> ir.Value:
    result = kb.b.extract_element(vector, ir.Constant(I32, 0))
    for lane in range(1, vector.type.count):
        result = kb.intrinsic("llvm.maxnum", F32, [
            result, kb.b.extract_element(vector, ir.Constant(I32, lane))])
    return result


@lowering("Attention", check=check_attention)
def lower_attention(program, group) -> None:
    AttentionKernel(program, group.head).emit()


def _product(kb: KernelBuilder, mr: int, sliver: ir.Value, panels: ir.Value, k: int, n: int,
             out: ir.Value, ldc: int, rows: ir.Value, panel_stride: int) -> None:
    """``out[:rows, :n] = A @ B`` for one sliver of MR rows of A (``k`` groups of MR values)
    and B packed in panels ``panel_stride`` floats apart, with the micro-kernel, K blocked."""
    b = kb.b
    nr = panel_width()
    kc_max = k_block(k)
    with kb.loop(0, -(-n // nr), name="panel") as panel, \
            kb.loop(0, -(-k // kc_max), name="kblock") as kblock:
        k0 = b.mul(kblock, const_i64(kc_max))
        col = b.mul(panel, const_i64(nr))
        call_ukernel(kb, mr, NRV, lanes(), [
            kb.element(sliver, b.mul(k0, const_i64(mr)), F32),
            kb.element(panels, b.add(b.mul(panel, const_i64(panel_stride)),
                                     b.mul(k0, const_i64(nr))), F32),
            nr, kb.element(out, col, F32), ldc,
            smin(b, const_i64(kc_max), b.sub(const_i64(k), k0)),
            b.zext(b.icmp_signed(">", kblock, const_i64(0)), I64),
            rows, smin(b, const_i64(nr), b.sub(const_i64(n), col))])
