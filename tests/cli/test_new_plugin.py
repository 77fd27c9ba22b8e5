"""``byoc new-plugin``: the generated package installs, its tests and the conformance kit
pass, and ``byoc plugins`` lists it. It is installed into a throwaway --target folder put on
PYTHONPATH for subprocesses, so the test environment is left as it was."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from byoc.cli import main
from byoc.scaffold import package_files


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


def test_an_existing_folder_is_never_overwritten(tmp_path, capsys):
    (tmp_path / "npu").mkdir()
    (tmp_path / "npu" / "keep.txt").write_text("mine")
    assert main(["new-plugin", "npu", "--dir", str(tmp_path)]) == 1
    assert "already exists" in capsys.readouterr().err
    assert [p.name for p in (tmp_path / "npu").iterdir()] == ["keep.txt"]
