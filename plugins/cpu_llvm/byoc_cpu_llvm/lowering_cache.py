"""Lowered partitions kept on disk, so that compiling a model again skips building its IR.

Lowering builds a partition's LLVM IR in Python with llvmlite's IR builder and packs its
weights; once the machine code is in the object cache (:mod:`.jit`, keyed by the IR text),
that is most of a compile's time (2.6 of MobileNetV2-int8's 2.9 s). So the lowering's result,
(IR text, runtime metadata, constant arrays), is cached too, under
``$BYOC_CACHE_DIR/cpu_llvm/lowered/KEY``, where KEY is the sha256 of everything a lowering
reads:

- the whole graph, not only the partition: a QDQ layer's kernel reads the DequantizeLinear in
  front of the partition, and consumer counts decide what stays in memory. Every node (op,
  domain, name, inputs, outputs, attributes), the graph's inputs, outputs and opsets, every
  value's type and every constant's bytes, and the constants the lowering is handed;
- the partition: its name, its nodes, inputs, outputs and debug outputs;
- the code: the sources of byoc and byoc_cpu_llvm, the current values of byoc_cpu_llvm's
  module-level settings (``USE_VNNI`` and the like, so a switch flipped in a running process
  gives another key), the host CPU and its features, and numpy's version.

A graph with an attribute the key cannot write down (a subgraph) is lowered every time. An
entry that cannot be read is lowered again and rewritten; one that cannot be written costs
only the next compile its time. Entries are written whole into a temporary folder and renamed,
so a reader never sees half of one; arrays are stored in numpy's own format, never pickled.
Partitions of fewer than :data:`MIN_NODES` nodes are not looked up, and only lowerings that
took at least :data:`MIN_LOWERING_SECONDS` are stored: a small partition lowers in
milliseconds. The folder is kept under ``BYOC_LOWERING_CACHE_BYTES`` (default 2
GiB): storing an entry beyond it removes the least recently used ones.

What the key cannot see is a function replaced in a running process (a test patching a
lowering function to inject a fault): set ``BYOC_LOWERING_CACHE=0`` to lower every time.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from byoc.core.ir import Graph, Node
from byoc.plugins.api import Partition
from byoc_cpu_llvm import cache_budget
from byoc_cpu_llvm.jit import cache_dir
from byoc_cpu_llvm.target import host_target

Lowered = tuple[str, dict, dict[str, np.ndarray]]

FORMAT = 1
"""Bumped when an entry's layout changes."""

DEFAULT_LIMIT_BYTES = 2 << 30

MIN_LOWERING_SECONDS = 0.05
"""Lowerings quicker than this are not stored (:func:`worth_storing`)."""

MIN_NODES = 8
"""Partitions of fewer nodes are lowered every time, not looked up (:func:`worth_keying`)."""

_ARRAY_NAMES = "__lowering_cache_arrays__"
"""The key in an entry's meta.json listing its arrays, stored as 0.npy, 1.npy, ..."""


def enabled() -> bool:
    """False when ``BYOC_LOWERING_CACHE`` is 0, off, no or false."""
    return os.environ.get("BYOC_LOWERING_CACHE", "1").strip().lower() not in (
        "0", "off", "no", "false")


def limit_bytes() -> int:
    """How many bytes the cached lowerings may take (``BYOC_LOWERING_CACHE_BYTES``)."""
    return cache_budget.limit_from_env("BYOC_LOWERING_CACHE_BYTES", DEFAULT_LIMIT_BYTES)


class _Unkeyable(Exception):
    """A value the key cannot write down."""


def lowering_key(partition: Partition, graph: Graph,
                 constants: dict[str, np.ndarray]) -> str | None:
    """The cache key of lowering ``partition`` of ``graph``, or None when it cannot have one."""
    digest = hashlib.sha256()

    def add(value: Any) -> None:
        digest.update(json.dumps(value, separators=(",", ":")).encode())
        digest.update(b"\n")

    try:
        add(["format", FORMAT, code_digest(), _settings(), host_target().key, np.__version__])
        add([graph.inputs, graph.outputs, sorted(graph.opsets.items())])
        for node in graph.nodes:
            add(_node(node))
        add(sorted([name, str(t.dtype), list(t.shape)] for name, t in graph.types.items()))
        # (the pipeline hands over the graph's own constants: those are hashed once)
        given = {name: array for name, array in constants.items()
                 if array is not graph.constants.get(name)}
        arrays = [("graph", name, graph.constants[name]) for name in sorted(graph.constants)]
        arrays += [("given", name, given[name]) for name in sorted(given)]
        add(["given, the graph's", sorted(set(constants) - set(given))])
        for (tag, name, _), array_digest in zip(arrays, _digests([a for *_, a in arrays])):
            add([tag, name, array_digest])
        add([partition.name, partition.inputs, partition.outputs, partition.debug_outputs,
             sorted([name, str(t.dtype), list(t.shape)] for name, t in partition.types.items()),
             sorted(partition.opsets.items())])
        for node in partition.nodes:
            add(_node(node))
    except _Unkeyable:
        return None
    return digest.hexdigest()


def load(key: str) -> Lowered | None:
    """The lowering cached under ``key``, or None (absent, or unreadable: then removed, so
    that the lowering done instead can take its place)."""
    folder = _root() / key
    if not folder.is_dir():
        return None
    try:
        ir_text = (folder / "ir.ll").read_text()
        meta = json.loads((folder / "meta.json").read_text())
        arrays = {name: np.load(folder / f"{i}.npy", allow_pickle=False)
                  for i, name in enumerate(meta.pop(_ARRAY_NAMES))}
    except (OSError, ValueError, KeyError, TypeError, AttributeError, EOFError):
        shutil.rmtree(folder, ignore_errors=True)
        return None
    cache_budget.used(folder)
    return ir_text, meta, arrays


def worth_keying(partition: Partition) -> bool:
    """Whether to look a partition up at all: one of a few nodes lowers in milliseconds,
    less than its key takes to compute."""
    return len(partition.nodes) >= MIN_NODES


def worth_storing(seconds: float) -> bool:
    """Whether a lowering that took ``seconds`` is worth a cache entry: small partitions
    lower in milliseconds, and the test suite alone compiles thousands of them."""
    return seconds >= MIN_LOWERING_SECONDS


def store(key: str, lowered: Lowered) -> None:
    """Cache ``lowered`` under ``key`` (quietly nothing when the cache cannot be written),
    then evict the least recently used entries beyond :func:`limit_bytes`."""
    ir_text, meta, arrays = lowered
    if not _storable(meta, arrays):
        return
    root = _root()
    try:
        root.mkdir(parents=True, exist_ok=True)
        partial = Path(tempfile.mkdtemp(dir=root, prefix=f".{key[:16]}."))
    except OSError:
        return
    try:
        (partial / "ir.ll").write_text(ir_text)
        (partial / "meta.json").write_text(json.dumps({**meta, _ARRAY_NAMES: list(arrays)}))
        for i, array in enumerate(arrays.values()):
            np.save(partial / f"{i}.npy", array, allow_pickle=False)
        size = cache_budget.entry_bytes(partial)
        os.replace(partial, root / key)
    except (OSError, TypeError, ValueError):
        return  # not writable, not JSON, or another process stored the same entry first
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    cache_budget.stored(root, _is_entry, size, limit_bytes())


def _storable(meta: dict, arrays: dict[str, np.ndarray]) -> bool:
    """Whether an entry would read back as it was written: metadata that JSON keeps as it is
    (no tuples, no integer keys) and arrays of dtypes numpy's format names (not ml_dtypes'
    bfloat16 or float8, which it writes as raw bytes)."""
    try:
        if json.loads(json.dumps(meta)) != meta:
            return False
    except (TypeError, ValueError):
        return False
    return all(not array.dtype.hasobject and np.dtype(array.dtype.str) == array.dtype
               for array in arrays.values())


def _is_entry(path: Path) -> bool:
    return path.is_dir() and not path.name.startswith(".")


def _root() -> Path:
    return cache_dir() / "lowered"


def _node(node: Node) -> list:
    return [node.op_type, node.domain, node.name, node.inputs, node.outputs,
            [[name, _plain(value)] for name, value in sorted(node.attrs.items())]]


def _digests(arrays: list[np.ndarray]) -> list[str]:
    """The sha256 of each array (:func:`_add_array`), on two threads: hashlib lets go of the
    GIL while it hashes, and ResNet-50's 100 MB of weights take 0.09 s on one core."""
    def one(array: np.ndarray) -> str:
        digest = hashlib.sha256()
        _add_array(digest, np.asarray(array))
        return digest.hexdigest()

    if sum(np.asarray(a).nbytes for a in arrays) < 1 << 24:
        return [one(array) for array in arrays]
    with ThreadPoolExecutor(max_workers=2) as pool:
        return list(pool.map(one, arrays))


def _add_array(digest, array: np.ndarray) -> None:
    """Add an array's dtype, shape and bytes to ``digest``."""
    if array.dtype.hasobject:
        raise _Unkeyable
    data = np.ascontiguousarray(array)
    digest.update(json.dumps([data.dtype.str, list(data.shape)]).encode())
    digest.update(data.reshape(-1).view(np.uint8))


def _plain(value: Any) -> Any:
    """``value`` as JSON the key can hash: arrays by dtype, shape and the sha256 of their
    bytes; floats by their exact text."""
    if isinstance(value, np.ndarray):
        return ["array", *_digests([value])]
    if isinstance(value, np.generic):
        return _plain(np.asarray(value))
    if isinstance(value, bool) or value is None or isinstance(value, (int, str)):
        return value
    if isinstance(value, float):
        return ["float", value.hex()]
    if isinstance(value, bytes):
        return ["bytes", value.hex()]
    if isinstance(value, (list, tuple)):
        return [type(value).__name__, [_plain(item) for item in value]]
    raise _Unkeyable


@lru_cache(maxsize=1)
def code_digest() -> str:
    """The sha256 of the sources of byoc and byoc_cpu_llvm (what a lowering runs)."""
    import byoc
    import byoc_cpu_llvm

    digest = hashlib.sha256()
    for package in (byoc, byoc_cpu_llvm):
        root = Path(package.__file__).parent
        for path in sorted(root.rglob("*.py")):
            digest.update(str(path.relative_to(root)).encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()


def _settings() -> list:
    """The current values of byoc_cpu_llvm's module-level settings: upper-case names bound
    to a bool, int, float or str, in every module of the package loaded now."""
    found = []
    ours = [(name, module) for name, module in list(sys.modules.items())
            if module is not None and (name == "byoc_cpu_llvm"
                                       or name.startswith("byoc_cpu_llvm."))]
    for name, module in sorted(ours, key=lambda item: item[0]):
        for attr, value in sorted(vars(module).items()):
            if attr.isupper() and isinstance(value, (bool, int, float, str)):
                found.append([name, attr, _plain(value)])
    return found
