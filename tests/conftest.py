"""Shared test helpers: small ONNX models built with onnx.helper, and the example zoo."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from byoc.testing import make_model, zoo_module

zoo = zoo_module()
ZOO_PATH = Path(__file__).resolve().parents[1] / "examples" / "zoo.py"  # the script


@pytest.fixture(scope="session")
def zoo_dir(tmp_path_factory) -> Path:
    """Every example model, built once per test session."""
    out_dir = tmp_path_factory.mktemp("zoo")
    zoo.build_all(out_dir)
    return out_dir


@pytest.fixture
def conv_bn_relu_model():
    """x[1,3,8,8] -> Conv(4, 3x3, pad 1) -> BatchNormalization -> Relu -> y."""
    rng = np.random.default_rng(0)
    init = {
        "w": rng.standard_normal((4, 3, 3, 3)).astype(np.float32),
        "b": rng.standard_normal(4).astype(np.float32),
        "scale": rng.uniform(0.5, 1.5, 4).astype(np.float32),
        "bias": rng.standard_normal(4).astype(np.float32),
        "mean": rng.standard_normal(4).astype(np.float32),
        "var": rng.uniform(0.5, 2, 4).astype(np.float32),
    }
    nodes = [
        helper.make_node("Conv", ["x", "w", "b"], ["c"], name="conv", pads=[1, 1, 1, 1]),
        helper.make_node("BatchNormalization", ["c", "scale", "bias", "mean", "var"], ["n"],
                         name="bn"),
        helper.make_node("Relu", ["n"], ["y"], name="relu"),
    ]
    return make_model(nodes, [("x", TensorProto.FLOAT, [1, 3, 8, 8])],
                      [("y", TensorProto.FLOAT, [1, 4, 8, 8])], init)


__all__ = ["ZOO_PATH", "make_model", "onnx", "zoo"]
