"""Small int8 CNNs for the estimate tests: QDQ Conv + Relu chains written node by node, and
residual networks quantized by onnxruntime as the example zoo's int8 models are; plus the
helper that sets a compiled model's per-partition estimates beside its device's counters."""

from __future__ import annotations

import onnx

import byoc
from byoc.estimate import estimate_match
from byoc.plugins.api import runtime_counters
from byoc.plugins.manager import default_manager
from byoc.testing import zoo_module

# Odd image sizes, channel counts that are not multiples of 16, strides 1 and 2, kernels 1-5.
CNNS = {
    "odd23": (23, 3, [(13, 3, 1), (29, 3, 2), (40, 1, 1), (17, 5, 1)]),
    "odd15": (15, 21, [(35, 3, 1), (7, 1, 1), (50, 3, 2), (33, 3, 1)]),
}


def residual_cnn(size: int, stem: int, blocks: list[tuple[int, int]],
                 pool: bool = False) -> onnx.ModelProto:
    """A small ResNet quantized to int8 QDQ by onnxruntime (like the zoo's int8 models): a
    3x3 stem conv of ``stem`` channels on a ``size`` x ``size`` image (then a 2x2 MaxPool
    if ``pool``), ResNet basic blocks of (channels, stride) — each ending in a residual Add,
    with a 1x1 projection where the shape changes — then GlobalAveragePool and a Gemm."""
    zoo = zoo_module()
    g = zoo.GraphBuilder(f"resnet{size}")
    x = zoo.conv_bn(g, "stem", zoo.INPUT_NAME, 3, stem, 3)
    if pool:
        x = g.op("MaxPool", [x], "pool", kernel_shape=[2, 2], strides=[2, 2])
    c_in = stem
    for index, (c_out, stride) in enumerate(blocks):
        x = zoo.basic_block(g, f"layer{index}", x, c_in, c_out, stride)
        c_in = c_out
    model = g.model([1, 3, size, size], zoo.classifier_head(g, x, c_in, 10), [1, 10])
    return zoo.Int8Variant(g.name, calibration_samples=2)(model)


# Residual blocks with Add; odd sizes (7, 15, 23) and channels (13, 21, 35); stride 2.
RESIDUAL_CNNS = {
    "res7": (7, 32, [(32, 1), (64, 2)]),
    "res15": (15, 13, [(13, 1), (21, 2)]),
    "res23_pool": (23, 16, [(16, 1), (35, 2)], True),
}


def compiled_with_estimates(model, plugin, **options):
    """The model compiled for ``plugin`` (priority placement, so that ``plugin`` gets every
    match it takes), run once on seeded inputs, and for each partition of ``plugin``:
    (partition, its matches' estimates, the runtime's counters)."""
    manager = default_manager()
    compiled = byoc.compile(model, plugins=[plugin], placement="priority", **options)
    compiled.run(zoo_module().sample_inputs(model))
    rows = []
    for partition, part in zip(compiled.plan.partitions, compiled.parts):
        if partition.plugin != plugin:
            continue
        estimates = [estimate_match(manager, plugin, match.nodes, compiled.graph,
                                    pattern_name=match.pattern) for match in partition.matches]
        rows.append((partition, estimates, runtime_counters(part.runtime)))
    assert rows, f"no partition of {plugin}"
    return rows
