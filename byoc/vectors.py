"""Reference vectors: input sets and the reference interpreter's values for them, stored in
an artifact so that a compiled model can be checked where its ONNX file is not at hand (next
to a board or an FPGA).

``byoc verify`` runs every partition on the reference's values as its inputs and compares its
outputs with the reference's, so one vector holds, each in the graph's layout (NCHW) and the
graph's types:

- ``inputs``: the model's inputs, drawn by :func:`byoc.inputs.random_inputs` from ``seed``;
- ``values``: every partition boundary value (each input and output of each partition) as
  the reference computes it; a value the reference leaves out (one inside a quantized layer it
  evaluates as a whole) is not stored, and verify reports the partitions that need it;
- ``outputs``: the model's outputs, those of a dynamic tail (:mod:`byoc.core.dynamic_tail`)
  computed by the tail from the reference's values of its inputs.

In an artifact each vector is one optional manifest entry, ``vectors: [{seed, values: {name:
file}}]``, listing every array of the vector once (a model input is also a boundary value)
as a .npy entry under ``vectors/``. byoc versions that predate vectors ignore the entry, so
it needs no new format version. Loading checks every array against the type the model gives
its name (the partition's own layout for a boundary value a plugin holds in another one).
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterable, Mapping, Sequence

import numpy as np

from byoc.core.dynamic_tail import DynamicTail
from byoc.core.interpreter.runner import Interpreter
from byoc.core.ir import TensorType
from byoc.errors import InputError
from byoc.inputs import random_inputs
from byoc.layouts import GRAPH_LAYOUT, applies, permuted
from byoc.plugins.api import PartitionSignature

if TYPE_CHECKING:
    from byoc.compiled import CompiledModel, _ManifestReader

ENTRY_PREFIX = "vectors/"

StoreArrays = Callable[[str, Mapping[str, np.ndarray]], dict[str, str]]
"""``store(prefix, arrays)``: writes ``arrays`` as artifact entries under ``prefix`` and
returns the entry name of each, by array name."""


@dataclass
class ReferenceVector:
    """One input set and what the reference computes from it (see the module docstring)."""

    seed: int
    inputs: dict[str, np.ndarray]
    values: dict[str, np.ndarray]
    outputs: dict[str, np.ndarray]

    def arrays(self) -> dict[str, np.ndarray]:
        """Every array of the vector once, by value name."""
        return {**self.inputs, **self.values, **self.outputs}

    @property
    def nbytes(self) -> int:
        return sum(array.nbytes for array in self.arrays().values())


def check_request(count: object, seed: object) -> None:
    """InputError unless ``count`` vectors from ``seed`` can be drawn: both ints >= 0."""
    for what, value, hint in (
            ("the number of reference vectors (--with-vectors, with_vectors from Python)",
             count, "; 0 stores none"),
            ("the reference vectors' seed (--vectors-seed, vectors_seed from Python)", seed,
             "")):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise InputError(f"{what} must be a whole number >= 0, not {value!r}{hint}")


def make_vectors(model: CompiledModel, count: int, seed: int = 0) -> list[ReferenceVector]:
    """``count`` reference vectors for ``model``, compiled in this process (a loaded artifact
    keeps no graph to compute reference values from); vector ``i`` is drawn from seed
    ``seed + i``."""
    check_request(count, seed)
    if model.graph is None:
        raise InputError(f"model {model.name!r} was loaded from a .byoc artifact, which keeps "
                         f"no graph to compute reference values from; compile its ONNX model "
                         f"with vectors instead (byoc compile MODEL.onnx --with-vectors N)")
    interpreter = Interpreter(model.graph)
    boundary = boundary_values(part.signature for part in model.parts)
    vectors = []
    for index in range(count):
        inputs = random_inputs(model.inputs, seed + index)
        computed = interpreter.values(inputs)
        tail_outputs = _tail_outputs(model.tail, computed)
        vectors.append(ReferenceVector(
            seed + index, inputs,
            {name: computed[name] for name in boundary if name in computed},
            {name: tail_outputs[name] if name in tail_outputs else computed[name]
             for name in model.outputs}))
    return vectors


def boundary_values(signatures: Iterable[PartitionSignature]) -> list[str]:
    """Every input and output of the partitions, once each, in the partitions' order."""
    return list(dict.fromkeys(name for signature in signatures
                              for name in [*signature.inputs, *signature.outputs]))


def _tail_outputs(tail: DynamicTail | None,
                  computed: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    if tail is None:
        return {}
    return tail.run({name: computed[name] for name in tail.inputs})


def to_manifest(vectors: Sequence[ReferenceVector], store: StoreArrays) -> list[dict]:
    """The manifest entry for ``vectors``; their arrays go through ``store``."""
    return [{"seed": vector.seed, "values": store(f"{ENTRY_PREFIX}{index}", vector.arrays())}
            for index, vector in enumerate(vectors)]


def from_manifest(read: _ManifestReader, entry: list, inputs: Mapping[str, TensorType],
                  outputs: Sequence[str], signatures: Sequence[PartitionSignature],
                  known_types: Mapping[str, TensorType]) -> list[ReferenceVector]:
    """The vectors the manifest's ``vectors`` entry lists, each array checked: every model
    input and output present, no value the model does not have, and each array of the type
    the model gives it (``known_types``: the static outputs' and constants'; a partition's
    boundary value as each partition reading or writing it holds it, in its layout; a dynamic
    tail's outputs have no fixed type)."""
    expected: dict[str, list[tuple[TensorType, str, str]]] = {}
    for name, ttype in [*known_types.items(), *inputs.items()]:
        expected.setdefault(name, []).append((ttype, GRAPH_LAYOUT, "the model"))
    for signature in signatures:
        for name, ttype in [*signature.inputs.items(), *signature.outputs.items()]:
            expected.setdefault(name, []).append(
                (ttype, signature.layouts.get(name, GRAPH_LAYOUT),
                 f"partition {signature.name!r}"))
    boundary = boundary_values(signatures)
    vectors = []
    for index, vector in enumerate(entry):
        at = f"vectors[{index}]"
        read.check(vector, dict, at)
        seed = read.get(vector, "seed", int, at)
        if seed < 0:
            raise read.fail(f"{at}.seed", f"must be >= 0, not {seed}")
        arrays = read.arrays(read.get(vector, "values", dict, at), f"{at}.values")
        missing = [name for name in [*inputs, *outputs] if name not in arrays]
        if missing:
            raise read.fail(f"{at}.values", f"lacks the model's {', '.join(map(repr, missing))}")
        unknown = [name for name in arrays if name not in expected and name not in outputs]
        if unknown:
            raise read.fail(f"{at}.values", f"names {', '.join(map(repr, unknown))}, which "
                                            f"are no inputs, outputs or partition boundary "
                                            f"values of the model")
        for name, array in arrays.items():
            for ttype, layout, owner in expected.get(name, []):
                _check_type(read, f"{at}.values.{name}", array, ttype, layout, owner)
        vectors.append(ReferenceVector(
            seed, {name: arrays[name] for name in inputs},
            {name: arrays[name] for name in boundary if name in arrays},
            {name: arrays[name] for name in outputs}))
    return vectors


def _check_type(read: _ManifestReader, where: str, array: np.ndarray, expected: TensorType,
                layout: str, owner: str) -> None:
    held = TensorType.of(array)
    if applies(held, layout):
        held = permuted(held, layout)
    if held != expected:
        in_layout = f" in {layout}" if layout != GRAPH_LAYOUT else ""
        raise read.fail(where, f"holds a {TensorType.of(array)} array, but {owner} has the "
                               f"value as {expected}{in_layout}")


def stored_size(path: str | Path) -> int:
    """How many bytes the vectors take in the artifact at ``path`` (compressed)."""
    with zipfile.ZipFile(path) as archive:
        return sum(info.compress_size for info in archive.infolist()
                   if info.filename.startswith(ENTRY_PREFIX))
