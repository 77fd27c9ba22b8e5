"""Running the toy designs: ports, host memories, the clock loop, the watchdog and traces."""

from __future__ import annotations

import re

import numpy as np
import pytest

from byoc.cosim import CosimError, WatchdogError, compare_memories
from cosim.toys import BYTES_PER_CYCLE, dpi_functions, start_copy

pytestmark = pytest.mark.cosim


def random_bytes(size: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size, dtype=np.uint8)


def test_copy_writes_the_source_bytes_in_one_cycle_per_chunk(copier):
    source = random_bytes(256)
    destination = np.full(256, 0xEE, dtype=np.uint8)
    copier.attach_memory(0, source)
    copier.attach_memory(1, destination)
    length = 250  # the last chunk is 2 bytes: its strobe must leave the bytes after it alone
    start_copy(copier, length)

    cycles = copier.run(1000)

    assert cycles == -(-length // BYTES_PER_CYCLE)
    assert compare_memories(source, destination, regions=[(0, length)]) is None
    assert (destination[length:] == 0xEE).all()
    assert copier["o_bytes_copied"] == length
    assert copier.memory_faults() == []


def test_run_and_step_count_cycles_together(copier):
    copier.attach_memory(0, random_bytes(64))
    copier.attach_memory(1, np.zeros(64, dtype=np.uint8))
    after_reset = copier.cycles
    assert after_reset == 2

    start_copy(copier, 64)
    ran = copier.run(100)

    assert copier.cycles == after_reset + 1 + ran


def test_step_copies_like_run(copier, cosim_cache):
    source = random_bytes(128)
    stepped = np.zeros(128, dtype=np.uint8)
    copier.attach_memory(0, source)
    copier.attach_memory(1, stepped)
    start_copy(copier, 128)
    cycles = 0
    while not copier["o_done"]:
        copier.step()
        cycles += 1

    assert cycles == 128 // BYTES_PER_CYCLE
    assert compare_memories(source, stepped) is None


def test_run_returns_zero_when_done_is_already_high(copier):
    copier.attach_memory(0, random_bytes(16))
    copier.attach_memory(1, np.zeros(16, dtype=np.uint8))
    start_copy(copier, 16)
    copier.run(100)
    cycles = copier.cycles

    assert copier.run(100) == 0
    assert copier.cycles == cycles


def test_a_design_without_dpi_imports_runs(counter):
    counter["i_limit"] = 0
    assert counter.run(10) == 0
    counter["i_limit"] = 1000

    assert counter.run(10_000) == 1000
    assert counter["o_count"] == 1000


def test_watchdog_names_the_limit_and_appends_the_description(counter):
    counter["i_limit"] = 1_000_000

    with pytest.raises(WatchdogError, match="cycle limit of 100 was reached") as caught:
        counter.run(100, describe=lambda model: f"The counter is at {model['o_count']}.")

    assert "o_done" in str(caught.value)
    assert str(caught.value).endswith("The counter is at 100.")
    assert isinstance(caught.value, CosimError)
    assert counter.cycles == 2 + 100


def test_trace_writes_every_edge_of_step_and_run(copier, tmp_path):
    copier.attach_memory(0, random_bytes(32))
    copier.attach_memory(1, np.zeros(32, dtype=np.uint8))
    path = tmp_path / "copy.vcd"
    first_cycle = copier.cycles

    with copier.trace(path):
        start_copy(copier, 32)
        cycles = 1 + copier.run(100)

    text = path.read_text()
    for signal in ("i_clk", "i_start", "o_done", "o_bytes_copied", "strobe"):
        assert re.search(rf"\$var wire +\d+ \S+ {signal}\b", text), signal
    times = [int(time) for time in re.findall(r"^#(\d+)$", text, re.MULTILINE)]
    edges = list(range(10 * first_cycle + 5, 10 * (first_cycle + cycles) + 1, 5))
    assert sorted(set(times)) == [10 * first_cycle, *edges]


def test_a_model_traces_again_into_a_new_file(copier, tmp_path):
    with copier.trace(tmp_path / "first.vcd"):
        copier.step(3)
    with copier.trace(tmp_path / "second.vcd"):
        copier.step(2)
        with pytest.raises(CosimError, match="already tracing"), \
                copier.trace(tmp_path / "third.vcd"):
            pass

    second = re.findall(r"^#(\d+)$", (tmp_path / "second.vcd").read_text(), re.MULTILINE)
    assert second[0] == "50" and second[-1] == "70"  # time goes on where the first trace ended
    assert not (tmp_path / "third.vcd").exists()


def test_a_trace_file_that_cannot_be_written_is_an_error(copier, tmp_path):
    with pytest.raises(CosimError, match="cannot write the trace file .*missing.*No such file"), \
            copier.trace(tmp_path / "missing" / "copy.vcd"):
        pass


def test_out_of_range_accesses_are_recorded_as_faults(copier):
    source = random_bytes(16)
    destination = np.zeros(16, dtype=np.uint8)
    copier.attach_memory(0, source)
    copier.attach_memory(1, destination)
    start_copy(copier, 24)

    copier.run(100)

    # The third word (bytes 16..23) lies past both 16-byte arrays.
    assert copier.memory_faults() == [(0, "read", 16), (1, "write", 16)] * 2
    assert compare_memories(source, destination) is None
    copier.clear_memory_faults()
    assert copier.memory_faults() == []


def test_faults_keep_the_first_sixteen_and_count_all(copier):
    copier.attach_memory(0, random_bytes(8))
    start_copy(copier, 8 * 64)  # slot 1 stays empty: every write faults

    copier.run(1000)

    faults = copier.memory_faults()
    assert len(faults) == 16
    assert faults[:2] == [(1, "write", 0), (1, "write", 0)]
    # 128 chunks: every write faults, and so does every read but the first word's two.
    assert copier.memory_fault_count == 128 + 126


def test_dpi_reads_and_writes_little_endian_bytes_at_any_alignment(copier):
    memory = np.arange(16, dtype=np.uint8)
    copier.attach_memory(2, memory)
    read, write = dpi_functions(copier)

    assert read(2, 3) == 0x0A09080706050403
    write(2, 5, 0xF8F7F6F5F4F3F2F1, 0b0000_0101)
    assert list(memory[4:9]) == [4, 0xF1, 6, 0xF3, 8]
    assert copier.memory_faults() == []

    assert read(2, 12) == 0x0F0E0D0C  # bytes past the end read as 0
    write(2, 14, 0xFFFF_FFFF_FFFF_FFFF, 0xFF)  # bytes past the end are dropped
    assert list(memory[12:]) == [12, 13, 0xFF, 0xFF]
    assert read(3, 0) == 0  # nothing attached
    assert read(8, 0) == 0  # no such slot
    assert read(2, -8) == 0
    assert copier.memory_faults() == [(2, "read", 12), (2, "write", 14), (3, "read", 0),
                                      (8, "read", 0), (2, "read", (1 << 64) - 8)]


def test_attaching_again_replaces_the_memory(copier):
    source = random_bytes(32)
    first, second = np.zeros(32, dtype=np.uint8), np.zeros(32, dtype=np.uint8)
    copier.attach_memory(0, source)
    copier.attach_memory(1, first)
    copier.attach_memory(1, second)
    start_copy(copier, 32)

    copier.run(100)

    assert not first.any()
    assert compare_memories(source, second) is None


@pytest.mark.parametrize("array, problem", [
    (np.zeros(8, dtype=np.int32), "int32"),
    (np.zeros((2, 4), dtype=np.uint8), "2-D"),
    (np.zeros(16, dtype=np.uint8)[::2], "non-contiguous"),
    (np.frombuffer(bytes(8), dtype=np.uint8), "read-only"),
    (bytearray(8), "bytearray"),
])
def test_attach_memory_refuses_arrays_the_rtl_cannot_write(copier, array, problem):
    with pytest.raises(CosimError, match=f"slot 1 needs a 1-D.*got.*{problem}"):
        copier.attach_memory(1, array)


def test_attach_memory_refuses_a_slot_that_does_not_exist(copier):
    with pytest.raises(CosimError, match="slot 8 does not exist; slots are 0..7"):
        copier.attach_memory(8, np.zeros(8, dtype=np.uint8))


def test_ports_are_checked_by_name_direction_and_width(copier):
    with pytest.raises(CosimError, match="byte_copier has no port 'o_missing'"):
        copier["o_missing"]
    with pytest.raises(CosimError, match="no input 'o_done'; its inputs are: .*i_start"):
        copier["o_done"] = 1
    with pytest.raises(CosimError, match="does not fit the 1-bit input 'i_start'"):
        copier["i_start"] = 2
    copier["i_length"] = (1 << 32) - 1
    assert copier["i_length"] == (1 << 32) - 1
