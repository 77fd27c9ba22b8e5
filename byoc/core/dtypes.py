"""Mapping between ONNX element types and numpy dtypes, for the types byoc supports."""

from __future__ import annotations

import numpy as np
from onnx import TensorProto, helper

SUPPORTED_ONNX_TYPES = (
    TensorProto.FLOAT, TensorProto.DOUBLE, TensorProto.FLOAT16,
    TensorProto.INT8, TensorProto.UINT8, TensorProto.INT16, TensorProto.UINT16,
    TensorProto.INT32, TensorProto.UINT32, TensorProto.INT64, TensorProto.UINT64,
    TensorProto.BOOL,
)

_TO_NUMPY = {t: np.dtype(helper.tensor_dtype_to_np_dtype(t)) for t in SUPPORTED_ONNX_TYPES}
_TO_ONNX = {dtype: t for t, dtype in _TO_NUMPY.items()}


def to_numpy(onnx_type: int) -> np.dtype | None:
    """The numpy dtype of an ONNX element type, or None if byoc does not support it."""
    return _TO_NUMPY.get(onnx_type)


def to_onnx(dtype: np.dtype) -> int:
    return _TO_ONNX[np.dtype(dtype)]


def onnx_type_name(onnx_type: int) -> str:
    return TensorProto.DataType.Name(onnx_type) if onnx_type in TensorProto.DataType.values() \
        else str(onnx_type)


def from_name(name: str) -> np.dtype:
    """The supported numpy dtype called ``name`` (as in ``np.dtype(...).name``).

    Used when reading type names from files, so only byoc's own dtypes are accepted (never
    object or structured dtypes)."""
    for dtype in _TO_ONNX:
        if dtype.name == name:
            return dtype
    raise ValueError(f"unsupported dtype name {name!r}")
