"""The Python API: compile an ONNX model, load a compiled one."""

from __future__ import annotations

from typing import Any, Collection, Mapping, Sequence

import numpy as np

from byoc.compiled import CompiledModel, load
from byoc.core.importer import ModelSource, import_with_tail
from byoc.core.importer import import_model as _import
from byoc.core.ir import Graph
from byoc.core.passes import optimize
from byoc.core.verify import verify
from byoc.partition.placement import Placement
from byoc.pipeline import HOST_PLUGIN, CompileOptions, compile_graph, plan_graph
from byoc.plugins.manager import PluginManager
from byoc.vectors import check_request, make_vectors


def import_model(model: ModelSource,
                 input_shapes: Mapping[str, Sequence[int]] | None = None,
                 optimize_graph: bool = False) -> Graph:
    """Import an ONNX model (path, bytes or ModelProto) into a verified graph IR. The IR is
    static: a node whose output size depends on runtime values is refused here (``compile``
    runs it, and what depends on it, as the model's dynamic tail)."""
    graph = _import(model, input_shapes)
    verify(graph)
    if optimize_graph:
        optimize(graph)
    return graph


def compile(model: ModelSource | Graph, plugins: Sequence[str] = (),
            input_shapes: Mapping[str, Sequence[int]] | None = None,
            constant_inputs: Mapping[str, np.ndarray] | None = None,
            fed_inputs: Collection[str] = (),
            strict: bool = False, min_partition_size: int = 1,
            pins: Mapping[str, str] | None = None, host: str = HOST_PLUGIN,
            plugin_options: Mapping[str, Mapping[str, Any]] | None = None,
            default_plugins: Sequence[str] | None = None,
            manager: PluginManager | None = None, dynamic_tail: bool = True,
            placement: str = "cost", with_vectors: int = 0,
            vectors_seed: int = 0) -> CompiledModel:
    """Compile a model for the given plugins, in priority order. After them come the
    ``default_plugins`` (by default every installed plugin whose ``PluginInfo.role`` is
    ``"host"``, in alphabetical order, such as cpu_llvm, the LLVM host backend; ``()`` for
    none), and the reference host plugin takes whatever none of them takes.

    ``input_shapes`` binds symbolic input dims; ``constant_inputs`` freezes inputs to values;
    ``fed_inputs`` names the inputs that will be fed at run time, among them initializers
    the model lets users override (listed among its graph inputs, IR version 4 and later):
    those become inputs of the compiled model, the others stay constants;
    ``strict`` turns every fallback to the host into an error, also later when a plugin's
    runtime fails while running (without it, that partition moves to the host: see
    :class:`~byoc.compiled.CompiledModel`); ``min_partition_size`` sends smaller accelerator
    partitions to the host; ``pins`` maps node names or op types to the
    plugin that must run them; ``plugin_options`` gives plugins their options by plugin name
    (``{"cpu_llvm": {"threads": 2}}``): an unknown plugin or option is a PluginError naming
    the closest known one, values are converted to the types the plugin declares, and options
    for a plugin that runs no partition are a PluginOptionWarning (``byoc plugins`` lists
    each plugin's options; :mod:`byoc.plugins.options`). ``manager`` defaults to every
    installed plugin.

    ``placement``: ``"cost"`` (the default) chooses where each node runs to minimise the
    model's estimated time, transfers between devices included, never estimated slower than
    placing by priority or on the host plugins alone; ``"priority"`` gives each node to the
    first plugin given whose pattern takes it (:mod:`byoc.partition.placement`). The
    estimated totals are in ``compiled.plan.placement``.

    ``dynamic_tail``: a node whose output size depends on the values of runtime inputs
    (NonMaxSuppression, NonZero, TopK with a runtime K...), and every node depending on it,
    run eagerly on the reference interpreter after the compiled partitions, and their outputs
    have the shapes each run gives them (:mod:`byoc.core.dynamic_tail`); with False such a
    model is refused with a ShapeInferenceError naming the node and the inputs to make
    constant, for users who want static graphs only.

    ``with_vectors``: how many reference vectors (:mod:`byoc.vectors`) to compute and keep in
    ``compiled.vectors``, and so in its artifact, so that ``byoc verify`` can check the
    artifact where the ONNX model is not at hand; vector ``i`` draws its inputs from seed
    ``vectors_seed + i``.
    """
    check_request(with_vectors, vectors_seed)
    tail = None
    if isinstance(model, Graph):
        graph = model.copy()
    elif dynamic_tail:
        graph, tail = import_with_tail(model, input_shapes, constant_inputs, fed_inputs)
    else:
        graph = _import(model, input_shapes, constant_inputs, fed_inputs)
    verify(graph)
    options = CompileOptions(plugins=tuple(plugins), strict=strict,
                             min_partition_size=min_partition_size, pins=dict(pins or {}),
                             host=host, plugin_options=dict(plugin_options or {}),
                             default_plugins=default_plugins, placement=placement)
    compiled = compile_graph(graph, options, manager, tail)
    if with_vectors:
        compiled.vectors = make_vectors(compiled, with_vectors, vectors_seed)
    return compiled


def estimate_model(model: ModelSource | Graph, plugins: Sequence[str] = (),
                   input_shapes: Mapping[str, Sequence[int]] | None = None,
                   min_partition_size: int = 1, pins: Mapping[str, str] | None = None,
                   host: str = HOST_PLUGIN,
                   plugin_options: Mapping[str, Mapping[str, Any]] | None = None,
                   default_plugins: Sequence[str] | None = None,
                   manager: PluginManager | None = None,
                   placement: str = "cost") -> Placement:
    """What running the model on ``plugins`` is estimated to take, partitioned as
    :func:`compile` with the same arguments would, without compiling or running anything: the
    :class:`~byoc.partition.placement.Placement` (totals of the chosen, priority and
    host-only placements; each partition priced, match by match, with its transfers). A
    dynamic tail is not estimated: its nodes are listed in ``not_estimated``."""
    tail = None
    if isinstance(model, Graph):
        graph = model.copy()
    else:
        graph, tail = import_with_tail(model, input_shapes)
    verify(graph)
    options = CompileOptions(plugins=tuple(plugins), min_partition_size=min_partition_size,
                             pins=dict(pins or {}), host=host,
                             plugin_options=dict(plugin_options or {}),
                             default_plugins=default_plugins, placement=placement)
    found = plan_graph(graph, options, manager).placement
    if tail is not None:
        found.not_estimated = [node.name for node in tail.nodes]
    return found


__all__ = ["compile", "estimate_model", "import_model", "load"]
