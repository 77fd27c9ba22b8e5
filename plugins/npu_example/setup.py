"""Builds byoc-npu-example: its wheel carries hw/npu as byoc_npu_example/rtl
(the build step is plugins/package_rtl.py)."""

import sys
from pathlib import Path

from setuptools import setup

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))   # plugins/: package_rtl
from package_rtl import build_py_with_rtl  # noqa: E402

setup(cmdclass={"build_py": build_py_with_rtl("byoc_npu_example", "npu")})
