"""`attnlab export`: a compact copy of a trained model (float16 or int8 weights), and its cost.

    attnlab export --model models/ewt --out models/ewt-int8 --weights int8
    attnlab export --model models/ewt --compare DIR/en_ewt-ud-test.conllu [--json]
"""

from __future__ import annotations

import json
from pathlib import Path

from ..errors import UserError
from ..options import positive_int

WEIGHTS = ("float16", "int8")


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "export", help="write a compact copy of a model (float16 or int8 weights) and measure its cost",
        description="Write a copy of a model directory that holds only what tagging needs, with its weights "
                    "in float16 (half the size) or int8 with one float32 scale per row (a quarter); biases "
                    "and LayerNorm stay in float16. Loading turns them back into float32. --compare FILE tags "
                    "a gold CoNLL-U file with the model as stored and as float16 and int8 (a tagger only) and "
                    "prints size on disk, accuracy per layer and the share of words whose prediction changes.",
    )
    p.add_argument("--model", required=True, help="a shipped model's name (e.g. en) or a model directory (from attnlab train)")
    p.add_argument("--out", type=Path, help="new (or empty) directory for the compact model; it appears only once the "
                                            "copy loads")
    p.add_argument("--weights", choices=WEIGHTS, help="how --out stores the weights")
    p.add_argument("--compare", metavar="FILE", help="gold CoNLL-U file ('-': stdin) to measure the cost of each storage on")
    p.add_argument("--json", action="store_true", help="--compare: print JSON instead of a table")
    p.add_argument("--batch-size", type=positive_int, default=8192, help="--compare: tokens per batch (default 8192)")
    p.add_argument("--threads", type=positive_int, help="torch threads (default: torch's choice)")
    p.set_defaults(func=cmd_export)


def check_args(args) -> None:
    """Every problem with the command line, before any work (``args.model`` becomes the model's
    directory)."""
    from ..api import resolve_model
    from ..output import check_new_directory
    from ..tasks import model_task

    if (args.out is None) != (args.weights is None):
        raise UserError("--out and --weights go together (--out DIR --weights {float16,int8})")
    if args.out is None and args.compare is None:
        raise UserError("nothing to do: give --out DIR --weights {float16,int8}, or --compare FILE")
    args.model = resolve_model(args.model)
    if args.out is not None:
        check_new_directory(args.out, inputs=[args.model])
    if args.compare not in (None, "-") and not Path(args.compare).exists():
        raise UserError(f"{args.compare}: no such file")
    if args.compare not in (None, "-") and Path(args.compare).is_dir():
        raise UserError(f"{args.compare}: is a directory, not a file")
    if args.compare is not None and model_task(args.model) != "tagging":
        raise UserError(f"{args.model}: --compare measures taggers; this model's task is {model_task(args.model)!r}")


def cmd_export(args) -> int:
    check_args(args)
    from ..compact import compare_storages, export_model, format_comparison, model_bytes
    from ..tasks.run import use_threads

    use_threads(args.threads)
    if args.out is not None:
        export_model(args.model, args.out, args.weights)  # loaded before it lands in --out
        before, after = model_bytes(args.model), model_bytes(args.out)
        print(f"wrote {args.out}: {args.weights} weights, {after['total'] / 1e6:.2f} MB "
              f"(from {before['total'] / 1e6:.2f} MB, x{before['total'] / after['total']:.2f} smaller)")
    if args.compare is not None:
        rows = compare_storages(args.model, _gold(args.compare), batch_tokens=args.batch_size)
        print(json.dumps(rows, indent=2) if args.json else format_comparison(rows))
    return 0


def _gold(file: str) -> list:
    from ..data.conllu import check_tags
    from ..tasks.files import read_gold

    gold, _ = read_gold(file)
    check_tags(gold)
    return gold
