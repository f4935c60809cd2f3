"""`attnlab <command>`: the command-line entry point.

Each command lives in its own module, which exposes ``add_parser(subparsers)``;
the parser it adds sets ``func(args) -> int`` as its default. A command module
only parses arguments, calls the library and prints. It imports torch and other
heavy libraries inside ``func``, so that ``attnlab --help`` and
``attnlab <command> --help`` answer at once.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import importlib
import logging
import os
import sys

from ..errors import MissingExtra, UserError, require_extra
from ..options import show_ranges

__all__ = ["COMMANDS", "build_parser", "main", "require_extra"]

# Module paths of the commands, in the order `attnlab --help` lists them.
COMMANDS = [
    "attnlab.cli.steps",  # steps
    "attnlab.cli.bench",  # bench
    "attnlab.cli.train",  # train
    "attnlab.cli.eval",  # eval
    "attnlab.cli.tag",  # tag
    "attnlab.cli.export",  # export
    "attnlab.cli.demo",  # demo
    "attnlab.cli.data",  # data get
    "attnlab.cli.explain",  # explain
    "attnlab.cli.heads",  # heads
    "attnlab.cli.serve",  # serve
    "attnlab.cli.experiment",  # experiment
]

EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE, what a shell reports for a program killed by a closed pipe
# write errors without a file name: stdout's (files are written by attnlab.output, whose errors name them)
STDOUT_ERRORS = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EIO, errno.ECONNRESET)


class BadCommandLine(SystemExit):
    """A command line argparse refuses (an unknown option, a value out of its range): exit code 2,
    after one line on stderr."""


class Parser(argparse.ArgumentParser):
    """argparse with one line for a bad command line, like every other user error, instead of
    the usage block (``--help`` shows that); the subcommands' parsers are of this class too."""

    def error(self, message: str):
        print(f"{self.prog}: error: {message} (see {self.prog} --help)", file=sys.stderr)
        raise BadCommandLine(2)


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="attnlab",
        description=(
            "Self-attention and multi-head self-attention: the seed's derivation step by step, "
            "fast packed encoders, taggers and benchmarks."
        ),
    )
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="log attnlab's debug messages (e.g. why the fused attention path was not used)")
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    sub = parser.add_subparsers(dest="command", metavar="<command>")
    for name in COMMANDS:
        importlib.import_module(name).add_parser(sub)
    show_ranges(parser)  # every numeric option's range in its help
    return parser


def _version() -> str:
    from .. import __version__

    return __version__


@contextlib.contextmanager
def _attnlab_logging(verbose: bool):
    """attnlab's own loggers print to stderr: debug messages with -v, else warnings and errors.
    The root logger is left alone, so other libraries (matplotlib, torch) stay quiet."""
    logger = logging.getLogger("attnlab")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(name)s: %(message)s"))
    level = logger.level
    logger.setLevel(logging.DEBUG if verbose else logging.WARNING)
    logger.addHandler(handler)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


def _silence_stdout() -> None:
    """After a closed pipe (`attnlab steps | head -1`), point stdout at /dev/null so that
    Python's own flush at exit does not fail a second time."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (AttributeError, OSError, ValueError):  # stdout is not a file (e.g. captured by a test)
        pass


def main(argv: list[str] | None = None) -> int:
    """Run `attnlab ARGV` and return its exit code: 0, 2 for bad input or an output that cannot
    be written (one line on stderr), 130 when interrupted, 141 when the reader of stdout went
    away (`attnlab steps | head -1`)."""
    try:
        try:
            return _run(argv)
        finally:
            sys.stdout.flush()  # a closed pipe or a full disk shows here, not in Python's flush at exit
    except BrokenPipeError:
        _silence_stdout()
        return EXIT_BROKEN_PIPE
    except OSError as exc:
        if exc.filename is not None or exc.errno not in STDOUT_ERRORS:
            raise
        _silence_stdout()  # what is still buffered would fail again at exit
        print(f"attnlab: error: cannot write to stdout ({exc.strerror or exc})", file=sys.stderr)
        return 2


def _run(argv: list[str] | None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except BadCommandLine as exc:
        return int(exc.code or 2)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        with _attnlab_logging(args.verbose):
            return int(args.func(args) or 0)
    except MissingExtra as exc:
        print(f"attnlab {args.command}: {exc}", file=sys.stderr)
        return 2
    except (UserError, ValueError, FileNotFoundError) as exc:
        print(f"attnlab {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"attnlab {args.command}: interrupted", file=sys.stderr)
        return 130
