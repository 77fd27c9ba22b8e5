"""Which opsets byoc covers for each op it supports, read off onnx's own schema history.

An ONNX op changes at the opset versions where its schema was revised (Clip at 6, 11, 12 and
13...). The reference interpreter implements each op for every revision from opset 9 on, and
models of opsets 7 and 8 are upgraded to opset 9 on import (byoc.core.opset_upgrade), so the
opsets covered for an op run from the later of opset 7 and the op's first revision, up to the
newest opset the installed onnx knows, or to the opset before the op was deprecated (Upsample
at 10, Scatter at 11).
"""

from __future__ import annotations

import functools
from collections import defaultdict
from dataclasses import dataclass

import onnx


@dataclass(frozen=True)
class OpCoverage:
    """The opsets of ``domain`` in which a model's ``op_type`` nodes import and run."""

    domain: str
    op_type: str
    first_opset: int
    last_opset: int
    revisions: tuple[int, ...]  # the opsets where the op's schema changed, within the range
    native_from: int  # opsets before this one are upgraded on import

    @property
    def qualified_name(self) -> str:
        return f"{self.domain or 'ai.onnx'}::{self.op_type}"

    def opsets_text(self) -> str:
        text = (f"opset {self.first_opset}" if self.first_opset == self.last_opset
                else f"opsets {self.first_opset}-{self.last_opset}")
        upgraded = min(self.native_from - 1, self.last_opset)
        if self.first_opset <= upgraded:
            span = (str(upgraded) if upgraded == self.first_opset
                    else f"{self.first_opset}-{upgraded}")
            text += f" ({span} upgraded)"
        return text


@functools.lru_cache(maxsize=1)
def _schema_history() -> dict[tuple[str, str], list[tuple[int, bool]]]:
    history: dict[tuple[str, str], list[tuple[int, bool]]] = defaultdict(list)
    for schema in onnx.defs.get_all_schemas_with_history():
        history[(schema.domain, schema.name)].append((schema.since_version, schema.deprecated))
    return {key: sorted(versions) for key, versions in history.items()}


def coverage_of(domain: str, op_type: str, oldest_opset: int, native_opset: int,
                newest_opset: int) -> OpCoverage | None:
    """The coverage of one ai.onnx op, or None when onnx knows no such op within
    ``oldest_opset``..``newest_opset``."""
    versions = _schema_history().get((domain, op_type))
    if not versions:
        return None
    live = [v for v, deprecated in versions if not deprecated]
    deprecated_at = min((v for v, deprecated in versions if deprecated), default=None)
    last = newest_opset if deprecated_at is None else min(newest_opset, deprecated_at - 1)
    if not live or last < oldest_opset:
        return None
    first = max(oldest_opset, live[0])
    # The revision in force at ``first`` counts too, even when it came before it.
    in_force = max(v for v in live if v <= first) if any(v <= first for v in live) else first
    revisions = tuple(v for v in live if in_force <= v <= last)
    return OpCoverage(domain, op_type, first, last, revisions, native_opset)


def supported_op_coverage() -> list[OpCoverage]:
    """The coverage of every ai.onnx op the reference interpreter registers, sorted by name."""
    from byoc.core.importer import MAX_OPSET
    from byoc.core.interpreter import registered_ops
    from byoc.core.opset_upgrade import CHECKED_UPGRADE_OPSET, NATIVE_MIN_OPSET

    found = []
    for domain, op_type in sorted(registered_ops()):
        if domain:
            continue
        coverage = coverage_of(domain, op_type, CHECKED_UPGRADE_OPSET, NATIVE_MIN_OPSET,
                               MAX_OPSET)
        if coverage is not None:
            found.append(coverage)
    return found
