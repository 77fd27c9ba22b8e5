"""Finding a plugin's RTL sources on disk."""

from __future__ import annotations

import os
from pathlib import Path

from byoc.errors import CosimError


def locate_rtl(owner: str, default: Path, required: str, env: str) -> Path:
    """The folder of ``owner``'s RTL: ``$env`` when set, else ``default`` (typically a path
    relative to the plugin's source checkout). It must hold the file ``required``; otherwise
    a CosimError says where it looked and how to point at the right folder."""
    configured = os.environ.get(env)
    path = Path(configured) if configured else Path(default)
    if not (path / required).is_file():
        raise CosimError(
            f"{owner}: the RTL is not at {path} (no {required} there). Run from a checkout of "
            f"the repository that holds it, or set {env} to its folder.")
    return path
