"""`attnlab <command>`: the command-line entry point.

Each command lives in its own module, which exposes ``add_parser(subparsers)``;
the parser it adds sets ``func(args) -> int`` as its default. Commands import
their heavy dependencies inside ``func`` so that ``attnlab --help`` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from ..errors import UserError

# Module paths of the commands, in the order `attnlab --help` lists them.
COMMANDS = [
    "attnlab.walkthrough",  # steps
    "attnlab.bench.cli",  # bench
    "attnlab.cli.train",  # train
    "attnlab.cli.eval",  # eval
    "attnlab.cli.tag",  # tag
    "attnlab.cli.demo",  # demo
    "attnlab.data.cli",  # data get
    "attnlab.viz.cli",  # explain
    "attnlab.serve.cli",  # serve
    "attnlab.experiments.cli",  # experiment
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="attnlab",
        description=(
            "Self-attention and multi-head self-attention: the seed's derivation step by step, "
            "fast packed encoders, taggers and benchmarks."
        ),
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages (e.g. why the fused attention path was not used)")
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    sub = parser.add_subparsers(dest="command", metavar="<command>")
    for name in COMMANDS:
        importlib.import_module(name).add_parser(sub)
    return parser


def _version() -> str:
    from .. import __version__

    return __version__


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING, format="%(name)s: %(message)s")
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except (UserError, ValueError, FileNotFoundError) as exc:
        print(f"attnlab {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"attnlab {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
