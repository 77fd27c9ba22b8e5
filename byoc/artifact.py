"""The compiled-model file: one zip holding a YAML manifest, payloads and .npy arrays.

The manifest records the format version, the byoc version that wrote it, and the sha256 of
every other entry. Reading never unpickles or evaluates anything: arrays load with
``allow_pickle=False``, YAML with ``safe_load``, and entries whose names are absolute, contain
``..``, or are not listed in the manifest are refused before anything is used.
"""

from __future__ import annotations

import hashlib
import io
import posixpath
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from byoc.errors import ArtifactError

FORMAT_VERSION = 1
MANIFEST = "manifest.yaml"
# An artifact entry may not inflate beyond this (defends against zip bombs).
MAX_ENTRY_BYTES = 8 << 30
MAX_ENTRIES = 100_000


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def array_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, np.ascontiguousarray(array), allow_pickle=False)
    return buffer.getvalue()


def array_from_bytes(data: bytes, name: str) -> np.ndarray:
    try:
        return np.load(io.BytesIO(data), allow_pickle=False)
    except (ValueError, OSError) as exc:
        raise ArtifactError(f"artifact entry {name!r} is not a valid .npy array ({exc})") from None


def write(path: str | Path, manifest: dict[str, Any], entries: dict[str, bytes]) -> None:
    """Write ``entries`` and the manifest (with their checksums added) to ``path``."""
    manifest = dict(manifest, format_version=FORMAT_VERSION,
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
        with zipfile.ZipFile(path) as zf:
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
                                        f"manifest; the artifact was altered")
                data = zf.read(info)
                if sha256(data) != listed[info.filename]:
                    raise ArtifactError(f"{path}: checksum mismatch for {info.filename!r}; the "
                                        f"artifact is corrupt or was altered, compile it again")
                entries[info.filename] = data
    except zipfile.BadZipFile as exc:
        raise ArtifactError(f"{path}: not a byoc artifact (bad zip: {exc})") from None
    missing = sorted(set(listed) - set(entries))
    if missing:
        raise ArtifactError(f"{path}: entries listed in the manifest are missing: "
                            f"{', '.join(missing)}")
    return manifest, entries


def _check_entries(path: Path, infos: list[zipfile.ZipInfo]) -> None:
    if len(infos) > MAX_ENTRIES:
        raise ArtifactError(f"{path}: too many entries ({len(infos)})")
    for info in infos:
        name = info.filename
        parts = name.split("/")
        if name.startswith("/") or "\\" in name or ".." in parts or ":" in parts[0]:
            raise ArtifactError(f"{path}: refusing entry {name!r}: absolute or parent-relative "
                                f"paths are not allowed in an artifact")
        if posixpath.normpath(name) != name:
            raise ArtifactError(f"{path}: refusing entry {name!r}: path is not normalized")
        mode = info.external_attr >> 16
        if mode and (mode & 0o170000) == 0o120000:
            raise ArtifactError(f"{path}: refusing entry {name!r}: symbolic links are not "
                                f"allowed in an artifact")
        if info.file_size > MAX_ENTRY_BYTES:
            raise ArtifactError(f"{path}: entry {name!r} would inflate to {info.file_size} "
                                f"bytes, over the {MAX_ENTRY_BYTES}-byte limit")


def _read_manifest(path: Path, zf: zipfile.ZipFile) -> dict[str, Any]:
    try:
        text = zf.read(MANIFEST)
    except KeyError:
        raise ArtifactError(f"{path}: not a byoc artifact (no {MANIFEST})") from None
    try:
        manifest = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ArtifactError(f"{path}: the manifest is not valid YAML ({exc})") from None
    if not isinstance(manifest, dict):
        raise ArtifactError(f"{path}: the manifest is not a mapping")
    version = manifest.get("format_version")
    if not isinstance(version, int):
        raise ArtifactError(f"{path}: the manifest has no integer format_version")
    if version > FORMAT_VERSION:
        raise ArtifactError(f"{path}: artifact format {version} is newer than this byoc "
                            f"understands (format {FORMAT_VERSION}); upgrade byoc")
    if version < FORMAT_VERSION:
        raise ArtifactError(f"{path}: artifact format {version} is no longer supported; "
                            f"compile the model again")
    files = manifest.get("files")
    if not isinstance(files, dict) or not all(isinstance(v, str) for v in files.values()):
        raise ArtifactError(f"{path}: the manifest's file list is malformed")
    return manifest
