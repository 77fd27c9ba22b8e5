"""cpu_llvm's integer products with few activation rows (kernels/qgemv.py): QLinearMatMul
and MatMulInteger (QDQ Gemm groups of 3 rows are in test_int8.py), bit-exact with the
reference interpreter for 1 to 4 rows (5 take the product driver), odd K and N (tails of
16-channel tiles, and tiles left over from the 8 taken at once), both activation and weight
types, zero points at the extremes and per-column weight zero points, with VNNI and
portable, at 1 and 2 threads."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto as T
from onnx import helper
from test_int8 import TT, check_exact, int_path, ints  # noqa: F401 (fixture)

from byoc.testing import make_model
from byoc_cpu_llvm.kernels import qgemv

# x shape, N: 1 to 4 rows, K not a multiple of 4 (nor of 64), N with a tail and 8 + 1 tiles
SHAPES = [([1, 3], 1), ([1, 130], 145), ([2, 1, 67], 17), ([4, 1280], 130), ([5, 33], 40)]
# activation type and zero point, weight type and whether its zero points vary per column
ZEROS = [(np.uint8, 0, np.int8, False), (np.uint8, 255, np.uint8, True),
         (np.int8, -128, np.int8, True), (np.int8, 127, np.uint8, False)]


@pytest.mark.usefixtures("int_path")
@pytest.mark.parametrize("x_dtype,x_zero,w_dtype,per_column", ZEROS)
@pytest.mark.parametrize("x_shape,n", SHAPES)
def test_few_rows_product_is_exact(x_shape, n, x_dtype, x_zero, w_dtype, per_column):
    rng = np.random.default_rng(n + abs(x_zero))
    k = x_shape[-1]
    centre = 128 if w_dtype == np.uint8 else 0
    w_zero = centre + (rng.integers(-3, 4, n) if per_column else np.zeros(n, np.int64))
    init = {"xs": np.float32(0.05), "xz": np.array(x_zero, x_dtype),
            "w": ints(rng, w_dtype, [k, n]), "wz": w_zero.astype(w_dtype),
            # multipliers of powers of two: some products are exact .5 ties
            "ws": rng.choice(np.array([1.0, 0.5], np.float32), n),
            "ys": np.float32(0.05 * 4 * k), "yz": np.array(x_zero // 2, x_dtype)}
    x = ints(rng, x_dtype, x_shape)
    out_shape = x_shape[:-1] + [n]
    xt = TT[np.dtype(x_dtype)]
    reference = check_exact(make_model(
        [helper.make_node("QLinearMatMul", ["x", "xs", "xz", "w", "ws", "wz", "ys", "yz"],
                          ["y"])], [("x", xt, x_shape)], [("y", xt, out_shape)], init,
        opset=13), {"x": x})
    if n > 20:
        assert len(np.unique(reference["y"])) > 20  # not all saturated
    check_exact(make_model(
        [helper.make_node("MatMulInteger", ["x", "w", "xz", "wz"], ["y"])],
        [("x", xt, x_shape)], [("y", T.INT32, out_shape)], init, opset=13), {"x": x})


def test_few_rows_means_at_most_four():
    """The shapes above cover both sides of the limit."""
    rows = [int(np.prod(shape[:-1])) for shape, _ in SHAPES]
    assert qgemv.MOST_COLS == 4 and max(rows) > 4 >= min(rows)
