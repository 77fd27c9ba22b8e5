"""The API probe (tests/api_probe), a plugin written only against byoc's public plugin API,
installed from its wheel as a user would and driven through the command line and the
conformance kit.

When a test here fails after a change to byoc, plugins in the field break the same way: keep
the old API working for a release instead (docs/writing-a-plugin.md, "The plugin API and its
stability"). The probe is installed into a folder of its own, put on PYTHONPATH of the
commands run here, so the shared environment never sees it.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from onnx import TensorProto, helper

from byoc.testing import compile_reference, make_model

PROBE = Path(__file__).resolve().parent / "api_probe"


def pip(*args: str, cwd: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "pip", "--disable-pip-version-check", *args],
                          cwd=cwd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"pip {' '.join(args)} failed:\n{done.stdout}{done.stderr}"


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    """The folder the probe's wheel is installed into. The wheel is built from a copy of
    tests/api_probe, so no build folder lands in the checkout."""
    source = tmp_path_factory.mktemp("source") / "api_probe"
    shutil.copytree(PROBE, source, ignore=shutil.ignore_patterns(
        "build", "*.egg-info", "__pycache__"))
    wheels = tmp_path_factory.mktemp("wheels")
    pip("wheel", "--no-deps", "--no-build-isolation", "--no-index", "-w", str(wheels),
        str(source), cwd=source.parent)
    [wheel] = wheels.glob("byoc_api_probe-*.whl")
    installed = tmp_path_factory.mktemp("site")
    pip("install", "--no-deps", "--no-index", "--target", str(installed), str(wheel),
        cwd=installed)
    return installed


def command(site: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    """``python ARGS`` with the probe installed (``-m byoc ...`` is the byoc command)."""
    paths = [str(site), *filter(None, [os.environ.get("PYTHONPATH")])]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(paths)}
    return subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=120)


def byoc(site: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    return command(site, "-m", "byoc", *args, cwd=cwd)


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    """x -> Abs -> Mul(scale) -> Add(shift) -> Relu -> y: both of the probe's patterns, one
    partition formed by two matches. The folder holds the model and x.npy."""
    folder = tmp_path_factory.mktemp("model")
    rng = np.random.default_rng(0)
    constants = {"scale": rng.standard_normal((3, 1, 1)).astype(np.float32),
                 "shift": rng.standard_normal((3, 1, 1)).astype(np.float32)}
    nodes = [helper.make_node("Abs", ["x"], ["magnitude"], name="abs"),
             helper.make_node("Mul", ["magnitude", "scale"], ["scaled"], name="mul"),
             helper.make_node("Add", ["shift", "scaled"], ["shifted"], name="add"),
             helper.make_node("Relu", ["shifted"], ["y"], name="relu")]
    onnx_model = make_model(nodes, [("x", TensorProto.FLOAT, [1, 3, 4, 5])],
                            [("y", TensorProto.FLOAT, [1, 3, 4, 5])], constants)
    path = folder / "probe.onnx"
    path.write_bytes(onnx_model.SerializeToString())
    np.save(folder / "x.npy", rng.standard_normal((1, 3, 4, 5)).astype(np.float32))
    return path


def test_byoc_plugins_lists_the_probe_with_its_patterns_and_options(site, tmp_path):
    done = byoc(site, "plugins", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "api_probe 0.1.0 (from byoc-api-probe 0.1.0)\n" in done.stdout, done.stdout
    listing = done.stdout.split("api_probe 0.1.0 (from byoc-api-probe 0.1.0)\n", 1)[1]
    probe = re.split(r"\n(?=\S)", listing, maxsplit=1)[0]   # up to the next plugin
    assert "patterns:    api_probe.scale_shift, api_probe.abs" in probe
    assert "fold_relu: bool, default True, compile stage;" in probe
    assert "threads: int, default 1, run stage;" in probe


@pytest.mark.parametrize("fold_relu, passes", [("true", 2), ("false", 3)])
def test_the_compiled_probe_computes_what_the_reference_does(site, model, tmp_path, fold_relu,
                                                             passes):
    """fold_relu=true runs Abs and the folded multiply-add-Relu: two passes over the data;
    false runs the Relu in a pass of its own. threads=3 splits each pass in three."""
    artifact = tmp_path / "probe.byoc"
    done = byoc(site, "compile", str(model), "--plugins", "api_probe", "--plugin-option",
                f"api_probe.fold_relu={fold_relu}", "-o", str(artifact), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "1 partition (api_probe 4/4 nodes)" in done.stdout
    done = byoc(site, "run", str(artifact), "--input", f"x={model.parent / 'x.npy'}",
                "--output", str(tmp_path / "out.npz"), "--profile", "--plugin-option",
                "api_probe.threads=3", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    counters = dict(re.findall(r"^ {4}(passes|chunks) +(\d+)", done.stdout, re.MULTILINE))
    assert counters == {"passes": str(passes), "chunks": str(3 * passes)}, done.stdout
    x = np.load(model.parent / "x.npy")
    want = compile_reference(str(model)).run({"x": x})["y"]
    np.testing.assert_allclose(np.load(tmp_path / "out.npz")["y"], want, rtol=1e-6, atol=1e-6)


def assert_refused(done: subprocess.CompletedProcess, message: str) -> None:
    """The command failed with ``message`` as a paragraph for the user, no traceback."""
    assert done.returncode == 1, done.stdout + done.stderr
    assert message in " ".join(done.stderr.split()), done.stderr
    assert "Traceback" not in done.stderr


def test_a_bad_option_value_is_an_error_naming_it(site, model, tmp_path):
    """fold_relu=maybe is refused by byoc, from the probe's declaration; threads=0 by the
    probe itself, when its runtime is created for the artifact."""
    artifact = str(tmp_path / "probe.byoc")
    done = byoc(site, "compile", str(model), "--plugins", "api_probe", "--plugin-option",
                "api_probe.fold_relu=maybe", "-o", artifact, cwd=tmp_path)
    assert_refused(done, "api_probe.fold_relu='maybe' is not valid: give true/false/1/0")
    done = byoc(site, "compile", str(model), "--plugins", "api_probe", "-o", artifact,
                cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    done = byoc(site, "run", artifact, "--plugin-option", "api_probe.threads=0", cwd=tmp_path)
    assert_refused(done, "plugin option api_probe.threads=0: give 1 or more threads")


def test_the_conformance_kit_passes_the_probe(site, tmp_path):
    done = command(site, "-m", "pytest", "--byoc-plugin", "api_probe", "-q", "-rA", "-p",
                   "no:cacheprovider", cwd=tmp_path)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    passed = set(re.findall(r"^PASSED byoc-conformance/api_probe::(\S+)", done.stdout, re.M))
    # The composite whole and without its optional Relu, a shape the check declines, and the
    # single-op pattern.
    assert {"api_probe.scale_shift[Mul-base]", "api_probe.scale_shift[Mul-relu=None]",
            "api_probe.scale_shift[Mul-outside-broadcast=both]",
            "api_probe.abs[Abs-base]"} <= passed, done.stdout[-3000:]
