"""Build the example model zoo (byoc.model_zoo) into a directory.

Usage::

    python examples/zoo.py [--out DIR] [--only NAME,...]

builds the missing models into DIR (default examples/build/) and prints each file it writes.
Without ``--only`` it builds ``DEFAULT_MODELS`` (every model but the benchmark-size ones).
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from byoc import model_zoo

DEFAULT_OUT_DIR = Path(__file__).resolve().parent / "build"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT_DIR,
                        help="directory for the .onnx files (default: %(default)s)")
    parser.add_argument("--only", metavar="NAME,...",
                        help=f"comma-separated models to build (default: "
                             f"{','.join(model_zoo.DEFAULT_MODELS)}; "
                             f"also: {','.join(model_zoo.BENCHMARK_MODELS)})")
    args = parser.parse_args(argv)
    names = args.only.split(",") if args.only else list(model_zoo.DEFAULT_MODELS)
    unknown = [name for name in names if name not in model_zoo.MODELS]
    if unknown:
        parser.error(f"unknown model(s) {', '.join(unknown)}; "
                     f"choose from {', '.join(model_zoo.MODELS)}")

    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(logging.Formatter("%(message)s"))
    model_zoo.logger.addHandler(handler)
    model_zoo.logger.setLevel(logging.INFO)
    for name in names:
        model_zoo.build(name, args.out)


if __name__ == "__main__":
    main()
