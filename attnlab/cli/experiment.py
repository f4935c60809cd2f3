"""`attnlab experiment <name>`: the seed's claims as experiments you can rerun.

    attnlab experiment data-size --treebank DIR --out results/
    attnlab experiment speed --out results/
    attnlab experiment distance --out results/
    attnlab experiment positions --treebank DIR --out results/
    attnlab experiment graph --out results/
    attnlab experiment all --treebank DIR --out results/      # everything + results/experiments.md
    attnlab experiment all --quick --out /tmp/q               # tiny settings, under a minute each

Each writes <name>.json, <name>.png and <name>.md into --out.
"""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path

from ..experiments import EXPERIMENTS
from ..options import positive_int, seed


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "experiment", help="rerun the experiments that test the seed's claims (JSON, PNG, Markdown)",
        description="Experiments that test the seed's claims: data-size (CNN vs attention on small and large data), "
                    "speed (time per token vs length), distance (label decided k tokens away), positions (attention "
                    "without and with positions), graph (attention masked by a graph). 'all' runs every one and "
                    "writes experiments.md.",
    )
    p.add_argument("name", choices=(*EXPERIMENTS, "all"), help="which experiment")
    p.add_argument("--out", type=Path, required=True, help="directory for the JSON, PNG and Markdown files")
    p.add_argument("--quick", action="store_true", help="tiny settings (under a minute each; the demo corpus "
                                                         "stands in for a treebank when none is given)")
    p.add_argument("--treebank", type=Path, help="UD treebank directory for data-size and positions (default: $ATTNLAB_DATA)")
    p.add_argument("--seed", type=seed, default=1, help="first seed (default 1)")
    p.add_argument("--threads", type=positive_int, default=1, help="torch threads (default 1: timings and results do not depend on the core count)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override one experiment setting (VALUE as JSON, e.g. --set seeds=2 --set 'fractions=[0.1,1]')")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=run)


def parse_overrides(items: list[str]) -> dict:
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(f"--set {item!r}: expected KEY=VALUE")
        try:
            out[key.strip().replace("-", "_")] = json.loads(value)
        except json.JSONDecodeError:
            out[key.strip().replace("-", "_")] = value
    return out


def run(args) -> int:
    from ..experiments.common import Settings
    from ..experiments.report import run_all, run_one

    settings = Settings(
        out=args.out, quick=args.quick, treebank=args.treebank, seed=args.seed, threads=args.threads,
        progress=not args.no_progress, overrides=parse_overrides(args.overrides),
        command="attnlab " + " ".join(shlex.quote(a) for a in sys.argv[1:]) if sys.argv[1:2] == ["experiment"]
        else "attnlab experiment " + args.name,
    )
    if args.name == "all":
        run_all(settings)
    else:
        run_one(args.name, settings)
    return 0
