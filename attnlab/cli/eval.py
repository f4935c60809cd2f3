"""`attnlab eval`: score a model directory (of any task) on a gold CoNLL-U file.

    attnlab eval --model models/ewt-attention DIR/en_ewt-ud-test.conllu [--json]
    attnlab eval --model models/ewt-lemma DIR/en_ewt-ud-test.conllu --beam 4 [--no-lookup]
"""

from __future__ import annotations

import json

from ..options import positive_int


def add_parser(subparsers) -> None:
    from ..tasks import TASKS

    p = subparsers.add_parser(
        "eval", help="score a model (tagger, classifier or lemmatizer) on a CoNLL-U file",
        description="Score a model directory on a gold CoNLL-U file. Taggers: UPOS accuracy, accuracy on unknown "
                    "words (lowercased form not in the training data), per-tag precision/recall/F1 and the most "
                    "confused tag pairs. Classifiers: accuracy and macro-F1 beside a bag-of-words baseline. "
                    "Lemmatizers: exact match (all, known and unknown forms) beside the most-frequent-lemma baseline.",
    )
    p.add_argument("--model", required=True, help="a shipped model's name (e.g. en) or a model directory (from attnlab train)")
    p.add_argument("file", help="gold CoNLL-U file ('-': stdin)")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.add_argument("--batch-size", type=positive_int, default=8192, help="tokens per batch (default 8192)")
    p.add_argument("--threads", type=positive_int, help="torch threads (default: torch's choice)")
    p.add_argument("--no-baseline", action="store_true", help="classify/seq2seq models: skip the baseline")
    for name, task in TASKS.items():
        task.add_eval_arguments(p.add_argument_group(f"{name} models"))
    p.set_defaults(func=cmd_eval)


def cmd_eval(args) -> int:
    from ..api import resolve_model
    from ..tasks.run import evaluate

    args.model = resolve_model(args.model)
    task, result = evaluate(args)
    print(json.dumps(task.report_json(result), indent=2) if args.json else task.report_text(result))
    return 0
