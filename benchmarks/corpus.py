"""The benchmark corpus of issue 22: classic architectures with seeded random weights.

Every model is written with byoc's model zoo (:mod:`byoc.model_zoo`: its GraphBuilder and
layer helpers, opset 17, ``onnx.checker`` full check), on one 224x224 image (AlexNet 227x227,
as Caffe's bvlc_alexnet) or, for BERT, one sequence of 128 tokens:

- ``resnet50``, ``vgg19``: the zoo's;
- ``densenet121``: growth 32, dense blocks of 6, 12, 24 and 16 BN-ReLU-Conv layers
  (1x1 to 128 channels, then 3x3 to 32) each concatenated onto its block's features;
- ``inception_v1``: GoogLeNet without its auxiliary heads (convolutions with bias and Relu,
  LocalResponseNormalization after the stem's first pool and third convolution);
- ``inception_v2``: BN-Inception (Ioffe and Szegedy, 2015): BatchNormalization after every
  convolution, each 5x5 branch replaced by two 3x3 convolutions, stride-2 modules 3c and 4e;
- ``shufflenet_v2``: ShuffleNet v2 1.0x, channel split (Split) and channel shuffle
  (Reshape, Transpose, Reshape) around depthwise convolutions;
- ``squeezenet``: SqueezeNet 1.1's fire modules;
- ``alexnet``: Caffe's bvlc_alexnet (grouped conv2, conv4 and conv5; LRN after conv1 and
  conv2); ``zfnet``: Zeiler and Fergus's 7x7 stride-2 first layer, LRN after the first two
  pools; both with the 9216-4096-4096-1000 classifier;
- ``mobilenet_v2``: inverted residuals with ReLU6 written as Clip;
- ``bert_layer``: one BERT-base encoder layer (hidden 768, 12 heads, FFN 3072, post-LayerNorm,
  GELU written with Erf);
- ``resnet18_int8``, ``mobilenet_v2_int8``: static QDQ quantizations by onnxruntime's
  quantizer (:class:`byoc.model_zoo.Int8Variant`).

:func:`build` writes a model once into a folder and reuses the file afterwards.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx

from byoc import model_zoo
from byoc.model_zoo import (
    INPUT_NAME,
    NORM_SCALE_RANGE,
    RESIDUAL_BN_SCALE_RANGE,
    GraphBuilder,
    Int8Variant,
    batch_norm,
    classifier_head,
    conv_bn,
    conv_bn_relu6,
    dense,
    gelu,
    layer_norm,
    linear,
    self_attention,
)

IMAGE = [1, 3, 224, 224]
CLASSES = 1000


# Layers the zoo does not have

def conv(g: GraphBuilder, scope: str, x: str, c_in: int, c_out: int, kernel: int,
         stride: int = 1, pad: int | None = None, group: int = 1, bias: bool = False) -> str:
    """Conv (He init; ``pad`` on every side, "same" (kernel // 2) by default)."""
    fan_in = c_in // group * kernel * kernel
    inputs = [x, g.normal(f"{scope}.weight", (c_out, c_in // group, kernel, kernel),
                          std=np.sqrt(2.0 / fan_in))]
    if bias:
        inputs.append(g.normal(f"{scope}.bias", (c_out,), std=0.1))
    pad = kernel // 2 if pad is None else pad
    return g.op("Conv", inputs, scope, kernel_shape=[kernel, kernel], strides=[stride, stride],
                pads=[pad] * 4, group=group)


def conv_relu(g: GraphBuilder, scope: str, x: str, c_in: int, c_out: int, kernel: int,
              stride: int = 1, pad: int | None = None, group: int = 1) -> str:
    """Conv with bias + Relu, the layer of the pre-BatchNormalization networks."""
    return g.op("Relu", [conv(g, scope, x, c_in, c_out, kernel, stride, pad, group, bias=True)],
                scope)


def max_pool(g: GraphBuilder, scope: str, x: str, kernel: int = 3, stride: int = 2,
             pad: int = 0) -> str:
    return g.op("MaxPool", [x], scope, kernel_shape=[kernel, kernel], strides=[stride, stride],
                pads=[pad] * 4)


def lrn(g: GraphBuilder, scope: str, x: str) -> str:
    """LRN (local response normalization) across 5 channels, AlexNet's constants."""
    return g.op("LRN", [x], scope, size=5, alpha=1e-4, beta=0.75,
                bias=1.0)


def concat(g: GraphBuilder, scope: str, branches: list[str]) -> str:
    return g.op("Concat", branches, scope, axis=1)


def image_classifier(g: GraphBuilder, x: str, channels: int) -> onnx.ModelProto:
    """The zoo's GlobalAveragePool, Flatten and Gemm head, and the model around it."""
    return g.model(IMAGE, classifier_head(g, x, channels, CLASSES), [1, CLASSES])


# DenseNet-121

def densenet121() -> onnx.ModelProto:
    g = GraphBuilder("densenet121")
    growth, bottleneck = 32, 128
    x = conv_bn(g, "features.conv0", INPUT_NAME, 3, 64, 7, stride=2)
    x = max_pool(g, "features.pool0", x, pad=1)
    channels = 64
    for block, layers in enumerate((6, 12, 24, 16), start=1):
        for layer in range(1, layers + 1):
            scope = f"features.denseblock{block}.denselayer{layer}"
            y = g.op("Relu", [batch_norm(g, f"{scope}.norm1", x, channels, NORM_SCALE_RANGE)],
                     f"{scope}.norm1")
            y = conv(g, f"{scope}.conv1", y, channels, bottleneck, 1)
            y = g.op("Relu", [batch_norm(g, f"{scope}.norm2", y, bottleneck, NORM_SCALE_RANGE)],
                     f"{scope}.norm2")
            y = conv(g, f"{scope}.conv2", y, bottleneck, growth, 3)
            x = concat(g, scope, [x, y])
            channels += growth
        if block < 4:
            scope = f"features.transition{block}"
            y = g.op("Relu", [batch_norm(g, f"{scope}.norm", x, channels, NORM_SCALE_RANGE)],
                     scope)
            y = conv(g, f"{scope}.conv", y, channels, channels // 2, 1)
            x = g.op("AveragePool", [y], scope, kernel_shape=[2, 2], strides=[2, 2])
            channels //= 2
    x = g.op("Relu", [batch_norm(g, "features.norm5", x, channels, NORM_SCALE_RANGE)],
             "features.norm5")
    return image_classifier(g, x, channels)


# Inception v1 (GoogLeNet) and v2 (BN-Inception)

# in, 1x1, 3x3 reduce, 3x3, 5x5 reduce, 5x5, pool projection (Szegedy et al. 2014, table 1)
GOOGLENET_MODULES = {
    "3a": (192, 64, 96, 128, 16, 32, 32), "3b": (256, 128, 128, 192, 32, 96, 64),
    "4a": (480, 192, 96, 208, 16, 48, 64), "4b": (512, 160, 112, 224, 24, 64, 64),
    "4c": (512, 128, 128, 256, 24, 64, 64), "4d": (512, 112, 144, 288, 32, 64, 64),
    "4e": (528, 256, 160, 320, 32, 128, 128), "5a": (832, 256, 160, 320, 32, 128, 128),
    "5b": (832, 384, 192, 384, 48, 128, 128),
}


def googlenet_module(g: GraphBuilder, scope: str, x: str, c_in: int, c1: int, c3_reduce: int,
                     c3: int, c5_reduce: int, c5: int, pool_proj: int) -> tuple[str, int]:
    b1 = conv_relu(g, f"{scope}.1x1", x, c_in, c1, 1)
    b3 = conv_relu(g, f"{scope}.3x3_reduce", x, c_in, c3_reduce, 1)
    b3 = conv_relu(g, f"{scope}.3x3", b3, c3_reduce, c3, 3)
    b5 = conv_relu(g, f"{scope}.5x5_reduce", x, c_in, c5_reduce, 1)
    b5 = conv_relu(g, f"{scope}.5x5", b5, c5_reduce, c5, 5)
    pool = max_pool(g, f"{scope}.pool", x, stride=1, pad=1)
    pool = conv_relu(g, f"{scope}.pool_proj", pool, c_in, pool_proj, 1)
    return concat(g, scope, [b1, b3, b5, pool]), c1 + c3 + c5 + pool_proj


def inception_v1() -> onnx.ModelProto:
    g = GraphBuilder("inception_v1")
    x = conv_relu(g, "conv1", INPUT_NAME, 3, 64, 7, stride=2)
    x = lrn(g, "pool1.norm", max_pool(g, "pool1", x, pad=1))
    x = conv_relu(g, "conv2.reduce", x, 64, 64, 1)
    x = lrn(g, "conv2.norm", conv_relu(g, "conv2", x, 64, 192, 3))
    x = max_pool(g, "pool2", x, pad=1)
    channels = 192
    for name, widths in GOOGLENET_MODULES.items():
        if name in ("4a", "5a"):
            x = max_pool(g, f"pool{name[0]}", x, pad=1)
        assert widths[0] == channels, (name, channels)
        x, channels = googlenet_module(g, f"inception{name}", x, *widths)
    return image_classifier(g, x, channels)


# in, 1x1 (0: a stride-2 module), 3x3 reduce, 3x3, double 3x3 reduce, double 3x3, pool
# projection (0: the pool passes through), pool (Ioffe and Szegedy 2015, figure 5)
BN_INCEPTION_MODULES = {
    "3a": (192, 64, 64, 64, 64, 96, 32, "avg"), "3b": (256, 64, 64, 96, 64, 96, 64, "avg"),
    "3c": (320, 0, 128, 160, 64, 96, 0, "max"), "4a": (576, 224, 64, 96, 96, 128, 128, "avg"),
    "4b": (576, 192, 96, 128, 96, 128, 128, "avg"),
    "4c": (576, 160, 128, 160, 128, 160, 128, "avg"),
    "4d": (608, 96, 128, 192, 160, 192, 128, "avg"), "4e": (608, 0, 128, 192, 192, 256, 0, "max"),
    "5a": (1056, 352, 192, 320, 160, 224, 128, "avg"),
    "5b": (1024, 352, 192, 320, 192, 224, 128, "max"),
}


def bn_inception_module(g: GraphBuilder, scope: str, x: str, c_in: int, c1: int, c3_reduce: int,
                        c3: int, d3_reduce: int, d3: int, pool_proj: int,
                        pool: str) -> tuple[str, int]:
    stride = 1 if c1 else 2
    branches = [conv_bn(g, f"{scope}.1x1", x, c_in, c1, 1)] if c1 else []
    b3 = conv_bn(g, f"{scope}.3x3_reduce", x, c_in, c3_reduce, 1)
    branches.append(conv_bn(g, f"{scope}.3x3", b3, c3_reduce, c3, 3, stride))
    d = conv_bn(g, f"{scope}.double_3x3_reduce", x, c_in, d3_reduce, 1)
    d = conv_bn(g, f"{scope}.double_3x3_1", d, d3_reduce, d3, 3)
    branches.append(conv_bn(g, f"{scope}.double_3x3_2", d, d3, d3, 3, stride))
    pooled = g.op("AveragePool" if pool == "avg" else "MaxPool", [x], f"{scope}.pool",
                  kernel_shape=[3, 3], strides=[stride, stride], pads=[1, 1, 1, 1])
    branches.append(conv_bn(g, f"{scope}.pool_proj", pooled, c_in, pool_proj, 1)
                    if pool_proj else pooled)
    return concat(g, scope, branches), c1 + c3 + d3 + (pool_proj or c_in)


def inception_v2() -> onnx.ModelProto:
    g = GraphBuilder("inception_v2")
    x = conv_bn(g, "conv1", INPUT_NAME, 3, 64, 7, stride=2)
    x = max_pool(g, "pool1", x, pad=1)
    x = conv_bn(g, "conv2.reduce", x, 64, 64, 1)
    x = conv_bn(g, "conv2", x, 64, 192, 3)
    x = max_pool(g, "pool2", x, pad=1)
    channels = 192
    for name, widths in BN_INCEPTION_MODULES.items():
        assert widths[0] == channels, (name, channels)
        x, channels = bn_inception_module(g, f"inception{name}", x, *widths)
    return image_classifier(g, x, channels)


# ShuffleNet v2 1.0x

def channel_shuffle(g: GraphBuilder, scope: str, x: str, channels: int, size: int) -> str:
    """Interleave the two halves of x's channels: Reshape to [1, 2, c/2, h, w], swap the two
    group axes, Reshape back."""
    grouped = g.constant(f"{scope}.grouped_shape",
                         np.array([1, 2, channels // 2, size, size], np.int64))
    flat = g.constant(f"{scope}.shape", np.array([1, channels, size, size], np.int64))
    y = g.op("Reshape", [x, grouped], f"{scope}.grouped")
    y = g.op("Transpose", [y], scope, perm=[0, 2, 1, 3, 4])
    return g.op("Reshape", [y, flat], scope)


def depthwise_bn(g: GraphBuilder, scope: str, x: str, channels: int, stride: int) -> str:
    """3x3 depthwise Conv + BatchNormalization, no activation (ShuffleNet v2's)."""
    y = conv(g, scope, x, channels, channels, 3, stride, group=channels)
    return batch_norm(g, f"{scope}.bn", y, channels, NORM_SCALE_RANGE)


def shuffle_unit(g: GraphBuilder, scope: str, x: str, c_in: int, c_out: int, stride: int,
                 size: int) -> str:
    """One ShuffleNet v2 unit; ``size`` is its output's height and width."""
    half = c_out // 2
    if stride == 1:
        shortcut, x = g.op_outputs("Split", [x], f"{scope}.split", 2, axis=1)
        c_branch = half
    else:
        shortcut = depthwise_bn(g, f"{scope}.branch1.0", x, c_in, stride)
        shortcut = conv_bn(g, f"{scope}.branch1.2", shortcut, c_in, half, 1)
        c_branch = c_in
    y = conv_bn(g, f"{scope}.branch2.0", x, c_branch, half, 1)
    y = depthwise_bn(g, f"{scope}.branch2.3", y, half, stride)
    y = conv_bn(g, f"{scope}.branch2.5", y, half, half, 1)
    return channel_shuffle(g, f"{scope}.shuffle", concat(g, scope, [shortcut, y]), c_out, size)


def shufflenet_v2() -> onnx.ModelProto:
    g = GraphBuilder("shufflenet_v2")
    x = conv_bn(g, "conv1", INPUT_NAME, 3, 24, 3, stride=2)
    x = max_pool(g, "maxpool", x, pad=1)
    c_in, size = 24, 56
    for stage, (c_out, units) in enumerate(((116, 4), (232, 8), (464, 4)), start=2):
        size //= 2
        for index in range(units):
            x = shuffle_unit(g, f"stage{stage}.{index}", x, c_in, c_out, 2 if index == 0 else 1,
                             size)
            c_in = c_out
    x = conv_bn(g, "conv5", x, c_in, 1024, 1)
    return image_classifier(g, x, 1024)


# SqueezeNet 1.1

def fire(g: GraphBuilder, scope: str, x: str, c_in: int, squeeze: int, expand: int) -> str:
    s = conv_relu(g, f"{scope}.squeeze", x, c_in, squeeze, 1)
    return concat(g, scope, [conv_relu(g, f"{scope}.expand1x1", s, squeeze, expand, 1),
                             conv_relu(g, f"{scope}.expand3x3", s, squeeze, expand, 3)])


def squeezenet() -> onnx.ModelProto:
    g = GraphBuilder("squeezenet")
    x = conv_relu(g, "features.0", INPUT_NAME, 3, 64, 3, stride=2, pad=0)
    c_in = 64
    fires = ((16, 64), (16, 64), "pool", (32, 128), (32, 128), "pool", (48, 192), (48, 192),
             (64, 256), (64, 256))
    x = max_pool(g, "features.pool1", x)
    for index, layer in enumerate(fires, start=2):
        if layer == "pool":
            x = max_pool(g, f"features.pool{index}", x)
            continue
        squeeze, expand = layer
        x = fire(g, f"features.fire{index}", x, c_in, squeeze, expand)
        c_in = 2 * expand
    x = conv_relu(g, "classifier.conv", x, c_in, CLASSES, 1)
    x = g.op("GlobalAveragePool", [x], "classifier.avgpool")
    return g.model(IMAGE, g.op("Flatten", [x], "flatten"), [1, CLASSES])


# AlexNet and ZFNet

def fully_connected_head(g: GraphBuilder, x: str, features: int) -> str:
    """Flatten and the 4096-4096-1000 classifier of AlexNet, ZFNet and VGG (no dropout)."""
    x = g.op("Flatten", [x], "flatten")
    x = dense(g, "classifier.fc6", x, features, 4096, relu=True)
    x = dense(g, "classifier.fc7", x, 4096, 4096, relu=True)
    return dense(g, "classifier.fc8", x, 4096, CLASSES, relu=False)


def alexnet() -> onnx.ModelProto:
    g = GraphBuilder("alexnet")
    x = lrn(g, "norm1", conv_relu(g, "conv1", INPUT_NAME, 3, 96, 11, stride=4, pad=0))  # 55
    x = max_pool(g, "pool1", x)  # 27
    x = lrn(g, "norm2", conv_relu(g, "conv2", x, 96, 256, 5, group=2))
    x = max_pool(g, "pool2", x)  # 13
    x = conv_relu(g, "conv3", x, 256, 384, 3)
    x = conv_relu(g, "conv4", x, 384, 384, 3, group=2)
    x = conv_relu(g, "conv5", x, 384, 256, 3, group=2)
    x = max_pool(g, "pool5", x)  # 6
    return g.model([1, 3, 227, 227], fully_connected_head(g, x, 256 * 6 * 6), [1, CLASSES])


def zfnet() -> onnx.ModelProto:
    g = GraphBuilder("zfnet")
    x = conv_relu(g, "conv1", INPUT_NAME, 3, 96, 7, stride=2, pad=1)  # 110
    x = lrn(g, "norm1", max_pool(g, "pool1", x, pad=1))  # 55
    x = conv_relu(g, "conv2", x, 96, 256, 5, stride=2, pad=0)  # 26
    x = lrn(g, "norm2", max_pool(g, "pool2", x, pad=1))  # 13
    x = conv_relu(g, "conv3", x, 256, 384, 3)
    x = conv_relu(g, "conv4", x, 384, 384, 3)
    x = conv_relu(g, "conv5", x, 384, 256, 3)
    x = max_pool(g, "pool5", x)  # 6
    return g.model(IMAGE, fully_connected_head(g, x, 256 * 6 * 6), [1, CLASSES])


# MobileNetV2

# expansion, channels, repeats, first stride (Sandler et al. 2018, table 2)
MOBILENET_V2_STAGES = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2),
                       (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1))


def inverted_residual(g: GraphBuilder, scope: str, x: str, c_in: int, c_out: int,
                      expansion: int, stride: int) -> str:
    """1x1 expansion (ReLU6), 3x3 depthwise (ReLU6), linear 1x1 projection, plus x where the
    shape allows."""
    hidden = c_in * expansion
    y = conv_bn_relu6(g, f"{scope}.expand", x, c_in, hidden, 1) if expansion > 1 else x
    y = conv_bn_relu6(g, f"{scope}.dw", y, hidden, hidden, 3, stride, depthwise=True)
    residual = stride == 1 and c_in == c_out
    y = conv_bn(g, f"{scope}.project", y, hidden, c_out, 1, relu=False,
                bn_scale_range=RESIDUAL_BN_SCALE_RANGE if residual else NORM_SCALE_RANGE)
    return g.op("Add", [x, y], scope) if residual else y


def mobilenet_v2() -> onnx.ModelProto:
    g = GraphBuilder("mobilenet_v2")
    x = conv_bn_relu6(g, "features.0", INPUT_NAME, 3, 32, 3, stride=2)
    c_in, block = 32, 1
    for expansion, c_out, repeats, first_stride in MOBILENET_V2_STAGES:
        for index in range(repeats):
            x = inverted_residual(g, f"features.{block}", x, c_in, c_out, expansion,
                                  first_stride if index == 0 else 1)
            c_in, block = c_out, block + 1
    x = conv_bn_relu6(g, f"features.{block}", x, c_in, 1280, 1)
    return image_classifier(g, x, 1280)


# BERT-base encoder layer

def bert_layer() -> onnx.ModelProto:
    """One post-LayerNorm encoder layer: LN(x + attention(x)), then LN(h + FFN(h))."""
    g = GraphBuilder("bert_layer")
    seq, hidden, heads, ffn = 128, 768, 12, 3072
    attention = self_attention(g, "attention", INPUT_NAME, hidden, heads)
    x = layer_norm(g, "attention.norm", g.op("Add", [INPUT_NAME, attention], "attention"),
                   hidden)
    inner = gelu(g, "intermediate.gelu", linear(g, "intermediate", x, hidden, ffn))
    out = g.op("Add", [x, linear(g, "output", inner, ffn, hidden)], "output.residual")
    return g.model([1, seq, hidden], layer_norm(g, "output.norm", out, hidden), [1, seq, hidden])


MODELS: dict[str, model_zoo.Builder] = {
    "resnet50": model_zoo.resnet50,
    "vgg19": model_zoo.vgg19,
    "densenet121": densenet121,
    "inception_v1": inception_v1,
    "inception_v2": inception_v2,
    "shufflenet_v2": shufflenet_v2,
    "squeezenet": squeezenet,
    "alexnet": alexnet,
    "zfnet": zfnet,
    "mobilenet_v2": mobilenet_v2,
    "bert_layer": bert_layer,
    "resnet18_int8": model_zoo.MODELS["resnet18_int8"],
    "mobilenet_v2_int8": Int8Variant("mobilenet_v2", calibration_samples=4),
}
# What build() can make: the corpus, and the zoo's models (the int8 parents among them).
BUILDERS: dict[str, model_zoo.Builder] = {**model_zoo.MODELS, **MODELS}


def build(name: str, out_dir: str | Path) -> Path:
    """Path of ``<out_dir>/<name>.onnx``, built first if missing (:func:`byoc.model_zoo.build`);
    ``name`` is a corpus or a zoo model."""
    return model_zoo.build(name, out_dir, BUILDERS)


def is_int8(name: str) -> bool:
    return isinstance(BUILDERS[name], Int8Variant)
