"""Each command on the simulator against an independent numpy computation: convolutions
against a direct loop and byoc's requantization, pooling and Add against byoc's reference
interpreter evaluating the QDQ nodes they stand for."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import helper

from byoc.core.interpreter.runner import evaluate_node
from byoc.quantization import requantize as reference_requantize
from byoc_npu_example.command_stream import (
    Conv2d,
    DepthwiseConv2d,
    EltwiseAdd,
    Pool,
    PoolMode,
    Program,
    TensorDesc,
    Window,
)
from byoc_npu_example.requant import requantize
from byoc_npu_example.sim import Simulator, padded

RNG = np.random.default_rng(7)


def simulate(inputs, output, make_command, constants=None):
    """Run one command. ``inputs``: (NHWC array, zero point, scale) each; ``output``: (shape,
    dtype, zero point, scale). Returns the output tensor and the simulator."""
    def aligned(size):
        return -(-size // 16) * 16

    constants = np.zeros(0, np.uint8) if constants is None else constants
    offset, tensors = aligned(constants.size), []
    for array, zero, scale in inputs:
        tensors.append(TensorDesc(offset, array.shape, array.dtype, zero, scale))
        offset = aligned(offset + array.size)
    shape, dtype, zero, scale = output
    tensors.append(TensorDesc(offset, shape, np.dtype(dtype), zero, scale))
    program = Program(tensors, [make_command(len(inputs))], offset + int(np.prod(shape)))
    sim = Simulator(program, constants)
    for index, (array, _, _) in enumerate(inputs):
        sim.write(index, array)
    sim.run()
    return sim.tensor(len(inputs)).copy(), sim


def blob(*arrays):
    """Constants blob of 16-byte aligned arrays, and the offset of each."""
    data, offsets = bytearray(), []
    for array in arrays:
        data.extend(bytes(-len(data) % 16))
        offsets.append(len(data))
        data.extend(np.ascontiguousarray(array).tobytes())
    return np.frombuffer(bytes(data), np.uint8), offsets


def direct_conv(x, x_zero, weight, bias, window, depthwise):
    """acc[n, oy, ox, o] by loops over output positions (x NHWC, weight O x kH x kW x I)."""
    top, left, bottom, right = window.pads
    xp = np.pad(x.astype(np.int64) - x_zero, ((0, 0), (top, bottom), (left, right), (0, 0)))
    out_h, out_w = window.out_size(x.shape[1], x.shape[2])
    (kh, kw), (sh, sw) = window.kernel, window.strides
    acc = np.zeros((1, out_h, out_w, weight.shape[0]), np.int64)
    for oy in range(out_h):
        for ox in range(out_w):
            patch = xp[0, oy * sh:oy * sh + kh, ox * sw:ox * sw + kw, :]
            if depthwise:
                acc[0, oy, ox] = (patch * weight.transpose(1, 2, 0)).sum(axis=(0, 1))
            else:
                acc[0, oy, ox] = np.einsum("hwi,ohwi->o", patch, weight.astype(np.int64))
    return acc + bias


@pytest.mark.parametrize("depthwise", [False, True])
@pytest.mark.parametrize("window", [Window((3, 3), (1, 1), (1, 1, 1, 1)),
                                    Window((3, 3), (2, 2), (0, 1, 1, 0)),
                                    Window((1, 1)), Window((7, 5), (2, 1), (3, 2, 3, 2))])
def test_convolutions_equal_a_direct_loop_and_byoc_requantization(depthwise, window):
    in_c = 12
    out_c = in_c if depthwise else 20
    x = RNG.integers(0, 256, (1, 9, 11, in_c)).astype(np.uint8)
    weight = RNG.integers(-127, 128, (out_c,) + window.kernel +
                          ((1,) if depthwise else (in_c,))).astype(np.int8)
    bias = RNG.integers(-5000, 5000, out_c).astype(np.int32)
    multipliers = RNG.uniform(1e-4, 3e-3, out_c).astype(np.float32)
    if depthwise:
        packed = np.zeros(window.kernel + (padded(in_c),), np.int8)
        packed[:, :, :in_c] = weight[..., 0].transpose(1, 2, 0)
    else:
        packed = np.zeros((padded(out_c),) + window.kernel + (padded(in_c),), np.int8)
        packed[:out_c, :, :, :in_c] = weight
    pad = np.zeros(padded(out_c) - out_c)
    constants, (w_at, b_at, m_at) = blob(packed, np.r_[bias, pad].astype(np.int32),
                                         np.r_[multipliers, pad].astype(np.float32))
    out_h, out_w = window.out_size(9, 11)
    cls = DepthwiseConv2d if depthwise else Conv2d
    y, sim = simulate([(x, 131, 0.02)], ((1, out_h, out_w, out_c), np.int8, -4, 0.1),
                      lambda out: cls(out, 0, window, w_at, b_at, m_at, -100, 127), constants)
    acc = direct_conv(x, 131, weight[..., 0] if depthwise else weight, bias, window, depthwise)
    expected = np.clip(reference_requantize(acc, multipliers, np.int8(-4), np.int8), -100, 127)
    np.testing.assert_array_equal(y, expected)
    assert sim.counters["macs"] == acc.size * window.kernel[0] * window.kernel[1] * \
        (1 if depthwise else in_c)


def test_requantize_is_byoc_requantization_then_the_clamp():
    acc = np.concatenate([RNG.integers(-2 ** 31, 2 ** 31, 4000),
                          [-2 ** 31, 2 ** 31 - 1, 0, 1, -1]]).astype(np.int32).reshape(-1, 5)
    for multiplier in (np.float32(0.37), RNG.uniform(1e-9, 1e-2, 5).astype(np.float32)):
        for dtype, zero, low, high in ((np.int8, -7, -128, 127), (np.uint8, 128, 130, 250)):
            expected = np.clip(reference_requantize(acc, multiplier, np.asarray(zero, dtype),
                                                    dtype), low, high)
            np.testing.assert_array_equal(requantize(acc, multiplier, zero, low, high, dtype),
                                          expected)


def test_requantize_refuses_what_the_unit_cannot_do():
    acc = np.zeros(3, np.int32)
    with pytest.raises(ValueError, match="int8 or uint8"):
        requantize(acc, np.float32(1), 0, 0, 1, np.int16)
    with pytest.raises(ValueError, match=r"\[-1, 300\] is not within uint8"):
        requantize(acc, np.float32(1), 0, -1, 300, np.uint8)
    with pytest.raises(ValueError, match="int32, not int64"):
        requantize(acc.astype(np.int64), np.float32(1), 0, 0, 1, np.int8)


def reference_qdq(op_type, inputs, y_scale, y_zero, y_dtype, **attrs):
    """DequantizeLinear on each (NCHW array, zero, scale), ``op_type``, QuantizeLinear: on
    byoc's reference interpreter."""
    floats = []
    for array, zero, scale in inputs:
        node = helper.make_node("DequantizeLinear", ["q", "s", "z"], ["f"])
        floats.append(evaluate_node(_node(node), [array, np.float32(scale),
                                                   np.asarray(zero, array.dtype)])[0])
    (result,) = evaluate_node(_node(helper.make_node(op_type, ["a", "b"][:len(inputs)], ["y"],
                                                     **attrs)), floats)
    quantize = _node(helper.make_node("QuantizeLinear", ["f", "s", "z"], ["q"]))
    return evaluate_node(quantize, [result, np.float32(y_scale), np.asarray(y_zero, y_dtype)])[0]


def _node(proto):
    from byoc.core.ir import Node

    attrs = {a.name: helper.get_attribute_value(a) for a in proto.attribute}
    return Node(proto.op_type, list(proto.input), list(proto.output), attrs, "n")


POOLS = [
    ("MaxPool", PoolMode.MAX, dict(kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1])),
    ("MaxPool", PoolMode.MAX, dict(kernel_shape=[2, 2], strides=[2, 2])),
    ("AveragePool", PoolMode.AVERAGE, dict(kernel_shape=[3, 3], pads=[1, 1, 1, 1])),
    ("AveragePool", PoolMode.AVERAGE_WITH_PADS,
     dict(kernel_shape=[3, 2], strides=[2, 1], pads=[1, 0, 2, 1], count_include_pad=1)),
    ("GlobalAveragePool", PoolMode.GLOBAL_AVERAGE, {}),
]


@pytest.mark.parametrize("op_type,mode,attrs", POOLS)
@pytest.mark.parametrize("height,width", [(7, 7), (8, 8), (13, 5), (1, 1)])
def test_pooling_equals_the_reference_qdq_pool(op_type, mode, attrs, height, width):
    kernel, pads = attrs.get("kernel_shape", (1, 1)), attrs.get("pads", (0, 0, 0, 0))
    if kernel[0] > height + pads[0] + pads[2] or kernel[1] > width + pads[1] + pads[3]:
        pytest.skip("the window does not fit the input")
    x = RNG.integers(0, 256, (1, 24, height, width)).astype(np.uint8)
    y_scale, y_zero = 0.0371, 3
    expected = reference_qdq(op_type, [(x, 128, 0.0529)], y_scale, y_zero, np.uint8, **attrs)
    window = Window(tuple(kernel), tuple(attrs.get("strides", (1, 1))),
                    (pads[0], pads[1], pads[2], pads[3]))
    nhwc = x.transpose(0, 2, 3, 1)
    out_shape = expected.transpose(0, 2, 3, 1).shape
    y, _ = simulate([(nhwc, 128, float(np.float32(0.0529)))],
                    (out_shape, np.uint8, y_zero, float(np.float32(y_scale))),
                    lambda out: Pool(out, 0, mode, window, 0, 255))
    np.testing.assert_array_equal(y, expected.transpose(0, 2, 3, 1))


def test_global_average_pool_sums_like_the_reference_on_larger_planes():
    for height, width in ((14, 14), (28, 28), (56, 56), (3, 100)):
        x = RNG.integers(0, 256, (1, 16, height, width)).astype(np.uint8)
        expected = reference_qdq("GlobalAveragePool", [(x, 0, 0.0841)], 0.0407, 0, np.uint8)
        y, _ = simulate([(x.transpose(0, 2, 3, 1), 0, float(np.float32(0.0841)))],
                        ((1, 1, 1, 16), np.uint8, 0, float(np.float32(0.0407))),
                        lambda out: Pool(out, 0, PoolMode.GLOBAL_AVERAGE, Window(), 0, 255))
        np.testing.assert_array_equal(y.reshape(-1), expected.reshape(-1))


@pytest.mark.parametrize("dtypes", [(np.uint8, np.uint8, np.uint8), (np.int8, np.uint8, np.int8)])
def test_eltwise_add_equals_the_reference_qdq_add_on_every_input_pair(dtypes):
    a_dtype, b_dtype, y_dtype = dtypes
    grid_a, grid_b = np.meshgrid(np.arange(256), np.arange(256), indexing="ij")
    a = (grid_a + np.iinfo(a_dtype).min).astype(a_dtype).reshape(1, 256, 256, 1)
    b = (grid_b + np.iinfo(b_dtype).min).astype(b_dtype).reshape(1, 256, 256, 1)
    params = [(a, 7, 0.0613), (b, 130, 0.0291)]
    y_scale, y_zero = 0.0717, 5
    expected = reference_qdq("Add", params, y_scale, y_zero, y_dtype)
    low, high = int(np.iinfo(y_dtype).min), int(np.iinfo(y_dtype).max)
    y, _ = simulate([(array, zero, float(np.float32(scale))) for array, zero, scale in params],
                    ((1, 256, 256, 1), y_dtype, y_zero, float(np.float32(y_scale))),
                    lambda out: EltwiseAdd(out, 0, 1, low, high))
    np.testing.assert_array_equal(y, expected)
