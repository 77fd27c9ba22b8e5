"""The base class and registry of the reference interpreter's operator implementations.

Each op family lives in its own module of this package and registers its classes with the
:func:`register` decorator. An implementation's ``run`` takes the node's inputs positionally
(``None`` for an omitted optional input) and its ONNX attributes as keyword arguments, and
returns one array or a tuple of arrays, one per node output. Implementations follow the ONNX
specification exactly, for every opset from 9 on: where an opset moved an attribute to an
input (``axes`` of Squeeze, ``min``/``max`` of Clip, ``split`` of Split...), ``run`` accepts
both forms.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, ClassVar

import numpy as np

from byoc.core.ir import Node, TensorType

_REGISTRY: dict[tuple[str, str], type["OpImpl"]] = {}


class OpImpl(ABC):
    """Reference semantics of one ONNX operator.

    Instances are made per node, so ``run`` can read ``self.node`` (for example the number of
    outputs), ``self.output_types`` (the statically inferred output types) and ``self.opset``
    (the version of the node's domain the model imports).
    """

    op_type: ClassVar[str]
    domain: ClassVar[str] = ""

    def __init__(self, node: Node, output_types: list[TensorType | None], opset: int) -> None:
        self.node = node
        self.output_types = output_types
        self.opset = opset

    @abstractmethod
    def run(self, *inputs: np.ndarray | None, **attrs: Any) -> np.ndarray | tuple[np.ndarray, ...]:
        """The op's outputs for ``inputs`` and the node's attributes."""

    def check(self, *inputs: np.ndarray | None, **attrs: Any) -> None:
        """Raise a ValueError saying what is wrong when the node cannot run on inputs of these
        shapes and dtypes, for constraints that ONNX shape inference does not check.

        The importer calls this on every node, before anything runs. An input whose value is
        not known at import is a zero-strided stand-in there: only its shape and dtype are
        real, so a check must not read its elements or allocate anything of its size.
        """


def register(*op_types: str, domain: str = ""):
    """Class decorator: register an :class:`OpImpl` subclass for ``op_types`` in ``domain``."""

    def decorate(cls: type[OpImpl]) -> type[OpImpl]:
        for op_type in op_types:
            key = (domain, op_type)
            if key in _REGISTRY:
                raise RuntimeError(f"{domain or 'ai.onnx'}::{op_type} registered twice")
            _REGISTRY[key] = cls
        cls.domain = domain
        if len(op_types) == 1:
            cls.op_type = op_types[0]
        return cls

    return decorate


def lookup(domain: str, op_type: str) -> type[OpImpl] | None:
    """The implementation class for an op, or None when byoc does not support it."""
    return _REGISTRY.get((_normal_domain(domain), op_type))


def registered_ops() -> dict[tuple[str, str], type[OpImpl]]:
    return dict(_REGISTRY)


def _normal_domain(domain: str) -> str:
    return "" if domain in ("", "ai.onnx") else domain


def accumulation_dtype(dtype: np.dtype) -> np.dtype:
    """The dtype float sums of products (Conv, Gemm, MatMul) accumulate in.

    The reference accumulates in float64 and rounds once, at the end, so that its result is
    the correctly rounded value of the exact sum. This matters for quantized models: a
    DequantizeLinear -> Conv -> QuantizeLinear group then equals the exact integer
    accumulation scaled, as integer kernels compute it, instead of drifting by float32
    summation order onto the other side of a rounding tie.
    """
    dtype = np.dtype(dtype)
    return np.dtype(np.float64) if np.issubdtype(dtype, np.floating) else dtype


def widened_dtype(dtype: np.dtype) -> np.dtype:
    """The dtype elementwise float math runs in: float16 is widened to float32, as
    onnxruntime computes half-precision reductions and normalizations in float32."""
    return np.dtype(np.float32) if np.dtype(dtype) == np.float16 else np.dtype(dtype)
