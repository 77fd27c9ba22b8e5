"""Real-world-shaped ONNX models, written with onnx.helper the way the old ONNX model zoo files
and real exporters wrote them.

Each builder rebuilds a classic architecture (AlexNet, GoogLeNet, SqueezeNet 1.0 and 1.1,
VGG-16 and VGG-19, ResNet, MNIST, Tiny YOLOv2, fast neural style, MobileNet v2, a U-Net, a
YOLOv3-style head, a BERT-like encoder, GPT-2, an LSTM classifier, a one-stage detector with
NonMaxSuppression) at reduced width and resolution, with seeded random weights scaled so
activations stay O(1), in the form one exporter wrote: its IR version and opset, its node
forms (opset 7 to 10 attributes where later opsets take inputs), its naming (nameless nodes,
numbered values, scoped names), whether initializers are listed among the graph inputs, and
its quirks (outputs declared with no shape, no type or a symbolic dimension, Dropout with its
mask output, Constant nodes, unused domain imports, doc strings, metadata).

The builders do not run onnx's checker: several of these forms fail it (an IR 3 graph whose
initializers are not graph inputs, an output with no type) while onnxruntime runs them, and a
model onnxruntime runs is what byoc must load.
"""

from __future__ import annotations

import itertools
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
from onnxruntime.quantization import (
    CalibrationDataReader,
    CalibrationMethod,
    QuantFormat,
    QuantType,
    quantize_static,
)
from onnxruntime.quantization.shape_inference import quant_pre_process

FLOAT = TensorProto.FLOAT
INT64 = TensorProto.INT64

# How exporters named nodes: Caffe2 and PyTorch before 1.4 left them nameless, PyTorch 1.4 to
# 1.13 numbered them by op type, tf2onnx and PyTorch 2 named them by scope.
NAMELESS, INDEXED, SCOPED = "nameless", "indexed", "scoped"

LRN_ZOO_ATTRIBUTES = dict(size=5, alpha=1e-4, beta=0.75, bias=1.0)  # AlexNet's and GoogLeNet's
WEIGHT_SEED = 0


class GraphWriter:
    """The nodes and seeded weights of one graph, named as one exporter named them.

    ``op`` names a node's output after its ``scope`` when one is given (Caffe2's and tf2onnx's
    ``conv1_1``, ``block1_conv1/Relu:0``) and numbers it otherwise (PyTorch's ``23``).
    """

    def __init__(self, node_naming: str):
        self.node_naming = node_naming
        self.rng = np.random.default_rng(WEIGHT_SEED)
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []
        self._names: set[str] = set()
        self._numbers = itertools.count(1)

    def _claim(self, name: str) -> str:
        if name in self._names:
            raise ValueError(f"this graph already has a value named {name!r}")
        self._names.add(name)
        return name

    def constant(self, name: str, value) -> str:
        self.initializers.append(numpy_helper.from_array(np.asarray(value), self._claim(name)))
        return name

    def constant_node(self, value, scope: str = "") -> str:
        """A Constant node, as torch.onnx writes the scalars and shape pieces it traces."""
        return self.op("Constant", [], scope, value=numpy_helper.from_array(np.asarray(value)))

    def normal(self, name: str, shape: tuple[int, ...], std: float) -> str:
        return self.constant(name, (std * self.rng.standard_normal(shape)).astype(np.float32))

    def uniform(self, name: str, shape: tuple[int, ...], low: float, high: float) -> str:
        return self.constant(name, self.rng.uniform(low, high, shape).astype(np.float32))

    def op(self, op_type: str, inputs: Sequence[str], scope: str = "", outputs: int = 1,
           doc: str = "", **attributes) -> str | list[str]:
        """Append a node; returns its output name, or the list of them when ``outputs`` > 1."""
        base = scope or str(next(self._numbers))
        names = [self._claim(base)] + [self._claim(f"{base}_{i}") for i in range(1, outputs)]
        if self.node_naming == NAMELESS:
            node_name = ""
        elif self.node_naming == INDEXED:
            node_name = f"{op_type}_{len(self.nodes)}"
        else:
            node_name = f"{scope or base}/{op_type}"
        self.nodes.append(helper.make_node(op_type, list(inputs), names, name=node_name,
                                           doc_string=doc, **attributes))
        return names if outputs > 1 else names[0]

    def model(self, graph_name: str, inputs: Sequence[onnx.ValueInfoProto],
              outputs: Sequence[onnx.ValueInfoProto], *, opset: int, ir_version: int,
              producer: tuple[str, str], initializers_as_inputs: bool, doc: str = "",
              metadata: dict[str, str] | None = None,
              unused_opsets: dict[str, int] | None = None) -> onnx.ModelProto:
        """Close the graph. ``initializers_as_inputs`` lists every initializer among the graph
        inputs too, as IR 3 required and exporters kept doing up to PyTorch 1.x's default.
        ``unused_opsets`` are imports of domains no node uses, which converters declared by
        default."""
        graph_inputs = list(inputs)
        if initializers_as_inputs:
            graph_inputs += [helper.make_tensor_value_info(t.name, t.data_type, list(t.dims))
                             for t in self.initializers]
        graph = helper.make_graph(self.nodes, graph_name, graph_inputs, list(outputs),
                                  self.initializers, doc_string=doc)
        opsets = {"": opset, **(unused_opsets or {})}
        model = helper.make_model(graph, producer_name=producer[0], producer_version=producer[1],
                                  opset_imports=[helper.make_opsetid(domain, version)
                                                 for domain, version in opsets.items()])
        model.ir_version = ir_version
        if metadata:
            helper.set_model_props(model, metadata)
        return model


def tensor(name: str, shape: Sequence[int | str] | None, elem_type: int = FLOAT):
    """A value declared with a type and, unless ``shape`` is None, a shape."""
    return helper.make_tensor_value_info(name, elem_type, shape)


def untyped(name: str) -> onnx.ValueInfoProto:
    """A graph output declared by name alone, as a tool appending a debug output wrote it."""
    return onnx.ValueInfoProto(name=name)


# Layers

def conv(g: GraphWriter, x: str, c_in: int, c_out: int, kernel: int, scope: str, *,
         stride: int = 1, pad: int = 0, group: int = 1, bias: bool = True, gain: float = 2.0,
         **attributes) -> str:
    """Conv with He-scaled weights (gain 2 before a Relu) and a small bias. ``pad`` is written
    as explicit symmetric pads unless ``attributes`` give auto_pad."""
    fan_in = c_in // group * kernel * kernel
    inputs = [x, g.normal(f"{scope}_w", (c_out, c_in // group, kernel, kernel),
                          std=np.sqrt(gain / fan_in))]
    if bias:
        inputs.append(g.normal(f"{scope}_b", (c_out,), std=0.1))
    if "auto_pad" not in attributes:
        attributes["pads"] = [pad] * 4
    if stride != 1:
        attributes["strides"] = [stride, stride]
    if group != 1:
        attributes["group"] = group
    return g.op("Conv", inputs, scope, kernel_shape=[kernel, kernel], **attributes)


def conv_relu(g: GraphWriter, x: str, c_in: int, c_out: int, kernel: int, scope: str,
              **options) -> str:
    return g.op("Relu", [conv(g, x, c_in, c_out, kernel, scope, **options)], f"{scope}_relu")


def gemm(g: GraphWriter, x: str, n_in: int, n_out: int, scope: str, gain: float = 2.0) -> str:
    """A fully connected layer as Caffe2 and PyTorch wrote it: Gemm with a [n_out, n_in]
    weight and transB."""
    weight = g.normal(f"{scope}_w", (n_out, n_in), std=np.sqrt(gain / n_in))
    bias = g.normal(f"{scope}_b", (n_out,), std=0.1)
    return g.op("Gemm", [x, weight, bias], scope, transB=1)


def batch_norm_7(g: GraphWriter, x: str, channels: int, scope: str,
                 scale_range: tuple[float, float] = (0.5, 1.5)) -> str:
    """BatchNormalization-7 as Caffe2 wrote it, with the spatial attribute opset 9 removed."""
    scale = g.uniform(f"{scope}_s", (channels,), *scale_range)
    bias = g.normal(f"{scope}_bias", (channels,), std=0.1)
    mean = g.normal(f"{scope}_rm", (channels,), std=0.1)
    var = g.uniform(f"{scope}_riv", (channels,), 0.5, 1.5)
    return g.op("BatchNormalization", [x, scale, bias, mean, var], scope, epsilon=1e-5,
                momentum=0.9, spatial=1)


def dropout_with_mask(g: GraphWriter, x: str, ratio: float, scope: str) -> str:
    """Dropout-7 with its optional mask output, which Caffe2 conversions wrote and left
    unused."""
    output, _mask = g.op("Dropout", [x], scope, outputs=2, ratio=ratio)
    return output


# Classic CNNs

def alexnet_caffe2() -> onnx.ModelProto:
    """bvlc_alexnet as the Caffe2 conversion in the old zoo wrote it: IR 3, opset 7,
    initializers not listed among the inputs, nameless nodes, grouped convolutions, LRN,
    Reshape to a constant shape, Dropout with mask, Softmax. 99x99 input, widths / 6."""
    g = GraphWriter(NAMELESS)
    x = conv_relu(g, "data_0", 3, 16, 11, "conv1", stride=4)                    # 23x23
    x = g.op("LRN", [x], "norm1", **LRN_ZOO_ATTRIBUTES)
    x = g.op("MaxPool", [x], "pool1", kernel_shape=[3, 3], strides=[2, 2])       # 11x11
    x = conv_relu(g, x, 16, 32, 5, "conv2", pad=2, group=2)
    x = g.op("LRN", [x], "norm2", **LRN_ZOO_ATTRIBUTES)
    x = g.op("MaxPool", [x], "pool2", kernel_shape=[3, 3], strides=[2, 2])       # 5x5
    x = conv_relu(g, x, 32, 48, 3, "conv3", pad=1)
    x = conv_relu(g, x, 48, 48, 3, "conv4", pad=1, group=2)
    x = conv_relu(g, x, 48, 32, 3, "conv5", pad=1, group=2)
    x = g.op("MaxPool", [x], "pool5", kernel_shape=[3, 3], strides=[2, 2])       # 2x2
    x = g.op("Reshape", [x, g.constant("OC2_DUMMY_1", np.array([1, 128], np.int64))], "fc6_0")
    x = g.op("Relu", [gemm(g, x, 128, 64, "fc6")], "fc6_relu")
    x = dropout_with_mask(g, x, 0.5, "drop6")
    x = g.op("Relu", [gemm(g, x, 64, 64, "fc7")], "fc7_relu")
    x = dropout_with_mask(g, x, 0.5, "drop7")
    logits = gemm(g, x, 64, 10, "fc8", gain=1.0)
    g.op("Softmax", [logits], "prob_1")
    return g.model("alexnet", [tensor("data_0", [1, 3, 99, 99])],
                   [tensor("prob_1", [1, 10])], opset=7, ir_version=3,
                   producer=("onnx-caffe2", ""), initializers_as_inputs=False)


def inception_module(g: GraphWriter, x: str, c_in: int, widths: tuple[int, ...],
                     scope: str) -> tuple[str, int]:
    """GoogLeNet's Inception module: 1x1, 1x1->3x3, 1x1->5x5 and 3x3 max pool->1x1 branches,
    concatenated. ``widths`` = (1x1, 3x3 reduce, 3x3, 5x5 reduce, 5x5, pool projection)."""
    w1, r3, w3, r5, w5, wp = widths
    branch1 = conv_relu(g, x, c_in, w1, 1, f"{scope}/1x1")
    branch3 = conv_relu(g, conv_relu(g, x, c_in, r3, 1, f"{scope}/3x3_reduce"), r3, w3, 3,
                        f"{scope}/3x3", pad=1)
    branch5 = conv_relu(g, conv_relu(g, x, c_in, r5, 1, f"{scope}/5x5_reduce"), r5, w5, 5,
                        f"{scope}/5x5", pad=2)
    pooled = g.op("MaxPool", [x], f"{scope}/pool", kernel_shape=[3, 3], strides=[1, 1],
                  pads=[1, 1, 1, 1])
    branch_pool = conv_relu(g, pooled, c_in, wp, 1, f"{scope}/pool_proj")
    output = g.op("Concat", [branch1, branch3, branch5, branch_pool], f"{scope}/output", axis=1)
    return output, w1 + w3 + w5 + wp


def caffe_ceil_max_pool(g: GraphWriter, x: str, scope: str) -> str:
    """A 3x3 stride-2 max pool in Caffe's ceil mode, which opsets before 10 cannot say: the
    Caffe2 converter padded one row and column at the end instead."""
    return g.op("MaxPool", [x], scope, kernel_shape=[3, 3], strides=[2, 2], pads=[0, 0, 1, 1])


def googlenet_caffe2() -> onnx.ModelProto:
    """bvlc_googlenet (Inception v1) as the Caffe2 conversion wrote it: IR 3, opset 8,
    initializers not among the inputs, nameless nodes, LRN, ceil-mode pools as end pads,
    Inception modules concatenating four branches, AveragePool, Dropout with mask, Reshape,
    Softmax. 64x64 input, widths / 8."""
    g = GraphWriter(NAMELESS)
    x = conv_relu(g, "data_0", 3, 16, 7, "conv1/7x7_s2", stride=2, pad=3)       # 32x32
    x = caffe_ceil_max_pool(g, x, "pool1/3x3_s2")                                # 16x16
    x = g.op("LRN", [x], "pool1/norm1", **LRN_ZOO_ATTRIBUTES)
    x = conv_relu(g, x, 16, 16, 1, "conv2/3x3_reduce")
    x = conv_relu(g, x, 16, 32, 3, "conv2/3x3", pad=1)
    x = g.op("LRN", [x], "conv2/norm2", **LRN_ZOO_ATTRIBUTES)
    x = caffe_ceil_max_pool(g, x, "pool2/3x3_s2")                                # 8x8
    x, channels = inception_module(g, x, 32, (8, 12, 16, 4, 8, 8), "inception_3a")
    x, channels = inception_module(g, x, channels, (16, 16, 24, 4, 8, 8), "inception_3b")
    x = caffe_ceil_max_pool(g, x, "pool3/3x3_s2")                                # 4x4
    x, channels = inception_module(g, x, channels, (24, 12, 26, 4, 8, 8), "inception_4a")
    x = g.op("AveragePool", [x], "pool5/7x7_s1", kernel_shape=[4, 4], strides=[1, 1])
    x = dropout_with_mask(g, x, 0.4, "pool5/drop_7x7_s1")
    x = g.op("Reshape", [x, g.constant("OC2_DUMMY_0", np.array([1, -1], np.int64))],
             "pool5/flat")
    logits = gemm(g, x, channels, 10, "loss3/classifier", gain=1.0)
    g.op("Softmax", [logits], "prob_1")
    return g.model("googlenet", [tensor("data_0", [1, 3, 64, 64])],
                   [tensor("prob_1", [1, 10])], opset=8, ir_version=3,
                   producer=("onnx-caffe2", ""), initializers_as_inputs=False)


def fire_module(g: GraphWriter, x: str, c_in: int, squeeze: int, expand: int,
                scope: str) -> tuple[str, int]:
    """SqueezeNet's Fire module: a 1x1 squeeze, then 1x1 and 3x3 expands concatenated."""
    s = conv_relu(g, x, c_in, squeeze, 1, f"{scope}/squeeze1x1")
    e1 = conv_relu(g, s, squeeze, expand, 1, f"{scope}/expand1x1")
    e3 = conv_relu(g, s, squeeze, expand, 3, f"{scope}/expand3x3", pad=1)
    return g.op("Concat", [e1, e3], f"{scope}/concat", axis=1), 2 * expand


def squeezenet1_0_caffe2() -> onnx.ModelProto:
    """SqueezeNet 1.0 as the old zoo's opset-9 Caffe2 conversion wrote it: IR 4, every
    initializer also listed as a graph input, nameless nodes, Fire modules, Dropout,
    GlobalAveragePool and a Softmax-1 over a [1, classes, 1, 1] tensor. 63x63 input."""
    g = GraphWriter(NAMELESS)
    x = conv_relu(g, "data_0", 3, 24, 7, "conv1", stride=2)                     # 29x29
    x = g.op("MaxPool", [x], "pool1", kernel_shape=[3, 3], strides=[2, 2])       # 14x14
    channels = 24
    for index, (squeeze, expand) in enumerate([(4, 8), (4, 8), (8, 16)], start=2):
        x, channels = fire_module(g, x, channels, squeeze, expand, f"fire{index}")
    x = g.op("MaxPool", [x], "pool4", kernel_shape=[3, 3], strides=[2, 2])       # 6x6
    for index, (squeeze, expand) in enumerate([(8, 16), (12, 24), (12, 24), (16, 32)],
                                              start=5):
        x, channels = fire_module(g, x, channels, squeeze, expand, f"fire{index}")
    x = g.op("MaxPool", [x], "pool8", kernel_shape=[3, 3], strides=[2, 2])       # 2x2
    x, channels = fire_module(g, x, channels, 16, 32, "fire9")
    x = g.op("Dropout", [x], "fire9/drop", ratio=0.5)
    x = conv_relu(g, x, channels, 10, 1, "conv10", gain=1.0)
    x = g.op("GlobalAveragePool", [x], "pool10")
    g.op("Softmax", [x], "softmaxout_1")
    return g.model("squeezenet1.0", [tensor("data_0", [1, 3, 63, 63])],
                   [tensor("softmaxout_1", [1, 10, 1, 1])], opset=9, ir_version=4,
                   producer=("onnx-caffe2", ""), initializers_as_inputs=True)


def squeezenet1_1_pytorch() -> onnx.ModelProto:
    """torchvision's SqueezeNet 1.1 as torch.onnx.export of PyTorch 1.4 to 1.8 wrote it:
    IR 6, opset 11, initializers not among the inputs, nodes named ``<OpType>_<index>`` with
    the source line as doc string, values numbered where no layer name applies, MaxPool with
    ceil_mode, Dropout-10,
    GlobalAveragePool, Flatten. 63x63 input."""
    g = GraphWriter(INDEXED)
    source = "/torchvision/models/squeezenet.py(86): forward"

    def ceil_max_pool(x: str) -> str:
        return g.op("MaxPool", [x], kernel_shape=[3, 3], strides=[2, 2], ceil_mode=1,
                    doc=source)

    x = g.op("Relu", [conv(g, "input", 3, 16, 3, "features.0", stride=2)], doc=source)  # 31
    x = ceil_max_pool(x)                                                         # 15x15
    channels = 16
    for index, (squeeze, expand) in enumerate([(4, 8), (4, 16)], start=3):
        x, channels = fire_module(g, x, channels, squeeze, expand, f"features.{index}")
    x = ceil_max_pool(x)                                                         # 7x7
    for index, (squeeze, expand) in enumerate([(8, 16), (8, 16)], start=6):
        x, channels = fire_module(g, x, channels, squeeze, expand, f"features.{index}")
    x = ceil_max_pool(x)                                                         # 3x3
    for index, (squeeze, expand) in enumerate([(12, 24), (12, 24), (16, 32), (16, 32)],
                                              start=9):
        x, channels = fire_module(g, x, channels, squeeze, expand, f"features.{index}")
    x = g.op("Dropout", [x], ratio=0.5, doc=source)
    x = g.op("Relu", [conv(g, x, channels, 10, 1, "classifier.1", gain=1.0)], doc=source)
    x = g.op("GlobalAveragePool", [x], doc=source)
    g.op("Flatten", [x], "output", axis=1, doc=source)
    return g.model("torch-jit-export", [tensor("input", [1, 3, 63, 63])],
                   [tensor("output", [1, 10])], opset=11, ir_version=6,
                   producer=("pytorch", "1.8"), initializers_as_inputs=False)


def flatten_by_shape(g: GraphWriter, x: str) -> str:
    """``x.view(x.size(0), -1)`` as torch.onnx wrote it at opset 9: the batch size read with
    Shape -> Gather, then Unsqueeze-1 and Concat build Reshape's target shape; the index and
    the -1 are Constant nodes."""
    batch = g.op("Gather", [g.op("Shape", [x]), g.constant_node(np.array(0, np.int64))], axis=0)
    target = g.op("Concat", [g.op("Unsqueeze", [batch], axes=[0]),
                             g.constant_node(np.array([-1], np.int64))], axis=0)
    return g.op("Reshape", [x, target])


VGG16_WIDTHS = (8, 8, "M", 16, 16, "M", 32, 32, 32, "M", 32, 32, 32, "M", 32, 32, 32, "M")


def vgg16_pytorch() -> onnx.ModelProto:
    """torchvision's VGG-16 as torch.onnx.export of PyTorch 1.1 wrote it: IR 4, opset 9,
    every initializer also a graph input, nameless nodes, values numbered where no layer
    name applies, Flatten as
    Shape -> Gather -> Unsqueeze -> Concat -> Reshape, Gemm with transB, Dropout; plus the
    third block's feature map appended as an output with no type by a debugging tool.
    32x32 input, widths / 16 and / 64 in the classifier."""
    g = GraphWriter(NAMELESS)
    x, channels, block, debug_output = "input.1", 3, 0, ""
    for index, width in enumerate(VGG16_WIDTHS):
        if width == "M":
            x = g.op("MaxPool", [x], kernel_shape=[2, 2], strides=[2, 2])
            block += 1
            if block == 3:
                debug_output = x
        else:
            x = conv_relu(g, x, channels, width, 3, f"features.{index}", pad=1)
            channels = width
    x = flatten_by_shape(g, x)
    x = g.op("Dropout", [g.op("Relu", [gemm(g, x, channels, 64, "classifier.0")])], ratio=0.5)
    x = g.op("Dropout", [g.op("Relu", [gemm(g, x, 64, 64, "classifier.3")])], ratio=0.5)
    gemm(g, x, 64, 10, "output1", gain=1.0)
    return g.model("torch-jit-export", [tensor("input.1", [1, 3, 32, 32])],
                   [tensor("output1", [1, 10]), untyped(debug_output)], opset=9,
                   ir_version=4, producer=("pytorch", "1.1"), initializers_as_inputs=True)


VGG19_BLOCKS = ((2, 8), (2, 16), (4, 24), (4, 32), (4, 32))


def vgg19_keras() -> onnx.ModelProto:
    """keras.applications.VGG19 as tf2onnx wrote it: IR 5, opset 9, an NHWC input transposed
    to NCHW, Conv and MaxPool with auto_pad SAME_UPPER (pools of odd sizes pad one row at the
    end), scoped names, Flatten as a constant Reshape back in NHWC order, Dense as MatMul + Add,
    a symbolic batch dimension in the declared output, an import of the ai.onnx.ml domain no
    node uses, a model doc string and metadata. 36x36 input, widths / 16."""
    g = GraphWriter(SCOPED)
    x = g.op("Transpose", ["input_1:0"], "block1_conv1/Conv2D__6", perm=[0, 3, 1, 2])
    channels = 3
    for block, (convs, width) in enumerate(VGG19_BLOCKS, start=1):
        for index in range(1, convs + 1):
            scope = f"block{block}_conv{index}"
            x = conv_relu(g, x, channels, width, 3, f"{scope}/Conv2D", auto_pad="SAME_UPPER")
            channels = width
        x = g.op("MaxPool", [x], f"block{block}_pool/MaxPool", kernel_shape=[2, 2],
                 strides=[2, 2], auto_pad="SAME_UPPER")                          # 18 9 5 3 2
    x = g.op("Transpose", [x], "flatten/Reshape__42", perm=[0, 2, 3, 1])
    features = 2 * 2 * channels
    x = g.op("Reshape", [x, g.constant("flatten/Const:0", np.array([-1, features], np.int64))],
             "flatten/Reshape:0")
    for scope, n_in, n_out in (("fc1", features, 64), ("fc2", 64, 64), ("predictions", 64, 10)):
        kernel = g.normal(f"{scope}/kernel:0", (n_in, n_out), std=np.sqrt(2.0 / n_in))
        bias = g.normal(f"{scope}/bias:0", (n_out,), std=0.1)
        x = g.op("Add", [g.op("MatMul", [x, kernel], f"{scope}/MatMul:0"), bias],
                 f"{scope}/BiasAdd:0")
        if scope != "predictions":
            x = g.op("Relu", [x], f"{scope}/Relu:0")
    g.op("Softmax", [x], "predictions/Softmax:0", axis=1)
    return g.model("tf2onnx", [tensor("input_1:0", [1, 36, 36, 3])],
                   [tensor("predictions/Softmax:0", ["unk__57", 10])], opset=9, ir_version=5,
                   producer=("tf2onnx", "1.5.4"), initializers_as_inputs=False,
                   doc="converted from vgg19.h5", unused_opsets={"ai.onnx.ml": 1},
                   metadata={"converted_from": "keras", "author": "keras.applications"})


def resnet_caffe2() -> onnx.ModelProto:
    """A ResNet v1 as the Caffe2 conversions of the old zoo wrote ResNet-50: IR 3, opset 8,
    nameless nodes, bias-free convolutions followed by BatchNormalization-7 (spatial=1),
    residual additions as Sum, MaxPool-8 with storage_order, GlobalAveragePool, Flatten,
    Gemm with transB, Softmax; model metadata; the top-1 class (ArgMax, int64) appended as an
    output with no type. 32x32 input, three stages of basic blocks."""
    g = GraphWriter(NAMELESS)

    def conv_bn(x: str, c_in: int, c_out: int, kernel: int, scope: str, stride: int,
                scale_range: tuple[float, float] = (0.5, 1.5)) -> str:
        y = conv(g, x, c_in, c_out, kernel, scope, stride=stride, pad=kernel // 2, bias=False)
        return batch_norm_7(g, y, c_out, f"{scope}_bn", scale_range)

    def basic_block(x: str, c_in: int, c_out: int, stride: int, scope: str) -> str:
        y = g.op("Relu", [conv_bn(x, c_in, c_out, 3, f"{scope}_branch2a", stride)])
        # A small scale on the branch's last BatchNormalization keeps the residual sums from
        # doubling the activations' variance at every block.
        y = conv_bn(y, c_out, c_out, 3, f"{scope}_branch2b", 1, scale_range=(0.1, 0.3))
        shortcut = x if stride == 1 and c_in == c_out else \
            conv_bn(x, c_in, c_out, 1, f"{scope}_branch1", stride)
        return g.op("Relu", [g.op("Sum", [y, shortcut], f"{scope}_sum")])

    x = g.op("Relu", [conv_bn("gpu_0/data_0", 3, 16, 7, "conv1", 2)])           # 16x16
    x = g.op("MaxPool", [x], "pool1", kernel_shape=[3, 3], strides=[2, 2],
             pads=[1, 1, 1, 1], storage_order=0)                                 # 8x8
    x = basic_block(x, 16, 16, 1, "res2a")
    x = basic_block(x, 16, 32, 2, "res3a")                                       # 4x4
    x = basic_block(x, 32, 64, 2, "res4a")                                       # 2x2
    x = g.op("Flatten", [g.op("GlobalAveragePool", [x], "pool5")], "pool5_flatten", axis=1)
    probabilities = g.op("Softmax", [gemm(g, x, 64, 10, "pred", gain=1.0)], "gpu_0/softmax_1")
    g.op("ArgMax", [probabilities], "top1", axis=1, keepdims=1)
    return g.model("resnet", [tensor("gpu_0/data_0", [1, 3, 32, 32])],
                   [tensor("gpu_0/softmax_1", [1, 10]), untyped("top1")], opset=8, ir_version=3,
                   producer=("onnx-caffe2", ""), initializers_as_inputs=False,
                   metadata={"model_author": "byoc tests", "source": "caffe2 resnet50 layout"})


# Older opsets' node forms

def opset7_forms_cntk() -> onnx.ModelProto:
    """A small segmentation head in the opset-7 node forms a CNTK or Caffe2 export of 2018
    wrote: IR 3, nameless nodes, Pad-2 (reflect, pads attribute), BatchNormalization-7,
    Clip-6 (min/max attributes), Upsample-7 (scales attribute), Sum and Max of three
    inputs, Slice-1 (starts/ends/axes attributes), Softmax-1 over a 4D tensor (which opsets
    before 13 flatten to 2D at ``axis``), Unsqueeze-1, opset-7 Greater/Less/And/Or/Cast; one
    output declared with a type but no shape, one with no type at all. 16x16 input."""
    g = GraphWriter(NAMELESS)
    x = g.op("Pad", ["Input3"], "pad", mode="reflect", pads=[0, 0, 1, 1, 0, 0, 1, 1])  # 18
    x = conv(g, x, 3, 8, 3, "conv1")                                             # 16x16
    early = g.op("Clip", [batch_norm_7(g, x, 8, "bn1")], "relu6", min=0.0, max=6.0)
    x = g.op("MaxPool", [early], "pool1", kernel_shape=[2, 2], strides=[2, 2])   # 8x8
    x = conv_relu(g, x, 8, 8, 3, "conv2", pad=1)
    up = g.op("Upsample", [x], "up", mode="nearest", scales=[1.0, 1.0, 2.0, 2.0])
    side = conv(g, early, 8, 8, 1, "side", gain=1.0)
    merged = g.op("Sum", [early, up, side], "merged")
    peak = g.op("Max", [merged, up, side], "peak")
    crop = g.op("Slice", [peak], "crop", starts=[1, 1], ends=[15, 15], axes=[2, 3])  # 14x14
    g.op("Softmax", [crop], "prob", axis=1)
    pooled = g.op("ReduceMean", [crop], "mean", axes=[2, 3], keepdims=0)
    g.op("Unsqueeze", [pooled], "pooled", axes=[2])
    in_range = g.op("And", [g.op("Greater", [crop, g.constant("zero", np.float32(0))]),
                            g.op("Less", [crop, g.constant("six", np.float32(6))])], "in_range")
    side_crop = g.op("Slice", [side], "side_crop", starts=[1, 1], ends=[-1, -1], axes=[2, 3])
    chosen = g.op("Or", [in_range, g.op("Greater", [side_crop,
                                                    g.constant("one", np.float32(1))])])
    g.op("Mul", [crop, g.op("Cast", [chosen], to=FLOAT)], "gated")
    return g.model("CNTKGraph", [tensor("Input3", [1, 3, 16, 16])],
                   [tensor("prob", [1, 8, 14, 14]), tensor("pooled", None), untyped("gated")],
                   opset=7, ir_version=3, producer=("CNTK", "2.5"),
                   initializers_as_inputs=False)


def unet_pytorch_opset9() -> onnx.ModelProto:
    """A small U-Net-style segmentation net as torch.onnx of PyTorch 1.0 wrote it: IR 4,
    opset 9, initializers also inputs, nameless nodes, numbered values, Upsample-9 (bilinear,
    scales as an input), Concat of the skip branch, Reshape to a shape built by
    Shape -> Gather -> Unsqueeze -> Concat, Softmax-1 over the last axis of a 3D tensor,
    Dropout-7 with mask, Flatten and Gemm; outputs with no shape and no type. 16x16 input."""
    g = GraphWriter(NAMELESS)
    skip = conv_relu(g, "input.1", 3, 8, 3, "down1", pad=1)                     # 16x16
    x = g.op("MaxPool", [skip], kernel_shape=[2, 2], strides=[2, 2])             # 8x8
    bottom = conv_relu(g, x, 8, 16, 3, "down2", pad=1)
    scales = g.constant("up.scales", np.array([1, 1, 2, 2], np.float32))
    up = g.op("Upsample", [bottom, scales], mode="linear")                       # 16x16
    x = g.op("Concat", [skip, up], axis=1)
    seg = conv(g, x, 24, 4, 1, "seg", gain=1.0)
    shape = g.op("Shape", [seg])
    dims = [g.op("Unsqueeze", [g.op("Gather", [shape, g.constant(f"dim{i}", np.array(i))],
                                    axis=0)], axes=[0]) for i in (0, 1)]
    target = g.op("Concat", [*dims, g.constant("pixels", np.array([-1], np.int64))], axis=0)
    g.op("Softmax", [g.op("Reshape", [seg, target])], "class_prob", axis=2)
    x = dropout_with_mask(g, bottom, 0.2, "drop")
    gemm(g, g.op("Flatten", [x], axis=1), 16 * 8 * 8, 4, "aux", gain=1.0)
    return g.model("torch-jit-export", [tensor("input.1", [1, 3, 16, 16])],
                   [tensor("seg", [1, 4, 16, 16]), tensor("aux", None), untyped("class_prob")],
                   opset=9, ir_version=4, producer=("pytorch", "1.0"),
                   initializers_as_inputs=True)


# Transformer encoders

SEQUENCE, D_MODEL, HEADS, D_FFN = 8, 32, 4, 64
MASKED_SCORE = -10000.0  # what BERT adds to the attention scores of padding positions


def encoder_pytorch(opset: int) -> onnx.ModelProto:
    """A two-layer BERT-style encoder as torch.onnx wrote it, with a token embedding input and
    an int64 attention mask.

    At opset 11 (PyTorch 1.4 to 1.11): LayerNorm decomposed into ReduceMean / Sub / Pow /
    Sqrt / Div, Unsqueeze with the axes attribute, scalars and shape pieces as Constant nodes,
    indexed node names. At opset 17 (PyTorch 2 with training=TrainingMode.PRESERVE, in eval
    mode): LayerNormalization, Unsqueeze with axes as an input, constants as initializers,
    Dropout-13 on the attention probabilities with ratio and training_mode inputs and its
    mask output, scoped node names. Both: Linear as
    MatMul + Add, GELU through Erf, heads split by a Reshape to a shape from
    Shape -> Gather -> Unsqueeze -> Concat, the padding mask applied with Equal -> Expand ->
    Where, a pooler Gather -> Gemm -> Tanh whose output is declared with no shape."""
    g = GraphWriter(INDEXED if opset < 13 else SCOPED)
    head_dim = D_MODEL // HEADS

    def const(name: str, value, dtype=np.float32) -> str:
        if opset < 13:
            return g.constant_node(np.array(value, dtype), name)
        return g.constant(name, np.array(value, dtype))

    def unsqueeze(x: str, axes: list[int], scope: str = "") -> str:
        if opset < 13:
            return g.op("Unsqueeze", [x], scope, axes=axes)
        return g.op("Unsqueeze", [x, const(f"{scope or x}_axes", axes, np.int64)], scope)

    def linear(x: str, d_in: int, d_out: int, scope: str) -> str:
        weight = g.normal(f"{scope}.weight_t", (d_in, d_out), std=np.sqrt(1.0 / d_in))
        bias = g.normal(f"{scope}.bias", (d_out,), std=0.02)
        return g.op("Add", [g.op("MatMul", [x, weight], f"{scope}/MatMul"), bias],
                    f"{scope}/Add")

    def layer_norm(x: str, scope: str) -> str:
        gamma = g.uniform(f"{scope}.weight", (D_MODEL,), 0.5, 1.5)
        beta = g.normal(f"{scope}.bias", (D_MODEL,), std=0.1)
        if opset >= 17:
            return g.op("LayerNormalization", [x, gamma, beta], f"{scope}/LayerNorm",
                        axis=-1, epsilon=1e-12)
        mean = g.op("ReduceMean", [x], f"{scope}/mean", axes=[-1])
        centered = g.op("Sub", [x, mean], f"{scope}/centered")
        variance = g.op("ReduceMean", [g.op("Pow", [centered, const(f"{scope}/two", 2.0)])],
                        f"{scope}/variance", axes=[-1])
        std = g.op("Sqrt", [g.op("Add", [variance, const(f"{scope}/eps", 1e-12)])])
        normed = g.op("Div", [centered, std], f"{scope}/normed")
        return g.op("Add", [g.op("Mul", [normed, gamma]), beta], f"{scope}/out")

    def gelu(x: str, scope: str) -> str:
        erf = g.op("Erf", [g.op("Div", [x, const(f"{scope}/sqrt2", np.sqrt(2.0))])])
        return g.op("Mul", [g.op("Mul", [x, g.op("Add", [erf, const(f"{scope}/one", 1.0)])]),
                            const(f"{scope}/half", 0.5)], f"{scope}/gelu")

    def batch_and_sequence(x: str, scope: str) -> list[str]:
        shape = g.op("Shape", [x], f"{scope}/Shape")
        return [unsqueeze(g.op("Gather", [shape, const(f"{scope}/i{i}", i, np.int64)],
                               f"{scope}/Gather_{i}", axis=0), [0], f"{scope}/Unsqueeze_{i}")
                for i in (0, 1)]

    def split_heads(x: str, leading: list[str], scope: str, perm: list[int]) -> str:
        target = g.op("Concat", [*leading, const(f"{scope}/heads", [HEADS, head_dim], np.int64)],
                      f"{scope}/Concat", axis=0)
        return g.op("Transpose", [g.op("Reshape", [x, target], f"{scope}/Reshape")],
                    f"{scope}/Transpose", perm=perm)

    def attention(x: str, padding: str, scope: str) -> str:
        leading = batch_and_sequence(x, scope)
        q = split_heads(linear(x, D_MODEL, D_MODEL, f"{scope}.query"), leading,
                        f"{scope}/q", [0, 2, 1, 3])
        k = split_heads(linear(x, D_MODEL, D_MODEL, f"{scope}.key"), leading,
                        f"{scope}/k", [0, 2, 3, 1])
        v = split_heads(linear(x, D_MODEL, D_MODEL, f"{scope}.value"), leading,
                        f"{scope}/v", [0, 2, 1, 3])
        scores = g.op("Div", [g.op("MatMul", [q, k], f"{scope}/scores"),
                              const(f"{scope}/scale", np.sqrt(head_dim))], f"{scope}/scaled")
        expanded = g.op("Expand", [padding, g.op("Shape", [scores], f"{scope}/scores_shape")],
                        f"{scope}/mask")
        scores = g.op("Where", [expanded, const(f"{scope}/masked", MASKED_SCORE), scores],
                      f"{scope}/masked_scores")
        probs = g.op("Softmax", [scores], f"{scope}/Softmax", axis=-1)
        if opset >= 13:
            probs, _mask = g.op("Dropout", [probs, const(f"{scope}/dropout_ratio", 0.1),
                                            const(f"{scope}/training", False, np.bool_)],
                                f"{scope}/Dropout", outputs=2)
        context = g.op("Transpose", [g.op("MatMul", [probs, v], f"{scope}/context")],
                       f"{scope}/merge", perm=[0, 2, 1, 3])
        target = g.op("Concat", [*leading, const(f"{scope}/width", [D_MODEL], np.int64)],
                      f"{scope}/merge_shape", axis=0)
        merged = g.op("Reshape", [context, target], f"{scope}/merged")
        return linear(merged, D_MODEL, D_MODEL, f"{scope}.output.dense")

    x = "hidden_states"
    padding = g.op("Equal", ["attention_mask", const("mask_zero", 0, np.int64)], "padding")
    padding = unsqueeze(unsqueeze(padding, [1], "mask_heads"), [2], "mask_queries")
    for layer in range(2):
        scope = f"encoder.layer.{layer}"
        x = layer_norm(g.op("Add", [attention(x, padding, f"{scope}.attention"), x],
                            f"{scope}/attention_residual"), f"{scope}.attention.LayerNorm")
        hidden = gelu(linear(x, D_MODEL, D_FFN, f"{scope}.intermediate"), f"{scope}.gelu")
        x = layer_norm(g.op("Add", [linear(hidden, D_FFN, D_MODEL, f"{scope}.output"), x],
                            f"{scope}/ffn_residual"), f"{scope}.output.LayerNorm")
    g.op("Identity", [x], "last_hidden_state")
    first = g.op("Gather", [x, const("first_token", 0, np.int64)], "first_token_state", axis=1)
    g.op("Tanh", [gemm(g, first, D_MODEL, D_MODEL, "pooler.dense", gain=1.0)], "pooler_output")
    return g.model("torch-jit-export" if opset < 13 else "main_graph",
                   [tensor("hidden_states", [1, SEQUENCE, D_MODEL]),
                    tensor("attention_mask", [1, SEQUENCE], INT64)],
                   [tensor("last_hidden_state", [1, SEQUENCE, D_MODEL]),
                    tensor("pooler_output", None)],
                   opset=opset, ir_version=6 if opset < 13 else 8,
                   producer=("pytorch", "1.8" if opset < 13 else "2.1"),
                   initializers_as_inputs=False)


# More classic zoo models

def mnist_cntk() -> onnx.ModelProto:
    """The zoo's mnist-8 as CNTK wrote it: IR 3, opset 8, CNTK's node names, Conv with
    auto_pad SAME_UPPER and its bias as a broadcast Add of a [C, 1, 1] parameter, a 3x3
    stride-3 pool, the dense layer's weight stored 4D and reshaped in the graph, MatMul + Add.
    Full size (28x28)."""
    g = GraphWriter(SCOPED)

    def conv_plus_relu(x: str, c_in: int, c_out: int, number: int) -> str:
        weight = g.normal(f"Parameter{number}", (c_out, c_in, 5, 5),
                          std=np.sqrt(2.0 / (c_in * 25)))
        y = g.op("Conv", [x, weight], f"Convolution{number + 23}", kernel_shape=[5, 5],
                 strides=[1, 1], auto_pad="SAME_UPPER", group=1, dilations=[1, 1])
        y = g.op("Add", [y, g.normal(f"Parameter{number + 1}", (c_out, 1, 1), std=0.1)],
                 f"Plus{number + 25}")
        return g.op("Relu", [y], f"ReLU{number + 27}")

    x = conv_plus_relu("Input3", 1, 8, 5)
    x = g.op("MaxPool", [x], "Pooling66", kernel_shape=[2, 2], strides=[2, 2], pads=[0] * 4)
    x = conv_plus_relu(x, 8, 16, 87)
    x = g.op("MaxPool", [x], "Pooling160", kernel_shape=[3, 3], strides=[3, 3], pads=[0] * 4)
    x = g.op("Reshape", [x, g.constant("Pooling160_Output_0_reshape0_shape",
                                       np.array([1, 256], np.int64))], "Times212_reshape0")
    weight = g.op("Reshape", [g.normal("Parameter193", (16, 4, 4, 10), std=np.sqrt(1 / 256)),
                              g.constant("Parameter193_reshape1_shape",
                                         np.array([256, 10], np.int64))], "Times212_reshape1")
    x = g.op("MatMul", [x, weight], "Times212")
    g.op("Add", [x, g.normal("Parameter194", (1, 10), std=0.1)], "Plus214_Output_0")
    return g.model("CNTKGraph", [tensor("Input3", [1, 1, 28, 28])],
                   [tensor("Plus214_Output_0", [1, 10])], opset=8, ir_version=3,
                   producer=("CNTK", "2.5.1"), initializers_as_inputs=False)


def tiny_yolov2_winmltools() -> onnx.ModelProto:
    """The zoo's tiny-yolov2-8 as WinMLTools wrote it: IR 3, opset 8, the experimental
    ImageScaler op (scale 1/255) in front, bias-free Conv -> BatchNormalization -> LeakyRelu
    (0.1) stages, and the last max pool 2x2 with stride 1 and auto_pad SAME_UPPER, which pads
    one row and column at the end only. 64x64 input, widths / 16, 5 anchors x 5 values."""
    g = GraphWriter(SCOPED)
    x = g.op("ImageScaler", ["image"], "scalerPreprocessor", scale=1 / 255.0,
             bias=[0.0, 0.0, 0.0])
    # The 1/255 input scale would shrink the first stage's activations to ~0.004; the
    # stem's weights make up for it, as trained weights do.
    channels, stage = 3, 0

    def stage_layers(x: str, width: int, gain: float = 2.0) -> str:
        nonlocal channels, stage
        stage += 1
        y = conv(g, x, channels, width, 3, f"convolution{stage}", pad=1, bias=False, gain=gain)
        y = g.op("BatchNormalization", [y, g.uniform(f"BN{stage}_scale", (width,), 0.5, 1.5),
                                        g.normal(f"BN{stage}_B", (width,), std=0.1),
                                        g.normal(f"BN{stage}_mean", (width,), std=0.1),
                                        g.uniform(f"BN{stage}_variance", (width,), 0.5, 1.5)],
                 f"BatchNormalization{stage}", epsilon=1e-5)
        channels = width
        return g.op("LeakyRelu", [y], f"activation{stage}", alpha=0.1)

    x = stage_layers(x, 8, gain=2.0 * 255**2)
    for width in (16, 32, 32, 64):
        x = g.op("MaxPool", [x], f"pooling{stage}", kernel_shape=[2, 2], strides=[2, 2])
        x = stage_layers(x, width)
    x = g.op("MaxPool", [x], f"pooling{stage}", kernel_shape=[2, 2], strides=[2, 2])  # 2x2
    x = stage_layers(x, 64)
    x = g.op("MaxPool", [x], "pooling6", kernel_shape=[2, 2], strides=[1, 1],
             auto_pad="SAME_UPPER")
    x = stage_layers(stage_layers(x, 64), 64)
    conv(g, x, channels, 25, 1, "grid", gain=1.0)
    return g.model("tiny-yolov2", [tensor("image", [1, 3, 64, 64])],
                   [tensor("grid", [1, 25, 2, 2])], opset=8, ir_version=3,
                   producer=("WinMLTools", ""), initializers_as_inputs=False)


def style_transfer_pytorch() -> onnx.ModelProto:
    """The zoo's fast-neural-style (mosaic-9) as torch.onnx of PyTorch 1.0 wrote it: IR 4,
    opset 9, every initializer also a graph input, nameless nodes, Pad-2 with reflect mode
    before every convolution, InstanceNormalization, residual blocks, Upsample-9 (nearest) with
    its scales from a Constant node. 32x32 input, widths / 4."""
    g = GraphWriter(NAMELESS)

    def conv_layer(x: str, c_in: int, c_out: int, kernel: int, scope: str,
                   stride: int = 1) -> str:
        pad = kernel // 2
        x = g.op("Pad", [x], mode="reflect", pads=[0, 0, pad, pad, 0, 0, pad, pad])
        return conv(g, x, c_in, c_out, kernel, scope, stride=stride)

    def instance_norm(x: str, channels: int, scope: str) -> str:
        return g.op("InstanceNormalization",
                    [x, g.uniform(f"{scope}.weight", (channels,), 0.5, 1.5),
                     g.normal(f"{scope}.bias", (channels,), std=0.1)], epsilon=1e-5)

    def conv_norm_relu(x: str, c_in: int, c_out: int, kernel: int, scope: str,
                       stride: int = 1) -> str:
        x = conv_layer(x, c_in, c_out, kernel, f"{scope}.conv", stride)
        return g.op("Relu", [instance_norm(x, c_out, f"{scope}.in")])

    x = conv_norm_relu("input1", 3, 8, 9, "conv1")
    x = conv_norm_relu(x, 8, 16, 3, "conv2", stride=2)                          # 16x16
    x = conv_norm_relu(x, 16, 32, 3, "conv3", stride=2)                         # 8x8
    for block in (1, 2):
        scope = f"res{block}"
        y = conv_norm_relu(x, 32, 32, 3, f"{scope}.1")
        y = instance_norm(conv_layer(y, 32, 32, 3, f"{scope}.conv2"), 32, f"{scope}.in2")
        x = g.op("Add", [y, x])
    for scope, c_in, c_out in (("deconv1", 32, 16), ("deconv2", 16, 8)):
        scales = g.constant_node(np.array([1, 1, 2, 2], np.float32))
        x = conv_norm_relu(g.op("Upsample", [x, scales], mode="nearest"), c_in, c_out, 3, scope)
    x = conv_layer(x, 8, 3, 9, "deconv3", stride=1)
    g.op("Identity", [x], "output1")
    return g.model("torch-jit-export", [tensor("input1", [1, 3, 32, 32])],
                   [tensor("output1", [1, 3, 32, 32])], opset=9, ir_version=4,
                   producer=("pytorch", "1.0"), initializers_as_inputs=True)


MOBILENET_V2_BLOCKS = ((1, 8, 1), (6, 12, 2), (6, 12, 1), (6, 16, 2), (6, 16, 1))


def mobilenet_v2_pytorch() -> onnx.ModelProto:
    """torchvision's MobileNet v2 as torch.onnx of PyTorch 1.6 wrote it: IR 7, opset 12,
    BatchNormalization folded into the convolutions by the exporter, ReLU6 as Clip with min
    and max inputs from Constant nodes, depthwise convolutions (group = channels), residual
    Adds, GlobalAveragePool, Flatten, Dropout-12 with ratio and training_mode inputs (as
    training=TrainingMode.PRESERVE exports it in eval mode), Gemm; a symbolic batch dimension
    from dynamic_axes.
    32x32 input, widths / 4."""
    g = GraphWriter(INDEXED)

    def conv_relu6(x: str, c_in: int, c_out: int, kernel: int, scope: str, stride: int = 1,
                   group: int = 1) -> str:
        y = conv(g, x, c_in, c_out, kernel, scope, stride=stride, pad=kernel // 2, group=group)
        return g.op("Clip", [y, g.constant_node(np.float32(0)), g.constant_node(np.float32(6))])

    x = conv_relu6("input", 3, 8, 3, "features.0.0", stride=2)                  # 16x16
    channels = 8
    for index, (expansion, width, stride) in enumerate(MOBILENET_V2_BLOCKS, start=1):
        scope = f"features.{index}.conv"
        hidden = channels * expansion
        y = x if expansion == 1 else conv_relu6(x, channels, hidden, 1, f"{scope}.0.0")
        y = conv_relu6(y, hidden, hidden, 3, f"{scope}.1.0", stride=stride, group=hidden)
        y = conv(g, y, hidden, width, 1, f"{scope}.2", gain=1.0)
        x = g.op("Add", [x, y]) if stride == 1 and channels == width else y
        channels = width
    x = conv_relu6(x, channels, 64, 1, "features.18.0")
    x = g.op("Flatten", [g.op("GlobalAveragePool", [x])], axis=1)
    x = g.op("Dropout", [x, g.constant_node(np.float32(0.2)), g.constant_node(np.bool_(False))])
    gemm(g, x, 64, 10, "output", gain=1.0)
    return g.model("torch-jit-export", [tensor("input", ["batch_size", 3, 32, 32])],
                   [tensor("output", ["batch_size", 10])], opset=12, ir_version=7,
                   producer=("pytorch", "1.6"), initializers_as_inputs=False)


GPT2_VOCAB, GPT2_CONTEXT = 50, 16


def gpt2_pytorch() -> onnx.ModelProto:
    """A two-block GPT-2 as transformers' torch.onnx export at opset 13 wrote it: IR 7, int64
    input_ids and attention_mask, token and position embeddings by Gather (positions from
    Range), the fused QKV projection cut by Split-13 with split sizes as an input, a causal
    mask sliced from a bool lower-triangular buffer with Slice-13 and applied by Where, the
    padding mask as (1 - mask) * -10000 added to the scores, LayerNorm decomposed, the tanh
    GELU ("gelu_new", with Pow 3), logits tied to the token embedding (MatMul with its
    transpose)."""
    g = GraphWriter(SCOPED)
    head_dim = D_MODEL // HEADS

    def const(name: str, value, dtype=np.int64) -> str:
        return g.constant(name, np.array(value, dtype))

    def layer_norm(x: str, scope: str) -> str:
        mean = g.op("ReduceMean", [x], f"{scope}/ReduceMean", axes=[-1])
        centered = g.op("Sub", [x, mean], f"{scope}/Sub")
        variance = g.op("ReduceMean", [g.op("Pow", [centered, const(f"{scope}/two", 2.0,
                                                                     np.float32)],
                                            f"{scope}/Pow")], f"{scope}/ReduceMean_1", axes=[-1])
        std = g.op("Sqrt", [g.op("Add", [variance, const(f"{scope}/eps", 1e-5, np.float32)],
                                 f"{scope}/Add")], f"{scope}/Sqrt")
        normed = g.op("Div", [centered, std], f"{scope}/Div")
        gamma = g.uniform(f"{scope}.weight", (D_MODEL,), 0.5, 1.5)
        beta = g.normal(f"{scope}.bias", (D_MODEL,), std=0.1)
        return g.op("Add", [g.op("Mul", [normed, gamma], f"{scope}/Mul"), beta],
                    f"{scope}/Add_1")

    def conv1d(x: str, d_in: int, d_out: int, scope: str) -> str:
        """GPT-2's Conv1D: x @ weight + bias with a [d_in, d_out] weight."""
        weight = g.normal(f"{scope}.weight", (d_in, d_out), std=np.sqrt(1.0 / d_in))
        bias = g.normal(f"{scope}.bias", (d_out,), std=0.02)
        return g.op("Add", [g.op("MatMul", [x, weight], f"{scope}/MatMul"), bias],
                    f"{scope}/Add")

    def gelu_new(x: str, scope: str) -> str:
        cube = g.op("Pow", [x, const(f"{scope}/three", 3.0, np.float32)], f"{scope}/Pow")
        inner = g.op("Add", [x, g.op("Mul", [cube, const(f"{scope}/c", 0.044715, np.float32)],
                                     f"{scope}/Mul")], f"{scope}/Add")
        inner = g.op("Mul", [inner, const(f"{scope}/k", np.sqrt(2 / np.pi), np.float32)],
                     f"{scope}/Mul_1")
        one_plus = g.op("Add", [g.op("Tanh", [inner], f"{scope}/Tanh"),
                                const(f"{scope}/one", 1.0, np.float32)], f"{scope}/Add_1")
        half_x = g.op("Mul", [x, const(f"{scope}/half", 0.5, np.float32)], f"{scope}/Mul_2")
        return g.op("Mul", [half_x, one_plus], f"{scope}/Mul_3")

    ids_shape = g.op("Shape", ["input_ids"], "/transformer/Shape")
    length = g.op("Gather", [ids_shape, const("/transformer/i1", 1)], "/transformer/Gather",
                  axis=0)
    positions = g.op("Range", [const("/transformer/zero", 0), length,
                               const("/transformer/step", 1)], "/transformer/Range")
    positions = g.op("Unsqueeze", [positions, const("/transformer/axes0", [0])],
                     "/transformer/Unsqueeze")
    token_table = g.normal("transformer.wte.weight", (GPT2_VOCAB, D_MODEL), std=1.0)
    position_table = g.normal("transformer.wpe.weight", (GPT2_CONTEXT, D_MODEL), std=0.3)
    x = g.op("Add", [g.op("Gather", [token_table, "input_ids"], "/transformer/wte/Gather"),
                     g.op("Gather", [position_table, positions], "/transformer/wpe/Gather")],
             "/transformer/Add")
    padding = g.op("Cast", [g.op("Unsqueeze", ["attention_mask", const("/mask/axes", [1, 2])],
                                 "/mask/Unsqueeze")], "/mask/Cast", to=FLOAT)
    padding = g.op("Mul", [g.op("Sub", [const("/mask/one", 1.0, np.float32), padding],
                                "/mask/Sub"), const("/mask/big", MASKED_SCORE, np.float32)],
                   "/mask/Mul")
    causal = g.constant("transformer.h.bias", np.tril(np.ones((GPT2_CONTEXT, GPT2_CONTEXT),
                                                               bool))[None, None])
    for block in range(2):
        scope = f"/transformer/h.{block}"
        h = layer_norm(x, f"{scope}/ln_1")
        q, k, v = g.op("Split", [conv1d(h, D_MODEL, 3 * D_MODEL, f"{scope}/attn/c_attn"),
                                 const(f"{scope}/split", [D_MODEL] * 3)],
                       f"{scope}/attn/Split", outputs=3, axis=2)
        leading = [g.op("Unsqueeze", [g.op("Gather", [g.op("Shape", [h], f"{scope}/Shape_{i}"),
                                                      const(f"{scope}/i{i}", i)],
                                           f"{scope}/Gather_{i}", axis=0),
                                      const(f"{scope}/axes{i}", [0])], f"{scope}/Unsqueeze_{i}")
                   for i in (0, 1)]
        head_shape = g.op("Concat", [*leading, const(f"{scope}/heads", [HEADS, head_dim])],
                          f"{scope}/Concat", axis=0)

        def heads(value: str, name: str, perm: list[int], scope: str = scope,
                  head_shape: str = head_shape) -> str:
            return g.op("Transpose", [g.op("Reshape", [value, head_shape],
                                           f"{scope}/Reshape_{name}")],
                        f"{scope}/Transpose_{name}", perm=perm)

        scores = g.op("MatMul", [heads(q, "q", [0, 2, 1, 3]), heads(k, "k", [0, 2, 3, 1])],
                      f"{scope}/attn/MatMul")
        scores = g.op("Div", [scores, const(f"{scope}/scale", np.sqrt(head_dim), np.float32)],
                      f"{scope}/attn/Div")
        visible = g.op("Slice", [causal, const(f"{scope}/zeros", [0, 0]),
                                 g.op("Concat", [leading[1], leading[1]], f"{scope}/ends",
                                      axis=0),
                                 const(f"{scope}/slice_axes", [2, 3])], f"{scope}/attn/Slice")
        scores = g.op("Where", [visible, scores, const(f"{scope}/masked", MASKED_SCORE,
                                                       np.float32)], f"{scope}/attn/Where")
        scores = g.op("Add", [scores, padding], f"{scope}/attn/Add")
        probs = g.op("Softmax", [scores], f"{scope}/attn/Softmax", axis=-1)
        context = g.op("Transpose", [g.op("MatMul", [probs, heads(v, "v", [0, 2, 1, 3])],
                                          f"{scope}/attn/MatMul_1")],
                       f"{scope}/attn/Transpose", perm=[0, 2, 1, 3])
        merged = g.op("Reshape", [context, g.op("Concat", [*leading, const(f"{scope}/width",
                                                                           [D_MODEL])],
                                                f"{scope}/Concat_1", axis=0)],
                      f"{scope}/attn/Reshape")
        x = g.op("Add", [conv1d(merged, D_MODEL, D_MODEL, f"{scope}/attn/c_proj"), x],
                 f"{scope}/Add")
        hidden = gelu_new(conv1d(layer_norm(x, f"{scope}/ln_2"), D_MODEL, D_FFN,
                                 f"{scope}/mlp/c_fc"), f"{scope}/mlp/act")
        x = g.op("Add", [conv1d(hidden, D_FFN, D_MODEL, f"{scope}/mlp/c_proj"), x],
                 f"{scope}/Add_1")
    x = layer_norm(x, "/transformer/ln_f")
    tied = g.op("Transpose", [token_table], "/lm_head/Transpose", perm=[1, 0])
    g.op("MatMul", [x, tied], "logits")
    return g.model("main_graph", [tensor("input_ids", [1, SEQUENCE], INT64),
                                  tensor("attention_mask", [1, SEQUENCE], INT64)],
                   [tensor("logits", [1, SEQUENCE, GPT2_VOCAB])], opset=13, ir_version=7,
                   producer=("pytorch", "1.12"), initializers_as_inputs=False)


LSTM_VOCAB, LSTM_HIDDEN, LSTM_SEQUENCE = 30, 12, 10


def lstm_classifier_pytorch() -> onnx.ModelProto:
    """A text classifier (embedding, one-layer LSTM, linear on the last hidden state) as
    torch.onnx of PyTorch 1.8 wrote it at opset 11: IR 6, int64 tokens, Gather embedding,
    Transpose to sequence-major, LSTM with W, R, B in ONNX's gate order, no sequence lengths
    (an empty input name) and zero initial states, Squeeze-11 of Y_h, Gemm; Y appended as an
    output with no type."""
    g = GraphWriter(INDEXED)
    table = g.normal("embedding.weight", (LSTM_VOCAB, 16), std=1.0)
    x = g.op("Transpose", [g.op("Gather", [table, "tokens"])], perm=[1, 0, 2])   # [seq, 1, 16]
    std = 1 / np.sqrt(LSTM_HIDDEN)
    weights = [g.uniform("lstm.W", (1, 4 * LSTM_HIDDEN, 16), -std, std),
               g.uniform("lstm.R", (1, 4 * LSTM_HIDDEN, LSTM_HIDDEN), -std, std),
               g.uniform("lstm.B", (1, 8 * LSTM_HIDDEN), -std, std)]
    zeros = g.constant("lstm.initial_state", np.zeros((1, 1, LSTM_HIDDEN), np.float32))
    sequence, last_hidden, _last_cell = g.op("LSTM", [x, *weights, "", zeros, zeros],
                                            "lstm", outputs=3, hidden_size=LSTM_HIDDEN)
    g.op("Squeeze", [sequence], "sequence", axes=[1])
    gemm(g, g.op("Squeeze", [last_hidden], axes=[0]), LSTM_HIDDEN, 3, "logits", gain=1.0)
    return g.model("torch-jit-export", [tensor("tokens", [1, LSTM_SEQUENCE], INT64)],
                   [tensor("logits", [1, 3]), untyped("sequence")], opset=11, ir_version=6,
                   producer=("pytorch", "1.8"), initializers_as_inputs=False)


def fpn_keras2onnx() -> onnx.ModelProto:
    """A YOLOv3-style two-scale head as keras2onnx wrote it at opset 10: IR 5, an NHWC input
    transposed to NCHW, Conv with auto_pad SAME_UPPER, LeakyRelu, Resize-10 (nearest, scales
    as an input), Concat with the finer feature map, Slice-10 with starts/ends/axes/steps
    inputs, Dropout-10 with its bool mask output, outputs transposed back to NHWC and named
    ``<layer>:0``. 32x32 input."""
    g = GraphWriter(SCOPED)

    def leaky(x: str, c_in: int, c_out: int, kernel: int, scope: str, stride: int = 1) -> str:
        y = conv(g, x, c_in, c_out, kernel, f"{scope}/convolution", stride=stride,
                 auto_pad="SAME_UPPER")
        return g.op("LeakyRelu", [y], f"{scope}/LeakyRelu:0", alpha=0.1)

    x = g.op("Transpose", ["input_1:0"], "adjusted_input", perm=[0, 3, 1, 2])
    fine = leaky(x, 3, 8, 3, "conv2d_1", stride=2)                               # 16x16
    coarse = leaky(leaky(fine, 8, 16, 3, "conv2d_2", stride=2), 16, 8, 1, "conv2d_3")  # 8x8
    up = g.op("Resize", [coarse, g.constant("up_sampling2d_1/scales",
                                            np.array([1, 1, 2, 2], np.float32))],
              "up_sampling2d_1/Resize:0", mode="nearest")                       # 16x16
    merged = g.op("Concat", [up, fine], "concatenate_1/concat:0", axis=1)
    head = leaky(merged, 16, 16, 3, "conv2d_4")
    head, _mask = g.op("Dropout", [head], "dropout_1/cond/Merge:0", outputs=2, ratio=0.1)
    outputs = []
    for scope, source, channels in (("conv2d_5", head, 16), ("conv2d_6", coarse, 8)):
        y = conv(g, source, channels, 12, 1, f"{scope}/BiasAdd", gain=1.0)
        outputs.append(g.op("Transpose", [y], f"{scope}:0", perm=[0, 2, 3, 1]))
    # Every second anchor row of the fine output, as a box decoder that keeps one anchor of
    # two reads it.
    g.op("Slice", [outputs[0], g.constant("starts", np.array([0], np.int64)),
                   g.constant("ends", np.array([16], np.int64)),
                   g.constant("axes", np.array([1], np.int64)),
                   g.constant("steps", np.array([2], np.int64))], "strided:0")
    return g.model("yolo_head", [tensor("input_1:0", [1, 32, 32, 3])],
                   [tensor("conv2d_5:0", [1, 16, 16, 12]), tensor("conv2d_6:0", [1, 8, 8, 12]),
                    tensor("strided:0", [1, 8, 16, 12])], opset=10, ir_version=5,
                   producer=("keras2onnx", "1.6.0"), initializers_as_inputs=False)


DETECTOR_GRID, DETECTOR_CLASSES, DETECTOR_MAX_BOXES = 8, 3, 5


def detector_pytorch() -> onnx.ModelProto:
    """A one-stage detector's export in the form torchvision's detection models take at opset
    11 (PyTorch 1.8): IR 6, a small backbone, box and class heads reshaped to [1, boxes, 4]
    and [1, classes, boxes], anchors decoded in centre form, TopK of the best class scores,
    then NonMaxSuppression (centre_point_box) whose selected boxes are gathered, so two
    outputs have a data-dependent first dimension, declared symbolic. 32x32 input, an 8x8
    grid of one anchor each."""
    g = GraphWriter(INDEXED)
    boxes = DETECTOR_GRID * DETECTOR_GRID

    def const(name: str, value, dtype=np.int64) -> str:
        return g.constant(name, np.array(value, dtype))

    x = conv_relu(g, "images", 3, 8, 3, "backbone.0", stride=2, pad=1)          # 16x16
    features = conv_relu(g, x, 8, 16, 3, "backbone.2", stride=2, pad=1)          # 8x8
    deltas = g.op("Transpose", [g.op("Reshape", [conv(g, features, 16, 4, 1, "head.bbox",
                                                       gain=1.0),
                                                  const("bbox_shape", [1, 4, boxes])])],
                  perm=[0, 2, 1])                                                # [1, 64, 4]
    centres = (np.arange(DETECTOR_GRID) + 0.5) / DETECTOR_GRID
    cy, cx = np.meshgrid(centres, centres, indexing="ij")
    anchors = np.stack([cx.ravel(), cy.ravel(), np.full(boxes, 0.25), np.full(boxes, 0.25)], 1)
    decoded = g.op("Add", [g.constant("anchors", anchors[None].astype(np.float32)),
                           g.op("Mul", [deltas, const("box_coder_weight", 0.05, np.float32)])])
    logits = g.op("Reshape", [conv(g, features, 16, DETECTOR_CLASSES, 1, "head.cls", gain=1.0),
                              const("cls_shape", [1, DETECTOR_CLASSES, boxes])])
    scores = g.op("Sigmoid", [logits])                                           # [1, 3, 64]
    best = g.op("ReduceMax", [scores], axes=[1], keepdims=0)                     # [1, 64]
    g.op("TopK", [best, const("k", [10])], "top_scores", outputs=2, axis=-1)
    selected = g.op("NonMaxSuppression",
                    [decoded, scores, const("max_output_boxes_per_class", [DETECTOR_MAX_BOXES]),
                     const("iou_threshold", [0.5], np.float32),
                     const("score_threshold", [0.55], np.float32)],
                    "selected_indices", center_point_box=1)
    box_index = g.op("Gather", [selected, const("box_column", 2)], axis=1)
    all_boxes = g.op("Squeeze", [decoded], axes=[0])
    g.op("Gather", [all_boxes, box_index], "detections", axis=0)
    return g.model("torch-jit-export", [tensor("images", [1, 3, 32, 32])],
                   [tensor("detections", ["num_detections", 4]),
                    tensor("selected_indices", ["num_detections", 3], INT64),
                    tensor("top_scores", [1, 10]), tensor("top_scores_1", [1, 10], INT64)],
                   opset=11, ir_version=6, producer=("pytorch", "1.8"),
                   initializers_as_inputs=False)


MODELS: dict[str, Callable[[], onnx.ModelProto]] = {
    "alexnet_caffe2": alexnet_caffe2,
    "googlenet_caffe2": googlenet_caffe2,
    "squeezenet1_0_caffe2": squeezenet1_0_caffe2,
    "squeezenet1_1_pytorch": squeezenet1_1_pytorch,
    "vgg16_pytorch": vgg16_pytorch,
    "vgg19_keras": vgg19_keras,
    "resnet_caffe2": resnet_caffe2,
    "opset7_forms_cntk": opset7_forms_cntk,
    "unet_pytorch_opset9": unet_pytorch_opset9,
    "bert_pytorch_opset11": lambda: encoder_pytorch(opset=11),
    "encoder_pytorch_opset17": lambda: encoder_pytorch(opset=17),
    "mnist_cntk": mnist_cntk,
    "tiny_yolov2_winmltools": tiny_yolov2_winmltools,
    "style_transfer_pytorch": style_transfer_pytorch,
    "mobilenet_v2_pytorch": mobilenet_v2_pytorch,
    "gpt2_pytorch": gpt2_pytorch,
    "lstm_classifier_pytorch": lstm_classifier_pytorch,
    "detector_pytorch": detector_pytorch,
    "fpn_keras2onnx": fpn_keras2onnx,
}


def feeds_for(model: onnx.ModelProto, seed: int = 0) -> dict[str, np.ndarray]:
    """Seeded inputs for every graph input that is not an initializer, with a batch of one
    for a symbolic dimension: standard normal floats;
    for an int64 input that indexes an embedding table (the indices of a Gather from an
    initializer), token ids within the table; for any other int64 input (an attention
    mask), ones followed by a random run of padding zeros, so every sequence keeps a token."""
    rng = np.random.default_rng(seed)
    initializers = {t.name: t for t in model.graph.initializer}
    table_rows = {node.input[1]: initializers[node.input[0]].dims[0]
                  for node in model.graph.node
                  if node.op_type == "Gather" and node.input[0] in initializers}
    feeds = {}
    for value in model.graph.input:
        if value.name in initializers:
            continue
        shape = [d.dim_value if d.HasField("dim_value") else 1
                 for d in value.type.tensor_type.shape.dim]
        elem_type = value.type.tensor_type.elem_type
        if elem_type == FLOAT:
            feeds[value.name] = rng.standard_normal(shape).astype(np.float32)
        elif elem_type == INT64 and value.name in table_rows:
            feeds[value.name] = rng.integers(0, table_rows[value.name], size=shape)
        elif elem_type == INT64:
            kept = rng.integers(1, shape[-1] + 1, size=shape[:-1])
            feeds[value.name] = (np.arange(shape[-1]) < kept[..., None]).astype(np.int64)
        else:
            raise ValueError(f"no sample inputs for {value.name!r} of element type "
                             f"{TensorProto.DataType.Name(elem_type)}")
    return feeds


# Int8

class _SeededCalibration(CalibrationDataReader):
    """Feeds ``feeds_for(model, seed)`` for seeds 1..count to onnxruntime's calibrator (seed 0
    is left for the inputs the models are tested on)."""

    def __init__(self, model: onnx.ModelProto, count: int):
        self._feeds = (feeds_for(model, seed) for seed in range(1, count + 1))

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._feeds, None)


def quantized_qdq(model: onnx.ModelProto, calibration_samples: int = 4) -> onnx.ModelProto:
    """``model`` quantized as users quantize a zoo model for int8 hardware: onnxruntime's
    pre-processing (which folds constants and BatchNormalization), then quantize_static in QDQ
    form with its default per-tensor scales, uint8 activations and int8 weights, calibrated on
    seeded inputs."""
    with tempfile.TemporaryDirectory(prefix="byoc-real-models-") as tmp:
        parent, prepared, quantized = (Path(tmp, f"{stage}.onnx")
                                       for stage in ("parent", "prepared", "quantized"))
        # From a file: given a ModelProto, the pre-processing moves its weights out to
        # external data in place, which would spoil the caller's model.
        onnx.save(model, parent)
        quant_pre_process(parent, prepared, skip_symbolic_shape=True)
        quantize_static(prepared, quantized, _SeededCalibration(model, calibration_samples),
                        quant_format=QuantFormat.QDQ, activation_type=QuantType.QUInt8,
                        weight_type=QuantType.QInt8, calibrate_method=CalibrationMethod.MinMax)
        return onnx.load(quantized)
