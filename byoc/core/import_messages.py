"""The importer's longer error wording: what is not static and how to make it so.

The importer refuses an input whose dimensions nothing binds (:func:`unbound_dims_message`,
with an --input-shape example per input) and, in a static-only import, a node whose output
size depends on values not known at import (:func:`why_not_static`, naming those inputs).
"""

from __future__ import annotations

import onnx


def unbound_dims_message(inputs: list[onnx.ValueInfoProto]) -> str:
    """Every unbound dimension of every input, and an --input-shape example for each input
    built from plausible sizes (the same size wherever a symbolic name recurs)."""
    chosen: dict[str, int] = {}
    described, flags, python = [], [], []
    for vi in inputs:
        dims = declared_dims(vi.type.tensor_type)
        if dims is None:
            described.append(f"input {vi.name!r} declares no shape, not even its rank")
            example = [1, 3, 224, 224]
        else:
            symbolic = [f"{d!r} (dim {i})" if d != "?" else f"an unnamed dim (dim {i})"
                        for i, d in enumerate(dims) if not isinstance(d, int)]
            described.append(f"input {vi.name!r} {dims_text(dims)}: {', '.join(symbolic)}")
            example = [d if isinstance(d, int) else _example_size(d, i, len(dims), chosen)
                       for i, d in enumerate(dims)]
        flags.append(f"--input-shape {vi.name}={'x'.join(map(str, example))}")
        python.append(f"{vi.name!r}: ({', '.join(map(str, example))}{',' * (len(example) == 1)})")
    return (f"byoc compiles for static shapes, and nothing binds these input dimensions: "
            f"{'; '.join(described)}. Give each such input its concrete shape, e.g. "
            f"{' '.join(flags)} (in Python: input_shapes={{{', '.join(python)}}}); those "
            f"sizes are examples, use the ones your data has")


# Plausible sizes for symbolic dims, by what their names say, for the examples of
# unbound_dims_message.
_EXAMPLE_SIZES = (("batch", 1), ("seq", 128), ("len", 128), ("token", 128), ("time", 128),
                  ("height", 224), ("width", 224), ("channel", 3))


def _example_size(dim: str, position: int, rank: int, chosen: dict[str, int]) -> int:
    if dim != "?" and dim in chosen:
        return chosen[dim]
    name = dim.lower()
    size = next((size for word, size in _EXAMPLE_SIZES if word in name), None)
    if size is None:
        if position == 0 or name == "n":
            size = 1
        elif rank == 4 and position >= 2 or name in ("h", "w"):
            size = 224
        else:
            size = 16
    if dim != "?":
        chosen[dim] = size
    return size


def why_not_static(out: str, deciding: list[tuple[str, str]], graph_inputs: list[str]) -> str:
    """Why an output has no static shape, for a static-only import: the inputs whose values
    decide its size (value, ONNX input name; see
    :func:`byoc.core.import_tail.unknown_size_deciders`) and what to do."""
    tail_hint = ("let byoc run this node, and those that depend on it, eagerly on the "
                 "reference interpreter after the static graph: the dynamic tail of "
                 "byoc.compile (on unless dynamic_tail=False; `byoc compile` and `byoc "
                 "run` without --no-dynamic-tail)")
    if not deciding:
        return (f"the shape of output {out!r} cannot be determined statically (it depends "
                f"on runtime values), and byoc compiles static shapes; {tail_hint}")
    listed = ", ".join(f"{value!r} ({name})" for value, name in deciding)
    fed = [value for value, _ in deciding if value in graph_inputs]
    it = "it" if len(deciding) == 1 else "them"
    fixes = ["make it a constant (an initializer or a Constant node)" if it == "it" else
             "make them constants (initializers or Constant nodes)"]
    if fed:
        example = ", ".join(f"{v!r}: value" for v in fed)
        fixes.append(f"freeze the graph input{'s' if len(fed) > 1 else ''} "
                     f"when compiling, with "
                     f"byoc.compile(..., constant_inputs={{{example}}})")
    if len(fed) < len(deciding):
        fixes.append(f"compute {it} from constants only, so byoc evaluates {it} at import")
    fixes.append(tail_hint)
    return (f"the size of output {out!r} depends on the values of "
            f"input{'s' if len(deciding) > 1 else ''} {listed}, which are not known at "
            f"import, and byoc compiles static shapes; {', or '.join(fixes)}")


def declared_dims(tensor_type: onnx.TypeProto.Tensor) -> list[int | str] | None:
    """Declared dims: sizes as ints, symbolic ones by name ('?' when unnamed); None when the
    type declares no shape (not even a rank)."""
    if not tensor_type.HasField("shape"):
        return None
    return [d.dim_value if d.HasField("dim_value") else (d.dim_param or "?")
            for d in tensor_type.shape.dim]


def dims_text(dims) -> str:
    return "[" + ",".join(str(d) if d is not None else "?" for d in (dims or [])) + "]"
