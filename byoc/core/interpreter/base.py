"""The base class and registry of the reference interpreter's operator implementations.

Each op family lives in its own module of this package and registers its classes with the
:func:`register` decorator. An implementation's ``run`` takes the node's inputs positionally
(``None`` for an omitted optional input) and its ONNX attributes as keyword arguments, and
returns one array or a tuple of arrays, one per node output. Implementations follow the ONNX
specification exactly, for every opset from 9 on: where an opset moved an attribute to an
input (``axes`` of Squeeze, ``min``/``max`` of Clip, ``split`` of Split...), ``run`` accepts
both forms.

Ops of other domains (``com.mychip::FusedGelu``) come from plugins, which declare them with
the ``byoc_import_custom_ops`` hook: the plugin manager records each declaration here with
:func:`declare_plugin_op` when the plugin registers and withdraws it when the plugin is
unregistered, so :func:`lookup` finds them like byoc's own ops.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from byoc.core import dtypes
from byoc.core.ir import Node, TensorType
from byoc.errors import PluginError

if TYPE_CHECKING:
    from byoc.plugins.api import DeclaredOp

_REGISTRY: dict[tuple[str, str], type["OpImpl"]] = {}


class OpImpl(ABC):
    """Reference semantics of one ONNX operator.

    Instances are made per node, so ``run`` can read ``self.node`` (for example the number of
    outputs), ``self.output_types`` (the statically inferred output types) and ``self.opset``
    (the version of the node's domain the model imports).
    """

    op_type: ClassVar[str]
    domain: ClassVar[str] = ""
    # The ONNX names of the inputs whose *values* decide the size of the op's outputs
    # (NonZero's X, OneHot's depth). The importer sizes such a node by evaluating it when
    # those inputs are known, and otherwise names them in its error.
    output_size_depends_on: ClassVar[tuple[str, ...]] = ()

    def __init__(self, node: Node, output_types: list[TensorType | None], opset: int) -> None:
        self.node = node
        self.output_types = output_types
        self.opset = opset

    @abstractmethod
    def run(self, *inputs: np.ndarray | None, **attrs: Any) -> np.ndarray | tuple[np.ndarray, ...]:
        """The op's outputs for ``inputs`` and the node's attributes."""

    def check(self, *inputs: np.ndarray | None, **attrs: Any) -> None:  # noqa: B027 (no-op default)
        """Raise a ValueError saying what is wrong when the node cannot run on inputs of these
        shapes and dtypes, for constraints that ONNX shape inference does not check.

        The importer calls this on every node, before anything runs. An input whose value is
        not known at import is a zero-strided stand-in there: only its shape and dtype are
        real, so a check must not read its elements or allocate anything of its size.
        """

    def infer_types(self, input_types: list[TensorType | None],
                    **attrs: Any) -> list[TensorType | None] | None:
        """byoc's own output types, for a node whose outputs ONNX's shape inference leaves
        without a static shape while its inputs are not known at import (Dropout-7's mask).
        ``input_types`` has one entry per input (None for an omitted one); the result one per
        output, None where the op cannot tell. The default, None, tells nothing: such an
        output is refused as not static.
        """
        return None


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
    """The implementation class for an op, byoc's own or one a plugin declares, or None when
    no one implements it."""
    key = (_normal_domain(domain), op_type)
    if key in _REGISTRY:
        return _REGISTRY[key]
    declared = _DECLARED.get(key)
    return declared.op.implementation if declared else None


def registered_ops() -> dict[tuple[str, str], type[OpImpl]]:
    """byoc's own ops (those plugins declare are in :func:`declared_ops`)."""
    return dict(_REGISTRY)


_DECLARED: dict[tuple[str, str], DeclaredOp] = {}
# How many registrations of its plugin hold each declared op: several plugin managers in one
# process (the command line's and the default one) may register the same installed plugin.
_HOLDERS: dict[tuple[str, str], int] = {}


def declare_plugin_op(declared: DeclaredOp) -> None:
    """Make a plugin's op known to :func:`lookup`. PluginError naming both sides when
    another plugin (or byoc itself) already implements the op."""
    key = (declared.op.domain, declared.op.op_type)
    if key in _REGISTRY:
        raise PluginError(f"{declared.declarer} declares {declared.op.qualified_name}, which "
                          f"byoc implements itself; rename the plugin's op or its domain")
    held = _DECLARED.get(key)
    if held is not None and (held.plugin, held.origin) != (declared.plugin, declared.origin):
        raise PluginError(f"two plugins declare the op {declared.op.qualified_name}: "
                          f"{held.declarer} and {declared.declarer}; uninstall one of them "
                          f"(or have one rename its domain)")
    _DECLARED.setdefault(key, declared)
    _HOLDERS[key] = _HOLDERS.get(key, 0) + 1


def withdraw_plugin_op(domain: str, op_type: str) -> None:
    """Undo one :func:`declare_plugin_op` of the op (its plugin was unregistered)."""
    key = (domain, op_type)
    _HOLDERS[key] -= 1
    if not _HOLDERS[key]:
        del _HOLDERS[key], _DECLARED[key]


def declared_op(domain: str, op_type: str) -> DeclaredOp | None:
    """The plugin's declaration of an op of a custom domain, or None."""
    return _DECLARED.get((_normal_domain(domain), op_type))


def declared_ops() -> list[DeclaredOp]:
    """Every op the registered plugins declare, sorted by domain and op type."""
    return [_DECLARED[key] for key in sorted(_DECLARED)]


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
    return np.dtype(np.float64) if dtypes.is_float(dtype) else dtype


def widened_dtype(dtype: np.dtype) -> np.dtype:
    """The dtype elementwise float math runs in: float16 is widened to float32, as
    onnxruntime computes half-precision reductions and normalizations in float32."""
    return np.dtype(np.float32) if np.dtype(dtype) == np.float16 else np.dtype(dtype)
