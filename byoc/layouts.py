"""Tensor layouts at partition boundaries.

ONNX graphs keep 4-D activations as NCHW. A plugin whose kernels want another layout says so
in :attr:`byoc.plugins.api.PluginInfo.preferred_layout` (only ``"NHWC"`` for now): its
partitions then see every 4-D boundary value in that layout — the signature its runtime is
created for lists them with permuted shapes, and it receives and returns arrays laid out that
way. byoc converts at the boundaries, and only where the layouts differ: a value passed from
one NHWC partition straight to another stays NHWC (the NHWC -> NCHW -> NHWC pair cancels),
and a value several partitions read in the same layout is converted once.

:func:`plan_conversions` lists, for a compiled model, every conversion byoc makes and every
value that crosses a boundary in a plugin's layout without one, for the reports.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from byoc.core.ir import TensorType
from byoc.errors import PluginError
from byoc.plugins.api import PartitionSignature

GRAPH_LAYOUT = "NCHW"
# Axis order of each layout, as a permutation of the graph's NCHW axes.
_ORDERS = {"NCHW": (0, 1, 2, 3), "NHWC": (0, 2, 3, 1)}
MODEL = "model"          # stands for the model's own inputs and outputs in conversion plans


def check_layout(layout: str | None, plugin: str) -> str:
    """The boundary layout of ``plugin`` (the graph's own when it states none)."""
    if layout is None:
        return GRAPH_LAYOUT
    if layout not in _ORDERS:
        raise PluginError(f"plugin {plugin!r} prefers tensor layout {layout!r}, which byoc "
                          f"cannot convert to; supported: {', '.join(_ORDERS)}")
    return layout


def applies(ttype: TensorType, layout: str) -> bool:
    """Whether a value of type ``ttype`` is held in ``layout`` (only 4-D values are)."""
    return layout != GRAPH_LAYOUT and len(ttype.shape) == 4


def permuted(ttype: TensorType, layout: str) -> TensorType:
    order = _ORDERS[layout]
    return TensorType(ttype.dtype, tuple(ttype.shape[axis] for axis in order))


def convert(array: np.ndarray, source: str, target: str) -> np.ndarray:
    """``array`` (4-D, laid out as ``source``) laid out as ``target``, C-contiguous."""
    if source == target:
        return array
    to_graph = np.argsort(_ORDERS[source])
    return np.ascontiguousarray(np.transpose(array, to_graph).transpose(_ORDERS[target]))


def signature_in_layout(signature: PartitionSignature, layout: str) -> PartitionSignature:
    """``signature`` (graph layout) as a plugin with boundary ``layout`` sees it."""
    if layout == GRAPH_LAYOUT:
        return signature
    layouts = {name: layout for name, ttype in [*signature.inputs.items(),
                                                *signature.outputs.items()]
               if applies(ttype, layout)}

    def types(values: Mapping[str, TensorType]) -> dict[str, TensorType]:
        return {name: permuted(ttype, layout) if name in layouts else ttype
                for name, ttype in values.items()}

    return PartitionSignature(signature.name, types(signature.inputs), types(signature.outputs),
                              layouts)


@dataclass(frozen=True)
class LayoutConversion:
    """``value`` produced by ``producer`` in ``source`` layout, converted to ``target`` for
    ``consumers`` (partition names; :data:`MODEL` for the model's inputs and outputs)."""

    value: str
    producer: str
    consumers: tuple[str, ...]
    source: str
    target: str

    def __str__(self) -> str:
        return (f"{self.value}: {self.source} -> {self.target} ({self.producer} -> "
                f"{', '.join(self.consumers)})")


@dataclass(frozen=True)
class LayoutPlan:
    conversions: list[LayoutConversion]
    kept: list[LayoutConversion]      # crossed in a non-graph layout with no conversion


def plan_conversions(signatures: Sequence[PartitionSignature],
                     model_outputs: Sequence[str]) -> LayoutPlan:
    """Where a model compiled into ``signatures`` (topological order) converts layouts."""
    produced: dict[str, tuple[str, str]] = {}      # value -> (producer, layout)
    wanted: dict[tuple[str, str], list[str]] = {}  # (value, layout) -> consumers
    for signature in signatures:
        for name in signature.inputs:
            wanted.setdefault((name, signature.layouts.get(name, GRAPH_LAYOUT)), []).append(
                signature.name)
        for name in signature.outputs:
            produced[name] = (signature.name, signature.layouts.get(name, GRAPH_LAYOUT))
    for name in model_outputs:
        wanted.setdefault((name, GRAPH_LAYOUT), []).append(MODEL)
    conversions, kept = [], []
    for (name, layout), consumers in wanted.items():
        producer, source = produced.get(name, (MODEL, GRAPH_LAYOUT))
        entry = LayoutConversion(name, producer, tuple(consumers), source, layout)
        if source != layout:
            conversions.append(entry)
        elif layout != GRAPH_LAYOUT:
            kept.append(entry)
    return LayoutPlan(conversions, kept)


class LayoutEnv:
    """Values by name during a run, each in the layout it was produced in; :meth:`get`
    converts on demand and remembers the result, so each conversion happens once per run."""

    def __init__(self) -> None:
        self._values: dict[str, tuple[np.ndarray, str]] = {}
        self._converted: dict[tuple[str, str], np.ndarray] = {}

    def put(self, name: str, array: np.ndarray, layout: str = GRAPH_LAYOUT) -> None:
        self._values[name] = (array, layout)

    def get(self, name: str, layout: str = GRAPH_LAYOUT) -> np.ndarray:
        array, held = self._values[name]
        if held == layout or array.ndim != 4:
            return array
        key = (name, layout)
        if key not in self._converted:
            self._converted[key] = convert(array, held, layout)
        return self._converted[key]


__all__ = ["GRAPH_LAYOUT", "LayoutConversion", "LayoutEnv", "LayoutPlan", "MODEL", "applies",
           "check_layout", "convert", "permuted", "plan_conversions", "signature_in_layout"]
