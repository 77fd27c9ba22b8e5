"""Random legal instruction streams, for differential testing of the simulator and the RTL.

A program is a sequence of tasks; each task loads random INP and WGT regions (random sizes,
strides and padding), runs a few random GEMM and ALU instructions on random micro-ops (GEMMs
that accumulate, reset or overwrite, some writing their elements again in every inner
iteration), mostly loads a requantizing STORE's parameters after them
(:func:`requant_params`), and stores random ACC rows, requantized or as low bytes. The
token pattern is random too: a task's compute may or may not release the load module
(compute->load) and its store may or may not release the next compute (store->compute),
except where leaving the token out would let two modules touch the same buffer elements in
an order the tokens do not fix. Every stream is therefore race-free (its result does not
depend on timing, so the functional simulator and the RTL must agree byte for byte), obeys
the accumulator hazard rule and passes the validator.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from byoc_vta_sim.config import VtaConfig
from byoc_vta_sim.isa import (
    AluInsn,
    AluOp,
    FinishInsn,
    GemmInsn,
    Insn,
    MemInsn,
    MemType,
    Uop,
    encode_uops,
)
from byoc_vta_sim.requant import PARAM_ELEMENTS


@dataclass
class RandomProgram:
    insns: list[Insn]
    dram: np.ndarray
    out_region: tuple[int, int]     # byte range the stores write


@dataclass
class _Task:
    loads: list[Insn]
    computes: list[Insn]
    stores: list[Insn]
    inp: set[int]           # INP elements its loads write and its GEMMs read
    wgt: set[int]
    acc_written: set[int]   # ACC elements its compute writes
    acc_stored: set[int]    # ACC elements its stores read


def random_program(rng: np.random.Generator, config: VtaConfig, tasks: int = 4
                   ) -> RandomProgram:
    """A random legal, race-free program of ``tasks`` tasks for ``config``."""
    builder = _Builder(rng, config)
    plan = [builder.task() for _ in range(tasks)]
    insns: list[Insn] = []
    releases_load = False       # the previous compute pushed compute->load
    releases_compute = False    # the previous store pushed store->compute
    # Buffer elements read since the last token that orders them before later writers: a
    # compute->load token orders every earlier compute before every later load, a
    # store->compute token every earlier store before every later compute.
    read_by_compute: set[tuple[str, int]] = set()
    read_by_store: set[int] = set()
    for i, task in enumerate(plan):
        loads, computes, stores = list(task.loads), list(task.computes), list(task.stores)
        later = plan[i + 1] if i + 1 < len(plan) else None
        read_by_compute |= {("inp", e) for e in task.inp} | {("wgt", e) for e in task.wgt}
        read_by_store |= task.acc_stored
        release_load = release_compute = False
        if later is not None:
            overwrites = {("inp", e) for e in later.inp} | {("wgt", e) for e in later.wgt}
            release_load = bool(overwrites & read_by_compute) or rng.random() < 0.4
            release_compute = bool(later.acc_written & read_by_store) or rng.random() < 0.4
        if release_load:
            read_by_compute = set()
        if release_compute:
            read_by_store = set()
        loads[0] = replace(loads[0], pop_next=int(releases_load))
        loads[-1] = replace(loads[-1], push_next=1)
        computes[0] = replace(computes[0], pop_prev=1, pop_next=int(releases_compute))
        computes[-1] = replace(computes[-1], push_next=1, push_prev=int(release_load))
        stores[0] = replace(stores[0], pop_prev=1)
        stores[-1] = replace(stores[-1], push_prev=int(release_compute or later is None))
        insns += loads + computes + stores
        releases_load, releases_compute = release_load, release_compute
    # FINISH waits for the last store (store->compute) and the last load (load->compute).
    insns.append(MemInsn(memory_type=MemType.UOP, pop_next=1))
    insns.append(FinishInsn())
    return RandomProgram(insns, builder.dram(), builder.out_region)


class _Builder:
    """Random regions, data and instructions; keeps the DRAM image being built."""

    def __init__(self, rng: np.random.Generator, config: VtaConfig) -> None:
        self.rng, self.config = rng, config
        self.chunks: list[tuple[int, bytes]] = []
        self.size = 0
        self.recent_dst: list[int] = []          # the last two ACC elements written
        out_elements = 4096
        self.out_base = self._put(np.zeros(out_elements * config.out_elem_bytes, np.uint8))
        self.out_region = (self.out_base, self.out_base + out_elements * config.out_elem_bytes)
        self.out_elements = out_elements

    def _put(self, data: np.ndarray) -> int:
        offset = self.size
        raw = np.ascontiguousarray(data).view(np.uint8).tobytes()
        self.chunks.append((offset, raw))
        align = self.config.dram_align
        self.size = offset + -(-len(raw) // align) * align
        return offset

    def dram(self) -> np.ndarray:
        image = np.zeros(self.size, np.uint8)
        for offset, raw in self.chunks:
            image[offset:offset + len(raw)] = np.frombuffer(raw, np.uint8)
        return image

    def _region(self, depth: int, size: int) -> int:
        return int(self.rng.integers(0, depth - size + 1))

    def _load(self, memory_type: MemType, depth: int, elem_bytes: int, dtype) -> tuple[Insn, set]:
        rng = self.rng
        x_size, y_size = int(rng.integers(1, 7)), int(rng.integers(1, 5))
        pads = [int(rng.integers(0, 3)) if rng.random() < 0.5 else 0 for _ in range(4)]
        stride = x_size + int(rng.integers(0, 4))
        rows = y_size + pads[0] + pads[1]
        width = x_size + pads[2] + pads[3]
        while rows * width > depth:
            pads = [0, 0, 0, 0]
            rows, width = y_size, x_size
        info = np.iinfo(dtype)
        data = rng.integers(info.min, int(info.max) + 1,
                            stride * y_size * elem_bytes // np.dtype(dtype).itemsize).astype(dtype)
        base = self._put(data)
        sram = self._region(depth, rows * width)
        insn = MemInsn(memory_type=memory_type, sram_base=sram, dram_base=base // elem_bytes,
                       y_size=y_size, x_size=x_size, x_stride=stride, y_pad_0=pads[0],
                       y_pad_1=pads[1], x_pad_0=pads[2], x_pad_1=pads[3])
        return insn, set(range(sram, sram + rows * width))

    def task(self) -> _Task:
        c, rng = self.config, self.rng
        inp_load, inp = self._load(MemType.INP, c.inp_depth, c.inp_elem_bytes, np.int8)
        wgt_load, wgt = self._load(MemType.WGT, c.wgt_depth, c.wgt_elem_bytes, np.int8)
        computes: list[Insn] = []
        written: set[int] = set()
        if rng.random() < 0.5:     # accumulators from DRAM
            acc_load, acc = self._load(MemType.ACC, c.acc_depth, c.acc_elem_bytes, np.int32)
            computes.append(acc_load)
            written |= acc
        for _ in range(int(rng.integers(1, 4))):
            insn, uops, dst = self._compute(sorted(inp), sorted(wgt))
            base = self._region(c.uop_depth, len(uops))
            words = encode_uops(uops)
            computes.append(MemInsn(memory_type=MemType.UOP, sram_base=base,
                                    dram_base=self._put(words) // 4, y_size=1,
                                    x_size=len(uops), x_stride=len(uops)))
            computes.append(replace(insn, uop_bgn=base, uop_end=base + len(uops)))
            written |= dst
        param_base = None
        if rng.random() < 0.7:
            # Last in the compute module, so that nothing overwrites them before the STOREs.
            param_base = self._params_region()
            computes.append(MemInsn(memory_type=MemType.ACC, sram_base=param_base,
                                    dram_base=self._put(requant_params(rng, c)) //
                                    c.acc_elem_bytes, y_size=1, x_size=PARAM_ELEMENTS,
                                    x_stride=PARAM_ELEMENTS))
            written |= set(range(param_base, param_base + PARAM_ELEMENTS))
        stores, stored = self._stores(sorted(written), param_base)
        return _Task([wgt_load, inp_load], computes, stores, inp, wgt, written, stored)

    def _params_region(self) -> int:
        """Where a requantizing STORE's parameters go: often the last place they fit."""
        last = self.config.acc_depth - PARAM_ELEMENTS
        return last if self.rng.random() < 0.2 else self._region(self.config.acc_depth,
                                                                  PARAM_ELEMENTS)

    def _compute(self, inp: list[int], wgt: list[int]) -> tuple[Insn, list[Uop], set[int]]:
        """A GEMM or ALU whose ACC writes start away from the last two elements written
        and are distinct, or (with three micro-ops or more) repeat the same elements in
        every inner iteration: either way no micro-op writes what one of the two before it
        wrote (the hazard rule). ALU sources avoid what it writes."""
        c, rng = self.config, self.rng
        n_uops, iter_in, iter_out = (int(rng.integers(1, 5)), int(rng.integers(1, 4)),
                                     int(rng.integers(1, 3)))
        if n_uops * iter_in * iter_out < 3:
            iter_in = 3
        repeat = n_uops >= 3 and iter_in > 1 and rng.random() < 0.4
        passes = 1 if repeat else iter_in        # distinct passes over the micro-ops
        span = n_uops * passes * iter_out
        while True:
            base = self._region(c.acc_depth // 2, span)
            if base not in self.recent_dst and base + 1 not in self.recent_dst[-1:]:
                break
        dst = list(range(base, base + span))
        loop = dict(iter_out=iter_out, iter_in=iter_in, dst_factor_out=n_uops * passes,
                    dst_factor_in=0 if repeat else n_uops)
        self.recent_dst = dst[-2:]
        if rng.random() < 0.5:
            uops = [Uop(base + u, int(rng.choice(inp)), int(rng.choice(wgt)))
                    for u in range(n_uops)]
            insn = GemmInsn(reset=int(rng.random() < 0.2), overwrite=int(rng.random() < 0.4),
                            **loop)
        else:
            op = AluOp(int(rng.integers(0, len(AluOp))))
            use_imm = int(rng.random() < 0.5)
            imm = int(rng.integers(-40, 41)) if op is AluOp.SHR else \
                int(rng.integers(-(1 << 15), 1 << 15))
            # Sources in the upper half of ACC, which no micro-op writes (the hazard rule).
            src = self._region(c.acc_depth // 2, n_uops * iter_in * iter_out) + c.acc_depth // 2
            uops = [Uop(base + u, src + u, 0) for u in range(n_uops)]
            insn = AluInsn(alu_op=op, use_imm=use_imm, imm=imm,
                           src_factor_out=n_uops * iter_in, src_factor_in=n_uops, **loop)
        return insn, uops, set(dst)

    def _stores(self, written: list[int], param_base: int | None
                ) -> tuple[list[Insn], set[int]]:
        """STOREs of ACC rows starting at elements the task wrote; with parameters loaded
        (at ``param_base``), most of them requantize."""
        c, rng = self.config, self.rng
        stores, stored = [], set()
        for _ in range(int(rng.integers(1, 3))):
            start = int(rng.choice(written))
            x_size = int(rng.integers(1, 5))
            y_size = int(rng.integers(1, 3))
            if start + x_size * y_size > c.acc_depth:
                start = c.acc_depth - x_size * y_size
            stride = x_size + int(rng.integers(0, 3))
            dram = int(rng.integers(0, self.out_elements - stride * y_size))
            requantize = param_base is not None and rng.random() < 0.7
            stores.append(MemInsn(store=True, memory_type=MemType.OUT, sram_base=start,
                                  dram_base=self.out_base // c.out_elem_bytes + dram,
                                  y_size=y_size, x_size=x_size, x_stride=stride,
                                  requantize=int(requantize),
                                  param_base=param_base if requantize else 0))
            stored |= set(range(start, start + x_size * y_size))
            if requantize:
                stored |= set(range(param_base, param_base + PARAM_ELEMENTS))
        return stores, stored


def requant_params(rng: np.random.Generator, config: VtaConfig) -> np.ndarray:
    """Random parameters of a requantizing STORE, as its three ACC elements (int32, 3 x batch
    x block_out), that reach every case of its arithmetic: biases small and large (the sum
    wraps), MULSHR multipliers of both signs (half of them in the 2^24..2^25 of a real
    requantization) with every shift 0..63 and many shifts of 0..3 (where products round
    halves and saturate int32 often), zero points and bounds of every sign, a lower bound
    above the upper one now and then, and a random top byte in the range lane (ignored)."""
    shape = (config.batch, config.block_out)

    def either(p_first, first, second):
        return np.where(rng.random(shape) < p_first, first, second)

    bias = either(0.5, rng.integers(-2000, 2000, shape),
                  rng.integers(-(1 << 31), 1 << 31, shape))
    multiplier = either(0.5, rng.integers(1 << 24, 1 << 25, shape),
                        rng.integers(-(1 << 25), 1 << 25, shape))
    shift = either(0.3, rng.integers(0, 4, shape), rng.integers(0, 64, shape))
    zero, low, high, top = rng.integers(-128, 128, (4, *shape))
    ordered = rng.random(shape) < 0.8
    lower = np.where(ordered, np.minimum(low, high), low)
    upper = np.where(ordered, np.maximum(low, high), high)
    ranges = zero & 0xFF | (lower & 0xFF) << 8 | (upper & 0xFF) << 16 | (top & 0xFF) << 24
    words = np.stack([bias, multiplier << 6 | shift, ranges]).astype(np.int64)
    return ((words + (1 << 31)) % (1 << 32) - (1 << 31)).astype(np.int32)
