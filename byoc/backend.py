"""byoc as an ONNX backend (``onnx.backend.base.Backend``), so onnx's backend test runner and
node test cases can drive it: ``onnx.backend.test.BackendTest(byoc.backend.ByocBackend)``."""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import onnx
from onnx.backend.base import Backend, BackendRep, Device, DeviceType, namedtupledict

from byoc.api import compile as compile_model
from byoc.compiled import CompiledModel


class ByocRep(BackendRep):
    """A prepared model; ``run`` takes inputs as a list (graph order) or a dict by name."""

    def __init__(self, compiled: CompiledModel) -> None:
        self.compiled = compiled

    def run(self, inputs: Any, **kwargs: Any) -> tuple[np.ndarray, ...]:
        names = [n for n in self.compiled.graph.inputs]
        if isinstance(inputs, dict):
            feeds = dict(inputs)
        else:
            if isinstance(inputs, np.ndarray):
                inputs = [inputs]
            feeds = dict(zip(names, inputs))
        results = self.compiled.run(feeds)
        outputs = list(self.compiled.graph.outputs)
        return namedtupledict("Outputs", outputs)(*[results[n] for n in outputs])


class ByocBackend(Backend):
    """Runs ONNX models through byoc (on the CPU)."""

    @classmethod
    def prepare(cls, model: onnx.ModelProto, device: str = "CPU", **kwargs: Any) -> ByocRep:
        if not cls.supports_device(device):
            raise ValueError(f"byoc's ONNX backend runs on the CPU, not on {device!r}")
        return ByocRep(compile_model(model, **kwargs))

    @classmethod
    def run_model(cls, model: onnx.ModelProto, inputs: Any, device: str = "CPU",
                  **kwargs: Any) -> tuple[np.ndarray, ...]:
        return cls.prepare(model, device, **kwargs).run(inputs)

    @classmethod
    def run_node(cls, node: onnx.NodeProto, inputs: Sequence[np.ndarray], device: str = "CPU",
                 outputs_info: Sequence[tuple[np.dtype, tuple[int, ...]]] | None = None,
                 **kwargs: Any) -> tuple[np.ndarray, ...]:
        """Run a single node by wrapping it in a one-node model at the newest opset."""
        input_types = {
            name: onnx.helper.make_tensor_type_proto(
                onnx.helper.np_dtype_to_tensor_dtype(np.asarray(a).dtype), np.asarray(a).shape)
            for name, a in zip(node.input, inputs) if name
        }
        schema = onnx.defs.get_schema(node.op_type, onnx.defs.onnx_opset_version(), node.domain)
        output_types = onnx.shape_inference.infer_node_outputs(schema, node, input_types)
        graph = onnx.helper.make_graph(
            [node], "run_node",
            [onnx.helper.make_value_info(n, t) for n, t in input_types.items()],
            [onnx.helper.make_value_info(n, output_types[n]) for n in node.output if n])
        model = onnx.helper.make_model(graph)
        feeds = {name: np.asarray(a) for name, a in zip(node.input, inputs) if name}
        return cls.prepare(model, device, **kwargs).run(feeds)

    @classmethod
    def supports_device(cls, device: str) -> bool:
        return Device(device).type == DeviceType.CPU


prepare = ByocBackend.prepare
run_model = ByocBackend.run_model
run_node = ByocBackend.run_node
supports_device = ByocBackend.supports_device
