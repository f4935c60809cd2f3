"""`attnlab heads`: what each attention head of a tagger does over a treebank."""

from __future__ import annotations

import sys
from pathlib import Path

from ..options import positive_int


def add_parser(sub) -> None:
    p = sub.add_parser(
        "heads",
        help="what each attention head does over a treebank: entropy, distance, syntax, importance",
        description=(
            "Run a tagger over a treebank's sentences (their gold words) and measure, for every layer and "
            "head: the mean entropy of its attention rows (nats), the mean distance it looks over (words), "
            "how often a word's strongest key is its dependency head or one of its dependents, overall and "
            "by relation (DEPREL without its subtype), beside the best fixed-offset baseline "
            "('always attend to word i+k'; Clark et al. 2019), and its importance: the accuracy of every "
            "layer the tagger predicts with that head switched off (its output removed before W^O) against "
            "the intact model. Prints a table per head and, per relation, the heads that track it best; "
            "--json writes everything (for `attnlab serve --heads`)."
        ),
    )
    p.add_argument("--model", required=True, help="a shipped model's name (e.g. en) or a tagger model directory")
    p.add_argument("--treebank", default=None, metavar="DIR_OR_FILE",
                   help="a treebank directory (its --split file is read) or a CoNLL-U file (default: $ATTNLAB_DATA)")
    p.add_argument("--split", choices=("train", "dev", "test"), default="dev",
                   help="which split of a treebank directory (default dev)")
    p.add_argument("--max-sentences", type=positive_int, default=None, metavar="N",
                   help="only the first N sentences (default all)")
    p.add_argument("--min-count", type=positive_int, default=20, metavar="N",
                   help="fewest words a relation needs to be listed and to be a head's best (default 20)")
    p.add_argument("--json", type=_output, default=None, metavar="OUT", help="also write the report as JSON to OUT ('-': stdout)")
    p.add_argument("--no-importance", action="store_true",
                   help="skip importance (one pass over the sentences per head; the slow part)")
    p.add_argument("--threads", type=positive_int, default=None, help="torch threads (default: torch's own choice)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar (it is shown only when stderr is a terminal)")
    p.set_defaults(func=run)


def _output(text: str):
    from ..output import output_path

    return output_path(text)


def treebank_file(treebank: str | None, split: str) -> Path:
    """The CoNLL-U file ``--treebank`` names: the file itself, or the ``split`` file of a
    directory (``$ATTNLAB_DATA`` when not given)."""
    from ..data.treebank import find_split, resolve_treebank

    if treebank is not None and Path(treebank).is_file():
        return Path(treebank)
    if treebank is not None and not Path(treebank).exists():
        raise FileNotFoundError(f"{treebank}: no such treebank directory or CoNLL-U file")
    return find_split(resolve_treebank(treebank), split)


def read_sentences(treebank: str | None, split: str, max_sentences: int | None):
    """(the file, its first ``max_sentences`` sentences)."""
    from itertools import islice

    from ..data.conllu import iter_conllu

    path = treebank_file(treebank, split)
    return path, list(islice(iter_conllu(path), max_sentences))


def run(args) -> int:
    import json

    import torch

    from ..output import write_output
    from ..viz.headstats import check_model, format_report, head_report
    from ..viz.model import load_explainable

    if args.threads is not None:
        torch.set_num_threads(args.threads)
    path, sentences = read_sentences(args.treebank, args.split, args.max_sentences)
    model = load_explainable(args.model)
    check_model(model)
    report = head_report(model, sentences, importance=not args.no_importance, min_count=args.min_count,
                         progress=not args.no_progress and sys.stderr.isatty(), source=str(path))
    if args.json is not None:
        write_output(args.json, json.dumps(report, indent=1) + "\n", inputs=[path])
    if str(args.json) != "-":
        print(format_report(report))
    return 0
