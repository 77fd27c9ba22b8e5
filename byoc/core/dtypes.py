"""Mapping between ONNX element types and numpy dtypes, for the types byoc supports.

The types numpy lacks (bfloat16, the float8 and float4 formats, 4- and 2-bit integers) are
ml_dtypes' numpy dtypes, which is how onnx's own ``helper.tensor_dtype_to_np_dtype`` and
``numpy_helper.to_array`` represent them; one value takes one byte (or two for bfloat16)
in memory, whatever its packing in an ONNX file. Strings are object arrays of ``str``, as
``numpy_helper.to_array`` gives them.
"""

from __future__ import annotations

import ml_dtypes
import numpy as np
from onnx import TensorProto, helper

SUPPORTED_ONNX_TYPES = (
    TensorProto.FLOAT, TensorProto.DOUBLE, TensorProto.FLOAT16,
    TensorProto.INT8, TensorProto.UINT8, TensorProto.INT16, TensorProto.UINT16,
    TensorProto.INT32, TensorProto.UINT32, TensorProto.INT64, TensorProto.UINT64,
    TensorProto.BOOL, TensorProto.STRING, TensorProto.BFLOAT16,
    TensorProto.FLOAT8E4M3FN, TensorProto.FLOAT8E4M3FNUZ, TensorProto.FLOAT8E5M2,
    TensorProto.FLOAT8E5M2FNUZ, TensorProto.FLOAT8E8M0, TensorProto.FLOAT4E2M1,
    TensorProto.INT4, TensorProto.UINT4, TensorProto.INT2, TensorProto.UINT2,
)

_TO_NUMPY = {t: np.dtype(helper.tensor_dtype_to_np_dtype(t)) for t in SUPPORTED_ONNX_TYPES}
_TO_ONNX = {dtype: t for t, dtype in _TO_NUMPY.items()}

STRING = np.dtype(object)
BFLOAT16 = np.dtype(ml_dtypes.bfloat16)
FLOAT8E8M0 = np.dtype(ml_dtypes.float8_e8m0fnu)
# The float8 formats Cast's and QuantizeLinear's ``saturate`` attribute applies to.
FLOAT8_TYPES = tuple(np.dtype(t) for t in (ml_dtypes.float8_e4m3fn, ml_dtypes.float8_e4m3fnuz,
                                           ml_dtypes.float8_e5m2, ml_dtypes.float8_e5m2fnuz))
# Floats narrower than float16: every value converts exactly to float32.
NARROW_FLOAT_TYPES = (BFLOAT16, FLOAT8E8M0, np.dtype(ml_dtypes.float4_e2m1fn)) + FLOAT8_TYPES
NARROW_INTEGER_TYPES = tuple(np.dtype(t) for t in (ml_dtypes.int4, ml_dtypes.uint4,
                                                   ml_dtypes.int2, ml_dtypes.uint2))
# The dtypes ml_dtypes adds to numpy: numpy knows them by name once ml_dtypes is imported.
ML_DTYPES = NARROW_FLOAT_TYPES + NARROW_INTEGER_TYPES
# Elements packed into one byte of an ONNX tensor's data (raw_data or int32_data entry).
_PACKED_PER_BYTE = {TensorProto.INT4: 2, TensorProto.UINT4: 2, TensorProto.FLOAT4E2M1: 2,
                    TensorProto.INT2: 4, TensorProto.UINT2: 4}


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
    structured dtypes; ``object`` stands for strings only)."""
    for dtype in _TO_ONNX:
        if dtype.name == name:
            return dtype
    raise ValueError(f"unsupported dtype name {name!r}")


def is_float(dtype: np.dtype) -> bool:
    """Whether ``dtype`` is a floating-point type, numpy's own or one of ml_dtypes'
    (``np.issubdtype`` knows only numpy's)."""
    dtype = np.dtype(dtype)
    return dtype.kind == "f" or dtype in NARROW_FLOAT_TYPES


def is_integer(dtype: np.dtype) -> bool:
    """Whether ``dtype`` is an integer type, the 4- and 2-bit ones included (not bool)."""
    dtype = np.dtype(dtype)
    return dtype.kind in "iu" or dtype in NARROW_INTEGER_TYPES


def integer_range(dtype: np.dtype) -> tuple[int, int]:
    """The smallest and largest value of an integer type."""
    info = ml_dtypes.iinfo(np.dtype(dtype))
    return int(info.min), int(info.max)


def float_max(dtype: np.dtype) -> float:
    """The largest finite value of a float type."""
    return float(ml_dtypes.finfo(np.dtype(dtype)).max)


def widened(array: np.ndarray) -> np.ndarray:
    """``array`` with a narrow float type as float32 and a 4- or 2-bit integer type as int8,
    both exact: numpy's arithmetic and ufuncs then work on it as on any numpy array."""
    if array.dtype in NARROW_FLOAT_TYPES:
        return array.astype(np.float32)
    if array.dtype in NARROW_INTEGER_TYPES:
        return array.astype(np.int8 if integer_range(array.dtype)[0] < 0 else np.uint8)
    return array


def stored_entries(onnx_type: int, count: int) -> int:
    """How many entries of its typed data field (``int32_data``, ``float_data``...) an ONNX
    tensor of ``count`` elements holds: the 4- and 2-bit types pack several per entry."""
    per_entry = _PACKED_PER_BYTE.get(onnx_type, 1)
    return -(-count // per_entry)
