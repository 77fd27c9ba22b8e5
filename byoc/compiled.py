"""CompiledModel: what byoc.compile returns, runs, saves and loads."""

from __future__ import annotations

from pathlib import Path
from typing import Mapping

import numpy as np

from byoc import __version__, artifact
from byoc.core.interpreter import Interpreter
from byoc.core.ir import Graph, TensorType
from byoc.core.serialize import graph_from_dict, graph_to_dict
from byoc.core.verify import verify
from byoc.errors import ArtifactError, ByocError


class CompiledModel:
    """A model compiled by byoc. ``run`` takes and returns dicts of numpy arrays by name."""

    def __init__(self, graph: Graph) -> None:
        self.graph = graph
        self._interpreter = Interpreter(graph)

    @property
    def inputs(self) -> dict[str, TensorType]:
        return {n: self.graph.types[n] for n in self.graph.inputs}

    @property
    def outputs(self) -> dict[str, TensorType]:
        return {n: self.graph.types[n] for n in self.graph.outputs}

    def run(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        return self._interpreter.run(inputs)

    def save(self, path: str | Path) -> None:
        entries: dict[str, bytes] = {}

        def store(array: np.ndarray) -> str:
            name = f"weights/{len(entries):05d}.npy"
            entries[name] = artifact.array_bytes(array)
            return name

        graph = graph_to_dict(self.graph, store)
        manifest = {
            "byoc_version": __version__,
            "model": self.graph.name,
            "inputs": _signature(self.inputs),
            "outputs": _signature(self.outputs),
            "graph": graph,
        }
        artifact.write(path, manifest, entries)


def load(path: str | Path) -> CompiledModel:
    """Load a model saved by :meth:`CompiledModel.save`, checking it first."""
    manifest, entries = artifact.read(path)

    def load_array(name: str) -> np.ndarray:
        if name not in entries:
            raise ArtifactError(f"{path}: the manifest refers to {name!r}, which the artifact "
                                f"does not contain")
        return artifact.array_from_bytes(entries[name], name)

    if "graph" not in manifest:
        raise ArtifactError(f"{path}: the manifest has no graph")
    graph = graph_from_dict(manifest["graph"], load_array)
    try:
        verify(graph)
        return CompiledModel(graph)
    except ByocError as exc:
        raise ArtifactError(f"{path}: the artifact's graph is invalid: {exc}") from None


def _signature(values: dict[str, TensorType]) -> list[dict]:
    return [{"name": n, "dtype": t.dtype.name, "shape": list(t.shape)} for n, t in values.items()]
