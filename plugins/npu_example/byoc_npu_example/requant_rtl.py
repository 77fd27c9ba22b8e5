"""The requantize-and-activate unit of hw/npu under Verilator: pack a batch, run it, unpack.

:func:`build_requant` Verilates hw/npu/sim/npu_requant_shell.v (the unit ``npu_requant`` and
a shell that streams records through it) for a lane count, cached by
:func:`byoc.cosim.build_model`. :class:`RequantRtl` drives it: :meth:`RequantRtl.run_batch`
takes one row of ``lanes`` accumulators and multipliers per vector, with each vector's zero
point, clamps and output type, packs them into the shell's records (memory slot 0), runs the
whole batch in one ``model.run`` call (one vector per cycle, in C++) and reads the results
back from slot 1. :meth:`RequantRtl.requantize` has the reference function's signature.

The record layout is the one hw/npu/sim/npu_requant_shell.v's header describes; hw/npu/README.md
explains the unit.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from byoc.cosim import CosimError, CosimModel, build_model, locate_rtl

DEFAULT_LANES = 16
UNIT_LATENCY = 5          # cycles from a vector entering npu_requant to its result
SHELL_LATENCY = 2         # the shell's record read and result write
OPERAND_RANGE = (-256, 255)   # zero point, qmin and qmax are signed 9-bit in the unit
OUT_DTYPES = (np.dtype(np.int8), np.dtype(np.uint8))
INT32_RANGE = (-(1 << 31), (1 << 31) - 1)
RESET_CYCLES = 2


def rtl_dir() -> Path:
    """The unit's RTL: ``$BYOC_NPU_RTL`` when set, else the copy of hw/npu an installed
    wheel carries (byoc_npu_example/rtl), else hw/npu of the checkout (editable install);
    :mod:`byoc.cosim.locate` explains the order."""
    return locate_rtl("npu_example", package_dir=Path(__file__).parent, design="npu",
                      required="npu_requant.v", env="BYOC_NPU_RTL")


def rtl_sources(root: Path | None = None) -> list[Path]:
    """The unit and its simulation shell."""
    root = root or rtl_dir()
    return [root / "npu_requant.v", root / "sim" / "npu_requant_shell.v"]


def build_requant(lanes: int = DEFAULT_LANES, *, cache_dir: os.PathLike | str | None = None
                  ) -> CosimModel:
    """The Verilated shell for ``lanes`` lanes (built once per design and lane count)."""
    if not isinstance(lanes, int) or lanes < 1:
        raise CosimError(f"npu_requant: lanes must be a positive integer, got {lanes!r}.")
    return build_model("npu_requant_shell", rtl_sources(), clock="clk", done="o_done",
                       cache_dir=cache_dir, verilator_args=[f"-GLANES={lanes}"])


def record_dtype(lanes: int) -> np.dtype:
    """One vector's record in memory slot 0 (8 + 8 * lanes bytes, little-endian)."""
    return np.dtype([("zero_point", "<i2"), ("qmin", "<i2"), ("qmax", "<i2"),
                     ("flags", "u1"), ("unused", "u1"),
                     ("acc", "<i4", (lanes,)), ("multiplier", "<u4", (lanes,))])


def pack_batch(acc, multiplier, zero_point, qmin, qmax, out_signed) -> np.ndarray:
    """The records of a batch as the bytes of memory slot 0.

    ``acc`` and ``multiplier`` are (vectors, lanes); ``zero_point``, ``qmin``, ``qmax`` and
    ``out_signed`` have one value per vector (or one for all). Multipliers are taken as
    float32, as the reference takes them.
    """
    acc = np.asarray(acc)
    if acc.ndim != 2:
        raise CosimError(f"npu_requant: a batch's accumulators are (vectors, lanes); got "
                         f"shape {acc.shape}.")
    vectors, lanes = acc.shape
    if not np.issubdtype(acc.dtype, np.integer):
        raise CosimError(f"npu_requant: accumulators must be integers, got {acc.dtype}.")
    _check_range("accumulator", acc, INT32_RANGE)
    multiplier = np.broadcast_to(np.asarray(multiplier, dtype=np.float32), acc.shape)
    if not np.isfinite(multiplier).all():
        bad = multiplier[~np.isfinite(multiplier)][0]
        raise CosimError(f"npu_requant: multipliers must be finite float32 values; got {bad}.")
    records = np.zeros(vectors, dtype=record_dtype(lanes))
    for name, values in (("zero_point", zero_point), ("qmin", qmin), ("qmax", qmax)):
        values = np.broadcast_to(np.asarray(values), (vectors,))
        _check_range(name, values, OPERAND_RANGE)
        records[name] = values
    records["flags"] = np.broadcast_to(np.asarray(out_signed, dtype=bool), (vectors,))
    records["acc"] = acc
    records["multiplier"] = multiplier.view(np.uint32)
    return records.view(np.uint8)


def _check_range(name: str, values: np.ndarray, bounds: tuple[int, int]) -> None:
    low, high = bounds
    if values.size and (values.min() < low or values.max() > high):
        worst = values.min() if values.min() < low else values.max()
        raise CosimError(f"npu_requant: {name} {int(worst)} is outside {low}..{high}, the "
                         f"range the unit takes.")


class RequantRtl:
    """The Verilated unit, run a batch at a time."""

    def __init__(self, lanes: int = DEFAULT_LANES, *,
                 cache_dir: os.PathLike | str | None = None, model: CosimModel | None = None):
        self.lanes = lanes
        self.model = model if model is not None else build_requant(lanes, cache_dir=cache_dir)
        self.cycles = 0   # of the last batch, from start to done
        model = self.model
        model["i_start"] = 0
        model["rst"] = 1
        model.step(RESET_CYCLES)
        model["rst"] = 0

    def run_batch(self, acc, multiplier, zero_point, qmin, qmax, out_signed) -> np.ndarray:
        """Requantize a batch (arguments as :func:`pack_batch` takes them).

        Returns (vectors, lanes) int16 values: each vector's bytes read as int8 where its
        ``out_signed`` is true, else as uint8.
        """
        memory = pack_batch(acc, multiplier, zero_point, qmin, qmax, out_signed)
        vectors = len(acc)
        results = np.zeros(vectors * self.lanes, dtype=np.uint8)
        model = self.model
        model.attach_memory(0, memory)
        model.attach_memory(1, results)
        model.clear_memory_faults()
        model["i_count"] = vectors
        model["i_start"] = 1
        model.step()
        model["i_start"] = 0
        self.cycles = 1 + model.run(
            vectors + UNIT_LATENCY + SHELL_LATENCY + 16,
            describe=lambda m: f"{m['o_issued']} of {vectors} vectors read, "
                               f"{m['o_retired']} written.")
        if model.memory_fault_count:
            raise CosimError(f"npu_requant: the shell accessed memory outside the batch: "
                             f"{model.memory_faults()[:4]}")
        results = results.reshape(vectors, self.lanes)
        signed = np.broadcast_to(np.asarray(out_signed, dtype=bool), (vectors,))[:, None]
        return np.where(signed, results.view(np.int8), results).astype(np.int16)

    def requantize(self, acc, multiplier, zero_point, qmin, qmax, out_dtype) -> np.ndarray:
        """``clip(saturate(round_half_even(float32(acc) * float32(multiplier)) + zero_point),
        qmin, qmax)`` in ``out_dtype`` (int8 or uint8), computed by the RTL.

        ``multiplier`` broadcasts against ``acc`` (one value per output channel, say);
        ``zero_point``, ``qmin`` and ``qmax`` are single integers.
        """
        out_dtype = np.dtype(out_dtype)
        if out_dtype not in OUT_DTYPES:
            raise CosimError(f"npu_requant: the output type must be int8 or uint8, got "
                             f"{out_dtype}.")
        acc = np.asarray(acc)
        multiplier = np.broadcast_to(np.asarray(multiplier, dtype=np.float32), acc.shape)
        vectors = -(-acc.size // self.lanes)
        padding = vectors * self.lanes - acc.size
        rows = np.concatenate([acc.reshape(-1), np.zeros(padding, dtype=acc.dtype)])
        row_multipliers = np.concatenate([multiplier.reshape(-1),
                                          np.zeros(padding, dtype=np.float32)])
        results = self.run_batch(rows.reshape(vectors, self.lanes),
                                 row_multipliers.reshape(vectors, self.lanes),
                                 int(zero_point), int(qmin), int(qmax),
                                 out_dtype == np.int8)
        return results.reshape(-1)[:acc.size].reshape(acc.shape).astype(out_dtype)


__all__ = [
    "DEFAULT_LANES",
    "UNIT_LATENCY",
    "RequantRtl",
    "build_requant",
    "pack_batch",
    "record_dtype",
    "rtl_dir",
    "rtl_sources",
]
