"""The Python API: compile an ONNX model, load a compiled one."""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np

from byoc.compiled import CompiledModel, load
from byoc.core.importer import ModelSource
from byoc.core.importer import import_model as _import
from byoc.core.ir import Graph
from byoc.core.passes import optimize
from byoc.core.verify import verify
from byoc.errors import ByocError


def import_model(model: ModelSource,
                 input_shapes: Mapping[str, Sequence[int]] | None = None,
                 optimize_graph: bool = False) -> Graph:
    """Import an ONNX model (path, bytes or ModelProto) into a verified graph IR."""
    graph = _import(model, input_shapes)
    verify(graph)
    if optimize_graph:
        optimize(graph)
    return graph


def compile(model: ModelSource | Graph, plugins: Sequence[str] = (),
            input_shapes: Mapping[str, Sequence[int]] | None = None,
            constant_inputs: Mapping[str, np.ndarray] | None = None,
            **options: Any) -> CompiledModel:
    """Compile a model. Until accelerator plugins are selected, it runs on the reference
    interpreter after the core clean-up passes.

    ``input_shapes`` binds symbolic input dims; ``constant_inputs`` freezes inputs to values.
    """
    if plugins:
        raise ByocError(f"plugins {', '.join(plugins)} requested, but this byoc has no plugin "
                        f"support yet; compile without plugins")
    if options:
        raise ByocError(f"unknown compile option(s): {', '.join(sorted(options))}")
    graph = (model.copy() if isinstance(model, Graph)
             else _import(model, input_shapes, constant_inputs))
    verify(graph)
    optimize(graph)
    return CompiledModel(graph)


__all__ = ["compile", "import_model", "load"]
