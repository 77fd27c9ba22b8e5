"""Building co-simulation models: the cache, build errors and finding Verilator."""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from byoc.cosim import CosimError, ProfileRun, build, build_model, compiler, find_verilator
from byoc.cosim.build import build_record
from cosim.toys import (
    COPIER,
    COUNTER,
    RTL,
    build_copier,
    build_counter,
    reset,
    start_copy,
)


def copy_cycles(model, length: int = 64) -> int:
    """Cycles the model's copier takes to copy ``length`` bytes."""
    model.attach_memory(0, np.zeros(length, dtype=np.uint8))
    model.attach_memory(1, np.zeros(length, dtype=np.uint8))
    reset(model)
    start_copy(model, length)
    return model.run(10 * length)


@pytest.mark.cosim
def test_building_the_same_sources_again_loads_the_cached_model(cosim_cache):
    first = build_copier(cosim_cache)

    started = time.perf_counter()
    second = build_copier(cosim_cache)
    seconds = time.perf_counter() - started

    assert second.library == first.library
    assert second.library.parent.name.startswith("byte_copier-")
    assert seconds < 1.0
    assert copy_cycles(second) == copy_cycles(first)


@pytest.mark.cosim
def test_a_changed_define_builds_a_new_model(cosim_cache):
    default = build_copier(cosim_cache)
    wider = build_copier(cosim_cache, defines={"BYTE_COPIER_BYTES_PER_CYCLE": 8})

    assert wider.library.parent != default.library.parent
    assert copy_cycles(default) == 16
    assert copy_cycles(wider) == 8


@pytest.mark.cosim
def test_a_changed_source_builds_a_new_model(cosim_cache, tmp_path):
    default = build_copier(cosim_cache)
    edited = tmp_path / "byte_copier.v"
    edited.write_text(COPIER.read_text().replace(
        "`define BYTE_COPIER_BYTES_PER_CYCLE 4", "`define BYTE_COPIER_BYTES_PER_CYCLE 2"))

    narrower = build_copier(cosim_cache, sources=[edited])

    assert narrower.library.parent != default.library.parent
    assert copy_cycles(narrower) == 32


@pytest.mark.cosim
def test_a_build_for_another_processor_is_not_reused(cosim_cache, monkeypatch):
    # models are compiled with -march=native: a cache shared by machines must not hand one
    # machine's build to a processor that may lack its instructions
    here = build_copier(cosim_cache)
    assert "-march=" in build.native_target("g++")
    if shutil.which("clang++"):
        assert "-target-cpu" in build.native_target("clang++")

    monkeypatch.setattr(build, "native_target", lambda cxx: "-march= another processor")
    elsewhere = build_copier(cosim_cache)

    assert elsewhere.library.parent != here.library.parent
    assert copy_cycles(elsewhere) == copy_cycles(here)


@pytest.mark.cosim
def test_concurrent_builds_of_one_design_share_one_result(tmp_path):
    models = [None, None]

    def build(index):
        models[index] = build_counter(tmp_path)

    threads = [threading.Thread(target=build, args=(index,)) for index in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert models[0].library == models[1].library
    assert [path.name for path in tmp_path.iterdir()] == [models[0].library.parent.name]
    models[1]["i_limit"] = 5
    assert models[1].run(100) == 5


@pytest.mark.cosim
def test_a_verilog_error_names_the_top_and_shows_the_log(cosim_cache, tmp_path):
    broken = tmp_path / "broken.v"
    broken.write_text("module broken(input wire clk, output wire o_done);\n"
                      "  assign o_done = no_such_signal;\nendmodule\n")

    with pytest.raises(CosimError) as caught:
        build_model("broken", [broken], cache_dir=tmp_path / "cache")

    message = str(caught.value)
    assert "Verilating 'broken' failed" in message
    assert "no_such_signal" in message
    log = Path(message.rsplit("Full log: ", 1)[1])
    assert "no_such_signal" in log.read_text()
    assert [path.suffix for path in (tmp_path / "cache").iterdir()] == [".log"]


@pytest.mark.cosim
def test_clock_and_done_must_be_one_bit_ports_of_the_top(tmp_path):
    with pytest.raises(CosimError, match="'clk' must be a 1-bit input.*i_clk \\(1-bit\\), i_rst"):
        build_model("byte_copier", [COPIER], done="o_done", cache_dir=tmp_path)
    with pytest.raises(CosimError, match="'o_count' must be a 1-bit output"):
        build_model("cycle_counter", [COUNTER], clock="i_clk", done="o_count",
                    cache_dir=tmp_path)


def test_the_top_module_must_have_a_source_file_of_its_name(tmp_path):
    with pytest.raises(CosimError, match="needs vta_shell.v or vta_shell.sv among the sources"):
        build_model("vta_shell", [COPIER], cache_dir=tmp_path)
    with pytest.raises(CosimError, match="source file .*missing.v does not exist"):
        build_model("missing", [tmp_path / "missing.v"], cache_dir=tmp_path)


def test_find_verilator_says_how_to_install_it(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))

    with pytest.raises(CosimError, match="Verilator is not installed.*sudo apt-get install -y "
                                         "verilator.*./dev setup"):
        find_verilator()


@pytest.mark.cosim
@pytest.mark.parametrize("design", sorted(RTL.glob("*.v")), ids=lambda path: path.name)
def test_toy_rtl_is_lint_clean(design):
    result = subprocess.run([find_verilator(), "--lint-only", "-Wall", str(design)],
                            capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr


# -- the compiler and profile-guided builds ---------------------------------------------------

COMPILERS = [name for name in ("clang++", "g++") if shutil.which(name)]


@pytest.fixture
def choose_compiler(monkeypatch):
    """Select the C++ compiler by $BYOC_COSIM_CXX for the rest of the test."""
    def choose(name: str | None):
        if name is None:
            monkeypatch.delenv(compiler.ENV, raising=False)
        else:
            monkeypatch.setenv(compiler.ENV, name)
        compiler.compiler.cache_clear()
        return compiler.compiler()

    yield choose
    compiler.compiler.cache_clear()


@pytest.fixture
def toys_importable(monkeypatch):
    """Let a profiling workload's child process import cosim.toys."""
    tests = str(Path(__file__).resolve().parents[1])
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(
        filter(None, [tests, os.environ.get("PYTHONPATH")])))


@pytest.mark.cosim
@pytest.mark.parametrize("cxx", COMPILERS)
def test_a_profile_guided_build_compiles_again_with_its_workloads_profile(
        cxx, choose_compiler, toys_importable, cosim_cache):
    chosen = choose_compiler(cxx)
    plain = build_copier(cosim_cache)
    profiled = build_copier(cosim_cache, profile=ProfileRun("cosim.toys:copy_workload", "64"))

    assert profiled.library.parent != plain.library.parent
    assert build_record(profiled)["profiled"] is True
    assert build_record(plain)["profiled"] is None
    log = (profiled.library.parent / "build.log").read_text()
    passes = [line for line in log.splitlines() if line.startswith(("$ make", "$ profiling"))]
    assert [line.split()[1] for line in passes] == ["make", "profiling", "make"]
    assert "-fprofile-generate=" in passes[0] and "-fprofile-use=" in passes[2]
    # the second pass compiled the model's objects again (make -B), with the profile
    compiled = log.split(passes[2], 1)[1]
    assert "-fprofile-use=" in compiled.split("\n", 1)[1]
    if chosen.family == "clang":
        assert "llvm-profdata merge" in log
    # the profile is gone from the finished build; the model computes what the plain one does
    assert not (profiled.library.parent / build.PROFILE_FOLDER).exists()
    assert copy_cycles(profiled) == copy_cycles(plain) == 16


@pytest.mark.cosim
def test_a_failing_workload_leaves_a_working_unprofiled_build(toys_importable, tmp_path):
    model = build_copier(tmp_path, profile=ProfileRun("cosim.toys:broken_workload", "on purpose"))

    assert build_record(model)["profiled"] is False
    log = (model.library.parent / "build.log").read_text()
    assert "RuntimeError: the workload broke (on purpose)" in log
    assert "the profiling workload failed (exit status 1); building without a profile" in log
    last_make = [line for line in log.splitlines() if line.startswith("$ make")][-1]
    assert "-fprofile" not in last_make
    assert copy_cycles(model) == 16


def test_the_compiler_is_clang_when_installed_else_gcc_or_as_chosen(choose_compiler):
    if shutil.which("clang++"):
        assert choose_compiler(None).family == "clang"
    assert choose_compiler("g++").family == "gcc"
    with pytest.raises(CosimError, match=r"\$BYOC_COSIM_CXX names the C\+\+ compiler "
                                         r"'no-such-cxx'.*unset it"):
        choose_compiler("no-such-cxx")


def test_profile_flags_follow_the_compilers_family(tmp_path):
    gcc = compiler.Compiler(cxx="/usr/bin/g++", family="gcc", version="g++ 12", profdata=None)
    clang = compiler.Compiler(cxx="/usr/bin/clang++", family="clang", version="clang 14",
                              profdata="/usr/bin/llvm-profdata")
    folder = tmp_path / "profile"

    def flags(tool, **stage):
        args = dict(arg.split("=", 1) for arg in tool.make_args(**stage))
        return args["CXX"], args["OPT_FAST"], args["LDFLAGS"]

    assert flags(gcc) == ("/usr/bin/g++", compiler.OPT_FAST, compiler.LDFLAGS)
    cxx, fast, ldflags = flags(gcc, generate=folder)
    assert f"-fprofile-generate={folder}" in fast and f"-fprofile-generate={folder}" in ldflags
    assert f"-fprofile-use={folder} " in flags(gcc, use=folder)[1]
    assert f"-fprofile-use={folder / 'merged.profdata'} " in flags(clang, use=folder)[1]
    assert gcc.identity() != clang.identity()
