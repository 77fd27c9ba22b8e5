"""Every hook a byoc plugin can implement, declared in one place with pluggy.

This module is the manual of the plugin API: each hook's docstring says when byoc calls it,
what each argument is, what it returns and how results combine.

How hooks are called
--------------------
byoc drives each plugin separately: the partitioner asks *each* plugin for its patterns and
costs, and each partition is lowered, code-generated and run by *the one plugin it is assigned
to*. So every hook is called for one specific plugin, through
:meth:`byoc.plugins.manager.PluginManager.call`, which uses pluggy's ``subset_hook_caller`` to
leave every other plugin out of the call. All hooks are therefore declared
``firstresult=True``: the result of a call is that plugin's return value, or None when the
plugin does not implement the hook (or returns None). No hook collects results across plugins.

Hooks are called with keyword arguments only. An implementation may accept fewer arguments than
the spec (pluggy passes only those it names), which is how hooks evolve: new arguments are
added, never removed or renamed. An implementation must be marked with
:data:`byoc.plugins.hookimpl` and its name must be one of the hooks below; the plugin manager
refuses a plugin with an unknown hook name or an argument the spec does not have.

Writing a plugin
----------------
A plugin is a module or an object (a class is instantiated with no arguments) published in
the entry point group ``byoc.plugins`` of its pip package::

    [project.entry-points."byoc.plugins"]
    npu = "byoc_npu.plugin"

and it must implement :func:`byoc_plugin_info`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    import numpy as np

    from byoc.core.ir import Graph, Node
    from byoc.partition.patterns import Pattern
    from byoc.plugins.api import (
        CliCommand,
        CustomOp,
        Estimate,
        HardwareFigures,
        Partition,
        PartitionSignature,
        PatternLimits,
        Payload,
        PluginInfo,
        PluginOption,
        Runtime,
        Transfer,
    )

PROJECT = "byoc"

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


# -- plugin ---------------------------------------------------------------------------------


@hookspec(firstresult=True)
def byoc_plugin_info() -> PluginInfo:
    """Describe the plugin. Required: a plugin without it is refused at registration.

    Called once when the plugin is registered (the result is kept as ``LoadedPlugin.info``
    and shown by ``byoc plugins``), so it must be cheap and must not touch the device.

    :returns: A :class:`byoc.plugins.api.PluginInfo` with the plugin's name, version, the
        device it drives, a one-line description, its preferred tensor layout (or None) and
        its role: ``"accelerator"`` (the default) runs only when the user selects it;
        ``"host"`` says the plugin can take whatever the accelerators leave, so it is
        selected by default, after the user's plugins and before the reference host (several
        hosts in alphabetical order of name). Any other role refuses the plugin.

    firstresult: called for this plugin only; its return value is the result.
    """


@hookspec(firstresult=True)
def byoc_plugin_options() -> list[PluginOption]:
    """Declare the options users may give the plugin (``--plugin-option PLUGIN.NAME=VALUE``
    on the command line, ``plugin_options={"PLUGIN": {"NAME": value}}`` from Python).

    Called once when the plugin registers, right after :func:`byoc_plugin_info`; ``byoc
    plugins`` lists the options with their types, defaults, stages and help. byoc checks
    what users give against the declarations before any hook sees it
    (:mod:`byoc.plugins.options`): an option the plugin does not declare is an error naming
    the closest declared one, a value is converted to the option's type (an error naming the
    value and what the option takes), and the hooks of each stage get every option of that
    stage, the user's value or else the default. An option given to a plugin that runs no
    partition of the model is a :class:`byoc.errors.PluginOptionWarning`.

    Optional, for compatibility: a plugin without this hook takes any option name, and its
    runtime gets the options as the user gave them (strings from the command line) while its
    lowering gets none.

    :returns: A list of :class:`byoc.plugins.api.PluginOption` (empty if the plugin takes no
        option, so that any option given to it is refused), names unique within the plugin.
        Registration fails with a PluginError naming the plugin otherwise.

    firstresult: called for this plugin only; its return value is the result.
    """


# -- import ---------------------------------------------------------------------------------


@hookspec(firstresult=True)
def byoc_import_custom_ops() -> list[CustomOp]:
    """Declare the ops of the plugin's own domain (``com.mychip::FusedGelu``), so that models
    holding them import, run on the reference interpreter and can be checked against it.

    Called once when the plugin registers, right after :func:`byoc_plugin_options`. The ops of
    *every installed* plugin are known to the importer, whether or not the plugin is selected
    for a compilation: a model holding a vendor's op imports with ``byoc show`` and compiles
    for any plugins as soon as the vendor's plugin is installed, and such a node runs on the
    host reference unless a selected plugin's pattern claims it (``op("com.mychip::FusedGelu")``
    matches it). An op of a custom domain that no installed plugin declares is refused at
    import with a message naming the domain, the op and this hook.

    For each node of a declared op, the importer takes the node's output types from the op's
    ``infer_types`` instead of ONNX's schemas, runs the implementation's ``check``, and
    evaluates the node when its inputs are known; the reference interpreter runs its
    ``implementation``. ``byoc ops`` lists the declared ops with their plugins.

    :returns: A list of :class:`byoc.plugins.api.CustomOp` (empty or None if the plugin
        declares none), each (domain, op type) once. Registration fails with a PluginError
        naming both plugins when another registered plugin declares the same op, or naming
        the op when byoc implements it itself; the plugin is then not registered.

    firstresult: called for this plugin only; its return value is the result.
    """


# -- partition ------------------------------------------------------------------------------


@hookspec(firstresult=True)
def byoc_partition_patterns(options: dict[str, Any]) -> list[Pattern]:
    """Return the graph patterns this plugin can compile.

    Called by the partitioner once per compilation, before it looks at the graph. Each
    pattern names a subgraph shape (e.g. Conv followed by Relu) the plugin can offload; nodes
    no plugin's pattern matches stay on the host.

    :param options: The plugin's compile-stage options (:func:`byoc_plugin_options`), as
        :func:`byoc_lower_partition` gets them: what the plugin claims may depend on them
        (vta_sim's hardware configuration decides which layers fit). ``byoc plugins`` and the
        conformance kit pass the defaults. Raise a :class:`byoc.errors.PluginOptionError`
        for a value the plugin refuses: it reaches the user instead of a fallback.

    :returns: A list of :class:`byoc.partition.patterns.Pattern` objects (empty or None if
        the plugin offloads nothing). Pattern names must be unique within the plugin; they
        are passed back as ``pattern_name`` to :func:`byoc_partition_cost`.

    firstresult: called for this plugin only; its return value is the result.
    """


@hookspec(firstresult=True)
def byoc_partition_cost(pattern_name: str, nodes: list[Node], graph: Graph,
                        options: dict[str, Any]) -> float | None:
    """Estimate the cost of running one match of one of this plugin's patterns.

    Called by the partitioner for each match of the plugin's patterns, to choose between
    overlapping matches (of this and other plugins) and against running on the host.
    Optional: a plugin without a cost model simply does not implement it.

    :param pattern_name: The name of the plugin's pattern that matched.
    :param nodes: The matched nodes of ``graph``, in topological order. Do not modify them.
    :param graph: The whole graph, for types (``graph.type_of``), constants and context.
        Do not modify it.
    :param options: The plugin's compile-stage options, as :func:`byoc_partition_patterns`
        gets them.
    :returns: The estimated cost as a float in the plugin's unit of time (e.g. cycles; lower
        is better), or None when the plugin has no model for this match (the partitioner then
        uses its default).

    firstresult: called for this plugin only; its return value is the result.
    """


# -- estimate -------------------------------------------------------------------------------


@hookspec(firstresult=True)
def byoc_estimate_match(pattern_name: str | None, nodes: list[Node], graph: Graph,
                        options: dict[str, Any]) -> Estimate | None:
    """Estimate the time one match of one of this plugin's patterns takes on its device,
    from the plugin's own model of it (a timing model of the code it would generate, a
    layer model of the chip, a roofline of the host), without running anything.

    Called through :class:`byoc.estimate.Estimator` (once per match and graph) for each
    match of the plugin's patterns, by placement and ``byoc estimate``, which add the cost of
    every boundary tensor and of each partition run from :func:`byoc_estimate_transfer`.
    Optional: for a plugin without it byoc uses its fallback model (see
    :mod:`byoc.estimate`); :func:`byoc_partition_cost` is a separate, older hook that only
    breaks ties between overlapping matches, in the plugin's own unit, and keeps doing so.

    :param pattern_name: The name of the plugin's pattern that matched, or None for nodes a
        host plugin takes without a pattern.
    :param nodes: The matched nodes of ``graph``, in topological order. Do not modify them.
    :param graph: The whole graph, for types, constants and context. Do not modify it.
    :param options: The plugin's options of both stages (:func:`byoc_plugin_options`) by
        name, each the user's value or its default; empty for a plugin that declares none.
    :returns: A :class:`byoc.plugins.api.Estimate` (seconds; cycles where the device counts
        them; the bytes the match reads and gives at its boundary; a short ``basis`` naming
        the model), or None when the plugin has no model for this match (byoc then uses its
        fallback). An exception or a value of another type is reported as a fault of the
        plugin and the fallback is used.

    firstresult: called for this plugin only; its return value is the result.
    """


@hookspec(firstresult=True)
def byoc_estimate_transfer(options: dict[str, Any]) -> Transfer | None:
    """Declare what moving a tensor between host memory and the plugin's device costs.

    Called through :class:`byoc.estimate.Estimator` (once per compile) by placement, which
    charges the transfer for every value that crosses a boundary of a partition assigned to
    this plugin (into it and out of it alike) and the launch once per partition. A hook,
    rather than a :class:`byoc.plugins.api.PluginInfo` field, so that the figure can come
    from the plugin's hardware configuration when it is needed, not when the plugin
    registers (``byoc plugins`` stays cheap).

    Optional: a ``"host"`` plugin without it moves nothing
    (:meth:`byoc.plugins.api.Transfer.free`); an accelerator without it is charged byoc's
    default (:data:`byoc.estimate.DEFAULT_TRANSFER`).

    :param options: The plugin's options of both stages, as :func:`byoc_estimate_match` gets
        them (the memory port of a configured chip).
    :returns: A :class:`byoc.plugins.api.Transfer`: bandwidth in bytes per second and a
        latency in seconds per transfer.

    firstresult: called for this plugin only; its return value is the result.
    """


# -- lower ----------------------------------------------------------------------------------


@hookspec(firstresult=True)
def byoc_lower_partition(partition: Partition, graph: Graph,
                         constants: dict[str, np.ndarray], options: dict[str, Any]) -> Any:
    """Lower a partition assigned to this plugin to the plugin's own representation.

    Called once for each partition the partitioner assigned to this plugin, after
    partitioning and before :func:`byoc_codegen_partition`. ``partition.subgraph(constants)``
    gives the partition as a stand-alone graph to work on.

    :param partition: The :class:`byoc.plugins.api.Partition` to lower: its nodes, inputs,
        outputs and their types.
    :param graph: The whole partitioned graph the partition's nodes belong to. Do not modify.
    :param constants: The model's constants by value name (weights the nodes read).
        Do not modify the arrays.
    :param options: The plugin's compile-stage options (:func:`byoc_plugin_options`, stage
        ``"compile"``) by name, each the user's value or its default; empty for a plugin that
        declares none. What they change must be carried in ``lowered`` to the code generator
        and is fixed in the artifact: options given when an artifact is loaded cannot change
        it.
    :returns: The plugin's lowered form of the partition, any object (an IR, a schedule, a
        list of commands); byoc passes it unchanged as ``lowered`` to
        :func:`byoc_codegen_partition`. Raise a :class:`byoc.errors.PluginError` (or another
        ``ByocError``) naming the node if the partition cannot be lowered.

    firstresult: called for this plugin only; its return value is the result.
    """


# -- codegen --------------------------------------------------------------------------------


@hookspec(firstresult=True)
def byoc_codegen_partition(partition: Partition, lowered: Any) -> Payload:
    """Generate the code (or binary, or command stream) for one lowered partition.

    Called once per partition, right after :func:`byoc_lower_partition` returned ``lowered``
    for it. The payload is stored in the compiled artifact, so it must hold everything the
    runtime needs: nothing else of the model is kept for the plugin.

    :param partition: The same :class:`byoc.plugins.api.Partition` that was lowered.
    :param lowered: What this plugin's :func:`byoc_lower_partition` returned for it.
    :returns: A :class:`byoc.plugins.api.Payload`: ``data`` (bytes only the plugin's runtime
        reads) and ``metadata`` (plain YAML-safe data, shown when inspecting an artifact).

    firstresult: called for this plugin only; its return value is the result.
    """


# -- runtime --------------------------------------------------------------------------------


@hookspec(firstresult=True)
def byoc_runtime_create(payload: Payload, partition: PartitionSignature,
                        options: dict[str, Any]) -> Runtime:
    """Create something that runs one compiled partition.

    Called when a compiled model is loaded or compiled in-process, once per partition of this
    plugin, before the first run. It may be called in a later process than codegen (after the
    artifact was saved and loaded), so it gets only the payload and the partition's typed
    interface, not the graph.

    :param payload: The :class:`byoc.plugins.api.Payload` this plugin's
        :func:`byoc_codegen_partition` produced for the partition (as stored in the artifact).
    :param partition: The partition's :class:`byoc.plugins.api.PartitionSignature`: its name
        and its inputs and outputs with their types.
    :param options: This plugin's run-stage options (``plugin_options={"cpu_llvm":
        {"threads": 2}}`` in Python, ``--plugin-option cpu_llvm.threads=2`` on the command
        line). For a plugin that declares its options (:func:`byoc_plugin_options`): every
        declared option of stage ``"run"``, the user's value converted to the option's type
        or else its default. For a plugin that does not: the options as the user gave them
        (values from the command line arrive as strings), and the plugin should reject one it
        does not know with a PluginError.
    :returns: A :class:`byoc.plugins.api.Runtime`: an object whose ``run(inputs)`` takes the
        partition's inputs by name and returns its outputs by name, and which may define
        ``counters()`` returning performance counters, ``counter_help()`` saying what each
        counts and in what unit, and ``device_trace()`` returning a
        :class:`byoc.plugins.api.DeviceTrace` of the last run (its steps in device cycles,
        for ``byoc run --trace``); the Runtime class documents all three.

    firstresult: called for this plugin only; its return value is the result.
    """


@hookspec(firstresult=True)
def byoc_hardware_figures(payload: Payload, counters: dict[str, int | float]
                          ) -> HardwareFigures | None:
    """Sum up what one compiled partition asked of the hardware, for a design sweep
    (``byoc sweep``): its device cycles, the cycles the same work would take with every
    multiply-accumulate unit busy, the bytes moved between DRAM and the chip, and the size of
    the chip's on-chip buffers (the area proxy).

    Called by :mod:`byoc.sweep` after it ran the compiled model, once for each partition of
    this plugin. Optional: a plugin without it gives the sweep no figures.

    :param payload: The partition's :class:`byoc.plugins.api.Payload`, as
        :func:`byoc_codegen_partition` made it (the hardware configuration it was compiled
        for is the plugin's to keep in its metadata).
    :param counters: The partition runtime's counters after the runs (``counters()`` of the
        Runtime; empty if it has none), accumulated over every run since it was created.
    :returns: A :class:`byoc.plugins.api.HardwareFigures` for those runs, or None when the
        plugin has no figures for this partition.

    firstresult: called for this plugin only; its return value is the result.
    """


# -- command line ---------------------------------------------------------------------------


@hookspec(firstresult=True)
def byoc_cli_commands() -> list[CliCommand]:
    """Add top-level commands to the ``byoc`` command line (e.g. ``byoc vta disasm FILE``).

    Called by the command line, once per installed plugin, when the command typed is not
    one of byoc's own (show, run, compile, ops, plugins, new-plugin) or is ``--help``: byoc's own
    commands never load plugins for this. It runs at every such start, so it must be cheap:
    import what a command needs inside its ``run``, not when the plugin is imported.

    Each command gets an argparse sub-parser named ``name``; its ``add_arguments`` is called
    only when that command is used. A plugin that fails to load, or whose hook fails, loses
    its commands without hiding the other plugins' (the error is shown when an unknown
    command is typed, and at the end of ``byoc --help``). A name that is one of byoc's own
    commands, or that two plugins both add, is refused with a PluginError naming both
    sides; the command is then not available until one of them is renamed or uninstalled.

    :returns: A list of :class:`byoc.plugins.api.CliCommand` (empty or None if the plugin
        adds no command), names unique within the plugin.

    firstresult: called for this plugin only; its return value is the result.
    """


# -- conformance ----------------------------------------------------------------------------


@hookspec(firstresult=True)
def byoc_conformance_limits() -> list[PatternLimits]:
    """Declare what each of this plugin's patterns accepts, for the conformance kit.

    Called only by the conformance kit (``pytest --byoc-plugin NAME``, see
    :mod:`byoc.conformance`), once per run, never when compiling. Optional: for a pattern
    without limits the kit builds models from its op types with conservative defaults
    (float32, small shapes) and holds the pattern only to accepting the plainest of them.

    :returns: A list of :class:`byoc.plugins.api.PatternLimits`, at most one per pattern
        name of :func:`byoc_partition_patterns`. The kit builds models with the values in
        ``accepts`` and fails a case the pattern declines, that falls back to the host, or
        whose outputs differ from the reference interpreter's; it builds the probe values
        left out of ``accepts`` and fails a case the pattern takes, or declines without a
        reason. ``skip`` (a reason) leaves a pattern untested; a name that is not one of the
        plugin's patterns is an error.

    firstresult: called for this plugin only; its return value is the result.
    """
