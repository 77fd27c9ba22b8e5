"""Clean-up passes on the graph IR.

Each pass is a function ``pass_(graph) -> int`` that rewrites the graph in place and returns
how many changes it made. :func:`optimize` runs the default pipeline to a fixed point and
verifies the graph after each pass.
"""

from __future__ import annotations

from typing import Callable

from byoc.core.ir import Graph
from byoc.core.passes.batchnorm import fold_batchnorm
from byoc.core.passes.constants import fold_constants
from byoc.core.passes.dce import eliminate_dead_code
from byoc.core.passes.identity import remove_identities
from byoc.core.verify import verify

Pass = Callable[[Graph], int]

DEFAULT_PIPELINE: tuple[Pass, ...] = (
    remove_identities,
    fold_constants,
    fold_batchnorm,
    eliminate_dead_code,
)


def optimize(graph: Graph, pipeline: tuple[Pass, ...] = DEFAULT_PIPELINE,
             max_rounds: int = 8) -> dict[str, int]:
    """Run ``pipeline`` until nothing changes; return the number of changes per pass."""
    changes = {p.__name__: 0 for p in pipeline}
    for _ in range(max_rounds):
        round_changes = 0
        for pass_ in pipeline:
            n = pass_(graph)
            verify(graph)
            changes[pass_.__name__] += n
            round_changes += n
        if not round_changes:
            break
    return changes


__all__ = ["DEFAULT_PIPELINE", "eliminate_dead_code", "fold_batchnorm", "fold_constants",
           "optimize", "remove_identities"]
