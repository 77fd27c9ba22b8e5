"""The data a plugin exchanges with byoc through its hooks.

These are the types named in :mod:`byoc.plugins.hookspecs`: what a plugin says about itself
(:class:`PluginInfo`), the piece of graph it is asked to compile (:class:`Partition`), what its
code generator hands back to be stored in an artifact (:class:`Payload`), what it must
provide to run that code (:class:`Runtime`, created from a :class:`PartitionSignature`,
which may report what its device did in a run as a :class:`DeviceTrace`),
the commands it adds to the ``byoc`` command line (:class:`CliCommand`), the options users
may give it (:class:`PluginOption`), what its patterns accept, for the conformance kit
(:class:`PatternLimits`), and the ops of its own domain it declares so that models holding
them import (:class:`CustomOp`, kept with the plugin that declared it as a
:class:`DeclaredOp`), and what it expects a match of its patterns to cost
(:class:`Estimate`) and a tensor to move to and from its device (:class:`Transfer`).
"""

from __future__ import annotations

import inspect
import math
import numbers
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Mapping, Protocol, runtime_checkable

import numpy as np

from byoc.core.interpreter.base import OpImpl
from byoc.core.ir import Graph, Node, TensorType
from byoc.errors import PluginError, ShapeInferenceError, UnsupportedOpError, VerificationError

if TYPE_CHECKING:
    import argparse

    from byoc.partition.patterns import Match


PLUGIN_ROLES: tuple[str, ...] = ("accelerator", "host")
"""The values of ``PluginInfo.role``: see :class:`PluginInfo`."""


@dataclass(frozen=True)
class PluginInfo:
    """What a plugin says about itself (returned by ``byoc_plugin_info``).

    ``name`` is the plugin's short name (as used on the command line), ``version`` its
    version string, ``device`` what it drives (e.g. ``"NPU v2 (simulated)"``), ``description``
    one line for ``byoc plugins``. ``preferred_layout`` is the layout its partitions take and
    give 4-D values in at their boundaries (``"NHWC"``; byoc converts, see :mod:`byoc.layouts`),
    or None for the graph's own (NCHW).

    ``role`` is one of :data:`PLUGIN_ROLES`. An ``"accelerator"`` (the default) takes part in
    a compilation only when the user selects it. A ``"host"`` can run whatever the
    accelerators leave, so every installed host plugin is selected by default, after the
    user's plugins, in alphabetical order of name; the last-resort host
    (``CompileOptions.host``, the reference interpreter) still takes what they all decline.
    """

    name: str
    version: str
    device: str
    description: str
    preferred_layout: str | None = None
    role: str = "accelerator"

    def __post_init__(self) -> None:
        if self.role not in PLUGIN_ROLES:
            raise PluginError(f"plugin {self.name!r} declares the role {self.role!r} in its "
                              f"PluginInfo; the roles are {', '.join(PLUGIN_ROLES)}")


@dataclass(frozen=True)
class PartitionSignature:
    """The typed interface of a compiled partition: its name and its input and output values
    (in call order) with their types, as the plugin's runtime sees them. This is all a runtime
    gets besides the payload, so an artifact can be run without the graph it was compiled
    from."""

    name: str
    inputs: dict[str, TensorType]
    outputs: dict[str, TensorType]
    layouts: dict[str, str] = field(default_factory=dict)
    """Values held in a layout other than the graph's (NCHW), by name: 4-D boundary values of
    a plugin whose ``PluginInfo.preferred_layout`` is NHWC. Their types above are already in
    that layout, and the runtime receives and returns them so (see :mod:`byoc.layouts`)."""


@dataclass
class Partition:
    """A subgraph assigned to one plugin.

    ``name`` is unique within the model, ``plugin`` the name of the plugin it is assigned to,
    ``nodes`` the graph's nodes it covers (in topological order), ``inputs`` the non-constant
    values it reads from outside (graph inputs or other nodes' outputs), ``outputs`` the values
    it defines that are read outside it (or are graph outputs), ``types`` the types of every
    value its nodes read or define, and ``opsets`` the model's opset imports (the nodes'
    semantics depend on them). ``matches`` are the plugin's pattern matches that formed it,
    in the order of their roots: each names its pattern and holds the nodes it claims, with
    the labelled ones in ``captured`` (see :class:`byoc.partition.patterns.Match`), so a
    lowering need not match its patterns again. Nodes that a host took without a pattern
    come with no match.

    ``debug_outputs`` is the debug request of ``byoc verify``, empty in every ordinary
    compile: values defined inside the partition's matches (a fused layer's inner values, in
    topological order) that verify asks to see besides ``outputs``, to name the first node
    inside a fused match whose output is wrong. A plugin may honour it for any of them: its
    runtime's ``run`` then returns those values too, each of its type in ``types`` and held
    like an output (a 4-D value in the plugin's preferred layout). A plugin that cannot
    produce a value leaves it out; one that ignores the request entirely is correct too (verify
    then names the match's output node). Honouring it must not change the outputs.
    """

    name: str
    plugin: str
    nodes: list[Node]
    inputs: list[str]
    outputs: list[str]
    types: dict[str, TensorType] = field(default_factory=dict)
    opsets: dict[str, int] = field(default_factory=dict)
    matches: list[Match] = field(default_factory=list)
    debug_outputs: list[str] = field(default_factory=list)

    def signature(self) -> PartitionSignature:
        """The partition's typed interface (what a runtime is created for)."""
        missing = [v for v in [*self.inputs, *self.outputs] if v not in self.types]
        if missing:
            raise VerificationError(f"partition {self.name!r} has no type for "
                                    f"{', '.join(repr(v) for v in missing)}")
        return PartitionSignature(self.name, {v: self.types[v] for v in self.inputs},
                                  {v: self.types[v] for v in self.outputs})

    def subgraph(self, constants: Mapping[str, np.ndarray] | None = None) -> Graph:
        """A stand-alone, verified :class:`Graph` made of exactly this partition's nodes.

        The partition's ``inputs`` become the graph's inputs and its ``outputs`` the graph's
        outputs. Any other value the nodes read must be a constant: it is looked up in
        ``constants`` (the model's constants, as passed to ``byoc_lower_partition``) and
        copied into the subgraph. Nodes are copied, so rewriting the subgraph leaves the
        model's graph alone. Raises VerificationError if a value the nodes read is neither an
        input, a constant nor defined by one of the nodes, or if the result is malformed.
        """
        from byoc.core.verify import verify

        constants = constants or {}
        nodes = [Node(n.op_type, list(n.inputs), list(n.outputs), dict(n.attrs), n.name,
                      n.domain) for n in self.nodes]
        defined = set(self.inputs) | {out for n in nodes for out in n.outputs if out}
        graph_constants: dict[str, np.ndarray] = {}
        for node in nodes:
            for value in node.present_inputs:
                if value in defined or value in graph_constants:
                    continue
                if value not in constants:
                    raise VerificationError(
                        f"partition {self.name!r}: node {node.name!r} ({node.op_type}) reads "
                        f"{value!r}, which is not a partition input, a constant or defined by "
                        f"a node of the partition")
                graph_constants[value] = np.asarray(constants[value])
        types = {}
        for value in [*self.inputs, *defined]:
            if value in self.types:
                types[value] = self.types[value]
        for value, array in graph_constants.items():
            types[value] = self.types.get(value, TensorType.of(array))
        graph = Graph(name=self.name, nodes=nodes, inputs=list(self.inputs),
                      outputs=list(self.outputs), types=types, constants=graph_constants,
                      opsets=dict(self.opsets))
        verify(graph)
        return graph


@dataclass
class Payload:
    """What a plugin's code generator produces for one partition, stored in the artifact.

    ``data`` is opaque bytes only the plugin's runtime reads (a binary, a command stream,
    serialized weights). ``metadata`` is plain data written as YAML next to it: dicts with
    string keys, lists, strings, ints, floats, bools and None (no numpy values). ``arrays``
    holds named numpy arrays (weights, packed constants; numbers, or strings as object arrays
    of ``str``) that byoc stores as .npy files in the artifact and hands back unchanged with
    the payload.
    """

    data: bytes
    metadata: dict[str, Any] = field(default_factory=dict)
    arrays: dict[str, np.ndarray] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if isinstance(self.data, (bytearray, memoryview)):
            self.data = bytes(self.data)
        if not isinstance(self.data, bytes):
            raise PluginError(f"Payload.data must be bytes, not {type(self.data).__name__}")
        _check_plain(self.metadata, "metadata")
        for key, array in self.arrays.items():
            if type(key) is not str or not isinstance(array, np.ndarray) or (
                    array.dtype.hasobject
                    and not all(isinstance(text, str) for text in array.flat)):
                raise PluginError(f"Payload.arrays[{key!r}] must be a numpy array of numbers "
                                  f"or strings under a string key")


def _check_plain(value: Any, path: str) -> None:
    if value is None or type(value) in (str, int, float, bool):
        return
    if type(value) is dict:
        for key, item in value.items():
            if type(key) is not str:
                raise PluginError(f"Payload {path} has a non-string key {key!r}; metadata "
                                  f"must be plain YAML data")
            _check_plain(item, f"{path}.{key}")
        return
    if type(value) in (list, tuple):
        for i, item in enumerate(value):
            _check_plain(item, f"{path}[{i}]")
        return
    raise PluginError(f"Payload {path} holds a {type(value).__name__} ({value!r:.60}); metadata "
                      f"must be plain YAML data (dict, list, str, int, float, bool, None) — "
                      f"convert numpy values with .tolist() or int()/float()")


@runtime_checkable
class Runtime(Protocol):
    """Runs one compiled partition (returned by ``byoc_runtime_create``).

    ``run`` takes the partition's inputs by name (arrays of the signature's types) and returns
    its outputs by name. A runtime may also define, and byoc's profiles and traces read
    through the helpers named, which give an empty answer for a runtime without them:

    - ``counters(self) -> dict[str, int | float]``: performance counters of the runs so far
      (e.g. cycles, bytes moved); :func:`runtime_counters`.
    - ``counter_help(self) -> dict[str, str]``: what each counter counts and its unit, by
      counter name (``"cycles": "clock cycles from start to done, cycles"``), shown next to
      the counters by ``byoc run --profile``; :func:`runtime_counter_help`.
    - ``device_trace(self) -> DeviceTrace | None``: what the device did in the last run,
      layer by layer or command by command, in its clock cycles (:class:`DeviceTrace`), for
      ``byoc run --trace``; :func:`runtime_device_trace`.
    - ``device_difference(self, inputs, folder) -> DeviceDifference | None``: for a runtime
      that runs a model of the device which can be checked against the plugin's golden model
      (RTL against a functional simulator): run ``inputs`` on both and say where the device
      first departs from the golden model (the instruction, and a waveform written under
      ``folder``), None when they agree; ``byoc verify`` asks it of a failing partition;
      :func:`runtime_device_difference`.
    """

    def run(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]: ...


def runtime_counters(runtime: Runtime) -> dict[str, int | float]:
    """The runtime's performance counters, or ``{}`` if it does not define ``counters``."""
    counters = getattr(runtime, "counters", None)
    return dict(counters()) if callable(counters) else {}


def runtime_counter_help(runtime: Runtime) -> dict[str, str]:
    """What each of the runtime's counters counts, with its unit, by counter name; ``{}`` if
    the runtime does not define ``counter_help``."""
    explain = getattr(runtime, "counter_help", None)
    return {str(name): str(text) for name, text in explain().items()} if callable(explain) \
        else {}


def runtime_device_trace(runtime: Runtime) -> DeviceTrace | None:
    """The runtime's :class:`DeviceTrace` of its last run, or None if it does not define
    ``device_trace`` (or has none, e.g. before its first run). PluginError if it returns
    something else."""
    trace = getattr(runtime, "device_trace", None)
    result = trace() if callable(trace) else None
    if result is not None and not isinstance(result, DeviceTrace):
        raise PluginError(f"the runtime's device_trace() returned {type(result).__name__}; it "
                          f"must return a byoc.plugins.api.DeviceTrace or None (a bug in the "
                          f"plugin: report it to its authors)")
    return result


@dataclass(frozen=True)
class DeviceDifference:
    """Where a device model first departs from the plugin's golden model in one run.

    ``instruction`` is the index of the first instruction (command) of the partition's
    stream whose effect differs, ``description`` says what it is and what differed (e.g.
    "instruction 57 (ALU SHR ...) wrote accumulator row 12 as ..., the simulator ..."),
    ``cycle`` is the device cycle of that first difference (None when unknown) and
    ``waveform`` the path of a waveform (VCD) cut to a window around it (None when none was
    written).
    """

    instruction: int
    description: str
    cycle: int | None = None
    waveform: str | None = None


def runtime_device_difference(runtime: Runtime, inputs: dict[str, np.ndarray],
                              folder: str) -> DeviceDifference | None:
    """The runtime's :class:`DeviceDifference` for ``inputs``, or None when it does not define
    ``device_difference`` or its device agrees with its golden model. PluginError if it
    returns something else."""
    locate = getattr(runtime, "device_difference", None)
    result = locate(inputs, folder) if callable(locate) else None
    if result is not None and not isinstance(result, DeviceDifference):
        raise PluginError(f"the runtime's device_difference() returned {type(result).__name__}; "
                          f"it must return a byoc.plugins.api.DeviceDifference or None (a bug "
                          f"in the plugin: report it to its authors)")
    return result


def _cycle_count(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool) and value >= 0


@dataclass(frozen=True)
class DeviceEvent:
    """One step of a partition's run on its device: a layer, or a command of the device.

    ``name`` names it (a layer is named after its ONNX node), ``nodes`` are the names of the
    ONNX nodes it runs (empty when the plugin cannot tell), ``start_cycle`` is when it started
    and ``cycles`` how long it took, both in device clock cycles from the run's start.
    """

    name: str
    nodes: tuple[str, ...]
    start_cycle: int
    cycles: int

    def __post_init__(self) -> None:
        object.__setattr__(self, "nodes", tuple(self.nodes))
        if not isinstance(self.name, str) or not all(isinstance(n, str) for n in self.nodes):
            raise PluginError(f"DeviceEvent {self.name!r}: name and nodes must be strings "
                              f"(nodes: the ONNX node names the step runs)")
        for name in ("start_cycle", "cycles"):
            if not _cycle_count(getattr(self, name)):
                raise PluginError(f"DeviceEvent {self.name!r}: {name} must be a whole number "
                                  f"of cycles >= 0, not {getattr(self, name)!r:.60}")


@dataclass(frozen=True)
class DeviceTrace:
    """What a partition's device did in the runtime's last run (returned by a runtime's
    optional ``device_trace()``, see :class:`Runtime`).

    ``cycles`` is the run's device clock cycles (the per-run share of a cycle counter the
    runtime keeps), ``events`` its steps in order of start, each within those cycles.
    ``clock_hz`` is the clock at which a trace converts cycles to time and ``clock`` says
    where that figure comes from (``"the configuration's clock_hz"``, or what is assumed).
    """

    cycles: int
    events: tuple[DeviceEvent, ...]
    clock_hz: float
    clock: str

    def __post_init__(self) -> None:
        object.__setattr__(self, "events", tuple(self.events))
        if not _cycle_count(self.cycles):
            raise PluginError(f"DeviceTrace.cycles must be a whole number of cycles >= 0, not "
                              f"{self.cycles!r:.60}")
        if isinstance(self.clock_hz, bool) or not isinstance(self.clock_hz, numbers.Real) \
                or not 0 < self.clock_hz < float("inf"):
            raise PluginError(f"DeviceTrace.clock_hz must be a clock frequency in Hz > 0, not "
                              f"{self.clock_hz!r:.60}")
        for event in self.events:
            if not isinstance(event, DeviceEvent):
                raise PluginError(f"DeviceTrace.events must hold DeviceEvent objects, not "
                                  f"{type(event).__name__}")
            if event.start_cycle + event.cycles > self.cycles:
                raise PluginError(f"DeviceTrace: event {event.name!r} ends at cycle "
                                  f"{event.start_cycle + event.cycles}, after the run's "
                                  f"{self.cycles} cycles")


_COMMAND_NAME = re.compile(r"[a-z][a-z0-9_-]*")


@dataclass(frozen=True)
class CliCommand:
    """A top-level ``byoc`` command a plugin adds (returned by ``byoc_cli_commands``).

    ``name`` is the word typed after ``byoc`` (lower case letters, digits, ``-`` and ``_``,
    starting with a letter) and ``help`` its one-line summary for ``byoc --help``.
    ``add_arguments(parser)`` adds the command's arguments, or sub-commands with
    ``parser.add_subparsers``, to its argparse parser; byoc calls it only when the command
    is used. ``run(args)`` runs the command with the parsed arguments and returns its exit
    status (None means 0). A :class:`byoc.errors.ByocError` raised by ``run`` is printed as
    one paragraph and the exit status is 1, as for byoc's own commands.
    """

    name: str
    help: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int | None]

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not _COMMAND_NAME.fullmatch(self.name):
            raise PluginError(f"CliCommand name {self.name!r} is not a command word: use lower "
                              f"case letters, digits, '-' and '_', starting with a letter")
        for role in ("add_arguments", "run"):
            if not callable(getattr(self, role)):
                raise PluginError(f"CliCommand {self.name!r}: {role} must be callable, not "
                                  f"{type(getattr(self, role)).__name__}")


@dataclass(frozen=True)
class PatternLimits:
    """What one of a plugin's patterns accepts, as far as the conformance kit can build it
    (returned in a list by ``byoc_conformance_limits``; see :mod:`byoc.conformance`).

    ``pattern`` is the pattern's name. ``accepts`` maps a parameter of the kit's model
    builders to the values the pattern takes, e.g. ``{"dtype": ("float32",), "kernel":
    range(1, 8), "group": (1,)}``; each family of builders lists its parameters, their
    defaults and the values it can probe with (``byoc.conformance.families``). The kit
    builds models with values from ``accepts`` and expects the pattern to take every one of
    them; for each parameter named here it also builds the probe values left out and expects
    the pattern to decline them with a reason. Parameters not named keep the family's
    default values and are not probed. ``family`` names the builder family when the kit
    cannot tell it from the pattern's op types. ``skip`` is the reason the kit cannot test
    this pattern at all (the pattern is then reported as skipped with that reason).
    ``rtol`` and ``atol`` bound float differences from the reference interpreter
    (``|got - want| <= atol + rtol * |want|``; None keeps the family's bound); integer and
    boolean outputs must be equal. ``quantized_steps`` lets the int8 results of a quantized
    layer (and the floats dequantized from them) differ from the reference by that many
    quantization steps, for hardware that requantizes in fixed point and so rounds some
    results the other way; the plugin should say why in a comment. ``known_declines`` lists
    phrases of decline reasons the pattern may give inside its limits because they depend on
    values no parameter describes (e.g. ratios of quantization scales the hardware cannot
    reproduce exactly): such a decline passes, any other decline inside the limits fails.
    """

    pattern: str
    accepts: Mapping[str, Any] = field(default_factory=dict)
    family: str | None = None
    skip: str = ""
    rtol: float | None = None
    atol: float | None = None
    quantized_steps: int = 0
    known_declines: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.pattern, str) or not self.pattern:
            raise PluginError(f"PatternLimits needs a pattern name, not {self.pattern!r}")
        if isinstance(self.known_declines, str) or not all(
                isinstance(p, str) and p.strip() for p in self.known_declines):
            raise PluginError(f"PatternLimits for {self.pattern!r}: known_declines must be a "
                              f"tuple of non-empty phrases of decline reasons, not "
                              f"{self.known_declines!r}")
        for name, values in self.accepts.items():
            if isinstance(values, (str, bytes)) or not hasattr(values, "__iter__") \
                    or not list(values):
                raise PluginError(f"PatternLimits for {self.pattern!r}: accepts[{name!r}] must "
                                  f"be a non-empty sequence of values (a tuple or a range), "
                                  f"not {values!r}")


_OP_TYPE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_ONNX_DOMAINS = ("", "ai.onnx")
_INFER_TYPES_ARGUMENTS = ("input_types", "input_values", "attributes", "opset", "output_count")


@dataclass(frozen=True)
class CustomOp:
    """An op of a plugin's own domain (returned in a list by ``byoc_import_custom_ops``), so
    that models holding it import, run on the reference interpreter and can be checked.

    ``domain`` and ``op_type`` name it as ONNX nodes do (``"com.mychip"``, ``"FusedGelu"``;
    the domain may not be ONNX's own). ``implementation`` is its reference semantics: an
    :class:`byoc.core.interpreter.OpImpl` subclass, written like byoc's own op families
    (``run`` takes the inputs positionally and the attributes as keyword arguments; ``check``
    may refuse inputs it cannot run on). ``infer_types`` gives the types of a node's outputs
    from what is known at import; it is called with these keyword arguments, of which it may
    take any subset: ``input_types`` (a :class:`~byoc.core.ir.TensorType` per input, None for
    an omitted optional input), ``input_values`` (the input's array where it is a constant or
    computed from constants, else None), ``attributes`` (the node's attributes by name),
    ``opset`` (the version of ``domain`` the model imports) and ``output_count`` (how many
    outputs the node lists). It returns a list of one TensorType per output of the node, or
    raises ValueError saying why the node's inputs or attributes do not fit the op.
    ``opsets`` are the versions of ``domain`` the op is declared for (a model importing
    another version is refused), ``doc`` one line for ``byoc ops``.
    """

    domain: str
    op_type: str
    implementation: type[OpImpl]
    infer_types: Callable[..., list[TensorType]]
    opsets: tuple[int, ...] = (1,)
    doc: str = ""

    def __post_init__(self) -> None:
        name = f"CustomOp {self.domain}::{self.op_type}"
        if not isinstance(self.domain, str) or self.domain in _ONNX_DOMAINS:
            raise PluginError(f"{name}: a custom op needs a domain of its own (e.g. "
                              f"'com.mychip'), not {self.domain!r}, which is ONNX's")
        if not isinstance(self.op_type, str) or not _OP_TYPE.fullmatch(self.op_type):
            raise PluginError(f"{name}: the op type must be an identifier such as "
                              f"'FusedGelu', not {self.op_type!r}")
        if not (isinstance(self.implementation, type)
                and issubclass(self.implementation, OpImpl)):
            raise PluginError(f"{name}: implementation must be a subclass of "
                              f"byoc.core.interpreter.OpImpl, not {self.implementation!r:.60}")
        if not callable(self.infer_types):
            raise PluginError(f"{name}: infer_types must be callable, not "
                              f"{self.infer_types!r:.60}")
        unknown = _unknown_arguments(self.infer_types)
        if unknown:
            raise PluginError(f"{name}: infer_types takes {', '.join(unknown)}, which byoc does "
                              f"not pass; it may take any of {', '.join(_INFER_TYPES_ARGUMENTS)}")
        opsets = tuple(self.opsets) if isinstance(self.opsets, (tuple, list, range)) else ()
        if not opsets or not all(isinstance(v, int) and v >= 1 for v in opsets):
            raise PluginError(f"{name}: opsets must be a non-empty sequence of domain versions "
                              f"(ints from 1), not {self.opsets!r}")
        object.__setattr__(self, "opsets", opsets)

    @property
    def qualified_name(self) -> str:
        return f"{self.domain}::{self.op_type}"


def _unknown_arguments(function: Callable[..., Any]) -> list[str]:
    try:
        parameters = inspect.signature(function).parameters.values()
    except (TypeError, ValueError):  # a builtin without a signature: called with everything
        return []
    return [p.name for p in parameters
            if p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)
            and p.name not in _INFER_TYPES_ARGUMENTS]


@dataclass(frozen=True)
class DeclaredOp:
    """A :class:`CustomOp` with the plugin that declared it: its registration name and origin,
    which messages and ``byoc ops`` show."""

    plugin: str
    origin: str
    op: CustomOp

    @property
    def declarer(self) -> str:
        return f"plugin {self.plugin!r} (from {self.origin})"

    def infer_types(self, node_label: str, opset: int | None,
                    input_types: list[TensorType | None],
                    input_values: list[np.ndarray | None], attributes: dict[str, Any],
                    output_count: int) -> list[TensorType]:
        """The output types of the node ``node_label`` as the op's ``infer_types`` gives
        them, checked. UnsupportedOpError when the model imports a version of the domain the
        op is not declared for, ShapeInferenceError when ``infer_types`` refuses the node
        (ValueError), PluginError naming the plugin and the op when it fails otherwise or
        returns something else than one TensorType per output."""
        op = self.op
        if opset not in op.opsets:
            raise UnsupportedOpError(
                f"{node_label}: {self.declarer} declares {op.qualified_name} for version(s) "
                f"{', '.join(map(str, op.opsets))} of domain {op.domain}, not {opset}; import "
                f"a declared version in the model or update the plugin")
        given = {"input_types": list(input_types), "input_values": list(input_values),
                 "attributes": dict(attributes), "opset": opset, "output_count": output_count}
        try:
            result = op.infer_types(**_arguments_taken(op.infer_types, given))
        except ValueError as exc:
            raise ShapeInferenceError(f"{node_label} does not fit the op {op.qualified_name} "
                                      f"of {self.declarer}: {exc}; fix the node's inputs or "
                                      f"attributes") from None
        except Exception as exc:
            raise PluginError(f"{self.declarer} failed in the infer_types of its op "
                              f"{op.qualified_name} for {node_label}: {type(exc).__name__}: "
                              f"{exc} (a bug in the plugin: report it to its authors)") from exc
        if not isinstance(result, (list, tuple)) or len(result) != output_count or \
                not all(isinstance(t, TensorType) for t in result):
            raise PluginError(f"{self.declarer}: the infer_types of its op {op.qualified_name} "
                              f"returned {result!r:.100} for {node_label}, which has "
                              f"{output_count} output(s); it must return a list of "
                              f"{output_count} byoc.core.ir.TensorType, one per output (a bug "
                              f"in the plugin: report it to its authors)")
        return list(result)


def _arguments_taken(function: Callable[..., Any], given: dict[str, Any]) -> dict[str, Any]:
    """The arguments of ``given`` that ``function`` names (all of them if it takes
    ``**kwargs`` or has no signature), so that infer_types may take fewer of them."""
    try:
        parameters = inspect.signature(function).parameters.values()
    except (TypeError, ValueError):
        return given
    if any(p.kind is p.VAR_KEYWORD for p in parameters):
        return given
    return {p.name: given[p.name] for p in parameters if p.name in given}


OPTION_STAGES: tuple[str, ...] = ("compile", "run")
"""The values of ``PluginOption.stage``: see :class:`PluginOption`."""

_OPTION_TYPES: tuple[type, ...] = (bool, int, float, str)
_OPTION_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_NOT_VALID = object()  # a value the option does not take, as _typed and _from_text say
_BOOL_WORDS = {"true": True, "1": True, "false": False, "0": False}


@dataclass(frozen=True)
class PluginOption:
    """An option of a plugin (returned in a list by ``byoc_plugin_options``), which users give
    as ``--plugin-option PLUGIN.NAME=VALUE`` or ``plugin_options={"PLUGIN": {"NAME": value}}``.

    ``name`` is an identifier (``threads``). ``type`` is ``bool``, ``int``, ``float`` or
    ``str``, or a tuple of the strings allowed (a choice: ``("sim", "rtl", "cosim")``); byoc
    converts what users give to it (:meth:`parse`). ``default`` is the value the plugin's
    hooks see when the user gives none, of that type, or None for "not set" (the plugin then
    decides, and ``help`` says what it does). ``help`` is one line for ``byoc plugins``.
    ``stage`` says which hooks see the option: ``"run"`` (the default) reaches
    ``byoc_runtime_create``, also when a saved artifact is loaded; ``"compile"`` reaches
    ``byoc_lower_partition`` and so is fixed in the compiled code.
    """

    name: str
    type: type | tuple[str, ...]
    default: Any
    help: str
    stage: str = "run"

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not _OPTION_NAME.fullmatch(self.name):
            raise PluginError(f"PluginOption name {self.name!r} is not an identifier such as "
                              f"'threads'")
        where = f"PluginOption {self.name!r}"
        if isinstance(self.type, (tuple, list)):
            choices = tuple(self.type)
            if not choices or not all(isinstance(c, str) and c for c in choices) \
                    or len(set(choices)) < len(choices):
                raise PluginError(f"{where}: a choice type must be a tuple of distinct, "
                                  f"non-empty strings, not {self.type!r}")
            object.__setattr__(self, "type", choices)
        elif self.type not in _OPTION_TYPES:
            raise PluginError(f"{where}: type must be bool, int, float, str or a tuple of the "
                              f"strings allowed, not {self.type!r}")
        if self.default is not None and self._typed(self.default) is _NOT_VALID:
            raise PluginError(f"{where}: the default {self.default!r} is not a value of its "
                              f"type ({self.type_text}); give one, or None for 'not set'")
        if not isinstance(self.help, str) or not self.help.strip():
            raise PluginError(f"{where}: help must be a line saying what the option does")
        if self.stage not in OPTION_STAGES:
            raise PluginError(f"{where}: stage must be one of {', '.join(OPTION_STAGES)}, not "
                              f"{self.stage!r}")

    @property
    def type_text(self) -> str:
        """The type as ``byoc plugins`` shows it: ``int``, or the choices ``sim|rtl|cosim``."""
        return "|".join(self.type) if isinstance(self.type, tuple) else self.type.__name__

    def parse(self, value: Any, plugin: str) -> Any:
        """``value`` as a value of the option's type: a string (from the command line)
        converted, a value of the type kept. PluginError naming the plugin, the option, the
        value and what the option takes (``true/false/1/0`` for a bool, the choices for a
        choice)."""
        if isinstance(value, str) and self.type in (bool, int, float):
            typed = self._from_text(value.strip())
        else:
            typed = self._typed(value)
        if typed is _NOT_VALID:
            raise PluginError(f"plugin option {plugin}.{self.name}={value!r} is not valid: "
                              f"give {self._allowed()}")
        return typed

    def _from_text(self, text: str) -> Any:
        if self.type is bool:
            return _BOOL_WORDS.get(text.lower(), _NOT_VALID)
        try:
            return self.type(text)
        except ValueError:
            return _NOT_VALID

    def _typed(self, value: Any) -> Any:
        """``value`` if it is of the option's type (an int for a float made a float), else
        _NOT_VALID. A bool is not taken for a number."""
        if isinstance(self.type, tuple):
            return value if isinstance(value, str) and value in self.type else _NOT_VALID
        if self.type is str:
            return value if isinstance(value, str) else _NOT_VALID
        if isinstance(value, (bool, np.bool_)):
            return bool(value) if self.type is bool else _NOT_VALID
        if self.type is int and isinstance(value, numbers.Integral):
            return int(value)
        if self.type is float and isinstance(value, numbers.Real):
            return float(value)
        return _NOT_VALID

    def _allowed(self) -> str:
        if isinstance(self.type, tuple):
            return f"one of {', '.join(self.type)}"
        return {bool: "true/false/1/0", int: "a whole number", float: "a number",
                str: "a string"}[self.type]


@dataclass(frozen=True)
class Estimate:
    """What running one match of a plugin's pattern is expected to cost (returned by
    ``byoc_estimate_match``), before anything is compiled or run.

    ``seconds`` is the expected run time on the plugin's device, transfers to and from it
    left out (byoc adds those at partition boundaries, from :class:`Transfer`). ``cycles`` is
    the device's clock cycles where the plugin counts them (None for a host). ``bytes_in``
    and ``bytes_out`` are the bytes of the run-time values the match reads from outside and
    gives to readers outside (or to the graph's outputs); constants are not counted.
    ``basis`` says in a few words what model produced the figure (``"timing model of the
    generated instruction stream at 100 MHz"``), for reports and for a reader who doubts it.
    """

    seconds: float
    cycles: int | None = None
    bytes_in: int = 0
    bytes_out: int = 0
    basis: str = ""

    def __post_init__(self) -> None:
        if isinstance(self.seconds, bool) or not isinstance(self.seconds, numbers.Real) \
                or not math.isfinite(self.seconds) or self.seconds < 0:
            raise PluginError(f"Estimate.seconds must be a finite number of seconds >= 0, not "
                              f"{self.seconds!r:.60}")
        object.__setattr__(self, "seconds", float(self.seconds))
        for name in ("cycles", "bytes_in", "bytes_out"):
            value = getattr(self, name)
            if value is None and name == "cycles":
                continue
            if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 0:
                raise PluginError(f"Estimate.{name} must be a whole number >= 0"
                                  f"{' or None' if name == 'cycles' else ''}, not {value!r:.60}")
            object.__setattr__(self, name, int(value))
        if not isinstance(self.basis, str):
            raise PluginError(f"Estimate.basis must be a short text saying what model produced "
                              f"the estimate, not {self.basis!r:.60}")


@dataclass(frozen=True)
class HardwareFigures:
    """What a partition's runs asked of its hardware (returned by ``byoc_hardware_figures``):
    the figures a design sweep compares configurations by.

    ``cycles`` are the device's clock cycles for the runs (the RTL's count where it ran,
    else the plugin's model of them); ``ideal_cycles`` the cycles the same arithmetic would
    take with every multiply-accumulate unit busy every cycle, so that ``ideal_cycles /
    cycles`` is the compute utilisation; ``dram_bytes`` the bytes moved between DRAM and the
    chip; ``sram_bytes`` the bytes of the chip's on-chip buffers. ``device_equal`` says
    whether a device model (an RTL) gave byte for byte what the plugin's golden model gave on
    every run, or is None when nothing was compared.
    """

    cycles: int
    ideal_cycles: int
    dram_bytes: int
    sram_bytes: int
    device_equal: bool | None = None

    def __post_init__(self) -> None:
        for name in ("cycles", "ideal_cycles", "dram_bytes", "sram_bytes"):
            if not _cycle_count(getattr(self, name)):
                raise PluginError(f"HardwareFigures.{name} must be a whole number >= 0, not "
                                  f"{getattr(self, name)!r:.60}")
            object.__setattr__(self, name, int(getattr(self, name)))
        if self.device_equal not in (None, True, False):
            raise PluginError(f"HardwareFigures.device_equal must be True, False or None, not "
                              f"{self.device_equal!r:.60}")

    @property
    def utilisation(self) -> float | None:
        """``ideal_cycles / cycles``, or None for a run of no cycles."""
        return self.ideal_cycles / self.cycles if self.cycles else None


@dataclass(frozen=True)
class Transfer:
    """The cost of moving a tensor between host memory and a plugin's device (returned by
    ``byoc_estimate_transfer``), charged at every partition boundary in either direction.

    ``bandwidth`` is in bytes per second, ``latency`` in seconds per transfer (a DMA
    descriptor, a bus round trip). ``launch`` is what each run of a partition on the device
    costs besides its matches and its transfers, in seconds, charged once per partition (the
    call into the runtime, starting the device, allocating outputs): it is what makes many
    small partitions slower than one large one. A host plugin, which works in host memory,
    moves nothing: :meth:`free` is its transfer, with its launch cost if it has one.
    """

    bandwidth: float
    latency: float = 0.0
    launch: float = 0.0

    def __post_init__(self) -> None:
        for name, valid, unit in (
                ("bandwidth", lambda v: v > 0, "bytes per second > 0"),
                ("latency", lambda v: 0 <= v < math.inf, "seconds >= 0"),
                ("launch", lambda v: 0 <= v < math.inf, "seconds >= 0")):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, numbers.Real) \
                    or not valid(value):
                raise PluginError(f"Transfer.{name} must be a number of {unit}, not "
                                  f"{value!r:.60}")
            object.__setattr__(self, name, float(value))

    @classmethod
    def free(cls, launch: float = 0.0) -> Transfer:
        """Moving nothing: infinite bandwidth, no latency (a host's own memory); ``launch``
        is still what each partition run costs."""
        return cls(math.inf, 0.0, launch)

    def seconds(self, nbytes: int) -> float:
        """``latency + nbytes / bandwidth`` for a transfer of ``nbytes`` (0 for no bytes)."""
        if nbytes <= 0:
            return 0.0
        return self.latency + nbytes / self.bandwidth
