"""Activations and weights in the accelerator's blocked DRAM layouts.

An activation is stored as int8 elements of ``block`` channels: [N][C/block][H + pads][W +
pads][block], with its border already filled with the zero point so that a convolution
window reading the border sees the value ONNX pads with. Channels beyond C hold the zero
point too (their weights are zero). uint8 data is stored shifted to int8 (x - 128), since the
GEMM core multiplies int8 by int8; the shift is folded into the zero point and the bias.

Weights are stored [OC/block][IC/block][kH][kW][block out][block in], zero-padded.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def int8_offset(dtype: np.dtype) -> int:
    """What is subtracted from values of ``dtype`` to store them as int8."""
    return 128 if np.dtype(dtype) == np.uint8 else 0


@dataclass(frozen=True)
class ActivationLayout:
    """Where an N x C x H x W activation lives in DRAM, in INP/OUT elements."""

    batch: int
    channels: int
    height: int
    width: int
    pad_top: int
    pad_bottom: int
    pad_left: int
    pad_right: int
    block: int
    fill: int          # the stored (int8) zero point, written into borders and extra channels

    @property
    def channel_blocks(self) -> int:
        return -(-self.channels // self.block)

    @property
    def padded_height(self) -> int:
        return self.pad_top + self.height + self.pad_bottom

    @property
    def padded_width(self) -> int:
        return self.pad_left + self.width + self.pad_right

    @property
    def elements(self) -> int:
        return self.batch * self.channel_blocks * self.padded_height * self.padded_width

    def element(self, n: int, cb: int, row: int, col: int) -> int:
        """Element index of padded position (row, col) of channel block cb of image n."""
        return ((n * self.channel_blocks + cb) * self.padded_height + row) * \
            self.padded_width + col

    def pack(self, x: np.ndarray, offset: int) -> np.ndarray:
        """N x C x H x W values (int8 or uint8) as the int8 DRAM image, shape
        (elements, block)."""
        image = np.full((self.batch, self.channel_blocks * self.block, self.padded_height,
                         self.padded_width), self.fill, dtype=np.int8)
        image[:, :self.channels, self.pad_top:self.pad_top + self.height,
              self.pad_left:self.pad_left + self.width] = \
            (x.astype(np.int16) - offset).astype(np.int8)
        image = image.reshape(self.batch, self.channel_blocks, self.block, self.padded_height,
                              self.padded_width)
        return np.ascontiguousarray(image.transpose(0, 1, 3, 4, 2)).reshape(-1, self.block)

    def unpack(self, image: np.ndarray, offset: int, dtype: np.dtype) -> np.ndarray:
        """The N x C x H x W values of an int8 DRAM image (inverse of :meth:`pack`)."""
        blocks = image.reshape(self.batch, self.channel_blocks, self.padded_height,
                               self.padded_width, self.block)
        inner = blocks[:, :, self.pad_top:self.pad_top + self.height,
                       self.pad_left:self.pad_left + self.width]
        nchw = inner.transpose(0, 1, 4, 2, 3).reshape(self.batch, -1, self.height, self.width)
        return (nchw[:, :self.channels].astype(np.int16) + offset).astype(dtype)


def pack_weights(weight: np.ndarray, out_blocks: int, block_out: int,
                 block_in: int) -> np.ndarray:
    """O x I x kH x kW int8 weights as WGT elements, shape (elements, block_out, block_in)."""
    o, i, kh, kw = weight.shape
    in_blocks = -(-i // block_in)
    padded = np.zeros((out_blocks * block_out, in_blocks * block_in, kh, kw), np.int8)
    padded[:o, :i] = weight
    blocks = padded.reshape(out_blocks, block_out, in_blocks, block_in, kh, kw)
    return np.ascontiguousarray(blocks.transpose(0, 2, 4, 5, 1, 3)).reshape(
        -1, block_out, block_in)
