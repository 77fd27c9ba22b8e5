"""Keeping a cache folder under a size: the least recently used entries go first.

cpu_llvm caches object files (:mod:`.jit`) and lowered partitions (:mod:`.lowering_cache`)
on disk. Each cache tells :func:`stored` what it wrote; once the folder's entries (files or
folders) take more than the limit, the least recently used ones are removed (a cache marks an
entry used by touching it: :func:`used`). The folder is counted once per process, then kept
up to date with what this process stores; other processes' entries are counted at the next
eviction, so concurrent compiles may overshoot the limit by what they store in between.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from pathlib import Path
from typing import Callable

Entries = Callable[[Path], bool]
"""Which paths directly in the folder are the cache's entries."""

# (folder, entries) -> the bytes its entries take, as this process last counted them plus
# what it stored since.
_TOTALS: dict[tuple[Path, Entries], int] = {}


def used(entry: Path) -> None:
    """Mark ``entry`` as just used (the last to be evicted)."""
    with contextlib.suppress(OSError):
        os.utime(entry)


def stored(root: Path, entries: Entries, size: int, limit: int) -> None:
    """``size`` bytes were just stored in ``root``: evict the least recently used entries
    if the folder now holds more than ``limit`` bytes of them."""
    key = (root, entries)
    if key not in _TOTALS:
        _TOTALS[key] = sum(entry_bytes(path) for path in _listed(root, entries))
    else:
        _TOTALS[key] += size
    if _TOTALS[key] > limit:
        _TOTALS[key] = evict(root, entries, limit)


def evict(root: Path, entries: Entries, limit: int) -> int:
    """Remove the least recently used entries of ``root`` until they take at most ``limit``
    bytes; the bytes left."""
    listed = []
    for path in _listed(root, entries):
        with contextlib.suppress(OSError):
            listed.append((path.stat().st_mtime, entry_bytes(path), path))
    total = sum(size for _, size, _ in listed)
    for _, size, path in sorted(listed, key=lambda entry: entry[0]):
        if total <= limit:
            break
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            with contextlib.suppress(OSError):
                path.unlink()
        total -= size
    return total


def limit_from_env(name: str, default: int) -> int:
    """The byte limit in environment variable ``name``, else ``default``."""
    try:
        return max(0, int(os.environ.get(name, default)))
    except ValueError:
        return default


def _listed(root: Path, entries: Entries) -> list[Path]:
    with contextlib.suppress(OSError):
        return [path for path in root.iterdir() if entries(path)]
    return []


def entry_bytes(path: Path) -> int:
    """The bytes an entry takes: a file's size, or the sizes of the files in a folder."""
    with contextlib.suppress(OSError):
        if path.is_dir():
            return sum(part.stat().st_size for part in path.iterdir())
        return path.stat().st_size
    return 0
