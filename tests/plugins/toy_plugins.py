"""Three small plugins that exercise the whole plugin path in tests.

``convfuse`` claims Conv -> [bias Add] -> [Relu] composites and runs them with its own numpy
kernels (float64 accumulation over sliding windows); ``adder`` claims elementwise Adds of two
run-time values and runs them with numpy; ``vendor`` declares an op of its own domain,
com.mychip::BiasGelu (``byoc_import_custom_ops``), and claims its nodes. Each lowers its
partition to a list of steps, packs the weights into its payload and rebuilds the steps from
the payload in its runtime, as a real plugin would.
"""

from __future__ import annotations

import json
import math

import numpy as np

from byoc.core.interpreter import OpImpl
from byoc.partition.patterns import Accept, Decline, make_conv_pattern, make_op_pattern
from byoc.plugins import CustomOp, Payload, PluginInfo, hookimpl


def _conv_check(match, graph):
    conv = match.captured["conv"]
    x_type = graph.types[conv.inputs[0]]
    if x_type.dtype != np.float32:
        return Decline(f"convfuse runs float32 only, not {x_type.dtype}")
    if x_type.rank != 4:
        return Decline(f"convfuse runs 2-D convolutions, this one has rank {x_type.rank}")
    if conv.attrs.get("group", 1) != 1:
        return Decline(f"convfuse has no grouped convolution (group={conv.attrs['group']})")
    if any(d != 1 for d in conv.attrs.get("dilations", [1, 1])):
        return Decline("convfuse has no dilated convolution")
    if conv.attrs.get("auto_pad", "NOTSET") != "NOTSET":
        return Decline(f"convfuse needs explicit pads, not auto_pad={conv.attrs['auto_pad']}")
    return Accept()


class ConvFuse:
    """Claims conv + bias + relu composites."""

    version = "1.0.0"

    @hookimpl
    def byoc_plugin_info(self):
        return PluginInfo(name="convfuse", version=self.version, device="toy conv engine",
                          description="fused conv+bias+relu in numpy")

    @hookimpl
    def byoc_partition_patterns(self):
        return [make_conv_pattern("convfuse.conv_bias_relu", with_bias="optional",
                                  activation="optional", check=_conv_check)]

    @hookimpl
    def byoc_partition_cost(self, pattern_name, nodes, graph):
        return float(len(nodes))

    @hookimpl
    def byoc_lower_partition(self, partition, graph, constants):
        steps, arrays = [], {}
        for node in partition.subgraph(constants).nodes:
            step = {"op": node.op_type, "inputs": node.present_inputs, "output": node.outputs[0]}
            if node.op_type == "Conv":
                step["inputs"] = [node.inputs[0]]
                for role, value in zip(("weight", "bias"), node.inputs[1:]):
                    if value:
                        step[role] = f"{node.name}.{role}"
                        arrays[step[role]] = constants[value]
                kernel = constants[node.inputs[1]].shape[2:]
                step["pads"] = list(node.attrs.get("pads", [0] * 4))
                step["strides"] = list(node.attrs.get("strides", [1, 1]))
                step["kernel"] = list(kernel)
            elif node.op_type == "Add":
                (value,) = [v for v in node.inputs if v in constants]
                step["inputs"] = [v for v in node.inputs if v not in constants]
                step["bias"] = f"{node.name}.bias"
                arrays[step["bias"]] = constants[value]
            steps.append(step)
        return steps, arrays

    @hookimpl
    def byoc_codegen_partition(self, partition, lowered):
        steps, arrays = lowered
        return Payload(json.dumps(steps).encode(), {"steps": len(steps)}, arrays)

    @hookimpl
    def byoc_runtime_create(self, payload, partition):
        return StepRuntime(json.loads(payload.data), payload.arrays, partition)


class Adder:
    """Claims Adds of two run-time tensors of the same dtype."""

    version = "0.3.1"

    @hookimpl
    def byoc_plugin_info(self):
        return PluginInfo(name="adder", version=self.version, device="toy vector unit",
                          description="elementwise add")

    @hookimpl
    def byoc_partition_patterns(self):
        def check(match, graph):
            add = match.root
            if any(graph.is_constant(v) for v in add.inputs):
                return Decline("adder adds two run-time tensors; one input here is a constant")
            return Accept()
        return [make_op_pattern("adder.add", "Add", check=check)]

    @hookimpl
    def byoc_lower_partition(self, partition, graph, constants):
        return [{"op": "Add", "inputs": n.inputs, "output": n.outputs[0]}
                for n in partition.nodes]

    @hookimpl
    def byoc_codegen_partition(self, partition, lowered):
        return Payload(json.dumps(lowered).encode(), {"adds": len(lowered)})

    @hookimpl
    def byoc_runtime_create(self, payload, partition):
        return StepRuntime(json.loads(payload.data), {}, partition)


class StepRuntime:
    """Runs lowered steps in order with numpy kernels; counts the steps it ran."""

    def __init__(self, steps, arrays, signature):
        self.steps, self.arrays, self.signature = steps, arrays, signature
        self.executed = 0

    def run(self, inputs):
        env = dict(inputs)
        for step in self.steps:
            args = [env[v] for v in step["inputs"]]
            env[step["output"]] = KERNELS[step["op"]](self, step, *args)
            self.executed += 1
        return {name: env[name] for name in self.signature.outputs}

    def counters(self):
        return {"steps": self.executed}

    def conv(self, step, x):
        weight = self.arrays[step["weight"]].astype(np.float64)
        top, left, bottom, right = step["pads"]
        padded = np.pad(x.astype(np.float64), ((0, 0), (0, 0), (top, bottom), (left, right)))
        windows = np.lib.stride_tricks.sliding_window_view(padded, step["kernel"], axis=(2, 3))
        sh, sw = step["strides"]
        windows = windows[:, :, ::sh, ::sw]
        y = np.einsum("nchwij,mcij->nmhw", windows, weight, optimize=True)
        if "bias" in step:
            y += self.arrays[step["bias"]].reshape(1, -1, 1, 1)
        return y.astype(x.dtype)

    def add(self, step, *args):
        if "bias" in step:
            return (args[0] + self.arrays[step["bias"]]).astype(args[0].dtype)
        return np.add(*args).astype(args[0].dtype)

    def relu(self, step, x):
        return np.maximum(x, 0).astype(x.dtype)


KERNELS = {"Conv": StepRuntime.conv, "Add": StepRuntime.add, "Relu": StepRuntime.relu}


# -- a vendor op ---------------------------------------------------------------------------------

VENDOR_DOMAIN = "com.mychip"


def _gelu(x: np.ndarray, approximate: str) -> np.ndarray:
    wide = x.astype(np.float64)
    if approximate == "tanh":
        inner = np.sqrt(2 / np.pi) * (wide + 0.044715 * wide ** 3)
        return (0.5 * wide * (1 + np.tanh(inner))).astype(x.dtype)
    erf = np.frompyfunc(math.erf, 1, 1)
    return (0.5 * wide * (1 + erf(wide / np.sqrt(2)).astype(np.float64))).astype(x.dtype)


class BiasGelu(OpImpl):
    """com.mychip::BiasGelu(X, bias) = Gelu(X + bias), bias along X's last axis; attribute
    approximate is "none" (erf) or "tanh", as in ONNX's Gelu."""

    def run(self, x, bias, approximate="none"):
        return _gelu(x + bias, approximate)

    def check(self, x, bias, approximate="none"):
        if approximate not in ("none", "tanh"):
            raise ValueError(f"approximate must be 'none' or 'tanh', not {approximate!r}")


def bias_gelu_types(input_types, attributes):
    x, bias = input_types
    if x.dtype != np.float32 or bias.dtype != np.float32:
        raise ValueError(f"BiasGelu computes float32, not {x.dtype} and {bias.dtype}")
    if x.rank < 1 or bias.shape != x.shape[-1:]:
        raise ValueError(f"the bias must have shape [{x.shape[-1] if x.rank else '?'}] (X's "
                         f"last axis), not {list(bias.shape)}")
    return [x]


BIAS_GELU = CustomOp(VENDOR_DOMAIN, "BiasGelu", BiasGelu, bias_gelu_types, opsets=(1,),
                     doc="Gelu(X + bias), the bias along X's last axis")


class Vendor:
    """Declares com.mychip::BiasGelu and claims its nodes, which it runs with numpy."""

    version = "2.0.0"

    @hookimpl
    def byoc_plugin_info(self):
        return PluginInfo(name="vendor", version=self.version, device="toy chip with a Gelu unit",
                          description="runs its own op com.mychip::BiasGelu")

    @hookimpl
    def byoc_import_custom_ops(self):
        return [BIAS_GELU]

    @hookimpl
    def byoc_partition_patterns(self):
        return [make_op_pattern("vendor.bias_gelu", BIAS_GELU.qualified_name)]

    @hookimpl
    def byoc_lower_partition(self, partition, graph, constants):
        steps, arrays = [], {}
        for node in partition.nodes:
            x, bias = node.inputs
            step = {"op": BIAS_GELU.qualified_name, "inputs": [x], "output": node.outputs[0],
                    "approximate": node.attrs.get("approximate", "none")}
            if bias in constants:
                step["bias"] = f"{node.name}.bias"
                arrays[step["bias"]] = constants[bias]
            else:
                step["inputs"].append(bias)
            steps.append(step)
        return steps, arrays

    @hookimpl
    def byoc_codegen_partition(self, partition, lowered):
        steps, arrays = lowered
        return Payload(json.dumps(steps).encode(), {"steps": len(steps)}, arrays)

    @hookimpl
    def byoc_runtime_create(self, payload, partition):
        return StepRuntime(json.loads(payload.data), payload.arrays, partition)


def _bias_gelu_kernel(runtime, step, x, bias=None):
    bias = runtime.arrays[step["bias"]] if bias is None else bias
    return _gelu(x + bias, step["approximate"])


KERNELS[BIAS_GELU.qualified_name] = _bias_gelu_kernel
