"""byoc as an ONNX backend (``onnx.backend.base.Backend``), so onnx's backend test runner and
node test cases can drive it: ``onnx.backend.test.BackendTest(byoc.backend.ByocBackend)``."""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import onnx
from onnx.backend.base import Backend, BackendRep, Device, DeviceType, namedtupledict

from byoc.compiled import CompiledModel
from byoc.errors import ShapeInferenceError
from byoc.user_api import compile as compile_model


class ByocRep(BackendRep):
    """A prepared model; ``run`` takes inputs as a list (graph order) or a dict by name.

    byoc compiles for static shapes. A model whose shapes depend on the values of some inputs
    (a Reshape target, Resize scales, Slice bounds given as graph inputs) cannot be compiled
    before those values are known; such a model is compiled at ``run`` with those inputs
    frozen to the values given (integer and bool inputs first, every input if that is not
    enough), and the compiled model is reused for the same values. (Compiling for the values
    given puts the whole model on the plugins, where byoc.compile's dynamic tail would run
    the value-dependent nodes on the reference interpreter; so the backend turns it off.)

    Inputs given by name may include initializers the model lists among its graph inputs
    (IR version 4 and later): they override the stored values, as in onnxruntime. The model
    is then compiled with those initializers as inputs, once per set of names.
    """

    def __init__(self, model: onnx.ModelProto, compiled: CompiledModel | None,
                 options: dict[str, Any]) -> None:
        self.model = model
        self.compiled = compiled
        self.options = options
        self._specialized: dict[bytes, tuple[CompiledModel, list[str]]] = {}
        self._overriding: dict[tuple[str, ...], CompiledModel] = {}
        self.initializer_names = {t.name for t in model.graph.initializer}
        self.input_names = [i.name for i in model.graph.input
                            if i.name not in self.initializer_names]
        self.output_names = [o.name for o in model.graph.output]

    def run(self, inputs: Any, **kwargs: Any) -> tuple[np.ndarray, ...]:
        if isinstance(inputs, dict):
            feeds = {k: np.asarray(v) for k, v in inputs.items()}
        else:
            if isinstance(inputs, np.ndarray):
                inputs = [inputs]
            feeds = {n: np.asarray(v) for n, v in zip(self.input_names, inputs)}
        overridden = tuple(sorted(set(feeds) & self.initializer_names))
        if overridden:
            results = self._overriding_compiled(overridden, feeds).run(feeds)
        elif self.compiled is not None:
            results = self.compiled.run(feeds)
        else:
            compiled, frozen = self._specialize(feeds)
            results = compiled.run({k: v for k, v in feeds.items() if k not in frozen})
        return namedtupledict("Outputs", self.output_names)(
            *[results[n] for n in self.output_names])

    def compiled_models(self) -> list[CompiledModel]:
        """The models compiled so far: the one compiled at prepare, or those compiled at
        ``run`` for the input values given, and those compiled for overridden
        initializers."""
        if self.compiled is not None:
            return [self.compiled, *self._overriding.values()]
        return [compiled for compiled, _ in self._specialized.values()] + \
            list(self._overriding.values())

    def _overriding_compiled(self, overridden: tuple[str, ...],
                             feeds: dict[str, np.ndarray]) -> CompiledModel:
        if overridden not in self._overriding:
            self._overriding[overridden] = compile_model(
                self.model, fed_inputs=overridden,
                input_shapes={n: a.shape for n, a in feeds.items() if n not in overridden},
                **self.options)
        return self._overriding[overridden]

    def _specialize(self, feeds: dict[str, np.ndarray]) -> tuple[CompiledModel, list[str]]:
        key = b"".join(n.encode() + a.dtype.str.encode() + str(a.shape).encode() + a.tobytes()
                       for n, a in sorted(feeds.items()))
        if key not in self._specialized:
            shape_like = [n for n, a in feeds.items() if a.dtype.kind in "iub"]
            for frozen in (shape_like, list(feeds)):
                try:
                    compiled = compile_model(
                        self.model, constant_inputs={n: feeds[n] for n in frozen},
                        input_shapes={n: a.shape for n, a in feeds.items() if n not in frozen},
                        **self.options)
                    break
                except ShapeInferenceError:
                    if frozen is not shape_like:
                        raise
            self._specialized[key] = (compiled, frozen)
        return self._specialized[key]


class ByocBackend(Backend):
    """Runs ONNX models through byoc (on the CPU)."""

    @classmethod
    def prepare(cls, model: onnx.ModelProto, device: str = "CPU", **kwargs: Any) -> ByocRep:
        if not cls.supports_device(device):
            raise ValueError(f"byoc's ONNX backend runs on the CPU, not on {device!r}")
        options = {"dynamic_tail": False, **kwargs}
        try:
            compiled = compile_model(model, **options)
        except ShapeInferenceError:
            compiled = None
        return ByocRep(model, compiled, options)

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
