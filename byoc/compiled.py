"""CompiledModel: what byoc.compile returns, runs, saves and loads.

A compiled model is a list of compiled partitions in topological order, each a plugin's
payload plus the runtime the plugin built from it. Running it passes arrays across the
partition boundaries and checks every runtime's outputs against the partition's signature.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

import numpy as np

from byoc import __version__, artifact
from byoc.core import dtypes
from byoc.core.interpreter.runner import check_signature
from byoc.core.ir import Graph, TensorType
from byoc.errors import ArtifactError, ByocError, ExecutionError
from byoc.layouts import GRAPH_LAYOUT, LayoutEnv, LayoutPlan, check_layout, plan_conversions
from byoc.plugins.api import PartitionSignature, Payload, Runtime, runtime_counters
from byoc.plugins.manager import PluginManager, default_manager

if TYPE_CHECKING:
    from byoc.partition.partitioner import PartitionPlan


@dataclass
class CompiledPartition:
    """One partition compiled by its plugin."""

    signature: PartitionSignature
    plugin: str
    plugin_version: str
    payload: Payload
    runtime: Runtime
    ops: dict[str, int]


@dataclass
class PartitionProfile:
    """One partition's share of a profiled run."""

    partition: str
    plugin: str
    seconds: float
    counters: dict[str, int | float]


class CompiledModel:
    """A model compiled by byoc. ``run`` takes and returns dicts of numpy arrays by name.

    ``graph`` and ``plan`` (the optimized graph and its partition plan) are there when the
    model was compiled in this process; a loaded artifact has only what it needs to run.
    """

    def __init__(self, graph: Graph | None, parts: list[CompiledPartition],
                 plan: PartitionPlan | None = None, fallbacks: list[str] | None = None,
                 inputs: dict[str, TensorType] | None = None,
                 outputs: dict[str, TensorType] | None = None,
                 constants: dict[str, np.ndarray] | None = None, name: str = "") -> None:
        self.graph = graph
        self.parts = parts
        self.plan = plan
        self.fallbacks = fallbacks or []
        if graph is not None:
            inputs = {n: graph.types[n] for n in graph.inputs}
            outputs = {n: graph.types[n] for n in graph.outputs}
            constants = {n: graph.constants[n] for n in graph.outputs if n in graph.constants}
            name = graph.name
        self.inputs: dict[str, TensorType] = dict(inputs or {})
        self.outputs: dict[str, TensorType] = dict(outputs or {})
        self.name = name
        # Graph outputs that are constants: no partition produces them.
        self._constant_outputs = dict(constants or {})

    def run(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        return self._run(inputs, None)

    def profile(self, inputs: Mapping[str, np.ndarray]
                ) -> tuple[dict[str, np.ndarray], list[PartitionProfile]]:
        """Run once, timing each partition and reading its runtime's counters."""
        profiles: list[PartitionProfile] = []
        return self._run(inputs, profiles), profiles

    def _run(self, inputs: Mapping[str, np.ndarray],
             profiles: list[PartitionProfile] | None) -> dict[str, np.ndarray]:
        env = LayoutEnv()
        for name, array in [*self._constant_outputs.items(),
                            *check_signature(self.inputs, inputs).items()]:
            env.put(name, array)
        for part in self.parts:
            layouts = part.signature.layouts
            feeds = {name: env.get(name, layouts.get(name, GRAPH_LAYOUT))
                     for name in part.signature.inputs}
            start = time.perf_counter()
            try:
                results = part.runtime.run(feeds)
            except ByocError:
                raise
            except Exception as exc:
                raise ExecutionError(f"plugin {part.plugin!r} failed running partition "
                                     f"{part.signature.name!r}: {type(exc).__name__}: "
                                     f"{exc}") from exc
            seconds = time.perf_counter() - start
            for name, array in _checked_outputs(part, results).items():
                env.put(name, array, layouts.get(name, GRAPH_LAYOUT))
            if profiles is not None:
                profiles.append(PartitionProfile(part.signature.name, part.plugin, seconds,
                                                 runtime_counters(part.runtime)))
        return {name: env.get(name) for name in self.outputs}

    def layout_plan(self) -> LayoutPlan:
        """Where runs convert boundary values between layouts (and where no conversion is
        needed because producer and consumer share a plugin layout)."""
        return plan_conversions([part.signature for part in self.parts], list(self.outputs))

    # -- artifacts ---------------------------------------------------------------------------

    def save(self, path: str | Path) -> None:
        entries: dict[str, bytes] = {}

        def store(prefix: str, arrays: Mapping[str, np.ndarray]) -> dict[str, str]:
            files = {}
            for i, (key, array) in enumerate(arrays.items()):
                files[key] = f"{prefix}/{i:05d}.npy"
                entries[files[key]] = artifact.array_bytes(array)
            return files

        partitions = []
        for part in self.parts:
            payload_file = f"payloads/{part.signature.name}.bin"
            entries[payload_file] = part.payload.data
            partitions.append({
                "name": part.signature.name,
                "plugin": part.plugin,
                "plugin_version": part.plugin_version,
                "ops": part.ops,
                "inputs": _signature(part.signature.inputs, part.signature.layouts),
                "outputs": _signature(part.signature.outputs, part.signature.layouts),
                "payload": payload_file,
                "metadata": part.payload.metadata,
                "arrays": store(f"weights/{part.signature.name}", part.payload.arrays),
            })
        manifest = {
            "byoc_version": __version__,
            "model": self.name,
            "inputs": _signature(self.inputs),
            "outputs": _signature(self.outputs),
            "constant_outputs": store("weights/outputs", self._constant_outputs),
            "plugins": {part.plugin: part.plugin_version for part in self.parts},
            "partitions": partitions,
        }
        artifact.write(path, manifest, entries)


def load(path: str | Path, manager: PluginManager | None = None,
         plugin_options: Mapping[str, Mapping[str, Any]] | None = None) -> CompiledModel:
    """Load a model saved by :meth:`CompiledModel.save`.

    Checks the format version and every checksum, and that each plugin the artifact needs is
    installed at a compatible version, before any plugin code sees the payloads.
    ``plugin_options`` gives plugins their run-time options, by plugin name.
    """
    plugin_options = plugin_options or {}
    manager = manager or default_manager()
    manifest, entries = artifact.read(path)
    try:
        _check_plugins(path, manifest["plugins"], manager)
        parts = []
        for spec in manifest["partitions"]:
            arrays = {key: _array(path, entries, file) for key, file in spec["arrays"].items()}
            payload = Payload(_entry(path, entries, spec["payload"]), spec["metadata"], arrays)
            signature = PartitionSignature(str(spec["name"]), _types(spec["inputs"]),
                                           _types(spec["outputs"]),
                                           _layouts(spec["inputs"] + spec["outputs"]))
            runtime = manager.call(spec["plugin"], "byoc_runtime_create", payload=payload,
                                   partition=signature,
                                   options=dict(plugin_options.get(spec["plugin"], {})))
            parts.append(CompiledPartition(signature, spec["plugin"], spec["plugin_version"],
                                           payload, runtime, dict(spec["ops"])))
        constants = {key: _array(path, entries, file)
                     for key, file in manifest["constant_outputs"].items()}
        return CompiledModel(None, parts, inputs=_types(manifest["inputs"]),
                             outputs=_types(manifest["outputs"]), constants=constants,
                             name=str(manifest["model"]))
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise ArtifactError(f"{path}: the manifest is malformed ({exc!r})") from None
    except ByocError as exc:
        if isinstance(exc, ArtifactError):
            raise
        raise ArtifactError(f"{path}: {exc}") from None


def compatible(recorded: str, installed: str) -> bool:
    """Whether a plugin at version ``installed`` can run payloads made by ``recorded``:
    the same major version (for 0.x, the same minor), and not older."""
    def parts(version: str) -> tuple[int, ...]:
        numbers = []
        for piece in version.split("+")[0].split("."):
            digits = "".join(ch for ch in piece if ch.isdigit())
            numbers.append(int(digits) if digits else 0)
        return tuple(numbers + [0, 0, 0])[:3]

    old, new = parts(recorded), parts(installed)
    same_line = old[:2] == new[:2] if old[0] == 0 else old[0] == new[0]
    return same_line and new >= old


def _check_plugins(path, needed: Mapping[str, Any], manager: PluginManager) -> None:
    installed = {p.name: p for p in manager.plugins()}
    for name, version in needed.items():
        if name not in installed:
            raise ArtifactError(f"{path}: the artifact needs plugin {name!r} (version "
                                f"{version}), which is not installed; install it and load again")
        have = installed[name].info.version
        if not compatible(str(version), have):
            raise ArtifactError(f"{path}: the artifact was compiled with plugin {name!r} "
                                f"{version}, but {have} is installed; install a compatible "
                                f"version or compile the model again")


def _checked_outputs(part: CompiledPartition, results: Any) -> dict[str, np.ndarray]:
    where = f"plugin {part.plugin!r}, partition {part.signature.name!r}"
    if not isinstance(results, Mapping):
        raise ExecutionError(f"{where}: the runtime returned {type(results).__name__}, "
                             f"expected a dict of arrays by output name")
    checked = {}
    for name, expected in part.signature.outputs.items():
        if name not in results:
            raise ExecutionError(f"{where}: the runtime did not return output {name!r}")
        array = np.asarray(results[name])
        if array.dtype != expected.dtype or array.shape != expected.shape:
            raise ExecutionError(f"{where}: output {name!r} is {TensorType.of(array)}, the "
                                 f"partition's signature says {expected}")
        checked[name] = array
    return checked


def _entry(path, entries: dict[str, bytes], name: str) -> bytes:
    if name not in entries:
        raise ArtifactError(f"{path}: the manifest refers to {name!r}, which the artifact "
                            f"does not contain")
    return entries[name]


def _array(path, entries: dict[str, bytes], name: str) -> np.ndarray:
    return artifact.array_from_bytes(_entry(path, entries, name), name)


def _signature(values: Mapping[str, TensorType],
               layouts: Mapping[str, str] | None = None) -> list[dict]:
    entries = []
    for name, ttype in values.items():
        entry = {"name": name, "dtype": ttype.dtype.name, "shape": list(ttype.shape)}
        if layouts and name in layouts:
            entry["layout"] = layouts[name]
        entries.append(entry)
    return entries


def _layouts(entries: list[dict]) -> dict[str, str]:
    layouts = {str(e["name"]): str(e["layout"]) for e in entries if "layout" in e}
    for name, layout in layouts.items():
        check_layout(layout, f"(artifact value {name})")
    return layouts


def _types(entries: list[dict]) -> dict[str, TensorType]:
    return {str(e["name"]): TensorType(dtypes.from_name(str(e["dtype"])),
                                       tuple(int(d) for d in e["shape"])) for e in entries}
