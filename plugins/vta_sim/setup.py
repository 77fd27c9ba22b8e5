"""Builds byoc-vta-sim: its wheel carries hw/vta as byoc_vta_sim/rtl
(the build step is plugins/package_rtl.py)."""

import sys
from pathlib import Path

from setuptools import setup

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))   # plugins/: package_rtl
from package_rtl import build_py_with_rtl  # noqa: E402

setup(cmdclass={"build_py": build_py_with_rtl("byoc_vta_sim", "vta")})
