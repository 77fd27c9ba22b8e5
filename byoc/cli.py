"""The ``byoc`` command line.

User errors (a ByocError) print one paragraph on stderr and exit with status 1; they never
show a traceback. Set BYOC_DEBUG=1 to see tracebacks of internal errors.
"""

from __future__ import annotations

import argparse
import os
import sys
import textwrap
import warnings
from pathlib import Path
from typing import Sequence

import numpy as np

import byoc
from byoc.errors import ByocError, InputError
from byoc.inputs import (describe_array, load_inputs, parse_pins, parse_plugin_options,
                         parse_shape_bindings, random_inputs)
from byoc.pipeline import FallbackWarning
from byoc.summary import format_profile, format_summary


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="byoc", description="Compile and run ONNX models on pluggable accelerators.")
    parser.add_argument("--version", action="version", version=f"byoc {byoc.__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    show = commands.add_parser("show", help="print a model's graph IR",
                               description="Import an ONNX model and print its typed graph IR.")
    show.add_argument("model", help="ONNX model file")
    _add_shape_option(show)
    show.add_argument("--optimize", action="store_true",
                      help="print the graph after the core clean-up passes")
    show.set_defaults(handler=_show)

    run = commands.add_parser(
        "run", help="run a model (ONNX or compiled .byoc) on inputs",
        description="Run an ONNX model or a compiled .byoc artifact. Inputs come from .npy/.npz "
                    "files; inputs not given are generated from --seed.")
    run.add_argument("model", help="ONNX model file or compiled .byoc artifact")
    run.add_argument("--input", action="append", default=[], metavar="NAME=FILE.npy|FILE.npz",
                     help="an input array (repeatable); an .npz gives inputs by key")
    run.add_argument("--seed", type=int, default=0, help="seed for generated inputs (0)")
    run.add_argument("--output", metavar="FILE.npz", help="write the outputs to an .npz file")
    run.add_argument("--profile", action="store_true",
                     help="time each partition and show its plugin's counters")
    _add_plugin_option(run)
    _add_shape_option(run)
    run.set_defaults(handler=_run)

    compile_ = commands.add_parser(
        "compile", help="compile an ONNX model to a .byoc artifact",
        description="Import, optimize and compile an ONNX model; write a .byoc artifact.")
    compile_.add_argument("model", help="ONNX model file")
    compile_.add_argument("-o", "--output", metavar="OUT.byoc",
                          help="artifact to write (default: MODEL with suffix .byoc)")
    compile_.add_argument("--plugins", default="", metavar="A,B",
                          help="accelerator plugins in priority order; the host takes the rest")
    compile_.add_argument("--strict", action="store_true",
                          help="fail instead of falling back to the host when a selected "
                               "plugin matched a node it then cannot run")
    compile_.add_argument("--min-partition-size", type=int, default=1, metavar="N",
                          help="accelerator partitions smaller than N nodes go to the host")
    compile_.add_argument("--pin", action="append", default=[], metavar="NODE_OR_OP=PLUGIN",
                          help="only PLUGIN may run this node (or every node of this op type)")
    compile_.add_argument("--report", metavar="REPORT.html",
                          help="write an HTML partition report (graph coloured by plugin)")
    compile_.add_argument("--emit-onnx", metavar="PARTITIONED.onnx",
                          help="write the partitioned model as ONNX, one node per partition")
    _add_plugin_option(compile_)
    _add_shape_option(compile_)
    compile_.set_defaults(handler=_compile)

    ops = commands.add_parser("ops", help="list the ONNX ops byoc supports")
    ops.set_defaults(handler=_ops)

    plugins = commands.add_parser(
        "plugins", help="list the installed accelerator plugins",
        description="List the plugins found in the entry point group byoc.plugins, with their "
                    "version, origin, device and pattern names.")
    plugins.set_defaults(handler=_plugins)
    return parser


def _add_plugin_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--plugin-option", action="append", default=[],
                        metavar="PLUGIN.KEY=VALUE",
                        help="a plugin's run-time option, e.g. cpu_llvm.threads=2 (repeatable)")


def _add_shape_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--input-shape", action="append", default=[], metavar="NAME=DxDx...",
                        help="bind an input with symbolic dims, e.g. input=1x3x224x224")


def _show(args: argparse.Namespace) -> None:
    from byoc.core.printer import format_graph

    graph = byoc.import_model(args.model, parse_shape_bindings(args.input_shape),
                              optimize_graph=args.optimize)
    print(format_graph(graph))


def _run(args: argparse.Namespace) -> None:
    if Path(args.model).suffix == ".byoc":
        if args.input_shape:
            raise InputError("--input-shape applies to ONNX models; a compiled artifact has "
                             "fixed shapes")
        model = byoc.load(args.model, plugin_options=parse_plugin_options(args.plugin_option))
    else:
        model = byoc.compile(args.model, input_shapes=parse_shape_bindings(args.input_shape),
                             plugin_options=parse_plugin_options(args.plugin_option))
    given = load_inputs(args.input)
    generated = random_inputs({n: t for n, t in model.inputs.items() if n not in given},
                              seed=args.seed)
    if args.profile:
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
    if profile is not None:
        print(format_profile(profile))


def _compile(args: argparse.Namespace) -> None:
    plugins = [p.strip() for p in args.plugins.split(",") if p.strip()]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", FallbackWarning)
        model = byoc.compile(args.model, plugins=plugins,
                             input_shapes=parse_shape_bindings(args.input_shape),
                             strict=args.strict, min_partition_size=args.min_partition_size,
                             pins=parse_pins(args.pin),
                             plugin_options=parse_plugin_options(args.plugin_option))
    for warning in caught:
        print(f"byoc: warning: {textwrap.fill(str(warning.message), 100)}", file=sys.stderr)
    out = args.output or str(Path(args.model).with_suffix(".byoc"))
    model.save(out)
    print(format_summary(model))
    print(f"wrote {out}")
    if args.report:
        from byoc.report import write_html_report

        write_html_report(args.report, model.graph, model.plan, title=Path(args.model).name)
        print(f"wrote {args.report}")
    if args.emit_onnx:
        from byoc.report import write_partitioned_onnx

        write_partitioned_onnx(args.emit_onnx, model.graph, model.plan)
        print(f"wrote {args.emit_onnx}")


def _ops(args: argparse.Namespace) -> None:
    from byoc.core.interpreter import registered_ops

    for domain, op_type in sorted(registered_ops()):
        print(f"{domain or 'ai.onnx'}::{op_type}")


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
        patterns = manager.call(plugin.name, "byoc_partition_patterns") or []
        print(f"{plugin.name} {info.version} (from {plugin.origin})")
        print(f"  device:      {info.device}")
        if info.description:
            print(f"  description: {info.description}")
        if info.preferred_layout:
            print(f"  layout:      {info.preferred_layout}")
        names = [str(getattr(p, "name", repr(p))) for p in patterns]
        print(f"  patterns:    {', '.join(names) if names else '(none)'}")


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.handler(args)
    except ByocError as exc:
        message = textwrap.fill(str(exc), width=100, subsequent_indent="  ")
        print(f"byoc: error: {message}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # a bug in byoc, not the user's fault
        if os.environ.get("BYOC_DEBUG"):
            raise
        print(f"byoc: internal error: {type(exc).__name__}: {exc}\n  This is a bug in byoc; "
              f"rerun with BYOC_DEBUG=1 for the traceback and report it.", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
