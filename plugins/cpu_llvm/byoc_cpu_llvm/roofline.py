"""cpu_llvm's cost estimates: a roofline of this machine, as cpu_llvm's own kernels run on it.

A match is expected to take ``overhead * kernels + max(flops / peak, bytes / bandwidth)``:
``flops`` is 2 x its multiply-accumulates (:func:`byoc.core.flops.graph_flops`), at the
integer peak for an int8 layer in QDQ form (one integer kernel) and the float peak
otherwise; ``bytes`` are those of every value its nodes read or write, weights included;
``kernels`` counts the kernels it runs (an int8 layer is one, folded movement such as
Reshape none). What a partition's run costs besides its kernels (the call from Python, copying
its outputs out: some 20 us) is not a match's, and is left to whoever adds up partitions. The
peaks are not a data sheet's but what cpu_llvm reaches here, measured
once per machine by compiling and timing four small partitions with cpu_llvm itself
(:func:`measure_peaks`): a float 3x3 convolution, the same in int8 QDQ form, a large
elementwise Add (bandwidth) and a chain of tiny Relus (the cost of one more kernel). They are
cached as JSON in byoc's cache directory (``$BYOC_CACHE_DIR`` or ``~/.cache/byoc``) under
``roofline/``, keyed by the CPU's name and features and llvmlite's version, so that no
estimate pays for a measurement after the first, and a test never times one.
"""

from __future__ import annotations

import hashlib
import json
import os
import statistics
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper

from byoc.core.flops import graph_flops
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
    """What cpu_llvm reaches on this machine: float and int8 FLOP/s, bytes/s, seconds per
    kernel, and the CPU they were measured on."""

    float_flops: float
    int8_flops: float
    bandwidth: float
    kernel_seconds: float
    cpu: str


def estimate(nodes: list[Node], graph: Graph, peaks: Peaks) -> Estimate:
    """The roofline estimate of ``nodes`` (see the module docstring)."""
    layers = {id(n) for plan in integer_plans(graph).values() for n in plan.layer.nodes}
    int8 = any(id(n) in layers for n in nodes)
    kernels = 1 if int8 else sum(n.op_type not in _FREE_OPS for n in nodes)
    touched = {v for n in nodes for v in [*n.present_inputs, *n.outputs] if v}
    moved = sum(value_bytes(graph, v) for v in touched)
    flops = graph_flops(graph, nodes)
    seconds = peaks.kernel_seconds * kernels + max(
        flops / (peaks.int8_flops if int8 else peaks.float_flops), moved / peaks.bandwidth)
    bytes_in, bytes_out = boundary_bytes(nodes, graph)
    return Estimate(seconds, None, bytes_in, bytes_out,
                    f"cpu_llvm roofline of {peaks.cpu} ({'int8' if int8 else 'float'} peak "
                    f"{(peaks.int8_flops if int8 else peaks.float_flops) / 1e9:.1f} GFLOP/s, "
                    f"{peaks.bandwidth / 1e9:.1f} GB/s, {peaks.kernel_seconds * 1e6:.1f} us per "
                    f"kernel, measured once)")


_PEAKS: dict[Path, Peaks] = {}


def machine_peaks(cache_dir: Path | None = None) -> Peaks:
    """This machine's peaks: from memory, else from the cache file, else measured (some
    seconds) and written there."""
    path = _cache_file(cache_dir)
    if path in _PEAKS:
        return _PEAKS[path]
    try:
        peaks = Peaks(**json.loads(path.read_text()))
    except (OSError, ValueError, TypeError):
        peaks = measure_peaks()
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f".{path.name}.{os.getpid()}")
        partial.write_text(json.dumps(asdict(peaks), indent=1))
        partial.replace(path)
    _PEAKS[path] = peaks
    return peaks


def _cache_file(cache_dir: Path | None) -> Path:
    host = host_target()
    root = Path(cache_dir or os.environ.get("BYOC_CACHE_DIR") or Path.home() / ".cache" / "byoc")
    key = hashlib.sha256(host.key.encode()).hexdigest()[:16]
    return root / "roofline" / f"{host.cpu}-{key}.json"


def measure_peaks() -> Peaks:
    """Time cpu_llvm's own kernels on four small partitions (see the module docstring)."""
    import byoc
    from byoc.testing import qdq_layer_model

    rng = np.random.default_rng(0)
    weight = rng.integers(-127, 128, (64, 64, 3, 3)).astype(np.int8)
    attrs = {"pads": [1] * 4}
    conv = byoc.import_model(_float_conv(weight, attrs))
    qconv = byoc.import_model(qdq_layer_model("Conv", [1, 64, 56, 56], weight, attrs=attrs,
                                         activation="Relu"))
    add = byoc.import_model(_chain("Add", 1, [1 << 22]))
    relus = byoc.import_model(_chain("Relu", 64, [1, 16]))
    flops = graph_flops(conv)
    bandwidth = 3 * value_bytes(add, add.inputs[0]) / _seconds(add)
    kernel = _seconds(relus) / len(relus.nodes)
    return Peaks(float_flops=flops / _seconds(conv), int8_flops=flops / _seconds(qconv),
                 bandwidth=bandwidth, kernel_seconds=kernel, cpu=host_target().cpu)


def _float_conv(weight: np.ndarray, attrs: dict) -> onnx.ModelProto:
    from byoc.testing import make_model

    node = helper.make_node("Conv", ["x", "w"], ["y"], **attrs)
    return make_model([node], [("x", TensorProto.FLOAT, [1, 64, 56, 56])],
                      [("y", TensorProto.FLOAT, [1, 64, 56, 56])],
                      {"w": weight.astype(np.float32)})


def _chain(op_type: str, length: int, shape: list[int]) -> onnx.ModelProto:
    """``length`` nodes of ``op_type`` one after the other (a binary op adds its input)."""
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
