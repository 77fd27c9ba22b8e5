"""Tampered and hostile .byoc files are refused on load, before any plugin sees them.

Every case starts from a real compiled model saved to disk and damages one thing: raw bytes,
the manifest, the entry names, the declared sizes. ``byoc.load`` must raise an ArtifactError
that names what was wrong and says what to do, without creating a runtime (no plugin hook
runs) and without writing anything; ``byoc run`` must print one error paragraph and exit 1.
"""

from __future__ import annotations

import re
import struct
import subprocess
import sys
import time
import tracemalloc
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest
import yaml

import byoc
from byoc import artifact
from byoc.cli import main
from byoc.errors import ArtifactError
from byoc.plugins.manager import PluginManager

GIB = 1 << 30


@pytest.fixture
def saved(tmp_path, conv_bn_relu_model) -> Path:
    path = tmp_path / "good.byoc"
    byoc.compile(conv_bn_relu_model, default_plugins=()).save(path)
    return path


@pytest.fixture
def runtime_calls(monkeypatch) -> list[str]:
    """The plugins whose byoc_runtime_create was called, recorded from now on."""
    calls: list[str] = []
    original = PluginManager.call

    def recording(self, plugin_name, hook_name, **kwargs):
        if hook_name == "byoc_runtime_create":
            calls.append(plugin_name)
        return original(self, plugin_name, hook_name, **kwargs)

    monkeypatch.setattr(PluginManager, "call", recording)
    return calls


@pytest.fixture(scope="module")
def gigabyte_of_zeros() -> bytes:
    """A raw deflate stream (about 1 MB) that inflates to 1 GiB of zeros."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    block = bytes(16 << 20)
    chunks = [compressor.compress(block) for _ in range(GIB // len(block))]
    return b"".join(chunks) + compressor.flush()


# -- ways to damage a file ---------------------------------------------------------------------

def rewrite(src: Path, dst: Path, edit) -> None:
    """Copy a zip, letting ``edit(name, data)`` return (name, data) or None to drop."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w", zipfile.ZIP_DEFLATED) as zout:
        for info in zin.infolist():
            edited = edit(info.filename, zin.read(info))
            if edited is not None:
                zout.writestr(edited[0], edited[1])


def edit_manifest(src: Path, dst: Path, change) -> None:
    def edit(name, data):
        if name == artifact.MANIFEST:
            manifest = yaml.safe_load(data)
            change(manifest)
            data = yaml.safe_dump(manifest, sort_keys=False).encode()
        return name, data
    rewrite(src, dst, edit)


def entry_named(path: Path, prefix: str) -> str:
    with zipfile.ZipFile(path) as zf:
        return next(n for n in zf.namelist() if n.startswith(prefix))


def flip_byte(src: Path, dst: Path, prefix: str) -> str:
    """Flip one byte in the middle of an entry's compressed data."""
    name = entry_named(src, prefix)
    with zipfile.ZipFile(src) as zf:
        info = zf.getinfo(name)
    raw = bytearray(src.read_bytes())
    name_len, extra_len = struct.unpack_from("<HH", raw, info.header_offset + 26)
    start = info.header_offset + 30 + name_len + extra_len
    raw[start + info.compress_size // 2] ^= 0xFF
    dst.write_bytes(bytes(raw))
    return name


def patch_headers(path: Path, name: str, **fields: int) -> None:
    """Overwrite ``method``, ``crc``, ``compressed`` or ``size`` of entry ``name`` in both
    its local header and its central directory record."""
    local = {"method": (8, "<H"), "crc": (14, "<I"), "compressed": (18, "<I"),
             "size": (22, "<I")}
    raw = bytearray(path.read_bytes())
    encoded = name.encode()
    for signature, shift in ((b"PK\x03\x04", 0), (b"PK\x01\x02", 2)):
        at = 0
        while (at := raw.find(signature, at)) != -1:
            name_at = at + (46 if shift else 30)
            name_len = struct.unpack_from("<H", raw, at + 26 + shift)[0]
            if raw[name_at:name_at + name_len] == encoded:
                for key, value in fields.items():
                    offset, fmt = local[key]
                    struct.pack_into(fmt, raw, at + offset + shift, value)
            at += 4
    path.write_bytes(bytes(raw))


def with_stored_entry(src: Path, dst: Path, name: str, data: bytes) -> None:
    """Copy ``src`` replacing entry ``name`` by ``data`` stored uncompressed."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for info in zin.infolist():
            if info.filename == name:
                zout.writestr(zipfile.ZipInfo(name), data, compress_type=zipfile.ZIP_STORED)
            else:
                zout.writestr(info.filename, zin.read(info))


# -- the cases: each makes bad.byoc from good.byoc and returns what the error must say ----------

def flipped_manifest(good, bad, _):
    flip_byte(good, bad, artifact.MANIFEST)
    return r"'manifest\.yaml' is damaged"


def flipped_payload(good, bad, _):
    return flip_byte(good, bad, "payloads/") + "' is damaged"


def flipped_array(good, bad, _):
    return flip_byte(good, bad, "weights/") + "' is damaged"


def changed_dtype(good, bad, _):
    edit_manifest(good, bad, lambda m: m["partitions"][0]["inputs"][0].update(dtype="float128"))
    return r"'partitions\[0\]\.inputs\[0\]\.dtype'.*float128"


def negative_dim(good, bad, _):
    edit_manifest(good, bad, lambda m: m["inputs"][0].update(shape=[1, -3, 8, 8]))
    return r"'inputs\[0\]\.shape\[1\]' must be a non-negative int"


def removed_payload_key(good, bad, _):
    edit_manifest(good, bad, lambda m: m["partitions"][0].pop("payload"))
    return r"'partitions\[0\]\.payload' is missing"


def removed_partitions(good, bad, _):
    edit_manifest(good, bad, lambda m: m.pop("partitions"))
    return r"'partitions' is missing"


def ops_of_wrong_type(good, bad, _):
    edit_manifest(good, bad, lambda m: m["partitions"][0].update(ops="lots"))
    return r"'partitions\[0\]\.ops' must be a dict, not str"


def partition_plugin_not_listed(good, bad, _):
    edit_manifest(good, bad, lambda m: m["partitions"][0].update(plugin="stowaway"))
    return r"'partitions\[0\]\.plugin'.*'stowaway'"


def manifest_not_a_mapping(good, bad, _):
    rewrite(good, bad, lambda n, d: (n, b"- just\n- a list\n" if n == artifact.MANIFEST else d))
    return "manifest is not a mapping"


def checksum_mismatch(good, bad, _):
    target = entry_named(good, "weights/")
    other = artifact.array_bytes(np.zeros(3, np.float32))
    rewrite(good, bad, lambda n, d: (n, other if n == target else d))
    return f"checksum mismatch for '{target}'"


def absolute_path(good, bad, _):
    target = entry_named(good, "weights/")
    rewrite(good, bad, lambda n, d: ("/etc/" + n if n == target else n, d))
    return "refusing entry '/etc/weights/.*absolute"


def parent_path(good, bad, _):
    target = entry_named(good, "weights/")
    rewrite(good, bad, lambda n, d: ("../../" + n if n == target else n, d))
    return r"refusing entry '\.\./\.\./weights/"


def symlink_entry(good, bad, _):
    rewrite(good, bad, lambda n, d: (n, d))
    link = zipfile.ZipInfo("payloads/link.bin")
    link.external_attr = (0o120777 << 16)
    with zipfile.ZipFile(bad, "a") as zf:
        zf.writestr(link, "/etc/passwd")
    return "refusing entry 'payloads/link.bin': symbolic links"


def missing_plugin(good, bad, _):
    def rename(manifest):
        manifest["plugins"] = {"ghost": "1.0.0"}
        for part in manifest["partitions"]:
            part.update(plugin="ghost", plugin_version="1.0.0")
    edit_manifest(good, bad, rename)
    return "needs plugin 'ghost'.*not installed; install it"


def incompatible_plugin(good, bad, _):
    def bump(manifest):
        manifest["plugins"] = {name: "99.0.0" for name in manifest["plugins"]}
        for part in manifest["partitions"]:
            part["plugin_version"] = "99.0.0"
    edit_manifest(good, bad, bump)
    return "compiled with plugin 'reference' 99.0.0.*install a compatible version"


def future_format(good, bad, _):
    edit_manifest(good, bad, lambda m: m.update(format_version=99))
    return "format 99 is newer.*upgrade byoc"


def declares_gigabytes(good, bad, zeros):
    target = entry_named(good, "weights/")
    with_stored_entry(good, bad, target, zeros)
    patch_headers(bad, target, method=zipfile.ZIP_DEFLATED, size=3 * GIB,
                  crc=zlib.crc32(b""))
    return f"refusing entry '{target}': it declares {3 * GIB} bytes"


def inflates_past_declared_size(good, bad, zeros):
    target = entry_named(good, "weights/")
    with zipfile.ZipFile(good) as zf:
        honest_size = zf.getinfo(target).file_size
    with_stored_entry(good, bad, target, zeros)
    patch_headers(bad, target, method=zipfile.ZIP_DEFLATED, size=honest_size,
                  crc=zlib.crc32(bytes(honest_size)))
    # Reading stops at the declared size; what was read is then not what the manifest lists.
    return f"checksum mismatch for '{target}'|'{target}' (is damaged|inflates past)"


def declares_gigabytes_in_all(good, bad, zeros):
    rewrite(good, bad, lambda n, d: (n, d))
    with zipfile.ZipFile(bad, "a") as zf:
        for i in range(3):
            zf.writestr(f"weights/bomb{i}.npy", b"x", compress_type=zipfile.ZIP_STORED)
    for i in range(3):
        patch_headers(bad, f"weights/bomb{i}.npy", size=GIB + GIB // 2)
    return "entries declare .* bytes in all, over the"


def duplicate_entry(good, bad, _):
    target = entry_named(good, "payloads/")
    rewrite(good, bad, lambda n, d: (n, d))
    with pytest.warns(UserWarning, match="Duplicate name"):
        with zipfile.ZipFile(bad, "a") as zf:
            zf.writestr(target, b"the second one wins in some unzip tools")
    return f"entry '{target}' appears more than once"


def not_a_zip(good, bad, _):
    bad.write_bytes(b"#!/bin/sh\necho this is not a model\n")
    return "not a byoc artifact"


def truncated(good, bad, _):
    bad.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    return "not a byoc artifact"


CASES = [flipped_manifest, flipped_payload, flipped_array, changed_dtype, negative_dim,
         removed_payload_key, removed_partitions, ops_of_wrong_type, partition_plugin_not_listed,
         manifest_not_a_mapping, checksum_mismatch, absolute_path, parent_path, symlink_entry,
         missing_plugin, incompatible_plugin, future_format, declares_gigabytes,
         inflates_past_declared_size, declares_gigabytes_in_all, duplicate_entry, not_a_zip,
         truncated]
# What a refusal tells the user to do.
ADVICE = "compile (it|the model) again|install|upgrade byoc|check the file name"


def test_there_are_at_least_twelve_cases():
    assert len({case.__name__ for case in CASES}) == len(CASES) >= 12


def listing(folder: Path) -> dict[str, int]:
    return {str(p.relative_to(folder)): p.stat().st_size for p in folder.rglob("*")}


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.__name__)
def test_load_refuses_before_any_plugin_runs(case, saved, tmp_path, runtime_calls,
                                             gigabyte_of_zeros, monkeypatch):
    bad = tmp_path / "bad.byoc"
    expected = case(saved, bad, gigabyte_of_zeros)
    before = listing(tmp_path)
    monkeypatch.chdir(tmp_path)
    tracemalloc.start()
    start = time.perf_counter()
    try:
        with pytest.raises(ArtifactError, match=expected) as refused:
            byoc.load(bad)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert time.perf_counter() - start < 10
    assert peak < 64 << 20, f"loading used {peak} bytes: something was inflated"
    assert str(bad) in str(refused.value)
    assert re.search(ADVICE, str(refused.value)), str(refused.value)
    assert runtime_calls == []
    assert listing(tmp_path) == before


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.__name__)
def test_cli_run_prints_one_error_paragraph(case, saved, tmp_path, runtime_calls,
                                            gigabyte_of_zeros, capsys):
    bad = tmp_path / "bad.byoc"
    case(saved, bad, gigabyte_of_zeros)
    assert main(["run", str(bad)]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith("byoc: error: ")
    assert captured.err.count("byoc: error:") == 1
    assert "Traceback" not in captured.err and "\n\n" not in captured.err.strip()
    assert runtime_calls == []


def test_the_installed_command_shows_no_traceback(saved, tmp_path):
    bad = tmp_path / "bad.byoc"
    flipped_payload(saved, bad, None)
    done = subprocess.run([sys.executable, "-m", "byoc.cli", "run", str(bad)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 1
    assert done.stderr.startswith("byoc: error: ") and "Traceback" not in done.stderr


def test_the_untampered_artifact_still_loads(saved, runtime_calls):
    x = np.ones((1, 3, 8, 8), np.float32)
    assert byoc.load(saved).run({"x": x})["y"].shape == (1, 4, 8, 8)
    assert runtime_calls

