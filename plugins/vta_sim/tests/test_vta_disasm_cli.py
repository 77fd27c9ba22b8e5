"""The disassembler's text, and ``byoc vta disasm`` as a user runs it: on a good stream, with
micro-ops, and on files that are missing, truncated or not a stream."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from byoc import cli
from byoc.plugins import PluginInfo, hookimpl
from byoc.plugins import manager as manager_module
from byoc_vta_sim.cli_tools import cli_commands
from byoc_vta_sim.disasm import disassemble, format_insn, format_uop
from byoc_vta_sim.isa import (
    AluInsn,
    AluOp,
    FinishInsn,
    GemmInsn,
    MemInsn,
    MemType,
    Module,
    Uop,
    encode_stream,
    encode_uops,
    module_of,
)

STREAM = [
    MemInsn(memory_type=MemType.UOP, y_size=1, x_size=2, x_stride=2),
    MemInsn(memory_type=MemType.INP, sram_base=4, dram_base=64, y_size=3, x_size=8, x_stride=10,
            y_pad_0=1, y_pad_1=1, x_pad_0=1, x_pad_1=1, pop_next=1, push_next=1),
    GemmInsn(uop_bgn=0, uop_end=2, iter_out=4, iter_in=2, dst_factor_out=8, dst_factor_in=2,
             src_factor_out=10, src_factor_in=1, wgt_factor_out=0, wgt_factor_in=9, pop_prev=1,
             push_prev=1, push_next=1),
    AluInsn(alu_op=AluOp.MULSHR, uop_bgn=0, uop_end=2, iter_out=1, iter_in=1),
    AluInsn(alu_op=AluOp.SHR, use_imm=1, imm=-3, uop_bgn=0, uop_end=2, reset=1),
    MemInsn(store=True, memory_type=MemType.OUT, dram_base=128, y_size=1, x_size=16,
            x_stride=16, pop_prev=1, push_prev=1),
    FinishInsn(),
]
UOPS = encode_uops([Uop(0, 1, 2), Uop(2047, 2047, 1023)])


def test_format_insn_lines():
    lines = [format_insn(insn) for insn in STREAM]
    assert lines[0] == "LOAD UOP        sram_base=0 dram_base=0 y_size=1 x_size=2 x_stride=2"
    assert lines[1] == ("LOAD INP        sram_base=4 dram_base=64 y_size=3 x_size=8 "
                        "x_stride=10 y_pad=1,1 x_pad=1,1  pop C2L push L2C")
    assert lines[2] == ("GEMM            uops=[0,2) loop=4x2 dst_factor=8,2 src_factor=10,1 "
                        "wgt_factor=0,9  pop L2C push C2L push C2S")
    assert lines[3] == ("ALU MULSHR      uops=[0,2) loop=1x1 dst_factor=0,0 "
                        "src_factor=0,0")
    assert lines[4] == ("ALU SHR reset   uops=[0,2) loop=1x1 dst_factor=0,0 src_factor=0,0 "
                        "imm=-3")
    assert lines[5].startswith("STORE OUT       sram_base=0 dram_base=128") and \
        lines[5].endswith("  pop C2S push S2C")
    assert lines[6] == "FINISH"
    assert format_insn(STREAM[6], 12) == "   12  FINISH"


def test_illegal_flags_are_shown_not_hidden():
    line = format_insn(MemInsn(memory_type=MemType.WGT, pop_prev=1, push_next=1))
    assert line.endswith("pop_prev=1(illegal for load) push L2C")


def test_routing():
    assert [module_of(i) for i in STREAM] == [Module.COMPUTE, Module.LOAD, Module.COMPUTE,
                                               Module.COMPUTE, Module.COMPUTE, Module.STORE,
                                               Module.COMPUTE]


def test_format_uop_takes_a_uop_or_its_word():
    assert format_uop(Uop(3, 4, 5)) == "dst=3 src=4 wgt=5"
    assert format_uop(int(UOPS[1])) == "dst=2047 src=2047 wgt=1023"


def test_disassemble_numbers_lines_and_lists_micro_ops():
    text = disassemble(encode_stream(STREAM), UOPS)
    lines = text.splitlines()
    assert lines[0].startswith("    0  LOAD UOP")
    assert lines[6] == "    6  FINISH"
    assert lines[7:] == ["micro-ops:", "    0  dst=0 src=1 wgt=2",
                         "    1  dst=2047 src=2047 wgt=1023"]
    assert disassemble(encode_stream(STREAM)).splitlines() == lines[:7]


# -- byoc vta disasm --------------------------------------------------------------------------


class VtaCommands:
    """Adds vta_sim's commands, like vta_sim's plugin module, but alone among the plugins."""

    @hookimpl
    def byoc_plugin_info(self):
        return PluginInfo(name="vta_cli", version="0", device="test", description="")

    @hookimpl
    def byoc_cli_commands(self):
        return cli_commands()


class EntryPoint:
    name, value, dist = "vta_cli", "test:VtaCommands", None

    def load(self):
        return VtaCommands


@pytest.fixture
def byoc_main(monkeypatch, capsys):
    monkeypatch.setattr(manager_module, "entry_points",
                        lambda **kwargs: [EntryPoint()] if kwargs.get("group") == "byoc.plugins"
                        else [])

    def run(*args):
        status = cli.main([str(a) for a in args])
        captured = capsys.readouterr()
        return status, captured.out, captured.err.replace("\n  ", " ")
    return run


@pytest.fixture
def files(tmp_path):
    stream = tmp_path / "stream.bin"
    stream.write_bytes(encode_stream(STREAM))
    uops_bin = tmp_path / "uops.bin"
    uops_bin.write_bytes(UOPS.tobytes())
    uops_npy = tmp_path / "uops.npy"
    np.save(uops_npy, UOPS.astype(np.int64))
    return tmp_path


def test_disasm_prints_the_stream(byoc_main, files):
    status, out, err = byoc_main("vta", "disasm", files / "stream.bin")
    assert status == 0, err
    assert out == disassemble(encode_stream(STREAM)) + "\n"


@pytest.mark.parametrize("uops", ["uops.bin", "uops.npy"])
def test_disasm_with_micro_ops(byoc_main, files, uops):
    status, out, err = byoc_main("vta", "disasm", files / "stream.bin", "--uops", files / uops)
    assert status == 0, err
    assert out.endswith("micro-ops:\n    0  dst=0 src=1 wgt=2\n    1  dst=2047 src=2047 "
                        "wgt=1023\n")


def bad_files(tmp_path):
    good = encode_stream(STREAM)
    cases = {
        "missing.bin": (None, "cannot read instruction stream {path}: No such file"),
        "empty.bin": (b"", "instruction stream {path} is empty"),
        "odd.bin": (good + b"\0", "{path}: an instruction stream is a whole number of "
                                  "16-byte instructions; this one has 113 bytes"),
        "opcode.bin": (good[:32] + bytes([7]) + bytes(15),
                       "{path}: instruction 2: opcode 7 is not defined"),
        "alu.bin": (good[:16] + (4 | 6 << 108).to_bytes(16, "little"),
                    "{path}: instruction 1 (ALU): ALU operation 6 is not defined"),
    }
    for name, (data, message) in cases.items():
        path = tmp_path / name
        if data is not None:
            path.write_bytes(data)
        yield path, message.format(path=path)


def unwrapped(text):
    """``text`` without whitespace: the CLI wraps messages, at hyphens in paths too."""
    return "".join(text.split())


def test_disasm_refuses_bad_stream_files(byoc_main, tmp_path):
    for path, message in bad_files(tmp_path):
        status, out, err = byoc_main("vta", "disasm", path)
        assert status == 1 and out == "" and "Traceback" not in err
        assert err.startswith("byoc: error: ") and unwrapped(message) in unwrapped(err), err


def test_disasm_refuses_bad_micro_op_files(byoc_main, files):
    (files / "odd.bin").write_bytes(bytes(6))
    np.save(files / "matrix.npy", np.zeros((2, 2), np.uint32))
    np.save(files / "negative.npy", np.array([-1]))
    for name, message in [("odd.bin", "has 6 bytes, not a whole number of 4-byte micro-ops"),
                          ("matrix.npy", "holds a uint32[2, 2] array"),
                          ("negative.npy", "expected a 1-D array of 32-bit micro-op words"),
                          ("none.npy", "cannot read micro-op file")]:
        status, out, err = byoc_main("vta", "disasm", files / "stream.bin", "--uops",
                                     files / name)
        assert status == 1 and out == "" and "Traceback" not in err
        assert message in err and name in unwrapped(err), err


def test_vta_needs_a_tool(byoc_main, capsys):
    with pytest.raises(SystemExit) as exit_:
        byoc_main("vta")
    assert exit_.value.code == 2
    assert "TOOL" in capsys.readouterr().err


def test_installed_vta_sim_adds_byoc_vta_disasm(files):
    """End to end: the installed vta_sim plugin, through byoc's entry point."""
    def byoc_cli(*args):
        return subprocess.run([sys.executable, "-m", "byoc", *map(str, args)],
                              capture_output=True, text=True, timeout=120)

    result = byoc_cli("vta", "disasm", files / "stream.bin")
    assert result.returncode == 0, result.stderr
    assert result.stdout == disassemble(encode_stream(STREAM)) + "\n"
    missing = byoc_cli("vta", "disasm", files / "nothing.bin")
    assert missing.returncode == 1 and "Traceback" not in missing.stderr
    assert "nothing.bin" in unwrapped(missing.stderr)
    assert "vta" in byoc_cli("--help").stdout
