"""``byoc vta``: the vta_sim plugin's command line tools.

``byoc vta disasm STREAM [--uops FILE]`` prints a raw instruction stream, one numbered line
per instruction, and the micro-op table when a micro-op file is given. The tools' modules
are imported when a tool runs, so that adding the command costs byoc's start-up nothing.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from byoc.errors import PluginError
from byoc.plugins.api import CliCommand


def cli_commands() -> list[CliCommand]:
    """The commands vta_sim adds to ``byoc`` (its ``byoc_cli_commands`` result)."""
    return [CliCommand(name="vta", help="tools for VTA instruction streams (disassembler)",
                       add_arguments=_add_arguments, run=_run)]


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    tools = parser.add_subparsers(dest="vta_tool", metavar="TOOL", required=True)
    disasm = tools.add_parser(
        "disasm", help="print an instruction stream as text",
        description="Print a raw VTA instruction stream (16 bytes per instruction, as the "
                    "instruction generator writes it), one numbered line per instruction; "
                    "docs/vta-isa.md explains the fields.")
    disasm.add_argument("stream", metavar="STREAM", help="instruction stream file (.bin)")
    disasm.add_argument("--uops", metavar="FILE",
                        help="micro-ops to list after the instructions: little-endian 32-bit "
                             "words (.bin, the DRAM image) or a 1-D integer array (.npy)")
    disasm.set_defaults(vta_run=_disasm)


def _run(args: argparse.Namespace) -> int | None:
    return args.vta_run(args)


def _read(path: str, what: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as err:
        raise PluginError(f"cannot read {what} {path}: {err.strerror}") from None


def _read_uops(path: str):
    import numpy as np

    if Path(path).suffix == ".npy":
        try:
            words = np.load(path, allow_pickle=False)
        except OSError as err:
            raise PluginError(f"cannot read micro-op file {path}: "
                              f"{err.strerror or err}") from None
        except ValueError as err:
            raise PluginError(f"micro-op file {path} is not a readable .npy array: "
                              f"{err}") from None
        if words.ndim != 1 or words.dtype.kind not in "iu" or \
                (words.size and (words.min() < 0 or words.max() > 0xFFFFFFFF)):
            raise PluginError(f"micro-op file {path} holds a {words.dtype}{list(words.shape)} "
                              f"array; expected a 1-D array of 32-bit micro-op words")
        return words.astype(np.uint32)
    data = _read(path, "micro-op file")
    if len(data) % 4:
        raise PluginError(f"micro-op file {path} has {len(data)} bytes, not a whole number "
                          f"of 4-byte micro-ops")
    return np.frombuffer(data, dtype="<u4")


def _disasm(args: argparse.Namespace) -> None:
    from byoc_vta_sim.disasm import disassemble
    from byoc_vta_sim.isa import INSN_BYTES, IsaError

    data = _read(args.stream, "instruction stream")
    if not data:
        raise PluginError(f"instruction stream {args.stream} is empty")
    uops = _read_uops(args.uops) if args.uops else None
    try:
        text = disassemble(data, uops)
    except IsaError as err:
        raise IsaError(f"{args.stream}: {err}; is it a VTA instruction stream "
                       f"({INSN_BYTES} bytes per instruction)?") from None
    print(text)
