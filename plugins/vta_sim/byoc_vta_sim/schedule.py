"""The order in which the accelerator's modules run a stream (docs/vta-isa.md, "Schedule").

Which instruction can run depends only on the dependency tokens, never on data, so the order
is a function of the stream alone. :class:`RoundSchedule` produces the deterministic order the
functional simulator uses: rounds in which fetch routes instructions into the module queues
(at most ``insn_queue_depth`` each), then the load, compute and store modules each run their
queue while the head's tokens are there. Tokens match first-in first-out, so any consumer of
the order (the simulator executing, the validator's vector clocks, the cycle estimate) sees
the same pairing of pushes and pops as the hardware.
"""

from __future__ import annotations

from collections import deque
from typing import Iterator, Sequence

from byoc_vta_sim.isa import (
    QUEUE_NAMES,
    FinishInsn,
    Insn,
    Module,
    module_of,
    token_moves,
)


class Stalled(Exception):
    """No module can run and FINISH has not run; the schedule's state says who waits."""


class RoundSchedule:
    """Iterating yields instruction indices in execution order, ending with FINISH (or
    raising :class:`Stalled`). While and after iterating, ``queues`` (module -> indices
    fetched but not run), ``tokens`` (queue -> tokens available) and ``fetched`` (how many
    instructions fetch has routed) describe the state."""

    def __init__(self, insns: Sequence[Insn], queue_depth: int) -> None:
        self.insns = insns
        self.queue_depth = queue_depth
        self.modules = [module_of(insn) for insn in insns]
        self.moves = [token_moves(insn) for insn in insns]
        self.queues: dict[Module, deque[int]] = {module: deque() for module in Module}
        self.tokens = dict.fromkeys(QUEUE_NAMES, 0)
        self.fetched = 0

    def __iter__(self) -> Iterator[int]:
        insns, queues, tokens = self.insns, self.queues, self.tokens
        while True:
            progressed = False
            while (self.fetched < len(insns)
                   and len(queues[self.modules[self.fetched]]) < self.queue_depth):
                queues[self.modules[self.fetched]].append(self.fetched)
                self.fetched += 1
                progressed = True
            for module in Module:
                queue = queues[module]
                while queue:
                    index = queue[0]
                    pops, pushes = self.moves[index]
                    if not all(tokens[q] for q in pops):
                        break
                    for q in pops:
                        tokens[q] -= 1
                    queue.popleft()
                    yield index
                    for q in pushes:
                        tokens[q] += 1
                    progressed = True
                    if isinstance(insns[index], FinishInsn):
                        return
            if not progressed:
                raise Stalled()

    def pending(self) -> list[int]:
        """Indices fetched but not run, in stream order."""
        return sorted(index for queue in self.queues.values() for index in queue)

    def waiting_for(self, index: int) -> list[str]:
        """The token queues (short names) the instruction at ``index`` lacks a token of."""
        return [q for q in self.moves[index][0] if not self.tokens[q]]
