"""cpu_llvm's cost estimates: a roofline of this machine, as cpu_llvm's own kernels run on it.

A match is expected to take ``kernel * kernels + product * products + max(compute, bytes /
bandwidth)``, where

- ``compute`` is ``flops / peak`` for a dense layer: ``flops`` is 2 x its multiply-accumulates
  (:func:`byoc.core.flops.graph_flops`), at the integer peak for an int8 layer in QDQ form
  (one integer kernel) and the float peak otherwise. A grouped convolution (depthwise in
  MobileNets) runs one small product per channel group, far below the dense peak: it costs
  ``groups x group + flops / grouped peak``, with its own float and int8 figures;
- ``bytes`` are those of every value its nodes read or write, weights included;
- ``kernels`` counts the kernels it runs (an int8 layer is one, folded movement such as Reshape
  none) and ``products`` those of them that are matrix products (Conv, Gemm, MatMul...): a
  product kernel sets up its tiles before any arithmetic, some microseconds that a small layer
  does not amortise.

What each run of a partition costs besides its kernels (the call from Python through ctypes,
copying its outputs out) is not a match's: it is cpu_llvm's ``launch``, declared in its
:class:`~byoc.plugins.api.Transfer` and charged once per partition by placement.

The figures are not a data sheet's but what cpu_llvm reaches here, measured once per machine
by compiling and timing small partitions with cpu_llvm itself (:func:`measure_peaks`): a
partition of one tiny Add (the launch), a chain of tiny Adds that do not fuse (an Add of a
value with itself never joins the kernel before it: the cost of one more kernel), a tiny
Gemm (a product's set-up), a float 3x3 convolution and the same in int8 QDQ form (the dense
peaks), two depthwise convolutions each in float and int8, one of many small channels and one
of few large ones (the cost per group and the grouped peak), and a large elementwise Add
(bandwidth). Each time has the launch, and the set-up of a product, taken off first. They are
cached as JSON in byoc's cache directory (``$BYOC_CACHE_DIR`` or ``~/.cache/byoc``) under
``roofline/``, keyed by the CPU's name and features and llvmlite's version, so that no
estimate pays for a measurement after the first, and a test never times one; a cached file
without every figure (written by an older byoc) is measured again.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import statistics
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper

from byoc.core.flops import graph_flops, node_macs
from byoc.core.integer_layers import integer_plans
from byoc.core.ir import Graph, Node
from byoc.estimate import boundary_bytes, value_bytes
from byoc.plugins.api import Estimate, Partition, Payload
from byoc_cpu_llvm.lower import ALIASING_OPS, lower_partition
from byoc_cpu_llvm.runtime import CpuRuntime
from byoc_cpu_llvm.target import host_target

# Ops that run no kernel of their own: they alias their input or are folded before lowering.
_FREE_OPS = frozenset(ALIASING_OPS) | {"Constant", "Identity"}


@dataclass(frozen=True)
class Peaks:
    """What cpu_llvm reaches on this machine (see the module docstring): FLOP/s of dense and
    grouped products in float and int8, seconds per group of a grouped convolution, bytes/s,
    seconds per kernel, per product kernel's set-up and per partition run, and the CPU they
    were measured on."""

    float_flops: float
    int8_flops: float
    grouped_float_flops: float
    grouped_int8_flops: float
    float_group_seconds: float
    int8_group_seconds: float
    bandwidth: float
    kernel_seconds: float
    product_seconds: float
    launch_seconds: float
    cpu: str

    def __post_init__(self) -> None:
        for field in fields(self):
            if field.name == "cpu":
                continue
            value = getattr(self, field.name)
            rate = field.name.endswith("flops") or field.name == "bandwidth"
            if isinstance(value, bool) or not isinstance(value, (int, float)) \
                    or not math.isfinite(value) or value < 0 or (rate and value == 0):
                raise ValueError(f"roofline figure {field.name}={value!r}: expected a finite "
                                 f"number {'> 0' if rate else '>= 0'}")


def estimate(nodes: list[Node], graph: Graph, peaks: Peaks) -> Estimate:
    """The roofline estimate of ``nodes`` (see the module docstring)."""
    layers = {id(n) for plan in integer_plans(graph).values() for n in plan.layer.nodes}
    int8 = any(id(n) in layers for n in nodes)
    kernels = 1 if int8 else sum(n.op_type not in _FREE_OPS for n in nodes)
    products = sum(node_macs(n, graph) > 0 for n in nodes)
    grouped = [n for n in nodes if n.op_type == "Conv" and n.attrs.get("group", 1) > 1]
    groups = sum(n.attrs["group"] * graph.types[n.inputs[0]].shape[0] for n in grouped)
    grouped_flops = graph_flops(graph, grouped)
    dense_flops = graph_flops(graph, nodes) - grouped_flops
    if int8:
        dense, grouped_peak, per_group = (peaks.int8_flops, peaks.grouped_int8_flops,
                                          peaks.int8_group_seconds)
    else:
        dense, grouped_peak, per_group = (peaks.float_flops, peaks.grouped_float_flops,
                                          peaks.float_group_seconds)
    compute = dense_flops / dense + grouped_flops / grouped_peak + groups * per_group
    touched = {v for n in nodes for v in [*n.present_inputs, *n.outputs] if v}
    moved = sum(value_bytes(graph, v) for v in touched)
    seconds = (peaks.kernel_seconds * kernels + peaks.product_seconds * products
               + max(compute, moved / peaks.bandwidth))
    bytes_in, bytes_out = boundary_bytes(nodes, graph)
    kind = "int8" if int8 else "float"
    rate = (f"grouped {kind} peak {grouped_peak / 1e9:.1f} GFLOP/s and "
            f"{per_group * 1e6:.2f} us per group" if grouped
            else f"{kind} peak {dense / 1e9:.1f} GFLOP/s")
    return Estimate(seconds, None, bytes_in, bytes_out,
                    f"cpu_llvm roofline of {peaks.cpu} ({rate}, {peaks.bandwidth / 1e9:.1f} "
                    f"GB/s, {peaks.kernel_seconds * 1e6:.2f} us per kernel, "
                    f"{peaks.product_seconds * 1e6:.1f} us per product's set-up, measured once)")


# The figures by cache file name, which names the machine (CPU, features, llvmlite): measured
# or read once per process, even where tests point BYOC_CACHE_DIR somewhere new for each test.
_PEAKS: dict[str, Peaks] = {}


def machine_peaks(cache_dir: Path | None = None) -> Peaks:
    """This machine's peaks: from memory, else from the cache file, else measured (some
    seconds) and written there. A cache file that does not hold every figure is measured
    again."""
    path = _cache_file(cache_dir)
    if path.name in _PEAKS:     # the machine's figures, wherever the cache directory points
        return _PEAKS[path.name]
    try:
        peaks = Peaks(**json.loads(path.read_text()))
    except (OSError, ValueError, TypeError):
        peaks = measure_peaks()
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f".{path.name}.{os.getpid()}")
        partial.write_text(json.dumps(asdict(peaks), indent=1))
        partial.replace(path)
    _PEAKS[path.name] = peaks
    return peaks


def _cache_file(cache_dir: Path | None) -> Path:
    host = host_target()
    root = Path(cache_dir or os.environ.get("BYOC_CACHE_DIR") or Path.home() / ".cache" / "byoc")
    key = hashlib.sha256(host.key.encode()).hexdigest()[:16]
    return root / "roofline" / f"{host.cpu}-{key}.json"


CHAIN = 64
"""Kernels in the chain that measures the cost of one more kernel."""
TINY_RUNS = 101
"""Runs timed of a partition of microseconds (its median must not be one noisy run's)."""


def measure_peaks() -> Peaks:
    """Time cpu_llvm's own kernels on small partitions (see the module docstring)."""
    import byoc
    from byoc.testing import qdq_layer_model

    one_add = _seconds(byoc.import_model(_chain("Add", 1, [1, 16])), TINY_RUNS)
    chain = _seconds(byoc.import_model(_chain("Add", CHAIN, [1, 16])), TINY_RUNS)
    kernel = max(0.0, (chain - one_add) / (CHAIN - 1))
    launch = max(0.0, one_add - kernel)
    gemm = _seconds(byoc.import_model(_tiny_gemm()), TINY_RUNS)
    product = max(0.0, gemm - launch - kernel)

    def compute_seconds(model: onnx.ModelProto) -> tuple[float, Graph]:
        graph = byoc.import_model(model)
        return max(1e-9, _seconds(graph) - launch - kernel - product), graph

    rng = np.random.default_rng(0)
    weight = rng.integers(-127, 128, (64, 64, 3, 3)).astype(np.int8)
    attrs = {"pads": [1] * 4}
    float_conv, conv = compute_seconds(_float_conv(weight, attrs, [1, 64, 56, 56]))
    int8_conv, _ = compute_seconds(qdq_layer_model("Conv", [1, 64, 56, 56], weight, attrs=attrs,
                                                   activation="Relu"))
    flops = graph_flops(conv)
    grouped = {}
    for kind in ("float", "int8"):
        timed = []
        for channels, side in ((128, 4), (16, 56)):
            depthwise = rng.integers(-127, 128, (channels, 1, 3, 3)).astype(np.int8)
            attrs = {"pads": [1] * 4, "group": channels}
            shape = [1, channels, side, side]
            model = (_float_conv(depthwise, attrs, shape) if kind == "float" else
                     qdq_layer_model("Conv", shape, depthwise, attrs=attrs, activation="Relu"))
            seconds, graph = compute_seconds(model)
            timed.append((channels, graph_flops(graph), seconds))
        grouped[kind] = _group_and_rate(*timed)
    add = byoc.import_model(_chain("Add", 1, [1 << 22]))
    bandwidth = 3 * value_bytes(add, add.inputs[0]) / max(1e-9, _seconds(add) - launch)
    return Peaks(float_flops=flops / float_conv, int8_flops=flops / int8_conv,
                 grouped_float_flops=grouped["float"][1], grouped_int8_flops=grouped["int8"][1],
                 float_group_seconds=grouped["float"][0], int8_group_seconds=grouped["int8"][0],
                 bandwidth=bandwidth, kernel_seconds=kernel, product_seconds=product,
                 launch_seconds=launch, cpu=host_target().cpu)


def _group_and_rate(many: tuple[int, int, float], few: tuple[int, int, float]
                    ) -> tuple[float, float]:
    """The seconds per group and the FLOP/s that explain two grouped convolutions, each
    ``(groups, flops, seconds)``: ``seconds = groups x per group + flops / rate``, solved for
    both (``many`` has many small groups, ``few`` a few large ones). Should noise make the
    cost per group negative, it is 0 and the rate that of ``few``."""
    (g1, f1, t1), (g2, f2, t2) = many, few
    determinant = g1 * f2 - g2 * f1
    per_group = (t1 * f2 - t2 * f1) / determinant
    inverse_rate = (g1 * t2 - g2 * t1) / determinant
    if per_group < 0 or inverse_rate <= 0:
        return 0.0, f2 / t2
    return per_group, 1 / inverse_rate


def _tiny_gemm() -> onnx.ModelProto:
    """A 1x16 by 16x16 Gemm: a product kernel with next to no arithmetic."""
    from byoc.testing import make_model

    node = helper.make_node("Gemm", ["x", "w"], ["y"])
    return make_model([node], [("x", TensorProto.FLOAT, [1, 16])],
                      [("y", TensorProto.FLOAT, [1, 16])],
                      {"w": np.ones((16, 16), np.float32)})


def _float_conv(weight: np.ndarray, attrs: dict, shape: list[int]) -> onnx.ModelProto:
    """A float Conv of ``weight`` on an input of ``shape``, same-size output (3x3, pads 1)."""
    from byoc.testing import make_model

    node = helper.make_node("Conv", ["x", "w"], ["y"], **attrs)
    return make_model([node], [("x", TensorProto.FLOAT, shape)],
                      [("y", TensorProto.FLOAT, [1, weight.shape[0], *shape[2:]])],
                      {"w": weight.astype(np.float32)})


def _chain(op_type: str, length: int, shape: list[int]) -> onnx.ModelProto:
    """``length`` nodes of ``op_type`` one after the other (a binary op takes its input
    twice, so that it never fuses into the kernel before it)."""
    from byoc.testing import make_model

    arity = 2 if op_type == "Add" else 1
    nodes = [helper.make_node(op_type, [f"v{i}"] * arity, [f"v{i + 1}"]) for i in range(length)]
    return make_model(nodes, [("v0", TensorProto.FLOAT, shape)],
                      [(f"v{length}", TensorProto.FLOAT, shape)])


def _seconds(graph: Graph, runs: int = 9) -> float:
    """The median wall time of running ``graph`` as one cpu_llvm partition: what a run
    typically takes here, as a model's runs are measured (the shortest run is an outlier on
    a shared machine, up to twice as fast)."""
    partition = Partition("roofline", "cpu_llvm", list(graph.nodes), list(graph.inputs),
                          list(graph.outputs), dict(graph.types), dict(graph.opsets))
    ir_text, meta, arrays = lower_partition(partition, graph, graph.constants)
    runtime = CpuRuntime(Payload(ir_text.encode(), meta, arrays), partition.signature())
    rng = np.random.default_rng(1)
    inputs = {name: rng.integers(0, 100, graph.types[name].shape).astype(graph.types[name].dtype)
              for name in graph.inputs}
    runtime.run(inputs)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        runtime.run(inputs)
        times.append(time.perf_counter() - start)
    return statistics.median(times)
