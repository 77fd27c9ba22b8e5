"""``byoc verify``'s outputs: the table of partitions checked against the reference, the
model's outputs end to end, the first divergence; and the JSON of its fixed schema."""

from __future__ import annotations

import json
import math
from pathlib import Path

from byoc.errors import InputError
from byoc.verify import OutputCheck, Verification

# ``byoc verify --json``'s schema: keys and value types (scripts rely on it).
VERIFY_SCHEMA = {
    "ok": bool, "outputs_ok": bool,
    "partitions": [{"name": str, "plugin": str, "nodes": [str], "max_abs_err": float,
                    "snr_db": float, "ok": bool}],
    "first_divergence": (None, {"partition": str, "plugin": str, "pattern": str, "node": str,
                                "op_type": str, "nodes": [str]}),
}


def write_verify_json(path: str | Path, found: Verification) -> None:
    """``found`` as JSON (:meth:`~byoc.verify.Verification.to_json`: strict JSON, no NaN or
    infinity)."""
    try:
        Path(path).write_text(json.dumps(found.to_json(), indent=1, allow_nan=False) + "\n")
    except OSError as exc:
        raise InputError(f"cannot write the verification to {path}: {exc.strerror}") from None


def format_verification(found: Verification, title: str) -> str:
    """One line per partition (plugin, nodes, max abs error, steps, SNR, cosine, verdict),
    the model's outputs, then the first divergence and the verdict."""
    tol = found.tolerance
    lines = [f"verify {title}: each partition on the reference's values ({found.inputs})",
             f"tolerance: float outputs {tol.atol:g} + {tol.rtol:g} x max|reference|, "
             f"quantized outputs {tol.max_lsb} step(s)", ""]
    rows = [("partition", "plugin", "nodes", "max abs err", "steps", "SNR dB", "cosine", "")]
    for check in found.partitions:
        rows.append((check.name, check.plugin, str(len(check.nodes)),
                     _number(check.max_abs_err), _steps(check.steps), _number(check.snr_db, 1),
                     _number(check.cosine, 6), "ok" if check.ok else "FAIL"))
    lines += _table(rows)
    for check in found.partitions:
        if check.error:
            lines.append(f"  {check.name}: {check.error}")
        lines += [f"  {check.name}: output {o.value!r}: {o.problem}"
                  for o in check.outputs if o.problem]
    lines += ["", "model outputs, end to end:"]
    rows = [("output", "max abs err", "steps", "SNR dB", "cosine", "")]
    rows += [_output_row(o) for o in found.outputs]
    lines += _table(rows, text_columns=1, indent="  ")
    divergence = found.first_divergence
    if divergence is not None:
        lines += ["", f"first divergence: node {divergence.node!r}"
                      + (f" ({divergence.op_type})" if divergence.op_type else "")
                      + f" in partition {divergence.partition!r} (plugin {divergence.plugin}"
                      + (f", pattern {divergence.pattern}" if divergence.pattern else "") + ")",
                  f"  {divergence.detail}",
                  f"  failing piece: {', '.join(divergence.nodes)}"]
        lines += [f"  narrowed: {step}" for step in divergence.narrowed]
        if divergence.device is not None:
            device = divergence.device
            lines.append(f"  device: {device.description}")
            if device.waveform:
                lines.append(f"  waveform around it: {device.waveform}")
    failing = [check.name for check in found.partitions if not check.ok]
    lines.append("")
    if found.ok:
        lines.append(f"verify: OK ({_count(len(found.partitions), 'partition')} and "
                     f"{_count(len(found.outputs), 'output')} within tolerance)")
    else:
        bad_outputs = [o.value for o in found.outputs if not o.ok]
        lines.append(f"verify: FAILED ({len(failing)} of {len(found.partitions)} partitions"
                     f", {len(bad_outputs)} of {len(found.outputs)} outputs beyond tolerance)")
    return "\n".join(lines)


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}{'s' * (number != 1)}"


def _output_row(check: OutputCheck) -> tuple[str, ...]:
    return (check.value, _number(check.max_abs_err), _steps(check.steps),
            _number(check.snr_db, 1), _number(check.cosine, 6), "ok" if check.ok else "FAIL")


def _number(value: float, digits: int | None = None) -> str:
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    if digits is None:
        return f"{value:.4g}"
    return f"{value:.{digits}f}"


def _steps(steps: int | None) -> str:
    return "-" if steps is None else str(steps)


def _table(rows: list[tuple[str, ...]], text_columns: int = 2, indent: str = "") -> list[str]:
    """Columns aligned: the first ``text_columns`` to the left, the figures to the right."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return [indent + "  ".join(cell.ljust(width) if i < text_columns else cell.rjust(width)
                               for i, (cell, width) in enumerate(zip(row, widths))).rstrip()
            for row in rows]
