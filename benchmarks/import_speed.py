"""Benchmark byoc's importer on a DenseNet-121-sized model: import plus shape inference.

The model is DenseNet-121's graph (Huang et al., 2017) with seeded random weights: a 7x7
stem convolution, four dense blocks of 6, 12, 24 and 16 layers, each layer
BatchNormalization -> Relu -> 1x1 Conv (128 channels) -> BatchNormalization -> Relu -> 3x3
Conv (growth rate 32) -> Concat with everything before it, transitions (BatchNormalization ->
Relu -> 1x1 Conv halving the channels -> AveragePool) between the blocks, and the classifier
(BatchNormalization -> Relu -> GlobalAveragePool -> Flatten -> Gemm to 1000 classes): 121
weighted layers, about 8 million parameters, some 430 nodes, on a 1x3x224x224 input.

The time is ``byoc.core.importer.import_model`` on the serialized model (parsing, onnx's
checker, binding, every node's type inference and checks), the median of ``--runs`` runs
after one warm-up run. The goal is at most 0.5 s. The same graph written at opset 8 (IR 3)
is timed too, to show what upgrading it with onnx's version converter costs.

    python benchmarks/import_speed.py [--runs 7]
"""

from __future__ import annotations

import argparse
import os
import platform
import shlex
import statistics
import sys
import time
from datetime import datetime, timezone

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
from results_file import write_section

from byoc.core.importer import import_model

GOAL_SECONDS = 0.5
BLOCK_LAYERS = (6, 12, 24, 16)
GROWTH = 32
BOTTLENECK = 4 * GROWTH
STEM_CHANNELS = 64


class _Builder:
    """Appends nodes and seeded random initializers to a graph under construction."""

    def __init__(self, seed: int) -> None:
        self.rng = np.random.default_rng(seed)
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []
        self.weighted_layers = 0

    def weight(self, name: str, shape: tuple[int, ...], scale: float = 0.05) -> str:
        array = (self.rng.standard_normal(shape) * scale).astype(np.float32)
        self.initializers.append(numpy_helper.from_array(array, name))
        return name

    def node(self, op: str, inputs: list[str], name: str, **attrs) -> str:
        self.nodes.append(helper.make_node(op, inputs, [name], name=name, **attrs))
        return name

    def conv(self, x: str, name: str, c_in: int, c_out: int, kernel: int, stride: int = 1,
             with_bias: bool = False) -> str:
        self.weighted_layers += 1
        inputs = [x, self.weight(f"{name}.w", (c_out, c_in, kernel, kernel))]
        if with_bias:
            inputs.append(self.weight(f"{name}.b", (c_out,)))
        pad = kernel // 2
        return self.node("Conv", inputs, name, kernel_shape=[kernel, kernel],
                         strides=[stride, stride], pads=[pad] * 4)

    def bn_relu(self, x: str, name: str, channels: int) -> str:
        params = [self.weight(f"{name}.scale", (channels,), 1.0),
                  self.weight(f"{name}.bias", (channels,)),
                  self.weight(f"{name}.mean", (channels,))]
        variance = np.abs(self.rng.standard_normal(channels)).astype(np.float32) + 0.5
        self.initializers.append(numpy_helper.from_array(variance, f"{name}.var"))
        bn = self.node("BatchNormalization", [x, *params, f"{name}.var"], f"{name}.bn")
        return self.node("Relu", [bn], f"{name}.relu")


def densenet121(seed: int = 0) -> onnx.ModelProto:
    b = _Builder(seed)
    x = b.conv("input", "stem.conv", 3, STEM_CHANNELS, 7, stride=2)
    x = b.bn_relu(x, "stem", STEM_CHANNELS)
    x = b.node("MaxPool", [x], "stem.pool", kernel_shape=[3, 3], strides=[2, 2],
               pads=[1, 1, 1, 1])
    channels = STEM_CHANNELS
    for block, layers in enumerate(BLOCK_LAYERS, 1):
        features = [x]
        for layer in range(1, layers + 1):
            stem = f"block{block}.layer{layer}"
            h = b.bn_relu(x, f"{stem}.1", channels)
            h = b.conv(h, f"{stem}.conv1", channels, BOTTLENECK, 1)
            h = b.bn_relu(h, f"{stem}.2", BOTTLENECK)
            h = b.conv(h, f"{stem}.conv2", BOTTLENECK, GROWTH, 3)
            features.append(h)
            x = b.node("Concat", list(features), f"{stem}.concat", axis=1)
            channels += GROWTH
        if block < len(BLOCK_LAYERS):
            h = b.bn_relu(x, f"transition{block}", channels)
            h = b.conv(h, f"transition{block}.conv", channels, channels // 2, 1)
            x = b.node("AveragePool", [h], f"transition{block}.pool", kernel_shape=[2, 2],
                       strides=[2, 2])
            channels //= 2
    x = b.bn_relu(x, "final", channels)
    x = b.node("GlobalAveragePool", [x], "pool")
    x = b.node("Flatten", [x], "flatten", axis=1)
    b.weighted_layers += 1
    b.node("Gemm", [x, b.weight("classifier.w", (1000, channels)),
                    b.weight("classifier.b", (1000,))], "logits", transB=1)
    assert b.weighted_layers == 121, b.weighted_layers
    graph = helper.make_graph(
        b.nodes, "densenet121",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, 224, 224])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 1000])],
        b.initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    return model


def timed_imports(data: bytes, runs: int) -> tuple[int, list[float]]:
    """The imported graph's node count and the import times of ``runs`` runs after one
    warm-up run (the first imports of onnx's and numpy's code paths)."""
    import_model(data)
    times = []
    for _ in range(runs):
        begin = time.perf_counter()
        graph = import_model(data)
        times.append(time.perf_counter() - begin)
    return len(graph.nodes), times


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args(argv)
    model = densenet121()
    data = model.SerializeToString()
    parameters = sum(int(np.prod(t.dims)) for t in model.graph.initializer)
    # The same graph as an opset 8, IR 3 export: upgraded by onnx's version converter first.
    old = densenet121()
    old.opset_import[0].version = 8
    old.ir_version = 3
    rows = []
    for label, variant in (("densenet121, opset 13", data),
                           ("densenet121, opset 8 (upgraded on import)",
                            old.SerializeToString())):
        nodes, times = timed_imports(variant, args.runs)
        median = statistics.median(times)
        print(f"{label}: {nodes} nodes, median import {median:.3f} s")
        rows.append(f"| {label} | {nodes} | {args.runs} | {median:.3f} | {min(times):.3f} | "
                    f"{max(times):.3f} | {GOAL_SECONDS} |")
    command = "python " + " ".join(shlex.quote(a) for a in
                                   ["benchmarks/import_speed.py", *(argv or sys.argv[1:])])
    load = ", ".join(f"{v:.2f}" for v in os.getloadavg())
    lines = [
        "# import_speed: importing a DenseNet-121-sized model", "", "Produced by:", "",
        f"    {command}", "",
        f"- Machine: {platform.processor() or platform.machine()}, Python "
        f"{platform.python_version()}, numpy {np.__version__}, onnx {onnx.__version__}; "
        f"load average at the end {load} (other work on the machine slows the imports)",
        f"- Date: {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC",
        f"- Model: DenseNet-121's graph with seeded random weights, {len(model.graph.node)} "
        f"ONNX nodes, {parameters / 1e6:.1f} M parameters ({len(data) / 2**20:.0f} MiB "
        f"serialized), input 1x3x224x224; the goal applies to the opset 13 model, the opset 8 "
        f"row shows what the upgrade by onnx's version converter adds",
        "- Time: byoc.core.importer.import_model on the serialized bytes (parse, onnx "
        "checker, per-node type inference and checks), median of the runs after one warm-up",
        "",
        "| model | nodes | runs | median s | min s | max s | goal s |",
        "|---|--:|--:|--:|--:|--:|--:|",
        *rows,
    ]
    write_section("import_speed", "\n".join(lines))
    print("wrote the import_speed section of benchmarks/RESULTS.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
