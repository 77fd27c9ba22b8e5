"""Instructions and micro-ops as text, one line each.

Dependency flags are shown as the token queues they pop and push (isa.token_moves), named as
the validator and the simulator name them.
"""

from __future__ import annotations

import numpy as np

from byoc_vta_sim.isa import (
    DEP_FLAGS,
    TOKEN_QUEUES,
    AluInsn,
    GemmInsn,
    Insn,
    MemInsn,
    Uop,
    decode_stream,
    decode_uops,
    module_of,
)


def mnemonic(insn: Insn) -> str:
    """A short name: ``LOAD INP``, ``STORE OUT``, ``STORE OUT requant``, ``GEMM``, ``GEMM
    reset``, ``GEMM overwrite``, ``ALU MULSHR``, ``ALU ADD reset``, ``FINISH``."""
    if isinstance(insn, MemInsn):
        requant = " requant" if insn.store and insn.requantize else ""
        return f"{insn.opcode.name} {insn.memory_type.name}{requant}"
    if isinstance(insn, GemmInsn):
        return "GEMM reset" if insn.reset else "GEMM overwrite" if insn.overwrite else "GEMM"
    if isinstance(insn, AluInsn):
        return f"ALU {insn.alu_op.name}{' reset' if insn.reset else ''}"
    return "FINISH"


def _flags(insn: Insn) -> str:
    module = module_of(insn)
    words = []
    for flag in DEP_FLAGS:
        if getattr(insn, flag):
            queue = TOKEN_QUEUES[module][flag]
            verb = flag.split("_")[0]
            words.append(f"{verb} {queue}" if queue else f"{flag}=1(illegal for "
                                                         f"{module.label})")
    return " ".join(words)


def _operands(insn: Insn) -> str:
    if isinstance(insn, MemInsn):
        text = (f"sram_base={insn.sram_base} dram_base={insn.dram_base} y_size={insn.y_size} "
                f"x_size={insn.x_size} x_stride={insn.x_stride}")
        if insn.y_pad_0 or insn.y_pad_1 or insn.x_pad_0 or insn.x_pad_1:
            text += f" y_pad={insn.y_pad_0},{insn.y_pad_1} x_pad={insn.x_pad_0},{insn.x_pad_1}"
        if insn.store and (insn.requantize or insn.param_base):
            text += f" param_base={insn.param_base}"
        return text
    if isinstance(insn, (GemmInsn, AluInsn)):
        text = (f"uops=[{insn.uop_bgn},{insn.uop_end}) loop={insn.iter_out}x{insn.iter_in} "
                f"dst_factor={insn.dst_factor_out},{insn.dst_factor_in} "
                f"src_factor={insn.src_factor_out},{insn.src_factor_in}")
        if isinstance(insn, GemmInsn):
            return text + f" wgt_factor={insn.wgt_factor_out},{insn.wgt_factor_in}"
        return text + (f" imm={insn.imm}" if insn.use_imm else "")
    return ""


def format_insn(insn: Insn, index: int | None = None) -> str:
    """One line: [index] mnemonic, operands (factors as ``out,in``), token moves.

    ``uops=[b,e)`` is the micro-op range (end exclusive), ``loop=OxI`` the iter_out x iter_in
    loop nest, ``imm`` the ALU immediate (shown when use_imm is set), and the token moves read
    ``pop L2C push C2S`` with the queue names of docs/vta-isa.md.
    """
    parts = [f"{mnemonic(insn):<14}", _operands(insn), _flags(insn)]
    line = "  ".join(p for p in parts if p).rstrip()
    return line if index is None else f"{index:5d}  {line}"


def format_uop(uop: Uop | int) -> str:
    """A micro-op (or its encoded 32-bit word) as ``dst=.. src=.. wgt=..``."""
    if not isinstance(uop, Uop):
        (uop,) = decode_uops(np.array([uop], dtype=np.uint32))
    return f"dst={uop.dst} src={uop.src} wgt={uop.wgt}"


def disassemble(stream: bytes, uops: np.ndarray | None = None) -> str:
    """A whole instruction stream, one numbered line per instruction, followed by the table
    of encoded micro-ops ``uops`` (uint32 words) when given. Raises IsaError (naming the
    instruction) for a stream that does not decode."""
    lines = [format_insn(insn, i) for i, insn in enumerate(decode_stream(stream))]
    if uops is not None:
        lines.append("micro-ops:")
        lines += [f"{i:5d}  {format_uop(u)}" for i, u in enumerate(decode_uops(uops))]
    return "\n".join(lines)


__all__ = ["disassemble", "format_insn", "format_uop", "mnemonic"]
