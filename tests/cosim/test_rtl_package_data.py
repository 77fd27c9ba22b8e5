"""Where the plugins find their RTL (byoc.cosim.locate), and that their wheels carry it.

A wheel of vta_sim or npu_example must hold every RTL file of its hw/ folder byte for byte and,
installed with no checkout in reach of the environment variables, find its RTL inside the
installed package. The wheels are built from a copy of the checkout's hw/ and plugins/ folders
(so no build folder is written into the checkout) with pip and no build isolation (no network).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from byoc.cosim import CosimError, locate_rtl

ROOT = Path(__file__).resolve().parents[2]
RTL_SUFFIXES = (".v", ".vh", ".vlt")
ENV_VARS = ("BYOC_VTA_RTL", "BYOC_NPU_RTL")
# plugin folder, package, the module with rtl_dir(), hw/ design
PLUGINS = {
    "vta_sim": ("byoc_vta_sim", "byoc_vta_sim.rtl", "vta"),
    "npu_example": ("byoc_npu_example", "byoc_npu_example.requant_rtl", "npu"),
}


# -- the lookup order ----------------------------------------------------------------------------

@pytest.fixture
def checkout(tmp_path, monkeypatch):
    """A checkout layout: hw/toy holding the RTL, plugins/toy/byoc_toy the package."""
    monkeypatch.delenv("BYOC_TOY_RTL", raising=False)
    (tmp_path / "hw" / "toy").mkdir(parents=True)
    (tmp_path / "hw" / "toy" / "toy.v").write_text("module toy; endmodule\n")
    (tmp_path / "plugins" / "toy" / "byoc_toy").mkdir(parents=True)
    return tmp_path


def locate(package_dir: Path) -> Path:
    return locate_rtl("toy", package_dir=package_dir, design="toy", required="toy.v",
                      env="BYOC_TOY_RTL")


def test_an_editable_install_reads_the_checkouts_hw_folder(checkout):
    assert locate(checkout / "plugins" / "toy" / "byoc_toy") == checkout / "hw" / "toy"


def test_the_package_data_folder_comes_before_the_checkout(checkout):
    package = checkout / "plugins" / "toy" / "byoc_toy"
    (package / "rtl").mkdir()
    (package / "rtl" / "toy.v").write_text("module toy; endmodule\n")
    assert locate(package) == package / "rtl"


def test_the_environment_variable_comes_first(checkout, tmp_path_factory, monkeypatch):
    package = checkout / "plugins" / "toy" / "byoc_toy"
    (package / "rtl").mkdir()
    (package / "rtl" / "toy.v").write_text("module toy; endmodule\n")
    own = tmp_path_factory.mktemp("own")
    (own / "toy.v").write_text("module toy; endmodule\n")
    monkeypatch.setenv("BYOC_TOY_RTL", str(own))
    assert locate(package) == own
    monkeypatch.setenv("BYOC_TOY_RTL", str(own / "missing"))
    with pytest.raises(CosimError, match=r"\$BYOC_TOY_RTL: .*missing\. Point BYOC_TOY_RTL"):
        locate(package)


def test_nothing_found_names_every_place_and_what_to_do(tmp_path, monkeypatch):
    monkeypatch.delenv("BYOC_TOY_RTL", raising=False)
    package = tmp_path / "site-packages" / "byoc_toy"
    package.mkdir(parents=True)
    with pytest.raises(CosimError) as raised:
        locate(package)
    message = str(raised.value)
    assert "toy: the RTL is not at" in message
    assert "$BYOC_TOY_RTL: not set" in message
    assert f"the package data folder {package / 'rtl'}: absent" in message
    assert "the checkout folder " in message and "hw/toy: absent" in message
    assert "Install the plugin from a wheel" in message and "set BYOC_TOY_RTL" in message


def test_a_package_at_the_top_of_the_file_system_is_no_crash(monkeypatch):
    monkeypatch.delenv("BYOC_TOY_RTL", raising=False)
    with pytest.raises(CosimError, match="the checkout folder"):
        locate(Path("/byoc_toy"))


# -- the wheels ----------------------------------------------------------------------------------

def hw_rtl(design: str) -> dict[str, bytes]:
    """The RTL files of hw/<design> by path inside it, with their bytes."""
    root = ROOT / "hw" / design
    files = {path.relative_to(root).as_posix(): path.read_bytes()
             for path in sorted(root.rglob("*")) if path.suffix in RTL_SUFFIXES}
    assert files, f"no RTL in {root}"
    return files


def pip(*args: str, cwd: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "pip", "--disable-pip-version-check", *args],
                          cwd=cwd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"pip {' '.join(args)} failed:\n{done.stdout}{done.stderr}"


@pytest.fixture(scope="module")
def wheels(tmp_path_factory) -> dict[str, Path]:
    """The two plugins' wheels, by plugin folder name."""
    source = tmp_path_factory.mktemp("checkout")
    shutil.copytree(ROOT / "hw", source / "hw")
    shutil.copytree(ROOT / "plugins", source / "plugins", ignore=shutil.ignore_patterns(
        "build", "*.egg-info", "__pycache__", ".pytest_cache"))
    out = tmp_path_factory.mktemp("wheels")
    pip("wheel", "--no-deps", "--no-build-isolation", "--no-index", "-w", str(out),
        *(f"./plugins/{plugin}" for plugin in PLUGINS), cwd=source)
    built = {}
    for plugin, (package, _, _) in PLUGINS.items():
        [built[plugin]] = out.glob(f"{package}-*.whl")
    return built


@pytest.mark.parametrize("plugin", PLUGINS)
def test_the_wheel_carries_the_rtl_of_hw_byte_for_byte(wheels, plugin):
    package, _, design = PLUGINS[plugin]
    prefix = f"{package}/rtl/"
    with zipfile.ZipFile(wheels[plugin]) as wheel:
        shipped = {name[len(prefix):]: wheel.read(name) for name in wheel.namelist()
                   if name.startswith(prefix)}
    assert sorted(shipped) == sorted(hw_rtl(design))
    assert shipped == hw_rtl(design)


FIND_RTL = """\
import importlib, json, sys
sys.path.insert(0, sys.argv[1])
module = importlib.import_module(sys.argv[2])
root = module.rtl_dir()
print(json.dumps({"module": module.__file__, "rtl_dir": str(root),
                  "sources": [str(path) for path in module.rtl_sources(root)]}))
"""


@pytest.mark.parametrize("plugin", PLUGINS)
def test_the_installed_wheel_finds_its_rtl_inside_the_package(wheels, plugin, tmp_path):
    package, module, _ = PLUGINS[plugin]
    site = tmp_path / "site"
    pip("install", "--no-deps", "--no-index", "--target", str(site), str(wheels[plugin]),
        cwd=tmp_path)
    env = {name: value for name, value in os.environ.items() if name not in ENV_VARS}
    done = subprocess.run([sys.executable, "-c", FIND_RTL, str(site), module], cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    found = json.loads(done.stdout)
    installed = (site / package).resolve()
    assert Path(found["module"]).resolve().parent == installed
    assert Path(found["rtl_dir"]).resolve() == installed / "rtl"
    assert all(Path(path).resolve().is_relative_to(installed / "rtl")
               for path in found["sources"])
    assert not Path(found["rtl_dir"]).resolve().is_relative_to(ROOT)
