"""``byoc sweep``'s results: DIR/results.csv, DIR/results.json and DIR/pareto.png.

One row per point of the grid, in the grid's order. The columns, which scripts rely on (the
tests pin them): every grid key as given (``vta_sim.block_out``), then :data:`FIGURES`:

- ``cycles``: the device's clock cycles of one run, summed over the partitions whose plugin
  reports hardware figures;
- ``gemm_utilisation``: the cycles the same work takes with every multiply-accumulate unit
  busy, summed, over ``cycles`` (0..1);
- ``dram_bytes``: bytes moved between DRAM and the chip, summed;
- ``sram_bytes``: the chip's on-chip buffer bytes (the largest over the partitions): the area
  proxy;
- ``correct``: whether the outputs equal the reference interpreter's: within one quantization
  step for a quantized output or one a DequantizeLinear gives, as :class:`byoc.verify.Tolerance`
  judges them by default;
- ``rtl_equal``: on ``--target rtl``, whether the RTL gave byte for byte what the functional
  simulator gave on every run; empty on ``--target sim``;
- ``seconds``: the point's wall time (compile, run and check);
- ``error``: why the point has no figures, or has figures that are not to be trusted (an
  invalid configuration, a failed run, nothing offloaded); empty for a good point.

In results.json each row is an object with the same keys, numbers as numbers and an empty
cell as null; results.csv writes true/false for booleans and nothing for an empty cell.
The plot shows cycles against sram_bytes for every point without an error, the Pareto front
(the points no other point beats on both) marked and connected.
"""

from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path
from typing import Any, Mapping, Sequence

from byoc.errors import InputError

FIGURES = ("cycles", "gemm_utilisation", "dram_bytes", "sram_bytes", "correct", "rtl_equal",
           "seconds", "error")
"""The columns after the grid keys, in order."""

Row = Mapping[str, Any]


def columns(grid_keys: Sequence[str]) -> list[str]:
    """Every column of the results, in order: the grid keys as given, then FIGURES."""
    return [*grid_keys, *FIGURES]


def write_results(out_dir: str | Path, grid_keys: Sequence[str], rows: Sequence[Row],
                  title: str) -> list[Path]:
    """Write results.csv, results.json and pareto.png into ``out_dir``; return their paths."""
    out = Path(out_dir)
    names = columns(grid_keys)
    table = [{name: row.get(name) for name in names} for row in rows]
    written = [out / "results.csv", out / "results.json", out / "pareto.png"]
    write_atomically(written[0], _csv_text(names, table).encode())
    write_atomically(written[1], (json.dumps(table, indent=1, allow_nan=False) + "\n").encode())
    write_atomically(written[2], _pareto_png(table, grid_keys, title))
    return written


def write_atomically(path: Path, data: bytes) -> None:
    """``data`` into ``path`` through a temporary file beside it: a reader (or a sweep killed
    half way) never sees half a file."""
    partial = path.with_name(f".{path.name}.{os.getpid()}")
    try:
        partial.write_bytes(data)
        partial.replace(path)
    except OSError as exc:
        partial.unlink(missing_ok=True)
        raise InputError(f"cannot write {path}: {exc.strerror}") from None


def _csv_text(names: Sequence[str], table: Sequence[Row]) -> str:
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(names)
    for row in table:
        writer.writerow([_cell(row[name]) for name in names])
    return text.getvalue()


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def pareto_front(points: Sequence[tuple[float, float]]) -> list[int]:
    """The indices of the points (x, y) that no other point beats on both (lower x and lower
    y; a tie on both keeps the first), by increasing x."""
    order = sorted(range(len(points)), key=lambda i: (points[i][0], points[i][1], i))
    front: list[int] = []
    for index in order:
        if not front or points[index][1] < points[front[-1]][1]:
            front.append(index)
    return front


_SUMMARY_FIGURES = (
    ("cycles", "cycles", lambda v: f"{v:,}"),
    ("GEMM util", "gemm_utilisation", lambda v: f"{100 * v:.1f}%"),
    ("DRAM KiB", "dram_bytes", lambda v: f"{v / 1024:,.0f}"),
    ("SRAM KiB", "sram_bytes", lambda v: f"{v / 1024:,.0f}"),
    ("correct", "correct", lambda v: "yes" if v else "NO"),
    ("rtl_equal", "rtl_equal", lambda v: "yes" if v else "NO"),
)
"""The terminal summary's figures: title, column, how a value reads."""


def summary_lines(grid_keys: Sequence[str], rows: Sequence[Row]) -> list[str]:
    """The results as a text table for the terminal, one line per point in the grid's order,
    the Pareto front's points (of the plot: cycles against sram_bytes) marked with ``*``."""
    good = [i for i, row in enumerate(rows) if _plotted(row)]
    front = {good[i] for i in pareto_front([(rows[i]["sram_bytes"], rows[i]["cycles"])
                                            for i in good])}
    header = [*grid_keys, *(title for title, _, _ in _SUMMARY_FIGURES), "front"]
    table = [header]
    for index, row in enumerate(rows):
        table.append([*(_short(row.get(key)) for key in grid_keys),
                      *("-" if row.get(name) is None else show(row[name])
                        for _, name, show in _SUMMARY_FIGURES),
                      "*" if index in front else ""])
    widths = [max(len(line[c]) for line in table) for c in range(len(header))]
    return ["  ".join(cell.rjust(width) if c >= len(grid_keys) else cell.ljust(width)
                      for c, (cell, width) in enumerate(zip(line, widths))).rstrip()
            for line in table]


def _plotted(row: Row) -> bool:
    """Whether a point has the figures the plot and the Pareto front use, and no error."""
    return (not row.get("error") and row.get("cycles") is not None
            and row.get("sram_bytes") is not None)


def _short(value: Any) -> str:
    """A grid value as a label: a file path by its file name."""
    text = str(value)
    return Path(text).name if "/" in text or "\\" in text else text


def _pareto_png(table: Sequence[Row], grid_keys: Sequence[str], title: str) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D

    good = [row for row in table if _plotted(row)]
    points = [(row["sram_bytes"], row["cycles"]) for row in good]
    figure = Figure(figsize=(8, 6.5), layout="constrained")
    axes = figure.add_subplot()
    axes.set_xlabel("on-chip buffers (sram_bytes)")
    axes.set_ylabel("device cycles (cycles)")
    axes.set_title(f"{title}: {len(good)} of {len(table)} point(s) with figures")
    if points:
        axes.scatter(*zip(*points), color="tab:gray", label="point")
        front = pareto_front(points)
        axes.plot([points[i][0] for i in front], [points[i][1] for i in front], "o-",
                  color="tab:red", label="Pareto front")
        names = []
        for number, i in enumerate(front, 1):
            axes.annotate(str(number), points[i], textcoords="offset points", xytext=(6, 6),
                          fontsize=8, color="tab:red")
            names.append(f"{number}: " + ", ".join(f"{key.rpartition('.')[2]}="
                                                   f"{_short(good[i][key])}"
                                                   for key in grid_keys))
        axes.legend()
        figure.legend([Line2D([], [], linestyle="none")] * len(names), names,
                      loc="outside lower center", fontsize=7, frameon=False,
                      handlelength=0, title="the Pareto front's points", title_fontsize=8)
    else:
        axes.text(0.5, 0.5, "no point has figures (see the error column of results.csv)",
                  ha="center", va="center", transform=axes.transAxes)
    data = io.BytesIO()
    figure.savefig(data, format="png", dpi=110)
    return data.getvalue()
