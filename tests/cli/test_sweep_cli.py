"""``byoc sweep`` on the command line: a whole sweep on a local Ray it starts and stops, and
every user error as one message with exit status 1, never a traceback."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import sys
import tempfile

import pytest

from byoc.cli import main
from byoc.testing import qdq_cnn

ray = pytest.importorskip("ray")


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("sweep-cli") / "small_int8.onnx"
    path.write_bytes(qdq_cnn(8, 16, [(16, 3, 1)]).SerializeToString())
    return path


def sweep(*args) -> list[str]:
    return ["sweep", *map(str, args)]


def test_a_sweep_runs_on_a_local_ray_and_says_which_points_failed(model_path, tmp_path, capsys):
    out = tmp_path / "out"
    status = main(sweep(model_path, "--plugins", "vta_sim", "--grid",
                        "vta_sim.mem_port_bits=64,100", "--out", out, "--workers", "2"))
    printed = capsys.readouterr()
    assert status == 0, printed.err
    assert not ray.is_initialized(), "the sweep shuts down the Ray it started"
    lines = printed.out.splitlines()
    assert lines[0] == "2 point(s): 2 run, 0 skipped (in {} already), 1 with an error".format(out)
    assert lines[1].startswith("  vta_sim.mem_port_bits=100: does not compile:")
    assert [line for line in lines if line.startswith("wrote")] == [
        f"wrote {out / name}" for name in ("results.csv", "results.json", "pareto.png")]
    assert "] 2/2 points, 0 skipped, 1 failed" in printed.err
    rows = json.loads((out / "results.json").read_text())
    assert rows[0]["vta_sim.mem_port_bits"] == 64 and rows[0]["cycles"] > 0
    table = lines[lines.index("") + 1:]
    assert table[0].split() == ["vta_sim.mem_port_bits", "cycles", "GEMM", "util", "DRAM",
                                "KiB", "SRAM", "KiB", "correct", "rtl_equal", "front"]
    assert table[1].split() == ["64", f"{rows[0]['cycles']:,}",
                                f"{100 * rows[0]['gemm_utilisation']:.1f}%",
                                f"{rows[0]['dram_bytes'] / 1024:,.0f}",
                                f"{rows[0]['sram_bytes'] / 1024:,.0f}", "yes", "-", "*"]
    assert table[2].split() == ["100", *"-" * 6]

    assert main(sweep(model_path, "--plugins", "vta_sim", "--grid",
                      "vta_sim.mem_port_bits=64,100", "--out", out)) == 0
    assert "2 point(s): 0 run, 2 skipped" in capsys.readouterr().out


@pytest.mark.parametrize("args, says", [
    (["--grid", "vta_sim.mem_port_bits"], "--grid 'vta_sim.mem_port_bits': expected "
                                          "PLUGIN.NAME=V1,V2"),
    (["--grid", "vta_sim.mem_port_bit=64"], "has no option 'mem_port_bit' (did you mean "
                                            "'mem_port_bits'?)"),
    (["--grid", "vta_sim.mem_port_bits=64", "--ray-address", "127.0.0.1:1"],
     "cannot reach the Ray cluster at 127.0.0.1:1"),
    (["--grid", "vta_sim.mem_port_bits=64", "--ray-address", "head-node"],
     "--ray-address 'head-node': expected HOST:PORT"),
    (["--grid", "vta_sim.mem_port_bits=64", "--workers", "0"], "--workers 0: give 1 or more"),
])
def test_user_errors_are_one_message(model_path, tmp_path, capsys, args, says):
    status = main(sweep(model_path, "--plugins", "vta_sim", "--out", tmp_path, *args))
    err = capsys.readouterr().err
    assert status == 1
    assert says in " ".join(err.split()), err
    assert err.startswith("byoc: error:") and "Traceback" not in err


def test_a_missing_model_is_named(tmp_path, capsys):
    assert main(sweep(tmp_path / "nope.onnx", "--plugins", "vta_sim", "--grid",
                      "vta_sim.block_out=16", "--out", tmp_path / "out")) == 1
    assert f"cannot read the model {tmp_path / 'nope.onnx'}" in capsys.readouterr().err


def test_without_ray_the_sweep_says_how_to_install_it(model_path, tmp_path, capsys,
                                                     monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)   # import ray raises ImportError
    assert main(sweep(model_path, "--plugins", "vta_sim", "--grid", "vta_sim.block_out=16",
                      "--out", tmp_path)) == 1
    assert "pip install 'byoc[sweep]'" in capsys.readouterr().err


@pytest.mark.slow
def test_a_sweep_runs_on_an_existing_ray_cluster(model_path, tmp_path):
    """docs/sweep.md's cluster recipe, on one machine: `ray start --head`, then the sweep
    with --ray-address; Ray's token authentication (on by default since Ray 2.59) needs
    RAY_AUTH_MODE=token on the side that connects."""
    import socket
    import subprocess

    def free_port() -> int:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            return probe.getsockname()[1]

    # ports of its own, so that it starts beside another Ray on this machine
    port, client_port, agent_port = free_port(), free_port(), free_port()
    ray_cli = [sys.executable, "-m", "ray.scripts.scripts"]
    env = {**os.environ, "RAY_AUTH_MODE": "token"}
    # its own temp dir (short: Ray's socket paths live in it), by which its processes are found
    temp_dir = tempfile.mkdtemp(prefix="ray", dir="/tmp")
    try:
        started = subprocess.run([*ray_cli, "start", "--head", f"--port={port}", "--num-cpus=2",
                                  "--include-dashboard=false", "--disable-usage-stats",
                                  f"--temp-dir={temp_dir}",
                                  f"--ray-client-server-port={client_port}",
                                  f"--dashboard-agent-listen-port={agent_port}"],
                                 capture_output=True, text=True, env=env, timeout=120)
        assert started.returncode == 0, started.stdout + started.stderr
        out = tmp_path / "cluster"
        result = subprocess.run(
            [sys.executable, "-m", "byoc", *sweep(model_path, "--plugins", "vta_sim", "--grid",
                                                 "vta_sim.mem_port_bits=64,128", "--ray-address",
                                                 f"127.0.0.1:{port}", "--out", out)],
            capture_output=True, text=True, env=env, timeout=300)
        assert result.returncode == 0, result.stderr[-2000:]
        # the cluster's own address for itself: this machine's IP, with the port given
        assert re.search(rf"2 point\(s\) to run on the Ray cluster at [\d.]+:{port} \(2 CPUs\)",
                         result.stderr), result.stderr
        rows = json.loads((out / "results.json").read_text())
        assert [row["vta_sim.mem_port_bits"] for row in rows] == [64, 128]
        assert all(row["correct"] and row["cycles"] > 0 for row in rows)
    finally:
        stop_ray_cluster(temp_dir, port)
        shutil.rmtree(temp_dir, ignore_errors=True)


def stop_ray_cluster(temp_dir: str, port: int) -> None:
    """Stop the Ray cluster started with ``--temp-dir=temp_dir --port=port`` and nothing else:
    `ray stop` would stop every Ray on the machine (a user's cluster, another sweep). Its
    processes are those whose command line names the temp dir or the port, and their
    children; each gets SIGTERM, then SIGKILL if it is still there after 10 s."""
    import signal
    import time
    from pathlib import Path

    def processes() -> dict[int, tuple[int, str]]:
        found = {}
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    args = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
                    parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
                except (OSError, ValueError, IndexError):
                    continue
                found[int(entry.name)] = (parent, args)
        return found

    table = processes()
    ours = {pid for pid, (_, args) in table.items()
            if temp_dir in args or re.search(rf":{port}\b", args)} - {os.getpid()}
    grown = True
    while grown:
        children = {pid for pid, (parent, _) in table.items() if parent in ours} - ours
        ours |= children
        grown = bool(children)
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in ours:
            with contextlib.suppress(OSError):
                os.kill(pid, sig)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and ours & set(processes()):
            time.sleep(0.2)
