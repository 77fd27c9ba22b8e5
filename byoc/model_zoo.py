"""The example model zoo: small, deterministic ONNX models for exercising byoc end to end.

Every model is built with onnx.helper from seeded numpy weights, at opset 17, and passes
``onnx.checker.check_model(full_check=True)``. The int8 models are static QDQ quantizations of
their float parents made by onnxruntime's quantizer (so this module needs onnxruntime, which
byoc's test extra installs), calibrated on seeded random inputs. Building the same model twice
gives byte-identical files.

Two of them, ``resnet50`` and ``vgg19``, are benchmark-size (224x224, the real architectures,
random weights; vgg19's file is about 575 MB) and are left out of ``build_all()`` and of
``DEFAULT_MODELS``, which the tests build; ``benchmarks/cpu_llvm.py`` builds them, with the rest
of the benchmark corpus (``benchmarks/corpus.py``, written with this module's builder and
layers).

``examples/zoo.py`` of the source tree is the command-line script that builds them.
"""

from __future__ import annotations

import logging
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
from onnx import helper, numpy_helper
from onnxruntime.quantization import (
    CalibrationDataReader,
    CalibrationMethod,
    QuantFormat,
    QuantType,
    quantize_static,
)
from onnxruntime.quantization.shape_inference import quant_pre_process

OPSET = 17
IR_VERSION = helper.find_min_ir_version_for([helper.make_opsetid("", OPSET)])
WEIGHT_SEED = 0
INPUT_NAME = "input"
OUTPUT_NAME = "output"

NORM_SCALE_RANGE = (0.5, 1.5)  # of BatchNormalization and LayerNormalization
# The last BatchNormalization of each residual branch gets a small scale so that the eight
# residual Adds of resnet18 do not double the activation variance eight times over (the
# "zero-init residual gamma" trick, softened so the branch still contributes).
RESIDUAL_BN_SCALE_RANGE = (0.1, 0.3)

logger = logging.getLogger(__name__)


class GraphBuilder:
    """Collects the nodes and seeded initializers of one graph.

    The layer helpers below take a builder, a scope (a PyTorch-exporter-like prefix such as
    ``layer2.0.conv1``) and input value names, and return the name of the value they produce.
    A node and its single output share one name, ``<scope>/<OpType>``.
    """

    def __init__(self, name: str):
        self.name = name
        self.rng = np.random.default_rng(WEIGHT_SEED)
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []
        self._names: set[str] = {INPUT_NAME}

    def _claim(self, name: str) -> str:
        if name in self._names:
            raise ValueError(f"graph {self.name!r} already has a value named {name!r}")
        self._names.add(name)
        return name

    def constant(self, name: str, value: np.ndarray | np.generic) -> str:
        self.initializers.append(numpy_helper.from_array(np.asarray(value), self._claim(name)))
        return name

    def normal(self, name: str, shape: tuple[int, ...], std: float, mean: float = 0.0) -> str:
        values = mean + std * self.rng.standard_normal(shape)
        return self.constant(name, values.astype(np.float32))

    def uniform(self, name: str, shape: tuple[int, ...], low: float, high: float) -> str:
        return self.constant(name, self.rng.uniform(low, high, shape).astype(np.float32))

    def op(self, op_type: str, inputs: Iterable[str], scope: str, **attributes) -> str:
        name = self._claim(f"{scope}/{op_type}")
        self.nodes.append(helper.make_node(op_type, list(inputs), [name], name=name, **attributes))
        return name

    def op_outputs(self, op_type: str, inputs: Iterable[str], scope: str, count: int,
                   **attributes) -> list[str]:
        """A node of ``count`` outputs (Split), named ``<scope>/<OpType>`` and its outputs
        ``<scope>/<OpType>_<index>``."""
        name = self._claim(f"{scope}/{op_type}")
        outputs = [self._claim(f"{name}_{index}") for index in range(count)]
        self.nodes.append(helper.make_node(op_type, list(inputs), outputs, name=name,
                                           **attributes))
        return outputs

    def model(self, input_shape: list[int], result: str,
              output_shape: list[int]) -> onnx.ModelProto:
        """Close the graph over ``input`` → ... → ``result``, renaming ``result`` to ``output``."""
        def rename(names: Iterable[str]) -> list[str]:
            return [OUTPUT_NAME if name == result else name for name in names]

        for node in self.nodes:
            node.input[:], node.output[:] = rename(node.input), rename(node.output)
        graph = helper.make_graph(
            self.nodes, self.name,
            [helper.make_tensor_value_info(INPUT_NAME, onnx.TensorProto.FLOAT, input_shape)],
            [helper.make_tensor_value_info(OUTPUT_NAME, onnx.TensorProto.FLOAT, output_shape)],
            self.initializers)
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                                  ir_version=IR_VERSION, producer_name="byoc examples/zoo.py")
        onnx.checker.check_model(model, full_check=True)
        return model


# Layers

def dense(g: GraphBuilder, scope: str, x: str, n_in: int, n_out: int, relu: bool) -> str:
    """Gemm with a [n_out, n_in] weight (transB, as PyTorch exports Linear), optionally + Relu."""
    gain = 2.0 if relu else 1.0  # He init before a Relu, LeCun init otherwise
    weight = g.normal(f"{scope}.weight", (n_out, n_in), std=np.sqrt(gain / n_in))
    bias = g.normal(f"{scope}.bias", (n_out,), std=0.1)
    y = g.op("Gemm", [x, weight, bias], scope, transB=1)
    return g.op("Relu", [y], scope) if relu else y


def batch_norm(g: GraphBuilder, scope: str, x: str, channels: int,
               scale_range: tuple[float, float]) -> str:
    """Inference-mode BatchNormalization with random (non-identity) statistics."""
    scale = g.uniform(f"{scope}.weight", (channels,), *scale_range)
    bias = g.normal(f"{scope}.bias", (channels,), std=0.1)
    mean = g.normal(f"{scope}.running_mean", (channels,), std=0.1)
    var = g.uniform(f"{scope}.running_var", (channels,), 0.5, 1.5)
    return g.op("BatchNormalization", [x, scale, bias, mean, var], scope, epsilon=1e-5)


def conv_bn(g: GraphBuilder, scope: str, x: str, c_in: int, c_out: int, kernel: int,
            stride: int = 1, relu: bool = True,
            bn_scale_range: tuple[float, float] = NORM_SCALE_RANGE) -> str:
    """Bias-free Conv (He init, "same" padding) + BatchNormalization, optionally + Relu."""
    fan_in = c_in * kernel * kernel
    weight = g.normal(f"{scope}.weight", (c_out, c_in, kernel, kernel), std=np.sqrt(2.0 / fan_in))
    y = g.op("Conv", [x, weight], scope, kernel_shape=[kernel, kernel], strides=[stride, stride],
             pads=[kernel // 2] * 4)
    y = batch_norm(g, f"{scope}.bn", y, c_out, bn_scale_range)
    return g.op("Relu", [y], scope) if relu else y


def residual_add(g: GraphBuilder, scope: str, y: str, x: str, c_in: int, c_out: int,
                 stride: int) -> str:
    """relu(y + shortcut(x)), the shortcut being x itself, or a 1x1 projection (Conv +
    BatchNormalization, carrying the stride) where the block changes the shape."""
    if stride == 1 and c_in == c_out:
        shortcut = x
    else:
        shortcut = conv_bn(g, f"{scope}.downsample", x, c_in, c_out, 1, stride, relu=False)
    return g.op("Relu", [g.op("Add", [y, shortcut], scope)], scope)


def basic_block(g: GraphBuilder, scope: str, x: str, c_in: int, c_out: int, stride: int) -> str:
    """ResNet BasicBlock: relu(bn(conv(relu(bn(conv(x))))) + shortcut(x))."""
    y = conv_bn(g, f"{scope}.conv1", x, c_in, c_out, 3, stride)
    y = conv_bn(g, f"{scope}.conv2", y, c_out, c_out, 3, relu=False,
                bn_scale_range=RESIDUAL_BN_SCALE_RANGE)
    return residual_add(g, scope, y, x, c_in, c_out, stride)


def bottleneck_block(g: GraphBuilder, scope: str, x: str, c_in: int, width: int,
                     stride: int) -> str:
    """ResNet v1 Bottleneck: 1x1 (width, carrying the stride), 3x3 (width), 1x1 (4 * width),
    plus a 1x1 projection shortcut where the shape changes, then Relu."""
    c_out = 4 * width
    y = conv_bn(g, f"{scope}.conv1", x, c_in, width, 1, stride)
    y = conv_bn(g, f"{scope}.conv2", y, width, width, 3)
    y = conv_bn(g, f"{scope}.conv3", y, width, c_out, 1, relu=False,
                bn_scale_range=RESIDUAL_BN_SCALE_RANGE)
    return residual_add(g, scope, y, x, c_in, c_out, stride)


def relu6(g: GraphBuilder, scope: str, x: str) -> str:
    """Clip(x, 0, 6), MobileNet's activation."""
    low = g.constant(f"{scope}.clip_min", np.float32(0))
    high = g.constant(f"{scope}.clip_max", np.float32(6))
    return g.op("Clip", [x, low, high], scope)


def conv_bn_relu6(g: GraphBuilder, scope: str, x: str, c_in: int, c_out: int, kernel: int,
                  stride: int = 1, depthwise: bool = False) -> str:
    """Bias-free Conv ("same" padding; depthwise: one filter per channel, group = c_in) +
    BatchNormalization + Clip(0, 6)."""
    groups = c_in if depthwise else 1
    fan_in = c_in // groups * kernel * kernel
    weight = g.normal(f"{scope}.weight", (c_out, c_in // groups, kernel, kernel),
                      std=np.sqrt(2.0 / fan_in))
    y = g.op("Conv", [x, weight], scope, kernel_shape=[kernel, kernel], strides=[stride, stride],
             pads=[kernel // 2] * 4, group=groups)
    return relu6(g, scope, batch_norm(g, f"{scope}.bn", y, c_out, NORM_SCALE_RANGE))


def depthwise_separable(g: GraphBuilder, scope: str, x: str, c_in: int, c_out: int,
                        stride: int) -> str:
    """MobileNet's block: a 3x3 depthwise conv (carrying the stride), then a 1x1 pointwise
    conv that mixes channels, each with BatchNormalization and Clip(0, 6)."""
    y = conv_bn_relu6(g, f"{scope}.dw", x, c_in, c_in, 3, stride, depthwise=True)
    return conv_bn_relu6(g, f"{scope}.pw", y, c_in, c_out, 1)


def conv_relu(g: GraphBuilder, scope: str, x: str, c_in: int, c_out: int) -> str:
    """3x3 Conv with bias (He init, "same" padding) + Relu, as in VGG (no BatchNormalization)."""
    fan_in = c_in * 9
    weight = g.normal(f"{scope}.weight", (c_out, c_in, 3, 3), std=np.sqrt(2.0 / fan_in))
    bias = g.normal(f"{scope}.bias", (c_out,), std=0.1)
    y = g.op("Conv", [x, weight, bias], scope, kernel_shape=[3, 3], pads=[1, 1, 1, 1])
    return g.op("Relu", [y], scope)


def classifier_head(g: GraphBuilder, x: str, channels: int, classes: int) -> str:
    """GlobalAveragePool, Flatten, Gemm: the tail shared by the convolutional models."""
    x = g.op("GlobalAveragePool", [x], "avgpool")
    x = g.op("Flatten", [x], "flatten")
    return dense(g, "fc", x, channels, classes, relu=False)


def linear(g: GraphBuilder, scope: str, x: str, d_in: int, d_out: int) -> str:
    """MatMul + Add with a [d_in, d_out] weight, as exporters write Linear on 3-D inputs."""
    weight = g.normal(f"{scope}.weight", (d_in, d_out), std=np.sqrt(1.0 / d_in))
    bias = g.normal(f"{scope}.bias", (d_out,), std=0.02)
    return g.op("Add", [g.op("MatMul", [x, weight], scope), bias], scope)


def layer_norm(g: GraphBuilder, scope: str, x: str, d_model: int) -> str:
    scale = g.uniform(f"{scope}.weight", (d_model,), *NORM_SCALE_RANGE)
    bias = g.normal(f"{scope}.bias", (d_model,), std=0.1)
    return g.op("LayerNormalization", [x, scale, bias], scope, axis=-1, epsilon=1e-5)


def gelu(g: GraphBuilder, scope: str, x: str) -> str:
    """gelu(x) = 0.5 * x * (1 + erf(x / sqrt(2))), spelled out: Gelu is an opset-20 op."""
    scaled = g.op("Div", [x, g.constant(f"{scope}.sqrt2", np.float32(np.sqrt(2)))], scope)
    erf = g.op("Erf", [scaled], scope)
    one_plus_erf = g.op("Add", [erf, g.constant(f"{scope}.one", np.float32(1))], scope)
    x_times = g.op("Mul", [x, one_plus_erf], f"{scope}.x")
    return g.op("Mul", [x_times, g.constant(f"{scope}.half", np.float32(0.5))], f"{scope}.half")


def leading_dims(g: GraphBuilder, scope: str, x: str) -> tuple[str, str]:
    """x's runtime batch and sequence sizes as 1-element int64 tensors.

    Written as exporters write it (Shape -> Gather -> Unsqueeze) so that the Reshape shapes
    built from them come from a shape subgraph that byoc has to constant-fold.
    """
    shape = g.op("Shape", [x], scope)
    axes = g.constant(f"{scope}.axes", np.array([0], np.int64))
    dims = []
    for axis, dim_name in enumerate(("batch", "seq")):
        index = g.constant(f"{scope}.{dim_name}_index", np.int64(axis))
        dim = g.op("Gather", [shape, index], f"{scope}.{dim_name}", axis=0)
        dims.append(g.op("Unsqueeze", [dim, axes], f"{scope}.{dim_name}"))
    return dims[0], dims[1]


def self_attention(g: GraphBuilder, scope: str, x: str, d_model: int, heads: int) -> str:
    """Multi-head self-attention over x [batch, seq, d_model], output projection included."""
    head_dim = d_model // heads
    batch, seq = leading_dims(g, f"{scope}.shape", x)
    heads_and_head_dim = g.constant(f"{scope}.heads_and_head_dim",
                                    np.array([heads, head_dim], np.int64))
    split_shape = g.op("Concat", [batch, seq, heads_and_head_dim], f"{scope}.split_shape", axis=0)

    def project_to_heads(name: str) -> str:  # [b, s, d] -> [b, heads, s, head_dim]
        y = linear(g, f"{scope}.{name}", x, d_model, d_model)
        y = g.op("Reshape", [y, split_shape], f"{scope}.{name}")
        return g.op("Transpose", [y], f"{scope}.{name}", perm=[0, 2, 1, 3])

    q, k, v = (project_to_heads(name) for name in ("q", "k", "v"))
    k_transposed = g.op("Transpose", [k], f"{scope}.k_t", perm=[0, 1, 3, 2])
    scores = g.op("MatMul", [q, k_transposed], f"{scope}.scores")
    inv_sqrt_head_dim = g.constant(f"{scope}.inv_sqrt_head_dim", np.float32(1 / np.sqrt(head_dim)))
    scores = g.op("Mul", [scores, inv_sqrt_head_dim], f"{scope}.scores")
    probs = g.op("Softmax", [scores], f"{scope}.probs", axis=-1)
    context = g.op("MatMul", [probs, v], f"{scope}.context")
    context = g.op("Transpose", [context], f"{scope}.context", perm=[0, 2, 1, 3])
    d_model_dim = g.constant(f"{scope}.d_model", np.array([d_model], np.int64))
    merge_shape = g.op("Concat", [batch, seq, d_model_dim], f"{scope}.merge_shape", axis=0)
    context = g.op("Reshape", [context, merge_shape], f"{scope}.context")
    return linear(g, f"{scope}.out", context, d_model, d_model)


# Float models

def mlp() -> onnx.ModelProto:
    g = GraphBuilder("mlp")
    x = dense(g, "fc1", INPUT_NAME, 64, 128, relu=True)
    x = dense(g, "fc2", x, 128, 64, relu=True)
    x = dense(g, "fc3", x, 64, 10, relu=False)
    return g.model([1, 64], g.op("Softmax", [x], "softmax", axis=-1), [1, 10])


def cnn() -> onnx.ModelProto:
    g = GraphBuilder("cnn")
    x, c_in = INPUT_NAME, 3
    for index, c_out in enumerate((16, 32, 64), start=1):
        x = conv_bn(g, f"conv{index}", x, c_in, c_out, 3)
        if index < 3:
            x = g.op("MaxPool", [x], f"pool{index}", kernel_shape=[2, 2], strides=[2, 2])
        c_in = c_out
    return g.model([1, 3, 32, 32], classifier_head(g, x, 64, 10), [1, 10])


def resnet18() -> onnx.ModelProto:
    g = GraphBuilder("resnet18")
    x = conv_bn(g, "conv1", INPUT_NAME, 3, 64, 7, stride=2)
    x = g.op("MaxPool", [x], "maxpool", kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1])
    c_in = 64
    for stage, c_out in enumerate((64, 128, 256, 512), start=1):
        for index in range(2):
            stride = 2 if stage > 1 and index == 0 else 1
            x = basic_block(g, f"layer{stage}.{index}", x, c_in, c_out, stride)
            c_in = c_out
    return g.model([1, 3, 224, 224], classifier_head(g, x, 512, 1000), [1, 1000])


def mobilenet() -> onnx.ModelProto:
    """A small MobileNet (v1): a strided 3x3 conv, five depthwise separable blocks (two of
    them strided), global average pool and a fully connected classifier, on 32x32 inputs."""
    g = GraphBuilder("mobilenet")
    x = conv_bn_relu6(g, "conv1", INPUT_NAME, 3, 16, 3, stride=2)
    c_in = 16
    for index, (c_out, stride) in enumerate(((32, 1), (64, 2), (64, 1), (128, 2), (128, 1)),
                                            start=1):
        x = depthwise_separable(g, f"block{index}", x, c_in, c_out, stride)
        c_in = c_out
    return g.model([1, 3, 32, 32], classifier_head(g, x, c_in, 10), [1, 10])


def resnet50() -> onnx.ModelProto:
    """ResNet-50 v1 (He et al. 2015: the stride sits on each stage's first 1x1 conv; v1.5, as in
    torchvision, moves it to the 3x3): bottleneck stages of 3, 4, 6, 3 blocks, 1000 classes."""
    g = GraphBuilder("resnet50")
    x = conv_bn(g, "conv1", INPUT_NAME, 3, 64, 7, stride=2)
    x = g.op("MaxPool", [x], "maxpool", kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1])
    c_in = 64
    for stage, (width, blocks) in enumerate(((64, 3), (128, 4), (256, 6), (512, 3)), start=1):
        for index in range(blocks):
            stride = 2 if stage > 1 and index == 0 else 1
            x = bottleneck_block(g, f"layer{stage}.{index}", x, c_in, width, stride)
            c_in = 4 * width
    return g.model([1, 3, 224, 224], classifier_head(g, x, 2048, 1000), [1, 1000])


def vgg19() -> onnx.ModelProto:
    """VGG-19 (configuration E): 16 3x3 convs with Relu in five stages, each closed by a 2x2 max
    pool, then Flatten and fully connected 25088-4096-4096-1000 (no dropout at inference).

    The real classifier is kept: its weights are 548 MB of the file's ~575 MB, still well under
    protobuf's 2 GB limit, so the model is one self-contained file like the others.
    """
    g = GraphBuilder("vgg19")
    x, c_in = INPUT_NAME, 3
    for stage, (c_out, convs) in enumerate(((64, 2), (128, 2), (256, 4), (512, 4), (512, 4)),
                                           start=1):
        for index in range(1, convs + 1):
            x = conv_relu(g, f"features.{stage}.conv{index}", x, c_in, c_out)
            c_in = c_out
        x = g.op("MaxPool", [x], f"features.{stage}.pool", kernel_shape=[2, 2], strides=[2, 2])
    x = g.op("Flatten", [x], "flatten")
    x = dense(g, "classifier.fc1", x, 512 * 7 * 7, 4096, relu=True)
    x = dense(g, "classifier.fc2", x, 4096, 4096, relu=True)
    x = dense(g, "classifier.fc3", x, 4096, 1000, relu=False)
    return g.model([1, 3, 224, 224], x, [1, 1000])


def transformer() -> onnx.ModelProto:
    """One pre-LayerNorm encoder block: seq 16, d_model 64, 4 heads, FFN width 256."""
    g = GraphBuilder("transformer")
    seq, d_model, heads, d_ffn = 16, 64, 4, 256
    normed = layer_norm(g, "ln1", INPUT_NAME, d_model)
    attention = self_attention(g, "attn", normed, d_model, heads)
    x = g.op("Add", [INPUT_NAME, attention], "attn.residual")
    normed = layer_norm(g, "ln2", x, d_model)
    hidden = gelu(g, "ffn.gelu", linear(g, "ffn.fc1", normed, d_model, d_ffn))
    x = g.op("Add", [x, linear(g, "ffn.fc2", hidden, d_ffn, d_model)], "ffn.residual")
    return g.model([1, seq, d_model], x, [1, seq, d_model])


# Int8 models

class SeededCalibrationReader(CalibrationDataReader):
    """Feeds ``sample_inputs(model, seed)`` for seeds 1..count to onnxruntime's calibrator
    (seed 0 is left for the inputs the models are tested on)."""

    def __init__(self, model: onnx.ModelProto, count: int):
        self._inputs: Iterator[dict[str, np.ndarray]] = (
            sample_inputs(model, seed) for seed in range(1, count + 1))

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._inputs, None)


@dataclass(frozen=True)
class Int8Variant:
    """Builds the static int8 QDQ quantization of the zoo model ``parent``."""

    parent: str
    calibration_samples: int

    def __call__(self, parent_model: onnx.ModelProto) -> onnx.ModelProto:
        with tempfile.TemporaryDirectory(prefix="byoc-zoo-") as tmp:
            prepared, quantized = Path(tmp, "prepared.onnx"), Path(tmp, "quantized.onnx")
            # The pre-process's onnxruntime basic optimizations fold each BatchNormalization into
            # its Conv, so the int8 weights and int32 biases are the folded ones, as in deployed
            # int8 models, instead of a float BatchNormalization sitting between DQ and Q.
            # Symbolic shape inference is skipped: it needs sympy, and the zoo's shapes are
            # static, so ONNX shape inference already finds them all.
            quant_pre_process(parent_model, prepared, skip_symbolic_shape=True)
            quantize_static(
                prepared, quantized,
                SeededCalibrationReader(parent_model, self.calibration_samples),
                quant_format=QuantFormat.QDQ,
                per_channel=True,
                # uint8 activations with int8 weights (U8S8) is what onnxruntime recommends for
                # QDQ on x86-64 CPUs (quantize_static's "Choosing parameters for CPU inference",
                # and get_qdq_config's defaults); asymmetric uint8 also spends all 256 levels on
                # the non-negative post-Relu activations that dominate these CNNs.
                activation_type=QuantType.QUInt8,
                weight_type=QuantType.QInt8,
                calibrate_method=CalibrationMethod.MinMax,
            )
            model = onnx.load(quantized)
        model.graph.name = f"{self.parent}_int8"
        # onnxruntime's optimizer declares every operator domain it knows; keep only the ones
        # the graph uses, so the model asks no more of an importer than it needs.
        used_opsets = [opset for opset in model.opset_import
                       if opset.domain in {node.domain for node in model.graph.node}]
        del model.opset_import[:]
        model.opset_import.extend(used_opsets)
        onnx.checker.check_model(model, full_check=True)
        return model


Builder = Callable[[], onnx.ModelProto] | Int8Variant

MODELS: dict[str, Builder] = {
    "mlp": mlp,
    "cnn": cnn,
    "resnet18": resnet18,
    "mobilenet": mobilenet,
    "transformer": transformer,
    "cnn_int8": Int8Variant("cnn", calibration_samples=8),
    "resnet18_int8": Int8Variant("resnet18", calibration_samples=4),
    "mobilenet_int8": Int8Variant("mobilenet", calibration_samples=8),
    "resnet50": resnet50,
    "vgg19": vgg19,
}
# Benchmark-size models: slow to build and big on disk (vgg19 ~575 MB), so build_all() and the
# DEFAULT_MODELS (what the tests build) leave them out; build them by name.
BENCHMARK_MODELS: tuple[str, ...] = ("resnet50", "vgg19")
DEFAULT_MODELS: tuple[str, ...] = tuple(name for name in MODELS if name not in BENCHMARK_MODELS)


# Building

def build(name: str, out_dir: str | Path, models: dict[str, Builder] = MODELS) -> Path:
    """Path of ``<out_dir>/<name>.onnx``, building the model first if that file is missing.

    An int8 variant builds (or reuses) its float parent in ``out_dir`` and quantizes that.
    ``models`` is where ``name`` (and an int8 variant's parent) is looked up: the zoo, or
    another collection of builders such as the benchmark corpus.
    """
    if name not in models:
        raise ValueError(f"no zoo model named {name!r}; the zoo has {', '.join(models)}")
    path = Path(out_dir) / f"{name}.onnx"
    if path.exists():
        return path
    builder = models[name]
    if isinstance(builder, Int8Variant):
        parent_model = onnx.load(build(builder.parent, out_dir, models))
        start = time.perf_counter()
        model = builder(parent_model)
    else:
        start = time.perf_counter()
        model = builder()
    _save_atomically(model, path)
    logger.info("%s  (%.0f kB, built in %.3f s)", path, path.stat().st_size / 1e3,
                time.perf_counter() - start)
    return path


def build_all(out_dir: str | Path) -> list[Path]:
    """Build every model of ``DEFAULT_MODELS`` (all but the benchmark-size ones)."""
    return [build(name, out_dir) for name in DEFAULT_MODELS]


def _save_atomically(model: onnx.ModelProto, path: Path) -> None:
    """Write through a temporary file so an interrupted build never leaves a file that a later
    build() would take for a finished one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    onnx.save(model, partial)
    partial.replace(path)


def sample_inputs(model: str | Path | onnx.ModelProto, seed: int = 0) -> dict[str, np.ndarray]:
    """Standard-normal arrays for the model's graph inputs; the same seed gives the same arrays."""
    if not isinstance(model, onnx.ModelProto):
        model = onnx.load(model)
    initializer_names = {tensor.name for tensor in model.graph.initializer}
    rng = np.random.default_rng(seed)
    inputs = {}
    for value in model.graph.input:
        if value.name in initializer_names:
            continue
        tensor_type = value.type.tensor_type
        dtype = helper.tensor_dtype_to_np_dtype(tensor_type.elem_type)
        if not np.issubdtype(dtype, np.floating):
            raise TypeError(f"input {value.name!r} of model {model.graph.name!r} is {dtype}; "
                            "sample_inputs only makes floating-point inputs")
        shape = []
        for dim in tensor_type.shape.dim:
            if not dim.HasField("dim_value"):
                raise ValueError(f"input {value.name!r} of model {model.graph.name!r} has the "
                                 f"symbolic dimension {dim.dim_param!r}; sample_inputs needs "
                                 "static shapes, so fix the dimension in the model first")
            shape.append(dim.dim_value)
        inputs[value.name] = rng.standard_normal(shape).astype(dtype)
    return inputs
