"""Faults injected into plugins, for the tests of ``byoc verify``: each is a bug a plugin
could have, confined to one layer so that verify must name that layer's node."""

from __future__ import annotations

import contextlib

import pytest

# Five int8 Conv + Relu layers (plugins.int8_models.qdq_cnn) the accelerators take as one
# partition: image size, channels, then (output channels, kernel, stride) per layer.
CHAIN = (15, 21, [(35, 3, 1), (7, 1, 1), (50, 3, 2), (33, 3, 1), (16, 1, 1)])


@contextlib.contextmanager
def wrong_requantization_shift(output: str):
    """vta_sim's lowering with a bug: the layer writing ``output`` gets MULSHR operands whose
    shift is one too large (its requantization halves the result)."""
    import byoc_vta_sim.lower as lower

    real = lower._params

    def params(layer, geometry, shape, config):
        found = real(layer, geometry, shape, config)
        if layer.y == output:
            found[:, 1, :] += 1     # the operand's low 6 bits are the shift
        return found

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(lower, "_params", params)
        yield


@contextlib.contextmanager
def max_pool_averaging():
    """npu_example's simulated NPU with a bug in a fused layer: its POOL command averages
    where the command says max (the wrong op inside DequantizeLinear -> MaxPool ->
    QuantizeLinear; the requantization after it is right)."""
    import dataclasses

    from byoc_npu_example import sim
    from byoc_npu_example.command_stream import Opcode, PoolMode

    real = sim.EXECUTE[Opcode.POOL]

    def pool(simulator, command):
        if command.mode is PoolMode.MAX:
            command = dataclasses.replace(command, mode=PoolMode.AVERAGE)
        return real(simulator, command)

    with pytest.MonkeyPatch.context() as patch:
        patch.setitem(sim.EXECUTE, Opcode.POOL, pool)
        yield


@contextlib.contextmanager
def flipped_weight_channel(node: str, channel: int = 3):
    """vta_sim's lowering with a bug in the GEMM's operands: output channel ``channel`` of
    the weights packed for the layer of Conv ``node`` has its sign flipped."""
    import byoc_vta_sim.lower as lower

    real = lower._weights

    def weights(layer, shape, config):
        packed = real(layer, shape, config)
        if layer.op.name == node:
            packed[:, channel, :] = -packed[:, channel, :]  # WGT is [block out][block in]
        return packed

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(lower, "_weights", weights)
        yield
