"""The ``byoc`` command line.

User errors (a ByocError) print one paragraph on stderr and exit with status 1; they never
show a traceback. Set BYOC_DEBUG=1 to see tracebacks of internal errors.
"""

from __future__ import annotations

import argparse
import os
import sys
import textwrap
from pathlib import Path
from typing import Sequence

import numpy as np

import byoc
from byoc.errors import ByocError, InputError
from byoc.inputs import describe_array, load_inputs, parse_shape_bindings, random_inputs


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
    _add_shape_option(run)
    run.set_defaults(handler=_run)

    compile_ = commands.add_parser(
        "compile", help="compile an ONNX model to a .byoc artifact",
        description="Import, optimize and compile an ONNX model; write a .byoc artifact.")
    compile_.add_argument("model", help="ONNX model file")
    compile_.add_argument("-o", "--output", metavar="OUT.byoc",
                          help="artifact to write (default: MODEL with suffix .byoc)")
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
        model = byoc.load(args.model)
    else:
        model = byoc.compile(args.model, input_shapes=parse_shape_bindings(args.input_shape))
    given = load_inputs(args.input)
    generated = random_inputs({n: t for n, t in model.inputs.items() if n not in given},
                              seed=args.seed)
    outputs = model.run({**given, **generated})
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


def _compile(args: argparse.Namespace) -> None:
    model = byoc.compile(args.model, input_shapes=parse_shape_bindings(args.input_shape))
    out = args.output or str(Path(args.model).with_suffix(".byoc"))
    model.save(out)
    counts = model.graph.op_counts()
    print(f"compiled {args.model}: {len(model.graph.nodes)} nodes "
          f"({', '.join(f'{op} {n}' for op, n in counts.items())})")
    print(f"wrote {out}")


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
