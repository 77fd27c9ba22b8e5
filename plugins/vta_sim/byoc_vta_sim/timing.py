"""A cycle estimate of an instruction stream, following what the RTL of hw/vta does.

Times are clock cycles from the start register write, as the RTL's cycle counter counts.

- Fetch (vta_fetch.v) reads the stream in requests of ``FETCH_CHUNK`` instructions, one
  request outstanding at a time; an instruction can start ``FETCH_ROUTE_CYCLES`` after the
  beat that carries it, so the first one starts at about the memory latency.
- Each module (vta_dispatch.v) runs its instructions in order. An instruction starts when
  the module is free, it has been fetched and the tokens it pops have been pushed; it holds
  the module for ``DISPATCH_CYCLES`` (its start cycle and its retire cycle) plus its work,
  and pushes its tokens as it retires.
- GEMM / ALU: one micro-op per cycle, then ``PIPELINE_FILL`` cycles to drain the pipeline.
- LOAD / STORE: one memory request per row, up to ``ROWS_AHEAD`` rows ahead of the rows
  written (vta_loader.v, vta_store.v). The memory (vta_dram.v) serves requests in the order
  it accepts them: a request starts ``mem_latency`` cycles after it is accepted, or a cycle
  after the one before it ends, then moves one beat per cycle. A LOAD writes its buffer one
  element per cycle, zero padding included; a beat reaches the buffer ``UNPACK_CYCLES``
  after it leaves the memory, and while the writes lag behind, the memory holds the port.
  A STORE reads one accumulator element per cycle, from the cycle after its start (a
  requantizing STORE reads its ``PARAM_ELEMENTS`` parameter elements first, one per cycle);
  an element reaches the packer ``STORE_READ_CYCLES`` after its read and leaves as beats
  once the memory serves its row, and reads stop while ``STORE_QUEUE`` elements are read
  and not yet taken by the packer.
  A token-only LOAD/STORE (x_size = 0) only starts and retires.

The model runs the stream event by event in cycle order, so the memory sees requests in the
order the arbiter (vta_mem_arbiter.v: one grant per cycle, round robin over fetch and the
three modules) accepts them. Not modelled: the instruction queues filling up (they are
``insn_queue_depth`` deep) and the memory's request queue filling up.

The benchmark reports this model next to the ideal (MACs / 256), and the partitioner's cost
hook approximates it per layer (:func:`byoc_vta_sim.tiling.estimate_cycles`). The RTL
measures the real figure.
"""

from __future__ import annotations

import heapq
import math

from byoc_vta_sim.config import VtaConfig
from byoc_vta_sim.isa import (
    INSN_BYTES,
    QUEUE_NAMES,
    AluInsn,
    FinishInsn,
    GemmInsn,
    Insn,
    MemInsn,
    MemType,
    Module,
    module_of,
    token_moves,
)
from byoc_vta_sim.requant import PARAM_ELEMENTS

FETCH_CHUNK = 16          # instructions per fetch request (vta_fetch.v, CHUNK)
FETCH_ROUTE_CYCLES = 4    # beat -> unpacked -> fetch buffer -> routed -> module queue head
ROWS_AHEAD = 16           # rows requested and not yet done (MAX_ROWS_AHEAD)
DISPATCH_CYCLES = 2       # the start cycle and the retire cycle of every instruction
PIPELINE_FILL = 3         # GEMM / ALU stages after the micro-op loop: indices, data, write
UNPACK_CYCLES = 2         # a beat: the memory's read register, then the unpacker's
STORE_READ_CYCLES = 5     # a STORE's ACC read -> vta_requant's 3 stages -> FIFO -> packer
STORE_QUEUE = 6           # elements read and not yet packed (vta_store.v, FIFO_DEPTH)


# The memory arbiter's clients (vta_core.v): fetch, then one per module.
_FETCH = "fetch"
_CLIENTS = {_FETCH: 0, Module.LOAD: 1, Module.COMPUTE: 2, Module.STORE: 3}
_RETIRE, _REQUEST, _WAKE = 0, 1, 2      # what happens first within a cycle


def _elem_bytes(config: VtaConfig, memory_type: MemType) -> int:
    return {MemType.UOP: config.uop_elem_bytes, MemType.WGT: config.wgt_elem_bytes,
            MemType.INP: config.inp_elem_bytes, MemType.ACC: config.acc_elem_bytes,
            MemType.OUT: config.out_elem_bytes}[memory_type]


class _LoadRows:
    """A LOAD's rows: what each holds the port for, and when the buffer writes end. The
    buffer is written one element per cycle: the zero rows first, then per row its left
    padding, its data as the beats arrive, its right padding, then the zero rows below."""

    def __init__(self, insn: MemInsn, start: int, config: VtaConfig) -> None:
        self.insn = insn
        elem_bytes = _elem_bytes(config, insn.memory_type)
        self.beats = math.ceil(insn.x_size * elem_bytes / config.mem_port_bytes)
        self.per_beat = max(1, config.mem_port_bytes // elem_bytes)
        self.write = start + 1 + insn.y_pad_0 * insn.row_width   # the next write's cycle
        self.done: list[int] = []        # the cycle each row's last data element is written

    def _last_write(self, take: int) -> int:
        first = max(self.write + self.insn.x_pad_0, take + 1 + UNPACK_CYCLES)
        return first + max(self.insn.x_size, self.beats) - 1

    def book(self, take: int) -> int:
        """The next row, which the memory takes at ``take``: the cycles from the take to its
        last beat. While the writes lag behind, the unpacker's two beats are full and the
        memory waits."""
        last_write = self._last_write(take)
        self.done.append(last_write)
        self.write = last_write + 1 + self.insn.x_pad_1
        return max(self.beats, last_write - UNPACK_CYCLES * self.per_beat - take)

    def retire(self) -> int:
        return self.write + self.insn.y_pad_1 * self.insn.row_width + 1


class _StoreRows:
    """A STORE's rows, element by element (vta_store.v, vta_pack.v). Element e is read at
    the earliest a cycle after element e - 1 and a cycle after the packer took element
    e - STORE_QUEUE; the packer takes it STORE_READ_CYCLES after its read, when it has
    room: its beat of the row has room, or the beat before it has left. A beat leaves when
    its last element (or the row's) has been taken, from the cycle after the memory took the
    row; an element wider than the port leaves in consecutive beats."""

    def __init__(self, insn: MemInsn, start: int, config: VtaConfig) -> None:
        self.insn = insn
        self.beats = math.ceil(insn.x_size * config.out_elem_bytes / config.mem_port_bytes)
        self.beats_per_elem = math.ceil(config.out_elem_bytes / config.mem_port_bytes)
        self.per_beat = max(1, config.mem_port_bytes // config.out_elem_bytes)
        self.read = start + 1 + (PARAM_ELEMENTS if insn.requantize else 0)  # the next read
        self.taken: list[int] = []         # the cycle the packer took each element
        self.room = start                  # the first cycle the packer can take the next
        self.done: list[int] = []          # the cycle each row's last beat leaves

    def book(self, take: int) -> int:
        """The next row, which the memory takes at ``take``: the cycles from the take to its
        last beat."""
        last_beat = take
        for position in range(self.insn.x_size):
            if len(self.taken) >= STORE_QUEUE:
                self.read = max(self.read, self.taken[-STORE_QUEUE] + 1)
            self.taken.append(max(self.read + STORE_READ_CYCLES, self.room))
            self.read += 1
            self.room = self.taken[-1] + 1
            if (position + 1) % self.per_beat == 0 or position + 1 == self.insn.x_size:
                last_beat = max(self.taken[-1], take) + self.beats_per_elem
                self.room = last_beat
        hold = max(self.beats, last_beat - take)
        self.done.append(take + hold)
        return hold

    def retire(self) -> int:
        return self.done[-1] + DISPATCH_CYCLES


class _Run:
    """The stream on the modeled machine, event by event in cycle order."""

    def __init__(self, insns: list[Insn], config: VtaConfig) -> None:
        self.insns, self.config = insns, config
        self.modules = [module_of(insn) for insn in insns]
        self.moves = [token_moves(insn) for insn in insns]
        self.queues: dict[Module, list[int]] = {module: [] for module in Module}
        for index, module in enumerate(self.modules):
            self.queues[module].append(index)
        self.heads = dict.fromkeys(Module, 0)
        self.running: dict[Module, int | None] = dict.fromkeys(Module)   # the index running
        self.tokens = dict.fromkeys(QUEUE_NAMES, 0)
        self.ready: dict[int, int] = {}
        self.fetched = 0
        self.port_free = 0            # the first cycle the memory can take a request
        self.last_client = _CLIENTS[_FETCH]
        self.events: list[tuple] = []
        self.sequence = 0
        self.busy = {"gemm_busy": 0, "alu_busy": 0, "load_busy": 0, "store_busy": 0}
        self.starts: dict[int, int] = {}

    def at(self, cycle: int, kind: int, *event) -> None:
        self.sequence += 1
        heapq.heappush(self.events, (cycle, kind, self.sequence, event))

    def cycles(self) -> int:
        self.at(0, _REQUEST, _FETCH, None)
        while self.events:
            now = self.events[0][0]
            batch = []
            while self.events and self.events[0][0] == now:
                batch.append(heapq.heappop(self.events))
            requests = []
            for _, kind, _, event in batch:
                if kind == _RETIRE:
                    self.retire(*event)
                elif kind == _REQUEST:
                    requests.append(event)
            if requests:
                granted = min(requests, key=lambda r: (
                    (_CLIENTS[r[0]] - self.last_client - 1) % len(_CLIENTS)))
                self.grant(now, *granted)
                for request in requests:
                    if request is not granted:
                        self.at(now + 1, _REQUEST, *request)
            for module in Module:
                finished = self.try_start(module, now)
                if finished is not None:
                    return finished
        raise ValueError("the stream deadlocks before FINISH; validate it first "
                         "(byoc_vta_sim.validate.validate_stream)")

    def grant(self, now: int, client, rows) -> None:
        """The arbiter accepts a request at ``now``; the memory takes it in order."""
        self.last_client = _CLIENTS[client]
        take = max(now + self.config.mem_latency, self.port_free)
        if rows is None:
            self.fetch(take)
            return
        self.port_free = take + rows.book(take) + 1
        row = len(rows.done)
        if row < rows.insn.y_size:
            after = now + 1
            if row >= ROWS_AHEAD:
                after = max(after, rows.done[row - ROWS_AHEAD] + 1)
            self.at(after, _REQUEST, client, rows)
        else:
            index = self.running[client]
            self.busy["store_busy" if rows.insn.store else "load_busy"] += (
                rows.retire() - self.starts[index])
            self.at(rows.retire(), _RETIRE, client)

    def fetch(self, take: int) -> None:
        """The next FETCH_CHUNK instructions arrive a beat each (for a 16-byte port)."""
        port_bytes = self.config.mem_port_bytes
        count = min(FETCH_CHUNK, len(self.insns) - self.fetched)
        beats = math.ceil(count * INSN_BYTES / port_bytes)
        self.port_free = take + beats + 1
        unpacked = take
        for position in range(count):
            beat = ((position + 1) * INSN_BYTES - 1) // port_bytes
            unpacked = max(unpacked + 1, take + 1 + beat + UNPACK_CYCLES)
            ready = unpacked + FETCH_ROUTE_CYCLES - UNPACK_CYCLES
            self.ready[self.fetched + position] = ready
            self.at(ready, _WAKE)
        self.fetched += count
        if self.fetched < len(self.insns):
            self.at(unpacked + 1, _REQUEST, _FETCH, None)

    def retire(self, module: Module) -> None:
        index = self.running[module]
        for q in self.moves[index][1]:
            self.tokens[q] += 1
        self.running[module] = None

    def try_start(self, module: Module, now: int) -> int | None:
        """Start the module's next instruction at ``now`` if it can; the run's cycles if
        that instruction is FINISH."""
        queue, head = self.queues[module], self.heads[module]
        if self.running[module] is not None or head == len(queue):
            return None
        index = queue[head]
        pops = self.moves[index][0]
        if self.ready.get(index, now + 1) > now or not all(self.tokens[q] for q in pops):
            return None
        for q in pops:
            self.tokens[q] -= 1
        self.heads[module] += 1
        self.running[module] = index
        self.starts[index] = now
        insn = self.insns[index]
        if isinstance(insn, FinishInsn):
            return now + DISPATCH_CYCLES
        if isinstance(insn, MemInsn) and insn.x_size and insn.y_size:
            rows = (_StoreRows if insn.store else _LoadRows)(insn, now, self.config)
            self.at(now + 1, _REQUEST, module, rows)
            return None
        end = now + DISPATCH_CYCLES
        if isinstance(insn, (GemmInsn, AluInsn)):
            uops = (insn.uop_end - insn.uop_bgn) * insn.iter_out * insn.iter_in
            end += uops + PIPELINE_FILL if uops else 0
            self.busy["alu_busy" if isinstance(insn, AluInsn) else "gemm_busy"] += uops
        self.at(end, _RETIRE, module)
        return None


def estimate_stream(insns: list[Insn], config: VtaConfig) -> dict[str, int]:
    """Estimated total cycles and busy cycles per unit for a valid stream."""
    run = _Run(insns, config)
    cycles = run.cycles()
    return {"cycles": cycles, **run.busy}
