import zipfile

import numpy as np
import pytest
import yaml

import byoc
from byoc import artifact
from byoc.errors import ArtifactError


@pytest.fixture
def saved(tmp_path, conv_bn_relu_model):
    model = byoc.compile(conv_bn_relu_model)
    path = tmp_path / "m.byoc"
    model.save(path)
    return model, path


def rewrite(src, dst, edit):
    """Copy a zip, letting ``edit(name, data)`` return (name, data) or None to drop."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for info in zin.infolist():
            edited = edit(info.filename, zin.read(info))
            if edited is not None:
                zout.writestr(edited[0], edited[1])


def test_round_trip_gives_identical_outputs(saved):
    model, path = saved
    x = np.random.default_rng(0).standard_normal((1, 3, 8, 8)).astype(np.float32)
    np.testing.assert_array_equal(byoc.load(path).run({"x": x})["y"], model.run({"x": x})["y"])
    manifest, _ = artifact.read(path)
    assert manifest["format_version"] == artifact.OLDEST_FORMAT_VERSION  # no dynamic tail
    assert manifest["byoc_version"] == byoc.__version__
    assert manifest["inputs"] == [{"name": "x", "dtype": "float32", "shape": [1, 3, 8, 8]}]


def first_array_entry(path):
    with zipfile.ZipFile(path) as zf:
        return next(n for n in zf.namelist() if n.endswith(".npy"))


def test_entry_outside_the_archive_is_refused(saved, tmp_path):
    _, path = saved
    bad = tmp_path / "bad.byoc"
    target = first_array_entry(path)
    for evil in ("../evil.npy", "/abs/evil.npy"):
        rewrite(path, bad, lambda n, d, evil=evil: (evil, d) if n == target else (n, d))
        with pytest.raises(ArtifactError, match="refusing entry"):
            byoc.load(bad)


def test_future_format_is_refused(saved, tmp_path):
    _, path = saved
    bad = tmp_path / "future.byoc"

    def bump(name, data):
        if name == "manifest.yaml":
            manifest = yaml.safe_load(data)
            manifest["format_version"] = 99
            data = yaml.safe_dump(manifest).encode()
        return name, data

    rewrite(path, bad, bump)
    with pytest.raises(ArtifactError, match="format 99 is newer"):
        byoc.load(bad)


def test_unlisted_entry_and_missing_entry_are_refused(saved, tmp_path):
    _, path = saved
    extra = tmp_path / "extra.byoc"
    rewrite(path, extra, lambda n, d: (n, d))
    with zipfile.ZipFile(extra, "a") as zf:
        zf.writestr("payloads/extra.bin", b"hello")
    with pytest.raises(ArtifactError, match="not listed in the manifest"):
        byoc.load(extra)
    missing = tmp_path / "missing.byoc"
    target = first_array_entry(path)
    rewrite(path, missing, lambda n, d: None if n == target else (n, d))
    with pytest.raises(ArtifactError, match="missing"):
        byoc.load(missing)


def test_not_a_zip_is_refused(tmp_path):
    bad = tmp_path / "x.byoc"
    bad.write_bytes(b"PK\x03\x04 not really")
    with pytest.raises(ArtifactError, match="not a byoc artifact"):
        byoc.load(bad)
