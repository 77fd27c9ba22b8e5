"""The stream validator: a legal stream passes, and each rule of docs/vta-isa.md ("Stream
rules") is broken by a minimal stream and reported naming the instruction."""

from __future__ import annotations

import time
from dataclasses import replace

import numpy as np
import pytest

from byoc_vta_sim.config import DEFAULT_CONFIG
from byoc_vta_sim.isa import (
    AluInsn,
    AluOp,
    FinishInsn,
    GemmInsn,
    IsaError,
    MemInsn,
    MemType,
    Uop,
    encode_uops,
)
from byoc_vta_sim.validate import StreamError, validate_stream

DRAM_BYTES = 4096
INP_AT = 64      # INP element 64 = byte 1024
OUT_AT = 128     # OUT element 128 = byte 2048


def load_uops(count, sram_base=0, dram_base=0, **fields):
    return MemInsn(memory_type=MemType.UOP, sram_base=sram_base, dram_base=dram_base,
                   y_size=1, x_size=count, x_stride=count, **fields)


THREE_UOPS = (Uop(0, 0, 0), Uop(1, 1, 0), Uop(2, 2, 0))


def program(compute, uops=THREE_UOPS, dram_bytes=DRAM_BYTES):
    """A legal stream around ``compute``: LOAD UOP, LOAD INP pushing L2C, the compute
    instructions (the first pops L2C, the last pushes C2S), a STORE pushing S2C, a LOAD ACC
    no-op popping it, FINISH; and the DRAM image holding the micro-ops."""
    compute = list(compute)
    compute[0] = compute[0].with_deps(pop_prev=1)
    compute[-1] = compute[-1].with_deps(push_next=1)
    stream = [load_uops(len(uops)),
              MemInsn(memory_type=MemType.INP, dram_base=INP_AT, y_size=1, x_size=3,
                      x_stride=3, push_next=1),
              *compute,
              MemInsn(store=True, memory_type=MemType.OUT, dram_base=OUT_AT, y_size=1,
                      x_size=3, x_stride=3, pop_prev=1, push_prev=1),
              MemInsn(memory_type=MemType.ACC, pop_next=1),
              FinishInsn()]
    dram = np.zeros(dram_bytes, np.uint8)
    words = encode_uops(uops).view(np.uint8)
    dram[:words.size] = words
    return stream, dram


def gemm(**fields):
    return GemmInsn(**{"uop_bgn": 0, "uop_end": 3, **fields})


def alu(**fields):
    return AluInsn(**{"uop_bgn": 0, "uop_end": 3, "alu_op": AluOp.ADD, **fields})


def refused(stream, dram=None, config=DEFAULT_CONFIG) -> str:
    with pytest.raises(StreamError) as info:
        validate_stream(stream, config, dram)
    return str(info.value)


def test_legal_stream_passes_with_and_without_dram():
    stream, dram = program([gemm(reset=1), gemm(iter_out=2, dst_factor_out=3),
                            alu(use_imm=1, imm=-3, alu_op=AluOp.SHR)])
    validate_stream(stream)
    validate_stream(stream, DEFAULT_CONFIG, dram)


def test_stream_error_is_an_isa_error():
    assert issubclass(StreamError, IsaError)


# -- dependency flags and FINISH ---------------------------------------------------------------


@pytest.mark.parametrize("position,flags,fragment", [
    (1, {"pop_prev": 1}, "instruction 1 (LOAD INP): pop_prev must be 0 in the load module"),
    (1, {"push_prev": 1}, "instruction 1 (LOAD INP): push_prev must be 0 in the load module"),
    (3, {"pop_next": 1}, "instruction 3 (STORE OUT): pop_next must be 0 in the store module"),
    (3, {"push_next": 1}, "instruction 3 (STORE OUT): push_next must be 0 in the store"),
    (5, {"pop_prev": 1}, "instruction 5 (FINISH): FINISH may not pop"),
    (5, {"pop_next": 1}, "instruction 5 (FINISH): FINISH may not pop"),
])
def test_illegal_dependency_flags(position, flags, fragment):
    stream, _ = program([gemm()])
    stream[position] = stream[position].with_deps(**flags)
    assert fragment in refused(stream)


def test_finish_missing_misplaced_or_doubled():
    stream, _ = program([gemm()])
    assert "has no FINISH" in refused(stream[:-1])
    assert "instruction 4 (FINISH): FINISH ends the run but is not the last" in \
        refused(stream[:-2] + [FinishInsn(), stream[-2]])
    assert "instruction 5 (FINISH)" in refused(stream + [FinishInsn()])
    assert "has no FINISH" in refused([])


# -- buffers -----------------------------------------------------------------------------------


def padded_inp_load(sram_base):
    # 1+1+0 rows of 1+2+1 elements = 8 elements
    return MemInsn(memory_type=MemType.INP, sram_base=sram_base, dram_base=INP_AT, y_size=1,
                   x_size=2, x_stride=2, y_pad_0=1, x_pad_0=1, x_pad_1=1, push_next=1)


def test_load_region_counts_the_padding():
    stream, dram = program([gemm()])
    stream[1] = padded_inp_load(DEFAULT_CONFIG.inp_depth - 8)
    validate_stream(stream, DEFAULT_CONFIG, dram)
    stream[1] = padded_inp_load(DEFAULT_CONFIG.inp_depth - 7)
    message = refused(stream)
    assert "instruction 1 (LOAD INP): writes INP buffer elements 2041..2048 (1+1+0 rows of 4)" \
        in message and "2048 elements" in message


@pytest.mark.parametrize("memory_type,depth", [(MemType.UOP, "uop_depth"),
                                               (MemType.WGT, "wgt_depth"),
                                               (MemType.ACC, "acc_depth")])
def test_load_beyond_each_buffer(memory_type, depth):
    stream, _ = program([gemm()])
    limit = getattr(DEFAULT_CONFIG, depth)
    stream.insert(1, MemInsn(memory_type=memory_type, sram_base=limit - 1, y_size=1, x_size=2,
                             x_stride=2))
    assert f"{memory_type.name} buffer elements {limit - 1}..{limit}" in refused(stream)


def test_load_of_zero_width_moves_nothing_and_is_not_checked():
    stream, _ = program([gemm()])
    stream.insert(1, MemInsn(memory_type=MemType.ACC, sram_base=60000, y_size=9, y_pad_0=3))
    validate_stream(stream)


def test_load_of_out_and_store_of_other_types_are_refused():
    stream, _ = program([gemm()])
    bad_load = stream[:1] + [MemInsn(memory_type=MemType.OUT)] + stream[1:]
    assert "instruction 1 (LOAD OUT): LOAD cannot write OUT" in refused(bad_load)
    stream[3] = replace(stream[3], memory_type=MemType.ACC)
    assert "instruction 3 (STORE ACC): STORE writes OUT elements" in refused(stream)


def test_store_padding_and_overflow():
    stream, _ = program([gemm()])
    stream[3] = replace(stream[3], x_pad_1=2)
    assert "instruction 3 (STORE OUT): STORE has no padding, but x_pad_1=2" in refused(stream)
    stream[3] = replace(stream[3], x_pad_1=0, sram_base=2046)
    assert "reads ACC elements 2046..2048 (1 row of 3)" in refused(stream)


def test_requantizing_store_parameters_and_store_fields_on_a_load():
    stream, _ = program([gemm()])
    store = stream[3]
    stream[3] = replace(store, requantize=1, param_base=2046)
    assert ("instruction 3 (STORE OUT requant): reads its requantization parameters from ACC "
            "elements 2046..2048") in refused(stream)
    stream[3] = replace(store, requantize=1, param_base=2045)
    validate_stream(stream)                              # the last three elements: legal
    stream[3] = replace(store, param_base=7)
    assert "param_base=7 names requantization parameters, but requantize is 0" in refused(stream)
    stream[3] = store
    stream[0] = replace(stream[0], requantize=1)
    assert "requantize and param_base are STORE fields" in refused(stream)


def test_micro_op_range_of_gemm_and_alu():
    stream, _ = program([gemm(uop_bgn=2, uop_end=1)])
    assert "instruction 2 (GEMM): uop_bgn=2 is after uop_end=1" in refused(stream)
    stream, _ = program([alu(uop_end=DEFAULT_CONFIG.uop_depth + 1)])
    assert "instruction 2 (ALU ADD): uop_end=8193 is beyond the UOP buffer's 8192" in \
        refused(stream)


# -- tokens ------------------------------------------------------------------------------------


def test_unbalanced_queue_names_queue_and_counts():
    stream, _ = program([gemm()])
    stream[3] = stream[3].with_deps(push_prev=0)
    stream[4] = stream[4].with_deps(pop_next=0)
    stream[2] = stream[2].with_deps(push_prev=1)
    message = refused(stream)
    assert "the compute->load (C2L) token queue is unbalanced: 1 push and 0 pops" in message
    assert "instruction 2 (GEMM)" in message


def test_circular_wait_is_a_deadlock():
    # The GEMM waits for the LOAD INP's token, which waits for the GEMM's.
    stream, _ = program([gemm()])
    stream[1] = stream[1].with_deps(pop_next=1)
    stream[2] = stream[2].with_deps(push_prev=1)
    message = refused(stream)
    assert message.startswith("the stream deadlocks before FINISH")
    assert "instruction 1 (LOAD INP), waits for a compute->load (C2L) token" in message
    assert "instruction 2 (GEMM), waits for a load->compute (L2C) token" in message
    assert "instruction 3 (STORE OUT), waits for a compute->store (C2S) token" in message


def test_full_module_queue_can_deadlock():
    # Fetch cannot reach the LOAD INP the first GEMM waits for once compute's queue is full.
    compute = [gemm(pop_prev=1), gemm(), gemm(push_next=1)]
    stream = [load_uops(3), *compute,
              MemInsn(memory_type=MemType.INP, push_next=1),
              MemInsn(store=True, memory_type=MemType.OUT, pop_prev=1, push_prev=1),
              MemInsn(memory_type=MemType.ACC, pop_next=1), FinishInsn()]
    validate_stream(stream)
    small = replace(DEFAULT_CONFIG, insn_queue_depth=2)
    message = refused(stream, config=small)
    assert "fetch waits at instruction 3 (GEMM) because the compute module's queue is full " \
           "(insn_queue_depth=2)" in message
    assert "the load module has nothing left to run" in message


def test_finish_must_wait_for_the_last_store():
    stream, _ = program([gemm()])
    del stream[4]                                   # the LOAD ACC that popped S2C
    stream[3] = stream[3].with_deps(push_prev=0)    # keep the queues balanced
    message = refused(stream)
    assert "instruction 3 (STORE OUT) may still be running when instruction 4 (FINISH) ends" \
        in message and "store->compute (S2C)" in message


def test_finish_must_wait_for_the_last_load():
    stream, _ = program([gemm()])
    stream.insert(4, MemInsn(memory_type=MemType.WGT))
    assert "instruction 4 (LOAD WGT) may still be running" in refused(stream)


# -- DRAM and micro-ops ------------------------------------------------------------------------


def test_dram_ranges_of_load_and_store():
    stream, dram = program([gemm()])
    stream[1] = replace(stream[1], dram_base=DRAM_BYTES // 16 - 1, y_size=2)
    message = refused(stream, dram)
    assert "instruction 1 (LOAD INP): reads INP elements 255..260 of DRAM" in message
    assert "4096-byte DRAM image" in message
    stream, dram = program([gemm()])
    stream[3] = replace(stream[3], dram_base=DRAM_BYTES // 16 - 2)
    assert "instruction 3 (STORE OUT): writes OUT elements 254..256" in refused(stream, dram)


def test_micro_ops_must_be_loaded_before_they_run():
    stream, dram = program([gemm(uop_end=4)])
    assert "instruction 2 (GEMM): runs uop 3, which no earlier LOAD UOP wrote" in \
        refused(stream, dram)


@pytest.mark.parametrize("insn,fragment", [
    (gemm(iter_out=2, dst_factor_out=2046), "micro-op 5 (i=1, j=0, uop 2) uses ACC element "
                                            "2048 as its dst"),
    (gemm(iter_in=2, src_factor_in=2046), "micro-op 5 (i=0, j=1, uop 2) uses INP element "
                                          "2048 as its src"),
    (gemm(iter_in=2, wgt_factor_in=1023, dst_factor_in=3), "micro-op 3 (i=0, j=1, uop 0) uses "
                                                           "WGT element 1024 as its wgt"),
    (alu(iter_in=2, src_factor_in=2046, dst_factor_in=3), "uses ACC element 2048 as its src"),
])
def test_micro_op_indices_beyond_their_buffers(insn, fragment):
    stream, dram = program([insn], uops=(Uop(0, 0, 1), Uop(1, 1, 0), Uop(2, 2, 0)))
    assert fragment in refused(stream, dram)


def test_unused_indices_are_not_checked():
    far = dict(iter_in=2, src_factor_in=2046, dst_factor_in=3)
    stream, dram = program([alu(use_imm=1, **far), gemm(reset=1, wgt_factor_in=1023, **far)])
    validate_stream(stream, DEFAULT_CONFIG, dram)


def test_load_uop_tracking_follows_reloads_and_padding():
    far_uop = encode_uops([Uop(2047, 0, 0)]).view(np.uint8)
    # The second GEMM runs uop 1 after a LOAD UOP replaced it with one that reaches 2047.
    reload = load_uops(1, sram_base=1, dram_base=16)
    stream, dram = program([gemm(), reload, gemm(iter_out=2, dst_factor_out=1)])
    dram[64:68] = far_uop                                   # UOP element 16
    message = refused(stream, dram)
    assert "instruction 4 (GEMM): micro-op 4 (i=1, j=0, uop 1) uses ACC element 2048" in message
    # A padded LOAD UOP writes a zero micro-op (uop 3) before the data (uop 4).
    padded = load_uops(1, sram_base=3, dram_base=16, x_pad_0=1)
    stream, dram = program([gemm(), padded,
                            gemm(uop_bgn=3, uop_end=5, iter_out=2, dst_factor_out=3)])
    dram[64:68] = far_uop
    message = refused(stream, dram)
    assert "instruction 4 (GEMM): micro-op 3 (i=1, j=0, uop 4) uses ACC element 2050" in message


# -- the accumulator hazard rule ----------------------------------------------------------------


@pytest.mark.parametrize("dsts,fragment", [
    ((0, 0, 1), "micro-op 1 (i=0, j=0, uop 1) writes ACC element 0, which micro-op 0 of the "
                "same instruction writes 1 micro-op earlier"),
    ((0, 1, 0), "micro-op 2 (i=0, j=0, uop 2) writes ACC element 0, which micro-op 0 of the "
                "same instruction writes 2 micro-ops earlier"),
])
def test_write_after_write_within_two_micro_ops(dsts, fragment):
    stream, dram = program([gemm()], uops=[Uop(d, 0, 0) for d in dsts])
    message = refused(stream, dram)
    assert message.startswith("instruction 2 (GEMM): ") and fragment in message


def test_three_micro_ops_apart_is_legal_across_instructions_and_loads():
    stream, dram = program([gemm(), alu(alu_op=AluOp.MAX, use_imm=1)])
    stream.insert(3, MemInsn(memory_type=MemType.ACC))
    validate_stream(stream, DEFAULT_CONFIG, dram)


def test_hazard_across_instructions_and_a_load_between():
    uops = [Uop(0, 0, 0), Uop(1, 1, 0), Uop(2, 2, 0), Uop(2, 0, 0)]
    stream, dram = program([gemm(), gemm(uop_bgn=3, uop_end=4)], uops=uops)
    stream.insert(3, MemInsn(memory_type=MemType.ACC))  # does not reset the window
    message = refused(stream, dram)
    assert "instruction 4 (GEMM): micro-op 0 (i=0, j=0, uop 3) writes ACC element 2, which " \
           "micro-op 2 of instruction 2 (GEMM) writes 1 micro-op earlier" in message


def test_alu_read_hazard_and_immediates():
    uops = [Uop(0, 0, 0), Uop(1, 1, 0), Uop(2, 2, 0), Uop(5, 1, 0)]
    stream, dram = program([gemm(), alu(uop_bgn=3, uop_end=4)], uops=uops)
    message = refused(stream, dram)
    assert "instruction 3 (ALU ADD): micro-op 0 (i=0, j=0, uop 3) reads (src) ACC element 1, " \
           "which micro-op 1 of instruction 2 (GEMM) writes 2 micro-ops earlier" in message
    stream[3] = replace(stream[3], use_imm=1)
    validate_stream(stream, DEFAULT_CONFIG, dram)


def test_hazard_from_the_loop_nest():
    # One micro-op looped with dst_factor_in=0 writes the same element every micro-op.
    stream, dram = program([gemm(uop_end=1, iter_in=3, dst_factor_in=0)])
    assert "micro-op 1 (i=0, j=1, uop 0) writes ACC element 0" in refused(stream, dram)


def test_dram_must_be_a_byte_array():
    stream, dram = program([gemm()])
    with pytest.raises(TypeError, match="1-D numpy uint8"):
        validate_stream(stream, DEFAULT_CONFIG, dram.view(np.uint32))


def test_half_a_million_micro_ops_validate_quickly():
    count = 4096
    uops = [Uop(i % 512, i % 2048, i % 1024) for i in range(count)]
    compute = [gemm(uop_bgn=k * 256 % count, uop_end=k * 256 % count + 256, iter_out=2,
                    dst_factor_out=512 * (1 + k % 2)) for k in range(1000)]
    stream, dram = program(compute, uops=uops, dram_bytes=1 << 16)
    start = time.perf_counter()
    validate_stream(stream, DEFAULT_CONFIG, dram)
    assert time.perf_counter() - start < 1.0
