"""`attnlab data get NAME --dest DIR`: download a dataset, resumably and checksummed.

    attnlab data get ud-english-ewt --dest data/ud-english-ewt
    attnlab train --treebank data/ud-english-ewt --out models/ewt-attention
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ..data.download import DATASETS, DEFAULT_TIMEOUT
from ..options import Range

MAX_TIMEOUT = 86400.0  # seconds: a day (sockets refuse much longer timeouts)


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "data", help="download datasets (the UD English-EWT treebank)",
        description=(
            "Download the datasets attnlab trains and evaluates on: `attnlab data get NAME --dest DIR` fetches "
            "every file of a dataset, resumes an interrupted download and checks each file's SHA-256."
        ),
    )
    sub = p.add_subparsers(dest="data_command", metavar="<subcommand>")
    p.set_defaults(func=lambda args: _usage(p))

    known = "; ".join(f"{d.name}: {d.description}" for d in DATASETS.values())
    g = sub.add_parser(
        "get", help="download a dataset into a directory",
        description=(
            "Download every file of a dataset into --dest, with a progress bar on stderr. Each file is "
            "written to DIR/.<name>.part, checked against its SHA-256 and only then moved to its name, "
            "so an interrupted run leaves no half-written file; running again resumes the partial file "
            "(HTTP Range) and skips files that are already complete. DIR/SHA256SUMS records the checksums. "
            f"Datasets: {known}."
        ),
    )
    g.add_argument("dataset", choices=sorted(DATASETS), help="dataset to download")
    g.add_argument("--dest", type=Path, required=True, metavar="DIR",
                   help="directory to write (created if missing); then use it as --treebank DIR or $ATTNLAB_DATA")
    g.add_argument("--base-url", metavar="URL",
                   help="fetch the files from this URL instead (a mirror: the checksums must still match)")
    g.add_argument("--force", action="store_true", help="download every file again, even complete ones")
    g.add_argument("--no-progress", action="store_true", help="no progress bars")
    g.add_argument("--timeout", type=Range(float, 0.0, MAX_TIMEOUT, low_open=True), default=DEFAULT_TIMEOUT,
                   metavar="SECONDS",
                   help=f"give up on a connection that is silent this long (default {DEFAULT_TIMEOUT:g})")
    g.set_defaults(func=run_get)


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help()
    return 2


def run_get(args) -> int:
    from ..data.download import get_dataset

    results = get_dataset(args.dataset, args.dest, base_url=args.base_url, force=args.force,
                          progress=not args.no_progress, timeout=args.timeout)
    fetched = sum(r.downloaded for r in results)
    for r in results:
        state = "downloaded" if r.downloaded else "already complete"
        print(f"{r.path}  {r.size} bytes  sha256 {r.sha256}  {state}")
    print(f"{args.dataset}: {len(results)} files in {args.dest} ({fetched} downloaded, "
          f"{len(results) - fetched} already complete)")
    return 0
