"""The compile-time packing of constant GEMM operands: every element lands where the
micro-kernel reads it, the padding is zero, the result is float32 and contiguous."""

from __future__ import annotations

import numpy as np
import pytest

from byoc_cpu_llvm.kernels.gemm_driver import pack_a, pack_b


@pytest.mark.parametrize("shape", [(5, 7), (64, 32), (1, 17), (3, 33, 70), (2, 4, 9, 6)])
@pytest.mark.parametrize("width", [1, 4, 8, 32])
def test_packed_operands_hold_every_element_where_the_kernel_reads_it(shape, width):
    x = np.arange(np.prod(shape), dtype=np.float64).reshape(shape) + 1
    *lead, rows, cols = shape
    a = pack_a(x, width)            # [..., M tiles, K, MR]: a[..., t, k, r] = x[..., t*MR + r, k]
    tiles = -(-rows // width)
    assert a.shape == (*lead, tiles, cols, width) and a.dtype == np.float32
    assert a.flags.c_contiguous
    for t in range(tiles):
        for r in range(width):
            row = t * width + r
            want = x[..., row, :] if row < rows else np.zeros((*lead, cols))
            assert np.array_equal(a[..., t, :, r], want)
    b = pack_b(x, width)            # [..., N panels, K, NR]: b[..., p, k, j] = x[..., k, p*NR + j]
    panels = -(-cols // width)
    assert b.shape == (*lead, panels, rows, width) and b.dtype == np.float32
    assert b.flags.c_contiguous
    for p in range(panels):
        for j in range(width):
            col = p * width + j
            want = x[..., :, col] if col < cols else np.zeros((*lead, rows))
            assert np.array_equal(b[..., p, :, j], want)
