"""vta_sweep: ``byoc sweep`` over VTA configurations on an int8 ResNet-18, on the functional
simulator and on the RTL, with the results and Pareto plots in RESULTS.md.

The grid crosses the GEMM's shape (configuration files benchmarks/vta_configs/gemm*.yaml,
VTA's default with 8x8, 16x16 or 32x32 blocks) with the memory port's width and the
accumulator buffer's depth: 18 points on the simulator (cycles from vta_sim's timing model of
each generated stream) and 4 on the RTL (cycles counted by the RTL, which is checked byte for
byte against the simulator after every run). Each sweep runs through the command line exactly
as a user runs it, into benchmarks/build/ (a second run resumes: points already there are
skipped; --fresh starts over).

    python benchmarks/vta_sweep.py [--workers 2] [--fresh]
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

from results_file import write_section

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
CONFIGS = HERE / "vta_configs"
BUILD = HERE / "build"
MODEL = "resnet18_int8"

SWEEPS = {
    "sim": [("vta_sim.config", [str(CONFIGS / f"gemm{n}x{n}.yaml") for n in (8, 16, 32)]),
            ("vta_sim.mem_port_bits", ["64", "128", "256"]),
            ("vta_sim.acc_depth", ["1024", "2048"])],
    "rtl": [("vta_sim.config", [str(CONFIGS / f"gemm{n}x{n}.yaml") for n in (8, 16)]),
            ("vta_sim.mem_port_bits", ["64", "128"])],
}


def model_path() -> Path:
    sys.path.insert(0, str(ROOT))
    from byoc import model_zoo

    return model_zoo.build(MODEL, ROOT / "examples" / "build", model_zoo.MODELS)


def run_sweep(target: str, model: Path, workers: int, fresh: bool) -> tuple[list[dict], float]:
    out = BUILD / f"sweep-{MODEL}-{target}"
    if fresh and out.exists():
        shutil.rmtree(out)
    command = [sys.executable, "-m", "byoc", "sweep", str(model), "--plugins", "vta_sim",
               "--target", target, "--workers", str(workers), "--out", str(out)]
    for key, values in SWEEPS[target]:
        command += ["--grid", f"{key}={','.join(values)}"]
    began = time.perf_counter()
    subprocess.run(command, check=True, cwd=ROOT)
    seconds = time.perf_counter() - began
    rows = json.loads((out / "results.json").read_text())
    shutil.copyfile(out / "pareto.png", HERE / f"vta_sweep_{target}_pareto.png")
    return rows, seconds


def table(rows: list[dict]) -> list[str]:
    keys = [key for key, _ in SWEEPS["sim"]]
    lines = ["| GEMM | port bits | ACC depth | cycles | GEMM utilisation | DRAM MB | SRAM KiB "
             "| correct | RTL equal | seconds | error |",
             "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|---|"]
    for row in rows:
        gemm = Path(row[keys[0]]).stem.removeprefix("gemm")
        cells = [gemm, row[keys[1]], row.get(keys[2], "default")]
        if row["cycles"] is None:
            cells += ["", "", "", "", "", "", f"{row['seconds']:.0f}", row["error"] or ""]
        else:
            rtl = {None: "", True: "yes", False: "NO"}[row["rtl_equal"]]
            cells += [f"{row['cycles']:,}", f"{row['gemm_utilisation']:.1%}",
                      f"{row['dram_bytes'] / 1e6:.1f}", f"{row['sram_bytes'] / 1024:.0f}",
                      "yes" if row["correct"] else "NO", rtl, f"{row['seconds']:.0f}",
                      row["error"] or ""]
        lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    return lines


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", type=int, default=2, help="local Ray workers (2)")
    parser.add_argument("--fresh", action="store_true",
                        help="delete earlier results in benchmarks/build first")
    args = parser.parse_args(argv)
    began = time.perf_counter()
    model = model_path()
    results = {target: run_sweep(target, model, args.workers, args.fresh) for target in SWEEPS}
    lines = ["# vta_sweep: `byoc sweep` over VTA configurations on an int8 ResNet-18", "",
             "Produced by:", "", "    python benchmarks/vta_sweep.py --fresh", "",
             f"- Machine: {platform.machine()}, Python {platform.python_version()}; "
             f"{args.workers} local Ray workers",
             f"- Date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; the whole run "
             f"took {time.perf_counter() - began:.0f} s",
             f"- Model: {MODEL} (byoc's zoo: a ResNet-18 quantized by onnxruntime.quantization,"
             f" QDQ), every layer vta_sim takes on vta_sim (priority placement), the rest on "
             f"cpu_llvm; one run per point on the same random input.",
             "- Grid: GEMM shape (benchmarks/vta_configs/gemm*.yaml: VTA's default "
             "configuration with 8x8, 16x16 or 32x32 blocks) x memory port bits x ACC depth "
             "(the RTL sweep: 8x8 and 16x16 x 64 and 128 bits, default ACC depth). Columns as"
             " docs/sweep.md defines them; SRAM = the on-chip buffers (UOP, INP, WGT, ACC)."]
    for target, (rows, seconds) in results.items():
        title = {"sim": "On the functional simulator (cycles: vta_sim's timing model of each "
                        "generated stream)",
                 "rtl": "On the RTL (cycles: the RTL's counter; each run checked byte for "
                        "byte against the simulator)"}[target]
        good = [r for r in rows if r["cycles"] is not None]
        lines += ["", f"## {title}", "",
                  f"{len(rows)} points, {len(good)} with figures, sweep wall time "
                  f"{seconds:.0f} s (points already in benchmarks/build are skipped).", ""]
        lines += table(rows)
        lines += ["", f"![cycles against on-chip buffer bytes, Pareto front marked]"
                      f"(vta_sweep_{target}_pareto.png)"]
    write_section("vta_sweep", "\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
