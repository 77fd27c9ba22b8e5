"""``byoc new-plugin``: the generated package installs, its tests and the conformance kit
pass, and ``byoc plugins`` lists it. It is installed into a throwaway --target folder put on
PYTHONPATH for subprocesses, so the test environment is left as it was."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from byoc.cli import main
from byoc.scaffold import check_name, name_clash, package_files


def run(args, cwd, env=None):
    return subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=300)


def test_generated_plugin_installs_and_passes_its_tests_and_the_kit(tmp_path, capsys):
    assert main(["new-plugin", "demo_npu", "--dir", str(tmp_path)]) == 0
    root = tmp_path / "demo_npu"
    assert sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()) == \
        sorted(package_files("demo_npu"))
    assert 'name = "byoc-demo-npu"' in (root / "pyproject.toml").read_text()
    assert "next: pip install -e" in capsys.readouterr().out

    site = tmp_path / "site"
    installed = run(["-m", "pip", "install", "-q", "--no-deps", "--target", str(site),
                     str(root)], tmp_path)
    assert installed.returncode == 0, installed.stderr
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        filter(None, [str(site), os.environ.get("PYTHONPATH")]))}

    tests = run(["-m", "pytest", "-q", "-p", "no:cacheprovider"], root, env)
    assert tests.returncode == 0, tests.stdout[-3000:]
    assert "4 passed" in tests.stdout
    kit = run(["-m", "pytest", "--byoc-plugin", "demo_npu", "-q", "-p", "no:cacheprovider",
               "-m", "byoc_conformance"], root, env)
    assert kit.returncode == 0, kit.stdout[-3000:]
    listed = run(["-m", "byoc.cli", "plugins"], tmp_path, env)
    assert "demo_npu 0.1.0 (from byoc-demo-npu 0.1.0)" in listed.stdout
    assert "patterns:    demo_npu.elementwise" in listed.stdout


@pytest.mark.parametrize("name, message", [
    ("My-Npu", "'My-Npu' cannot name a plugin"),
    ("2npu", "cannot name a plugin"),
    ("class", "cannot name a plugin"),
])
def test_bad_names_are_refused_in_one_paragraph(tmp_path, capsys, name, message):
    assert main(["new-plugin", name, "--dir", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("byoc: error: ") and message in err and "Traceback" not in err
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize("name, clash", [
    ("vta_sim", "an installed plugin has that name (entry point vta_sim = byoc_vta_sim.plugin)"),
    ("reference", "an installed plugin has that name"),
    ("numpy", "the module 'numpy' is importable (from "),
    ("json", "the module 'json' is importable (from "),
    ("byoc_vta_sim", "the module 'byoc_vta_sim' is importable (from "),
    ("byoc", "the module 'byoc' is importable (from "),
])
def test_names_already_taken_are_refused_with_another_suggested(tmp_path, capsys, name, clash):
    assert main(["new-plugin", name, "--dir", str(tmp_path)]) == 1
    err = " ".join(capsys.readouterr().err.split())
    assert err.startswith(f"byoc: error: {name!r} cannot name a new plugin: {clash}")
    suggested = re.search(r"Choose another name, e\.g\. '(\w+)'$", err).group(1)
    check_name(suggested)
    assert not any(tmp_path.iterdir())


def test_an_importable_package_byoc_name_is_refused(tmp_path, capsys, monkeypatch):
    """The package the plugin would create already exists: installing it would replace it.
    The name suggested instead is free (my_mine is taken too)."""
    (tmp_path / "byoc_mine.py").write_text("")
    (tmp_path / "my_mine.py").write_text("")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert main(["new-plugin", "mine", "--dir", str(tmp_path / "out")]) == 1
    err = " ".join(capsys.readouterr().err.split())
    assert "the package it would create, byoc_mine, is importable already" in err
    assert "installing the new one would replace it. Choose another name, e.g. 'mine_npu'" in err


def test_a_plain_folder_of_that_name_is_no_clash(tmp_path, monkeypatch):
    (tmp_path / "plain").mkdir()  # importable only as a namespace package: no module there
    monkeypatch.syspath_prepend(str(tmp_path))
    assert name_clash("plain") is None


def test_an_existing_folder_is_never_overwritten(tmp_path, capsys):
    (tmp_path / "npu").mkdir()
    (tmp_path / "npu" / "keep.txt").write_text("mine")
    assert main(["new-plugin", "npu", "--dir", str(tmp_path)]) == 1
    assert "already exists" in capsys.readouterr().err
    assert [p.name for p in (tmp_path / "npu").iterdir()] == ["keep.txt"]
