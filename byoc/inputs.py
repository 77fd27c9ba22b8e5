"""Model inputs from the command line: shape bindings, .npy/.npz files, seeded random data."""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from byoc.core.ir import TensorType
from byoc.errors import InputError


def parse_shape_bindings(specs: Sequence[str]) -> dict[str, tuple[int, ...]]:
    """``["input=1x3x224x224"]`` -> ``{"input": (1, 3, 224, 224)}``."""
    bindings = {}
    for spec in specs:
        name, sep, dims = spec.rpartition("=")
        try:
            shape = tuple(int(d) for d in dims.lower().split("x")) if dims else ()
        except ValueError:
            shape = None
        if not sep or not name or shape is None:
            raise InputError(f"--input-shape {spec!r}: expected NAME=DIMS with dims separated "
                             f"by 'x', e.g. input=1x3x224x224")
        if any(d < 0 for d in shape):
            raise InputError(f"--input-shape {spec!r}: a dimension is negative; give sizes of "
                             f"0 or more, e.g. {name}=1x3x224x224")
        bindings[name] = shape
    return bindings


def parse_pins(specs: Sequence[str]) -> dict[str, str]:
    """``["Conv=npu", "fc=reference"]`` -> ``{"Conv": "npu", "fc": "reference"}``."""
    pins = {}
    for spec in specs:
        target, sep, plugin = spec.rpartition("=")
        if not sep or not target or not plugin:
            raise InputError(f"--pin {spec!r}: expected NODE_OR_OP=PLUGIN, e.g. Conv=npu")
        pins[target] = plugin
    return pins


def parse_plugin_options(specs: Sequence[str]) -> dict[str, dict[str, str]]:
    """``["cpu_llvm.threads=2"]`` -> ``{"cpu_llvm": {"threads": "2"}}``."""
    options: dict[str, dict[str, str]] = {}
    for spec in specs:
        key, sep, value = spec.partition("=")
        plugin, dot, name = key.partition(".")
        if not sep or not dot or not plugin or not name:
            raise InputError(f"--plugin-option {spec!r}: expected PLUGIN.KEY=VALUE, e.g. "
                             f"cpu_llvm.threads=2")
        options.setdefault(plugin, {})[name] = value
    return options


def load_inputs(specs: Sequence[str]) -> dict[str, np.ndarray]:
    """Read ``NAME=FILE.npy`` and ``FILE.npz`` specs; never unpickles."""
    arrays: dict[str, np.ndarray] = {}
    for spec in specs:
        name, sep, file = spec.partition("=")
        if not sep:
            name, file = "", spec
        path = Path(file)
        if not path.is_file():
            raise InputError(f"--input {spec!r}: no such file {file!r}")
        try:
            loaded = np.load(path, allow_pickle=False)
        except (ValueError, OSError, zipfile.BadZipFile) as exc:
            raise InputError(f"--input {spec!r}: {file} is not a .npy or .npz array file "
                             f"({exc})") from None
        if isinstance(loaded, np.ndarray):
            if not name:
                raise InputError(f"--input {spec!r}: a .npy file needs a name, NAME={file}")
            arrays[name] = loaded
        else:
            with loaded:
                if name:
                    raise InputError(f"--input {spec!r}: an .npz file gives inputs by its "
                                     f"keys; pass it without NAME=")
                arrays.update({key: loaded[key] for key in loaded.files})
    return arrays


def random_inputs(signature: Mapping[str, TensorType], seed: int = 0) -> dict[str, np.ndarray]:
    """Deterministic random arrays for a model signature (normal floats, small integers)."""
    rng = np.random.default_rng(seed)
    arrays = {}
    for name, ttype in signature.items():
        if np.issubdtype(ttype.dtype, np.floating):
            arrays[name] = rng.standard_normal(ttype.shape).astype(ttype.dtype)
        elif ttype.dtype == np.bool_:
            arrays[name] = rng.integers(0, 2, ttype.shape).astype(bool)
        else:
            info = np.iinfo(ttype.dtype)
            arrays[name] = rng.integers(max(info.min, -128), min(info.max, 127) + 1,
                                        ttype.shape).astype(ttype.dtype)
    return arrays


def describe_array(array: np.ndarray) -> str:
    text = f"{TensorType.of(array)}"
    if array.size and np.issubdtype(array.dtype, np.number):
        text += (f" min {array.min():.6g} max {array.max():.6g} "
                 f"mean {array.astype(np.float64).mean():.6g}")
    head = np.array2string(array.ravel()[:6], precision=5, separator=", ")
    return f"{text} first {head}"
