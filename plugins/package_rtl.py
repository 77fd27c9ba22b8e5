"""The build step of the plugins that drive a design in hw/: their wheels carry its RTL.

hw/ holds each design's Verilog once. vta_sim (hw/vta) and npu_example (hw/npu) build with
``build_py_with_rtl(package, design)`` as their build_py command (each one's setup.py), which
copies the design's files into the built package as ``<package>/rtl``, keeping hw/'s
sub-folders, so an installed wheel needs no checkout. An editable install copies nothing: the
package reads hw/<design> in place (byoc.cosim.locate gives the lookup order). This runs at
build time, when byoc itself may not be installed, so it needs only setuptools.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from setuptools.command.build_py import build_py
from setuptools.errors import SetupError

HW = Path(__file__).resolve().parent.parent / "hw"
# What the plugins' Verilator builds and lint runs read: the design, its simulation shell,
# the generated parameter include and the lint waivers.
RTL_FILES = ("*.v", "sim/*.v", "generated/*.vh", "*.vlt")
PACKAGE_DATA_FOLDER = "rtl"   # the folder byoc.cosim.locate looks for in the package


def rtl_files(design: str) -> list[Path]:
    """The files of hw/<design> a wheel carries."""
    root = HW / design
    files = sorted({path for pattern in RTL_FILES for path in root.glob(pattern)})
    if not files:
        raise SetupError(f"there is no RTL in {root}: build the wheel in a checkout of the byoc "
                         f"repository, whose hw/{design} folder it copies into the package.")
    return files


def build_py_with_rtl(package: str, design: str) -> type[build_py]:
    """setuptools' build_py, then hw/<design>'s RTL copied into the built ``package``."""

    class BuildPyWithRtl(build_py):
        def run(self) -> None:
            super().run()
            if self.editable_mode:
                return
            target = Path(self.build_lib, package, PACKAGE_DATA_FOLDER)
            shutil.rmtree(target, ignore_errors=True)   # no file left from an earlier build
            for source in rtl_files(design):
                destination = target / source.relative_to(HW / design)
                self.mkpath(str(destination.parent))
                self.copy_file(str(source), str(destination))

    return BuildPyWithRtl
