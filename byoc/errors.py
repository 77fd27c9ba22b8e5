"""Exceptions a user can act on, and the warning for options that do nothing.

Every error byoc raises for bad input derives from :class:`ByocError`. The CLI prints the
message of a ``ByocError`` as one paragraph and exits non-zero; anything else is a bug in byoc.
Messages name what was wrong (file, node, op, plugin) and say what to do.
"""

from __future__ import annotations


class ByocError(Exception):
    """Base class of all user-facing byoc errors."""


class ModelImportError(ByocError):
    """The ONNX model could not be read or is malformed."""


class UnsupportedOpError(ModelImportError):
    """The model uses an operator byoc does not implement."""


class ShapeInferenceError(ModelImportError):
    """A value's shape or dtype could not be determined statically."""


class VerificationError(ByocError):
    """The graph IR breaks one of its invariants."""


class InputError(ByocError):
    """Inputs handed to a model do not match its signature."""


class ArtifactError(ByocError):
    """A compiled artifact could not be written or was refused on load."""


class ExecutionError(ByocError):
    """A node failed while running."""


class PluginError(ByocError):
    """A plugin could not be found, loaded or validated, or broke the plugin API."""


class PluginOptionError(PluginError):
    """A plugin refuses the value a user gave one of its options (beyond its declared type,
    e.g. threads=0). The user's to fix: byoc reports it, it never falls back to a host."""


class CosimError(ByocError):
    """Verilog co-simulation failed: Verilator missing, a build error, or a misused model."""


class PluginOptionWarning(UserWarning):
    """An option given to a plugin has no effect: the plugin runs no partition of the model,
    or a compile-stage option was given when loading an artifact, whose code is fixed."""


def describe_node(node) -> str:
    """How error messages name a node: its name, op type and domain."""
    domain = node.domain or "ai.onnx"
    return f"node {node.name!r} ({domain}::{node.op_type})"
