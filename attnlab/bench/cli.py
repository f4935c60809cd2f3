"""`attnlab bench <what>`."""

from __future__ import annotations


def add_parser(sub) -> None:
    p = sub.add_parser("bench", help="benchmarks with side-by-side ratios", description="Benchmarks that measure attnlab beside PyTorch in the same run and print medians and ratios.")
    bsub = p.add_subparsers(dest="bench", metavar="<benchmark>", required=True)
    from . import attention as _attention  # noqa: F401  (registers itself below)

    _attention.add_parser(bsub)
    from . import encoder as _encoder

    _encoder.add_parser(bsub)
    from . import serve_load

    serve_load.add_parser(bsub)
