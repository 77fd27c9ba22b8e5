"""The ``byoc`` command line.

User errors (a ByocError) print one paragraph on stderr and exit with status 1; they never
show a traceback. Set BYOC_DEBUG=1 to see tracebacks of internal errors.

Installed plugins may add top-level commands through the ``byoc_cli_commands`` hook. To keep
byoc's own commands quick to start, plugins are loaded for that only when the command typed
is not one of byoc's own.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import textwrap
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np

import byoc
from byoc.core.dynamic_tail import TAIL_HOST
from byoc.errors import ByocError, InputError, PluginError, PluginOptionWarning
from byoc.inputs import (
    describe_array,
    load_inputs,
    parse_pins,
    parse_plugin_options,
    parse_shape_bindings,
    random_inputs,
)
from byoc.partition.placement import PLACEMENTS
from byoc.pipeline import FallbackWarning
from byoc.plugins.api import CliCommand
from byoc.plugins.manager import LoadedPlugin, PluginManager, declarations, repeated
from byoc.plugins.options import default_patterns
from byoc.summary import format_profile, format_summary
from byoc.vectors import stored_size

BUILTIN_COMMANDS = ("show", "run", "compile", "estimate", "verify", "sweep", "ops", "plugins",
                    "new-plugin")
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE: what a shell reports for a command SIGPIPE ended


@dataclass(frozen=True)
class PluginCommand:
    """A command an installed plugin adds to the command line."""

    plugin: LoadedPlugin
    command: CliCommand


@dataclass
class PluginCommands:
    """What the installed plugins add to the command line: the usable commands by name, the
    names refused because of a clash (with the error saying why), and the errors of plugins
    whose commands could not be read at all."""

    commands: dict[str, PluginCommand] = field(default_factory=dict)
    refused: dict[str, PluginError] = field(default_factory=dict)
    failures: list[ByocError] = field(default_factory=list)

    def notes(self) -> list[str]:
        """Why plugin commands are missing, one message each."""
        return [str(e) for e in self.refused.values()] + [str(e) for e in self.failures]


def plugin_commands(manager: PluginManager | None = None) -> PluginCommands:
    """The commands of every plugin of ``manager`` (by default a new manager loading every
    installed plugin; a plugin that cannot be loaded is recorded in ``failures``).

    A name clashing with one of byoc's own commands, or added by two plugins, is refused:
    recorded in ``refused`` as a PluginError naming both sides, and left out of ``commands``.
    """
    found = PluginCommands()
    if manager is None:
        manager = PluginManager()
        manager.load_entry_points(errors=found.failures)
    for plugin in manager.plugins():
        try:
            commands = _commands_of(manager, plugin)
        except ByocError as exc:
            found.failures.append(exc)
            continue
        for command in commands:
            _add_plugin_command(found, PluginCommand(plugin, command))
    return found


def _commands_of(manager: PluginManager, plugin: LoadedPlugin) -> list[CliCommand]:
    commands = declarations(manager.call(plugin.name, "byoc_cli_commands"), CliCommand,
                            "byoc_cli_commands", plugin.name, plugin.origin)
    twice = repeated([c.name for c in commands])
    if twice:
        raise PluginError(f"plugin {plugin.name!r} (from {plugin.origin}) adds more than one "
                          f"command named {', '.join(map(repr, twice))}; names must be unique")
    return list(commands)


def _add_plugin_command(found: PluginCommands, new: PluginCommand) -> None:
    name, plugin = new.command.name, new.plugin
    if name in BUILTIN_COMMANDS:
        found.refused.setdefault(name, PluginError(
            f"plugin {plugin.name!r} (from {plugin.origin}) adds the command {name!r}, which "
            f"is one of byoc's own commands; byoc keeps its own, so the plugin's command is "
            f"not available until the plugin renames it"))
    elif name in found.commands:
        other = found.commands.pop(name).plugin
        found.refused[name] = PluginError(
            f"plugins {other.name!r} (from {other.origin}) and {plugin.name!r} (from "
            f"{plugin.origin}) both add the command {name!r}; byoc refuses it for both: "
            f"uninstall one of them or have one rename its command")
    elif name not in found.refused:
        found.commands[name] = new


def build_parser(from_plugins: PluginCommands | None = None,
                 selected: str | None = None) -> argparse.ArgumentParser:
    """The ``byoc`` parser: byoc's own commands, then the commands in ``from_plugins``.

    Only the plugin command named ``selected`` gets its arguments (its ``add_arguments`` is
    called), so one plugin's argument set-up cannot break another's command.
    """
    from_plugins = from_plugins or PluginCommands()
    notes = from_plugins.notes()
    epilog = None
    if notes:
        epilog = "plugin commands left out:\n" + "\n".join(
            textwrap.fill(note, 100, initial_indent="  - ", subsequent_indent="    ")
            for note in notes)
    parser = argparse.ArgumentParser(
        prog="byoc", description="Compile and run ONNX models on pluggable accelerators.",
        epilog=epilog, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"byoc {byoc.__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    show = commands.add_parser("show", help="print a model's graph IR",
                               description="Import an ONNX model and print its typed graph IR.")
    show.add_argument("model", help="ONNX model file")
    _add_shape_option(show)
    show.add_argument("--optimize", action="store_true",
                      help="print the graph after the core clean-up passes")
    _add_dynamic_tail_option(show)
    show.set_defaults(handler=_show)

    run = commands.add_parser(
        "run", help="run a model (ONNX or compiled .byoc) on inputs",
        description="Run an ONNX model or a compiled .byoc artifact. Inputs come from .npy/.npz "
                    "files; inputs not given are generated from --seed.")
    run.add_argument("model", help="ONNX model file or compiled .byoc artifact")
    run.add_argument("--input", action="append", default=[], metavar="NAME=FILE.npy|FILE.npz",
                     help="an input array (repeatable); an .npz gives inputs by key. An "
                          "ONNX model's initializers that it also lists among its graph "
                          "inputs may be given too: they override the stored values")
    run.add_argument("--seed", type=int, default=0, help="seed for generated inputs (0)")
    run.add_argument("--output", metavar="FILE.npz", help="write the outputs to an .npz file")
    run.add_argument("--profile", action="store_true",
                     help="show the run's totals, each partition's host time and device "
                          "cycles, and its plugin's counters explained")
    run.add_argument("--trace", metavar="FILE.json",
                     help="write the profiled run as a Chrome trace (JSON trace event "
                          "format; open it in https://ui.perfetto.dev): partitions on a host "
                          "track, layers or commands on a track per device")
    run.add_argument("--plugins", default="", metavar="A,B",
                     help="for an ONNX model: accelerator plugins in priority order")
    run.add_argument("--strict", action="store_true",
                     help="for an ONNX model: fail instead of moving work to the host when a "
                          "plugin fails to compile or run it (a .byoc artifact never moves "
                          "work at run time: a failing plugin is always an error)")
    _add_plugin_option(run)
    _add_placement_option(run, "for an ONNX model: ")
    _add_shape_option(run)
    _add_dynamic_tail_option(run)
    _add_explain_option(run, "for an ONNX model: ")
    run.set_defaults(handler=_run)

    compile_ = commands.add_parser(
        "compile", help="compile an ONNX model to a .byoc artifact",
        description="Import, optimize and compile an ONNX model; write a .byoc artifact.")
    compile_.add_argument("model", help="ONNX model file")
    compile_.add_argument("-o", "--output", metavar="OUT.byoc",
                          help="artifact to write (default: MODEL with suffix .byoc)")
    _add_partition_options(compile_)
    compile_.add_argument("--strict", action="store_true",
                          help="fail instead of falling back to the host when a selected "
                               "plugin matched a node it then cannot compile or run")
    compile_.add_argument("--report", metavar="REPORT.html",
                          help="write an HTML partition report (graph coloured by plugin)")
    compile_.add_argument("--emit-onnx", metavar="PARTITIONED.onnx",
                          help="write the partitioned model as ONNX, one node per partition")
    compile_.add_argument("--with-vectors", type=int, default=0, metavar="N",
                          help="store N reference input/output pairs in the artifact, every "
                               "partition boundary value included, so that byoc verify can "
                               "check it without the ONNX model (0: none)")
    compile_.add_argument("--vectors-seed", type=int, default=0, metavar="S",
                          help="vector i draws its inputs from seed S+i (0)")
    _add_plugin_option(compile_)
    _add_placement_option(compile_)
    _add_shape_option(compile_)
    _add_dynamic_tail_option(compile_)
    _add_explain_option(compile_)
    compile_.set_defaults(handler=_compile)

    estimate = commands.add_parser(
        "estimate", help="estimate a model's time per partition, without running it",
        description="Partition an ONNX model as compile would and print what each partition "
                    "is estimated to take from its plugin's model (cycles on accelerators, "
                    "seconds, bytes in and out, transfers at each boundary) and the totals "
                    "of cost, priority and host-only placement. Nothing is compiled, "
                    "simulated or run.")
    estimate.add_argument("model", help="ONNX model file")
    _add_partition_options(estimate)
    estimate.add_argument("--json", metavar="FILE.json",
                          help="also write the estimate as JSON: {total_seconds, placements: "
                               "{chosen, priority, host_only}, partitions: [{name, plugin, "
                               "nodes, cycles, seconds, bytes_in, bytes_out}]}")
    _add_plugin_option(estimate)
    _add_placement_option(estimate)
    _add_shape_option(estimate)
    estimate.set_defaults(handler=_estimate)

    verify = commands.add_parser(
        "verify", help="check every partition against the reference and name the first "
                       "node that disagrees",
        description="Run every partition on its plugin with the reference interpreter's "
                    "values as its inputs and compare its outputs with the reference (max "
                    "abs error, quantization steps, SNR, cosine), and the model's outputs end "
                    "to end. The first failing partition is narrowed down to the first node "
                    "whose own output is wrong. Exit status 1 when a partition or an output "
                    "is beyond tolerance.")
    verify.add_argument("model", help="ONNX model file, or a .byoc artifact compiled with "
                                      "--with-vectors N (checked on its bundled vectors)")
    _add_partition_options(verify)
    _add_plugin_option(verify)
    _add_placement_option(verify, "for an ONNX model: ")
    _add_shape_option(verify)
    verify.add_argument("--input", action="append", default=[],
                        metavar="NAME=FILE.npy|FILE.npz",
                        help="an input array (repeatable); inputs not given are generated "
                             "from --seed")
    verify.add_argument("--seed", type=int, default=0, help="seed for generated inputs (0)")
    verify.add_argument("--json", metavar="FILE.json",
                        help="also write the result as JSON: {ok, outputs_ok, partitions: "
                             "[{name, plugin, nodes, max_abs_err, snr_db, ok}], "
                             "first_divergence: null or {partition, plugin, pattern, node, "
                             "op_type, nodes}}")
    verify.add_argument("--rtol", type=float, default=1e-4, metavar="R",
                        help="float outputs: allowed error relative to the largest reference "
                             "magnitude (1e-4)")
    verify.add_argument("--atol", type=float, default=0.0, metavar="A",
                        help="float outputs: allowed absolute error on top of --rtol (0)")
    verify.add_argument("--max-lsb", type=int, default=1, metavar="K",
                        help="quantized (integer) outputs: allowed error in quantization "
                             "steps (1)")
    verify.add_argument("--strict", action="store_true",
                        help="for an ONNX model: fail instead of compiling for the host what "
                             "a selected plugin matched but cannot compile")
    _add_dynamic_tail_option(verify)
    verify.add_argument("--waveforms", metavar="DIR",
                        help="where a device model that departs from its golden model (vta_sim "
                             "on the RTL) writes its waveform (default: a new temporary folder)")
    verify.set_defaults(handler=_verify)

    _add_sweep_command(commands)

    ops = commands.add_parser("ops", help="list the ONNX ops byoc supports")
    ops.set_defaults(handler=_ops)

    plugins = commands.add_parser(
        "plugins", help="list the installed accelerator plugins",
        description="List the plugins found in the entry point group byoc.plugins, with their "
                    "version, origin, device and pattern names.")
    plugins.set_defaults(handler=_plugins)

    new_plugin = commands.add_parser(
        "new-plugin", help="create a new plugin package",
        description="Write a working plugin package (pyproject.toml, plugin hooks, README, "
                    "tests) into DIR/NAME, to start a backend from.")
    new_plugin.add_argument("name", metavar="NAME",
                            help="the plugin's name: lower-case letters, digits and '_', "
                                 "not the name of an installed plugin or importable module")
    new_plugin.add_argument("--dir", default=".", metavar="PATH",
                            help="the folder to create the package in (default: here)")
    new_plugin.set_defaults(handler=_new_plugin)

    for name, found in from_plugins.commands.items():
        sub = commands.add_parser(name, help=found.command.help, description=found.command.help)
        if name == selected:
            _add_plugin_arguments(found, sub)
    return parser


def _add_plugin_arguments(found: PluginCommand, parser: argparse.ArgumentParser) -> None:
    try:
        found.command.add_arguments(parser)
    except ByocError:
        raise
    except Exception as exc:
        raise PluginError(f"plugin {found.plugin.name!r} failed to set up the arguments of its "
                          f"command {found.command.name!r}: {type(exc).__name__}: {exc} (a bug "
                          f"in the plugin: report it to its authors)") from exc


def _add_plugin_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--plugin-option", action="append", default=[],
                        metavar="PLUGIN.KEY=VALUE",
                        help="an option of a plugin, e.g. cpu_llvm.threads=2 or "
                             "vta_sim.target=rtl (repeatable); byoc plugins lists each "
                             "plugin's options")


def _add_partition_options(parser: argparse.ArgumentParser) -> None:
    """What compile and estimate share: the plugins, the minimum partition size, pins."""
    parser.add_argument("--plugins", default="", metavar="A,B",
                        help="accelerator plugins in priority order; the host takes the rest")
    parser.add_argument("--min-partition-size", type=int, default=1, metavar="N",
                        help="accelerator partitions smaller than N nodes go to the host")
    parser.add_argument("--pin", action="append", default=[], metavar="NODE_OR_OP=PLUGIN",
                        help="only PLUGIN may run this node (or every node of this op type)")


def _add_placement_option(parser: argparse.ArgumentParser, applies_to: str = "") -> None:
    parser.add_argument("--placement", choices=PLACEMENTS, default="cost",
                        help=f"{applies_to}'cost' (default) places nodes to minimise the "
                             f"estimated time, transfers included; 'priority' gives each "
                             f"node to the first plugin given that takes it")


def _add_shape_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--input-shape", action="append", default=[], metavar="NAME=DxDx...",
                        help="the shape of input NAME, sizes separated by 'x', for an input "
                             "with symbolic dims (repeatable), e.g. input=1x3x224x224")


def _add_explain_option(parser: argparse.ArgumentParser, applies_to: str = "") -> None:
    parser.add_argument("--explain", action="store_true",
                        help=f"{applies_to}print, for every node, the plugin and pattern that "
                             f"took it and why each other plugin did not")


def _add_dynamic_tail_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--no-dynamic-tail", action="store_true",
                        help="static shapes only: refuse a model with a node whose output size "
                             "depends on runtime values (NonMaxSuppression, NonZero...) instead "
                             "of running it and what depends on it eagerly on the reference "
                             "interpreter")


def _show(args: argparse.Namespace) -> None:
    from byoc.core.importer import import_with_tail
    from byoc.core.passes import optimize
    from byoc.core.printer import format_graph
    from byoc.core.verify import verify

    shapes = parse_shape_bindings(args.input_shape)
    if args.no_dynamic_tail:
        graph, tail = byoc.import_model(args.model, shapes), None
    else:
        graph, tail = import_with_tail(args.model, shapes)
        verify(graph)
    if args.optimize:
        optimize(graph)
    print(format_graph(graph))
    if tail is not None:
        print(tail.format())


USER_WARNINGS = (FallbackWarning, PluginOptionWarning)
"""The warnings the command line prints as ``byoc: warning:`` paragraphs."""


@contextlib.contextmanager
def _warnings_printed() -> Iterator[None]:
    """Print each of the USER_WARNINGS raised inside as one ``byoc: warning:`` paragraph, and
    pass the others on. They are passed on after recording has stopped: while it records,
    passing one on would record it again, without end."""
    caught: list[warnings.WarningMessage] = []
    try:
        with warnings.catch_warnings(record=True) as caught:
            for category in USER_WARNINGS:
                warnings.simplefilter("always", category)
            yield
    finally:
        for warning in caught:
            if issubclass(warning.category, USER_WARNINGS):
                print(f"byoc: warning: {textwrap.fill(str(warning.message), 100)}",
                      file=sys.stderr)
            else:
                warnings.warn_explicit(warning.message, warning.category, warning.filename,
                                       warning.lineno)


def _load_artifact(args: argparse.Namespace) -> byoc.CompiledModel:
    """The .byoc artifact ``args.model`` with ``--plugin-option``s, warnings printed."""
    with _warnings_printed():
        return byoc.load(args.model, plugin_options=parse_plugin_options(args.plugin_option))


def _run(args: argparse.Namespace) -> None:
    from byoc.report.trace import check_writable, write_chrome_trace

    if args.trace:
        check_writable(args.trace)
    given = load_inputs(args.input)
    if Path(args.model).suffix == ".byoc":
        if args.input_shape or args.plugins or args.no_dynamic_tail or args.explain \
                or args.placement != "cost":
            raise InputError("--input-shape, --plugins, --placement, --no-dynamic-tail and "
                             "--explain apply to ONNX models; a compiled artifact has fixed "
                             "shapes, plugins and placement, and keeps no partition plan to "
                             "explain (run byoc compile --explain on its ONNX model)")
        model = _load_artifact(args)
    else:
        model = _compile_onnx(args, fed_inputs=given)
        if args.explain:
            _print_explanation(model)
    generated = random_inputs({n: t for n, t in model.inputs.items() if n not in given},
                              seed=args.seed)
    with _warnings_printed():
        if args.profile or args.trace:
            outputs, profile = model.profile({**given, **generated})
        else:
            outputs, profile = model.run({**given, **generated}), None
    for name, array in generated.items():
        print(f"input  {name}: {describe_array(array)} (generated, seed {args.seed})")
    for name in given:
        print(f"input  {name}: {describe_array(given[name])}")
    for name, array in outputs.items():
        print(f"output {name}: {describe_array(array)}")
    if args.output:
        try:
            np.savez(args.output, **outputs)
        except OSError as exc:
            raise InputError(f"cannot write outputs to {args.output}: {exc.strerror}") from None
        print(f"wrote {args.output}")
    if args.profile:
        print(format_profile(profile))
    if args.trace:
        write_chrome_trace(args.trace, profile, model.name)
        print(f"wrote {args.trace}")


def _plugin_list(text: str) -> list[str]:
    return [p.strip() for p in text.split(",") if p.strip()]


def _compile_onnx(args: argparse.Namespace, **options) -> byoc.CompiledModel:
    """Compile ``args.model`` with the options ``compile`` and ``run`` share, and ``options``;
    print the fallback warnings."""
    with _warnings_printed():
        return byoc.compile(args.model, plugins=_plugin_list(args.plugins),
                            input_shapes=parse_shape_bindings(args.input_shape),
                            strict=args.strict,
                            plugin_options=parse_plugin_options(args.plugin_option),
                            dynamic_tail=not args.no_dynamic_tail,
                            placement=args.placement, **options)


def _print_explanation(model: byoc.CompiledModel) -> None:
    from byoc.report import format_explanation

    print(format_explanation(model) + "\n")


def _compile(args: argparse.Namespace) -> None:
    model = _compile_onnx(args, min_partition_size=args.min_partition_size,
                          pins=parse_pins(args.pin), with_vectors=args.with_vectors,
                          vectors_seed=args.vectors_seed)
    out = args.output or str(Path(args.model).with_suffix(".byoc"))
    model.save(out)  # before any output, which a reader closing the pipe would cut short
    if args.explain:
        _print_explanation(model)
    print(format_summary(model))
    print(f"wrote {out}")
    if model.vectors:
        count = len(model.vectors)
        print(f"  with {count} reference vector{'s' if count != 1 else ''} (seeds "
              f"{args.vectors_seed}..{args.vectors_seed + count - 1}), "
              f"{stored_size(out) / 1024:.1f} KiB in the artifact: byoc verify {out} checks "
              f"every partition on them")
    if args.report:
        from byoc.report import write_html_report

        tail_facts = {}
        if model.tail is not None:
            tail_facts[f"dynamic tail ({TAIL_HOST})"] = (
                f"{model.tail.describe()}; runs after the partitions: "
                f"{', '.join(node.name for node in model.tail.nodes)}")
        write_html_report(args.report, model.graph, model.plan, title=Path(args.model).name,
                          summary=tail_facts, layouts=model.layout_plan())
        print(f"wrote {args.report}")
    if args.emit_onnx:
        from byoc.report import write_partitioned_onnx

        write_partitioned_onnx(args.emit_onnx, model.graph, model.plan)
        print(f"wrote {args.emit_onnx}")
        if model.tail is not None:
            print(f"  (the static graph's partitions only: the dynamic tail's "
                  f"{len(model.tail.nodes)} nodes run after them, on the values it outputs)")


def _estimate(args: argparse.Namespace) -> None:
    from byoc.report.estimate import format_estimate, write_estimate_json

    with _warnings_printed():
        placement = byoc.estimate_model(
            args.model, plugins=_plugin_list(args.plugins),
            input_shapes=parse_shape_bindings(args.input_shape),
            min_partition_size=args.min_partition_size, pins=parse_pins(args.pin),
            plugin_options=parse_plugin_options(args.plugin_option), placement=args.placement)
    if args.json:
        write_estimate_json(args.json, placement)
    print(format_estimate(placement, Path(args.model).name))
    if args.json:
        print(f"wrote {args.json}")


def _verify(args: argparse.Namespace) -> int:
    from byoc.report.verify import format_verification, write_verify_json
    from byoc.verify import Tolerance, verify_compiled

    tolerance = Tolerance(rtol=args.rtol, atol=args.atol, max_lsb=args.max_lsb)
    given = load_inputs(args.input)
    if Path(args.model).suffix == ".byoc":
        if args.input or args.seed or args.input_shape or args.plugins or args.pin \
                or args.placement != "cost" or args.min_partition_size != 1 or args.strict \
                or args.no_dynamic_tail:
            raise InputError("a .byoc artifact is verified as compiled, on the reference "
                             "vectors it bundles: --input, --seed, --input-shape, --plugins, "
                             "--pin, --placement, --min-partition-size, --strict and "
                             "--no-dynamic-tail apply to an ONNX model only")
        found = verify_compiled(_load_artifact(args), None, tolerance,
                                waveforms=args.waveforms)
    else:
        model = _compile_onnx(args, fed_inputs=given, min_partition_size=args.min_partition_size,
                              pins=parse_pins(args.pin))
        inputs = {**random_inputs({n: t for n, t in model.inputs.items() if n not in given},
                                  seed=args.seed), **given}
        found = verify_compiled(model, inputs, tolerance, waveforms=args.waveforms)
        generated = sorted(set(model.inputs) - set(given))
        found.inputs = (f"inputs {', '.join(sorted(given))} from files" if given else "") + \
            (" and " if given and generated else "") + \
            (f"random inputs, seed {args.seed}" if generated else "")
    if args.json:
        write_verify_json(args.json, found)
    print(format_verification(found, Path(args.model).name))
    if args.json:
        print(f"wrote {args.json}")
    return 0 if found.ok else 1


def _add_sweep_command(commands) -> None:
    sweep = commands.add_parser(
        "sweep", help="compile and run a model at every point of a grid of plugin options, "
                      "on Ray",
        description="Compile and run the model at every point of the grid (every combination "
                    "of the --grid values) as Ray tasks, and write DIR/results.csv, "
                    "DIR/results.json (a row per point: the grid keys, cycles, "
                    "gemm_utilisation, dram_bytes, sram_bytes, correct, rtl_equal, seconds, "
                    "error) and DIR/pareto.png. Points already in DIR are skipped. A point "
                    "that fails is a row with its error; the exit status is 0 when the sweep "
                    "ran. See docs/sweep.md.")
    sweep.add_argument("model", help="ONNX model file")
    sweep.add_argument("--plugins", required=True, metavar="A,B",
                       help="accelerator plugins in priority order, e.g. vta_sim")
    sweep.add_argument("--grid", action="append", default=[], metavar="PLUGIN.NAME=V1,V2,...",
                       help="a plugin option and the values the sweep gives it (repeatable; "
                            "every combination is a point)")
    sweep.add_argument("--target", choices=("sim", "rtl"), default="sim",
                       help="sim: vta_sim's partitions run on its functional simulator; rtl: "
                            "on its RTL and simulator both, compared byte for byte (sim)")
    sweep.add_argument("--out", required=True, metavar="DIR",
                       help="where the points and the results go; a sweep into a DIR that "
                            "holds points skips them")
    sweep.add_argument("--ray-address", metavar="ADDR",
                       help="run on the Ray cluster at ADDR (e.g. 10.0.0.5:6379, or auto) "
                            "instead of a local Ray")
    sweep.add_argument("--workers", type=int, metavar="N",
                       help="CPUs of the local Ray (default: all of this machine's)")
    sweep.add_argument("--seed", type=int, default=0,
                       help="seed of the random inputs every point runs on (0)")
    _add_plugin_option(sweep)
    sweep.set_defaults(handler=_sweep)


def _sweep(args: argparse.Namespace) -> None:
    from byoc.report.sweep import summary_lines
    from byoc.sweep import SweepSettings, parse_grid, run_sweep

    if args.workers is not None and args.workers < 1:
        raise InputError(f"--workers {args.workers}: give 1 or more")
    axes = parse_grid(args.grid)
    settings = SweepSettings(tuple(_plugin_list(args.plugins)),
                             parse_plugin_options(args.plugin_option), args.target, args.seed)
    outcome = run_sweep(args.model, axes, settings, args.out, ray_address=args.ray_address,
                        workers=args.workers, progress=sys.stderr)
    print(f"{len(outcome.rows)} point(s): {outcome.ran} run, {outcome.skipped} skipped "
          f"(in {args.out} already), {len(outcome.failed)} with an error")
    for row in outcome.failed:
        point = ", ".join(f"{axis.key}={row[axis.key]}" for axis in axes)
        print(textwrap.fill(f"{point}: {row['error']}", 100, initial_indent="  ",
                            subsequent_indent="    "))
    print()
    print("\n".join(summary_lines([axis.key for axis in axes], outcome.rows)))
    print()
    for path in outcome.files:
        print(f"wrote {path}")


def _ops(args: argparse.Namespace) -> None:
    from byoc.core.op_coverage import supported_op_coverage

    coverage = supported_op_coverage()
    width = max(len(c.qualified_name) for c in coverage)
    for c in coverage:
        revisions = ", ".join(map(str, c.revisions))
        print(f"{c.qualified_name:<{width}}  {c.opsets_text():<28}  (op versions {revisions})")
    print(f"{len(coverage)} op types")
    _print_plugin_ops()


def _print_plugin_ops() -> None:
    from byoc.plugins.manager import installed_custom_ops

    failures: list[PluginError] = []
    declared = installed_custom_ops(errors=failures)
    for d in declared:
        versions = ", ".join(map(str, d.op.opsets))
        doc = f": {d.op.doc}" if d.op.doc else ""
        print(f"{d.op.qualified_name}  domain versions {versions}  (declared by {d.declarer}"
              f"{doc})")
    if declared:
        print(f"{len(declared)} op types declared by plugins")
    for failure in failures:
        print(f"byoc: warning: the ops of a plugin that could not be loaded are missing: "
              f"{textwrap.fill(str(failure), 100)}", file=sys.stderr)


def _plugins(args: argparse.Namespace) -> None:
    from byoc.plugins.manager import ENTRY_POINT_GROUP, PluginManager

    manager = PluginManager()
    manager.load_entry_points()
    loaded = manager.plugins()
    if not loaded:
        print(f"no plugins installed (pip packages with an entry point in the group "
              f"{ENTRY_POINT_GROUP})")
        return
    for plugin in loaded:
        info = plugin.info
        patterns = default_patterns(manager, plugin.name)
        print(f"{plugin.name} {info.version} (from {plugin.origin})")
        print(f"  device:      {info.device}")
        if info.description:
            print(f"  description: {info.description}")
        if info.preferred_layout:
            print(f"  layout:      {info.preferred_layout}")
        names = [str(getattr(p, "name", repr(p))) for p in patterns]
        print(f"  patterns:    {', '.join(names) if names else '(none)'}")
        _print_options(plugin)


def _print_options(plugin: LoadedPlugin) -> None:
    from byoc.plugins.options import describe_option

    if plugin.options is None:
        print("  options:     not declared (any KEY=VALUE given is passed on as it is)")
    elif not plugin.options:
        print("  options:     (none)")
    else:
        print("  options:")
        for option in plugin.options:
            print(textwrap.fill(describe_option(option), 100, initial_indent="    ",
                                subsequent_indent="      "))


def _new_plugin(args: argparse.Namespace) -> None:
    from byoc.scaffold import create_plugin, package_files

    root = create_plugin(args.name, args.dir)
    for relative in package_files(args.name):
        print(f"wrote {root / relative}")
    print(f"next: pip install -e '{root}[test]', then run pytest and "
          f"pytest --byoc-plugin {args.name} there")


def _command_word(argv: Sequence[str]) -> str | None:
    """The command typed (byoc's own options take no values, so it is the first word that is
    not an option), or None."""
    return next((arg for arg in argv if not arg.startswith("-")), None)


def _plugin_commands_for(argv: Sequence[str]) -> PluginCommands:
    word = _command_word(argv)
    if word in BUILTIN_COMMANDS or (word is None and "--version" in argv):
        return PluginCommands()
    found = plugin_commands()
    if word in found.refused:
        raise found.refused[word]
    if word is not None and word not in found.commands and found.failures:
        raise PluginError(f"unknown command {word!r}; it may be added by a plugin that could "
                          f"not be loaded: {' '.join(str(e) for e in found.failures)}")
    return found


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command in ``argv`` (default: the process's arguments); return the exit status.

    Output into a pipe whose reader has gone away (``byoc ops | head -1``) ends the command
    quietly with status 141, as a shell reports a command that SIGPIPE ended. stdout is
    flushed inside the try, so that a closed pipe shows up here and not as an error at
    interpreter exit; then, as Python's docs on SIGPIPE recommend, stdout is pointed at
    devnull, so that the flush at exit has nowhere to fail.
    """
    try:
        try:
            return _main(list(sys.argv[1:] if argv is None else argv))
        finally:  # also after argparse's SystemExit, for --help and --version
            sys.stdout.flush()
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_BROKEN_PIPE


def _main(argv: list[str]) -> int:
    chosen: PluginCommand | None = None
    try:
        found = _plugin_commands_for(argv)
        chosen = found.commands.get(_command_word(argv))
        args = build_parser(found, selected=_command_word(argv)).parse_args(argv)
        status = chosen.command.run(args) if chosen else args.handler(args)
    except ByocError as exc:
        message = textwrap.fill(str(exc), width=100, subsequent_indent="  ")
        print(f"byoc: error: {message}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        raise  # the reader went away: main() ends quietly
    except Exception as exc:  # a bug in byoc or in a plugin, not the user's fault
        if os.environ.get("BYOC_DEBUG"):
            raise
        culprit = "byoc" if chosen is None else f"the plugin {chosen.plugin.name!r}"
        print(f"byoc: internal error: {type(exc).__name__}: {exc}\n  This is a bug in "
              f"{culprit}; rerun with BYOC_DEBUG=1 for the traceback and report it.",
              file=sys.stderr)
        return 2
    return 0 if status is None else int(status)


if __name__ == "__main__":
    sys.exit(main())
