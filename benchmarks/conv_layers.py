"""Per-layer latency of single float32 convolutions (Conv + bias + Relu) in byoc's cpu_llvm
and onnxruntime, side by side: the ResNet-50 and VGG-19 layer shapes, so that a change to the
GEMM micro-kernel, its blocking, the im2col packing or the Winograd path can be judged layer by
layer (DenseNet-121's 3x3 growth layers, ``dn_*``, and SqueezeNet's first and fire layers,
``sq_*``, reach its small sizes); MobileNetV2's first and 1x1 layers (``mv2_conv1_*``,
``mv2_1x1_*``, few input or output channels); and the depthwise 3x3 layers of MobileNetV2
(``mv2_dw_*``: groups = channels, Conv + bias + Clip(0, 6)).

An isolated layer is not the layer inside its model: onnxruntime reorders a lone layer's input
and output to and from its blocked layout (NCHWc), which a model keeps between layers, and a
lone layer's weights stay in cache between runs.

    python benchmarks/conv_layers.py [--threads 1] [--runs 20] [--layers r50_3x3_s2,...]

Each layer is timed with :func:`cpu_llvm.time_alternating` (byoc and onnxruntime in
alternating blocks); the table gives both medians, their ratio and byoc's GFLOP/s.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np
import onnx
from cpu_llvm import compile_byoc, ort_session, time_alternating
from onnx import TensorProto, helper, numpy_helper

# name: (C, H, W, M, kernel, stride, pad, groups); Relu after all but the depthwise ones (Clip)
LAYERS = {
    "r50_conv1_7x7": (3, 224, 224, 64, 7, 2, 3, 1),
    "r50_1x1_64_256": (64, 56, 56, 256, 1, 1, 0, 1),
    "r50_1x1_256_64": (256, 56, 56, 64, 1, 1, 0, 1),
    "r50_3x3_64": (64, 56, 56, 64, 3, 1, 1, 1),
    "r50_1x1_s2_256_128": (256, 56, 56, 128, 1, 2, 0, 1),
    "r50_3x3_128": (128, 28, 28, 128, 3, 1, 1, 1),
    "r50_3x3_256": (256, 14, 14, 256, 3, 1, 1, 1),
    "r50_1x1_1024_256": (1024, 14, 14, 256, 1, 1, 0, 1),
    "r50_3x3_512": (512, 7, 7, 512, 3, 1, 1, 1),
    "r50_1x1_512_2048": (512, 7, 7, 2048, 1, 1, 0, 1),
    "vgg_3x3_128_112": (128, 112, 112, 128, 3, 1, 1, 1),
    "vgg_3x3_512_28": (512, 28, 28, 512, 3, 1, 1, 1),
    "vgg_3x3_512_14": (512, 14, 14, 512, 3, 1, 1, 1),
    "dn_3x3_128_32_56": (128, 56, 56, 32, 3, 1, 1, 1),
    "dn_3x3_128_32_28": (128, 28, 28, 32, 3, 1, 1, 1),
    "dn_3x3_128_32_14": (128, 14, 14, 32, 3, 1, 1, 1),
    "dn_3x3_128_32_7": (128, 7, 7, 32, 3, 1, 1, 1),
    "sq_3x3_64_256_13": (64, 13, 13, 256, 3, 1, 1, 1),
    "sq_3x3_16_64_55": (16, 55, 55, 64, 3, 1, 1, 1),
    "sq_conv1_3x3_s2": (3, 224, 224, 64, 3, 2, 0, 1),
    "sq_1x1_16_64_55": (16, 55, 55, 64, 1, 1, 0, 1),
    "sq_1x1_128_16_55": (128, 55, 55, 16, 1, 1, 0, 1),
    "sq_1x1_512_1000_13": (512, 13, 13, 1000, 1, 1, 0, 1),
    "mv2_conv1_3x3_s2": (3, 224, 224, 32, 3, 2, 1, 1),
    "mv2_1x1_16_96_112": (16, 112, 112, 96, 1, 1, 0, 1),
    "mv2_1x1_24_144_56": (24, 56, 56, 144, 1, 1, 0, 1),
    "mv2_1x1_144_24_56": (144, 56, 56, 24, 1, 1, 0, 1),
    "mv2_1x1_64_384_14": (64, 14, 14, 384, 1, 1, 0, 1),
    "mv2_dw_32_112": (32, 112, 112, 32, 3, 1, 1, 32),
    "mv2_dw_96_112_s2": (96, 112, 112, 96, 3, 2, 1, 96),
    "mv2_dw_144_56": (144, 56, 56, 144, 3, 1, 1, 144),
    "mv2_dw_144_56_s2": (144, 56, 56, 144, 3, 2, 1, 144),
    "mv2_dw_192_28": (192, 28, 28, 192, 3, 1, 1, 192),
    "mv2_dw_384_14": (384, 14, 14, 384, 3, 1, 1, 384),
    "mv2_dw_576_14": (576, 14, 14, 576, 3, 1, 1, 576),
    "mv2_dw_576_14_s2": (576, 14, 14, 576, 3, 2, 1, 576),
    "mv2_dw_960_7": (960, 7, 7, 960, 3, 1, 1, 960),
}


def conv_model(c, h, w, m, k, stride, pad, groups) -> onnx.ModelProto:
    rng = np.random.default_rng(0)
    cg = c // groups
    weights = (rng.standard_normal((m, cg, k, k)) / np.sqrt(cg * k * k)).astype(np.float32)
    bias = rng.standard_normal(m).astype(np.float32)
    oh = (h + 2 * pad - k) // stride + 1
    ow = (w + 2 * pad - k) // stride + 1
    nodes = [
        helper.make_node("Conv", ["x", "w", "b"], ["c"], kernel_shape=[k, k],
                         strides=[stride, stride], pads=[pad] * 4, group=groups),
        (helper.make_node("Relu", ["c"], ["y"]) if groups == 1 else
         helper.make_node("Clip", ["c", "lo", "hi"], ["y"])),
    ]
    bounds = [numpy_helper.from_array(np.float32(v), n) for n, v in (("lo", 0.0), ("hi", 6.0))]
    graph = helper.make_graph(
        nodes, "conv",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, c, h, w])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, m, oh, ow])],
        [numpy_helper.from_array(weights, "w"), numpy_helper.from_array(bias, "b"), *bounds])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def measure(path: Path, x_shape, threads: int, runs: int) -> tuple[float, float, float]:
    """Median seconds of byoc and of onnxruntime, and their max relative difference."""
    compiled, _ = compile_byoc(path, threads)
    session = ort_session(path, threads)
    feeds = {"x": np.random.default_rng(1).standard_normal(x_shape).astype(np.float32)}
    ours = compiled.run(feeds)["y"]
    theirs = session.run(None, feeds)[0]
    diff = float(np.abs(ours - theirs).max() / np.abs(theirs).max())
    byoc_s, ort_s = time_alternating(lambda: compiled.run(feeds),
                                     lambda: session.run(None, feeds), 2, runs)
    return byoc_s, ort_s, diff


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--layers", default=",".join(LAYERS))
    args = parser.parse_args(argv)
    names = args.layers.split(",")
    unknown = [n for n in names if n not in LAYERS]
    if unknown:
        parser.error(f"unknown layers {unknown}; choose from {', '.join(LAYERS)}")
    print("| layer | MFLOP | byoc ms | ORT ms | byoc/ORT | byoc GFLOP/s | max rel. diff |")
    print("|---|--:|--:|--:|--:|--:|--:|")
    with tempfile.TemporaryDirectory() as tmp:
        for name in names:
            c, h, w, m, k, stride, pad, groups = LAYERS[name]
            path = Path(tmp) / f"{name}.onnx"
            onnx.save(conv_model(c, h, w, m, k, stride, pad, groups), path)
            oh = (h + 2 * pad - k) // stride + 1
            ow = (w + 2 * pad - k) // stride + 1
            flops = 2 * m * oh * ow * (c // groups) * k * k
            byoc_s, ort_s, diff = measure(path, (1, c, h, w), args.threads, args.runs)
            print(f"| {name} | {flops / 1e6:,.0f} | {byoc_s * 1e3:.3g} | {ort_s * 1e3:.3g} | "
                  f"{byoc_s / ort_s:.2f} | {flops / byoc_s / 1e9:.0f} | {diff:.1e} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
