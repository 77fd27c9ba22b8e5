"""CompiledModel: what byoc.compile returns, runs, saves and loads.

A compiled model is a list of compiled partitions in topological order, each a plugin's
payload plus the runtime the plugin built from it. Running it passes arrays across the
partition boundaries and checks every runtime's outputs against the partition's signature.

When a runtime fails (raises, or breaks its output contract) in a model compiled in this
process, the partition is compiled for a host once, with a FallbackWarning, and the host
version is used from then on (the first host plugin, such as cpu_llvm, that takes all of the
partition, else the reference; :mod:`byoc.pipeline` decides); under ``strict``, and for a
loaded artifact (which has no graph to recompile from), the failure is an ExecutionError
naming the plugin and the partition.

A model with a dynamic tail (:mod:`byoc.core.dynamic_tail`) runs it after the partitions,
eagerly on the reference interpreter, on the values the partitions computed; the artifact
stores its nodes in the manifest and its constants as .npy entries, like everything else.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Collection, Mapping

import numpy as np

from byoc import artifact, vectors
from byoc.core import dtypes
from byoc.core.dynamic_tail import TAIL_HOST, DynamicTail
from byoc.core.interpreter.runner import check_signature
from byoc.core.ir import Graph, TensorType
from byoc.errors import (
    ArtifactError,
    ByocError,
    ExecutionError,
    PluginError,
    PluginOptionError,
)
from byoc.layouts import GRAPH_LAYOUT, LayoutEnv, LayoutPlan, check_layout, plan_conversions
from byoc.plugins.api import (
    DeviceTrace,
    Partition,
    PartitionSignature,
    Payload,
    Runtime,
    runtime_counter_help,
    runtime_counters,
    runtime_device_trace,
)
from byoc.plugins.manager import PluginManager, default_manager
from byoc.plugins.options import (
    check_plugin_options,
    stage_options,
    warn_compile_stage,
    warn_unused,
)
from byoc.version import __version__

if TYPE_CHECKING:
    from byoc.partition.partitioner import PartitionPlan


class FallbackWarning(UserWarning):
    """Work went back to the host because a plugin failed: it could not compile a partition,
    a pattern check failed, or a runtime failed while running."""


@dataclass
class CompiledPartition:
    """One partition compiled by its plugin."""

    signature: PartitionSignature
    plugin: str
    plugin_version: str
    payload: Payload
    runtime: Runtime
    ops: dict[str, int]
    nodes: list[str] | None = None
    """The names of the ONNX nodes the partition runs; None when unknown (an artifact saved
    before byoc stored them)."""
    estimate: PartitionEstimate | None = None
    """What placement estimated for the partition at compile time; None when unknown."""


@dataclass(frozen=True)
class PartitionEstimate:
    """A partition's estimate as compiled: ``seconds`` (on its device, moving its inputs in
    and outputs out included) and the device's ``cycles`` where its plugin counts them."""

    seconds: float
    cycles: int | None = None


@dataclass
class PartitionProfile:
    """One partition's share of a profiled run: its host ``seconds`` (wall time of the
    runtime's run), starting ``start`` seconds after the run began; the runtime's
    ``counters`` (of its runs so far) with what each counts (``counter_help``); the ONNX
    ``nodes`` it runs (None when unknown); ``device``, the runtime's trace of this run
    where it gives one; and the compile-time ``estimate`` where known."""

    partition: str
    plugin: str
    seconds: float
    counters: dict[str, int | float]
    nodes: list[str] | None = None
    start: float = 0.0
    counter_help: dict[str, str] = field(default_factory=dict)
    device: DeviceTrace | None = None
    estimate: PartitionEstimate | None = None

    @property
    def cycles(self) -> int | None:
        """The device's clock cycles in this run, where it counts them."""
        return self.device.cycles if self.device is not None else None


@dataclass
class ModelSignature:
    """A compiled model's name, its inputs, and its ``outputs``: what its partitions hand
    out, the model's static outputs then the values the dynamic tail reads from them.
    ``constant_outputs`` are the graph outputs no partition produces because they are
    constants."""

    name: str
    inputs: dict[str, TensorType]
    outputs: dict[str, TensorType]
    constant_outputs: dict[str, np.ndarray] = field(default_factory=dict)

    @classmethod
    def of(cls, graph: Graph) -> "ModelSignature":
        return cls(graph.name, {n: graph.types[n] for n in graph.inputs},
                   {n: graph.types[n] for n in graph.outputs},
                   {n: graph.constants[n] for n in graph.outputs if n in graph.constants})


@dataclass
class CompileSource:
    """The optimized graph and its partition plan, for a model compiled in this process, and
    ``compile_partition``, which compiles another partition of that graph with the same
    plugins and options (``byoc verify`` compiles pieces of a failing partition with it)."""

    graph: Graph
    plan: PartitionPlan
    compile_partition: Callable[[Partition], CompiledPartition] | None = None


@dataclass
class HostFallback:
    """Whether and how a partition whose runtime fails moves to a host plugin:
    ``compile_for_host(partition_name)`` compiles it on one (a host plugin such as cpu_llvm,
    or the reference ``host``), unless ``strict``. ``fallbacks`` lists every such move,
    compile-time ones included."""

    host: str | None = None
    compile_for_host: Callable[[str], CompiledPartition] | None = None
    strict: bool = False
    fallbacks: list[str] = field(default_factory=list)


class CompiledModel:
    """A model compiled by byoc. ``run`` takes and returns dicts of numpy arrays by name.

    ``graph`` and ``plan`` (the optimized graph and its partition plan, from ``source``) are
    there when the model was compiled in this process; a loaded artifact has only what it
    needs to run. ``fallback`` says whether a partition whose runtime fails moves to the host
    (see the module docstring); ``fallbacks`` lists every such move, compile-time ones
    included.

    ``outputs`` are the model's outputs in the model's order, each with its static type, or
    None for one the dynamic ``tail`` computes (its shape is decided by each run).

    ``vectors`` are the reference vectors saved with the model (:mod:`byoc.vectors`), or None.
    """

    def __init__(self, signature: ModelSignature, parts: list[CompiledPartition],
                 tail: DynamicTail | None = None, *, source: CompileSource | None = None,
                 fallback: HostFallback | None = None) -> None:
        fallback = fallback or HostFallback()
        self.graph = source.graph if source is not None else None
        self.plan = source.plan if source is not None else None
        self.compile_partition = source.compile_partition if source is not None else None
        self.parts = parts
        self.fallbacks = fallback.fallbacks
        self.strict = fallback.strict
        self.host = fallback.host
        self._host_compiler = fallback.compile_for_host
        self.name = signature.name
        self.inputs: dict[str, TensorType] = dict(signature.inputs)
        self._static_outputs: dict[str, TensorType] = dict(signature.outputs)
        self.tail = tail
        self.outputs: dict[str, TensorType | None] = dict(self._static_outputs)
        if tail is not None:
            self.outputs = {name: None if name in tail.outputs else self._static_outputs[name]
                            for name in tail.model_outputs}
        self._constant_outputs = dict(signature.constant_outputs)
        self.vectors: list[vectors.ReferenceVector] | None = None
        if source is not None:
            names = {p.name: [node.name for node in p.nodes] for p in source.plan.partitions}
            placement = source.plan.placement
            priced = {p.name: PartitionEstimate(p.total_seconds, p.cycles)
                      for p in (placement.partitions if placement is not None else [])}
            for part in parts:
                if part.nodes is None:
                    part.nodes = names.get(part.signature.name)
                if part.estimate is None:
                    part.estimate = priced.get(part.signature.name)

    def run(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        return self._run(inputs, None)

    def profile(self, inputs: Mapping[str, np.ndarray]
                ) -> tuple[dict[str, np.ndarray], list[PartitionProfile]]:
        """Run once, timing each partition and reading its runtime's counters, their
        explanations and its device trace of the run."""
        profiles: list[PartitionProfile] = []
        return self._run(inputs, profiles), profiles

    def _run(self, inputs: Mapping[str, np.ndarray],
             profiles: list[PartitionProfile] | None) -> dict[str, np.ndarray]:
        began = time.perf_counter()
        env = LayoutEnv()
        for name, array in [*self._constant_outputs.items(),
                            *check_signature(self.inputs, inputs).items()]:
            env.put(name, array)
        for index in range(len(self.parts)):
            part = self.parts[index]
            start = time.perf_counter()
            try:
                outputs = run_partition(part, env)
            except PluginOptionError:
                raise   # the user's value to fix, not the plugin's failure
            except ByocError as exc:
                part = self._move_to_host(index, exc)
                start = time.perf_counter()
                outputs = run_partition(part, env)
            seconds = time.perf_counter() - start
            layouts = part.signature.layouts
            for name, array in outputs.items():
                env.put(name, array, layouts.get(name, GRAPH_LAYOUT))
            if profiles is not None:
                profiles.append(_profile_of(part, seconds, start - began))
        tail_outputs = self._run_tail(env, profiles, began) if self.tail is not None else {}
        return {name: tail_outputs[name] if name in tail_outputs else env.get(name)
                for name in self.outputs}

    def _run_tail(self, env: LayoutEnv, profiles: list[PartitionProfile] | None,
                  began: float) -> dict[str, np.ndarray]:
        start = time.perf_counter()
        outputs = self.tail.run({name: env.get(name) for name in self.tail.inputs})
        if profiles is not None:
            profiles.append(PartitionProfile(
                "dynamic_tail", TAIL_HOST, time.perf_counter() - start,
                {"nodes": len(self.tail.nodes)}, [node.name for node in self.tail.nodes],
                start - began, {"nodes": "nodes the reference interpreter ran, nodes"}))
        return outputs

    def _move_to_host(self, index: int, failure: ByocError) -> CompiledPartition:
        """Replace partition ``index``, whose runtime just failed, by its host version;
        re-raise ``failure`` when that is not allowed or not possible."""
        part = self.parts[index]
        if self.strict or self._host_compiler is None or part.plugin == self.host:
            raise failure
        host_part = self._host_compiler(part.signature.name)
        message = (f"plugin {part.plugin!r} failed running partition {part.signature.name!r}; "
                   f"it runs on the host ({host_part.plugin}) from now on. The error: "
                   f"{failure}")
        warnings.warn(message, FallbackWarning, stacklevel=4)
        self.fallbacks.append(message)
        host_part.nodes = part.nodes
        self.parts[index] = host_part
        return host_part

    def layout_plan(self) -> LayoutPlan:
        """Where runs convert boundary values between layouts (and where no conversion is
        needed because producer and consumer share a plugin layout)."""
        return plan_conversions([part.signature for part in self.parts],
                                list(self._static_outputs))

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
                **({"nodes": part.nodes} if part.nodes is not None else {}),
                **({"estimate": {"seconds": part.estimate.seconds,
                                 "cycles": part.estimate.cycles}}
                   if part.estimate is not None else {}),
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
            "outputs": _signature(self._static_outputs),
            "constant_outputs": store("weights/outputs", self._constant_outputs),
            "plugins": {part.plugin: part.plugin_version for part in self.parts},
            "partitions": partitions,
        }
        if self.tail is not None:
            tail_arrays: list[np.ndarray] = []

            def store_tail_array(array: np.ndarray) -> str:
                tail_arrays.append(array)
                return str(len(tail_arrays) - 1)

            manifest["dynamic_tail"] = self.tail.to_dict(store_tail_array)
            manifest["dynamic_tail_arrays"] = store(
                "weights/dynamic_tail", {str(i): a for i, a in enumerate(tail_arrays)})
        if self.vectors:
            manifest["vectors"] = vectors.to_manifest(self.vectors, store)
        artifact.write(path, manifest, entries)


def load(path: str | Path, manager: PluginManager | None = None,
         plugin_options: Mapping[str, Mapping[str, Any]] | None = None) -> CompiledModel:
    """Load a model saved by :meth:`CompiledModel.save`.

    Every check comes before any plugin code sees a payload: the archive and its checksums
    (:func:`byoc.artifact.read`), the manifest's structure and types, and that each plugin a
    partition needs is installed at a compatible version. Only then are runtimes created.
    ``plugin_options`` gives plugins their run-time options, by plugin name, checked as
    :mod:`byoc.plugins.options` says; a compile-stage option, or an option for a plugin that
    runs no partition of the artifact, is a PluginOptionWarning: it does nothing.
    """
    manager = manager or default_manager()
    plugin_options = check_plugin_options(manager, plugin_options or {})
    manifest, entries = artifact.read(path)
    try:
        layout = _parse_manifest(_ManifestReader(path, entries), manifest)
    except ArtifactError:
        raise
    except ByocError as exc:
        raise ArtifactError(f"{path}: {exc}; compile the model again") from None
    _check_plugins(path, {spec.plugin: spec.plugin_version for spec in layout.partitions},
                   manager)
    warn_compile_stage(manager, plugin_options, str(path), stacklevel=2)
    warn_unused(plugin_options, {spec.plugin for spec in layout.partitions}, stacklevel=2)
    parts = []
    for spec in layout.partitions:
        where = f"plugin {spec.plugin!r} (partition {spec.signature.name!r})"
        options = stage_options(manager.get(spec.plugin), plugin_options.get(spec.plugin, {}),
                                "run")
        try:
            runtime = manager.call(spec.plugin, "byoc_runtime_create", payload=spec.payload,
                                   partition=spec.signature, options=options)
        except ByocError as exc:
            raise ArtifactError(f"{path}: {where} could not create its runtime: {exc}") from None
        if runtime is None or not callable(getattr(runtime, "run", None)):
            raise ArtifactError(f"{path}: {where} gave no runtime with a run() method; report "
                                f"it to the plugin's authors")
        parts.append(CompiledPartition(spec.signature, spec.plugin, spec.plugin_version,
                                       spec.payload, runtime, spec.ops, spec.nodes,
                                       spec.estimate))
    model = CompiledModel(layout.signature, parts, layout.tail)
    model.vectors = layout.vectors
    return model


@dataclass
class _PartitionSpec:
    """One partition as the manifest describes it, checked but not yet given to its plugin."""

    signature: PartitionSignature
    plugin: str
    plugin_version: str
    payload: Payload
    ops: dict[str, int]
    nodes: list[str] | None
    estimate: PartitionEstimate | None


def _parse_estimate(read: _ManifestReader, spec: Mapping, where: str) -> PartitionEstimate:
    """A partition's optional compile-time estimate (byoc 0.x since issue 20; older byoc
    ignores it)."""
    seconds = read.get(spec, "seconds", (float, int), where)
    cycles = read.get(spec, "cycles", (int, type(None)), where)
    if seconds < 0 or (cycles is not None and cycles < 0):
        raise read.fail(where, "must hold seconds and cycles >= 0")
    return PartitionEstimate(float(seconds), cycles)


@dataclass
class _ModelSpec:
    signature: ModelSignature
    partitions: list[_PartitionSpec]
    tail: DynamicTail | None
    vectors: list[vectors.ReferenceVector] | None


class _ManifestReader:
    """Typed access to manifest fields; every refusal names the field (``partitions[0].ops``)
    and says what to do."""

    def __init__(self, path: str | Path, entries: dict[str, bytes]) -> None:
        self.path, self.entries = path, entries

    def fail(self, where: str, problem: str) -> ArtifactError:
        return ArtifactError(f"{self.path}: manifest field {where!r} {problem}; the artifact "
                             f"is damaged or was edited, compile the model again")

    def get(self, mapping: Mapping, key: str, kind: type | tuple[type, ...], where: str) -> Any:
        field = f"{where}.{key}" if where else key
        if key not in mapping:
            raise self.fail(field, "is missing")
        return self.check(mapping[key], kind, field)

    def check(self, value: Any, kind: type | tuple[type, ...], where: str) -> Any:
        if not isinstance(value, kind) or isinstance(value, bool) and kind is not bool:
            names = kind.__name__ if isinstance(kind, type) else "/".join(k.__name__ for k in kind)
            raise self.fail(where, f"must be a {names}, not {type(value).__name__}")
        return value

    def string_map(self, value: Mapping, where: str, values: type) -> dict[str, Any]:
        for key, item in value.items():
            self.check(key, str, f"{where} key")
            self.check(item, values, f"{where}.{key}")
        return dict(value)

    def strings(self, value: list, where: str) -> list[str]:
        return [self.check(item, str, f"{where}[{i}]") for i, item in enumerate(value)]

    def types(self, value: list, where: str) -> tuple[dict[str, TensorType], dict[str, str]]:
        types, layouts = {}, {}
        for i, entry in enumerate(value):
            at = f"{where}[{i}]"
            self.check(entry, dict, at)
            name = self.get(entry, "name", str, at)
            shape = self.get(entry, "shape", list, at)
            for j, dim in enumerate(shape):
                if not isinstance(dim, int) or isinstance(dim, bool) or dim < 0:
                    raise self.fail(f"{at}.shape[{j}]", f"must be a non-negative int, not "
                                                        f"{dim!r}")
            try:
                dtype = dtypes.from_name(self.get(entry, "dtype", str, at))
            except ValueError as exc:
                raise self.fail(f"{at}.dtype", f"is not usable ({exc})") from None
            types[name] = TensorType(dtype, tuple(shape))
            if "layout" in entry:
                layouts[name] = check_layout(self.get(entry, "layout", str, at),
                                             f"(artifact value {name})")
        return types, layouts

    def entry(self, name: str, where: str) -> bytes:
        if name not in self.entries:
            raise self.fail(where, f"names {name!r}, which the artifact does not contain")
        return self.entries[name]

    def arrays(self, files: Mapping, where: str) -> dict[str, np.ndarray]:
        files = self.string_map(files, where, str)
        return {key: artifact.array_from_bytes(self.entry(file, f"{where}.{key}"), file)
                for key, file in files.items()}


def _parse_manifest(read: _ManifestReader, manifest: Mapping) -> _ModelSpec:
    inputs, _ = read.types(read.get(manifest, "inputs", list, ""), "inputs")
    outputs, _ = read.types(read.get(manifest, "outputs", list, ""), "outputs")
    plugins = read.string_map(read.get(manifest, "plugins", dict, ""), "plugins", str)
    constants = read.arrays(read.get(manifest, "constant_outputs", dict, ""),
                            "constant_outputs")
    partitions = []
    for i, spec in enumerate(read.get(manifest, "partitions", list, "")):
        at = f"partitions[{i}]"
        read.check(spec, dict, at)
        plugin = read.get(spec, "plugin", str, at)
        version = read.get(spec, "plugin_version", str, at)
        if plugins.get(plugin) != version:
            raise read.fail(f"{at}.plugin", f"names {plugin!r} {version}, which the manifest's "
                                            f"plugins list does not")
        part_inputs, in_layouts = read.types(read.get(spec, "inputs", list, at), f"{at}.inputs")
        part_outputs, out_layouts = read.types(read.get(spec, "outputs", list, at),
                                               f"{at}.outputs")
        signature = PartitionSignature(read.get(spec, "name", str, at), part_inputs,
                                       part_outputs, {**in_layouts, **out_layouts})
        payload = Payload(read.entry(read.get(spec, "payload", str, at), f"{at}.payload"),
                          read.get(spec, "metadata", dict, at),
                          read.arrays(read.get(spec, "arrays", dict, at), f"{at}.arrays"))
        ops = read.string_map(read.get(spec, "ops", dict, at), f"{at}.ops", int)
        # Artifacts of byoc 0.x before issue 20 keep no node names: they load without.
        nodes = read.strings(read.get(spec, "nodes", list, at), f"{at}.nodes") \
            if "nodes" in spec else None
        estimate = _parse_estimate(read, read.get(spec, "estimate", dict, at),
                                   f"{at}.estimate") if "estimate" in spec else None
        partitions.append(_PartitionSpec(signature, plugin, version, payload, ops, nodes,
                                         estimate))
    model = read.get(manifest, "model", str, "")
    tail = _parse_tail(read, manifest, inputs, outputs) if "dynamic_tail" in manifest else None
    # Optional since issue 21; older byoc ignores it.
    stored = vectors.from_manifest(
        read, read.get(manifest, "vectors", list, ""), inputs,
        tail.model_outputs if tail is not None else list(outputs),
        [spec.signature for spec in partitions],
        {**outputs, **{name: TensorType.of(array) for name, array in constants.items()}},
    ) if "vectors" in manifest else None
    return _ModelSpec(ModelSignature(model, inputs, outputs, constants), partitions, tail,
                      stored)


def _parse_tail(read: _ManifestReader, manifest: Mapping, inputs: Mapping[str, TensorType],
                outputs: Mapping[str, TensorType]) -> DynamicTail:
    """The dynamic tail, checked (DynamicTail.check) and fed only by the model's inputs and
    the static outputs the manifest declares."""
    arrays = read.arrays(read.get(manifest, "dynamic_tail_arrays", dict, ""),
                         "dynamic_tail_arrays")

    def load_array(key: str) -> np.ndarray:
        if key not in arrays:
            raise ArtifactError(f"the artifact's dynamic tail names array {key!r}, which "
                                f"dynamic_tail_arrays does not list")
        return arrays[key]

    try:
        tail = DynamicTail.from_dict(read.get(manifest, "dynamic_tail", dict, ""), load_array)
    except ArtifactError as exc:
        raise ArtifactError(f"{read.path}: {exc}; the artifact is damaged or was edited, "
                            f"compile the model again") from None
    unfed = [name for name in tail.inputs if name not in inputs and name not in outputs]
    if unfed:
        raise read.fail("dynamic_tail", f"reads {', '.join(map(repr, unfed))}, which are "
                                        f"neither inputs nor outputs of the model's partitions")
    missing = [name for name in tail.model_outputs
               if name not in outputs and name not in tail.outputs]
    if missing:
        raise read.fail("dynamic_tail.model_outputs", f"lists {', '.join(map(repr, missing))}, "
                                                       f"which nothing computes")
    return tail


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


def _profile_of(part: CompiledPartition, seconds: float, start: float) -> PartitionProfile:
    """A partition's profile, read from its runtime after the run; a runtime that fails to
    report is a PluginError naming the plugin and the partition."""
    try:
        return PartitionProfile(part.signature.name, part.plugin, seconds,
                                runtime_counters(part.runtime), part.nodes, start,
                                runtime_counter_help(part.runtime),
                                runtime_device_trace(part.runtime), part.estimate)
    except ByocError as exc:
        raise PluginError(f"plugin {part.plugin!r}, partition {part.signature.name!r}: "
                          f"{exc}") from None


def run_partition(part: CompiledPartition, env: LayoutEnv,
                  extra: Collection[str] = ()) -> dict[str, np.ndarray]:
    """Run one partition's runtime on its inputs from ``env``. A runtime's own ByocError keeps
    its class; any other exception, or a broken output contract, is an ExecutionError. Both
    name the plugin and the partition. The runtime may also return the values named in
    ``extra`` (those of a debug request, :attr:`byoc.plugins.api.Partition.debug_outputs`),
    which come back unchecked besides the outputs."""
    layouts = part.signature.layouts
    feeds = {name: env.get(name, layouts.get(name, GRAPH_LAYOUT))
             for name in part.signature.inputs}
    where = f"plugin {part.plugin!r}, partition {part.signature.name!r}"
    try:
        results = part.runtime.run(feeds)
    except ByocError as exc:
        if where in str(exc):
            raise
        try:  # keep the class (a CosimError stays one), add which plugin and partition failed
            named = type(exc)(f"{where}: {exc}")
        except Exception:
            raise exc from None
        raise named from exc
    except Exception as exc:
        raise ExecutionError(f"plugin {part.plugin!r} failed running partition "
                             f"{part.signature.name!r}: {type(exc).__name__}: {exc} (a bug "
                             f"in the plugin, or its device failed: report it to the plugin's "
                             f"authors)") from exc
    checked = _checked_outputs(part, results, extra)
    checked.update((name, np.asarray(results[name])) for name in extra if name in results)
    return checked


def _checked_outputs(part: CompiledPartition, results: Any,
                     allowed: Collection[str] = ()) -> dict[str, np.ndarray]:
    where = f"plugin {part.plugin!r}, partition {part.signature.name!r}"
    if not isinstance(results, Mapping):
        raise ExecutionError(f"{where}: the runtime returned {type(results).__name__}, "
                             f"expected a dict of arrays by output name")
    extra = sorted(str(name) for name in results
                   if name not in part.signature.outputs and name not in allowed)
    if extra:
        raise ExecutionError(f"{where}: the runtime returned values the partition does not "
                             f"define: {', '.join(extra)}")
    checked = {}
    for name, expected in part.signature.outputs.items():
        if name not in results:
            raise ExecutionError(f"{where}: the runtime did not return output {name!r}")
        try:
            array = np.asarray(results[name])
        except Exception as exc:
            raise ExecutionError(f"{where}: output {name!r} is not an array "
                                 f"({type(exc).__name__}: {exc})") from None
        if array.dtype != expected.dtype or array.shape != expected.shape:
            raise ExecutionError(f"{where}: output {name!r} is {TensorType.of(array)}, the "
                                 f"partition's signature says {expected}")
        checked[name] = array
    return checked


def _signature(values: Mapping[str, TensorType],
               layouts: Mapping[str, str] | None = None) -> list[dict]:
    entries = []
    for name, ttype in values.items():
        entry = {"name": name, "dtype": ttype.dtype.name, "shape": list(ttype.shape)}
        if layouts and name in layouts:
            entry["layout"] = layouts[name]
        entries.append(entry)
    return entries
