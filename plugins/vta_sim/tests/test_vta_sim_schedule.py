"""How vta_sim schedules a stream: dependency tokens, the deterministic round order, the
instruction queues, deadlock and FINISH errors, and the speed of a ResNet-sized layer."""

from __future__ import annotations

import dataclasses
import time

import numpy as np
import pytest

from byoc_vta_sim.config import DEFAULT_CONFIG
from byoc_vta_sim.isa import FinishInsn, GemmInsn, MemInsn, MemType, Uop, encode_uops
from byoc_vta_sim.sim import SimulationError, Simulator

RNG_SEED = 20240608
ELEM = DEFAULT_CONFIG.inp_elem_bytes                    # 16: INP and OUT elements alike


def load_inp(dram_base, **deps):
    return MemInsn(memory_type=MemType.INP, dram_base=dram_base, y_size=1, x_size=1,
                   x_stride=1, **deps)


def token_only(**deps):
    """A compute-module instruction that only moves tokens."""
    return MemInsn(memory_type=MemType.UOP, **deps)


def gemm_0_into_0(**deps):
    """acc[0] += inp[0] @ wgt[0].T, with wgt[0] set to the identity by ``identity_sim``."""
    return GemmInsn(uop_bgn=0, uop_end=1, **deps)


def identity_sim(config=DEFAULT_CONFIG):
    sim = Simulator(config)
    sim.wgt[0] = np.eye(16, dtype=np.int8)
    sim.uop[0] = encode_uops([Uop(dst=0, src=0, wgt=0)])[0]
    return sim


def dram_with_inp(*rows):
    return np.concatenate([np.full(ELEM, value, np.uint8) for value in rows])


def with_queue_depth(depth):
    return dataclasses.replace(DEFAULT_CONFIG, insn_queue_depth=depth)


# -- tokens and order ---------------------------------------------------------------------


def test_compute_waits_for_the_load_that_it_pops():
    # The LOAD itself waits for a compute->load token that instruction 1 pushes, so it runs in
    # the second round; the GEMM must wait for it rather than read the empty buffer.
    stream = [load_inp(0, pop_next=1, push_next=1), token_only(push_prev=1),
              gemm_0_into_0(pop_prev=1), FinishInsn()]
    sim = identity_sim()
    counters = sim.run(stream, dram_with_inp(3))
    assert (sim.acc[0] == 3).all()
    assert counters["insns_load"] == 1 and counters["insns_compute"] == 3


def test_tokens_keep_a_buffer_from_being_overwritten_before_it_is_used():
    # Two loads into the same INP element: the second waits until the first GEMM has run.
    stream = [load_inp(0, push_next=1), gemm_0_into_0(pop_prev=1, push_prev=1),
              load_inp(1, pop_next=1, push_next=1), gemm_0_into_0(pop_prev=1), FinishInsn()]
    sim = identity_sim()
    sim.run(stream, dram_with_inp(2, 5))
    assert (sim.acc[0] == 2 + 5).all()


def test_without_tokens_the_round_order_decides_and_load_runs_first():
    # Same stream without the tokens: in round one the load module runs both loads before
    # compute runs, so both GEMMs read the second load's data. Deterministically so.
    stream = [load_inp(0), gemm_0_into_0(), load_inp(1), gemm_0_into_0(), FinishInsn()]
    for _ in range(2):
        sim = identity_sim()
        sim.run(stream, dram_with_inp(2, 5))
        assert (sim.acc[0] == 5 + 5).all()


def racy_store_then_load_stream():
    """STORE 1 writes OUT element 0 and an unsynchronized LOAD reads it back; which value the
    LOAD sees depends on when fetch reaches it."""
    store = MemInsn(store=True, memory_type=MemType.OUT, y_size=1, x_size=1, x_stride=1)
    return [token_only(push_next=1),                    # 0 compute -> store
            store.with_deps(pop_prev=1, push_prev=1),   # 1 store -> compute
            store,                                      # 2
            load_inp(0, push_next=1),                   # 3
            token_only(pop_prev=1, pop_next=1),         # 4
            FinishInsn()]


@pytest.mark.parametrize("depth, loaded", [(512, 9), (1, 7)])
def test_fetch_stalls_on_a_full_queue_which_changes_a_racy_order(depth, loaded):
    # Depth 512: everything is fetched in round one and the LOAD (load module first) reads the
    # old DRAM byte 9. Depth 1: fetch stalls at STORE 2 until STORE 1 has run, so the LOAD is
    # fetched a round later and reads STORE 1's byte 7.
    sim = Simulator(with_queue_depth(depth))
    sim.acc[0] = 7
    dram = np.full(ELEM, 9, np.uint8)
    counters = sim.run(racy_store_then_load_stream(), dram)
    assert (sim.inp[0] == loaded).all()
    assert counters["insns_store"] == 2


def test_runs_are_deterministic():
    # The racy stream on fresh simulators: same DRAM, buffers and counters every time.
    results = []
    for _ in range(3):
        sim = Simulator(with_queue_depth(2))
        sim.acc[:4] = np.arange(4 * 16).reshape(4, 1, 16) - 20
        dram = np.arange(4 * ELEM, dtype=np.uint8)
        counters = sim.run(racy_store_then_load_stream(), dram)
        results.append((dram, sim.inp.copy(), sim.acc.copy(), counters))
    for dram, inp, acc, counters in results[1:]:
        np.testing.assert_array_equal(dram, results[0][0])
        np.testing.assert_array_equal(inp, results[0][1])
        np.testing.assert_array_equal(acc, results[0][2])
        assert counters == results[0][3]


def test_buffers_persist_across_runs():
    sim = identity_sim()
    sim.run([load_inp(0, push_next=1), gemm_0_into_0(pop_prev=1), FinishInsn()],
            dram_with_inp(4))
    sim.run([gemm_0_into_0(), FinishInsn()], np.zeros(16, np.uint8))
    assert (sim.acc[0] == 8).all()


# -- deadlock and FINISH ------------------------------------------------------------------


def test_deadlock_names_the_blocked_instructions_and_their_token_queues():
    stream = [load_inp(0, pop_next=1), gemm_0_into_0(pop_prev=1),
              MemInsn(store=True, memory_type=MemType.OUT), FinishInsn()]
    with pytest.raises(SimulationError) as info:
        identity_sim().run(stream, dram_with_inp(1))
    message = str(info.value)
    assert "deadlock before FINISH" in message
    assert "instruction 0 (LOAD INP sram 0 <- dram 0 (1x1, stride 1)) in the load module " \
           "waits for a compute->load token" in message
    assert "instruction 1 (GEMM uops 0..1 x 1 x 1) in the compute module waits for a " \
           "load->compute token" in message
    assert "the store module is empty" in message
    assert "check the dependency flags" in message


def test_deadlock_from_a_full_queue_names_the_stalled_fetch():
    # With one-instruction queues the second GEMM cannot be fetched, so the LOAD whose token
    # the first GEMM waits for is never fetched either.
    stream = [gemm_0_into_0(pop_prev=1), gemm_0_into_0(), load_inp(0, push_next=1),
              FinishInsn()]
    with pytest.raises(SimulationError, match=r"fetch waits at instruction 1 \(GEMM .*\) "
                                              r"in the compute module because that queue "
                                              r"is full \(1 instructions, insn_queue_depth\)"):
        identity_sim(with_queue_depth(1)).run(stream, dram_with_inp(1))
    sim = identity_sim(with_queue_depth(2))
    sim.run(stream, dram_with_inp(1))
    assert (sim.acc[0] == 2).all()                      # both GEMMs ran


def test_finish_with_pending_instructions_names_them():
    # FINISH runs in the same round as the compute instruction that feeds the STORE, before
    # the store module gets its turn.
    store = MemInsn(store=True, memory_type=MemType.OUT, y_size=1, x_size=1, x_stride=1,
                    pop_prev=1)
    with pytest.raises(SimulationError, match=r"FINISH \(instruction 2\) ran while 1 "
                                              r"instruction\(s\) had not: instruction 0 "
                                              r"\(STORE OUT .*\) in the store module.*"
                                              r"must pop the token"):
        Simulator().run([store, token_only(push_next=1), FinishInsn()],
                        np.zeros(16, np.uint8))


def test_stream_without_finish_is_an_error_after_it_ran():
    sim = identity_sim()
    with pytest.raises(SimulationError, match=r"the stream has no FINISH: all 1 "
                                              r"instructions ran"):
        sim.run([load_inp(0)], dram_with_inp(6))
    assert (sim.inp[0] == 6).all()
    assert sim.counters["insns_load"] == 1              # the partial run still counts


def test_instructions_after_finish_are_refused_before_running():
    sim = identity_sim()
    with pytest.raises(SimulationError, match=r"instruction 0 \(FINISH\) in the compute "
                                              r"module: FINISH must be the stream's last "
                                              r"instruction, but 1 more follow"):
        sim.run([FinishInsn(), load_inp(0)], dram_with_inp(6))
    assert (sim.inp == 0).all()


def test_finish_may_not_pop():
    with pytest.raises(SimulationError, match=r"instruction 1 \(FINISH\).*may not pop"):
        Simulator().run([token_only(), FinishInsn(pop_next=1)], np.zeros(16, np.uint8))


def test_undecodable_stream_is_a_simulation_error():
    with pytest.raises(SimulationError, match=r"cannot decode.*opcode 7"):
        Simulator().run(b"\x07" + bytes(15), np.zeros(16, np.uint8))


def test_dram_must_be_a_writeable_uint8_vector():
    with pytest.raises(SimulationError, match=r"1-D numpy uint8 array, not a int32 array"):
        Simulator().run([FinishInsn()], np.zeros(16, np.int32))


# -- a ResNet-18 layer's worth of micro-ops ---------------------------------------------------

H = W = 56
TILE = 14
BLOCKS = 4                                              # 64 channels = 4 blocks of 16


def conv_layer(x, w):
    """A 3x3 convolution of x (56x56x64) by w (64x64x3x3), padding 1, as a stream in 14x14
    output tiles, and its DRAM image; returns (stream, dram, byte offset of the output).

    DRAM: the padded input (58x58 pixels x 4 channel blocks, INP elements), the weights (9
    kernel positions x 4 output x 4 input blocks, WGT elements), the micro-ops, then the
    output (56x56 pixels x 4 blocks, OUT elements). Per tile: LOAD the 16x16-pixel input
    window, reset the 196 x 4 accumulator elements, one GEMM of 9 x 196 micro-ops x 4 output
    blocks x 4 input blocks, STORE."""
    padded = np.zeros((H + 2, W + 2, 64), np.int8)
    padded[1:-1, 1:-1] = x
    # WGT element ((kh * 3 + kw) * 4 + ob) * 4 + ib holds w[ob*16:+16, ib*16:+16, kh, kw].
    wgt = w.reshape(BLOCKS, 16, BLOCKS, 16, 3, 3).transpose(4, 5, 0, 2, 1, 3)
    window = TILE + 2
    uops = [Uop(dst=(py * TILE + px) * BLOCKS,
                src=((py + kh) * window + px + kw) * BLOCKS,
                wgt=(kh * 3 + kw) * BLOCKS * BLOCKS)
            for kh in range(3) for kw in range(3) for py in range(TILE) for px in range(TILE)]
    resets = [Uop(dst=p * BLOCKS) for p in range(TILE * TILE)]
    uop_words = encode_uops(uops + resets)
    parts = [padded.view(np.uint8).ravel(), np.ascontiguousarray(wgt).view(np.uint8).ravel(),
             uop_words.view(np.uint8)]
    offsets = np.cumsum([0] + [part.size for part in parts])   # each a multiple of 256
    dram = np.concatenate(parts + [np.zeros(H * W * 64, np.uint8)])

    stream = [MemInsn(memory_type=MemType.WGT, dram_base=offsets[1] // 256, y_size=1,
                      x_size=wgt.size // 256, x_stride=wgt.size // 256, push_next=1),
              MemInsn(memory_type=MemType.UOP, dram_base=offsets[2] // 4, y_size=1,
                      x_size=uop_words.size, x_stride=uop_words.size, pop_prev=1)]
    tiles = [(ty, tx) for ty in range(H // TILE) for tx in range(W // TILE)]
    for t, (ty, tx) in enumerate(tiles):
        first, last = t == 0, t == len(tiles) - 1
        stream += [
            MemInsn(memory_type=MemType.INP,
                    dram_base=(ty * TILE * (W + 2) + tx * TILE) * BLOCKS, y_size=window,
                    x_size=window * BLOCKS, x_stride=(W + 2) * BLOCKS,
                    pop_next=int(not first), push_next=1),
            GemmInsn(reset=1, uop_bgn=len(uops), uop_end=len(uops) + len(resets),
                     iter_out=BLOCKS, dst_factor_out=1, pop_prev=1, pop_next=int(not first)),
            GemmInsn(uop_bgn=0, uop_end=len(uops), iter_out=BLOCKS, iter_in=BLOCKS,
                     dst_factor_out=1, src_factor_in=1, wgt_factor_out=BLOCKS,
                     wgt_factor_in=1, push_prev=int(not last), push_next=1),
            MemInsn(store=True, memory_type=MemType.OUT,
                    dram_base=offsets[3] // ELEM + (ty * TILE * W + tx * TILE) * BLOCKS,
                    y_size=TILE, x_size=TILE * BLOCKS, x_stride=W * BLOCKS, pop_prev=1,
                    push_prev=1)]
    stream += [token_only(pop_next=1), FinishInsn()]
    return stream, dram, int(offsets[3])


def test_resnet18_conv_layer_matches_numpy_and_runs_in_seconds():
    rng = np.random.default_rng(RNG_SEED)
    x = rng.integers(-128, 128, (H, W, 64), dtype=np.int8)
    w = rng.integers(-128, 128, (64, 64, 3, 3), dtype=np.int8)          # [out][in][kh][kw]
    stream, dram, out_offset = conv_layer(x, w)

    sim = Simulator()
    start = time.perf_counter()
    counters = sim.run(stream, dram)
    elapsed = time.perf_counter() - start

    assert counters["gemm_uops"] == 451_584 + 16 * BLOCKS * TILE * TILE     # + resets
    # float64 products of int8 values summed over 576 terms are exact.
    padded = np.pad(x, ((1, 1), (1, 1), (0, 0))).astype(np.float64)
    expected = sum(padded[kh:kh + H, kw:kw + W] @ w[:, :, kh, kw].T.astype(np.float64)
                   for kh in range(3) for kw in range(3)).astype(np.int64)
    out = dram[out_offset:].reshape(H, W, 64)
    np.testing.assert_array_equal(out, (expected % 256).astype(np.uint8))
    # The last tile's accumulators still hold its full int32 sums.
    np.testing.assert_array_equal(sim.acc[:TILE * TILE * BLOCKS].reshape(TILE, TILE, 64),
                                  expected[H - TILE:, W - TILE:])
    assert elapsed < 5, f"451,584 GEMM micro-ops took {elapsed:.1f} s"
