"""The corpus of real-world-shaped models as the tests use it, and the comparison with
onnxruntime."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort

from real_models import zoo_forms

# The bar of issue 17: every output within 1e-4 of onnxruntime's, relative to the largest
# magnitude among onnxruntime's values; the absolute floor covers outputs that are all zero.
RELATIVE_TOLERANCE = 1e-4
ABSOLUTE_TOLERANCE = 1e-6


class Corpus:
    """Builds each model of ``zoo_forms.MODELS`` on first use, writes it to a file (for the
    CLI) and keeps onnxruntime's outputs on its seed-0 inputs."""

    def __init__(self, directory: Path):
        self.directory = directory
        self._models: dict[str, onnx.ModelProto] = {}
        self._feeds: dict[str, dict[str, np.ndarray]] = {}
        self._outputs: dict[str, dict[str, np.ndarray]] = {}

    def model(self, name: str) -> onnx.ModelProto:
        if name not in self._models:
            self._models[name] = zoo_forms.MODELS[name]()
            onnx.save(self._models[name], self.path(name))
        return self._models[name]

    def path(self, name: str) -> Path:
        return self.directory / f"{name}.onnx"

    def feeds(self, name: str) -> dict[str, np.ndarray]:
        if name not in self._feeds:
            self._feeds[name] = zoo_forms.feeds_for(self.model(name))
        return self._feeds[name]

    def input_shapes(self, name: str) -> dict[str, tuple[int, ...]]:
        """The shapes of the inputs fed, which bind symbolic dimensions as a user's
        ``--input-shape`` does."""
        return {input_name: value.shape for input_name, value in self.feeds(name).items()}

    def onnxruntime_outputs(self, name: str) -> dict[str, np.ndarray]:
        if name not in self._outputs:
            self._outputs[name] = run_onnxruntime(self.model(name), self.feeds(name))
        return self._outputs[name]


def run_onnxruntime(model: onnx.ModelProto, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    options = ort.SessionOptions()
    # Warnings only: onnxruntime warns once per initializer listed among the graph inputs,
    # which is the very form some of these models are written in.
    options.log_severity_level = 3
    session = ort.InferenceSession(model.SerializeToString(), options,
                                   providers=["CPUExecutionProvider"])
    names = [output.name for output in session.get_outputs()]
    return dict(zip(names, session.run(None, feeds)))


def assert_matches_onnxruntime(ours: dict[str, np.ndarray], theirs: dict[str, np.ndarray],
                               label: str) -> None:
    assert sorted(ours) == sorted(theirs), f"{label}: outputs differ from onnxruntime's"
    for name, expected in theirs.items():
        actual = ours[name]
        assert (actual.dtype, actual.shape) == (expected.dtype, expected.shape), \
            f"{label}: output {name!r} is {actual.dtype}{list(actual.shape)}, onnxruntime's " \
            f"{expected.dtype}{list(expected.shape)}"
        error = float(np.abs(actual.astype(np.float64) - expected).max(initial=0.0))
        bound = RELATIVE_TOLERANCE * float(np.abs(expected).max(initial=0.0)) + ABSOLUTE_TOLERANCE
        assert error <= bound, f"{label}: output {name!r} is off by {error:.3g} (bound {bound:.3g})"
