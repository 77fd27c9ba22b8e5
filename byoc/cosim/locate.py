"""Finding a plugin's RTL sources on disk.

A design's Verilog is written once, in the repository's ``hw/<design>`` folder. A wheel of the
plugin carries a copy as package data, ``<package>/rtl``, made by the plugin's setup.py when
the wheel is built, so an installed plugin needs no checkout. An editable install (what
``./dev setup`` does) copies nothing and reads ``hw/<design>`` of the checkout in place, so an
edit there is what the next build simulates. :func:`locate_rtl` takes the first of:

1. the folder named by the plugin's environment variable, when it is set;
2. the package data folder, when the package has one (an installed wheel);
3. ``hw/<design>`` of the checkout the package was imported from (an editable install).

Verilated builds never go inside the package (site-packages may be read-only): they are
cached under :func:`byoc.cosim.build.default_cache_dir`.
"""

from __future__ import annotations

import os
from pathlib import Path

from byoc.errors import CosimError

PACKAGE_DATA_FOLDER = "rtl"
# A plugin package in the checkout is <checkout>/plugins/<plugin>/<package>.
CHECKOUT_LEVELS_UP = 2


def locate_rtl(owner: str, *, package_dir: os.PathLike | str, design: str, required: str,
               env: str) -> Path:
    """The folder of ``owner``'s RTL, which must hold the file ``required``.

    ``package_dir`` is the plugin's package folder and ``design`` the name of its folder under
    ``hw/``; the module docstring gives the order the places are tried in. When none of them
    is there, or the one taken lacks ``required``, a CosimError names every place looked at
    and what to do.
    """
    package_dir = Path(package_dir).resolve()
    configured = os.environ.get(env)
    package_data = package_dir / PACKAGE_DATA_FOLDER
    looked = [f"${env}: " + (configured or "not set")]
    if configured:
        chosen = Path(configured)
    elif package_data.is_dir():
        chosen = package_data
        looked.append(f"the package data folder {package_data}: present")
    else:
        chosen = _checkout(package_dir) / "hw" / design
        looked += [f"the package data folder {package_data}: absent",
                   f"the checkout folder {chosen}: "
                   + ("present" if chosen.is_dir() else "absent")]
    if (chosen / required).is_file():
        return chosen
    if configured:
        remedy = (f"Point {env} at the folder that holds {required} and the rest of the RTL, "
                  f"or unset it to use the plugin's own copy.")
    else:
        remedy = (f"Install the plugin from a wheel built in a byoc checkout (the build copies "
                  f"hw/{design} into the package), or in editable mode from the checkout, or "
                  f"set {env} to the folder that holds {required} and the rest of the RTL.")
    raise CosimError(f"{owner}: the RTL is not at {chosen} (no {required} there). Looked at, "
                     f"in order: {'; '.join(looked)}. {remedy}")

def _checkout(package_dir: Path) -> Path:
    """The checkout a package folder would sit in (a shallow folder is its own)."""
    parents = package_dir.parents
    return parents[CHECKOUT_LEVELS_UP] if len(parents) > CHECKOUT_LEVELS_UP else package_dir
