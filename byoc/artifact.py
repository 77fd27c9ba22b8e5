"""The compiled-model file: one zip holding a YAML manifest, payloads and .npy arrays.

The manifest records the format version, the byoc version that wrote it, and the sha256 of
every other entry. Reading never unpickles or evaluates anything: arrays load with
``allow_pickle=False`` (so strings are stored as fixed-width unicode, not as the object arrays
byoc holds them in), YAML with ``safe_load``, and entries whose names are absolute, contain
``..``, are links, appear twice, or are not listed in the manifest are refused before anything
is used. Sizes are judged from the zip directory before anything is inflated, and every read
is bounded by the declared size, so a zip bomb is refused rather than expanded.
"""

from __future__ import annotations

import hashlib
import io
import posixpath
import struct
import zipfile
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from byoc.core import dtypes
from byoc.errors import ArtifactError

# Format 2 adds a dynamic tail (byoc.core.dynamic_tail) to format 1; an artifact without one
# is still written as format 1, so byoc versions that predate tails keep loading it, and
# refuse (as newer than they understand) one they would otherwise run without its tail.
# A partition's optional "nodes" (its ONNX node names, for profiles and traces) needs no
# new format: byoc versions that predate it ignore it, and artifacts without it load with
# the names unknown.
FORMAT_VERSION = 2
OLDEST_FORMAT_VERSION = 1
_TAIL_FORMAT_VERSION = 2
MANIFEST = "manifest.yaml"
# Limits judged from the zip directory before inflating anything (zip bombs): per entry, for
# the whole artifact, and for the manifest.
MAX_ENTRY_BYTES = 2 << 30
MAX_TOTAL_BYTES = 4 << 30
MAX_MANIFEST_BYTES = 16 << 20
MAX_ENTRIES = 100_000
_CHUNK = 1 << 20
_AGAIN = "compile the model again"
# What a damaged zip can raise while its directory or an entry is decoded.
_DAMAGED_ZIP = (zipfile.BadZipFile, zlib.error, EOFError, struct.error, ValueError,
                NotImplementedError, UnicodeDecodeError, OSError)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# Ends every stored string: fixed-width unicode drops trailing NUL characters, which a string
# may hold, but never drops this one.
_STRING_END = "$"


def array_bytes(array: np.ndarray) -> bytes:
    """``array`` as a .npy file, bit for bit. ml_dtypes' types (bfloat16, float8...) are
    written with their name as the header's ``descr`` (numpy's own descr for them, ``<V2``,
    would lose the type); strings as fixed-width unicode, each with a terminator."""
    array = np.require(array, requirements="C")  # (np.ascontiguousarray makes 0-d arrays 1-d)
    buffer = io.BytesIO()
    if array.dtype == dtypes.STRING:
        np.save(buffer, _terminated_strings(array), allow_pickle=False)
    elif array.dtype in dtypes.ML_DTYPES:
        np.lib.format.write_array_header_1_0(
            buffer, {"descr": array.dtype.name, "fortran_order": False, "shape": array.shape})
        buffer.write(array.tobytes())
    else:
        np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()


def array_from_bytes(data: bytes, name: str) -> np.ndarray:
    try:
        array = np.load(io.BytesIO(data), allow_pickle=False)
    except (ValueError, OSError, TypeError) as exc:
        raise ArtifactError(f"artifact entry {name!r} is not a valid .npy array ({exc}); "
                            f"{_AGAIN}") from None
    if array.dtype.kind != "U":
        return array
    strings = np.empty(array.shape, dtypes.STRING)
    strings.flat[:] = [text[:-len(_STRING_END)] for text in array.flat]
    return strings


def _terminated_strings(array: np.ndarray) -> np.ndarray:
    texts = list(array.flat)
    if not all(isinstance(text, str) for text in texts):
        kinds = sorted({type(text).__name__ for text in texts if not isinstance(text, str)})
        raise ArtifactError(f"an array of Python objects ({', '.join(kinds)}) cannot be "
                            f"stored in an artifact; only strings can")
    return np.array([text + _STRING_END for text in texts], np.str_).reshape(array.shape)


def write(path: str | Path, manifest: dict[str, Any], entries: dict[str, bytes]) -> None:
    """Write ``entries`` and the manifest (with their checksums added) to ``path``."""
    version = _TAIL_FORMAT_VERSION if "dynamic_tail" in manifest else OLDEST_FORMAT_VERSION
    manifest = dict(manifest, format_version=version,
                    files={name: sha256(data) for name, data in sorted(entries.items())})
    path = Path(path)
    tmp = path.with_name(path.name + ".partial")
    try:
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as zf:
            zf.writestr(MANIFEST, yaml.safe_dump(manifest, sort_keys=False))
            for name, data in sorted(entries.items()):
                zf.writestr(name, data)
        tmp.replace(path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise ArtifactError(f"{path}: cannot write the artifact ({exc.strerror})") from None


def read(path: str | Path) -> tuple[dict[str, Any], dict[str, bytes]]:
    """Read and check an artifact; return its manifest and its verified entries."""
    path = Path(path)
    if not path.is_file():
        raise ArtifactError(f"{path}: no such artifact file")
    try:
        zf = zipfile.ZipFile(path)
    except _DAMAGED_ZIP as exc:
        raise ArtifactError(f"{path}: not a byoc artifact (not a readable zip: {exc}); "
                            f"check the file name, or compile the model again") from None
    with zf:
        infos = zf.infolist()
        _check_entries(path, infos)
        manifest = _read_manifest(path, zf)
        listed = manifest["files"]
        entries = {}
        for info in infos:
            if info.filename == MANIFEST:
                continue
            if info.filename not in listed:
                raise ArtifactError(f"{path}: entry {info.filename!r} is not listed in the "
                                    f"manifest; the artifact was altered, compile it again")
            data = _read_entry(path, zf, info)
            if sha256(data) != listed[info.filename]:
                raise ArtifactError(f"{path}: checksum mismatch for {info.filename!r}; the "
                                    f"artifact is corrupt or was altered, compile it again")
            entries[info.filename] = data
    missing = sorted(set(listed) - set(entries))
    if missing:
        raise ArtifactError(f"{path}: entries listed in the manifest are missing: "
                            f"{', '.join(missing)}; the artifact is incomplete, compile it again")
    return manifest, entries


def _read_entry(path: Path, zf: zipfile.ZipFile, info: zipfile.ZipInfo,
                limit: int = MAX_ENTRY_BYTES) -> bytes:
    """Inflate one entry, never past its declared size (nor ``limit``), checking its CRC."""
    bound = min(info.file_size, limit)
    chunks, size = [], 0
    try:
        with zf.open(info) as stream:
            while size <= bound:
                chunk = stream.read(min(_CHUNK, bound + 1 - size))
                if not chunk:
                    break
                chunks.append(chunk)
                size += len(chunk)
    except _DAMAGED_ZIP as exc:
        raise ArtifactError(f"{path}: entry {info.filename!r} is damaged ({exc}); the artifact "
                            f"is corrupt, compile the model again") from None
    if size != info.file_size:
        raise ArtifactError(f"{path}: entry {info.filename!r} inflates past its declared size "
                            f"of {info.file_size} bytes; refusing it (a damaged or hostile "
                            f"artifact), compile the model again")
    return b"".join(chunks)


def _check_entries(path: Path, infos: list[zipfile.ZipInfo]) -> None:
    if len(infos) > MAX_ENTRIES:
        raise ArtifactError(f"{path}: too many entries ({len(infos)}, at most {MAX_ENTRIES}); "
                            f"refusing the artifact; {_AGAIN}")
    seen: set[str] = set()
    total = 0
    for info in infos:
        name = info.filename
        if name in seen:
            raise ArtifactError(f"{path}: entry {name!r} appears more than once; refusing an "
                                f"ambiguous artifact, compile the model again")
        seen.add(name)
        parts = name.split("/")
        if name.startswith("/") or "\\" in name or ".." in parts or ":" in parts[0]:
            raise ArtifactError(f"{path}: refusing entry {name!r}: absolute or parent-relative "
                                f"paths are not allowed in an artifact; {_AGAIN}")
        if posixpath.normpath(name) != name:
            raise ArtifactError(f"{path}: refusing entry {name!r}: path is not normalized; "
                                f"{_AGAIN}")
        mode = info.external_attr >> 16
        if mode and (mode & 0o170000) == 0o120000:
            raise ArtifactError(f"{path}: refusing entry {name!r}: symbolic links are not "
                                f"allowed in an artifact; {_AGAIN}")
        limit = MAX_MANIFEST_BYTES if name == MANIFEST else MAX_ENTRY_BYTES
        if info.file_size > limit:
            raise ArtifactError(f"{path}: refusing entry {name!r}: it declares "
                                f"{info.file_size} bytes, over the {limit}-byte limit (a zip "
                                f"bomb or a damaged artifact); {_AGAIN}")
        total += info.file_size
    if total > MAX_TOTAL_BYTES:
        raise ArtifactError(f"{path}: refusing the artifact: its entries declare {total} bytes "
                            f"in all, over the {MAX_TOTAL_BYTES}-byte limit; {_AGAIN}")


def _read_manifest(path: Path, zf: zipfile.ZipFile) -> dict[str, Any]:
    try:
        info = zf.getinfo(MANIFEST)
    except KeyError:
        raise ArtifactError(f"{path}: not a byoc artifact (no {MANIFEST}); check the file "
                            f"name, or {_AGAIN}") from None
    text = _read_entry(path, zf, info, MAX_MANIFEST_BYTES)
    try:
        manifest = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ArtifactError(f"{path}: the manifest is not valid YAML ({exc}); the artifact "
                            f"is damaged or was edited, {_AGAIN}") from None
    if not isinstance(manifest, dict):
        raise ArtifactError(f"{path}: the manifest is not a mapping; the artifact is "
                            f"damaged or was edited, {_AGAIN}")
    version = manifest.get("format_version")
    if not isinstance(version, int):
        raise ArtifactError(f"{path}: the manifest has no integer format_version; the "
                            f"artifact is damaged or was edited, {_AGAIN}")
    if version > FORMAT_VERSION:
        raise ArtifactError(f"{path}: artifact format {version} is newer than this byoc "
                            f"understands (format {FORMAT_VERSION}); upgrade byoc")
    if version < OLDEST_FORMAT_VERSION:
        raise ArtifactError(f"{path}: artifact format {version} is no longer supported; "
                            f"compile the model again")
    files = manifest.get("files")
    if not isinstance(files, dict) or not all(isinstance(k, str) and isinstance(v, str)
                                              for k, v in files.items()):
        raise ArtifactError(f"{path}: the manifest's file list is malformed; the artifact is "
                            f"damaged or was edited, compile the model again")
    return manifest
